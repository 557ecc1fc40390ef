"""UniAD + replay: a bounded buffer of old objects' cached features, mixed into every later task.

The engine still hands it only the new task's data; after each task it keeps `replay.per_object`
training features of each new object (a seeded random choice), and trains each later task on the
new data plus the whole buffer. It therefore keeps old data: every table marks it, like `joint`,
and its state (`state_bytes`) includes the buffer.
"""
from __future__ import annotations

from typing import Any

import torch

from iufbench.errors import ConfigError
from iufbench.methods.base import METHODS, MethodContext, TrainTask
from iufbench.methods.uniad.method import UniADMethod


class ReplayBuffer:
    """At most `per_object` feature maps per object; objects are never dropped."""

    def __init__(self, per_object: int) -> None:
        if per_object < 1:
            raise ConfigError(f"replay.per_object must be >= 1, got {per_object}")
        self.per_object = per_object
        self.items: dict[str, torch.Tensor] = {}  # object -> [<= per_object, C, H, W] on the CPU
        self.labels: dict[str, int] = {}

    def add(self, obj: str, label: int, features: torch.Tensor, generator: torch.Generator) -> None:
        pick = torch.randperm(len(features), generator=generator)[: self.per_object]
        self.items[obj] = features[pick].detach().cpu().clone()
        self.labels[obj] = label

    def __len__(self) -> int:
        return sum(len(v) for v in self.items.values())

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        feats = torch.cat(list(self.items.values()))
        labels = torch.cat([torch.full((len(v),), self.labels[o]) for o, v in self.items.items()])
        return feats, labels


@METHODS.register("uniad_replay", help="UniAD + a bounded replay buffer of old objects' features (keeps old data)")
class ReplayUniAD(UniADMethod):
    keeps_old_data = True

    def __init__(self, config: dict[str, Any], ctx: MethodContext) -> None:
        super().__init__(config, ctx)
        self.buffer = ReplayBuffer(int(config["replay"]["per_object"]))

    def learn(self, task: TrainTask) -> dict[str, float]:
        mixed = task
        if len(self.buffer):
            old_x, old_y = self.buffer.tensors()
            mixed = TrainTask(step=task.step, new_objects=task.new_objects,
                              objects=tuple(self.buffer.items) + task.objects, label_space=task.label_space,
                              features=torch.cat([old_x, task.features.cpu()]),
                              labels=torch.cat([old_y, task.labels.cpu()]))
        logs = super().learn(mixed)
        generator = torch.Generator().manual_seed(self.ctx.seed * 1000 + task.step)
        for obj in task.new_objects:
            label = task.label_space.index(obj)
            self.buffer.add(obj, label, task.features[task.labels.cpu() == label], generator)
        return {**logs, "buffer": float(len(self.buffer))}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "buffer": self.buffer.items, "labels": self.buffer.labels}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.buffer.items, self.buffer.labels = dict(state["buffer"]), dict(state["labels"])
