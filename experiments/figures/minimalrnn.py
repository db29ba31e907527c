"""minimalrnn: the decay rate of ||dL_t/dh_k|| of a minimalRNN against sigma_w, at gate bias
mu_b = 0 and 4, with Chen, Pennington and Schoenholz's mean-field rate 1/2 ln chi.

Source: Chen, Pennington, Schoenholz 2018 (arXiv:1806.05394); docs/cells.md ("minimalRNN").

EXPECTED (nats per step): z_t = U x_t with fresh x_t and D = N = 500 (per-unit input variance
R = 1), gate u = s(W h + W_z z + b) with W_ij ~ N(0, sigma_w^2/N), W_z ~ N(0, 1/N), b = mu_b.
Mean field: Q* = R E[(1-u)^2] / (1 - E[u^2]), chi = E[u^2] + sigma_w^2 (Q* + R) E[s'(e)^2],
rate 1/2 ln chi: -0.5822, -0.3175, -0.0591, +0.2006 at sigma_w = 0.5, 2, 4, 8 (mu_b = 0) and
-0.0017 at sigma_w = 4, mu_b = 4. Mean field treats W as redrawn every step; one fixed W moves
the rate by up to 0.03 (measured here the same at N = 500 and 1000, so it is not a finite-N
effect). Each row: the mean of 5 networks within 0.03 + 3 standard errors of that mean.
Known failure: at mu_b = 4, sigma_w = 6, just past chi = 1 where the mean-field curve is
steepest, fixed-W networks measure +0.062 against +0.126, unchanged with 1500 burn-in steps or
N = 1000: the row fails, and the fixed-W effect there is larger than 0.03.
Each rate is the least-squares slope of ln r(t, k) over lags 1..50 (T = 100, 2 sequences per
network, 300 burn-in steps). Full mode about 2 minutes on one core; quick mode: sigma_w = 2
and 8 only. Run alone: ``python experiments/figures/minimalrnn.py [--quick]`` (or
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
from tqdm import tqdm

from experiments.figures.common import is_quick, network, row, standalone, stderr
from rnnlab import theory
from rnnlab.engine import adjoint as gradients
from rnnlab.engine.fit import fit_decay
from rnnlab.plotting import plt

FIGURE = "minimalrnn"
GAINS = {"full": [0.5, 1.0, 2.0, 4.0, 6.0, 8.0], "quick": [2.0, 8.0]}
MU_B = (0.0, 4.0)
SEEDS, N, T, BURN_IN, MAX_LAG = 5, 500, 100, 300, 50
FIXED_W = 0.03  # mean field's redrawn W against one fixed W (see the docstring)


def rate(seed, sigma_w, mu_b) -> float:
    _, traj = network(seed=seed, cell="minimal", gain=sigma_w, spectral_radius=None,
                      gate_bias=mu_b, hidden_size=N, input_size=N, seq_len=T, batch_size=2,
                      burn_in=BURN_IN)
    prof = gradients.pair_profile(traj, max_lag=MAX_LAG)
    return fit_decay(prof.lag, prof.ln_ratio, 1, MAX_LAG)["decay_rate"]


def mean_field(sigma_w, mu_b) -> float:
    return 0.5 * math.log(theory.minimal_chi(sigma_w, mu_b))


def measure(mode: str) -> pd.DataFrame:
    """One rate per gate bias, sigma_w and seed, beside its mean-field rate."""
    is_quick(mode)
    points = [(mu, sw, s) for mu in MU_B for sw in GAINS[mode] for s in range(SEEDS)]
    df = pd.DataFrame([dict(mu_b=mu, sigma_w=sw, seed=s, rate=rate(s, sw, mu))
                       for mu, sw, s in tqdm(points, desc=FIGURE, mininterval=2.0)])
    df["mean_field_rate"] = [mean_field(sw, mu) for sw, mu in zip(df.sigma_w, df.mu_b)]
    return df


def rows(measured: pd.DataFrame) -> list[dict]:
    out = []
    for (mu, sw), g in measured.groupby(["mu_b", "sigma_w"]):
        se = stderr(g.rate)
        out.append(row(FIGURE, f"mu_b = {mu:g}, sigma_w = {sw:g}", mean_field(sw, mu),
                       float(g.rate.mean()), FIXED_W + 3 * se, kind="theory", seeds=len(g),
                       spread=float(g.rate.std(ddof=1)),
                       basis="fixed W vs mean field's redrawn W: up to 0.03, plus 3 standard "
                       "errors of the seed mean"))
    return out


def draw(measured: pd.DataFrame, out_dir: Path) -> None:
    measured.to_csv(out_dir / "minimalrnn.csv", index=False)
    fig, ax = plt.subplots(figsize=(6.5, 4.3), constrained_layout=True)
    s = np.linspace(0.3, 8.5, 120)
    for mu, color in zip(MU_B, ("C0", "C3")):
        ax.plot(s, [mean_field(v, mu) for v in s], "-", color=color, lw=1.2,
                label=f"mean field 1/2 ln chi, mu_b = {mu:g}")
        g = measured[measured.mu_b == mu].groupby("sigma_w").rate
        ax.errorbar(g.mean().index, g.mean().to_numpy(), yerr=g.std(ddof=1).to_numpy(), fmt="o",
                    color=color, ms=5, capsize=2, label=f"measured (N = {N}, 5 seeds), "
                    f"mu_b = {mu:g}")
    ax.axhline(0, color="0.6", lw=0.6)
    ax.set(xlabel="sigma_w (recurrent gate weights W_ij ~ N(0, sigma_w^2 / N))",
           ylabel="decay rate of ||dL_t/dh_k|| (nats per step)",
           title="minimalRNN: gradient decay rate against sigma_w")
    ax.legend(fontsize=8)
    fig.savefig(out_dir / "minimalrnn.png", dpi=130)
    plt.close(fig)


def main(argv=None) -> int:
    return standalone(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
