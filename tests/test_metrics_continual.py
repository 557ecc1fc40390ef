"""Continual summaries: the paper's own arithmetic, the standard metrics by hand, NaN handling."""

import math

import numpy as np
import pandas as pd
import pytest

from iufbench.metrics import (
    SUMMARY_METRICS,
    bwt,
    chaudhry_fm,
    final_acc,
    first_seen,
    paper_acc,
    paper_fm,
    summarise,
)


def _matrix_with_curve(curve: list[float], base: int, per_step: int) -> tuple[pd.DataFrame, dict[str, int]]:
    """A step x object matrix whose mean over the seen objects at point b is exactly curve[b].

    Objects differ within a point (the newest task scores best, old ones lower, the deviations sum
    to zero), so the per-point means are real averages over several objects, not copies.
    """
    n_points = len(curve)
    names = [f"obj{i:02d}" for i in range(base + per_step * (n_points - 1))]
    learned_at = {name: 0 if i < base else 1 + (i - base) // per_step for i, name in enumerate(names)}
    A = pd.DataFrame(np.nan, index=range(n_points), columns=names)
    for b, value in enumerate(curve):
        seen = [n for n in names if learned_at[n] <= b]
        deviation = np.linspace(-1.0, 1.0, len(seen))  # zero mean; last learned object highest
        A.loc[b, seen] = value + deviation
        assert A.loc[b].mean() == pytest.approx(value)
    return A, learned_at


def test_paper_numbers_uniad_mvtec_10_1_image() -> None:
    # README curve (values read off imgs/q1.png); Table 1(A) reports ACC 76.6, FM 21.1.
    A, learned_at = _matrix_with_curve([94.2, 75.3, 76.3, 74.4, 69.6, 70.0], base=10, per_step=1)
    assert paper_acc(A) == pytest.approx(459.8 / 6)
    assert paper_fm(A) == pytest.approx(94.2 - 365.6 / 5)
    assert f"{paper_acc(A):.1f}" == "76.6"
    assert f"{paper_fm(A):.1f}" == "21.1"
    assert first_seen(A) == learned_at


def test_paper_numbers_iuf_mvtec_3_3_image() -> None:
    # Curve read off the plot gives 84.24 / 10.075; Table 1(A) prints 84.2 / 10.0.
    A, _ = _matrix_with_curve([92.3, 91.8, 84.1, 77.5, 75.5], base=3, per_step=3)
    assert paper_acc(A) == pytest.approx(84.24)
    assert f"{paper_acc(A):.1f}" == "84.2"
    assert paper_fm(A) == pytest.approx(10.075)


def test_single_step_fm_is_the_drop() -> None:
    A, _ = _matrix_with_curve([94.8, 76.6], base=14, per_step=1)  # UniAD 14-1 image
    assert paper_fm(A) == pytest.approx(18.2)
    assert paper_acc(A) == pytest.approx(85.7)


# Hand-computed example: a learned at 0, b at 1, c at 2 (S = 2).
HAND = pd.DataFrame(
    {"a": [0.90, 0.93, 0.70], "b": [np.nan, 0.95, 0.85], "c": [np.nan, np.nan, 0.99]}, index=[0, 1, 2]
)
HAND_LEARNED = {"a": 0, "b": 1, "c": 2}


def test_standard_metrics_by_hand() -> None:
    # Chaudhry FM: a: max(0.90, 0.93) - 0.70 = 0.23; b: 0.95 - 0.85 = 0.10; c is the last task.
    assert chaudhry_fm(HAND, HAND_LEARNED) == pytest.approx((0.23 + 0.10) / 2)
    # BWT: a: 0.70 - 0.90; b: 0.85 - 0.95.
    assert bwt(HAND, HAND_LEARNED) == pytest.approx((-0.20 - 0.10) / 2)
    assert final_acc(HAND) == pytest.approx((0.70 + 0.85 + 0.99) / 3)
    curve = [0.90, (0.93 + 0.95) / 2, (0.70 + 0.85 + 0.99) / 3]
    assert paper_acc(HAND) == pytest.approx(np.mean(curve))
    assert paper_fm(HAND) == pytest.approx(curve[0] - np.mean(curve[1:]))


def test_summarise_returns_all_five() -> None:
    out = summarise(HAND, HAND_LEARNED)
    assert tuple(out) == SUMMARY_METRICS
    assert out["chaudhry_fm"] == chaudhry_fm(HAND, HAND_LEARNED)
    assert out["paper_acc"] == paper_acc(HAND)


def test_nan_objects_are_skipped_not_zero() -> None:
    # Pixel matrix where object "m" has no masks: NaN at every point, so it must not pull means down.
    A = HAND.copy()
    A.insert(1, "m", np.nan)
    learned = {**HAND_LEARNED, "m": 0}
    assert summarise(A, learned) == pytest.approx(summarise(HAND, HAND_LEARNED))
    with pytest.raises(ValueError, match="learned_at explicitly"):
        first_seen(A)


def test_undefined_cases_are_nan() -> None:
    base_only = pd.DataFrame({"a": [0.9], "b": [0.8]})
    out = summarise(base_only, {"a": 0, "b": 0})
    assert out["paper_acc"] == pytest.approx(0.85) and out["final_acc"] == pytest.approx(0.85)
    assert all(math.isnan(out[k]) for k in ("paper_fm", "chaudhry_fm", "bwt"))

    # A point where no seen object has a value leaves a hole in the curve: paper ACC/FM undefined.
    hole = pd.DataFrame({"a": [np.nan, np.nan], "b": [np.nan, 0.8]})
    out = summarise(hole, {"a": 0, "b": 1})
    assert math.isnan(out["paper_acc"]) and math.isnan(out["paper_fm"])
    assert out["final_acc"] == pytest.approx(0.8)
    assert math.isnan(out["chaudhry_fm"]) and math.isnan(out["bwt"])


def test_inconsistent_inputs_raise() -> None:
    with pytest.raises(ValueError, match="before point"):
        summarise(HAND, {"a": 1, "b": 1, "c": 2})  # a has a value at point 0
    with pytest.raises(ValueError, match="lacks"):
        bwt(HAND, {"a": 0, "b": 1})
    with pytest.raises(ValueError, match="index"):
        paper_acc(HAND.set_axis([1, 2, 3]))
