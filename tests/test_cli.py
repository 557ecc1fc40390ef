"""The command line: listings, one-line errors with exit code 2, synth, and a tiny run."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TINY_OVERRIDES
from iufbench.cli import main


def test_list_methods_protocols_datasets(capsys: pytest.CaptureFixture) -> None:
    assert main(["list", "methods"]) == 0
    out = capsys.readouterr().out
    assert "uniad" in out and "joint" in out and "sees old data" in out
    assert main(["list", "protocols"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert any(line.startswith("mvtec_14_1 ") for line in out) and any(line.startswith("demo ") for line in out)
    assert main(["list", "datasets"]) == 0
    assert {"mvtec", "visa", "mvtec3d", "folder", "synthetic"} <= {
        line.split()[0] for line in capsys.readouterr().out.splitlines()}


@pytest.mark.parametrize("argv, match", [
    (["run", "--protocol", "nope"], "unknown protocol 'nope'"),
    (["run", "--protocol", "mvtec_14_1"], "--data-root"),
    (["run", "--protocol", "mvtec_14_1", "--data-root", "/no/such/dir", "--methods", "uniad"], "does not exist"),
    (["run", "--methods", "uniad,foo"], "unknown method 'foo'"),
    (["run", "--set", "train.nope=1", "--methods", "uniad"], "unknown config key 'train.nope'"),
    (["run", "--resume"], "--resume needs --run-id"),
])
def test_errors_are_one_line_with_exit_code_2(argv: list[str], match: str, tmp_path: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    assert main([*argv, "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("iufbench: error:")
    assert re.search(match, err)
    assert not (tmp_path / "out").exists()


def test_synth_command_writes_mvtec_layout(tmp_path: Path) -> None:
    out = tmp_path / "synth"
    assert main(["data", "synth", "--out", str(out), "--categories", "wood,pcb", "--size", "48",
                 "--n-train", "2", "--n-test-good", "1", "--n-test-defect", "2"]) == 0
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["pcb", "wood"]
    assert len(list((out / "wood" / "train" / "good").glob("*.png"))) == 2


def test_run_prints_the_table(tiny_protocol: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    sets = [a for o in TINY_OVERRIDES for a in ("--set", o)]
    assert main(["run", "--protocol", str(tiny_protocol), "--methods", "uniad,joint", "--out", str(tmp_path),
                 "--run-id", "cli", "--no-progress", "--jobs", "1", *sets]) == 0  # --jobs 2: test_run_jobs.py
    out = capsys.readouterr().out
    assert "image ACC" in out and "pixel FM" in out
    assert "joint *" in out and "sees earlier tasks" in out
    assert (tmp_path / "cli" / "summary.csv").is_file()


def test_a_reader_that_leaves_early_is_not_an_error() -> None:
    """`iufbench status RUN | head`: the closed pipe ends the command quietly, exit 0."""
    code = ("import sys; from iufbench import cli\n"
            "cli.cmd_list = lambda args: [print('x' * 80) for _ in range(100_000)]\n"
            "sys.exit(cli.main(['list', 'methods']))")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"x" * 80
    proc.stdout.close()  # what `head -1` does
    assert proc.wait(timeout=60) == 0
    assert b"Traceback" not in proc.stderr.read()
