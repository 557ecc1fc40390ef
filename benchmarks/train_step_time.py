"""Median training-step time of one method at the demo's shapes (`fast` model, batch 16, Lite0
features 192 x 8 x 8), for whichever iufbench is importable. Compare two commits by alternating:

    git worktree add /tmp/old <commit>
    for i in 1 2 3; do
      PYTHONPATH=/tmp/old .venv/bin/python benchmarks/train_step_time.py uniad
      PYTHONPATH=.        .venv/bin/python benchmarks/train_step_time.py uniad
    done
"""
from __future__ import annotations

import os
import statistics
import sys
import time
from typing import Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from iufbench.config import resolve_method_config  # noqa: E402
from iufbench.methods import METHODS, MethodContext, TrainTask  # noqa: E402
from iufbench.protocols import load_protocol  # noqa: E402


def ten_steps(name: str) -> Callable[[], None]:
    """Ten training steps of `name` over the same 160 random samples, after five warm-up steps."""
    config = resolve_method_config(name, load_protocol("demo"), "fast", [])
    cls = METHODS.get(name)
    method = cls(config, MethodContext.for_method(cls, (192, 8, 8), (128, 128), torch.device("cpu"), 0, progress=False))
    torch.manual_seed(0)
    x, y = torch.randn(160, 192, 8, 8), torch.randint(0, 5, (160,))
    task = TrainTask(0, tuple("abcde"), tuple("abcde"), tuple("abcde"), x, y)
    method.before_task(task)
    optimizer = method.make_optimizer(task)
    method.model.train()

    def step(i: int) -> None:
        batch = slice(16 * (i % 10), 16 * (i % 10) + 16)
        if hasattr(method, "train_step"):
            method.train_step(x[batch], y[batch], optimizer)
        else:  # commits before the fast path had no train_step: the same update, spelled out
            loss, _ = method.loss(x[batch], y[batch])
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(method.parameters_to_train(), config["train"]["clip_norm"])
            optimizer.step()

    for i in range(5):
        step(i)

    def run() -> None:
        for i in range(10):
            step(i)

    return run


def main(name: str) -> None:
    run = ten_steps(name)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        run()
        times.append((time.perf_counter() - t0) / 10)
    print(f"{name} {statistics.median(times) * 1000:.2f} ms/step")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "uniad")
