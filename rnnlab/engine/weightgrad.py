"""Where the weight gradient comes from: the part of dL/dW carried by each lag.

The tutorial's section 6 says the total gradient does not vanish; what vanishes is the part carried
from far back. With delta_{t,k} = dL_t/dh_k and a_k the recurrent pre-activation,

    dL/dW = sum_{pairs k <= t} (dL_t/da_k) h_{k-1}^T,   dL_t/da_k = phi'(a_k) * delta_{t,k} (Elman),

(for a gated cell dL_t/da_k is the cotangent of W_hh h_{k-1}, every gate block stacked, so W is
W_hh), summed over the batch. Grouping the pairs by lag l = t - k gives G_l, whose Frobenius norm
says how much the update learns from inputs l steps back, and whose tail sum sum_{l >= d} G_l
measures the share of the update carried by lags >= d. For a linear RNN with W = rho Q,
G_l = rho^l (Q^T)^l sum_k g_{k+l} h_{k-1}^T exactly.

Each group is accumulated in the same adjoint sweep as the measurement
(``rnnlab.engine.adjoint.sweep_pairs``), as a matrix with its own natural-log scale, so terms of
wildly different size (an exploding or vanishing network) add without overflow; lags can be
binned to bound memory at (bins x G N x N) numbers.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from .adjoint import Trajectory, sweep_pairs
from .logspace import unit

# the accumulators' size above which lags are binned (float64 numbers)
MAX_NUMBERS = 2 ** 25


def _previous_states(traj: Trajectory) -> tuple[Tensor, Tensor]:
    """h_{k-1} for k = 0..T-1 as unit directions (T, B, N) and ln norms (T, B) float64."""
    N = traj.u.shape[-1]
    h_prev_dir, h_prev_ln = unit(traj.u[:-1])
    h_prev_ln = h_prev_ln + traj.log_scale[:-1]
    h0_dir, h0_ln = unit(traj.h0[:, :N])
    return (torch.cat([h0_dir.to(traj.u.dtype)[None], h_prev_dir]),
            torch.cat([h0_ln[None], h_prev_ln]))


class WeightGradStats:
    """A visitor of ``rnnlab.engine.adjoint.sweep_pairs`` that accumulates G_bin = sum over pairs
    with t - k in the bin of (dL_t/da_k) h_{k-1}^T (summed over the batch), each bin a float64
    matrix with its own ln scale; pass it to ``rnnlab.engine.adjoint.pair_profile(...,
    also=stats)`` to get it from the measurement's own sweep, then read ``result()``."""

    def __init__(self, traj: Trajectory, max_lag: int | None = None,
                 bin_width: int | None = None, loss_steps: Tensor | None = None):
        maps = traj.maps
        if len(maps.layers) != 1:
            raise ValueError("the weight gradient by lag is computed for one-layer networks; "
                             f"this one has {len(maps.layers)} layers")
        self.layer, self.traj = maps.layers[0], traj
        T, B, _ = traj.shape
        self.T = T
        self.L = T if max_lag is None else min(max_lag, T - 1) + 1
        GN, N = self.layer.W.shape
        if bin_width is None:
            bin_width = max(1, math.ceil(self.L * GN * N / MAX_NUMBERS))
        if isinstance(bin_width, bool) or not isinstance(bin_width, int) or bin_width < 1:
            raise ValueError(f"bin_width={bin_width!r} is not allowed; it must be an integer >= 1")
        self.width, self.nbins = bin_width, math.ceil(self.L / bin_width)
        self.dev = traj.u.device
        self.acc = torch.zeros(self.nbins, GN, N, dtype=torch.float64, device=self.dev)
        self.scale = torch.full((self.nbins,), -math.inf, dtype=torch.float64, device=self.dev)
        self.h_dir, self.h_ln = _previous_states(traj)
        # the steps t whose loss L_t is in L (all by default; the last one for a last-step task)
        self.steps = torch.ones(T, dtype=torch.bool) if loss_steps is None else \
            torch.as_tensor(loss_steps, dtype=torch.bool).cpu()
        if self.steps.shape != (T,):
            raise ValueError(f"loss_steps has shape {tuple(self.steps.shape)}, expected ({T},)")
        self.steps_dev = self.steps.to(self.dev)

    def __call__(self, k: int, ln_ratio: Tensor, parts: dict, cot: Tensor) -> None:
        m, dev = ln_ratio.shape[0], self.dev
        # derived maps (rnnlab.engine.derived) give each pair's whole term d s_k/dW^T delta,
        # h_{k-1} included; hand-written ones its factor beside the unit h_{k-1}
        derived = hasattr(self.layer, "param_cotangent")
        # ln of each pair's true size: ratio + ln ||g_t|| (+ ln ||h_{k-1}||), (m, B)
        c = ln_ratio + self.traj.g_log_norm[k:k + m] + (0 if derived else self.h_ln[k])
        c = torch.where(torch.isfinite(c) & self.steps_dev[k:k + m, None], c, -math.inf)
        bins = torch.arange(m, device=dev) // self.width
        top = torch.full((self.nbins,), -math.inf, dtype=torch.float64, device=dev)
        top = top.scatter_reduce(0, bins, c.amax(1), "amax")
        new = torch.maximum(self.scale, top)
        new_safe = torch.where(torch.isfinite(new), new, 0.0)
        # rescale what is there to the bins' new scales, then add this step's pairs
        old = torch.where(torch.isfinite(self.scale), self.scale - new_safe, -math.inf)
        self.acc.mul_(torch.exp(old).nan_to_num(0.0)[:, None, None])
        w = torch.exp(c - new_safe[bins][:, None]).to(cot.dtype)  # (m, B), <= 1
        if derived:
            terms = self.layer.param_cotangent(k, cot * w.unsqueeze(-1)).double()
        else:
            G = self.layer.recurrent_cotangent(k, cot)  # (m, B, G N)
            terms = torch.einsum("lbg,bn->lgn", G * w.unsqueeze(-1), self.h_dir[k]).double()
        self.acc.index_add_(0, bins, terms)
        self.scale.copy_(new)

    def result(self) -> dict:
        return _summarise(self.acc, self.scale, self.L, self.width, self.steps.numpy())


def weight_grad_by_lag(traj: Trajectory, max_lag: int | None = None,
                       bin_width: int | None = None, progress: bool = False) -> dict:
    """Per lag bin: the Frobenius norm of G_bin and the shares of ||dL/dW||, from a sweep of its
    own (``WeightGradStats`` shares the measurement's sweep instead).

    Returns numpy arrays: ``lag`` and ``lag_hi`` (the bin's first and last lag), ``n_pairs``
    (pairs per sample in the bin), ``log10_norm`` (log10 ||G_bin||_F), ``share_ge``
    (||sum of bins >= this one||_F / ||dL/dW||_F: the norm of the part carried by lags >= lag,
    relative to the whole; 1 for the first bin), ``projection_share_ge``
    (<sum of bins >= this one, dL/dW> / ||dL/dW||^2: additive over bins) and
    ``log10_total_norm``. ``bin_width``: None picks 1 unless bins x (G N) x N would exceed
    2^25 numbers. One-layer cells only.
    """
    stats = WeightGradStats(traj, max_lag, bin_width)
    sweep_pairs(traj, max_lag, stats, progress)
    return stats.result()


def _summarise(acc: Tensor, scale: Tensor, L: int, width: int, steps: np.ndarray) -> dict:
    """Per-bin log norms, and the tail shares from one pass over the suffix sums
    sum_{j >= i} G_j, each kept as (matrix, ln scale) so a tail far below the total keeps its
    digits."""
    nbins = acc.shape[0]
    log_norm = scale + torch.log(torch.linalg.matrix_norm(acc))
    finite = torch.isfinite(scale)
    top = scale[finite].max() if finite.any() else torch.tensor(0.0, dtype=torch.float64)
    # bins far below the largest contribute nothing the total's rounding would keep
    total = (acc * torch.exp(torch.where(finite, scale - top, -math.inf))[:, None, None]).sum(0)
    total_norm = torch.linalg.matrix_norm(total).item()
    share, projection = np.zeros(nbins), np.zeros(nbins)
    tail, tail_scale = torch.zeros_like(total), -math.inf
    for i in range(nbins - 1, -1, -1):
        s_i = scale[i].item()
        if math.isfinite(s_i):
            new = max(tail_scale, s_i)
            tail = tail * math.exp(tail_scale - new) + acc[i] * math.exp(s_i - new)
            tail_scale = new
        if math.isfinite(tail_scale) and total_norm > 0:
            rel = math.exp(tail_scale - top.item())
            share[i] = rel * torch.linalg.matrix_norm(tail).item() / total_norm
            projection[i] = rel * (tail * total).sum().item() / total_norm ** 2
    lag = np.arange(nbins) * width
    lag_hi = np.minimum(lag + width - 1, L - 1)
    t = np.flatnonzero(steps)  # pairs (t, t - l) with t a loss step and t >= l
    n_pairs = np.array([sum(int((t >= l).sum()) for l in range(a, b + 1))
                        for a, b in zip(lag, lag_hi)])
    return {"lag": lag, "lag_hi": lag_hi, "n_pairs": n_pairs,
            "log10_norm": (log_norm / math.log(10)).cpu().numpy(), "share_ge": share,
            "projection_share_ge": projection,
            "log10_total_norm": np.full(nbins, (top.item() + math.log(total_norm))
                                        / math.log(10) if total_norm > 0 else -math.inf)}
