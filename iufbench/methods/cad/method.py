"""CAD's self-supervised baselines (Li et al., ACM MM 2022, "Towards continual adaptation in
industrial anomaly detection"): CutPaste and PANDA trained continually, one backbone fine-tuned task
after task on the current task's images only, image scores from a Gaussian density of the
L2-normalised embeddings.

- `cad_cutpaste`: a linear head on the embedding learns normal vs CutPaste-augmented images
  (cross-entropy), as CAD's `methods/cutpaste.py`;
- `cad_panda`: the embeddings are pulled towards the task's feature centre, computed with the
  network as the task starts (PANDA's compactness loss), as CAD's `methods/panda.py`. PANDA's paper
  limits feature collapse with early stopping or EWC; CAD's code uses neither, only a fixed number
  of epochs per task, and so do we.

After a task's training the task's clean training images are embedded once and their Gaussian is
kept with `TaskGaussians` (cad_dne's statistics): `cad.density: tasks` scores against the mixture of
every task's Gaussian (cad_dne's rule), `last` against the newest task's Gaussian only (what CAD's
code does for these two baselines). Optimiser as CAD: Adam (eps 4e-4, weight decay 3e-5) with a
cosine decay over each task's epochs. Differences from CAD are listed in docs/methods/baselines.md.
"""
from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from iufbench.errors import ConfigError
from iufbench.methods.base import METHODS, Method, MethodContext, Scores, TrainTask
from iufbench.methods.cad.augment import DefectSpec, synthetic_defects
from iufbench.methods.cad.torch_model import Encoder
from iufbench.methods.classic.dne import TaskGaussians
from iufbench.methods.epochs import descend, run_epochs

DENSITIES = ("tasks", "last")
EMBED_BATCH = 64  # images per no-grad forward when embedding a task's training images


class CadSelfSupervised(Method):
    """The shared loop; a subclass gives the loss of one batch of images."""

    inputs = "images"
    pixel_output = False
    classes: ClassVar[int] = 0  # size of the classifier head (0: none)

    def __init__(self, config: dict[str, Any], ctx: MethodContext) -> None:
        super().__init__(config, ctx)
        if ctx.backbone is None:
            raise ConfigError(f"{type(self).__name__} fine-tunes the protocol's backbone; the run gave none")
        if config["cad"]["density"] not in DENSITIES:
            raise ConfigError(f"cad.density must be one of {', '.join(DENSITIES)}; got {config['cad']['density']!r}")
        self.model = Encoder(ctx.backbone, self.classes).to(ctx.device)
        self.gaussians = TaskGaussians()

    @abstractmethod
    def loss(self, images: torch.Tensor) -> torch.Tensor:
        """Training loss of a batch of float images [B, 3, H, W] in [0, 1]."""

    def before_training(self, images: torch.Tensor) -> None:
        """Called with the task's uint8 images before its first epoch (PANDA fixes its centre here)."""

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Embeddings of uint8 images, in eval mode, on the method's device."""
        self.model.eval()
        return torch.cat([self.model.embed(images[i : i + EMBED_BATCH].to(self.ctx.device).float().div_(255.0))
                          for i in range(0, len(images), EMBED_BATCH)])

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """L2-normalised embeddings on the CPU: what the Gaussians see."""
        return F.normalize(self.features(images), dim=1).cpu()

    def learn(self, task: TrainTask) -> dict[str, float]:
        train = self.config["train"]
        epochs = int(train["epochs"][task.step])
        images = task.features.to(self.ctx.device)
        self.before_training(images)
        optimizer = torch.optim.Adam(self.model.parameters(), lr=train["lr"], eps=train["eps"],
                                     weight_decay=train["weight_decay"])
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
        self.model.train()

        def step(idx: torch.Tensor) -> torch.Tensor:
            return descend(self.loss(images[idx].float().div_(255.0)), optimizer)

        loss = run_epochs(task, len(images), epochs, int(train["batch_size"][task.step]), step, scheduler,
                          self.ctx, "lower train.lr")
        self.gaussians.add(self.embed(images), type(self).__name__, task)
        if self.config["cad"]["density"] == "last":
            self.gaussians.keep_last()
        return {"epochs": float(epochs), "loss": loss}

    @torch.no_grad()
    def score(self, images: torch.Tensor) -> Scores:
        return Scores(image=self.gaussians.distance(self.embed(images)), maps=None)

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "gaussians": self.gaussians.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.gaussians.load_state_dict(state["gaussians"])


@METHODS.register("cad_cutpaste", help="CutPaste (CAD): backbone fine-tuned to tell cut-paste/scar images from normal ones; image scores only")
class CadCutPaste(CadSelfSupervised):
    classes = 2

    def __init__(self, config: dict[str, Any], ctx: MethodContext) -> None:
        super().__init__(config, ctx)
        cfg = config["cutpaste"]
        self.spec = DefectSpec(area=tuple(cfg["area"]), aspect=float(cfg["aspect"]),
                               scar_width=tuple(cfg["scar_width"]), scar_height=tuple(cfg["scar_height"]),
                               scar_rotation=float(cfg["scar_rotation"]), jitter=float(cfg["jitter"]))
        self.scar_probability = float(cfg["scar_probability"])

    def loss(self, images: torch.Tensor) -> torch.Tensor:
        defective = synthetic_defects(images, self.spec, self.scar_probability)
        labels = torch.arange(2, device=images.device).repeat_interleave(len(images))
        return F.cross_entropy(self.model(torch.cat([images, defective])), labels)


@METHODS.register("cad_panda", help="PANDA (CAD): backbone fine-tuned to pull each task's embeddings to its centre; image scores only")
class CadPanda(CadSelfSupervised):
    centre: torch.Tensor  # the current task's feature centre, fixed before its first epoch

    def before_training(self, images: torch.Tensor) -> None:
        self.centre = self.features(images).mean(0)

    def loss(self, images: torch.Tensor) -> torch.Tensor:
        """PANDA's compactness loss: mean squared distance to the centre, per embedding dimension."""
        return (self.model.embed(images) - self.centre).pow(2).sum(1).div(self.model.dim).mean()
