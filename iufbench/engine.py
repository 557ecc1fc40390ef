"""The step loop: for each method and seed, train task by task, evaluate every object seen so far
after each task, record the step x object matrix, checkpoint, and resume from the last finished step.

The engine, not the method, decides which training images a method receives: only the current
task's objects, unless the method class is registered as seeing old data (joint, replay).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import resource
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from iufbench.checkpoints import check_checkpoints, last_checkpoint, save_checkpoint
from iufbench.config import method_family, overrides_for, resolve_method_config
from iufbench.data.images import load_image
from iufbench.data.types import ObjectData
from iufbench.errors import ConfigError, IufbenchError
from iufbench.feature_bank import FeatureBank
from iufbench.feature_cache import FeatureCache
from iufbench.features import FeatureExtractor
from iufbench.methods import METHODS, Method, MethodContext, TrainTask
from iufbench.metrics import summarise_matrix
from iufbench.metrics.on_device import object_metrics_any
from iufbench.protocols import Protocol, resolve_objects
from iufbench.records import (DEFAULT_FAMILY, FeatureInfo, MethodTraits, ProtocolInfo, RunDir, RunRecord, StepRecord,
                              git_sha, pair_key, versions)
from iufbench.run_progress import RunProgress, choose_mode, seen_mean
from iufbench.runtime import eval_batch_size, host, pick_device, pick_precision, seed_everything, step_seed
from iufbench.training_log import LossLog, require_tensorboard


@dataclass
class RunOptions:
    """Everything about a run that is not the protocol or a method's own config."""

    methods: list[str]
    seeds: list[int] = field(default_factory=lambda: [0])
    schedule: str = "fast"
    overrides: list[str] = field(default_factory=list)
    device: str = "auto"
    out_dir: Path = Path("results")
    run_id: str | None = None
    resume: bool = False
    progress: bool = True  # bars on a terminal, one line per step otherwise (run_progress)
    tensorboard: bool = False  # also write TensorBoard event files of the training curves
    precision: str = "auto"  # fp32 or bf16; auto = bf16 autocast on CUDA, fp32 on the CPU
    compile: bool = False  # torch.compile the whole training step (CUDA graphs on CUDA)
    eval_batch_size: int | None = None  # None: 32 on the CPU, 256 on CUDA
    keep_all_checkpoints: bool = False
    flip_auroc: bool = False  # the reference code's "1 - AUROC below 0.5"; off by default


def _config_hash(configs: dict[str, Any], protocol: Protocol, flip_auroc: bool, precision: str) -> str:
    """What a resumed run must share with the original (seeds may be added)."""
    blob = json.dumps({"methods": configs, "protocol": protocol.hash(), "flip_auroc": flip_auroc,
                       "precision": precision}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _changed_settings(record: RunRecord, configs: dict[str, Any], protocol: Protocol, flip_auroc: bool,
                      precision: str) -> str:
    """Which parts of `_config_hash` differ from the stored run, in words a user can act on."""
    changed = [f"method config of {name}" for name in sorted(set(configs) | set(record.methods))
               if json.dumps(configs.get(name), sort_keys=True, default=str)
               != json.dumps(record.methods.get(name), sort_keys=True, default=str)]
    if record.protocol.hash != protocol.hash():
        changed.append("protocol")
    if record.flip_auroc != flip_auroc:
        changed.append("--flip-auroc")
    if record.precision != precision:
        changed.append(f"precision ({record.precision} then, {precision} now: --precision, --device)")
    return ", ".join(changed) or "the method configs"


def prepare(protocol: Protocol, opts: RunOptions) -> tuple[dict[str, dict[str, Any]], torch.device, str]:
    """Everything that can fail on bad input, checked before any file is written."""
    if not opts.methods:
        raise ConfigError("no methods given; see `iufbench list methods`")
    if not opts.seeds:
        raise ConfigError("no seeds given; pass e.g. --seeds 0,1,2")
    for what, values in (("method", opts.methods), ("seed", opts.seeds)):
        twice = sorted({str(v) for v in values if values.count(v) > 1})
        if twice:
            raise ConfigError(f"{what}(s) {', '.join(twice)} given twice; each {what} runs once per run")
    configs, used = {}, set()
    for name in opts.methods:
        METHODS.get(name)
        mine = overrides_for(name, opts.overrides)
        used.update(mine)
        configs[name] = resolve_method_config(name, protocol, opts.schedule, mine)
    unused = [text for text in opts.overrides if text not in used]
    if unused:
        raise ConfigError(f"override(s) {', '.join(unused)} match no config section of "
                          f"{', '.join(opts.methods)}; see methods/<name>.yaml for the keys")
    if opts.tensorboard:
        require_tensorboard()
    device = pick_device(opts.device)
    return configs, device, pick_precision(opts.precision, device)


def method_traits(name: str, config: dict[str, Any]) -> MethodTraits:
    """What a reader needs to know about a method without importing it (record.json `traits`)."""
    cls = METHODS.get(name)
    return MethodTraits(method_family(name) or DEFAULT_FAMILY, cls.sees_old_data, cls.keeps_old_data,
                        cls.pixel_output, cls.inputs, cls.components(config))


def default_run_id(protocol: Protocol) -> str:
    return f"{protocol.name}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"


def run(protocol: Protocol, opts: RunOptions) -> RunDir:
    """Run every method x seed on the protocol; returns the run directory."""
    configs, device, precision = prepare(protocol, opts)
    mode = choose_mode(opts.progress)
    opts = dataclasses.replace(opts, progress=mode == "bars")  # the inner bars (features, epochs) on a terminal only
    objects = resolve_objects(protocol)
    run_id = opts.run_id or default_run_id(protocol)
    run_dir = RunDir(opts.out_dir / run_id)
    config_hash = _config_hash(configs, protocol, opts.flip_auroc, precision)
    if run_dir.exists() and not opts.resume:
        raise ConfigError(f"run {run_dir.path} exists; pass --resume to continue it, or another --run-id")
    stored = run_dir.read_record() if opts.resume and run_dir.exists() else None  # None: a fresh run
    if stored is not None and stored.config_hash != config_hash:
        changed = _changed_settings(stored, configs, protocol, opts.flip_auroc, precision)
        raise ConfigError(
            f"run {run_dir.path} was started with another configuration ({changed} differ); resume with "
            "the same arguments or use a new --run-id"
        )
    if stored is not None:
        check_checkpoints(run_dir, opts.methods, opts.seeds)
    bank, feature_seconds = build_bank(protocol, objects, configs, device, precision, opts)

    if stored is not None:
        record = stored
        record.status = "running"
        record.seeds = sorted(set(record.seeds) | set(opts.seeds))  # a resume may add seeds
        record.resumed.append(dt.datetime.now().isoformat(timespec="seconds"))
    else:
        record = RunRecord(
            run_id=run_id, status="running", created=dt.datetime.now().isoformat(timespec="seconds"),
            config_hash=config_hash, protocol=ProtocolInfo(protocol.name, protocol.to_dict(), protocol.hash()),
            methods=configs, seeds=opts.seeds, schedule=opts.schedule, overrides=opts.overrides,
            flip_auroc=opts.flip_auroc, precision=precision, compile=opts.compile, versions=versions(),
            git_sha=git_sha(), host=host(device),
            features=FeatureInfo(bank.feature_shape[0], list(bank.feature_shape[1:]), round(feature_seconds, 2),
                                 bank.extracted),
        )
    record.queue = [pair_key(m, s) for m in opts.methods for s in opts.seeds]  # this invocation, in order
    record.traits.update({m: method_traits(m, configs[m]) for m in opts.methods})
    run_dir.write_record(record)
    view = RunProgress(mode, record.queue, len(protocol.tasks), sum(len(record.steps.get(k, {})) for k in record.queue))
    losses = LossLog(run_dir, opts.tensorboard)

    try:
        with _sigterm_as_interrupt():
            for method in opts.methods:
                for seed in opts.seeds:
                    _run_one(method, seed, configs[method], protocol, bank, device, precision, opts, run_dir, record,
                             view, losses)
    except (Exception, KeyboardInterrupt) as exc:  # any crash (CUDA OOM too) must not stay "running"
        if isinstance(exc, KeyboardInterrupt):
            record.status = "interrupted"
        elif isinstance(exc, IufbenchError):
            record.status = f"failed: {exc}"
        else:
            record.status = f"failed: {type(exc).__name__}: {exc}"
        run_dir.write_record(record)
        raise
    finally:
        view.close()
        losses.close()
    run_dir.write_summary(summarise_matrix(run_dir.read_matrix(), protocol.learned_at()))
    record.status = "complete"
    run_dir.write_record(record)
    return run_dir


def build_bank(protocol: Protocol, objects: dict[str, ObjectData], configs: dict[str, dict[str, Any]],
               device: torch.device, precision: str, opts: RunOptions) -> tuple[FeatureBank, float]:
    """Each method built once from its config, then every image decoded and embedded (or read from
    the persistent cache): the last checks of bad input (a config no method can be built from, a
    corrupt image). Returns the bank and the seconds its features took."""
    extractor = FeatureExtractor(protocol.backbone)
    _build_each_method_once(configs, extractor.output_shape(protocol.image_size), protocol, device, precision, opts)
    t0 = time.perf_counter()
    keep_pixels = any(METHODS.get(m).inputs == "images" for m in opts.methods)
    bank = FeatureBank.build(objects, extractor, protocol.image_size, device, opts.progress, keep_pixels,
                             FeatureCache.default(), precision)
    return bank, time.perf_counter() - t0


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """A run stopped by SIGTERM (kill, a batch scheduler, a CI timeout) is marked interrupted like
    Ctrl-C, instead of keeping status "running" forever."""
    if threading.current_thread() is not threading.main_thread():  # signals only reach the main thread
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _context(method_cls: type[Method], feature_shape: tuple[int, int, int], protocol: Protocol,
             device: torch.device, seed: int, precision: str, opts: RunOptions,
             on_epoch: Callable[[int, int, int, dict[str, float]], None] | None = None) -> MethodContext:
    return MethodContext.for_method(method_cls, feature_shape, protocol.image_size, device, seed,
                                    progress=opts.progress, precision=precision, compile=opts.compile,
                                    on_epoch=on_epoch, backbone=protocol.backbone)


def _build_each_method_once(configs: dict[str, dict[str, Any]], feature_shape: tuple[int, int, int],
                            protocol: Protocol, device: torch.device, precision: str, opts: RunOptions) -> None:
    """A config no method can be built from (nhead not dividing hidden_dim, a neighbour mask larger
    than the grid, an unknown switch value) fails here, before features are extracted and before
    the run directory exists, not after other methods have trained for hours."""
    for name, config in configs.items():
        method_cls = METHODS.get(name)
        try:
            method_cls(config, _context(method_cls, feature_shape, protocol, device, opts.seeds[0], precision, opts))
        except (ValueError, TypeError, KeyError, RuntimeError) as exc:
            raise ConfigError(f"method '{name}' cannot be built from its config: {exc}; check "
                              f"methods/{name}.yaml and the --set overrides") from exc


def _run_one(method_name: str, seed: int, config: dict[str, Any], protocol: Protocol, bank: FeatureBank,
             device: torch.device, precision: str, opts: RunOptions, run_dir: RunDir, record: RunRecord,
             view: RunProgress, losses: LossLog) -> None:
    method_cls = METHODS.get(method_name)
    kind = method_cls.inputs
    seed_everything(seed)

    def on_epoch(step: int, epoch: int, epochs: int, values: dict[str, float]) -> None:
        losses.epoch(step, epoch, epochs, values)
        view.epoch(step, epoch, epochs, values)

    method = method_cls(config, _context(method_cls, bank.feature_shape, protocol, device, seed, precision, opts,
                                         on_epoch))
    rows: list[dict[str, Any]] = []
    loss_rows: list[dict[str, Any]] = []
    first_step = 0
    done = last_checkpoint(run_dir, method_name, seed) if opts.resume else None
    if done is not None:
        last, payload = done
        method.load_state_dict(payload["state"])
        rows = payload["rows"]
        loss_rows = payload.get("losses", [])  # checkpoints older than losses.csv have none
        first_step = last + 1
    losses.start_pair(method_name, seed, loss_rows)
    view.start_pair(method_name, seed, first_step)
    label_space: tuple[str, ...] = tuple(o for task in protocol.tasks[:first_step] for o in task)
    key = pair_key(method_name, seed)
    for step in range(first_step, len(protocol.tasks)):
        new = protocol.tasks[step]
        label_space = label_space + new
        visible = label_space if method_cls.sees_old_data else new
        task = TrainTask(
            step=step, new_objects=new, objects=visible, label_space=label_space,
            features=torch.cat([bank[o].inputs(kind, "train") for o in visible]),
            labels=torch.cat([torch.full((len(bank[o].train),), label_space.index(o)) for o in visible]),
        )
        seed_everything(step_seed(seed, step))
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        t0 = time.perf_counter()
        train_log = method.learn(task)
        t1 = time.perf_counter()
        step_rows = evaluate(method, method_name, seed, step, label_space, bank, opts, device)
        rows.extend(step_rows)
        t2 = time.perf_counter()
        record.steps.setdefault(key, {})[str(step)] = StepRecord(
            train_seconds=round(t1 - t0, 3), eval_seconds=round(t2 - t1, 3), objects=list(new),
            train_images=len(task.features), train_log=train_log, state_bytes=method.state_bytes(),
            peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            peak_gpu_mb=round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if device.type == "cuda" else None,
        )
        if step == len(protocol.tasks) - 1:
            run_dir.save_maps(method_name, seed, qualitative_sample(method, protocol, bank))
        save_checkpoint(run_dir, method_name, seed, step, {"state": method.state_dict(), "rows": rows,
                                                           "losses": losses.rows}, opts.keep_all_checkpoints)
        run_dir.write_matrix(_other_rows(run_dir, method_name, seed) + rows)
        losses.step_done(step, {level: seen_mean(step_rows, f"{level}_auroc") for level in ("image", "pixel")})
        run_dir.write_record(record)
        view.step_done(step, new, t1 - t0, t2 - t1, step_rows)
    if key not in record.finished:  # `seeds` lists what was asked for, this what ran to the end
        record.finished.append(key)
        run_dir.write_record(record)
    view.pair_done(rows)


QUALITATIVE_PER_OBJECT = 2  # defective test images per old object kept for the qualitative figure


@torch.no_grad()
def qualitative_sample(method: Method, protocol: Protocol, bank: FeatureBank) -> dict[str, np.ndarray]:
    """After the last step: the first defective test images of every object learned before it, with
    their masks and this method's anomaly maps (float16), so figures need neither data nor model."""
    picks = []
    for obj in (o for task in protocol.tasks[:-1] for o in task):
        defective = np.flatnonzero(bank[obj].labels == 1)[:QUALITATIVE_PER_OBJECT]
        picks.extend((obj, int(i)) for i in defective)
    if not picks:
        return {"objects": np.array([], dtype=str)}
    features = torch.stack([bank[o].inputs(method.inputs, "test")[i] for o, i in picks])
    scores = method.score(features)
    h, w = protocol.image_size
    masks = [bank[o].masks[i] if bank[o].masks is not None else np.zeros((h, w), bool) for o, i in picks]
    return {
        "objects": np.array([o for o, _ in picks]),
        "paths": np.array([bank[o].test_images[i] for o, i in picks]),
        "images": np.stack([load_image(Path(bank[o].test_images[i]), (h, w)) for o, i in picks]),
        "masks": np.stack(masks),
        "has_mask": np.array([bank[o].masks is not None for o, _ in picks]),
        "maps": (scores.maps.float().cpu().numpy() if scores.maps is not None else np.full((len(picks), h, w), np.nan))
        .astype(np.float16),
        "image_scores": scores.image.float().cpu().numpy(),
    }


def _other_rows(run_dir: RunDir, method: str, seed: int) -> list[dict[str, Any]]:
    """Rows of matrix.csv from other methods/seeds; this pair's rows come from its checkpoint."""
    if not (run_dir.path / "matrix.csv").is_file():
        return []
    df = run_dir.read_matrix()
    df = df[~((df["method"] == method) & (df["seed"] == seed))]
    return df.to_dict("records")


@torch.no_grad()
def evaluate(method: Method, method_name: str, seed: int, step: int, seen: tuple[str, ...], bank: FeatureBank,
             opts: RunOptions, device: torch.device) -> list[dict[str, Any]]:
    """Score the test set of every object seen so far; one row per (object, metric)."""
    batch = eval_batch_size(opts.eval_batch_size, device)
    rows = []
    for obj in tqdm(seen, desc=f"step {step} eval", disable=not opts.progress, leave=False):
        data = bank[obj]
        image_scores, maps = [], []
        inputs = data.inputs(method.inputs, "test")
        for start in range(0, len(inputs), batch):
            scores = method.score(inputs[start : start + batch])
            image_scores.append(scores.image.float())
            if (scores.maps is not None) != method.pixel_output:  # a method author's slip, not user input
                raise TypeError(f"{method_name} declares pixel_output={method.pixel_output} but its score() "
                                f"returned {'no ' if scores.maps is None else ''}anomaly maps")
            if scores.maps is not None:
                maps.append(scores.maps.float())
        # scores left on a GPU by the method are evaluated there (metrics.on_device), CPU ones by numpy
        metrics = object_metrics_any(
            torch.cat(image_scores), data.labels,
            torch.cat(maps) if maps and data.masks is not None else None, data.masks,
            flip_below_half=opts.flip_auroc,
        )
        rows.extend({"method": method_name, "seed": seed, "step": step, "object": obj, "metric": m,
                     "value": float(v)} for m, v in metrics.items())
    return rows
