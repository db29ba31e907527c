"""RG-LRU, the real-gated linear recurrent unit of Hawk and Griffin (De et al. 2024, "Griffin:
mixing gated linear recurrences with local attention", arXiv:2402.19427, section 2.4; written after
the authors' code google-deepmind/recurrentgemma, ``recurrentgemma/torch/layers.py``, class
``RGLRU``):

    u_t = U x_t                                    (input projection, N x D, no bias)
    r_t = s(W_a u_t + b_a),   i_t = s(W_x u_t + b_x)          (recurrence and input gates)
    ln a_t = -c r_t softplus(Lambda),   c = 8      (a_t = a_0^(c r_t), a_0 = s(-Lambda))
    h_t = a_t h_{t-1} + sqrt(1 - a_t^2) (i_t u_t)

with s the logistic sigmoid. The recurrence multiplies the gated input elementwise, so its input
must have the state's width N. In the Griffin block that input is the output of a linear layer
(and a short convolution) of the residual stream; here it is u_t = U x_t, the block's linear
layer without its bias and without the convolution, so a layer takes any input width D (and a
stack of RG-LRU layers is well defined). W_a, W_x are block-diagonal with ``model.heads`` blocks
of width N / heads, as the authors' ``BlockDiagonalLinear`` (heads = 1: dense).

The gates see the input only, so the step Jacobian is diagonal,

    dh_t/dh_{t-1} = diag(a_t),   ||dh_t/dh_k|| = max_i prod_{s=k+1..t} a_{i,s},

and the input enters a step as dh_t/dx_t = [diag(e_a) W_a + diag(e_x) W_x + diag(n_t i_t)] U,
n_t = sqrt(1 - a_t^2), e_x = n_t u_t i_t (1 - i_t), e_a = (h_{t-1} - a_t i_t u_t / n_t) da_t,
da_t = -c softplus(Lambda) a_t r_t (1 - r_t) (a stack's input cotangent; ``mingru.DiagonalLayer``
holds these maps).

``model.bound_normaliser`` (true as in the authors' code): the trainable module's sqrt(1 - a_t^2)
has its derivative bounded at 1000 (d sqrt(v)/dv = 1 / sqrt(max(4 v, 1e-6))), which keeps
training finite where a_t -> 1. It changes only the backward pass of training, never a forward
value: the measured dh_t/dh_{t-1} = diag(a_t) (which does not pass through the normaliser) is the
same either way, and the engine's input maps use the exact derivative. It matters for training
only.

Initial weights as the authors' code: a_0^2 = s(-Lambda)^2 ~ U[0.9^2, 0.999^2] (their ring
variable is the "a" of ``rnn_param_init``, a_0, the decay at c r_t = 1, i.e. r_t = 1/8; without
their 1e-8), Lambda = ln(1/a_0 - 1) so softplus(Lambda) = -ln a_0; gate weights N(0, 1/(N/heads))
(their ``w_init_variance_scale`` = 1 over the block width), gate biases 0; U_ij ~ N(0,
input_gain^2/D) (the block's linear layer at variance scale 1 times ``model.input_gain``).

Theory (``rnnlab.theory.rglru_log_keep``): at white input x_t ~ N(0, sigma_x^2 I) unit i's gate
pre-activation is N(b_a,i, sigma_x^2 ||(W_a U)_i||^2), so E[ln a_i] = -c softplus(Lambda_i)
E[s(pre)] = c ln a_0,i E[s(pre)], and the long-lag rate is the slowest unit's, max_i E[ln a_i].
At init (b_a = 0) E[s] = 1/2 exactly (s(-v) = 1 - s(v)), so the rate is 4 ln max_i a_0,i, between
4 ln 0.9 and 4 ln 0.999 nats per step.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ... import theory as th
from ...checks import ConfigError, flag, integer
from . import Cell, register
from .mingru import REFUSES, DiagonalLayer, numpy_rows, sequential_scan, shifted

C = 8.0  # the exponent scale c of a_t = a_0^(c r_t) (the authors' constant)
A0_MIN, A0_MAX = 0.9, 0.999  # the ring of a_0 at init (the authors' min_rad, max_rad)
MAX_SQRT_GRADIENT = 1000.0  # the bound on d sqrt(1 - a^2) / d(1 - a^2) in training
# the model.* keys only the RG-LRU takes, and their defaults (conf/model/rglru.yaml holds the same)
DEFAULTS = {"heads": 1, "bound_normaliser": True}
TENSORS = ("U", "W_a", "b_a", "W_x", "b_x", "Lam", "V", "c")


@dataclass(frozen=True)
class RGLRUParams:
    """An RG-LRU layer: input projection U (N, D), gate weights W_a, W_x (N, N, block-diagonal),
    gate biases b_a, b_x (N,), Lambda ``Lam`` (N,); readout V (C, N), c (C,)."""

    U: Tensor
    W_a: Tensor
    b_a: Tensor
    W_x: Tensor
    b_x: Tensor
    Lam: Tensor
    V: Tensor
    c: Tensor
    cell: str = "rglru"

    @property
    def hidden_size(self) -> int:
        return self.U.shape[0]

    @property
    def log_a0(self) -> Tensor:
        """ln a_0 = -softplus(Lambda) (N,): ln a_t = c r_t ln a_0."""
        return -F.softplus(self.Lam)

    def tensors(self) -> dict:
        return {k: getattr(self, k) for k in TENSORS}

    def to(self, device=None, dtype=None) -> RGLRUParams:
        return replace(self, **{k: v.to(device=device, dtype=dtype)
                                for k, v in self.tensors().items()})


def gates(p: RGLRUParams, x: Tensor):
    """(u, r, i, ln a) of inputs x (..., D): the projected input, both gates, the log decay."""
    u = x @ p.U.T
    r = torch.sigmoid(u @ p.W_a.T + p.b_a)
    i = torch.sigmoid(u @ p.W_x.T + p.b_x)
    return u, r, i, C * r * p.log_a0


def normaliser(log_a: Tensor) -> Tensor:
    """sqrt(1 - a^2) from ln a, accurate as a -> 1 (1 - a^2 = -expm1(2 ln a))."""
    return torch.sqrt(-torch.expm1(2 * log_a))


def layer_forward(p: RGLRUParams, inp: Tensor, h: Tensor):
    """The RG-LRU over inp (T, B, D) from h (B, N), step by step; the gates of every step in one
    product each (they see x only). The maps keep the factors a_t; a stack's input coefficients
    are recomputed per step from the input and the state entering it."""
    u, _, i, log_a = gates(p, inp)
    a = torch.exp(log_a)
    hs = sequential_scan(a, normaliser(log_a) * i * u, h)
    del u, i, log_a
    W_in = torch.cat([p.W_a @ p.U, p.W_x @ p.U, p.U])
    sp = F.softplus(p.Lam)

    def coefficients(t: int) -> Tensor:
        """e_a, e_x and n i (module docstring), side by side, at step t of ``inp``."""
        h_prev = hs[t - 1] if t > 0 else h
        u_t, r_t, i_t, log_a_t = gates(p, inp[t])
        a_t, n_t = torch.exp(log_a_t), normaliser(log_a_t)
        da = -C * sp * a_t * r_t * (1 - r_t)
        e_a = (h_prev - a_t * i_t * u_t / n_t) * da
        return torch.cat([e_a, n_t * u_t * i_t * (1 - i_t), n_t * i_t], -1)

    return (hs,), lambda sl: DiagonalLayer(a[sl], W_in, shifted(coefficients, sl, len(inp)))


def block_diagonal(blocks: Tensor) -> Tensor:
    """The (N, N) matrix of ``heads`` blocks (heads, w, w), block h acting on units h w..h w + w
    as the authors' einsum "h i, h i j -> h j" does: the dense rows are each block transposed."""
    return torch.block_diag(*blocks.transpose(-1, -2))


def draw(model, T: int, gen: torch.Generator) -> dict:
    """Every tensor but the readout in float64 from ``gen`` (module docstring's init): U, W_a,
    W_x, then a_0^2 ~ U[0.9^2, 0.999^2]; biases 0."""
    N, D, H = model.hidden_size, model.input_size, model.heads
    f64 = dict(generator=gen, dtype=torch.float64)
    w = N // H
    U = torch.randn(N, D, **f64) * (model.input_gain / math.sqrt(D))
    W_a = block_diagonal(torch.randn(H, w, w, **f64) / math.sqrt(w))
    W_x = block_diagonal(torch.randn(H, w, w, **f64) / math.sqrt(w))
    a0 = torch.sqrt(A0_MIN ** 2 + torch.rand(N, **f64) * (A0_MAX ** 2 - A0_MIN ** 2))
    zeros = torch.zeros(N, dtype=torch.float64)
    return dict(U=U, W_a=W_a, b_a=zeros, W_x=W_x, b_x=zeros.clone(), Lam=torch.log(1 / a0 - 1))


def check(model) -> None:
    """``model.heads`` an integer >= 1 dividing ``model.hidden_size``; ``model.bound_normaliser`` a
    bool; no random bias (the gate biases start at 0, as the authors')."""
    heads = model.heads
    integer("model.heads", heads, 1)
    N = getattr(model, "hidden_size", None)
    if N is not None and N % heads:
        raise ConfigError(f"model.heads={heads!r} does not divide model.hidden_size={N!r}; the "
                          "gates are block-diagonal with heads blocks of equal width")
    flag("model.bound_normaliser", model.bound_normaliser)
    for key in ("bias_std", "gate_bias"):
        value = getattr(model, key, 0)  # a training run's model has neither key
        if value != 0:
            raise ConfigError(f"model.{key}={value!r} with model.cell='rglru': its gate biases "
                              f"start at 0 (De et al. 2024); use model.{key}=0")


def theory(p: RGLRUParams, model, data) -> dict:
    """``diag_rate`` = max_i E[ln a_i] = max_i c ln a_0,i E[s(b_a,i + input_std ||(W_a U)_i|| z)],
    z ~ N(0, 1) (``rnnlab.theory.rglru_log_keep``): the long-lag rate of ||dh_t/dh_k|| (the
    slowest unit's); ``diag_rate_min`` the fastest unit's. Nats per step."""
    rates = unit_rates(p, data.input_std)
    return {"diag_rate": float(rates.max()), "diag_rate_min": float(rates.min())}


def unit_rates(p: RGLRUParams, input_std: float):
    """E[ln a_i] per unit at white input x_t ~ N(0, input_std^2 I), nats per step (numpy)."""
    s = input_std * np.linalg.norm(numpy_rows(p.W_a @ p.U), axis=1)
    return th.rglru_log_keep(numpy_rows(p.log_a0), s, numpy_rows(p.b_a), C)


def step(p: RGLRUParams, x_t: Tensor, h: Tensor) -> Tensor:
    """The paper's step, written out (differentiable; the autograd reference)."""
    u, _, i, log_a = gates(p, x_t)
    return torch.exp(log_a) * h + torch.sqrt(1 - torch.exp(2 * log_a)) * (i * u)


def reference_step(p: RGLRUParams):
    return lambda x_t, s: (step(p, x_t, s[0]),)


class BoundedSqrt(torch.autograd.Function):
    """sqrt(v) whose derivative 1 / (2 sqrt v) is capped at ``MAX_SQRT_GRADIENT`` (the forward
    value is sqrt(v) exactly)."""

    @staticmethod
    def forward(ctx, v: Tensor) -> Tensor:
        ctx.save_for_backward(v)
        return torch.sqrt(v)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (v,) = ctx.saved_tensors
        return grad / torch.sqrt(torch.clamp(4 * v, min=MAX_SQRT_GRADIENT ** -2))


class BlockDiagonal(nn.Module):
    """y = x W + b per block, weights ``w`` (heads, w, w) ~ N(0, 1/w), ``b`` (heads, w) = 0: the
    authors' ``BlockDiagonalLinear`` (its parameter names and init)."""

    def __init__(self, width: int, heads: int, dtype=None):
        super().__init__()
        self.heads, block = heads, width // heads
        self.w = nn.Parameter(torch.randn(heads, block, block, dtype=dtype) / math.sqrt(block))
        self.b = nn.Parameter(torch.zeros(heads, block, dtype=dtype))

    def forward(self, x: Tensor) -> Tensor:
        xb = x.unflatten(-1, (self.heads, -1))
        return (torch.einsum("...hi,hij->...hj", xb, self.w) + self.b).flatten(-2)

    def dense(self) -> tuple[Tensor, Tensor]:
        """(W (N, N), b (N,)) with W x + b = this layer of x, detached."""
        return block_diagonal(self.w.detach()), self.b.detach().reshape(-1)


class RGLRU(nn.Module):
    """The trainable RG-LRU, batch first: ``linear_x`` = ``nn.Linear(D, N, bias=False)`` ~ N(0,
    1/D), ``input_gate`` and ``a_gate`` the block-diagonal gates, ``a_param`` = Lambda (the
    authors' names), from the global RNG in ``dtype``. ``step`` is the paper's step;
    ``forward(x (B, T, D), h0=None) -> (h (B, T, N), h_last (1, B, N))`` its steps, the gates of
    every step at once, as ``torch.nn.RNN`` returns (output, h_n). With ``bound_normaliser`` the
    derivative of sqrt(1 - a^2) is capped at 1000 (module docstring; forward values unchanged)."""

    fused = True

    def __init__(self, input_size: int, hidden_size: int, heads: int = 1,
                 bound_normaliser: bool = True, dtype: torch.dtype | None = None):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.heads, self.bound_normaliser = heads, bound_normaliser
        self.linear_x = nn.Linear(input_size, hidden_size, bias=False, dtype=dtype)
        nn.init.normal_(self.linear_x.weight, std=1 / math.sqrt(input_size))
        self.input_gate = BlockDiagonal(hidden_size, heads, dtype)
        self.a_gate = BlockDiagonal(hidden_size, heads, dtype)
        a0 = torch.sqrt(A0_MIN ** 2 + torch.rand(hidden_size, dtype=dtype)
                        * (A0_MAX ** 2 - A0_MIN ** 2))
        self.a_param = nn.Parameter(torch.log(1 / a0 - 1))

    def init_state(self, batch_size: int) -> tuple[Tensor]:
        return (self.a_param.new_zeros(batch_size, self.hidden_size),)

    def _drive(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(a, sqrt(1 - a^2) i u) of inputs x (..., D)."""
        u = self.linear_x(x)
        log_a = -C * torch.sigmoid(self.a_gate(u)) * F.softplus(self.a_param)
        v = -torch.expm1(2 * log_a)
        n = BoundedSqrt.apply(v) if self.bound_normaliser else torch.sqrt(v)
        return torch.exp(log_a), n * torch.sigmoid(self.input_gate(u)) * u

    def step(self, x_t: Tensor, state: tuple[Tensor]) -> tuple[Tensor]:
        a, b = self._drive(x_t)
        return (a * state[0] + b,)

    def forward(self, x: Tensor, h0: Tensor | None = None):
        B, N = x.shape[0], self.hidden_size
        if h0 is None:
            h = self.init_state(B)[0]
        elif tuple(h0.shape) != (1, B, N):
            raise ValueError(f"h0 has shape {tuple(h0.shape)}; RGLRU takes (1, batch, "
                             f"hidden_size) = (1, {B}, {N})")
        else:
            h = h0[0]
        a, b = self._drive(x)
        hs = sequential_scan(a.transpose(0, 1), b.transpose(0, 1), h).transpose(0, 1)
        return hs, hs[:, -1].unsqueeze(0)

    def engine_params(self, head: nn.Linear) -> RGLRUParams:
        """The engine's ``RGLRUParams`` of these weights with ``head``'s readout, detached."""
        W_a, b_a = self.a_gate.dense()
        W_x, b_x = self.input_gate.dense()
        return RGLRUParams(U=self.linear_x.weight.detach(), W_a=W_a, b_a=b_a, W_x=W_x, b_x=b_x,
                           Lam=self.a_param.detach(), V=head.weight.detach(),
                           c=head.bias.detach())


def module(input_size: int, hidden_size: int, model: dict, dtype=None) -> RGLRU:
    """The trainable RG-LRU with ``model.heads`` and ``model.bound_normaliser`` (a null takes
    ``DEFAULTS``), from the global RNG, in ``dtype``."""
    keys = {k: v if model.get(k) is None else model[k] for k, v in DEFAULTS.items()}
    return RGLRU(input_size, hidden_size, **keys, dtype=dtype)


CELL = register(Cell(
    name="rglru", params=RGLRUParams, layer_forward=layer_forward,
    layer_weights=lambda p: (p,), draw=draw, activations=("linear",), inits=("ring",),
    scaled_inits=(), theory=theory, reference_step=reference_step, check=check,
    keys=DEFAULTS, recurrent=None, refuses=REFUSES, module=module,
    paper="De et al. 2024 (arXiv:2402.19427)"))
