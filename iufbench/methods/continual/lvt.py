"""UniAD + LVT (Wang et al., CVPR 2022), reduced to the part of LVT that needs no old images: its
inter-task attention consolidation, moved onto UniAD's reconstruction transformer.

LVT slows the drift of the parameters that set its attention weights (a learnable external key and
an attention bias), weighting each one's change by how much the previous task's loss depends on it
(its gradient on that task). UniAD has no external key; what sets its attention weights is the
query/key projections of every attention block, the learned position embeddings (they enter the
queries and keys only) and the decoder's learned queries (input-independent, like LVT's key). After
each task, while its features are still at hand, one pass over them gives the mean gradient
magnitude of the reconstruction MSE w.r.t. those parameters; normalised to mean 1 and accumulated
over tasks, it weights a quadratic penalty `lambda * sum Omega (theta - theta_old)^2` anchored at
the previous task's weights. LVT's dual classifier and confidence-aware replay memory need labels
and stored images, so they are left out (docs/methods/baselines.md, "LVT").
"""
from __future__ import annotations

import re
from typing import Any

import torch
import torch.nn.functional as F

from iufbench.errors import ConfigError
from iufbench.methods.base import METHODS, MethodContext, TrainTask
from iufbench.methods.uniad.method import UniADMethod

# parameter groups that shape UniAD's attention weights (names as in uniad/torch_model.py)
GROUPS: dict[str, re.Pattern[str]] = {
    "qk": re.compile(r"^(encoder\.\d+\.attn|decoder\.\d+\.attn[12])\.[qk]\.(weight|bias)$"),
    "position": re.compile(r"^pos\.(row|col)\.weight$"),
    "query": re.compile(r"^decoder\.\d+\.query$"),
}


def attention_parameters(model: torch.nn.Module, groups: list[str]) -> dict[str, torch.nn.Parameter]:
    """The named parameters in `groups` (keys of GROUPS), in the model's order."""
    unknown = set(groups) - set(GROUPS)
    if unknown or not groups:
        raise ConfigError(f"lvt.groups must be a non-empty subset of {sorted(GROUPS)}, got {groups}")
    picked = {n: p for n, p in model.named_parameters() if any(GROUPS[g].match(n) for g in groups)}
    if not picked:
        raise ConfigError(f"lvt.groups {groups} select no parameter of {type(model).__name__}")
    return picked


@METHODS.register("uniad_lvt", help="UniAD + LVT's inter-task attention consolidation (no old data)")
class LVTUniAD(UniADMethod):
    """UniAD whose attention parameters are pulled toward the previous task's, weighted by importance."""

    def __init__(self, config: dict[str, Any], ctx: MethodContext) -> None:
        super().__init__(config, ctx)
        cfg = config["lvt"]
        self.strength = float(cfg["lambda"])
        self.decay = float(cfg["decay"])
        if self.strength < 0 or not 0.0 <= self.decay <= 1.0:
            raise ConfigError(f"lvt.lambda must be >= 0 and lvt.decay in [0, 1], got {self.strength}, {self.decay}")
        self.params = attention_parameters(self.model, list(cfg["groups"]))
        self.importance: dict[str, torch.Tensor] = {}  # name -> Omega, empty before the first task ends
        self.anchor: dict[str, torch.Tensor] = {}  # name -> the previous task's weights
        self.grad_scale = 0.0

    def penalty(self) -> torch.Tensor:
        """sum Omega (theta - theta_old)^2 over the consolidated parameters; 0 before any anchor."""
        total = torch.zeros((), device=self.ctx.device)
        for name, anchor in self.anchor.items():
            total = total + (self.importance[name] * (self.params[name].float() - anchor).pow(2)).sum()
        return total

    def add_penalty(self, loss: torch.Tensor, features: torch.Tensor,
                    rec: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if not self.anchor:
            return loss, {}
        penalty = self.penalty()
        return loss + self.strength * penalty, {"penalty": penalty.detach()}

    def task_importance(self, task: TrainTask) -> dict[str, torch.Tensor]:
        """Mean over the task's batches of |d MSE / d theta| at the final weights, eval mode (the
        function that scores: no jitter, no dropout), normalised to mean 1 over all entries."""
        features = task.features.to(self.ctx.device)
        batch_size = int(self.config["train"]["batch_size"][task.step])
        names, params = list(self.params), list(self.params.values())
        sums = [torch.zeros_like(p, dtype=torch.float32) for p in params]
        self.model.eval()
        batches = features.split(batch_size)
        for x in batches:
            with self.autocast():
                rec = self.model(x)  # never the compiled forward: the last batch may be smaller
            grads = torch.autograd.grad(F.mse_loss(rec.float(), x), params)
            for s, g in zip(sums, grads):
                s.add_(g.float().abs())
        mean = sum(s.sum() for s in sums) / sum(s.numel() for s in sums)
        self.grad_scale = float(mean) / len(batches)  # logged: the raw mean |gradient|, for tuning lambda
        scale = mean.clamp_min(torch.finfo(torch.float32).tiny)
        return {n: s / scale for n, s in zip(names, sums)}  # the 1 / len(batches) cancels here

    def after_task(self, task: TrainTask) -> None:
        new = self.task_importance(task)
        for name, omega in new.items():
            old = self.importance.get(name)
            self.importance[name] = omega if old is None else self.decay * old + omega
        self.anchor = {n: p.detach().float().clone() for n, p in self.params.items()}

    def learn(self, task: TrainTask) -> dict[str, float]:
        return {**super().learn(task), "grad_scale": self.grad_scale}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "importance": self.importance, "anchor": self.anchor}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        device = self.ctx.device
        self.importance = {n: v.to(device) for n, v in state["importance"].items()}
        self.anchor = {n: v.to(device) for n, v in state["anchor"].items()}
