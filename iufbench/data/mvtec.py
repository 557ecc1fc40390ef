"""MVTec-AD layout readers (`mvtec`, `folder`) and the layout checks every reader shares.

Layout: <root>/<obj>/train/good/*, <root>/<obj>/test/<defect>/* ("good" = normal) and
<root>/<obj>/ground_truth/<defect>/<stem>_mask.png. The MVTec-style conversion of VisA
(ground_truth/bad/<stem>.png, no "_mask" suffix) is read as is.
"""
from __future__ import annotations

import difflib
from pathlib import Path

from iufbench.data.types import ObjectData, TestImage
from iufbench.errors import DataError

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
GOOD = "good"
_MVTEC_HOLDS = "one folder per object (e.g. bottle/), each with train/good and test/<defect>"
_MVTEC_EXPECTED = "{obj}/train/good and {obj}/test/<defect>"


def image_files(folder: Path) -> list[Path]:
    """Image files directly in `folder`, sorted; [] when it does not exist.

    Hidden files are skipped: macOS "._000.png" copies carry an image suffix but no image.
    """
    if not folder.is_dir():
        return []
    return sorted(
        p for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file()
    )


def subfolders(folder: Path) -> list[Path]:
    """Visible subfolders, sorted; [] when `folder` does not exist."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def is_object(folder: Path) -> bool:
    """An object folder of the MVTec-family layouts holds train/ or test/."""
    return (folder / "train").is_dir() or (folder / "test").is_dir()


def check_root(root: Path, holds: str) -> None:
    """Fail early, naming the fix, when `root` is missing or points inside an object."""
    if not root.exists():
        raise DataError(
            f"dataset root {root} does not exist; pass --data-root pointing at the folder "
            f"that holds {holds}"
        )
    if not root.is_dir():
        raise DataError(
            f"dataset root {root} is a file; pass --data-root pointing at the folder that "
            f"holds {holds}"
        )
    if any((root / split).is_dir() for split in ("train", "test", "Data")):
        raise DataError(
            f"{root} looks like a single object folder; pass its parent {root.parent} "
            "as --data-root"
        )
    if (root / GOOD).is_dir():
        raise DataError(
            f"{root} looks like a split folder (it holds good/); pass the dataset root "
            f"{root.parent.parent} as --data-root"
        )


def find_objects(root: Path, holds: str, expected: str) -> list[str]:
    """Sorted names of the subfolders of `root` holding a train/ or test/ folder.

    `expected` describes one object's layout, with "{obj}" standing for its name.
    """
    check_root(root, holds)
    found = [p.name for p in subfolders(root) if is_object(p)]
    if found:
        return found
    hint = ""
    if (root / "split_csv" / "1cls.csv").is_file():
        hint = " (it holds split_csv/1cls.csv: this is the official VisA layout, use 'visa')"
    elif deeper := [p for p in subfolders(root) if any(map(is_object, subfolders(p)))]:
        hint = f" (but {deeper[0]} holds some: pass it as --data-root)"
    raise DataError(
        f"no objects under {root}{hint}; expected " + expected.format(obj=f"{root}/<object>")
    )


def pick_objects(
    root: Path, found: list[str], objects: list[str] | None, expected: str | None = None
) -> list[str]:
    """The requested objects in the order given (all found ones when None).

    For folder layouts, `expected` (one object's layout) turns a requested folder that
    exists but holds no train/ or test/ into the "no images" error instead of "unknown".
    """
    if objects is None:
        return found
    for name in objects:
        if name in found:
            continue
        plain = bool(name) and Path(name).name == name and not name.startswith(".")
        if expected and plain and (root / name).is_dir():
            raise no_images(root / name, expected)
        close = difflib.get_close_matches(name, found, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise DataError(f"unknown object '{name}' under {root}.{hint} Valid: {', '.join(found)}")
    return list(dict.fromkeys(objects))


def no_images(obj_dir: Path, expected: str, hint: str = "") -> DataError:
    """The error for an object folder without a single train or test image."""
    return DataError(
        f"object {obj_dir.name} under {obj_dir.parent} has no images{hint}; expected "
        + expected.format(obj=obj_dir.name)
    )


def missing_masks(obj_dir: Path, missing: list[Path], expected: str) -> DataError:
    """The error for defective test images without a mask: which ones, where masks go."""
    shown = ", ".join(str(p.relative_to(obj_dir)) for p in missing[:3])
    more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
    return DataError(
        f"{len(missing)} defective test image(s) of {obj_dir} have no mask ({shown}{more}); "
        f"{expected}"
    )


def _masks_by_stem(gt_dir: Path) -> dict[str, Path]:
    """Image stem -> mask, accepting "<stem>_mask.png" (MVTec) and "<stem>.png" (converted VisA)."""
    by_stem: dict[str, Path] = {}
    for p in image_files(gt_dir):
        if p.stem.endswith("_mask"):
            by_stem[p.stem[: -len("_mask")]] = p
        else:
            by_stem.setdefault(p.stem, p)
    return by_stem


def _read_object(obj_dir: Path, masks_required: bool) -> ObjectData:
    train_dir = obj_dir / "train"
    if train_dir.is_dir() and not (train_dir / GOOD).is_dir():
        raise DataError(
            f"{train_dir} has no good/ folder; put the normal training images in {train_dir / GOOD}"
        )
    train = tuple(image_files(train_dir / GOOD))
    test: list[TestImage] = []
    missing: list[Path] = []
    for defect_dir in subfolders(obj_dir / "test"):
        defect = defect_dir.name
        masks = {} if defect == GOOD else _masks_by_stem(obj_dir / "ground_truth" / defect)
        for path in image_files(defect_dir):
            mask = masks.get(path.stem)
            if defect != GOOD and mask is None:
                missing.append(path)
            test.append(TestImage(path=path, label=int(defect != GOOD), defect=defect, mask=mask))
    if not train and not test:
        hint = ""
        if (train_dir / GOOD / "rgb").is_dir():
            hint = " (it has train/good/rgb: this is MVTec 3D-AD, use dataset 'mvtec3d')"
        raise no_images(obj_dir, _MVTEC_EXPECTED, hint)
    n_defective = sum(t.label for t in test)
    has_masks = True
    if missing:
        expected = f"expected {obj_dir}/ground_truth/<defect>/<stem>_mask.png"
        if masks_required:
            fix = f"{expected}, or use dataset 'folder' if the dataset has no masks at all"
            raise missing_masks(obj_dir, missing, fix)
        if len(missing) < n_defective:
            fix = f"{expected}; add them, or remove {obj_dir}/ground_truth to go without masks"
            raise missing_masks(obj_dir, missing, fix)
        has_masks = False
    return ObjectData(
        name=obj_dir.name, root=obj_dir, train=train, test=tuple(test), has_masks=has_masks
    )


def list_objects(root: Path) -> list[str]:
    """Object names under an MVTec-layout root, sorted."""
    return find_objects(Path(root), _MVTEC_HOLDS, _MVTEC_EXPECTED)


def read_mvtec(root: Path, objects: list[str] | None = None) -> dict[str, ObjectData]:
    """MVTec-AD layout; every defective test image must have a mask.

    An object without train/ is still read (train=()), so test-only sets can be evaluated.
    """
    root = Path(root)
    names = pick_objects(root, list_objects(root), objects, _MVTEC_EXPECTED)
    return {name: _read_object(root / name, masks_required=True) for name in names}


def read_folder(root: Path, objects: list[str] | None = None) -> dict[str, ObjectData]:
    """Any dataset in MVTec layout; an object without masks gets has_masks=False.

    Masks are all-or-nothing per object: a partial set would make pixel metrics cover an
    arbitrary subset of the defects.
    """
    root = Path(root)
    names = pick_objects(root, list_objects(root), objects, _MVTEC_EXPECTED)
    return {name: _read_object(root / name, masks_required=False) for name in names}
