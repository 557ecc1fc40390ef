"""Dataset layouts by name: `DATASETS.get("mvtec").read(root, objects)`.

Readers only list files and check the layout (no pixels are decoded), so listing a whole
dataset is fast and layout mistakes surface before any training starts.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from iufbench.data import deeppcb, elpv, mvtec, mvtec3d, visa
from iufbench.data.types import ObjectData
from iufbench.registry import Registry


@dataclass(frozen=True)
class DatasetReader:
    """One layout: `read(root, objects=None)` -> ObjectData per object, `list_objects(root)`.
    `default_root` finds the data itself (an installed package), so a protocol may leave the root out."""

    read: Callable[..., dict[str, ObjectData]]
    list_objects: Callable[[Path], list[str]]
    default_root: Callable[[], Path] | None = None


DATASETS: Registry[DatasetReader] = Registry("dataset")

DATASETS.register("mvtec", help="MVTec-AD layout (also VisA converted to it); masks required")(
    DatasetReader(mvtec.read_mvtec, mvtec.list_objects)
)
DATASETS.register("visa", help="official VisA layout, split from split_csv/1cls.csv")(
    DatasetReader(visa.read_visa, visa.list_objects)
)
DATASETS.register("mvtec3d", help="MVTec 3D-AD, RGB images only")(
    DatasetReader(mvtec3d.read_mvtec3d, mvtec3d.list_objects)
)
DATASETS.register("folder", help="any folder in MVTec-AD layout; masks optional per object")(
    DatasetReader(mvtec.read_folder, mvtec.list_objects)
)
DATASETS.register("deeppcb", help="DeepPCB converted by `iufbench data prepare deeppcb` (MVTec layout, box masks)")(
    DatasetReader(deeppcb.read_deeppcb, deeppcb.list_objects)
)
DATASETS.register("elpv", help="ELPV solar cells (pip package elpv-dataset), mono/poly; no masks; no root needed")(
    DatasetReader(elpv.read_elpv, elpv.list_objects, elpv.package_root)
)
