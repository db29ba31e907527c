"""Decay rate, its standard error and the regime, from per-lag moments of the ln ratio.

The decay rate is the least-squares slope of ln(||dL_t/dh_k|| / ||dL_t/dh_t||) against the lag
t - k over every finite (t, k, sample) value with fit_min_lag <= lag <= fit_max_lag, in nats per
step (a linear RNN with W = rho Q gives exactly ln rho).

Its standard error must not treat the pairs as independent: the backward cotangents of nearby
targets align within a few steps, so ln r(t, k) ~ sum_{s=k+1..t} e_s is a sum of per-step log
growths e_s shared by every pair whose path crosses step s. The slope is then a weighted sum
sum_s c_s e_s with weights c_s fixed by which pairs the fit uses (``step_weights``), and

    stderr^2 = sigma^2 B sum_s c_s^2,

with sigma^2 the per-step (long-run) variance of e_s, estimated from how the spread of ln r over
targets grows with the lag: E[M2_l] = sigma^2 (n_l l - sum_s m_{l,s}^2 / n_l) for n_l targets
at lag l (``overlap_sq``). This is the block-bootstrap idea with blocks of one step whose
correlation is carried by the lags; it gives ~1/sqrt(T) errors where the pairwise
least-squares formula gave ~1/T (docs/theory.md, "decay-rate fit"). It is exactly 0 where every
ratio is deterministic (linear W = rho Q).
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
    sample (``rnnlab.engine.adjoint.LagStats``). The regime is ``vanishing`` when the 95% interval
    lies below -neutral_tol, ``exploding`` when above +neutral_tol, else ``neutral`` (nats per
    step); ``undefined`` when fewer than two lags are measured.
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
    slope, xbar, _, sxx = _weighted_slope(x[:, 0], pooled_count, pooled_mean)
    targets = (moments["count"] + moments["nonfinite"]).max(1)  # pairs per lag and sample
    T = int((targets + lag).max())
    c = step_weights(lag[window], targets[window], (x[:, 0] - xbar) / sxx, T)
    sigma2 = step_variance(lag[window], count, mean, M2)
    samples = int((count.sum(0) > 0).sum())
    stderr = math.sqrt(sigma2 * samples * float((c ** 2).sum())) if sxx > 0 else math.nan
    result.update(decay_rate=float(slope), decay_rate_stderr=float(stderr),
                  regime=regime(slope, stderr, neutral_tol))
    return result


def overlap_sq(n, l):
    """sum_s m_s^2 for n windows of l consecutive steps, each shifted by one step from the last
    (m_s = windows covering step s): with a = min(n, l), b = max(n, l),
    (a - 1) a (2a - 1) / 3 + (b - a + 1) a^2."""
    a, b = np.minimum(n, l), np.maximum(n, l)
    return (a - 1) * a * (2 * a - 1) / 3 + (b - a + 1) * a ** 2


def step_weights(lag, targets, a, T: int) -> np.ndarray:
    """c_s, s = 0..T: the weight of step s's log growth e_s in the fitted slope.

    The pair at lag l and target t covers steps t-l+1..t; at lag l the fit uses the last
    ``targets[l]`` targets t = T-n..T-1 (every pair of the triangle: n = T - l; the O(T) profile:
    n = 1, t = T-1), each with slope weight ``a[l] = (l - mean lag) / Sxx``. Summed by a second
    difference array: O(T + lags).
    """
    D = np.zeros(T + 2)
    n = np.asarray(targets, dtype=np.int64)
    l = np.asarray(lag, dtype=np.int64)
    keep = (l >= 1) & (n >= 1)
    n, l, a = n[keep], l[keep], np.asarray(a, dtype=float)[keep]
    np.add.at(D, T - n - l + 1, a)
    np.add.at(D, T - l + 1, -a)
    np.add.at(D, T - n + 1, -a)
    np.add.at(D, np.full_like(l, T + 1), a)
    return np.cumsum(np.cumsum(D))[:T + 1]


def step_variance(lag, count, mean, M2) -> float:
    """sigma^2, the per-step variance of the log growth, from the within-lag spread over targets
    (pooled over lags >= 1 and samples): sum M2_l / sum (n_l l - overlap_sq(n_l, l) / n_l).
    Where every lag has a single target (the O(T) profile) it is the variance of the increments
    of ln r from one lag to the next instead."""
    l = np.asarray(lag, dtype=float)[:, None]
    n = np.asarray(count, dtype=float)
    ok = (l >= 1) & (n >= 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = np.where(ok, n * l - overlap_sq(n, l) / np.where(ok, n, 1), 0.0)
    if expected.sum() > 0:
        return float(np.where(ok, M2, 0.0).sum() / expected.sum())
    steps = np.diff(np.where(n > 0, mean, np.nan), axis=0)
    steps = steps[np.isfinite(steps)]
    return float(steps.var(ddof=1)) if steps.size >= 2 else math.nan


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
    """Columns of lags.parquet from a ``rnnlab.engine.adjoint.PairProfile``: log10 mean and std
    over the batch and all pairs at each lag (population std; non-finite values left out and
    counted); a part of the state (the LSTM's c) adds ``log10_ratio_c_mean/std`` and
    ``log10_grad_c_mean/std``."""
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
