"""lag-decay: log10 ||dL_t/dh_k|| / ||dL_t/dh_t|| against the lag t - k, one curve per rho,
tanh against relu, with W = rho Q (Q Haar orthogonal).

Source: Pascanu, Mikolov, Bengio 2013 (arXiv:1211.5063), sections 2-3; Arjovsky et al. 2016;
docs/theory.md ("model and notation", "Pascanu's bounds", "mean field", "exact cases").

EXPECTED:
- straight lines in log scale: exponential decay or growth with the lag, slope ~ 1/2 log chi
  (mean field, drawn as lines; sigma_w = rho since ||rho Q h|| = rho ||h||);
- the slope's sign flips near the mean-field critical point, chi = 1: rho = 1.4093 for tanh and
  sqrt 2 for relu with full-rank input noise s_in^2 = 0.1. Asserted as the sign of the mean rate
  of 5 networks (seeds 0-4) at the nearest rho on each side whose mean-field rate is at least
  0.05 nats/step from 0 (the seeds' spread is ~0.002-0.01), and as mean rates that rise with rho;
- no pair beats Pascanu's bound ln r(t, k) <= (t - k) ln(gamma sigma_max(W)): it holds on every
  trajectory. The row reports the signed slack, the largest ln r - lag ln(gamma sigma_max) over
  every pair, rho and seed (negative: the bound holds with that margin; 1e-9 nats of rounding
  allowed above 0);
- exact reference: a linear RNN with W = rho Q has every ratio equal to rho^lag (ln r within
  1e-12 of lag ln rho up to lag 50, float64), for rho = 0.9 and 1.1.
Drawn and tabulated, not rows of summary.csv: the rates themselves (one fact each with the rows
above), zero-input tanh with W = rho Q (after a few steps h ~ 0 and the network is the linear
one above), and relu's mean field above sqrt 2, where q* diverges (the README's "Gaps").
Full mode: N = 256, T = 200, 300 burn-in steps; 39 s measured on the shared 2-core machine
(load ~6; about a third of that in CPU time). Run alone:
``python experiments/figures/lag_decay.py [--quick]`` (or
``python -m experiments.figures.lag_decay [--quick]``).
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

if not __package__:  # run as a file: the repo root on sys.path, for experiments.figures
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np
import pandas as pd
import torch

from experiments.figures.common import (
    full_rank_noise,
    is_quick,
    network,
    row,
    standalone,
    windowed_rate,
)
from experiments.figures.plots import lag_decay as plot
from rnnlab import theory
from rnnlab.engine import adjoint as gradients

FIGURE = plot.FIGURE
RHOS = [0.5, 0.8, 1.0, 1.2, 1.4, 1.6, 2.0]
ACTIVATIONS = ("tanh", "relu")
S_IN2 = 0.1  # full-rank input noise: the setting in which mean field holds
SEEDS = range(5)
MAX_LAG = 50
SIGN_MARGIN = 0.05  # nats/step; the sign is asserted only where |1/2 log chi| exceeds it
# exact references (linear: every ratio rho^lag) and zero-input tanh (drawn only): panel, rho
REFERENCES = [("linear", 0.9), ("linear", 1.1), ("tanh, no input", 0.5), ("tanh, no input", 0.9)]


def mean_log10_ratio(prof):
    """Pooled mean over pairs and samples of log10 r(t, k) at each lag."""
    m = prof.ln_ratio
    return (m["count"] * m["mean"]).sum(1) / m["count"].sum(1) / math.log(10)


def max_bound_excess(p, traj):
    """max over pairs, lag >= 1, of ln r(t, k) - (t - k) ln(gamma sigma_max(W)) (nats; <= 0)."""
    ln_r = gradients.log_grad_norms(traj, max_lag=MAX_LAG, ratio=True)  # (T, T, B)
    T = ln_r.shape[0]
    lag = (torch.arange(T)[:, None] - torch.arange(T)[None, :]).double().unsqueeze(-1)
    excess = ln_r - lag * math.log(theory.pascanu_eta(p.W, p.activation))
    return float(excess[torch.isfinite(excess) & (lag >= 1)].max())  # lag 0: exactly 0


def measure(mode: str) -> dict:
    """{"N": width, "table": one row per panel and rho (rates, bound slack, exact errors),
    "curves": mean log10 ratio per lag of seed 0}."""
    N, T, burn_in = (64, 100, 100) if is_quick(mode) else (256, 200, 300)
    table, curves = [], []

    # tanh and relu, W = rho Q, full-rank input noise s_in^2 = 0.1, 5 networks per rho
    for act in ACTIVATIONS:
        for rho in RHOS:
            rates, excess = [], []
            for seed in SEEDS:
                p, traj = network(seed=seed, activation=act, init="orthogonal",
                                  spectral_radius=rho, seq_len=T, batch_size=4,
                                  burn_in=burn_in, **full_rank_noise(N, S_IN2))
                rate, prof = windowed_rate(p, traj, max_lag=MAX_LAG)
                rates.append(rate)
                excess.append(max_bound_excess(p, traj))
                if seed == 0:
                    curves.append(pd.DataFrame({"panel": act, "rho": rho, "lag": prof.lag,
                                                "log10_ratio": mean_log10_ratio(prof)}))
            table.append({"panel": act, "rho": rho, "seeds": len(rates),
                          "decay_rate": np.mean(rates), "decay_rate_seed_std": np.std(rates,
                                                                                     ddof=1),
                          "decay_rate_seed0": rates[0],
                          "mean_field_rate": float(theory.log_chi_rate(act, rho, S_IN2)),
                          "pascanu_max_excess": max(excess)})

    # exact reference: linear W = rho Q (every ratio rho^lag); zero-input tanh, drawn only
    for act, rho in REFERENCES:
        kw = dict(hidden_size=32, seq_len=80, batch_size=2) if act == "linear" else \
            dict(hidden_size=N, input_std=0.0, h0_std=1.0, seq_len=T, batch_size=4)
        p, traj = network(seed=0, activation=act.split(",")[0], init="orthogonal",
                          spectral_radius=rho, **kw)
        rate, prof = windowed_rate(p, traj, max_lag=MAX_LAG)
        entry = {"panel": act, "rho": rho, "seeds": 1, "decay_rate": rate,
                 "mean_field_rate": math.log(rho)}
        if act == "linear":
            ln_r = gradients.log_grad_norms(traj, max_lag=MAX_LAG, ratio=True)
            lag = torch.arange(ln_r.shape[0])
            lag = (lag[:, None] - lag[None, :]).double().unsqueeze(-1)
            entry["max_abs_ln_ratio_error"] = float(
                (ln_r - lag * math.log(rho)).abs().nan_to_num(0.0).max())
        table.append(entry)
        curves.append(pd.DataFrame({"panel": act, "rho": rho, "lag": prof.lag,
                                    "log10_ratio": mean_log10_ratio(prof)}))
    return {"N": N, "table": pd.DataFrame(table), "curves": pd.concat(curves)}


def rows(measured: dict) -> list[dict]:
    table, out = measured["table"], []
    for act, rho in REFERENCES:
        if act != "linear":
            continue
        r = table[(table["panel"] == act) & (table["rho"] == rho)].iloc[0]
        out.append(row(FIGURE, f"linear W = {rho} Q: max |ln r(t,k) - lag ln rho| over "
                       f"all pairs, lags <= {MAX_LAG}", 0.0,
                       float(r["max_abs_ln_ratio_error"]), 1e-12, kind="exact",
                       basis="exact identity; float64 rounding over 50 steps"))
    for act in ACTIVATIONS:
        g = table[table["panel"] == act].sort_values("rho")
        crit = theory.critical_gain(act, S_IN2)
        below = g[g["mean_field_rate"] <= -SIGN_MARGIN]["rho"].max()
        above = g[g["mean_field_rate"] >= SIGN_MARGIN]["rho"].min()
        for rho, sign in ((below, -1.0), (above, 1.0)):
            r = g[g["rho"] == rho].iloc[0]
            se = r["decay_rate_seed_std"] / math.sqrt(len(SEEDS))
            out.append(row(FIGURE, f"{act}, W = {rho} Q, s_in^2 = {S_IN2}: sign of the mean "
                           f"rate (critical rho = {crit:.4f})", sign,
                           math.copysign(1.0, r["decay_rate"]), 0.0, kind="sign",
                           seeds=len(SEEDS), spread=r["decay_rate_seed_std"],
                           estimator=f"the fitted rate (lags 1..{MAX_LAG}) of one fixed "
                           "network per seed, averaged over seeds",
                           se=f"SD of the per-seed rates / sqrt(n) = {se:.1g}",
                           basis=f"mean field {r['mean_field_rate']:+.3f} nats/step, at least "
                           f"{SIGN_MARGIN} from 0 ({abs(r['decay_rate']) / se:.0f} SE)"))
        se = g["decay_rate_seed_std"].max() / math.sqrt(len(SEEDS))
        out.append(row(FIGURE, f"{act}: mean rates that fall as rho rises", 0.0,
                       float((np.diff(g["decay_rate"]) < 0).sum()), 0.0, kind="sign",
                       seeds=len(SEEDS), spread=g["decay_rate_seed_std"].max(),
                       estimator="the seed mean of the fitted rate at each rho",
                       se=f"SD of the per-seed rates / sqrt(n), at most {se:.1g}",
                       basis="a count; neighbouring mean-field rates differ by >= 0.05"))
        out.append(row(FIGURE, f"{act}: max over pairs, rho and seeds of ln r(t,k) - lag "
                       "ln(gamma sigma_max(W)) (Pascanu bound; signed slack, nats)", 0.0,
                       float(g["pascanu_max_excess"].max()), 1e-9, kind="bound",
                       seeds=len(SEEDS), basis="a bound on every pair of every trajectory, "
                       "not a statistic: <= 0 up to 1e-9 of float64 rounding"))
    return out


def tables(measured: dict) -> dict:
    """lag_decay.csv (rates, bound slack, exact errors and the mean-field rate per panel and
    rho), lag_decay_curves.csv (log10 ratio per lag of seed 0) and lag_decay_theory.csv (per
    activation: N, s_in^2 and the critical rho of mean field)."""
    theory_table = pd.DataFrame([{"panel": act, "s_in2": S_IN2, "N": measured["N"],
                                  "critical_rho": theory.critical_gain(act, S_IN2)}
                                 for act in ACTIVATIONS])
    return dict(zip(plot.TABLES, (measured["table"], measured["curves"], theory_table)))


def main(argv=None) -> int:
    return standalone(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
