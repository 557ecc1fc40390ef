"""The network CAD's self-supervised baselines fine-tune: a trainable copy of the protocol's backbone
that maps images to one global embedding, with an optional linear classifier on top (CutPaste)."""
from __future__ import annotations

import torch
from torch import nn

from iufbench.backbones import create_backbone
from iufbench.features import BackboneSpec


class Encoder(nn.Module):
    """Images (float [N, 3, H, W] in [0, 1]) -> embedding [N, D]: the global average of each of the
    protocol's backbone stages, concatenated (D = the sum of their channels).

    Batch-norm statistics stay frozen (the backbone is kept in eval mode; its weights, batch-norm
    scales included, train): CAD's ViT has no batch norm, and running statistics re-estimated from
    one task's small batches would move every earlier task's embeddings.
    """

    def __init__(self, spec: BackboneSpec, classes: int = 0) -> None:
        super().__init__()
        self.backbone = create_backbone(spec.name, spec.weights, spec.out_indices)  # built frozen
        self.backbone.requires_grad_(True)
        cfg = self.backbone.pretrained_cfg
        self.register_buffer("mean", torch.tensor(cfg["mean"]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(cfg["std"]).view(1, 3, 1, 1))
        self.dim = sum(self.backbone.feature_info.channels())
        self.head = nn.Linear(self.dim, classes) if classes else None
        if self.head is not None:  # zero-initialised, as timm's ViT head: training starts at chance (loss ln 2)
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def train(self, mode: bool = True) -> "Encoder":
        super().train(mode)
        self.backbone.eval()
        return self

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        stages = self.backbone((images - self.mean) / self.std)
        return torch.cat([f.mean(dim=(2, 3)) for f in stages], dim=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits [N, classes] (needs a head)."""
        if self.head is None:
            raise RuntimeError("this Encoder was built without a classifier head (classes=0)")
        return self.head(self.embed(images))
