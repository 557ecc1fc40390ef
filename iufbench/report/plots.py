"""Figures from run directories (PNG and PDF): per-step AUROC curves with the joint upper bound (the
paper's Fig. 3), a step x object heatmap per method (what was forgotten, and when), a qualitative
grid of old objects after the last step (the paper's Fig. 6) from the maps each run keeps, and the
training curves of losses.csv. Methods look the same in every figure (`styles`); with more than
`FACET_OVER` methods the curves get one row of axes per family.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from iufbench.metrics import step_object_matrix  # noqa: E402
from iufbench.report.loss_plots import losses_figure  # noqa: E402
from iufbench.report.runs import Run  # noqa: E402
from iufbench.report.styles import CONTEXT_GREY, Style, families, method_styles  # noqa: E402
from iufbench.report.tables import LEVELS  # noqa: E402

QUALITATIVE_ROWS = 6
FACET_OVER = 8  # more methods than this: the curves get one row of axes per family
BANDS_UP_TO = 4  # ± std bands only on axes with at most this many methods (more is a blur)


def _save(fig: plt.Figure, out: Path, name: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.{ext}" for ext in ("png", "pdf")]
    for path in paths:
        fig.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return paths


def _seen_mean(run: Run, method: str, metric: str) -> pd.DataFrame:
    """Per seed (columns) and step (rows): mean AUROC over the objects seen so far."""
    sub = run.matrix[(run.matrix["method"] == method) & (run.matrix["metric"] == metric)]
    return sub.groupby(["step", "seed"])["value"].mean().unstack("seed") * 100


def _seed_count(run: Run) -> str:
    counts = run.matrix.groupby("method")["seed"].nunique()
    return str(counts.min()) if counts.min() == counts.max() else f"{counts.min()}-{counts.max()}"


def _draw_method(ax: plt.Axes, table: pd.DataFrame, style: Style | None, label: str, band: bool) -> None:
    """Mean over seeds, with a ± std band if asked; style None: a thin grey line behind a facet (context)."""
    mean, std = table.mean(axis=1), table.std(axis=1, ddof=1)
    if style is None:
        ax.plot(mean.index, mean.values, color=CONTEXT_GREY, linewidth=0.9, zorder=1)
        return
    ax.plot(mean.index, mean.values, label=label, zorder=3, **style.plot_kwargs())
    if band and table.shape[1] > 1:
        ax.fill_between(mean.index, mean - std, mean + std, alpha=0.15, color=style.color, zorder=2)


def _curve_axes(ax: plt.Axes, run: Run, level: str, title: str) -> None:
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("step (after learning task t)")
    ax.set_ylabel(f"{level} AUROC, seen objects (%)")
    ax.set_xticks(range(len(run.tasks)))
    ax.grid(alpha=0.3)


def curves_figure(run: Run) -> plt.Figure:
    """Mean AUROC of all objects seen so far after each step, per method (colour: family). Over
    `FACET_OVER` methods, one row per family, the other families drawn in grey behind it."""
    styles = method_styles(run.traits)
    tables = {(m, level): _seen_mean(run, m, metric) for m in run.methods for level, metric in LEVELS.items()}
    drawable = {k: t for k, t in tables.items() if not (t.empty or t.isna().all().all())}
    groups = families(run.traits) if len(run.methods) > FACET_OVER else [None]
    fig, axes = plt.subplots(len(groups), 2, figsize=(13, 3.2 * len(groups) + 1.2), sharex=True, sharey="col",
                             squeeze=False, layout="constrained")
    for row, family in enumerate(groups):
        members = [m for m in run.methods if family is None or styles[m].family == family]
        for ax, level in zip(axes[row], LEVELS):
            for method in run.methods:
                if (method, level) not in drawable:
                    continue
                _draw_method(ax, drawable[(method, level)], styles[method] if method in members else None,
                             styles[method].label(method), len(members) <= BANDS_UP_TO)
            _curve_axes(ax, run, level, f"{level} AUROC" + (f": {family}" if family else ""))
        handles, labels = axes[row, 0].get_legend_handles_labels()
        if family is not None:
            axes[row, 1].legend(handles, labels, loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8,
                                title=family, title_fontsize=8, frameon=False)
    if groups == [None]:
        fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside lower center", ncols=4, fontsize=8)
    fig.suptitle(f"{run.protocol}: AUROC after each step, mean over {_seed_count(run)} seed(s) per method"
                 f" (band: ± std where there are several, on axes of up to {BANDS_UP_TO} methods)"
                 + ("; grey: the other families" if groups != [None] else ""))
    return fig


def heatmap_figures(run: Run) -> Iterator[tuple[str, plt.Figure]]:
    """One figure per method: step x object AUROC (mean over seeds), image and pixel."""
    objects = list(run.learned_at)
    for method in run.methods:
        fig, axes = plt.subplots(1, 2, figsize=(max(9, 1.4 * len(objects)), 0.6 * len(run.tasks) + 2.5),
                                 layout="constrained")
        for ax, (level, metric) in zip(axes, LEVELS.items()):
            seeds = sorted(run.matrix.loc[run.matrix["method"] == method, "seed"].unique())
            tables = [step_object_matrix(run.matrix, method, s, metric, objects) for s in seeds]
            table = pd.concat(tables).groupby(level=0).mean() * 100
            image = ax.imshow(table.values, vmin=50, vmax=100, cmap="viridis", aspect="auto")
            for (i, j), v in np.ndenumerate(table.values):
                if not np.isnan(v):
                    ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=7,
                            color="white" if v < 75 else "black")
            ax.set_xticks(range(len(objects)), objects, rotation=45, ha="right", fontsize=8)
            ax.set_yticks(range(len(table)), [f"after step {s}" for s in table.index], fontsize=8)
            ax.set_title(f"{level} AUROC (%), colour floor 50")
            fig.colorbar(image, ax=ax, fraction=0.04)
        fig.suptitle(f"{method} on {run.protocol}: AUROC of each object after each step "
                     f"(blank: not learned yet; mean over {len(seeds)} seed(s))")
        yield method, fig


def qualitative_figure(run: Run) -> plt.Figure | None:
    """Old objects after the last step: image, ground truth, and each method's anomaly map overlaid.
    One column per method; with more than `FACET_OVER` methods one row per method instead, so the
    tiles stay large enough to see."""
    for seed in sorted(int(s) for s in run.matrix["seed"].unique()):  # the lowest seed every method kept maps for
        samples = {m: run.dir.read_maps(m, seed) for m in run.methods}
        if all(s is not None and len(s.get("objects", [])) > 0 for s in samples.values()):
            break
    else:
        return None
    first = next(iter(samples.values()))
    # one image per object first (spread over objects), then second images, up to QUALITATIVE_ROWS
    order = sorted(range(len(first["objects"])), key=lambda i: list(first["objects"][:i]).count(first["objects"][i]))
    images = order[:QUALITATIVE_ROWS]
    panels = 2 + len(samples)
    by_row = len(samples) > FACET_OVER  # panels down, images across
    shape = (panels, len(images)) if by_row else (len(images), panels)
    fig, axes = plt.subplots(*shape, figsize=(1.9 * shape[1] + (1.2 if by_row else 0), 1.9 * shape[0]),
                             squeeze=False, layout="constrained")
    grid = axes.T if by_row else axes  # grid[image, panel]
    for r, i in enumerate(images):
        grid[r, 0].imshow(first["images"][i])
        grid[r, 1].imshow(first["masks"][i], cmap="gray", vmin=0, vmax=1)
        for c, s in enumerate(samples.values(), start=2):
            amap = s["maps"][i].astype(np.float32)
            grid[r, c].imshow(s["images"][i])
            if np.isfinite(amap).all():
                grid[r, c].imshow(amap, cmap="jet", alpha=0.5, vmin=np.percentile(amap, 1), vmax=amap.max())
            else:
                grid[r, c].text(0.5, 0.5, "no map", ha="center", va="center", transform=grid[r, c].transAxes)
    names = ["image", "ground truth", *samples]
    for c, name in enumerate(names):
        if by_row:
            grid[0, c].set_ylabel(name, fontsize=8, rotation=0, ha="right", va="center")
        else:
            grid[0, c].set_title(name, fontsize=8)
    for r, i in enumerate(images):
        if by_row:
            grid[r, 0].set_title(str(first["objects"][i]), fontsize=8)
        else:
            grid[r, 0].set_ylabel(str(first["objects"][i]), fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{run.protocol}: defective test images of old objects after the last step (seed {seed}); "
                 "red = high anomaly score, each map scaled to its own range", fontsize=9)
    return fig


def run_figures(run: Run) -> Iterator[tuple[str, str, plt.Figure]]:
    """(kind, file name, figure) of every figure of one run, in reading order; kind is curves,
    heatmap, qualitative or losses. The caller saves or embeds each figure and closes it."""
    name = run.dir.path.name
    yield "curves", f"curves_{name}", curves_figure(run)
    for method, fig in heatmap_figures(run):
        yield "heatmap", f"heatmap_{name}_{method}", fig
    grid = qualitative_figure(run)
    if grid is not None:
        yield "qualitative", f"qualitative_{name}", grid
    losses = losses_figure(run, method_styles(run.traits))
    if losses is not None:
        yield "losses", f"losses_{name}", losses


def plot_all(runs: list[Run], out: Path) -> list[Path]:
    paths = []
    for run in runs:
        for _, name, fig in run_figures(run):
            paths += _save(fig, out, name)
    return paths
