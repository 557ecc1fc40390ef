"""anomalib 2.7's torch models, driven directly on the suite's cached features (the only module here
that imports anomalib; its import costs ~5 s, so method modules import this lazily).

Why not anomalib's Lightning `Engine`: it normalises scores to [0, 1] and always writes checkpoints.
Why cached features: every method of a run then sees the same frozen backbone and weights (offline,
no hub), and the backbone runs once per image instead of once per method. anomalib's constructors
always build their own timm backbone, so each model is built with the cheapest one (a random
resnet18, nothing downloaded) and its `feature_extractor` is swapped for `CachedFeatures`.
"""
from __future__ import annotations

import warnings

import torch
from torch import nn

from iufbench.errors import ConfigError

with warnings.catch_warnings():  # anomalib 2.7 imports deprecated timm and dinov2 paths; not ours
    warnings.simplefilter("ignore", FutureWarning)
    from anomalib.models.components import KCenterGreedy
    from anomalib.models.image.draem.loss import DraemLoss
    from anomalib.models.image.draem.torch_model import (
        DiscriminativeSubNetwork,
        DraemModel,
        ReconstructiveSubNetwork,
    )
    from anomalib.models.image.padim.anomaly_map import AnomalyMapGenerator as PadimMapGenerator
    from anomalib.models.image.padim.torch_model import PadimModel
    from anomalib.models.image.patchcore.anomaly_map import AnomalyMapGenerator as PatchcoreMapGenerator
    from anomalib.models.image.patchcore.torch_model import PatchcoreModel
    from anomalib.data.utils.generators.perlin import PerlinAnomalyGenerator

__all__ = ["DraemLoss", "PerlinAnomalyGenerator", "FastKCenterGreedy", "draem_model", "padim_model",
           "patchcore_model"]

CACHED = "cached"  # the one "layer" CachedFeatures returns


class CachedFeatures(nn.Module):
    """Stands in for anomalib's TimmFeatureExtractor: the input already is the feature map."""

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        return {CACHED: features}


class PatchcoreMapAtImageSize(PatchcoreMapGenerator):
    """anomalib upsamples to the input's size, which for cached features is the feature grid; the
    engine wants maps at the protocol's image size, and the blur's sigma is meant in image pixels."""

    def __init__(self, image_size: tuple[int, int], sigma: int) -> None:
        super().__init__(sigma=sigma)
        self.image_size = image_size

    def forward(self, patch_scores: torch.Tensor, image_size: object = None) -> torch.Tensor:
        return super().forward(patch_scores, self.image_size)


class PadimMapAtImageSize(PadimMapGenerator):
    """As `PatchcoreMapAtImageSize`, for PaDiM's Mahalanobis maps."""

    def __init__(self, image_size: tuple[int, int], sigma: int) -> None:
        super().__init__(sigma=sigma)
        self.image_size = image_size

    def forward(self, **kwargs: torch.Tensor) -> torch.Tensor:
        return super().forward(**{**kwargs, "image_size": self.image_size})


class FastKCenterGreedy(KCenterGreedy):
    """anomalib's k-center greedy coreset with an allocation-free distance update.

    anomalib computes `norm(features - center)` into a fresh [N, d] temporary at every pick: on a
    16k x 1536 bank that took 20-55 s and ~20 GB RSS on our CPU. The same arithmetic into
    preallocated buffers picks identical indices (tested) in a fraction of the time and memory.
    `size` sets the coreset size directly (a fixed budget) instead of through a ratio.
    """

    def __init__(self, embedding: torch.Tensor, size: int) -> None:
        super().__init__(embedding, sampling_ratio=1.0)
        if not 0 < size <= len(embedding):
            raise ValueError(f"coreset size must lie in [1, {len(embedding)}], got {size}")
        self.coreset_size = size
        self._diff: torch.Tensor | None = None
        self._dist: torch.Tensor | None = None

    def select_coreset_idxs(self) -> list[int]:
        """anomalib's loop (random first pick, then farthest point), without its progress bar."""
        self.model.fit(self.embedding)
        self.features = self.model.transform(self.embedding)
        self.reset_distances()
        idx = torch.randint(high=self.n_observations, size=(1,), device=self.features.device).squeeze()
        picks = [idx]
        for _ in range(self.coreset_size - 1):
            self.update_distances(idx)
            idx = self.get_new_idx()
            self.min_distances.scatter_(0, idx.view(1, 1), 0.0)
            picks.append(idx)
        return torch.stack(picks).cpu().tolist()

    def update_distances(self, cluster_center: int | torch.Tensor | None) -> None:
        if cluster_center is None:
            return
        if self._diff is None or self._diff.shape != self.features.shape:
            self._diff = torch.empty_like(self.features)
            self._dist = torch.empty(len(self.features), 1, dtype=self.features.dtype, device=self.features.device)
        torch.sub(self.features, self.features[cluster_center], out=self._diff)
        torch.linalg.vector_norm(self._diff, ord=2, dim=1, keepdim=True, out=self._dist)
        if self.min_distances is None:
            self.min_distances = self._dist.clone()
        else:
            torch.minimum(self.min_distances, self._dist, out=self.min_distances)


def _cheapest_backbone() -> dict[str, object]:
    return {"backbone": "resnet18", "layers": ["layer1"], "pre_trained": False}


def patchcore_model(num_neighbors: int, image_size: tuple[int, int], sigma: int) -> PatchcoreModel:
    """anomalib's PatchcoreModel reading cached features: 3x3 average pooling of the patches,
    nearest-neighbour distance to the bank, re-weighted image score over `num_neighbors`."""
    model = PatchcoreModel(num_neighbors=num_neighbors, **_cheapest_backbone())  # type: ignore[arg-type]
    model.feature_extractor = CachedFeatures()
    model.layers = [CACHED]
    model.anomaly_map_generator = PatchcoreMapAtImageSize(image_size, sigma)
    return model


def padim_model(channels: int, n_features: int, image_size: tuple[int, int], sigma: int,
                generator: torch.Generator) -> PadimModel:
    """anomalib's PadimModel reading cached features; `n_features` channels chosen at random once
    (PaDiM's random dimensionality reduction), drawn from `generator` so a seed fixes them."""
    if not 0 < n_features <= channels:
        raise ConfigError(f"padim.n_features must lie in [1, {channels}] (the feature channels), got {n_features}")
    model = PadimModel(n_features=1, **_cheapest_backbone())  # type: ignore[arg-type]
    model.feature_extractor = CachedFeatures()
    model.layers = [CACHED]
    model.n_features_original, model.n_features = channels, n_features
    model.idx = torch.randperm(channels, generator=generator)[:n_features]
    model.anomaly_map_generator = PadimMapAtImageSize(image_size, sigma)
    return model


def draem_model(reconstructive_width: int, discriminative_width: int) -> DraemModel:
    """anomalib's DraemModel with its two sub-networks at the given base widths (DRAEM: 128, 64)."""
    model = DraemModel()
    model.reconstructive_subnetwork = ReconstructiveSubNetwork(base_width=reconstructive_width)
    model.discriminative_subnetwork = DiscriminativeSubNetwork(in_channels=6, out_channels=2,
                                                               base_width=discriminative_width)
    return model
