"""The step loop: full matrix, data access rules, resume, and bad input that leaves no results."""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import TINY_OVERRIDES, assert_same_matrix, interrupt_in_step, run_then_kill_in_step_2, write_protocol
from iufbench.engine import RunOptions, run
from iufbench.errors import ConfigError, DataError
from iufbench.methods.base import TrainingError
from iufbench.methods.uniad.method import UniADMethod
from iufbench.metrics import OBJECT_METRICS
from iufbench.protocols import load_protocol


def _opts(out: Path, methods: list[str], **kw) -> RunOptions:
    return RunOptions(methods=methods, overrides=list(TINY_OVERRIDES), out_dir=out, run_id="r",
                      progress=False, **kw)


@pytest.fixture
def learn_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int, tuple[str, ...], int]]:
    """Records (class, step, objects, n_images) of every `learn` call."""
    calls = []
    original = UniADMethod.learn

    def spy(self, task):
        calls.append((type(self).__name__, task.step, task.objects, len(task.features)))
        return original(self, task)

    monkeypatch.setattr(UniADMethod, "learn", spy)
    return calls


def test_run_fills_the_full_matrix_and_record(tmp_path: Path, tiny_protocol: Path) -> None:
    protocol = load_protocol(str(tiny_protocol))
    run_dir = run(protocol, _opts(tmp_path, ["uniad"], seeds=[0, 1]))
    matrix = run_dir.read_matrix()
    for seed in (0, 1):
        sub = matrix[(matrix.method == "uniad") & (matrix.seed == seed)]
        assert set(sub[sub.step == 0].object) == {"fabric", "screw"}
        assert set(sub[sub.step == 1].object) == {"fabric", "screw", "wood"}
        assert set(sub.metric) == set(OBJECT_METRICS)
        assert sub[sub.metric == "image_auroc"].value.between(0, 1).all()
    record = json.loads((run_dir.path / "record.json").read_text())
    assert record["status"] == "complete"
    assert record["finished"] == record["queue"] == ["uniad/seed0", "uniad/seed1"]
    assert record["protocol"]["hash"] == protocol.hash()
    assert record["methods"]["uniad"]["train"]["epochs"] == [1, 1]
    assert {"torch", "timm", "numpy", "scikit-learn"} <= set(record["versions"])
    step = record["steps"]["uniad/seed0"]["1"]
    assert step["train_seconds"] > 0 and step["state_bytes"] > 0 and step["peak_rss_mb"] > 0
    summary = pd.read_csv(run_dir.path / "summary.csv")
    assert {"paper_acc", "paper_fm", "final_acc", "chaudhry_fm", "bwt"} <= set(summary.columns)


def test_engine_hands_only_new_objects_unless_registered_for_old_data(
        tmp_path: Path, tiny_protocol: Path, learn_calls: list) -> None:
    run(load_protocol(str(tiny_protocol)), _opts(tmp_path, ["uniad", "joint"]))
    seen = {(cls, step): (objs, n) for cls, step, objs, n in learn_calls}
    assert seen[("UniADMethod", 0)] == (("fabric", "screw"), 16)
    assert seen[("UniADMethod", 1)] == (("wood",), 8)
    assert seen[("JointUniAD", 1)] == (("fabric", "screw", "wood"), 24)


def test_resume_recomputes_nothing_and_matches_an_uninterrupted_run(
        tmp_path: Path, tiny_root: Path, learn_calls: list, monkeypatch: pytest.MonkeyPatch) -> None:
    proto = load_protocol(str(write_protocol(tmp_path, tiny_root, [["fabric"], ["screw"], ["wood"]])))
    make_opts = lambda out, **kw: _opts(out, ["uniad"], **kw)  # noqa: E731
    full, status = run_then_kill_in_step_2(proto, make_opts, UniADMethod, tmp_path, monkeypatch)
    assert status == "interrupted"
    learn_calls.clear()
    resumed = run(proto, make_opts(tmp_path / "cut", resume=True)).read_matrix()
    assert [step for _, step, _, _ in learn_calls] == [2]  # steps 0 and 1 came from the checkpoint
    assert_same_matrix(full, resumed)


def test_sigterm_marks_the_run_interrupted_and_lists_only_finished_pairs(
        tmp_path: Path, tiny_protocol: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = UniADMethod.after_task

    def terminated_in_seed_1(self, task):
        original(self, task)
        if self.ctx.seed == 1:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(UniADMethod, "after_task", terminated_in_seed_1)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
        run(load_protocol(str(tiny_protocol)), _opts(tmp_path, ["uniad"], seeds=[0, 1]))
    record = json.loads((tmp_path / "r" / "record.json").read_text())
    assert record["status"] == "interrupted"
    assert record["seeds"] == [0, 1] and record["finished"] == ["uniad/seed0"]
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is the run's only


def test_resume_refuses_a_different_configuration(tmp_path: Path, tiny_protocol: Path) -> None:
    proto = load_protocol(str(tiny_protocol))
    run(proto, _opts(tmp_path, ["uniad"]))
    with pytest.raises(ConfigError, match="exists; pass --resume"):
        run(proto, _opts(tmp_path, ["uniad"]))
    other = _opts(tmp_path, ["uniad"], resume=True)
    other.overrides.append("train.lr=0.5")
    with pytest.raises(ConfigError, match=r"another configuration \(method config of uniad differ\)"):
        run(proto, other)
    with pytest.raises(ConfigError, match=r"precision \(fp32 then, bf16 now"):
        run(proto, _opts(tmp_path, ["uniad"], resume=True, precision="bf16"))


@pytest.mark.parametrize("methods, seeds, match", [
    (["uniad"], [], "no seeds given"),
    (["uniad", "uniad"], [0], "method\\(s\\) uniad given twice"),
    (["uniad"], [0, 1, 0], "seed\\(s\\) 0 given twice"),
])
def test_empty_or_repeated_seeds_and_methods_fail_before_anything(tmp_path: Path, tiny_protocol: Path,
                                                                   methods: list, seeds: list, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        run(load_protocol(str(tiny_protocol)), _opts(tmp_path, methods, seeds=seeds))
    assert not (tmp_path / "r").exists()


def test_nan_loss_stops_with_a_clear_error(tmp_path: Path, tiny_protocol: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    def nan_loss(self, features, labels):
        loss = (self.model(features) * float("nan")).mean()
        return loss, {}

    monkeypatch.setattr(UniADMethod, "loss", nan_loss)
    with pytest.raises(TrainingError, match="loss became nan .* lower the learning rate"):
        run(load_protocol(str(tiny_protocol)), _opts(tmp_path, ["uniad"]))
    record = json.loads((tmp_path / "r" / "record.json").read_text())
    assert record["status"].startswith("failed")
    assert not (tmp_path / "r" / "summary.csv").exists()


def test_an_unexpected_crash_marks_the_run_failed_with_its_type(tmp_path: Path, tiny_protocol: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A CUDA out-of-memory error is a RuntimeError, not an IufbenchError; it used to leave the run
    `running` forever."""
    def out_of_memory(self, task):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(UniADMethod, "learn", out_of_memory)
    with pytest.raises(RuntimeError, match="out of memory"):
        run(load_protocol(str(tiny_protocol)), _opts(tmp_path, ["uniad"]))
    record = json.loads((tmp_path / "r" / "record.json").read_text())
    assert record["status"] == "failed: RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB"


def _copy_tiny(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("damage, error, match", [
    ("corrupt_image", DataError, "cannot read image"),
    ("mask_size", DataError, "mask .* but its image is"),
    ("empty_object", DataError, "no images|no training images"),
    ("unknown_object", DataError, "unknown object 'nope'.*Valid: fabric"),
])
def test_bad_input_fails_before_any_result_is_written(tmp_path: Path, tiny_root: Path, damage: str,
                                                      error: type, match: str) -> None:
    root = _copy_tiny(tiny_root, tmp_path / "data")
    tasks = [["fabric"], ["wood"]]
    if damage == "corrupt_image":
        (root / "wood" / "train" / "good" / "003.png").write_bytes(b"not a png at all")
    elif damage == "mask_size":
        mask = next((root / "fabric" / "ground_truth").rglob("*_mask.png"))
        Image.fromarray(np.zeros((10, 20), np.uint8)).save(mask)
    elif damage == "empty_object":
        (root / "empty").mkdir()
        (root / "empty" / "train" / "good").mkdir(parents=True)
        tasks = [["fabric"], ["empty"]]
    elif damage == "unknown_object":
        tasks = [["fabric"], ["nope"]]
    proto = load_protocol(str(write_protocol(tmp_path, root, tasks)))
    with pytest.raises(error, match=match):
        run(proto, _opts(tmp_path / "out", ["uniad"]))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("methods, overrides, image_size, match", [
    (["uniad", "iuf"], ["model.nhead=3"], 64, "method 'uniad' cannot be built.*hidden_dim 32 is not divisible"),
    (["uniad"], ["model.neighbor_size=[7,7]"], 64, "method 'uniad' cannot be built.*covers the whole"),
    (["uniad", "padim"], ["padim.n_features=100000"], 64, "padim"),
])
def test_a_config_no_method_can_be_built_from_fails_before_anything(
        tmp_path: Path, tiny_root: Path, learn_calls: list, methods: list, overrides: list, image_size: int,
        match: str) -> None:
    """These used to fail after the run directory was written, or after other methods had trained."""
    proto = load_protocol(str(write_protocol(tmp_path, tiny_root, [["fabric"], ["wood"]], image_size=image_size)))
    opts = _opts(tmp_path / "out", methods)
    opts.overrides += overrides
    with pytest.raises(ConfigError, match=match):
        run(proto, opts)
    assert not (tmp_path / "out").exists() and not learn_calls


def test_unknown_method_fails_before_anything(tmp_path: Path, tiny_protocol: Path) -> None:
    with pytest.raises(ConfigError, match="unknown method 'unaid'. Did you mean 'uniad'"):
        run(load_protocol(str(tiny_protocol)), _opts(tmp_path / "out", ["unaid"]))
    assert not (tmp_path / "out").exists()


def test_iuf_resume_matches_an_uninterrupted_run(tmp_path: Path, tiny_root: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """IUF keeps state beyond weights (head size, second moments, SCL FIFO): all must survive."""
    from iufbench.methods.iuf.method import IUFMethod

    proto = load_protocol(str(write_protocol(tmp_path, tiny_root, [["fabric"], ["screw"], ["wood"]])))
    extra = ["oasa.dim_feedforward=16", "oasa.nhead=2", "scl.tasks=all"]
    make_opts = lambda out, **kw: RunOptions(  # noqa: E731
        methods=["iuf_refcode"], overrides=[*TINY_OVERRIDES, *extra], out_dir=out, run_id="r", progress=False, **kw)
    full, _ = run_then_kill_in_step_2(proto, make_opts, IUFMethod, tmp_path, monkeypatch)
    assert_same_matrix(full, run(proto, make_opts(tmp_path / "cut", resume=True)).read_matrix())


def test_resume_can_add_seeds_and_records_them(tmp_path: Path, tiny_protocol: Path, learn_calls: list) -> None:
    proto = load_protocol(str(tiny_protocol))
    run(proto, _opts(tmp_path, ["uniad"]))
    learn_calls.clear()
    done = run(proto, _opts(tmp_path, ["uniad"], resume=True, seeds=[0, 1]))
    assert len(learn_calls) == 2  # seed 1's two steps; seed 0 came from its checkpoint
    assert done.read_record().seeds == [0, 1]
    assert set(done.read_matrix()["seed"]) == {0, 1}


def test_resume_with_other_seeds_leaves_the_cut_seed_out_of_the_summary(
        tmp_path: Path, tiny_protocol: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Seed 0 stopped after its first step, then the run is resumed with seed 1 only: the run
    completes, and seed 0's partial matrix gets no summary (it used to raise after all training)."""
    proto = load_protocol(str(tiny_protocol))
    interrupt_in_step(proto, _opts(tmp_path, ["uniad"]), UniADMethod, 1, monkeypatch)
    done = run(proto, _opts(tmp_path, ["uniad"], resume=True, seeds=[1]))
    assert done.read_record().status == "complete"
    assert set(done.read_matrix()["seed"]) == {0, 1}
    assert set(pd.read_csv(done.path / "summary.csv")["seed"]) == {1}


def test_object_names_that_look_like_numbers_or_missing_values_stay_text(tmp_path: Path) -> None:
    """Part numbers (`0042`) and `NA` used to come back from matrix.csv as 42 and NaN, which made
    every summary NaN without an error."""
    from iufbench.records import RunDir
    from iufbench.metrics import summarise_matrix

    learned_at = {"0042": 0, "NA": 0, "1e3": 1}
    rows = [{"method": "uniad", "seed": 0, "step": step, "object": obj, "metric": "image_auroc",
             "value": 0.9 - 0.1 * step} for step in (0, 1) for obj, at in learned_at.items() if at <= step]
    rows.append({"method": "uniad", "seed": 0, "step": 1, "object": "0042", "metric": "pixel_auroc",
                 "value": float("nan")})  # a cell with no value stays NaN
    run_dir = RunDir(tmp_path)
    run_dir.write_matrix(rows)
    matrix = run_dir.read_matrix()
    assert list(matrix.object[:2]) == ["0042", "NA"] and "1e3" in set(matrix.object)
    assert matrix.value.isna().sum() == 1
    image = summarise_matrix(matrix[matrix.metric == "image_auroc"], learned_at).iloc[0]
    assert np.isfinite(image["paper_acc"]) and np.isfinite(image["paper_fm"])


def test_a_method_whose_maps_contradict_its_pixel_output_fails(tmp_path: Path, tiny_protocol: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """`pixel_output = False` is what makes pixel cells n/a; a method that says so but returns maps
    (or the reverse) is a method bug, caught at the first evaluation."""
    monkeypatch.setattr(UniADMethod, "pixel_output", False)
    with pytest.raises(TypeError, match="declares pixel_output=False but its score\\(\\) returned anomaly maps"):
        run(load_protocol(str(tiny_protocol)), _opts(tmp_path, ["uniad"]))
