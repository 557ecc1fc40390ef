"""The six defect types a test image can carry (scratch, hole, stain, missing, color, deform).

A defect takes the normal scene and a generator and returns (image, mask). The mask marks the
pixels the defect changed; it is clipped to the object so it never claims empty table. Why a
module of its own: defects work on any `Scene`, whatever rendered it, and change independently
of the categories.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from scipy import ndimage
from skimage import color as skcolor

from iufbench.data.synth.geometry import Array, noise, over
from iufbench.data.synth.scene import Scene

Defect = Callable[[Scene, np.random.Generator, int], tuple[Array, Array]]


def _radius(rng: np.random.Generator, size: int, lo: float, hi: float) -> float:
    """Radius (px) of a defect covering lo..hi of the image, log-uniform: many subtle ones."""
    area = np.exp(rng.uniform(np.log(lo), np.log(hi))) * size * size
    return float(np.sqrt(area / np.pi))


def _anchor(
    scene: Scene, rng: np.random.Generator, margin: float, edge: bool = False, prefer: Array | None = None
) -> tuple[float, float]:
    """A defect centre (row, col): `margin` px inside the object, or on its outline if `edge`.

    The image border counts as outline, which keeps texture defects inside the frame.
    """
    solid = np.pad(scene.support > 0.5, 1)
    depth = ndimage.distance_transform_edt(solid)[1:-1, 1:-1]
    weight = (depth >= 1) & (depth < 2.5) if edge else depth >= min(margin, 0.7 * depth.max())
    if prefer is not None and (weight & prefer).any():
        weight = weight & prefer
    idx = rng.choice(weight.size, p=(weight / weight.sum()).ravel())
    row, col = divmod(int(idx), weight.shape[1])
    return row + rng.uniform(-0.5, 0.5), col + rng.uniform(-0.5, 0.5)


def _blob(rng: np.random.Generator, size: int, centre: tuple[float, float], radius: float) -> Array:
    """Coverage of an irregular, possibly elongated blob around `centre` (pixel units)."""
    rows, cols = np.mgrid[0:size, 0:size].astype(float)
    dy, dx = rows - centre[0], cols - centre[1]
    a, stretch = rng.uniform(0, np.pi), np.sqrt(rng.uniform(1.0, 2.0))
    p = (dx * np.cos(a) + dy * np.sin(a)) / stretch
    q = (-dx * np.sin(a) + dy * np.cos(a)) * stretch
    theta = np.arctan2(q, p)
    lobes = sum(  # a wobbly outline: a few random harmonics
        rng.uniform(0.0, 0.25) / k * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
        for k in range(2, 6)
    )
    return np.clip(radius * (1.0 + lobes) - np.hypot(p, q) + 0.5, 0.0, 1.0)


def _luma(rgb: Array) -> Array:
    return rgb @ np.array([0.299, 0.587, 0.114])


def _scratch(scene: Scene, rng: np.random.Generator, size: int) -> tuple[Array, Array]:
    """A thin curved line, brighter (bare metal) or darker (groove) than the surface."""
    length = size * rng.uniform(0.15, 0.4)
    centre = np.array(_anchor(scene, rng, margin=length / 4))
    a = rng.uniform(0, 2 * np.pi)
    along, across = np.array([np.sin(a), np.cos(a)]), np.array([np.cos(a), -np.sin(a)])
    p0, p2 = centre - along * length / 2, centre + along * length / 2
    p1 = centre + across * rng.uniform(-0.3, 0.3) * length
    t = np.linspace(0.0, 1.0, int(length * 3))[:, None]
    pts = np.rint((1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2).astype(int)
    pts = pts[((pts >= 0) & (pts < size)).all(axis=1)]
    line = np.zeros((size, size), dtype=bool)
    line[pts[:, 0], pts[:, 1]] = True
    width = max(rng.uniform(0.8, 2.2) * size / 128, 1.0)
    alpha = np.clip(width / 2 + 0.5 - ndimage.distance_transform_edt(~line), 0.0, 1.0) * (scene.support > 0.5)
    strength = rng.uniform(0.45, 0.85)
    target = np.full(3, 0.95) if rng.random() < 0.5 else scene.image * 0.2
    image = over(scene.image, target, alpha * strength)
    return image, alpha > 0.0


def _hole(scene: Scene, rng: np.random.Generator, size: int) -> tuple[Array, Array]:
    """A hole through the material: the background shows, shadowed near the torn rim."""
    radius = _radius(rng, size, 0.006, 0.04)
    cover = _blob(rng, size, _anchor(scene, rng, margin=radius), radius) * scene.support
    depth = ndimage.distance_transform_edt(cover > 0.5)
    rim = 0.35 + 0.65 * np.clip((depth - 1.0) / 3.0, 0.0, 1.0)
    image = over(scene.image, scene.background * 0.8 * rim[..., None], cover)
    return image, cover > 0.5


def _stain(scene: Scene, rng: np.random.Generator, size: int) -> tuple[Array, Array]:
    """A blotchy half-transparent patch (oil, rust, dirt, residue) that contrasts the surface."""
    radius = _radius(rng, size, 0.01, 0.08)
    shape = _blob(rng, size, _anchor(scene, rng, margin=radius / 2), radius) * scene.support
    density = np.clip(0.6 + 0.4 * noise(rng, size, 0.03), 0.15, 1.0)
    alpha = shape * density * rng.uniform(0.35, 0.75)
    under = _luma(scene.image[shape > 0.5]).mean() if (shape > 0.5).any() else 0.5
    colours = np.array([(0.35, 0.22, 0.10), (0.08, 0.08, 0.07), (0.66, 0.36, 0.12), (0.92, 0.92, 0.86)])
    contrast = np.abs(_luma(colours) - under) > 0.25
    choices = colours[contrast] if contrast.any() else colours
    return over(scene.image, choices[rng.integers(len(choices))], alpha), shape > 0.5


def _missing(scene: Scene, rng: np.random.Generator, size: int) -> tuple[Array, Array]:
    """A piece broken off the object's outline: the background replaces it."""
    radius = _radius(rng, size, 0.01, 0.06)
    cut = _blob(rng, size, _anchor(scene, rng, margin=0.0, edge=True), radius) * scene.support
    return over(scene.image, scene.background, cut), cut > 0.5


def _color(scene: Scene, rng: np.random.Generator, size: int) -> tuple[Array, Array]:
    """A local hue shift and saturation boost (wrong paint, heat tint, discolouration)."""
    radius = _radius(rng, size, 0.01, 0.08)
    bright = _luma(scene.image) > 0.25  # on near-black surfaces a hue change is invisible
    region = _blob(rng, size, _anchor(scene, rng, margin=radius / 2, prefer=bright), radius) * scene.support
    hsv = skcolor.rgb2hsv(np.clip(scene.image, 0.0, 1.0))
    hsv[..., 0] = np.mod(hsv[..., 0] + rng.choice([-1.0, 1.0]) * rng.uniform(0.06, 0.25), 1.0)
    hsv[..., 1] = np.clip(hsv[..., 1] + rng.uniform(0.1, 0.35), 0.0, 1.0)
    return over(scene.image, skcolor.hsv2rgb(hsv), region), region > 0.5


def _deform(scene: Scene, rng: np.random.Generator, size: int) -> tuple[Array, Array]:
    """A local warp (bent, dented, squeezed): pushes, bulges or twists a disc of the image.

    The displacement is a compact bump, zero outside the disc, so nothing else moves. The mask
    is the part of the disc moved by a visible amount next to pixels that really changed: a
    warp of a flat area does not claim pixels that look normal.
    """
    radius = _radius(rng, size, 0.015, 0.08) * 1.2
    is_object = scene.support.min() < 0.5
    cy, cx = _anchor(scene, rng, margin=radius / 3, edge=is_object and rng.random() < 0.7)
    rows, cols = np.mgrid[0:size, 0:size].astype(float)
    dy, dx = (rows - cy) / radius, (cols - cx) / radius
    bump = rng.uniform(0.25, 0.45) * radius * np.clip(1.0 - dy**2 - dx**2, 0.0, None) ** 2
    mode = rng.integers(3)
    if mode == 0:  # push sideways
        a = rng.uniform(0, 2 * np.pi)
        shift_y, shift_x = bump * np.sin(a), bump * np.cos(a)
    elif mode == 1:  # bulge out or pinch in
        sign = rng.choice([-1.0, 1.0])
        shift_y, shift_x = 2 * sign * bump * dy, 2 * sign * bump * dx
    else:  # twist
        shift_y, shift_x = 2 * bump * dx, -2 * bump * dy
    coords = [rows - shift_y, cols - shift_x]
    planes = scene.image.transpose(2, 0, 1)
    image = np.stack([ndimage.map_coordinates(p, coords, order=1, mode="nearest") for p in planes], axis=-1)
    changed = np.abs(image - scene.image).max(axis=-1) > 0.03
    near = ndimage.binary_fill_holes(ndimage.binary_dilation(changed, iterations=2))
    on_object = ndimage.binary_dilation(scene.support > 0.5, iterations=int(radius / 2) + 1)
    return image, (np.hypot(shift_y, shift_x) >= 0.3) & near & on_object


DEFECTS: dict[str, Defect] = {
    "scratch": _scratch,
    "hole": _hole,
    "stain": _stain,
    "missing": _missing,
    "color": _color,
    "deform": _deform,
}
