"""Official VisA layout, read through its own split file (no conversion step).

Layout: <root>/split_csv/1cls.csv with header object,split,label,image,mask (paths relative
to <root>, mask empty for normal images); images under <root>/<obj>/Data/Images/{Normal,Anomaly}
and masks under <root>/<obj>/Data/Masks/Anomaly. The MVTec-style conversion is read by `mvtec`.
"""
from __future__ import annotations

import csv
from pathlib import Path

from iufbench.data.mvtec import GOOD, check_root, is_object, pick_objects, subfolders
from iufbench.data.types import ObjectData, TestImage
from iufbench.errors import DataError

SPLIT_FILE = Path("split_csv") / "1cls.csv"
ANOMALY = "anomaly"
_HEADER = ["object", "split", "label", "image", "mask"]
_HOLDS = "split_csv/ and the object folders (candle/, pcb1/, ...)"

Row = tuple[str, str, str, str, str]  # object, split, label, image, mask


def _split_rows(root: Path) -> tuple[Path, list[Row]]:
    """The split file's path and its non-empty rows, with the header and each row checked."""
    check_root(root, _HOLDS)
    csv_path = root / SPLIT_FILE
    if not csv_path.is_file():
        hint = ""
        if any(map(is_object, subfolders(root))):
            hint = " (the folders under it are in MVTec-AD layout: use dataset 'mvtec')"
        elif deeper := [p for p in subfolders(root) if (p / SPLIT_FILE).is_file()]:
            hint = f" (but {deeper[0] / SPLIT_FILE} exists: pass {deeper[0]} as --data-root)"
        raise DataError(
            f"VisA split file {csv_path} not found{hint}; pass --data-root pointing at the "
            f"folder that holds {_HOLDS}"
        )
    with csv_path.open(newline="", encoding="utf-8-sig") as f:
        lines = list(csv.reader(f))
    header = [h.strip() for h in (lines[0] if lines else [])]
    if header != _HEADER:
        raise DataError(
            f"{csv_path} starts with '{','.join(header)}', not the header '{','.join(_HEADER)}' "
            "of VisA's split_csv/1cls.csv; restore the file from the VisA archive"
        )
    rows: list[Row] = []
    for n, fields in enumerate(lines[1:], start=2):
        if not any(c.strip() for c in fields):
            continue
        if len(fields) != len(_HEADER):
            raise DataError(
                f"{csv_path} line {n} has {len(fields)} fields, not 5 ({','.join(_HEADER)}); "
                "restore the file from the VisA archive"
            )
        obj, split, label, image, mask = (c.strip() for c in fields)
        if split not in ("train", "test") or label not in ("normal", ANOMALY):
            raise DataError(
                f"{csv_path} line {n} has split '{split}' and label '{label}'; expected split "
                "train or test and label normal or anomaly"
            )
        if split == "train" and label != "normal":
            raise DataError(
                f"{csv_path} line {n} puts an anomaly image in train; training uses normal "
                "images only, restore VisA's own 1cls.csv"
            )
        if label == ANOMALY and not mask:
            raise DataError(
                f"{csv_path} line {n} has no mask for anomaly image {image}; restore the file "
                "from the VisA archive"
            )
        rows.append((obj, split, label, image, mask))
    return csv_path, rows


def _object(root: Path, name: str, rows: list[Row], csv_path: Path) -> ObjectData:
    train: list[Path] = []
    test: list[TestImage] = []
    for _, split, label, image, mask in rows:
        if split == "train":
            train.append(root / image)
        elif label == ANOMALY:
            test.append(TestImage(path=root / image, label=1, defect=ANOMALY, mask=root / mask))
        else:
            test.append(TestImage(path=root / image, label=0, defect=GOOD))
    files = train + [t.path for t in test] + [t.mask for t in test if t.mask is not None]
    missing = [p for p in files if not p.is_file()]
    if missing:
        shown = ", ".join(str(p) for p in missing[:3])
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise DataError(
            f"{len(missing)} file(s) of {name} listed in {csv_path} are missing ({shown}{more}); "
            f"re-extract {root / name} from the VisA archive"
        )
    return ObjectData(
        name=name,
        root=root / name,
        train=tuple(sorted(train)),
        test=tuple(sorted(test, key=lambda t: t.path)),
    )


def _objects(csv_path: Path, rows: list[Row]) -> list[str]:
    if not rows:
        raise DataError(f"{csv_path} lists no images; restore it from the VisA archive")
    return sorted({r[0] for r in rows})


def list_objects(root: Path) -> list[str]:
    """Object names in the split file, sorted."""
    return _objects(*_split_rows(Path(root)))


def read_visa(root: Path, objects: list[str] | None = None) -> dict[str, ObjectData]:
    """Official VisA, 1cls split; defect type "anomaly" (VisA does not name defect types)."""
    root = Path(root)
    csv_path, rows = _split_rows(root)
    names = pick_objects(root, _objects(csv_path, rows), objects)
    return {n: _object(root, n, [r for r in rows if r[0] == n], csv_path) for n in names}
