"""iuf_refcode's incremental steps run as the reference's do: SGD at lr 1, no decay inside a step."""
from __future__ import annotations

import torch

from iufbench.config import overrides_for, resolve_method_config
from iufbench.methods import METHODS, MethodContext, TrainTask
from iufbench.protocols import load_protocol

CPU = torch.device("cpu")


def _optimiser_and_scheduler(name: str, step: int):
    config = resolve_method_config(name, load_protocol("mvtec_14_1", require_roots=False), schedule="paper",
                                   overrides=overrides_for(name, ["model.hidden_dim=32", "model.dim_feedforward=32",
                                                                  "model.nhead=2", "oasa.dim_feedforward=32",
                                                                  "oasa.nhead=2"]))
    cls = METHODS.get(name)
    method = cls(config, MethodContext.for_method(cls, (16, 8, 8), (128, 128), CPU, 0, progress=False))
    names = ("a", "b")[: step + 1]
    task = TrainTask(step, names[-1:], names[-1:], names, torch.zeros(2, 16, 8, 8), torch.full((2,), step))
    optimizer = method.make_optimizer(task)
    return config, optimizer, method.make_scheduler(optimizer, task)


def _lr_after(optimizer: torch.optim.Optimizer, scheduler, epochs: int) -> float:
    for _ in range(epochs):
        optimizer.step()
        scheduler.step()
    return optimizer.param_groups[0]["lr"]


def test_iuf_refcode_steps_use_sgd_at_lr_1_without_decay_under_the_paper_schedule() -> None:
    config, optimizer, scheduler = _optimiser_and_scheduler("iuf_refcode", step=1)
    assert config["train"]["step_optimizer"] == {"name": "sgd", "lr": 1.0, "lr_step_epochs": None}
    assert config["train"]["epochs"][1] == 2899  # the reference's zipper step on MVTec 14-1
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.param_groups[0]["momentum"] == 0.0
    assert _lr_after(optimizer, scheduler, config["train"]["epochs"][1]) == 1.0


def test_base_task_and_uniad_keep_the_step_lr_decay() -> None:
    _, optimizer, scheduler = _optimiser_and_scheduler("iuf_refcode", step=0)
    assert isinstance(optimizer, torch.optim.AdamW)
    assert abs(_lr_after(optimizer, scheduler, 800) - 1e-5) < 1e-12  # x0.1 after 800 epochs (the reference's base)
    _, optimizer, scheduler = _optimiser_and_scheduler("uniad", step=1)
    assert isinstance(optimizer, torch.optim.AdamW)
    assert abs(_lr_after(optimizer, scheduler, 800) - 1e-5) < 1e-12
