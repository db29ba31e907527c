"""One measurement, end to end and free of I/O: RunSpec -> network and data -> lag table and fit.

``measure`` returns plain arrays and numbers; the sweep runner turns them into files.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from . import gradients, theory
from .config import RunSpec
from .fit import fit_decay, lag_table
from .init import draw, spectral_radius
from .cells import KEEP_GATE, GatedParams
from .lyapunov import frame_transient, lyapunov_from_maps
from .model import ElmanParams
from .weightgrad import WeightGradStats


@dataclass
class Measurement:
    """What one run measured: the per-lag table (columns of lags.parquet), the fit, the device
    it ran on, the wall time, and the tensors of tensors.npz (float64 numpy)."""

    lags: dict
    fit: dict
    device: str
    seconds: float
    theory: dict = field(default_factory=dict)
    tensors: dict = field(default_factory=dict)
    jacobian: dict | None = None
    weight_grad: dict | None = None


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform
    return platform.processor() or platform.machine() or "cpu"


def measure(spec: RunSpec) -> Measurement:
    """Measure ||dL_t/dh_k|| for one validated configuration.

    mode ``pairs``: every pair k <= t (t - k <= max_lag), the per-lag summaries of lags.parquet.
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
    matrix = ln_last = wgrad = None
    if ms.mode == "pairs":
        wg = WeightGradStats(traj, ms.max_lag) if ms.weight_grad else None
        profile = gradients.pair_profile(traj, ms.max_lag, keep_matrix=ms.save_tensors,
                                         progress=ms.progress, also=wg)
        wgrad = wg.result() if wg is not None else None
        lags, matrix = lag_table(profile), profile.log10_grad
        fit = fit_decay(profile.lag, profile.ln_ratio, ms.fit_min_lag, ms.fit_max_lag,
                        ms.neutral_tol)
    else:
        lags, fit, ln_last = _profile_mode(traj, spec)
    predictions = predict(net.params, spec)
    if ms.lyapunov:
        T, B, _ = traj.shape
        lam = lyapunov_from_maps(traj.maps, T, k=1, transient=frame_transient(T),
                                 generator=torch.Generator(device).manual_seed(spec.seed),
                                 batch=B, dtype=dtype, device=device)
        predictions["lyapunov_1"] = lam.mean().item()
    jac = _jacobian_table(traj, spec) if ms.jacobian else None

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    tensors = {}
    if ms.save_tensors:
        T = d.seq_len
        tensors = {**net.params.tensors(), "h0": traj.h0, "x": net.x[:, d.burn_in:],
                   "y_target": net.y_target}
        if m.cell == "lstm":  # (h, c) side by side in the engine; torch.nn.LSTM takes them apart
            N = m.hidden_size
            tensors["h0"], tensors["c0"] = traj.h0[:, :N], traj.h0[:, N:]
        tensors = {k: v.detach().cpu().double().numpy() for k, v in tensors.items()}
        if matrix is None:  # profile mode measures only the last row of the triangle
            matrix = np.full((T, T), np.nan)
            L = ln_last.shape[0]
            matrix[T - 1, T - L:] = ln_last.mean(1)[::-1] / math.log(10)
        tensors["log10_grad"] = matrix
    return Measurement(lags, fit, device_name(device), seconds, predictions, tensors, jac,
                       wgrad)


def _jacobian_table(traj, spec: RunSpec) -> dict:
    """Per-lag batch mean and std of log10 ||dh_{T-1}/dh_{T-1-l}|| (spectral and Frobenius),
    l = 0..max_lag (or T: lag T reaches h0)."""
    T = spec.data.seq_len
    L = T if spec.measure.max_lag is None else min(spec.measure.max_lag, T)
    norms = gradients.jacobian_norms(traj, L)
    out = {"lag": np.arange(L + 1)}
    for name in ("spec", "frob"):
        v = norms[f"ln_{name}"] / math.log(10)
        out[f"log10_{name}_mean"] = v.mean(1).cpu().numpy()
        out[f"log10_{name}_std"] = v.std(1, correction=0).cpu().numpy()
    return out


def predict(params, spec: RunSpec) -> dict:
    """What theory says for this run (docs/theory.md), all rates in nats per step.

    sigma_w is the network's own entry scale, sqrt(||W||_F^2 / N) (= rho for W = rho Q, ~ gain
    for Gaussian W); s2 = (input_gain input_std)^2 + bias_std^2 is the per-unit variance of the
    drive. ``mean_field_rate`` = 1/2 log chi assumes a full-rank drive (input_size >= hidden_size)
    and large N; ``log_rho`` = ln rho(W) is the exact rate of a linear RNN with normal W;
    ``pascanu_log_eta`` = ln(gamma sigma_max(W)) bounds every rate from above.
    """
    m, d = spec.model, spec.data
    if not isinstance(params, ElmanParams):
        return predict_gated(params, spec)
    W = params.W
    sigma_w = float(torch.linalg.matrix_norm(W).item() / math.sqrt(W.shape[0]))
    s2 = (m.input_gain * d.input_std) ** 2 + m.bias_std ** 2
    out = {"sigma_w": sigma_w, "s2": s2, "log_rho": math.log(spectral_radius(W)),
           "pascanu_log_eta": math.log(theory.pascanu_eta(W, m.activation))}
    try:
        out["mean_field_chi"] = theory.chi(m.activation, sigma_w, s2)
        out["mean_field_rate"] = 0.5 * math.log(out["mean_field_chi"])
    except (ValueError, ArithmeticError):  # no finite fixed point (e.g. exploding relu q*)
        out["mean_field_chi"] = out["mean_field_rate"] = math.nan
    return out


def predict_gated(params, spec: RunSpec) -> dict:
    """Theory for a gated run, nats per step. GRU and LSTM: ``keep_gate_rate`` = ln s(b) of the
    largest keep-gate bias (b_z, b_f = bias_ih + bias_hh): the exact long-lag rate when every
    weight matrix is zero, a reference line otherwise. minimalRNN: ``mean_field_rate`` = 1/2 ln
    chi of Chen et al. 2018 at the network's sigma_w = ||W||_F / sqrt N, mu_b = gate_bias and
    R = (input_gain input_std)^2 (the embedding's per-unit variance for input_size >= N)."""
    m, d = spec.model, spec.data
    if isinstance(params, GatedParams):
        N = params.hidden_size
        keep = slice(KEEP_GATE[m.cell] * N, (KEEP_GATE[m.cell] + 1) * N)
        b = (params.bias_ih[keep] + params.bias_hh[keep]).max().item()
        return {"keep_gate_bias": b, "keep_gate_rate": theory.keep_gate_rate(b)}
    W = params.W
    sigma_w = float(torch.linalg.matrix_norm(W).item() / math.sqrt(W.shape[0]))
    R = (m.input_gain * d.input_std) ** 2
    out = {"sigma_w": sigma_w, "R": R}
    try:
        out["mean_field_chi"] = theory.minimal_chi(sigma_w, m.gate_bias, R)
        out["mean_field_rate"] = 0.5 * math.log(out["mean_field_chi"])
    except (ValueError, ArithmeticError):
        out["mean_field_chi"] = out["mean_field_rate"] = math.nan
    return out


def _profile_mode(traj, spec: RunSpec):
    ms = spec.measure
    ln_ratio, ln_last, ln_sum = gradients.loss_profiles(traj)
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
