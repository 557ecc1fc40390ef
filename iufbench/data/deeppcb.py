"""DeepPCB as `iufbench data prepare deeppcb` writes it: the MVTec layout, read by the `mvtec` reader.

A dataset of its own only so that a missing root says how to make one: a new user has a checkout of
the public repository, not the converted folder.
"""
from __future__ import annotations

from pathlib import Path

from iufbench.data import mvtec
from iufbench.data.types import ObjectData
from iufbench.errors import DataError


def _check_made(root: Path) -> None:
    if not root.exists():
        raise DataError(
            f"DeepPCB root {root} does not exist; convert a checkout of github.com/tangsanli5201/DeepPCB with "
            f"`iufbench data prepare deeppcb DEEPPCB_CHECKOUT {root}`, or pass --data-root (--root deeppcb=PATH) "
            "pointing at a converted copy"
        )


def list_objects(root: Path) -> list[str]:
    """The groups (boards) under a converted root, sorted."""
    _check_made(Path(root))
    return mvtec.list_objects(root)


def read_deeppcb(root: Path, objects: list[str] | None = None) -> dict[str, ObjectData]:
    """The converted layout; every defective image has its box mask."""
    _check_made(Path(root))
    return mvtec.read_mvtec(root, objects)
