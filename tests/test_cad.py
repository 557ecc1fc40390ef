"""CAD's self-supervised baselines (cad_cutpaste, cad_panda): CutPaste's augmentation geometry, that
each method learns, that its per-task statistics survive later tasks, and a run through the engine."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from sklearn.metrics import roc_auc_score

from iufbench.config import resolve_method_config
from iufbench.engine import RunOptions, run
from iufbench.errors import ConfigError
from iufbench.features import BackboneSpec
from iufbench.methods import METHODS, MethodContext, TrainTask
from iufbench.methods.cad.augment import DefectSpec, cut_paste, scar
from iufbench.protocols import load_protocol
from iufbench.runtime import seed_everything

from conftest import write_protocol

CPU = torch.device("cpu")
SIZE = 32
CAD = ["cad_cutpaste", "cad_panda"]


def _coordinates(h: int, w: int) -> torch.Tensor:
    """An image whose pixels say where they are: channel 0 = row, channel 1 = column (exact in float)."""
    rows, cols = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                                indexing="ij")
    return torch.stack([rows, cols, torch.zeros(h, w)])


def _moved(original: torch.Tensor, augmented: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Where pixels changed (target coordinates) and where each came from (source coordinates)."""
    changed = (original != augmented).any(0)
    target = changed.nonzero().float()
    source = augmented[:2][:, changed].T
    return target, source


def test_cut_paste_moves_one_rectangle_of_the_sampled_area_without_distortion() -> None:
    spec = DefectSpec(jitter=0.0)
    image = _coordinates(64, 64)
    torch.manual_seed(0)
    for _ in range(20):
        augmented = cut_paste(image, spec)
        target, source = _moved(image, augmented)
        if len(target) == 0:  # pasted back where it was cut: nothing changed
            continue
        shift = target - source
        assert torch.equal(shift, shift[:1].expand_as(shift))  # a pure translation of the patch
        h = int(target[:, 0].max() - target[:, 0].min()) + 1
        w = int(target[:, 1].max() - target[:, 1].min()) + 1
        assert len(target) <= h * w <= 0.15 * 64 * 64 + 2 * 64  # within the area range (rounding)
        assert max(h / w, w / h) <= 1 / 0.3 + 0.5  # aspect ratio within [0.3, 1/0.3]


def test_scar_pastes_a_thin_rotated_copy_of_a_source_strip() -> None:
    image = _coordinates(256, 256)
    torch.manual_seed(0)
    upright = DefectSpec(jitter=0.0, scar_rotation=0.0)
    for _ in range(10):
        target, source = _moved(image, scar(image, upright))
        if len(target) == 0:  # pasted back where it was cut: nothing changed
            continue
        rows = int(source[:, 0].max() - source[:, 0].min()) + 1
        cols = int(source[:, 1].max() - source[:, 1].min()) + 1
        assert 10 <= rows <= 25 and 2 <= cols <= 16  # CutPaste's 10-25 x 2-16 px strip at 256 px
        assert len(target) == rows * cols  # upright: the whole strip, moved as one block
        shift = target - source
        assert torch.equal(shift, shift[:1].expand_as(shift))
    rotated = DefectSpec(jitter=0.0, scar_rotation=45.0, scar_width=(16 / 256, 16 / 256),
                         scar_height=(25 / 256, 25 / 256))
    widths = []
    for _ in range(10):
        target, source = _moved(image, scar(image, rotated))
        assert (source[:, 0].max() - source[:, 0].min() + 1) <= 25 and (source[:, 1].max() - source[:, 1].min() + 1) <= 16
        widths.append(int(target[:, 1].max() - target[:, 1].min()) + 1)
    assert max(widths) > 16  # turned: the pasted strip spreads wider than its upright width


NO_FEATURES = (0, 0, 0)  # these methods read images, not the backbone's feature map


def _method(name: str, *overrides: str):
    config = resolve_method_config(name, load_protocol("demo"), overrides=["train.batch_size=8", *overrides])
    cls = METHODS.get(name)
    return cls(config, MethodContext.for_method(cls, NO_FEATURES, (SIZE, SIZE), CPU, 0, progress=False,
                                                backbone=BackboneSpec()))


def _object(kind: int, n: int, defective: bool, seed: int) -> torch.Tensor:
    """uint8 images [n, 3, SIZE, SIZE] of an easy object: a smooth colour field with noise; defects are
    a bright square."""
    g = torch.Generator().manual_seed(seed)
    base = torch.tensor([[60.0, 120.0, 180.0], [180.0, 60.0, 90.0]][kind]).view(1, 3, 1, 1)
    ramp = torch.linspace(-30, 30, SIZE).view(1, 1, 1, SIZE)
    images = base + ramp + 8 * torch.randn(n, 3, SIZE, SIZE, generator=g)
    if defective:
        for img in images:
            top, left = torch.randint(0, SIZE - 10, (2,), generator=g).tolist()
            img[:, top : top + 10, left : left + 10] = 255.0
    return images.clamp(0, 255).to(torch.uint8)


def _task(step: int) -> TrainTask:
    names = ("a", "b")[: step + 1]
    return TrainTask(step, names[-1:], names[-1:], names, _object(step, 16, False, step), torch.full((16,), step))


def _auroc(method, kind: int) -> float:
    normal, defective = _object(kind, 12, False, 100 + kind), _object(kind, 12, True, 200 + kind)
    scores = method.score(torch.cat([normal, defective])).image
    return roc_auc_score([0] * 12 + [1] * 12, scores.numpy())


@pytest.mark.parametrize("name", CAD)
def test_cad_method_learns_its_base_task_and_keeps_its_statistics_through_the_next(name: str) -> None:
    seed_everything(0)
    method = _method(name, "train.epochs=4", "train.lr=1e-4")
    task = _task(0)
    images = task.features.float() / 255
    if name == "cad_panda":
        method.before_training(task.features)
    with torch.no_grad():
        untrained = method.loss(images).item()
    log = method.learn(task)
    if name == "cad_cutpaste":
        assert log["loss"] < math.log(2)  # better than chance at telling pasted images from normal ones
    else:
        assert log["loss"] < untrained  # the embeddings moved towards the task's centre
    assert _auroc(method, 0) > 0.8
    assert method.score(task.features).maps is None and not METHODS.get(name).pixel_output

    kept = [t.clone() for t in (method.gaussians.means[0], method.gaussians.covs[0])]
    weights = [p.detach().clone() for p in method.model.parameters()]
    method.learn(_task(1))
    # task 0's Gaussian is stored, never refitted: it survives task 1 unchanged ...
    assert torch.equal(method.gaussians.means[0], kept[0]) and torch.equal(method.gaussians.covs[0], kept[1])
    assert method.gaussians.counts == [16, 16]
    # ... but the backbone that embeds task 0's test images moved (why its scores may still drift)
    assert any(not torch.equal(a, b) for a, b in zip(weights, method.model.parameters()))


def test_density_last_keeps_only_the_newest_tasks_gaussian_as_cads_code_does() -> None:
    seed_everything(0)
    method = _method("cad_panda", "train.epochs=1", "cad.density=last")
    method.learn(_task(0))
    method.learn(_task(1))
    assert method.gaussians.counts == [16]
    newest = method.embed(_task(1).features).double().mean(0)
    assert torch.allclose(method.gaussians.mean, newest)


def test_cad_state_holds_the_backbone_and_bad_settings_are_refused() -> None:
    seed_everything(0)
    method = _method("cad_cutpaste", "train.epochs=1")
    method.learn(_task(0))
    assert method.state_bytes() > sum(p.numel() * 4 for p in method.model.parameters())
    with pytest.raises(ConfigError, match="cad.density"):
        _method("cad_panda", "cad.density=all")
    config = resolve_method_config("cad_panda", load_protocol("demo"))
    with pytest.raises(ConfigError, match="backbone"):
        cls = METHODS.get("cad_panda")
        cls(config, MethodContext.for_method(cls, NO_FEATURES, (SIZE, SIZE), CPU, 0))


def test_cad_methods_run_through_the_engine_on_images_with_image_cells_only(tmp_path: Path, tiny_root: Path) -> None:
    proto = load_protocol(str(write_protocol(tmp_path, tiny_root, [["fabric", "screw"], ["wood"]])))
    opts = RunOptions(methods=CAD, seeds=[0], out_dir=tmp_path / "runs", run_id="cad", progress=False,
                      overrides=["train.epochs=1", "train.batch_size=4"])
    run_dir = run(proto, opts)
    matrix = run_dir.read_matrix()
    for name in CAD:
        rows = matrix[matrix.method == name]
        assert rows[rows.metric == "image_auroc"].value.notna().all()
        assert rows[rows.metric == "pixel_auroc"].value.isna().all()
    assert run_dir.read_record().status == "complete"
