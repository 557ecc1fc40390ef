"""IUF's updating strategy (§4.3): keep old objects' primary semantic space while learning new ones.

1. Decreasing rewriting: after each task, the spatial-mean outputs of each protected layer on
   that task's training images are folded into a D x D second-moment matrix (accumulated over
   all tasks so far: statistics, never images). Its eigenvectors, by decreasing eigenvalue, are
   V_old. In the next task, the update actually applied to a protected layer (whatever the
   optimiser did) is rotated into V_old, scaled per direction by Omega(c) = k log c, c = 1..D,
   k = 1 / log D (the most important direction frozen, the least important free; the reference's
   ln(1 + c) / ln 256 for D = 256), and rotated back. It acts on the layer's output dimension
   (weight rows and bias), as in the reference.
2. Retaining prior semantics: after every update, theta <- (1 - beta) theta + beta theta_old.
   The paper writes theta + beta theta_old, which would grow the weights geometrically at every
   iteration; the convex form (the reference's) pulls toward the old weights instead.
"""
from __future__ import annotations

import math

import torch
from torch import nn


def omega(dim: int) -> torch.Tensor:
    """Omega(c) = log(c) / log(dim) for c = 1..dim: 0 for the top direction, 1 for the last."""
    return torch.log(torch.arange(1, dim + 1, dtype=torch.float64)) / math.log(dim)


def projector(second_moment: torch.Tensor) -> torch.Tensor:
    """V diag(Omega) V^T with V the eigenvectors of the second moment, by decreasing eigenvalue."""
    eigenvalues, vectors = torch.linalg.eigh(second_moment.double())
    vectors = vectors[:, eigenvalues.argsort(descending=True)]
    return (vectors * omega(len(eigenvalues))) @ vectors.T


class SecondMoments:
    """Per protected layer: sum over images of y y^T, y = the layer's spatial-mean output."""

    def __init__(self, layers: dict[str, nn.Linear]) -> None:
        self.layers = layers
        self.moments: dict[str, torch.Tensor] = {}
        self.images = 0

    @torch.no_grad()
    def collect(self, model: nn.Module, features: torch.Tensor, batch_size: int = 64) -> None:
        """Run `model` on one task's training features and accumulate the statistics."""
        outputs: dict[str, list[torch.Tensor]] = {name: [] for name in self.layers}
        hooks = [
            layer.register_forward_hook(lambda _m, _i, out, name=name: outputs[name].append(out.float().mean(dim=1)))
            for name, layer in self.layers.items()
        ]
        was_training = model.training
        try:
            model.eval()
            for start in range(0, len(features), batch_size):
                model(features[start : start + batch_size])
        finally:
            model.train(was_training)
            for hook in hooks:
                hook.remove()
        for name, rows in outputs.items():
            y = torch.cat(rows).double().cpu()
            self.moments[name] = self.moments.get(name, 0) + y.T @ y
        self.images += len(features)

    def state_dict(self) -> dict:
        return {"moments": self.moments, "images": self.images}

    def load_state_dict(self, state: dict) -> None:
        self.moments, self.images = dict(state["moments"]), state["images"]


class ProjectedUpdate:
    """Constrains the applied update of protected layers to V_old's less important directions."""

    def __init__(self, layers: dict[str, nn.Linear], moments: dict[str, torch.Tensor]) -> None:
        self.params: list[torch.Tensor] = []  # weight and bias of every protected layer
        self.projectors: list[torch.Tensor] = []  # one per entry of params (a layer's two share it)
        for name, layer in layers.items():
            if name in moments:
                p = projector(moments[name]).to(layer.weight)
                self.params += [layer.weight, layer.bias]
                self.projectors += [p, p]
        self.before = [t.detach().clone() for t in self.params]  # reused every step: no allocation

    @torch.no_grad()
    def snapshot(self) -> None:
        torch._foreach_copy_(self.before, self.params)

    @torch.no_grad()
    def project(self) -> None:
        """theta <- theta_0 + P (theta - theta_0) on the output dimension (weight rows and bias)."""
        for t, t0, p in zip(self.params, self.before, self.projectors):
            t.copy_(t0 + p @ (t - t0))


class PullToOld:
    """theta <- (1 - beta) theta + beta theta_old for every parameter, after every update."""

    def __init__(self, model: nn.Module, beta: float) -> None:
        self.beta = beta
        self.params = [p for p in model.parameters()]
        self.old = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def __call__(self) -> None:
        torch._foreach_lerp_(self.params, self.old, self.beta)  # one multi-tensor kernel, not one per tensor
