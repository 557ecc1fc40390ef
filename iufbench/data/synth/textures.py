"""The four texture categories: surfaces that fill the frame (fabric, wood, brushed steel, tiles).

Why apart from the objects: a texture covers the whole image (`support` all ones) and has no pose
beyond a shift and a small turn, so its renderers share a shape that the objects' do not.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from iufbench.data.synth.geometry import fill, noise, over, pixel_grid, pose, smoothstep, tabletop, tint
from iufbench.data.synth.scene import Scene


def render_fabric(design: np.random.Generator, rng: np.random.Generator, size: int) -> Scene:
    """Denim-like 2/1 twill: blue warp over pale weft, rounded threads, fibre fuzz."""
    x, y = pixel_grid(size)
    period = design.uniform(0.085, 0.095) * rng.uniform(0.97, 1.03)
    u, v = pose(x, y, rng.normal(0.0, 0.04), rng.uniform(-1, 1), rng.uniform(-1, 1))
    fu, fv = u / period, v / period
    cu, cv = np.floor(fu), np.floor(fv)
    ru, rv = fu - cu, fv - cv
    warp_top = np.mod(cu - cv, 3) != 0  # twill: the warp floats over two wefts, shifting by one
    across_warp, across_weft = np.sin(np.pi * ru) ** 0.5, np.sin(np.pi * rv) ** 0.5
    fibres_v, fibres_h = noise(rng, size, 0.003, (6.0, 1.0)), noise(rng, size, 0.003, (1.0, 6.0))
    shade = np.where(
        warp_top,
        across_warp * (0.8 + 0.2 * np.sin(np.pi * rv)) * (1.0 + 0.12 * fibres_v),
        across_weft * (0.8 + 0.2 * np.sin(np.pi * ru)) * (1.0 + 0.12 * fibres_h),
    )
    # Threads are not identical: each one gets its own thickness/brightness.
    thread = rng.normal(0.0, 0.07, 64)
    var = np.where(warp_top, thread[cu.astype(int) % 64], thread[32 + cv.astype(int) % 32])
    warp_rgb = tint(rng, (0.17, 0.27, 0.50), 0.04)
    weft_rgb = tint(rng, (0.40, 0.44, 0.52), 0.03)
    base = np.where(warp_top[..., None], warp_rgb, weft_rgb)
    fuzz = 0.04 * noise(rng, size, 0.004) + 0.04 * noise(rng, size, 0.08)
    image = base * (0.3 + 0.7 * shade * (1.0 + var) + fuzz)[..., None]
    background = tabletop(rng, size, (0.06, 0.06, 0.07), 0.3)
    return Scene(image, background, np.ones((size, size)))


def render_wood(design: np.random.Generator, rng: np.random.Generator, size: int) -> Scene:
    """Flat-sawn wood: wavy growth rings across the board, fine fibres and pores along it."""
    x, y = pixel_grid(size)
    u, v = pose(x, y, rng.normal(0.0, 0.05), rng.uniform(-0.5, 0.5), 0.0)
    rings = design.uniform(3.5, 4.5) * rng.uniform(0.9, 1.1)
    bend = rng.uniform(-0.6, 0.6) * v**2 + rng.uniform(0.0, 1.0)
    phase = (u + bend * 0.3) * rings + 0.45 * noise(rng, size, 0.08, (4.0, 1.0))
    t = np.mod(phase, 1.0)
    late = smoothstep(0.55, 0.8, t) * (1.0 - smoothstep(0.9, 1.0, t))  # dark latewood band
    late = late + 0.25 * np.clip(np.sin(2 * np.pi * 3.0 * phase) - 0.6, 0.0, None)  # fine rings
    fibres = 0.5 * noise(rng, size, 0.003, (12.0, 1.0)) + 0.5 * noise(rng, size, 0.01, (8.0, 1.0))
    pores = np.clip(noise(rng, size, 0.004, (3.0, 1.0)) - 2.2, 0.0, None)
    light = tint(rng, (0.80, 0.60, 0.38), 0.04)
    dark = tint(rng, (0.50, 0.31, 0.17), 0.05)
    k = np.clip(0.85 * late + 0.08 * fibres, 0.0, 1.0)[..., None]
    image = (light * (1.0 - k) + dark * k) * (1.0 - 0.25 * pores)[..., None]
    background = tabletop(rng, size, (0.10, 0.07, 0.05), 0.3)
    return Scene(image, background, np.ones((size, size)))


def render_metal_plate(design: np.random.Generator, rng: np.random.Generator, size: int) -> Scene:
    """Brushed steel: long directional polishing streaks, a broad sheen band, tiny pits."""
    x, y = pixel_grid(size)
    big = int(size * 1.5)
    streaks = 0.7 * noise(rng, big, 0.002, (1.0, 120.0)) + 0.5 * noise(rng, big, 0.006, (1.0, 40.0))
    streaks = ndimage.rotate(streaks, rng.normal(0.0, 2.0), reshape=False, order=1, mode="wrap")
    o = (big - size) // 2
    streaks = streaks[o : o + size, o : o + size]
    a = rng.uniform(-0.3, 0.3)
    across = (x * np.sin(a) + y * np.cos(a)) * rng.uniform(0.6, 1.0)
    sheen = 0.12 * np.cos(np.pi * across + rng.uniform(0, 2 * np.pi))
    pits = np.clip(noise(rng, size, 0.002) - 2.8, 0.0, None)
    steel = tint(rng, design.choice([(0.60, 0.62, 0.65), (0.62, 0.61, 0.60)]), 0.03)
    image = steel * (1.0 + 0.07 * streaks + sheen - 0.4 * pits)[..., None]
    background = tabletop(rng, size, (0.05, 0.05, 0.05), 0.2)
    return Scene(image, background, np.ones((size, size)))


def render_tile(design: np.random.Generator, rng: np.random.Generator, size: int) -> Scene:
    """Terrazzo floor tiles in a grid: speckled stone, bevelled edges, grout lines."""
    x, y = pixel_grid(size)
    period = design.uniform(0.6, 0.7)
    u, v = pose(x, y, rng.normal(0.0, 0.02), rng.uniform(-1, 1), rng.uniform(-1, 1))
    cu, cv = np.floor(u / period), np.floor(v / period)
    ru, rv = u / period - cu, v / period - cv
    edge = np.minimum(np.minimum(ru, 1 - ru), np.minimum(rv, 1 - rv)) * period
    grout_w = 0.025
    grout = fill(edge - grout_w, size)
    bevel = 0.82 + 0.18 * smoothstep(grout_w, grout_w + 0.05, edge)
    lit = 1.0 + 0.08 * np.where(ru < 0.5, 1.0, -1.0) * (edge < grout_w + 0.05)  # lit side of the bevel
    per_tile = rng.normal(0.0, 0.04, (8, 8))[cu.astype(int) % 8, cv.astype(int) % 8]
    stone = tint(rng, (0.72, 0.71, 0.68), 0.03)
    surface = stone * (1.0 + per_tile + 0.05 * noise(rng, size, 0.03))[..., None]
    surface = over(surface, (0.3, 0.29, 0.28), np.clip(4.0 * (noise(rng, size, 0.012) - 1.6), 0.0, 0.9))
    surface = over(surface, (0.93, 0.92, 0.88), np.clip(4.0 * (noise(rng, size, 0.01) - 1.9), 0.0, 0.8))
    surface = surface * (bevel * lit)[..., None]
    image = over(surface, tabletop(rng, size, (0.42, 0.40, 0.37), 0.15), grout)
    background = tabletop(rng, size, (0.08, 0.08, 0.08), 0.3)
    return Scene(image, background, np.ones((size, size)))
