"""Shared fixtures: offline settings, a private cache, a tiny synthetic dataset + protocol, and the
kill-and-resume helpers the engine and method tests share."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before anything imports timm: no hub retries
os.environ.setdefault("TQDM_DISABLE", "1")

import json  # noqa: E402
from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from iufbench.engine import run  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Converted weights and generated datasets go to a per-session folder, not ~/.cache."""
    path = tmp_path_factory.mktemp("iufbench-cache")
    os.environ["IUFBENCH_CACHE"] = str(path)
    return path


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three synthetic objects at 64 px, a handful of images each (MVTec layout)."""
    from iufbench.data.synth import SynthSpec, generate

    spec = SynthSpec(categories=("fabric", "screw", "wood"), image_size=64, n_train=8,
                     n_test_good=3, n_test_defect=3, seed=0)
    return generate(tmp_path_factory.mktemp("tiny") / "data", spec)


TINY_OVERRIDES = [
    "train.epochs=1", "train.batch_size=4",
    "model.hidden_dim=32", "model.dim_feedforward=64", "model.nhead=2",
    "model.num_encoder_layers=1", "model.num_decoder_layers=1", "model.neighbor_size=[1,1]",
]


def write_protocol(folder: Path, root: Path, tasks: list[list[str]], name: str = "tiny",
                   dataset: str = "mvtec", image_size: int = 64) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({
        "description": "tiny test protocol",
        "image_size": image_size,
        "backbone": {"name": "tf_efficientnet_lite0", "weights": "pypi"},
        "sources": {"data": {"dataset": dataset, "root": str(root)}},
        "tasks": tasks,
    }))
    return path


@pytest.fixture
def one_thread():
    """A run in this process with one thread, as each job of a sweep or of `run --jobs` has
    (one core each): their numbers then equal cell for cell."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_protocol(tmp_path: Path, tiny_root: Path) -> Path:
    return write_protocol(tmp_path, tiny_root, [["fabric", "screw"], ["wood"]])


def interrupt_in_step(proto, opts, method_cls, step: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run until `step` has trained (the steps before it checkpointed), then Ctrl-C, as a user would."""
    original = method_cls.after_task

    def interrupted(self, task):
        original(self, task)
        if task.step == step:
            raise KeyboardInterrupt

    monkeypatch.setattr(method_cls, "after_task", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(proto, opts)
    monkeypatch.setattr(method_cls, "after_task", original)


def run_then_kill_in_step_2(proto, make_opts, method_cls, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> tuple[pd.DataFrame, str]:
    """An uninterrupted run's matrix, and the status of a second run killed in step 2 (after
    step 1 was checkpointed) in tmp_path / 'cut', ready to be resumed."""
    full = run(proto, make_opts(tmp_path / "full")).read_matrix()
    interrupt_in_step(proto, make_opts(tmp_path / "cut"), method_cls, 2, monkeypatch)
    return full, json.loads((tmp_path / "cut" / "r" / "record.json").read_text())["status"]


def assert_same_matrix(a: pd.DataFrame, b: pd.DataFrame) -> None:
    key = ["method", "seed", "step", "object", "metric"]
    pd.testing.assert_frame_equal(a.sort_values(key).reset_index(drop=True), b.sort_values(key).reset_index(drop=True))
