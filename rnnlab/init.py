"""Recurrent initialisers with exact spectral-radius scaling, and the seeded draw of a whole run.

Every random number of a run comes from one CPU ``torch.Generator`` in float64, in a fixed order
(W, U, b, V, c, h0, x, targets), and is cast and moved afterwards: the same seed gives the same
network and data on every device and in every dtype.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .config import DataSpec, ModelSpec
from .model import ElmanParams

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


@dataclass(frozen=True)
class Draw:
    """One run's network and data (float64, CPU): x (B, burn_in + T, D), y_target (B, T, C)."""

    params: ElmanParams
    h0: Tensor
    x: Tensor
    y_target: Tensor


def draw(model: ModelSpec, data: DataSpec, seed: int) -> Draw:
    """Seeded network and data for a run; see the module docstring for the order of draws."""
    g = torch.Generator().manual_seed(seed)
    N, D, C = model.hidden_size, model.input_size, model.output_size
    f64 = dict(generator=g, dtype=torch.float64)
    W = recurrent_matrix(N, model.init, model.spectral_radius, model.gain, g)
    U = torch.randn(N, D, **f64) * (model.input_gain / math.sqrt(D))
    b = torch.randn(N, **f64) * model.bias_std
    # V and c as nn.Linear initialises the tutorial's readout: U(-1/sqrt N, 1/sqrt N).
    V = (torch.rand(C, N, **f64) * 2 - 1) / math.sqrt(N)
    c = (torch.rand(C, **f64) * 2 - 1) / math.sqrt(N)
    B, T = data.batch_size, data.seq_len
    h0 = torch.randn(B, N, **f64) * data.h0_std
    x = torch.randn(B, data.burn_in + T, D, **f64) * data.input_std
    classes = torch.randint(C, (B, T), generator=g)
    y_target = torch.nn.functional.one_hot(classes, C).to(torch.float64)
    return Draw(ElmanParams(U, W, b, V, c, model.activation), h0, x, y_target)
