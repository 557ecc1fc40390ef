"""The scene: what a renderer hands to the defects and the camera.

Why a module of its own: it is the interface between the category renderers, the defects and the
camera, so each of those can change without importing the others.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from iufbench.data.synth.geometry import Array


@dataclass
class Scene:
    """One rendered normal sample before the camera.

    `background` is what shows where the object is cut away or pierced; `support` (0..1) is
    the object's coverage, so defects land on the object and not on the empty table.
    """

    image: Array  # HxWx3 float, 0..1
    background: Array  # HxWx3 float, 0..1
    support: Array  # HxW float, 0..1; all ones for textures


# A renderer gets two generators: `design`, the same for every sample of a (seed, category),
# fixes the product (board layout, thread pitch); `rng`, per sample, draws pose and variation.
Renderer = Callable[[np.random.Generator, np.random.Generator, int], Scene]
