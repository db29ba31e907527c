"""The all-pairs measurement of a diagonal recurrence in closed form: prefix sums of ln|a| and one
matrix product per block of pairs, in place of the adjoint sweep.

Where the step Jacobian on the measured state is diagonal, J_s = diag(a_s) (minGRU, minLSTM,
RG-LRU, Mamba's S6: ``cells.mingru.DiagonalLayer``),

    dL_t/ds_k[i] = g_t[i] prod_{s=k+1..t} a_{s,i},
    ||dL_t/ds_k||^2 = sum_i g_t[i]^2 exp(P_{t,i} - P_{k,i}),   P_{t,i} = 2 sum_{s<=t} ln|a_{s,i}|,

so the whole triangle of pairs is a (T x U) by (U x T) product per sequence (U units) of the
row factors g_t^2 exp(P_t) and the column factors exp(-P_k): B U T^2 flops as one GEMM instead of
the sweep's T^2 / 2 elementwise steps D <- a_k D with a norm after each. The LRU (Orvieto et
al. 2023) is the same with units j = 1..N of its complex state (measured as (Re h, Im h)): J
acts on unit j's pair (Re, Im) as |lambda_j| times a rotation, so g_t[j]^2 = Re^2 + Im^2 of
g_t's two coordinates and a_{s,j} = |lambda_j| at every step. With g_t = exp(g_log_norm_t) g_dir_t
the ratio ||dL_t/ds_k|| / ||g_t|| is the same sum on the unit direction g_dir_t, as the sweep
carries it.

exp(P) overflows or underflows float64 within a few hundred steps, so the plane of pairs (t, k)
is cut into blocks, each a rectangle of targets t >= c >= origins k around a reference step c,
and each factor is shifted:

    row_{t,i} = ln g_t[i]^2 + P_{t,i} - P_{c,i},   col_{k,i} = P_{c,i} - P_{k,i},
    m_t = max_i row_{t,i},   n_k = max_i col_{k,i},
    ln ||dL_t/ds_k||^2 = m_t + n_k + ln sum_i exp(row_{t,i} - m_t) exp(col_{k,i} - n_k).

Every factor of the product is in [0, 1] and the sum in [0, U], whatever |a| is; with |a| <= 1
(every cell above) row and col are themselves <= 0, the step c cutting each pair's product of
factors into the part after it and the part up to it. The blocks: origins in column tiles of
``tile`` steps [k0, k1); targets t >= k1 in one rectangle with c = k1 - 1 (in row chunks); the
tile's own square halved recursively (targets in the upper half, origins in the lower, c the
lower half's last step) down to single pairs; lag 0 is the ratio ||g_t|| / ||g_t||, 0 exactly.

Where a sum is below U tiny / eps of its dtype (the units that carry a row's and a column's
maxima differ by more than the dtype's range), terms lost below the range could matter: those
blocks are recomputed in float64 (from a float32 measurement), and pairs whose float64 sum is
still that small are recomputed as ln sum_i exp(row_{t,i} + col_{k,i}) by a log-sum-exp over
units, which is finite wherever one term is. An exact zero factor (a gate saturated to 1 in
float32) is counted apart: unit i reaches (t, k) only if no a_{s,i} = 0 for k < s <= t, which
splits at c like the sums (prefix counts of zeros equal at t, c and k), so a pair's ln ratio is
-inf exactly where every unit meets a zero factor, as in the sweep. (The sweep renormalises
its cotangents and so can flush a unit that has fallen below the dtype's range relative to the
others to an exact zero, for good; in float32 under strong decay that unit can dominate later,
where the sweep reads -inf or too little. The sums here keep every unit: tests/test_diagonal.py
checks that case against the float64 sweep on the float32 run's own factors.)

Cost: B U T^2 flops in GEMMs (the triangle, or its band t - k <= max_lag), about
(T / tile + log2 tile) B T U exponentials, and two (B, T, U) float64 arrays (the prefix sums and
the row terms) besides the trajectory. The per-lag moments go through the sweep's accumulator
(``adjoint.LagStats``), so ``pair_profile`` returns what ``adjoint.pair_profile`` returns.
"""
from __future__ import annotations

import math
from contextlib import nullcontext

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from .adjoint import LagStats, PairProfile, Trajectory
from .cells.lru import LRULayer
from .cells.mingru import DiagonalLayer

TILE = 512  # origins per column tile (a power of two)
ROWS = 512  # targets per product of a tile's off-diagonal rectangle
FALLBACK_ELEMENTS = 2 ** 22  # the log-sum-exp fallback's pairs x units per chunk


def applies(traj: Trajectory) -> bool:
    """Whether the trajectory is one layer whose step Jacobian is diagonal on the measured state
    (``DiagonalLayer``, or the LRU's ``LRULayer``) with no named part of the state: what
    ``pair_profile`` can measure. A stack, a derived or redrawn layer, a dense cell: False."""
    layers = traj.maps.layers
    return len(layers) == 1 and not traj.maps.parts and \
        isinstance(layers[0], (DiagonalLayer, LRULayer))


def check(traj: Trajectory, tile: int = TILE) -> None:
    """One line (ValueError) for a trajectory the fast path cannot take or a bad tile size."""
    if not applies(traj):
        raise ValueError("the diagonal fast path takes one DiagonalLayer or LRULayer with no "
                         f"named state part; got {[type(x).__name__ for x in traj.maps.layers]}"
                         f" with parts {list(traj.maps.parts)}")
    if not (isinstance(tile, int) and tile >= 1 and tile & (tile - 1) == 0):
        raise ValueError(f"tile={tile!r} is not allowed; it must be a power of two >= 1")


def unit_factors(traj: Trajectory) -> tuple[Tensor, Tensor]:
    """(ln|a|, ln g_dir^2) per unit, each (T, B, U): each unit's factor at each step (-inf for
    an exact zero) and its share of the unit cotangent g_dir_t (-inf where it is 0), in the
    measurement's dtype (float64 for the LRU: Re^2 + Im^2 of g_dir_t's two coordinates, and
    ln |lambda_j| at every step)."""
    check(traj)
    layer = traj.maps.layers[0]
    T, B, _ = traj.shape
    g = traj.g_dir
    if isinstance(layer, LRULayer):
        n = layer.n
        log_r = 0.5 * torch.log(layer.a.double() ** 2 + layer.b.double() ** 2)
        g2 = g[..., :n].double().square() + g[..., n:].double().square()
        return log_r.expand(T, B, n), torch.log(g2)
    return torch.log(layer.a.abs()), torch.log(g.abs()).mul_(2)


def _threshold(dtype: torch.dtype, units: int) -> float:
    """Below this a sum of U products of factors <= 1 may have lost more than its dtype's eps
    (relative) to terms under the dtype's smallest normal number."""
    info = torch.finfo(dtype)
    return units * info.tiny / info.eps


class Scratch:
    """Buffers reused from block to block (by name, grown as needed): a fresh temporary of tens
    of megabytes costs its page faults every time, more than the arithmetic on it."""

    def __init__(self, device):
        self.device, self.buffers = device, {}

    def __call__(self, name: str, shape: tuple, dtype: torch.dtype) -> Tensor:
        n = math.prod(shape)
        buf = self.buffers.get(name)
        if buf is None or buf.numel() < n or buf.dtype != dtype:
            buf = self.buffers[name] = torch.empty(n, dtype=dtype, device=self.device)
        return buf[:n].view(shape)


def factors(arg: Tensor, dtype: torch.dtype, scratch: Scratch, name: str):
    """(exp(arg - M) in ``dtype``, M, M = -inf) with M = max over the last axis of ``arg``
    (X, n, U) float64, taken as 0 where every entry is -inf (no unit reaches that step);
    ``arg`` is shifted in place. Every factor is in [0, 1]. In float32 the shifted argument is
    rounded before its exponential: a relative error of |arg| eps_32 on terms within e^-20 of
    their block's largest, which are what the sums are made of."""
    top = arg.amax(-1, keepdim=True)
    none = top == -math.inf
    top.masked_fill_(none, 0.0)
    arg.sub_(top)
    e = scratch(name, arg.shape, dtype)
    if dtype == torch.float64:
        torch.exp(arg, out=e)
    else:
        e.copy_(arg).exp_()
    return e, top, none


def log_sums(row: Tensor, col: Tensor, dtype: torch.dtype, scratch: Scratch | None = None,
             col_factors: tuple | None = None, out: Tensor | None = None) -> Tensor:
    """(1/2) ln sum_i exp(row[x, t, i] + col[x, k, i]) for row (X, nt, U) and col (X, nk, U)
    float64 (-inf allowed: a unit that does not reach the pair), as (X, nt, nk) float64 (the ln
    of a norm from its squares' sum, halved here, where it costs no pass of its own): the shifted
    product in ``dtype`` (module docstring), its small sums again in float64 and, where still
    below range, by a log-sum-exp over units. -inf exactly where every term is 0. ``row`` and
    ``col`` are overwritten with their shifted values; ``col_factors``: ``factors`` of ``col``
    already taken (then ``col`` is the shifted one). ``out``: where to write the result (any
    strides, e.g. a view of the caller's array: no copy afterwards); else with ``scratch`` it
    lives in its buffers until the next call."""
    scratch = scratch or Scratch(row.device)
    (X, nt, U), nk = row.shape, col.shape[1]
    u, m, row_none = factors(row, dtype, scratch, "u")
    v, n, col_none = col_factors or factors(col, dtype, scratch, "v")
    # no unit reaches the pair: only where a whole row or column of factors is 0 (checked on
    # those (X, n, 1) flags, so the common case costs no pass over the block)
    dead = row_none | col_none.transpose(1, 2) if row_none.any() or col_none.any() else None
    S = torch.bmm(u, v.transpose(1, 2), out=scratch("S", (X, nt, nk), dtype))
    # the small sums: one min over the block decides whether any need a closer look
    if S.amin() < _threshold(dtype, U):
        low = S < _threshold(dtype, U)
        if dead is not None:
            low.logical_and_(dead.logical_not())
    else:
        low = None
    # (ln S + m + n) / 2 in three passes over the block: S's log in place, the outer sum of
    # the halved shifts, then half the log added in float64
    out = torch.add(0.5 * m, 0.5 * n.transpose(1, 2),
                    out=scratch("out", (X, nt, nk), torch.float64) if out is None else out)
    out.add_(S.log_(), alpha=0.5)
    if dtype != torch.float64 and low is not None and low.any():  # again in float64, where needed
        x = low.flatten(1).any(1).nonzero().squeeze(1)
        S = torch.bmm(row[x].exp(), col[x].exp().transpose(1, 2))
        out[x] = 0.5 * (torch.log(S) + m[x] + n[x].transpose(1, 2))
        low[x] = low[x] & (S < _threshold(torch.float64, U))
    if dead is not None:
        out.masked_fill_(dead, -math.inf)
    if low is not None and low.any():
        idx = low.nonzero()
        step = max(1, FALLBACK_ELEMENTS // U)
        for i in range(0, len(idx), step):
            xi, ti, ki = idx[i:i + step].unbind(1)
            out[xi, ti, ki] = 0.5 * (torch.logsumexp(row[xi, ti] + col[xi, ki], -1)
                                     + m[xi, ti, 0] + n[xi, ki, 0])
    return out


def _tile_size(T: int, K: int, tile: int) -> int:
    """A power of two: ``tile``, or less for a short sequence or a short band t - k <= K."""
    def pow2(v: int) -> int:
        return 1 << max(0, math.ceil(math.log2(max(v, 1))))
    return min(tile, pow2(T), max(16, pow2(K + 1)))


def column_tiles(traj: Trajectory, max_lag: int | None = None, tile: int = TILE):
    """The ln ratios ln (||dL_t/ds_k|| / ||g_t||) of every pair k <= t, t - k <= max_lag, by
    column tiles of origins from the last to the first: yields (k0, R) with R (n, L, B) float64,
    R[j, l, b] the pair (t, k) = (k0 + j + l, k0 + j) of sequence b, for j < n and lags
    l <= min(T - 1 - k, max_lag) (entries beyond are undefined); NaN where g_t = 0, as the
    sweep gives. R is valid until the next tile is asked for."""
    check(traj, tile)
    log_a, log_g2 = unit_factors(traj)
    T, B, U = log_a.shape
    dtype, dev = traj.g_dir.dtype, log_a.device
    K = T - 1 if max_lag is None else min(max_lag, T - 1)
    L = K + 1
    b = _tile_size(T, K, tile)
    Tp = -(-T // b) * b
    # batch first and padded to whole tiles: no decay and no target there (a padded row
    # reaches nothing, so it costs no fallback)
    P = torch.empty((B, Tp, U), dtype=torch.float64, device=dev)
    P[:, :T] = log_a.transpose(0, 1)
    zero = log_a == -math.inf
    Z = None
    if zero.any():  # exact zero factors: prefix counts, and ln 1 in the sums
        Z = torch.empty((B, Tp, U), dtype=torch.int32, device=dev)
        Z[:, :T] = torch.cumsum(zero, 0, dtype=torch.int32).transpose(0, 1)
        Z[:, T:] = Z[:, T - 1:T]
        P[:, :T].masked_fill_(zero.transpose(0, 1), 0.0)
    del zero, log_a
    P[:, :T].mul_(2)
    for t in range(1, T):  # the prefix sums: T vector adds (torch.cumsum along a middle axis
        P[:, t] += P[:, t - 1]  # is several times slower), summed in the same order
    P[:, T:] = P[:, T - 1:T]
    rows = torch.full((B, Tp, U), -math.inf, dtype=torch.float64, device=dev)
    rows[:, :T] = log_g2.transpose(0, 1)
    rows[:, :T] += P[:, :T]  # ln g_t^2 + P_t, before the shift
    del log_g2
    has_g = (traj.g_dir.abs().amax(-1) > 0).T  # (B, T): the sweep's NaN rows where g_t = 0
    has_g = torch.cat([has_g, has_g.new_zeros(B, L + b)], 1)
    R = torch.empty((b + L - 1, b, B), dtype=torch.float64, device=dev)
    view = R.as_strided((b, L, B), ((b + 1) * B, b * B, 1))  # [j, l] = R[j + l, j]
    scratch = Scratch(dev)

    for k0 in range(Tp - b, -1, -b):
        k1 = k0 + b
        # no fill: every pair read below (k <= t < T, t - k <= K) is written in this pass
        # the square [k0, k1)^2: targets in the upper half of each block, origins in the lower
        s = b // 2
        while s >= 1 and K >= 1:
            nb = b // (2 * s)
            Pv = P[:, k0:k1].view(B, nb, 2, s, U)
            c = Pv[:, :, 0, s - 1:s]
            col = torch.sub(c, Pv[:, :, 0], out=scratch("col", (B, nb, s, U), torch.float64))
            row = torch.sub(rows[:, k0:k1].view(B, nb, 2, s, U)[:, :, 1], c,
                            out=scratch("row", (B, nb, s, U), torch.float64))
            if Z is not None:
                Zv = Z[:, k0:k1].view(B, nb, 2, s, U)
                zc = Zv[:, :, 0, s - 1:s]
                col.masked_fill_(Zv[:, :, 0] != zc, -math.inf)  # a zero in (k, c]
                row.masked_fill_(Zv[:, :, 1] != zc, -math.inf)  # a zero in (c, t]
            v = log_sums(row.view(B * nb, s, U), col.view(B * nb, s, U), dtype, scratch)
            blocks = R[:b].view(nb, 2, s, nb, 2, s, B).diagonal(dim1=0, dim2=3)
            blocks[1, :, 0] = v.view(B, nb, s, s).permute(2, 3, 0, 1)
            s //= 2
        # the targets after the tile, against c = k1 - 1
        top = min(T, k1 + K)
        if top > k1:
            c = P[:, k1 - 1:k1]
            col = torch.sub(c, P[:, k0:k1], out=scratch("col_tile", (B, b, U), torch.float64))
            if Z is not None:
                zc = Z[:, k1 - 1:k1]
                col.masked_fill_(Z[:, k0:k1] != zc, -math.inf)
            col_factors = factors(col, dtype, scratch, "v_tile")  # one for every row chunk
            for t0 in range(k1, top, ROWS):
                t1 = min(top, t0 + ROWS)
                row = torch.sub(rows[:, t0:t1], c,
                                out=scratch("row", (B, t1 - t0, U), torch.float64))
                if Z is not None:
                    row.masked_fill_(Z[:, t0:t1] != zc, -math.inf)
                log_sums(row, col, dtype, scratch, col_factors,
                         out=R[t0 - k0:t1 - k0].permute(2, 0, 1))
        R[:b].diagonal(dim1=0, dim2=1).fill_(0.0)  # lag 0: ||g_t|| / ||g_t||
        n = min(T - k0, b + L - 1)  # targets t = k0 + r < T: the rows ever read
        no_g = ~has_g[:, k0:k0 + n].T.unsqueeze(1)
        if no_g.any():  # the sweep's NaN where g_t = 0; most runs have none
            R[:n].masked_fill_(no_g, math.nan)
        yield k0, view[:min(b, T - k0)]


def pair_profile(traj: Trajectory, max_lag: int | None = None, keep_matrix: bool = False,
                 progress: bool = False, tile: int = TILE) -> PairProfile:
    """``adjoint.pair_profile`` of a diagonal trajectory (``applies``) without the sweep: the
    same per-lag moments of lags.parquet, through the same accumulator, visited in the sweep's
    order (k from T - 1 down to 0)."""
    check(traj, tile)
    T, B, _ = traj.shape
    K = T - 1 if max_lag is None else min(max_lag, T - 1)
    L = K + 1
    stats = LagStats(traj, L, keep_matrix)
    bar = tqdm(total=sum(min(T, k + L) - k for k in range(T)), unit="pair", unit_scale=True,
               desc="diagonal pairs", leave=False, disable=None, mininterval=1.0) \
        if progress else nullcontext()
    with bar:
        for k0, R in column_tiles(traj, max_lag, tile):
            for j in range(R.shape[0] - 1, -1, -1):
                k = k0 + j
                stats(k, R[j, :min(T - k, L)])
            if progress:
                bar.update(sum(min(T, k + L) - k for k in range(k0, k0 + R.shape[0])))
    stats.flush()
    lag = np.arange(L)
    return PairProfile(lag, T - lag, stats.numpy(stats.grad[""]), stats.numpy(stats.ratio[""]),
                       None if stats.matrix is None else stats.matrix.cpu().numpy())


def log_grad_norms(traj: Trajectory, max_lag: int | None = None,
                   ratio: bool = False) -> Tensor:
    """``adjoint.log_grad_norms`` of a diagonal trajectory: every ln ||dL_t/ds_k|| (or, with
    ``ratio``, ln ||dL_t/ds_k|| / ||dL_t/ds_t||) as a (T, T, B) float64 tensor [t, k], NaN
    outside the measured triangle."""
    check(traj)
    T, B, _ = traj.shape
    out = torch.full((T, T, B), math.nan, dtype=torch.float64, device=traj.u.device)
    for k0, R in column_tiles(traj, max_lag):
        for j in range(R.shape[0]):
            k = k0 + j
            m = min(T - k, R.shape[1])
            out[k:k + m, k] = R[j, :m] if ratio else R[j, :m] + traj.g_log_norm[k:k + m]
    return out
