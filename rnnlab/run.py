"""One measurement, end to end and free of I/O: RunSpec -> network and data -> lag table and fit.

``measure`` returns plain arrays and numbers; the sweep runner turns them into files.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from . import gradients
from .config import RunSpec
from .fit import fit_decay, lag_table
from .init import draw


@dataclass
class Measurement:
    """What one run measured: the per-lag table (columns of lags.parquet), the fit, the device
    it ran on, the wall time, and the tensors of tensors.npz (float64 numpy)."""

    lags: dict
    fit: dict
    device: str
    seconds: float
    tensors: dict = field(default_factory=dict)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform
    return platform.processor() or platform.machine() or "cpu"


def measure(spec: RunSpec) -> Measurement:
    """Measure ||dL_t/dh_k|| for one validated configuration.

    mode ``pairs``: every pair k <= t (t - k <= max_lag), the per-lag summaries of DESIGN.md.
    mode ``profile``: the O(T) sweep of the last loss L_{T-1} alone (one pair per lag) plus the
    summed loss L = sum_t L_t, for very long sequences.
    """
    spec.validate()
    m, d, ms = spec.model, spec.data, spec.measure
    device, dtype = ms.torch_device(), ms.torch_dtype()
    start = time.perf_counter()
    net = draw(m, d, spec.seed)
    p = net.params.to(device, dtype)
    traj = gradients.forward(p, net.x.to(device, dtype), net.h0.to(device, dtype),
                             net.y_target.to(device, dtype), burn_in=d.burn_in, loss=m.loss)
    matrix = ln_last = None
    if ms.mode == "pairs":
        profile = gradients.pair_profile(traj, p.W, ms.max_lag, keep_matrix=ms.save_tensors,
                                         progress=ms.progress)
        lags, matrix = lag_table(profile), profile.log10_grad
        fit = fit_decay(profile.lag, profile.ln_ratio, ms.fit_min_lag, ms.fit_max_lag,
                        ms.neutral_tol)
    else:
        lags, fit, ln_last = _profile_mode(traj, p.W, spec)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    tensors = {}
    if ms.save_tensors:
        T = d.seq_len
        tensors = {"U": net.params.U, "W": net.params.W, "b": net.params.b, "V": net.params.V,
                   "c": net.params.c, "h0": traj.h0, "x": net.x[:, d.burn_in:],
                   "y_target": net.y_target}
        tensors = {k: v.detach().cpu().double().numpy() for k, v in tensors.items()}
        if matrix is None:  # profile mode measures only the last row of the triangle
            matrix = np.full((T, T), np.nan)
            L = ln_last.shape[0]
            matrix[T - 1, T - L:] = ln_last.mean(1)[::-1] / math.log(10)
        tensors["log10_grad"] = matrix
    return Measurement(lags, fit, device_name(device), seconds, tensors)


def _profile_mode(traj, W, spec: RunSpec):
    ms = spec.measure
    ln_ratio, ln_last, ln_sum = gradients.loss_profiles(traj, W)
    T = ln_last.shape[0]
    L = T if ms.max_lag is None else min(ms.max_lag, T - 1) + 1
    ln_ratio, ln_last, ln_sum = ln_ratio[:L], ln_last[:L], ln_sum[:L]
    moments = {}
    for name, v in (("grad", ln_last), ("ratio", ln_ratio), ("sum_grad", ln_sum)):
        ok = torch.isfinite(v)
        moments[name] = {"count": ok.double(), "mean": torch.where(ok, v, 0.0),
                         "M2": torch.zeros_like(v), "nonfinite": (~ok).double()}
        moments[name] = {k: t.cpu().numpy() for k, t in moments[name].items()}
    lag = np.arange(L)
    profile = gradients.PairProfile(lag, np.ones(L, dtype=np.int64), moments["grad"],
                                    moments["ratio"])
    lags = lag_table(profile)
    summed = lag_table(gradients.PairProfile(lag, profile.n_pairs, moments["sum_grad"],
                                             moments["sum_grad"]))
    lags["log10_sum_grad_mean"] = summed["log10_grad_mean"]
    lags["log10_sum_grad_std"] = summed["log10_grad_std"]
    fit = fit_decay(lag, moments["ratio"], ms.fit_min_lag, ms.fit_max_lag, ms.neutral_tol)
    return lags, fit, ln_last.cpu().numpy()
