"""The contract every registered method keeps, checked over `METHODS.names()` (as timm's tests go
over `list_models()`): its YAML exists and resolves, it builds, learns two tiny tasks, scores,
returns maps exactly when it declares `pixel_output`, reports the bytes of its state, and its state
survives a checkpoint (tensors and plain data, `torch.load(weights_only=True)`) with identical
scores. A new method needs no test of its own to be covered: registering it and adding its YAML
puts it here."""
from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from conftest import TINY_OVERRIDES
from iufbench import config as config_module
from iufbench import resources
from iufbench.config import load_method_yaml, resolve_method_config
from iufbench.errors import ConfigError
from iufbench.features import BackboneSpec
from iufbench.methods import METHODS, Method, MethodContext, TrainTask
from iufbench.protocols import load_protocol

CPU = torch.device("cpu")
FEATURES = (24, 4, 4)  # [C, h, w] of the stand-in backbone features
IMAGE_SIZE = (32, 32)
N = 8  # training images per task
# the smallest settings, applied where a method's YAML has the key: one epoch, a tiny transformer,
# narrow DRAEM networks, a two-image replay buffer, 8 PaDiM channels
SMALL = [*TINY_OVERRIDES, "draem.reconstructive_width=8", "draem.discriminative_width=8", "replay.per_object=2",
         "padim.n_features=8"]


def yaml_problems() -> list[str]:
    """Registered methods without a built-in YAML, and built-in YAMLs that name no method."""
    names, yamls = set(METHODS.names()), set(resources.builtin_names("methods"))
    return ([f"method {n} has no methods/{n}.yaml" for n in sorted(names - yamls)]
            + [f"methods/{n}.yaml names no registered method" for n in sorted(yamls - names)])


def _has_key(raw: dict[str, Any], override: str) -> bool:
    node: Any = raw
    for key in override.split("=", 1)[0].split("."):
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True


def _build(name: str, config: dict[str, Any], torch_seed: int) -> Method:
    cls = METHODS.get(name)
    torch.manual_seed(torch_seed)
    return cls(config, MethodContext.for_method(cls, FEATURES, IMAGE_SIZE, CPU, seed=0, progress=False,
                                                backbone=BackboneSpec()))


def _inputs(cls: type[Method], n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if cls.inputs == "images":
        return torch.randint(0, 256, (n, 3, *IMAGE_SIZE), generator=g, dtype=torch.uint8)
    return torch.randn(n, *FEATURES, generator=g) * (1 + seed)


def _task(cls: type[Method], step: int) -> TrainTask:
    names = ("a", "b")[: step + 1]
    return TrainTask(step, names[-1:], names[-1:], names, _inputs(cls, N, seed=step), torch.full((N,), step))


def test_every_registered_method_has_a_yaml_and_every_yaml_a_method() -> None:
    assert yaml_problems() == []


def test_a_missing_or_stray_yaml_fails_the_contract(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for path in resources.builtin_dir("methods").glob("*.yaml"):
        if path.name != "uniad_lwf.yaml":
            shutil.copy(path, tmp_path / path.name)
    shutil.copy(tmp_path / "uniad.yaml", tmp_path / "uniad_renamed.yaml")
    real = resources.builtin_dir
    methods_here = lambda kind: tmp_path if kind == "methods" else real(kind)  # noqa: E731
    monkeypatch.setattr(resources, "builtin_dir", methods_here)
    monkeypatch.setattr(config_module, "builtin_dir", methods_here)
    assert yaml_problems() == ["method uniad_lwf has no methods/uniad_lwf.yaml",
                               "methods/uniad_renamed.yaml names no registered method"]
    with pytest.raises(ConfigError, match="no config methods/uniad_lwf.yaml"):
        resolve_method_config("uniad_lwf", load_protocol("demo"))


@pytest.mark.parametrize("name", METHODS.names())
def test_method_contract(name: str) -> None:
    cls = METHODS.get(name)
    for protocol, schedule in (("demo", "fast"), ("mvtec_14_1", "paper")):  # both schedules resolve
        resolve_method_config(name, load_protocol(protocol, require_roots=False), schedule)
    raw = load_method_yaml(name)
    config = resolve_method_config(name, load_protocol("demo"), overrides=[o for o in SMALL if _has_key(raw, o)])
    method = _build(name, config, torch_seed=0)
    for step in (0, 1):
        log = method.learn(_task(cls, step))
        assert all(isinstance(v, float) for v in log.values()), log

    probe = _inputs(cls, 4, seed=7)
    scores = method.score(probe)
    assert scores.image.shape == (4,) and torch.isfinite(scores.image).all()
    assert (scores.maps is not None) == cls.pixel_output  # pixel cells are n/a exactly when no maps come
    if scores.maps is not None:
        assert scores.maps.shape == (4, *IMAGE_SIZE) and torch.isfinite(scores.maps).all()

    buffer = io.BytesIO()
    torch.save(method.state_dict(), buffer)
    assert method.state_bytes() == buffer.tell() > 0  # what record.json reports is what a checkpoint holds
    buffer.seek(0)
    state = torch.load(buffer, map_location="cpu", weights_only=True)  # tensors and plain data only
    fresh = _build(name, config, torch_seed=1)  # other initial weights: everything learned must come from the state
    fresh.load_state_dict(state)
    again = fresh.score(probe)
    assert torch.equal(again.image, scores.image)
    assert (again.maps is None and scores.maps is None) or torch.equal(again.maps, scores.maps)
