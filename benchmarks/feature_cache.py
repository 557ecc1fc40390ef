"""Training-epoch speed-up of the feature cache over running the frozen backbone every iteration.

Both arms train the same UniAD transformer (the method's `fast` schedule config) for one epoch
on the same images, side by side in one process; the ratio is what `iufbench run` saves by
computing each image's features once per run.

    .venv/bin/python benchmarks/feature_cache.py [--image-size 128] [--images 64] [--repeats 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from iufbench.config import resolve_method_config  # noqa: E402
from iufbench.data.synth import render_sample  # noqa: E402
from iufbench.features import BackboneSpec, FeatureExtractor  # noqa: E402
from iufbench.methods.uniad.torch_model import UniAD, UniADConfig  # noqa: E402
from iufbench.protocols import load_protocol  # noqa: E402


def epoch(model: UniAD, opt: torch.optim.Optimizer, batches: list, features_of) -> float:
    t0 = time.perf_counter()
    for batch in batches:
        feats = features_of(batch)
        loss = F.mse_loss(model(feats), feats)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    device = torch.device("cpu")
    images = np.stack([render_sample("wood", args.image_size, 0, "train/good", i)[0] for i in range(args.images)])
    extractor = FeatureExtractor(BackboneSpec())
    cached = extractor.extract(images, device)
    config = resolve_method_config("uniad", load_protocol("demo"))
    model = UniAD(UniADConfig.from_config(cached.shape[1], cached.shape[2:], config["model"]))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batches = [slice(i, i + args.batch_size) for i in range(0, args.images, args.batch_size)]
    backbone_arm = lambda s: extractor(torch.from_numpy(images[s]))  # noqa: E731
    cache_arm = lambda s: cached[s]  # noqa: E731
    epoch(model, opt, batches[:1], cache_arm)  # warm-up
    epoch(model, opt, batches[:1], backbone_arm)
    with_backbone, with_cache = [], []
    for _ in range(args.repeats):  # interleaved, so machine load affects both arms alike
        with_backbone.append(epoch(model, opt, batches, backbone_arm))
        with_cache.append(epoch(model, opt, batches, cache_arm))
    b, c = statistics.median(with_backbone), statistics.median(with_cache)
    print(f"{args.images} images at {args.image_size}px, batch {args.batch_size}, {torch.get_num_threads()} threads, "
          f"median of {args.repeats} epochs")
    print(f"backbone every iteration: {b:.2f} s/epoch ({args.images / b:.1f} img/s)")
    print(f"cached features:          {c:.2f} s/epoch ({args.images / c:.1f} img/s)")
    print(f"feature cache speed-up:   {b / c:.2f}x")


if __name__ == "__main__":
    main()
