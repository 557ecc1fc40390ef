"""`iufbench run --jobs N`: the run's pairs as a local sweep merged into the run directory itself.
With one thread per job it gives `--jobs 1`'s matrix and losses cell for cell and the same files;
a failing pair is named and the exit code is 1; bad input is refused before anything is written;
a resumed run keeps the way it was started; the longest pairs start first."""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from conftest import TINY_OVERRIDES
from iufbench.cli import main
from iufbench.records import RunDir
from iufbench.sweep.jobs import resolve_jobs
from iufbench.sweep.plan import PAIRS, SweepOptions, longest_first, plan_sweep

ray = pytest.importorskip("ray")
KEY = ["method", "seed", "step", "object", "metric"]
STEP_LINE = re.compile(r"^\d\d:\d\d:\d\d (\w+) seed (\d+) step (\d+) \(task \d+/(\d+)\) done")
TINY = [a for o in TINY_OVERRIDES for a in ("--set", o)]


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray (2 CPUs) for the module; `run --jobs` joins it instead of starting its own."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


def _run(protocol: Path, out: Path, run_id: str, *extra: str) -> int:
    return main(["run", "--protocol", str(protocol), "--methods", "uniad,patchcore", "--seeds", "1", "--out",
                 str(out), "--run-id", run_id, *TINY, *extra])


def test_jobs_2_equals_jobs_1_cell_for_cell_with_the_same_files_and_lines(
        local_ray, tiny_protocol: Path, tmp_path: Path, one_thread: None, capsys: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("iufbench.sweep.jobs.cores", lambda: 2)  # 2 jobs of one thread, whatever this machine has
    assert _run(tiny_protocol, tmp_path, "seq", "--jobs", "1") == 0
    seq_out = capsys.readouterr().out
    assert _run(tiny_protocol, tmp_path, "par", "--jobs", "2") == 0
    par_out = capsys.readouterr().out
    seq, par = RunDir(tmp_path / "seq"), RunDir(tmp_path / "par")
    pd.testing.assert_frame_equal(par.read_matrix().sort_values(KEY).reset_index(drop=True),
                                  seq.read_matrix().sort_values(KEY).reset_index(drop=True), check_exact=True)
    by_epoch = ["method", "seed", "step", "epoch"]
    pd.testing.assert_frame_equal(par.read_losses().sort_values(by_epoch).reset_index(drop=True),
                                  seq.read_losses().sort_values(by_epoch).reset_index(drop=True), check_exact=True)
    for name in ("record.json", "matrix.csv", "summary.csv", "losses.csv", "maps/uniad-seed1.npz",
                 "maps/patchcore-seed1.npz", "checkpoints/uniad/seed1/step1.pt"):
        assert (par.path / name).is_file(), name
    record = par.read_record()
    assert record.status == "complete" and record.run_id == "par"
    assert sorted(record.finished) == sorted(record.queue) == sorted(seq.read_record().queue)
    assert record.traits == seq.read_record().traits
    # the same table, and one line per finished step and pair (in the order they finished)
    assert seq_out.split("results in")[1].split("\n", 1)[1] == par_out.split("results in")[1].split("\n", 1)[1]
    steps = sorted(STEP_LINE.match(line).groups() for line in par_out.splitlines() if STEP_LINE.match(line))
    assert steps == sorted((m, "1", str(t), "2") for m in ("uniad", "patchcore") for t in (0, 1))
    assert sum("finished in" in line for line in par_out.splitlines()) == 2
    # a finished parallel run resumes as one (--jobs auto), and refuses to be resumed in one process
    before = par.read_matrix()
    assert _run(tiny_protocol, tmp_path, "par", "--resume") == 0
    pd.testing.assert_frame_equal(par.read_matrix(), before, check_exact=True)
    assert _run(tiny_protocol, tmp_path, "par", "--resume", "--jobs", "1") == 2
    assert "resume it with --jobs 2 or more" in capsys.readouterr().err
    assert _run(tiny_protocol, tmp_path, "seq", "--resume", "--jobs", "2") == 2
    assert "resume it with --jobs 1" in capsys.readouterr().err


def test_a_failing_pair_is_named_the_others_finish_and_the_exit_code_is_1(
        local_ray, tiny_protocol: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # a learning rate that makes uniad's loss overflow in its first epoch; patchcore has no train.lr
    code = main(["run", "--protocol", str(tiny_protocol), "--methods", "uniad,patchcore", "--out", str(tmp_path),
                 "--run-id", "bad", "--jobs", "2", "--no-progress", *TINY, "--set", "train.lr=1e30"])
    assert code == 1
    err = capsys.readouterr().err
    assert "iufbench: run: 1 pair(s) failed: uniad/seed0: TrainingError" in err
    record = RunDir(tmp_path / "bad").read_record()
    assert record.status.startswith("failed: uniad/seed0") and record.finished == ["patchcore/seed0"]


@pytest.mark.parametrize("argv, message", [
    (["--jobs", "two"], "--jobs must be auto or a whole number >= 1"),
    (["--jobs", "2", "--methods", "uniad,foo"], "unknown method 'foo'"),
    (["--jobs", "2", "--methods", "uniad,patchcore", "--set", "model.nhead=3"], "cannot be built from its config"),
    (["--jobs", "2", "--methods", "uniad,patchcore", "--device", "cuda"], "cuda"),
])
def test_bad_input_is_refused_before_anything_is_written(tiny_protocol: Path, tmp_path: Path, argv: list[str],
                                                         message: str, capsys: pytest.CaptureFixture) -> None:
    assert main(["run", "--protocol", str(tiny_protocol), *TINY, "--out", str(tmp_path / "out"), "--no-progress",
                 *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_auto_is_one_job_per_core_on_the_cpu_for_two_or_more_pairs(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("iufbench.sweep.jobs.cores", lambda: 2)
    fresh = RunDir(tmp_path / "new")
    assert resolve_jobs("auto", "cpu", 21, fresh, resume=False) == 2
    assert resolve_jobs("auto", "cpu", 1, fresh, resume=False) == 1
    assert resolve_jobs("3", "cpu", 21, fresh, resume=False) == 3
    (tmp_path / "old" / PAIRS).mkdir(parents=True)
    RunDir(tmp_path / "old").record_path.write_text("{}")  # a run started in parallel: only its layout counts
    assert resolve_jobs("auto", "cpu", 1, RunDir(tmp_path / "old"), resume=True) == 2


def test_the_longest_pairs_start_first(tiny_protocol: Path, tmp_path: Path) -> None:
    """Pairs on images (draem, the CAD methods), then those on old data, then by epochs; banks (no
    epochs) last, even one that keeps old data."""
    plan = plan_sweep(SweepOptions(protocols=[str(tiny_protocol)], out_dir=tmp_path, seeds=[0],
                                   methods=["patchcore_cumulative", "uniad", "cad_panda", "joint", "draem"]))
    assert [p.method for p in longest_first(plan.pairs)] == [
        "draem", "cad_panda", "joint", "uniad", "patchcore_cumulative"]
    assert not (tmp_path / PAIRS).exists()  # planning writes nothing
