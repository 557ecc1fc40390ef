"""Suites (`suites/*.yaml`): a sweep written down once - protocols, methods, seeds, schedule - so a
paper table is one command. Validated like a protocol: unknown keys and wrong types fail by name."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iufbench.errors import ConfigError
from iufbench.protocols import whole_numbers
from iufbench.yaml_loader import declared_file, read_declared

_KEYS = {"description", "protocols", "methods", "seeds", "schedule"}


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    protocols: list[str]
    methods: list[str]  # method names and set names, expanded by the sweep's plan
    seeds: list[int]
    schedule: str


def _names(path: Path, key: str, value: Any) -> list[str]:
    """A list of names, or one name (a method set)."""
    names = [value] if isinstance(value, str) else value
    if not (isinstance(names, list) and names and all(isinstance(n, str) and n for n in names)):
        raise ConfigError(f"suite {path}: '{key}' must be a name or a non-empty list of names; got {value!r}")
    return names


def load_suite(name_or_path: str) -> Suite:
    path = declared_file("suite", name_or_path)
    raw = read_declared("suite", path, _KEYS)
    missing = {"protocols", "methods", "seeds"} - set(raw)
    if missing:
        raise ConfigError(f"suite {path} has no {', '.join(sorted(missing))}")
    seeds = raw["seeds"]
    if not (whole_numbers(seeds, 0) and seeds):
        raise ConfigError(f"suite {path}: 'seeds' must be a non-empty list of whole numbers >= 0; got {seeds!r}")
    schedule = raw.get("schedule", "fast")
    if schedule not in {"fast", "paper"}:
        raise ConfigError(f"suite {path}: 'schedule' must be fast or paper; got {schedule!r}")
    return Suite(name=path.stem, description=str(raw.get("description", "")).strip(),
                 protocols=_names(path, "protocols", raw["protocols"]),
                 methods=_names(path, "methods", raw["methods"]), seeds=list(seeds), schedule=schedule)
