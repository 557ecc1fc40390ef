"""The shuffled mini-batch epoch loop shared by the methods that train with gradients.

One place owns the batching rule (drop the last partial batch, but never zero batches on tiny
objects), the single host sync per epoch, and the NaN/inf check with its error message.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from tqdm.auto import tqdm

from iufbench.methods.base import MethodContext, TrainingError, TrainTask


def run_epochs(task: TrainTask, n: int, epochs: int, batch_size: int,
               step: Callable[[torch.Tensor], torch.Tensor], scheduler: torch.optim.lr_scheduler.LRScheduler,
               ctx: MethodContext, fix: str) -> float:
    """Call `step(batch_indices) -> detached loss` over `epochs` shuffled epochs of `n` items and
    return the last epoch's mean loss; `fix` ends the error raised when the loss is not finite."""
    if n == 0:
        raise TrainingError(f"step {task.step} has no training images for {', '.join(task.new_objects)}")
    per_epoch = max(n // batch_size, 1)
    bar = tqdm(range(epochs), desc=f"step {task.step} train", disable=not ctx.progress, leave=False)
    epoch_loss = float("nan")
    for epoch in bar:
        order = torch.randperm(n, device=ctx.device)
        total = torch.zeros((), device=ctx.device)
        for b in range(per_epoch):
            total += step(order[b * batch_size : (b + 1) * batch_size])
        scheduler.step()
        epoch_loss = total.item() / per_epoch  # the only host sync of an epoch
        if not math.isfinite(epoch_loss):
            raise TrainingError(f"training loss became {epoch_loss} in epoch {epoch + 1}, step {task.step} "
                                f"({', '.join(task.new_objects)}); {fix}")
        bar.set_postfix(loss=f"{epoch_loss:.4f}")
    return epoch_loss
