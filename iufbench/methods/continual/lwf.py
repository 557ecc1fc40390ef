"""UniAD + Learning without Forgetting (Li & Hoiem, 2016), adapted to reconstruction: in every
incremental step the model is also pulled toward the previous model's reconstructions of the new
task's features (no old data, one frozen copy of the previous weights).

Loss = MSE(rec, x) + lambda * MSE(rec, rec_old), rec_old = the previous task's model (eval mode,
no jitter or dropout) on the same batch. A cheap, well-known baseline the paper lacks.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from iufbench.methods.base import METHODS, TrainTask
from iufbench.methods.uniad.method import UniADMethod


@METHODS.register("uniad_lwf", help="UniAD + LwF: distil the previous model's reconstructions (no old data)")
class LwFUniAD(UniADMethod):
    teacher: torch.nn.Module | None = None

    def before_task(self, task: TrainTask) -> None:
        if task.step > 0:
            self.teacher = copy.deepcopy(self.model).eval().requires_grad_(False)

    def add_penalty(self, loss: torch.Tensor, features: torch.Tensor,
                    rec: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if self.teacher is None:
            return loss, {}
        with torch.no_grad():
            target = self.teacher(features).float()
        distill = F.mse_loss(rec, target)
        return loss + self.config["lwf"]["lambda"] * distill, {"distill": distill.detach()}

    def after_task(self, task: TrainTask) -> None:
        self.teacher = None  # rebuilt from the new weights at the next step; not part of the state
