"""The persistent feature cache: one object's backbone features, extracted once and reused by every
later run and every job of a sweep (`IUFBENCH_CACHE/features/`).

An entry is keyed by everything that changes the features: the object's image and mask files (names
and content, not their folder, so a copy of the dataset elsewhere still hits), the image size, the
backbone spec, the weights (a weights file by its content), the device type (on the CPU also the
kernel set and thread count), the precision and the torch/timm versions. Two processes that need the same entry at the same time (two jobs of a sweep,
on one machine or on several machines sharing the folder) take an exclusive `flock` on the entry's
lock file: one extracts and writes, the other waits and then reads what was written. Entries are
written to a temporary name and renamed, so a killed extraction leaves no half-written entry.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import torch

from iufbench.backbones import PYPI_WEIGHTS, cache_dir
from iufbench.data.types import ObjectData
from iufbench.features import BackboneSpec
from iufbench.locking import build_once

FORMAT = 2  # bump when an entry's layout changes: old entries then miss instead of loading wrongly (2: masks as a tensor)
_CHUNK = 1 << 20


def _file_hash(path: Path, into: Any) -> None:
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            into.update(block)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _weights_id(spec: BackboneSpec) -> str:
    """What the weights are: a file by its content, PyPI weights by their package's version."""
    if Path(spec.weights).is_file():
        digest = hashlib.sha256()
        _file_hash(Path(spec.weights), digest)
        return f"file:{digest.hexdigest()}"
    if spec.weights == "pypi" and spec.name in PYPI_WEIGHTS:
        return f"pypi:{_version(PYPI_WEIGHTS[spec.name][0].replace('_', '-'))}"
    return spec.weights


def _cpu_kernels(device_type: str) -> str | None:
    """On the CPU, features are bit-identical only for one kernel set (AVX2, AVX-512; README,
    "Catching score regressions") and one thread count, so both are part of the key."""
    if device_type != "cpu":
        return None
    return f"{torch.backends.cpu.get_cpu_capability()}/{torch.get_num_threads()} threads"


def entry_key(data: ObjectData, image_size: tuple[int, int], spec: BackboneSpec, device_type: str,
              precision: str) -> str:
    """sha256 over the object's files (relative names + bytes) and every setting that changes features."""
    digest = hashlib.sha256()
    settings = {"format": FORMAT, "image_size": list(image_size), "backbone": asdict(spec),
                "weights": _weights_id(spec), "device": device_type, "precision": precision,
                "torch": torch.__version__, "timm": _version("timm"), "cpu": _cpu_kernels(device_type)}
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    files = [("train", p) for p in data.train]
    for item in data.test:
        files.append((f"test:{item.label}:{item.defect}", item.path))
        if item.mask is not None:
            files.append(("mask", item.mask))
    for role, path in files:
        path = Path(path)
        name = path.relative_to(data.root) if path.is_relative_to(data.root) else path.name
        digest.update(f"{role}:{name}".encode())
        _file_hash(path, digest)
    return digest.hexdigest()[:32]


class FeatureCache:
    """Entries `<key>.pt` (tensors only), `<key>.json` (what they are, for `iufbench cache list`), `<key>.lock`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def default(cls) -> "FeatureCache":
        return cls(cache_dir() / "features")

    def _path(self, key: str, suffix: str) -> Path:
        return self.root / f"{key}{suffix}"

    def load(self, key: str) -> dict[str, Any] | None:
        """An entry holds tensors only and is read with `weights_only=True`: a cache folder may be
        shared by many machines, and reading one must not run code."""
        path = self._path(key, ".pt")
        return torch.load(path, map_location="cpu", weights_only=True) if path.is_file() else None

    def get(self, key: str, compute: Callable[[], dict[str, Any]], describe: dict[str, Any],
            wait: bool) -> tuple[dict[str, Any], bool] | None:
        """(entry, True if this call extracted it). Another process extracting the same key: wait for
        it when `wait`, else return None so the caller can do other objects first."""

        def extract() -> dict[str, Any]:
            started = dt.datetime.now()
            entry = compute()
            self._save(key, entry, {**describe, "created": started.isoformat(timespec="seconds"),
                                    "seconds": round((dt.datetime.now() - started).total_seconds(), 2)})
            return entry

        return build_once(self._path(key, ".lock"), lambda: self.load(key), extract, wait)

    def _save(self, key: str, entry: dict[str, Any], describe: dict[str, Any]) -> None:
        for suffix, write in ((".pt", lambda tmp: torch.save(entry, tmp)),
                              (".json", lambda tmp: tmp.write_text(json.dumps(
                                  {**describe, "bytes": self._path(key, ".pt").stat().st_size}, indent=2)))):
            tmp = self._path(key, f"{suffix}.{os.getpid()}.tmp")
            write(tmp)
            os.replace(tmp, self._path(key, suffix))

    def entries(self) -> list[dict[str, Any]]:
        """What `iufbench cache list` prints: one dict per complete entry, oldest first."""
        out = []
        for meta in self.root.glob("*.json"):
            if self._path(meta.stem, ".pt").is_file():
                out.append({"key": meta.stem, **json.loads(meta.read_text())})
        return sorted(out, key=lambda e: e.get("created", ""))

    def listing(self) -> str:
        """`iufbench cache list`: one line per entry, then the total."""
        entries = self.entries()
        lines = [f"{e['key'][:12]}  {e['object']:<16} {e['image_size'][0]}x{e['image_size'][1]}  {e['backbone']} "
                 f"({e['weights']}) {e['device']} {e['precision']}  {e['bytes'] / 2**20:7.1f} MiB  {e['created']}  "
                 f"{e['root']}" for e in entries]
        total = sum(e["bytes"] for e in entries)
        return "\n".join(lines + [f"{len(entries)} entries, {total / 2**20:.1f} MiB in {self.root}"])

    def clear(self) -> tuple[int, int]:
        """Delete every entry; (entries, bytes) freed. Lock files go too: no process holds one between runs."""
        entries = self.entries()
        for path in list(self.root.glob("*")) if self.root.is_dir() else []:
            if path.suffix in {".pt", ".json", ".lock", ".tmp"}:
                path.unlink(missing_ok=True)
        return len(entries), sum(e.get("bytes", 0) for e in entries)
