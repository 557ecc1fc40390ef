"""A protocol's run directory rebuilt from its pairs' engine runs: record.json, matrix.csv,
losses.csv and (at the end) summary.csv, each written whole under a temporary name and renamed.

Only the sweep's driver calls this, and it holds DIR/.pairs/.lock while it runs, so the shared files
have one writer; the pairs' Ray tasks write only their own directories (atomically, as the engine
always does). A merge therefore never loses a pair's rows: it reads every pair's last complete
files and writes the union. maps/ and checkpoints/ need no merge: each pair writes its own files
there through its directory's links.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pandas as pd
import torch

from iufbench.metrics import summarise_matrix
from iufbench.records import (LOSS_COLUMNS, MATRIX_COLUMNS, FeatureInfo, ProtocolInfo, RunDir, RunRecord, git_sha,
                              pair_key, split_pair_key, versions)
from iufbench.runtime import host
from iufbench.sweep.plan import WORKER_FILE, ProtocolPlan, SweepPlan


def base_record(plan: SweepPlan, p: ProtocolPlan) -> RunRecord:
    """The fields `iufbench run` writes once, for the whole protocol (all of the sweep's methods); a
    resumed sweep keeps the first invocation's `created` and notes when it resumed."""
    stored = p.run_dir.read_record() if p.run_dir.exists() else None
    o = plan.options
    record = RunRecord(
        run_id=p.run_path.name, status="running", config_hash=p.config_hash(plan.methods),
        protocol=ProtocolInfo(p.name, p.protocol.to_dict(), p.protocol.hash()),
        methods=p.configs, seeds=o.seeds, schedule=o.schedule, overrides=o.overrides,
        flip_auroc=p.flip_auroc, precision=p.precision, compile=o.compile, versions=versions(),
        git_sha=git_sha(), host=host(torch.device("cpu")),
        queue=[pair_key(m, s) for m in plan.methods for s in o.seeds],
        sweep={"ray_address": o.ray_address or "local", "cpus_per_job": o.cpus_per_job,
               "gpus_per_job": o.gpus_per_job, "max_retries": o.max_retries, "device": plan.device},
        created=dt.datetime.now().isoformat(timespec="seconds"),
    )
    if stored is not None:
        record.created = stored.created
        record.resumed = stored.resumed + [dt.datetime.now().isoformat(timespec="seconds")]
        record.methods = {**stored.methods, **p.configs}  # methods of earlier invocations stay listed
        record.seeds = sorted(set(stored.seeds) | set(o.seeds))
    return record


def merge(p: ProtocolPlan, base: RunRecord, running: set[str], failed: dict[str, str],
          final: bool) -> tuple[RunRecord, pd.DataFrame]:
    """Write DIR/<protocol>/record.json, matrix.csv and losses.csv from every pair directory on disk
    (pairs of earlier invocations included); with `final`, the status and summary.csv too. Returns
    the record and the matrix."""
    record = dataclasses.replace(base, steps={}, traits={}, finished=[], running=sorted(running),
                                 failed=dict(failed), pairs={}, features=FeatureInfo())
    matrices, losses = [], []
    for folder in sorted(p.pairs_dir.iterdir()) if p.pairs_dir.is_dir() else []:
        pair = RunDir(folder)
        if not pair.exists():
            continue  # laid out, not started
        stored = pair.read_record()
        worker = json.loads((folder / WORKER_FILE).read_text()) if (folder / WORKER_FILE).is_file() else {}
        for key, steps in stored.steps.items():
            record.steps[key] = steps
            record.pairs[key] = {"status": stored.status, "host": worker.get("host"),
                                 "attempts": worker.get("attempts"), "features_extracted": stored.features.extracted}
        record.traits.update(stored.traits)
        record.finished += stored.finished
        record.features.channels, record.features.grid = stored.features.channels, stored.features.grid
        record.features.extracted += stored.features.extracted
        record.features.seconds = round(record.features.seconds + stored.features.seconds, 2)
        if (pair.path / "matrix.csv").is_file():
            matrices.append(pair.read_matrix())
        losses.append(pair.read_losses())
    matrix = pd.concat(matrices, ignore_index=True) if matrices else pd.DataFrame(columns=MATRIX_COLUMNS)
    matrix = _in_queue_order(matrix, base.queue)
    if final:
        record.running = []
        record.status = _final_status(record, failed)
        p.run_dir.write_summary(summarise_matrix(matrix, p.protocol.learned_at()))
    p.run_dir.write_matrix(matrix.to_dict("records"))
    p.run_dir.write_losses_text(_in_queue_order(_merged_losses(losses), base.queue).to_csv(index=False))
    p.run_dir.write_record(record)
    return record, matrix


def _in_queue_order(frame: pd.DataFrame, queue: list[str]) -> pd.DataFrame:
    """Rows by method in the order they were asked for (as `run` writes them, so tables list methods
    in that order), then seed and step; methods of earlier invocations after them, by name."""
    rank = {m: i for i, m in enumerate(dict.fromkeys(split_pair_key(key)[0] for key in queue))}
    order = frame["method"].map(rank).fillna(len(rank))
    return (frame.assign(_rank=order).sort_values(["_rank", "method", "seed", "step"], kind="stable")
            .drop(columns="_rank").reset_index(drop=True))


def _merged_losses(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Every pair's losses.csv rows, the fixed columns first, then the loss terms in the order they
    first appear (as the engine writes them)."""
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame(columns=LOSS_COLUMNS)
    terms = dict.fromkeys(c for f in frames for c in f.columns if c not in LOSS_COLUMNS)
    return pd.concat(frames, ignore_index=True).reindex(columns=LOSS_COLUMNS + list(terms))


def _final_status(record: RunRecord, failed: dict[str, str]) -> str:
    if failed:
        return "failed: " + "; ".join(f"{key}: {error}" for key, error in failed.items())
    if all(key in record.finished for key in record.queue or []):
        return "complete"
    return "interrupted"
