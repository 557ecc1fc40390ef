"""The per-object metrics computed in torch where the scores are (a GPU), so that evaluating a run
on a GPU does not copy every anomaly map to the host and sort it there.

The same numbers as `per_object.object_metrics` (tested equal on CPU tensors, to float64 summation
order): every distinct score is one threshold of every curve, image AUROC and AP included (what
sklearn does with ties), and the same NaN conventions. The masks' defect regions (8-connected
components) depend on the masks only, so they are labelled on the host with scipy as in the CPU
path; everything that depends on the scores (sorting, counting, the curves) runs on the device.
"""
from __future__ import annotations

import numpy as np
import torch

from iufbench.metrics.per_object import object_metrics, region_weights


def object_metrics_on_device(image_scores: torch.Tensor, labels: np.ndarray, maps: torch.Tensor | None,
                             masks: np.ndarray | None, *, flip_below_half: bool = False,
                             aupro_fpr_limit: float = 0.3) -> dict[str, float]:
    """`object_metrics` for torch scores [N] and maps [N, H, W] on any device (labels and masks as the
    feature bank holds them, numpy); computed on the scores' device, read back once."""
    if not 0.0 < aupro_fpr_limit <= 1.0:
        raise ValueError(f"aupro_fpr_limit must lie in (0, 1], got {aupro_fpr_limit}")
    device = image_scores.device
    scores = _as_scores(image_scores, "image_scores")
    y = torch.as_tensor(np.asarray(labels), device=device)
    if scores.ndim != 1 or scores.shape != y.shape:
        raise ValueError(f"image_scores {tuple(scores.shape)} and labels {tuple(y.shape)} must both be [N]")
    if y.numel() and not ((y == 0) | (y == 1)).all():
        raise ValueError("labels must be 0 (good) or 1 (defective)")
    nan = torch.tensor(float("nan"), dtype=torch.float64, device=device)
    image = _ranks(scores, y.bool())
    values = {"image_auroc": _flip(_auroc(*image), flip_below_half), "image_ap": _ap(*image),
              "pixel_auroc": nan, "pixel_ap": nan, "pixel_aupro": nan}
    if maps is not None and masks is not None:
        pix = _as_scores(maps.to(device), "maps")
        gt_host = np.asarray(masks).astype(bool, copy=False)
        if pix.ndim != 3 or tuple(pix.shape) != gt_host.shape or pix.shape[0] != scores.shape[0]:
            raise ValueError(f"maps {tuple(pix.shape)} and masks {gt_host.shape} must both be [N,H,W] "
                             f"with N = {scores.shape[0]}")
        gt = torch.from_numpy(gt_host).to(device)
        n_neg, n_pos, pos_index = _ranks(pix, gt, with_positions=True)
        values["pixel_auroc"] = _flip(_auroc(n_neg, n_pos), flip_below_half)
        values["pixel_ap"] = _ap(n_neg, n_pos)
        weight = region_weights(gt_host)
        if weight is not None:
            values["pixel_aupro"] = _aupro(n_neg, pos_index, torch.from_numpy(weight).to(device), aupro_fpr_limit)
    out = torch.stack(list(values.values())).tolist()  # the one read back
    return dict(zip(values, out))


def object_metrics_any(image_scores: torch.Tensor, labels: np.ndarray, maps: torch.Tensor | None,
                       masks: np.ndarray | None, *, flip_below_half: bool = False) -> dict[str, float]:
    """The engine's entry: scores on a GPU are evaluated there, CPU scores by the numpy path (unchanged)."""
    if image_scores.device.type != "cpu":
        return object_metrics_on_device(image_scores, labels, maps, masks, flip_below_half=flip_below_half)
    return object_metrics(image_scores.numpy(), labels, None if maps is None else maps.cpu().numpy(), masks,
                          flip_below_half=flip_below_half)


def _as_scores(t: torch.Tensor, name: str) -> torch.Tensor:
    """float16/bfloat16/integer scores widened to float32 (exact), float64 kept, as the CPU path does."""
    if t.dtype != torch.float64:
        t = t.float()
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contain NaN or infinite values; the method's output is unusable")
    return t


def _ranks(scores: torch.Tensor, positive: torch.Tensor, with_positions: bool = False) -> tuple[torch.Tensor, ...]:
    """Defect-free and defective counts per distinct score (ascending), as float64; with the position in
    the distinct scores of each defective element (C order of `scores[positive]`) when asked."""
    values, counts = torch.unique_consecutive(torch.sort(scores.flatten()).values, return_counts=True)
    pos_index = torch.searchsorted(values, scores[positive])
    n_pos = torch.bincount(pos_index, minlength=values.numel()).double()
    n_neg = counts.double() - n_pos
    return (n_neg, n_pos, pos_index) if with_positions else (n_neg, n_pos)


def _two_classes(n_neg: torch.Tensor, n_pos: torch.Tensor) -> torch.Tensor:
    return (n_neg.sum() > 0) & (n_pos.sum() > 0)


def _auroc(n_neg: torch.Tensor, n_pos: torch.Tensor) -> torch.Tensor:
    """P(pos > neg) + 0.5 P(pos == neg) from counts per distinct score; NaN with one class."""
    neg_below = n_neg.cumsum(0) - n_neg
    value = (n_pos * (neg_below + 0.5 * n_neg)).sum() / (n_pos.sum() * n_neg.sum())
    return torch.where(_two_classes(n_neg, n_pos), value, torch.nan)


def _ap(n_neg: torch.Tensor, n_pos: torch.Tensor) -> torch.Tensor:
    """sklearn's average precision (precision x recall increments, one threshold per distinct score,
    taken from the top); NaN with one class."""
    tp, fp = n_pos.flip(0).cumsum(0), n_neg.flip(0).cumsum(0)
    value = (n_pos.flip(0) / tp[-1] * tp / (tp + fp)).sum()
    return torch.where(_two_classes(n_neg, n_pos), value, torch.nan)


def _flip(value: torch.Tensor, flip_below_half: bool) -> torch.Tensor:
    return torch.where(value < 0.5, 1.0 - value, value) if flip_below_half else value


def _aupro(n_neg: torch.Tensor, pos_index: torch.Tensor, weight: torch.Tensor, fpr_limit: float) -> torch.Tensor:
    """Normalised area under PRO(FPR) up to `fpr_limit`, thresholds from the highest distinct score
    down (per_object.aupro's curve); NaN without defect-free pixels."""
    n_ok = n_neg.sum()
    pro_step = torch.zeros_like(n_neg).index_add_(0, pos_index, weight)
    zero = n_neg.new_zeros(1)
    fpr = torch.cat([zero, (n_neg.flip(0).cumsum(0) / n_ok).clamp(max=1.0)])
    pro = torch.cat([zero, pro_step.flip(0).cumsum(0).clamp(max=1.0)])
    # Trapezoids of every segment clipped to [0, fpr_limit], y interpolated linearly at the limit:
    # the CPU path's `_area_up_to` written without a data-dependent index.
    x0, x1, y0, y1 = fpr[:-1], fpr[1:], pro[:-1], pro[1:]
    end = x1.clamp(max=fpr_limit)
    width = (end - x0).clamp(min=0.0)
    y_end = torch.where(x1 > x0, y0 + (y1 - y0) * (end - x0) / (x1 - x0).clamp(min=1e-300), y1)
    area = (width * (y0 + y_end) * 0.5).sum() / fpr_limit
    return torch.where(n_ok > 0, area, torch.nan)
