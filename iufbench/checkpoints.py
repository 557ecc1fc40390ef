"""A run's checkpoints, `checkpoints/<method>/seed<k>/step<k>.pt`: a method's state and the rows so
far after each finished step, for `--resume`. Kept apart from `records` because it needs torch,
and whoever only reads a run (report, status, check) must not."""
from __future__ import annotations

import os
from typing import Any

import torch

from iufbench.records import RunDir


def save_checkpoint(run_dir: RunDir, method: str, seed: int, step: int, payload: dict[str, Any],
                    keep_all: bool) -> None:
    folder = run_dir.checkpoint_dir(method, seed)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"step{step}.pt"
    tmp = folder / f".step{step}.pt.tmp"
    torch.save(payload, tmp)
    os.replace(tmp, target)
    if not keep_all:
        for old in folder.glob("step*.pt"):
            if old != target:
                old.unlink()


def last_checkpoint(run_dir: RunDir, method: str, seed: int) -> tuple[int, dict[str, Any]] | None:
    """(step, payload) of the last finished step of one method and seed, if any."""
    found = sorted(run_dir.checkpoint_dir(method, seed).glob("step*.pt"), key=lambda p: int(p.stem[4:]))
    if not found:
        return None
    return int(found[-1].stem[4:]), torch.load(found[-1], map_location="cpu", weights_only=False)
