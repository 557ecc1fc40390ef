"""Dataset readers and the pixel decoder: every layout, every error message, odd pixel formats.

Synthetic datasets are tiny PNGs written into tmp_path; the real-image tests use
../shared/data and skip when it is absent (a fresh clone has no ../shared).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from iufbench.data import DATASETS
from iufbench.data.images import image_hw, load_image, load_mask, load_test_item
from iufbench.data.mvtec import list_objects, read_folder, read_mvtec
from iufbench.data.mvtec3d import read_mvtec3d
from iufbench.data.types import TestImage as Item  # "Test*" names would be collected
from iufbench.data.visa import read_visa
from iufbench.errors import ConfigError, DataError

W, H = 32, 24  # non-square on purpose
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def png(path: Path, mode: str = "RGB", size: tuple[int, int] = (W, H), value=128) -> Path:
    """Write a tiny uniform image (size is PIL's (w, h))."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value).save(path)
    return path


def mask_png(path: Path, size: tuple[int, int] = (W, H), fg: int = 255) -> Path:
    """A mask whose left half is `fg`."""
    a = np.zeros((size[1], size[0]), np.uint8)
    a[:, : size[0] // 2] = fg
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a, "L").save(path)
    return path


def mvtec_object(root: Path, obj: str, train: int = 2, good: int = 2,
                 defects: dict[str, int] | None = None, masks: bool = True) -> Path:
    """One object in MVTec-AD layout; masks as <stem>_mask.png when `masks`."""
    defects = {"scratch": 2} if defects is None else defects
    for i in range(train):
        png(root / obj / "train" / "good" / f"{i:03d}.png")
    for i in range(good):
        png(root / obj / "test" / "good" / f"{i:03d}.png")
    for defect, n in defects.items():
        for i in range(n):
            png(root / obj / "test" / defect / f"{i:03d}.png")
            if masks:
                mask_png(root / obj / "ground_truth" / defect / f"{i:03d}_mask.png")
    return root / obj


def mvtec3d_object(root: Path, obj: str) -> Path:
    for split, n in (("train", 3), ("validation", 2)):
        for i in range(n):
            png(root / obj / split / "good" / "rgb" / f"{i:03d}.png")
    for kind in ("good", "cut"):
        for i in range(2):
            png(root / obj / "test" / kind / "rgb" / f"{i:03d}.png")
            fg = 0 if kind == "good" else 254  # MVTec 3D-AD: all-zero good masks, class ids
            mask_png(root / obj / "test" / kind / "gt" / f"{i:03d}.png", fg=fg)
    return root / obj


def visa_root(root: Path, objects: tuple[str, ...] = ("candle", "pcb1")) -> Path:
    rows = ["object,split,label,image,mask"]
    for obj in objects:
        data = f"{obj}/Data"
        for i in range(2):
            png(root / data / "Images" / "Normal" / f"{i:04d}.JPG")
            rows.append(f"{obj},train,normal,{data}/Images/Normal/{i:04d}.JPG,")
        png(root / data / "Images" / "Normal" / "0100.JPG")
        rows.append(f"{obj},test,normal,{data}/Images/Normal/0100.JPG,")
        png(root / data / "Images" / "Anomaly" / "000.JPG")
        mask_png(root / data / "Masks" / "Anomaly" / "000.png", fg=1)
        anomaly = f"{data}/Images/Anomaly/000.JPG,{data}/Masks/Anomaly/000.png"
        rows.append(f"{obj},test,anomaly,{anomaly}")
    (root / "split_csv").mkdir(parents=True)
    (root / "split_csv" / "1cls.csv").write_text("\n".join(rows) + "\n")
    return root


def mode_of(path: Path) -> str:
    """The stored mode, so a test knows it exercises the format it means to."""
    with Image.open(path) as im:
        return im.mode


def raises(match: str):
    """pytest.raises(DataError) matching literal text (paths contain regex characters)."""
    return pytest.raises(DataError, match=re.escape(match))


# ---------------------------------------------------------------- pixel decoding


def test_load_image_resizes_non_square_to_requested_hw(tmp_path):
    img = load_image(png(tmp_path / "a.png"), (20, 10))
    assert img.shape == (20, 10, 3) and img.dtype == np.uint8
    assert image_hw(tmp_path / "a.png") == (H, W)


def test_load_image_one_bit_png(tmp_path):
    bits = Image.new("1", (W, H), 0)
    bits.paste(1, (0, 0, W // 2, H))
    bits.save(tmp_path / "b.png")
    assert mode_of(tmp_path / "b.png") == "1"
    img = load_image(tmp_path / "b.png", (H, W))
    assert img.shape == (H, W, 3)
    assert (img[:, : W // 2] == 255).all() and (img[:, W // 2 :] == 0).all()


@pytest.mark.parametrize(
    ("mode", "value", "rgb"),
    [
        ("L", 100, (100, 100, 100)),
        ("RGBA", (10, 20, 30, 0), (10, 20, 30)),
        ("LA", (70, 255), (70, 70, 70)),
        ("I;16", 25700, (100, 100, 100)),  # scaled by 1/257; PIL's own convert would clip to 255
        ("I;16", 65535, (255, 255, 255)),
    ],
)
def test_load_image_other_modes_become_rgb(tmp_path, mode, value, rgb):
    path = png(tmp_path / "m.png", mode=mode, value=value)
    assert mode_of(path) == mode
    img = load_image(path, (8, 8))
    assert img.dtype == np.uint8 and (img == rgb).all()


def test_load_image_palette(tmp_path):
    im = Image.new("P", (W, H), 1)
    im.putpalette([0, 0, 0, 200, 50, 25] + [0] * 762)
    im.save(tmp_path / "p.png")
    assert (load_image(tmp_path / "p.png", (4, 4)) == (200, 50, 25)).all()


@pytest.mark.parametrize("damage", ["garbage", "truncated", "missing"])
def test_unreadable_image_names_the_file(tmp_path, damage):
    path = tmp_path / "bad.png"
    if damage == "garbage":
        path.write_bytes(b"this is not a png")
    elif damage == "truncated":
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(path)
        path.write_bytes(path.read_bytes()[:400])
    reason = {"garbage": "cannot identify", "truncated": "truncated", "missing": "no such file"}
    with raises(f"cannot read image {path}: ") as err:
        load_image(path, (8, 8))
    assert reason[damage] in str(err.value)
    assert str(err.value).endswith("replace or delete the file")


def test_float_image_is_refused_with_a_fix(tmp_path):
    path = png(tmp_path / "f.tif", mode="F", value=0.5)
    with raises("save it as 8- or 16-bit"):
        load_image(path, (8, 8))


def test_mask_none_is_all_false():
    m = load_mask(None, (5, 7), (H, W))
    assert m.shape == (5, 7) and m.dtype == bool and not m.any()


def test_mask_value_254_is_foreground_and_nearest_keeps_it_binary(tmp_path):
    m = load_mask(mask_png(tmp_path / "m.png", fg=254), (12, 16), (H, W))
    assert m.dtype == bool and m.shape == (12, 16)
    assert m[:, :8].all() and not m[:, 8:].any()  # the half-split survives exactly


@pytest.mark.parametrize("mode", ["1", "I;16"])
def test_mask_one_bit_and_16_bit(tmp_path, mode):
    a = np.zeros((H, W), np.uint16)
    a[:4, :4] = 1  # a 16-bit value that an 8-bit conversion must not lose
    im = Image.fromarray(a > 0) if mode == "1" else Image.fromarray(a)
    im.save(tmp_path / "m.png")
    m = load_mask(tmp_path / "m.png", (H, W), (H, W))
    assert m.sum() == 16 and m[:4, :4].all()


def test_mask_of_wrong_size_is_refused(tmp_path):
    path = mask_png(tmp_path / "m.png", size=(16, 16))
    with raises(f"mask {path} is 16x16 but its image is {W}x{H}"):
        load_mask(path, (8, 8), (H, W))


def test_load_test_item_checks_mask_against_its_image(tmp_path):
    image = png(tmp_path / "x.png")
    img, mask = load_test_item(Item(image, 1, "cut", mask_png(tmp_path / "x_mask.png")), (8, 8))
    assert img.shape == (8, 8, 3) and mask.shape == (8, 8) and mask[:, :4].all()
    wrong = mask_png(tmp_path / "y_mask.png", size=(W, W))
    with raises(f"but its image is {W}x{H}"):
        load_test_item(Item(image, 1, "cut", wrong), (8, 8))
    img, mask = load_test_item(Item(image, 0, "good"), (8, 8))
    assert not mask.any()


# ---------------------------------------------------------------- MVTec layout


def test_mvtec_reads_layout_in_sorted_order(tmp_path):
    obj = mvtec_object(tmp_path, "widget", defects={"scratch": 2, "dent": 1})
    png(obj / "train" / "good" / "00a.JPG")  # extensions are case-insensitive
    png(obj / "train" / "good" / "._000.png")  # macOS metadata: skipped
    (obj / "train" / "good" / "notes.txt").write_text("x")
    mvtec_object(tmp_path, "bolt")
    (tmp_path / "LICENSE").write_text("x")
    data = read_mvtec(tmp_path)
    assert list(data) == ["bolt", "widget"] == list_objects(tmp_path)
    w = data["widget"]
    assert w.name == "widget" and w.root == obj and w.has_masks
    assert [p.name for p in w.train] == ["000.png", "001.png", "00a.JPG"]
    assert [(t.defect, t.path.name, t.label) for t in w.test] == [
        ("dent", "000.png", 1), ("good", "000.png", 0), ("good", "001.png", 0),
        ("scratch", "000.png", 1), ("scratch", "001.png", 1),
    ]
    assert w.test[0].mask == obj / "ground_truth" / "dent" / "000_mask.png"
    assert all(t.mask is None for t in w.test if t.label == 0)


def test_objects_are_selected_in_the_order_given(tmp_path):
    for name in ("a", "b", "c"):
        mvtec_object(tmp_path, name)
    assert list(read_mvtec(tmp_path, ["c", "a"])) == ["c", "a"]


def test_converted_visa_masks_without_mask_suffix(tmp_path):
    png(tmp_path / "candle" / "train" / "good" / "0000.JPG")
    png(tmp_path / "candle" / "test" / "bad" / "000.JPG")
    mask_png(tmp_path / "candle" / "ground_truth" / "bad" / "000.png")
    (item,) = read_mvtec(tmp_path)["candle"].test
    assert item.mask == tmp_path / "candle" / "ground_truth" / "bad" / "000.png"


def test_test_only_dataset_reads_with_empty_train(tmp_path):
    mvtec_object(tmp_path, "bottle", train=0)
    data = read_mvtec(tmp_path)["bottle"]
    assert data.train == () and len(data.test) == 4


def test_missing_root(tmp_path):
    with raises(f"dataset root {tmp_path / 'nope'} does not exist; pass --data-root"):
        read_mvtec(tmp_path / "nope")


def test_root_one_level_too_deep(tmp_path):
    obj = mvtec_object(tmp_path, "widget")
    with raises(f"{obj} looks like a single object folder; pass its parent {tmp_path}"):
        read_mvtec(obj)
    with raises(f"{obj / 'test'} looks like a split folder"):
        read_mvtec(obj / "test")


def test_root_one_level_too_high(tmp_path):
    mvtec_object(tmp_path / "mvtec", "widget")
    with raises(f"(but {tmp_path / 'mvtec'} holds some: pass it as --data-root)"):
        read_mvtec(tmp_path)


def test_unknown_object_lists_valid_ones(tmp_path):
    mvtec_object(tmp_path, "bottle")
    mvtec_object(tmp_path, "cable")
    expected = f"unknown object 'botle' under {tmp_path}. Did you mean 'bottle'?"
    expected += " Valid: bottle, cable"
    with raises(expected):
        read_mvtec(tmp_path, ["botle"])


def test_object_without_images(tmp_path):
    mvtec_object(tmp_path, "bottle")
    (tmp_path / "empty" / "train" / "good").mkdir(parents=True)
    expected = (
        f"object empty under {tmp_path} has no images; "
        "expected empty/train/good and empty/test/<defect>"
    )
    with raises(expected):
        read_mvtec(tmp_path)
    (tmp_path / "bare").mkdir()  # requested by name although it has no train/ or test/
    with raises(f"object bare under {tmp_path} has no images"):
        read_mvtec(tmp_path, ["bare"])


def test_mvtec_requires_every_mask(tmp_path):
    obj = mvtec_object(tmp_path, "widget", defects={"scratch": 3})
    (obj / "ground_truth" / "scratch" / "001_mask.png").unlink()
    with raises(f"1 defective test image(s) of {obj} have no mask (test/scratch/001.png)"):
        read_mvtec(tmp_path)


def test_folder_without_masks(tmp_path):
    mvtec_object(tmp_path, "nomask", masks=False)
    mvtec_object(tmp_path, "masked")
    data = read_folder(tmp_path)
    assert not data["nomask"].has_masks and all(t.mask is None for t in data["nomask"].test)
    assert data["masked"].has_masks
    with raises("or use dataset 'folder' if the dataset has no masks at all"):
        read_mvtec(tmp_path)


def test_folder_with_some_masks_missing_says_which(tmp_path):
    obj = mvtec_object(tmp_path, "widget", defects={"scratch": 2, "dent": 2})
    for name in ("000_mask.png", "001_mask.png"):
        (obj / "ground_truth" / "dent" / name).unlink()
    expected = f"2 defective test image(s) of {obj} have no mask"
    expected += " (test/dent/000.png, test/dent/001.png)"
    with raises(expected):
        read_folder(tmp_path)


def test_mvtec_reader_on_mvtec3d_data_points_to_mvtec3d(tmp_path):
    mvtec3d_object(tmp_path, "tire")
    with raises("this is MVTec 3D-AD, use dataset 'mvtec3d'"):
        read_mvtec(tmp_path)


# ---------------------------------------------------------------- MVTec 3D-AD


def test_mvtec3d_layout_and_validation_split(tmp_path):
    obj = mvtec3d_object(tmp_path, "tire")
    tire = read_mvtec3d(tmp_path)["tire"]
    assert [p.parent.parent.parent.name for p in tire.train] == ["train"] * 3
    assert [(t.defect, t.label, t.mask) for t in tire.test] == [
        ("cut", 1, obj / "test" / "cut" / "gt" / "000.png"),
        ("cut", 1, obj / "test" / "cut" / "gt" / "001.png"),
        ("good", 0, None), ("good", 0, None),
    ]
    assert len(read_mvtec3d(tmp_path, include_validation=True)["tire"].train) == 5


def test_mvtec3d_missing_gt_and_wrong_reader(tmp_path):
    obj = mvtec3d_object(tmp_path, "tire")
    (obj / "test" / "cut" / "gt" / "001.png").unlink()
    with raises(f"1 defective test image(s) of {obj} have no mask (test/cut/rgb/001.png)"):
        read_mvtec3d(tmp_path)
    mvtec_root = tmp_path / "mvtec"
    mvtec_object(mvtec_root, "bottle")
    with raises("this is MVTec-AD, use dataset 'mvtec'"):
        read_mvtec3d(mvtec_root)


# ---------------------------------------------------------------- VisA


def test_visa_reads_official_layout(tmp_path):
    root = visa_root(tmp_path / "VisA")
    data = read_visa(root)
    assert list(data) == ["candle", "pcb1"]
    candle = data["candle"]
    assert candle.root == root / "candle" and candle.has_masks
    assert [p.name for p in candle.train] == ["0000.JPG", "0001.JPG"]
    assert [(t.defect, t.label) for t in candle.test] == [("anomaly", 1), ("good", 0)]
    assert candle.test[0].mask == root / "candle" / "Data" / "Masks" / "Anomaly" / "000.png"
    assert list(read_visa(root, ["pcb1"])) == ["pcb1"]
    with raises("unknown object 'pcb9'"):
        read_visa(root, ["pcb9"])


def test_visa_missing_csv_says_where(tmp_path):
    root = tmp_path / "VisA"
    png(root / "candle" / "Data" / "Images" / "Normal" / "0000.JPG")
    with raises(f"VisA split file {root / 'split_csv' / '1cls.csv'} not found"):
        read_visa(root)
    with raises(f"{root / 'candle'} looks like a single object folder"):
        read_visa(root / "candle")


def test_visa_bad_header_and_missing_files(tmp_path):
    root = visa_root(tmp_path / "VisA")
    (root / "candle" / "Data" / "Images" / "Anomaly" / "000.JPG").unlink()
    with raises(f"1 file(s) of candle listed in {root / 'split_csv' / '1cls.csv'} are missing"):
        read_visa(root, ["candle"])
    assert list(read_visa(root, ["pcb1"])) == ["pcb1"]  # only the requested objects are checked
    (root / "split_csv" / "1cls.csv").write_text("a,b\n")
    with raises("not the header 'object,split,label,image,mask'"):
        read_visa(root)


# ---------------------------------------------------------------- registry


def test_registry_names_and_uniform_entries(tmp_path):
    assert DATASETS.names() == ["deeppcb", "elpv", "folder", "mvtec", "mvtec3d", "visa"]
    mvtec_object(tmp_path, "widget")
    assert DATASETS.get("mvtec").list_objects(tmp_path) == ["widget"]
    assert list(DATASETS.get("folder").read(tmp_path, None)) == ["widget"]
    with pytest.raises(ConfigError, match="Did you mean 'mvtec'"):
        DATASETS.get("mvtek")


# ---------------------------------------------------------------- real images in ../shared/data


def shared(sub: str) -> Path:
    path = SHARED / sub
    if not path.is_dir():
        pytest.skip(f"{path} absent (real test images live outside the project)")
    return path


def load_all(obj, size=(224, 224)) -> None:
    """Decode every image and mask of one object the way the model sees them."""
    for path in obj.train:
        img = load_image(path, size)
        assert img.shape == (*size, 3) and img.dtype == np.uint8
    for item in obj.test:
        img, mask = load_test_item(item, size)
        assert img.shape == (*size, 3) and img.dtype == np.uint8
        assert mask.shape == size and mask.dtype == bool
        assert mask.any() == bool(item.label), item.path


@pytest.mark.shared_data
def test_real_deeppcb():
    data = read_mvtec(shared("deeppcb"))
    assert len(data) == 11 and all(o.has_masks and o.train and o.test for o in data.values())
    assert len(data["group12000"].train) == 10
    load_all(data["group12000"])


@pytest.mark.shared_data
def test_real_mvtec3d_tire():
    tire = DATASETS.get("mvtec3d").read(shared("mvtec3d"), ["tire"])["tire"]
    assert (len(tire.train), len(tire.test)) == (210, 112)
    assert sum(t.label == 0 for t in tire.test) == 25
    assert image_hw(tire.train[0]) == (256, 192)  # portrait, unlike the "256x192" in the README
    load_all(tire)


@pytest.mark.shared_data
def test_real_mvtec_fragments_test_only():
    data = read_mvtec(shared("mvtec_ad_fragments"))
    assert list(data) == ["bottle", "capsule", "metal_nut"]
    assert all(o.train == () and len(o.test) >= 16 for o in data.values())
    load_all(data["bottle"])
