"""`iufbench run --jobs N`: the run's (method, seed) pairs as a local one-protocol sweep whose merged
directory is the run directory itself, so both cores of a laptop or CI machine stay busy.

The sweep's machinery does the work (Ray tasks with one engine run per pair, the merge, failures,
resume, the feature cache); this module only decides how many jobs, checks everything a sequential
run checks before anything is written (the feature bank is built here first, so a corrupt image
fails at once and the jobs read every object from the cache), and turns the merged records into
`run`'s own progress lines.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any

import pandas as pd
import torch

from iufbench import engine
from iufbench.errors import ConfigError
from iufbench.protocols import Protocol, resolve_objects
from iufbench.records import RunDir, split_pair_key
from iufbench.run_progress import RunProgress, choose_mode
from iufbench.runtime import pick_device
from iufbench.sweep.driver import sweep
from iufbench.sweep.plan import PAIRS, Pair, ProtocolPlan, SweepOptions, plan_sweep


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def parallel_run(run_dir: RunDir) -> bool:
    """A run directory `run --jobs N > 1` made (its pairs live in `.pairs/`)."""
    return (run_dir.path / PAIRS).is_dir()


def resolve_jobs(requested: str, device: str, pairs: int, run_dir: RunDir, resume: bool) -> int:
    """How many pairs run at once. `auto`: one per core on the CPU when there are at least two
    pairs, else 1; a resumed run keeps the way it was started (one process, or pairs in parallel)."""
    if requested != "auto" and not (requested.isdigit() and int(requested) >= 1):
        raise ConfigError(f"--jobs must be auto or a whole number >= 1, got '{requested}'")
    on_cpu = pick_device(device).type == "cpu"
    existing = resume and run_dir.exists()
    if requested == "auto":
        if existing:
            return max(2, min(cores(), pairs)) if parallel_run(run_dir) else 1
        return max(1, min(cores(), pairs)) if on_cpu else 1
    jobs = int(requested)
    if jobs > 1 and not on_cpu:
        raise ConfigError(f"--jobs {jobs} with --device {device}: pairs run side by side on the CPU cores only; on a "
                          "GPU use --jobs 1, or `iufbench sweep --gpus-per-job F` to share GPUs between pairs")
    if existing and (jobs > 1) != parallel_run(run_dir):
        how = "--jobs 2 or more" if parallel_run(run_dir) else "--jobs 1"
        raise ConfigError(f"run {run_dir.path} was started with {how}; resume it with {how} (or --jobs auto)")
    return jobs


def run_jobs(protocol: Protocol, opts: engine.RunOptions, jobs: int) -> tuple[RunDir, dict[str, str]]:
    """Run `opts`' pairs `jobs` at a time, each job with cores // jobs torch threads; returns the run
    directory and the pairs that failed (pair key -> error). Bad input raises before anything is written."""
    threads = max(1, cores() // jobs)
    run_id = opts.run_id or engine.default_run_id(protocol)
    sweep_opts = SweepOptions(
        protocols=[protocol], methods=opts.methods, seeds=opts.seeds, out_dir=opts.out_dir, schedule=opts.schedule,
        overrides=opts.overrides, device="cpu", precision=opts.precision, compile=opts.compile,
        cpus_per_job=threads, local_cpus=threads * jobs, resume=opts.resume, progress=False, run_id=run_id,
        flip_auroc=opts.flip_auroc, keep_all_checkpoints=opts.keep_all_checkpoints, tensorboard=opts.tensorboard)
    plan = plan_sweep(sweep_opts)
    p = plan.protocols[0]
    _fill_cache(protocol, p, opts, threads)
    feed = StepFeed(choose_mode(opts.progress), [pair.key for pair in plan.pairs], len(protocol.tasks), jobs)
    with engine._sigterm_as_interrupt():  # killed (a CI timeout, kill): the record says interrupted, as `run`'s does
        result = sweep(sweep_opts, feed, plan)
    return p.run_dir, {label.split(" ", 1)[1]: error for label, error in result.failed.items()}


def _fill_cache(protocol: Protocol, p: ProtocolPlan, opts: engine.RunOptions, threads: int) -> None:
    """The feature bank built here with the jobs' thread count (part of the cache key on the CPU): a
    config no method can be built from or a corrupt image fails before a file is written, and every
    job reads its features from the cache instead of extracting them."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        engine.build_bank(protocol, resolve_objects(protocol), p.configs, torch.device("cpu"), p.precision,
                          dataclasses.replace(opts, progress=choose_mode(opts.progress) == "bars"))
    finally:
        torch.set_num_threads(before)


class StepFeed:
    """`run`'s progress (RunProgress: a bar on a terminal, one line per finished step and pair in a
    log) from the merged records: each merge reports the steps and pairs finished since the last."""

    def __init__(self, mode: str, pairs: list[str], steps_per_pair: int, jobs: int) -> None:
        self.mode, self.pairs, self.steps_per_pair, self.jobs = mode, pairs, steps_per_pair, jobs
        self.view: RunProgress | None = None  # made at the first merge, which says what was done before
        self.reported: dict[str, int] = {}  # pair key -> steps already shown
        self.finished: set[str] = set()

    def merged(self, p: ProtocolPlan, record: RunRecord, matrix: pd.DataFrame) -> None:
        if self.view is None:
            self.reported = {key: len(steps) for key, steps in record.steps.items()}
            self.finished = set(record.finished)
            self.view = RunProgress(self.mode, self.pairs, self.steps_per_pair, sum(self.reported.values()),
                                    parallel=self.jobs)
            return
        for key in self.pairs:
            steps = record.steps.get(key, {})
            method, seed = split_pair_key(key)
            rows = matrix[(matrix["method"] == method) & (matrix["seed"] == seed)].to_dict("records")
            for step in sorted(map(int, steps))[self.reported.get(key, 0):]:
                info = steps[str(step)]
                self.view.start_pair(method, seed, step)
                self.view.step_done(step, tuple(info.objects), info.train_seconds, info.eval_seconds,
                                    [r for r in rows if r["step"] == step])
            self.reported[key] = len(steps)
            if key in record.finished and key not in self.finished:
                self.finished.add(key)
                self.view.start_pair(method, seed, self.steps_per_pair - 1)
                self.view.pair_done(rows)

    def pair_done(self, pair: Pair, error: str | None, n: int, total: int) -> None:
        """A failed pair is named at the end, with the exit code; finished ones come from the merge."""

    def close(self) -> None:
        if self.view is not None:
            self.view.close()
