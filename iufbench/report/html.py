"""`iufbench report RUN... --format html --out report.html`: one self-contained page to look at
and share runs: Table 1 (and Table 2 when the runs hold the IUF ablations), every figure of
`plots` embedded as a PNG data URI (no network, no side files), and each run's facts (protocol
and hash, versions, device, time per step, peak memory, status).

The page is a jinja2 template (`templates/report.html.j2`); everything on it comes from the run
directories, as for the other report formats.
"""
from __future__ import annotations

import base64
import datetime as dt
import io
from pathlib import Path
from typing import Any

import jinja2
import matplotlib.pyplot as plt
import pandas as pd

from iufbench.records import split_pair_key
from iufbench.report.plots import run_figures
from iufbench.report.runs import Run
from iufbench.report.tables import (DEFINITIONS, aggregate, build_table, caption, components, run_memory,
                                    run_scores, with_paper_rows)

FIGURE_DPI = 100
TEMPLATE = "report.html.j2"


def _png(fig: plt.Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=FIGURE_DPI, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _table(agg: pd.DataFrame, layout: str, memory: pd.DataFrame | None, definition: str,
           switches: dict[tuple[str, str], dict[str, bool]]) -> dict[str, Any]:
    """A table as the template draws it: header groups (protocol, span), column names, rows."""
    table = build_table(agg, layout, "html", memory, switches)
    groups: list[list[Any]] = []
    for protocol, _ in table.columns:
        if groups and groups[-1][0] == protocol:
            groups[-1][1] += 1
        else:
            groups.append([protocol, 1])
    return {"groups": groups, "columns": [stat for _, stat in table.columns],
            "rows": [(label, list(cells)) for label, cells in zip(table.index, table.to_numpy())],
            "caption": caption(definition, agg, memory is not None)}


def _per_method(run: Run) -> list[dict[str, Any]]:
    """Time per step, peak memory and state of each method, over its seeds and steps (record.json)."""
    out: dict[str, dict[str, Any]] = {}
    last = str(len(run.tasks) - 1)
    for key, steps in run.record.steps.items():
        method, seed = split_pair_key(key)
        row = out.setdefault(method, {"method": method, "seeds": set(), "steps": 0, "train": 0.0, "eval": 0.0,
                                      "rss": 0.0, "gpu": None, "state": []})
        row["seeds"].add(seed)
        for number, step in steps.items():
            row["steps"] += 1
            row["train"] += step.train_seconds
            row["eval"] += step.eval_seconds
            row["rss"] = max(row["rss"], step.peak_rss_mb or 0.0)
            if step.peak_gpu_mb is not None:
                row["gpu"] = max(row["gpu"] or 0.0, step.peak_gpu_mb)
            if number == last and step.state_bytes is not None:
                row["state"].append(step.state_bytes / 2**20)
    rows = []
    for method in run.methods:
        if method not in out:
            continue
        r = out[method]
        rows.append({"method": method, "family": run.traits[method].family, "seeds": len(r["seeds"]),
                     "steps": r["steps"], "train": r["train"] / r["steps"], "eval": r["eval"] / r["steps"],
                     "rss": r["rss"], "gpu": r["gpu"],
                     "state": sum(r["state"]) / len(r["state"]) if r["state"] else None})
    return rows


def _facts(run: Run) -> dict[str, Any]:
    record = run.record
    host = record.host
    device = host.get("device", "?") + (f" ({host['gpu']})" if host.get("gpu") else "")
    return {
        "run_id": record.run_id or run.dir.path.name, "status": record.status,
        "protocol": run.protocol, "protocol_hash": record.protocol.hash or "?",
        "tasks": " → ".join("+".join(task) for task in run.tasks),
        "created": record.created or "?", "resumed": ", ".join(record.resumed),
        "seeds": ", ".join(map(str, record.seeds)), "schedule": record.schedule or "?",
        "precision": record.precision, "device": device,
        "cpu": f"{host.get('cpu_count', '?')} cores, {host.get('torch_threads', '?')} torch threads",
        "platform": host.get("platform", "?"), "git_sha": record.git_sha or "?",
        "versions": ", ".join(f"{k} {v}" for k, v in record.versions.items()),
        "features_seconds": record.features.seconds,
        "overrides": " ".join(record.overrides) or "none",
        "methods": _per_method(run),
    }


def _figures(run: Run) -> dict[str, list[dict[str, str]]]:
    figures: dict[str, list[dict[str, str]]] = {}
    for kind, name, fig in run_figures(run):
        figures.setdefault(kind, []).append({"name": name, "src": _png(fig)})
    return figures


def html_report(runs: list[Run], definition: str = "paper", with_paper: bool = False,
                with_memory: bool = False) -> str:
    """The whole page as text."""
    agg = aggregate(run_scores(runs, definition))
    memory = run_memory(runs) if with_memory else None
    switches = components(runs)
    tables = {}
    for layout, title in (("table1", "Table 1: every method, ACC and FM"),
                          ("table2", "Table 2: IUF ablations (OASA, SCL, US)")):
        rows = with_paper_rows(agg, layout, definition) if with_paper else agg
        if layout == "table2" and not any(("run", m) in switches for m in agg["method"]):
            continue
        tables[title] = _table(rows, layout, memory if layout == "table1" else None, definition, switches)
    env = jinja2.Environment(loader=jinja2.PackageLoader("iufbench.report", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]), undefined=jinja2.StrictUndefined)
    return env.get_template(TEMPLATE).render(
        generated=dt.datetime.now().isoformat(timespec="seconds"), definition=DEFINITIONS[definition][1],
        tables=tables, runs=[{"facts": _facts(run), "figures": _figures(run)} for run in runs])


def write_html(runs: list[Run], out: Path, definition: str = "paper", with_paper: bool = False,
               with_memory: bool = False) -> None:
    text = html_report(runs, definition, with_paper, with_memory)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
