"""The side-by-side scripts of this folder as pytest-benchmark benchmarks, one benchmark per arm, the two
arms of a script in one group (pytest-benchmark runs them one after the other, not interleaved: the
scripts themselves print the interleaved ratio). Save a run and compare a later one against it:

    pytest benchmarks/ --benchmark-only --benchmark-autosave
    pytest benchmarks/ --benchmark-only --benchmark-compare --benchmark-compare-fail=median:15%

The reference UniAD arms need a checkout of github.com/zhiyuanyou/UniAD in $IUFBENCH_REFERENCE_UNIAD
and skip without one.
"""
from __future__ import annotations

from typing import Any, Callable

import pytest

import cpu_train_step
import feature_cache
import image_score
import pixel_metrics
import reference_side_by_side as reference
import train_step_time


def _run(benchmark: Any, group: str, fn: Callable[[], Any], rounds: int) -> None:
    benchmark.group = group
    benchmark.pedantic(fn, rounds=rounds, warmup_rounds=1)


@pytest.fixture(scope="module")
def pixel_inputs() -> tuple:
    return pixel_metrics.inputs()


@pytest.mark.parametrize("arm", ["2-D window", "separable"])
def test_image_score(benchmark: Any, arm: str) -> None:
    _run(benchmark, "image score: 132 maps of 224 x 224, kernel 16", image_score.arms()[arm], 5)


@pytest.mark.parametrize("arm", ["unique", "sort"])
def test_pixel_ranking(benchmark: Any, pixel_inputs: tuple, arm: str) -> None:
    _run(benchmark, "pixel ranking: 130 maps of 224 x 224", pixel_metrics.ranking_arms(*pixel_inputs)[arm], 5)


@pytest.mark.parametrize("arm", ["sklearn", "counts"])
def test_pixel_metrics(benchmark: Any, pixel_inputs: tuple, arm: str) -> None:
    ranks = pixel_metrics._rank_pixels(*pixel_inputs)
    _run(benchmark, "pixel AUROC and AP from ranked pixels", pixel_metrics.metric_arms(ranks)[arm], 5)


@pytest.mark.parametrize("arm", ["stock", "ours"])
def test_cpu_train_step(benchmark: Any, arm: str) -> None:
    try:
        _run(benchmark, "paper-size UniAD step, batch 8: stock ops against ours", cpu_train_step.arms()[arm], 3)
    finally:
        cpu_train_step.restore()


@pytest.mark.parametrize("arm", ["backbone every iteration", "cached features"])
def test_feature_cache(benchmark: Any, arm: str) -> None:
    _run(benchmark, "demo UniAD epoch: backbone against cached features", feature_cache.arms()[arm], 3)


@pytest.mark.parametrize("method", ["uniad", "iuf"])
def test_train_step_time(benchmark: Any, method: str) -> None:
    """Ten demo-size steps: what `--benchmark-compare` between two commits is for."""
    _run(benchmark, "ten demo-size training steps", train_step_time.ten_steps(method), 3)


@pytest.fixture(scope="module")
def reference_root() -> Any:
    root = reference.reference_root()
    if root is None:
        pytest.skip(f"set {reference.ENV} to a checkout of github.com/zhiyuanyou/UniAD to time the reference")
    return root


@pytest.mark.parametrize("arm", ["reference", "iufbench"])
def test_reference_train(benchmark: Any, reference_root: Any, arm: str) -> None:
    step = reference.reference_train_arm(reference_root, 8) if arm == "reference" else reference.our_train_arm(8)
    _run(benchmark, "UniAD training step, paper size, batch 8, cached features", step, 3)


@pytest.mark.parametrize("arm", ["reference", "iufbench"])
def test_reference_infer(benchmark: Any, reference_root: Any, arm: str) -> None:
    infer = reference.reference_infer_arm(reference_root, 8) if arm == "reference" else reference.our_infer_arm(8)
    _run(benchmark, "images to anomaly maps, B4 at 224 px, 8 images", infer, 3)
