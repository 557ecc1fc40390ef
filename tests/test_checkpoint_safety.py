"""A run directory is shared between people: resuming from one must never unpickle an object, since
unpickling can run code. Checkpoints hold tensors and plain data only and are read with
`torch.load(weights_only=True)`; anything else is refused with one clear message, before any file
is written."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from conftest import TINY_OVERRIDES
from iufbench.cli import main


class RunsCode:
    """What a malicious (or merely old) checkpoint may hold: unpickling it calls os.mkdir."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return os.mkdir, (str(self.marker),)


def test_resume_refuses_a_checkpoint_holding_an_object_and_writes_nothing(
        tiny_protocol: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv = ["run", "--protocol", str(tiny_protocol), "--methods", "uniad", "--out", str(tmp_path), "--run-id", "r",
            "--no-progress", *[a for o in TINY_OVERRIDES for a in ("--set", o)]]
    assert main(argv) == 0
    run_dir = tmp_path / "r"
    checkpoint = run_dir / "checkpoints" / "uniad" / "seed0" / "step1.pt"
    payload = torch.load(checkpoint, weights_only=True)  # what the engine writes loads safely
    marker = tmp_path / "code-ran"
    payload["state"]["extra"] = RunsCode(marker)
    torch.save(payload, checkpoint)
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    capsys.readouterr()

    assert main([*argv, "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert str(checkpoint) in err and "posix.mkdir" in err  # what is wrong, where
    assert f"delete {checkpoint.parent}" in err and "without --resume" in err  # what to do
    assert not marker.exists()  # the object was never unpickled
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before  # nothing written
