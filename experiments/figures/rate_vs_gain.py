"""rate-vs-gain: the measured decay rate of ||dL_t/dh_k|| against sigma_w, with the mean-field
curve 1/2 log chi; tanh with and without input, relu with input.

Source: Poole et al. 2016 (arXiv:1606.05340); Schoenholz et al. 2017 (arXiv:1611.01232); Chen,
Pennington, Schoenholz 2018; docs/theory.md ("mean field") and docs/tolerances.md.

EXPECTED (finite networks, W_ij ~ N(0, sigma_w^2/N), 500 burn-in steps; absolute tolerances in
nats per step, each the finite-N budget of docs/tolerances.md: the known finite-N bias plus
three standard errors of the seed mean, which each row's basis states):
- tanh with fresh full-rank input noise s_in^2 = 0.1 (D = N, input gain sqrt 0.1): the slope
  over lags <= 50, mean of 5 networks, within 0.006 of 1/2 log chi at N = 1000 for every sigma_w
  in [0.5, 3]; the finite-size ladder at sigma_w = 0.5 and 2: 0.012 at N = 500, 0.02 at N = 250;
- relu with the same input, sigma_w < 1.3: the mean of 10 networks (a relu network's rate
  spreads 2-5x more than tanh's) within 0.006 at N = 1000; 1.3 and 1.4 are drawn, not compared:
  q* = s_in^2 / (1 - sigma_w^2/2) diverges at sqrt 2;
- tanh without input, ordered, sigma_w = 0.5: the slope over lags <= 50 within 0.005 of
  1/2 log chi = ln sigma_w (q* = 0). One row: once h ~ 0 the network is linear with W = sigma_w
  W0, so every ordered gain measures the same matrix power (0.7 and 0.9 are drawn only);
- tanh without input, 1 <= sigma_w <= 1.5: mean field fails for one fixed W at N <= 2000
  (quasi-periodic dynamics, rate near 0): only monotonicity, and the sign at sigma_w = 1, where
  the decay is a power law (norm ~ (k/t)^(1/2)): negative.
Each point is the mean over its networks (seeds 0..n-1) of the least-squares slope of ln r(t, k)
over lags 1..50, 4 sequences per network, all pairs; the table also lists the seeds' spread and the
worst single seed. Full mode: T = 200, 14 min measured on the shared machine (~4.5 min of CPU);
quick mode: the same N, seeds and tolerances, T = 60 and fewer gains. Run alone: ``python
experiments/figures/rate_vs_gain.py [--quick]`` or ``python -m experiments.figures.rate_vs_gain
[--quick]``.
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

from experiments.figures.common import (
    full_rank_noise,
    is_quick,
    network,
    row,
    standalone,
    windowed_rate,
)
from rnnlab import theory
from rnnlab.plotting import plt

FIGURE = "rate-vs-gain"
SEEDS = {"tanh": 5, "relu": 10}
BURN_IN = 500
# finite-N budgets (docs/tolerances.md): bias of the seed mean + 3 standard errors
TOL_TANH_INPUT = {1000: 0.006, 500: 0.012, 250: 0.02}
TOL_RELU, TOL_ORDERED = 0.006, 0.005  # N = 1000
ORDERED_ROW = 0.5  # the one ordered zero-input gain that is a row (see the docstring)
MARKERS = {250: "^", 500: "s", 1000: "o"}
PANELS = {  # name: (activation, s_in^2, gains (full), gains (quick))
    "tanh, s_in^2 = 0.1": ("tanh", 0.1, [0.5, 1.0, 1.5, 2.0, 2.5, 3.0], [2.0]),
    "relu, s_in^2 = 0.1": ("relu", 0.1, [0.5, 0.8, 1.0, 1.2, 1.3, 1.4], [1.2]),
    "tanh, no input": ("tanh", 0.0, [0.5, 0.7, 0.9, 1.0, 1.25, 1.5], [0.5, 1.0, 1.5]),
}


def rates(act, sigma_w, s_in2, N, T):
    """Windowed rate (lags 1..50) of each network (SEEDS[act] of them), nats per step."""
    drive = full_rank_noise(N, s_in2) if s_in2 else dict(hidden_size=N, input_std=0.0, h0_std=1.0)
    return np.array([windowed_rate(*network(seed=seed, activation=act, gain=sigma_w,
                                            spectral_radius=None, seq_len=T, batch_size=4,
                                            burn_in=BURN_IN, **drive), max_lag=50)[0]
                     for seed in range(SEEDS[act])])


def tolerance(act, sigma_w, s_in2, N):
    """The finite-N budget for this point, None where it is not a row."""
    if not s_in2:  # no input: one ordered gain (the others repeat its matrix power)
        return TOL_ORDERED if sigma_w == ORDERED_ROW else None
    if act == "relu":
        return TOL_RELU if sigma_w < 1.3 else None
    return TOL_TANH_INPUT[N]


def measure(mode: str) -> dict:
    """{"mode", "table": one row per panel, N and sigma_w: the seeds' mean rate, their spread,
    the worst seed, mean field and the tolerance (None where the point is drawn only)}."""
    quick = is_quick(mode)
    N, T = 1000, (60 if quick else 200)
    jobs = [(panel, act, s_in2, sigma_w, N) for panel, (act, s_in2, full, short)
            in PANELS.items() for sigma_w in (short if quick else full)]
    if not quick:  # the finite-size ladder
        jobs += [("tanh, s_in^2 = 0.1", "tanh", 0.1, sigma_w, n)
                 for n in (250, 500) for sigma_w in (0.5, 2.0)]
    table = []
    for panel, act, s_in2, sigma_w, n in tqdm(jobs, desc="rate-vs-gain", disable=None,
                                              leave=False):
        r = rates(act, sigma_w, s_in2, n, T)
        mf = float(theory.log_chi_rate(act, sigma_w, s_in2))
        table.append({"panel": panel, "N": n, "sigma_w": sigma_w, "seeds": r.size,
                      "decay_rate": r.mean(), "seed_std": r.std(ddof=1), "mean_field_rate": mf,
                      "difference": r.mean() - mf,
                      "worst_seed_difference": (r - mf)[np.abs(r - mf).argmax()],
                      "tolerance": tolerance(act, sigma_w, s_in2, n)})
    return {"mode": mode, "table": pd.DataFrame(table)}


def rows(measured: dict) -> list[dict]:
    table, out = measured["table"], []
    for t in table.itertuples():
        if pd.isna(t.tolerance):
            continue
        se = t.seed_std / math.sqrt(t.seeds)  # common.stderr of the seeds' rates
        out.append(row(FIGURE, f"{t.panel}, sigma_w = {t.sigma_w}, N = {t.N}: rate (lags 1-50, "
                       f"{t.seeds} seeds) vs 1/2 log chi (nats/step)", t.mean_field_rate,
                       t.decay_rate, t.tolerance, kind="theory", seeds=t.seeds,
                       spread=t.seed_std,
                       basis=f"finite-N budget at N = {t.N}; 3 SE = {3 * se:.4f}"))
    edge = table[(table["panel"] == "tanh, no input") & (table["sigma_w"] >= 1.0)]
    out.append(row(FIGURE, "tanh, no input, sigma_w in [1, 1.5]: mean rates that fall as "
                   "sigma_w rises", 0.0, float((np.diff(edge["decay_rate"]) < 0).sum()), 0.0,
                   kind="sign", seeds=SEEDS["tanh"], spread=edge["seed_std"].max(),
                   basis="a count; mean field fails here for one W, only the order is asserted"))
    at_one = edge[edge["sigma_w"] == 1.0].iloc[0]
    out.append(row(FIGURE, "tanh, no input, sigma_w = 1 (power-law decay): sign of the mean "
                   "rate", -1.0, float(np.sign(at_one["decay_rate"])), 0.0, kind="sign",
                   seeds=SEEDS["tanh"], spread=at_one["seed_std"],
                   basis="norm ~ (k/t)^(1/2) falls over lags 1-50"))
    return out


def draw(measured: dict, out_dir: Path) -> None:
    table, quick = measured["table"], is_quick(measured["mode"])
    table.to_csv(out_dir / "rate_vs_gain.csv", index=False)

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, (panel, (act, s_in2, full, short)) in zip(axes, PANELS.items()):
        grid = np.linspace(0.45, max(short if quick else full) + 0.05, 300)
        ax.plot(grid, theory.log_chi_rate(act, grid, s_in2), "k-", lw=1,
                label=r"mean field $\frac{1}{2}\log\chi$")
        for n, m in table[table["panel"] == panel].groupby("N"):
            seeds = int(m["seeds"].iloc[0])
            ax.errorbar(m["sigma_w"], m["decay_rate"], yerr=m["seed_std"], fmt=MARKERS[n],
                        ms=4, capsize=2, label=f"measured, N = {n} (mean, sd of {seeds} seeds)")
        ax.axhline(0, color="0.5", lw=0.6, ls=":")
        ax.set_title(panel, fontsize=10)
        ax.set_xlabel(r"gain $\sigma_w$ (W$_{ij}$ ~ N(0, $\sigma_w^2$/N))")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("rate: slope of ln r over lags 1-50 (nats per step)")
    fig.savefig(out_dir / "rate_vs_gain.png", dpi=130, bbox_inches="tight")
    plt.close(fig)


def main(argv=None) -> int:
    return standalone(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
