"""CutPaste's synthetic defects (Li et al., CVPR 2021), the positives CAD's CutPaste baseline learns
to tell from normal images.

- cut-paste: a rectangle of 2-15 % of the image (aspect ratio log-uniform in [0.3, 1/0.3]) is cut,
  colour-jittered and pasted back at another place of the same image;
- scar: a thin rectangle (2-16 x 10-25 px of a 256 px image, kept here as fractions of the side) is
  cut, colour-jittered, rotated by up to +-45 degrees and pasted through its rotated mask.

Images are float [3, H, W] in [0, 1]. Randomness comes from torch's global generator, which the
engine seeds per step. Rotation uses nearest-neighbour sampling, so every pasted pixel is a copy of
a source pixel (what the geometry tests check).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torchvision.transforms.v2 as T
import torchvision.transforms.v2.functional as TF


@dataclass(frozen=True)
class DefectSpec:
    """CutPaste's sampling ranges; sizes are fractions of the image (area) or of its side (scar)."""

    area: tuple[float, float] = (0.02, 0.15)
    aspect: float = 0.3
    scar_width: tuple[float, float] = (2 / 256, 16 / 256)
    scar_height: tuple[float, float] = (10 / 256, 25 / 256)
    scar_rotation: float = 45.0
    jitter: float = 0.1  # ColorJitter strength of the pasted patch (brightness, contrast, saturation, hue)


def _uniform(low: float, high: float) -> float:
    return low + (high - low) * torch.rand(()).item()


def _randint(high: int) -> int:
    """Uniform integer in [0, high]."""
    return int(torch.randint(0, high + 1, ()).item())


def cut_size(h: int, w: int, spec: DefectSpec) -> tuple[int, int]:
    """(height, width) of a cut-paste rectangle: area fraction uniform, aspect ratio log-uniform."""
    area = _uniform(*spec.area) * h * w
    aspect = math.exp(_uniform(math.log(spec.aspect), -math.log(spec.aspect)))
    cut_h = min(max(round(math.sqrt(area / aspect)), 1), h)
    cut_w = min(max(round(math.sqrt(area * aspect)), 1), w)
    return cut_h, cut_w


def scar_size(h: int, w: int, spec: DefectSpec) -> tuple[int, int]:
    """(height, width) of a scar before rotation, scaled from CutPaste's pixel ranges at 256 px."""
    return (min(max(round(_uniform(*spec.scar_height) * h), 1), h),
            min(max(round(_uniform(*spec.scar_width) * w), 1), w))


def _cut(image: torch.Tensor, size: tuple[int, int], jitter: T.Transform | None) -> torch.Tensor:
    top, left = _randint(image.shape[1] - size[0]), _randint(image.shape[2] - size[1])
    patch = image[:, top : top + size[0], left : left + size[1]]
    return jitter(patch) if jitter is not None else patch.clone()


def _paste(image: torch.Tensor, patch: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Paste `patch` where `mask` is set, at a random place where it fits whole."""
    ph, pw = patch.shape[1:]
    top, left = _randint(image.shape[1] - ph), _randint(image.shape[2] - pw)
    out = image.clone()
    region = out[:, top : top + ph, left : left + pw]
    region.copy_(torch.where(mask, patch, region))
    return out


def _jitter(spec: DefectSpec) -> T.Transform | None:
    j = spec.jitter
    return T.ColorJitter(brightness=j, contrast=j, saturation=j, hue=min(j, 0.5)) if j > 0 else None


def cut_paste(image: torch.Tensor, spec: DefectSpec) -> torch.Tensor:
    """CutPaste (normal): one rectangle of the image moved to another place of the same image."""
    patch = _cut(image, cut_size(*image.shape[1:], spec), _jitter(spec))
    return _paste(image, patch, torch.ones(1, *patch.shape[1:], dtype=torch.bool, device=image.device))


def scar(image: torch.Tensor, spec: DefectSpec) -> torch.Tensor:
    """CutPaste (scar): a thin rectangle, rotated, pasted through its rotated outline."""
    patch = _cut(image, scar_size(*image.shape[1:], spec), _jitter(spec))
    angle = _uniform(-spec.scar_rotation, spec.scar_rotation)
    mask = TF.rotate(torch.ones(1, *patch.shape[1:], dtype=torch.uint8, device=image.device), angle, expand=True).bool()
    patch = TF.rotate(patch, angle, expand=True)
    h, w = image.shape[1:]
    return _paste(image, patch[:, :h, :w], mask[:, :h, :w])


def synthetic_defects(images: torch.Tensor, spec: DefectSpec, scar_probability: float) -> torch.Tensor:
    """One defective copy of each image [N, 3, H, W]: a scar with `scar_probability`, else a cut-paste
    (0: CAD's configuration, cut-paste only; 0.5: CutPaste's binary "union" of the two)."""
    return torch.stack([scar(x, spec) if torch.rand(()).item() < scar_probability else cut_paste(x, spec)
                        for x in images])
