"""The shuffled mini-batch epoch loop shared by the methods that train with gradients.

One place owns the batching rule (drop the last partial batch, but never zero batches on tiny
objects), the single host sync per epoch, the NaN/inf check with its error message, and the
report of every epoch's mean loss and loss terms to the run (`MethodContext.on_epoch`).
"""
from __future__ import annotations

import math
from typing import Callable, Union

import torch
from tqdm.auto import tqdm

from iufbench.methods.base import MethodContext, TrainingError, TrainTask

# A step returns its detached total loss, or the total and its detached terms ({"mse": ..., "ce": ...}).
StepResult = Union[torch.Tensor, tuple[torch.Tensor, dict[str, torch.Tensor]]]


def run_epochs(task: TrainTask, n: int, epochs: int, batch_size: int,
               step: Callable[[torch.Tensor], StepResult], scheduler: torch.optim.lr_scheduler.LRScheduler,
               ctx: MethodContext, fix: str) -> float:
    """Call `step(batch_indices)` over `epochs` shuffled epochs of `n` items and return the last
    epoch's mean loss; `fix` ends the error raised when the loss is not finite. Each epoch's mean
    loss and mean terms go to `ctx.on_epoch`; the terms are summed on the device, so the epoch
    still waits for it once."""
    if n == 0:
        raise TrainingError(f"step {task.step} has no training images for {', '.join(task.new_objects)}")
    per_epoch = max(n // batch_size, 1)
    bar = tqdm(range(epochs), desc=f"step {task.step} train", disable=not ctx.progress, leave=False)
    epoch_loss = float("nan")
    for epoch in bar:
        order = torch.randperm(n, device=ctx.device)
        total = torch.zeros((), device=ctx.device)
        sums: dict[str, torch.Tensor] = {}
        counts: dict[str, int] = {}
        for b in range(per_epoch):
            result = step(order[b * batch_size : (b + 1) * batch_size])
            loss, terms = result if isinstance(result, tuple) else (result, {})
            total += loss
            for name, value in terms.items():
                sums[name] = sums[name] + value.float() if name in sums else value.float()
                counts[name] = counts.get(name, 0) + 1
        scheduler.step()
        values = torch.stack([total.float(), *sums.values()]).tolist()  # the only host sync of an epoch
        epoch_loss = values[0] / per_epoch
        if not math.isfinite(epoch_loss):
            raise TrainingError(f"training loss became {epoch_loss} in epoch {epoch + 1}, step {task.step} "
                                f"({', '.join(task.new_objects)}); {fix}")
        bar.set_postfix(loss=f"{epoch_loss:.4f}")
        if ctx.on_epoch is not None:
            means = {name: v / counts[name] for name, v in zip(sums, values[1:])}
            ctx.on_epoch(task.step, epoch, epochs, {"loss": epoch_loss, **means})
    return epoch_loss


def descend(loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> torch.Tensor:
    """One plain gradient step on `loss`; returns it detached, as `run_epochs`' step must."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()
