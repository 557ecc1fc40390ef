"""The run directory, the suite's product: every table, plot and check is computed from it alone.

results/<run-id>/
  record.json     resolved configs, protocol + hash, versions, git sha, device, seeds, timings, memory,
                  each method's traits (family, sees/keeps old data, pixel output) for the report
  matrix.csv      long format: method, seed, step, object, metric, value (rewritten after every step)
  summary.csv     continual summaries per method, seed, metric (written when the run completes)
  losses.csv      one row per method, seed, step and training epoch: the epoch's mean loss and the
                  mean of each loss term the method reports (mse, ce, scl, penalty, ...; empty where a
                  method has no such term); methods without epochs (memory banks) have no rows
  tensorboard/<method>-seed<k>/   the same curves as TensorBoard event files (only with --tensorboard)
  maps/<method>-seed<k>.npz   a fixed sample of old objects' test images, masks and anomaly maps
                              after the last step (the qualitative figure)
  checkpoints/<method>/seed<k>/step<k>.pt   method state + the rows so far, for --resume: tensors and
                  plain data only, read with torch.load(weights_only=True)

Every file is written to a temporary name and renamed, so an interrupted run never leaves a
half-written file behind.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import platform
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from iufbench.errors import IufbenchError

MATRIX_COLUMNS = ["method", "seed", "step", "object", "metric", "value"]
LOSS_COLUMNS = ["method", "seed", "step", "epoch", "loss"]  # then one column per loss term


class CheckpointError(IufbenchError):
    """A checkpoint --resume cannot load safely."""


def pair_key(method: str, seed: int) -> str:
    """record.json's key of one (method, seed) pair in `steps` and `finished`."""
    return f"{method}/seed{seed}"


def split_pair_key(key: str) -> tuple[str, int]:
    method, seed = key.rsplit("/seed", 1)
    return method, int(seed)


def atomic_write(path: Path, data: str | bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    os.replace(tmp, path)


def versions() -> dict[str, str]:
    """Versions of everything that can change a number."""
    out = {"python": platform.python_version()}
    for pkg in ("iufbench", "torch", "torchvision", "timm", "numpy", "scikit-learn", "scipy", "pandas", "pillow"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def git_sha() -> str | None:
    try:
        res = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if res.returncode != 0:
        return None
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=Path(__file__).parent, capture_output=True,
                           text=True, timeout=5).stdout.strip()
    return res.stdout.strip() + ("-dirty" if dirty else "")


def host(device: torch.device) -> dict[str, Any]:
    info = {"platform": platform.platform(), "cpu_count": os.cpu_count(), "device": str(device),
            "torch_threads": torch.get_num_threads(), "argv": sys.argv}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


class RunDir:
    """Reads and writes one run directory."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def record_path(self) -> Path:
        return self.path / "record.json"

    def exists(self) -> bool:
        return self.record_path.is_file()

    def read_record(self) -> dict[str, Any]:
        return json.loads(self.record_path.read_text())

    def write_record(self, record: dict[str, Any]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write(self.record_path, json.dumps(record, indent=2, sort_keys=True, default=str))

    def write_matrix(self, rows: list[dict[str, Any]]) -> None:
        atomic_write(self.path / "matrix.csv", pd.DataFrame(rows, columns=MATRIX_COLUMNS).to_csv(index=False))

    def read_matrix(self) -> pd.DataFrame:
        """Names stay text: an object called `0042` or `NA` must not come back as 42 or NaN."""
        return pd.read_csv(self.path / "matrix.csv", dtype={"method": str, "object": str, "metric": str},
                           keep_default_na=False, na_values={"value": ["", "nan", "NaN"]})

    def write_losses_text(self, csv: str) -> None:
        """losses.csv as CSV text (`training_log` formats it piecewise, so a long run rewrites it cheaply)."""
        atomic_write(self.path / "losses.csv", csv)

    def read_losses(self) -> pd.DataFrame:
        """Empty (with the fixed columns) when the run has no losses.csv: older runs, or no epoch yet."""
        path = self.path / "losses.csv"
        if not path.is_file():
            return pd.DataFrame(columns=LOSS_COLUMNS)
        return pd.read_csv(path, dtype={"method": str}, keep_default_na=False,
                           na_values=["", "nan", "NaN"])

    def write_summary(self, summary: pd.DataFrame) -> None:
        atomic_write(self.path / "summary.csv", summary.to_csv(index=False))

    def maps_path(self, method: str, seed: int) -> Path:
        return self.path / "maps" / f"{method}-seed{seed}.npz"

    def save_maps(self, method: str, seed: int, arrays: dict[str, np.ndarray]) -> None:
        """The qualitative sample (images, masks, anomaly maps) of one method and seed, atomically."""
        target = self.maps_path(method, seed)
        target.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        atomic_write(target, buffer.getvalue())

    def read_maps(self, method: str, seed: int) -> dict[str, np.ndarray] | None:
        path = self.maps_path(method, seed)
        if not path.is_file():
            return None
        with np.load(path) as data:
            return {k: data[k] for k in data.files}

    def checkpoint_dir(self, method: str, seed: int) -> Path:
        return self.path / "checkpoints" / method / f"seed{seed}"

    def save_checkpoint(self, method: str, seed: int, step: int, payload: dict[str, Any], keep_all: bool) -> None:
        folder = self.checkpoint_dir(method, seed)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"step{step}.pt"
        tmp = folder / f".step{step}.pt.tmp"
        torch.save(payload, tmp)
        os.replace(tmp, target)
        if not keep_all:
            for old in folder.glob("step*.pt"):
                if old != target:
                    old.unlink()

    def last_checkpoint(self, method: str, seed: int) -> tuple[int, dict[str, Any]] | None:
        """(step, payload) of the last finished step of one method and seed, if any. A checkpoint is
        tensors and plain data only: one holding any other object is refused, never unpickled, since
        unpickling an object from a shared run directory can run code."""
        found = sorted(self.checkpoint_dir(method, seed).glob("step*.pt"), key=lambda p: int(p.stem[4:]))
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

    def check_checkpoints(self, methods: list[str], seeds: list[int]) -> None:
        """Load every pair's last checkpoint once, so a resume that would refuse one fails before it
        writes anything."""
        for method in methods:
            for seed in seeds:
                self.last_checkpoint(method, seed)
