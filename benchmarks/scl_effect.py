"""What the paper-form Semantic Compression Loss does to the model, on the tuning stream `demo_val`.

    .venv/bin/python benchmarks/scl_effect.py [--seeds 0,1]

Trains the base task of `demo_val` with `iuf` (SCL on, paper form), `iuf` with `scl.normalise=true`
(`iuf+norm`: the paper form divided by the sum of all singular values) and `iuf_no_scl` (same seed)
and prints, per run: the SCL value and the total singular-value mass of the spatially averaged encoder
output on the training set, the share of that mass outside the top `keep`, the mean |gain| of the
encoder's last LayerNorm, the reconstruction MSE, and the base objects' mean image / pixel AUROC.
"""
from __future__ import annotations

import argparse
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from iufbench.config import resolve_method_config  # noqa: E402
from iufbench.feature_bank import FeatureBank  # noqa: E402
from iufbench.features import FeatureExtractor  # noqa: E402
from iufbench.methods import METHODS, MethodContext, TrainTask  # noqa: E402
from iufbench.methods.iuf.compression import paper_scl, singular_values, tail_share  # noqa: E402
from iufbench.metrics import object_metrics  # noqa: E402
from iufbench.protocols import load_protocol, resolve_objects  # noqa: E402
from iufbench.runtime import seed_everything, step_seed  # noqa: E402

CPU = torch.device("cpu")
ARMS = {"iuf": ("iuf", []), "iuf+norm": ("iuf", ["scl.normalise=true"]), "iuf_no_scl": ("iuf_no_scl", [])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", default="0,1")
    args = parser.parse_args()
    protocol = load_protocol("demo_val")
    base = protocol.tasks[0]
    objects = {k: v for k, v in resolve_objects(protocol).items() if k in base}
    bank = FeatureBank.build(objects, FeatureExtractor(protocol.backbone), protocol.image_size, CPU, False)
    features = torch.cat([bank[o].train for o in base])
    labels = torch.cat([torch.full((len(bank[o].train),), i) for i, o in enumerate(base)])
    task = TrainTask(0, base, base, base, features, labels)
    print(f"{'method':<11} {'seed':>4} {'L_sc':>8} {'sum sigma':>10} {'tail share':>10} {'LN gain':>8} "
          f"{'MSE':>8} {'image AUROC':>11} {'pixel AUROC':>11}")
    for seed in (int(s) for s in args.seeds.split(",")):
        for label, (name, overrides) in ARMS.items():
            config = resolve_method_config(name, protocol, overrides=overrides)
            seed_everything(seed)
            cls = METHODS.get(name)
            method = cls(config, MethodContext.for_method(cls, bank.feature_shape, protocol.image_size, CPU, seed,
                                                          progress=False))
            seed_everything(step_seed(seed, 0))
            method.learn(task)
            model = method.model.eval()
            keep = config["scl"]["keep"]
            with torch.no_grad():
                out = model.forward_all(features)
                s = singular_values(out.encoder)
                mse = torch.nn.functional.mse_loss(out.reconstruction, features).item()
                scl = paper_scl(out.encoder, keep).item()
            gain = model.uniad.encoder[-1].norm2.weight.abs().mean().item()
            image, pixel = [], []
            for obj in base:
                scores = method.score(bank[obj].test)
                m = object_metrics(scores.image.numpy(), bank[obj].labels, scores.maps.numpy(), bank[obj].masks)
                image.append(m["image_auroc"])
                pixel.append(m["pixel_auroc"])
            print(f"{label:<11} {seed:>4} {scl:>8.3f} {s.sum().item():>10.3f} {tail_share(out.encoder, keep):>10.3f} "
                  f"{gain:>8.3f} {mse:>8.3f} {100 * np.mean(image):>11.1f} {100 * np.mean(pixel):>11.1f}")


if __name__ == "__main__":
    main()
