"""minLSTM (Feng et al. 2024, "Were RNNs all we needed?", arXiv:2410.01201, section 3.2 and
appendix B.3; code after lucidrains/minGRU-pytorch, ``minGRU_pytorch/minLSTM.py``):

    f_t = s(W_f x_t),   i_t = s(W_i x_t),   f'_t = f_t / (f_t + i_t),   i'_t = i_t / (f_t + i_t),
    h~_t = g(W_h x_t),  h_t = f'_t * h_{t-1} + i'_t * h~_t

with s the logistic sigmoid, g the minGRU's candidate activation (``mingru.g``: v + 1/2 for
v >= 0, s(v) below; the paper's log-space form) and no biases. The gates see x_t only:

    dh_t/dh_{t-1} = diag(f'_t),   ||dh_t/dh_k|| = max_i prod_{s=k+1..t} f'_{i,s},

whose long-lag rate is max_i E[ln f'_i] (theory hook: ``rnnlab.theory.minlstm_log_keep``; a
unit's two gate pre-activations see the same x_t, so they are correlated Gaussians). The input
enters a step as dh_t/dx_t = diag(d f' (1 - f)) W_f - diag(d f' (1 - i)) W_i + diag(i' g'(W_h x))
W_h with d = (h_{t-1} - h~_t) i'_t (since df'/d(W_f x) = f' i' (1 - f), df'/d(W_i x) =
-f' i' (1 - i)).

Initial weights as ``torch.nn.Linear(D, 3N, bias=False)`` draws the reference code's one
``to_hidden_and_f_i_gate`` layer: every entry ~ U(-1/sqrt D, 1/sqrt D) times
``model.input_gain``, rows [W_h; W_f; W_i], from the run's generator. The trainable module holds
that layer and runs a sequence by the parallel scan in log space (``mingru.log_scan``) from
h_{-1} = 0, with ln f' = -softplus(softplus(-W_f x) - softplus(-W_i x)) and ln i' =
-softplus(softplus(-W_i x) - softplus(-W_f x)); the measurement runs the recurrence step by step.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ... import theory as th
from ..init import uniform
from . import Cell, register
from .mingru import (
    REFUSES,
    DiagonalLayer,
    check,
    g,
    g_prime,
    log_g,
    log_scan,
    numpy_rows,
    sequential_scan,
    shifted,
    steps,
)


@dataclass(frozen=True)
class MinLSTMParams:
    """A minLSTM: forget- and input-gate weights W_f, W_i (N, D), candidate weights W_h (N, D),
    readout V (C, N), c (C,)."""

    W_f: Tensor
    W_i: Tensor
    W_h: Tensor
    V: Tensor
    c: Tensor
    cell: str = "minlstm"

    @property
    def hidden_size(self) -> int:
        return self.W_f.shape[0]

    def tensors(self) -> dict:
        return {k: getattr(self, k) for k in ("W_f", "W_i", "W_h", "V", "c")}

    def to(self, device=None, dtype=None) -> MinLSTMParams:
        return replace(self, **{k: v.to(device=device, dtype=dtype)
                                for k, v in self.tensors().items()})


def gates(e_f: Tensor, e_i: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(f', i', f, i) from the gates' pre-activations."""
    f, i = torch.sigmoid(e_f), torch.sigmoid(e_i)
    total = f + i
    return f / total, i / total, f, i


def layer_forward(p: MinLSTMParams, inp: Tensor, h: Tensor):
    """The minLSTM over inp (T, B, D) from h (B, N), step by step; every step's pre-activations
    in one product each (the gates see x only). The maps keep the factors f'; a stack's input
    coefficients are recomputed per step from the input and the state entering it."""
    f_n, i_n, _, _ = gates(torch.matmul(inp, p.W_f.T), torch.matmul(inp, p.W_i.T))
    hs = sequential_scan(f_n, i_n * g(torch.matmul(inp, p.W_h.T)), h)
    del i_n
    W_in = torch.cat([p.W_f, p.W_i, p.W_h])

    def coefficients(t: int) -> Tensor:
        """d (1 - f), -d (1 - i) and i' g'(W_h x) side by side at step t of ``inp``, with
        d = (h_{t-1} - h~) f' i'."""
        x_t, h_prev = inp[t], hs[t - 1] if t > 0 else h
        f_t, i_t, f, i = gates(x_t @ p.W_f.T, x_t @ p.W_i.T)
        e_h = x_t @ p.W_h.T
        d = (h_prev - g(e_h)) * f_t * i_t
        return torch.cat([d * (1 - f), -d * (1 - i), i_t * g_prime(e_h)], -1)

    return (hs,), lambda sl: DiagonalLayer(f_n[sl], W_in, shifted(coefficients, sl, len(inp)))


def draw(model, T: int, gen: torch.Generator) -> dict:
    """W_h, W_f, W_i in float64 from ``gen``: the reference code's one (3N, D) layer, rows
    [W_h; W_f; W_i], each entry ~ U(-k, k), k = ``model.input_gain`` / sqrt D."""
    N, D = model.hidden_size, model.input_size
    w = uniform((3 * N, D), model.input_gain / math.sqrt(D), gen)
    return dict(W_h=w[:N], W_f=w[N:2 * N], W_i=w[2 * N:])


def theory(p: MinLSTMParams, model, data) -> dict:
    """``diag_rate`` = max_i E[ln f'_i] at white input x_t ~ N(0, input_std^2 I): the long-lag rate
    of ||dh_t/dh_k|| (the slowest unit's), with each unit's gate pre-activations (w_f . x_t,
    w_i . x_t) jointly Gaussian, standard deviations input_std ||w_f||, input_std ||w_i|| and
    correlation cos(w_f, w_i) (``rnnlab.theory.minlstm_log_keep``); ``diag_rate_min`` the fastest
    unit's. Nats per step."""
    rates = th.diag_log_keep("minlstm", (numpy_rows(p.W_f), numpy_rows(p.W_i)), data.input_std)
    return {"diag_rate": float(rates.max()), "diag_rate_min": float(rates.min())}


def step(p: MinLSTMParams, x_t: Tensor, h: Tensor) -> Tensor:
    """The paper's sequential step, written out (differentiable; the autograd reference)."""
    f, i = torch.sigmoid(x_t @ p.W_f.T), torch.sigmoid(x_t @ p.W_i.T)
    return (f * h + i * g(x_t @ p.W_h.T)) / (f + i)


def reference_step(p: MinLSTMParams):
    return lambda x_t, s: (step(p, x_t, s[0]),)


class MinLSTM(nn.Module):
    """The trainable minLSTM, batch first: ``to_hidden_and_f_i_gate`` = ``nn.Linear(D, 3N,
    bias=False)``, rows [W_h; W_f; W_i], the reference code's layer, name and init (torch's
    default, from the global RNG, drawn in ``dtype``). ``step`` is the paper's sequential step;
    ``forward(x (B, T, D), h0=None) -> (h (B, T, N), h_last (1, B, N))`` its parallel scan in
    log space from h_{-1} = 0 (module docstring); from a given h0 (1, B, N) its steps."""

    fused = True

    def __init__(self, input_size: int, hidden_size: int, dtype: torch.dtype | None = None):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.to_hidden_and_f_i_gate = nn.Linear(input_size, 3 * hidden_size, bias=False,
                                                dtype=dtype)

    def init_state(self, batch_size: int) -> tuple[Tensor]:
        return (self.to_hidden_and_f_i_gate.weight.new_zeros(batch_size, self.hidden_size),)

    def step(self, x_t: Tensor, state: tuple[Tensor]) -> tuple[Tensor]:
        hidden, e_f, e_i = self.to_hidden_and_f_i_gate(x_t).chunk(3, -1)
        f_n, i_n, _, _ = gates(e_f, e_i)
        return (f_n * state[0] + i_n * g(hidden),)

    def forward(self, x: Tensor, h0: Tensor | None = None):
        if h0 is not None:  # from another state: its steps (the log-space scan needs h > 0)
            return steps(self, x, h0)
        hidden, e_f, e_i = self.to_hidden_and_f_i_gate(x).chunk(3, -1)
        diff = F.softplus(-e_f) - F.softplus(-e_i)  # ln i - ln f
        h = log_scan(-F.softplus(diff), -F.softplus(-diff) + log_g(hidden))
        return h, h[:, -1].unsqueeze(0)

    def engine_params(self, head: nn.Linear) -> MinLSTMParams:
        """The engine's ``MinLSTMParams`` of these weights with ``head``'s readout, detached."""
        W, N = self.to_hidden_and_f_i_gate.weight.detach(), self.hidden_size
        return MinLSTMParams(W_f=W[N:2 * N], W_i=W[2 * N:], W_h=W[:N], V=head.weight.detach(),
                             c=head.bias.detach())


def module(input_size: int, hidden_size: int, model: dict, dtype=None) -> MinLSTM:
    """The trainable minLSTM from the global RNG, in ``dtype``."""
    return MinLSTM(input_size, hidden_size, dtype)


CELL = register(Cell(
    name="minlstm", params=MinLSTMParams, layer_forward=layer_forward,
    layer_weights=lambda p: (p,), draw=draw, activations=("linear",), inits=("pytorch",),
    scaled_inits=(), theory=theory, reference_step=reference_step, check=check,
    recurrent=None, refuses=REFUSES, module=module,
    paper="Feng et al. 2024 (arXiv:2410.01201)"))
