"""Compare two runs of the same protocol cell by cell, e.g. the plain fp32 path against the fast path:

    python benchmarks/compare_runs.py results/gpu_fp32 results/gpu_fast

Prints, per method and metric, the largest and mean absolute difference of the step x object AUROCs
and the difference of the summaries (paper ACC, paper FM, final ACC), all in AUROC points (x100).
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

METRICS = ("image_auroc", "pixel_auroc")
SUMMARIES = ("paper_acc", "paper_fm", "final_acc")


def compare(a: Path, b: Path) -> pd.DataFrame:
    keys = ["method", "seed", "step", "object", "metric"]
    cells = pd.read_csv(a / "matrix.csv").merge(pd.read_csv(b / "matrix.csv"), on=keys, suffixes=("_a", "_b"))
    cells = cells[cells["metric"].isin(METRICS)]
    cells["diff"] = (cells["value_b"] - cells["value_a"]).abs() * 100
    sums = pd.read_csv(a / "summary.csv").merge(pd.read_csv(b / "summary.csv"), on=["method", "seed", "metric"],
                                                 suffixes=("_a", "_b"))
    rows = []
    for (method, metric), group in cells.groupby(["method", "metric"]):
        row = {"method": method, "metric": metric, "cells": len(group), "max |diff|": group["diff"].max(),
               "mean |diff|": group["diff"].mean()}
        s = sums[(sums["method"] == method) & (sums["metric"] == metric)]
        for name in SUMMARIES:
            row[f"{name} diff"] = ((s[f"{name}_b"] - s[f"{name}_a"]) * 100).mean()
        rows.append(row)
    return pd.DataFrame(rows)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    print(f"{sys.argv[2]} minus {sys.argv[1]}, AUROC points")
    print(compare(Path(sys.argv[1]), Path(sys.argv[2])).round(2).to_string(index=False))
