"""Named method sets (`methods/_sets.yaml`): `--methods paper` instead of ten names, in `run`,
`sweep` and suites alike."""
from __future__ import annotations

from typing import Any

from iufbench.errors import ConfigError
from iufbench.resources import builtin_dir
from iufbench.yaml_loader import load_yaml

SETS_FILE = "_sets.yaml"  # the leading underscore keeps it out of the method-config listing


def method_sets() -> dict[str, list[str]]:
    """Set name -> method names, as written in methods/_sets.yaml."""
    raw: Any = load_yaml((builtin_dir("methods") / SETS_FILE).read_text()) or {}
    if not isinstance(raw, dict) or not all(isinstance(v, list) for v in raw.values()):
        raise ConfigError(f"methods/{SETS_FILE} must map set names to lists of method names")
    return {str(name): [str(m) for m in members] for name, members in raw.items()}


def expand_methods(names: list[str]) -> list[str]:
    """Method names, `all`, or set names -> registered method names, in the order given (a method named
    twice stays twice: the engine refuses it, as it refuses `--methods uniad,uniad`)."""
    from iufbench.methods import METHODS  # noqa: PLC0415  (registers every method)

    sets = method_sets()
    out: list[str] = []
    for name in names:
        if name == "all":
            members = METHODS.names()
        elif name in sets:
            members = sets[name]
        else:
            try:
                METHODS.get(name)
            except ConfigError as exc:
                raise ConfigError(f"{exc}; or a method set: {', '.join(sorted(sets))}, all "
                                  f"(methods/{SETS_FILE})") from None
            members = [name]
        for member in members:
            METHODS.get(member)  # a set naming a method that does not exist fails here, with the valid list
        out.extend(members)
    return out
