"""rate-vs-gain: the measured decay rate of ||dL_t/dh_k|| against sigma_w, with the mean-field
curve 1/2 log chi; tanh with and without input, relu with input.

Source: Poole et al. 2016 (arXiv:1606.05340); Schoenholz et al. 2017 (arXiv:1611.01232); Chen,
Pennington, Schoenholz 2018; docs/theory.md ("mean field") and docs/tolerances.md.

EXPECTED (nats per step; W_ij ~ N(0, sigma_w^2/N)): mean field is the N -> infinity limit of the
network whose weights are redrawn at every step (annealed), so each theory row measures exactly that
(``measure.weights=redrawn``) at N = 250 and 500 and extrapolates per seed to N = infinity assuming
a 1/N finite-size term, r_inf = 2 r(500) - r(250); tolerance t_4 = 6.62 standard errors of the
5-seed mean of r_inf (Student's t with the coverage of 3 sigma, 99.73%: the standard error of 5
seeds is itself uncertain; experiments/figures/annealed.py). The 1/N law was measured on redrawn
tanh networks with s_in^2 = 0.1 (seeds 0-4 at N = 250, 500, 0-2 at 1000): at sigma_w = 2 the gap to
mean field was -0.0075, -0.0033, -0.0014 (N x gap 1.9, 1.7, 1.4); at 0.5 -0.0012, -0.0013, -0.0002.
Rows:
- tanh with fresh full-rank input noise s_in^2 = 0.1 (D = N, input gain sqrt 0.1): every
  sigma_w in [0.5, 3] against 1/2 log chi;
- relu with the same input, sigma_w < 1.3; 1.3 and 1.4 are drawn, not compared (q* =
  s_in^2 / (1 - sigma_w^2/2) diverges at sqrt 2 and the state takes long to reach it);
- tanh without input: sigma_w = 0.5 (ordered, q* = 0, rate ln sigma_w; 0.7 and 0.9 are drawn:
  once h ~ 0 the network is linear and every ordered gain measures the same product of W's up
  to a factor) and the chaotic 1.25 and 1.5 (q* > 0); sigma_w = 1 (q* = 0, power-law decay) is
  drawn;
- beside each point two findings, never judged: the finite-N term r(250) - r(500) and the
  quenched - annealed gap at N = 500, one fixed W (a real RNN) minus redrawn on the same seeds
  (same step-0 weights, readout and data);
- one fixed W without input, 1 <= sigma_w <= 1.5, N = 500: mean rates fall as sigma_w rises
  (a count of violations, 0), and the sign at sigma_w = 1, where the decay is a power law
  (norm ~ (k/t)^(1/2)): negative.
Each rate is the least-squares slope of ln r(t, k) over lags 1..50 (T = 100, 4 sequences per
network, 200 burn-in steps, all pairs); the CSV lists every seed's rate. Full mode about
10 minutes of CPU on one core; quick mode: N = 100 and 200 and fewer gains, a smoke test (its
theory rows may fail). Run alone: ``python experiments/figures/rate_vs_gain.py [--quick]`` or
``python -m experiments.figures.rate_vs_gain [--quick]``.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

if not __package__:  # run as a file: the repo root on sys.path, for experiments.figures
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np
import pandas as pd
from tqdm import tqdm

from experiments.figures import annealed
from experiments.figures.common import (
    is_quick,
    noise_rate,
    row,
    standalone,
)
from experiments.figures.plots import rate_vs_gain as plot
from rnnlab import theory

FIGURE = plot.FIGURE
SEEDS, T, BURN_IN, MAX_LAG = 5, 100, 200, 50
SIZES = {"full": (250, 500), "quick": (100, 200)}  # N: the extrapolation's two sizes
PANELS = {  # name: (activation, s_in^2, gains (full), gains (quick))
    "tanh, s_in^2 = 0.1": ("tanh", 0.1, [0.5, 1.0, 1.5, 2.0, 2.5, 3.0], [2.0]),
    "relu, s_in^2 = 0.1": ("relu", 0.1, [0.5, 0.8, 1.0, 1.2, 1.3, 1.4], [1.2]),
    "tanh, no input": ("tanh", 0.0, [0.5, 0.7, 0.9, 1.0, 1.25, 1.5], [0.5, 1.0, 1.5]),
}


def judged(act, sigma_w, s_in2) -> bool:
    """Whether the point is a theory row (see the docstring for the points that are not)."""
    if not s_in2:
        return sigma_w == 0.5 or sigma_w > 1.0
    return act == "tanh" or sigma_w < 1.3


def measure(mode: str) -> pd.DataFrame:
    """One rate per panel, sigma_w, seed, weights (redrawn at both sizes, fixed at the larger)
    beside its mean-field rate."""
    quick = is_quick(mode)
    sizes = SIZES[mode]
    points = [(panel, act, s_in2, sw, seed, w, sizes[i])
              for panel, (act, s_in2, full, short) in PANELS.items()
              for sw in (short if quick else full) for seed in range(SEEDS)
              for w, i in annealed.RUNS]
    df = pd.DataFrame([dict(panel=panel, activation=act, s_in2=s_in2, sigma_w=sw, N=n,
                            seed=seed, weights=w,
                            rate=noise_rate(act, sw, s_in2, n, seed, w, T=T,
                                            burn_in=BURN_IN, max_lag=MAX_LAG))
                       for panel, act, s_in2, sw, seed, w, n
                       in tqdm(points, desc=FIGURE, mininterval=2.0, disable=None)])
    df["mean_field_rate"] = [float(theory.log_chi_rate(a, sw, s))
                             for a, sw, s in zip(df.activation, df.sigma_w, df.s_in2)]
    return df


def quick_may_fail(r: dict) -> bool:
    """At quick sizes (N = 100 and 200) the 1/N law behind the extrapolation need not hold yet,
    so the theory rows are a smoke test there."""
    return r["kind"] == "theory"


def rows(measured: pd.DataFrame) -> list[dict]:
    out = []
    for (panel, sw), g in measured.groupby(["panel", "sigma_w"], sort=False):
        act, s_in2 = g.activation.iloc[0], g.s_in2.iloc[0]
        if not s_in2 and 0.5 < sw < 1.0:
            continue  # the ordered product of sigma_w = 0.5 again, scaled: no new fact
        out += annealed.rows(FIGURE, f"{panel}, sigma_w = {sw:g}", g,
                             float(g.mean_field_rate.iloc[0]), judged=judged(act, sw, s_in2))
    fixed = measured[(measured.panel == "tanh, no input") & (measured.weights == "fixed")
                     & (measured.sigma_w >= 1.0)]
    n = int(fixed.N.max())
    edge = fixed.groupby("sigma_w").rate.agg(["mean", "std"])
    if len(edge) > 1:
        out.append(row(FIGURE, f"tanh, no input, one fixed W (N = {n}), sigma_w in [1, 1.5]: "
                       "mean rates that fall as sigma_w rises", 0.0,
                       float((np.diff(edge["mean"]) < 0).sum()), 0.0, kind="sign",
                       seeds=SEEDS, spread=edge["std"].max(),
                       estimator="the seed mean of one fixed network's windowed rate (lags "
                       "1-50) at each sigma_w",
                       se=f"SD of the per-seed rates / sqrt(n), at most "
                       f"{edge['std'].max() / math.sqrt(SEEDS):.1g}",
                       basis="a count; mean field fails here for one fixed W, only the order "
                       "is asserted"))
    se = edge.loc[1.0, "std"] / math.sqrt(SEEDS)
    out.append(row(FIGURE, f"tanh, no input, one fixed W (N = {n}), sigma_w = 1 (power-law "
                   "decay): sign of the mean rate", -1.0, float(np.sign(edge.loc[1.0, "mean"])),
                   0.0, kind="sign", seeds=SEEDS, spread=edge.loc[1.0, "std"],
                   estimator="the seed mean of one fixed network's windowed rate (lags 1-50)",
                   se=f"SD of the per-seed rates / sqrt(n) = {se:.1g}",
                   basis=f"norm ~ (k/t)^(1/2) falls over lags 1-50; the mean is "
                   f"{abs(edge.loc[1.0, 'mean']) / se:.0f} SE from 0"))
    return out


def tables(measured: pd.DataFrame) -> dict:
    """rate_vs_gain.csv (one rate per panel, sigma_w, seed, weights and N, beside its mean-field
    rate), rate_vs_gain_summary.csv (per panel and sigma_w: annealed.summary of the seeds and
    the mean-field rate) and rate_vs_gain_theory.csv (the mean-field curve 1/2 log chi per
    panel, 300 gains from 0.45 to the largest measured + 0.05)."""
    summaries, curves = [], []
    for panel, (act, s_in2, _, _) in PANELS.items():
        m = annealed.summary(measured[measured.panel == panel], ["sigma_w"])
        m.insert(0, "panel", panel)
        m["mean_field_rate"] = theory.log_chi_rate(act, m.sigma_w.to_numpy(), s_in2)
        summaries.append(m)
        grid = np.linspace(0.45, m.sigma_w.max() + 0.05, 300)
        curves.append(pd.DataFrame({"panel": panel, "sigma_w": grid,
                                    "mean_field_rate": theory.log_chi_rate(act, grid, s_in2)}))
    return {"rate_vs_gain.csv": measured, plot.TABLES[0]: pd.concat(summaries, ignore_index=True),
            plot.TABLES[1]: pd.concat(curves, ignore_index=True)}


def main(argv=None) -> int:
    return standalone(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
