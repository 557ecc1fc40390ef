"""The torch (GPU) per-object metrics equal the CPU path's, checked here on CPU tensors: ties, one
class, empty masks, float16 maps, the flip switch and the AUPRO limit."""

import math

import numpy as np
import pytest
import torch

from iufbench.metrics import OBJECT_METRICS, object_metrics
from iufbench.metrics.on_device import object_metrics_any, object_metrics_on_device

TOLERANCE = 1e-9  # float64 sums in another order (a GPU's scans and atomics); AUROC, AP and AUPRO alike


def _case(seed: int, n: int = 9, h: int = 12, w: int = 10, levels: int | None = None):
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, h, w), dtype=bool)
    for i in range(n // 2, n):  # the first half defect-free
        for _ in range(rng.integers(1, 4)):
            y, x = rng.integers(0, h - 3), rng.integers(0, w - 3)
            dy, dx = rng.integers(1, 4, size=2)
            masks[i, y : y + dy, x : x + dx] = True
    maps = (rng.random((n, h, w)) + 0.6 * masks).astype(np.float32)
    if levels is not None:  # coarse scores: ties across normal and defective pixels and images
        maps = (np.round(maps * levels) / levels).astype(np.float32)
    labels = masks.reshape(n, -1).any(axis=1).astype(np.int64)
    scores = maps.reshape(n, -1).max(axis=1)
    return scores, labels, maps, masks


def _assert_same(device: dict[str, float], cpu: dict[str, float]) -> None:
    assert tuple(device) == OBJECT_METRICS
    for name in OBJECT_METRICS:
        if math.isnan(cpu[name]):
            assert math.isnan(device[name]), name
        else:
            assert device[name] == pytest.approx(cpu[name], abs=TOLERANCE), name


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("levels", [None, 4])
@pytest.mark.parametrize("limit", [0.05, 0.3, 1.0])
def test_device_metrics_equal_the_cpu_path(seed: int, levels: int | None, limit: float) -> None:
    scores, labels, maps, masks = _case(seed, levels=levels)
    cpu = object_metrics(scores, labels, maps, masks, aupro_fpr_limit=limit)
    _assert_same(object_metrics_on_device(torch.from_numpy(scores), labels, torch.from_numpy(maps), masks,
                                          aupro_fpr_limit=limit), cpu)


def test_device_metrics_single_class_empty_masks_no_maps() -> None:
    scores, labels, maps, masks = _case(5, levels=3)
    for lab, gt in ((np.zeros_like(labels), np.zeros_like(masks)), (np.ones_like(labels), masks)):
        _assert_same(object_metrics_on_device(torch.from_numpy(scores), lab, torch.from_numpy(maps), gt),
                     object_metrics(scores, lab, maps, gt))
    _assert_same(object_metrics_on_device(torch.from_numpy(scores), labels, None, None),
                 object_metrics(scores, labels, None, None))
    everything_defective = np.ones_like(masks)  # regions but no defect-free pixel: AUPRO NaN
    _assert_same(object_metrics_on_device(torch.from_numpy(scores), labels, torch.from_numpy(maps),
                                          everything_defective),
                 object_metrics(scores, labels, maps, everything_defective))


def test_device_metrics_flip_and_float16() -> None:
    scores, labels, maps, masks = _case(6, levels=6)
    inverted = -maps.astype(np.float16)
    image = inverted.reshape(len(labels), -1).max(axis=1)
    for flip in (False, True):
        _assert_same(object_metrics_on_device(torch.from_numpy(image), labels, torch.from_numpy(inverted), masks,
                                              flip_below_half=flip),
                     object_metrics(image, labels, inverted, masks, flip_below_half=flip))


def test_engine_entry_keeps_cpu_scores_on_the_numpy_path() -> None:
    scores, labels, maps, masks = _case(7)
    assert object_metrics_any(torch.from_numpy(scores), labels, torch.from_numpy(maps), masks) == \
        object_metrics(scores, labels, maps, masks)


def test_device_metrics_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="NaN"):
        object_metrics_on_device(torch.tensor([0.1, float("nan")]), np.array([0, 1]), None, None)
    with pytest.raises(ValueError, match="labels"):
        object_metrics_on_device(torch.tensor([0.1, 0.2]), np.array([0, 2]), None, None)
    with pytest.raises(ValueError, match=r"\[N,H,W\]"):
        object_metrics_on_device(torch.tensor([0.1, 0.2]), np.array([0, 1]), torch.zeros(2, 3, 3),
                                 np.zeros((2, 3, 4), bool))
