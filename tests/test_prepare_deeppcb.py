"""`iufbench data prepare deeppcb`: a tiny checkout in DeepPCB's own layout (written here) becomes
the MVTec layout the deeppcb protocols read; a bad source is one error and leaves nothing behind."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from iufbench.cli import main
from iufbench.data import DATASETS
from iufbench.data.prepare_deeppcb import prepare_deeppcb
from iufbench.errors import DataError
from iufbench.protocols import load_protocol, resolve_objects

SIDE = 32
# group -> pair ids; group00077 also has a template without a tested image (DeepPCB's 90100034 is one)
GROUPS = {"group00041": ["00041000", "00041001", "00041002", "00041003"], "group00077": ["00077005", "00077009"]}
ORPHAN = "00077001"
BOXES = "2 3 9 12 1\n20 20 31 25 3\n"  # inclusive corners; the second touches the right edge


def _scan(path: Path, seed: int) -> None:
    """A binary-looking scan in 8 x 8 blocks of 0 / 255, saved as JPEG like DeepPCB's."""
    blocks = np.random.default_rng(seed).integers(0, 2, (SIDE // 8, SIDE // 8), dtype=np.uint8) * 255
    Image.fromarray(np.kron(blocks, np.ones((8, 8), np.uint8)), "L").save(path, quality=95)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    src = tmp_path / "DeepPCB"
    lists = {"trainval.txt": [], "test.txt": []}
    for g, (group, ids) in enumerate(GROUPS.items()):
        num = group[len("group"):]
        (src / "PCBData" / group / num).mkdir(parents=True)
        (src / "PCBData" / group / f"{num}_not").mkdir()
        for i, pair_id in enumerate(ids):
            _scan(src / "PCBData" / group / num / f"{pair_id}_temp.jpg", 10 * g + i)
            _scan(src / "PCBData" / group / num / f"{pair_id}_test.jpg", 100 + 10 * g + i)
            (src / "PCBData" / group / f"{num}_not" / f"{pair_id}.txt").write_text(BOXES)
            lists["test.txt" if g else "trainval.txt"].append(f"{group}/{num}/{pair_id}.jpg {group}/{num}_not/{pair_id}.txt")
    _scan(src / "PCBData" / "group00077" / "00077" / f"{ORPHAN}_temp.jpg", 999)
    for name, lines in lists.items():
        (src / "PCBData" / name).write_text("\n".join(lines) + "\n")
    (src / "LICENSE").write_text("MIT License\n")
    return src


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_prepare_writes_the_mvtec_layout(checkout: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    dst = tmp_path / "data" / "deeppcb"
    assert main(["data", "prepare", "deeppcb", str(checkout), str(dst)]) == 0
    assert "group00041 3+1, group00077 2+1" in capsys.readouterr().out  # round(0.7 n) templates train
    g41 = dst / "group00041"
    assert _names(g41 / "train" / "good") == ["00041000.png", "00041001.png", "00041002.png"]
    assert _names(g41 / "test" / "good") == _names(g41 / "test" / "defect") == ["00041003.png"]
    assert _names(g41 / "ground_truth" / "defect") == ["00041003_mask.png"]
    assert _names(dst / "group00077" / "train" / "good") == [f"{ORPHAN}.png", "00077005.png"]
    assert {"README.txt", "LICENSE"} <= set(_names(dst))

    out = Image.open(g41 / "test" / "defect" / "00041003.png")
    source = np.asarray(Image.open(checkout / "PCBData/group00041/00041/00041003_test.jpg").convert("L"))
    assert out.mode == "1" and np.array_equal(np.asarray(out), source > 127)
    mask = np.asarray(Image.open(g41 / "ground_truth" / "defect" / "00041003_mask.png"))
    expected = np.zeros((SIDE, SIDE), bool)
    expected[3:13, 2:10] = expected[20:26, 20:32] = True  # corners inclusive
    assert np.array_equal(mask, expected)

    data = DATASETS.get("deeppcb").read(dst)
    assert list(data) == ["group00041", "group00077"]
    assert [(t.label, t.mask is not None) for t in data["group00041"].test] == [(1, True), (0, False)]


def _no_pcbdata(src: Path) -> None:
    (src / "PCBData").rename(src / "elsewhere")


def _no_lists(src: Path) -> None:
    (src / "PCBData" / "test.txt").unlink()


def _corrupt_training_image(src: Path) -> None:  # decoded only while writing: the partial output goes
    (src / "PCBData/group00077/00077/00077005_temp.jpg").write_bytes(b"\xff\xd8 not a jpeg")


def _box_outside(src: Path) -> None:
    (src / "PCBData/group00041/00041_not/00041003.txt").write_text("2 3 9 12 1\n20 20 32 25 3\n")


def _unlisted_test_pair(src: Path) -> None:
    lines = (src / "PCBData" / "trainval.txt").read_text().splitlines()
    (src / "PCBData" / "trainval.txt").write_text("\n".join(lines[:-1]) + "\n")


@pytest.mark.parametrize("damage, message", [
    (_no_pcbdata, r"PCBData not found; SRC must be a checkout of github.com/tangsanli5201/DeepPCB"),
    (_no_lists, r"test.txt not found; restore PCBData/test.txt"),
    (_corrupt_training_image, r"cannot read image .*00077005_temp.jpg"),
    (_box_outside, r"00041003.txt line 2: box \(20, 20\)-\(32, 25\) is not inside its 32x32 image"),
    (_unlisted_test_pair, r"test pair 00041003 of group00041 \(group00041/00041/00041003.jpg\) is not in trainval.txt or test.txt"),
])
def test_bad_source_is_one_error_and_writes_nothing(checkout: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                                     damage, message: str) -> None:
    damage(checkout)
    out_parent = tmp_path / "new" / "data"
    assert main(["data", "prepare", "deeppcb", str(checkout), str(out_parent / "deeppcb")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("iufbench: error: ")
    assert re.search(message, err), err
    assert not (tmp_path / "new").exists()  # no partial folder, not even the parents it created


def test_existing_destination_is_refused(checkout: Path, tmp_path: Path) -> None:
    (tmp_path / "deeppcb").mkdir()
    (tmp_path / "deeppcb" / "mine.txt").write_text("keep")
    with pytest.raises(DataError, match="exists; remove it or pick a new DST"):
        prepare_deeppcb(checkout, tmp_path / "deeppcb")
    assert _names(tmp_path / "deeppcb") == ["mine.txt"]


def test_missing_root_names_the_prepare_command(tmp_path: Path) -> None:
    protocol = load_protocol("deeppcb_6_1", data_root=str(tmp_path / "absent"))
    with pytest.raises(DataError, match=r"`iufbench data prepare deeppcb DEEPPCB_CHECKOUT .*absent`"):
        resolve_objects(protocol)
