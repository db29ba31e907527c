"""minGRU (Feng et al. 2024, "Were RNNs all we needed?", arXiv:2410.01201, section 3.1 and
appendix B.3; code after lucidrains/minGRU-pytorch, ``minGRU_pytorch/minGRU.py``):

    z_t = s(W_z x_t),   h~_t = g(W_h x_t),   h_t = (1 - z_t) * h_{t-1} + z_t * h~_t,
    g(v) = v + 1/2 for v >= 0, s(v) for v < 0

with s the logistic sigmoid, no biases. The gates see x_t only, so the step Jacobian is diagonal,

    dh_t/dh_{t-1} = diag(1 - z_t),   ||dh_t/dh_k|| = max_i prod_{s=k+1..t} (1 - z_{i,s}),

and its long-lag rate is the slowest unit's mean log factor max_i E[ln(1 - z_i)] (theory hook:
``rnnlab.theory.mingru_log_keep``). The input enters a step as

    dh_t/dx_t = diag((h~_t - h_{t-1}) z_t (1 - z_t)) W_z + diag(z_t g'(W_h x_t)) W_h,

g'(v) = 1 for v >= 0 and s(v)(1 - s(v)) below (a stack's input cotangent).

Initial weights as ``torch.nn.Linear(D, 2N, bias=False)`` draws the reference code's one
``to_hidden_and_gate`` layer: every entry ~ U(-1/sqrt D, 1/sqrt D) (kaiming-uniform with
a = sqrt 5), times ``model.input_gain`` (1: PyTorch's), rows [W_h; W_z], from the run's
generator. The trainable module holds that very layer (with D = N its state_dict has the keys
and shapes of the reference code's ``minGRU(N)``) and runs a sequence by the paper's parallel
scan in log space (appendix B.3): with h_{-1} = 0 every h_t > 0, and

    ln h_t = A_t + logcumsumexp_k (ln z_k + ln g(W_h x_k) - A_k),   A_t = sum_{s<=t} ln(1 - z_s).

The measurement runs the recurrence step by step (``layer_forward``).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ... import theory as th
from ...checks import ConfigError
from ..init import uniform
from . import Cell, register


def g(v: Tensor) -> Tensor:
    """The paper's candidate activation: v + 1/2 for v >= 0, s(v) below (continuous, positive)."""
    return torch.where(v >= 0, v + 0.5, torch.sigmoid(v))


def g_prime(v: Tensor) -> Tensor:
    """dg/dv: 1 for v >= 0, s(v)(1 - s(v)) below (autograd's choice at v = 0 too)."""
    s = torch.sigmoid(v)
    return torch.where(v >= 0, torch.ones_like(v), s * (1 - s))


def log_g(v: Tensor) -> Tensor:
    """ln g(v), finite for every v: ln(v + 1/2) for v >= 0, -softplus(-v) below."""
    return torch.where(v >= 0, torch.log(F.relu(v) + 0.5), -F.softplus(-v))


@dataclass(frozen=True)
class MinGRUParams:
    """A minGRU: gate weights W_z (N, D), candidate weights W_h (N, D), readout V (C, N),
    c (C,)."""

    W_z: Tensor
    W_h: Tensor
    V: Tensor
    c: Tensor
    cell: str = "mingru"

    @property
    def hidden_size(self) -> int:
        return self.W_z.shape[0]

    def tensors(self) -> dict:
        return {k: getattr(self, k) for k in ("W_z", "W_h", "V", "c")}

    def to(self, device=None, dtype=None) -> MinGRUParams:
        return replace(self, **{k: v.to(device=device, dtype=dtype)
                                for k, v in self.tensors().items()})


class DiagonalLayer:
    """The step maps of a recurrence whose gates see the input only (minGRU, minLSTM):

        dh_k/dh_{k-1} = diag(a_k),   dh_k/dx_k = sum_g diag(c_{g,k}) W_g = [diag(c_k)] W_in

    with ``a`` (T, B, N) the recorded factors, W_in (G N, D) the input weights stacked and
    ``coefficients(k)`` (B, G N) the c_{g,k} of step k, computed when a stack asks for its input
    cotangent or tangent (a one-layer measurement never does). No recurrent matrix: the sweep's
    step is one elementwise product, D <- a_k D."""

    parts = ("h",)

    def __init__(self, a: Tensor, W_in: Tensor, coefficients: Callable[[int], Tensor]):
        self.a, self.W_in, self.coefficients = a, W_in, coefficients
        self.hidden = self.size = a.shape[-1]

    def vjp_(self, k: int, D: Tensor) -> None:
        D.mul_(self.a[k])

    def vjp(self, k: int, D: Tensor, need_input: bool):
        """(diag(a_k) D, (dh_k/dx_k)^T D) for D (m, B, N)."""
        out = D * self.a[k]
        if not need_input:
            return out, None
        G = self.W_in.shape[0] // self.size
        pre = torch.cat([D] * G, -1) * self.coefficients(k)  # cotangents of W_in x_k
        return out, torch.matmul(pre, self.W_in)

    def jvp(self, k: int, Q: Tensor, Q_in: Tensor | None = None) -> Tensor:
        """diag(a_k) Q (+ (dh_k/dx_k) Q_in) for Q (B, N, r), Q_in (B, D, r)."""
        out = self.a[k].unsqueeze(-1) * Q
        if Q_in is None:
            return out
        B, N, r = Q.shape
        moved = self.coefficients(k).unsqueeze(-1) * torch.matmul(self.W_in, Q_in)
        return out + moved.view(B, -1, N, r).sum(1)


def layer_forward(p: MinGRUParams, inp: Tensor, h: Tensor):
    """The minGRU over inp (T, B, D) from h (B, N), step by step; the gates' and candidates'
    pre-activations of every step in one product each (they see x only). The maps keep the
    factors a = 1 - z; a stack's input coefficients are recomputed per step from the input and
    the state entering it."""
    z = torch.sigmoid(torch.matmul(inp, p.W_z.T))
    a = 1 - z
    hs = sequential_scan(a, z * g(torch.matmul(inp, p.W_h.T)), h)
    del z
    W_in = torch.cat([p.W_z, p.W_h])

    def coefficients(t: int) -> Tensor:
        """(h~ - h_{t-1}) z (1 - z) and z g'(W_h x), side by side, at step t of ``inp``."""
        x_t, h_prev = inp[t], hs[t - 1] if t > 0 else h
        z_t, e_h = torch.sigmoid(x_t @ p.W_z.T), x_t @ p.W_h.T
        return torch.cat([(g(e_h) - h_prev) * z_t * (1 - z_t), z_t * g_prime(e_h)], -1)

    return (hs,), lambda sl: DiagonalLayer(a[sl], W_in, shifted(coefficients, sl, len(inp)))


def shifted(f: Callable[[int], Tensor], sl: slice, T: int) -> Callable[[int], Tensor]:
    """``f`` of the steps of ``sl`` (of T), indexed from 0: the maps of a slice of steps."""
    start = range(T)[sl].start
    return lambda k: f(start + k)


def sequential_scan(a: Tensor, b: Tensor, h: Tensor) -> Tensor:
    """h_t = a_t h_{t-1} + b_t for t = 0..T-1 from h (B, N), sequentially: (T, B, N)."""
    hs = []
    for t in range(a.shape[0]):
        h = a[t] * h + b[t]
        hs.append(h)
    return torch.stack(hs) if hs else h.new_zeros((0,) + tuple(h.shape))


def draw(model, T: int, gen: torch.Generator) -> dict:
    """W_h, W_z in float64 from ``gen``: the reference code's one (2N, D) layer, rows [W_h; W_z],
    each entry ~ U(-k, k), k = ``model.input_gain`` / sqrt D (the module docstring)."""
    N, D = model.hidden_size, model.input_size
    w = uniform((2 * N, D), model.input_gain / math.sqrt(D), gen)
    return dict(W_h=w[:N], W_z=w[N:])


def check(model) -> None:
    """No bias: ``model.bias_std`` and ``model.gate_bias`` must be 0 (the reference code's linear
    layers have none). Shared with the minLSTM."""
    for key in ("bias_std", "gate_bias"):
        value = getattr(model, key, 0)  # a training run's model has neither key
        if value != 0:
            raise ConfigError(f"model.{key}={value!r} with model.cell={model.cell!r}: its "
                              f"linear layers have no bias (Feng et al. 2024); use "
                              f"model.{key}=0")


def numpy_rows(W: Tensor):
    """A weight as a float64 numpy array, for ``rnnlab.theory``."""
    return W.detach().to("cpu", torch.float64).numpy()


def theory(p: MinGRUParams, model, data) -> dict:
    """``diag_rate`` = max_i E[ln(1 - z_i)] at white input x_t ~ N(0, input_std^2 I): the long-lag
    rate of ||dh_t/dh_k|| (the slowest unit's), with each unit's pre-activation w_i . x_t ~
    N(0, input_std^2 ||w_i||^2) (``rnnlab.theory.mingru_log_keep``); ``diag_rate_min`` the fastest
    unit's. Nats per step."""
    rates = th.diag_log_keep("mingru", (numpy_rows(p.W_z),), data.input_std)
    return {"diag_rate": float(rates.max()), "diag_rate_min": float(rates.min())}


def step(p: MinGRUParams, x_t: Tensor, h: Tensor) -> Tensor:
    """The paper's sequential step, written out (differentiable; the autograd reference)."""
    z = torch.sigmoid(x_t @ p.W_z.T)
    return (1 - z) * h + z * g(x_t @ p.W_h.T)


def reference_step(p: MinGRUParams):
    return lambda x_t, s: (step(p, x_t, s[0]),)


def log_scan(log_a: Tensor, log_b: Tensor) -> Tensor:
    """h_t = a_t h_{t-1} + b_t from h_{-1} = 0 with a, b > 0 given by their logs (B, T, N), along
    time (dim 1), in log space (Heinsen 2023; Feng et al.'s appendix B.3):
    h_t = exp(A_t + logcumsumexp_k(ln b_k - A_k)), A_t = sum_{s<=t} ln a_s. Exact up to rounding,
    which grows with |A_t| (~ 0.7 t at init): about t eps relative."""
    A = torch.cumsum(log_a, 1)
    return torch.exp(A + torch.logcumsumexp(log_b - A, 1))


def steps(module: nn.Module, x: Tensor, h0: Tensor) -> tuple[Tensor, Tensor]:
    """A cell module's ``step`` over x (B, T, D) from h0 (1, B, N), as ``torch.nn.RNN`` takes
    and returns a state: (h (B, T, N), h_last (1, B, N))."""
    B, N = x.shape[0], module.hidden_size
    if tuple(h0.shape) != (1, B, N):
        raise ValueError(f"h0 has shape {tuple(h0.shape)}; {type(module).__name__} takes "
                         f"(1, batch, hidden_size) = (1, {B}, {N})")
    state, hs = (h0[0],), []
    for t in range(x.shape[1]):
        state = module.step(x[:, t], state)
        hs.append(state[0])
    h = torch.stack(hs, 1)
    return h, h[:, -1].unsqueeze(0)


class MinGRU(nn.Module):
    """The trainable minGRU, batch first: ``to_hidden_and_gate`` = ``nn.Linear(D, 2N,
    bias=False)``, rows [W_h; W_z], the reference code's layer, name and init (torch's default
    for a Linear layer, from the global RNG, drawn in ``dtype``). ``step`` is the paper's
    sequential step; ``forward(x (B, T, D), h0=None) -> (h (B, T, N), h_last (1, B, N))`` its
    parallel scan in log space from h_{-1} = 0 (module docstring), as ``torch.nn.RNN`` returns
    (output, h_n); from a given h0 (1, B, N) its steps."""

    fused = True

    def __init__(self, input_size: int, hidden_size: int, dtype: torch.dtype | None = None):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.to_hidden_and_gate = nn.Linear(input_size, 2 * hidden_size, bias=False, dtype=dtype)

    def init_state(self, batch_size: int) -> tuple[Tensor]:
        return (self.to_hidden_and_gate.weight.new_zeros(batch_size, self.hidden_size),)

    def step(self, x_t: Tensor, state: tuple[Tensor]) -> tuple[Tensor]:
        hidden, gate = self.to_hidden_and_gate(x_t).chunk(2, -1)
        return (torch.lerp(state[0], g(hidden), torch.sigmoid(gate)),)

    def forward(self, x: Tensor, h0: Tensor | None = None):
        if h0 is not None:  # from another state: its steps (the log-space scan needs h > 0)
            return steps(self, x, h0)
        hidden, gate = self.to_hidden_and_gate(x).chunk(2, -1)
        # ln(1 - z) = -softplus(gate), ln z = -softplus(-gate)
        h = log_scan(-F.softplus(gate), -F.softplus(-gate) + log_g(hidden))
        return h, h[:, -1].unsqueeze(0)

    def engine_params(self, head: nn.Linear) -> MinGRUParams:
        """The engine's ``MinGRUParams`` of these weights with ``head``'s readout, detached."""
        W, N = self.to_hidden_and_gate.weight.detach(), self.hidden_size
        return MinGRUParams(W_z=W[N:], W_h=W[:N], V=head.weight.detach(), c=head.bias.detach())


def module(input_size: int, hidden_size: int, model: dict, dtype=None) -> MinGRU:
    """The trainable minGRU from the global RNG, in ``dtype``."""
    return MinGRU(input_size, hidden_size, dtype)


# what a cell whose gates see the input only cannot be measured under (minGRU, minLSTM, RG-LRU)
REFUSES = (("weight_grad", True, "its gates see the input only: there is no recurrent "
            "matrix W to split by lag"),
           ("sensitivity", True, "its gates see the input only: there is no recurrent matrix "
            "W whose sensitivity it measures"))

CELL = register(Cell(
    name="mingru", params=MinGRUParams, layer_forward=layer_forward,
    layer_weights=lambda p: (p,), draw=draw, activations=("linear",), inits=("pytorch",),
    scaled_inits=(), theory=theory, reference_step=reference_step, check=check,
    recurrent=None, refuses=REFUSES, module=module,
    paper="Feng et al. 2024 (arXiv:2410.01201)"))
