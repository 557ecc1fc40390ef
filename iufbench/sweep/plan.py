"""A sweep's plan: every input checked, and the directory layout, before Ray or a file is touched.

DIR/<protocol>/            the run directory `report`, `plot`, `check`, `status` read (record.json,
                           matrix.csv, summary.csv, losses.csv, maps/, checkpoints/), written by the
                           driver alone
DIR/.pairs/<protocol>/<method>-seed<k>/
                           one engine run per pair, written by its Ray task alone; its `maps` and
                           `checkpoints` are links into DIR/<protocol>/, so a pair's checkpoints are
                           stored once, where `iufbench run --resume` would look for them

`iufbench run --jobs N` is a one-protocol sweep laid out as a run: DIR/<run-id>/ with its pairs
inside it, DIR/<run-id>/.pairs/<method>-seed<k>/ (`SweepOptions.run_id`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from iufbench import engine
from iufbench.config import overrides_for
from iufbench.errors import ConfigError
from iufbench.method_sets import expand_methods
from iufbench.methods import METHODS
from iufbench.protocols import Protocol, load_protocol, resolve_objects
from iufbench.records import RunDir, pair_key
from iufbench.runtime import pick_precision

PAIRS = ".pairs"  # hidden, so `iufbench report DIR/*` sees only the protocols' run directories
WORKER_FILE = "worker.json"  # in a pair directory: the host and process on it, and how many attempts it took


@dataclass
class SweepOptions:
    """What `iufbench sweep` was asked for; `methods` may hold set names and `all`."""

    protocols: list[str | Protocol]  # names or .yaml paths; `run --jobs` passes the protocol it loaded
    methods: list[str]
    seeds: list[int]
    out_dir: Path
    schedule: str = "fast"
    overrides: list[str] = field(default_factory=list)
    device: str = "auto"
    precision: str = "auto"
    compile: bool = False
    data_root: str | None = None
    roots: dict[str, str] = field(default_factory=dict)
    ray_address: str | None = None  # None: start a local Ray instance (unless one is running in this process)
    cpus_per_job: int = 1
    gpus_per_job: float = 0.0
    max_retries: int = 3
    resume: bool = False
    progress: bool = True
    poll_seconds: float = 5.0  # how often the driver merges finished steps into DIR/<protocol>/
    local_cpus: int | None = None  # cores of a Ray started here (None: all of this machine's)
    run_id: str | None = None  # `run --jobs`: the one protocol's run directory is DIR/<run_id>/, pairs inside it
    flip_auroc: bool = False
    keep_all_checkpoints: bool = False
    tensorboard: bool = False


@dataclass(frozen=True)
class ProtocolPlan:
    """One protocol of the sweep: its methods' resolved configs and its directories."""

    protocol: Protocol
    configs: dict[str, dict[str, Any]]
    precision: str
    run_path: Path  # DIR/<protocol>/, or DIR/<run-id>/ for `run --jobs`
    pairs_dir: Path  # DIR/.pairs/<protocol>/, or DIR/<run-id>/.pairs/
    flip_auroc: bool = False

    @property
    def name(self) -> str:
        return self.protocol.name

    @property
    def run_dir(self) -> RunDir:
        return RunDir(self.run_path)

    def pair_dir(self, method: str, seed: int) -> RunDir:
        return RunDir(self.pairs_dir / f"{method}-seed{seed}")

    def config_hash(self, methods: list[str]) -> str:
        return engine._config_hash({m: self.configs[m] for m in methods}, self.protocol, self.flip_auroc,
                                   self.precision)


@dataclass(frozen=True)
class Pair:
    plan: ProtocolPlan
    method: str
    seed: int

    @property
    def key(self) -> str:
        return pair_key(self.method, self.seed)

    @property
    def label(self) -> str:
        return f"{self.plan.name} {self.key}"

    @property
    def dir(self) -> RunDir:
        return self.plan.pair_dir(self.method, self.seed)

    def finished(self) -> bool:
        return self.dir.exists() and self.key in self.dir.read_record().finished


@dataclass(frozen=True)
class SweepPlan:
    options: SweepOptions
    protocols: list[ProtocolPlan]
    methods: list[str]
    device: str  # what each job's engine runs on: cpu, or cuda (the GPU share Ray assigned it)

    @property
    def pairs(self) -> list[Pair]:
        return [Pair(p, m, s) for p in self.protocols for m in self.methods for s in self.options.seeds]

    @property
    def lock_folder(self) -> Path:
        """Where the driver's lock lives: DIR/.pairs (a sweep) or DIR/<run-id>/.pairs (`run --jobs`)."""
        return self.protocols[0].pairs_dir if self.options.run_id else self.options.out_dir / PAIRS

    def run_options(self, pair: Pair) -> engine.RunOptions:
        """The engine's options for one pair: the overrides that apply to its method (the plan checked
        that each applies to some method), its own run directory, and always resume (a retried task
        continues from the pair's last checkpoint)."""
        o = self.options
        return engine.RunOptions(methods=[pair.method], seeds=[pair.seed], schedule=o.schedule,
                                 overrides=overrides_for(pair.method, o.overrides), device=self.device, out_dir=pair.dir.path.parent,
                                 run_id=pair.dir.path.name, resume=True, progress=False, precision=o.precision,
                                 compile=o.compile, flip_auroc=o.flip_auroc, tensorboard=o.tensorboard,
                                 keep_all_checkpoints=o.keep_all_checkpoints)


def longest_first(pairs: list[Pair]) -> list[Pair]:
    """Pairs in the order to start them, the longest expected first, so that few cores are not left
    waiting on one long pair at the end: methods that train on images (a network on pixels, not on
    cached features), then those that also train on old data, then by their epochs over all tasks
    (memory banks, without epochs, last); ties keep the given order."""
    def expected(pair: Pair) -> tuple[bool, bool, bool, int]:
        cls = METHODS.get(pair.method)
        epochs = pair.plan.configs[pair.method].get("train", {}).get("epochs", [])
        total = sum(epochs) if isinstance(epochs, list) else 0
        return cls.inputs == "images", total > 0, cls.uses_old_data(), total

    return sorted(pairs, key=expected, reverse=True)


def _job_device(opts: SweepOptions) -> str:
    if opts.device == "auto":
        return "cuda" if opts.gpus_per_job > 0 else "cpu"
    if opts.device.startswith("cuda") and opts.gpus_per_job <= 0:
        raise ConfigError(f"--device {opts.device} needs --gpus-per-job > 0 (Ray hides GPUs from jobs that ask for none)")
    if opts.device == "cpu" and opts.gpus_per_job > 0:
        raise ConfigError("--gpus-per-job > 0 with --device cpu would hold GPUs no job uses; drop one of them")
    if opts.device not in {"cpu", "cuda"}:
        raise ConfigError(f"--device {opts.device}: a sweep's jobs run on cpu or cuda (Ray picks the GPU); "
                          "use auto, cpu or cuda")
    return opts.device


def _check_numbers(opts: SweepOptions) -> None:
    if opts.cpus_per_job < 1:
        raise ConfigError(f"--cpus-per-job must be a whole number >= 1, got {opts.cpus_per_job}")
    if opts.gpus_per_job < 0 or (opts.gpus_per_job > 1 and opts.gpus_per_job != int(opts.gpus_per_job)):
        raise ConfigError(f"--gpus-per-job must be 0, a fraction of one GPU (e.g. 0.25) or a whole number; "
                          f"got {opts.gpus_per_job}")
    if opts.max_retries < 0:
        raise ConfigError(f"--max-retries must be >= 0, got {opts.max_retries}")
    if not opts.protocols:
        raise ConfigError("no protocols given; pass --protocols NAME[,NAME] or --suite NAME")


def _load_protocols(opts: SweepOptions) -> list[Protocol]:
    """Each protocol gets the --root entries naming its own sources; an entry naming no source of
    any protocol is a typo and fails. A protocol given loaded (`run --jobs`) is taken as it is."""
    if all(isinstance(p, Protocol) for p in opts.protocols):
        return list(opts.protocols)
    sources = {name: set(load_protocol(name, require_roots=False).sources) for name in opts.protocols}
    unknown = set(opts.roots) - set().union(*sources.values())
    if unknown:
        raise ConfigError(f"--root names source(s) {sorted(unknown)} that none of the protocols has; they have "
                          f"{sorted(set().union(*sources.values()))}")
    protocols = [load_protocol(name, data_root=opts.data_root,
                               roots={k: v for k, v in opts.roots.items() if k in sources[name]})
                 for name in opts.protocols]
    names = [p.name for p in protocols]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"protocol name(s) {', '.join(twice)} given twice (each gets DIR/<name>/); rename a file")
    return protocols


def plan_sweep(opts: SweepOptions) -> SweepPlan:
    """Everything that can fail on bad input, checked before Ray starts and before a file is written."""
    _check_numbers(opts)
    device = _job_device(opts)
    methods = expand_methods(opts.methods)
    plans = []
    for protocol in _load_protocols(opts):
        configs, _, _ = engine.prepare(protocol, engine.RunOptions(
            methods=methods, seeds=opts.seeds, schedule=opts.schedule, overrides=opts.overrides, device="cpu",
            tensorboard=opts.tensorboard))
        precision = pick_precision(opts.precision, torch.device(device))
        resolve_objects(protocol)  # data on disk (synthetic sources are generated here, once)
        run_path = opts.out_dir / (opts.run_id or protocol.name)
        pairs_dir = run_path / PAIRS if opts.run_id else opts.out_dir / PAIRS / protocol.name
        plans.append(ProtocolPlan(protocol, configs, precision, run_path, pairs_dir, opts.flip_auroc))
    plan = SweepPlan(opts, plans, methods, device)
    for p in plans:
        _check_existing(p, plan, opts.resume)
    return plan


def _check_existing(p: ProtocolPlan, plan: SweepPlan, resume: bool) -> None:
    exists = p.run_dir.exists() or p.pairs_dir.exists()
    as_run = plan.options.run_id is not None
    if exists and not resume:
        raise ConfigError(f"run {p.run_dir.path} exists; pass --resume to continue it, or another --run-id" if as_run
                          else f"{p.run_dir.path} exists; pass --resume to continue that sweep, or another --out")
    if p.run_dir.exists() and not p.pairs_dir.is_dir():
        raise ConfigError(f"run {p.run_dir.path} ran its pairs one after the other; resume it with --jobs 1" if as_run
                          else f"{p.run_dir.path} was written by `iufbench run`, not a sweep; use another --out")
    for pair in (q for q in plan.pairs if q.plan is p and q.dir.exists()):
        stored = pair.dir.read_record()
        if stored.config_hash != p.config_hash([pair.method]):
            changed = engine._changed_settings(stored, {pair.method: p.configs[pair.method]}, p.protocol, False,
                                               p.precision)
            raise ConfigError(f"{pair.label} was started with another configuration ({changed} differ); resume "
                              "with the same arguments or use another --out")


def lay_out(plan: SweepPlan) -> None:
    """The directories of every pair, with their `maps` and `checkpoints` linked into the protocol's run directory."""
    shared_folders = ("maps", "checkpoints", "tensorboard") if plan.options.tensorboard else ("maps", "checkpoints")
    for pair in plan.pairs:
        pair.dir.path.mkdir(parents=True, exist_ok=True)
        for shared in shared_folders:
            target = pair.plan.run_dir.path / shared
            target.mkdir(parents=True, exist_ok=True)
            link = pair.dir.path / shared
            if not link.is_symlink():
                link.symlink_to(os.path.relpath(target, pair.dir.path), target_is_directory=True)

