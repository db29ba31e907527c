"""What the GRU and the LSTM share: PyTorch's parameter names and layout, PyTorch's and the chrono
initialisers, the keep-gate theory line, and ``torch.nn.GRUCell`` / ``LSTMCell`` as the autograd
reference step.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

from ... import theory as th
from ..init import chrono_bias, recurrent_matrix, uniform
from . import get


@dataclass(frozen=True)
class GatedParams:
    """A one-layer GRU or LSTM in PyTorch's names and layout, with the readout o = V h + c:
    weight_ih (G N, D), weight_hh (G N, N), bias_ih and bias_hh (G N,), V (C, N), c (C,)."""

    cell: str
    weight_ih: Tensor
    weight_hh: Tensor
    bias_ih: Tensor
    bias_hh: Tensor
    V: Tensor
    c: Tensor

    def __post_init__(self):
        G, N = get(self.cell).gates, self.weight_hh.shape[1]
        shapes = {"weight_ih": (G * N, self.weight_ih.shape[1]), "weight_hh": (G * N, N),
                  "bias_ih": (G * N,), "bias_hh": (G * N,), "V": (self.V.shape[0], N),
                  "c": (self.V.shape[0],)}
        for name, shape in shapes.items():
            if tuple(getattr(self, name).shape) != shape:
                raise ValueError(f"{name} has shape {tuple(getattr(self, name).shape)}, "
                                 f"expected {shape} for a {self.cell} with N={N}")

    @property
    def hidden_size(self) -> int:
        return self.weight_hh.shape[1]

    def tensors(self) -> dict:
        return {k: getattr(self, k) for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh",
                                                 "V", "c")}

    def to(self, device=None, dtype=None) -> GatedParams:
        return replace(self, **{k: v.to(device=device, dtype=dtype)
                                for k, v in self.tensors().items()})


def draw(model, T: int, g: torch.Generator) -> dict:
    """A GRU or LSTM in float64 from ``g`` (PyTorch's names and gate order).

    gaussian / orthogonal / identity: each gate's recurrent block N x N is drawn and scaled as
    Elman's W (rho or sigma_w), input weights ~ N(0, sigma_u^2 / D), input biases ~ N(0, sigma_b^2),
    recurrent biases 0. pytorch: every weight and bias ~ U(-1/sqrt N, 1/sqrt N) in torch's order
    (weight_ih, weight_hh, bias_ih, bias_hh). chrono: pytorch, then the keep gate's bias (LSTM f,
    GRU z) from ``chrono_bias`` on bias_ih, bias_hh's block zeroed, and the LSTM input gate's
    b_i = -b_f. ``model.gate_bias`` is then added to the keep gate's input bias.
    """
    cell = get(model.cell)
    N, D, G = model.hidden_size, model.input_size, cell.gates
    f64 = dict(generator=g, dtype=torch.float64)
    if model.init in ("pytorch", "chrono"):
        k = 1 / math.sqrt(N)
        w = {name: uniform(shape, k, g) for name, shape in (
            ("weight_ih", (G * N, D)), ("weight_hh", (G * N, N)), ("bias_ih", (G * N,)),
            ("bias_hh", (G * N,)))}
    else:
        w = {"weight_hh": torch.cat([recurrent_matrix(N, model.init, model.spectral_radius,
                                                      model.gain, g) for _ in range(G)])}
        w["weight_ih"] = torch.randn(G * N, D, **f64) * (model.input_gain / math.sqrt(D))
        w["bias_ih"] = torch.randn(G * N, **f64) * model.bias_std
        w["bias_hh"] = torch.zeros(G * N, dtype=torch.float64)
    keep = cell.keep_slice(N)
    if model.init == "chrono":
        b_keep = chrono_bias(N, max(T, 3), g)
        w["bias_ih"][keep], w["bias_hh"][keep] = b_keep, 0.0
        if model.cell == "lstm":
            w["bias_ih"][:N], w["bias_hh"][:N] = -b_keep, 0.0
    w["bias_ih"][keep] += model.gate_bias
    return {"cell": model.cell, **{name: w[name] for name in ("weight_ih", "weight_hh",
                                                              "bias_ih", "bias_hh")}}


def theory(p: GatedParams, model, data) -> dict:
    """``keep_gate_rate`` = ln s(b) of the largest keep-gate bias (b_z, b_f = bias_ih + bias_hh),
    nats per step: the exact long-lag rate when every weight matrix is zero, a reference line
    otherwise (docs/cells.md)."""
    keep = get(p.cell).keep_slice(p.hidden_size)
    b = (p.bias_ih[keep] + p.bias_hh[keep]).max().item()
    return {"keep_gate_bias": b, "keep_gate_rate": th.keep_gate_rate(b)}


def torch_cell(p: GatedParams) -> nn.Module:
    """``torch.nn.GRUCell`` or ``LSTMCell`` holding the weights of ``p`` (its dtype and device)."""
    kind = {"gru": nn.GRUCell, "lstm": nn.LSTMCell}[p.cell]
    N, D = p.hidden_size, p.weight_ih.shape[1]
    cell = kind(D, N, dtype=p.weight_hh.dtype, device=p.weight_hh.device)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).copy_(getattr(p, name))
    return cell


def torch_step(p: GatedParams):
    """PyTorch's own GRU / LSTM cell step (``torch.gru_cell`` / ``torch.lstm_cell``, what
    ``torch.nn.GRUCell`` / ``LSTMCell`` call) on the tensors of ``p`` themselves, so
    derivatives with respect to them flow through it: ``(x_t, state tuple) -> state tuple``."""
    w = (p.weight_ih, p.weight_hh, p.bias_ih, p.bias_hh)
    if p.cell == "lstm":
        return lambda x_t, s: tuple(torch.lstm_cell(x_t, tuple(s), *w))
    return lambda x_t, s: (torch.gru_cell(x_t, s[0], *w),)


def module_layer(rnn, l: int, b_ih: Tensor, b_hh: Tensor) -> tuple:
    """``layer_forward``'s weights of layer ``l`` of a ``torch.nn.GRU`` / ``LSTM``."""
    return (getattr(rnn, f"weight_ih_l{l}").detach(), getattr(rnn, f"weight_hh_l{l}").detach(),
            b_ih, b_hh)


def layer_weights(p: GatedParams) -> tuple:
    return p.weight_ih, p.weight_hh, p.bias_ih, p.bias_hh


SCALED_INITS = ("gaussian", "orthogonal", "identity")
INITS = SCALED_INITS + ("pytorch", "chrono")


class GatedModule:
    """What the trainable GRU and LSTM (``torch.nn.GRU`` / ``LSTM`` subclasses, one layer, batch
    first) share: torch's fused ``forward`` as the sequence fast path, the engine's params of
    the trained weights and the recurrent init."""

    fused = True

    def engine_params(self, head: nn.Linear) -> GatedParams:
        """The engine's ``GatedParams`` of these weights with ``head``'s readout, detached."""
        w = {name: getattr(self, f"{name}_l0").detach()
             for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
        return GatedParams(cell=self.cell, **w, V=head.weight.detach(), c=head.bias.detach())

    def set_recurrent(self, W: Tensor) -> None:
        """weight_hh = W (``model.init``'s gate blocks stacked in PyTorch's order) and every
        bias zero."""
        with torch.no_grad():
            self.weight_hh_l0.copy_(W)
            self.bias_ih_l0.zero_()
            self.bias_hh_l0.zero_()


def module_of(kind: type):
    """The cell's ``module`` constructor for a ``GatedModule`` class ``kind``: torch's own
    init from the global RNG, then cast to ``dtype``."""
    def module(input_size: int, hidden_size: int, model: dict, dtype=None) -> nn.Module:
        rnn = kind(input_size, hidden_size, batch_first=True)
        return rnn if dtype is None else rnn.to(dtype)
    return module
