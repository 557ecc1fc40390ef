"""Training-epoch speed-up of the feature cache over running the frozen backbone every iteration.

Both arms train the same UniAD transformer (the method's `fast` schedule config) for one epoch
on the same images, side by side in one process; the ratio is what `iufbench run` saves by
computing each image's features once per run.

    .venv/bin/python benchmarks/feature_cache.py [--image-size 128] [--images 64] [--repeats 3]
"""
from __future__ import annotations

import argparse
import os
import time
from typing import Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from iufbench.config import resolve_method_config  # noqa: E402
from iufbench.data.synth import render_sample  # noqa: E402
from iufbench.features import BackboneSpec, FeatureExtractor  # noqa: E402
from iufbench.methods.uniad.torch_model import UniAD, UniADConfig  # noqa: E402
from iufbench.protocols import load_protocol  # noqa: E402
from timing import interleave  # noqa: E402


def epoch(model: UniAD, opt: torch.optim.Optimizer, batches: list, features_of) -> float:
    t0 = time.perf_counter()
    for batch in batches:
        feats = features_of(batch)
        loss = F.mse_loss(model(feats), feats)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def arms(image_size: int = 128, images: int = 64, batch_size: int = 16) -> dict[str, Callable[[], float]]:
    """One training epoch running the backbone on every batch, and one reading cached features; the
    same model and optimiser (also `test_side_by_side.py`'s)."""
    torch.manual_seed(0)
    device = torch.device("cpu")
    pixels = np.stack([render_sample("wood", image_size, 0, "train/good", i)[0] for i in range(images)])
    extractor = FeatureExtractor(BackboneSpec())
    cached = extractor.extract(pixels, device)
    config = resolve_method_config("uniad", load_protocol("demo"))
    model = UniAD(UniADConfig.from_config(cached.shape[1], cached.shape[2:], config["model"]))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batches = [slice(i, i + batch_size) for i in range(0, images, batch_size)]
    return {"backbone every iteration": lambda: epoch(model, opt, batches, lambda s: extractor(torch.from_numpy(pixels[s]))),
            "cached features": lambda: epoch(model, opt, batches, lambda s: cached[s])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    epochs = arms(args.image_size, args.images, args.batch_size)
    for run_epoch in epochs.values():  # warm-up
        run_epoch()
    timed = interleave(epochs, args.repeats)  # interleaved, so machine load affects both arms alike
    b, c = (timed[name][0] for name in epochs)
    print(f"{args.images} images at {args.image_size}px, batch {args.batch_size}, {torch.get_num_threads()} threads, "
          f"median of {args.repeats} epochs")
    print(f"backbone every iteration: {b:.2f} s/epoch ({args.images / b:.1f} img/s)")
    print(f"cached features:          {c:.2f} s/epoch ({args.images / c:.1f} img/s)")
    print(f"feature cache speed-up:   {b / c:.2f}x")


if __name__ == "__main__":
    main()
