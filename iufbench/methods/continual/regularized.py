"""UniAD + EWC / SI / MAS (the paper's Table 1 baselines) through avalanche-lib's plugins.

The training loop, model and scoring are UniAD's; a plugin adds its penalty to the loss before
the backward pass (the `add_penalty` hook) and computes its importances after each task (see
`avalanche_bridge`). The plugin's importances and anchor weights, as tensors, are part of the
method's state, so checkpoints, resume and `state_bytes` include them.
"""
from __future__ import annotations

from typing import Any

import torch

from iufbench.errors import ConfigError
from iufbench.methods.base import METHODS, MethodContext, TrainTask
from iufbench.methods.uniad.method import UniADMethod


def make_plugin(config: dict[str, Any]) -> Any:
    """The avalanche plugin named in `regularizer.name`, with the config's strengths."""
    from iufbench.methods.continual.avalanche_bridge import CopyingSI, EWCPlugin, MASPlugin  # noqa: PLC0415

    reg = config["regularizer"]
    if reg["name"] == "ewc":
        # online: one Fisher matrix that decays, instead of one per task that grows with the stream
        return EWCPlugin(reg["lambda"], mode="online", decay_factor=reg["decay"])
    if reg["name"] == "si":
        return CopyingSI(reg["lambda"], eps=reg["eps"])
    if reg["name"] == "mas":
        return MASPlugin(lambda_reg=reg["lambda"], alpha=reg["alpha"])
    raise ConfigError(f"regularizer.name must be ewc, si or mas, got '{reg['name']}'")


class RegularizedUniAD(UniADMethod):
    """UniAD whose loss carries an avalanche regulariser's penalty."""

    def __init__(self, config: dict[str, Any], ctx: MethodContext) -> None:
        super().__init__(config, ctx)
        from iufbench.methods.continual.avalanche_bridge import StrategyView  # noqa: PLC0415

        self.plugin = make_plugin(config)
        self.view = StrategyView(self.model, ctx.device)

    def make_optimizer(self, task: TrainTask) -> torch.optim.Optimizer:
        optimizer = super().make_optimizer(task)
        self.view.start_task(task.step, task.features.to(self.ctx.device), optimizer,
                             int(self.config["train"]["batch_size"][task.step]))
        self.plugin.before_training_exp(self.view)
        return optimizer

    def add_penalty(self, loss: torch.Tensor, features: torch.Tensor,
                    rec: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        # before the update, as in avalanche's loop (SI snapshots the weights; the forward pass
        # that made `loss` has not changed them)
        self.plugin.before_training_iteration(self.view)
        self.view.loss = loss.clone()  # the plugins add their penalty in place
        self.plugin.before_backward(self.view)
        penalty = self.view.loss - loss
        return self.view.loss, {"penalty": penalty.detach()}

    def after_update(self) -> None:
        self.plugin.after_training_iteration(self.view)

    def after_task(self, task: TrainTask) -> None:
        self.plugin.after_training_exp(self.view)
        self.view.experience = None  # do not keep the task's features in the state

    def penalty(self) -> torch.Tensor:
        """The regulariser's current penalty (0 at the anchor weights)."""
        self.view.loss = torch.ones((), device=self.ctx.device)  # MAS refuses a zero (falsy) loss
        self.plugin.before_backward(self.view)
        return self.view.loss - 1.0

    def state_dict(self) -> dict[str, Any]:
        from iufbench.methods.continual.avalanche_bridge import plugin_state  # noqa: PLC0415

        return {**super().state_dict(), "plugin": plugin_state(self.plugin)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        from iufbench.methods.continual.avalanche_bridge import load_plugin_state  # noqa: PLC0415

        super().load_state_dict(state)
        load_plugin_state(self.plugin, state["plugin"], self.ctx.device)


for _name, _help in (
    ("uniad_ewc", "UniAD + EWC (avalanche EWCPlugin, online Fisher)"),
    ("uniad_si", "UniAD + Synaptic Intelligence (avalanche plugin, with its CPU no-op fixed)"),
    ("uniad_mas", "UniAD + Memory Aware Synapses (avalanche MASPlugin)"),
):
    METHODS.register(_name, help=_help)(RegularizedUniAD)
