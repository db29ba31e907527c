"""critical-line: the edge of chaos chi = 1 of a random tanh network in the (sigma_w^2, s2) plane,
with measured decay rates on either side of it.

Source: Poole et al. 2016 (arXiv:1606.05340); Schoenholz et al. 2017 (arXiv:1611.01232);
docs/theory.md ("mean field") and docs/tolerances.md.

EXPECTED:
- the critical gain for s2 = s_in^2 + s_b^2 (recomputed in float64 to 4 decimals): 0.01 ->
  1.1934, 0.05 -> 1.3270, 0.1 -> 1.4093, 0.3 -> 1.5828, 1.0 -> 1.8556; input noise moves the
  edge of chaos to larger gain. That rnnlab.theory solves chi = 1 to these values is a check of
  theory code against constants, so it is a test (tests/test_theory.py), not a row; the rows
  below measure networks;
- measured networks (N = 1000, full-rank input noise s_in^2 = 0.1, mean of 5 seeds, slope over
  lags 1..50 after 500 burn-in steps) on either side of the line, at sigma_w = 1.2 and 1.7,
  each within 0.006 of 1/2 log chi (the finite-N budget at N = 1000; the mean-field rates,
  -0.076 and +0.076, are far enough from 0 that this also fixes the signs);
- the measured zero crossing at s2 = 0.1, linearly interpolated between the two measured gains
  that bracket it, at 1.4093 within eps / s + |b|: eps = 0.006 (the rate budget), s the
  mean-field rate's secant slope over the bracket (nats/step per unit sigma_w) and b the bias of
  the same interpolation applied to the mean-field curve itself (derived, not tuned).
Full mode also measures s2 = 0.01, 0.3 and 1.0 at the critical gain +- 0.25 (2 seeds each) and
draws them; they are not compared (no finite-N budget was measured there). 7.5 min measured
on the shared 2-core machine (~2.5 min of CPU). Run alone:
``python experiments/figures/critical_line.py [--quick]`` or
``python -m experiments.figures.critical_line [--quick]``.
"""
from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as a file: the repo root on sys.path, for experiments.figures
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np
import pandas as pd

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

FIGURE = "critical-line"
TABLE = {0.01: 1.1934, 0.05: 1.3270, 0.1: 1.4093, 0.3: 1.5828, 1.0: 1.8556}
SEEDS, DRAWN_SEEDS = 5, 2  # compared points, drawn-only points
TOL_RATE = 0.006  # finite-N budget: tanh, s_in^2 = 0.1, N = 1000 (docs/tolerances.md)
GAINS = {"quick": [1.2, 1.4, 1.5, 1.7], "full": [1.2, 1.3, 1.4, 1.5, 1.6, 1.7]}


def seed_rates(sigma_w, s_in2, T, seeds):
    """The slope of ln r over lags 1..50 of each of ``seeds`` networks (N = 1000), nats/step."""
    return np.array([windowed_rate(*network(
        seed=seed, activation="tanh", gain=sigma_w, spectral_radius=None, seq_len=T,
        batch_size=4, burn_in=500, **full_rank_noise(1000, s_in2)), max_lag=50)[0]
        for seed in range(seeds)])


def measured_point(s2, sigma_w, T, seeds):
    r = seed_rates(sigma_w, s2, T, seeds)
    return {"s2": s2, "sigma_w": sigma_w, "seeds": seeds, "decay_rate": r.mean(),
            "seed_std": r.std(ddof=1), "mean_field_rate": float(theory.log_chi_rate(
                "tanh", sigma_w, s2))}


def zero_crossing(x, y):
    """Linear interpolation of the first sign change of y(x) from - to +, and its bracket."""
    i = int(np.flatnonzero((y[:-1] < 0) & (y[1:] >= 0))[0])
    return x[i] - y[i] * (x[i + 1] - x[i]) / (y[i + 1] - y[i]), i


def measured_crossing(points: pd.DataFrame):
    """At s2 = 0.1: (the measured points by sigma_w, the measured zero crossing, the index of
    its bracket)."""
    at = points[points["s2"] == 0.1].set_index("sigma_w")
    crossing, i = zero_crossing(at.index.to_numpy(), at["decay_rate"].to_numpy())
    return at, crossing, i


def measure(mode: str) -> dict:
    """{"points": the measured rates (s2 = 0.1 compared, the others drawn), "line": the
    critical gain over s2 from theory}."""
    quick = is_quick(mode)
    T = 60 if quick else 200
    others = [] if quick else [(s2, round(theory.critical_gain("tanh", s2) + d, 2))
                               for s2 in (0.01, 0.3, 1.0) for d in (-0.25, 0.25)]
    points = pd.DataFrame([measured_point(0.1, g, T, SEEDS) for g in GAINS[mode]]
                          + [measured_point(s2, g, T, DRAWN_SEEDS) for s2, g in others])
    s2_grid = np.linspace(0, 1.0, 41)
    line = pd.DataFrame({"s2": s2_grid, "critical_sigma_w": [
        theory.critical_gain("tanh", s) for s in s2_grid]})
    return {"points": points, "line": line}


def rows(measured: dict) -> list[dict]:
    out = []
    at, crossing, i = measured_crossing(measured["points"])
    crit = theory.critical_gain("tanh", 0.1)
    for g in (1.2, 1.7):
        out.append(row(FIGURE, f"rate at sigma_w = {g}, s2 = 0.1, N = 1000 (5 seeds) vs "
                       "1/2 log chi (nats/step)", at.loc[g, "mean_field_rate"],
                       at.loc[g, "decay_rate"], TOL_RATE, kind="theory", seeds=SEEDS,
                       spread=at.loc[g, "seed_std"],
                       basis=f"finite-N budget at N = 1000; 3 SE = "
                       f"{3 * at.loc[g, 'seed_std'] / np.sqrt(SEEDS):.4f}"))
    x = at.index.to_numpy()
    mf = at["mean_field_rate"].to_numpy()
    secant = (mf[i + 1] - mf[i]) / (x[i + 1] - x[i])
    bias = zero_crossing(x, mf)[0] - crit
    out.append(row(FIGURE, f"measured zero crossing at s2 = 0.1 (between sigma_w = {x[i]} and "
                   f"{x[i + 1]}) vs critical gain", crit, crossing,
                   TOL_RATE / secant + abs(bias), kind="theory", seeds=SEEDS,
                   basis=f"rate budget / secant slope ({TOL_RATE}/{secant:.3f}) + "
                   f"interpolation bias {abs(bias):.1e}"))
    return out


def draw(measured: dict, out_dir: Path) -> None:
    points, line = measured["points"], measured["line"]
    line.to_csv(out_dir / "critical_line.csv", index=False)
    points.to_csv(out_dir / "measured_rates.csv", index=False)
    crossing = measured_crossing(points)[1]

    fig, axes = plt.subplots(1, 2, figsize=(12.5, 4.4), gridspec_kw={"wspace": 0.45})
    ax = axes[0]
    sw2, s2 = np.meshgrid(np.linspace(0.5, 4.0, 36), np.linspace(0, 1.0, 21))
    im = ax.pcolormesh(sw2, s2, theory.log_chi_rate("tanh", np.sqrt(sw2), s2), cmap="RdBu_r",
                       vmin=-0.4, vmax=0.4, shading="auto")
    fig.colorbar(im, ax=ax, label=r"mean field $\frac{1}{2}\log\chi$ (nats per step)")
    ax.plot(line["critical_sigma_w"] ** 2, line["s2"], "k-", label=r"$\chi = 1$ (theory)")
    ax.plot([v ** 2 for v in TABLE.values()], list(TABLE), "wo", mec="k",
            label="critical gains (4 decimals)")
    for sign, color in ((-1, "tab:blue"), (1, "tab:red")):
        m = points[np.sign(points["decay_rate"]) == sign]
        ax.plot(m["sigma_w"] ** 2, m["s2"], "s", ms=7, mec="k", color=color,
                label=f"measured rate {'< 0' if sign < 0 else '> 0'} (N = 1000)")
    ax.plot(crossing ** 2, 0.1, "k*", ms=12, label="measured crossing, s2 = 0.1")
    ax.set_xlabel(r"$\sigma_w^2$")
    ax.set_ylabel(r"$s^2 = s_{in}^2 + s_b^2$")
    ax.set_title("tanh: ordered (blue) and chaotic (red)", fontsize=10)
    ax.legend(fontsize=7, loc="center right")
    ax = axes[1]
    grid = np.linspace(1.0, 2.2, 200)
    for (s2v, m), color in zip(points.groupby("s2"), ("C0", "C1", "C2", "C3")):
        ax.plot(grid, theory.log_chi_rate("tanh", grid, s2v), "-", lw=1, color=color)
        ax.plot(m["sigma_w"], m["decay_rate"], "o", color=color,
                label=f"s2 = {s2v}: measured (markers), mean field (line)")
        ax.axvline(theory.critical_gain("tanh", s2v), color=color, lw=0.6, ls=":")
    ax.axhline(0, color="0.5", lw=0.6)
    ax.set_xlabel(r"gain $\sigma_w$")
    ax.set_ylabel("rate: slope of ln r over lags 1-50 (nats per step)")
    ax.set_title("rates across the line (dotted: critical gains), N = 1000, 5 seeds",
                 fontsize=10)
    ax.legend(fontsize=7)
    fig.savefig(out_dir / "critical_line.png", dpi=130, bbox_inches="tight")
    plt.close(fig)


def main(argv=None) -> int:
    return standalone(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
