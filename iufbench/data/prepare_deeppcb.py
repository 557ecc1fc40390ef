"""`iufbench data prepare deeppcb SRC DST`: a checkout of the public DeepPCB repository
(github.com/tangsanli5201/DeepPCB) -> the MVTec layout the `deeppcb` protocols read.

Source: SRC/PCBData/groupNNNNN/NNNNN/<id>_temp.jpg (defect-free template) and <id>_test.jpg (the
aligned tested image), the boxes of each tested image in groupNNNNN/NNNNN_not/<id>.txt (one
"x1 y1 x2 y2 type" line per defect, corners inclusive; commas accepted too), and
PCBData/trainval.txt + test.txt, which list every pair as "<image> <annotation>".
Output, per group (one board): the first round(0.7 n) of its n templates by id -> train/good; the
rest -> test/good (the template) and test/defect (the tested image) with
ground_truth/defect/<id>_mask.png (the filled boxes). Images are re-binarised (> 127) and stored
as 1-bit PNG. The repository's own trainval/test split is by board (for detection: whole boards
only in test), so it is not the split here; the lists are the index of pairs and annotations.
Everything is written into a hidden folder beside DST and renamed at the end: a bad source
leaves nothing behind.
"""
from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from iufbench.data.images import image_hw
from iufbench.data.mvtec import GOOD, subfolders
from iufbench.errors import DataError

TRAIN_FRACTION = 0.7
THRESHOLD = 127  # JPEG ringing around the binary scans goes back to 0 / 255
LISTS = ("trainval.txt", "test.txt")
DEFECT = "defect"
_GROUP = re.compile(r"group(\d+)")
_README = """\
Derived from DeepPCB (github.com/tangsanli5201/DeepPCB, MIT License, see LICENSE) by
`iufbench data prepare deeppcb`. Per group (one PCB board): the first 70% of its templates by id
(round(0.7 n)) -> train/good; the rest -> test/good (template) and test/defect (aligned tested image),
ground_truth/defect/<id>_mask.png = the annotation's bounding boxes, filled (boxes, not pixel-precise).
Images re-binarised (> 127) and stored as 1-bit PNG; masks 1-bit.
"""


@dataclass(frozen=True)
class _TestPair:
    id: str
    template: Path
    tested: Path
    boxes: tuple[tuple[int, int, int, int], ...]  # x1, y1, x2, y2, inclusive


@dataclass(frozen=True)
class _Group:
    name: str
    train: tuple[Path, ...]
    test: tuple[_TestPair, ...]


def _pcbdata(src: Path) -> Path:
    pcb = src / "PCBData"
    if not pcb.is_dir():
        hint = " (it holds trainval.txt: pass its parent, the checkout's root)" if (src / LISTS[0]).is_file() else ""
        raise DataError(f"{pcb} not found{hint}; SRC must be a checkout of github.com/tangsanli5201/DeepPCB, "
                        "the folder that holds PCBData/")
    return pcb


def _listed(pcb: Path) -> dict[Path, Path]:
    """Tested image (as <group>/<num>/<id>.jpg, the lists' own spelling) -> its annotation file."""
    pairs: dict[Path, Path] = {}
    for name in LISTS:
        path = pcb / name
        if not path.is_file():
            raise DataError(f"{path} not found; restore PCBData/{name} from the DeepPCB repository")
        for n, line in enumerate(path.read_text().splitlines(), start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2:
                raise DataError(f"{path} line {n} is '{line.strip()}', not '<image> <annotation>'; "
                                "restore it from the DeepPCB repository")
            pairs[Path(fields[0])] = pcb / fields[1]
    if not pairs:
        raise DataError(f"{pcb / LISTS[0]} and {LISTS[1]} list no pairs; restore them from the DeepPCB repository")
    return pairs


def _boxes(path: Path, hw: tuple[int, int]) -> tuple[tuple[int, int, int, int], ...]:
    """The boxes of one annotation file, each checked to lie inside its (h, w) image."""
    if not path.is_file():
        raise DataError(f"annotation {path} not found; restore it from the DeepPCB repository")
    boxes = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.replace(",", " ").split()
        if not fields:
            continue
        try:
            x1, y1, x2, y2, _ = (int(f) for f in fields)
        except ValueError:
            raise DataError(f"{path} line {n} is '{line.strip()}', not 'x1 y1 x2 y2 type' (whole numbers); "
                            "restore it from the DeepPCB repository") from None
        h, w = hw
        if not (0 <= x1 <= x2 < w and 0 <= y1 <= y2 < h):
            raise DataError(f"{path} line {n}: box ({x1}, {y1})-({x2}, {y2}) is not inside its {w}x{h} image; "
                            "fix the annotation or restore it from the DeepPCB repository")
        boxes.append((x1, y1, x2, y2))
    if not boxes:
        raise DataError(f"{path} holds no box, but its tested image is used as a defective test image; "
                        "restore it from the DeepPCB repository")
    return tuple(boxes)


def _group(folder: Path, listed: dict[Path, Path]) -> _Group:
    num = _GROUP.fullmatch(folder.name).group(1)
    templates = sorted((folder / num).glob("*_temp.jpg"))
    if not templates:
        raise DataError(f"{folder / num} holds no <id>_temp.jpg templates; restore {folder.name} from the "
                        "DeepPCB repository")
    n_train = round(TRAIN_FRACTION * len(templates))
    test = []
    for template in templates[n_train:]:
        pair_id = template.name[: -len("_temp.jpg")]
        tested = template.with_name(f"{pair_id}_test.jpg")
        annotation = listed.get(Path(folder.name) / num / f"{pair_id}.jpg")
        if not tested.is_file():
            raise DataError(f"test pair {pair_id} of {folder.name} has no tested image {tested}; restore it from "
                            "the DeepPCB repository")
        if annotation is None:
            raise DataError(f"test pair {pair_id} of {folder.name} ({folder.name}/{num}/{pair_id}.jpg) is not in "
                            f"{' or '.join(LISTS)}; restore the lists from the DeepPCB repository")
        test.append(_TestPair(pair_id, template, tested, _boxes(annotation, image_hw(tested))))
    return _Group(folder.name, tuple(templates[:n_train]), tuple(test))


def _binary(src: Path) -> Image.Image:
    """The scan as a 1-bit image; a file PIL cannot decode is a DataError naming it."""
    try:
        with Image.open(src) as im:
            grey = np.asarray(im.convert("L"))
    except Exception as e:  # noqa: BLE001 - PIL raises many types for corrupt files
        raise DataError(f"cannot read image {src}: {e or type(e).__name__}; restore it from the DeepPCB "
                        "repository") from e
    return Image.fromarray(grey > THRESHOLD)


def _write_group(group: _Group, out: Path) -> None:
    for sub in (Path("train") / GOOD, Path("test") / GOOD, Path("test") / DEFECT, Path("ground_truth") / DEFECT):
        (out / sub).mkdir(parents=True)
    for template in group.train:
        _binary(template).save(out / "train" / GOOD / f"{template.name[: -len('_temp.jpg')]}.png")
    for pair in group.test:
        _binary(pair.template).save(out / "test" / GOOD / f"{pair.id}.png")
        tested = _binary(pair.tested)
        tested.save(out / "test" / DEFECT / f"{pair.id}.png")
        mask = np.zeros((tested.height, tested.width), bool)
        for x1, y1, x2, y2 in pair.boxes:
            mask[y1 : y2 + 1, x1 : x2 + 1] = True
        Image.fromarray(mask).save(out / "ground_truth" / DEFECT / f"{pair.id}_mask.png")


def _plan(src: Path) -> list[_Group]:
    """Every group's split, every test pair's boxes checked; reads headers only, writes nothing."""
    pcb = _pcbdata(Path(src))
    listed = _listed(pcb)
    folders = [p for p in subfolders(pcb) if _GROUP.fullmatch(p.name)]
    if not folders:
        raise DataError(f"{pcb} holds no groupNNNNN/ folders; restore PCBData from the DeepPCB repository")
    return [_group(folder, listed) for folder in folders]


def prepare_deeppcb(src: Path, dst: Path) -> list[tuple[str, int, int]]:
    """Convert; (group, training images, test pairs) per group. DST must not exist yet."""
    src, dst = Path(src), Path(dst)
    if dst.exists():
        raise DataError(f"{dst} exists; remove it or pick a new DST (prepare writes a whole new folder)")
    groups = _plan(src)
    made = [p for p in dst.parents if not p.exists()]
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.partial-", dir=dst.parent))
    try:
        for group in groups:
            _write_group(group, tmp / group.name)
        (tmp / "README.txt").write_text(_README)
        if (src / "LICENSE").is_file():
            shutil.copyfile(src / "LICENSE", tmp / "LICENSE")
        tmp.rename(dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for parent in made:  # deepest first: the folders this call created
            parent.rmdir()
        raise
    return [(g.name, len(g.train), len(g.test)) for g in groups]
