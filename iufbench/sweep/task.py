"""The Ray task: the engine on one (protocol, method, seed) pair, in the pair's own run directory.

A worker killed mid-task (preemption, the OOM killer, a lost node) is a system failure: Ray runs the
task again (`max_retries`) and the engine, always started with resume, continues from the pair's
last checkpoint. An exception of the pair's own (bad config, NaN loss, CUDA out of memory) is not
retried: the engine has recorded it in the pair's record and the task returns it as text.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import socket
from pathlib import Path

import ray
import torch

from iufbench import engine
from iufbench.protocols import Protocol
from iufbench.records import atomic_write
from iufbench.sweep.plan import WORKER_FILE


@ray.remote
def run_pair(protocol: Protocol, opts: engine.RunOptions, threads: int) -> str | None:
    """None when the pair finished; else its error, one line."""
    torch.set_num_threads(threads)
    folder = opts.out_dir / str(opts.run_id)
    _note_worker(folder / WORKER_FILE)
    try:
        engine.run(protocol, opts)
    except Exception as exc:  # noqa: BLE001  (the pair's own failure: recorded, the sweep goes on)
        return f"{type(exc).__name__}: {exc}"
    return None


def _note_worker(path: Path) -> None:
    attempts = json.loads(path.read_text())["attempts"] if path.is_file() else 0
    atomic_write(path, json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "attempts": attempts + 1,
                                   "started": dt.datetime.now().isoformat(timespec="seconds")}))
