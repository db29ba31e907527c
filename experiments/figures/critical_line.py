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
- measured networks on either side of the line at s2 = 0.1 (full-rank input noise s_in^2 = 0.1),
  with weights redrawn at every step, mean field's own network (experiments/figures/annealed.py):
  per seed the slope of ln r over lags 1..50 (T = 100, 200 burn-in steps, 4 sequences) at N = 250
  and 500, extrapolated to N = infinity as 2 r(500) - r(250) (the 1/N law measured in rate-vs-gain's
  docstring); at sigma_w = 1.2 and 1.7 the mean of 5 seeds within t_4 = 6.62 standard errors
  (Student's t, 99.73%) of 1/2 log chi (-0.076 and +0.076), with the finite-N term and the quenched
  - annealed gap (one fixed W minus redrawn at N = 500) beside each as findings;
- the zero crossing at s2 = 0.1: each seed's extrapolated rates over sigma_w = 1.2 .. 1.7, linearly
  interpolated between the two gains that bracket their sign change; the seeds' mean at 1.4093
  within t_4 = 6.62 standard errors plus |b|, b the bias of the same interpolation applied to the
  mean-field curve itself (derived, not tuned). The fixed-W crossing minus the redrawn one at N =
  500 is a finding.
Full mode also measures s2 = 0.01, 0.3 and 1.0 at the critical gain +- 0.25 (2 seeds each) and
draws them; they are not compared. About 4 minutes of CPU on one core; quick mode: N = 100 and
200, four gains (a smoke test). Run alone:
``python experiments/figures/critical_line.py [--quick]`` or
``python -m experiments.figures.critical_line [--quick]``.
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
    stderr,
    t_multiple,
)
from experiments.figures.plots import critical_line as plot
from rnnlab import theory

FIGURE = plot.FIGURE
TABLE = {0.01: 1.1934, 0.05: 1.3270, 0.1: 1.4093, 0.3: 1.5828, 1.0: 1.8556}
SEEDS, DRAWN_SEEDS = 5, 2  # compared points, drawn-only points
T, BURN_IN = 100, 200
SIZES = {"full": (250, 500), "quick": (100, 200)}  # N: the extrapolation's two sizes
GAINS = {"quick": [1.2, 1.4, 1.5, 1.7], "full": [1.2, 1.3, 1.4, 1.5, 1.6, 1.7]}
ROW_GAINS = (1.2, 1.7)


def measure(mode: str) -> dict:
    """{"points": one rate per s2, sigma_w, seed, weights and N (s2 = 0.1 compared, the others
    drawn), "line": the critical gain over s2 from theory}."""
    quick = is_quick(mode)
    sizes = SIZES[mode]
    others = [] if quick else [(s2, round(theory.critical_gain("tanh", s2) + d, 2))
                               for s2 in (0.01, 0.3, 1.0) for d in (-0.25, 0.25)]
    jobs = ([(0.1, g, seed) for g in GAINS[mode] for seed in range(SEEDS)]
            + [(s2, g, seed) for s2, g in others for seed in range(DRAWN_SEEDS)])
    points = pd.DataFrame([dict(s2=s2, sigma_w=g, N=sizes[i], seed=seed, weights=w,
                                rate=noise_rate("tanh", g, s2, sizes[i], seed, w, T=T,
                                                burn_in=BURN_IN))
                           for s2, g, seed in tqdm(jobs, desc=FIGURE, disable=None)
                           for w, i in annealed.RUNS])
    points["mean_field_rate"] = [float(theory.log_chi_rate("tanh", g, s2))
                                 for g, s2 in zip(points.sigma_w, points.s2)]
    s2_grid = np.linspace(0, 1.0, 41)
    line = pd.DataFrame({"s2": s2_grid, "critical_sigma_w": [
        theory.critical_gain("tanh", s) for s in s2_grid]})
    return {"points": points, "line": line}


def quick_may_fail(r: dict) -> bool:
    """At quick sizes (N = 100 and 200) the 1/N law behind the extrapolation need not hold yet,
    so the theory rows are a smoke test there."""
    return r["kind"] == "theory"


def zero_crossing(x, y):
    """Linear interpolation of the first sign change of y(x) from - to +, and its bracket."""
    i = int(np.flatnonzero((y[:-1] < 0) & (y[1:] >= 0))[0])
    return x[i] - y[i] * (x[i + 1] - x[i]) / (y[i + 1] - y[i]), i


def crossings(points: pd.DataFrame, key: str) -> pd.Series:
    """At s2 = 0.1: the zero crossing of each seed's rate curve ``key`` (a series of
    annealed.series) over sigma_w."""
    at = points[points.s2 == 0.1]
    curves = pd.DataFrame({g: annealed.series(m)[key] for g, m in at.groupby("sigma_w")})
    x = curves.columns.to_numpy(dtype=float)
    return pd.Series({seed: zero_crossing(x, y.to_numpy())[0] for seed, y in curves.iterrows()})


def rows(measured: dict) -> list[dict]:
    points, out = measured["points"], []
    at = points[points.s2 == 0.1]
    for g in ROW_GAINS:
        m = at[at.sigma_w == g]
        out += annealed.rows(FIGURE, f"rate at sigma_w = {g}, s2 = 0.1", m,
                             float(m.mean_field_rate.iloc[0]))
    crit = theory.critical_gain("tanh", 0.1)
    x = np.sort(at.sigma_w.unique())
    mf = np.array([theory.log_chi_rate("tanh", g, 0.1) for g in x])
    bias = zero_crossing(x, mf)[0] - crit
    cross = crossings(points, "extrapolated")
    k = t_multiple(len(cross))
    out.append(row(FIGURE, f"zero crossing of the rate at s2 = 0.1 (weights redrawn, "
                   f"N -> infinity, sigma_w = {x.min()} .. {x.max()}) vs critical gain", crit,
                   float(cross.mean()), k * stderr(cross) + abs(bias), kind="theory",
                   seeds=len(cross), spread=float(cross.std(ddof=1)),
                   estimator="per seed the zero crossing of the linearly interpolated "
                   "extrapolated rates 2 r(500) - r(250) over sigma_w, averaged over seeds",
                   se=f"SD of the per-seed crossings / sqrt(n) = {stderr(cross):.2g}",
                   basis=f"tolerance {k:.2f} SE (Student t, {len(cross) - 1} dof, 99.73%) + "
                   f"the same interpolation's bias on mean field itself ({abs(bias):.1e})"))
    gap = crossings(points, "quenched") - crossings(points, "annealed")
    n = int(at.N.max())
    out.append(row(FIGURE, f"zero crossing at s2 = 0.1: one fixed W minus redrawn at N = {n} "
                   "(quenched - annealed gap)", 0.0, float(gap.mean()), math.nan,
                   kind="finding", seeds=len(gap), spread=float(gap.std(ddof=1)),
                   basis=f"per-seed difference on the same seeds; standard error "
                   f"{stderr(gap):.4f}"))
    return out


def tables(measured: dict) -> dict:
    """measured_rates.csv (every rate), critical_line.csv (the critical gain over s2),
    critical_line_map.csv (1/2 log chi on a 36 x 21 sigma_w^2 x s2 grid),
    critical_line_curves.csv (1/2 log chi over sigma_w 0.9 .. 2.2 per measured s2),
    critical_gains.csv (per s2 of TABLE and per measured s2: theory's critical gain and the
    stated one, NaN where none is stated),
    critical_line_summary.csv (annealed.summary per s2 and sigma_w) and
    critical_line_crossings.csv (per seed the zero crossing of each estimate at s2 = 0.1)."""
    points, line = measured["points"], measured["line"]
    sw2, s2 = np.meshgrid(np.linspace(0.5, 4.0, 36), np.linspace(0, 1.0, 21))
    grid = pd.DataFrame({"sigma_w2": sw2.ravel(), "s2": s2.ravel(), "mean_field_rate":
                         theory.log_chi_rate("tanh", np.sqrt(sw2), s2).ravel()})
    summary = annealed.summary(points, ["s2", "sigma_w"])
    gains = np.linspace(0.9, 2.2, 200)
    curves = pd.concat([pd.DataFrame({"s2": s2v, "sigma_w": gains,
                                      "mean_field_rate": theory.log_chi_rate("tanh", gains, s2v)})
                        for s2v in sorted(summary.s2.unique())], ignore_index=True)
    every = sorted(set(TABLE) | set(summary.s2))
    stated = pd.DataFrame({"s2": every, "critical_sigma_w": [
        theory.critical_gain("tanh", s) for s in every],
        "stated": [TABLE.get(s, math.nan) for s in every]})
    cross = pd.DataFrame({key: crossings(points, key)
                          for key in ("extrapolated", "annealed", "quenched")})
    cross = cross.rename_axis("seed").reset_index()
    cross.insert(0, "s2", 0.1)
    return {"measured_rates.csv": points, **dict(zip(plot.TABLES, (
        line, grid, curves, stated, summary, cross)))}


def main(argv=None) -> int:
    return standalone(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
