"""What every reader returns: file lists per object, nothing decoded yet.

Readers only list files and check the layout; pixels are decoded by `iufbench.data.images`
so that every dataset reaches the model the same way (RGB, protocol size, binary masks).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class TestImage:
    """One test image. `mask` is None for good images and for datasets without masks."""

    __test__ = False  # not a pytest test class, despite its name

    path: Path
    label: int  # 0 = good, 1 = defective
    defect: str  # defect type folder name, "good" for normal images
    mask: Path | None = None


@dataclass(frozen=True)
class ObjectData:
    """One object (product category): normal training images and labelled test images.

    `has_masks` is False when the defective test images come without masks: the object's
    pixel metrics are then "not available", never 0 or 1.
    """

    name: str
    root: Path
    train: tuple[Path, ...]
    test: tuple[TestImage, ...]
    has_masks: bool = True
    meta: dict = field(default_factory=dict, compare=False)
