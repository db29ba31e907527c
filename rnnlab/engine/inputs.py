"""Input sequences with a given autocorrelation: the stationary AR(1) process of Zucchet & Orvieto
(2024, arXiv:2405.21064, their Fig. 1A), from i.i.d. standard normal noise

    x_0 = eps_0,   x_t = rho x_{t-1} + sqrt(1 - rho^2) eps_t   (t >= 1),

so every x_t has unit variance (stationary from the first step, x_0 ~ N(0, 1)) and
E[x_t x_{t-j}] = rho^|j|. The noise is the caller's (any generator, any shape), so a run's random
numbers are the same whatever rho is; at rho = 0 the noise itself is returned (the same tensor,
bit for bit). ``data.autocorr`` of the measurement app (``rnnlab.measure.networks.draw``).
"""
from __future__ import annotations

import math

from torch import Tensor

from ..checks import correlation


def ar1(eps: Tensor, rho: float, dim: int = 1) -> Tensor:
    """The stationary AR(1) sequence (module docstring) along ``dim`` of ``eps`` (i.i.d.
    N(0, 1) entries; other dims independent sequences), unit variance, lag-one correlation
    ``rho`` in (-1, 1). rho = 0 returns ``eps`` itself."""
    correlation("rho", rho)
    if rho == 0:
        return eps
    c = math.sqrt(1 - rho * rho)
    x = eps.movedim(dim, 0).clone()  # time first: each step one contiguous slice
    for t in range(1, x.shape[0]):
        x[t].mul_(c).add_(x[t - 1], alpha=rho)
    return x.movedim(0, dim)
