"""One measurement, end to end and free of I/O: RunSpec -> network and data -> lag table and fit.

``measure`` returns plain arrays and numbers; ``rnnlab.measure.app`` turns them into files.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from ..engine import adjoint, attention, cells, diagonal, redrawn, stacks
from ..engine.cells import lstm
from ..engine.fit import fit_decay, lag_table
from ..engine.lyapunov import frame_transient, lyapunov_from_maps
from ..engine.sensitivity import sensitivity as state_sensitivity
from ..engine.weightgrad import WeightGradStats
from ..runs.store import cpu_model
from .config import RunSpec
from .networks import draw, redrawn_weights


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
    sensitivity: list | None = None
    depth_time: dict | None = None
    extra: dict = field(default_factory=dict)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_model()


def measure(spec: RunSpec) -> Measurement:
    """Measure ||dL_t/dh_k|| for one validated configuration.

    mode ``pairs``: every pair k <= t (t - k <= max_lag), the per-lag summaries of lags.parquet.
    mode ``profile``: the O(T) sweep of the last loss L_{T-1} alone (one pair per lag) plus the
    summed loss L = sum_t L_t, for very long sequences. ``measure.weights=redrawn``: every weight
    of the cell drawn afresh at each step (``rnnlab.engine.redrawn``); theory and tensors.npz
    then describe step 0's weights. ``measure.sensitivity``: the rows of sensitivity.parquet
    (``rnnlab.engine.sensitivity``).
    """
    spec.validate()
    m, d, ms = spec.model, spec.data, spec.measure
    device, dtype = ms.torch_device(), ms.torch_dtype()
    start = time.perf_counter()
    net = draw(m, d, spec.seed)
    if ms.target == "input":
        return _measure_input(spec, net, device, dtype, start)
    p = net.params.to(device, dtype)
    x, h0, y = (t.to(device, dtype) for t in (net.x, net.h0, net.y_target))
    if isinstance(p, stacks.StackParams):  # every layer's state, derived maps (or plain: cell)
        traj = stacks.trajectory(p, x, h0, y, d.burn_in, m.loss, ms.jacobians)
    elif ms.weights == "redrawn":
        weights_at = redrawn_weights(m, d, spec.seed, p, device, dtype)
        with torch.no_grad():
            recorded = redrawn.record(cells.get(m.cell), weights_at, x, h0, d.burn_in)
        traj = adjoint.trajectory(recorded, p, y, m.loss)
    elif ms.lstm_state == "h":  # Vogt et al.'s convention: c held fixed, h alone
        with torch.no_grad():
            recorded = lstm.h_only(cells.get(m.cell).forward(p, x, h0, d.burn_in,
                                                             ms.jacobians))
        traj = adjoint.trajectory(recorded, p, y, m.loss)
    else:
        traj = adjoint.forward(p, x, h0, y, burn_in=d.burn_in, loss=m.loss,
                               jacobians=ms.jacobians)
    matrix = ln_last = wgrad = None
    if ms.mode == "pairs":
        wg = WeightGradStats(traj, ms.max_lag) if ms.weight_grad else None
        # a diagonal step Jacobian (one layer of minGRU, minLSTM, RG-LRU, S6 or the LRU, with
        # the cell's own maps and fixed weights): the same table from prefix sums of ln|a|,
        # without the sweep; anything else (a stack, derived or redrawn maps) is swept
        if wg is None and diagonal.applies(traj):
            profile = diagonal.pair_profile(traj, ms.max_lag, keep_matrix=ms.save_tensors,
                                            progress=ms.progress)
        else:
            profile = adjoint.pair_profile(traj, ms.max_lag, keep_matrix=ms.save_tensors,
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
    sens = state_sensitivity(p, x, h0, d.burn_in, ms.jacobians) if ms.sensitivity else None

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    tensors = {}
    if ms.save_tensors:
        T = d.seq_len
        tensors = {**net.params.tensors(), "h0": traj.h0, "x": net.x[:, d.burn_in:],
                   "y_target": net.y_target}
        parts = cells.get(m.cell).state_parts
        if len(parts) > 1 and traj.h0.shape[1] == len(parts) * m.hidden_size \
                and not stacks.is_stacked(m):
            # (h, c) side by side in the engine; torch.nn.LSTM takes them apart
            N = m.hidden_size
            for i, name in enumerate(parts):
                tensors[f"{name}0"] = traj.h0[:, i * N:(i + 1) * N]
        tensors = {k: v.detach().cpu().double().numpy() for k, v in tensors.items()}
        if matrix is None:  # profile mode measures only the last row of the triangle
            matrix = np.full((T, T), np.nan)
            L = ln_last.shape[0]
            matrix[T - 1, T - L:] = ln_last.mean(1)[::-1] / math.log(10)
        tensors["log10_grad"] = matrix
    return Measurement(lags, fit, device_name(device), seconds, predictions, tensors, jac,
                       wgrad, sens)


def _measure_input(spec: RunSpec, net, device, dtype, start: float) -> Measurement:
    """``measure.target=input``: log10 ||dy_t/dx_k|| of the network's logits y_t = V y^L_t + c
    (before the softmax: what the network computes, not the loss's saturation) for every pair
    k <= t, and the depth x time map log10 ||do^l_t/dx_k|| of every layer's output o^l, by
    ``rnnlab.input_sensitivity`` (``rnnlab.engine.stacks.input_maps``); ``model=attention``:
    the layer's own output. Lags beyond ``measure.max_lag`` are left out; the rate is the fit
    of the ln ratio ||dy_t/dx_k|| / ||dy_t/dx_t|| (``rnnlab.engine.fit.fit_decay``)."""
    m, d, ms = spec.model, spec.data, spec.measure
    K = ms.max_lag
    fit_max = ms.fit_max_lag if K is None else min(K, ms.fit_max_lag or K)
    fit = dict(fit_min_lag=ms.fit_min_lag, fit_max_lag=fit_max, neutral_tol=ms.neutral_tol)
    x = net.x.to(device, dtype)
    if m.cell == attention.NAME:
        from ..engine.input_sensitivity import input_sensitivity

        out, layers = input_sensitivity(net.params.to(device, dtype), x, **fit), []
    else:
        maps = stacks.input_maps(net.params.to(device, dtype), x, net.h0.to(device, dtype),
                                 d.burn_in, **fit)
        out, layers = maps.output, maps.layers

    def within(frame):
        return frame if K is None else frame[frame["lag"] <= K]

    def matrix(a):
        a = np.array(a, dtype=float)
        if K is not None:
            T = a.shape[0]
            a[np.tril(np.ones((T, T), dtype=bool), -K - 1)] = np.nan
        return a

    lags = within(out.lags).reset_index(drop=True)
    depth = pd.concat([within(r.lags).assign(layer=l) for l, r in enumerate(layers, 1)],
                      ignore_index=True) if layers else None
    if depth is not None:
        depth = depth[["layer"] + [c for c in depth.columns if c != "layer"]]
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    tensors = {}
    if ms.save_tensors:
        params = net.params.tensors() if hasattr(net.params, "tensors") else \
            {k: v for k, v in net.params.state_dict().items()}
        tensors = {**params, "x": net.x[:, d.burn_in:], "log10_grad": matrix(out.log10_grad)}
        tensors.update({f"log10_grad_layer{l}": matrix(r.log10_grad)
                        for l, r in enumerate(layers, 1)})
        tensors = {k: v.detach().cpu().double().numpy() if isinstance(v, torch.Tensor) else v
                   for k, v in tensors.items()}
    extra = {"layer_decay_rates": [r.decay_rate for r in layers]} if layers else {}
    return Measurement({c: lags[c].to_numpy() for c in lags.columns}, out.fit,
                       device_name(device), seconds, {}, tensors,
                       depth_time=None if depth is None else
                       {c: depth[c].to_numpy() for c in depth.columns}, extra=extra)


def _jacobian_table(traj, spec: RunSpec) -> dict:
    """Per-lag batch mean and std of log10 ||dh_{T-1}/dh_{T-1-l}|| (spectral and Frobenius),
    l = 0..max_lag (or T: lag T reaches h0)."""
    T = spec.data.seq_len
    L = T if spec.measure.max_lag is None else min(spec.measure.max_lag, T)
    norms = adjoint.jacobian_norms(traj, L)
    out = {"lag": np.arange(L + 1)}
    for name in ("spec", "frob"):
        v = norms[f"ln_{name}"] / math.log(10)
        out[f"log10_{name}_mean"] = v.mean(1).cpu().numpy()
        out[f"log10_{name}_std"] = v.std(1, correction=0).cpu().numpy()
    return out


def predict(params, spec: RunSpec) -> dict:
    """What theory says for this run: the cell's own ``theory`` (nats per step; docs/theory.md),
    empty for a cell without one."""
    cell = cells.get(spec.model.cell)
    if isinstance(params, stacks.StackParams):  # a cell's theory is that of one layer alone
        return {}
    return {} if cell.theory is None else cell.theory(params, spec.model, spec.data)


def _profile_mode(traj, spec: RunSpec):
    ms = spec.measure
    ln_ratio, ln_last, ln_sum = adjoint.loss_profiles(traj)
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
    profile = adjoint.PairProfile(lag, np.ones(L, dtype=np.int64), moments["grad"],
                                    moments["ratio"])
    lags = lag_table(profile)
    summed = lag_table(adjoint.PairProfile(lag, profile.n_pairs, moments["sum_grad"],
                                             moments["sum_grad"]))
    lags["log10_sum_grad_mean"] = summed["log10_grad_mean"]
    lags["log10_sum_grad_std"] = summed["log10_grad_std"]
    fit = fit_decay(lag, moments["ratio"], ms.fit_min_lag, ms.fit_max_lag, ms.neutral_tol)
    return lags, fit, ln_last.cpu().numpy()
