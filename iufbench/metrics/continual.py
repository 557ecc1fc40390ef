"""Continual-learning summaries of a step x object matrix of one per-object metric.

`A` is a DataFrame: index = evaluation point b (0 = after the base task, 1..S = after each
incremental step), columns = objects in the order they were learned, values in whatever unit
the caller stores (we keep AUROC in [0, 1]). NaN marks "not seen yet" or "not available"; NaN
entries are skipped in every mean, never counted as 0. Every function returns NaN when its
quantity is undefined. `learned_at[obj]` is the point at which obj was learned; it is passed
explicitly because a metric may be NaN at every point for an object (pixel metrics without masks).
See docs/metrics.md for the definitions and why `paper_*` is what the IUF tables report.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping

import numpy as np
import pandas as pd

SUMMARY_METRICS: tuple[str, ...] = ("paper_acc", "paper_fm", "final_acc", "chaudhry_fm", "bwt")

LearnedAt = Mapping[Hashable, int]


def paper_acc(A: pd.DataFrame) -> float:
    """Mean over evaluation points of the mean metric over the objects seen at that point.

    NaN if some point has no available value at all: the curve would have a hole.
    """
    curve = _curve(A)
    return float(curve.mean()) if curve.notna().all() else float("nan")


def paper_fm(A: pd.DataFrame) -> float:
    """Mean over steps b = 1..S of (point-0 mean - point-b mean); NaN without a step."""
    curve = _curve(A)
    if len(curve) < 2 or curve.isna().any():
        return float("nan")
    return float(curve.iloc[0] - curve.iloc[1:].mean())


def final_acc(A: pd.DataFrame) -> float:
    """Mean over all objects of the metric after the last point."""
    _check_matrix(A)
    last = A.iloc[-1]
    return float(last.mean()) if last.notna().any() else float("nan")


def chaudhry_fm(A: pd.DataFrame, learned_at: LearnedAt) -> float:
    """Mean over objects learned before the last task of (best earlier value - final value).

    The best earlier value is the max of A[b, i] over b in [learned_at[i], S - 1] (Chaudhry et al.).
    """
    return _mean_over_old_objects(A, learned_at, _forgetting)


def bwt(A: pd.DataFrame, learned_at: LearnedAt) -> float:
    """Mean over objects learned before the last task of (final value - value right after learning).

    Backward transfer (Lopez-Paz & Ranzato); negative means forgetting.
    """
    return _mean_over_old_objects(A, learned_at, _transfer)


def summarise(A: pd.DataFrame, learned_at: LearnedAt) -> dict[str, float]:
    """All five summaries of one matrix, keyed as in `SUMMARY_METRICS`."""
    _check_learned_at(A, learned_at)
    return {
        "paper_acc": paper_acc(A),
        "paper_fm": paper_fm(A),
        "final_acc": final_acc(A),
        "chaudhry_fm": chaudhry_fm(A, learned_at),
        "bwt": bwt(A, learned_at),
    }


def first_seen(A: pd.DataFrame) -> dict[Hashable, int]:
    """`learned_at` read off a matrix that has a value for every object (e.g. image AUROC).

    Derive it once from such a matrix and reuse it for pixel matrices, where a mask-less
    object's column is NaN everywhere.
    """
    _check_matrix(A)
    out: dict[Hashable, int] = {}
    for obj in A.columns:
        seen = A[obj].notna().to_numpy()
        if not seen.any():
            raise ValueError(f"object {obj!r} has no value at any point; pass learned_at explicitly")
        out[obj] = int(A.index[np.argmax(seen)])
    return out


def _curve(A: pd.DataFrame) -> pd.Series:
    """Per-point mean over the objects with a value at that point (the IUF README curves)."""
    _check_matrix(A)
    return A.mean(axis=1, skipna=True)


def _forgetting(before: np.ndarray, final: float) -> float:
    available = before[~np.isnan(before)]
    return float(available.max()) - final if available.size else float("nan")


def _transfer(before: np.ndarray, final: float) -> float:
    return final - float(before[0])


def _mean_over_old_objects(
    A: pd.DataFrame, learned_at: LearnedAt, per_object: Callable[[np.ndarray, float], float]
) -> float:
    """Mean of per_object(A[learned_at..S-1, i], A[S, i]) over objects i learned before point S.

    Objects whose comparison is NaN (a value missing) are left out of the mean, not counted as 0.
    """
    _check_learned_at(A, learned_at)
    last = A.shape[0] - 1
    values = []
    for obj in A.columns:
        start = learned_at[obj]
        if start >= last:
            continue
        before = A[obj].iloc[start:last].to_numpy(dtype=np.float64)
        value = per_object(before, float(A[obj].iloc[last]))
        if not np.isnan(value):
            values.append(value)
    return float(np.mean(values)) if values else float("nan")


def _check_matrix(A: pd.DataFrame) -> None:
    if A.shape[0] == 0:
        raise ValueError("the step x object matrix has no evaluation point")
    if list(A.index) != list(range(A.shape[0])):
        raise ValueError(f"matrix index must be the evaluation points 0..S in order, got {list(A.index)}")


def _check_learned_at(A: pd.DataFrame, learned_at: LearnedAt) -> None:
    """learned_at covers every object, and no object has a value before it was learned."""
    _check_matrix(A)
    missing = [obj for obj in A.columns if obj not in learned_at]
    if missing:
        raise ValueError(f"learned_at lacks objects {missing}")
    for obj in A.columns:
        b = learned_at[obj]
        if not 0 <= b < A.shape[0]:
            raise ValueError(f"learned_at[{obj!r}] = {b} is not an evaluation point of the matrix")
        if A[obj].iloc[:b].notna().any():
            raise ValueError(f"object {obj!r} has a value before point {b}, where it was learned")
