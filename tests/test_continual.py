"""Continual baselines on UniAD: avalanche's EWC / SI / MAS driven from our loop (penalties, importances,
and the two SI defects of avalanche 0.6 on the CPU), LwF's distillation, replay's budget, resume."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import TINY_OVERRIDES
from iufbench.config import resolve_method_config
from iufbench.engine import RunOptions, run
from iufbench.methods import METHODS, MethodContext, TrainTask
from iufbench.protocols import load_protocol

CPU = torch.device("cpu")
SHAPE = (24, 6, 6)


def _method(name: str, extra: tuple[str, ...] = ()):
    config = resolve_method_config(name, load_protocol("demo"), overrides=[*TINY_OVERRIDES, "train.epochs=3",
                                                                           *extra])
    torch.manual_seed(0)
    cls = METHODS.get(name)
    return cls(config, MethodContext.for_method(cls, SHAPE, (24, 24), CPU, 0, progress=False))


def _task(step: int, seed: int = 0, n: int = 16) -> TrainTask:
    g = torch.Generator().manual_seed(seed)
    names = tuple(f"o{i}" for i in range(step + 1))
    return TrainTask(step, names[-1:], names[-1:], names, torch.randn(n, *SHAPE, generator=g) * (1 + step),
                     torch.full((n,), step))


def _importances(method) -> list[torch.Tensor]:
    plugin = method.plugin
    if hasattr(plugin, "ewc_data"):  # SI
        return [p.data for p in plugin.ewc_data[1].values()]
    if hasattr(plugin, "importances"):  # EWC: {task: {name: ParamData}}
        return [p.data for imp in plugin.importances.values() for p in imp.values()]
    return [p.data for p in plugin.importance.values()]  # MAS


@pytest.mark.parametrize("name", ["uniad_ewc", "uniad_si", "uniad_mas"])
def test_importance_is_nonnegative_and_not_zero_and_the_penalty_anchors(name: str) -> None:
    method = _method(name)
    method.learn(_task(0))
    importances = _importances(method)
    assert all((imp >= 0).all() for imp in importances)
    assert sum(imp.abs().sum() for imp in importances) > 0  # SI on the CPU included
    # at the start of the next task the penalty is 0 at the old weights, positive once they move
    step = _task(1)
    method.before_task(step)
    method.make_optimizer(step)
    assert method.penalty().item() == pytest.approx(0.0, abs=1e-12)
    with torch.no_grad():
        for p in method.model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    assert method.penalty().item() > 0


def _saved_params(node) -> list[dict]:
    """The ParamData entries (anchors, importances, SI's sums) of a plugin's saved state."""
    if isinstance(node, dict):
        return [node] if "param_data" in node else [p for v in node.values() for p in _saved_params(v)]
    return [p for v in node for p in _saved_params(v)] if isinstance(node, list) else []


def _round_trip(state: dict, path: Path) -> dict:
    torch.save(state, path)
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.mark.parametrize("name", ["uniad_ewc", "uniad_mas"])
def test_a_checkpoint_saved_on_a_gpu_resumes_on_this_runs_device(name: str, tmp_path: Path) -> None:
    """A checkpoint loads with map_location="cpu": EWC's and MAS's anchors land on the CPU while
    they still name the device they were saved from, so a resume must put them on this run's device.
    The GPU checkpoint is simulated by marking every saved anchor as saved from cuda."""
    from iufbench.methods.continual.avalanche_bridge import plugin_state

    method = _method(name)
    method.learn(_task(0))
    state = method.state_dict()
    held = _saved_params(state["plugin"])
    assert held
    for param in held:
        param["device"] = "cuda:0"
    resumed = _method(name)
    resumed.load_state_dict(_round_trip(state, tmp_path / "step0.pt"))
    assert {p["device"] for p in _saved_params(plugin_state(resumed.plugin))} == {"cpu"}
    assert {p["data"].device.type for p in _saved_params(plugin_state(resumed.plugin))} == {"cpu"}
    step = _task(1)
    resumed.before_task(step)
    resumed.make_optimizer(step)
    assert resumed.penalty().item() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("name", ["uniad_ewc", "uniad_si", "uniad_mas"])
def test_a_resumed_plugin_trains_the_next_task_exactly_as_the_original(name: str, tmp_path: Path) -> None:
    """The plugin's state is saved as tensors (loadable with weights_only=True) and rebuilt into a
    fresh plugin: the next task then trains to the same weights, bit for bit."""
    method = _method(name)
    method.learn(_task(0))
    resumed = _method(name)
    resumed.load_state_dict(_round_trip(method.state_dict(), tmp_path / "step0.pt"))
    for m in (method, resumed):
        torch.manual_seed(1)
        m.learn(_task(1, seed=1))
    for key, value in method.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    first, second = (_saved_params(m.state_dict()["plugin"]) for m in (method, resumed))
    assert [p["param_data"] for p in first] == [p["param_data"] for p in second]
    assert all(torch.equal(a["data"], b["data"]) for a, b in zip(first, second))


def test_unpatched_avalanche_si_is_a_silent_no_op_on_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """The defect CopyingSI fixes: avalanche 0.6's SI keeps views of the live weights on the CPU."""
    from avalanche.training.plugins import SynapticIntelligencePlugin

    from iufbench.methods.continual import regularized

    monkeypatch.setattr(regularized, "make_plugin", lambda cfg: SynapticIntelligencePlugin(1.0))
    method = _method("uniad_si")
    method.learn(_task(0))
    assert all((imp == 0).all() for imp in _importances(method))


def test_ewc_keeps_one_fisher_matrix_however_long_the_stream() -> None:
    method = _method("uniad_ewc")
    for step in range(3):
        method.learn(_task(step, seed=step))
    assert list(method.plugin.importances) == [2] and list(method.plugin.saved_params) == [2]


def test_ewc_forgets_less_than_plain_finetuning_on_the_first_task() -> None:
    first, second = _task(0, seed=0), _task(1, seed=1)
    losses = {}
    for name, extra in (("uniad", ()), ("uniad_ewc", ("regularizer.lambda=1.0e5",))):
        method = _method(name, ("train.epochs=20", *extra))
        method.learn(first)
        method.learn(second)
        method.model.eval()
        with torch.no_grad():
            losses[name] = torch.nn.functional.mse_loss(method.model(first.features), first.features).item()
    assert losses["uniad_ewc"] < losses["uniad"]


def test_lwf_distils_only_after_the_first_task() -> None:
    method = _method("uniad_lwf")
    log0 = method.learn(_task(0))
    log1 = method.learn(_task(1))
    assert "distill" not in log0 and log1["distill"] > 0
    assert method.teacher is None  # the frozen copy is not kept between tasks


def test_replay_never_exceeds_its_budget() -> None:
    method = _method("uniad_replay", ("replay.per_object=5",))
    for step in range(4):
        log = method.learn(_task(step, seed=step))
        assert len(method.buffer) == log["buffer"] <= 5 * (step + 1)
        assert all(len(v) <= 5 for v in method.buffer.items.values())
    assert METHODS.get("uniad_replay").uses_old_data() and not METHODS.get("uniad_replay").sees_old_data


def test_continual_methods_run_and_resume_in_the_engine(tmp_path: Path, tiny_protocol: Path) -> None:
    proto = load_protocol(str(tiny_protocol))
    methods = ["uniad_ewc", "uniad_si", "uniad_mas", "uniad_lwf", "uniad_replay"]
    first = run(proto, RunOptions(methods=methods, overrides=list(TINY_OVERRIDES), out_dir=tmp_path, run_id="a",
                                  progress=False))
    matrix = first.read_matrix()
    assert set(matrix["method"]) == set(methods)
    assert (matrix.groupby("method")["step"].max() == 1).all()  # every step of the 2-task stream
    record = first.read_record()
    sizes = {m: record.steps[f"{m}/seed0"]["1"].state_bytes for m in methods}
    assert sizes["uniad_replay"] > sizes["uniad_lwf"]  # the buffer is part of the state
