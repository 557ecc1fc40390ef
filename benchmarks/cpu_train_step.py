"""CPU training step of the paper-size UniAD (272 x 14 x 14 features, batch 8): our CPU attention and
dropout against stock PyTorch ops (`F.dropout`, unfused masked attention), interleaved in one process.

    .venv/bin/python benchmarks/cpu_train_step.py [--batch 8] [--repeats 7]

Prints the median images/s of each arm and their ratio.
"""
from __future__ import annotations

import argparse
from typing import Callable

import torch
import torch.nn.functional as F

from iufbench.config import resolve_method_config
from iufbench.methods import METHODS, MethodContext, TrainTask
from iufbench.methods.uniad import torch_model
from iufbench.protocols import load_protocol
from timing import interleave

OURS = {"dropout": torch_model.dropout, "attention": torch_model.attention}


def stock_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    return F.dropout(x, p, training)


def stock_attention(q, k, v, bias, p, training):  # noqa: ANN001, ANN201 - same signature as ours
    scores = q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5
    if bias is not None:
        scores = scores + bias
    return F.dropout(scores.softmax(dim=-1), p, training) @ v


STOCK = {"dropout": stock_dropout, "attention": stock_attention}


def arms(batch: int = 8) -> dict[str, Callable[[], None]]:
    """One training step with stock ops and one with ours, on the same method and batch; each arm
    installs its ops in `torch_model` before stepping (ours are put back when the arms are done with
    `restore`)."""
    torch.manual_seed(0)
    protocol = load_protocol("mvtec_14_1", require_roots=False)
    config = resolve_method_config("uniad", protocol, "paper", ["train.epochs=1", f"train.batch_size={batch}"])
    cls = METHODS.get("uniad")
    method = cls(config, MethodContext.for_method(cls, (272, 14, 14), (224, 224), torch.device("cpu"), 0))
    x, y = torch.randn(batch, 272, 14, 14), torch.zeros(batch, dtype=torch.long)
    optimizer = method.make_optimizer(TrainTask(0, ("a",), ("a",), ("a",), x, y))
    method.model.train()

    def arm(impl: dict[str, Callable]) -> Callable[[], None]:
        def step() -> None:
            for name, fn in impl.items():
                setattr(torch_model, name, fn)
            method.train_step(x, y, optimizer)
        return step

    return {"stock": arm(STOCK), "ours": arm(OURS)}


def restore() -> None:
    for name, fn in OURS.items():
        setattr(torch_model, name, fn)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    steps = arms(args.batch)
    for step in steps.values():  # warm-up
        step()
    timed = interleave(steps, args.repeats)
    restore()
    speed = {arm: args.batch / seconds for arm, (seconds, _) in timed.items()}
    print(f"batch {args.batch}, median of {args.repeats} steps each, interleaved")
    print(f"stock ops (F.dropout, unfused attention): {speed['stock']:.2f} img/s")
    print(f"iufbench CPU path:                        {speed['ours']:.2f} img/s")
    print(f"speed-up: {speed['ours'] / speed['stock']:.2f}x")


if __name__ == "__main__":
    main()
