"""Deterministic synthetic defect images in the MVTec-AD folder layout.

Why: the built-in `demo` protocol must run anywhere, on CPU, without MVTec-AD. The images are
small but are rendered, not painted: woven threads, wood grain, threaded screws, machined
nuts... so that frozen ImageNet features see real structure, and so that a feature
reconstruction model neither scores 100% everywhere nor keeps old objects for free.

Every sample is a pure function of (seed, category, folder, index): renderers draw from
`np.random.default_rng` streams derived from that key, never from global state, so adding
categories or images does not change the others and a spec always gives the same bytes.
A sample is rendered in three steps: the category's scene (object, background, coverage),
an optional defect that changes the scene and returns its mask, then the camera (lighting,
white balance, sensor noise). The same key without the defect gives the same normal image.

Layout written by `generate` (what `iufbench.data` readers of MVTec-AD expect)::

    <out>/synth.json                              manifest: generator version + spec
    <out>/<category>/train/good/000.png
    <out>/<category>/test/good/000.png
    <out>/<category>/test/<defect>/000.png
    <out>/<category>/ground_truth/<defect>/000_mask.png   (255 defect, 0 elsewhere)
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import multiprocessing
import os
import shutil
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage import color as skcolor

from iufbench.errors import ConfigError, DataError

# Bump whenever a change alters any pixel: the cache key of `ensure` includes it.
GENERATOR_VERSION = 1
MANIFEST = "synth.json"

Array = np.ndarray


@dataclass
class Scene:
    """One rendered normal sample before the camera.

    `background` is what shows where the object is cut away or pierced; `support` (0..1) is
    the object's coverage, so defects land on the object and not on the empty table.
    """

    image: Array  # HxWx3 float, 0..1
    background: Array  # HxWx3 float, 0..1
    support: Array  # HxW float, 0..1; all ones for textures


# --------------------------------------------------------------------------- geometry helpers
# Shapes are signed distance functions on coordinates where the image spans [-1, 1], so a
# renderer is resolution independent and anti-aliased edges come for free from `_fill`.


def _grid(size: int) -> tuple[Array, Array]:
    """Pixel-centre coordinates (x to the right, y down), both HxW, spanning [-1, 1]."""
    c = (np.arange(size) + 0.5) / size * 2.0 - 1.0
    x, y = np.meshgrid(c, c)
    return x, y


def _pose(x: Array, y: Array, angle: float, tx: float, ty: float, scale: float = 1.0) -> tuple[Array, Array]:
    """Image coordinates -> object coordinates of an object rotated, moved and scaled."""
    ca, sa = np.cos(angle), np.sin(angle)
    dx, dy = x - tx, y - ty
    return (ca * dx + sa * dy) / scale, (-sa * dx + ca * dy) / scale


def _place(
    x: Array, y: Array, angle: float, rng: np.random.Generator, shift: float, scale: float
) -> tuple[Array, Array]:
    """Object coordinates of a sample at `angle`, moved up to `shift`, scaled by 1 +- `scale`."""
    tx, ty, zoom = rng.uniform(-shift, shift), rng.uniform(-shift, shift), rng.uniform(1 - scale, 1 + scale)
    return _pose(x, y, angle, tx, ty, zoom)


def _fill(sdf: Array, size: int) -> Array:
    """Coverage (0..1) of a shape from its signed distance: a one-pixel anti-aliased edge."""
    return np.clip(0.5 - sdf * (size / 2.0), 0.0, 1.0)


def _box(u: Array, v: Array, hw: float, hh: float, cu: float = 0.0, cv: float = 0.0, r: float = 0.0) -> Array:
    """Signed distance to an axis-aligned box (half sizes hw, hh) with corner radius r."""
    qu = np.abs(u - cu) - (hw - r)
    qv = np.abs(v - cv) - (hh - r)
    outside = np.hypot(np.maximum(qu, 0.0), np.maximum(qv, 0.0))
    return outside + np.minimum(np.maximum(qu, qv), 0.0) - r


def _circle(u: Array, v: Array, r: float, cu: float = 0.0, cv: float = 0.0) -> Array:
    return np.hypot(u - cu, v - cv) - r


def _segment(u: Array, v: Array, a: tuple[float, float], b: tuple[float, float], r: float) -> Array:
    """Signed distance to a capsule (a thick line segment from a to b, radius r)."""
    pu, pv = u - a[0], v - a[1]
    du, dv = b[0] - a[0], b[1] - a[1]
    t = np.clip((pu * du + pv * dv) / max(du * du + dv * dv, 1e-12), 0.0, 1.0)
    return np.hypot(pu - t * du, pv - t * dv) - r


def _hexagon(u: Array, v: Array, r: float) -> Array:
    """Signed distance to a regular hexagon with inradius r (flat sides top and bottom)."""
    ku, kv, kz = -0.866025404, 0.5, 0.577350269
    pu, pv = np.abs(u), np.abs(v)
    d = 2.0 * np.minimum(ku * pu + kv * pv, 0.0)
    pu, pv = pu - d * ku, pv - d * kv
    pu = pu - np.clip(pu, -kz * r, kz * r)
    pv = pv - r
    return np.hypot(pu, pv) * np.sign(pv)


def _noise(
    rng: np.random.Generator, size: int, scale: float, stretch: tuple[float, float] = (1.0, 1.0)
) -> Array:
    """Smooth zero-mean, unit-std noise; `scale` is the blur as a fraction of the image width.

    `stretch` = (along y, along x) multiplies the blur per axis, for grain and brush marks.
    """
    sigma = (max(scale * size * stretch[0], 0.4), max(scale * size * stretch[1], 0.4))
    n = ndimage.gaussian_filter(rng.standard_normal((size, size)), sigma, mode="wrap")
    return (n - n.mean()) / (n.std() + 1e-8)


def _over(dst: Array, rgb: Array | tuple[float, float, float], alpha: Array) -> Array:
    """Paint `rgb` (HxWx3 or one colour) over `dst` with coverage `alpha` (HxW)."""
    a = alpha[..., None]
    return dst * (1.0 - a) + np.asarray(rgb, dtype=float) * a


def _tint(rng: np.random.Generator, rgb: tuple[float, float, float], amount: float) -> Array:
    """A colour varied a little per sample (batch-to-batch material differences).

    Mostly brightness: a per-channel change of the same size would turn grey steel pink.
    """
    chroma = 1.0 + rng.normal(0.0, amount / 4, 3)
    return np.clip(np.asarray(rgb) * (1.0 + rng.normal(0.0, amount)) * chroma, 0.0, 1.0)


def _smoothstep(e0: float, e1: float, x: Array) -> Array:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _table(rng: np.random.Generator, size: int, rgb: tuple[float, float, float], texture: float) -> Array:
    """A plain inspection-table background with a faint surface texture."""
    n = 0.6 * _noise(rng, size, 0.004) + 0.4 * _noise(rng, size, 0.05)
    return np.asarray(rgb)[None, None, :] * (1.0 + texture * n)[..., None]


def _drop_shadow(support: Array, size: int, shift: tuple[float, float], strength: float) -> Array:
    """Soft shadow factor (HxW, <= 1) cast by an object onto the table."""
    px = (shift[1] * size / 2.0, shift[0] * size / 2.0)
    shadow = ndimage.gaussian_filter(ndimage.shift(support, px, order=1), size * 0.02)
    return 1.0 - strength * shadow


# --------------------------------------------------------------------------- textures


def _render_fabric(design: np.random.Generator, rng: np.random.Generator, size: int) -> Scene:
    """Denim-like 2/1 twill: blue warp over pale weft, rounded threads, fibre fuzz."""
    x, y = _grid(size)
    period = design.uniform(0.085, 0.095) * rng.uniform(0.97, 1.03)
    u, v = _pose(x, y, rng.normal(0.0, 0.04), rng.uniform(-1, 1), rng.uniform(-1, 1))
    fu, fv = u / period, v / period
    cu, cv = np.floor(fu), np.floor(fv)
    ru, rv = fu - cu, fv - cv
    warp_top = np.mod(cu - cv, 3) != 0  # twill: the warp floats over two wefts, shifting by one
    across_warp, across_weft = np.sin(np.pi * ru) ** 0.5, np.sin(np.pi * rv) ** 0.5
    fibres_v, fibres_h = _noise(rng, size, 0.003, (6.0, 1.0)), _noise(rng, size, 0.003, (1.0, 6.0))
    shade = np.where(
        warp_top,
        across_warp * (0.8 + 0.2 * np.sin(np.pi * rv)) * (1.0 + 0.12 * fibres_v),
        across_weft * (0.8 + 0.2 * np.sin(np.pi * ru)) * (1.0 + 0.12 * fibres_h),
    )
    # Threads are not identical: each one gets its own thickness/brightness.
    thread = rng.normal(0.0, 0.07, 64)
    var = np.where(warp_top, thread[cu.astype(int) % 64], thread[32 + cv.astype(int) % 32])
    warp_rgb = _tint(rng, (0.17, 0.27, 0.50), 0.04)
    weft_rgb = _tint(rng, (0.40, 0.44, 0.52), 0.03)
    base = np.where(warp_top[..., None], warp_rgb, weft_rgb)
    fuzz = 0.04 * _noise(rng, size, 0.004) + 0.04 * _noise(rng, size, 0.08)
    image = base * (0.3 + 0.7 * shade * (1.0 + var) + fuzz)[..., None]
    background = _table(rng, size, (0.06, 0.06, 0.07), 0.3)
    return Scene(image, background, np.ones((size, size)))


def _render_wood(design: np.random.Generator, rng: np.random.Generator, size: int) -> Scene:
    """Flat-sawn wood: wavy growth rings across the board, fine fibres and pores along it."""
    x, y = _grid(size)
    u, v = _pose(x, y, rng.normal(0.0, 0.05), rng.uniform(-0.5, 0.5), 0.0)
    rings = design.uniform(3.5, 4.5) * rng.uniform(0.9, 1.1)
    bend = rng.uniform(-0.6, 0.6) * v**2 + rng.uniform(0.0, 1.0)
    phase = (u + bend * 0.3) * rings + 0.45 * _noise(rng, size, 0.08, (4.0, 1.0))
    t = np.mod(phase, 1.0)
    late = _smoothstep(0.55, 0.8, t) * (1.0 - _smoothstep(0.9, 1.0, t))  # dark latewood band
    late = late + 0.25 * np.clip(np.sin(2 * np.pi * 3.0 * phase) - 0.6, 0.0, None)  # fine rings
    fibres = 0.5 * _noise(rng, size, 0.003, (12.0, 1.0)) + 0.5 * _noise(rng, size, 0.01, (8.0, 1.0))
    pores = np.clip(_noise(rng, size, 0.004, (3.0, 1.0)) - 2.2, 0.0, None)
    light = _tint(rng, (0.80, 0.60, 0.38), 0.04)
    dark = _tint(rng, (0.50, 0.31, 0.17), 0.05)
    k = np.clip(0.85 * late + 0.08 * fibres, 0.0, 1.0)[..., None]
    image = (light * (1.0 - k) + dark * k) * (1.0 - 0.25 * pores)[..., None]
    background = _table(rng, size, (0.10, 0.07, 0.05), 0.3)
    return Scene(image, background, np.ones((size, size)))


def _render_metal_plate(design: np.random.Generator, rng: np.random.Generator, size: int) -> Scene:
    """Brushed steel: long directional polishing streaks, a broad sheen band, tiny pits."""
    x, y = _grid(size)
    big = int(size * 1.5)
    streaks = 0.7 * _noise(rng, big, 0.002, (1.0, 120.0)) + 0.5 * _noise(rng, big, 0.006, (1.0, 40.0))
    streaks = ndimage.rotate(streaks, rng.normal(0.0, 2.0), reshape=False, order=1, mode="wrap")
    o = (big - size) // 2
    streaks = streaks[o : o + size, o : o + size]
    a = rng.uniform(-0.3, 0.3)
    across = (x * np.sin(a) + y * np.cos(a)) * rng.uniform(0.6, 1.0)
    sheen = 0.12 * np.cos(np.pi * across + rng.uniform(0, 2 * np.pi))
    pits = np.clip(_noise(rng, size, 0.002) - 2.8, 0.0, None)
    steel = _tint(rng, design.choice([(0.60, 0.62, 0.65), (0.62, 0.61, 0.60)]), 0.03)
    image = steel * (1.0 + 0.07 * streaks + sheen - 0.4 * pits)[..., None]
    background = _table(rng, size, (0.05, 0.05, 0.05), 0.2)
    return Scene(image, background, np.ones((size, size)))


def _render_tile(design: np.random.Generator, rng: np.random.Generator, size: int) -> Scene:
    """Terrazzo floor tiles in a grid: speckled stone, bevelled edges, grout lines."""
    x, y = _grid(size)
    period = design.uniform(0.6, 0.7)
    u, v = _pose(x, y, rng.normal(0.0, 0.02), rng.uniform(-1, 1), rng.uniform(-1, 1))
    cu, cv = np.floor(u / period), np.floor(v / period)
    ru, rv = u / period - cu, v / period - cv
    edge = np.minimum(np.minimum(ru, 1 - ru), np.minimum(rv, 1 - rv)) * period
    grout_w = 0.025
    grout = _fill(edge - grout_w, size)
    bevel = 0.82 + 0.18 * _smoothstep(grout_w, grout_w + 0.05, edge)
    lit = 1.0 + 0.08 * np.where(ru < 0.5, 1.0, -1.0) * (edge < grout_w + 0.05)  # lit side of the bevel
    per_tile = rng.normal(0.0, 0.04, (8, 8))[cu.astype(int) % 8, cv.astype(int) % 8]
    stone = _tint(rng, (0.72, 0.71, 0.68), 0.03)
    surface = stone * (1.0 + per_tile + 0.05 * _noise(rng, size, 0.03))[..., None]
    surface = _over(surface, (0.3, 0.29, 0.28), np.clip(4.0 * (_noise(rng, size, 0.012) - 1.6), 0.0, 0.9))
    surface = _over(surface, (0.93, 0.92, 0.88), np.clip(4.0 * (_noise(rng, size, 0.01) - 1.9), 0.0, 0.8))
    surface = surface * (bevel * lit)[..., None]
    image = _over(surface, _table(rng, size, (0.42, 0.40, 0.37), 0.15), grout)
    background = _table(rng, size, (0.08, 0.08, 0.08), 0.3)
    return Scene(image, background, np.ones((size, size)))


# --------------------------------------------------------------------------- objects


def _render_screw(design: np.random.Generator, rng: np.random.Generator, size: int) -> Scene:
    """A steel screw lying on a light table at any angle: head, threaded shaft, pointed tip."""
    x, y = _grid(size)
    u, v = _place(x, y, rng.uniform(0, 2 * np.pi), rng, shift=0.12, scale=0.03)
    r, pitch, thread_from = 0.085, design.uniform(0.04, 0.045), -0.22
    n_raw = np.clip(v / r, -1.0, 1.0)
    crest = np.sin(2 * np.pi * (u / pitch + 0.25 * n_raw))
    threaded = u > thread_from
    radius = np.where(u < 0.38, r, r * np.clip((0.58 - u) / 0.2, 0.0, 1.0))  # tapered tip
    radius = radius + 0.012 * threaded * np.clip(crest, 0.0, 1.0)  # thread crests on the outline
    shaft = np.maximum(np.abs(v) - radius, np.maximum(-0.44 - u, u - 0.58))
    head = _box(u, v, 0.09, 0.17, cu=-0.53, r=0.04)
    cover = _fill(np.minimum(shaft, head), size)
    in_head = u < -0.44
    n = np.clip(v / np.where(in_head, 0.17, np.maximum(radius, 1e-3)), -1.0, 1.0)
    shade = 0.22 + 0.55 * np.sqrt(1.0 - n**2) + 0.45 * np.exp(-(((n + 0.35) / 0.2) ** 2))
    shade = shade * np.where(threaded, 0.72 + 0.28 * (0.5 + 0.5 * crest), 1.0)
    shade = shade * (1.0 - 0.35 * np.exp(-(((u + 0.44) / 0.012) ** 2)))  # groove under the head
    steel = _tint(rng, (0.64, 0.64, 0.66), 0.03)
    obj = steel * (shade * (1.0 + 0.04 * _noise(rng, size, 0.004)))[..., None]
    table = _table(rng, size, (0.80, 0.80, 0.78), 0.05)
    shadowed = table * _drop_shadow(cover, size, (0.03, 0.04), 0.35)[..., None]
    return Scene(_over(shadowed, obj, cover), table, cover)


def _render_metal_nut(design: np.random.Generator, rng: np.random.Generator, size: int) -> Scene:
    """A zinc-plated hex nut seen from above on a dark table: turned face, chamfer, thread."""
    x, y = _grid(size)
    u, v = _place(x, y, rng.uniform(0, np.pi / 3), rng, shift=0.06, scale=0.03)
    r, theta = np.hypot(u, v), np.arctan2(v, u)
    outer = np.maximum(_hexagon(u, v, 0.6), r - 0.67)  # corners chamfered off
    hole_r = design.uniform(0.26, 0.28)
    cover = _fill(np.maximum(outer, hole_r - r), size)
    light = rng.normal(-2.2, 0.1)  # light from the upper left, fixed rig with a little drift
    turned = 0.04 * np.sin(r * 60.0 + 0.8 * _noise(rng, size, 0.02)) + 0.04 * _noise(rng, size, 0.004)
    face = 0.78 + turned
    chamfer = 0.55 + 0.35 * np.cos(theta - light)
    thread = 0.35 + 0.12 * np.sin(r * 110.0) - 0.2 * np.cos(theta - light)
    shade = np.where(r < 0.55, face, chamfer)
    shade = np.where(r < hole_r + 0.06, thread, shade)
    zinc = _tint(rng, (0.74, 0.73, 0.64), 0.03)
    obj = zinc * shade[..., None]
    table = _table(rng, size, (0.07, 0.07, 0.09), 0.2)
    shadowed = table * _drop_shadow(cover, size, (0.03, 0.03), 0.5)[..., None]
    return Scene(_over(shadowed, obj, cover), table, cover)


def _render_bottle(design: np.random.Generator, rng: np.random.Generator, size: int) -> Scene:
    """A brown glass bottle seen from above: shoulder rings, glossy lip, dark opening."""
    x, y = _grid(size)
    u, v = _pose(x, y, 0.0, rng.uniform(-0.04, 0.04), rng.uniform(-0.04, 0.04), rng.uniform(0.98, 1.02))
    r, theta = np.hypot(u, v), np.arctan2(v, u)
    light = design.uniform(-np.pi, np.pi) + rng.normal(0.0, 0.15)
    glint = np.exp(-(np.angle(np.exp(1j * (theta - light))) / 0.5) ** 2)
    rim = _smoothstep(0.8, 0.87, r) * (1 - _smoothstep(0.87, 0.9, r))
    shoulder = 0.35 + 0.12 * np.sin(r * 70.0) + 0.25 * rim
    lip = 0.55 + 0.25 * np.sin(r * 45.0) + 0.5 * glint
    inner = 0.25 + 0.08 * np.sin(r * 90.0) + 0.2 * glint
    opening = 0.05 + 0.07 * np.exp(-(((u - 0.08) ** 2 + (v + 0.05) ** 2) / 0.03))
    shade = np.select([r < 0.4, r < 0.52, r < 0.7], [opening, inner, lip], shoulder)
    band = np.select([r < 0.52, r < 0.7], [0, 1], 2)
    inner_rgb, lip_rgb = _tint(rng, (0.45, 0.55, 0.5), 0.03), _tint(rng, (0.85, 0.62, 0.4), 0.03)
    glass = np.stack([inner_rgb, lip_rgb, _tint(rng, (0.55, 0.38, 0.24), 0.04)])[band]
    obj = glass * (shade * (1.0 + 0.05 * _noise(rng, size, 0.01)))[..., None]
    cover = _fill(r - 0.9, size)
    table = _table(rng, size, (0.84, 0.84, 0.84), 0.03)
    return Scene(_over(table, obj, cover), table, cover)


def _render_capsule(design: np.random.Generator, rng: np.random.Generator, size: int) -> Scene:
    """A two-tone gelatin capsule (black cap, orange body) with a printed '100'."""
    x, y = _grid(size)
    u, v = _place(x, y, rng.normal(0.0, 0.04), rng, shift=0.04, scale=0.02)
    radius, half = 0.24, 0.5
    axis_d = np.hypot(u - np.clip(u, -half, half), v)
    cover = _fill(axis_d - radius, size)
    n = np.clip(axis_d / radius, 0.0, 1.0)
    highlight = np.exp(-(((v + 0.1) / 0.035) ** 2)) * (1.0 - _smoothstep(half - 0.15, half + 0.05, np.abs(u)))
    shade = 0.45 + 0.55 * np.sqrt(1.0 - n**2) + 0.35 * highlight
    joint = design.uniform(-0.08, -0.02)
    shade = shade * (1.0 - 0.3 * np.exp(-(((u - joint) / 0.01) ** 2)))
    cap_rgb, body_rgb = _tint(rng, (0.09, 0.08, 0.08), 0.05), _tint(rng, (0.80, 0.38, 0.22), 0.03)
    obj = np.where((u < joint)[..., None], cap_rgb, body_rgb) * shade[..., None]
    ink = np.minimum.reduce([
        _box(u, v, 0.012, 0.07, cu=0.14),
        np.abs(_box(u, v, 0.035, 0.065, cu=0.23, r=0.03)) - 0.012,
        np.abs(_box(u, v, 0.035, 0.065, cu=0.33, r=0.03)) - 0.012,
    ])
    obj = _over(obj, (0.92, 0.9, 0.86), 0.9 * _fill(ink, size))
    table = _table(rng, size, (0.88, 0.88, 0.86), 0.03)
    shadowed = table * _drop_shadow(cover, size, (0.02, 0.05), 0.3)[..., None]
    return Scene(_over(shadowed, obj, cover), table, cover)


def _pcb_layout(design: np.random.Generator) -> dict[str, list]:
    """The board design, fixed per (seed, category): every sample is the same product."""
    grid = np.linspace(-0.75, 0.75, 16)
    traces = []
    for _ in range(12):
        p = (design.choice(grid), design.choice(grid))
        path = [p]
        for leg in range(design.integers(2, 4)):
            p = (design.choice(grid), p[1]) if leg % 2 == 0 else (p[0], design.choice(grid))
            path.append(p)
        traces.append(path)
    parts = [(design.choice(grid), design.choice(grid), bool(design.integers(2))) for _ in range(5)]
    return {"traces": traces, "parts": parts, "chip": list(design.uniform(-0.3, 0.3, 2))}


def _render_pcb(design: np.random.Generator, rng: np.random.Generator, size: int) -> Scene:
    """A green circuit board: copper traces under solder mask, gold pads, an IC, SMD parts."""
    x, y = _grid(size)
    u, v = _pose(x, y, rng.normal(0.0, 0.015), rng.uniform(-0.03, 0.03), rng.uniform(-0.03, 0.03))
    layout = _pcb_layout(design)
    board = _fill(_box(u, v, 0.95, 0.95, r=0.06), size)
    mask_rgb = _tint(rng, (0.10, 0.36, 0.17), 0.04)
    image = mask_rgb * (1.0 + 0.06 * _noise(rng, size, 0.01))[..., None]
    segs = [(a, b) for path in layout["traces"] for a, b in zip(path, path[1:])]
    trace = np.minimum.reduce([_segment(u, v, a, b, 0.018) for a, b in segs])
    image = _over(image, mask_rgb * 1.6 + 0.05, _fill(trace, size))
    ends = [path[0] for path in layout["traces"]] + [path[-1] for path in layout["traces"]]
    pads = np.minimum.reduce([_circle(u, v, 0.04, *p) for p in ends])
    drills = np.minimum.reduce([_circle(u, v, 0.015, *p) for p in ends])
    image = _over(image, _tint(rng, (0.85, 0.68, 0.32), 0.03), _fill(pads, size))
    image = _over(image, (0.12, 0.1, 0.08), _fill(drills, size))
    cu, cv = layout["chip"]
    legs = [(cu + du, cv + side * 0.19) for du in np.linspace(-0.2, 0.2, 7) for side in (-1, 1)]
    pins = np.minimum.reduce([_box(u, v, 0.012, 0.03, pu, pv) for pu, pv in legs])
    image = _over(image, (0.78, 0.78, 0.76), _fill(pins, size))
    silkscreen = np.abs(_box(u, v, 0.3, 0.26, cu, cv)) - 0.008
    image = _over(image, (0.92, 0.92, 0.9), _fill(silkscreen, size))
    chip = _box(u, v, 0.25, 0.16, cu, cv, r=0.01)
    epoxy = np.asarray((0.09, 0.09, 0.1)) * (1.0 + 0.1 * _noise(rng, size, 0.005))[..., None]
    image = _over(image, epoxy, _fill(chip, size))
    image = _over(image, (0.3, 0.3, 0.3), _fill(_circle(u, v, 0.025, cu - 0.19, cv - 0.1), size))  # pin-1 dot
    for pu, pv, vertical in layout["parts"]:  # SMD resistors: silver terminals, brown body
        hw, hh = (0.035, 0.07) if vertical else (0.07, 0.035)
        bw, bh = (hw, 0.6 * hh) if vertical else (0.6 * hw, hh)
        image = _over(image, (0.8, 0.8, 0.78), _fill(_box(u, v, hw, hh, pu, pv, r=0.005), size))
        image = _over(image, (0.55, 0.42, 0.3), _fill(_box(u, v, bw, bh, pu, pv), size))
    holes = np.minimum.reduce([_circle(u, v, 0.05, sx * 0.84, sy * 0.84) for sx in (-1, 1) for sy in (-1, 1)])
    table = _table(rng, size, (0.2, 0.2, 0.21), 0.15)
    cover = board * (1.0 - _fill(holes, size))
    return Scene(_over(table, image, cover), table, cover)


def _render_cable(design: np.random.Generator, rng: np.random.Generator, size: int) -> Scene:
    """A cut three-core cable: black sheath, filler, coloured insulation, stranded copper."""
    x, y = _grid(size)
    u, v = _place(x, y, rng.normal(0.0, 0.12), rng, shift=0.04, scale=0.03)
    r = np.hypot(u, v)
    cover = _fill(r - 0.86, size)
    sheath = 1.0 + 0.25 * _noise(rng, size, 0.01) + 0.3 * _smoothstep(0.78, 0.85, r)
    image = _tint(rng, (0.1, 0.1, 0.11), 0.05) * sheath[..., None]
    filler = _tint(rng, (0.78, 0.76, 0.70), 0.03) * (1.0 + 0.08 * _noise(rng, size, 0.005))[..., None]
    image = _over(image, filler, _fill(r - 0.72, size))
    colours = [(0.30, 0.58, 0.25), (0.20, 0.32, 0.70), (0.50, 0.32, 0.17)]
    for k, rgb in enumerate(colours):
        a = -np.pi / 2 + k * 2 * np.pi / 3
        cu, cv = 0.34 * np.cos(a), 0.34 * np.sin(a)
        d = np.hypot(u - cu, v - cv)
        rounded = 0.8 + 0.25 * (1 - d / 0.3) + 0.05 * _noise(rng, size, 0.005)
        insulation = _tint(rng, rgb, 0.04) * rounded[..., None]
        image = _over(image, insulation, _fill(d - 0.3, size))
        image = _over(image, (0.35, 0.22, 0.12), _fill(d - 0.19, size))
        twist = design.uniform(0, 1)
        ring = np.arange(6) * np.pi / 3 + twist
        strands = [(0.0, 0.0)] + [(0.115 * np.cos(t), 0.115 * np.sin(t)) for t in ring]
        ds = np.minimum.reduce([np.hypot(u - cu - su, v - cv - sv) for su, sv in strands])
        copper = np.asarray((0.86, 0.55, 0.3)) * (0.55 + 0.5 * np.clip(1 - ds / 0.058, 0, 1))[..., None]
        image = _over(image, copper, _fill(ds - 0.058, size))
    table = _table(rng, size, (0.86, 0.86, 0.84), 0.03)
    return Scene(_over(table, image, cover), table, cover)


# --------------------------------------------------------------------------- defects
# A defect takes the normal scene and a generator and returns (image, mask). The mask marks
# the pixels the defect changed; it is clipped to the object so it never claims empty table.

# A renderer gets two generators: `design`, the same for every sample of a (seed, category),
# fixes the product (board layout, thread pitch); `rng`, per sample, draws pose and variation.
Renderer = Callable[[np.random.Generator, np.random.Generator, int], Scene]
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
    image = _over(scene.image, target, alpha * strength)
    return image, alpha > 0.0


def _hole(scene: Scene, rng: np.random.Generator, size: int) -> tuple[Array, Array]:
    """A hole through the material: the background shows, shadowed near the torn rim."""
    radius = _radius(rng, size, 0.006, 0.04)
    cover = _blob(rng, size, _anchor(scene, rng, margin=radius), radius) * scene.support
    depth = ndimage.distance_transform_edt(cover > 0.5)
    rim = 0.35 + 0.65 * np.clip((depth - 1.0) / 3.0, 0.0, 1.0)
    image = _over(scene.image, scene.background * 0.8 * rim[..., None], cover)
    return image, cover > 0.5


def _stain(scene: Scene, rng: np.random.Generator, size: int) -> tuple[Array, Array]:
    """A blotchy half-transparent patch (oil, rust, dirt, residue) that contrasts the surface."""
    radius = _radius(rng, size, 0.01, 0.08)
    shape = _blob(rng, size, _anchor(scene, rng, margin=radius / 2), radius) * scene.support
    density = np.clip(0.6 + 0.4 * _noise(rng, size, 0.03), 0.15, 1.0)
    alpha = shape * density * rng.uniform(0.35, 0.75)
    under = _luma(scene.image[shape > 0.5]).mean() if (shape > 0.5).any() else 0.5
    colours = np.array([(0.35, 0.22, 0.10), (0.08, 0.08, 0.07), (0.66, 0.36, 0.12), (0.92, 0.92, 0.86)])
    contrast = np.abs(_luma(colours) - under) > 0.25
    choices = colours[contrast] if contrast.any() else colours
    return _over(scene.image, choices[rng.integers(len(choices))], alpha), shape > 0.5


def _missing(scene: Scene, rng: np.random.Generator, size: int) -> tuple[Array, Array]:
    """A piece broken off the object's outline: the background replaces it."""
    radius = _radius(rng, size, 0.01, 0.06)
    cut = _blob(rng, size, _anchor(scene, rng, margin=0.0, edge=True), radius) * scene.support
    return _over(scene.image, scene.background, cut), cut > 0.5


def _color(scene: Scene, rng: np.random.Generator, size: int) -> tuple[Array, Array]:
    """A local hue shift and saturation boost (wrong paint, heat tint, discolouration)."""
    radius = _radius(rng, size, 0.01, 0.08)
    bright = _luma(scene.image) > 0.25  # on near-black surfaces a hue change is invisible
    region = _blob(rng, size, _anchor(scene, rng, margin=radius / 2, prefer=bright), radius) * scene.support
    hsv = skcolor.rgb2hsv(np.clip(scene.image, 0.0, 1.0))
    hsv[..., 0] = np.mod(hsv[..., 0] + rng.choice([-1.0, 1.0]) * rng.uniform(0.06, 0.25), 1.0)
    hsv[..., 1] = np.clip(hsv[..., 1] + rng.uniform(0.1, 0.35), 0.0, 1.0)
    return _over(scene.image, skcolor.hsv2rgb(hsv), region), region > 0.5


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

# Category -> (renderer, defect types). Textures get surface defects; objects also lose
# pieces and get bent, as in MVTec-AD.
CATALOGUE: dict[str, tuple[Renderer, tuple[str, ...]]] = {
    "fabric": (_render_fabric, ("hole", "stain", "color", "deform")),
    "wood": (_render_wood, ("scratch", "hole", "stain", "color")),
    "metal_plate": (_render_metal_plate, ("scratch", "hole", "stain", "deform")),
    "tile": (_render_tile, ("scratch", "hole", "stain", "color")),
    "screw": (_render_screw, ("scratch", "missing", "deform", "stain")),
    "metal_nut": (_render_metal_nut, ("scratch", "missing", "color", "deform")),
    "bottle": (_render_bottle, ("missing", "stain", "scratch", "color")),
    "capsule": (_render_capsule, ("scratch", "missing", "deform", "stain")),
    "pcb": (_render_pcb, ("missing", "scratch", "stain", "hole")),
    "cable": (_render_cable, ("missing", "color", "deform", "scratch")),
}
CATEGORIES: tuple[str, ...] = tuple(CATALOGUE)


# --------------------------------------------------------------------------- samples


def _camera(image: Array, rng: np.random.Generator, size: int) -> Array:
    """Lighting drift (brightness, gradient), white balance and sensor noise -> uint8 RGB."""
    x, y = _grid(size)
    a = rng.uniform(0, 2 * np.pi)
    gain = rng.uniform(0.93, 1.05) * (1.0 + rng.uniform(0.0, 0.08) * (x * np.cos(a) + y * np.sin(a)))
    image = image * gain[..., None] * (1.0 + rng.normal(0.0, 0.008, 3))
    image = image + rng.normal(0.0, rng.uniform(0.005, 0.015), image.shape)
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


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
    return _camera(image, np.random.default_rng(key + [2]), size), mask


# --------------------------------------------------------------------------- dataset


@dataclass(frozen=True)
class SynthSpec:
    """Everything that determines a synthetic dataset; equal specs give identical files."""

    categories: tuple[str, ...] = CATEGORIES
    image_size: int = 128  # square images, pixels
    n_train: int = 40  # normal training images per category
    n_test_good: int = 12
    n_test_defect: int = 12  # spread round-robin over the category's defect types
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "categories", tuple(self.categories))
        unknown = [c for c in self.categories if c not in CATALOGUE]
        if unknown:
            raise ConfigError(f"unknown synthetic categories {unknown}; valid: {', '.join(CATEGORIES)}")
        if not self.categories or len(set(self.categories)) != len(self.categories):
            raise ConfigError(f"synthetic categories must be distinct and not empty: {list(self.categories)}")
        if not 32 <= self.image_size <= 1024:
            raise ConfigError(f"synthetic image_size must be 32..1024 pixels, got {self.image_size}")
        if self.n_train < 1 or self.n_test_good < 0 or self.n_test_defect < 0:
            raise ConfigError("synthetic n_train must be >= 1 and n_test_good, n_test_defect >= 0")
        if self.seed < 0:
            raise ConfigError(f"synthetic seed must be >= 0, got {self.seed}")


def manifest(spec: SynthSpec) -> dict:
    """What `synth.json` holds: generator version, spec and defect types (JSON types only)."""
    return json.loads(json.dumps({
        "generator": "iufbench.data.synth",
        "version": GENERATOR_VERSION,
        "spec": asdict(spec),
        "defects": {c: CATALOGUE[c][1] for c in spec.categories},
    }))


def spec_hash(spec: SynthSpec) -> str:
    """Short content hash of the manifest: the cache folder name used by `ensure`."""
    blob = json.dumps(manifest(spec), sort_keys=True).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:12]


def _stems(n: int) -> list[str]:
    width = max(3, len(str(n - 1)))
    return [f"{i:0{width}d}" for i in range(n)]


def _save(path: Path, pixels: Array) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format="PNG")


def _write_category(root: Path, category: str, spec: SynthSpec) -> None:
    size, seed = spec.image_size, spec.seed
    for folder, n in (("train/good", spec.n_train), ("test/good", spec.n_test_good)):
        for i, stem in enumerate(_stems(n)):
            _save(root / folder / f"{stem}.png", render_sample(category, size, seed, folder, i)[0])
    kinds = CATALOGUE[category][1]
    per_kind = {k: len(range(j, spec.n_test_defect, len(kinds))) for j, k in enumerate(kinds)}
    for kind, n in per_kind.items():
        for i, stem in enumerate(_stems(n)):
            image, mask = render_sample(category, size, seed, f"test/{kind}", i, kind)
            _save(root / "test" / kind / f"{stem}.png", image)
            _save(root / "ground_truth" / kind / f"{stem}_mask.png", mask.astype(np.uint8) * 255)


# Below this many images a worker process (~1 s to spawn) costs more than it saves.
PARALLEL_MIN_IMAGES = 400


def _write_categories(root: Path, spec: SynthSpec) -> None:
    """Categories are independent (each sample is a pure function of its key), so large specs
    are written by one process per category, up to the CPU count: same bytes, less waiting."""
    images = len(spec.categories) * (spec.n_train + spec.n_test_good + spec.n_test_defect)
    workers = min(len(spec.categories), os.cpu_count() or 1)
    if workers < 2 or images < PARALLEL_MIN_IMAGES:
        for category in spec.categories:
            _write_category(root / category, category, spec)
        return
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        jobs = [pool.submit(_write_category, root / c, c, spec) for c in spec.categories]
        for job in jobs:
            job.result()  # re-raises a worker's error here


def _read_manifest(root: Path) -> dict | None:
    try:
        return json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def generate(out: Path, spec: SynthSpec) -> Path:
    """Write the dataset of `spec` to `out` (MVTec-AD layout + `synth.json`); returns `out`.

    Files are written to a sibling temporary folder that is renamed into place only when
    complete, so an interrupted run never leaves a folder that looks finished. An existing
    synthetic dataset at `out` is replaced; any other non-empty folder is refused.
    """
    out = Path(out)
    if out.exists() and not (out.is_dir() and (_read_manifest(out) is not None or not any(out.iterdir()))):
        raise DataError(f"{out} exists and is not a synthetic dataset (no {MANIFEST}); choose a new folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _write_categories(tmp, spec)
        (tmp / MANIFEST).write_text(json.dumps(manifest(spec), indent=2) + "\n", encoding="utf-8")
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return out


def ensure(spec: SynthSpec, cache_dir: Path) -> Path:
    """`cache_dir/<spec hash>`, generated unless a complete copy for this spec is already there.

    Runs started side by side on a fresh cache take turns on a lock file: the first generates,
    the others find its complete copy, and no run replaces a folder another is reading."""
    root = Path(cache_dir) / spec_hash(spec)
    if _read_manifest(root) == manifest(spec):
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.with_name(f".{root.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _read_manifest(root) != manifest(spec):  # still missing once we hold the lock
            shutil.rmtree(root, ignore_errors=True)  # ours (named by the hash) but stale or damaged
            generate(root, spec)
    return root
