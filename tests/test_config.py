"""Method configs: schedule resolution and overrides."""
from __future__ import annotations

import pytest

from iufbench.config import resolve_method_config
from iufbench.errors import ConfigError
from iufbench.protocols import load_protocol


@pytest.fixture
def demo():
    return load_protocol("demo")


def test_fast_schedule_gives_one_value_per_task(demo) -> None:
    cfg = resolve_method_config("uniad", demo)
    assert len(cfg["train"]["epochs"]) == len(demo.tasks) == len(cfg["train"]["batch_size"])
    assert cfg["schedule"] == "fast"


def test_overrides_reach_the_config_and_are_typed(demo) -> None:
    cfg = resolve_method_config("joint", demo, overrides=["train.epochs=3", "train.lr=1e-3",
                                                          "model.neighbor_mask=[false,false,false]"])
    assert cfg["train"]["epochs"] == [3] * len(demo.tasks)
    assert cfg["train"]["lr"] == pytest.approx(1e-3)
    assert cfg["model"]["neighbor_mask"] == [False, False, False]
    per_step = resolve_method_config("uniad", demo, overrides=["train.epochs={base: 4, step: 2}"])
    assert per_step["train"]["epochs"] == [4] + [2] * (len(demo.tasks) - 1)


@pytest.mark.parametrize("override, match", [
    ("train.lrr=1", "unknown config key 'train.lrr'; valid here: .*lr"),
    ("nonsense", "must look like KEY.PATH=VALUE"),
    ("train.epochs=0", r"train.epochs must be a whole number >= 1.*got 0"),  # used to crash in the loop
    ("train.epochs=many", "train.epochs must be a whole number >= 1.*got 'many'"),
    ("train.epochs={base: 5}", r"\{base: N, step: M\}; got \{'base': 5\}"),
    ("train.batch_size=[8,8]", "train.batch_size of schedule 'fast' has 2 values; protocol has 4 tasks"),
    ("train.epochs={base: 2, step: -1}", "whole number >= 1"),
    ("train.epochs=2.7", "whole number >= 1.*got 2.7"),  # used to become 2 silently
    ("train.lr=-1e-3", "train.lr of method 'uniad' must be a number > 0; got -0.001"),
    ("train.batch_size=true", "train.batch_size must be a whole number"),
    ("model.neighbor_mask=[false,false", "the value is not valid YAML"),  # used to be a YAML traceback
])
def test_bad_overrides(demo, override: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        resolve_method_config("uniad", demo, overrides=[override])


def test_paper_schedule_needs_a_protocol_that_has_one(demo) -> None:
    with pytest.raises(ConfigError, match="no paper_schedule"):
        resolve_method_config("uniad", demo, "paper")
    with pytest.raises(ConfigError, match="no schedule 'slow'"):
        resolve_method_config("uniad", demo, "slow")


@pytest.mark.parametrize("text, value", [("1.0e5", 1.0e5), ("1e-4", 1e-4), ("1e5", 1e5), ("-2.5E3", -2500.0),
                                         ("1.5", 1.5), ("10", 10), (".5", 0.5), ("1_000", 1000), ("e5", "e5")])
def test_yaml_reads_numbers_as_users_write_them(text: str, value: object) -> None:
    from iufbench.yaml_loader import load_yaml

    loaded = load_yaml(f"x: {text}")["x"]
    assert loaded == value and type(loaded) is type(value)  # PyYAML alone reads 1.0e5 and 1e-4 as text
