"""The sLSTM cell (Beck et al. 2024, "xLSTM: Extended Long Short-Term Memory", arXiv:2405.04517,
section 2.2; the authors' code NX-AI/xlstm, ``xlstm/blocks/slstm/cell.py`` and
``xlstm/blocks/slstm/src/vanilla/slstm.py``), one head:

    (i~, f~, z~, o~) = W x_t + R h_{t-1} + b,
    m_t = max(i~_t, m_{t-1} + ln s(f~_t)),
    i' = exp(i~ - m_t),  f' = exp(ln s(f~) + m_{t-1} - m_t),
    c_t = f' c_{t-1} + i' tanh(z~),  n_t = f' n_{t-1} + i',  h_t = s(o~) c_t / n_t

with s the logistic sigmoid. h does not depend on the stabiliser m: in the stabiliser-free
coordinates c^ = c e^m, n^ = n e^m the step is

    c^_t = s(f~) c^_{t-1} + e^{i~} tanh(z~),  n^_t = s(f~) n^_{t-1} + e^{i~},
    h_t = s(o~) c^_t / n^_t,

and the measured state is (h, c^, n^) (3N numbers). Its step Jacobian: the (c^, n^) block is
diag s(f~_t), plus the terms through the pre-activations R dh; with R = 0 (the authors' default)
dh_t/dh_{t-1} = 0 exactly and only the memory path diag s(f~) carries the gradient. Its long-lag
rate is the slowest unit's mean E[ln s(f~_i)] (``theory``).

Range: c^, n^ grow like sum_k exp(i~_k) prod s(f~); in float64 they stay finite while the
summed |i~| stays below ~700 (a sequence of T steps with |i~| <= 700 / T). The trainable module
runs the stabilised (c, n, m) recursion, as the authors do, so training never overflows; h is
the same (tests/test_modern_slstm.py: 1e-12 in float64).

One head: R is a dense (4N, N) matrix (the authors' block-diagonal R with ``num_heads`` = 1; their
default is 4 heads). Initial weights as the authors':
- R = 0 (``sLSTMCellConfig.recurrent_weight_init = "zeros"``); ``model.recurrent_init=uniform``
  draws their "standard" U(-1/sqrt N, 1/sqrt N);
- b: the forget gate's "powerlaw_blockdependent" (``sLSTMCellBase.reset_parameters``), for unit
  j of a head of size N in a single block, b_f[j] = -(-5 + 12 (j / (N - 1))^0.3), from +5
  (j = 0, the slowest unit) to -7; the other gates' biases 0;
- W: the sLSTM layer's gate projections (``LinearHeadwiseExpand`` with one head, the authors'
  ``small_init``, Nguyen & Salazar 2019): every entry ~ N(0, 2 / (5 D)), times
  ``model.input_gain``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ... import theory as th
from ...checks import ConfigError, choice
from . import Cell, register

GATES = ("i", "f", "z", "o")
RECURRENT_INITS = ("zeros", "uniform")
# the model.* keys only the sLSTM takes, and their defaults (conf/model/slstm.yaml holds the same)
DEFAULTS = {"recurrent_init": "zeros"}


def forget_bias(N: int) -> Tensor:
    """The authors' "powerlaw_blockdependent" forget-gate bias of one head of N units in a
    single block (block ratio 0): b_f[j] = -(-5 + 12 (j / (N - 1))^0.3), float64."""
    if N == 1:
        return torch.full((1,), 5.0, dtype=torch.float64)
    j = torch.arange(N, dtype=torch.float64)
    return -(-5.0 + 12.0 * (j / (N - 1)) ** 0.3)


@dataclass(frozen=True)
class SLSTMParams:
    """An sLSTM: input weights W (4N, D), recurrent R (4N, N), bias b (4N,), gate blocks in the
    order (i, f, z, o); readout V (C, N), c (C,) of h."""

    W: Tensor
    R: Tensor
    b: Tensor
    V: Tensor
    c: Tensor
    cell: str = "slstm"

    @property
    def hidden_size(self) -> int:
        return self.R.shape[1]

    def tensors(self) -> dict:
        return {k: getattr(self, k) for k in ("W", "R", "b", "V", "c")}

    def to(self, device=None, dtype=None) -> SLSTMParams:
        return replace(self, **{k: v.to(device=device, dtype=dtype)
                                for k, v in self.tensors().items()})


class SLSTMLayer:
    """The (h, c^, n^) -> (h', c^', n^') Jacobian. With A = R dh (+ W dx) the tangent of the
    pre-activations (i, f, z, o blocks), e = exp(i~), t = tanh(z~), s_f = s(f~), s_f' =
    s_f (1 - s_f), k = s(o~) / n^', hbar = c^' / n^', c_o = s(o~)(1 - s(o~)) hbar:

        dc^' = s_f dc^ + e t A_i + c^ s_f' A_f + e (1 - t^2) A_z,
        dn^' = s_f dn^ + e A_i + n^ s_f' A_f,
        dh'  = k (dc^' - hbar dn^') + c_o A_o,

    and the cotangent map, with tot_c = D_c + k D_h, tot_n = D_n - k hbar D_h: D_c <- s_f tot_c,
    D_n <- s_f tot_n, D_h <- R^T G, G = [e t tot_c + e tot_n, s_f' (c^ tot_c + n^ tot_n),
    e (1 - t^2) tot_c, c_o D_h]."""

    parts = ("h", "c", "n")

    def __init__(self, R: Tensor, W: Tensor, sf: Tensor, C: Tensor, k: Tensor, hbar: Tensor):
        # C (T, B, 6, N): e t, c^ s_f', e (1 - t^2), c_o (the c^' row and h's o), e, n^ s_f'.
        # ``W`` is the recurrent matrix R here, ``W_in`` the input weights (the name the
        # engine's weight gradient by lag reads, as for the LSTM's layer)
        self.W, self.W_in, self.sf, self.C, self.k, self.hbar = R, W, sf, C, k, hbar
        self.hidden = R.shape[1]
        self.size = 3 * self.hidden

    def _cotangent(self, k: int, D: Tensor):
        N = self.hidden
        Dh, Dc, Dn = D[..., :N], D[..., N:2 * N], D[..., 2 * N:]
        C = self.C[k]
        tot_c = Dc + self.k[k] * Dh
        tot_n = Dn - self.k[k] * self.hbar[k] * Dh
        G = torch.cat([C[:, 0] * tot_c + C[:, 4] * tot_n, C[:, 1] * tot_c + C[:, 5] * tot_n,
                       C[:, 2] * tot_c, C[:, 3] * Dh], -1)
        return G, tot_c, tot_n

    def recurrent_cotangent(self, k: int, D: Tensor) -> Tensor:
        """The cotangent of R h_{k-1} (i, f, z, o blocks)."""
        return self._cotangent(k, D)[0]

    def vjp(self, k: int, D: Tensor, need_input: bool):
        G, tot_c, tot_n = self._cotangent(k, D)
        prev = torch.cat([G @ self.W, self.sf[k] * tot_c, self.sf[k] * tot_n], -1)
        return prev, (G @ self.W_in if need_input else None)

    def vjp_(self, k: int, D: Tensor) -> None:
        D.copy_(self.vjp(k, D, False)[0])

    def _tangent(self, k: int, A: Tensor, Qc=None, Qn=None) -> Tensor:
        B, N = self.sf.shape[1:]
        C = self.C[k].unsqueeze(-1)
        A = A.view(B, 4, N, -1)
        dc = C[:, 0] * A[:, 0] + C[:, 1] * A[:, 1] + C[:, 2] * A[:, 2]
        dn = C[:, 4] * A[:, 0] + C[:, 5] * A[:, 1]
        if Qc is not None:
            sf = self.sf[k].unsqueeze(-1)
            dc, dn = dc + sf * Qc, dn + sf * Qn
        dh = self.k[k].unsqueeze(-1) * (dc - self.hbar[k].unsqueeze(-1) * dn) + C[:, 3] * A[:, 3]
        return torch.cat([dh, dc, dn], 1)

    def recurrent_tangent(self, k: int, A: Tensor) -> Tensor:
        """The tangent of (h, c^, n^) for a tangent A (B, 4N, r) of R h_{k-1}."""
        return self._tangent(k, A)

    def jvp(self, k: int, Q: Tensor, Q_in: Tensor | None = None) -> Tensor:
        N = self.hidden
        A = torch.matmul(self.W, Q[:, :N])
        if Q_in is not None:
            A = A + torch.matmul(self.W_in, Q_in)
        return self._tangent(k, A, Q[:, N:2 * N], Q[:, 2 * N:])


def step(p: SLSTMParams, x_t: Tensor, h: Tensor, c: Tensor, n: Tensor):
    """One step in the stabiliser-free coordinates (module docstring): (h', c^', n^')."""
    i, f, z, o = (x_t @ p.W.T + h @ p.R.T + p.b).chunk(4, -1)
    sf, e = torch.sigmoid(f), torch.exp(i)
    c, n = sf * c + e * torch.tanh(z), sf * n + e
    return torch.sigmoid(o) * c / n, c, n


def reference_step(p: SLSTMParams):
    return lambda x_t, s: step(p, x_t, *s)


def layer_forward(W, R, b, inp: Tensor, h: Tensor, c: Tensor, n: Tensor):
    """The sLSTM over inp (T, B, D) from (h, c^, n^), each (B, N), recording the step maps."""
    gi = torch.matmul(inp, W.T) + b
    hs, cs, ns, sfs, Cs, ks, hbars = [], [], [], [], [], [], []
    for t in range(inp.shape[0]):
        i, f, z, o = (gi[t] + h @ R.T).chunk(4, -1)
        sf, e, tz, so = torch.sigmoid(f), torch.exp(i), torch.tanh(z), torch.sigmoid(o)
        sfp = sf * (1 - sf)
        c_new, n_new = sf * c + e * tz, sf * n + e
        hbar = c_new / n_new
        Cs.append(torch.stack([e * tz, c * sfp, e * (1 - tz * tz), so * (1 - so) * hbar, e,
                               n * sfp], 1))
        sfs.append(sf)
        ks.append(so / n_new)
        hbars.append(hbar)
        h, c, n = so * hbar, c_new, n_new
        hs.append(h)
        cs.append(c)
        ns.append(n)
    hs, cs, ns, sfs, Cs, ks, hbars = (torch.stack(v) for v in (hs, cs, ns, sfs, Cs, ks, hbars))
    return (hs, cs, ns), lambda sl: SLSTMLayer(R, W, sfs[sl], Cs[sl], ks[sl], hbars[sl])


def draw(model, T: int, gen: torch.Generator) -> dict:
    """W, R, b in float64 from ``gen`` (module docstring): W ~ N(0, 2 / (5 D)) times
    ``model.input_gain``, R = 0 (or U(-1/sqrt N, 1/sqrt N) with ``model.recurrent_init=uniform``),
    b = 0 but the forget gate's power law."""
    N, D = model.hidden_size, model.input_size
    f64 = dict(dtype=torch.float64)
    W = torch.randn(4 * N, D, generator=gen, **f64) * (model.input_gain
                                                       * math.sqrt(2 / (5 * D)))
    if recurrent_init(model) == "uniform":
        R = (torch.rand(4 * N, N, generator=gen, **f64) * 2 - 1) / math.sqrt(N)
    else:
        R = torch.zeros(4 * N, N, **f64)
    b = torch.zeros(4 * N, **f64)
    b[N:2 * N] = forget_bias(N)
    return dict(W=W, R=R, b=b)


def recurrent_init(model) -> str:
    value = model.get("recurrent_init") if isinstance(model, dict) else \
        getattr(model, "recurrent_init", None)
    return DEFAULTS["recurrent_init"] if value is None else value


def check(model) -> None:
    """``model.recurrent_init`` among ``RECURRENT_INITS``; no bias draw or gate-bias shift (the
    biases are the authors' fixed init)."""
    choice("model.recurrent_init", recurrent_init(model), RECURRENT_INITS)
    for key in ("bias_std", "gate_bias"):
        value = getattr(model, key, 0)
        if value != 0:
            raise ConfigError(f"model.{key}={value!r} with model.cell='slstm': its biases are "
                              f"the authors' init (the forget gate's power law, others 0); use "
                              f"model.{key}=0")


def theory(p: SLSTMParams, model, data) -> dict:
    """``diag_rate`` = max_i E[ln s(f~_i)] at white input x_t ~ N(0, input_std^2 I) and R = 0:
    f~_i = w_i . x_t + b_i ~ N(b_i, input_std^2 ||w_i||^2), E[ln s(a)] = -E[softplus(-a)]
    (``rnnlab.theory.mingru_log_keep`` at mean -b_i); the slowest unit's, the long-lag rate of
    the memory path. ``diag_rate_min`` the fastest unit's. Nats per step. With R != 0 the gates
    also see h and this is not the rate."""
    N = p.hidden_size
    W_f = p.W[N:2 * N].detach().to("cpu", torch.float64).numpy()
    b_f = p.b[N:2 * N].detach().to("cpu", torch.float64).numpy()
    s = data.input_std * (W_f ** 2).sum(1) ** 0.5
    rates = np.atleast_1d(th.mingru_log_keep(s, -b_f))
    return {"diag_rate": float(rates.max()), "diag_rate_min": float(rates.min())}


class SLSTM(nn.Module):
    """The trainable sLSTM (one head), batch first: ``W`` = ``nn.Linear(D, 4N)`` (its bias the
    gates' b), ``R`` (4N, N), gate blocks (i, f, z, o), the authors' init (module docstring)
    from the global RNG. ``step`` runs the authors' stabilised recursion on the state
    (h, c, n, m), h_{-1} = c = n = m = 0 (c = n = 0 makes m_{-1} immaterial);
    ``forward(x (B, T, D), h0=None) -> (h (B, T, N), h_last (1, B, N))`` its steps, as
    ``torch.nn.RNN`` returns (a given h0 (1, B, N) starts h, c = n = m = 0)."""

    def __init__(self, input_size: int, hidden_size: int, recurrent_init: str = "zeros",
                 dtype: torch.dtype | None = None):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        N = hidden_size
        self.W = nn.Linear(input_size, 4 * N, dtype=dtype)
        self.R = nn.Parameter(torch.zeros(4 * N, N, dtype=dtype))
        with torch.no_grad():
            nn.init.normal_(self.W.weight, 0.0, math.sqrt(2 / (5 * input_size)))
            self.W.bias.zero_()
            self.W.bias[N:2 * N] = forget_bias(N).to(self.W.bias.dtype)
            if recurrent_init == "uniform":
                nn.init.uniform_(self.R, -1 / math.sqrt(N), 1 / math.sqrt(N))

    def init_state(self, batch_size: int) -> tuple[Tensor, ...]:
        zeros = self.R.new_zeros(batch_size, self.hidden_size)
        return zeros, zeros.clone(), zeros.clone(), zeros.clone()

    def step(self, x_t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        h, c, n, m = state
        i, f, z, o = (self.W(x_t) + h @ self.R.T).chunk(4, -1)
        log_f = m - F.softplus(-f)  # m_{t-1} + ln s(f~)
        m_new = torch.maximum(i, log_f)
        i_s, f_s = torch.exp(i - m_new), torch.exp(log_f - m_new)
        c, n = f_s * c + i_s * torch.tanh(z), f_s * n + i_s
        return torch.sigmoid(o) * c / n, c, n, m_new

    def forward(self, x: Tensor, h0: Tensor | None = None):
        B, N = x.shape[0], self.hidden_size
        state = self.init_state(B)
        if h0 is not None:
            if tuple(h0.shape) != (1, B, N):
                raise ValueError(f"h0 has shape {tuple(h0.shape)}; SLSTM takes (1, batch, "
                                 f"hidden_size) = (1, {B}, {N})")
            state = (h0[0],) + state[1:]
        hs = []
        for t in range(x.shape[1]):
            state = self.step(x[:, t], state)
            hs.append(state[0])
        h = torch.stack(hs, 1)
        return h, h[:, -1].unsqueeze(0)

    def engine_params(self, head: nn.Linear) -> SLSTMParams:
        """The engine's ``SLSTMParams`` of these weights with ``head``'s readout, detached."""
        return SLSTMParams(W=self.W.weight.detach(), R=self.R.detach(), b=self.W.bias.detach(),
                           V=head.weight.detach(), c=head.bias.detach())


def module(input_size: int, hidden_size: int, model: dict, dtype=None) -> SLSTM:
    """The trainable sLSTM from the global RNG, in ``dtype``, with ``model.recurrent_init``."""
    return SLSTM(input_size, hidden_size, recurrent_init(model), dtype)


CELL = register(Cell(
    name="slstm", params=SLSTMParams, layer_forward=layer_forward,
    layer_weights=lambda p: (p.W, p.R, p.b), draw=draw, state_parts=("h", "c", "n"), gates=4,
    activations=("tanh",), inits=("xlstm",), scaled_inits=(), theory=theory,
    reference_step=reference_step, check=check, recurrent="R", keys=DEFAULTS, module=module,
    groups=tuple(f"R_{g}" for g in GATES),
    paper="Beck et al. 2024 (arXiv:2405.04517); NX-AI/xlstm"))
