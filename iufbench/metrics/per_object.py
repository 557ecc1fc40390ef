"""Per-object detection metrics: image/pixel AUROC and AP, and pixel AUPRO.

One call scores one object's test set at one evaluation point. NaN means "not available"
(no anomaly maps, no masks, or only one class present); it is never replaced by 0 or 1,
so that the continual summaries can skip it instead of averaging a fake number.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from sklearn.metrics import average_precision_score, roc_auc_score  # image level; pixels from counts

OBJECT_METRICS: tuple[str, ...] = ("image_auroc", "image_ap", "pixel_auroc", "pixel_ap", "pixel_aupro")

# 8-connectivity, as in the MVTec AD evaluation code: diagonal neighbours belong to one defect.
_REGION_STRUCTURE = np.ones((3, 3), dtype=bool)


def object_metrics(
    image_scores: np.ndarray,
    labels: np.ndarray,
    maps: np.ndarray | None,
    masks: np.ndarray | None,
    *,
    flip_below_half: bool = False,
    aupro_fpr_limit: float = 0.3,
) -> dict[str, float]:
    """All five metrics of one object's test set, keyed as in `OBJECT_METRICS`.

    image_scores [N] and labels [N] (1 = defective); maps [N,H,W] and masks [N,H,W] at the
    protocol's evaluation resolution, or None when the method has no maps / the data no masks.
    `flip_below_half` reproduces the reference code's silent 1 - AUROC below 0.5 (both AUROCs).
    """
    if not 0.0 < aupro_fpr_limit <= 1.0:
        raise ValueError(f"aupro_fpr_limit must lie in (0, 1], got {aupro_fpr_limit}")
    scores = _as_scores(image_scores, "image_scores")
    y = _as_labels(labels)
    if scores.ndim != 1 or scores.shape != y.shape:
        raise ValueError(f"image_scores {scores.shape} and labels {y.shape} must both be [N]")

    out = {
        "image_auroc": _auroc(y, scores, flip_below_half),
        "image_ap": _ap(y, scores),
        "pixel_auroc": float("nan"),
        "pixel_ap": float("nan"),
        "pixel_aupro": float("nan"),
    }
    if maps is None or masks is None:
        return out

    pix = _as_scores(maps, "maps")
    gt = np.asarray(masks).astype(bool, copy=False)
    if pix.ndim != 3 or pix.shape != gt.shape or pix.shape[0] != scores.shape[0]:
        raise ValueError(f"maps {pix.shape} and masks {gt.shape} must both be [N,H,W] with N = {scores.shape[0]}")
    ranks = _rank_pixels(pix, gt)
    if ranks.n_pos.any() and ranks.n_neg.any():
        # From the per-distinct-score counts: the same numbers as sklearn on the raw pixels (tied
        # scores form one threshold either way; tested against sklearn), in O(distinct scores).
        out["pixel_auroc"] = _flip(_auroc_from_counts(ranks.n_neg, ranks.n_pos), flip_below_half)
        out["pixel_ap"] = _ap_from_counts(ranks.n_neg, ranks.n_pos)
    out["pixel_aupro"] = _aupro(ranks, gt, aupro_fpr_limit)
    return out


def aupro(maps: np.ndarray, masks: np.ndarray, *, fpr_limit: float = 0.3) -> float:
    """Normalised area under the PRO curve up to `fpr_limit` (Bergmann et al., MVTec AD).

    PRO(t) = mean over all ground-truth regions (8-connected components, per image) of the
    fraction of the region's pixels scoring >= t; FPR(t) = fraction of all defect-free pixels
    scoring >= t. The curve is integrated over FPR in [0, fpr_limit] with the trapezoidal rule
    and divided by fpr_limit. NaN without any defect region or without any defect-free pixel.
    """
    if not 0.0 < fpr_limit <= 1.0:
        raise ValueError(f"fpr_limit must lie in (0, 1], got {fpr_limit}")
    pix = _as_scores(maps, "maps")
    gt = np.asarray(masks).astype(bool, copy=False)
    if pix.ndim != 3 or pix.shape != gt.shape:
        raise ValueError(f"maps {pix.shape} and masks {gt.shape} must both be [N,H,W]")
    return _aupro(_rank_pixels(pix, gt), gt, fpr_limit)


@dataclass(frozen=True)
class _Ranks:
    """Pixels grouped by distinct score: every distinct score is one threshold of every curve."""

    values: np.ndarray  # [U] distinct scores, ascending
    pos_index: np.ndarray  # [P] position in `values` of each defective pixel's score, in C order
    n_pos: np.ndarray  # [U] defective pixels per distinct score
    n_neg: np.ndarray  # [U] defect-free pixels per distinct score


def _rank_pixels(pix: np.ndarray, gt: np.ndarray) -> _Ranks:
    """One value sort of all pixels (numpy's SIMD sort; no argsort, no inverse over every pixel),
    then a binary search for the defective pixels only, which are few."""
    ordered = np.sort(pix, axis=None)
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    values = ordered[starts]
    n_all = np.diff(np.append(starts, ordered.size))
    pos_index = np.searchsorted(values, pix[gt])
    n_pos = np.bincount(pos_index, minlength=values.size)
    return _Ranks(values, pos_index, n_pos, n_all - n_pos)


def _aupro(ranks: _Ranks, gt: np.ndarray, fpr_limit: float) -> float:
    """AUPRO from one sort: per-threshold increments of FPR and PRO, accumulated from the top score."""
    weight = region_weights(gt)
    n_ok = int(ranks.n_neg.sum())
    if weight is None or n_ok == 0:
        return float("nan")
    pro_step = np.bincount(ranks.pos_index, weights=weight, minlength=ranks.values.size)
    # Thresholds from the highest distinct score down: cumulative sums over descending scores.
    fpr = np.cumsum(ranks.n_neg[::-1]) / n_ok
    pro = np.cumsum(pro_step[::-1])
    fpr = np.concatenate(([0.0], np.minimum(fpr, 1.0)))
    pro = np.concatenate(([0.0], np.minimum(pro, 1.0)))
    return _area_up_to(fpr, pro, fpr_limit) / fpr_limit


def region_weights(gt: np.ndarray) -> np.ndarray | None:
    """Per defective pixel (C order of `gt[gt]`), 1 / (its region's size * number of regions): what the
    pixel adds to PRO once the threshold reaches it. None without any defect region. Regions are the
    8-connected components of each image's mask; they depend on the masks only, never on scores."""
    region_ids, n_regions = [], 0
    for mask in gt:
        if mask.any():
            lab, n = ndimage.label(mask, structure=_REGION_STRUCTURE)
            region_ids.append(lab[mask] + (n_regions - 1))
            n_regions += n
    if n_regions == 0:
        return None
    region = np.concatenate(region_ids)
    return 1.0 / (np.bincount(region, minlength=n_regions)[region] * n_regions)


def _auroc_from_counts(n_neg: np.ndarray, n_pos: np.ndarray) -> float:
    """ROC AUC from counts per distinct score (ascending): P(pos > neg) + 0.5 P(pos == neg)."""
    neg_below = np.cumsum(n_neg) - n_neg
    pairs = float(n_pos.sum()) * float(n_neg.sum())
    return float(np.sum(n_pos * (neg_below + 0.5 * n_neg)) / pairs)


def _ap_from_counts(n_neg: np.ndarray, n_pos: np.ndarray) -> float:
    """Average precision (sklearn's step-wise sum of precision x recall increments) from counts per
    distinct score (ascending); each distinct score is one threshold, taken from the top."""
    tp = np.cumsum(n_pos[::-1].astype(np.float64))
    fp = np.cumsum(n_neg[::-1].astype(np.float64))
    recall_step = n_pos[::-1] / tp[-1]
    return float(np.sum(recall_step * tp / (tp + fp)))


def _area_up_to(x: np.ndarray, y: np.ndarray, x_max: float) -> float:
    """Trapezoidal area under y(x) for x in [0, x_max], interpolating y linearly at x_max.

    x is non-decreasing, starts at 0 and ends at 1 (the lowest threshold flags every pixel).
    """
    n_in = int(np.searchsorted(x, x_max, side="right"))  # points with x <= x_max
    xs, ys = x[:n_in], y[:n_in]
    if n_in < len(x) and xs[-1] < x_max:
        x0, x1, y0, y1 = x[n_in - 1], x[n_in], y[n_in - 1], y[n_in]
        xs = np.append(xs, x_max)
        ys = np.append(ys, y0 + (y1 - y0) * (x_max - x0) / (x1 - x0))
    return float(np.sum(np.diff(xs) * (ys[1:] + ys[:-1]) * 0.5))


def _auroc(y: np.ndarray, s: np.ndarray, flip_below_half: bool) -> float:
    if not _two_classes(y):
        return float("nan")
    return _flip(float(roc_auc_score(y, s)), flip_below_half)


def _flip(value: float, flip_below_half: bool) -> float:
    """The reference code's 1 - AUROC below 0.5; it hides a detector that ranks backwards."""
    return 1.0 - value if flip_below_half and value < 0.5 else value


def _ap(y: np.ndarray, s: np.ndarray) -> float:
    if not _two_classes(y):
        return float("nan")
    return float(average_precision_score(y, s))


def _two_classes(y: np.ndarray) -> bool:
    n_pos = int(np.count_nonzero(y))
    return 0 < n_pos < y.size


def _as_scores(a: np.ndarray, name: str) -> np.ndarray:
    """Scores as float32/float64 without copying when possible.

    float16 (and integer) inputs are widened to float32 — exact for float16 — so that sorting,
    sklearn's cumulative sums and tie detection never run in half precision; float64 stays
    float64 so no ties are invented by rounding.
    """
    arr = np.asarray(a)
    if arr.dtype != np.float64:
        arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contain NaN or infinite values; the method's output is unusable")
    return arr


def _as_labels(labels: np.ndarray) -> np.ndarray:
    y = np.asarray(labels)
    if y.size and not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 (good) or 1 (defective)")
    return y.astype(np.int8, copy=False)
