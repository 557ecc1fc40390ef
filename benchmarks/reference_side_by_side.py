"""The published UniAD code (zhiyuanyou/UniAD) against iufbench's `uniad` on this machine, side by side
in one process, the arms taking turns (`timing.interleave`):

- train: one training step of the paper-size model (hidden 256, FFN 1024, 4 + 4 layers, 7 x 7
  neighbour mask) on cached features (272 channels on 14 x 14 tokens: EfficientNet-B4 at 224 px),
  AdamW, gradient clipping at 0.1, batch 8 (the reference config's batch);
- infer: images -> anomaly maps, backbone included: the reference's whole model (its own
  EfficientNet-B4 + MFCN neck + transformer) at its test batch, against our feature extractor
  (timm `tf_efficientnet_b4`) + `UniADMethod.score` at ours.

    .venv/bin/python benchmarks/reference_side_by_side.py --reference /path/to/UniAD [--part train|infer|both]
        [--repeats 5] [--batch 8] [--infer-batch 32] [--compile]

The reference checkout is the path to a clone of github.com/zhiyuanyou/UniAD (or the environment
variable IUFBENCH_REFERENCE_UNIAD); nothing of it is copied here: its modules are imported from that
path. Both arms get random inputs of the right shapes and random weights (speed does not depend on
them; nothing is downloaded). The reference hard-codes `.cuda()` on two tensors; on the CPU those
calls are made no-ops while its arm runs. Prints images/s of each arm and the ratio.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from iufbench.config import resolve_method_config  # noqa: E402
from iufbench.features import BackboneSpec, FeatureExtractor  # noqa: E402
from iufbench.methods import METHODS, MethodContext, TrainTask  # noqa: E402
from iufbench.protocols import load_protocol  # noqa: E402
from timing import interleave  # noqa: E402

ENV = "IUFBENCH_REFERENCE_UNIAD"
CPU = torch.device("cpu")
SHAPE = (272, 14, 14)  # EfficientNet-B4 blocks 1, 5, 9, 21 at 224 px, resized to stride 16
IMAGE = (224, 224)


def reference_root(path: str | None = None) -> Path | None:
    """The reference checkout from the argument or $IUFBENCH_REFERENCE_UNIAD; None when neither is set."""
    path = path or os.environ.get(ENV)
    if not path:
        return None
    root = Path(path).expanduser().resolve()
    if not (root / "models" / "reconstructions" / "uniad.py").is_file():
        sys.exit(f"{root} is not a UniAD checkout (no models/reconstructions/uniad.py); "
                 "clone github.com/zhiyuanyou/UniAD and pass its path")
    return root


class _Attrs(dict):
    """The attribute-style dict the reference's config code expects (it uses easydict)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(name) from exc

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    @classmethod
    def of(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return cls({k: cls.of(v) for k, v in value.items()})
        if isinstance(value, list):
            return [cls.of(v) for v in value]
        return value


@contextlib.contextmanager
def _cuda_is_cpu() -> Iterator[None]:
    """The reference moves its jitter noise and neighbour mask with `.cuda()`: keep them on the CPU."""
    original = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *args, **kwargs: self  # type: ignore[method-assign]
    try:
        yield
    finally:
        torch.Tensor.cuda = original  # type: ignore[method-assign]


def _reference_model(root: Path) -> torch.nn.Module:
    """The reference's MVTec model (experiments/MVTec-AD/config.yaml) built by its own code, random
    weights, on the CPU; its submodules are `backbone`, `neck` and `reconstruction`."""
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    misc = importlib.import_module("utils.misc_helper")
    helper = importlib.import_module("models.model_helper")
    config = _Attrs.of(yaml.safe_load((root / "experiments" / "MVTec-AD" / "config.yaml").read_text()))
    misc.update_config(config)
    config.net[0].kwargs.pretrained = False  # random weights: nothing downloaded
    config.net[2].kwargs.save_recon = False  # do not write reconstructions to disk while timing
    with _cuda_is_cpu():
        return helper.ModelHelper(config.net).cpu()


def reference_train_arm(root: Path, batch: int) -> Callable[[], None]:
    """One step of the reference's training loop (tools/train_val.py) on its transformer alone, fed
    cached features: forward, FeatureMSELoss, zero_grad, backward, clip 0.1, AdamW (its config)."""
    model = _reference_model(root).reconstruction.train()
    criterion = importlib.import_module("utils.criterion_helper").FeatureMSELoss(weight=1.0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.999), weight_decay=1e-4)
    features = torch.randn(batch, *SHAPE)

    def step() -> None:
        with _cuda_is_cpu():
            outputs = model({"feature_align": features})
            loss = criterion(outputs)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
            optimizer.step()

    return step


def reference_infer_arm(root: Path, batch: int) -> Callable[[], torch.Tensor]:
    """The reference's evaluation forward (tools/train_val.validate): normalised images -> its whole
    model in eval mode under no_grad -> `pred`, the upsampled anomaly maps."""
    model = _reference_model(root)
    model.eval()
    images = torch.randn(batch, 3, *IMAGE)

    @torch.no_grad()
    def infer() -> torch.Tensor:
        with _cuda_is_cpu():
            return model({"image": images})["pred"]

    return infer


def _our_method(batch: int, compile: bool = False):  # noqa: ANN202 - a UniADMethod
    protocol = load_protocol("mvtec_14_1", require_roots=False)
    config = resolve_method_config("uniad", protocol, "paper", ["train.epochs=1", f"train.batch_size={batch}"])
    cls = METHODS.get("uniad")
    ctx = MethodContext.for_method(cls, SHAPE, IMAGE, CPU, seed=0, progress=False, compile=compile)
    return cls(config, ctx), protocol


def our_train_arm(batch: int, compile: bool = False) -> Callable[[], None]:
    """`UniADMethod.train_step` (what `iufbench run` calls per batch) in the base task, AdamW."""
    torch.manual_seed(0)
    method, _ = _our_method(batch, compile)
    features, labels = torch.randn(batch, *SHAPE), torch.zeros(batch, dtype=torch.long)
    optimizer = method.make_optimizer(TrainTask(0, ("a",), ("a",), ("a",), features, labels))
    method.model.train()
    return lambda: method.train_step(features, labels, optimizer)


def our_infer_arm(batch: int) -> Callable[[], torch.Tensor]:
    """uint8 images -> `FeatureExtractor` (the protocol's B4, random weights) -> `UniADMethod.score`."""
    torch.manual_seed(0)
    method, protocol = _our_method(8)
    spec = BackboneSpec(**{**protocol.backbone.__dict__, "weights": "random"})
    extractor = FeatureExtractor(spec)
    images = np.random.default_rng(0).integers(0, 256, (batch, *IMAGE, 3), dtype=np.uint8)
    return lambda: method.score(extractor.extract(images, CPU)).maps


def side_by_side(arms: dict[str, tuple[Callable[[], Any], int]], repeats: int) -> dict[str, float]:
    """Images/s of each arm (median of `repeats` interleaved calls after one warm-up call each)."""
    for arm, _ in arms.values():
        arm()
    timed = interleave({name: arm for name, (arm, _) in arms.items()}, repeats)
    return {name: arms[name][1] / seconds for name, (seconds, _) in timed.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", help=f"UniAD checkout (default: ${ENV})")
    parser.add_argument("--part", choices=["train", "infer", "both"], default="both")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8, help="training batch, and the reference's test batch")
    parser.add_argument("--infer-batch", type=int, default=32, help="our evaluation batch (iufbench run: 32 on the CPU)")
    parser.add_argument("--compile", action="store_true", help="our training step under torch.compile (inductor)")
    args = parser.parse_args()
    root = reference_root(args.reference)
    if root is None:
        sys.exit(f"give the reference checkout: --reference PATH or ${ENV}")
    print(f"reference {root}; torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
          f"median of {args.repeats} interleaved calls")
    if args.part in ("train", "both"):
        t0 = time.perf_counter()
        ours = our_train_arm(args.batch, args.compile)
        ours()
        first = time.perf_counter() - t0
        speed = side_by_side({"reference": (reference_train_arm(root, args.batch), args.batch),
                              "iufbench": (ours, args.batch)}, args.repeats)
        print(f"train, batch {args.batch}, cached features{', ours compiled' if args.compile else ''}: "
              f"reference {speed['reference']:.2f} img/s, iufbench {speed['iufbench']:.2f} img/s, "
              f"ratio {speed['iufbench'] / speed['reference']:.2f}x (our first step incl. set-up {first:.1f} s)")
    if args.part in ("infer", "both"):
        speed = side_by_side({"reference": (reference_infer_arm(root, args.batch), args.batch),
                              "iufbench": (our_infer_arm(args.infer_batch), args.infer_batch)}, args.repeats)
        print(f"infer from images, batch {args.batch} (reference) / {args.infer_batch} (iufbench): "
              f"reference {speed['reference']:.2f} img/s, iufbench {speed['iufbench']:.2f} img/s, "
              f"ratio {speed['iufbench'] / speed['reference']:.2f}x")


if __name__ == "__main__":
    main()
