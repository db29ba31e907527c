"""Recurrent initialisers with exact spectral-radius scaling (float64, CPU, seeded generator).

Each cell draws its own weights with these (``rnnlab.engine.cells``); the measurement app draws a
whole run, network and data, from one generator in a fixed order (``rnnlab.measure.networks``).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor


def spectral_radius(W: Tensor) -> float:
    """rho(W) = max |eigenvalue|, computed in float64 on the CPU."""
    return torch.linalg.eigvals(W.detach().to("cpu", torch.float64)).abs().max().item()


def haar_orthogonal(N: int, generator: torch.Generator) -> Tensor:
    """A Haar-distributed orthogonal matrix: QR of a Gaussian matrix with R's diagonal made positive
    (Mezzadri 2007), so the distribution does not depend on the QR routine's sign convention."""
    A = torch.randn(N, N, generator=generator, dtype=torch.float64)
    Q, R = torch.linalg.qr(A)
    return Q * torch.sign(torch.diagonal(R))


def recurrent_matrix(N: int, init: str, spectral_radius_: float | None, gain: float | None,
                     generator: torch.Generator) -> Tensor:
    """W in float64.

    gaussian: W_ij ~ N(0, 1/N), then multiplied by ``gain`` (sigma_w) or rescaled so that its
    largest eigenvalue modulus is exactly ``spectral_radius_``; orthogonal: Haar Q times rho;
    identity: rho I (Le et al. 2015's IRNN at rho = 1).
    """
    if init == "gaussian":
        W = torch.randn(N, N, generator=generator, dtype=torch.float64) / math.sqrt(N)
        if gain is not None:
            return W * gain
        return W * (spectral_radius_ / spectral_radius(W))
    if init == "orthogonal":
        return haar_orthogonal(N, generator) * spectral_radius_
    return torch.eye(N, dtype=torch.float64) * spectral_radius_


def uniform(shape, k: float, g: torch.Generator) -> Tensor:
    """U(-k, k), as torch.nn's RNN, GRU, LSTM and Linear initialise every weight and bias."""
    return (torch.rand(*shape, generator=g, dtype=torch.float64) * 2 - 1) * k


def chrono_bias(N: int, T_max: int, g: torch.Generator) -> Tensor:
    """Tallec & Ollivier 2018 (arXiv:1804.11188): b = ln U(1, T_max - 1), so that the kept
    fraction sigmoid(b) = u / (1 + u) gives memory timescales 1 / (1 - sigmoid(b)) = 1 + u spread
    over [2, T_max]."""
    return torch.log(1 + torch.rand(N, generator=g, dtype=torch.float64) * (T_max - 2))
