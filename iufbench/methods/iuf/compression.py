"""Semantic Compression Loss (IUF §4.2): penalise the non-principal singular values of the
spatially averaged latent features, leaving network capacity for objects still to come.

Two forms, both with a gradient (the reference's is computed on detached tensors, so it never
trains anything):
- `paper`: one batch's latent [B, L, D] -> mean over L -> [B, D]; L_sc = sum of sigma_i for
  i > keep (the paper's sum from index t = keep + 1). With `normalise`, divided by the sum of all
  sigma_i: the tail's share, which shrinking the whole latent cannot lower (our switch, in neither
  the paper nor the reference; docs/methods/iuf.md says why).
- `refcode`: the reference's statistic: a FIFO of past rows (detached) plus the current batch
  (with gradient); singular values normalised to sum to 1; sum of those below ratio / D.
"""
from __future__ import annotations

import torch


def spatial_mean(latent: torch.Tensor) -> torch.Tensor:
    """[B, L, D] -> [B, D] in float32: the paper's Eq. 5."""
    return latent.float().mean(dim=1)


def singular_values(latent: torch.Tensor) -> torch.Tensor:
    """Singular values (descending) of the spatially averaged latent."""
    return torch.linalg.svdvals(spatial_mean(latent))


def paper_scl(latent: torch.Tensor, keep: int, normalise: bool = False) -> torch.Tensor:
    s = singular_values(latent)
    tail = s[keep:].sum()
    return tail / s.sum().clamp_min(1e-12) if normalise else tail


class RefcodeSCL:
    """The reference's relative-threshold form over a rolling window of samples."""

    def __init__(self, capacity: int = 768, ratio: float = 0.1) -> None:
        self.capacity, self.ratio = capacity, ratio
        self.buffer: torch.Tensor | None = None

    def __call__(self, latent: torch.Tensor) -> torch.Tensor:
        rows = spatial_mean(latent)
        window = rows if self.buffer is None else torch.cat([self.buffer, rows])
        self.buffer = window[-self.capacity :].detach()
        s = torch.linalg.svdvals(window)
        s = s / s.sum()
        return s[s < self.ratio / rows.shape[1]].sum()


def tail_share(latent: torch.Tensor, keep: int) -> float:
    """Share of the singular-value mass outside the top `keep`: what SCL drives down."""
    s = singular_values(latent)
    return float(s[keep:].sum() / s.sum())
