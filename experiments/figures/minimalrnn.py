"""minimalrnn: the decay rate of ||dL_t/dh_k|| of a minimalRNN against sigma_w, at gate bias
mu_b = 0 and 4, with Chen, Pennington and Schoenholz's mean-field rate 1/2 ln chi.

Source: Chen, Pennington, Schoenholz 2018 (arXiv:1806.05394); docs/cells.md ("minimalRNN").

EXPECTED (nats per step): z_t = U x_t with fresh x_t and D = N (per-unit input variance R = 1),
gate u = s(W h + W_z z + b) with W_ij ~ N(0, sigma_w^2/N), W_z ~ N(0, 1/N), b = mu_b. Mean field:
Q* = R E[(1-u)^2] / (1 - E[u^2]), chi = E[u^2] + sigma_w^2 (Q* + R) E[s'(e)^2], rate 1/2 ln chi:
-0.5822, -0.3175, -0.0591, +0.2006 at sigma_w = 0.5, 2, 4, 8 (mu_b = 0) and -0.0017 at sigma_w = 4,
mu_b = 4. Mean field is the N -> infinity limit of the network whose weights are redrawn at every
step (annealed), so each theory row measures exactly that (``measure.weights=redrawn``) at N = 250
and 500 and extrapolates to N = infinity assuming a 1/N finite-size term, r_inf = 2 r(500) - r(250),
per seed; tolerance t_4 = 6.62 standard errors of the 5-seed mean of r_inf (Student's t with the
coverage of 3 sigma, 99.73%; annealed.py). The 1/N law was measured on redrawn networks (3 seeds,
N = 200, 500, 1000): at sigma_w = 8, mu_b = 0 the gap to mean field was 0.032, 0.0144, 0.0066
(N x gap 6.5, 7.2, 6.6); at sigma_w = 6, mu_b = 4: 0.0076, 0.0027, 0.0010. Beside each theory row,
two findings, never judged: the finite-N term at N = 500 (r(250) - r(500), the same 1/N law), and
the quenched - annealed gap at N = 500, one fixed W (a real minimalRNN, whose gate input stays
correlated in time) minus redrawn on the same seeds (same step-0 weights, readout and data).
Beside the gap, drawn in the right panel, its candidate cause measured: the lag-1
autocorrelation of the fixed network's gate input W h_{t-1} + W_z z_t (0 in expectation for
redrawn weights). Each rate is the
least-squares slope of ln r(t, k) over lags 1..50 (T = 100, 2 sequences per network, 300 burn-in
steps). Full mode about 12 minutes on one core; quick mode: sigma_w = 2 and 8 at N = 100 and
200. Run alone:
``python experiments/figures/minimalrnn.py [--quick]`` (or
``python -m experiments.figures.minimalrnn [--quick]``).
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
from tqdm import tqdm

from experiments.figures import annealed
from experiments.figures.common import drawn, is_quick, network, standalone, stderr
from experiments.figures.plots import minimalrnn as plot
from rnnlab import theory
from rnnlab.engine import adjoint as gradients
from rnnlab.engine.fit import fit_decay

FIGURE = plot.FIGURE
GAINS = {"full": [0.5, 1.0, 2.0, 4.0, 6.0, 8.0], "quick": [2.0, 8.0]}
MU_B = (0.0, 4.0)
SEEDS, T, BURN_IN, MAX_LAG = 5, 100, 300, 50
SIZES = {"full": (250, 500), "quick": (100, 200)}  # N: the extrapolation's two sizes
# every network of the figure: a minimalRNN with W drawn at gain sigma_w (no rescaling); the
# gain, gate bias and width are added per point
NETWORK = dict(cell="minimal", spectral_radius=None, seq_len=T, batch_size=2, burn_in=BURN_IN)


def rate(seed, sigma_w, mu_b, weights, N) -> float:
    _, traj = network(seed=seed, weights=weights, gain=sigma_w, gate_bias=mu_b, hidden_size=N,
                      input_size=N, **NETWORK)
    prof = gradients.pair_profile(traj, max_lag=MAX_LAG)
    return fit_decay(prof.lag, prof.ln_ratio, 1, MAX_LAG)["decay_rate"]


def gate_correlation(seed, sigma_w, mu_b, N) -> float:
    """The lag-1 autocorrelation of the gate's input e_t = W h_{t-1} + W_z z_t (the bias, a
    constant, left out) of one fixed-W network over its measured steps: per unit the Pearson
    correlation of (e_t, e_{t+1}) over steps and sequences, averaged over units. With weights
    redrawn every step it is 0 in expectation (W_t and W_{t+1} are independent, mean 0): the
    mean field's assumption that the gate is fresh at every step."""
    net, _, d = drawn(seed=seed, gain=sigma_w, gate_bias=mu_b, hidden_size=N, input_size=N,
                      **NETWORK)
    p, h, e = net.params, net.h0, []
    for t in range(net.x.shape[1]):
        z = net.x[:, t] @ p.U.T
        e_t = h @ p.W.T + z @ p.W_z.T
        u = torch.sigmoid(e_t + p.b)
        h = u * h + (1 - u) * z
        if t >= d.burn_in:
            e.append(e_t)
    e = torch.stack(e).numpy()  # (T, B, N)
    a, b = e[:-1].reshape(-1, N), e[1:].reshape(-1, N)
    a, b = a - a.mean(0), b - b.mean(0)
    return float(np.mean((a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0))))


def mean_field(sigma_w, mu_b) -> float:
    return 0.5 * math.log(theory.minimal_chi(sigma_w, mu_b))


def measure(mode: str) -> pd.DataFrame:
    """One rate per gate bias, sigma_w, seed, weights (redrawn, fixed) and N, beside its
    mean-field rate."""
    is_quick(mode)
    sizes = SIZES[mode]
    points = [(mu, sw, s, w, sizes[i]) for mu in MU_B for sw in GAINS[mode]
              for s in range(SEEDS) for w, i in annealed.RUNS]
    df = pd.DataFrame([dict(N=n, mu_b=mu, sigma_w=sw, seed=s, weights=w,
                            rate=rate(s, sw, mu, w, n))
                       for mu, sw, s, w, n in tqdm(points, desc=FIGURE, mininterval=2.0)])
    df["mean_field_rate"] = [mean_field(sw, mu) for sw, mu in zip(df.sigma_w, df.mu_b)]
    df["gate_correlation"] = [gate_correlation(s, sw, mu, n) if w == "fixed" else np.nan
                              for s, sw, mu, w, n in zip(df.seed, df.sigma_w, df.mu_b,
                                                         df.weights, df.N)]
    return df


def quick_may_fail(r: dict) -> bool:
    """At quick sizes (N = 100 and 200) the 1/N law behind the extrapolation need not hold yet,
    so the theory rows are a smoke test there."""
    return r["kind"] == "theory"


def rows(measured: pd.DataFrame) -> list[dict]:
    return [r for (mu, sw), g in measured.groupby(["mu_b", "sigma_w"])
            for r in annealed.rows(FIGURE, f"mu_b = {mu:g}, sigma_w = {sw:g}", g,
                                   mean_field(sw, mu))]


def tables(measured: pd.DataFrame) -> dict:
    """minimalrnn.csv (every rate, its mean-field rate, the fixed network's gate correlation),
    minimalrnn_summary.csv (per mu_b and sigma_w: annealed.summary of the seeds, the quenched -
    annealed gap's mean and standard error over seeds, the gate correlation's mean and sd, the
    mean-field rate) and minimalrnn_theory.csv (1/2 ln chi at 120 gains in [0.3, 8.5] per
    mu_b)."""
    summaries, curves, s = [], [], np.linspace(0.3, 8.5, 120)
    for mu in MU_B:
        at = measured[measured.mu_b == mu]
        m = annealed.summary(at, ["sigma_w"])
        gap = [(r["quenched"] - r["annealed"]).dropna() for r in
               (annealed.series(g) for _, g in at.groupby("sigma_w"))]
        corr = at[at.weights == "fixed"].groupby("sigma_w").gate_correlation.agg(["mean", "std"])
        m.insert(0, "mu_b", mu)
        m["gap"], m["gap_se"] = [g.mean() for g in gap], [stderr(g) for g in gap]
        m["gate_correlation"] = corr.loc[m.sigma_w, "mean"].to_numpy()
        m["gate_correlation_std"] = corr.loc[m.sigma_w, "std"].to_numpy()
        m["mean_field_rate"] = [mean_field(sw, mu) for sw in m.sigma_w]
        summaries.append(m)
        curves.append(pd.DataFrame({"mu_b": mu, "sigma_w": s,
                                    "mean_field_rate": [mean_field(v, mu) for v in s]}))
    return {"minimalrnn.csv": measured, **dict(zip(plot.TABLES, (
        pd.concat(summaries, ignore_index=True), pd.concat(curves, ignore_index=True))))}


def main(argv=None) -> int:
    return standalone(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
