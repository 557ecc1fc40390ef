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
import torch.nn.functional as F


def spatial_mean(latent: torch.Tensor) -> torch.Tensor:
    """[B, L, D] -> [B, D] in float32: the paper's Eq. 5."""
    return latent.float().mean(dim=1)


def singular_values(latent: torch.Tensor, sync_free: bool = False) -> torch.Tensor:
    """Singular values (descending) of the spatially averaged latent; `sync_free` (a compiled CUDA step)
    takes them from the Gram matrix (`gram_singular_values`) where that is small enough."""
    rows = spatial_mean(latent)
    if sync_free and min(rows.shape) <= JACOBI_MAX:
        return gram_singular_values(rows)
    return torch.linalg.svdvals(rows)


# Why not `torch.linalg.svdvals` (or `eigvalsh`) inside a compiled CUDA step: cuSOLVER reports failures
# in an `info` tensor that torch reads back on the host after every call (`_linalg_check_errors`), so
# the host waits for the GPU once per step and a CUDA graph cannot hold the call. The Jacobi rotations
# below are plain tensor ops with a fixed count: nothing is read back.
JACOBI_MAX = 32  # largest Gram side (min(B, D)) worth unrolling; 24 at the paper's batch
JACOBI_SWEEPS = 8  # float64 converges to ~1e-16 off-diagonal in 6-7 sweeps on 24-32 sides (tests)


def gram_singular_values(rows: torch.Tensor, sweeps: int = JACOBI_SWEEPS) -> torch.Tensor:
    """Singular values (descending) of rows [B, D] without a host sync: eigenvectors U of the smaller
    Gram matrix by parallel cyclic Jacobi (no gradient), then sigma_i = ||X^T u_i|| (or ||X v_i||).
    The value is svdvals' to float rounding and, with U held fixed, the gradient u_i v_i^T is the SVD's
    (for distinct singular values; at a repeated or zero one both pick an arbitrary basis)."""
    x = rows.double()
    wide = x.shape[0] <= x.shape[1]
    with torch.no_grad():
        vectors = jacobi_eigenvectors(x @ x.T if wide else x.T @ x, sweeps)
    s = torch.linalg.vector_norm(x.T @ vectors if wide else x @ vectors, dim=0)
    return s.sort(descending=True).values.to(rows.dtype)


def _round_robin(n: int) -> list[tuple[list[int], list[int]]]:
    """n - 1 rounds of n / 2 disjoint pairs (n even) covering every pair once: the circle method."""
    players, rounds = list(range(n)), []
    for _ in range(n - 1):
        rounds.append((players[: n // 2], players[n // 2 :][::-1]))
        players = [players[0], players[-1], *players[1:-1]]
    return rounds


def jacobi_eigenvectors(g: torch.Tensor, sweeps: int = JACOBI_SWEEPS) -> torch.Tensor:
    """Eigenvectors (columns, unordered) of a symmetric matrix [n, n]: `sweeps` sweeps of n - 1 rounds,
    each round one rotation per disjoint pair (p, q) zeroing a_pq (the smaller angle, |phi| <= pi/4),
    all of a round applied as one orthogonal matrix. An odd n gets a zero row and column, never mixed
    in (its a_pq stay 0)."""
    n = g.shape[-1]
    m = n + n % 2
    a = F.pad(g, (0, m - n, 0, m - n))
    v = torch.eye(m, dtype=g.dtype, device=g.device)
    eye = v.flatten()
    rounds = [(torch.tensor(p, device=g.device), torch.tensor(q, device=g.device)) for p, q in _round_robin(m)]
    for _ in range(sweeps):
        for p, q in rounds:
            app, aqq, apq = a[p, p], a[q, q], a[p, q]
            d = aqq - app
            sign = torch.where(d >= 0, 1.0, -1.0).to(d.dtype)
            t = 2 * apq * sign / (d.abs() + torch.sqrt(d * d + 4 * apq * apq)).clamp_min(torch.finfo(d.dtype).tiny)
            c = torch.rsqrt(1 + t * t)
            s = t * c
            j = eye.index_put((torch.cat([p * m + p, q * m + q, p * m + q, q * m + p]),),
                              torch.cat([c, c, s, -s])).view(m, m)
            a = j.T @ a @ j
            v = v @ j
    return v[:n, :n]


def paper_scl(latent: torch.Tensor, keep: int, normalise: bool = False, sync_free: bool = False) -> torch.Tensor:
    s = singular_values(latent, sync_free)
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
