"""Log-domain helpers: a vector as (direction, natural-log norm), so that nothing overflows or
underflows however long a sequence or large a spectral radius (docs/theory.md, "log-domain
engine")."""
from __future__ import annotations

import torch
from torch import Tensor

# states and drives are kept within e^+-30 (~1e13) of each other and of 1: far from float32's
# limits (~1e38) after a GEMM, and wide enough that ordinary runs never rescale at all
RESCALE = 30.0


def unit(v: Tensor) -> tuple[Tensor, Tensor]:
    """v / ||v|| over the last axis and ln ||v|| in float64; zero vectors stay zero (ln = -inf)."""
    n = torch.linalg.vector_norm(v, dim=-1)
    return v / torch.where(n > 0, n, 1).unsqueeze(-1), torch.log(n.double())


def rescale(u: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
    """Fold ||u|| into the log scale s where it left [e^-30, e^30] (safe even in float32)."""
    n = torch.linalg.vector_norm(u, dim=-1)
    out = (n > 0) & (torch.log(n.double()).abs() > RESCALE)
    n = torch.where(out, n, 1)
    return u / n.unsqueeze(-1), s + torch.log(n.double())
