"""Recurrent initialisers with exact spectral-radius scaling, and the seeded draw of a whole run.

Every random number of a run comes from one CPU ``torch.Generator`` in float64, in a fixed order
(Elman: W, U, b, V, c, h0, x, targets; gated cells: the recurrent weights, the input weights, the
biases, V, c, h0 (and c0), x, targets), and is cast and moved afterwards: the same seed gives the
same network and data on every device and in every dtype.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .cells import GATES, KEEP_GATE, GatedParams, MinimalParams
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


def _uniform(shape, k: float, g: torch.Generator) -> Tensor:
    """U(-k, k), as torch.nn's RNN, GRU, LSTM and Linear initialise every weight and bias."""
    return (torch.rand(*shape, generator=g, dtype=torch.float64) * 2 - 1) * k


def chrono_bias(N: int, T_max: int, g: torch.Generator) -> Tensor:
    """Tallec & Ollivier 2018 (arXiv:1804.11188): b = ln U(1, T_max - 1), so that the kept
    fraction sigmoid(b) = u / (1 + u) gives memory timescales 1 / (1 - sigmoid(b)) = 1 + u spread
    over [2, T_max]."""
    return torch.log(1 + torch.rand(N, generator=g, dtype=torch.float64) * (T_max - 2))


def gated_params(model: ModelSpec, T_max: int, g: torch.Generator):
    """A GRU, LSTM or minimalRNN in float64 (see ``rnnlab.cells``), drawn from ``g``.

    gaussian / orthogonal / identity: each gate's recurrent block N x N is drawn and scaled as
    Elman's W (rho or sigma_w), input weights ~ N(0, sigma_u^2 / D), input biases ~ N(0, sigma_b^2),
    recurrent biases 0. pytorch: every weight and bias ~ U(-1/sqrt N, 1/sqrt N) in torch's order
    (weight_ih, weight_hh, bias_ih, bias_hh). chrono: pytorch, then the keep gate's bias (LSTM f,
    GRU z) from ``chrono_bias`` on bias_ih, bias_hh's block zeroed, and the LSTM input gate's
    b_i = -b_f. ``model.gate_bias`` is then added to the keep gate's input bias. The minimalRNN:
    embedding U ~ N(0, sigma_u^2 / D), W drawn as Elman's, W_z ~ N(0, 1 / N) (sigma_v = 1), and
    b ~ N(gate_bias, sigma_b^2) (Chen et al. 2018's mu_b).
    """
    N, D = model.hidden_size, model.input_size
    f64 = dict(generator=g, dtype=torch.float64)
    if model.cell == "minimal":
        W = recurrent_matrix(N, model.init, model.spectral_radius, model.gain, g)
        U = torch.randn(N, D, **f64) * (model.input_gain / math.sqrt(D))
        W_z = torch.randn(N, N, **f64) / math.sqrt(N)
        b = model.gate_bias + torch.randn(N, **f64) * model.bias_std
        return dict(U=U, W=W, W_z=W_z, b=b)
    G = GATES[model.cell]
    if model.init in ("pytorch", "chrono"):
        k = 1 / math.sqrt(N)
        w = {name: _uniform(shape, k, g) for name, shape in (
            ("weight_ih", (G * N, D)), ("weight_hh", (G * N, N)), ("bias_ih", (G * N,)),
            ("bias_hh", (G * N,)))}
    else:
        w = {"weight_hh": torch.cat([recurrent_matrix(N, model.init, model.spectral_radius,
                                                      model.gain, g) for _ in range(G)])}
        w["weight_ih"] = torch.randn(G * N, D, **f64) * (model.input_gain / math.sqrt(D))
        w["bias_ih"] = torch.randn(G * N, **f64) * model.bias_std
        w["bias_hh"] = torch.zeros(G * N, dtype=torch.float64)
    keep = slice(KEEP_GATE[model.cell] * N, (KEEP_GATE[model.cell] + 1) * N)
    if model.init == "chrono":
        b_keep = chrono_bias(N, max(T_max, 3), g)
        w["bias_ih"][keep], w["bias_hh"][keep] = b_keep, 0.0
        if model.cell == "lstm":
            w["bias_ih"][:N], w["bias_hh"][:N] = -b_keep, 0.0
    w["bias_ih"][keep] += model.gate_bias
    return {name: w[name] for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}


def draw(model: ModelSpec, data: DataSpec, seed: int) -> Draw:
    """Seeded network and data for a run; see the module docstring for the order of draws.

    For an LSTM ``h0`` is (h_{-1}, c_{-1}) side by side, (B, 2N), each ~ N(0, h0_std^2).
    """
    g = torch.Generator().manual_seed(seed)
    N, D, C = model.hidden_size, model.input_size, model.output_size
    f64 = dict(generator=g, dtype=torch.float64)
    if model.cell == "elman":
        W = recurrent_matrix(N, model.init, model.spectral_radius, model.gain, g)
        U = torch.randn(N, D, **f64) * (model.input_gain / math.sqrt(D))
        b = torch.randn(N, **f64) * model.bias_std
    else:
        weights = gated_params(model, data.seq_len, g)
    # V and c as nn.Linear initialises the tutorial's readout: U(-1/sqrt N, 1/sqrt N).
    V = (torch.rand(C, N, **f64) * 2 - 1) / math.sqrt(N)
    c = (torch.rand(C, **f64) * 2 - 1) / math.sqrt(N)
    B, T = data.batch_size, data.seq_len
    h0 = torch.randn(B, N, **f64) * data.h0_std
    if model.cell == "lstm":
        h0 = torch.cat([h0, torch.randn(B, N, **f64) * data.h0_std], -1)
    x = torch.randn(B, data.burn_in + T, D, **f64) * data.input_std
    classes = torch.randint(C, (B, T), generator=g)
    y_target = torch.nn.functional.one_hot(classes, C).to(torch.float64)
    if model.cell == "elman":
        params = ElmanParams(U, W, b, V, c, model.activation)
    elif model.cell == "minimal":
        params = MinimalParams(**weights, V=V, c=c)
    else:
        params = GatedParams(model.cell, **weights, V=V, c=c)
    return Draw(params, h0, x, y_target)
