"""From a run's long-format matrix to continual summaries, and the table `iufbench run` prints."""
from __future__ import annotations

import pandas as pd

from iufbench.metrics import summarise

# The metrics the printed table shows, as (matrix metric, short label).
TABLE_METRICS = (("image_auroc", "image"), ("pixel_auroc", "pixel"))


def step_object_matrix(matrix: pd.DataFrame, method: str, seed: int, metric: str,
                       objects: list[str]) -> pd.DataFrame:
    """The step x object matrix of one method, seed and metric; objects in learning order."""
    sub = matrix[(matrix["method"] == method) & (matrix["seed"] == seed) & (matrix["metric"] == metric)]
    return sub.pivot(index="step", columns="object", values="value").reindex(columns=objects).sort_index()


def summarise_matrix(matrix: pd.DataFrame, learned_at: dict[str, int]) -> pd.DataFrame:
    """One row per (method, seed, metric) with every continual summary (see docs/metrics.md).

    Pairs whose matrix stops before the last step (a seed cut off, then not resumed) have no
    summary: every summary is defined on the full step x object matrix."""
    objects = list(learned_at)  # built from the protocol's tasks, so already in learning order
    last = max(learned_at.values())
    matrix = matrix[matrix.groupby(["method", "seed"])["step"].transform("max") == last]
    rows = []
    for (method, seed, metric), _ in matrix.groupby(["method", "seed", "metric"], sort=False):
        table = step_object_matrix(matrix, method, seed, metric, objects)
        rows.append({"method": method, "seed": seed, "metric": metric, **summarise(table, learned_at)})
    return pd.DataFrame(rows)


def format_table(summary: pd.DataFrame, old_data_methods: set[str]) -> str:
    """Plain-text table: paper ACC / FM and final ACC (x100), image and pixel, mean ± std over seeds."""
    lines = []
    header = f"{'method':<22}" + "".join(
        f"{label + ' ' + stat:>18}" for _, label in TABLE_METRICS for stat in ("ACC", "FM", "final")
    )
    lines.append(header)
    lines.append("-" * len(header))
    for method in summary["method"].drop_duplicates():
        name = method + (" *" if method in old_data_methods else "")
        cells = []
        for metric, _ in TABLE_METRICS:
            sub = summary[(summary["method"] == method) & (summary["metric"] == metric)]
            for stat in ("paper_acc", "paper_fm", "final_acc"):
                cells.append(_cell(sub[stat] * 100))
        lines.append(f"{name:<22}" + "".join(f"{c:>18}" for c in cells))
    lines.append("ACC/FM: paper definitions (mean over evaluation points; mean drop from the base point), "
                 "final: mean AUROC over all objects after the last step; see docs/metrics.md.")
    if old_data_methods & set(summary["method"]):
        lines.append("* sees earlier tasks' training data (upper bound / replay): not comparable as incremental.")
    return "\n".join(lines)


def _cell(values: pd.Series) -> str:
    values = values.dropna()
    if values.empty:
        return "n/a"
    if len(values) == 1:
        return f"{values.iloc[0]:.1f}"
    return f"{values.mean():.1f} ± {values.std(ddof=1):.1f}"
