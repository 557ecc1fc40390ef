"""MVTec 3D-AD reader, RGB only (the xyz point clouds are ignored).

Layout: <root>/<obj>/train/good/rgb/*.png, <root>/<obj>/validation/good/rgb/*.png,
<root>/<obj>/test/<type>/rgb/*.png with masks at <root>/<obj>/test/<type>/gt/<same name>.
"""
from __future__ import annotations

from pathlib import Path

from iufbench.data.mvtec import (
    GOOD,
    find_objects,
    image_files,
    missing_masks,
    no_images,
    pick_objects,
    subfolders,
)
from iufbench.data.types import ObjectData, TestImage

_HOLDS = "one folder per object (bagel/, tire/, ...), each with train/good/rgb and test/<type>/rgb"
_EXPECTED = "{obj}/train/good/rgb and {obj}/test/<type>/rgb"


def _read_object(obj_dir: Path, include_validation: bool) -> ObjectData:
    train = image_files(obj_dir / "train" / GOOD / "rgb")
    if include_validation:
        train += image_files(obj_dir / "validation" / GOOD / "rgb")
    test: list[TestImage] = []
    missing: list[Path] = []
    for type_dir in subfolders(obj_dir / "test"):
        # good images come with all-zero gt masks; None says the same without a file read
        masks = {} if type_dir.name == GOOD else {p.stem: p for p in image_files(type_dir / "gt")}
        for path in image_files(type_dir / "rgb"):
            mask = masks.get(path.stem)
            if type_dir.name != GOOD and mask is None:
                missing.append(path)
            label = int(type_dir.name != GOOD)
            test.append(TestImage(path=path, label=label, defect=type_dir.name, mask=mask))
    if not train and not test:
        hint = ""
        if image_files(obj_dir / "train" / GOOD):
            hint = " (its images sit directly in train/good: this is MVTec-AD, use dataset 'mvtec')"
        raise no_images(obj_dir, _EXPECTED, hint)
    if missing:
        expected = f"expected each at {obj_dir}/test/<type>/gt/<same name>.png"
        raise missing_masks(obj_dir, missing, expected)
    return ObjectData(name=obj_dir.name, root=obj_dir, train=tuple(train), test=tuple(test))


def list_objects(root: Path) -> list[str]:
    """Object names under an MVTec 3D-AD root, sorted."""
    return find_objects(Path(root), _HOLDS, _EXPECTED)


def read_mvtec3d(
    root: Path, objects: list[str] | None = None, include_validation: bool = False
) -> dict[str, ObjectData]:
    """MVTec 3D-AD, RGB only; every defective test image must have a gt mask.

    validation/good stays out of training by default: the official split keeps it for
    validation, and training on it would make results incomparable with published ones.
    """
    root = Path(root)
    names = pick_objects(root, list_objects(root), objects, _EXPECTED)
    return {name: _read_object(root / name, include_validation) for name in names}
