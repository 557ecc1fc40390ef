"""`iufbench status`: states, estimates and the stale-run warning, from record.json alone."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from conftest import TINY_OVERRIDES
from iufbench.cli import main
from iufbench.engine import RunOptions, run
from iufbench.errors import DataError
from iufbench.protocols import load_protocol
from iufbench.records import RunDir, RunRecord
from iufbench.report.progress import format_status, pair_progress


def _step(seconds: float) -> dict:
    return {"train_seconds": seconds - 1.0, "eval_seconds": 1.0}


def _record(status: str = "running") -> RunRecord:
    """Run 'r' of 3 tasks: a/seed0 finished in 90 s, a/seed1 one step (30 s) in, b/seed0 queued."""
    return RunRecord.from_dict({
        "run_id": "r", "status": status, "protocol": {"name": "p", "resolved": {"tasks": [["x"], ["y"], ["z"]]}},
        "methods": {"b": {}, "a": {}},  # record.json sorts keys: not the engine's order
        "seeds": [0, 1],
        "queue": ["a/seed0", "a/seed1", "b/seed0"],
        "finished": ["a/seed0"],
        "steps": {"a/seed0": {"0": _step(50), "1": _step(20), "2": _step(20)}, "a/seed1": {"0": _step(30)}},
    })


def _write(tmp_path: Path, record: RunRecord, age_seconds: float = 0.0) -> RunDir:
    run_dir = RunDir(tmp_path / "r")
    run_dir.write_record(record)
    stamp = time.time() - age_seconds
    os.utime(run_dir.record_path, (stamp, stamp))
    return run_dir


def test_states_follow_the_queue_and_estimates_come_from_finished_seeds() -> None:
    pairs = {(p.method, p.seed): p for p in pair_progress(_record())}
    assert [(p.method, p.seed) for p in pair_progress(_record())] == [("a", 0), ("a", 1), ("b", 0), ("b", 1)]
    assert pairs[("a", 0)].state == "done" and pairs[("a", 0)].seconds == pytest.approx(90)
    assert pairs[("a", 1)].state == "running" and pairs[("a", 1)].steps_done == 1
    assert pairs[("a", 1)].seconds_left == pytest.approx(60)  # 90 s for seed 0, 30 s used
    assert pairs[("b", 0)].state == "waiting" and pairs[("b", 0)].seconds_left is None
    assert pairs[("b", 1)].state == "not run"  # asked for by an earlier invocation, not queued now


def test_an_interrupted_run_has_stopped_pairs_and_no_estimate(tmp_path: Path) -> None:
    record = _record("interrupted")
    pairs = {(p.method, p.seed): p for p in pair_progress(record)}
    assert pairs[("a", 1)].state == "stopped" and pairs[("a", 1)].seconds_left is None
    assert pairs[("b", 0)].state == "not run"
    text = format_status(_write(tmp_path, record))
    assert "r: interrupted" in text and "1/4 method/seed pairs done" in text and "left for" not in text


def test_a_running_record_that_stopped_being_written_gets_a_warning(tmp_path: Path) -> None:
    fresh = format_status(_write(tmp_path, _record()))
    assert "about 0:01:00 left for 1 pair(s)" in fresh
    assert "1 pair(s) without an estimate" in fresh and "warning" not in fresh
    stale = format_status(_write(tmp_path, _record(), age_seconds=3600))
    assert "warning: nothing written for 1:00:00" in stale and "--resume" in stale
    record = _record()
    record.steps, record.finished = {}, []
    assert "note: no step has finished in 2:00:00" in format_status(_write(tmp_path, record, age_seconds=7200))
    assert "note:" not in format_status(_write(tmp_path, record, age_seconds=60))


def test_status_of_a_real_run_and_of_a_missing_folder(tmp_path: Path, tiny_protocol: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    opts = RunOptions(methods=["uniad"], seeds=[0, 1], overrides=list(TINY_OVERRIDES), out_dir=tmp_path,
                      run_id="r", progress=False)
    run(load_protocol(str(tiny_protocol)), opts)
    assert main(["status", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "r: complete" in out and "2/2 method/seed pairs done" in out
    rows = out.strip().splitlines()[2:]
    assert [row.split()[:3] + row.split()[-1:] for row in rows] == [["uniad", "0", "2/2", "done"],
                                                                  ["uniad", "1", "2/2", "done"]]
    with pytest.raises(DataError, match="no record.json"):
        format_status(RunDir(tmp_path / "missing"))
