"""One sample from its key: the catalogue of categories and `render_sample`.

Why here: this is where a category is tied to its renderer and defect types, and where the
random streams are derived from (seed, category, folder, index), which is what makes every
sample reproducible on its own.
"""
from __future__ import annotations

import zlib

import numpy as np

from iufbench.data.synth.camera import photograph
from iufbench.data.synth.defects import DEFECTS
from iufbench.data.synth.geometry import Array
from iufbench.data.synth.objects import (
    render_bottle, render_cable, render_capsule, render_metal_nut, render_pcb, render_screw,
)
from iufbench.data.synth.scene import Renderer
from iufbench.data.synth.textures import render_fabric, render_metal_plate, render_tile, render_wood

# Category -> (renderer, defect types). Textures get surface defects; objects also lose
# pieces and get bent, as in MVTec-AD.
CATALOGUE: dict[str, tuple[Renderer, tuple[str, ...]]] = {
    "fabric": (render_fabric, ("hole", "stain", "color", "deform")),
    "wood": (render_wood, ("scratch", "hole", "stain", "color")),
    "metal_plate": (render_metal_plate, ("scratch", "hole", "stain", "deform")),
    "tile": (render_tile, ("scratch", "hole", "stain", "color")),
    "screw": (render_screw, ("scratch", "missing", "deform", "stain")),
    "metal_nut": (render_metal_nut, ("scratch", "missing", "color", "deform")),
    "bottle": (render_bottle, ("missing", "stain", "scratch", "color")),
    "capsule": (render_capsule, ("scratch", "missing", "deform", "stain")),
    "pcb": (render_pcb, ("missing", "scratch", "stain", "hole")),
    "cable": (render_cable, ("missing", "color", "deform", "scratch")),
}
CATEGORIES: tuple[str, ...] = tuple(CATALOGUE)


def _key(name: str) -> int:
    """A stable integer for a name (Python's hash() is salted per process)."""
    return zlib.crc32(name.encode("utf-8"))


def render_sample(
    category: str, size: int, seed: int, folder: str, index: int, defect: str | None = None
) -> tuple[Array, Array]:
    """One image (uint8 HxWx3) and its defect mask (bool HxW), a pure function of the key.

    `folder` ("train/good", "test/good", "test/scratch", ...) and `index` name the sample;
    with `defect=None` the same key gives the sample's normal image, with the same pose,
    lighting and noise, so the two differ only where the mask says.
    """
    renderer, _ = CATALOGUE[category]
    key = [seed, _key(category), _key(folder), index]
    scene = renderer(np.random.default_rng([seed, _key(category)]), np.random.default_rng(key + [0]), size)
    image, mask = scene.image, np.zeros((size, size), dtype=bool)
    if defect is not None:
        rng = np.random.default_rng(key + [1])
        for _ in range(20):  # redraw the rare defect that lands where it changes nothing
            image, mask = DEFECTS[defect](scene, rng, size)
            if mask.sum() >= max(4, size * size // 1000):
                break
    return photograph(image, np.random.default_rng(key + [2]), size), mask
