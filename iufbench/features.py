"""UniAD's input: a frozen backbone's multi-level features, resized to one stride and concatenated.

The backbone is frozen and no image augmentation is used, so every image's features are computed
once per run (`FeatureBank`) and every epoch of every method trains from that cache.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from iufbench.backbones import create_backbone


@dataclass(frozen=True)
class BackboneSpec:
    """Which backbone, which weights, which stages, and the common output stride."""

    name: str = "tf_efficientnet_lite0"
    weights: str = "pypi"
    out_indices: tuple[int, ...] = (0, 1, 2, 3)
    stride: int = 16
    batch_size: int = 16


class FeatureExtractor(nn.Module):
    """Images (uint8 NHWC) -> features [N, C, H/stride, W/stride], C = sum of stage channels.

    Each stage is resized bilinearly with align_corners=True to the output stride, as the
    reference MFCN neck does (no antialiasing), then all stages are concatenated.
    """

    def __init__(self, spec: BackboneSpec) -> None:
        super().__init__()
        self.spec = spec
        self.backbone = create_backbone(spec.name, spec.weights, spec.out_indices)
        cfg = self.backbone.pretrained_cfg
        self.register_buffer("mean", torch.tensor(cfg["mean"]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(cfg["std"]).view(1, 3, 1, 1))
        self.channels = sum(self.backbone.feature_info.channels())

    def train(self, mode: bool = True) -> "FeatureExtractor":
        """The backbone stays in eval mode: it is frozen, BN statistics included."""
        super().train(mode)
        self.backbone.eval()
        return self

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).float().div_(255.0)
        x = (x - self.mean) / self.std
        size = (x.shape[-2] // self.spec.stride, x.shape[-1] // self.spec.stride)
        levels = [
            F.interpolate(f, size=size, mode="bilinear", align_corners=True) for f in self.backbone(x)
        ]
        return torch.cat(levels, dim=1)

    def output_shape(self, image_size: tuple[int, int]) -> tuple[int, int, int]:
        """[C, H, W] of one image's features, without running the backbone."""
        return self.channels, image_size[0] // self.spec.stride, image_size[1] // self.spec.stride

    def batch_size(self, device: torch.device) -> int:
        """Images per forward: the spec's on the CPU, four times that on a GPU (wide batches)."""
        return self.spec.batch_size if device.type == "cpu" else 4 * self.spec.batch_size

    def extract(self, images: np.ndarray, device: torch.device) -> torch.Tensor:
        """Batched extraction of a uint8 NHWC array; returns float32 features on the CPU."""
        self.to(device)
        step = self.batch_size(device)
        out = []
        for start in range(0, len(images), step):
            batch = torch.from_numpy(images[start : start + step]).to(device)
            out.append(self(batch).float().cpu())
        return torch.cat(out) if out else torch.empty(0, self.channels, 0, 0)
