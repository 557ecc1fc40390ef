"""`iufbench bench`: how fast each method trains, scores and extracts features on this machine, and
what that means for a paper-schedule run.

Shapes come from a protocol (default `mvtec_14_1`: the paper's EfficientNet-B4 at 224 px, 272
channels on a 14 x 14 grid) and the method's `paper` schedule (the reference model size). Speed
does not depend on weights, so the backbone is built with random weights (nothing is downloaded)
and the features are random. The projected paper-schedule run adds up training (the schedule's
samples), evaluation (every seen object's test images after every task: scoring, and the per-object
metrics timed on maps where the method leaves them) and extracting every image's features once. Training is measured in an incremental step (step 1), where IUF pays
for its projection and pull as well as its discriminator and compression loss. Each figure is
the median over repeats of the mean time of `steps` calls, after `warmup` calls; on CUDA it is
timed with CUDA events.
"""
from __future__ import annotations

import datetime as dt
import json
import resource
import statistics
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from iufbench.config import overrides_for, resolve_method_config
from iufbench.features import BackboneSpec, FeatureExtractor
from iufbench.methods import METHODS, Method, MethodContext, Scores, TrainTask
from iufbench.metrics.on_device import object_metrics_any
from iufbench.protocols import Protocol, load_protocol
from iufbench.records import atomic_write, versions
from iufbench.runtime import eval_batch_size, host, pick_device, pick_precision, seed_everything


@dataclass
class BenchOptions:
    methods: list[str]
    device: str = "auto"
    protocol: str = "mvtec_14_1"
    schedule: str = "paper"
    batch_size: int | None = None  # default: the protocol's paper base-task batch (24 for MVTec 14-1)
    eval_batch_size: int | None = None  # default: 32 on the CPU, 256 on CUDA (as `iufbench run`)
    precision: str = "auto"
    compile: bool = False
    warmup: int | None = None  # default: 1 on the CPU, 10 on CUDA (30 with --compile)
    repeats: int | None = None  # default: 3 on the CPU, 5 on CUDA
    steps: int | None = None  # calls per timed repeat; default: 1 on the CPU, 20 on CUDA


def _timed(fn: Callable[[], Any], device: torch.device, warmup: int, repeats: int, steps: int) -> float:
    """Median over `repeats` of the mean seconds per call of `fn`."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(steps):
                fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1000 / steps)
        else:
            t0 = time.perf_counter()
            for _ in range(steps):
                fn()
            times.append((time.perf_counter() - t0) / steps)
    return statistics.median(times)


def _peak_memory_gib(device: torch.device) -> float:
    """Peak GPU memory since the last reset on CUDA; the process's peak resident memory on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def paper_samples(protocol: Protocol) -> int | None:
    """Training samples of a paper-schedule run (drop-last batches), or None without image counts."""
    schedule = protocol.paper_schedule or {}
    if "train_images" not in schedule:
        return None
    return sum(e * (n // b) * b for e, n, b in
               zip(schedule["epochs"], schedule["train_images"], schedule["batch_size"]))


def paper_eval_images(protocol: Protocol) -> int | None:
    """Test images scored in a paper-schedule run (after every task, every object seen so far), or None
    without test image counts."""
    counts = (protocol.paper_schedule or {}).get("test_images")
    if counts is None:
        return None
    return sum(sum(counts[: t + 1]) for t in range(len(counts)))


def paper_images(protocol: Protocol) -> int | None:
    """Images whose features a paper-schedule run extracts once (training and test), or None."""
    schedule = protocol.paper_schedule or {}
    if "train_images" not in schedule or "test_images" not in schedule:
        return None
    return sum(schedule["train_images"]) + sum(schedule["test_images"])


def _metric_seconds_per_image(scores: Scores, protocol: Protocol) -> float:
    """Wall seconds per test image of the per-object metrics on maps where `scores` has them (the GPU
    path for maps on a GPU), for an object of the protocol's mean test size built from `scores`' maps
    repeated (random masks: a rectangle in two thirds of the images). Metrics read back to the host,
    so the wall time is the whole cost."""
    counts = (protocol.paper_schedule or {}).get("test_images")
    n = round(sum(counts) / len(protocol.objects)) if counts else 100
    image = scores.image.float().repeat((n + len(scores.image) - 1) // len(scores.image))[:n]
    maps = None if scores.maps is None else scores.maps.float().repeat(
        (n + len(scores.maps) - 1) // len(scores.maps), 1, 1)[:n]
    h, w = protocol.image_size
    rng = np.random.default_rng(0)
    labels = (np.arange(n) % 3 != 0).astype(np.int64)
    masks = np.zeros((n, h, w), dtype=bool)
    for i in np.flatnonzero(labels):
        y, x = rng.integers(0, h // 2), rng.integers(0, w // 2)
        masks[i, y : y + h // 8, x : x + w // 8] = True
    object_metrics_any(image, labels, maps, masks)  # warm-up (CUDA kernels, allocator)
    t0 = time.perf_counter()
    object_metrics_any(image, labels, maps, masks)
    return (time.perf_counter() - t0) / n


def _inputs(n: int, shape: tuple[int, ...], kind: str, device: torch.device) -> torch.Tensor:
    """Random features, or random uint8 images for methods that learn from pixels."""
    if kind == "images":
        return torch.randint(0, 256, (n, *shape), dtype=torch.uint8, device=device)
    return torch.randn(n, *shape, device=device)


def _task(step: int, n: int, shape: tuple[int, ...], objects: int, device: torch.device,
          kind: str = "features") -> TrainTask:
    names = tuple(f"object{i}" for i in range(objects))
    return TrainTask(step=step, new_objects=names[-1:], objects=names[-1:], label_space=names,
                     features=_inputs(n, shape, kind, device),
                     labels=torch.randint(0, objects, (n,), device=device))


def _learn_eagerly(method: Method, task: TrainTask) -> None:
    """Learn an untimed set-up task without `--compile`: compiling it too would double the compile time
    (a new task's optimiser is a new graph anyway); only the incremental step is timed or compared."""
    ctx = method.ctx
    method.ctx = replace(ctx, compile=False)
    try:
        method.learn(task)
    finally:
        method.ctx = ctx


def _bench_method(name: str, protocol: Protocol, shape: tuple[int, int, int], device: torch.device,
                  precision: str, opts: BenchOptions, batch: int, eval_batch: int,
                  timing: dict[str, int]) -> dict[str, Any]:
    method_cls = METHODS.get(name)
    config = resolve_method_config(name, protocol, opts.schedule,
                                   overrides_for(name, ["train.epochs=1", f"train.batch_size={batch}"]))
    kind = method_cls.inputs
    ctx = MethodContext.for_method(method_cls, shape, protocol.image_size, device, 0, progress=False,
                                   precision=precision, compile=opts.compile, backbone=protocol.backbone)
    shape = method_cls.input_shape(shape, protocol.image_size)
    seed_everything(0)
    _reset_peak(device)
    method: Method = method_cls(config, ctx)
    objects = len(protocol.tasks[0]) + 1
    _learn_eagerly(method, _task(0, batch, shape, objects - 1, device, kind))  # a base task: step 1 is incremental
    step = _task(1, batch, shape, objects, device, kind)
    result: dict[str, Any] = {"method": name}
    if hasattr(method, "train_step"):
        method.before_task(step)
        optimizer = method.make_optimizer(step)
        method.model.train()
        seconds = _timed(lambda: method.train_step(step.features, step.labels, optimizer), device, **timing)
    else:  # no gradient steps (memory banks): time a whole fit of one batch of images
        seconds = _timed(lambda: method.learn(step), device, **timing)
    result["train_step_ms"] = seconds * 1000
    result["train_img_s"] = batch / seconds
    result["train_peak_gib"] = _peak_memory_gib(device)
    test = _inputs(eval_batch, shape, kind, device)
    _reset_peak(device)
    seconds = _timed(lambda: method.score(test), device, **timing)
    result["infer_img_s"] = eval_batch / seconds
    result["metrics_ms_per_image"] = _metric_seconds_per_image(method.score(test), protocol) * 1000
    result["infer_peak_gib"] = _peak_memory_gib(device)
    return result


def _bench_features(protocol: Protocol, device: torch.device, timing: dict[str, int]) -> tuple[dict, tuple]:
    spec = BackboneSpec(**{**asdict(protocol.backbone), "weights": "random"})
    extractor = FeatureExtractor(spec).to(device)
    batch = extractor.batch_size(device)
    images = np.random.default_rng(0).integers(0, 256, (batch, *protocol.image_size, 3), dtype=np.uint8)
    shape = tuple(extractor.extract(images[:1], device).shape[1:])
    _reset_peak(device)
    seconds = _timed(lambda: extractor.extract(images, device), device, **timing)
    return {"backbone": spec.name, "batch": batch, "img_s": batch / seconds,
            "peak_gib": _peak_memory_gib(device)}, shape


def loss_trajectory(name: str, device: torch.device, precision: str, compile: bool = False, steps: int = 12,
                    overrides: tuple[str, ...] = ()) -> list[float]:
    """Losses of `steps` updates from one seed, in the incremental step of a two-task stream (so IUF's
    projection and pull act): the fast path's correctness check against the plain fp32 path."""
    shape = (40, 8, 8)
    config = resolve_method_config(name, load_protocol("demo"), overrides=list(overrides))
    torch.manual_seed(0)
    data = torch.randn(2, 16, *shape, device=device)
    method_cls = METHODS.get(name)
    ctx = MethodContext.for_method(method_cls, shape, (32, 32), device, 0, progress=False, precision=precision,
                                   compile=compile)
    method = method_cls(config, ctx)
    names = ("a", "b")
    zeros, ones = (torch.full((16,), v, dtype=torch.long, device=device) for v in (0, 1))
    _learn_eagerly(method, TrainTask(0, names[:1], names[:1], names[:1], data[0], zeros))
    step = TrainTask(1, names[1:], names[1:], names, data[1], ones)
    method.before_task(step)
    optimizer = method.make_optimizer(step)
    torch.manual_seed(1)
    batch = int(config["train"]["batch_size"][1])
    out = []
    for i in range(steps):
        start = batch * i % (16 - batch + 1)
        loss, _ = method.train_step(step.features[start : start + batch], step.labels[start : start + batch], optimizer)
        out.append(float(loss))
    return out


def run_bench(opts: BenchOptions) -> dict[str, Any]:
    """Measure every method; returns the JSON-ready report."""
    t0 = time.perf_counter()
    device = pick_device(opts.device)
    precision = pick_precision(opts.precision, device)
    protocol = load_protocol(opts.protocol, require_roots=False)
    for name in opts.methods:
        METHODS.get(name)
    cuda = device.type == "cuda"
    timing = {"warmup": opts.warmup if opts.warmup is not None else (30 if opts.compile else 10) if cuda else 1,
              "repeats": opts.repeats or (5 if cuda else 3), "steps": opts.steps or (20 if cuda else 1)}
    batch = opts.batch_size or int((protocol.paper_schedule or {}).get("batch_size", [24])[0])
    eval_batch = eval_batch_size(opts.eval_batch_size, device)
    features, shape = _bench_features(protocol, device, timing)
    rows = [_bench_method(m, protocol, shape, device, precision, opts, batch, eval_batch, timing)
            for m in opts.methods]
    samples, eval_images, images = paper_samples(protocol), paper_eval_images(protocol), paper_images(protocol)
    for row in rows:
        row.update(_paper_minutes(row, features["img_s"], samples, eval_images, images))
    return {
        "created": dt.datetime.now().isoformat(timespec="seconds"), "device": str(device),
        "host": host(device), "versions": versions(), "precision": precision, "compile": opts.compile,
        "protocol": protocol.name, "feature_shape": list(shape), "schedule": opts.schedule, "batch_size": batch,
        "eval_batch_size": eval_batch, "timing": timing, "paper_samples": samples,
        "paper_eval_images": eval_images, "paper_images": images, "features": features,
        "methods": rows, "seconds": round(time.perf_counter() - t0, 1),
    }


def _paper_minutes(row: dict[str, Any], feature_img_s: float, samples: int | None, eval_images: int | None,
                   images: int | None) -> dict[str, float | None]:
    """A paper-schedule run's minutes at the measured speeds: training, evaluation (scoring and metrics
    after every task), feature extraction (every image once), and their sum (None without counts)."""
    train = samples / row["train_img_s"] / 60 if samples else None
    evaluation = (eval_images * (1 / row["infer_img_s"] + row["metrics_ms_per_image"] / 1000) / 60
                  if eval_images else None)
    extraction = images / feature_img_s / 60 if images else None
    parts = (train, evaluation, extraction)
    return {"paper_train_minutes": train, "paper_eval_minutes": evaluation, "paper_features_minutes": extraction,
            "paper_run_minutes": None if None in parts else sum(parts)}


def format_report(report: dict[str, Any]) -> str:
    head = (f"iufbench bench on {report['host'].get('gpu') or report['device']}: protocol {report['protocol']} "
            f"(features {'x'.join(map(str, report['feature_shape']))}), schedule {report['schedule']}, "
            f"batch {report['batch_size']}, {report['precision']}{', compiled' if report['compile'] else ''}")
    lines = [head, f"{'method':<14} {'train img/s':>12} {'step ms':>9} {'infer img/s':>12} {'metric ms/img':>13} "
             f"{'peak GiB':>9} {'paper train':>11} {'paper eval':>10} {'paper run':>10}"]
    for r in report["methods"]:
        lines.append(f"{r['method']:<14} {r['train_img_s']:>12.1f} {r['train_step_ms']:>9.2f} "
                     f"{r['infer_img_s']:>12.1f} {r['metrics_ms_per_image']:>13.3f} "
                     f"{max(r['train_peak_gib'], r['infer_peak_gib']):>9.2f} {_duration(r['paper_train_minutes']):>11} "
                     f"{_duration(r['paper_eval_minutes']):>10} {_duration(r['paper_run_minutes']):>10}")
    f = report["features"]
    lines.append(f"features ({f['backbone']}, batch {f['batch']}): {f['img_s']:.1f} img/s")
    if report["paper_samples"]:
        lines.append(f"paper train = {report['paper_samples']:,} training samples of {report['protocol']}'s paper "
                     "schedule at the measured training speed")
    if report["paper_eval_images"]:
        lines.append(f"paper eval = {report['paper_eval_images']:,} test images scored (every seen object after "
                     "every task) at the measured inference speed, plus the per-object metrics per image")
    if report["paper_images"]:
        lines.append(f"paper run = paper train + paper eval + features of {report['paper_images']:,} images "
                     "extracted once")
    mem = "peak GPU memory allocated" if report["device"].startswith("cuda") else "peak resident memory of the process"
    lines.append(f"peak GiB = {mem}")
    return "\n".join(lines)


def _duration(minutes: float | None) -> str:
    if minutes is None:
        return "n/a"
    return f"{minutes:.1f} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def write_report(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(report, indent=2))
