"""Pixel AUROC / AP of one object's test set, two stages, each against the code it replaced,
interleaved in one process, results compared:
- ranking: one value sort plus a search for the defective pixels (ours) against `np.unique` with the
  inverse over every pixel (the previous code); the per-score counts must be identical;
- metrics: from per-distinct-score counts (ours) against sklearn on the same weighted entries.

    .venv/bin/python benchmarks/pixel_metrics.py [--images 130] [--size 224] [--repeats 5]

Prints the median seconds of each arm, their ratio, and the largest difference of the two results.
"""
from __future__ import annotations

import argparse
from typing import Callable

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from iufbench.metrics.per_object import _ap_from_counts, _auroc_from_counts, _rank_pixels
from timing import interleave


def unique_arm(maps: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    values, index = np.unique(maps.ravel(), return_inverse=True)
    n_pos = np.bincount(index.ravel()[masks.ravel()], minlength=values.size)
    return values, n_pos, np.bincount(index.ravel(), minlength=values.size) - n_pos


def sort_arm(maps: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ranks = _rank_pixels(maps, masks)
    return ranks.values, ranks.n_pos, ranks.n_neg


def sklearn_arm(ranks) -> tuple[float, float]:  # noqa: ANN001
    has_neg, has_pos = ranks.n_neg > 0, ranks.n_pos > 0
    s = np.concatenate((ranks.values[has_neg], ranks.values[has_pos]))
    y = np.concatenate((np.zeros(has_neg.sum(), np.int8), np.ones(has_pos.sum(), np.int8)))
    w = np.concatenate((ranks.n_neg[has_neg], ranks.n_pos[has_pos])).astype(np.float64)
    return roc_auc_score(y, s, sample_weight=w), average_precision_score(y, s, sample_weight=w)


def counts_arm(ranks) -> tuple[float, float]:  # noqa: ANN001
    return _auroc_from_counts(ranks.n_neg, ranks.n_pos), _ap_from_counts(ranks.n_neg, ranks.n_pos)


def inputs(images: int = 130, size: int = 224) -> tuple[np.ndarray, np.ndarray]:
    """Random maps (all scores distinct: the worst case) and masks with a defect on half the images."""
    rng = np.random.default_rng(0)
    maps = rng.random((images, size, size)).astype(np.float32)
    masks = np.zeros_like(maps, dtype=bool)
    masks[images // 2:, size // 4: size // 2, size // 4: size // 2] = True
    maps[masks] += 0.2
    return maps, masks


def ranking_arms(maps: np.ndarray, masks: np.ndarray) -> dict[str, Callable[[], tuple]]:
    return {"unique": lambda: unique_arm(maps, masks), "sort": lambda: sort_arm(maps, masks)}


def metric_arms(ranks) -> dict[str, Callable[[], tuple[float, float]]]:  # noqa: ANN001
    return {"sklearn": lambda: sklearn_arm(ranks), "counts": lambda: counts_arm(ranks)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=130)  # a DeepPCB board's test set is 8-196 images
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    maps, masks = inputs(args.images, args.size)
    print(f"{args.images} maps of {args.size}x{args.size}")
    rank_times = interleave(ranking_arms(maps, masks), args.repeats)
    same = all(np.array_equal(a, b) for a, b in zip(unique_arm(maps, masks), sort_arm(maps, masks)))
    print(f"ranking: np.unique {rank_times['unique'][0]:.3f} s   sort {rank_times['sort'][0]:.3f} s   ratio "
          f"{rank_times['unique'][0] / rank_times['sort'][0]:.1f}x   identical counts: {same}")
    ranks = _rank_pixels(maps, masks)
    med = interleave(metric_arms(ranks), args.repeats)
    diff = max(abs(a - b) for a, b in zip(med["sklearn"][1], med["counts"][1]))
    print(f"metrics: {ranks.values.size} distinct scores   sklearn {med['sklearn'][0]:.3f} s   counts "
          f"{med['counts'][0]:.4f} s   ratio {med['sklearn'][0] / med['counts'][0]:.0f}x   max |difference| {diff:.1e}")


if __name__ == "__main__":
    main()
