"""Baselines outside the UniAD family: anomalib's PatchCore / PaDiM / DRAEM driven on our inputs,
the cumulative bank's budget, DNE's image-only scores, and the demo acceptance numbers."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from iufbench.config import resolve_method_config
from iufbench.engine import RunOptions, run
from iufbench.errors import ConfigError
from iufbench.methods import METHODS, MethodContext, TrainTask
from iufbench.metrics import summarise_matrix
from iufbench.protocols import load_protocol
from iufbench.runtime import seed_everything

CPU = torch.device("cpu")
SHAPE = (16, 4, 4)


def _method(name: str, *overrides: str, shape: tuple[int, int, int] = SHAPE):
    config = resolve_method_config(name, load_protocol("demo"), overrides=list(overrides))
    cls = METHODS.get(name)
    return cls(config, MethodContext.for_method(cls, shape, (32, 32), CPU, 0, progress=False))


def _task(step: int, n: int = 12, shape: tuple[int, int, int] = SHAPE) -> TrainTask:
    g = torch.Generator().manual_seed(step)
    names = tuple(f"o{i}" for i in range(step + 1))
    return TrainTask(step, names[-1:], names[-1:], names, torch.randn(n, *shape, generator=g) + 3 * step,
                     torch.full((n,), step))


def test_fast_coreset_picks_the_same_indices_as_anomalibs_and_repeats_with_the_seed() -> None:
    from iufbench.methods.classic.anomalib_bridge import FastKCenterGreedy, KCenterGreedy

    bank = torch.randn(3000, 48, generator=torch.Generator().manual_seed(1))
    seed_everything(7)  # the projection draws from numpy, the first pick from torch
    reference = KCenterGreedy(bank, sampling_ratio=0.05).select_coreset_idxs()
    seed_everything(7)
    ours = FastKCenterGreedy(bank, size=len(reference)).select_coreset_idxs()
    seed_everything(7)
    again = FastKCenterGreedy(bank, size=len(reference)).select_coreset_idxs()
    seed_everything(8)
    other = FastKCenterGreedy(bank, size=len(reference)).select_coreset_idxs()
    assert ours == reference == again
    assert len(set(ours)) == len(ours) == 150
    assert other != ours


def test_cumulative_bank_never_exceeds_its_budget_and_stops_growing() -> None:
    method = _method("patchcore_cumulative", "patchcore.budget=40", "patchcore.coreset_ratio=0.1")
    sizes, state = [], []
    for step in range(5):
        method.learn(_task(step))  # 12 images x 16 patches x 10 % = 19 rows per step
        sizes.append(len(method.model.memory_bank))
        state.append(method.state_bytes())
    assert sizes == [19, 38, 40, 40, 40]
    assert state[2] == state[3] == state[4] > state[0]
    # it keeps old objects' features: tables mark it, and plain PatchCore does not keep them
    assert METHODS.get("patchcore_cumulative").uses_old_data()
    plain = _method("patchcore")
    for step in range(3):
        plain.learn(_task(step))
    assert len(plain.model.memory_bank) == 19 and not METHODS.get("patchcore").uses_old_data()


def test_patchcore_scores_far_features_higher_and_maps_come_at_image_size() -> None:
    method = _method("patchcore")
    method.learn(_task(0))
    near, far = _task(0).features[:3], _task(0).features[:3] + 5.0
    scores = method.score(torch.cat([near, far]))
    assert scores.maps.shape == (6, 32, 32)
    assert (scores.image[3:] > scores.image[:3].max()).all()


def test_padim_channels_follow_the_seed_and_their_number_is_checked() -> None:
    a, b = _method("padim", "padim.n_features=8"), _method("padim", "padim.n_features=8")
    assert torch.equal(a.model.idx, b.model.idx) and len(a.model.idx.unique()) == 8
    with pytest.raises(ConfigError, match="n_features"):
        _method("padim", "padim.n_features=17")


def test_dne_mixture_is_the_moments_of_all_tasks_and_gives_image_scores_only() -> None:
    method = _method("cad_dne")
    method.learn(_task(0, n=20))
    method.learn(_task(1, n=40))
    from iufbench.methods.classic.dne import embed

    z = torch.cat([embed(_task(0, n=20).features), embed(_task(1, n=40).features)]).double()
    assert torch.allclose(method.gaussians.mean, z.mean(0), atol=1e-12)  # the mixture mean is the pooled mean
    scores = method.score(_task(1).features[:3])
    assert scores.maps is None and not METHODS.get("cad_dne").pixel_output
    assert torch.isfinite(scores.image).all()


def test_draem_learns_from_images_through_the_engine(tmp_path: Path, tiny_protocol: Path) -> None:
    proto = load_protocol(str(tiny_protocol))
    run_dir = run(proto, RunOptions(methods=["draem"], overrides=["train.epochs=1"], out_dir=tmp_path, run_id="d",
                                    progress=False))
    matrix = run_dir.read_matrix()
    last = matrix[(matrix.step == 1) & (matrix.metric.isin(["image_auroc", "pixel_auroc"]))]
    assert len(last) == 2 * 3 and np.isfinite(last.value).all()  # 3 objects, image and pixel
    record = run_dir.read_record()
    assert record.steps["draem/seed0"]["0"].train_images == 16  # fabric + screw, 8 images each


def test_an_override_no_selected_method_has_is_an_error_but_sections_are_per_method(
        tmp_path: Path, tiny_protocol: Path) -> None:
    proto = load_protocol(str(tiny_protocol))
    with pytest.raises(ConfigError, match="patchcorr.budget"):
        run(proto, RunOptions(methods=["padim"], overrides=["patchcorr.budget=3"], out_dir=tmp_path, progress=False))
    # each method takes the overrides of its own sections: patchcore.* is skipped for padim and back
    run_dir = run(proto, RunOptions(methods=["patchcore", "padim"], overrides=["padim.n_features=8",
                                                                            "patchcore.budget=9"],
                                    out_dir=tmp_path, run_id="ok", progress=False))
    methods = run_dir.read_record().methods
    assert methods["patchcore"]["patchcore"]["budget"] == 9 and methods["padim"]["padim"]["n_features"] == 8


@pytest.mark.slow
def test_demo_patchcore_forgets_the_cumulative_bank_does_not_and_dne_ranks_defects(tmp_path: Path) -> None:
    protocol = load_protocol("demo")
    methods = ["patchcore", "patchcore_cumulative", "cad_dne"]
    run_dir = run(protocol, RunOptions(methods=methods, out_dir=tmp_path, run_id="demo", progress=False))
    summary = summarise_matrix(run_dir.read_matrix(), protocol.learned_at()).set_index(["method", "metric"])
    assert summary.loc[("patchcore", "image_auroc"), "paper_fm"] > 0.05
    assert summary.loc[("patchcore_cumulative", "image_auroc"), "paper_fm"] < 0.05
    assert math.isnan(summary.loc[("cad_dne", "pixel_auroc"), "paper_acc"])
    matrix = run_dir.read_matrix()
    learned = protocol.learned_at()
    dne = matrix[(matrix.method == "cad_dne") & (matrix.metric == "image_auroc")]
    at_learning = dne[dne.apply(lambda r: r.step == learned[r.object], axis=1)]
    assert len(at_learning) == 8 and (at_learning.value > 0.5).all()  # defective above normal, every object
    steps = run_dir.read_record().steps["patchcore_cumulative/seed0"].values()
    rows, sizes = [s.train_log["bank_size"] for s in steps], [s.state_bytes for s in steps]
    budget = run_dir.read_record().methods["patchcore_cumulative"]["patchcore"]["budget"]
    assert rows[0] < rows[1] <= budget and rows[-2] == rows[-1] == budget  # grows, then the budget holds it
    assert sizes[0] < sizes[1] and sizes[-2] == sizes[-1]


def test_bench_times_memory_banks_and_pixel_methods() -> None:
    from iufbench.bench import BenchOptions, run_bench

    opts = BenchOptions(methods=["patchcore", "cad_dne", "draem"], device="cpu", protocol="demo", schedule="fast",
                        batch_size=2, eval_batch_size=2, warmup=0, repeats=1, steps=1)
    rows = {r["method"]: r for r in run_bench(opts)["methods"]}
    assert set(rows) == {"patchcore", "cad_dne", "draem"}
    assert all(r["train_img_s"] > 0 and r["infer_img_s"] > 0 for r in rows.values())


def test_bad_settings_and_too_few_images_fail_with_clear_errors() -> None:
    from iufbench.methods.base import TrainingError

    with pytest.raises(ConfigError, match="coreset_ratio"):
        _method("patchcore", "patchcore.coreset_ratio=0")
    with pytest.raises(ConfigError, match="budget"):
        _method("patchcore_cumulative", "patchcore.budget=0")
    with pytest.raises(TrainingError, match="at least 2 training images"):
        _method("cad_dne").learn(_task(0, n=1))
