"""Driving avalanche-lib's regularisation plugins (EWC, SI, MAS) from UniAD's own training loop.

The plugins only read a handful of strategy attributes, so `StrategyView` carries exactly those and
the method calls the plugin hooks in avalanche's order. The loss is label-free: each item is
`(features, features, 0)` (input, target = input, task label 0) and the criterion is MSE, so the
importance passes (`criterion(model(x), y)`, MAS's output norm) see the reconstruction model,
which returns one tensor. avalanche is imported here only, when such a method is built.

Two defects of avalanche 0.6.0 are fixed in `CopyingSI` (tests/test_continual.py shows both):
- SI stores `param.detach().cpu().flatten()`, on the CPU a *view* of the live weights, so the
  weight change of an update, and with it the path integral and the importance, is exactly 0;
- SI's importance is clipped from above only and can go negative (a negative penalty rewards
  moving away from the old weights); it is clamped at 0 here.
"""
from __future__ import annotations

import warnings
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

with warnings.catch_warnings():  # avalanche imports qpsolvers, which warns that it has no QP solver
    warnings.simplefilter("ignore", UserWarning)
    from avalanche.training.plugins import EWCPlugin, MASPlugin, SynapticIntelligencePlugin  # ~4 s
    from avalanche.training.utils import ParamData


class ReconstructionItems(Dataset):
    """Cached features as avalanche items: (x, x, task label 0)."""

    def __init__(self, features: torch.Tensor) -> None:
        self.features = features

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        return self.features[i], self.features[i], 0


class StrategyView(SimpleNamespace):
    """The strategy attributes the plugins read: model, optimizer, _criterion, device, train_mb_size,
    clock.train_exp_counter, experience.dataset and the running `loss`."""

    def __init__(self, model: nn.Module, device: torch.device) -> None:
        super().__init__(model=model, optimizer=None, _criterion=nn.MSELoss(), device=device,
                         train_mb_size=None, clock=SimpleNamespace(train_exp_counter=0),
                         experience=None, loss=None)

    def start_task(self, step: int, features: torch.Tensor, optimizer: torch.optim.Optimizer,
                   batch_size: int) -> None:
        self.clock.train_exp_counter = step
        self.experience = SimpleNamespace(dataset=ReconstructionItems(features))
        self.optimizer = optimizer
        self.train_mb_size = batch_size


def param_data(plugin: Any) -> list[ParamData]:
    """Every ParamData (anchor weights, importances, snapshots) a plugin holds, however nested."""
    found, stack = [], list(vars(plugin).values())
    while stack:
        node = stack.pop()
        if isinstance(node, ParamData):
            found.append(node)
        elif isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, (list, tuple)):
            stack.extend(node)
    return found


def plugin_to_device(plugin: Any, device: torch.device) -> None:
    """After `torch.load(map_location="cpu")` a plugin's anchors and importances sit on the CPU while
    each ParamData still names the device it was saved from. Data kept on a GPU (EWC, MAS) goes to
    this run's device; data the plugin keeps on the CPU by design (SI's snapshots) stays there."""
    for param in param_data(plugin):
        param.device = device if param.device.type != "cpu" else torch.device("cpu")
        param.data = param.data.to(param.device)


def _copy_weights(model: nn.Module, target: dict[str, Any], excluded: set[str]) -> None:
    for name, param in SynapticIntelligencePlugin.allowed_parameters(model, excluded):
        target[name].data = param.detach().cpu().flatten().clone()


class CopyingSI(SynapticIntelligencePlugin):
    """Synaptic Intelligence with weight snapshots that are copies and importance >= 0."""

    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        super().before_training_exp(strategy, **kwargs)
        _copy_weights(strategy.model, self.ewc_data[0], self.excluded_parameters)  # task-start weights

    @torch.no_grad()
    def before_training_iteration(self, strategy: Any, **kwargs: Any) -> None:
        _copy_weights(strategy.model, self.syn_data["old_theta"], self.excluded_parameters)

    @torch.no_grad()
    def after_training_iteration(self, strategy: Any, **kwargs: Any) -> None:
        syn = self.syn_data
        _copy_weights(strategy.model, syn["new_theta"], self.excluded_parameters)
        SynapticIntelligencePlugin.extract_grad(strategy.model, syn["grad"], self.excluded_parameters)
        for name in syn["trajectory"]:
            syn["trajectory"][name].data += syn["grad"][name].data * (
                syn["new_theta"][name].data - syn["old_theta"][name].data)

    @torch.no_grad()
    def after_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        super().after_training_exp(strategy, **kwargs)
        for importance in self.ewc_data[1].values():
            importance.data.clamp_(min=0.0)
