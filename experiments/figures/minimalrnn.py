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
from rnnlab import theory
from rnnlab.engine import adjoint as gradients
from rnnlab.engine.fit import fit_decay
from rnnlab.plotting import plt

FIGURE = "minimalrnn"
GAINS = {"full": [0.5, 1.0, 2.0, 4.0, 6.0, 8.0], "quick": [2.0, 8.0]}
MU_B = (0.0, 4.0)
SEEDS, T, BURN_IN, MAX_LAG = 5, 100, 300, 50
SIZES = {"full": (250, 500), "quick": (100, 200)}  # N: the extrapolation's two sizes


def rate(seed, sigma_w, mu_b, weights, N) -> float:
    _, traj = network(seed=seed, weights=weights, cell="minimal", gain=sigma_w,
                      spectral_radius=None, gate_bias=mu_b, hidden_size=N, input_size=N,
                      seq_len=T, batch_size=2, burn_in=BURN_IN)
    prof = gradients.pair_profile(traj, max_lag=MAX_LAG)
    return fit_decay(prof.lag, prof.ln_ratio, 1, MAX_LAG)["decay_rate"]


def gate_correlation(seed, sigma_w, mu_b, N) -> float:
    """The lag-1 autocorrelation of the gate's input e_t = W h_{t-1} + W_z z_t (the bias, a
    constant, left out) of one fixed-W network over its measured steps: per unit the Pearson
    correlation of (e_t, e_{t+1}) over steps and sequences, averaged over units. With weights
    redrawn every step it is 0 in expectation (W_t and W_{t+1} are independent, mean 0): the
    mean field's assumption that the gate is fresh at every step."""
    net, _, d = drawn(seed=seed, cell="minimal", gain=sigma_w, spectral_radius=None,
                      gate_bias=mu_b, hidden_size=N, input_size=N, seq_len=T, batch_size=2,
                      burn_in=BURN_IN)
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


def draw(measured: pd.DataFrame, out_dir: Path) -> None:
    measured.to_csv(out_dir / "minimalrnn.csv", index=False)
    fig, (ax, right) = plt.subplots(1, 2, figsize=(13.5, 4.8), constrained_layout=True,
                                    gridspec_kw={"width_ratios": [1.4, 1]})
    s = np.linspace(0.3, 8.5, 120)
    for mu, color in zip(MU_B, ("C0", "C3")):
        ax.plot(s, [mean_field(v, mu) for v in s], "-", color=color, lw=1.2,
                label=f"mean field 1/2 ln chi, mu_b = {mu:g}")
        per = {sw: annealed.series(g) for sw, g in measured[measured.mu_b == mu].groupby("sigma_w")}
        x = np.array(list(per))
        for key, fmt, fill, text in (
                ("extrapolated", "o", color, "redrawn, N -> inf"),
                ("annealed", "^", "none", "redrawn, N = {n}"),
                ("quenched", "s", "none", "one fixed W, N = {n}")):
            vals = [per[v][key] for v in x]
            n = per[x[0]]["big"]
            ax.errorbar(x, [v.mean() for v in vals], yerr=[v.std(ddof=1) for v in vals],
                        fmt=fmt, mfc=fill, color=color, ms=5, capsize=2,
                        label=f"{text.format(n=n)}, mu_b = {mu:g}")
        gap = [(per[v]["quenched"] - per[v]["annealed"]).dropna() for v in x]
        corr = measured[(measured.mu_b == mu) & (measured.weights == "fixed")].groupby(
            "sigma_w").gate_correlation.agg(["mean", "std"]).loc[x]
        right.errorbar(corr["mean"], [g.mean() for g in gap], xerr=corr["std"],
                       yerr=[stderr(g) for g in gap], fmt="o", color=color, ms=5, capsize=2,
                       label=f"mu_b = {mu:g}")
        for v, cx, g in zip(x, corr["mean"], gap):
            right.annotate(f"{v:g}", (cx, g.mean()), textcoords="offset points",
                           xytext=(4, 3), fontsize=7, color=color)
    ax.axhline(0, color="0.6", lw=0.6)
    ax.set(xlabel="sigma_w (recurrent gate weights W_ij ~ N(0, sigma_w^2 / N))",
           ylabel="decay rate of ||dL_t/dh_k|| (nats per step)",
           title=f"minimalRNN, {SEEDS} seeds (mean +- std): mean field is the N -> inf limit of\n"
           "weights redrawn every step (filled); one fixed W (squares) is a finding")
    ax.title.set_fontsize(9)
    ax.legend(fontsize=7, ncols=2)
    right.axhline(0, color="0.6", lw=0.6)
    right.set(xlabel="lag-1 autocorrelation of the gate input W h + W_z z, one fixed W "
              "(redrawn: 0)", ylabel=f"fixed W minus redrawn rate, N = {n} (nats per step)",
              title="the quenched gap beside the gate's memory\n(labels: sigma_w; mean +- SE over "
              "seeds)")
    right.title.set_fontsize(9)
    right.xaxis.label.set_fontsize(8)
    right.legend(fontsize=7)
    fig.savefig(out_dir / "minimalrnn.png", dpi=130)
    plt.close(fig)


def main(argv=None) -> int:
    return standalone(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
