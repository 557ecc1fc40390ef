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
from collections import defaultdict
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


# What each plugin learns while it trains (anchors, importances, SI's running sums); the rest of a
# plugin (strengths, modes) comes from the method's config when it is built.
LEARNED: dict[type, tuple[str, ...]] = {EWCPlugin: ("saved_params", "importances"),
                                        MASPlugin: ("params", "importance"),
                                        SynapticIntelligencePlugin: ("ewc_data", "syn_data")}
PARAM = "param_data"  # marks a ParamData written as plain data: {PARAM: name, "device": ..., "data": tensor}


def _learned(plugin: Any) -> tuple[str, ...]:
    return next(names for cls, names in LEARNED.items() if isinstance(plugin, cls))


def _plain(node: Any) -> Any:
    if isinstance(node, ParamData):
        return {PARAM: node.name, "device": str(node.device), "data": node.data}
    if isinstance(node, dict):
        return {k: _plain(v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [_plain(v) for v in node]
    return node


def plugin_state(plugin: Any) -> dict[str, Any]:
    """A plugin's learned state as tensors and plain data (a checkpoint loads it with
    `weights_only=True`, and it does not depend on avalanche's class layout)."""
    return {name: _plain(getattr(plugin, name)) for name in _learned(plugin)}


def _rebuilt(node: Any, device: torch.device) -> Any:
    if isinstance(node, dict) and PARAM in node:
        # data kept on a GPU (EWC, MAS) goes to this run's device; data the plugin keeps on the CPU by
        # design (SI's snapshots) stays there
        where = device if torch.device(node["device"]).type != "cpu" else torch.device("cpu")
        return ParamData(node[PARAM], init_tensor=node["data"].to(where), device=where)
    if isinstance(node, dict):
        return {k: _rebuilt(v, device) for k, v in node.items()}
    if isinstance(node, list):
        return [_rebuilt(v, device) for v in node]
    return node


def load_plugin_state(plugin: Any, state: dict[str, Any], device: torch.device) -> None:
    """The inverse of `plugin_state` on a freshly built plugin: each attribute keeps its container
    type (EWC's defaultdicts, SI's tuple)."""
    for name in _learned(plugin):
        fresh, value = getattr(plugin, name), _rebuilt(state[name], device)
        if isinstance(fresh, defaultdict):
            value = defaultdict(fresh.default_factory, value)
        elif isinstance(fresh, tuple):
            value = tuple(value)
        setattr(plugin, name, value)


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
