"""UniAD + LVT's inter-task attention consolidation: which parameters it covers, its importance, its
penalty (0 at the anchor, pulling back toward it), that it forgets less, and that its state survives
checkpoints and resume in the engine."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch

from conftest import TINY_OVERRIDES, assert_same_matrix, run_then_kill_in_step_2, write_protocol
from iufbench.config import resolve_method_config
from iufbench.engine import RunOptions, run
from iufbench.errors import ConfigError
from iufbench.methods import METHODS, MethodContext, TrainTask
from iufbench.methods.continual.lvt import LVTUniAD
from iufbench.protocols import load_protocol

CPU = torch.device("cpu")
SHAPE = (24, 6, 6)
ATTENTION_NAMES = {"encoder.0.attn.q.weight", "encoder.0.attn.q.bias", "encoder.0.attn.k.weight",
                   "encoder.0.attn.k.bias", "decoder.0.attn1.q.weight", "decoder.0.attn1.k.bias",
                   "decoder.0.attn2.q.bias", "decoder.0.attn2.k.weight", "decoder.0.query",
                   "pos.row.weight", "pos.col.weight"}


def _method(extra: tuple[str, ...] = (), name: str = "uniad_lvt", seed: int = 0):
    config = resolve_method_config(name, load_protocol("demo"), overrides=[*TINY_OVERRIDES, "train.epochs=3",
                                                                           *extra])
    torch.manual_seed(seed)
    cls = METHODS.get(name)
    return cls(config, MethodContext.for_method(cls, SHAPE, (24, 24), CPU, seed, progress=False))


def _task(step: int, seed: int = 0, n: int = 16) -> TrainTask:
    g = torch.Generator().manual_seed(seed)
    names = tuple(f"o{i}" for i in range(step + 1))
    return TrainTask(step, names[-1:], names[-1:], names, torch.randn(n, *SHAPE, generator=g) * (1 + step),
                     torch.full((n,), step))


def _move(params, scale: float = 0.01) -> None:
    with torch.no_grad():
        for p in params:
            p.add_(scale * torch.randn_like(p))


def test_uses_no_old_data() -> None:
    assert not LVTUniAD.uses_old_data()


def test_importance_covers_only_attention_parameters_and_is_nonnegative_and_not_zero() -> None:
    method = _method()
    assert method.importance == {} and method.penalty().item() == 0.0
    method.learn(_task(0))
    names = set(method.importance)
    assert names == set(method.anchor) == set(method.params)
    assert ATTENTION_NAMES <= names
    for name in names:  # values, outputs, FFNs, norms and projections are free to move
        assert not any(part in name for part in (".v.", ".out.", "ffn", "norm", "input_proj", "output_proj"))
    omega = torch.cat([v.flatten() for v in method.importance.values()])
    assert (omega >= 0).all() and omega.sum() > 0
    assert omega.mean().item() == pytest.approx(1.0, rel=1e-4)  # normalised per task
    assert len(omega.unique()) > 1  # weighted, not uniform
    method.learn(_task(1, seed=1))  # decay 1.0: the second task's importance is added
    omega = torch.cat([v.flatten() for v in method.importance.values()])
    assert omega.mean().item() == pytest.approx(2.0, rel=1e-4)


def test_groups_select_what_they_name() -> None:
    only_qk = _method(("lvt.groups=[qk]",))
    assert all(".q." in n or ".k." in n for n in only_qk.params)
    assert "decoder.0.query" not in only_qk.params and "pos.row.weight" not in only_qk.params
    with pytest.raises(ConfigError, match="lvt.groups"):
        _method(("lvt.groups=[values]",))


def test_penalty_is_zero_at_the_anchor_positive_once_attention_moves_and_blind_to_the_rest() -> None:
    method = _method()
    method.learn(_task(0))
    assert method.penalty().item() == pytest.approx(0.0, abs=1e-12)
    ffn = [p for n, p in method.model.named_parameters() if "ffn" in n or ".v." in n]
    _move(ffn)
    assert method.penalty().item() == pytest.approx(0.0, abs=1e-12)
    _move(method.params.values())
    assert method.penalty().item() > 0


def test_penalty_gradient_pulls_the_weights_back_to_the_anchor() -> None:
    method = _method()
    method.learn(_task(0))
    _move(method.params.values())
    params = list(method.params.values())
    before = method.penalty().item()
    grads = torch.autograd.grad(method.penalty(), params)
    for (name, p), g in zip(method.params.items(), grads):
        drift = p.detach() - method.anchor[name]
        torch.testing.assert_close(g, 2 * method.importance[name] * drift)
        assert (g * drift).sum() > 0  # a descent step moves toward the anchor
    lr = 0.25 / max(v.max().item() for v in method.importance.values())  # 2 * lr * Omega <= 0.5: no overshoot
    with torch.no_grad():
        for p, g in zip(params, grads):
            p.sub_(lr * g)
    assert method.penalty().item() < before


def test_consolidation_keeps_attention_closer_to_the_old_weights_than_plain_finetuning() -> None:
    first, second = _task(0, seed=0), _task(1, seed=1)
    drift = {}
    for strength in ("0.0", "1.0e3"):
        method = _method(("train.epochs=10", f"lvt.lambda={strength}"))
        method.learn(first)
        old = {n: p.detach().clone() for n, p in method.params.items()}
        log = method.learn(second)
        assert log["penalty"] >= 0 and log["grad_scale"] > 0
        drift[strength] = sum(((method.params[n].detach() - o) ** 2).sum() for n, o in old.items()).item()
    assert drift["1.0e3"] < 0.5 * drift["0.0"]


def test_with_lambda_zero_it_is_exactly_uniad() -> None:
    """The importance pass draws no random numbers and changes no weight: only the penalty differs."""
    x = _task(2, seed=2).features
    scores = []
    for name in ("uniad", "uniad_lvt"):
        method = _method(("lvt.lambda=0.0",) if name == "uniad_lvt" else (), name=name)
        method.learn(_task(0))
        method.learn(_task(1, seed=1))
        scores.append(method.score(x).maps)
    torch.testing.assert_close(scores[0], scores[1], rtol=0, atol=0)


def test_state_dict_round_trip_gives_identical_scores_and_penalty() -> None:
    method = _method()
    method.learn(_task(0))
    method.learn(_task(1, seed=1))
    buffer = io.BytesIO()
    torch.save(method.state_dict(), buffer)
    buffer.seek(0)
    restored = _method(seed=5)  # other initial weights, no importance yet
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    x = _task(2, seed=2).features
    a, b = method.score(x), restored.score(x)
    torch.testing.assert_close(a.image, b.image, rtol=0, atol=0)
    torch.testing.assert_close(a.maps, b.maps, rtol=0, atol=0)
    for m in (method, restored):
        torch.manual_seed(3)
        _move(m.params.values())
    assert method.penalty().item() == restored.penalty().item() > 0
    uniad = _method(name="uniad")
    assert method.state_bytes() > uniad.state_bytes()  # importances and anchors are part of the state


def test_runs_in_the_engine_and_a_resumed_run_matches_an_uninterrupted_one(
        tmp_path: Path, tiny_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proto = load_protocol(str(write_protocol(tmp_path, tiny_root, [["fabric"], ["screw"], ["wood"]])))
    overrides = [*TINY_OVERRIDES, "lvt.lambda=1.0e4"]  # strong, so a lost importance would change scores

    def opts(out: Path, **kw) -> RunOptions:
        return RunOptions(methods=["uniad_lvt"], overrides=overrides, out_dir=out, run_id="r", progress=False, **kw)

    full, status = run_then_kill_in_step_2(proto, opts, LVTUniAD, tmp_path, monkeypatch)
    assert set(full["method"]) == {"uniad_lvt"}
    steps = full.groupby("step")["object"].nunique()
    assert steps.to_dict() == {0: 1, 1: 2, 2: 3}  # the full lower-triangular matrix
    record = json.loads((tmp_path / "full" / "r" / "record.json").read_text())
    assert record["steps"]["uniad_lvt/seed0"]["1"]["train_log"]["penalty"] >= 0
    assert status == "interrupted"
    assert_same_matrix(full, run(proto, opts(tmp_path / "cut", resume=True)).read_matrix())
