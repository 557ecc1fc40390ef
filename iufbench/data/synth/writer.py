"""Writing a dataset to disk: the MVTec-AD folder layout, parallel categories, atomic replace, cache.

Why apart from the rendering: this is the file-system side (temporary folders, renames, the
cache lock), which changes for reasons that never touch a pixel.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from iufbench.data.synth.geometry import Array
from iufbench.data.synth.sample import CATALOGUE, render_sample
from iufbench.data.synth.spec import MANIFEST, SynthSpec, manifest, read_manifest, spec_hash
from iufbench.errors import DataError
from iufbench.locking import build_once


def _stems(n: int) -> list[str]:
    width = max(3, len(str(n - 1)))
    return [f"{i:0{width}d}" for i in range(n)]


def _save(path: Path, pixels: Array) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format="PNG")


def _write_category(root: Path, category: str, spec: SynthSpec) -> None:
    size, seed = spec.image_size, spec.seed
    for folder, n in (("train/good", spec.n_train), ("test/good", spec.n_test_good)):
        for i, stem in enumerate(_stems(n)):
            _save(root / folder / f"{stem}.png", render_sample(category, size, seed, folder, i)[0])
    kinds = CATALOGUE[category][1]
    per_kind = {k: len(range(j, spec.n_test_defect, len(kinds))) for j, k in enumerate(kinds)}
    for kind, n in per_kind.items():
        for i, stem in enumerate(_stems(n)):
            image, mask = render_sample(category, size, seed, f"test/{kind}", i, kind)
            _save(root / "test" / kind / f"{stem}.png", image)
            _save(root / "ground_truth" / kind / f"{stem}_mask.png", mask.astype(np.uint8) * 255)


# Below this many images a worker process (~1 s to spawn) costs more than it saves.
PARALLEL_MIN_IMAGES = 400


def _write_categories(root: Path, spec: SynthSpec) -> None:
    """Categories are independent (each sample is a pure function of its key), so large specs
    are written by one process per category, up to the CPU count: same bytes, less waiting."""
    images = len(spec.categories) * (spec.n_train + spec.n_test_good + spec.n_test_defect)
    workers = min(len(spec.categories), os.cpu_count() or 1)
    if workers < 2 or images < PARALLEL_MIN_IMAGES:
        for category in spec.categories:
            _write_category(root / category, category, spec)
        return
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        jobs = [pool.submit(_write_category, root / c, c, spec) for c in spec.categories]
        for job in jobs:
            job.result()  # re-raises a worker's error here


def generate(out: Path, spec: SynthSpec) -> Path:
    """Write the dataset of `spec` to `out` (MVTec-AD layout + `synth.json`); returns `out`.

    Files are written to a sibling temporary folder that is renamed into place only when
    complete, so an interrupted run never leaves a folder that looks finished. An existing
    synthetic dataset at `out` is replaced; any other non-empty folder is refused.
    """
    out = Path(out)
    if out.exists() and not (out.is_dir() and (read_manifest(out) is not None or not any(out.iterdir()))):
        raise DataError(f"{out} exists and is not a synthetic dataset (no {MANIFEST}); choose a new folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _write_categories(tmp, spec)
        (tmp / MANIFEST).write_text(json.dumps(manifest(spec), indent=2) + "\n", encoding="utf-8")
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return out


def ensure(spec: SynthSpec, cache_dir: Path) -> Path:
    """`cache_dir/<spec hash>`, generated unless a complete copy for this spec is already there.

    Runs started side by side on a fresh cache take turns on a lock file: the first generates,
    the others find its complete copy, and no run replaces a folder another is reading."""
    root = Path(cache_dir) / spec_hash(spec)

    def complete() -> Path | None:
        return root if read_manifest(root) == manifest(spec) else None

    def rebuild() -> Path:
        shutil.rmtree(root, ignore_errors=True)  # ours (named by the hash) but stale or damaged
        return generate(root, spec)

    build_once(root.with_name(f".{root.name}.lock"), complete, rebuild)
    return root
