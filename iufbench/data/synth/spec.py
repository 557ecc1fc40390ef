"""What determines a synthetic dataset (`SynthSpec`) and the manifest `synth.json` that names it.

Why apart from the writer: the spec is read by protocol validation and hashed for the cache,
without writing anything; the manifest is the one record of which generator and spec made a folder.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from iufbench.data.synth.sample import CATALOGUE, CATEGORIES
from iufbench.errors import ConfigError

# Bump whenever a change alters any pixel: the cache key of `ensure` includes it.
GENERATOR_VERSION = 1
MANIFEST = "synth.json"


@dataclass(frozen=True)
class SynthSpec:
    """Everything that determines a synthetic dataset; equal specs give identical files."""

    categories: tuple[str, ...] = CATEGORIES
    image_size: int = 128  # square images, pixels
    n_train: int = 40  # normal training images per category
    n_test_good: int = 12
    n_test_defect: int = 12  # spread round-robin over the category's defect types
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "categories", tuple(self.categories))
        unknown = [c for c in self.categories if c not in CATALOGUE]
        if unknown:
            raise ConfigError(f"unknown synthetic categories {unknown}; valid: {', '.join(CATEGORIES)}")
        if not self.categories or len(set(self.categories)) != len(self.categories):
            raise ConfigError(f"synthetic categories must be distinct and not empty: {list(self.categories)}")
        if not 32 <= self.image_size <= 1024:
            raise ConfigError(f"synthetic image_size must be 32..1024 pixels, got {self.image_size}")
        if self.n_train < 1 or self.n_test_good < 0 or self.n_test_defect < 0:
            raise ConfigError("synthetic n_train must be >= 1 and n_test_good, n_test_defect >= 0")
        if self.seed < 0:
            raise ConfigError(f"synthetic seed must be >= 0, got {self.seed}")


def manifest(spec: SynthSpec) -> dict:
    """What `synth.json` holds: generator version, spec and defect types (JSON types only)."""
    return json.loads(json.dumps({
        "generator": "iufbench.data.synth",
        "version": GENERATOR_VERSION,
        "spec": asdict(spec),
        "defects": {c: CATALOGUE[c][1] for c in spec.categories},
    }))


def spec_hash(spec: SynthSpec) -> str:
    """Short content hash of the manifest: the cache folder name used by `ensure`."""
    blob = json.dumps(manifest(spec), sort_keys=True).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:12]


def read_manifest(root: Path) -> dict | None:
    """The manifest of the dataset at `root`; None when there is none or it is unreadable."""
    try:
        return json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
