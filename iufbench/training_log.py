"""The run's training curves: every epoch's mean loss and loss terms, per method, seed and step, in
the run directory's `losses.csv` (and, with `--tensorboard`, as TensorBoard event files).

A slow divergence, or a method that stopped learning after epoch 3, is visible after the fact.
The file is rewritten atomically like matrix.csv: at the end of every step, and within a long step
at most every `FLUSH_SECONDS`; the other pairs' rows are formatted once per pair, so a rewrite costs
about the current pair's rows, not the whole file's. A pair's rows of finished steps travel in its
checkpoint, so a resumed run rewrites them from there and neither duplicates nor loses a row.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd

from iufbench.errors import ConfigError
from iufbench.records import LOSS_COLUMNS, RunDir

FLUSH_SECONDS = 60.0


def require_tensorboard() -> None:
    """`--tensorboard` without the package fails before anything is written."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401, PLC0415
    except ImportError as exc:
        raise ConfigError("--tensorboard needs the tensorboard package: pip install 'iufbench[tensorboard]' "
                          "(or pip install tensorboard), or run without --tensorboard; losses.csv is written "
                          "either way") from exc


def _terms(columns: Any) -> list[str]:
    return [c for c in columns if c not in LOSS_COLUMNS]


class LossLog:
    """Collects one (method, seed) pair's epochs at a time and keeps losses.csv current."""

    def __init__(self, run_dir: RunDir, tensorboard: bool = False) -> None:
        self.run_dir = run_dir
        self.tensorboard = tensorboard
        self.others = pd.DataFrame(columns=LOSS_COLUMNS)  # rows of every other pair, read once per pair
        self.others_text = ("", [])  # (their CSV text with its header, its columns), made once per column set
        self.rows: list[dict[str, Any]] = []  # this pair's rows: finished steps (from its checkpoint) + current
        self.method, self.seed = "", 0
        self.last_write = 0.0
        self.writer: Any = None

    def start_pair(self, method: str, seed: int, rows: list[dict[str, Any]]) -> None:
        """`rows`: the pair's rows of the steps its checkpoint holds (none for a fresh pair); rows of
        a step that was interrupted are dropped here and written again when it reruns."""
        self.close()
        self.method, self.seed, self.rows = method, seed, list(rows)
        stored = self.run_dir.read_losses()
        self.others = stored[~((stored["method"] == method) & (stored["seed"] == seed))]
        self.others_text = ("", [])
        if self.tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # noqa: PLC0415

            folder = Path(self.run_dir.path) / "tensorboard" / f"{method}-seed{seed}"
            # purge: events of an interrupted step (logged after the checkpoint's last epoch) go
            self.writer = SummaryWriter(str(folder), purge_step=len(self.rows))
        self.flush()

    def epoch(self, step: int, epoch: int, epochs: int, losses: dict[str, float]) -> None:
        self.rows.append({"method": self.method, "seed": self.seed, "step": step, "epoch": epoch, **losses})
        if self.writer is not None:
            for name, value in losses.items():
                self.writer.add_scalar(f"loss/{name}", value, len(self.rows) - 1)
        if time.monotonic() - self.last_write > FLUSH_SECONDS:
            self.flush()

    def step_done(self, step: int, scores: dict[str, float]) -> None:
        """After a step's evaluation: write the file; TensorBoard also gets the step's mean scores."""
        if self.writer is not None:
            for name, value in scores.items():
                self.writer.add_scalar(f"auroc/{name}", value, max(len(self.rows) - 1, 0))
            self.writer.add_scalar("step", step, max(len(self.rows) - 1, 0))
            self.writer.flush()
        self.flush()

    def flush(self) -> None:
        """Fixed columns first, then the loss terms in the order they first appear."""
        mine_terms = dict.fromkeys(k for row in self.rows for k in row if k not in LOSS_COLUMNS)
        columns = LOSS_COLUMNS + list(dict.fromkeys([*_terms(self.others.columns), *mine_terms]))
        if self.others_text[1] != columns:
            self.others_text = (self.others.reindex(columns=columns).to_csv(index=False), columns)
        mine = pd.DataFrame(self.rows, columns=columns).to_csv(index=False, header=False) if self.rows else ""
        self.run_dir.write_losses_text(self.others_text[0] + mine)
        self.last_write = time.monotonic()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
