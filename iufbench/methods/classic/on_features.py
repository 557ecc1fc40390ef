"""What PatchCore and PaDiM share: an anomalib torch model that collects embeddings from cached
features in train mode and returns raw scores and image-size maps in eval mode."""
from __future__ import annotations

import torch

from iufbench.methods.base import Method, Scores


class AnomalibOnFeatures(Method):
    """Subclasses set `self.model` (from `anomalib_bridge`) and the config section `section`."""

    section: str
    model: torch.nn.Module

    def collect(self, features: torch.Tensor) -> None:
        """Run every feature map through the model in train mode: anomalib stores the embeddings."""
        self.model.train()
        batch = int(self.config[self.section]["batch_size"])
        for start in range(0, len(features), batch):
            self.model(features[start : start + batch].to(self.ctx.device))

    @torch.no_grad()
    def score(self, features: torch.Tensor) -> Scores:
        self.model.eval()
        out = self.model(features.to(self.ctx.device))
        return Scores(image=out.pred_score.flatten().float().cpu(), maps=out.anomaly_map[:, 0].float().cpu())
