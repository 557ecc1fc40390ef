"""Resolved method configuration: method YAML defaults <- schedule <- protocol <- CLI overrides.

`methods/<name>.yaml` holds a method's hyper-parameters and its schedules (`fast`, the CPU-sized
default, and `paper`, whose epochs and batch sizes come from the protocol's `paper_schedule`,
i.e. the reference configs). After resolution `train.epochs` and `train.batch_size` are lists
with one value per task, so a method reads `train["epochs"][step]`. The YAML's top-level `family`
(the group figures colour a method by) is a label, not a hyper-parameter: it is read by
`method_family` and left out of the resolved config.
"""
from __future__ import annotations

import copy
from typing import Any

import yaml

from iufbench.errors import ConfigError
from iufbench.protocols import Protocol, whole_numbers
from iufbench.resources import builtin_dir, builtin_names
from iufbench.yaml_loader import load_yaml


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_method_yaml(name: str) -> dict[str, Any]:
    """A method's YAML with its `extends:` chain merged in."""
    path = builtin_dir("methods") / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"no config methods/{name}.yaml for method '{name}'. Configs: {', '.join(builtin_names('methods'))}")
    raw = load_yaml(path.read_text()) or {}
    parent = raw.pop("extends", None)
    return deep_merge(load_method_yaml(parent), raw) if parent else raw


def method_family(name: str) -> str | None:
    """The `family:` of a method's YAML (inherited through `extends:`); None for a method without one
    (the record then gives it the default family: a group of its own in figures)."""
    family = load_method_yaml(name).get("family")
    return str(family) if family else None


def parse_override(text: str) -> tuple[list[str], Any]:
    """`train.lr=1e-3` -> (['train', 'lr'], 0.001); values are parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like KEY.PATH=VALUE, e.g. train.lr=1e-3")
    key, value = text.split("=", 1)
    try:
        parsed = load_yaml(value)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ConfigError(f"override '{text}': the value is not valid YAML ({problem}); e.g. "
                          "model.neighbor_mask=[false,false,false] or 'train.epochs={base: 5, step: 10}'") from exc
    return key.strip().split("."), parsed


def apply_override(config: dict[str, Any], path: list[str], value: Any) -> None:
    node = config
    for i, key in enumerate(path):
        if not isinstance(node, dict) or key not in node:
            valid = sorted(node) if isinstance(node, dict) else []
            raise ConfigError(f"unknown config key '{'.'.join(path[: i + 1])}'; valid here: {', '.join(valid)}")
        if i == len(path) - 1:
            node[key] = value
        else:
            node = node[key]


def _per_task(value: Any, protocol: Protocol, key: str, schedule: str) -> list[int]:
    n = len(protocol.tasks)
    if value == "protocol":
        if protocol.paper_schedule is None:
            raise ConfigError(f"protocol {protocol.name} has no paper_schedule; use --schedule fast")
        value = protocol.paper_schedule[key]
    if isinstance(value, list) and len(value) != n:
        raise ConfigError(f"train.{key} of schedule '{schedule}' has {len(value)} values; protocol has {n} tasks")
    if isinstance(value, dict) and set(value) == {"base", "step"}:
        values = [value["base"]] + [value["step"]] * (n - 1)
    else:
        values = value if isinstance(value, list) else [value] * n
    if not whole_numbers(values, 1):
        raise ConfigError(f"train.{key} must be a whole number >= 1, a list of one per task ({n}), or "
                          f"{{base: N, step: M}}; got {value!r}")
    return values


def overrides_for(method: str, overrides: list[str]) -> list[str]:
    """The overrides that concern `method`: those whose top-level section its config has.

    One command line serves several methods (`--set patchcore.budget=512 --methods patchcore,uniad`,
    `--epochs 5` with memory-bank methods that do not train), so a section a method lacks is skipped
    for it; the engine reports the ones no selected method has.
    """
    raw = load_method_yaml(method)
    return [text for text in overrides if parse_override(text)[0][0] in raw]


def resolve_method_config(method: str, protocol: Protocol, schedule: str = "fast",
                          overrides: list[str] | None = None) -> dict[str, Any]:
    """The full configuration a method runs with; recorded verbatim in record.json."""
    raw = load_method_yaml(method)
    raw.pop("family", None)  # a figure label, not a setting: not part of the config (nor its hash)
    schedules = raw.pop("schedules", {})
    if schedule not in schedules:
        raise ConfigError(f"method '{method}' has no schedule '{schedule}'; valid: {', '.join(sorted(schedules))}")
    config = deep_merge(raw, schedules[schedule])
    for text in overrides or []:
        apply_override(config, *parse_override(text))
    train = config.get("train", {})  # memory-bank methods have nothing to train
    for key in ("epochs", "batch_size"):
        if key in train:
            train[key] = _per_task(train[key], protocol, key, schedule)
    lr = train.get("lr", 1.0)
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise ConfigError(f"train.lr of method '{method}' must be a number > 0; got {lr!r}")
    config["schedule"] = schedule
    return config
