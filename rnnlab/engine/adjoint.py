"""The measurement: ||dL_t/dh_k|| for every pair k <= t in one batched adjoint sweep, in log domain.

With J_s = dh_s/dh_{s-1} = diag(phi'(a_s)) W and g_t = dL_t/dh_t (docs/theory.md, "model"),

    dL_t/dh_k = J_{k+1}^T ... J_t^T g_t,   i.e.  delta_{t,k-1} = W^T (phi'(a_k) * delta_{t,k}).

The sweep walks k from T-1 down to 0 and carries the cotangents of every live target t >= k
(t - k <= max_lag) together, so each step is ONE (live*B, N) x (N, N) GEMM over a contiguous slice
of a (T, B, N) buffer: B N^2 (T^2 + T) flops for the full triangle, memory O(T B N).

Every cotangent is renormalised to unit norm after each step and its natural-log scale kept in
float64, so nothing overflows or underflows however long the sequence or large rho (docs/theory.md,
"log-domain engine"). Norms are Euclidean, logs natural unless a name says log10.

The cell is seen only through its recorded step maps (``rnnlab.engine.cells``); its forward pass
may carry the state in log scale (Elman with relu or linear). The loss gradient g_t is carried as a
direction and a log-norm (``loss_grad_log``), so ratios stay exact where ||g_t|| itself leaves
float64's range.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from . import cells
from .logspace import unit
from .model import loss_grad_h

# below this runner-up probability the direct softmax backward loses more than ~3 digits to
# cancellation, and the factored form of loss_grad_log takes over
_SATURATED = 1e-3


@dataclass(frozen=True)
class Trajectory:
    """A forward pass, time-major: h_t = exp(log_scale_t) u_t and g_t = exp(g_log_norm_t) g_dir_t.

    u (T, B, N) the (top layer's) hidden state in the compute dtype; log_scale (T, B) float64
    (zero for bounded cells, and for relu and linear while ||h|| stays within e^+-30);
    g_dir (T, B, S) unit vectors dL_t/ds_t on the whole measured state s (S = N for Elman, GRU
    and minimalRNN, 2N for LSTM's (h, c), every layer's state for a stack; zero where g_t = 0);
    g_log_norm (T, B) float64 ln ||g_t||; h0 (B, S) float64, the state entering measured step 0;
    maps: the step Jacobians (``rnnlab.engine.cells.Stack``), the engine's only view of the cell.
    """

    u: Tensor
    log_scale: Tensor
    g_dir: Tensor
    g_log_norm: Tensor
    h0: Tensor
    maps: cells.Stack

    @property
    def shape(self):
        """(T, B, S): steps, batch, measured state size."""
        return tuple(self.g_dir.shape)


def forward(p, x: Tensor, h0: Tensor, y_target: Tensor, burn_in: int = 0,
            loss: str = "mse", jacobians: str = "cell") -> Trajectory:
    """Run burn_in unmeasured steps, then the measured ones; no autograd graph.

    ``p``: a registered cell's weights (``ElmanParams``, ``GatedParams``, ``MinimalParams``...,
    with the readout V, c). x (B, burn_in + T, D), h0 (B, S) (LSTM: (h, c) side by side),
    y_target (B, T, C), all on the compute device and dtype. g_t is formed in float64 and split
    into direction and log-norm before any cast, so a tiny loss gradient does not underflow in
    float32. ``jacobians``: ``cell`` (hand-written step maps) or ``derived`` (``torch.func``,
    ``rnnlab.engine.derived``).
    """
    with torch.no_grad():
        recorded = cells.get(p.cell).forward(p, x, h0, burn_in, jacobians)
    return trajectory(recorded, p, y_target, loss)


def trajectory(recorded: cells.Recorded, readout, y_target: Tensor, loss: str,
               grad: tuple[Tensor, Tensor] | None = None) -> Trajectory:
    """The Trajectory of a recorded cell or stack: g_t = dL_t/ds_t is the readout's (``V``,
    ``c``) gradient on the top layer's h and zero on every other part of the state; where the
    readout reads y_t = f(h_t) (``recorded.output``, Mamba's C_t h_t + D u_t) the gradient on
    y_t pulled back to h_t. ``grad``: that gradient on the top layer's h already computed, as
    (direction (T, B, N), ln norm (T, B)) (a head module's, ``rnnlab.engine.heads.head_gradient``;
    a module's ``features``); the readout is then unused."""
    with torch.no_grad():
        u, s = recorded.u, recorded.log_scale
        if grad is None:
            readout = readout.to(dtype=torch.float64)
            if recorded.offset is not None:  # o_t = V h_t + (c + offset_t)
                readout = OffsetReadout(readout.V, readout.c + recorded.offset.double())
            out, target = recorded.output, y_target.transpose(0, 1).double()
            if out is None:
                grad = loss_grad_log(readout, u.double(), s, target, loss)
            else:  # dL_t/dy_t, then (dy_t/dh_t)^T of its direction, the norm's log carried
                g_y, ln_y = loss_grad_log(readout, out.y.double(), torch.zeros_like(s), target,
                                          loss)
                g_h, ln_pull = unit(out.vjp(g_y))
                grad = g_h, ln_y + ln_pull
        g_top, g_log_norm = grad
        g_dir = u.new_zeros(u.shape[:2] + (recorded.maps.state_size,))
        g_dir[..., recorded.maps.top] = g_top.to(u.dtype)
    return Trajectory(u, s, g_dir, g_log_norm, recorded.state_in.double(), recorded.maps)


@dataclass(frozen=True)
class OffsetReadout:
    """o = V h + c with a per-step c (T, B, C): a readout plus ``Recorded.offset``."""

    V: Tensor
    c: Tensor


def loss_grad_log(p, u: Tensor, s: Tensor, y_target: Tensor, loss: str):
    """g = dL/dh at h = exp(s) u as (direction, ln ||g||), exact where the softmax saturates.

    With m the top class, r the runner-up, eps_i = y_i / y_r and sigma = y_r, the softmax
    backward factors as g = sigma^p V^T f(eps, sigma) with f of order one (p = 2 for the mse loss
    when the target is the top class, else 1), so its direction survives even when sigma, or
    exp(s) itself, is beyond float64: the ratios stay finite although ||g|| underflows. Where
    sigma >= 1e-3 the direct formula (autograd's order) is used. ``p.c`` is (C,) or, for a
    readout with a per-step offset, (T, B, C).
    """
    big = torch.exp(s).unsqueeze(-1)
    if loss == "mse_linear":  # no softmax to saturate; a state beyond e^690 is clamped
        return unit(loss_grad_h(p, big.clamp(max=1e300) * u, y_target, loss))
    z = u @ p.V.T  # logits are exp(s) z + c
    o = torch.where(torch.isfinite(big), big * z + p.c, z)
    top = o.argmax(-1, keepdim=True)
    c = p.c.expand_as(z)  # (C,), or (T, B, C) with a readout offset
    d = big * (z - z.gather(-1, top)) + (c - c.gather(-1, top))  # o_i - o_m, -inf if exp(s) = inf
    d = d.scatter(-1, top, 0.0)
    lp = d - torch.logsumexp(d, -1, keepdim=True)
    others = lp.scatter(-1, top, -math.inf)
    # runner-up by log-probability, by raw logit when every other probability is exp(-inf)
    r = torch.where(torch.isfinite(others.amax(-1, keepdim=True)),
                    others.argmax(-1, keepdim=True), z.scatter(-1, top, -math.inf).argmax(-1, True))
    eps = torch.exp(others - others.gather(-1, r)).nan_to_num(0.0).scatter(-1, r, 1.0)
    eps = eps.scatter(-1, top, 0.0)
    sigma_log = lp.gather(-1, r).squeeze(-1)
    sigma = torch.exp(sigma_log).unsqueeze(-1)
    E1, E2 = eps.sum(-1, keepdim=True), (eps * eps).sum(-1, keepdim=True)
    y_top = 1 - sigma * E1
    target = y_target.argmax(-1, keepdim=True)
    on_top = target == top
    eps_t = eps.gather(-1, target)
    is_t = torch.zeros_like(eps).scatter(-1, target, 1.0)
    if loss == "mse":
        ye = y_top ** 2 + sigma ** 2 * E2 - sigma * eps_t  # y.e when the target is not on top
        f_on = (eps * (eps + E1 - sigma * (E1 ** 2 + E2))).scatter(
            -1, top, -(y_top * (E1 ** 2 + E2)))
        f_off = (eps * (sigma * eps - is_t - ye)).scatter(
            -1, top, y_top * ((1 - sigma * E1) * E1 - sigma * E2 + eps_t))
        f = torch.where(on_top, f_on, f_off)
        power = torch.where(on_top, 2.0, 1.0).squeeze(-1)
    else:
        f_on = eps.scatter(-1, top, 0.0) - torch.zeros_like(eps).scatter(-1, top, 1.0) * E1
        f_off = torch.exp(lp) - y_target
        f = torch.where(on_top, f_on, f_off)
        power = torch.where(on_top, 1.0, 0.0).squeeze(-1)
    g_dir, ln_f = unit(f @ p.V)
    ln_g = ln_f + torch.where(power > 0, power * sigma_log, 0.0)
    direct = (sigma.squeeze(-1) >= _SATURATED) & torch.isfinite(big.squeeze(-1))
    if direct.any():
        g_direct_dir, ln_direct = unit(loss_grad_h(p, big.clamp(max=1e300) * u, y_target, loss))
        g_dir = torch.where(direct.unsqueeze(-1), g_direct_dir, g_dir)
        ln_g = torch.where(direct, ln_direct, ln_g)
    return g_dir, ln_g


# --------------------------------------------------------------------------------------------
# The triangle of pairs (t, k)
# --------------------------------------------------------------------------------------------
Visit = Callable[[int, Tensor, dict, Tensor], None]


def sweep_pairs(traj: Trajectory, max_lag: int | None, visit: Visit,
                progress: bool = False) -> None:
    """Call ``visit(k, ln_ratio, parts, cot)`` for k = T-1 down to 0.

    ln_ratio[l, b] = ln (||dL_{k+l}/ds_k|| / ||dL_{k+l}/ds_{k+l}||) for lags l = 0..min(T-1-k,
    max_lag), (m, B) float64, valid only during the call; add ``traj.g_log_norm[k + l]`` for
    ln ||dL_{k+l}/ds_k||. Carrying the ratio keeps it finite where ||g_t|| is below float64's
    range; an exactly zero g_t has no ratio (NaN). ``parts`` maps each named part of the state
    (the LSTM's c) to the same ratio for that part alone (-inf at lag 0, where dL_t/dc_t = 0).
    ``cot`` (m, B, S) holds the unit cotangents dL_{k+l}/ds_k / ||dL_{k+l}/ds_k|| themselves.
    """
    T, B, S_size = traj.shape
    K = T - 1 if max_lag is None else min(max_lag, T - 1)
    # row t of D is first read at k = t, so every target can be injected up front
    D = traj.g_dir.clone()
    S = torch.where(traj.g_dir.abs().amax(-1) > 0, 0.0, math.nan).to(torch.float64)
    maps, named = traj.maps, traj.maps.parts.items()
    tiny = torch.finfo(D.dtype).tiny
    norms = torch.empty(T, B, dtype=D.dtype, device=D.device)  # one step's, reused
    # the bar counts pairs, not steps: a step's work grows with its live targets (from 1 at
    # k = T-1 up to K + 1), so a bar over steps predicts about half the real time
    bar = tqdm(total=sum(min(T, k + K + 1) - k for k in range(T)), unit="pair",
               unit_scale=True, desc="adjoint sweep", leave=False, disable=None,
               mininterval=1.0) if progress else nullcontext()
    with bar:
        # at small N and B the step's GEMM is cheap beside the passes and calls around it:
        # each view is made once per step and the norms go to one buffer; the arithmetic is
        # the plain loop's, bit for bit (tests/test_cells.py)
        for k in range(T - 1, -1, -1):
            top = min(T, k + K + 1)
            D_live, S_live = D[k:top], S[k:top]
            parts = {name: S_live + torch.log(torch.linalg.vector_norm(
                D_live[..., idx], dim=-1).double()) for name, idx in named}
            visit(k, S_live, parts, D_live)
            if progress:
                bar.update(top - k)
            hi = min(T, k + K)  # targets still within max_lag at step k-1
            if k == 0 or hi <= k:
                continue
            Dk, Sk = (D_live, S_live) if hi == top else (D[k:hi], S[k:hi])
            maps.vjp_(k, Dk)
            n = torch.linalg.vector_norm(Dk, dim=-1, out=norms[:hi - k])
            Sk += torch.log(n)
            Dk /= n.clamp_(min=tiny).unsqueeze(-1)  # a zero cotangent stays zero (ln = -inf)


def _moments(v: Tensor, valid: Tensor, scratch: Tensor) -> dict:
    """count, mean, M2 (sum of squared deviations) and nonfinite over axis 0 of v (c, L, B),
    finite values only; ``valid`` (c, L) marks real entries as opposed to padding. ``scratch``
    (v's shape, float64) is overwritten: a chunk is megabytes, and a fresh temporary of that
    size costs its page faults every time."""
    ok = torch.isfinite(v)
    count = ok.sum(0).double()
    x = torch.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0, out=scratch)
    mean = x.sum(0) / count.clamp(min=1)
    bad = ok.logical_not_()
    x = torch.sub(v, mean, out=x).square_().masked_fill_(bad, 0.0)
    M2 = x.sum(0)
    nonfinite = bad.logical_and_(valid.unsqueeze(-1)).sum(0).double()
    return {"count": count, "mean": mean, "M2": M2, "nonfinite": nonfinite}


def _merge(a: dict, b: dict) -> dict:
    """Chan, Golub and LeVeque's pairwise update of (count, mean, M2)."""
    n = a["count"] + b["count"]
    delta = b["mean"] - a["mean"]
    frac = b["count"] / n.clamp(min=1)
    return {"count": n, "mean": a["mean"] + delta * frac,
            "M2": a["M2"] + b["M2"] + delta ** 2 * a["count"] * frac,
            "nonfinite": a["nonfinite"] + b["nonfinite"]}


def _merge_into(acc: dict, chunk: dict) -> None:
    """``_merge`` of a chunk's moments into the first lags of ``acc`` (as many as it has)."""
    w = chunk["count"].shape[0]
    merged = _merge({q: a[:w] for q, a in acc.items()}, chunk)
    for q, a in acc.items():
        a[:w] = merged[q]


class LagStats:
    """Per-(lag, sample) moments of the ln ratio and the ln gradient norm over every pair, for
    the whole state ("") and each named part of it ("c" for the LSTM).

    The sweep's values are buffered for a chunk of steps and merged in one batched update, so
    the per-step cost is a single copy; non-finite values (an exact zero gradient has
    ln = -inf) are counted apart and left out of the moments.
    """

    def __init__(self, traj: Trajectory, L: int, keep_matrix: bool = False):
        T, B, _ = traj.shape
        self.T, self.L, self.B, self.g_log_norm = T, L, B, traj.g_log_norm
        dev = traj.g_log_norm.device
        self.names = [""] + list(traj.maps.parts)
        self.chunk = max(1, min(256, 2 ** 20 // (L * B * len(self.names))))
        self.buf = {n: torch.full((self.chunk, L, B), math.nan, dtype=torch.float64, device=dev)
                    for n in self.names}
        self.scratch = torch.empty(self.chunk * L * B, dtype=torch.float64, device=dev)
        self.steps: list[int] = []
        zero = lambda: torch.zeros(L, B, dtype=torch.float64, device=dev)
        self.ratio = {n: {k: zero() for k in ("count", "mean", "M2", "nonfinite")}
                      for n in self.names}
        self.grad = {n: {k: zero() for k in ("count", "mean", "M2", "nonfinite")}
                     for n in self.names}
        self.matrix = torch.full((T, T), math.nan, dtype=torch.float64, device=dev) \
            if keep_matrix else None

    def __call__(self, k: int, ln_ratio: Tensor, parts: dict | None = None, cot=None) -> None:
        i = len(self.steps)
        self.buf[""][i, :ln_ratio.shape[0]] = ln_ratio
        for name, v in (parts or {}).items():
            self.buf[name][i, :v.shape[0]] = v
        self.steps.append(k)
        if len(self.steps) == self.chunk:
            self.flush()

    def flush(self) -> None:
        if not self.steps:
            return
        c, dev = len(self.steps), self.g_log_norm.device
        # lags beyond T-1-k are padding for every buffered step: leaving them out changes no
        # moment (a chunk with no value there merges as an exact no-op) and, near the end of
        # the sequence, most of the buffer is such padding
        w = min(self.L, self.T - min(self.steps))
        k = torch.tensor(self.steps, device=dev)[:, None]
        t = k + torch.arange(w, device=dev)  # (c, w) target of each entry
        valid = t < self.T
        # a contiguous (c, w, B) view of the scratch space, as a fresh temporary would be
        scratch = self.scratch[:c * w * self.B].view(c, w, self.B)
        g_t = self.g_log_norm[t.clamp(max=self.T - 1)]
        for name in self.names:
            v = self.buf[name][:c, :w]  # the ln ratios, then (in place) the ln gradient norms
            _merge_into(self.ratio[name], _moments(v, valid, scratch))
            v += g_t
            _merge_into(self.grad[name], _moments(v, valid, scratch))
            if name == "" and self.matrix is not None:
                cols = k.expand_as(t)
                self.matrix[t[valid], cols[valid]] = v.mean(-1)[valid] / math.log(10)
            v.fill_(math.nan)
        self.steps.clear()

    @staticmethod
    def numpy(m: dict) -> dict:
        return {k: v.cpu().numpy() for k, v in m.items()}


@dataclass
class PairProfile:
    """Per-lag moments of ln ||dL_t/ds_k|| and of the ln ratio, per sample: arrays (L, B).

    ``log10_grad`` is the (T, T) batch mean of log10 ||dL_t/ds_k|| (row t, column k; NaN where
    k > t or t - k > max_lag) when requested. ``parts`` maps a named part of the state (the
    LSTM's "c") to its own ``(ln_grad, ln_ratio)`` moments.
    """

    lag: np.ndarray
    n_pairs: np.ndarray
    ln_grad: dict
    ln_ratio: dict
    log10_grad: np.ndarray | None = None
    parts: dict = field(default_factory=dict)


def pair_profile(traj: Trajectory, max_lag: int | None = None, keep_matrix: bool = False,
                 progress: bool = False, also: Visit | None = None) -> PairProfile:
    """The per-lag summaries of lags.parquet (docs/measurement.md, "What a run writes") from one
    adjoint sweep; ``also`` visits the same sweep (e.g.
    ``rnnlab.engine.weightgrad.WeightGradStats``)."""
    T = traj.shape[0]
    L = T if max_lag is None else min(max_lag, T - 1) + 1
    stats = LagStats(traj, L, keep_matrix)

    def visit(k, ln_ratio, parts, cot):
        stats(k, ln_ratio, parts)
        also(k, ln_ratio, parts, cot)

    sweep_pairs(traj, max_lag, stats if also is None else visit, progress)
    stats.flush()
    lag = np.arange(L)
    parts = {n: (stats.numpy(stats.grad[n]), stats.numpy(stats.ratio[n]))
             for n in stats.names if n}
    return PairProfile(lag, T - lag, stats.numpy(stats.grad[""]), stats.numpy(stats.ratio[""]),
                       None if stats.matrix is None else stats.matrix.cpu().numpy(), parts)


def log_grad_norms(traj: Trajectory, max_lag: int | None = None, ratio: bool = False,
                   part: str | None = None) -> Tensor:
    """Every ln ||dL_t/ds_k|| (or, with ``ratio``, ln ||dL_t/ds_k|| / ||dL_t/ds_t||) as a
    (T, T, B) float64 tensor, NaN outside the measured triangle; ``part`` ("c" for the LSTM)
    takes that part of the state alone. Take ratios from here rather than by subtracting ln
    norms: ln ||g_t|| can be so large (-1e28 for an exploding linear RNN with a saturated
    softmax) that the difference loses every digit."""
    T, B, _ = traj.shape
    out = torch.full((T, T, B), float("nan"), dtype=torch.float64, device=traj.u.device)

    def visit(k, ln_ratio, parts, cot):
        v = ln_ratio if part is None else parts[part]
        m = v.shape[0]
        out[k:k + m, k] = v if ratio else v + traj.g_log_norm[k:k + m]

    sweep_pairs(traj, max_lag, visit)
    return out


# --------------------------------------------------------------------------------------------
# O(T) profiles: the last loss and the summed loss L = sum_t L_t (what BPTT differentiates)
# --------------------------------------------------------------------------------------------
def _step_back(maps, k: int, v: Tensor) -> Tensor:
    """J_k^T v for one cotangent per sample, v (B, S)."""
    v = v.clone().unsqueeze(0)
    maps.vjp_(k, v)
    return v[0]


def loss_profiles(traj: Trajectory) -> tuple[Tensor, Tensor, Tensor]:
    """The O(T) profiles, each (T, B) and indexed by the lag T-1-k: the ln ratio
    ln ||dL_{T-1}/ds_k|| / ||g_{T-1}||, ln ||dL_{T-1}/ds_k||, and ln ||dL/ds_k|| of the summed
    loss L = sum_t L_t. The summed cotangent obeys delta_k = g_k + J_{k+1}^T delta_{k+1};
    the sum is taken in log scale (log-sum-exp of the two scales) so neither term overflows."""
    T, B, N = traj.shape
    dev = traj.u.device
    last_dir = traj.g_dir[T - 1].clone()
    last_s = torch.zeros(B, dtype=torch.float64, device=dev)
    sum_dir, sum_s = last_dir.clone(), traj.g_log_norm[T - 1].clone()
    ln_last = torch.empty(T, B, dtype=torch.float64, device=dev)
    last_s = torch.where(last_dir.abs().amax(-1) > 0, last_s, math.nan)
    ln_sum = torch.empty_like(ln_last)
    for k in range(T - 1, -1, -1):
        if k < T - 1:
            last_dir, n_last = unit(_step_back(traj.maps, k + 1, last_dir))
            last_s = last_s + n_last
            prop_dir, n_sum = unit(_step_back(traj.maps, k + 1, sum_dir))
            prop_s = sum_s + n_sum
            g_s = traj.g_log_norm[k]
            top = torch.maximum(prop_s, g_s)
            top = torch.where(torch.isfinite(top), top, 0.0)
            mixed = (torch.exp(prop_s - top).to(prop_dir.dtype).unsqueeze(-1) * prop_dir
                     + torch.exp(g_s - top).to(prop_dir.dtype).unsqueeze(-1) * traj.g_dir[k])
            sum_dir, n_mix = unit(mixed)
            sum_s = top + n_mix
        ln_last[T - 1 - k] = last_s
        ln_sum[T - 1 - k] = sum_s
    return ln_last, ln_last + traj.g_log_norm[T - 1], ln_sum


# --------------------------------------------------------------------------------------------
# Jacobian products ds_{T-1}/ds_{T-1-l} = J_{T-1} ... J_{T-l}
# --------------------------------------------------------------------------------------------
def jacobian_norms(traj: Trajectory, max_lag: int, svd_lags: tuple[int, ...] = ()) -> dict:
    """ln ||ds_{T-1}/ds_{T-1-l}||_2 and ln ||.||_F for l = 0..max_lag, each (L+1, B), and the ln
    singular values (B, S) at ``svd_lags``. Lag T reaches h0 (= s_{-1}). The product's rows are
    carried as cotangents through the cell's map, renormalised by the Frobenius norm every step
    with the log scale kept."""
    T, B, N = traj.shape
    if not 0 <= max_lag <= T:
        raise ValueError(f"max_lag={max_lag} is not allowed; it must be in [0, T={T}]")
    bad = [l for l in svd_lags if not 0 <= l <= max_lag]
    if bad:
        raise ValueError(f"svd_lags {bad} are not allowed; each must be in [0, max_lag={max_lag}]")
    dev, dtype = traj.g_dir.device, traj.g_dir.dtype
    # rows of M are cotangents: (N rows, B, N) so one step is the sweep's block map
    M = torch.eye(N, dtype=dtype, device=dev).unsqueeze(1).expand(N, B, N).contiguous()
    scale = torch.zeros(B, dtype=torch.float64, device=dev)
    ln_spec = torch.empty(max_lag + 1, B, dtype=torch.float64, device=dev)
    ln_frob = torch.empty_like(ln_spec)
    svals = {}
    for l in range(max_lag + 1):
        if l > 0:
            traj.maps.vjp_(T - l, M)
            n = torch.linalg.vector_norm(M, dim=(0, 2))
            scale = scale + torch.log(n.double())
            M /= torch.where(n > 0, n, 1)[None, :, None]
        s = torch.linalg.svdvals(M.transpose(0, 1)).double()
        ln_spec[l] = scale + torch.log(s[:, 0])
        ln_frob[l] = scale + torch.log(torch.linalg.vector_norm(s, dim=-1))
        if l in svd_lags:
            svals[l] = scale[:, None] + torch.log(s)
    return {"ln_spec": ln_spec, "ln_frob": ln_frob, "ln_svals": svals}
