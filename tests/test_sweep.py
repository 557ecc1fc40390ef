"""`iufbench sweep` on one local Ray instance (2 CPUs) shared by the module: the same matrix as
`iufbench run`, cell for cell; a SIGKILLed worker's pair resumes and changes nothing; each object's
features are extracted once per sweep and never again; a pair's own failure is recorded and named;
bad input is refused before any task starts."""
from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import TINY_OVERRIDES, write_protocol
from iufbench.cli import main
from iufbench.engine import RunOptions, run
from iufbench.errors import ConfigError
from iufbench.protocols import load_protocol
from iufbench.records import RunDir
from iufbench.report.progress import format_status
from iufbench.sweep.driver import sweep
from iufbench.sweep.plan import PAIRS, SweepOptions

ray = pytest.importorskip("ray")
KEY = ["method", "seed", "step", "object", "metric"]


@pytest.fixture(scope="module")
def fresh_cache(tmp_path_factory: pytest.TempPathFactory):
    """This module's own feature cache, so its extraction counts do not depend on other tests."""
    before = os.environ["IUFBENCH_CACHE"]
    os.environ["IUFBENCH_CACHE"] = str(tmp_path_factory.mktemp("sweep-cache"))
    yield Path(os.environ["IUFBENCH_CACHE"])
    os.environ["IUFBENCH_CACHE"] = before


@pytest.fixture(scope="module")
def local_ray(fresh_cache: Path):
    """One local Ray for the module; sweeps join it instead of starting their own."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def protocols(tmp_path_factory: pytest.TempPathFactory, tiny_root: Path) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("protocols")
    return {"tiny_a": write_protocol(folder, tiny_root, [["fabric", "screw"], ["wood"]], name="tiny_a"),
            "tiny_b": write_protocol(folder, tiny_root, [["wood"], ["screw", "fabric"]], name="tiny_b"),
            "tiny_3": write_protocol(folder, tiny_root, [["fabric"], ["screw"], ["wood"]], name="tiny_3")}


def _opts(out: Path, protocols: list[Path], methods: list[str], seeds: list[int], overrides: list[str],
          **kw) -> SweepOptions:
    return SweepOptions(protocols=[str(p) for p in protocols], methods=methods, seeds=seeds, out_dir=out,
                        overrides=overrides, progress=False, poll_seconds=0.2, **kw)


def _sorted(matrix: pd.DataFrame) -> pd.DataFrame:
    return matrix.sort_values(KEY).reset_index(drop=True)


def _extracted(out: Path, protocol: str) -> list[str]:
    """Objects whose features the pairs of one protocol extracted, over all its pairs."""
    return [o for d in sorted((out / PAIRS / protocol).iterdir())
            for o in json.loads((d / "record.json").read_text())["features"]["extracted"]]


@pytest.fixture(scope="module")
def two_protocol_sweep(local_ray, protocols: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sweep2")
    result = sweep(_opts(out, [protocols["tiny_a"], protocols["tiny_b"]], ["uniad", "patchcore"], [0, 1],
                         list(TINY_OVERRIDES)))
    assert result.failed == {}
    return out


def test_sweep_of_two_protocols_equals_run_cell_for_cell(two_protocol_sweep: Path, protocols: dict[str, Path],
                                                         tmp_path: Path, one_thread: None) -> None:
    for name in ("tiny_a", "tiny_b"):
        ran = run(load_protocol(str(protocols[name])), RunOptions(
            methods=["uniad", "patchcore"], seeds=[0, 1], overrides=list(TINY_OVERRIDES), out_dir=tmp_path,
            run_id=name, progress=False)).read_matrix()
        swept = RunDir(two_protocol_sweep / name)
        pd.testing.assert_frame_equal(_sorted(swept.read_matrix()), _sorted(ran), check_exact=True)
        record = swept.read_record()
        assert record.status == "complete" and record.running == [] and record.failed == {}
        assert sorted(record.finished) == sorted(record.queue) == [
            "patchcore/seed0", "patchcore/seed1", "uniad/seed0", "uniad/seed1"]
        assert {p.name for p in (swept.path / "checkpoints").iterdir()} == {"uniad", "patchcore"}
        assert len(list((swept.path / "maps").glob("*.npz"))) == 4
        assert set(pd.read_csv(swept.path / "summary.csv").method) == {"uniad", "patchcore"}
        assert "4/4 method/seed pairs done" in format_status(swept)
        assert main(["report", str(swept.path), "--format", "csv"]) == 0


def test_each_object_is_extracted_once_per_sweep_and_a_second_sweep_extracts_nothing(
        two_protocol_sweep: Path, protocols: dict[str, Path], tmp_path: Path) -> None:
    # tiny_a and tiny_b hold the same three objects at the same size: 8 jobs, 3 extractions in all
    assert sorted(_extracted(two_protocol_sweep, "tiny_a") + _extracted(two_protocol_sweep, "tiny_b")) == [
        "fabric", "screw", "wood"]
    assert RunDir(two_protocol_sweep / "tiny_a").read_record().features.extracted == _extracted(
        two_protocol_sweep, "tiny_a")
    again = sweep(_opts(tmp_path, [protocols["tiny_a"]], ["patchcore"], [0], []))
    assert again.failed == {} and _extracted(tmp_path, "tiny_a") == []


SLOW_STEPS = [o for o in TINY_OVERRIDES if not o.startswith("train.epochs")] + ["train.epochs=40"]


@pytest.fixture(scope="module")
def tiny_3_full(local_ray, protocols: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> RunDir:
    """An uninterrupted sweep of one pair with steps long enough to be killed in."""
    out = tmp_path_factory.mktemp("full")
    assert sweep(_opts(out, [protocols["tiny_3"]], ["uniad"], [0], SLOW_STEPS)).failed == {}
    return RunDir(out / "tiny_3")


def _wait_for_step_1(pair: Path, alive) -> None:
    """Until the pair's first step is checkpointed: its second step (step 1) is then under way."""
    deadline = time.monotonic() + 120
    while not (pair / "checkpoints" / "uniad" / "seed0" / "step0.pt").is_file():
        assert time.monotonic() < deadline and alive(), "the pair never finished its first step"
        time.sleep(0.05)


def test_a_sigkilled_worker_is_retried_and_the_pair_resumes_to_the_same_matrix(
        local_ray, protocols: dict[str, Path], tmp_path: Path, tiny_3_full: RunDir) -> None:
    pair = tmp_path / PAIRS / "tiny_3" / "uniad-seed0"
    finished: list = []
    driver = threading.Thread(target=lambda: finished.append(
        sweep(_opts(tmp_path, [protocols["tiny_3"]], ["uniad"], [0], SLOW_STEPS))))
    driver.start()
    _wait_for_step_1(pair, driver.is_alive)
    status = format_status(RunDir(tmp_path / "tiny_3"))
    os.kill(json.loads((pair / "worker.json").read_text())["pid"], signal.SIGKILL)
    assert not (pair / "checkpoints" / "uniad" / "seed0" / "step1.pt").exists(), "killed too late: step 1 was done"
    driver.join(timeout=300)
    assert finished and finished[0].failed == {}
    assert "running" in status  # `iufbench status` read the shared run directory during the sweep
    cut = RunDir(tmp_path / "tiny_3")
    pd.testing.assert_frame_equal(_sorted(cut.read_matrix()), _sorted(tiny_3_full.read_matrix()), check_exact=True)
    assert json.loads((pair / "worker.json").read_text())["attempts"] == 2
    assert RunDir(pair).read_record().resumed, "the retried task resumed from the step-0 checkpoint"
    assert cut.read_record().status == "complete"


def test_a_sweep_whose_driver_died_continues_with_resume(
        local_ray, protocols: dict[str, Path], tmp_path: Path, tiny_3_full: RunDir) -> None:
    """The driver, a separate process joined to this module's Ray, is SIGKILLed in the pair's second
    step; Ray ends its task; `--resume` finishes the pair from its step-0 checkpoint."""
    import subprocess
    import sys

    argv = ["sweep", "--protocols", str(protocols["tiny_3"]), "--methods", "uniad", "--seeds", "0",
            "--out", str(tmp_path), "--no-progress", *[a for o in SLOW_STEPS for a in ("--set", o)]]
    joined = ["--ray-address", ray.get_runtime_context().gcs_address]
    driver = subprocess.Popen([sys.executable, "-m", "iufbench.cli", *argv, *joined], env=dict(os.environ),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pair = tmp_path / PAIRS / "tiny_3" / "uniad-seed0"
    try:
        _wait_for_step_1(pair, lambda: driver.poll() is None)
    finally:
        driver.kill()
        driver.wait()
    worker = json.loads((pair / "worker.json").read_text())["pid"]
    deadline = time.monotonic() + 60
    while _alive(worker):  # Ray ends the tasks of a job whose driver is gone
        assert time.monotonic() < deadline, "the dead driver's task kept running"
        time.sleep(0.2)
    assert RunDir(tmp_path / "tiny_3").read_record().status == "running"  # nobody said otherwise
    assert main([*argv, "--resume"]) == 0  # joins this process's Ray
    resumed = RunDir(tmp_path / "tiny_3")
    pd.testing.assert_frame_equal(_sorted(resumed.read_matrix()), _sorted(tiny_3_full.read_matrix()),
                                  check_exact=True)
    assert resumed.read_record().status == "complete" and RunDir(pair).read_record().resumed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_pair_that_fails_on_its_own_is_recorded_and_named_and_the_others_finish(
        local_ray, protocols: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # nhead 3 does not divide hidden_dim 32: uniad cannot be built; patchcore has no model.nhead
    code = main(["sweep", "--protocols", str(protocols["tiny_a"]), "--methods", "uniad,patchcore", "--seeds", "0",
                 "--set", "model.hidden_dim=32", "--set", "model.nhead=3", "--out", str(tmp_path), "--no-progress"])
    assert code == 1
    assert "1 pair(s) failed: tiny_a uniad/seed0: ConfigError" in capsys.readouterr().err
    record = RunDir(tmp_path / "tiny_a").read_record()
    assert record.status.startswith("failed: uniad/seed0: ConfigError")
    assert record.finished == ["patchcore/seed0"] and list(record.failed) == ["uniad/seed0"]
    assert set(RunDir(tmp_path / "tiny_a").read_matrix().method) == {"patchcore"}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("argv, message", [
    (["--protocols", "nope", "--methods", "patchcore"], "unknown protocol 'nope'"),
    (["--protocols", "TINY", "--methods", "uniadd"], "unknown method 'uniadd'. Did you mean 'uniad'?"),
    (["--suite", "paper_table9"], "unknown suite 'paper_table9'"),
    (["--protocols", "TINY", "--methods", "paperz"], "or a method set: ablation, paper, trained, all"),
    (["--protocols", "TINY", "--methods", "patchcore", "--gpus-per-job", "0.25"],
     "--gpus-per-job 0.25 asks for GPUs, but the Ray cluster has none"),
    (["--protocols", "TINY", "--methods", "patchcore", "--ray-address", "127.0.0.1:PORT"],
     "no Ray cluster answers at --ray-address 127.0.0.1:"),
])
def test_bad_input_is_refused_before_any_task_starts(local_ray, protocols: dict[str, Path], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture, argv: list[str],
                                                     message: str) -> None:
    argv = [a.replace("TINY", str(protocols["tiny_a"])).replace("PORT", str(_closed_port())) for a in argv]
    assert main(["sweep", *argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_a_second_sweep_into_the_same_folder_needs_resume(local_ray, protocols: dict[str, Path],
                                                          tmp_path: Path) -> None:
    opts = _opts(tmp_path, [protocols["tiny_a"]], ["patchcore"], [0], [])
    assert sweep(opts).failed == {}
    with pytest.raises(ConfigError, match="exists; pass --resume"):
        sweep(opts)
    opts.resume = True
    assert sweep(opts).failed == {}  # nothing left to do: the finished pair is skipped
    assert RunDir(tmp_path / "tiny_a").read_record().resumed


@pytest.mark.slow
def test_demo_sweep_equals_run(local_ray, tmp_path: Path, one_thread: None) -> None:
    """The acceptance command: `sweep --protocols demo --methods uniad,patchcore --seeds 0,1 --epochs 2`."""
    assert main(["sweep", "--protocols", "demo", "--methods", "uniad,patchcore", "--seeds", "0,1", "--epochs", "2",
                 "--out", str(tmp_path / "sweep"), "--no-progress"]) == 0
    ran = run(load_protocol("demo"), RunOptions(methods=["uniad", "patchcore"], seeds=[0, 1],
                                                overrides=["train.epochs=2"], out_dir=tmp_path, run_id="run",
                                                progress=False)).read_matrix()
    swept = RunDir(tmp_path / "sweep" / "demo").read_matrix()
    pd.testing.assert_frame_equal(_sorted(swept), _sorted(ran), check_exact=True)
