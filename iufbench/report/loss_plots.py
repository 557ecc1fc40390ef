"""The training-curves figure from losses.csv: one small panel per trained method, every epoch of
every step in order (mean over seeds), the total loss and each of its terms, step starts marked.

A loss that creeps up over a stream, or stops moving after a few epochs, shows here after the fact.
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

from iufbench.records import LOSS_COLUMNS
from iufbench.report.runs import Run
from iufbench.report.styles import PALETTE, Style

COLUMNS_OF_PANELS = 4
LOG_ABOVE = 30.0  # a log axis once the largest value shown is this many times the smallest


def _epoch_axis(df: pd.DataFrame) -> tuple[pd.DataFrame, list[int]]:
    """Mean over seeds per (step, epoch), with x = the epoch's position in the whole stream, and the
    x of each step's first epoch."""
    mean = df.drop(columns=["method", "seed"]).groupby(["step", "epoch"]).mean().reset_index()
    lengths = mean.groupby("step")["epoch"].max() + 1
    offsets = lengths.cumsum().shift(fill_value=0)
    mean["x"] = mean["epoch"] + mean["step"].map(offsets)
    return mean, [int(offsets[s]) for s in lengths.index]


def losses_figure(run: Run, styles: dict[str, Style]) -> plt.Figure | None:
    """None when nothing in the run trained by epochs (memory banks only, or a run older than losses.csv)."""
    df = run.losses
    order = list(dict.fromkeys(styles[m].family for m in run.methods))  # panels grouped by family
    methods = sorted((m for m in run.methods if (df["method"] == m).any()), key=lambda m: order.index(styles[m].family))
    if not methods:
        return None
    terms = [c for c in df.columns if c not in LOSS_COLUMNS]
    colours = {"loss": "black", **{t: PALETTE[i % len(PALETTE)] for i, t in enumerate(terms)}}
    ncols = min(COLUMNS_OF_PANELS, len(methods))
    nrows = math.ceil(len(methods) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 2.6 * nrows + 0.8), squeeze=False,
                             layout="constrained")
    for ax, method in zip(axes.flat, methods):
        mine = df[df["method"] == method].dropna(axis=1, how="all")
        mean, starts = _epoch_axis(mine)
        # a term equal to the total (UniAD's mse) would hide under it: the total alone says it
        shown = ["loss", *(c for c in terms if c in mean and not np.allclose(mean[c], mean["loss"], equal_nan=True))]
        values = mean[shown].to_numpy(dtype=float)
        values = values[np.isfinite(values)]
        for column in shown:
            ax.plot(mean["x"], mean[column], color=colours[column], linewidth=1.8 if column == "loss" else 1.1,
                    zorder=3 if column == "loss" else 2)
        for x in starts[1:]:
            ax.axvline(x - 0.5, color="grey", linestyle=":", linewidth=0.8)
        if len(values) and values.min() > 0 and values.max() / values.min() > LOG_ABOVE:
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.yaxis.set_minor_formatter(NullFormatter())
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        style = styles[method]
        ax.set_title(f"{method} ({style.family})", fontsize=9, color=style.color)
        ax.set_xlabel("epoch (all steps in order)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(methods):]:
        ax.set_visible(False)
    handles = [plt.Line2D([], [], color=colours[c], linewidth=1.8 if c == "loss" else 1.1) for c in colours]
    fig.legend(handles, list(colours), loc="outside lower center", ncols=len(colours), fontsize=8,
               title="loss: the total a method minimises; the others: its terms as the method reports them")
    seeds = df.groupby("method")["seed"].nunique()
    fig.suptitle(f"{run.protocol}: mean training loss per epoch (mean over {seeds.min()}"
                 f"{'' if seeds.min() == seeds.max() else f'-{seeds.max()}'} seed(s)); dotted: a new step starts",
                 fontsize=10)
    return fig
