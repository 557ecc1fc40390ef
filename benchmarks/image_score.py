"""UniAD's image score (max of the k x k mean of the anomaly map): the separable pooling (ours)
against one 2-D `avg_pool2d` window (the previous code), interleaved in one process, results compared.

    .venv/bin/python benchmarks/image_score.py [--images 132] [--size 224] [--kernel 16] [--repeats 5]

Prints the median seconds of each arm, their ratio and the largest relative difference of the scores.
"""
from __future__ import annotations

import argparse
from typing import Callable

import torch
import torch.nn.functional as F

from iufbench.methods.uniad.method import image_score
from timing import interleave


def square_arm(maps: torch.Tensor, k: int) -> torch.Tensor:
    return F.avg_pool2d(maps.unsqueeze(1), k, stride=1).flatten(1).max(dim=1).values


def arms(images: int = 132, size: int = 224, kernel: int = 16) -> dict[str, Callable[[], torch.Tensor]]:
    """Both arms on the same random maps (also `test_side_by_side.py`'s)."""
    maps = torch.rand(images, size, size, generator=torch.Generator().manual_seed(0))
    return {"2-D window": lambda: square_arm(maps, kernel), "separable": lambda: image_score(maps, "max", kernel)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=132)  # one DeepPCB board's test set
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--kernel", type=int, default=16)  # methods/uniad.yaml score.kernel
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    timed = interleave(arms(args.images, args.size, args.kernel), args.repeats)
    med = {name: seconds for name, (seconds, _) in timed.items()}
    results = {name: scores for name, (_, scores) in timed.items()}
    rel = ((results["separable"] - results["2-D window"]).abs() / results["2-D window"]).max().item()
    print(f"{args.images} maps of {args.size}x{args.size}, kernel {args.kernel}, {torch.get_num_threads()} thread(s)")
    print(f"2-D window {med['2-D window']:.3f} s   separable {med['separable']:.3f} s   ratio "
          f"{med['2-D window'] / med['separable']:.1f}x   max relative difference {rel:.1e}")


if __name__ == "__main__":
    main()
