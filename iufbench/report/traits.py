"""What the report knows about each method of a run: its family (the colour group of figures) and
whether it sees or keeps old data (marked † and never ranked best), read from the run directory.

The engine writes them to record.json (`traits`), so a run reads the same after a method is
renamed, moved or removed from the code. Records written before that field existed fall back to
the installed registry and method YAMLs; a method neither knows gets the default family.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from iufbench.config import DEFAULT_FAMILY, method_family
from iufbench.errors import ConfigError


@dataclass(frozen=True)
class Traits:
    family: str = DEFAULT_FAMILY
    sees_old_data: bool = False
    keeps_old_data: bool = False
    pixel_output: bool = True

    @property
    def uses_old_data(self) -> bool:
        return self.sees_old_data or self.keeps_old_data


def _installed(method: str) -> Traits:
    """Old records only: ask the code this suite ships."""
    from iufbench.methods import METHODS  # noqa: PLC0415  (torch and every method: only when needed)

    if method not in METHODS:
        return Traits()
    cls = METHODS.get(method)
    try:
        family = method_family(method)
    except ConfigError:  # registered without a YAML (a test's method)
        family = DEFAULT_FAMILY
    return Traits(family, cls.sees_old_data, cls.keeps_old_data, cls.pixel_output)


def record_traits(record: dict[str, Any], methods: list[str]) -> dict[str, Traits]:
    stored = record.get("traits", {})
    out = {}
    for method in methods:
        if method in stored:
            t = stored[method]
            out[method] = Traits(t.get("family") or DEFAULT_FAMILY, bool(t.get("sees_old_data")),
                                 bool(t.get("keeps_old_data")), bool(t.get("pixel_output", True)))
        else:
            out[method] = _installed(method)
    return out
