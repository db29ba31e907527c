"""The gradient through the inputs: log10 ||dy_t/dx_k||_F for every pair of steps of any sequence
model, exact.

For a ``torch.nn.Module`` mapping x (B, T, D), batch first, to outputs y (B, T, C), the block
dy_t/dx_k is the C x D Jacobian of step t's outputs with respect to step k's inputs, per
sequence; its Frobenius norm

    ||dy_t/dx_k||_F^2 = sum_{c, d} (dy_{t,c} / dx_{k,d})^2

is what survives of an input k steps back in an output (a recurrence: ~ exp(rate (t - k)); causal
self-attention: the softmax weight of x_k in y_t, flat in the lag where the weights are uniform).

How it is computed: one forward pass, then one vector-Jacobian product per output direction
(t, c), T C of them: the cotangent e_{t,c} on y gives dy_{t,c}/dx_k for every k at once. The
batch is summed first (each sequence's outputs depend on its own inputs only, so the gradient of
sum_b y_{b,t,c} with respect to x_b is row b's), and the directions are vmapped through the
backward graph (``torch.autograd.grad(..., is_grads_batched=True)``) in chunks of whole targets
to a memory budget: the cost is T C backward passes batched into T C / chunk calls, against T C
separate backward calls for a per-(t, c) loop. A backward graph that cannot be vmapped (a custom
``autograd.Function`` whose backward leaves torch) falls back to that loop, saying so once.

Non-causal pairs: every k > t is computed too; a nonzero derivative there (in any sequence; a
NaN, autograd's 0 * inf, is not counted) is reported in ``InputSensitivity.noncausal`` and by
a ``NonCausalWarning`` in one line, while ``log10_grad`` stays NaN above the diagonal.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from .adjoint import PairProfile
from .fit import fit_decay, lag_table
from .threads import torch_threads

# bytes of autograd state a chunk of directions may use, by default (see ``_chunk``)
MEMORY = 2 ** 28


class NonCausalWarning(UserWarning):
    """The model's output at step t depends on an input after t."""


@dataclass
class InputSensitivity:
    """What ``input_sensitivity`` returns.

    ``log10_grad`` (T, T): entry [t, k] the batch mean of log10 ||dy_t/dx_k||_F, NaN where
    k > t (an exact zero derivative gives -inf); ``per_sequence`` (B, T, T) the same per
    sequence, when asked for. ``noncausal`` (n, 2): the pairs (t, k), k > t, where some sequence
    has dy_t/dx_k != 0 (empty for a causal model; ``causal`` says so). ``lags``: per lag t - k,
    the columns of lags.parquet (``log10_grad_mean/std`` of ||dy_t/dx_k||, ``log10_ratio_mean/std``
    of ||dy_t/dx_k|| / ||dy_t/dx_t||, ``n_finite``, ``n_zero``); ``decay_rate`` the fitted slope of
    the ln ratio against the lag (nats per step; ``rnnlab.engine.fit.fit_decay``) with its
    ``decay_rate_stderr``, ``regime`` and the whole ``fit`` record.
    """

    log10_grad: np.ndarray
    noncausal: np.ndarray
    lags: pd.DataFrame
    decay_rate: float
    decay_rate_stderr: float
    regime: str
    fit: dict
    per_sequence: np.ndarray | None = None

    @property
    def causal(self) -> bool:
        return len(self.noncausal) == 0


def _check_input(model, x, chunk, memory) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model is a {type(model).__name__}; input_sensitivity takes a "
                        "torch.nn.Module mapping x (B, T, D) to outputs (B, T, C)")
    if not isinstance(x, Tensor):
        raise TypeError(f"x is a {type(x).__name__}; input_sensitivity takes a torch.Tensor "
                        "(B, T, D), batch first")
    if x.dim() != 3 or 0 in x.shape:
        raise ValueError(f"x has shape {tuple(x.shape)}; input_sensitivity takes a nonempty "
                         "(B, T, D) tensor, batch first")
    if not x.is_floating_point():
        raise ValueError(f"x has dtype {x.dtype}; input_sensitivity takes a floating-point x "
                         "(float64 for reference-quality numbers)")
    for name, p in list(model.named_parameters()) + list(model.named_buffers()):
        if p.is_floating_point() and p.dtype != x.dtype:
            raise ValueError(f"x has dtype {x.dtype} but the model's {name} has {p.dtype}; "
                             f"convert one (model.to({x.dtype}) or x.to({p.dtype}))")
        if p.device != x.device:
            raise ValueError(f"x is on {x.device} but the model's {name} is on {p.device}; "
                             "move one (model.to(x.device))")
    if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1):
        raise ValueError(f"chunk={chunk!r} is not allowed; it must be None or an integer >= 1 "
                         "(targets per backward call)")
    if isinstance(memory, bool) or not isinstance(memory, int) or memory < 1:
        raise ValueError(f"memory={memory!r} is not allowed; it must be an integer >= 1 (bytes)")


def _forward(model: nn.Module, x: Tensor) -> tuple[Tensor, Tensor, int]:
    """(x as a leaf that requires grad, y, bytes of the tensors autograd saved for backward,
    parameters and buffers left out): the model run once, its output checked."""
    x = x.detach().requires_grad_(True)
    own = {t.data_ptr() for t in list(model.parameters()) + list(model.buffers())}
    saved = 0

    def pack(t):
        nonlocal saved
        if t.data_ptr() not in own:
            saved += t.numel() * t.element_size()
        return t

    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = model(x)
    B, T, _ = x.shape
    if not isinstance(y, Tensor):
        raise ValueError(f"the model returned a {type(y).__name__}; input_sensitivity takes a "
                         "model whose forward returns one tensor (B, T, C) (wrap an nn.GRU, "
                         "which returns (output, h_n), in a module that returns its output)")
    if y.dim() != 3 or tuple(y.shape[:2]) != (B, T) or y.shape[2] == 0:
        raise ValueError(f"the model maps x {tuple(x.shape)} to {tuple(y.shape)}; "
                         f"input_sensitivity takes a model mapping (B, T, D) to (B, T, C), "
                         f"here ({B}, {T}, C), batch first")
    if y.dtype != x.dtype:
        raise ValueError(f"the model maps x of dtype {x.dtype} to outputs of dtype {y.dtype}; "
                         "input_sensitivity takes a model that keeps the dtype")
    if y.grad_fn is None:
        raise ValueError("the model's output does not depend on x (it has no autograd graph); "
                         "input_sensitivity takes a differentiable model")
    return x, y, saved


def _chunk(B: int, T: int, D: int, C: int, itemsize: int, saved: int, memory: int) -> int:
    """Targets per vmapped backward: each direction's backward holds cotangents of at most the
    size of the saved activations, plus its (B, T, D) input gradient and (B, T, C) cotangent."""
    per_direction = saved + B * T * (D + C) * itemsize
    return max(1, min(T, memory // (C * per_direction)))


def _directions(x: Tensor, y: Tensor, targets: range, batched: bool) -> Tensor | None:
    """dy_{t,c}/dx for t in ``targets``, every c: (n, C, B, T, D), the batch summed (row b is
    sequence b's own); None where x is not in the graph."""
    B, T, C = y.shape
    n = len(targets)
    cot = y.new_zeros(n, C, B, T, C)
    idx = torch.arange(C, device=y.device)
    for i, t in enumerate(targets):
        cot[i, idx, :, t, idx] = 1.0
    cot = cot.view(n * C, B, T, C)
    if batched:
        g, = torch.autograd.grad(y, x, cot, retain_graph=True, is_grads_batched=True,
                                 allow_unused=True)
        return None if g is None else g.view(n, C, *x.shape)
    out = []
    for e in cot:
        g, = torch.autograd.grad(y, x, e, retain_graph=True, allow_unused=True)
        if g is None:
            return None
        out.append(g)
    return torch.stack(out).view(n, C, *x.shape)


def _log10_norms(g: Tensor) -> Tensor:
    """log10 ||dy_t/dx_k||_F from (n, C, B, T, D): (n, B, T) in float64, scaled by the block's
    largest entry so that no square under- or overflows; -inf for an exact zero, +inf for an
    infinite entry, NaN for a NaN one."""
    g = g.to(torch.float64).permute(0, 2, 3, 1, 4).flatten(-2)  # (n, B, T, C D)
    m = g.abs().amax(-1)  # NaN where an entry is NaN
    safe = torch.where((m > 0) & torch.isfinite(m), m, torch.ones_like(m))
    out = torch.log10(safe) + torch.log10((g / safe[..., None]).square().sum(-1).sqrt())
    out = torch.where(m == 0, -math.inf, out)
    return torch.where(torch.isinf(m), math.inf, out)


def sensitivity_matrix(model: nn.Module, x: Tensor, chunk: int | None = None,
                       memory: int = MEMORY) -> Tensor:
    """log10 ||dy_t/dx_k||_F per sequence for every (t, k), above the diagonal included: a
    (B, T, T) float64 tensor on x's device (-inf where the derivative is exactly zero).
    ``chunk``: targets t per backward call (None: as many as ``memory`` bytes allow)."""
    _check_input(model, x, chunk, memory)
    x, y, saved = _forward(model, x)
    B, T, D = x.shape
    C = y.shape[2]
    if chunk is None:
        chunk = _chunk(B, T, D, C, x.element_size(), saved, memory)
    out = torch.empty(B, T, T, dtype=torch.float64, device=x.device)
    batched = True
    for start in range(0, T, chunk):
        targets = range(start, min(T, start + chunk))
        try:
            g = _directions(x, y, targets, batched)
        except torch.OutOfMemoryError:
            raise
        except RuntimeError as err:
            if not batched:
                raise
            warnings.warn("input_sensitivity: the model's backward cannot be vmapped "
                          f"({str(err).partition(chr(10))[0][:160]}); one backward call per output "
                          "direction instead", RuntimeWarning, stacklevel=3)
            batched = False
            g = _directions(x, y, targets, batched)
        if g is None:
            raise ValueError("the model's output does not depend on x; input_sensitivity takes "
                             "a model whose outputs are computed from its inputs")
        out[:, targets.start:targets.stop] = _log10_norms(g).transpose(0, 1)
    return out


def lag_moments(ln: np.ndarray) -> dict:
    """Per lag l = t - k and sequence b, the moments of the finite values ln[b, t, t - l] over
    t = l..T-1: (T, B) arrays ``count``, ``mean``, ``M2`` and ``nonfinite`` (an exact zero's
    -inf, counted apart), as ``rnnlab.engine.fit.fit_decay`` takes them."""
    B, T, _ = ln.shape
    out = {k: np.zeros((T, B)) for k in ("count", "mean", "M2", "nonfinite")}
    for lag in range(T):
        v = np.diagonal(ln, offset=-lag, axis1=1, axis2=2)  # (B, T - lag): [b, t - lag]
        ok = np.isfinite(v)
        n = ok.sum(1)
        w = np.where(ok, v, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(n > 0, w.sum(1) / np.maximum(n, 1), 0.0)
        out["count"][lag], out["mean"][lag] = n, mean
        out["M2"][lag] = np.where(ok, (v - mean[:, None]) ** 2, 0.0).sum(1)
        out["nonfinite"][lag] = (~ok).sum(1)
    return out


def lag_profile(log10_grad: np.ndarray) -> PairProfile:
    """The per-lag summary of a per-sequence (B, T, T) log10 ||dy_t/dx_k|| (the lower triangle
    is read): moments of the ln norm and of the ln ratio ln ||dy_t/dx_k|| / ||dy_t/dx_t|| per
    lag and sequence, as ``rnnlab.engine.adjoint.PairProfile`` (for ``fit.lag_table`` and
    ``fit.fit_decay``). The ratio removes each target's own level, so a profile flat in the lag
    at every t (uniform attention) has ratio 0 at every lag."""
    ln = np.asarray(log10_grad, dtype=float) * math.log(10)
    T = ln.shape[1]
    diag = np.diagonal(ln, axis1=1, axis2=2)[:, :, None]  # ln ||dy_t/dx_t||, (B, T, 1)
    with np.errstate(invalid="ignore"):
        ratio = ln - diag
    lag = np.arange(T)
    return PairProfile(lag, T - lag, lag_moments(ln), lag_moments(ratio))


def _noncausal_message(pairs: np.ndarray) -> str:
    shown = ", ".join(f"({t}, {k})" for t, k in pairs[:5])
    more = f" and {len(pairs) - 5} more" if len(pairs) > 5 else ""
    return (f"the model is not causal: dy_t/dx_k != 0 for {len(pairs)} pairs with k > t, "
            f"(t, k) = {shown}{more}; they are in .noncausal, not in log10_grad")


def input_sensitivity(model: nn.Module, x: Tensor, per_sequence: bool = False,
                      chunk: int | None = None, memory: int = MEMORY,
                      threads: int | None = None, fit_min_lag: int = 1,
                      fit_max_lag: int | None = None,
                      neutral_tol: float = 1e-3) -> InputSensitivity:
    """log10 ||dy_t/dx_k||_F for every pair k <= t of a sequence model, exact.

    ``model``: any ``torch.nn.Module`` whose forward maps x (B, T, D), batch first, to one tensor
    y (B, T, C) in x's dtype, each sequence on its own (eval mode: no batch statistics). The
    derivatives are taken at x through one forward pass and T C vector-Jacobian products,
    vmapped over chunks of ``chunk`` targets (None: as many as ``memory`` bytes of autograd
    state allow, estimated from the forward's saved tensors). ``per_sequence``: also the (B, T,
    T) values. Non-causal pairs (k > t with a nonzero derivative in some sequence) are measured
    and listed in ``.noncausal``, with a ``NonCausalWarning``. The decay rate is fitted to the
    ln ratio ||dy_t/dx_k|| / ||dy_t/dx_t|| over ``fit_min_lag <= lag <= fit_max_lag`` (nats per
    step; ``rnnlab.engine.fit.fit_decay``). ``threads``: torch threads for this call (None:
    unchanged). Memory: 8 B T^2 bytes for the result. Use float64 for reference-quality numbers.
    """
    with torch_threads(threads):
        full = sensitivity_matrix(model, x, chunk, memory).cpu().numpy()
    T = full.shape[1]
    above = np.triu(np.ones((T, T), dtype=bool), 1)
    # NaN is left out: autograd's 0 * inf where a zero cotangent meets an infinite local
    # derivative (sqrt at 0) makes NaN of what is an exact zero
    nonzero = (full > -math.inf).any(0) & above
    noncausal = np.argwhere(nonzero).astype(np.int64)
    if len(noncausal):
        warnings.warn(_noncausal_message(noncausal), NonCausalWarning, stacklevel=2)
    full[:, above] = math.nan
    profile = lag_profile(full)
    with np.errstate(invalid="ignore", divide="ignore"):  # T = 1: no slope, rate undefined
        fit = fit_decay(profile.lag, profile.ln_ratio, fit_min_lag, fit_max_lag, neutral_tol)
        mean = full.mean(0)
    return InputSensitivity(mean, noncausal.reshape(-1, 2), pd.DataFrame(lag_table(profile)),
                            fit["decay_rate"], fit["decay_rate_stderr"], fit["regime"], fit,
                            full if per_sequence else None)
