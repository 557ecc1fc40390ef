"""`iufbench check`: compare every stored score of a run with a committed reference, so a change that
lowers scores fails CI.

A reference (`results/reference/<name>.json`) holds every matrix cell (method, seed, step, object,
metric) and every continual summary of a run, with the protocol hash. A score regresses when it is
worse than the reference by more than the tolerance, in points (x100): lower for AUROC / AP / AUPRO,
ACC and BWT, higher for forgetting (FM). Scores that are missing from the run count as regressions;
better scores pass.

Training is deterministic for one set of CPU kernels only: the same code and seed moved single cells
by up to 7.6 points and the continual summaries by up to 1.9 points between an Intel AVX-512 machine
and an AMD AVX2 one, with the same AVX2 pinning (scripts/check_scores.sh). So a reference records the
CPU it was written on; on another CPU only the summaries are compared, with a wider tolerance.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import platform
from pathlib import Path
from typing import Any

import pandas as pd

from iufbench.errors import DataError
from iufbench.records import atomic_write
from iufbench.report.runs import Run

LOWER_IS_BETTER = {"paper_fm", "chaudhry_fm"}
CROSS_CPU_TOLERANCE = 3.0  # points, summaries only, when the reference comes from another CPU


def cpu_kernels() -> str:
    """The CPU's vendor and widest vector unit: what decides which BLAS / oneDNN kernels run."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.machine() or "unknown"
    fields = {key.strip(): value.strip() for key, _, value in (line.partition(":") for line in lines[:60])}
    flags = set(fields.get("flags", "").split())
    isa = "avx512" if "avx512f" in flags else "avx2" if "avx2" in flags else "other"
    return f"{fields.get('vendor_id', platform.machine())} {isa}"


def scores_of(run: Run) -> dict[str, float]:
    """Every stored score of a run, keyed 'cell/method/seed/step/object/metric' or
    'summary/method/seed/metric/summary'."""
    out = {}
    for row in run.matrix.itertuples(index=False):
        out[f"cell/{row.method}/{row.seed}/{row.step}/{row.object}/{row.metric}"] = float(row.value)
    summary = run.summary
    stats = [c for c in summary.columns if c not in ("method", "seed", "metric")]
    for row in summary.to_dict("records"):
        for stat in stats:
            out[f"summary/{row['method']}/{row['seed']}/{row['metric']}/{stat}"] = float(row[stat])
    return out


def make_reference(run: Run) -> dict[str, Any]:
    return {"protocol": run.protocol, "protocol_hash": run.record.protocol.hash,
            "run_id": run.record.run_id, "git_sha": run.record.git_sha,
            "created": dt.datetime.now().isoformat(timespec="seconds"),
            "versions": run.record.versions, "cpu": cpu_kernels(), "scores": scores_of(run)}


def write_reference(run: Run, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(make_reference(run), indent=1, sort_keys=True))


def read_reference(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DataError(f"no reference at {path}; create it from a run with `iufbench check RUN --against "
                        f"{path} --update`")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"reference {path} is not valid JSON: {exc}") from exc


def other_cpu(reference: dict[str, Any]) -> bool:
    """The reference was written on a CPU with other kernels (older references name none: same CPU)."""
    return reference.get("cpu", cpu_kernels()) != cpu_kernels()


def tolerance_for(reference: dict[str, Any], tolerance: float) -> float:
    """The tolerance a check against this reference uses: at least `CROSS_CPU_TOLERANCE` from another CPU."""
    return max(tolerance, CROSS_CPU_TOLERANCE) if other_cpu(reference) else tolerance


def compare(run: Run, reference: dict[str, Any], tolerance: float) -> pd.DataFrame:
    """One row per reference score: reference, run value, change (points, + = better), status. Against
    a reference from another CPU (`other_cpu`): the summaries only, at `CROSS_CPU_TOLERANCE` or more."""
    if reference["protocol"] != run.protocol:
        raise DataError(f"the reference is for protocol {reference['protocol']}, the run is {run.protocol}")
    current = scores_of(run)
    scores = reference["scores"]
    if other_cpu(reference):
        scores = {k: v for k, v in scores.items() if k.startswith("summary/")}
    tolerance = tolerance_for(reference, tolerance)
    rows = []
    for key, ref in scores.items():
        value = current.get(key)
        metric = key.rsplit("/", 1)[1]
        sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
        if value is None:
            status, change = "missing", math.nan
        elif math.isnan(ref) and math.isnan(value):
            status, change = "ok", 0.0
        elif math.isnan(ref) or math.isnan(value):
            status, change = "regressed", math.nan  # a score appeared or vanished
        else:
            change = sign * (value - ref) * 100
            status = "regressed" if change < -tolerance else "ok"
        rows.append({"score": key, "reference": ref, "run": value, "change": change, "status": status})
    return pd.DataFrame(rows)


def format_result(result: pd.DataFrame, tolerance: float, protocol_changed: bool,
                  reference_cpu: str | None = None) -> str:
    bad = result[result["status"] != "ok"]
    moved = result[(result["status"] == "ok") & (result["change"].abs() > 1e-9)]
    lines = []
    if reference_cpu is not None:
        lines.append(f"note: the reference was written on another CPU ({reference_cpu}; this one: {cpu_kernels()}), "
                     "whose kernels train to other numbers: only the summaries are compared. Write a reference "
                     "on this CPU (scripts/check_scores.sh --update on a trusted commit) for the cell-by-cell check")
    lines.append(f"{len(result)} scores compared (tolerance {tolerance} points): {len(bad)} regressed or missing, "
                 f"{len(moved)} changed within tolerance or improved")
    if protocol_changed:
        lines.append("note: the protocol's hash differs from the reference's (data or protocol file changed)")
    shown = pd.concat([bad, moved.reindex(moved["change"].abs().sort_values(ascending=False).index).head(10)])
    if not shown.empty:
        table = shown.assign(reference=shown["reference"] * 100, run=shown["run"] * 100)
        lines.append(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    lines.append("FAILED: scores fell below the reference" if len(bad) else "OK: no score fell below the reference")
    return "\n".join(lines)
