"""The synthetic generator: determinism, MVTec layout, masks that match the defects, caching."""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from iufbench.data import synth
from iufbench.data.synth import (
    CATALOGUE,
    CATEGORIES,
    MANIFEST,
    SynthSpec,
    ensure,
    generate,
    manifest,
    render_sample,
    writer,
)
from iufbench.errors import ConfigError, DataError

SMALL = SynthSpec(
    categories=("wood", "screw", "capsule"), image_size=64, n_train=3, n_test_good=2, n_test_defect=5, seed=3
)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("synth") / "data", SMALL)


def test_same_spec_gives_identical_bytes(small: Path, tmp_path: Path) -> None:
    again = generate(tmp_path / "again", SMALL)
    assert _files(again) == _files(small)


def test_parallel_generation_gives_the_serial_bytes(small: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer, "PARALLEL_MIN_IMAGES", 0)
    monkeypatch.setattr(writer.os, "cpu_count", lambda: 2)  # two worker processes even on one core
    assert _files(generate(tmp_path / "parallel", SMALL)) == _files(small)


def test_samples_do_not_depend_on_other_categories_or_counts(small: Path, tmp_path: Path) -> None:
    other = SynthSpec(categories=("wood",), image_size=64, n_train=5, n_test_good=1, n_test_defect=1, seed=3)
    root = generate(tmp_path / "other", other)
    for rel in ("wood/train/good/000.png", "wood/train/good/002.png", "wood/test/good/000.png"):
        assert (root / rel).read_bytes() == (small / rel).read_bytes()


def test_seed_changes_the_images(small: Path) -> None:
    image, _ = render_sample("wood", 64, SMALL.seed + 1, "train/good", 0)
    assert not np.array_equal(image, _pixels(small / "wood/train/good/000.png"))


def test_layout_is_mvtec(small: Path) -> None:
    assert manifest(SMALL) == json.loads((small / MANIFEST).read_text())
    assert sorted(p.name for p in small.iterdir() if p.is_dir()) == sorted(SMALL.categories)
    for category in SMALL.categories:
        root = small / category
        assert len(list((root / "train/good").glob("*.png"))) == SMALL.n_train
        assert len(list((root / "test/good").glob("*.png"))) == SMALL.n_test_good
        defects = [d.name for d in (root / "test").iterdir() if d.name != "good"]
        assert set(defects) <= set(CATALOGUE[category][1])
        assert sorted(d.name for d in (root / "ground_truth").iterdir()) == sorted(defects)
        n_defective = 0
        for defect in defects:
            images = sorted((root / "test" / defect).glob("*.png"))
            masks = sorted((root / "ground_truth" / defect).glob("*.png"))
            assert [m.name for m in masks] == [f"{p.stem}_mask.png" for p in images]
            for image_path, mask_path in zip(images, masks):
                image, mask = _pixels(image_path), _pixels(mask_path)
                assert image.shape == (64, 64, 3) and image.dtype == np.uint8
                assert mask.shape == (64, 64)
                assert set(np.unique(mask)) == {0, 255}  # binary and never empty
            n_defective += len(images)
        assert n_defective == SMALL.n_test_defect
        for image_path in (root / "train/good").glob("*.png"):
            assert _pixels(image_path).shape == (64, 64, 3)


@pytest.mark.parametrize("category", CATEGORIES)
def test_each_defect_changes_its_masked_pixels(category: str) -> None:
    """Against the same sample rendered without the defect, the change sits inside the mask."""
    for defect in CATALOGUE[category][1]:
        for index in range(2):
            image, mask = render_sample(category, 64, 0, f"test/{defect}", index, defect)
            normal, no_mask = render_sample(category, 64, 0, f"test/{defect}", index)
            assert not no_mask.any()
            assert 0.001 < mask.mean() < 0.15, (defect, index, mask.mean())
            diff = np.abs(image.astype(float) - normal.astype(float)).mean(axis=-1)
            inside, outside = diff[mask].mean(), diff[~mask].mean()
            assert inside > 3.0 and inside > 5 * outside, (defect, index, inside, outside)


@pytest.mark.parametrize("category", CATEGORIES)
def test_normal_images_vary(category: str) -> None:
    images = [render_sample(category, 64, 0, "train/good", i)[0].astype(float) for i in range(3)]
    for a, b in itertools.combinations(images, 2):
        assert np.abs(a - b).mean() > 1.0


def test_categories_are_told_apart_by_their_looks() -> None:
    """Each normal image is nearest to its own category's mean descriptor.

    The descriptor is an 8x8 thumbnail of the colours and of the horizontal and vertical
    gradient strength: colour and layout for objects, colour and grain for textures.
    """

    def thumb(image: np.ndarray) -> np.ndarray:
        pixels = image.astype(float) / 255.0
        grad_x = np.abs(np.diff(pixels, axis=1, append=pixels[:, -1:])).mean(axis=-1, keepdims=True)
        grad_y = np.abs(np.diff(pixels, axis=0, append=pixels[-1:])).mean(axis=-1, keepdims=True)
        stack = np.concatenate([pixels, 4 * grad_x, 4 * grad_y], axis=-1)
        return stack.reshape(8, 8, 8, 8, 5).mean(axis=(1, 3)).ravel()

    normals = {c: [render_sample(c, 64, 0, "train/good", i)[0] for i in range(6)] for c in CATEGORIES}
    thumbs = {c: np.stack([thumb(image) for image in images]) for c, images in normals.items()}
    centres = {c: t.mean(axis=0) for c, t in thumbs.items()}
    for category, rows in thumbs.items():
        for row in rows:
            nearest = min(centres, key=lambda c: np.abs(row - centres[c]).mean())
            assert nearest == category


def test_ensure_reuses_and_regenerates(tmp_path: Path) -> None:
    first = ensure(SMALL, tmp_path)
    assert first.parent == tmp_path and (first / MANIFEST).is_file()
    marker = first / "marker"
    marker.write_text("kept")
    assert ensure(SMALL, tmp_path) == first and marker.exists()  # reused, not rewritten

    tiny = SynthSpec(categories=("wood",), image_size=64, n_train=2, n_test_good=1, n_test_defect=1)
    other = ensure(tiny, tmp_path)
    assert other != first and (other / "wood").is_dir() and marker.exists()

    (first / MANIFEST).write_text("{}")  # e.g. written by an older generator version
    assert ensure(SMALL, tmp_path) == first
    assert not marker.exists() and (first / MANIFEST).is_file()
    kept = sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock"))  # lock files stay
    assert kept == sorted([first.name, other.name])  # no temp leftovers


def test_a_run_that_waits_for_the_lock_uses_the_copy_made_meanwhile(tmp_path: Path) -> None:
    """Two runs on a fresh cache: the second waits while the first generates, then reads the
    first's copy instead of replacing it under its feet."""
    import fcntl
    import threading

    root = tmp_path / synth.spec_hash(SMALL)
    with open(tmp_path / f".{root.name}.lock", "w") as lock:  # the first run holds the lock
        fcntl.flock(lock, fcntl.LOCK_EX)
        result: list[Path] = []
        second = threading.Thread(target=lambda: result.append(ensure(SMALL, tmp_path)))
        second.start()
        second.join(timeout=0.5)
        assert second.is_alive() and not root.exists()  # waiting, not generating its own copy
        generate(root, SMALL)  # the first run finishes
        inode = root.stat().st_ino
    second.join(timeout=60)
    assert result == [root] and root.stat().st_ino == inode  # the first run's folder, untouched


def test_generate_refuses_a_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("user data")
    with pytest.raises(DataError, match="synth.json"):
        generate(tmp_path, SMALL)
    assert (tmp_path / "mine.txt").exists()


def test_bad_specs_fail_with_a_message() -> None:
    with pytest.raises(ConfigError, match="valid"):
        SynthSpec(categories=("wodo",))
    with pytest.raises(ConfigError):
        SynthSpec(image_size=8)
