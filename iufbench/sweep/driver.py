"""The sweep's driver: plan, connect, submit one Ray task per unfinished pair, merge each protocol's
run directory as steps finish, print a line per finished pair and a bar, and report failed pairs.

The driver is the only writer of DIR/<protocol>/ (it holds DIR/.pairs/.lock), so `iufbench status`
reads whole files while the sweep runs. A driver that dies takes its tasks with it (Ray ends a
job's tasks with its driver); `--resume` plans again, skips finished pairs and resubmits the others,
which continue from their last checkpoints.
"""
from __future__ import annotations

import datetime as dt
import fcntl
import json
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Protocol

import pandas as pd
from tqdm.auto import tqdm

from iufbench.errors import ConfigError
from iufbench.records import RunDir
from iufbench.sweep.cluster import check_resources, connect, worker_env
from iufbench.sweep.merge import base_record, merge
from iufbench.sweep.plan import (WORKER_FILE, Pair, ProtocolPlan, SweepOptions, SweepPlan, lay_out, longest_first,
                                 plan_sweep)


@dataclass
class SweepResult:
    run_dirs: list[RunDir]  # DIR/<protocol>/, in the order the protocols were given
    failed: dict[str, str]  # "<protocol> <method>/seed<k>" -> its error


class Reporter(Protocol):
    """What the driver shows while it works: `iufbench sweep`'s pair bar and lines (`PairLines`), or
    `iufbench run --jobs`' step lines (`iufbench.sweep.jobs`)."""

    def merged(self, p: ProtocolPlan, record: RunRecord, matrix: pd.DataFrame) -> None: ...

    def pair_done(self, pair: Pair, error: str | None, n: int, total: int) -> None: ...

    def close(self) -> None: ...


class PairLines:
    """`iufbench sweep`: one bar of pairs done on a terminal, one line per finished pair."""

    def __init__(self, total: int, done: int, progress: bool) -> None:
        self.bar = tqdm(total=total, initial=done, unit="pair", desc="sweep", disable=not progress)
        if done:
            self.bar.write(f"resuming: {done} of {total} pairs already finished")

    def merged(self, p: ProtocolPlan, record: RunRecord, matrix: pd.DataFrame) -> None:
        """The pair lines need nothing from a merge."""

    def pair_done(self, pair: Pair, error: str | None, n: int, total: int) -> None:
        self.bar.update()
        self.bar.write(_line(pair, error, n, total))

    def close(self) -> None:
        self.bar.close()


def sweep(opts: SweepOptions, reporter: Reporter | None = None, plan: SweepPlan | None = None) -> SweepResult:
    """Run every (protocol, method, seed) pair of `opts` as a Ray task; bad input fails before Ray
    starts. `plan`: `plan_sweep(opts)` when the caller made it already (`run --jobs`)."""
    plan = plan or plan_sweep(opts)
    offline = all(p.protocol.backbone.weights != "hub" for p in plan.protocols)
    started_here = connect(opts.ray_address, opts.local_cpus)
    try:
        check_resources(opts.cpus_per_job, opts.gpus_per_job)
        with _only_driver(plan.lock_folder, opts.out_dir):
            return _drive(plan, offline, reporter)
    finally:
        if started_here:
            import ray  # noqa: PLC0415

            ray.shutdown()


@contextmanager
def _only_driver(folder: Path, out_dir: Path) -> Iterator[None]:
    """Two drivers merging into one DIR would overwrite each other's records: the second is refused."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"another sweep is writing {out_dir}; wait for it, or use another --out") from None
        yield


def _drive(plan: SweepPlan, offline: bool, reporter: Reporter | None) -> SweepResult:
    import ray  # noqa: PLC0415
    from ray.exceptions import RayError  # noqa: PLC0415

    from iufbench.sweep.task import run_pair  # noqa: PLC0415  (imports ray)

    opts = plan.options
    lay_out(plan)
    bases = {p.name: base_record(plan, p) for p in plan.protocols}
    started = time.time()
    todo = longest_first([pair for pair in plan.pairs if not pair.finished()])
    task = run_pair.options(num_cpus=opts.cpus_per_job, num_gpus=opts.gpus_per_job, max_retries=opts.max_retries,
                            runtime_env=worker_env(opts.cpus_per_job, offline))
    refs = {task.remote(pair.plan.protocol, plan.run_options(pair), opts.cpus_per_job): pair for pair in todo}
    failed: dict[str, tuple[Pair, str]] = {}  # pair label -> (pair, error)
    n_done = len(plan.pairs) - len(todo)
    view = reporter or PairLines(len(plan.pairs), n_done, opts.progress)

    merged_state: dict[str, Any] = {}  # protocol -> what its last merge read: an unchanged protocol is not merged

    def merge_all(final: bool) -> None:
        for p in plan.protocols:
            running = {pair.key for pair in refs.values() if pair.plan is p and _started_since(pair, started)}
            errors = {q.key: e for q, e in failed.values() if q.plan is p}
            state = (_records_written(p), sorted(running), sorted(errors))
            if state == merged_state.get(p.name) and not final:
                continue
            merged_state[p.name] = state
            record, matrix = merge(p, bases[p.name], running, errors, final)
            view.merged(p, record, matrix)

    merge_all(final=False)  # the records exist from the start: `iufbench status` works at once
    try:
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1, timeout=opts.poll_seconds)
            for ref in ready:
                pair = refs.pop(ref)
                try:
                    error = ray.get(ref)
                except RayError as exc:  # the worker died on every attempt, or the task was cancelled
                    error = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"
                if error is not None:
                    failed[pair.label] = (pair, error)
                n_done += 1
                view.pair_done(pair, error, n_done, len(plan.pairs))
            merge_all(final=False)
    finally:  # also on Ctrl-C: the records say how far the sweep got ("interrupted")
        merge_all(final=True)
        view.close()
    return SweepResult([p.run_dir for p in plan.protocols], {label: e for label, (_, e) in failed.items()})


def _records_written(p: ProtocolPlan) -> list[tuple[str, int]]:
    """When each pair's record.json was last written (the engine writes it after every step)."""
    return [(f.parent.name, f.stat().st_mtime_ns) for f in sorted(p.pairs_dir.glob("*/record.json"))]


def _started_since(pair: Pair, since: float) -> bool:
    """The pair's task has begun in this sweep (its worker wrote worker.json), not merely been queued."""
    path = pair.dir.path / WORKER_FILE
    return path.is_file() and path.stat().st_mtime >= since


def _line(pair: Pair, error: str | None, n: int, total: int) -> str:
    """One line per finished pair: how long its steps took, where, and how many attempts."""
    if error is not None:
        return f"[{n}/{total}] {pair.label} FAILED: {error}"
    record = pair.dir.read_record()
    steps = record.steps.get(pair.key, {})
    seconds = sum(s.seconds for s in steps.values())
    worker = json.loads((pair.dir.path / WORKER_FILE).read_text())
    retried = f", {worker['attempts']} attempts" if worker["attempts"] > 1 else ""
    return (f"[{n}/{total}] {pair.label} done: {len(steps)} steps in "
            f"{dt.timedelta(seconds=round(seconds))} on {worker['host']}{retried}")


def format_failures(failed: dict[str, str]) -> str:
    return f"{len(failed)} pair(s) failed: " + "; ".join(f"{k}: {e}" for k, e in failed.items())

