"""Where the built-in protocols, method configs, sweep suites and the paper's reported numbers are, in a checkout
and after `pip install .`."""
from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_IN_CHECKOUT = {"protocols": "protocols", "methods": "methods", "suites": "suites", "paper": "results/paper"}


def builtin_dir(kind: str) -> Path:
    """`protocols`, `methods`, `suites` or `paper`: shipped as iufbench/builtin/<kind> in a wheel; in a checkout
    where users read and edit them (top level; the paper's numbers under results/paper)."""
    installed = _PACKAGE / "builtin" / kind
    return installed if installed.is_dir() else _PACKAGE.parent / _IN_CHECKOUT[kind]


def builtin_names(kind: str) -> list[str]:
    return sorted(p.stem for p in builtin_dir(kind).glob("*.yaml") if not p.stem.startswith("_"))
