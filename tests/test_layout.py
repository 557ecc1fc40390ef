"""The source tree's shape: small modules, and every package listed for the wheel."""
from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 400  # issue 17: a module past this does more than one job; split it by what changes together


def test_no_module_is_over_400_lines() -> None:
    lengths = {p.relative_to(ROOT).as_posix(): len(p.read_text(encoding="utf-8").splitlines())
               for p in (ROOT / "iufbench").rglob("*.py")}
    assert len(lengths) > 20  # the walk found the package
    too_long = {path: n for path, n in sorted(lengths.items()) if n > MAX_LINES}
    assert not too_long, f"modules over {MAX_LINES} lines (split them): {too_long}"


def test_every_package_ships_in_the_wheel() -> None:
    """pyproject.toml lists packages by hand (protocols/ etc. are mapped in), so a new folder of
    code that is not listed would be missing from a non-editable install."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "iufbench").rglob("__init__.py")}
    assert "iufbench.data" in found
    assert found <= listed, f"packages missing from pyproject.toml [tool.setuptools] packages: {sorted(found - listed)}"
