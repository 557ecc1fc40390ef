"""What a run shows and keeps while it trains: losses.csv (a row per epoch, method, seed and step,
rewritten as the run goes, exact across a resume), TensorBoard events on request, and the progress
lines a redirected `iufbench run` leaves in its log."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import TINY_OVERRIDES, run_then_kill_in_step_2, write_protocol
from iufbench import training_log
from iufbench.cli import main
from iufbench.engine import RunOptions, run
from iufbench.errors import ConfigError
from iufbench.methods.uniad.method import UniADMethod
from iufbench.protocols import load_protocol
from iufbench.run_progress import choose_mode

EPOCHS = ["train.epochs=2"]
STEP_LINE = re.compile(r"^\d\d:\d\d:\d\d (\S+) seed (\d+) step (\d+) \(task \d+/(\d+)\) done \(")


def _opts(out: Path, methods: list[str], **kw) -> RunOptions:
    kw.setdefault("progress", False)
    return RunOptions(methods=methods, overrides=[*TINY_OVERRIDES, *EPOCHS], out_dir=out, run_id="r", **kw)


def test_losses_csv_has_a_row_per_epoch_method_seed_and_step(tmp_path: Path, tiny_protocol: Path) -> None:
    proto = load_protocol(str(tiny_protocol))  # 2 tasks
    losses = run(proto, _opts(tmp_path, ["uniad_lwf", "padim"], seeds=[0, 1])).read_losses()
    counts = losses.groupby(["method", "seed", "step"]).size()
    assert set(counts.index) == {("uniad_lwf", s, t) for s in (0, 1) for t in (0, 1)}
    assert (counts == 2).all()  # two epochs each; padim has no epochs, so no rows
    assert list(losses.columns) == ["method", "seed", "step", "epoch", "loss", "mse", "distill"]
    lwf = losses[losses["method"] == "uniad_lwf"]
    base = lwf[lwf["step"] == 0]
    assert base["distill"].isna().all() and (base["loss"] == base["mse"]).all()  # no teacher in the base task
    assert (lwf.loc[lwf["step"] == 1, "distill"] > 0).all()
    assert lwf.loc[lwf["step"] == 1, "loss"].gt(lwf.loc[lwf["step"] == 1, "mse"]).all()  # lambda 1: mse + distill


def test_resume_neither_duplicates_nor_loses_loss_rows(tmp_path: Path, tiny_root: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(training_log, "FLUSH_SECONDS", 0.0)  # every epoch on disk: the cut step's rows too
    proto = load_protocol(str(write_protocol(tmp_path, tiny_root, [["fabric"], ["screw"], ["wood"]])))
    make_opts = lambda out, **kw: _opts(out, ["uniad"], **kw)  # noqa: E731
    run_then_kill_in_step_2(proto, make_opts, UniADMethod, tmp_path, monkeypatch)
    full = pd.read_csv(tmp_path / "full" / "r" / "losses.csv")
    cut = pd.read_csv(tmp_path / "cut" / "r" / "losses.csv")
    assert sorted(cut["step"].unique()) == [0, 1, 2]  # step 2 trained (and was written) before the cut
    resumed = run(proto, make_opts(tmp_path / "cut", resume=True)).read_losses()
    key = ["method", "seed", "step", "epoch"]
    assert not resumed.duplicated(key).any()
    pd.testing.assert_frame_equal(full.sort_values(key).reset_index(drop=True),
                                  resumed.sort_values(key).reset_index(drop=True))


def test_tensorboard_writes_event_files_or_says_what_to_install(tmp_path: Path, tiny_protocol: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    proto = load_protocol(str(tiny_protocol))
    pytest.importorskip("tensorboard", reason="tensorboard is an optional extra: pip install 'iufbench[tensorboard]'")
    done = run(proto, _opts(tmp_path / "tb", ["uniad"], tensorboard=True))
    assert list((done.path / "tensorboard" / "uniad-seed0").glob("events.out.tfevents.*"))
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if it were not installed
    with pytest.raises(ConfigError, match=r"iufbench\[tensorboard\]"):
        run(proto, _opts(tmp_path / "none", ["uniad"], tensorboard=True))
    assert not (tmp_path / "none").exists()  # refused before anything was written


def test_redirected_run_logs_one_line_per_finished_step_and_pair(tmp_path: Path, tiny_protocol: Path,
                                                                 capsys: pytest.CaptureFixture) -> None:
    assert choose_mode(True) == "lines" and choose_mode(False) == "off"  # pytest's stdout is no terminal
    def argv(run_id: str, *extra: str) -> list[str]:
        return ["run", "--protocol", str(tiny_protocol), "--methods", "uniad,padim", "--seeds", "0,1", "--out",
                str(tmp_path), "--run-id", run_id, *extra, *sum((["--set", o] for o in TINY_OVERRIDES), [])]

    assert main(argv("log", "--jobs", "1")) == 0  # one process: the lines in run order
    out = capsys.readouterr().out.splitlines()
    steps = [STEP_LINE.match(line).groups() for line in out if STEP_LINE.match(line)]
    assert steps == [(m, str(s), str(t), "2") for m in ("uniad", "padim") for s in (0, 1) for t in (0, 1)]
    assert sum("finished in" in line for line in out) == 4  # one per (method, seed)
    assert all("image AUROC" in line and "left" in line for line in out if STEP_LINE.match(line))
    assert main(argv("quiet", "--no-progress", "--jobs", "1")) == 0
    assert not any(STEP_LINE.match(line) for line in capsys.readouterr().out.splitlines())
