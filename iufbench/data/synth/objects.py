"""The six object categories: one part on a table (screw, nut, bottle, capsule, board, cable).

Why apart from the textures: an object has an outline (`support` below one off the part), casts a
shadow and is placed at a pose per sample, and its defects may break pieces off that outline.
"""
from __future__ import annotations

import numpy as np

from iufbench.data.synth.geometry import (
    box, circle, drop_shadow, fill, hexagon, noise, over, pixel_grid, place, pose, segment, smoothstep,
    tabletop, tint,
)
from iufbench.data.synth.scene import Scene


def render_screw(design: np.random.Generator, rng: np.random.Generator, size: int) -> Scene:
    """A steel screw lying on a light table at any angle: head, threaded shaft, pointed tip."""
    x, y = pixel_grid(size)
    u, v = place(x, y, rng.uniform(0, 2 * np.pi), rng, shift=0.12, scale=0.03)
    r, pitch, thread_from = 0.085, design.uniform(0.04, 0.045), -0.22
    n_raw = np.clip(v / r, -1.0, 1.0)
    crest = np.sin(2 * np.pi * (u / pitch + 0.25 * n_raw))
    threaded = u > thread_from
    radius = np.where(u < 0.38, r, r * np.clip((0.58 - u) / 0.2, 0.0, 1.0))  # tapered tip
    radius = radius + 0.012 * threaded * np.clip(crest, 0.0, 1.0)  # thread crests on the outline
    shaft = np.maximum(np.abs(v) - radius, np.maximum(-0.44 - u, u - 0.58))
    head = box(u, v, 0.09, 0.17, cu=-0.53, r=0.04)
    cover = fill(np.minimum(shaft, head), size)
    in_head = u < -0.44
    n = np.clip(v / np.where(in_head, 0.17, np.maximum(radius, 1e-3)), -1.0, 1.0)
    shade = 0.22 + 0.55 * np.sqrt(1.0 - n**2) + 0.45 * np.exp(-(((n + 0.35) / 0.2) ** 2))
    shade = shade * np.where(threaded, 0.72 + 0.28 * (0.5 + 0.5 * crest), 1.0)
    shade = shade * (1.0 - 0.35 * np.exp(-(((u + 0.44) / 0.012) ** 2)))  # groove under the head
    steel = tint(rng, (0.64, 0.64, 0.66), 0.03)
    obj = steel * (shade * (1.0 + 0.04 * noise(rng, size, 0.004)))[..., None]
    table = tabletop(rng, size, (0.80, 0.80, 0.78), 0.05)
    shadowed = table * drop_shadow(cover, size, (0.03, 0.04), 0.35)[..., None]
    return Scene(over(shadowed, obj, cover), table, cover)


def render_metal_nut(design: np.random.Generator, rng: np.random.Generator, size: int) -> Scene:
    """A zinc-plated hex nut seen from above on a dark table: turned face, chamfer, thread."""
    x, y = pixel_grid(size)
    u, v = place(x, y, rng.uniform(0, np.pi / 3), rng, shift=0.06, scale=0.03)
    r, theta = np.hypot(u, v), np.arctan2(v, u)
    outer = np.maximum(hexagon(u, v, 0.6), r - 0.67)  # corners chamfered off
    hole_r = design.uniform(0.26, 0.28)
    cover = fill(np.maximum(outer, hole_r - r), size)
    light = rng.normal(-2.2, 0.1)  # light from the upper left, fixed rig with a little drift
    turned = 0.04 * np.sin(r * 60.0 + 0.8 * noise(rng, size, 0.02)) + 0.04 * noise(rng, size, 0.004)
    face = 0.78 + turned
    chamfer = 0.55 + 0.35 * np.cos(theta - light)
    thread = 0.35 + 0.12 * np.sin(r * 110.0) - 0.2 * np.cos(theta - light)
    shade = np.where(r < 0.55, face, chamfer)
    shade = np.where(r < hole_r + 0.06, thread, shade)
    zinc = tint(rng, (0.74, 0.73, 0.64), 0.03)
    obj = zinc * shade[..., None]
    table = tabletop(rng, size, (0.07, 0.07, 0.09), 0.2)
    shadowed = table * drop_shadow(cover, size, (0.03, 0.03), 0.5)[..., None]
    return Scene(over(shadowed, obj, cover), table, cover)


def render_bottle(design: np.random.Generator, rng: np.random.Generator, size: int) -> Scene:
    """A brown glass bottle seen from above: shoulder rings, glossy lip, dark opening."""
    x, y = pixel_grid(size)
    u, v = pose(x, y, 0.0, rng.uniform(-0.04, 0.04), rng.uniform(-0.04, 0.04), rng.uniform(0.98, 1.02))
    r, theta = np.hypot(u, v), np.arctan2(v, u)
    light = design.uniform(-np.pi, np.pi) + rng.normal(0.0, 0.15)
    glint = np.exp(-(np.angle(np.exp(1j * (theta - light))) / 0.5) ** 2)
    rim = smoothstep(0.8, 0.87, r) * (1 - smoothstep(0.87, 0.9, r))
    shoulder = 0.35 + 0.12 * np.sin(r * 70.0) + 0.25 * rim
    lip = 0.55 + 0.25 * np.sin(r * 45.0) + 0.5 * glint
    inner = 0.25 + 0.08 * np.sin(r * 90.0) + 0.2 * glint
    opening = 0.05 + 0.07 * np.exp(-(((u - 0.08) ** 2 + (v + 0.05) ** 2) / 0.03))
    shade = np.select([r < 0.4, r < 0.52, r < 0.7], [opening, inner, lip], shoulder)
    band = np.select([r < 0.52, r < 0.7], [0, 1], 2)
    inner_rgb, lip_rgb = tint(rng, (0.45, 0.55, 0.5), 0.03), tint(rng, (0.85, 0.62, 0.4), 0.03)
    glass = np.stack([inner_rgb, lip_rgb, tint(rng, (0.55, 0.38, 0.24), 0.04)])[band]
    obj = glass * (shade * (1.0 + 0.05 * noise(rng, size, 0.01)))[..., None]
    cover = fill(r - 0.9, size)
    table = tabletop(rng, size, (0.84, 0.84, 0.84), 0.03)
    return Scene(over(table, obj, cover), table, cover)


def render_capsule(design: np.random.Generator, rng: np.random.Generator, size: int) -> Scene:
    """A two-tone gelatin capsule (black cap, orange body) with a printed '100'."""
    x, y = pixel_grid(size)
    u, v = place(x, y, rng.normal(0.0, 0.04), rng, shift=0.04, scale=0.02)
    radius, half = 0.24, 0.5
    axis_d = np.hypot(u - np.clip(u, -half, half), v)
    cover = fill(axis_d - radius, size)
    n = np.clip(axis_d / radius, 0.0, 1.0)
    highlight = np.exp(-(((v + 0.1) / 0.035) ** 2)) * (1.0 - smoothstep(half - 0.15, half + 0.05, np.abs(u)))
    shade = 0.45 + 0.55 * np.sqrt(1.0 - n**2) + 0.35 * highlight
    joint = design.uniform(-0.08, -0.02)
    shade = shade * (1.0 - 0.3 * np.exp(-(((u - joint) / 0.01) ** 2)))
    cap_rgb, body_rgb = tint(rng, (0.09, 0.08, 0.08), 0.05), tint(rng, (0.80, 0.38, 0.22), 0.03)
    obj = np.where((u < joint)[..., None], cap_rgb, body_rgb) * shade[..., None]
    ink = np.minimum.reduce([
        box(u, v, 0.012, 0.07, cu=0.14),
        np.abs(box(u, v, 0.035, 0.065, cu=0.23, r=0.03)) - 0.012,
        np.abs(box(u, v, 0.035, 0.065, cu=0.33, r=0.03)) - 0.012,
    ])
    obj = over(obj, (0.92, 0.9, 0.86), 0.9 * fill(ink, size))
    table = tabletop(rng, size, (0.88, 0.88, 0.86), 0.03)
    shadowed = table * drop_shadow(cover, size, (0.02, 0.05), 0.3)[..., None]
    return Scene(over(shadowed, obj, cover), table, cover)


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


def render_pcb(design: np.random.Generator, rng: np.random.Generator, size: int) -> Scene:
    """A green circuit board: copper traces under solder mask, gold pads, an IC, SMD parts."""
    x, y = pixel_grid(size)
    u, v = pose(x, y, rng.normal(0.0, 0.015), rng.uniform(-0.03, 0.03), rng.uniform(-0.03, 0.03))
    layout = _pcb_layout(design)
    board = fill(box(u, v, 0.95, 0.95, r=0.06), size)
    mask_rgb = tint(rng, (0.10, 0.36, 0.17), 0.04)
    image = mask_rgb * (1.0 + 0.06 * noise(rng, size, 0.01))[..., None]
    segs = [(a, b) for path in layout["traces"] for a, b in zip(path, path[1:])]
    trace = np.minimum.reduce([segment(u, v, a, b, 0.018) for a, b in segs])
    image = over(image, mask_rgb * 1.6 + 0.05, fill(trace, size))
    ends = [path[0] for path in layout["traces"]] + [path[-1] for path in layout["traces"]]
    pads = np.minimum.reduce([circle(u, v, 0.04, *p) for p in ends])
    drills = np.minimum.reduce([circle(u, v, 0.015, *p) for p in ends])
    image = over(image, tint(rng, (0.85, 0.68, 0.32), 0.03), fill(pads, size))
    image = over(image, (0.12, 0.1, 0.08), fill(drills, size))
    cu, cv = layout["chip"]
    legs = [(cu + du, cv + side * 0.19) for du in np.linspace(-0.2, 0.2, 7) for side in (-1, 1)]
    pins = np.minimum.reduce([box(u, v, 0.012, 0.03, pu, pv) for pu, pv in legs])
    image = over(image, (0.78, 0.78, 0.76), fill(pins, size))
    silkscreen = np.abs(box(u, v, 0.3, 0.26, cu, cv)) - 0.008
    image = over(image, (0.92, 0.92, 0.9), fill(silkscreen, size))
    chip = box(u, v, 0.25, 0.16, cu, cv, r=0.01)
    epoxy = np.asarray((0.09, 0.09, 0.1)) * (1.0 + 0.1 * noise(rng, size, 0.005))[..., None]
    image = over(image, epoxy, fill(chip, size))
    image = over(image, (0.3, 0.3, 0.3), fill(circle(u, v, 0.025, cu - 0.19, cv - 0.1), size))  # pin-1 dot
    for pu, pv, vertical in layout["parts"]:  # SMD resistors: silver terminals, brown body
        hw, hh = (0.035, 0.07) if vertical else (0.07, 0.035)
        bw, bh = (hw, 0.6 * hh) if vertical else (0.6 * hw, hh)
        image = over(image, (0.8, 0.8, 0.78), fill(box(u, v, hw, hh, pu, pv, r=0.005), size))
        image = over(image, (0.55, 0.42, 0.3), fill(box(u, v, bw, bh, pu, pv), size))
    holes = np.minimum.reduce([circle(u, v, 0.05, sx * 0.84, sy * 0.84) for sx in (-1, 1) for sy in (-1, 1)])
    table = tabletop(rng, size, (0.2, 0.2, 0.21), 0.15)
    cover = board * (1.0 - fill(holes, size))
    return Scene(over(table, image, cover), table, cover)


def render_cable(design: np.random.Generator, rng: np.random.Generator, size: int) -> Scene:
    """A cut three-core cable: black sheath, filler, coloured insulation, stranded copper."""
    x, y = pixel_grid(size)
    u, v = place(x, y, rng.normal(0.0, 0.12), rng, shift=0.04, scale=0.03)
    r = np.hypot(u, v)
    cover = fill(r - 0.86, size)
    sheath = 1.0 + 0.25 * noise(rng, size, 0.01) + 0.3 * smoothstep(0.78, 0.85, r)
    image = tint(rng, (0.1, 0.1, 0.11), 0.05) * sheath[..., None]
    filler = tint(rng, (0.78, 0.76, 0.70), 0.03) * (1.0 + 0.08 * noise(rng, size, 0.005))[..., None]
    image = over(image, filler, fill(r - 0.72, size))
    colours = [(0.30, 0.58, 0.25), (0.20, 0.32, 0.70), (0.50, 0.32, 0.17)]
    for k, rgb in enumerate(colours):
        a = -np.pi / 2 + k * 2 * np.pi / 3
        cu, cv = 0.34 * np.cos(a), 0.34 * np.sin(a)
        d = np.hypot(u - cu, v - cv)
        rounded = 0.8 + 0.25 * (1 - d / 0.3) + 0.05 * noise(rng, size, 0.005)
        insulation = tint(rng, rgb, 0.04) * rounded[..., None]
        image = over(image, insulation, fill(d - 0.3, size))
        image = over(image, (0.35, 0.22, 0.12), fill(d - 0.19, size))
        twist = design.uniform(0, 1)
        ring = np.arange(6) * np.pi / 3 + twist
        strands = [(0.0, 0.0)] + [(0.115 * np.cos(t), 0.115 * np.sin(t)) for t in ring]
        ds = np.minimum.reduce([np.hypot(u - cu - su, v - cv - sv) for su, sv in strands])
        copper = np.asarray((0.86, 0.55, 0.3)) * (0.55 + 0.5 * np.clip(1 - ds / 0.058, 0, 1))[..., None]
        image = over(image, copper, fill(ds - 0.058, size))
    table = tabletop(rng, size, (0.86, 0.86, 0.84), 0.03)
    return Scene(over(table, image, cover), table, cover)
