"""The one interface between the engine and a method.

A method is told about one task at a time and is asked to score features; nothing else. The
engine owns the data and decides what a method may see: `TrainTask` holds only the current
task's objects unless the method class is registered with `sees_old_data = True` (joint, replay).
Anything a method needs from an earlier task (old weights, statistics) lives in its own state.
"""
from __future__ import annotations

import io
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import torch

from iufbench.errors import IufbenchError
from iufbench.features import BackboneSpec
from iufbench.registry import Registry


class TrainingError(IufbenchError):
    """Training diverged (NaN/inf loss) or cannot start with the data it was given."""


@dataclass(frozen=True)
class MethodContext:
    """What a method may know about the run before it sees any task."""

    feature_channels: int
    grid: tuple[int, int]  # feature map size (H, W)
    image_size: tuple[int, int]  # evaluation resolution (H, W)
    device: torch.device
    seed: int
    progress: bool = True
    precision: str = "fp32"  # fp32, or bf16 (autocast; the default on CUDA)
    compile: bool = False  # torch.compile the whole training step (CUDA graphs on CUDA)
    # called after every training epoch with (step, epoch, epochs, {"loss": mean, term: mean, ...});
    # the engine records it (losses.csv) and shows it (progress); None outside a run
    on_epoch: Callable[[int, int, int, dict[str, float]], None] | None = None
    backbone: BackboneSpec | None = None  # the protocol's backbone, for methods that fine-tune a copy of it

    @classmethod
    def for_method(cls, method_cls: type[Method], feature_shape: tuple[int, int, int], image_size: tuple[int, int],
                   device: torch.device, seed: int, **options: Any) -> MethodContext:
        """The context of one method: its input's channels and grid follow what it reads (`Method.inputs`:
        the backbone's feature map, or images at `image_size`); `options` are the fields with defaults."""
        channels, h, w = method_cls.input_shape(feature_shape, image_size)
        return cls(feature_channels=channels, grid=(h, w), image_size=image_size, device=device, seed=seed, **options)


@dataclass(frozen=True)
class TrainTask:
    """The training data of one step, as the engine allows the method to see it."""

    step: int
    new_objects: tuple[str, ...]  # objects introduced at this step
    objects: tuple[str, ...]  # objects whose images are in `features` (== new_objects unless joint/replay)
    label_space: tuple[str, ...]  # every object learned so far, in learning order (grows; for object heads)
    features: torch.Tensor  # [N, C, H, W] cached backbone features (uint8 images if `Method.inputs` says so)
    labels: torch.Tensor  # [N] index into label_space


@dataclass(frozen=True)
class Scores:
    """Per-image anomaly scores and per-pixel anomaly maps at the evaluation resolution, on the CPU or
    left on the method's device (the engine then computes the metrics there)."""

    image: torch.Tensor  # [B]
    maps: torch.Tensor | None  # [B, H, W], None for image-level-only methods


class Method(ABC):
    """Base class; subclasses register with `METHODS.register(name)`."""

    sees_old_data: ClassVar[bool] = False  # the engine hands it every seen object's data (joint)
    keeps_old_data: ClassVar[bool] = False  # it stores old objects' data itself (replay buffer)
    pixel_output: ClassVar[bool] = True  # False: image scores only; pixel cells are n/a, never 0
    inputs: ClassVar[str] = "features"  # or "images": uint8 [N, 3, H, W] at the protocol's image size

    def __init__(self, config: dict[str, Any], ctx: MethodContext) -> None:
        self.config, self.ctx = config, ctx

    @classmethod
    def input_shape(cls, feature_shape: tuple[int, int, int], image_size: tuple[int, int]) -> tuple[int, int, int]:
        """[C, H, W] of one input: the cached feature map, or an RGB image at the protocol's size."""
        return (3, *image_size) if cls.inputs == "images" else feature_shape

    @classmethod
    def components(cls, config: dict[str, Any]) -> dict[str, bool] | None:
        """The IUF components (Table 2's switches) this config keeps; None: not an IUF variant."""
        return None

    @classmethod
    def uses_old_data(cls) -> bool:
        """Not a fair incremental result: every table marks it and never ranks it best."""
        return cls.sees_old_data or cls.keeps_old_data

    @abstractmethod
    def learn(self, task: TrainTask) -> dict[str, float]:
        """Train on one task; return a few numbers worth logging (e.g. final loss)."""

    @abstractmethod
    def score(self, features: torch.Tensor) -> Scores:
        """Score a batch of test features; no object label is given (no task oracle)."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue after this step (checkpoint/resume)."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def state_bytes(self) -> int:
        """Bytes of state the method keeps between steps (weights, banks, statistics)."""
        buffer = io.BytesIO()
        torch.save(self.state_dict(), buffer)
        return buffer.tell()


METHODS: Registry[type[Method]] = Registry("method")
