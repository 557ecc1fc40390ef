"""The fast path (bf16 autocast, device-resident tasks, one host sync per epoch) trains the same
model as the plain fp32 path, and `iufbench bench` measures and projects what it claims."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import TINY_OVERRIDES
from iufbench.bench import BenchOptions, loss_trajectory, paper_samples, run_bench
from iufbench.cli import main
from iufbench.config import resolve_method_config
from iufbench.errors import ConfigError
from iufbench.methods import METHODS, MethodContext
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


def test_bench_measures_every_method_and_projects(tmp_path: Path) -> None:
    opts = BenchOptions(methods=["uniad", "iuf"], device="cpu", protocol="mvtec_14_1", schedule="fast",
                        batch_size=4, eval_batch_size=4, warmup=0, repeats=2, steps=1)
    report = run_bench(opts)
    assert report["feature_shape"] == [272, 14, 14]  # B4 stages 1-4 at stride 16 of 224 px
    assert [r["method"] for r in report["methods"]] == ["uniad", "iuf"]
    for row in report["methods"]:
        assert row["train_img_s"] > 0 and row["infer_img_s"] > 0 and row["train_peak_gib"] > 0
        assert row["paper_run_minutes"] == pytest.approx(report["paper_samples"] / row["train_img_s"] / 60)
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
