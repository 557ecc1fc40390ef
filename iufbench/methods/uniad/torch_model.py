"""UniAD's reconstruction transformer (You et al., NeurIPS 2022), pure torch, no training logic.

Shapes follow the reference (notes §2): tokens of C backbone channels -> Linear to `hidden_dim`,
post-norm encoder, decoder with a learned query per layer ("layer-wise query"), Linear back to C.
Attention uses `scaled_dot_product_attention`; the neighbour mask (a token may NOT attend to its
k x k neighbourhood, itself included) is an additive (0 / -inf) attention mask. Encoder queries can be
modulated element-wise by per-layer context tensors (`query_scale`), the hook IUF's
Object-Aware Self-Attention uses; UniAD passes none.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class UniADConfig:
    in_channels: int
    grid: tuple[int, int]  # token grid (H, W) = feature map size
    hidden_dim: int = 256
    nhead: int = 8
    num_encoder_layers: int = 4
    num_decoder_layers: int = 4
    dim_feedforward: int = 1024
    dropout: float = 0.1
    neighbor_size: tuple[int, int] = (7, 7)
    neighbor_mask: tuple[bool, bool, bool] = (True, True, True)  # encoder, decoder attn 1, attn 2
    jitter_scale: float = 20.0
    jitter_prob: float = 1.0

    def __post_init__(self) -> None:
        if self.hidden_dim % self.nhead:
            raise ValueError(f"model.hidden_dim {self.hidden_dim} is not divisible by model.nhead {self.nhead}")

    @classmethod
    def from_config(cls, in_channels: int, grid: tuple[int, int], model: dict) -> "UniADConfig":
        """From a method YAML's `model:` block (lists become tuples)."""
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in model.items()}
        return cls(in_channels=in_channels, grid=tuple(grid), **fields)


def neighbor_allowed(grid: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    """Bool [L, L]: True where attention is allowed, i.e. outside each token's neighbourhood."""
    h, w = grid
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    ys, xs = ys.flatten(), xs.flatten()
    near = ((ys[:, None] - ys[None, :]).abs() <= size[0] // 2) & (
        (xs[:, None] - xs[None, :]).abs() <= size[1] // 2
    )
    return ~near


def keep_mask(shape: torch.Size, p: float) -> torch.Tensor:
    """Bool mask keeping each element with probability 1 - p (p rounded to 1/32768): four 15-bit
    uniforms from each int64 of torch's global generator, since `bernoulli_` is slow on the CPU.
    (`random_()` draws int64 in [0, 2^63), so each int16's sign bit is masked off, not compared.)"""
    n = math.prod(shape)
    bits = torch.empty((n + 3) // 4, dtype=torch.int64).random_().view(torch.int16)[:n].view(shape)
    return (bits & 0x7FFF) >= round(p * 32768)


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """`F.dropout`, except on the CPU, where `bernoulli_` is slow (a quarter of a training step): the
    mask comes from `keep_mask` and is turned into one float multiplier (1 / (1 - p) or 0)."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu":
        return F.dropout(x, p, True)
    return x * keep_mask(x.shape, p).to(x.dtype).mul_(1.0 / (1.0 - p))


class Dropout(nn.Module):
    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None,
              p: float, training: bool) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) + bias) v with dropout on the weights; `bias` is 0 / -inf.

    Fused `scaled_dot_product_attention` everywhere except CPU training with dropout, where the
    weights are dropped with the fast CPU `dropout` above.
    """
    if not (training and p > 0.0 and q.device.type == "cpu"):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=p if training else 0.0)
    b, h, lq, d = q.shape
    q3, k3 = q.reshape(b * h, lq, d), k.reshape(b * h, -1, d).transpose(1, 2)
    scale = d**-0.5
    if bias is None:
        scores = torch.bmm(q3, k3) * scale
    else:  # scale, product and mask in one GEMM call
        scores = torch.baddbmm(bias, q3, k3, alpha=scale)
    return dropout(scores.softmax(dim=-1), p, True).view(b, h, lq, -1) @ v


class Attention(nn.Module):
    """Multi-head attention with separate q/k/v inputs, batch-first tokens [B, L, D]."""

    def __init__(self, dim: int, nhead: int, dropout: float) -> None:
        super().__init__()
        self.nhead, self.dropout = nhead, dropout
        self.q, self.k, self.v, self.out = (nn.Linear(dim, dim) for _ in range(4))

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                bias: torch.Tensor | None = None) -> torch.Tensor:
        b, lq, d = q.shape
        heads = lambda x: x.view(b, -1, self.nhead, d // self.nhead).transpose(1, 2)  # noqa: E731
        out = attention(heads(self.q(q)), heads(self.k(k)), heads(self.v(v)), bias, self.dropout, self.training)
        return self.out(out.transpose(1, 2).reshape(b, lq, d))


class FeedForward(nn.Sequential):
    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__(nn.Linear(dim, hidden), nn.ReLU(), Dropout(dropout), nn.Linear(hidden, dim))

    @property
    def linear2(self) -> nn.Linear:
        """The FFN output layer: the layer IUF's updating strategy protects."""
        return self[3]


class EncoderLayer(nn.Module):
    def __init__(self, cfg: UniADConfig) -> None:
        super().__init__()
        d = cfg.hidden_dim
        self.attn = Attention(d, cfg.nhead, cfg.dropout)
        self.ffn = FeedForward(d, cfg.dim_feedforward, cfg.dropout)
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.drop1, self.drop2 = Dropout(cfg.dropout), Dropout(cfg.dropout)

    def forward(self, src: torch.Tensor, pos: torch.Tensor, bias: torch.Tensor | None,
                query_scale: torch.Tensor | None = None) -> torch.Tensor:
        qk = src + pos
        q = qk if query_scale is None else qk * query_scale
        src = self.norm1(src + self.drop1(self.attn(q, qk, src, bias)))
        return self.norm2(src + self.drop2(self.ffn(src)))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: UniADConfig) -> None:
        super().__init__()
        d = cfg.hidden_dim
        self.query = nn.Parameter(torch.randn(cfg.grid[0] * cfg.grid[1], d))
        self.attn1 = Attention(d, cfg.nhead, cfg.dropout)
        self.attn2 = Attention(d, cfg.nhead, cfg.dropout)
        self.ffn = FeedForward(d, cfg.dim_feedforward, cfg.dropout)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.drop1, self.drop2, self.drop3 = (Dropout(cfg.dropout) for _ in range(3))

    def forward(self, memory: torch.Tensor, previous: torch.Tensor, pos: torch.Tensor,
                bias1: torch.Tensor | None, bias2: torch.Tensor | None) -> torch.Tensor:
        query = self.query.unsqueeze(0).expand(memory.shape[0], -1, -1)
        out = self.norm1(query + self.drop1(self.attn1(query + pos, memory + pos, memory, bias1)))
        out = self.norm2(out + self.drop2(self.attn2(out + pos, previous + pos, previous, bias2)))
        return self.norm3(out + self.drop3(self.ffn(out)))


class LearnedPosition(nn.Module):
    """Row and column embeddings (half the width each), concatenated, as in UniAD."""

    def __init__(self, grid: tuple[int, int], dim: int) -> None:
        super().__init__()
        self.grid = grid
        self.row = nn.Embedding(grid[0], dim // 2)
        self.col = nn.Embedding(grid[1], dim - dim // 2)
        nn.init.uniform_(self.row.weight)
        nn.init.uniform_(self.col.weight)

    def forward(self) -> torch.Tensor:
        h, w = self.grid
        rows = self.row.weight[:, None, :].expand(h, w, -1)
        cols = self.col.weight[None, :, :].expand(h, w, -1)
        return torch.cat([rows, cols], dim=-1).reshape(1, h * w, -1)


class UniAD(nn.Module):
    """Features [B, C, H, W] -> reconstruction of the same shape."""

    def __init__(self, cfg: UniADConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.input_proj = nn.Linear(cfg.in_channels, cfg.hidden_dim)
        self.output_proj = nn.Linear(cfg.hidden_dim, cfg.in_channels)
        self.pos = LearnedPosition(cfg.grid, cfg.hidden_dim)
        self.encoder = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.num_encoder_layers))
        self.decoder = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.num_decoder_layers))
        self.decoder_norm = nn.LayerNorm(cfg.hidden_dim)
        allowed = neighbor_allowed(cfg.grid, cfg.neighbor_size)
        if any(cfg.neighbor_mask) and not allowed.any(dim=1).all():
            raise ValueError(
                f"neighbour mask {cfg.neighbor_size} covers the whole {cfg.grid} token grid; "
                "use a larger image size, a smaller neighbor_size, or neighbor_mask off"
            )
        bias = torch.zeros(allowed.shape).masked_fill(~allowed, float("-inf"))
        self.register_buffer("attn_bias", bias, persistent=False)  # additive: cheaper than a bool mask
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def _mask(self, index: int) -> torch.Tensor | None:
        return self.attn_bias if self.cfg.neighbor_mask[index] else None

    def jitter(self, tokens: torch.Tensor) -> torch.Tensor:
        """Feature jitter: Gaussian noise scaled by each token's norm (training only)."""
        scale = tokens.norm(dim=-1, keepdim=True) / tokens.shape[-1] * self.cfg.jitter_scale
        noise = torch.randn_like(tokens) * scale
        if self.cfg.jitter_prob < 1.0:
            keep = torch.rand(tokens.shape[:-1], device=tokens.device) < self.cfg.jitter_prob
            noise = noise * keep.unsqueeze(-1)
        return tokens + noise

    def encode(self, features: torch.Tensor,
               query_scales: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Encoder memory [B, L, D]; `query_scales[i]` ([B, L, D]) multiplies layer i's queries."""
        tokens = features.flatten(2).transpose(1, 2)
        if self.training and self.cfg.jitter_scale > 0:
            tokens = self.jitter(tokens)
        src, pos = self.input_proj(tokens), self.pos()
        for i, layer in enumerate(self.encoder):
            src = layer(src, pos, self._mask(0), None if query_scales is None else query_scales[i])
        return src

    def decode(self, memory: torch.Tensor) -> list[torch.Tensor]:
        """Every decoder layer's normalised output [B, L, D] (the last one is reconstructed)."""
        pos, out, outputs = self.pos(), memory, []
        for layer in self.decoder:
            out = layer(memory, out, pos, self._mask(1), self._mask(2))
            outputs.append(self.decoder_norm(out))
        return outputs

    def reconstruct(self, hidden: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return self.output_proj(hidden).transpose(1, 2).reshape(like.shape)

    def forward(self, features: torch.Tensor,
                query_scales: list[torch.Tensor] | None = None) -> torch.Tensor:
        return self.reconstruct(self.decode(self.encode(features, query_scales))[-1], features)


def anomaly_map(features: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
    """Per-location L2 distance over channels, [B, H, W] at feature resolution."""
    return (features - reconstruction).pow(2).sum(dim=1).sqrt()
