"""The drawing vocabulary every renderer and defect shares: coordinates, shapes, noise, paint.

Why a module of its own: a renderer changes when a product's look changes, these change only when
the way things are drawn changes, and a change here moves the pixels of every category (bump
`spec.GENERATOR_VERSION`). Shapes are signed distance functions on coordinates where the image
spans [-1, 1], so a renderer is resolution independent and anti-aliased edges come for free from
`fill`.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

Array = np.ndarray


def pixel_grid(size: int) -> tuple[Array, Array]:
    """Pixel-centre coordinates (x to the right, y down), both HxW, spanning [-1, 1]."""
    c = (np.arange(size) + 0.5) / size * 2.0 - 1.0
    x, y = np.meshgrid(c, c)
    return x, y


def pose(x: Array, y: Array, angle: float, tx: float, ty: float, scale: float = 1.0) -> tuple[Array, Array]:
    """Image coordinates -> object coordinates of an object rotated, moved and scaled."""
    ca, sa = np.cos(angle), np.sin(angle)
    dx, dy = x - tx, y - ty
    return (ca * dx + sa * dy) / scale, (-sa * dx + ca * dy) / scale


def place(
    x: Array, y: Array, angle: float, rng: np.random.Generator, shift: float, scale: float
) -> tuple[Array, Array]:
    """Object coordinates of a sample at `angle`, moved up to `shift`, scaled by 1 +- `scale`."""
    tx, ty, zoom = rng.uniform(-shift, shift), rng.uniform(-shift, shift), rng.uniform(1 - scale, 1 + scale)
    return pose(x, y, angle, tx, ty, zoom)


def fill(sdf: Array, size: int) -> Array:
    """Coverage (0..1) of a shape from its signed distance: a one-pixel anti-aliased edge."""
    return np.clip(0.5 - sdf * (size / 2.0), 0.0, 1.0)


def box(u: Array, v: Array, hw: float, hh: float, cu: float = 0.0, cv: float = 0.0, r: float = 0.0) -> Array:
    """Signed distance to an axis-aligned box (half sizes hw, hh) with corner radius r."""
    qu = np.abs(u - cu) - (hw - r)
    qv = np.abs(v - cv) - (hh - r)
    outside = np.hypot(np.maximum(qu, 0.0), np.maximum(qv, 0.0))
    return outside + np.minimum(np.maximum(qu, qv), 0.0) - r


def circle(u: Array, v: Array, r: float, cu: float = 0.0, cv: float = 0.0) -> Array:
    return np.hypot(u - cu, v - cv) - r


def segment(u: Array, v: Array, a: tuple[float, float], b: tuple[float, float], r: float) -> Array:
    """Signed distance to a capsule (a thick line segment from a to b, radius r)."""
    pu, pv = u - a[0], v - a[1]
    du, dv = b[0] - a[0], b[1] - a[1]
    t = np.clip((pu * du + pv * dv) / max(du * du + dv * dv, 1e-12), 0.0, 1.0)
    return np.hypot(pu - t * du, pv - t * dv) - r


def hexagon(u: Array, v: Array, r: float) -> Array:
    """Signed distance to a regular hexagon with inradius r (flat sides top and bottom)."""
    ku, kv, kz = -0.866025404, 0.5, 0.577350269
    pu, pv = np.abs(u), np.abs(v)
    d = 2.0 * np.minimum(ku * pu + kv * pv, 0.0)
    pu, pv = pu - d * ku, pv - d * kv
    pu = pu - np.clip(pu, -kz * r, kz * r)
    pv = pv - r
    return np.hypot(pu, pv) * np.sign(pv)


def noise(
    rng: np.random.Generator, size: int, scale: float, stretch: tuple[float, float] = (1.0, 1.0)
) -> Array:
    """Smooth zero-mean, unit-std noise; `scale` is the blur as a fraction of the image width.

    `stretch` = (along y, along x) multiplies the blur per axis, for grain and brush marks.
    """
    sigma = (max(scale * size * stretch[0], 0.4), max(scale * size * stretch[1], 0.4))
    n = ndimage.gaussian_filter(rng.standard_normal((size, size)), sigma, mode="wrap")
    return (n - n.mean()) / (n.std() + 1e-8)


def over(dst: Array, rgb: Array | tuple[float, float, float], alpha: Array) -> Array:
    """Paint `rgb` (HxWx3 or one colour) over `dst` with coverage `alpha` (HxW)."""
    a = alpha[..., None]
    return dst * (1.0 - a) + np.asarray(rgb, dtype=float) * a


def tint(rng: np.random.Generator, rgb: tuple[float, float, float], amount: float) -> Array:
    """A colour varied a little per sample (batch-to-batch material differences).

    Mostly brightness: a per-channel change of the same size would turn grey steel pink.
    """
    chroma = 1.0 + rng.normal(0.0, amount / 4, 3)
    return np.clip(np.asarray(rgb) * (1.0 + rng.normal(0.0, amount)) * chroma, 0.0, 1.0)


def smoothstep(e0: float, e1: float, x: Array) -> Array:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def tabletop(rng: np.random.Generator, size: int, rgb: tuple[float, float, float], texture: float) -> Array:
    """A plain inspection-table background with a faint surface texture."""
    n = 0.6 * noise(rng, size, 0.004) + 0.4 * noise(rng, size, 0.05)
    return np.asarray(rgb)[None, None, :] * (1.0 + texture * n)[..., None]


def drop_shadow(support: Array, size: int, shift: tuple[float, float], strength: float) -> Array:
    """Soft shadow factor (HxW, <= 1) cast by an object onto the table."""
    px = (shift[1] * size / 2.0, shift[0] * size / 2.0)
    shadow = ndimage.gaussian_filter(ndimage.shift(support, px, order=1), size * 0.02)
    return 1.0 - strength * shadow
