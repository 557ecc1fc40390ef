"""`pytest benchmarks/ --benchmark-only`: the side-by-side scripts' arms under pytest-benchmark. Not part
of the default `pytest` run (pyproject's testpaths is tests/ only): these take minutes."""
from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before anything imports timm: no hub retries
os.environ.setdefault("TQDM_DISABLE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the scripts import `timing` from this folder
