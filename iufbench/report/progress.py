"""`iufbench status`: how far a run has got, read from its record.json alone.

A paper-schedule run takes hours; this answers "which method and seed is it on, how long did each
step take, and about how long is left" without opening the JSON. It reads the record only, so it
works on a run that is still writing (and on one that has no matrix yet).
"""
from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path

from iufbench.errors import DataError
from iufbench.records import RunDir, RunRecord, pair_key, split_pair_key


@dataclass
class PairProgress:
    """One (method, seed) of a run: steps finished and the seconds they took."""

    method: str
    seed: int
    steps_done: int
    steps_total: int
    seconds: float
    state: str  # done, running, waiting (queued), failed (a sweep's pair), stopped (part done, run not running) or not run
    seconds_left: float | None  # estimate from finished seeds of the same method; None: no estimate yet


def pair_progress(record: RunRecord) -> list[PairProgress]:
    """Every (method, seed) of the run: this invocation's queue in the engine's order, then any
    pair an earlier invocation asked for (records older than `queue`: methods x seeds)."""
    total = len(record.tasks)
    finished = set(record.finished)
    every = [pair_key(m, s) for m in record.methods for s in record.seeds]
    queue = record.queue if record.queue is not None else every
    running = record.status == "running"
    in_flight = record.running  # a sweep's record lists the pairs its workers are on
    pairs, current_found = [], False
    for key in queue + [k for k in every if k not in queue]:
        steps = record.steps.get(key, {})
        seconds = sum(s.seconds for s in steps.values())
        if key in finished or len(steps) == total:
            state = "done"
        elif key in record.failed:
            state = "failed"
        elif running and key in queue and in_flight is not None:
            state = "running" if key in in_flight else "waiting"
        elif running and key in queue:
            state = "waiting" if current_found else "running"
            current_found = True
        else:
            state = "stopped" if steps else "not run"
        pairs.append(PairProgress(*split_pair_key(key), len(steps), total, seconds, state, None))
    for pair in pairs:
        if pair.state in ("running", "waiting"):
            pair.seconds_left = _estimate_left(pair, pairs)
    return pairs


def _estimate_left(pair: PairProgress, pairs: list[PairProgress]) -> float | None:
    """A finished seed of the same method took T seconds; this one has used `seconds` of it."""
    done = [p.seconds for p in pairs if p.method == pair.method and p.state == "done"]
    if not done:
        return None
    return max(sum(done) / len(done) - pair.seconds, 0.0)


def format_status(run_dir: RunDir, now: float | None = None) -> str:
    """A header (id, status, protocol, last write) and one line per (method, seed)."""
    if not run_dir.exists():
        raise DataError(f"{run_dir.path} has no record.json: not a folder written by `iufbench run`, or its "
                        "run is still extracting features (the record is written when training starts)")
    record = run_dir.read_record()
    pairs = pair_progress(record)
    age = (now or time.time()) - run_dir.record_path.stat().st_mtime
    n_done = sum(p.state == "done" for p in pairs)
    lines = [
        f"{record.run_id}: {record.status}, protocol {record.protocol.name} "
        f"({pairs[0].steps_total if pairs else 0} tasks), {n_done}/{len(pairs)} method/seed pairs done, "
        f"record written {_duration(age)} ago"
    ]
    width = max([len(p.method) for p in pairs] + [6])
    lines.append(f"{'method':<{width}}  seed  steps   time     left  state")
    for p in pairs:
        left = "" if p.state not in ("running", "waiting") else (
            "?" if p.seconds_left is None else _duration(p.seconds_left))
        lines.append(f"{p.method:<{width}}  {p.seed:>4}  {p.steps_done:>2}/{p.steps_total:<2} "
                     f"{_duration(p.seconds):>6}  {left:>7}  {p.state}")
    open_pairs = [p for p in pairs if p.state in ("running", "waiting")]
    if open_pairs:
        known = [p.seconds_left for p in open_pairs if p.seconds_left is not None]
        if known:
            lines.append(f"about {_duration(sum(known))} left for {len(known)} pair(s), from finished seeds "
                         "of the same method")
        if len(known) < len(open_pairs):
            lines.append(f"{len(open_pairs) - len(known)} pair(s) without an estimate: their method has no "
                         "finished seed yet")
    longest = max((s.seconds for steps in record.steps.values() for s in steps.values()), default=0.0)
    if record.status == "running" and longest and age > max(3 * longest, 600):
        lines.append(f"warning: nothing written for {_duration(age)}, over 3x the longest step so far; if its "
                     "process is gone (killed, out of memory), continue it with --resume --run-id")
    elif record.status == "running" and not longest and age > 3600:
        lines.append(f"note: no step has finished in {_duration(age)}; a base task can take that long, but if "
                     "its process is gone (killed, out of memory), start it again")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    return str(dt.timedelta(seconds=round(seconds)))


def status_of(paths: list[Path]) -> str:
    return "\n\n".join(format_status(RunDir(Path(p))) for p in paths)
