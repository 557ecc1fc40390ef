"""The persistent feature cache: a later run extracts nothing and gets the same bits, an edited image
is extracted again, and of two processes wanting one entry at once one extracts while the other waits."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from iufbench.cli import main
from iufbench.data import DATASETS
from iufbench.feature_bank import FeatureBank
from iufbench.feature_cache import FeatureCache, entry_key
from iufbench.features import BackboneSpec, FeatureExtractor

CPU = torch.device("cpu")


@pytest.fixture
def objects(tiny_root: Path, tmp_path: Path):
    """A private copy of two tiny objects (the test edits an image)."""
    import shutil

    root = tmp_path / "data"
    for name in ("fabric", "wood"):
        shutil.copytree(tiny_root / name, root / name)
    return DATASETS.get("mvtec").read(root, ["fabric", "wood"])


def test_a_second_build_reads_the_cache_bit_for_bit_and_an_edited_image_misses(objects, tmp_path: Path) -> None:
    extractor, cache = FeatureExtractor(BackboneSpec()), FeatureCache(tmp_path / "cache")
    plain = FeatureBank.build(objects, extractor, (64, 64), CPU, progress=False)
    first = FeatureBank.build(objects, extractor, (64, 64), CPU, progress=False, cache=cache)
    second = FeatureBank.build(objects, extractor, (64, 64), CPU, progress=False, cache=cache)
    assert plain.extracted == first.extracted == ["fabric", "wood"] and second.extracted == []
    for name in objects:
        assert torch.equal(second[name].train, plain[name].train) and torch.equal(second[name].test, plain[name].test)
        assert np.array_equal(second[name].masks, plain[name].masks)
    assert list(second) == list(objects)
    edited = objects["wood"].train[0]
    Image.fromarray(255 - np.asarray(Image.open(edited).convert("RGB"))).save(edited)
    assert FeatureBank.build(objects, extractor, (64, 64), CPU, progress=False, cache=cache).extracted == ["wood"]
    assert FeatureBank.build(objects, extractor, (64, 64), CPU, progress=False, cache=cache,
                             precision="bf16").extracted == ["fabric", "wood"]  # precision is part of the key
    assert FeatureBank.build(objects, extractor, (96, 96), CPU, progress=False, cache=cache).extracted == [
        "fabric", "wood"]  # and the image size


def test_the_key_ignores_where_the_dataset_lies_but_not_the_backbone(objects, tmp_path: Path) -> None:
    import shutil

    data = objects["fabric"]
    moved = DATASETS.get("mvtec").read(Path(shutil.copytree(data.root.parent, tmp_path / "moved")), ["fabric"])["fabric"]
    key = entry_key(data, (64, 64), BackboneSpec(), "cpu", "fp32")
    assert entry_key(moved, (64, 64), BackboneSpec(), "cpu", "fp32") == key
    assert entry_key(data, (64, 64), BackboneSpec(out_indices=(1, 2)), "cpu", "fp32") != key
    assert entry_key(data, (64, 64), BackboneSpec(weights="random"), "cpu", "fp32") != key
    assert entry_key(data, (64, 64), BackboneSpec(), "cuda", "fp32") != key
    threads = torch.get_num_threads()
    torch.set_num_threads(threads + 1)  # CPU features are bit-identical for one thread count only
    try:
        assert entry_key(data, (64, 64), BackboneSpec(), "cpu", "fp32") != key
    finally:
        torch.set_num_threads(threads)


def test_one_extracts_and_the_other_waits_then_reads(tmp_path: Path) -> None:
    """flock locks belong to open files, so two threads contend exactly as two processes do."""
    cache, started, release = FeatureCache(tmp_path), threading.Event(), threading.Event()
    calls: list[str] = []

    def slow() -> dict:
        calls.append("extract")
        started.set()
        release.wait(10)
        return {"train": torch.ones(2)}

    results: list = []
    first = threading.Thread(target=lambda: results.append(cache.get("k", slow, {"object": "x"}, wait=True)))
    first.start()
    assert started.wait(10)
    assert cache.get("k", slow, {}, wait=False) is None  # busy: the caller may do other objects first
    second = threading.Thread(target=lambda: results.append(cache.get("k", slow, {}, wait=True)))
    second.start()
    release.set()
    first.join(10), second.join(10)
    assert calls == ["extract"]
    assert sorted(computed for _, computed in results) == [False, True]
    assert all(torch.equal(entry["train"], torch.ones(2)) for entry, _ in results)


def test_cache_list_and_clear(objects, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("IUFBENCH_CACHE", str(tmp_path / "c"))
    FeatureBank.build(objects, FeatureExtractor(BackboneSpec()), (64, 64), CPU, progress=False,
                      cache=FeatureCache.default())
    assert main(["cache", "list"]) == 0
    out = capsys.readouterr().out
    assert "fabric" in out and "wood" in out and "2 entries" in out
    assert main(["cache", "clear"]) == 0
    assert "removed 2 feature entries" in capsys.readouterr().out
    assert FeatureCache.default().entries() == []
