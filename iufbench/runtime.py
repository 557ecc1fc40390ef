"""Run-time choices shared by `iufbench run` (the engine) and `iufbench bench`: the device, the
precision, the scoring batch, the seeds, and the facts about the machine a record keeps."""
from __future__ import annotations

import os
import platform
import random
import sys
from typing import Any

import numpy as np
import torch

from iufbench.errors import ConfigError


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda asked for, but torch sees no CUDA device; use --device cpu")
    if name not in {"cpu"} and not name.startswith("cuda"):
        raise ConfigError(f"unknown device '{name}'; use auto, cpu or cuda[:N]")
    return torch.device(name)


def pick_precision(name: str, device: torch.device) -> str:
    if name == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    if name not in {"fp32", "bf16"}:
        raise ConfigError(f"unknown precision '{name}'; use auto, fp32 or bf16")
    return name


def eval_batch_size(requested: int | None, device: torch.device) -> int:
    """Scoring batch: as asked, else 32 on the CPU and 256 on CUDA (GPUs want wide batches)."""
    return requested or (256 if device.type == "cuda" else 32)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def step_seed(seed: int, step: int) -> int:
    """Each step reseeds from (seed, step), so a resumed run draws the same random numbers."""
    return seed * 1_000 + step + 1


def host(device: torch.device) -> dict[str, Any]:
    """The machine a run or benchmark ran on (record.json `host`)."""
    info = {"platform": platform.platform(), "cpu_count": os.cpu_count(), "device": str(device),
            "torch_threads": torch.get_num_threads(), "argv": sys.argv}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info
