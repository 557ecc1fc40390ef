"""IUF components: discriminator and growing head, OASA's effect, SCL's gradient and effect,
the updating strategy's projection and pull, and checkpoint round trips."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY_OVERRIDES
from iufbench.config import resolve_method_config
from iufbench.data.images import load_image
from iufbench.data.mvtec import read_mvtec
from iufbench.features import BackboneSpec, FeatureExtractor
from iufbench.methods import METHODS, MethodContext, TrainTask
from iufbench.methods.iuf.compression import RefcodeSCL, gram_singular_values, paper_scl, tail_share
from iufbench.methods.iuf.method import guards
from iufbench.methods.iuf.updating import InputColumns, OutputRows, PullToOld, attended, omega, projector
from iufbench.protocols import load_protocol

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def feats(tiny_root: Path) -> dict[str, dict[str, torch.Tensor]]:
    """Train and test features of the three tiny objects (64 px, Lite0)."""
    extractor = FeatureExtractor(BackboneSpec())
    out = {}
    for name, data in read_mvtec(tiny_root).items():
        train = np.stack([load_image(p, (64, 64)) for p in data.train])
        test = np.stack([load_image(t.path, (64, 64)) for t in data.test])
        out[name] = {"train": extractor.extract(train, CPU), "test": extractor.extract(test, CPU)}
    return out


def _method(name: str, feats, extra: list[str] = ()):
    protocol = load_protocol("demo")  # only for the task count in schedule resolution
    config = resolve_method_config(name, protocol, overrides=[*TINY_OVERRIDES, "model.hidden_dim=32",
                                                               "oasa.dim_feedforward=32", "oasa.nhead=2", *extra])
    shape = tuple(next(iter(feats.values()))["train"].shape[1:])
    torch.manual_seed(0)
    cls = METHODS.get(name)
    return cls(config, MethodContext.for_method(cls, shape, (64, 64), CPU, 0, progress=False))


def _task(step: int, new: tuple[str, ...], space: tuple[str, ...], feats) -> TrainTask:
    x = torch.cat([feats[o]["train"] for o in new])
    y = torch.cat([torch.full((len(feats[o]["train"]),), space.index(o)) for o in new])
    return TrainTask(step=step, new_objects=new, objects=new, label_space=space, features=x, labels=y)


def test_discriminator_learns_the_objects_and_its_head_grows(feats) -> None:
    method = _method("iuf", feats, ["train.epochs=30", "loss.ce=1.0"])
    base = ("fabric", "screw")
    method.learn(_task(0, base, base, feats))
    disc = method.model.discriminator
    assert disc.num_classes == 2
    with torch.no_grad():
        for label, obj in enumerate(base):
            _, logits = disc(feats[obj]["test"])
            assert (logits.argmax(1) == label).float().mean() > 0.9, obj
    old_rows = disc.head.weight.detach().clone()
    method.before_task(_task(1, ("wood",), (*base, "wood"), feats))
    assert disc.num_classes == 3
    assert torch.equal(disc.head.weight[:2], old_rows)


def test_zeroing_the_object_context_changes_the_reconstruction(feats, monkeypatch) -> None:
    method = _method("iuf", feats)
    method.before_task(_task(0, ("fabric",), ("fabric",), feats))
    model = method.model.eval()
    x = feats["fabric"]["test"][:4]
    with torch.no_grad():
        normal = model(x)
        contexts, embedding = model.discriminator.embed(x)
        monkeypatch.setattr(model.discriminator, "embed", lambda f: ([torch.zeros_like(c) for c in contexts], embedding))
        zeroed = model(x)
    assert not torch.allclose(normal, zeroed, atol=1e-4)


def test_compression_losses_have_a_gradient() -> None:
    latent = torch.randn(8, 16, 12, requires_grad=True)
    paper_scl(latent, keep=2).backward()
    assert latent.grad.abs().sum() > 0
    latent.grad = None
    scl = RefcodeSCL(capacity=20, ratio=0.5)
    scl(torch.randn(8, 16, 12))  # a first batch fills the FIFO, detached
    scl(latent).backward()
    assert latent.grad.abs().sum() > 0
    assert len(scl.buffer) == 16 and not scl.buffer.requires_grad


def _rows(kind: str, b: int, d: int) -> torch.Tensor:
    torch.manual_seed(b * d)
    if kind == "low_rank":  # 3 large singular values, the rest tiny
        return torch.randn(b, 3) @ torch.randn(3, d) + 1e-3 * torch.randn(b, d)
    x = torch.randn(b, d)
    if kind == "repeated":  # duplicate rows: zero singular values
        x[1:4] = x[0]
    return x


@pytest.mark.parametrize("kind", ["random", "low_rank", "repeated"])
@pytest.mark.parametrize("shape", [(24, 256), (7, 40), (32, 16), (24, 24)])
def test_sync_free_singular_values_equal_svdvals(kind: str, shape: tuple[int, int]) -> None:
    # The compiled CUDA step's compression loss (Jacobi on the Gram matrix, no host sync), on the CPU.
    x = _rows(kind, *shape)
    for dtype, tolerance in ((torch.float64, 1e-10), (torch.float32, 1e-6)):  # of sigma_max
        ref = torch.linalg.svdvals(x.to(dtype))
        got = gram_singular_values(x.to(dtype))
        assert got.dtype == dtype and got.shape == ref.shape
        assert (got - ref).abs().max() <= tolerance * ref[0]


@pytest.mark.parametrize("normalise", [False, True])
def test_sync_free_compression_loss_has_svdvals_gradient(normalise: bool) -> None:
    latent = torch.randn(24, 9, 64)  # the loss works in float32 (spatial_mean), as svdvals does here
    grads = []
    for sync_free in (False, True):
        x = latent.clone().requires_grad_(True)
        loss = paper_scl(x, keep=4, normalise=normalise, sync_free=sync_free)
        loss.backward()
        grads.append((loss.item(), x.grad))
    assert grads[1][0] == pytest.approx(grads[0][0], rel=1e-6)
    torch.testing.assert_close(grads[1][1], grads[0][1], rtol=1e-4, atol=1e-6)


def test_normalised_scl_is_the_tail_share_and_shrinking_the_latent_cannot_lower_it() -> None:
    latent = torch.randn(8, 16, 12, requires_grad=True)
    share = paper_scl(latent, keep=2, normalise=True)
    assert float(share) == pytest.approx(tail_share(latent.detach(), keep=2), rel=1e-5)
    assert float(paper_scl(0.1 * latent.detach(), keep=2, normalise=True)) == pytest.approx(float(share), rel=1e-4)
    assert float(paper_scl(0.1 * latent.detach(), keep=2)) < 0.2 * float(paper_scl(latent.detach(), keep=2))
    share.backward()
    assert latent.grad.abs().sum() > 0


def test_scl_lowers_the_tail_singular_values_over_a_base_task(feats) -> None:
    base = ("fabric", "screw", "wood")
    shares = {}
    for name, weight in (("iuf", ["loss.scl=10.0"]), ("iuf_no_scl", [])):
        method = _method(name, feats, ["train.epochs=20", "scl.keep=2", *weight])
        task = _task(0, base, base, feats)
        method.learn(task)
        with torch.no_grad():
            latent = method.model.eval().forward_all(task.features).encoder
        shares[name] = tail_share(latent, keep=2)
    assert shares["iuf"] < shares["iuf_no_scl"]


def test_omega_matches_the_reference_weights() -> None:
    w = omega(256)
    assert w[0] == 0 and w[-1] == 1
    ref = torch.log(torch.arange(256, dtype=torch.float64) + 1) / math.log(256)  # ln(1+c)/ln 256, c=0..255
    assert torch.allclose(w, ref)


def test_projector_freezes_the_top_direction_and_frees_the_last() -> None:
    torch.manual_seed(0)
    y = torch.randn(50, 6, dtype=torch.float64) * torch.tensor([5.0, 3, 2, 1, 0.5, 0.1], dtype=torch.float64)
    p = projector(y.T @ y)
    eigenvalues, vectors = torch.linalg.eigh(y.T @ y)
    top, last = vectors[:, -1], vectors[:, 0]
    assert torch.allclose(top @ p, torch.zeros(6, dtype=torch.float64), atol=1e-10)
    assert torch.allclose(last @ p, last, atol=1e-10)


def test_reference_projection_protects_the_top_old_output_direction(feats) -> None:
    method = _method("iuf", feats, ["train.epochs=3", "us.protect=ffn_out"])
    base = ("fabric", "screw")
    method.learn(_task(0, base, base, feats))
    layers = {name: guard.module for name, guard in method.moments.guards.items()}
    before = {n: (l.weight.detach().clone(), l.bias.detach().clone()) for n, l in layers.items()}
    tops = {}
    for name, moment in method.moments.moments.items():
        values, vectors = torch.linalg.eigh(moment)
        tops[name] = vectors[:, -1].float()
    method.learn(_task(1, ("wood",), (*base, "wood"), feats))
    for name, layer in layers.items():
        dw = layer.weight.detach() - before[name][0]
        db = layer.bias.detach() - before[name][1]
        assert dw.abs().max() > 0, name  # the layer did change...
        assert (tops[name] @ dw).abs().max() < 1e-4 * dw.abs().max() * dw.shape[0], name  # ...not along v1
        assert (tops[name] @ db).abs() < 1e-4 * max(db.abs().max().item(), 1e-8) * db.shape[0], name


def test_protect_all_guards_every_parameter_that_reaches_the_reconstruction(feats) -> None:
    method = _method("iuf", feats)
    method.model.discriminator.grow(2)
    guarded = [id(p) for g in method.moments.guards.values() for p in g.params]
    assert len(guarded) == len(set(guarded))  # no parameter projected twice
    disc = method.model.discriminator
    free = {id(p) for m in (disc.hidden, disc.head) for p in m.parameters()}  # read by the cross-entropy only
    assert set(guarded) == {id(p) for p in method.model.parameters()} - free


def test_attended_is_what_the_output_projection_reads() -> None:
    torch.manual_seed(0)
    attention = torch.nn.MultiheadAttention(8, 2, batch_first=True).eval()
    x = torch.randn(3, 5, 8)
    assert torch.allclose(attention.out_proj(attended(attention, x)), attention(x, x, x)[0], atol=1e-6)


def test_only_the_input_side_projection_keeps_a_linear_layers_old_outputs() -> None:
    """y = W x: dW V V_perp^T with V from the old inputs gives dW x = 0; scaling the rows with V from
    the old outputs (the reference's side) only keeps the change out of the old outputs' span."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(6, 6)
    x_old = torch.randn(40, 2) @ torch.randn(2, 6)  # the old inputs span 2 of 6 directions
    y_old = layer(x_old).detach()
    dw, db = torch.randn(6, 6), torch.randn(6)
    changes = {}
    for guard in (InputColumns([layer.weight, layer.bias], layer), OutputRows([layer.weight, layer.bias], layer)):
        seen = x_old if guard.on_input else y_old.unsqueeze(1)
        rows = guard.rows(seen).double()
        p = projector(rows.T @ rows, "energy", 1.0).float()
        pw, pb = guard.project([dw, db], p)
        changes[type(guard).__name__] = (x_old @ pw.T + pb).abs().max().item()
    assert changes["InputColumns"] < 1e-5 and changes["OutputRows"] > 0.1


def test_full_protection_leaves_the_old_task_outputs_unchanged(feats) -> None:
    """Omega = 0 on every direction the old task reaches: one update on new data moves the model (its
    outputs on the new data) but not its outputs on the old task's own features; without the
    updating strategy the same update moves both."""
    old = feats["fabric"]["train"][:1]  # 16 tokens: fewer than the 33 input directions of every layer
    new = feats["wood"]["train"][:4]
    moved = {}
    for enabled in (True, False):
        method = _method("iuf", feats, ["us.omega=energy", "us.energy=1.0", f"us.enabled={str(enabled).lower()}"])
        method.learn(TrainTask(0, ("fabric",), ("fabric",), ("fabric",), old, torch.zeros(1, dtype=torch.long)))
        method.model.eval()
        with torch.no_grad():
            before_old, before_new = method.model(old), method.model(new)
        task = TrainTask(1, ("wood",), ("wood",), ("fabric", "wood"), new, torch.ones(4, dtype=torch.long))
        method.before_task(task)
        method.model.train()
        method.train_step(new, task.labels, method.make_optimizer(task))
        method.model.eval()
        with torch.no_grad():
            moved[enabled] = ((method.model(old) - before_old).abs().max().item(),
                              (method.model(new) - before_new).abs().max().item())
    scale = before_old.abs().max().item()
    assert moved[True][0] < 1e-5 * scale, moved  # protected: the old outputs stay
    assert moved[True][1] > 1e-3 * scale, moved  # ...while the model learns the new object
    assert moved[False][0] > 1e-3 * scale, moved  # unprotected, the same update rewrites them


def test_updating_strategy_is_inactive_in_the_base_task_and_in_the_ablation(feats) -> None:
    method = _method("iuf_no_us", feats)
    method.before_task(_task(1, ("wood",), ("fabric", "wood"), feats))
    assert method.projection is None and method.pull is None
    method = _method("iuf", feats)
    method.before_task(_task(0, ("fabric",), ("fabric",), feats))
    assert method.projection is None and method.pull is None


def test_pull_moves_weights_toward_the_old_ones() -> None:
    model = torch.nn.Linear(4, 4)
    old = model.weight.detach().clone()
    pull = PullToOld(model, beta=0.05)
    with torch.no_grad():
        model.weight.add_(1.0)
    drift = (model.weight - old).norm().item()
    pull()
    assert (model.weight - old).norm().item() == pytest.approx(0.95 * drift)


def test_state_round_trip_keeps_head_and_statistics(feats) -> None:
    method = _method("iuf", feats)
    base = ("fabric", "screw")
    method.learn(_task(0, base, base, feats))
    state = method.state_dict()
    fresh = _method("iuf", feats)
    fresh.load_state_dict(state)
    assert fresh.model.discriminator.num_classes == 2
    assert fresh.moments.images == method.moments.images == 16
    x = feats["fabric"]["test"][:3]
    assert torch.allclose(fresh.score(x).image, method.score(x).image)


def test_unknown_compression_form_fails_before_training(feats) -> None:
    from iufbench.errors import ConfigError

    with pytest.raises(ConfigError, match="scl.form must be paper or refcode"):
        _method("iuf", feats, ["scl.form=papr"])
    with pytest.raises(ConfigError, match="scl.normalise true or false, got .*'yes please'"):
        _method("iuf", feats, ["scl.normalise=yes please"])


def test_resuming_with_another_protect_fails_with_a_clear_message(feats) -> None:
    from iufbench.errors import ConfigError

    method = _method("iuf", feats)
    method.learn(_task(0, ("fabric",), ("fabric",), feats))
    with pytest.raises(ConfigError, match="another us.protect"):
        _method("iuf", feats, ["us.protect=ffn_out"]).load_state_dict(method.state_dict())
