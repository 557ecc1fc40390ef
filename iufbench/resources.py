"""Where the built-in protocol and method YAML files are, in a checkout and after `pip install .`."""
from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def builtin_dir(kind: str) -> Path:
    """`protocols` or `methods`: shipped as iufbench/builtin/<kind> in a wheel, top-level in a checkout."""
    installed = _PACKAGE / "builtin" / kind
    return installed if installed.is_dir() else _PACKAGE.parent / kind


def builtin_names(kind: str) -> list[str]:
    return sorted(p.stem for p in builtin_dir(kind).glob("*.yaml") if not p.stem.startswith("_"))
