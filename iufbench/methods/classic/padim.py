"""PaDiM (Defard et al., ICPR 2021) through anomalib's torch model, refit on each step's new objects.

One Gaussian per feature-grid position over a random subset of channels; the score is the
Mahalanobis distance. In the incremental protocol each step refits the Gaussians on the new
objects only (the IUF paper's Table 1 setting), so it keeps nothing of old objects.
"""
from __future__ import annotations

from typing import Any

import torch

from iufbench.methods.base import METHODS, MethodContext, TrainTask
from iufbench.methods.classic.on_features import AnomalibOnFeatures


@METHODS.register("padim", help="PaDiM (anomalib), Gaussians refit on each step's new objects only")
class PaDiM(AnomalibOnFeatures):
    section = "padim"

    def __init__(self, config: dict[str, Any], ctx: MethodContext) -> None:
        super().__init__(config, ctx)
        from iufbench.methods.classic.anomalib_bridge import padim_model  # noqa: PLC0415

        cfg = config["padim"]
        generator = torch.Generator().manual_seed(ctx.seed)
        self.model = padim_model(ctx.feature_channels, int(cfg["n_features"]), ctx.image_size,
                                 cfg["blur_sigma"], generator).to(ctx.device)

    def learn(self, task: TrainTask) -> dict[str, float]:
        self.collect(task.features)
        self.model.fit()
        return {"images": float(len(task.features))}

    def state_dict(self) -> dict[str, Any]:
        g = self.model.gaussian
        return {"idx": self.model.idx.cpu(), "mean": g.mean.cpu(), "inv_covariance": g.inv_covariance.cpu()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.idx = state["idx"].to(self.ctx.device)
        self.model.gaussian.mean = state["mean"].to(self.ctx.device)
        self.model.gaussian.inv_covariance = state["inv_covariance"].to(self.ctx.device)
