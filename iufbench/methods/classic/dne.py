"""CAD-style DNE (Li et al., ACM MM 2022, "Towards continual adaptation in industrial anomaly
detection"): per-task Gaussian statistics of global image features, image-level scores only.

DNE keeps, for each task, the mean, covariance and size of its training images' L2-normalised
global embeddings (statistics, no images). Before testing it refits one Gaussian to the current
task's embeddings plus samples drawn from every earlier task's Gaussian, and scores a test image by
its Mahalanobis distance to that Gaussian. We compute that Gaussian's moments exactly (the mixture's
mean and covariance, the limit of DNE's sampling) instead of sampling, so scores do not depend on a
random draw. Differences from DNE, documented in docs/methods/baselines.md: the embedding is the
spatial mean of the run's frozen backbone features (DNE fine-tunes a ViT-B/16 with a classification
loss on augmentations and uses its class token). `TaskGaussians` is the statistics part alone; the
CAD self-supervised baselines (`iufbench/methods/cad/`) score with it too.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from sklearn.covariance import LedoitWolf

from iufbench.methods.base import METHODS, Method, MethodContext, Scores, TrainingError, TrainTask


def embed(features: torch.Tensor) -> torch.Tensor:
    """Global image embedding: spatial mean of the feature map, L2-normalised (as DNE normalises)."""
    return F.normalize(features.float().mean(dim=(2, 3)), dim=1)


def mixture_moments(means: list[torch.Tensor], covs: list[torch.Tensor], counts: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and covariance of the mixture of per-task Gaussians weighted by their sizes."""
    w = torch.tensor(counts, dtype=torch.float64) / sum(counts)
    mu = torch.stack(means)
    mean = (w[:, None] * mu).sum(0)
    spread = mu - mean
    cov = sum(wt * (c + torch.outer(d, d)) for wt, c, d in zip(w, covs, spread))
    return mean, cov


class TaskGaussians:
    """One Gaussian per learned task (mean, Ledoit-Wolf covariance, size) of L2-normalised image
    embeddings, and the Mahalanobis distance to their size-weighted mixture. Statistics only: an
    earlier task's Gaussian is never refitted, so it survives every later task unchanged."""

    def __init__(self) -> None:
        self.means: list[torch.Tensor] = []
        self.covs: list[torch.Tensor] = []
        self.counts: list[int] = []
        self.mean = torch.empty(0)
        self.precision = torch.empty(0)

    def add(self, z: torch.Tensor, who: str, task: TrainTask) -> None:
        """Append the Gaussian of one task's embeddings `z` [N, D]; `who` names the method in errors."""
        z = z.double().cpu()
        if len(z) < 2:
            raise TrainingError(f"{who} needs at least 2 training images per step to estimate a covariance; step {task.step} ({', '.join(task.new_objects)}) has {len(z)}")
        self.means.append(z.mean(0))
        # Ledoit-Wolf shrinkage: a full covariance from a few dozen images is singular otherwise
        self.covs.append(torch.from_numpy(LedoitWolf().fit(z.numpy()).covariance_))
        self.counts.append(len(z))
        self._refit()

    def keep_last(self) -> None:
        """Forget every Gaussian but the newest (CAD's code for CutPaste and PANDA)."""
        del self.means[:-1], self.covs[:-1], self.counts[:-1]
        self._refit()

    def _refit(self) -> None:
        self.mean, cov = mixture_moments(self.means, self.covs, self.counts)
        self.precision = torch.linalg.pinv(cov, hermitian=True)

    def distance(self, z: torch.Tensor) -> torch.Tensor:
        """Mahalanobis distance [B] of embeddings `z` [B, D] to the mixture."""
        d = z.double().cpu() - self.mean
        return ((d @ self.precision) * d).sum(1).clamp_min(0).sqrt().float()

    def state_dict(self) -> dict[str, Any]:
        return {"means": self.means, "covs": self.covs, "counts": self.counts}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.means, self.covs, self.counts = state["means"], state["covs"], list(state["counts"])
        self._refit()


@METHODS.register("cad_dne", help="DNE (CAD): per-task Gaussian statistics of global features; image scores only")
class DNE(Method):
    pixel_output = False

    def __init__(self, config: dict[str, Any], ctx: MethodContext) -> None:
        super().__init__(config, ctx)
        self.gaussians = TaskGaussians()

    def learn(self, task: TrainTask) -> dict[str, float]:
        self.gaussians.add(embed(task.features), "cad_dne", task)
        return {"tasks": float(len(self.gaussians.counts))}

    @torch.no_grad()
    def score(self, features: torch.Tensor) -> Scores:
        return Scores(image=self.gaussians.distance(embed(features)), maps=None)

    def state_dict(self) -> dict[str, Any]:
        return self.gaussians.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.gaussians.load_state_dict(state)
