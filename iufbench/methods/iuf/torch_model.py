"""IUF's networks (Tang et al., ECCV 2024, §4.1): UniAD whose encoder queries are modulated by an
object discriminator's features (Object-Aware Self-Attention, OASA). Pure torch, no training logic.

The discriminator D reads the frozen backbone's feature map, not the raw image: the reference
runs row attention on the full 224x224 image (~4 GB of attention scores per block at batch 24,
67 GiB per training step), while features keep D cacheable and cheap. D has one transformer
block per encoder layer; block l's output (layer-normalised) is the context C_l that multiplies
the queries of encoder layer l (Q ⊙ C_l; keys and values unchanged). Its head classifies the
object and grows when a task adds objects.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from iufbench.methods.uniad.torch_model import UniAD, UniADConfig


class ObjectDiscriminator(nn.Module):
    """Features [B, C, H, W] -> contexts (one [B, L, D] per encoder layer) and object logits."""

    def __init__(self, in_channels: int, grid: tuple[int, int], dim: int, num_layers: int, nhead: int,
                 dim_feedforward: int) -> None:
        super().__init__()
        self.proj = nn.Linear(in_channels, dim)
        self.pos = nn.Parameter(torch.zeros(1, grid[0] * grid[1], dim))
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(dim, nhead, dim_feedforward, dropout=0.0, batch_first=True, norm_first=True)
            for _ in range(num_layers)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(num_layers))
        self.hidden = nn.Sequential(nn.Linear(dim, dim), nn.ReLU())
        self.head: nn.Linear | None = None  # created by the first `grow`, when objects are known

    @property
    def num_classes(self) -> int:
        return 0 if self.head is None else self.head.out_features

    def grow(self, num_classes: int) -> None:
        """Add output rows for new objects; the rows of known objects are kept as they are."""
        if num_classes <= self.num_classes:
            return
        old, dim = self.head, self.proj.out_features
        self.head = nn.Linear(dim, num_classes).to(self.proj.weight.device)
        if old is not None:
            with torch.no_grad():
                self.head.weight[: old.out_features] = old.weight
                self.head.bias[: old.out_features] = old.bias

    def embed(self, features: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Contexts and the pooled object embedding: everything but the growing head, so a compiled
        training step keeps its graph when a task adds objects."""
        x = self.proj(features.flatten(2).transpose(1, 2)) + self.pos
        contexts = []
        for block, norm in zip(self.blocks, self.norms):
            x = block(x)
            contexts.append(norm(x))
        return contexts, self.hidden(x.mean(dim=1))

    def forward(self, features: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        contexts, embedding = self.embed(features)
        return contexts, self.head(embedding)


@dataclass
class IUFOutput:
    reconstruction: torch.Tensor  # [B, C, H, W]
    embedding: torch.Tensor | None  # [B, D] discriminator embedding (logits = head(embedding)); None without OASA
    encoder: torch.Tensor  # encoder output [B, L, D]
    decoder: list[torch.Tensor]  # every decoder layer's normalised output [B, L, D]


class IUF(nn.Module):
    """UniAD + (optional) object discriminator. `forward` returns the reconstruction only, so the
    model scores like UniAD; `forward_all` returns what the losses need."""

    def __init__(self, cfg: UniADConfig, oasa: bool, detach_context: bool, disc_layers_ffn: int,
                 disc_heads: int) -> None:
        super().__init__()
        self.uniad = UniAD(cfg)
        self.detach_context = detach_context
        self.discriminator = (
            ObjectDiscriminator(cfg.in_channels, cfg.grid, cfg.hidden_dim, cfg.num_encoder_layers, disc_heads,
                                disc_layers_ffn) if oasa else None
        )

    def forward_all(self, features: torch.Tensor) -> IUFOutput:
        contexts, embedding = None, None
        if self.discriminator is not None:
            contexts, embedding = self.discriminator.embed(features)
            if self.detach_context:
                contexts = [c.detach() for c in contexts]
        memory = self.uniad.encode(features, contexts)
        decoded = self.uniad.decode(memory)
        return IUFOutput(self.uniad.reconstruct(decoded[-1], features), embedding, memory, decoded)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.forward_all(features).reconstruction
