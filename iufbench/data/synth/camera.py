"""The camera: what happens to every rendered image, normal or defective, on its way to a PNG.

Why a module of its own: it is the one step shared by all categories after the scene and the
defect, and the one place to change the imaging conditions (lighting, white balance, noise).
"""
from __future__ import annotations

import numpy as np

from iufbench.data.synth.geometry import Array, pixel_grid


def photograph(image: Array, rng: np.random.Generator, size: int) -> Array:
    """Lighting drift (brightness, gradient), white balance and sensor noise -> uint8 RGB."""
    x, y = pixel_grid(size)
    a = rng.uniform(0, 2 * np.pi)
    gain = rng.uniform(0.93, 1.05) * (1.0 + rng.uniform(0.0, 0.08) * (x * np.cos(a) + y * np.sin(a)))
    image = image * gain[..., None] * (1.0 + rng.normal(0.0, 0.008, 3))
    image = image + rng.normal(0.0, rng.uniform(0.005, 0.015), image.shape)
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
