"""Mamba's selective state space, S6 (Gu and Dao 2023, "Mamba: linear-time sequence modeling with
selective state spaces", arXiv:2312.00752, section 3 and algorithm 2; written after the official
code state-spaces/mamba, ``mamba_ssm/modules/mamba_simple.py``, class ``Mamba``, and its
reference scan ``mamba_ssm/ops/selective_scan_interface.py: selective_scan_ref``):

    u_t = W_u x_t                                              (N channels d, no bias)
    z_t = W_x u_t = (z^dt_t, B_t, C_t)                          (dt_rank, d_state, d_state)
    Delta_t = softplus(W_dt z^dt_t + b_dt)                      (N,)
    h_t[d, n] = exp(Delta_t[d] A[d, n]) h_{t-1}[d, n] + Delta_t[d] B_t[n] u_t[d]
    y_t[d] = sum_n C_t[n] h_t[d, n] + D[d] u_t[d],              A = -exp(A_log)

This is the cell S6, the selective SSM alone. In the Mamba block the scan reads the output of a
linear layer ``in_proj`` (its x half), a causal depthwise convolution and a SiLU, and its output
is multiplied by SiLU(z) (the other half) before ``out_proj``. Here u_t = W_u x_t is that x half
of ``in_proj`` (bias-free, as the official default), and the convolution and the gate are left
out: neither touches dh_t/dh_{t-1} (the convolution acts on the inputs, the gate on the output),
and with them the state would be the scan's h plus the convolution's window. A layer therefore
takes any input width D and reads the task's input itself.

The measured state is h, N d_state numbers, flattened channel-major (index d d_state + n): one
part "h". ``MambaParams.hidden_size`` is that width; ``channels`` is N = ``model.hidden_size``,
the width of y_t. The gates see the input only, so the step Jacobian is diagonal,

    dh_t/dh_{t-1} = diag(exp(Delta_t A)),
    ||dh_t/dh_k|| = max_(d,n) prod_{s=k+1..t} exp(Delta_s[d] A[d, n]),

and the layer's maps are the minGRU's ``DiagonalLayer``. The input enters a step as

    dh_t[d, n]/dx_t = (A a h_{t-1} + B_t[n] u_t[d])[d, n] s(pre_t[d]) (W_dt W_x^dt W_u)[d]
                      + Delta_t[d] u_t[d] (W_x^B W_u)[n] + Delta_t[d] B_t[n] W_u[d]

(pre_t = W_dt z^dt_t + b_dt, s the logistic sigmoid, softplus' = s; a = exp(Delta_t A)): three
coefficient blocks on three stacked input weights (a stack's input cotangent and tangent).

The loss reads y_t, not h_t: o_t = V y_t + c, with the input-dependent C_t exactly. y_t is linear
in h_t at fixed inputs, dy_t[d]/dh_t[d', n] = [d = d'] C_t[n], so the engine computes dL_t/dy_t
with its linear readout (V, c) and pulls it back, g_t[d, n] = (dL_t/dy_t)[d] C_t[n]
(``Cell.output``, ``rnnlab.engine.cells.stack.Output``).

Initial weights, the official ones (``Mamba.__init__``), drawn in float64 from the run's
generator in this order: W_u ~ U(-k, k), k = ``model.input_gain`` / sqrt D (``in_proj``, torch's
default Linear init at input_gain 1); W_x ~ U(-1/sqrt N, 1/sqrt N) (``x_proj``, torch's default);
W_dt ~ U(-dt_rank^-0.5 dt_scale, +dt_rank^-0.5 dt_scale) (``dt_init="random"``); dt =
exp(U (ln dt_max - ln dt_min) + ln dt_min) clamped >= dt_init_floor, U ~ U[0, 1), and b_dt =
dt + ln(-expm1(-dt)), the inverse of softplus, so softplus(b_dt) = dt; A_log[d, n] = ln(n + 1)
(S4D-real, A[d, n] = -(n + 1)); D = 1. dt_rank = ceil(N / 16) (``"auto"``) unless given.
Defaults: d_state 16, dt_min 0.001, dt_max 0.1, dt_init_floor 1e-4, dt_scale 1.

Theory (``rnnlab.theory.mamba_log_keep``): at white input x_t ~ N(0, input_std^2 I) channel d's
pre-activation pre_t[d] is N(b_dt[d], input_std^2 ||(W_dt W_x^dt W_u)[d]||^2), independent across
steps, so E[ln a[d, n]] = A[d, n] E[softplus(pre[d])], and the long-lag rate is the slowest
unit's, max_(d,n), which is n = 0 (A = -1) on the channel of smallest E[Delta]: about -dt of
the smallest drawn dt at init (between -0.1 and -0.001 nats per step).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ... import theory as th
from ...checks import ConfigError, integer, number
from ..init import uniform
from . import Cell, register
from .mingru import REFUSES, DiagonalLayer, numpy_rows, sequential_scan, shifted
from .stack import Output

# the model.* keys only Mamba takes, and their defaults (conf/model/mamba.yaml holds the same;
# dt_rank null: ceil(N / 16), the official "auto")
DEFAULTS = {"d_state": 16, "dt_rank": None, "dt_min": 0.001, "dt_max": 0.1,
            "dt_init_floor": 1e-4, "dt_scale": 1.0}
TENSORS = ("W_u", "W_x", "W_dt", "b_dt", "A_log", "D", "V", "c")


def auto_rank(N: int, dt_rank: int | None) -> int:
    """dt_rank, or ceil(N / 16) where it is null (the official ``dt_rank="auto"``)."""
    return math.ceil(N / 16) if dt_rank is None else dt_rank


def inverse_softplus(v: Tensor) -> Tensor:
    """softplus^-1(v) = v + ln(-expm1(-v)) for v > 0 (the official dt-bias formula)."""
    return v + torch.log(-torch.expm1(-v))


def draw_dt(N: int, dt_min: float, dt_max: float, floor: float, rand: Tensor) -> Tensor:
    """The official dt: exp(U (ln dt_max - ln dt_min) + ln dt_min) clamped >= floor, for the
    uniform draws ``rand`` (N,) in [0, 1)."""
    log_min, log_max = math.log(dt_min), math.log(dt_max)
    return torch.exp(rand * (log_max - log_min) + log_min).clamp(min=floor)


def s4d_real(N: int, d_state: int, dtype=torch.float64) -> Tensor:
    """A_log[d, n] = ln(n + 1) (N, d_state): S4D-real, A = -(1, 2, ..., d_state) per channel."""
    return torch.log(torch.arange(1, d_state + 1, dtype=dtype)).repeat(N, 1)


@dataclass(frozen=True)
class MambaParams:
    """An S6 layer: input projection W_u (N, D), x_proj W_x (dt_rank + 2 d_state, N), dt_proj
    W_dt (N, dt_rank) and b_dt (N,), A_log (N, d_state), skip D (N,); readout V (C, N), c (C,)
    of y_t."""

    W_u: Tensor
    W_x: Tensor
    W_dt: Tensor
    b_dt: Tensor
    A_log: Tensor
    D: Tensor
    V: Tensor
    c: Tensor
    cell: str = "mamba"

    @property
    def channels(self) -> int:
        """N: the channels d, the width of u_t and y_t (``model.hidden_size``)."""
        return self.W_u.shape[0]

    @property
    def d_state(self) -> int:
        return self.A_log.shape[1]

    @property
    def dt_rank(self) -> int:
        return self.W_dt.shape[1]

    @property
    def hidden_size(self) -> int:
        """The measured state's width, N d_state (h flattened channel-major)."""
        return self.channels * self.d_state

    @property
    def A(self) -> Tensor:
        return -torch.exp(self.A_log)

    def tensors(self) -> dict:
        return {k: getattr(self, k) for k in TENSORS}

    def to(self, device=None, dtype=None) -> MambaParams:
        return replace(self, **{k: v.to(device=device, dtype=dtype)
                                for k, v in self.tensors().items()})


def project(p, x: Tensor):
    """(u, pre, B, C) of inputs x (..., D): the channels' input, Delta's pre-activation
    W_dt z^dt + b_dt (N,), and the input-dependent B, C (d_state,). ``p`` has W_u, W_x, W_dt,
    b_dt (``MambaParams`` or the trainable module's ``weights()``)."""
    u = x @ p.W_u.T
    z = u @ p.W_x.T
    r, n = p.W_dt.shape[1], (p.W_x.shape[0] - p.W_dt.shape[1]) // 2
    pre = z[..., :r] @ p.W_dt.T + p.b_dt
    return u, pre, z[..., r:r + n], z[..., r + n:]


def scan_terms(A: Tensor, u: Tensor, delta: Tensor, B: Tensor) -> tuple[Tensor, Tensor]:
    """(ln a, b) flattened (..., N d_state): ln a = Delta A, b = Delta B u (the step's
    h <- a h + b)."""
    log_a = (delta.unsqueeze(-1) * A).flatten(-2)
    b = ((delta * u).unsqueeze(-1) * B.unsqueeze(-2)).flatten(-2)
    return log_a, b


def read(h: Tensor, u: Tensor, C: Tensor, D: Tensor) -> Tensor:
    """y = sum_n C[n] h[d, n] + D u for h (..., N d_state), u (..., N), C (..., d_state)."""
    hv = h.unflatten(-1, (u.shape[-1], C.shape[-1]))
    return (hv * C.unsqueeze(-2)).sum(-1) + D * u


def layer_forward(p: MambaParams, inp: Tensor, h: Tensor):
    """S6 over inp (T, B, D) from h (B, N d_state), step by step; the projections of every step
    in one product each (they see x only). The maps keep the factors a = exp(Delta A); a stack's
    input coefficients are recomputed per step from the input and the state entering it."""
    u, pre, Bm, _ = project(p, inp)
    A = p.A
    log_a, b = scan_terms(A, u, F.softplus(pre), Bm)
    a = torch.exp(log_a)
    hs = sequential_scan(a, b, h)
    del u, pre, Bm, log_a, b
    r, n = p.dt_rank, p.d_state
    # the three input weights, one row per state entry (d, n): (W_dt W_x^dt W_u)[d],
    # (W_x^B W_u)[n], W_u[d]
    W_in = torch.cat([(p.W_dt @ p.W_x[:r] @ p.W_u).repeat_interleave(n, 0),
                      (p.W_x[r:r + n] @ p.W_u).repeat(p.channels, 1),
                      p.W_u.repeat_interleave(n, 0)])

    def coefficients(t: int) -> Tensor:
        """The three blocks of dh_t/dx_t's coefficients (module docstring), side by side."""
        h_prev = (hs[t - 1] if t > 0 else h).unflatten(-1, (p.channels, n))
        u_t, pre_t, B_t, _ = project(p, inp[t])
        delta = F.softplus(pre_t).unsqueeze(-1)
        a_t = torch.exp(delta * A)
        c_dt = (A * a_t * h_prev + B_t.unsqueeze(-2) * u_t.unsqueeze(-1)) \
            * torch.sigmoid(pre_t).unsqueeze(-1)
        c_B = (delta * u_t.unsqueeze(-1)).expand_as(c_dt)
        c_u = delta * B_t.unsqueeze(-2)
        return torch.cat([c_dt.flatten(-2), c_B.flatten(-2), c_u.flatten(-2)], -1)

    return (hs,), lambda sl: DiagonalLayer(a[sl], W_in, shifted(coefficients, sl, len(inp)))


def output(p: MambaParams, x: Tensor, h: Tensor) -> Output:
    """What the readout reads: y_t = C_t h_t + D u_t (T, B, N) from the measured inputs x (B, T,
    D) and states h (T, B, N d_state), and the pull-back of its cotangent, g_t[d, n] =
    (dL_t/dy_t)[d] C_t[n] (dy_t/dh_t at fixed inputs)."""
    u, _, _, C = project(p, x.transpose(0, 1))

    def vjp(g: Tensor) -> Tensor:
        return (g.unsqueeze(-1) * C.to(g.dtype).unsqueeze(-2)).flatten(-2)

    return Output(read(h, u, C, p.D), vjp)


def draw(model, T: int, gen: torch.Generator) -> dict:
    """Every tensor but the readout in float64 from ``gen``, in the module docstring's order."""
    N, D, n = model.hidden_size, model.input_size, model.d_state
    r = auto_rank(N, model.dt_rank)
    W_u = uniform((N, D), model.input_gain / math.sqrt(D), gen)
    W_x = uniform((r + 2 * n, N), 1 / math.sqrt(N), gen)
    W_dt = uniform((N, r), model.dt_scale / math.sqrt(r), gen)
    rand = torch.rand(N, generator=gen, dtype=torch.float64)
    dt = draw_dt(N, model.dt_min, model.dt_max, model.dt_init_floor, rand)
    return dict(W_u=W_u, W_x=W_x, W_dt=W_dt, b_dt=inverse_softplus(dt),
                A_log=s4d_real(N, n), D=torch.ones(N, dtype=torch.float64))


def check(model) -> None:
    """d_state an integer >= 1; dt_rank null or an integer >= 1; 0 < dt_min <= dt_max;
    dt_init_floor and dt_scale finite numbers >= 0; no random bias (the official projections have
    none, and b_dt is the dt init)."""
    integer("model.d_state", model.d_state, 1)
    if model.dt_rank is not None:
        integer("model.dt_rank", model.dt_rank, 1)
    number("model.dt_min", model.dt_min, positive=True)
    number("model.dt_max", model.dt_max, positive=True)
    if model.dt_min > model.dt_max:
        raise ConfigError(f"model.dt_min={model.dt_min!r} > model.dt_max={model.dt_max!r}; dt "
                          "is drawn log-uniformly in [dt_min, dt_max], so 0 < dt_min <= dt_max")
    number("model.dt_init_floor", model.dt_init_floor)
    number("model.dt_scale", model.dt_scale)
    for key in ("bias_std", "gate_bias"):
        value = getattr(model, key, 0)  # a training run's model has neither key
        if value != 0:
            raise ConfigError(f"model.{key}={value!r} with model.cell='mamba': its biases are "
                              f"the dt init (Gu and Dao 2023); use model.{key}=0")


def unit_rates(p: MambaParams, input_std: float) -> np.ndarray:
    """E[ln a[d, n]] = A[d, n] E[softplus(pre[d])] per state entry (N, d_state) at white input
    x_t ~ N(0, input_std^2 I), nats per step (numpy)."""
    s = input_std * np.linalg.norm(numpy_rows(p.W_dt @ p.W_x[:p.dt_rank] @ p.W_u), axis=1)
    return th.mamba_log_keep(numpy_rows(p.A), numpy_rows(p.b_dt), s)


def theory(p: MambaParams, model, data) -> dict:
    """``diag_rate`` = max_(d,n) A[d, n] E[softplus(b_dt[d] + input_std ||(W_dt W_x^dt W_u)[d]||
    z)], z ~ N(0, 1) (``rnnlab.theory.mamba_log_keep``): the long-lag rate of ||dh_t/dh_k||
    (the slowest unit's); ``diag_rate_min`` the fastest unit's. Nats per step."""
    rates = unit_rates(p, data.input_std)
    return {"diag_rate": float(rates.max()), "diag_rate_min": float(rates.min())}


def step(p: MambaParams, x_t: Tensor, h: Tensor) -> Tensor:
    """The S6 step written out on the flattened state (differentiable; the autograd reference
    and the derived maps)."""
    u, pre, Bm, _ = project(p, x_t)
    log_a, b = scan_terms(p.A, u, F.softplus(pre), Bm)
    return torch.exp(log_a) * h + b


def reference_step(p: MambaParams):
    return lambda x_t, s: (step(p, x_t, s[0]),)


def reference_output(p: MambaParams):
    """The layer's output y_t = C_t h_t + D u_t (B, N) of the step's input x_t and new state,
    differentiable: what the next layer of a stack reads (``rnnlab.engine.stacks``)."""
    def out(x_t: Tensor, s: tuple) -> Tensor:
        u, _, _, C = project(p, x_t)
        return read(s[0], u, C, p.D)
    return out


class MambaS6(nn.Module):
    """The trainable S6 layer, batch first, with the official parameter names and init:
    ``in_proj`` = ``nn.Linear(D, N, bias=False)`` (the block's x half), ``x_proj`` =
    ``nn.Linear(N, dt_rank + 2 d_state, bias=False)``, ``dt_proj`` = ``nn.Linear(dt_rank, N)``
    (weight U(+-dt_rank^-0.5 dt_scale), bias the inverse softplus of the log-uniform dt),
    ``A_log`` (N, d_state) S4D-real and ``D`` (N,) = 1, drawn from the global RNG in ``dtype``.

    State (h,) with h (B, N d_state) flattened channel-major, the engine's measured state;
    ``step`` the S6 step; ``output(x_t, state)`` y_t (B, N) of the step's input and the state it
    produced (what a stack's next layer reads); ``features(h, x)`` the same for every step (what
    the readout sees). ``forward(x (B, T, D), h0=None) -> (y (B, T, N), h_last (1, B, N
    d_state))``: the projections of every step at once, then the recurrence."""

    fused = True

    def __init__(self, input_size: int, hidden_size: int, d_state: int, dt_rank: int | None,
                 dt_min: float, dt_max: float, dt_init_floor: float, dt_scale: float,
                 dtype: torch.dtype | None = None):
        super().__init__()
        self.input_size, self.hidden_size, self.d_state = input_size, hidden_size, d_state
        N, r = hidden_size, auto_rank(hidden_size, dt_rank)
        self.dt_rank = r
        self.in_proj = nn.Linear(input_size, N, bias=False, dtype=dtype)
        self.x_proj = nn.Linear(N, r + 2 * d_state, bias=False, dtype=dtype)
        self.dt_proj = nn.Linear(r, N, dtype=dtype)
        std = dt_scale / math.sqrt(r)
        nn.init.uniform_(self.dt_proj.weight, -std, std)
        dtype = self.dt_proj.weight.dtype
        dt = draw_dt(N, dt_min, dt_max, dt_init_floor, torch.rand(N, dtype=dtype))
        with torch.no_grad():
            self.dt_proj.bias.copy_(inverse_softplus(dt))
        self.A_log = nn.Parameter(s4d_real(N, d_state, dtype))
        self.D = nn.Parameter(torch.ones(N, dtype=dtype))

    def weights(self) -> MambaParams:
        """The weights as ``project`` reads them (a ``MambaParams`` with the graph, no readout)."""
        empty = self.D.new_zeros(0)
        return MambaParams(W_u=self.in_proj.weight, W_x=self.x_proj.weight,
                           W_dt=self.dt_proj.weight, b_dt=self.dt_proj.bias, A_log=self.A_log,
                           D=self.D, V=empty, c=empty)

    def init_state(self, batch_size: int) -> tuple[Tensor]:
        return (self.D.new_zeros(batch_size, self.hidden_size * self.d_state),)

    def step(self, x_t: Tensor, state: tuple[Tensor]) -> tuple[Tensor]:
        return (step(self.weights(), x_t, state[0]),)

    def output(self, x_t: Tensor, state: tuple[Tensor]) -> Tensor:
        """y_t = C_t h_t + D u_t (B, N) for the step's input x_t (B, D) and its new state."""
        return self.features(state[0], x_t)

    def features(self, h: Tensor, x: Tensor) -> Tensor:
        """y = C h + D u for states h (..., N d_state) and inputs x (..., D) of the same steps."""
        p = self.weights()
        u, _, _, C = project(p, x)
        return read(h, u, C, p.D)

    def forward(self, x: Tensor, h0: Tensor | None = None):
        B, S = x.shape[0], self.hidden_size * self.d_state
        if h0 is None:
            h = self.init_state(B)[0]
        elif tuple(h0.shape) != (1, B, S):
            raise ValueError(f"h0 has shape {tuple(h0.shape)}; MambaS6 takes (1, batch, "
                             f"hidden_size * d_state) = (1, {B}, {S})")
        else:
            h = h0[0]
        p = self.weights()
        u, pre, Bm, C = project(p, x)
        log_a, b = scan_terms(p.A, u, F.softplus(pre), Bm)
        hs = sequential_scan(torch.exp(log_a).transpose(0, 1), b.transpose(0, 1),
                             h).transpose(0, 1)
        return read(hs, u, C, p.D), hs[:, -1].unsqueeze(0)

    def engine_params(self, head: nn.Linear) -> MambaParams:
        """The engine's ``MambaParams`` of these weights with ``head``'s readout, detached."""
        w = {k: v.detach() for k, v in self.weights().tensors().items() if k not in ("V", "c")}
        return MambaParams(**w, V=head.weight.detach(), c=head.bias.detach())


def module(input_size: int, hidden_size: int, model: dict, dtype=None) -> MambaS6:
    """The trainable S6 layer with Mamba's keys of ``model`` (a null takes ``DEFAULTS``; a null
    dt_rank is ceil(N / 16)), from the global RNG, in ``dtype``."""
    keys = {k: v if model.get(k) is None else model[k] for k, v in DEFAULTS.items()}
    return MambaS6(input_size, hidden_size, **keys, dtype=dtype)


CELL = register(Cell(
    name="mamba", params=MambaParams, layer_forward=layer_forward,
    layer_weights=lambda p: (p,), draw=draw, activations=("linear",), inits=("mamba",),
    scaled_inits=(), theory=theory, reference_step=reference_step, check=check,
    keys=DEFAULTS, recurrent=None, output=output, reference_output=reference_output,
    module=module,
    refuses=REFUSES + (("weights", "redrawn", "its readout reads y_t = C_t h_t + D u_t through "
                        "the step's own weights, which a redrawn run does not keep"),),
    paper="Gu and Dao 2023 (arXiv:2312.00752)"))
