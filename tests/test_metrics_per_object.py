"""Per-object metrics: NaN conventions, the flip switch, dtypes, and AUPRO against a slow reference."""

import math
import time

import numpy as np
import pytest
from scipy import ndimage
from sklearn.metrics import average_precision_score, roc_auc_score

from iufbench.metrics import OBJECT_METRICS, aupro, object_metrics


def _slow_aupro(maps: np.ndarray, masks: np.ndarray, limit: float) -> float:
    """Obviously-correct AUPRO: every distinct score is a threshold, every region is looped over."""
    regions = []
    for m, gt in zip(maps, masks):
        lab, n = ndimage.label(gt, structure=np.ones((3, 3)))
        regions += [m[lab == k] for k in range(1, n + 1)]
    normal = maps[~masks]
    xs, ys = [0.0], [0.0]
    for t in np.unique(maps)[::-1]:
        xs.append(float(np.mean(normal >= t)))
        ys.append(float(np.mean([np.mean(r >= t) for r in regions])))
    area = 0.0
    for x0, y0, x1, y1 in zip(xs, ys, xs[1:], ys[1:]):
        if x0 >= limit:
            break
        if x1 > limit:
            y1 = y0 + (y1 - y0) * (limit - x0) / (x1 - x0)
            x1 = limit
        area += (x1 - x0) * (y0 + y1) / 2
    return area / limit


def _random_case(rng: np.random.Generator, n: int = 6, h: int = 12, w: int = 10, levels: int | None = None):
    masks = np.zeros((n, h, w), dtype=bool)
    for i in range(1, n):  # image 0 stays defect-free
        for _ in range(rng.integers(1, 4)):
            y, x = rng.integers(0, h - 3), rng.integers(0, w - 3)
            dy, dx = rng.integers(1, 4, size=2)
            masks[i, y : y + dy, x : x + dx] = True
    maps = rng.random((n, h, w)) + 0.6 * masks
    if levels is not None:  # coarse scores: many ties across normal and defective pixels
        maps = np.round(maps * levels) / levels
    return maps, masks


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("limit", [0.05, 0.3, 1.0])
@pytest.mark.parametrize("levels", [None, 7])
def test_aupro_matches_slow_reference(seed: int, limit: float, levels: int | None) -> None:
    maps, masks = _random_case(np.random.default_rng(seed), levels=levels)
    assert aupro(maps, masks, fpr_limit=limit) == pytest.approx(_slow_aupro(maps, masks, limit), abs=1e-9)


def test_aupro_extremes() -> None:
    masks = np.zeros((2, 8, 8), dtype=bool)
    masks[1, 2:5, 3:6] = True
    assert aupro(masks.astype(np.float32), masks) == pytest.approx(1.0)
    assert aupro(1.0 - masks.astype(np.float32), masks) == pytest.approx(0.0)


def test_aupro_regions_are_8_connected() -> None:
    # One pixel diagonally touching a 3-pixel blob: a single region of 4 pixels (MVTec convention).
    masks = np.zeros((1, 6, 6), dtype=bool)
    masks[0, 1, 1] = True
    masks[0, 2, 2:5] = True
    maps = np.zeros((1, 6, 6))
    maps[0, 1, 1] = 1.0  # only the single pixel is found before any false positive
    # Curve (0,0) -> (0,1/4) -> (1,1): area = 1/4 + 3/8. With 4-connectivity it would be 1/2 + 1/4.
    assert aupro(maps, masks, fpr_limit=1.0) == pytest.approx(0.625)


def test_aupro_is_fast_enough() -> None:
    rng = np.random.default_rng(0)
    maps, masks = _random_case(rng, n=100, h=224, w=224)
    maps = maps.astype(np.float16)
    start = time.perf_counter()
    aupro(maps, masks)
    assert time.perf_counter() - start < 5.0  # about 1 s on one core; generous for slow CI


@pytest.mark.parametrize("levels", [None, 5])
def test_object_metrics_match_sklearn_on_raw_pixels(levels: int | None) -> None:
    # Pixel AUROC/AP are computed on per-distinct-score counts; they must equal sklearn on every pixel.
    maps, masks = _random_case(np.random.default_rng(1), n=8, levels=levels)
    labels = masks.reshape(8, -1).any(axis=1).astype(int)
    scores = maps.reshape(8, -1).max(axis=1)
    out = object_metrics(scores, labels, maps, masks)
    assert tuple(out) == OBJECT_METRICS
    assert all(isinstance(v, float) for v in out.values())
    assert out["image_auroc"] == pytest.approx(roc_auc_score(labels, scores))
    assert out["image_ap"] == pytest.approx(average_precision_score(labels, scores))
    assert out["pixel_auroc"] == pytest.approx(roc_auc_score(masks.ravel(), maps.ravel()), abs=1e-12)
    assert out["pixel_ap"] == pytest.approx(average_precision_score(masks.ravel(), maps.ravel()), abs=1e-12)
    assert out["pixel_aupro"] == pytest.approx(_slow_aupro(maps, masks, 0.3), abs=1e-9)


@pytest.mark.parametrize("which", ["maps", "masks", "both"])
def test_pixel_metrics_are_nan_without_maps_or_masks(which: str) -> None:
    maps, masks = _random_case(np.random.default_rng(2))
    labels = np.array([0, 1, 1, 1, 1, 1])
    out = object_metrics(
        np.arange(6.0), labels, None if which in ("maps", "both") else maps, None if which in ("masks", "both") else masks
    )
    assert out["image_auroc"] == 1.0
    assert all(math.isnan(out[k]) for k in ("pixel_auroc", "pixel_ap", "pixel_aupro"))


def test_single_class_is_nan_not_zero_or_one() -> None:
    maps = np.random.default_rng(3).random((4, 5, 5))
    no_defect = np.zeros((4, 5, 5), dtype=bool)
    out = object_metrics(np.arange(4.0), np.zeros(4, dtype=int), maps, no_defect)
    assert all(math.isnan(v) for v in out.values())
    out = object_metrics(np.arange(4.0), np.ones(4, dtype=int), None, None)
    assert math.isnan(out["image_auroc"]) and math.isnan(out["image_ap"])


def test_flip_below_half_is_opt_in_and_touches_only_aurocs() -> None:
    labels = np.array([0, 0, 1, 1])
    scores = np.array([0.9, 0.8, 0.2, 0.1])  # perfectly inverted
    masks = np.zeros((4, 2, 2), dtype=bool)
    masks[2:, 0, 0] = True
    maps = 1.0 - masks.astype(float)  # inverted at pixel level too
    plain = object_metrics(scores, labels, maps, masks)
    flipped = object_metrics(scores, labels, maps, masks, flip_below_half=True)
    assert plain["image_auroc"] == 0.0 and plain["pixel_auroc"] == 0.0
    assert flipped["image_auroc"] == 1.0 and flipped["pixel_auroc"] == 1.0
    for k in ("image_ap", "pixel_ap", "pixel_aupro"):
        assert flipped[k] == plain[k]


def test_float16_maps_give_the_float32_result() -> None:
    maps, masks = _random_case(np.random.default_rng(4), n=10)
    labels = masks.reshape(10, -1).any(axis=1).astype(int)
    half = maps.astype(np.float16)
    scores = half.reshape(10, -1).max(axis=1)
    assert object_metrics(scores, labels, half, masks) == object_metrics(
        scores.astype(np.float32), labels, half.astype(np.float32), masks
    )


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="NaN"):
        object_metrics(np.array([0.1, np.nan]), np.array([0, 1]), None, None)
    with pytest.raises(ValueError, match="labels"):
        object_metrics(np.array([0.1, 0.2]), np.array([0, 2]), None, None)
    with pytest.raises(ValueError, match=r"\[N,H,W\]"):
        object_metrics(np.array([0.1, 0.2]), np.array([0, 1]), np.zeros((2, 3, 3)), np.zeros((2, 3, 4), bool))
    with pytest.raises(ValueError, match="fpr_limit"):
        aupro(np.zeros((1, 2, 2)), np.ones((1, 2, 2), bool), fpr_limit=0.0)
