"""The fast path (bf16 autocast, device-resident tasks, one host sync per epoch) trains the same
model as the plain fp32 path, and `iufbench bench` measures and projects what it claims."""
from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import pytest
import torch

from conftest import TINY_OVERRIDES
from iufbench.bench import BenchOptions, loss_trajectory, paper_eval_images, paper_images, paper_samples, run_bench
from iufbench.cli import main
from iufbench.config import resolve_method_config
from iufbench.errors import ConfigError
from iufbench.methods import METHODS, MethodContext, TrainTask
from iufbench.protocols import load_protocol

CPU = torch.device("cpu")
SHAPE = (40, 8, 8)


def _losses(name: str, precision: str) -> list[float]:
    extra = ("oasa.dim_feedforward=32", "oasa.nhead=2") if name.startswith("iuf") else ()
    return loss_trajectory(name, CPU, precision, overrides=(*TINY_OVERRIDES, *extra))


@pytest.mark.parametrize("name", ["uniad", "iuf"])
def test_bf16_autocast_trains_like_fp32(name: str) -> None:
    plain, fast = _losses(name, "fp32"), _losses(name, "bf16")
    assert plain != fast  # bf16 really ran (identical numbers would mean autocast was off)
    for a, b in zip(plain, fast):
        assert b == pytest.approx(a, rel=0.05), (plain, fast)


def test_unknown_precision_is_refused() -> None:
    config = resolve_method_config("uniad", load_protocol("demo"), overrides=TINY_OVERRIDES)
    with pytest.raises(ConfigError, match="precision must be fp32 or bf16"):
        cls = METHODS.get("uniad")
        cls(config, MethodContext.for_method(cls, SHAPE, (32, 32), CPU, 0, precision="fp16"))


def test_paper_projection_counts_drop_last_batches() -> None:
    protocol = load_protocol("mvtec_14_1", require_roots=False)
    # 14 base objects: 3389 images, 141 full batches of 24, 1601 epochs; zipper: 240 images, 2899 epochs
    assert paper_samples(protocol) == 1601 * 141 * 24 + 2899 * 10 * 24
    assert paper_samples(load_protocol("demo")) is None  # no image counts: no projection
    # evaluation after the base task scores the 14 base objects' 1574 test images, after zipper all 1725
    assert paper_eval_images(protocol) == 1574 + 1725
    assert paper_images(protocol) == 3389 + 240 + 1725


def test_bench_measures_every_method_and_projects(tmp_path: Path) -> None:
    opts = BenchOptions(methods=["uniad", "iuf"], device="cpu", protocol="mvtec_14_1", schedule="fast",
                        batch_size=4, eval_batch_size=4, warmup=0, repeats=2, steps=1)
    report = run_bench(opts)
    assert report["feature_shape"] == [272, 14, 14]  # B4 stages 1-4 at stride 16 of 224 px
    assert [r["method"] for r in report["methods"]] == ["uniad", "iuf"]
    for row in report["methods"]:
        assert row["train_img_s"] > 0 and row["infer_img_s"] > 0 and row["train_peak_gib"] > 0
        assert row["paper_train_minutes"] == pytest.approx(report["paper_samples"] / row["train_img_s"] / 60)
        assert row["metrics_ms_per_image"] > 0
        assert row["paper_eval_minutes"] == pytest.approx(
            report["paper_eval_images"] * (1 / row["infer_img_s"] + row["metrics_ms_per_image"] / 1000) / 60)
        assert row["paper_run_minutes"] == pytest.approx(row["paper_train_minutes"] + row["paper_eval_minutes"]
                                                         + report["paper_images"] / report["features"]["img_s"] / 60)
        assert row["train_step_ms"] == pytest.approx(4 / row["train_img_s"] * 1000)
    assert report["features"]["img_s"] > 0
    assert "torch" in report["versions"] and report["device"] == "cpu"


def test_bench_cli_writes_json_and_prints_a_table(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "bench.json"
    code = main(["bench", "--device", "cpu", "--protocol", "demo", "--schedule", "fast", "--methods", "uniad",
                 "--batch-size", "4", "--eval-batch-size", "4", "--warmup", "0", "--repeats", "1",
                 "--out", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    assert report["methods"][0]["paper_run_minutes"] is None
    text = capsys.readouterr().out
    assert "uniad" in text and "n/a" in text and str(out) in text


def test_bench_rejects_unknown_method(capsys: pytest.CaptureFixture) -> None:
    assert main(["bench", "--device", "cpu", "--methods", "uniadd"]) == 2
    assert "Did you mean 'uniad'" in capsys.readouterr().err


def test_compiled_step_updates_like_the_eager_step() -> None:
    # `--compile` compiles the whole update (forward, backward, clipping, AdamW, and IUF's compression
    # loss, projection and pull in its incremental step: IUF covers UniAD's update and every hook; one
    # method only, compiling on the CPU takes a minute). After a few updates the compiled model scores
    # like the eager one to float rounding. Dropout and jitter are off: inductor draws its own numbers.
    torch.manual_seed(0)
    data = torch.randn(2, 8, 16, 4, 4)
    labels = torch.zeros(2, 8, dtype=torch.long)
    labels[1] = 1
    names = ("a", "b")
    config = resolve_method_config("iuf", load_protocol("demo"), overrides=[
        *TINY_OVERRIDES, "oasa.dim_feedforward=32", "oasa.nhead=2", "scl.keep=2",
        "model.dropout=0.0", "model.jitter_prob=0.0", "train.lr=0.01"])
    eager = METHODS.get("iuf")(config, MethodContext(16, (4, 4), (16, 16), CPU, 0, progress=False))
    eager.learn(TrainTask(0, names[:1], names[:1], names[:1], data[0], labels[0]))  # the moments for step 1
    eager.before_task(TrainTask(1, names[1:], names[1:], names, data[1], labels[1]))  # grows the head: random
    compiled = copy.deepcopy(eager)
    compiled.ctx = dataclasses.replace(eager.ctx, compile=True)
    start = [p.detach().clone() for p in eager.model.parameters()]
    logs = {}
    for method in (eager, compiled):
        optimizer = method.make_optimizer(TrainTask(1, names[1:], names[1:], names, data[1], labels[1]))
        logs[method] = [method.train_step(data[1, i : i + 4], labels[1, :4], optimizer)[1] for i in (0, 4, 2)]
    for step_eager, step_compiled in zip(logs[eager], logs[compiled]):
        assert set(step_compiled) == {"mse", "ce", "scl"}
        for term, value in step_eager.items():
            assert float(step_compiled[term]) == pytest.approx(float(value), rel=1e-4), term
    assert max(float((p.detach() - p0).abs().max()) for p, p0 in zip(eager.model.parameters(), start)) > 1e-3
    # The same function, compared by its anomaly maps: weights differ where the gradient is zero up to
    # float noise (attention key biases: softmax ignores them), which Adam scales up to the learning
    # rate with whichever sign the noise has; no output depends on them.
    probe = torch.randn(4, 16, 4, 4)
    torch.testing.assert_close(compiled.score(probe).maps, eager.score(probe).maps, rtol=1e-4, atol=1e-5)
