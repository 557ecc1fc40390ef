"""ELPV: electroluminescence images of solar cells, shipped by the PyPI package `elpv-dataset`.

Layout (the package's `data/` folder, or any folder laid out the same): `labels.csv` with one
whitespace-separated line per cell, `images/cellNNNN.png  <defect probability>  <mono|poly>`, and
the 300 x 300 grey images under `images/`. Two objects, the cell types `mono` and `poly`.
A cell with probability 0 is normal, 1 defective; the experts' unsure cells (1/3, 2/3) belong to
neither class and are left out of both splits. The normals are split once, by a seeded
permutation, so every run and seed sees the same images.
"""
from __future__ import annotations

import math
from importlib import resources
from pathlib import Path

import numpy as np

from iufbench.data.mvtec import GOOD, pick_objects
from iufbench.data.types import ObjectData, TestImage
from iufbench.errors import DataError

OBJECTS = ("mono", "poly")
DEFECT = "defective"  # ELPV grades defects by probability, it does not name their types
TEST_FRACTION = 0.2  # of each type's normals; the rest are training normals
LABELS = "labels.csv"
_INSTALL = "pip install 'iufbench[elpv]' (or ./scripts/setup.sh)"
_HOLDS = f"{LABELS} and images/ (the elpv-dataset package's data folder)"


def package_root() -> Path:
    """The `data/` folder inside the installed `elpv-dataset` package, so no root has to be given."""
    try:
        data = resources.files("elpv_dataset") / "data"
    except ImportError as exc:
        raise DataError(
            f"the elpv images come from the Python package elpv-dataset, which is not installed; "
            f"run {_INSTALL}, or pass --data-root pointing at a folder with {_HOLDS}"
        ) from exc
    return Path(str(data))


def _labels(root: Path) -> list[tuple[str, float, str]]:
    """(image path relative to root, defect probability, type) per line of labels.csv, checked."""
    csv_path = root / LABELS
    if not csv_path.is_file():
        raise DataError(f"{csv_path} not found; pass --data-root pointing at the folder that holds {_HOLDS}, "
                        f"or leave the root out to use the installed package ({_INSTALL})")
    rows = []
    for n, line in enumerate(csv_path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        try:
            path, prob, kind = fields[0], float(fields[1]), fields[2]
        except (IndexError, ValueError):
            raise DataError(f"{csv_path} line {n} is '{line.strip()}', not 'images/<file> <probability> "
                            "<mono|poly>'; restore the file from the elpv-dataset package") from None
        if len(fields) != 3 or kind not in OBJECTS or not 0.0 <= prob <= 1.0:
            raise DataError(f"{csv_path} line {n} is '{line.strip()}': expected 3 fields, a probability in "
                            f"[0, 1] and type mono or poly; restore the file from the elpv-dataset package")
        rows.append((path, prob, kind))
    if not rows:
        raise DataError(f"{csv_path} lists no images; restore it from the elpv-dataset package")
    return rows


def _permuted(paths: list[Path], split_seed: int, obj: str) -> list[Path]:
    """`paths` sorted, then shuffled by a generator seeded with (split_seed, the object's index)."""
    rng = np.random.default_rng([split_seed, OBJECTS.index(obj)])
    ordered = sorted(paths)
    return [ordered[i] for i in rng.permutation(len(ordered))]


def _object(root: Path, obj: str, rows: list[tuple[str, float, str]], n_train: int | None,
            split_seed: int) -> ObjectData:
    mine = [(root / path, prob) for path, prob, kind in rows if kind == obj]
    missing = [p for p, _ in mine if not p.is_file()]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise DataError(f"{len(missing)} image(s) listed in {root / LABELS} are missing "
                        f"({', '.join(map(str, missing[:3]))}{more}); reinstall elpv-dataset ({_INSTALL})")
    normals = _permuted([p for p, prob in mine if prob == 0.0], split_seed, obj)
    defective = sorted(p for p, prob in mine if prob == 1.0)
    n_test = math.ceil(TEST_FRACTION * len(normals))
    train = normals[n_test:]
    if n_train is not None:
        if n_train > len(train):
            raise DataError(f"elpv object {obj} has {len(train)} training normals, fewer than n_train={n_train}; "
                            "lower n_train in the protocol's elpv source")
        train = train[:n_train]
    test = [TestImage(path=p, label=0, defect=GOOD) for p in sorted(normals[:n_test])]
    test += [TestImage(path=p, label=1, defect=DEFECT) for p in defective]
    return ObjectData(name=obj, root=root, train=tuple(sorted(train)), test=tuple(test), has_masks=False,
                      meta={"left_out": len(mine) - len(normals) - len(defective)})


def _present(rows: list[tuple[str, float, str]]) -> list[str]:
    """The cell types present in labels.csv, in OBJECTS order."""
    kinds = {kind for _, _, kind in rows}
    return [o for o in OBJECTS if o in kinds]


def list_objects(root: Path) -> list[str]:
    """The cell types under `root` (a folder with labels.csv and images/)."""
    return _present(_labels(Path(root)))


def read_elpv(root: Path, objects: list[str] | None = None, n_train: int | None = None,
              split_seed: int = 0) -> dict[str, ObjectData]:
    """ELPV by cell type. Test: the first 20% (rounded up) of the permuted normals and every
    defective cell; train: the other normals, or the first `n_train` of them (nested across sizes).
    `meta["left_out"]` counts the object's cells with probability 1/3 or 2/3."""
    if n_train is not None and (isinstance(n_train, bool) or not isinstance(n_train, int) or n_train < 1):
        raise DataError(f"elpv n_train must be a whole number >= 1 (or left out for all); got {n_train!r}")
    root = Path(root)
    rows = _labels(root)
    names = pick_objects(root, _present(rows), objects)
    return {name: _object(root, name, rows, n_train, split_seed) for name in names}
