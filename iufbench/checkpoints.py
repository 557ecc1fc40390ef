"""A run's checkpoints, `checkpoints/<method>/seed<k>/step<k>.pt`: a method's state and the rows so
far after each finished step, for `--resume`. Kept apart from `records` because it needs torch,
and whoever only reads a run (report, status, check) must not."""
from __future__ import annotations

import os
import pickle
import re
from typing import Any

import torch

from iufbench.errors import IufbenchError
from iufbench.records import RunDir


class CheckpointError(IufbenchError):
    """A checkpoint --resume cannot load safely."""


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
    """(step, payload) of the last finished step of one method and seed, if any. A checkpoint is
    tensors and plain data only: one holding any other object is refused, never unpickled, since
    unpickling an object from a shared run directory can run code."""
    found = sorted(run_dir.checkpoint_dir(method, seed).glob("step*.pt"), key=lambda p: int(p.stem[4:]))
    if not found:
        return None
    try:
        payload = torch.load(found[-1], map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        what = re.search(r"GLOBAL (\S+)", str(exc))  # the class or function torch refused
        raise CheckpointError(
            f"checkpoint {found[-1]} holds a Python object ({what.group(1) if what else 'not a tensor'}), "
            "not only tensors and plain data, so --resume will not load it (loading it could run code); "
            f"delete {found[-1].parent} to retrain {method} seed {seed} from its first step, or run "
            "without --resume under another --run-id") from None
    return int(found[-1].stem[4:]), payload


def check_checkpoints(run_dir: RunDir, methods: list[str], seeds: list[int]) -> None:
    """Load every pair's last checkpoint once, so a resume that would refuse one fails before it
    writes anything."""
    for method in methods:
        for seed in seeds:
            last_checkpoint(run_dir, method, seed)
