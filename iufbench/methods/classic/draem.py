"""DRAEM (Zavrtanik et al., ICCV 2021) through anomalib's torch model, fine-tuned step by step.

DRAEM learns from pixels, not backbone features: a reconstructive network repairs synthetic
Perlin-noise anomalies and a discriminative network segments them. Each incremental step keeps
training the same networks on the new objects only (the IUF paper's Table 1 setting), so it forgets.
Offline, the anomaly textures come from the Perlin noise itself (anomalib's generator without a
texture folder); `draem.textures` may point at the DTD folder to use DRAEM's original sources.
The networks and their inputs are kept channels-last: on the CPU oneDNN then convolves them
directly instead of reordering every NCHW tensor around every convolution (faster training and
scoring at the demo's 128 px: docs/performance.md, benchmarks/channels_last.py).
"""
from __future__ import annotations

from typing import Any

import torch

from iufbench.methods.base import METHODS, Method, MethodContext, Scores, TrainTask
from iufbench.methods.epochs import descend, run_epochs


@METHODS.register("draem", help="DRAEM (anomalib), trained on images, fine-tuned on each step's new objects")
class Draem(Method):
    inputs = "images"

    def __init__(self, config: dict[str, Any], ctx: MethodContext) -> None:
        super().__init__(config, ctx)
        from iufbench.methods.classic.anomalib_bridge import DraemLoss, PerlinAnomalyGenerator, draem_model  # noqa: PLC0415

        cfg = config["draem"]
        self.model = draem_model(int(cfg["reconstructive_width"]), int(cfg["discriminative_width"])).to(
            ctx.device, memory_format=torch.channels_last)
        self.augmenter = PerlinAnomalyGenerator(anomaly_source_path=cfg.get("textures"),
                                                blend_factor=tuple(cfg["beta"]))
        self.criterion = DraemLoss().to(ctx.device)

    def learn(self, task: TrainTask) -> dict[str, float]:
        train = self.config["train"]
        epochs = int(train["epochs"][task.step])
        images = task.features.to(self.ctx.device)
        optimizer = torch.optim.Adam(self.model.parameters(), lr=train["lr"])
        # DRAEM's schedule: lr x0.1 at 400 and 600 of 700 epochs, kept as fractions of the step's epochs
        milestones = [max(1, int(epochs * f)) for f in train["lr_milestones"]]
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=0.1)
        self.model.train()

        def step(idx: torch.Tensor) -> torch.Tensor:
            clean = images[idx].float().div_(255.0)
            augmented, mask = self.augmenter(clean)
            reconstruction, prediction = self.model(augmented.contiguous(memory_format=torch.channels_last))
            return descend(self.criterion(clean, reconstruction, mask, prediction), optimizer)

        loss = run_epochs(task, len(images), epochs, int(train["batch_size"][task.step]), step, scheduler,
                          self.ctx, "lower train.lr or check the images")
        return {"epochs": float(epochs), "loss": loss}

    @torch.no_grad()
    def score(self, images: torch.Tensor) -> Scores:
        self.model.eval()
        out = self.model(images.to(self.ctx.device).float().div_(255.0).contiguous(memory_format=torch.channels_last))
        return Scores(image=out.pred_score.float().cpu(), maps=out.anomaly_map.float().cpu())

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
