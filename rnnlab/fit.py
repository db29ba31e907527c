"""Decay rate, its standard error and the regime, from per-lag moments of the ln ratio.

The decay rate is the least-squares slope of ln(||dL_t/dh_k|| / ||dL_t/dh_t||) against the lag
t - k over every finite (t, k, sample) value with fit_min_lag <= lag <= fit_max_lag, in nats per
step (a linear RNN with W = rho Q gives exactly ln rho). Its standard error is the spread of the
per-sample slopes over the batch (samples are independent given the network); with one sample it
falls back to the ordinary least-squares error over pairs, which ignores their correlation along
the trajectory and is optimistic.
"""
from __future__ import annotations

import math

import numpy as np

Z95 = 1.959963984540054  # two-sided 95% normal quantile


def _weighted_slope(x, w, y):
    """Slope of the weighted least-squares line through (x, y) along axis 0 (NaN if degenerate)."""
    W = w.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        xbar = (w * x).sum(0) / W
        ybar = (w * y).sum(0) / W
        sxx = (w * (x - xbar) ** 2).sum(0)
        slope = (w * (x - xbar) * (y - ybar)).sum(0) / np.where(sxx > 0, sxx, np.nan)
    return slope, xbar, ybar, sxx


def fit_decay(lag: np.ndarray, moments: dict, fit_min_lag: int = 1, fit_max_lag: int | None = None,
              neutral_tol: float = 1e-3) -> dict:
    """Fit the slope of the mean ln ratio against lag.

    ``moments`` holds (L, B) arrays ``count``, ``mean``, ``M2`` and ``nonfinite`` per lag and
    sample (``gradients.LagMoments``). The regime is ``vanishing`` when the 95% interval lies below
    -neutral_tol, ``exploding`` when above +neutral_tol, else ``neutral`` (nats per step);
    ``undefined`` when fewer than two lags are measured.
    """
    lag = np.asarray(lag, dtype=float)
    hi = lag.max() if fit_max_lag is None else fit_max_lag
    window = (lag >= fit_min_lag) & (lag <= hi)
    if window.sum() < 2:  # e.g. T = 2: the exact anchor ln r = 0 at lag 0 makes the second point
        window = lag <= hi
    count, mean, M2 = (moments[k][window] for k in ("count", "mean", "M2"))
    x = lag[window][:, None]
    result = {"decay_rate": math.nan, "decay_rate_stderr": math.nan,
              "fit_min_lag": int(lag[window].min()), "fit_max_lag": int(lag[window].max()),
              "fit_points": int(count.sum())}
    if count.sum() == 0:
        zeros = moments["nonfinite"][window].sum() > 0
        result["regime"] = "vanishing" if zeros else "undefined"
        return result
    pooled_count = count.sum(1)
    pooled_mean = (count * mean).sum(1) / np.maximum(pooled_count, 1)
    slope, xbar, ybar, sxx = _weighted_slope(x[:, 0], pooled_count, pooled_mean)
    per_sample, *_ = _weighted_slope(x, count, mean)
    per_sample = per_sample[np.isfinite(per_sample)]
    if per_sample.size >= 2:
        stderr = per_sample.std(ddof=1) / math.sqrt(per_sample.size)
    else:
        n = pooled_count.sum()
        within = M2.sum()
        between = (pooled_count * (pooled_mean - (ybar + slope * (x[:, 0] - xbar))) ** 2).sum()
        stderr = math.sqrt((within + between) / max(n - 2, 1) / sxx) if sxx > 0 else math.nan
    result.update(decay_rate=float(slope), decay_rate_stderr=float(stderr),
                  regime=regime(slope, stderr, neutral_tol))
    return result


def regime(rate: float, stderr: float, neutral_tol: float = 1e-3, z: float = Z95) -> str:
    """vanishing / exploding / neutral from the 95% interval rate +- z stderr (nats per step)."""
    if not math.isfinite(rate):
        return "undefined"
    half = z * stderr if math.isfinite(stderr) else 0.0
    if rate + half < -neutral_tol:
        return "vanishing"
    if rate - half > neutral_tol:
        return "exploding"
    return "neutral"


def lag_table(profile) -> dict:
    """Columns of lags.parquet from a ``gradients.PairProfile``: log10 mean and std over the batch
    and all pairs at each lag (population std; non-finite values left out and counted); a part
    of the state (the LSTM's c) adds ``log10_ratio_c_mean/std`` and ``log10_grad_c_mean/std``."""
    out = {"lag": profile.lag, "n_pairs": profile.n_pairs}
    series = [("ratio", profile.ln_ratio), ("grad", profile.ln_grad)]
    for part, (ln_grad, ln_ratio) in getattr(profile, "parts", {}).items():
        series += [(f"ratio_{part}", ln_ratio), (f"grad_{part}", ln_grad)]
    for name, m in series:
        n = m["count"].sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            mu = (m["count"] * m["mean"]).sum(1) / n
            M2 = m["M2"].sum(1) + (m["count"] * (m["mean"] - mu[:, None]) ** 2).sum(1)
            sd = np.sqrt(M2 / n)
        out[f"log10_{name}_mean"] = mu / math.log(10)
        out[f"log10_{name}_std"] = sd / math.log(10)
    out["n_finite"] = profile.ln_grad["count"].sum(1).astype(np.int64)
    out["n_zero"] = profile.ln_grad["nonfinite"].sum(1).astype(np.int64)
    return out
