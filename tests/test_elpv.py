"""The elpv reader: classes from labels.csv, the seeded split of the normals, the left-out unsure
cells, its errors, and the protocol that needs no root (the installed elpv-dataset package)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PIL import Image

from iufbench.data import DATASETS
from iufbench.data.elpv import read_elpv
from iufbench.errors import DataError
from iufbench.protocols import load_protocol, resolve_objects

# (type, probability, how many): mono 10 normal, 3 defective, 3 unsure; poly 5 normal, 2 defective
CELLS = [("mono", "0.0", 10), ("mono", "1.0", 3), ("mono", "0.3333333333333333", 2),
         ("mono", "0.6666666666666666", 1), ("poly", "0.0", 5), ("poly", "1.0", 2)]


@pytest.fixture
def elpv_root(tmp_path: Path) -> Path:
    """A tiny folder in the package's layout: labels.csv (whitespace-separated) and images/."""
    root = tmp_path / "elpv"
    (root / "images").mkdir(parents=True)
    lines, n = [], 0
    for kind, prob, count in CELLS:
        for _ in range(count):
            n += 1
            Image.new("L", (8, 8), n).save(root / "images" / f"cell{n:04d}.png")
            lines.append(f"images/cell{n:04d}.png  {prob:<20}{kind}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root


def _names(paths) -> set[str]:
    return {Path(p).name for p in paths}


def test_classes_split_and_left_out_cells(elpv_root: Path) -> None:
    data = read_elpv(elpv_root)
    assert list(data) == ["mono", "poly"]
    mono = data["mono"]
    good = [t for t in mono.test if t.label == 0]
    bad = [t for t in mono.test if t.label == 1]
    assert (len(mono.train), len(good), len(bad)) == (8, 2, 3)  # 20% of 10 normals to test, rounded up
    assert _names(t.path for t in bad) == {"cell0011.png", "cell0012.png", "cell0013.png"}
    unsure = {f"cell{i:04d}.png" for i in (14, 15, 16)}
    assert not unsure & (_names(mono.train) | _names(t.path for t in mono.test))
    assert mono.meta["left_out"] == 3 and data["poly"].meta["left_out"] == 0
    assert _names(mono.train).isdisjoint(_names(t.path for t in good))
    assert not mono.has_masks and all(t.mask is None for t in mono.test)
    poly = data["poly"]
    assert (len(poly.train), sum(t.label == 0 for t in poly.test), sum(t.label for t in poly.test)) == (4, 1, 2)


def test_split_is_fixed_by_its_seed_and_nested_in_n_train(elpv_root: Path) -> None:
    first, again = read_elpv(elpv_root, ["mono"]), read_elpv(elpv_root, ["mono"])
    assert first == again
    others = [read_elpv(elpv_root, ["mono"], split_seed=s)["mono"].train for s in range(1, 6)]
    assert any(o != first["mono"].train for o in others)
    small = read_elpv(elpv_root, ["mono"], n_train=3)["mono"]
    assert len(small.train) == 3 and set(small.train) < set(first["mono"].train)
    assert small.test == first["mono"].test  # the test split does not depend on n_train


@pytest.mark.parametrize("text, fragment", [
    ("images/cell0001.png  0.0  round\n", "type mono or poly"),
    ("images/cell0001.png  zero  mono\n", "not 'images/<file> <probability>"),
    ("images/cell0001.png  1.5  mono\n", "a probability in [0, 1]"),
    ("\n", "lists no images"),
])
def test_bad_labels_file(elpv_root: Path, text: str, fragment: str) -> None:
    (elpv_root / "labels.csv").write_text(text)
    with pytest.raises(DataError, match=r"labels\.csv") as err:
        read_elpv(elpv_root)
    assert fragment in str(err.value)


def test_missing_image_labels_file_and_too_large_n_train(elpv_root: Path, tmp_path: Path) -> None:
    (elpv_root / "images" / "cell0002.png").unlink()
    with pytest.raises(DataError, match="1 image.* missing .*cell0002.png"):
        read_elpv(elpv_root, ["mono"])
    with pytest.raises(DataError, match="fewer than n_train=9"):
        read_elpv(elpv_root, ["poly"], n_train=9)
    with pytest.raises(DataError, match="labels.csv not found"):
        read_elpv(tmp_path / "nowhere")
    with pytest.raises(DataError, match="Did you mean 'mono'"):
        read_elpv(elpv_root, ["mon"])


def test_protocol_runs_without_root_and_names_the_install_when_package_missing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    protocol = load_protocol("elpv_2")
    assert protocol.sources["elpv"].root is None and protocol.tasks == (("mono",), ("poly",))
    monkeypatch.setitem(sys.modules, "elpv_dataset", None)  # import fails as if not installed
    with pytest.raises(DataError, match=r"pip install 'iufbench\[elpv\]' \(or ./scripts/setup.sh\)"):
        resolve_objects(protocol)


def test_a_root_overrides_the_package(elpv_root: Path) -> None:
    protocol = load_protocol("elpv_2", data_root=str(elpv_root))
    with pytest.raises(DataError, match="fewer than n_train=32"):  # proves the fixture was read
        resolve_objects(protocol)
    assert DATASETS.get("elpv").list_objects(elpv_root) == ["mono", "poly"]


def test_installed_package_counts() -> None:
    """The numbers docs/protocols.md states, from the real package (2,624 cells)."""
    pytest.importorskip("elpv_dataset", reason="elpv-dataset not installed (pip install 'iufbench[elpv]')")
    data = resolve_objects(load_protocol("elpv_2"))
    counts = {name: (len(d.train), sum(t.label == 0 for t in d.test), sum(t.label for t in d.test),
                     d.meta["left_out"]) for name, d in data.items()}
    assert counts == {"mono": (32, 118, 313, 173), "poly": (32, 184, 402, 228)}
    full = read_elpv(DATASETS.get("elpv").default_root())
    assert [len(d.train) for d in full.values()] == [470, 736]
