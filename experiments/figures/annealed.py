"""Mean-field rows that compare like with like, shared by the figures that test a mean-field rate
(rate-vs-gain, critical-line, lyapunov, minimalrnn).

Mean field describes the N -> infinity limit of a network whose weights are redrawn at every step
(annealed; ``measure.weights=redrawn``). Each point is measured per seed three times on the same
step-0 weights, readout and data: redrawn at two sizes n and 2n, and with one fixed W (the real,
quenched network) at 2n. The theory row compares the per-seed extrapolation
r_inf = 2 r(2n) - r(n), exact for a 1/N finite-size term, with mean field, tolerance t SE of the
seed mean of r_inf, t Student's quantile with the coverage of 3 sigma (99.73%) for that many
seeds (``common.t_multiple``: 6.62 at 5 seeds, 3.45 at 20): with few seeds the standard error is
itself uncertain, and 3 SE at 5 seeds would fail 4% of true rows. Two findings sit beside it,
never judged: the finite-N term r(n) - r(2n) (= r(2n) - r_inf under the 1/N law), and the
quenched - annealed gap, fixed W minus redrawn at 2n on the same seeds.
"""
from __future__ import annotations

import math

import pandas as pd

from experiments.figures.common import row, stderr, t_multiple

RUNS = (("redrawn", 0), ("redrawn", 1), ("fixed", 1))  # (weights, index into the two sizes)


def series(g: pd.DataFrame, value: str = "rate") -> dict:
    """Per seed (a Series indexed by seed): the redrawn values at the two sizes, their
    N -> infinity extrapolation and the fixed-W value at the larger size. ``g``: one point's
    rows with columns N, seed, weights and ``value``."""
    small, big = sorted(g.N.unique())
    if big != 2 * small:
        raise ValueError(f"sizes {small}, {big}: the extrapolation needs n and 2n")
    pick = lambda w, n: g[(g.weights == w) & (g.N == n)].set_index("seed")[value]
    annealed, annealed_small = pick("redrawn", big), pick("redrawn", small)
    return {"small": small, "big": big, "annealed": annealed, "annealed_small": annealed_small,
            "extrapolated": 2 * annealed - annealed_small,
            "quenched": pick("fixed", big)}


def rows(figure: str, name: str, g: pd.DataFrame, mean_field: float, *,
         value: str = "rate", what: str = "rate", judged: bool = True,
         law: str = "module docstring", estimator: str | None = None) -> list[dict]:
    """The theory row (left out when not ``judged``) and the two findings of one point. ``name``
    opens each quantity; ``what`` names the measured number; ``law`` says where the 1/N law was
    measured; ``estimator``, when given, describes one seed's measurement (method, steps) in the
    theory row's basis, which states the estimator, n and how the standard error was obtained."""
    r = series(g, value)
    inf, n, small = r["extrapolated"], r["big"], r["small"]
    out = []
    if judged:
        k = t_multiple(len(inf))
        what_seed = (f"{estimator}, weights redrawn every step" if estimator is not None
                     else f"the {what} with weights redrawn every step")
        out.append(row(figure, f"{name}: weights redrawn every step, N -> infinity, vs mean "
                       "field", mean_field, float(inf.mean()), k * stderr(inf),
                       kind="theory", seeds=len(inf), spread=float(inf.std(ddof=1)),
                       estimator=f"per seed 2 r(N={n}) - r(N={small}) of {what_seed} (mean "
                       f"field's own network; exact for a 1/N finite-size term, measured: {law}), "
                       "averaged over seeds",
                       se=f"SD of the per-seed values / sqrt(n) = {stderr(inf):.2g}",
                       basis=f"tolerance {k:.2f} SE (Student t, {len(inf) - 1} dof: the "
                       "coverage of 3 sigma, 99.73%)"))
    finite = r["annealed_small"] - r["annealed"]
    out.append(row(figure, f"{name}: finite-N term of the redrawn {what} at N = {n}", 0.0,
                   float(finite.mean()), math.nan, kind="finding", seeds=len(finite),
                   spread=float(finite.std(ddof=1)),
                   basis=f"r(N={small}) - r(N={n}) = r(N={n}) - r(inf) under the 1/N law; "
                   f"redrawn r(N={n}) {r['annealed'].mean():+.4f}, standard error "
                   f"{stderr(finite):.4f}"))
    gap = (r["quenched"] - r["annealed"]).dropna()
    out.append(row(figure, f"{name}: one fixed W minus redrawn at N = {n} (quenched - "
                   "annealed gap)", 0.0, float(gap.mean()), math.nan, kind="finding",
                   seeds=len(gap), spread=float(gap.std(ddof=1)),
                   basis=f"per-seed difference on the same seeds; fixed W "
                   f"{r['quenched'].mean():+.4f}, redrawn {r['annealed'].mean():+.4f}; "
                   f"standard error {stderr(gap):.4f}"))
    return out


def summary(measured: pd.DataFrame, keys: list[str], value: str = "rate") -> pd.DataFrame:
    """One line per point (``keys``): the seeds' mean and standard deviation of the
    extrapolated, redrawn (N_big) and fixed (N_big) values, for the figure's table and plot."""
    out = []
    for key, g in measured.groupby(keys):
        r = series(g, value)
        line = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        line.update(N_small=r["small"], N_big=r["big"], seeds=len(r["extrapolated"]))
        for k in ("extrapolated", "annealed", "quenched"):
            line[k] = float(r[k].mean())
            line[f"{k}_std"] = float(r[k].std(ddof=1))
        out.append(line)
    return pd.DataFrame(out)
