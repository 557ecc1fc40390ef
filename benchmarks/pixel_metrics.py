"""Pixel AUROC / AP of one object's test set: from per-distinct-score counts (ours) against sklearn on
the same weighted entries (the previous code), interleaved in one process, results compared.

    .venv/bin/python benchmarks/pixel_metrics.py [--images 130] [--size 224] [--repeats 5]

Prints the median seconds of each arm, their ratio, and the largest difference of the two results.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from iufbench.metrics.per_object import _ap_from_counts, _auroc_from_counts, _rank_pixels


def sklearn_arm(ranks) -> tuple[float, float]:  # noqa: ANN001
    has_neg, has_pos = ranks.n_neg > 0, ranks.n_pos > 0
    s = np.concatenate((ranks.values[has_neg], ranks.values[has_pos]))
    y = np.concatenate((np.zeros(has_neg.sum(), np.int8), np.ones(has_pos.sum(), np.int8)))
    w = np.concatenate((ranks.n_neg[has_neg], ranks.n_pos[has_pos])).astype(np.float64)
    return roc_auc_score(y, s, sample_weight=w), average_precision_score(y, s, sample_weight=w)


def counts_arm(ranks) -> tuple[float, float]:  # noqa: ANN001
    return _auroc_from_counts(ranks.n_neg, ranks.n_pos), _ap_from_counts(ranks.n_neg, ranks.n_pos)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=130)  # a DeepPCB board's test set is 8-196 images
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    maps = rng.random((args.images, args.size, args.size)).astype(np.float32)  # all scores distinct: worst case
    masks = np.zeros_like(maps, dtype=bool)
    masks[args.images // 2:, args.size // 4: args.size // 2, args.size // 4: args.size // 2] = True
    maps[masks] += 0.2
    ranks = _rank_pixels(maps, masks)
    times: dict[str, list[float]] = {"sklearn": [], "counts": []}
    results = {}
    for _ in range(args.repeats):
        for name, arm in (("sklearn", sklearn_arm), ("counts", counts_arm)):
            t0 = time.perf_counter()
            results[name] = arm(ranks)
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    diff = max(abs(a - b) for a, b in zip(results["sklearn"], results["counts"]))
    print(f"{args.images} maps of {args.size}x{args.size}, {ranks.values.size} distinct scores")
    print(f"sklearn {med['sklearn']:.3f} s   counts {med['counts']:.4f} s   ratio {med['sklearn'] / med['counts']:.0f}x"
          f"   max |difference| {diff:.1e}")


if __name__ == "__main__":
    main()
