"""What `iufbench run` shows while it works.

On a terminal: one overall tqdm bar over every step of the run (pairs done, the current method,
seed, step and epoch, time left from the steps finished so far), with the epoch and evaluation
bars of the current step under it. Anywhere else (`> log 2>&1`, a batch job): one plain line per
finished step and per finished pair on stdout, so a log file shows how far the run is.
`--no-progress` silences both. With `run --jobs N` the pairs run in other processes and the sweep's
driver feeds their finished steps here, several pairs interleaved (no epoch bars).
"""
from __future__ import annotations

import datetime as dt
import sys
import time
from typing import Any, TextIO

import numpy as np
from tqdm.auto import tqdm

MAIN_METRIC = "image_auroc"


def choose_mode(enabled: bool) -> str:
    """'bars' when both streams are a terminal, 'lines' when either is redirected, 'off' if disabled."""
    if not enabled:
        return "off"
    return "bars" if sys.stdout.isatty() and sys.stderr.isatty() else "lines"


def seen_mean(rows: list[dict[str, Any]], metric: str = MAIN_METRIC) -> float:
    """Mean of `metric` over the objects evaluated at one step (AUROC points); NaN when absent."""
    values = [r["value"] for r in rows if r["metric"] == metric]
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) * 100 if finite else float("nan")


def _duration(seconds: float) -> str:
    return str(dt.timedelta(seconds=round(seconds)))


class RunProgress:
    """Fed by the engine (pairs, steps) and by the epoch loop (`epoch`); draws or prints."""

    def __init__(self, mode: str, pairs: list[str], steps_per_pair: int, steps_done: int,
                 stream: TextIO | None = None, parallel: int = 1) -> None:
        self.mode = mode
        self.pairs, self.steps_per_pair = pairs, steps_per_pair
        self.total = len(pairs) * steps_per_pair
        self.done = steps_done  # steps finished, earlier invocations of a resumed run included
        self.pairs_done = 0
        self.stream = stream or sys.stdout
        self.seconds: list[float] = []  # of the steps finished in this invocation: the time-left estimate
        self.current = ""
        self.pair_seconds: dict[str, float] = {}  # per pair label: its steps' seconds in this invocation
        self.parallel = parallel  # pairs running at once: the time left is the steps left over this
        self.bar = (tqdm(total=self.total, initial=steps_done, desc="run", unit="step", dynamic_ncols=True,
                         bar_format="{desc} {n_fmt}/{total_fmt} steps |{bar}| [{elapsed}<{remaining}]{postfix}")
                    if mode == "bars" else None)
        if mode == "lines":
            self._line(f"{len(pairs)} method/seed pair(s) of {steps_per_pair} steps each: {self.total} steps, "
                       f"{steps_done} done before")

    def start_pair(self, method: str, seed: int, first_step: int) -> None:
        self.current = f"{method} seed {seed}"
        self.pair_seconds.setdefault(self.current, 0.0)
        self._postfix(self._step(first_step))

    def epoch(self, step: int, epoch: int, epochs: int, losses: dict[str, float]) -> None:
        self._postfix(f"{self._step(step)} epoch {epoch + 1}/{epochs} loss {losses['loss']:.4g}")

    def step_done(self, step: int, objects: tuple[str, ...], train_seconds: float, eval_seconds: float,
                  rows: list[dict[str, Any]]) -> None:
        seconds = train_seconds + eval_seconds
        self.seconds.append(seconds)
        self.pair_seconds[self.current] += seconds
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
        elif self.mode == "lines":
            seen = len({r["object"] for r in rows})
            self._line(f"{self.current} {self._step(step)} done ({', '.join(objects)}): "
                       f"{seconds:.1f} s (train {train_seconds:.1f}, eval {eval_seconds:.1f}), image AUROC "
                       f"{seen_mean(rows):.1f} (mean of {seen} seen objects); run {self.done}/{self.total} "
                       f"steps, {self._left()}")

    def pair_done(self, rows: list[dict[str, Any]]) -> None:
        self.pairs_done += 1
        self._postfix("done")
        if self.mode == "lines":
            last = [r for r in rows if r["step"] == self.steps_per_pair - 1]
            self._line(f"{self.current} finished in {_duration(self.pair_seconds[self.current])}: final image AUROC "
                       f"{seen_mean(last):.1f}; {self.pairs_done}/{len(self.pairs)} pairs done this invocation")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def _step(self, step: int) -> str:
        """0-based like matrix.csv and losses.csv, with the count a reader wants."""
        return f"step {step} (task {step + 1}/{self.steps_per_pair})"

    def _left(self) -> str:
        if not self.seconds:
            return "time left unknown"
        return f"about {_duration(np.mean(self.seconds) * (self.total - self.done) / self.parallel)} left"

    def _postfix(self, where: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"pairs {self.pairs_done}/{len(self.pairs)} | {self.current} | {where}")

    def _line(self, text: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {text}", file=self.stream, flush=True)
