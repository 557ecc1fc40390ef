"""From a run's long-format matrix (matrix.csv: method, seed, step, object, metric, value) to the
step x object matrices of `continual` and their summaries; the engine writes summary.csv with it and
the report reads runs with it."""
from __future__ import annotations

import pandas as pd

from iufbench.metrics.continual import summarise


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
