"""YAML as users write it: numbers like `1e-4` and `1.0e5` are floats, and the declarative files
(protocols, suites) are found by built-in name or path and checked to be mappings of known keys.

PyYAML follows YAML 1.1, where a float needs a dot and a signed exponent: `1.0e5` and `1e-4` load as
strings, and a regularisation strength written that way fails far from the file, or not at all.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from iufbench.errors import ConfigError
from iufbench.resources import builtin_dir, builtin_names


class _Loader(yaml.SafeLoader):
    """SafeLoader whose floats also match YAML 1.2's form (exponent without sign or dot)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                |[-+]?\.(?:inf|Inf|INF)
                |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


def load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)


def declared_file(kind: str, name_or_path: str) -> Path:
    """A `kind` file (protocol, suite): a .yaml path, or a built-in name under `<kind>s/`."""
    path = Path(name_or_path)
    if path.suffix in {".yaml", ".yml"}:
        if not path.is_file():
            raise ConfigError(f"{kind} file {path} does not exist")
        return path
    path = builtin_dir(f"{kind}s") / f"{name_or_path}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown {kind} '{name_or_path}'. Valid: {', '.join(builtin_names(f'{kind}s'))} "
                          "(or a path to a .yaml file)")
    return path


def read_declared(kind: str, path: Path, keys: set[str]) -> dict[str, Any]:
    """The file's mapping; invalid YAML, another shape or an unknown key fails naming the file."""
    try:
        raw = load_yaml(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{kind} {path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{kind} {path} must be a mapping with keys {sorted(keys)}")
    unknown = set(raw) - keys
    if unknown:
        raise ConfigError(f"{kind} {path}: unknown keys {sorted(unknown)}; valid keys: {sorted(keys)}")
    return raw
