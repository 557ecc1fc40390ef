"""The run directory, the suite's product: every table, plot and check is computed from it alone.

results/<run-id>/
  record.json     a `RunRecord` (below): resolved configs, protocol + hash, versions, git sha, device,
                  seeds, timings, memory, each method's traits; `schema` says which layout it has
  matrix.csv      long format: method, seed, step, object, metric, value (rewritten after every step)
  summary.csv     continual summaries per method, seed, metric (written when the run completes)
  losses.csv      one row per method, seed, step and training epoch: the epoch's mean loss and the
                  mean of each loss term the method reports (mse, ce, scl, penalty, ...; empty where a
                  method has no such term); methods without epochs (memory banks) have no rows
  tensorboard/<method>-seed<k>/   the same curves as TensorBoard event files (only with --tensorboard)
  maps/<method>-seed<k>.npz   a fixed sample of old objects' test images, masks and anomaly maps
                              after the last step (the qualitative figure)
  checkpoints/<method>/seed<k>/step<k>.pt   method state + the rows so far, for --resume: tensors and
                  plain data only (written and read by `iufbench.checkpoints`, weights_only=True)

Every file is written to a temporary name and renamed, so an interrupted run never leaves a
half-written file behind. This module imports neither torch nor the methods: whoever reads a run
(report, status, check) needs only the run directory.
"""
from __future__ import annotations

import dataclasses
import io
import json
import os
import platform
import subprocess
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


MATRIX_COLUMNS = ["method", "seed", "step", "object", "metric", "value"]
LOSS_COLUMNS = ["method", "seed", "step", "epoch", "loss"]  # then one column per loss term
# 1: no `schema` field (records written before 2026-12-01); 2: `schema`, and traits with `components`
SCHEMA = 2
DEFAULT_FAMILY = "other methods"  # the figure group of a method whose YAML names no family


def pair_key(method: str, seed: int) -> str:
    """record.json's key of one (method, seed) pair in `steps` and `finished`."""
    return f"{method}/seed{seed}"


def split_pair_key(key: str) -> tuple[str, int]:
    method, seed = key.rsplit("/seed", 1)
    return method, int(seed)


@dataclass(frozen=True)
class MethodTraits:
    """What a reader needs to know about a method without its code: the engine writes them when it
    runs the method, so a run reads the same after the method is renamed, changed or removed."""

    family: str = DEFAULT_FAMILY  # the colour group of figures (`family:` in methods/<name>.yaml)
    sees_old_data: bool = False  # the engine hands it every seen object's data (joint)
    keeps_old_data: bool = False  # it stores old objects' data itself (replay, a cumulative bank)
    pixel_output: bool = True  # False: image scores only, pixel cells n/a
    inputs: str = "features"  # or "images"
    components: dict[str, bool] | None = None  # Table 2: the IUF components it keeps; None: not an IUF variant

    @property
    def uses_old_data(self) -> bool:
        """Marked † in every table and figure, never ranked best."""
        return self.sees_old_data or self.keeps_old_data


@dataclass
class StepRecord:
    """One finished step of one (method, seed)."""

    train_seconds: float
    eval_seconds: float
    objects: list[str] = field(default_factory=list)  # the task's new objects
    train_images: int | None = None
    train_log: dict[str, Any] = field(default_factory=dict)
    state_bytes: int | None = None  # what the method keeps after the step
    peak_rss_mb: float | None = None
    peak_gpu_mb: float | None = None  # None on the CPU

    @property
    def seconds(self) -> float:
        return self.train_seconds + self.eval_seconds


@dataclass
class ProtocolInfo:
    name: str
    resolved: dict[str, Any]  # `Protocol.to_dict()`: tasks, dataset, image size, backbone, ...
    hash: str = ""

    @property
    def tasks(self) -> list[list[str]]:
        return self.resolved["tasks"]


@dataclass
class FeatureInfo:
    channels: int | None = None
    grid: list[int] = field(default_factory=list)
    seconds: float = 0.0
    extracted: list[str] = field(default_factory=list)  # objects embedded now, not read from the cache


@dataclass
class RunRecord:
    """record.json. `steps` maps a pair key (`pair_key`) to its finished steps by number ("0", "1", ...);
    `queue` is the last invocation's pairs in order, `finished` the pairs that ran to the end. A
    sweep's merged record also fills `running`, `failed`, `pairs` and `sweep` (docs/architecture.md)."""

    run_id: str
    status: str  # running, complete, interrupted, or "failed: <error>"
    protocol: ProtocolInfo
    methods: dict[str, dict[str, Any]]  # method -> its resolved config
    seeds: list[int]
    steps: dict[str, dict[str, StepRecord]] = field(default_factory=dict)
    traits: dict[str, MethodTraits] = field(default_factory=dict)
    created: str = ""
    config_hash: str = ""
    schedule: str = ""
    overrides: list[str] = field(default_factory=list)
    flip_auroc: bool = False
    precision: str = "fp32"
    compile: bool = False
    versions: dict[str, str] = field(default_factory=dict)
    git_sha: str | None = None
    host: dict[str, Any] = field(default_factory=dict)
    features: FeatureInfo = field(default_factory=FeatureInfo)
    queue: list[str] | None = None  # None (records before it): every method x seed
    finished: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    running: list[str] | None = None  # a sweep's pairs whose workers are on them; None: not a sweep
    failed: dict[str, str] = field(default_factory=dict)  # a sweep's pair -> error
    pairs: dict[str, dict[str, Any]] = field(default_factory=dict)  # a sweep's pair -> status, host, attempts
    sweep: dict[str, Any] | None = None  # a sweep's address, CPU and GPU shares, retries
    schema: int = SCHEMA

    @property
    def tasks(self) -> list[list[str]]:
        return self.protocol.tasks

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunRecord:
        """Any record.json ever written, in the current layout: a record without `schema` gets the
        traits its methods had then (`LEGACY_TRAITS`) where it holds none. Keys this layout does not
        know are ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        data = {k: v for k, v in raw.items() if k in known}
        data["protocol"] = ProtocolInfo(**raw["protocol"])
        data["features"] = FeatureInfo(**raw.get("features", {}))
        data["steps"] = {key: {n: StepRecord(**s) for n, s in steps.items()} for key, steps in raw["steps"].items()}
        traits = {m: MethodTraits(**t) for m, t in raw.get("traits", {}).items()}
        if raw.get("schema", 1) == 1:
            methods = list(raw["methods"]) + [split_pair_key(k)[0] for k in raw["steps"]]
            traits = {m: _legacy(m, raw.get("traits", {}).get(m)) for m in dict.fromkeys(methods)}
        data["traits"], data["schema"] = traits, SCHEMA
        return cls(**data)


def _legacy(method: str, stored: dict[str, Any] | None) -> MethodTraits:
    """A schema-1 record's traits: as stored (records since traits existed), else as the code of that
    time declared them; the Table 2 switches, which schema 1 never stored, from that code too."""
    then = LEGACY_TRAITS.get(method, MethodTraits())
    if stored is None:
        return then
    return MethodTraits(**{**stored, "components": then.components})


def _iuf(oasa: bool, scl: bool, us: bool, **kw: Any) -> MethodTraits:
    return MethodTraits("IUF and ablations", components={"OASA": oasa, "SCL": scl, "US": us}, **kw)


_CLASSIC, _CONTINUAL = "classic AD and CAD", "continual baselines"
# The built-in methods' traits as registered when schema 1 was current (up to commit d19ae93), for
# records of that time; a method not listed reads with the defaults.
LEGACY_TRAITS: dict[str, MethodTraits] = {
    "uniad": MethodTraits("UniAD"), "joint": MethodTraits("UniAD", sees_old_data=True),
    **{m: MethodTraits(_CONTINUAL) for m in ("uniad_ewc", "uniad_si", "uniad_mas", "uniad_lwf", "uniad_lvt")},
    "uniad_replay": MethodTraits(_CONTINUAL, keeps_old_data=True),
    "iuf": _iuf(True, True, True), "iuf_no_oasa": _iuf(False, True, True), "iuf_no_scl": _iuf(True, False, True),
    "iuf_no_us": _iuf(True, True, False), "iuf_tuned": _iuf(True, False, True), "iuf_refcode": _iuf(True, True, True),
    "padim": MethodTraits(_CLASSIC), "patchcore": MethodTraits(_CLASSIC),
    "patchcore_cumulative": MethodTraits(_CLASSIC, keeps_old_data=True),
    "draem": MethodTraits(_CLASSIC, inputs="images"), "cad_dne": MethodTraits(_CLASSIC, pixel_output=False),
    "cad_cutpaste": MethodTraits(_CLASSIC, pixel_output=False, inputs="images"),
    "cad_panda": MethodTraits(_CLASSIC, pixel_output=False, inputs="images"),
}


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


class RunDir:
    """Reads and writes one run directory."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def record_path(self) -> Path:
        return self.path / "record.json"

    def exists(self) -> bool:
        return self.record_path.is_file()

    def read_record(self) -> RunRecord:
        return RunRecord.from_dict(json.loads(self.record_path.read_text()))

    def write_record(self, record: RunRecord) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write(self.record_path, json.dumps(record.to_dict(), indent=2, sort_keys=True, default=str))

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
