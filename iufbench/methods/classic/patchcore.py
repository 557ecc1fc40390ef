"""PatchCore (Roth et al., CVPR 2022) through anomalib's torch model, in two incremental forms.

`patchcore` refits its memory bank on each step's new objects only, as the IUF paper runs it
(Table 1): old objects' patches leave the bank, so it forgets. `patchcore_cumulative` is the
memory-bank alternative the paper frames in its Fig. 1 D: one bank that keeps every object's
coreset and is re-subsampled to a fixed total budget, so memory stops growing once the budget is
reached. It stores old objects' patch features, so tables mark it like replay.
"""
from __future__ import annotations

from typing import Any

import torch

from iufbench.errors import ConfigError
from iufbench.methods.base import METHODS, MethodContext, TrainTask
from iufbench.methods.classic.on_features import AnomalibOnFeatures


def coreset(bank: torch.Tensor, size: int) -> torch.Tensor:
    """k-center greedy subsample of `bank` to `size` rows (all of it when it is already small)."""
    from iufbench.methods.classic.anomalib_bridge import FastKCenterGreedy  # noqa: PLC0415

    if size >= len(bank):
        return bank
    return FastKCenterGreedy(bank, size).sample_coreset()


@METHODS.register("patchcore", help="PatchCore (anomalib), memory bank refit on each step's new objects only")
class PatchCore(AnomalibOnFeatures):
    section = "patchcore"

    def __init__(self, config: dict[str, Any], ctx: MethodContext) -> None:
        super().__init__(config, ctx)
        from iufbench.methods.classic.anomalib_bridge import patchcore_model  # noqa: PLC0415

        cfg = config["patchcore"]
        if not 0.0 < cfg["coreset_ratio"] <= 1.0:
            raise ConfigError(f"patchcore.coreset_ratio must lie in (0, 1], got {cfg['coreset_ratio']}")
        if int(cfg["budget"]) < 1:
            raise ConfigError(f"patchcore.budget must be a positive number of bank rows, got {cfg['budget']}")
        self.model = patchcore_model(cfg["num_neighbors"], ctx.image_size, cfg["blur_sigma"]).to(ctx.device)

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """Patch embeddings [N*h*w, C] (anomalib's pooling and layout)."""
        self.collect(features)
        out = torch.vstack(self.model.embedding_store)
        self.model.embedding_store.clear()
        return out

    def new_bank(self, task: TrainTask) -> torch.Tensor:
        patches = self.embed(task.features)
        return coreset(patches, max(1, int(len(patches) * self.config["patchcore"]["coreset_ratio"])))

    def learn(self, task: TrainTask) -> dict[str, float]:
        self.model.memory_bank = self.new_bank(task)
        return {"bank_size": float(len(self.model.memory_bank))}

    def state_dict(self) -> dict[str, Any]:
        return {"memory_bank": self.model.memory_bank.cpu()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.memory_bank = state["memory_bank"].to(self.ctx.device)


@METHODS.register("patchcore_cumulative",
                  help="PatchCore with one bank for every object, re-subsampled to a fixed budget (keeps old data)")
class CumulativePatchCore(PatchCore):
    keeps_old_data = True

    def learn(self, task: TrainTask) -> dict[str, float]:
        bank = torch.cat([self.model.memory_bank.to(self.ctx.device).reshape(-1, self.ctx.feature_channels),
                          self.new_bank(task)])
        self.model.memory_bank = coreset(bank, int(self.config["patchcore"]["budget"]))
        return {"bank_size": float(len(self.model.memory_bank))}
