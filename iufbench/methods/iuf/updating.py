"""IUF's updating strategy (§4.3): keep old objects' primary semantic space while learning new ones.

1. Decreasing rewriting: after each task, a second moment of what each guarded map sees on that
   task's training images is accumulated (over all tasks so far: statistics, never images). Its
   eigenvectors, by decreasing eigenvalue, are V_old. In the next task, the update actually applied
   to the guarded parameters (whatever the optimiser did) is rotated into V_old, scaled per
   direction by Omega and rotated back. Omega is the paper's k log c, c = 1..D, k = 1 / log D (the
   most important direction frozen, the least important free; the reference's ln(1 + c) / ln 256
   for D = 256), or `energy`: 0 on the leading directions that hold a share of the moment, 1 on the
   rest (share 1: every direction the old data reaches is frozen).
2. Retaining prior semantics: after every update, theta <- (1 - beta) theta + beta theta_old.
   The paper writes theta + beta theta_old, which would grow the weights geometrically at every
   iteration; the convex form (the reference's) pulls toward the old weights instead.

Which side V_old acts on (docs/methods/iuf.md, "Which side"). The paper's parameter theta in
R^{C x W} multiplies the feature rows M^ in R^{B x C} (M^ theta), so its channel space C is the
space of the features the layer *reads*; for a torch Linear y = W x (W = theta^T) that is the input
side: dW <- dW V diag(Omega) V^T with V from the second moment of the inputs x over every token.
Then dW x = 0 for every old x when Omega is 0 on the directions they span, so the old outputs are
unchanged, layer after layer. The reference instead scales the *rows* (output side) with the
spatial-mean outputs' moment: the old outputs then gain components outside their old span.

Guards, by what they parameterise:
- `OutputRows` (the reference, `protect: ffn_out | ffn_and_attn_out`): a Linear's weight rows and
  bias, moment of its spatial-mean outputs.
- `InputColumns` (`protect: all`): a Linear or an attention's packed input projection; the bias is
  the column of a constant input 1, so [W | b] is projected with the moment of [x, 1].
- `Channels`: a LayerNorm's gain and shift, per channel the 2 x 2 moment of (x^_c, 1).
- `Constant`: a parameter added to every image alike (learned queries, positional embeddings): its
  only input is the constant 1, a single direction, the most important one, so Omega freezes it.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

OMEGAS = ("log", "energy")


def omega(dim: int) -> torch.Tensor:
    """Omega(c) = log(c) / log(dim) for c = 1..dim: 0 for the top direction, 1 for the last."""
    c = torch.arange(1, dim + 1, dtype=torch.float64)
    return torch.log(c) / math.log(dim) if dim > 1 else torch.zeros(1, dtype=torch.float64)


def schedule(eigenvalues: torch.Tensor, kind: str, energy: float) -> torch.Tensor:
    """Omega per direction for eigenvalues sorted in decreasing order ([..., D])."""
    if kind == "log":
        return omega(eigenvalues.shape[-1]).expand_as(eigenvalues)
    values = eigenvalues.clamp(min=0)
    total = values.sum(dim=-1, keepdim=True)
    before = values.cumsum(dim=-1) - values  # the share held by the more important directions
    reached = values > 1e-10 * values[..., :1]  # the old data has energy here (not float noise)
    return (~((before < energy * total) & reached)).double()


def projector(second_moment: torch.Tensor, kind: str = "log", energy: float = 1.0) -> torch.Tensor:
    """V diag(Omega) V^T with V the eigenvectors of the second moment(s) [..., D, D], by decreasing
    eigenvalue."""
    eigenvalues, vectors = torch.linalg.eigh(second_moment.double())
    order = eigenvalues.argsort(dim=-1, descending=True)
    eigenvalues = eigenvalues.gather(-1, order)
    vectors = vectors.gather(-1, order.unsqueeze(-2).expand_as(vectors))
    return (vectors * schedule(eigenvalues, kind, energy).unsqueeze(-2)) @ vectors.transpose(-1, -2)


def attended(attention: nn.MultiheadAttention, x: torch.Tensor) -> torch.Tensor:
    """What `attention`'s output projection reads in self-attention on x [B, L, E] (batch first, no
    mask, eval): torch applies `out_proj` inside a fused function, so no hook can see its input."""
    heads = attention.num_heads
    q, k, v = F.linear(x, attention.in_proj_weight, attention.in_proj_bias).chunk(3, dim=-1)
    split = lambda t: t.unflatten(-1, (heads, -1)).transpose(1, 2)  # noqa: E731
    return F.scaled_dot_product_attention(split(q), split(k), split(v)).transpose(1, 2).flatten(2)


class Guard:
    """A group of parameters projected together, and what of a forward pass its moment comes from."""

    on_input = True  # hook the module's input (forward pre-hook) or its output
    per_batch = True  # fold the moment after every batch (token rows: too many to keep)

    def __init__(self, params: list[nn.Parameter], module: nn.Module | None) -> None:
        self.params, self.module = params, module

    def rows(self, seen: torch.Tensor) -> torch.Tensor:
        """The observations whose second moment defines V_old, from what the hook saw."""
        raise NotImplementedError

    def moment(self, rows: torch.Tensor) -> torch.Tensor:
        return rows.T @ rows

    def project(self, deltas: list[torch.Tensor], p: torch.Tensor) -> list[torch.Tensor]:
        """The parameters' update [dW, db] constrained by the projector p."""
        raise NotImplementedError


class InputColumns(Guard):
    """A Linear (or an attention's packed input projection): [dW | db] V diag(Omega) V^T, the bias as
    the column of a constant input 1, V from the moment of [x, 1] over every token."""

    def __init__(self, params: list[nn.Parameter], module: nn.Module,
                 read: Callable[[torch.Tensor], torch.Tensor] = lambda x: x) -> None:
        super().__init__(params, module)
        self.read = read  # hooked input -> what the weight multiplies

    def rows(self, seen: torch.Tensor) -> torch.Tensor:
        x = self.read(seen).float().flatten(0, -2)
        return torch.cat([x, x.new_ones(len(x), 1)], dim=1) if len(self.params) == 2 else x

    def project(self, deltas: list[torch.Tensor], p: torch.Tensor) -> list[torch.Tensor]:
        joint = torch.cat([d.reshape(len(d), -1) for d in deltas], dim=1) @ p
        return [part.reshape(d.shape) for part, d in zip(joint.split([d[0].numel() for d in deltas], 1), deltas)]


class OutputRows(Guard):
    """The reference's: a Linear's weight rows and bias, moment of its spatial-mean outputs."""

    on_input, per_batch = False, False

    def rows(self, seen: torch.Tensor) -> torch.Tensor:
        return seen.float().mean(dim=1)

    def project(self, deltas: list[torch.Tensor], p: torch.Tensor) -> list[torch.Tensor]:
        return [p @ d for d in deltas]


class Channels(Guard):
    """A LayerNorm's gain and shift: per channel c, out_c = gain_c x^_c + shift_c, a 1-input map
    with a bias, so its moment is the 2 x 2 one of (x^_c, 1)."""

    def __init__(self, norm: nn.LayerNorm) -> None:
        super().__init__([norm.weight, norm.bias], norm)
        self.shape, self.eps = norm.normalized_shape, norm.eps

    def rows(self, seen: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(seen.float(), self.shape, eps=self.eps).flatten(0, -2)
        return torch.stack([x, torch.ones_like(x)], dim=-1)  # [N, D, 2]

    def moment(self, rows: torch.Tensor) -> torch.Tensor:
        return torch.einsum("ndi,ndj->dij", rows, rows)

    def project(self, deltas: list[torch.Tensor], p: torch.Tensor) -> list[torch.Tensor]:
        joint = (p @ torch.stack(deltas, dim=-1).unsqueeze(-1)).squeeze(-1)
        return list(joint.unbind(dim=-1))


class Constant(Guard):
    """A parameter added to every image alike: its input is the constant 1 (moment: the image count,
    added by `SecondMoments.collect` without a hook)."""

    def __init__(self, param: nn.Parameter) -> None:
        super().__init__([param], None)

    def project(self, deltas: list[torch.Tensor], p: torch.Tensor) -> list[torch.Tensor]:
        return [d * p.reshape(()) for d in deltas]


def guard_modules(prefix: str, root: nn.Module, skip: tuple[str, ...] = ()) -> dict[str, Guard]:
    """A guard for every parameter under `root` (sub-modules named in `skip` left out)."""
    guards: dict[str, Guard] = {}
    inside_attention: set[int] = set()  # out_proj Linears: guarded through their attention
    for name, module in root.named_modules(prefix=prefix):
        if id(module) in inside_attention or any(name == s or name.startswith(f"{s}.") for s in skip):
            continue
        if isinstance(module, nn.MultiheadAttention):
            if not (module._qkv_same_embed_dim and module.batch_first and module.bias_k is None):
                raise ValueError(f"{name}: only batch-first self-attention with packed projections is guarded")
            guards[f"{name}.in_proj"] = InputColumns([module.in_proj_weight, module.in_proj_bias], module)
            guards[f"{name}.out_proj"] = InputColumns([module.out_proj.weight, module.out_proj.bias], module,
                                                      lambda x, m=module: attended(m, x))
            inside_attention.add(id(module.out_proj))
        elif isinstance(module, nn.Linear):
            guards[name] = InputColumns([p for p in (module.weight, module.bias) if p is not None], module)
        elif isinstance(module, nn.LayerNorm):
            guards[name] = Channels(module)
        else:
            for pname, param in module.named_parameters(recurse=False):
                guards[f"{name}.{pname}"] = Constant(param)
    return guards


class SecondMoments:
    """Per guard: the sum over the training images of every task so far of its rows' outer products."""

    def __init__(self, guards: dict[str, Guard]) -> None:
        self.guards = guards
        self.moments: dict[str, torch.Tensor] = {}
        self.images = 0

    @torch.no_grad()
    def collect(self, model: nn.Module, features: torch.Tensor, batch_size: int = 64) -> None:
        """Run `model` on one task's training features and accumulate the statistics."""
        seen: dict[str, list[torch.Tensor]] = {name: [] for name in self.guards}
        hooks = []
        for name, guard in self.guards.items():
            if guard.module is None:
                continue
            record = lambda x, name=name, guard=guard: seen[name].append(guard.rows(x))  # noqa: E731
            hooks.append(guard.module.register_forward_pre_hook(lambda _m, args, r=record: r(args[0]))
                         if guard.on_input else guard.module.register_forward_hook(lambda _m, _i, out, r=record: r(out)))
        was_training, fastpath = model.training, torch.backends.mha.get_fastpath_enabled()
        try:
            model.eval()
            torch.backends.mha.set_fastpath_enabled(False)  # the fused encoder layer skips sub-module hooks
            for start in range(0, len(features), batch_size):
                model(features[start : start + batch_size])
                self._fold(seen, per_batch=True)
        finally:
            model.train(was_training)
            torch.backends.mha.set_fastpath_enabled(fastpath)
            for hook in hooks:
                hook.remove()
        self._fold(seen, per_batch=False)
        for name, guard in self.guards.items():
            if guard.module is None:
                self.moments[name] = self.moments.get(name, 0) + torch.full((1, 1), float(len(features)),
                                                                            dtype=torch.float64)
        self.images += len(features)

    def _fold(self, seen: dict[str, list[torch.Tensor]], per_batch: bool) -> None:
        for name, rows in seen.items():
            if rows and self.guards[name].per_batch == per_batch:
                y = torch.cat(rows).double().cpu()
                self.moments[name] = self.moments.get(name, 0) + self.guards[name].moment(y)
                rows.clear()

    def state_dict(self) -> dict:
        return {"moments": self.moments, "images": self.images}

    def load_state_dict(self, state: dict) -> None:
        self.moments, self.images = dict(state["moments"]), state["images"]


def _static(tensors: list[torch.Tensor]) -> None:
    """Tensors a compiled CUDA step reads (and `before`: writes) at a fixed address for a whole task: a
    CUDA graph then uses them in place instead of copying them in (or, when written, not graphing the
    step). Only with `--compile` (it imports dynamo: over a second)."""
    for t in tensors:
        torch._dynamo.mark_static_address(t)


class ProjectedUpdate:
    """Constrains the applied update of every guarded group to V_old's less important directions."""

    def __init__(self, guards: dict[str, Guard], moments: dict[str, torch.Tensor], kind: str = "log",
                 energy: float = 1.0, compiled: bool = False) -> None:
        self.groups = [(g, projector(moments[n], kind, energy).to(g.params[0])) for n, g in guards.items()
                       if n in moments]
        self.params = [t for g, _ in self.groups for t in g.params]
        self.before = [t.detach().clone() for t in self.params]  # reused every step: no allocation
        if compiled:
            _static([p for _, p in self.groups] + self.before)

    @torch.no_grad()
    def snapshot(self) -> None:
        torch._foreach_copy_(self.before, self.params)

    @torch.no_grad()
    def project(self) -> None:
        """theta <- theta_0 + P(theta - theta_0), group by group."""
        start = 0
        for guard, p in self.groups:
            n = len(guard.params)
            params, before = self.params[start : start + n], self.before[start : start + n]
            for t, t0, d in zip(params, before, guard.project([t - t0 for t, t0 in zip(params, before)], p)):
                t.copy_(t0 + d)
            start += n


class PullToOld:
    """theta <- (1 - beta) theta + beta theta_old for every parameter, after every update."""

    def __init__(self, model: nn.Module, beta: float, compiled: bool = False) -> None:
        self.beta = beta
        self.params = [p for p in model.parameters()]
        self.old = [p.detach().clone() for p in self.params]
        if compiled:
            _static(self.old)

    @torch.no_grad()
    def __call__(self) -> None:
        torch._foreach_lerp_(self.params, self.old, self.beta)  # one multi-tensor kernel, not one per tensor
