"""Figures from run directories (PNG and PDF): per-step AUROC curves with the joint upper bound (the
paper's Fig. 3), a step x object heatmap per method (what was forgotten, and when), and a
qualitative grid of old objects after the last step (the paper's Fig. 6) from the maps each run keeps.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from iufbench.report.runs import Run  # noqa: E402
from iufbench.report.summary import step_object_matrix  # noqa: E402
from iufbench.report.tables import LEVELS, uses_old_data  # noqa: E402

QUALITATIVE_ROWS = 6


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


def curves(run: Run, out: Path) -> list[Path]:
    """Mean AUROC of all objects seen so far after each step, per method; joint dashed (upper bound)."""
    methods = list(dict.fromkeys(run.matrix["method"]))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharex=True, layout="constrained")
    for ax, (level, metric) in zip(axes, LEVELS.items()):
        for method in methods:
            table = _seen_mean(run, method, metric)
            if table.empty or table.isna().all().all():
                continue
            mean, std = table.mean(axis=1), table.std(axis=1, ddof=1)
            style = {"linestyle": "--", "color": "black"} if uses_old_data(method) else {"marker": "o"}
            label = method + (" (sees old data: upper bound)" if uses_old_data(method) else "")
            ax.plot(mean.index, mean.values, label=label, **style)
            if table.shape[1] > 1:
                ax.fill_between(mean.index, mean - std, mean + std, alpha=0.15, color=ax.lines[-1].get_color())
        ax.set_title(f"{level} AUROC")
        ax.set_xlabel("step (after learning task t)")
        ax.set_ylabel("mean AUROC of objects seen so far (%)")
        ax.set_xticks(range(len(run.tasks)))
        ax.grid(alpha=0.3)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=4, fontsize=8)
    fig.suptitle(f"{run.protocol}: AUROC after each step, mean over {_seed_count(run)} seed(s) per method"
                 " (band: ± std where there are several)")
    return _save(fig, out, f"curves_{run.dir.path.name}")


def heatmaps(run: Run, out: Path) -> list[Path]:
    """One figure per method: step x object AUROC (mean over seeds), image and pixel."""
    objects = list(run.learned_at)
    paths = []
    for method in dict.fromkeys(run.matrix["method"]):
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
        paths += _save(fig, out, f"heatmap_{run.dir.path.name}_{method}")
    return paths


def qualitative(run: Run, out: Path) -> list[Path]:
    """Old objects after the last step: image, ground truth, and each method's anomaly map overlaid."""
    methods = list(dict.fromkeys(run.matrix["method"]))
    for seed in sorted(int(s) for s in run.matrix["seed"].unique()):  # the lowest seed every method kept maps for
        samples = {m: run.dir.read_maps(m, seed) for m in methods}
        if all(s is not None and len(s.get("objects", [])) > 0 for s in samples.values()):
            break
    else:
        return []
    first = next(iter(samples.values()))
    # one image per object first (spread over objects), then second images, up to QUALITATIVE_ROWS
    order = sorted(range(len(first["objects"])), key=lambda i: list(first["objects"][:i]).count(first["objects"][i]))
    rows = order[:QUALITATIVE_ROWS]
    cols = 2 + len(samples)
    fig, axes = plt.subplots(len(rows), cols, figsize=(2.1 * cols, 2.1 * len(rows)), squeeze=False,
                             layout="constrained")
    for r, i in enumerate(rows):
        axes[r, 0].imshow(first["images"][i])
        axes[r, 0].set_ylabel(str(first["objects"][i]), fontsize=8)
        axes[r, 1].imshow(first["masks"][i], cmap="gray", vmin=0, vmax=1)
        for c, (method, s) in enumerate(samples.items(), start=2):
            amap = s["maps"][i].astype(np.float32)
            axes[r, c].imshow(s["images"][i])
            if np.isfinite(amap).all():
                axes[r, c].imshow(amap, cmap="jet", alpha=0.5, vmin=np.percentile(amap, 1), vmax=amap.max())
            else:
                axes[r, c].text(0.5, 0.5, "no map", ha="center", va="center", transform=axes[r, c].transAxes)
            if r == 0:
                axes[r, c].set_title(method, fontsize=8)
    axes[0, 0].set_title("image", fontsize=8)
    axes[0, 1].set_title("ground truth", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{run.protocol}: defective test images of old objects after the last step (seed {seed}); "
                 "red = high anomaly score, each map scaled to its own range", fontsize=9)
    return _save(fig, out, f"qualitative_{run.dir.path.name}")


def plot_all(runs: list[Run], out: Path) -> list[Path]:
    paths = []
    for run in runs:
        paths += curves(run, out) + heatmaps(run, out) + qualitative(run, out)
    return paths
