"""Run directories as the report commands read them: record, matrix and continual summaries.

Everything a table, plot or check shows is computed here from `record.json` and `matrix.csv`;
nothing is typed in.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pandas as pd

from iufbench.errors import DataError
from iufbench.metrics import summarise_matrix
from iufbench.records import MethodTraits, RunDir, RunRecord, split_pair_key


@dataclass
class Run:
    """One finished (or partly finished) run directory."""

    dir: RunDir
    record: RunRecord
    matrix: pd.DataFrame

    @property
    def protocol(self) -> str:
        return self.record.protocol.name

    @property
    def tasks(self) -> list[list[str]]:
        return self.record.tasks

    @property
    def learned_at(self) -> dict[str, int]:
        return {obj: step for step, task in enumerate(self.tasks) for obj in task}

    @property
    def methods(self) -> list[str]:
        """In the order the run wrote them."""
        return list(dict.fromkeys(self.matrix["method"]))

    @cached_property
    def traits(self) -> dict[str, MethodTraits]:
        """As the engine recorded them (a method the record has none for: the defaults)."""
        return {m: self.record.traits.get(m, MethodTraits()) for m in self.methods}

    @cached_property
    def losses(self) -> pd.DataFrame:
        """losses.csv cut to this run's methods (empty for runs older than it)."""
        df = self.dir.read_losses()
        return df[df["method"].isin(self.methods)].reset_index(drop=True)

    @cached_property
    def summary(self) -> pd.DataFrame:
        """Continual summaries of every (method, seed, metric) whose matrix covers every step."""
        return summarise_matrix(self.matrix, self.learned_at)


def load_run(path: Path) -> Run:
    run_dir = RunDir(Path(path))
    if not run_dir.exists():
        raise DataError(f"{path} is not a run directory (no record.json); pass results/<run-id> folders "
                        "written by `iufbench run`")
    if not (run_dir.path / "matrix.csv").is_file():
        raise DataError(f"run {path} has no matrix.csv: it stopped before its first step finished")
    return Run(run_dir, run_dir.read_record(), run_dir.read_matrix())


def load_runs(paths: list[Path], methods: list[str] | None = None) -> list[Run]:
    """The runs, each cut down to `methods` when given (a table of a few methods out of many runs)."""
    if not paths:
        raise DataError("no run directories given")
    runs = [load_run(p) for p in paths]
    if not methods:
        return runs
    present = {m for run in runs for m in run.matrix["method"].unique()}
    missing = [m for m in methods if m not in present]
    if missing:
        raise DataError(f"method(s) {', '.join(missing)} appear in none of the runs; they hold "
                        f"{', '.join(sorted(present))}")
    return [_only(run, methods) for run in runs if run.matrix["method"].isin(methods).any()]


def _only(run: Run, methods: list[str]) -> Run:
    record = dataclasses.replace(run.record, steps={k: v for k, v in run.record.steps.items()
                                                    if split_pair_key(k)[0] in methods})
    return Run(run.dir, record, run.matrix[run.matrix["method"].isin(methods)].reset_index(drop=True))
