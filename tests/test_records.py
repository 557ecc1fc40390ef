"""record.json as the contract between writing and reading a run: the typed record round-trips,
records written before `schema` (with or without traits) still report the same way, and whoever
only reads a run (report, plot, check, status) imports neither torch nor the methods."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from iufbench.records import SCHEMA, MethodTraits, RunDir, RunRecord
from iufbench.report.runs import load_run
from iufbench.report.tables import report

TASKS = [["a"], ["b"]]
METHODS = ["uniad", "joint", "iuf_no_scl", "iuf"]
REPORT_MODULES = ["iufbench.report", "iufbench.report.tables", "iufbench.report.plots", "iufbench.report.html",
                  "iufbench.report.check", "iufbench.report.progress", "iufbench.report.runs", "iufbench.records"]


def _old_step(objects: list[str]) -> dict:
    return {"eval_seconds": 1.5, "objects": objects, "peak_gpu_mb": None, "peak_rss_mb": 900.0,
            "state_bytes": 2**20, "train_images": 8, "train_log": {"loss": 0.5}, "train_seconds": 3.0}


def old_run(folder: Path, protocol: str = "tiny", traits: bool = False) -> Path:
    """A run directory in the layout of 2026-11-28 (no `schema`; `traits` without Table 2 switches
    from 2026-12-01 on), written as plain JSON the way that code wrote it."""
    record = {
        "compile": False, "config_hash": "0" * 16, "created": "2026-11-28T21:19:16",
        "features": {"channels": 16, "grid": [4, 4], "seconds": 1.0}, "flip_auroc": False, "git_sha": None,
        "host": {"device": "cpu", "cpu_count": 2, "platform": "Linux"}, "methods": {m: {} for m in METHODS},
        "overrides": [], "precision": "fp32", "run_id": "old",
        "protocol": {"name": protocol, "hash": "1" * 16, "resolved": {"tasks": TASKS}}, "schedule": "fast",
        "seeds": [0], "status": "complete", "versions": {"torch": "2.11.0"},
        "steps": {f"{m}/seed0": {str(i): _old_step(task) for i, task in enumerate(TASKS)} for m in METHODS},
    }
    if traits:
        record["traits"] = {m: {"family": "from the record", "sees_old_data": m == "joint", "keeps_old_data": False,
                                "pixel_output": True, "inputs": "features"} for m in METHODS}
    rows = [{"method": m, "seed": 0, "step": step, "object": obj, "metric": metric,
             "value": 0.9 - 0.01 * k - 0.05 * step * (obj == "a")}
            for k, m in enumerate(METHODS) for step in range(len(TASKS)) for obj in ("a", "b")[: step + 1]
            for metric in ("image_auroc", "pixel_auroc")]
    path = folder / "old"
    path.mkdir(parents=True)
    (path / "record.json").write_text(json.dumps(record))
    RunDir(path).write_matrix(rows)
    return path


@pytest.mark.parametrize("traits", [False, True], ids=["before traits", "traits without switches"])
def test_an_old_record_reads_with_the_traits_and_switches_of_its_time(tmp_path: Path, traits: bool) -> None:
    run = load_run(old_run(tmp_path, traits=traits))
    assert run.record.schema == SCHEMA and run.record.queue is None and run.record.features.extracted == []
    assert run.traits["joint"].uses_old_data and not run.traits["uniad"].uses_old_data
    assert (run.traits["iuf"].family == "from the record") is traits  # stored traits win over the old table
    assert run.traits["iuf_no_scl"].components == {"OASA": True, "SCL": False, "US": True}
    assert run.traits["uniad"].components is None
    table2 = report([run], "table2", "md")
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:5]]
            for line in table2.splitlines() if line.startswith("| iuf")}
    assert rows == {"iuf_no_scl": ["✓", "✗", "✓"], "iuf": ["✓", "✓", "✓"]}  # ablations only, with switches
    assert "| joint †" in report([run], "table1", "md")


def test_table2_takes_the_papers_switches_from_its_file(tmp_path: Path) -> None:
    text = report([load_run(old_run(tmp_path, "mvtec_14_1"))], "table2", "md", with_paper=True)
    line = next(line for line in text.splitlines() if line.startswith("| w/o OASA (reported in paper)"))
    assert [c.strip() for c in line.split("|")[2:5]] == ["✗", "✓", "✓"]


def test_a_record_round_trips_and_a_rewritten_old_one_gets_the_current_schema(tmp_path: Path) -> None:
    run_dir = RunDir(old_run(tmp_path))
    record = run_dir.read_record()
    run_dir.write_record(record)
    again = run_dir.read_record()
    assert again == record and again == RunRecord.from_dict(record.to_dict())
    stored = json.loads(run_dir.record_path.read_text())
    assert stored["schema"] == SCHEMA
    assert stored["traits"]["iuf"]["components"] == {"OASA": True, "SCL": True, "US": True}
    assert stored["steps"]["uniad/seed0"]["1"]["objects"] == ["b"]  # the layout readers knew, plus `schema`
    assert again.traits["joint"] == MethodTraits("UniAD", sees_old_data=True)


def test_reading_a_run_imports_neither_torch_nor_the_methods(tmp_path: Path) -> None:
    """`report`, `plot`, `check` and `status` on an old run directory, each module imported on its own
    and the four commands through the CLI, in fresh interpreters."""
    run = old_run(tmp_path)
    clean = "assert 'torch' not in sys.modules and not any(m.startswith('iufbench.methods') for m in sys.modules)"
    for module in REPORT_MODULES:
        res = subprocess.run([sys.executable, "-c", f"import sys, {module}; {clean}"], capture_output=True, text=True)
        assert res.returncode == 0, f"{module}: {res.stderr[-2000:]}"
    ref, figs = tmp_path / "ref.json", tmp_path / "figs"
    commands = [["report", str(run), "--layout", "table2", "--format", "md"], ["status", str(run)],
                ["plot", str(run), "--out", str(figs)], ["check", str(run), "--against", str(ref), "--update"],
                ["check", str(run), "--against", str(ref)]]
    script = f"import sys; from iufbench.cli import main\nfor c in {commands!r}: assert main(c) == 0, c\n{clean}"
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "iuf_no_scl" in res.stdout and "OK: no score fell" in res.stdout and list(figs.glob("*.png"))

