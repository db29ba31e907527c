"""curse-of-memory: the state's sensitivity to its recurrent parameter against the memory
1/(1 - lambda), for real diagonal linear networks measured by the engine, beside the decay rate of
||dL_t/dh_k|| of the same networks (nothing explodes) and dense cells at matched memory.

Source: Zucchet & Orvieto 2024 (arXiv:2405.21064); the LRU of Orvieto et al. 2023
(arXiv:2303.06349); docs/theory.md ("the curse of memory").

EXPECTED. The measured networks are LRUs (``model.cell=lru``) with r_min = r_max = lambda and
max_phase = 0: every lambda_j is the real number lambda, so each unit is a pair of real units
(Re h_j, Im h_j) h_t = lambda h_{t-1} + gamma (B x_t), driven by white noise of total variance
||B_j||^2 (x_t ~ N(0, I), B's parts N(0, 1/(2D))). The sensitivity is the engine's forward-mode
``measure.sensitivity`` (``rnnlab.engine.sensitivity``, the LRU's O(T B N) tangent
recurrence): the mean over units, sequences and measured steps of |dh_j/dp_j|^2, divided by the
network's mean ||B_j||^2 (so it is per unit of input variance). Closed forms
(``rnnlab.theory.memory_sensitivity``), with the memory m = 1/(1 - lambda):
- plain (gamma = 1), d/dlambda: (1 + lambda^2)/(1 - lambda^2)^3 ~ m^3/4: 263.9, 2.513e5,
  2.501e8 at lambda = 0.9, 0.99, 0.999;
- normalised (gamma = sqrt(1 - lambda^2), differentiated through), d/dlambda:
  1/(1 - lambda^2)^2 ~ m^2/4: 27.70, 2525, 2.503e5;
- normalised, d/dnu (lambda = exp(-exp(nu))): lambda^2 ln^2 lambda/(1 - lambda^2)^2 -> 1/4:
  0.1989, 0.2500, 0.2500.
The d/dnu value of a run is (lambda ln lambda)^2 times its d/dlambda value (the engine's chain
rule), so that row passes or fails with the normalised d/dlambda row of the same runs; it is
kept for its curve, the one that stays flat.
Sizes: lambda = 0.5, 0.7, 0.9, 0.95, 0.99, 0.995, 0.999; N = 8 units, D = 8 inputs, 16 sequences
per network. Each network runs a burn-in of 15 m steps from h0 = 0 (the state's transient falls
as lambda^t, the tangent's as t lambda^t: both below e^-29 relative after 15 m steps) and is
then averaged over 60 m steps (60 correlation times of the slowest, and only, timescale).
Standard error: M = 8 independent networks (seeds: their own B and inputs) per point, batch
means: the point's estimate is the mean of the 8 per-network values and its standard error their
sample standard deviation / sqrt(8), so time correlation inside a run needs no model. The same
seeds serve every lambda and both normalisations (their inputs start alike), so neighbouring rows
are correlated; each row's standard error is its own. Tolerance:
4 standard errors, fixed before any run (a t with 7 degrees of freedom exceeds 4 with
probability 0.005; the same rule as tests/test_sensitivity.py).
The decay rate of ||dL_t/dh_k|| of the same networks (least-squares slope over lags 1..100,
T = 200, 2 sequences): with every |lambda_j| = lambda, J = lambda I and every ratio is exactly
lambda^(t-k), so the rate is ln lambda < 0 (nothing explodes, however long the memory): one
exact row per lambda, tolerance 1e-12 (float64 rounding of the log-space sweep, ~1e-16 per step
over at most 100 lags, with margin).
Contrast, drawn and reported as findings (never judged): the sensitivity of every recurrent
matrix entry, ||ds_t/dW||_F^2 / N (``rnnlab.engine.sensitivity.dense_sensitivity``; for the GRU
summed over its three gate blocks), divided by the mean ||s_t||^2 / N so that the input scale
cancels, for N = 16 (the dense forward mode is O(T B N^4)): a linear Elman W = lambda Q (Q
orthogonal) at lambda = 0.5, 0.9, 0.95, 0.99; a tanh Elman W = rho Q with input gain 0.3 at
rho = 0.9, 1.0, 1.1, 1.3; a GRU with PyTorch's init at update-gate bias 0, 2, 4, 6. Memory is
matched through the decay rate: m = 1/(1 - exp(rate)) with the rate measured on the network
itself (lags 1..50, T = 300 after 300 burn-in steps), exactly 1/(1 - lambda) for the linear
cells. Burn-in 15 m, 40 m measured steps, 4 sequences, 5 seeds. Beside each, the diagonal unit's
own ratio at the same memory, (1 + lambda^2)/(1 - lambda^2)^2 with lambda = 1 - 1/m.
Full mode 497 s on one shared core (measured; 240 s of it the diagonal networks, most of the
rest the GRU at bias 6, m = 330); quick mode lambda = 0.5,
0.9, 0.99 with 4 networks of 10 m + 30 m steps, and one contrast point per cell. Run alone:
``python experiments/figures/curse_of_memory.py [--quick]`` (or ``python -m
experiments.figures.curse_of_memory [--quick]``).
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

if not __package__:  # run as a file: the repo root on sys.path, for experiments.figures
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np
import pandas as pd
from scipy.stats import t as student_t
from tqdm import tqdm

from experiments.figures.common import (
    drawn,
    is_quick,
    network,
    row,
    standalone,
    stderr,
    windowed_rate,
)
from experiments.figures.plots import curse_of_memory as plot
from rnnlab import theory
from rnnlab.engine.sensitivity import sensitivity

FIGURE = plot.FIGURE
LAMBDAS = {"full": [0.5, 0.7, 0.9, 0.95, 0.99, 0.995, 0.999], "quick": [0.5, 0.9, 0.99]}
NETWORKS = {"full": 8, "quick": 4}  # M independent networks per point (batch means)
LENGTHS = {"full": (15, 60), "quick": (10, 30)}  # (burn-in, measured) in memories m
N, D, SEQUENCES = 8, 8, 16
# the real diagonal network: an LRU whose every lambda_j is the real r_min = r_max (no phase),
# linear, unbiased; lambda, sizes and normalisation are added per network
DIAGONAL = dict(cell="lru", activation="linear", init="ring", spectral_radius=None,
                bias_std=0.0, hidden_size=N, input_size=D, max_phase=0.0)
N_SE = 4.0
TOL_RATE = 1e-12
RATE_T, RATE_LAGS = 200, 100
# (label, engine parameter, model.normalize, closed-form parameter)
CASES = (("plain, d/dlambda", "r", False, "lambda"),
         ("normalised, d/dlambda", "r", True, "lambda"),
         ("normalised, d/dnu", "nu", True, "nu"))
DENSE_N, DENSE_SEEDS, DENSE_LENGTHS = 16, 5, (15, 40)
CONTRAST = {  # cell label: (network keywords, the swept key, its values full / quick)
    "linear Elman W = lambda Q": (dict(cell="elman", activation="linear", init="orthogonal"),
                                  "spectral_radius", [0.5, 0.9, 0.95, 0.99], [0.9]),
    "tanh Elman W = rho Q": (dict(cell="elman", activation="tanh", init="orthogonal",
                                  input_gain=0.3), "spectral_radius", [0.9, 1.0, 1.1, 1.3],
                             [1.1]),
    "GRU, PyTorch init": (dict(cell="gru", init="pytorch", spectral_radius=None), "gate_bias",
                          [0.0, 2.0, 4.0, 6.0], [2.0]),
}


def diagonal(lam: float, normalize: bool, seed: int, mode: str) -> dict:
    """One real-lambda LRU: its sensitivities per unit of input variance (``r`` and ``nu``)."""
    m = 1 / (1 - lam)
    burn, measured = (math.ceil(k * m) for k in LENGTHS[mode])
    net, _, d = drawn(seed=seed, output_size=1, batch_size=SEQUENCES, seq_len=measured,
                      burn_in=burn, r_min=lam, r_max=lam, normalize=normalize, **DIAGONAL)
    p = net.params
    input_var = float(((p.B_re ** 2).sum(1) + (p.B_im ** 2).sum(1)).mean())
    out = {r["parameter"]: r["mean_sq_derivative"] / input_var
           for r in sensitivity(p, net.x, net.h0, d.burn_in)}
    return out


def lru_rate(lam: float) -> float:
    """The windowed decay rate of ||dL_t/dh_k|| of a real-lambda LRU (nats per step)."""
    return windowed_rate(*network(seed=0, output_size=2, batch_size=2, seq_len=RATE_T,
                                  r_min=lam, r_max=lam, **DIAGONAL), max_lag=RATE_LAGS)[0]


def dense(kw: dict, seed: int) -> dict:
    """A dense cell at N = DENSE_N: its decay rate, matched memory and the sensitivity of its
    whole recurrent matrix per unit of state power."""
    size = dict(hidden_size=DENSE_N, input_size=DENSE_N, output_size=2)
    rate = windowed_rate(*network(seed=seed, batch_size=2, seq_len=300, burn_in=300, **size,
                                  **kw), max_lag=50)[0]
    m = 1 / (1 - math.exp(rate)) if rate < 0 else math.nan
    ratio = math.nan
    if rate < 0:  # a memory only where the gradient vanishes
        burn, measured = (math.ceil(k * m) for k in DENSE_LENGTHS)
        net, _, d = drawn(seed=seed, batch_size=4, seq_len=measured, burn_in=burn,
                          **dict(size, output_size=1), **kw)
        rows = sensitivity(net.params, net.x, net.h0, d.burn_in)
        ratio = sum(r["mean_sq_derivative"] for r in rows) / rows[0]["mean_sq_state"]
    return dict(rate=rate, memory=m, ratio=ratio)


def measure(mode: str) -> pd.DataFrame:
    """One record per diagonal network (lambda, normalize, seed), per lambda's decay rate, and
    per dense network (cell, swept value, seed)."""
    quick = is_quick(mode)
    records = []
    points = [(lam, nz, s) for lam in LAMBDAS[mode] for nz in (False, True)
              for s in range(NETWORKS[mode])]
    for lam, normalize, seed in tqdm(points, desc=FIGURE, mininterval=2.0):
        v = diagonal(lam, normalize, seed, mode)
        records += [dict(part="diagonal", cell="LRU, real lambda", lam=lam, normalize=normalize,
                         seed=seed, parameter=k, value=v[k]) for k in ("r", "nu")]
    for lam in LAMBDAS[mode]:
        records.append(dict(part="rate", cell="LRU, real lambda", lam=lam, seed=0,
                            value=lru_rate(lam)))
    dense_points = [(label, v, s) for label, (_, _, full, small) in CONTRAST.items()
                    for v in (small if quick else full) for s in range(DENSE_SEEDS)]
    for label, v, seed in tqdm(dense_points, desc=f"{FIGURE} (dense)", mininterval=2.0):
        kw, key = CONTRAST[label][:2]
        out = dense(dict(kw, **{key: v}), seed)
        records.append(dict(part="dense", cell=label, lam=v, seed=seed, value=out["ratio"],
                            rate=out["rate"], memory=out["memory"]))
    return pd.DataFrame(records)


def diagonal_ratio(m):
    """E[(dh/dlambda)^2] / E[h^2] of the plain diagonal unit at memory m: (1 + l^2)/(1 - l^2)^2."""
    lam = 1 - 1 / np.asarray(m, dtype=float)
    return theory.memory_sensitivity(lam) / theory.memory_state_variance(lam)


def quick_may_fail(r: dict) -> bool:
    """Quick mode has 4 networks per point (3 degrees of freedom), so a 4 SE row is a smoke
    test there."""
    return r["kind"] == "theory"


def rows(measured: pd.DataFrame) -> list[dict]:
    out = []
    diag = measured[measured.part == "diagonal"]
    for label, param, normalize, closed in CASES:
        sel = diag[(diag.parameter == param) & (diag.normalize == normalize)]
        for lam, g in sel.groupby("lam"):
            expected = float(theory.memory_sensitivity(lam, closed, normalize))
            se = stderr(g.value)
            out.append(row(FIGURE, f"{label}, lambda = {lam:g} (m = {1 / (1 - lam):.4g}): "
                           "E[(dh/dp)^2] per unit input variance vs the closed form",
                           expected, float(g.value.mean()), N_SE * se, kind="theory",
                           seeds=len(g), spread=float(g.value.std(ddof=1)),
                           estimator=f"per network the batch mean of (dh/dp)^2 per unit input "
                           f"variance ({SEQUENCES} sequences of {LENGTHS['full'][1]} m steps "
                           f"after {LENGTHS['full'][0]} m burn-in in full mode), averaged over "
                           "independent networks (own B and inputs)",
                           se=f"SD over networks / sqrt(n) = {se:.3g}",
                           basis=f"{N_SE:g} standard errors (t, {len(g) - 1} dof: p = "
                           f"{2 * student_t.sf(N_SE, len(g) - 1):.1g})"))
    for _, r in measured[measured.part == "rate"].iterrows():
        out.append(row(FIGURE, f"decay rate of ||dL_t/dh_k||, real-lambda LRU, lambda = "
                       f"{r.lam:g}, vs ln lambda", math.log(r.lam), float(r.value), TOL_RATE,
                       kind="exact", seeds=1,
                       basis=f"every ratio is lambda^(t-k) exactly; float64 rounding over "
                       f"lags 1-{RATE_LAGS}"))
    dense_rows = measured[measured.part == "dense"]
    for (label, v), g in dense_rows.groupby(["cell", "lam"], sort=False):
        g = g.dropna(subset=["value"])
        if g.empty:
            continue
        m = float(g.memory.mean())
        key = CONTRAST[label][1]
        # the measured memory goes in the basis: a quantity's text must not move between runs
        out.append(row(FIGURE, f"{label}, N = {DENSE_N}, {key} = {v:g}: ||ds/dW||_F^2 / "
                       "||s||^2, beside the diagonal unit's (1 + l^2)/(1 - l^2)^2 at the matched "
                       "memory", float(diagonal_ratio(m)), float(g.value.mean()), math.nan,
                       kind="finding", seeds=len(g),
                       spread=float(g.value.std(ddof=1)) if len(g) > 1 else None,
                       basis=f"matched memory m = 1/(1 - exp(rate)) = {m:.4g}, rate "
                       f"{g.rate.mean():+.4f} over lags 1-50 (seed mean); standard error "
                       f"{stderr(g.value) if len(g) > 1 else math.nan:.3g}"))
    return out


def tables(measured: pd.DataFrame) -> dict:
    """curse_of_memory.csv (every network), curse_of_memory_theory.csv (per case of CASES the
    closed form at 400 lambda in [0.45, 0.9995], with the memory 1/(1 - lambda)),
    curse_of_memory_ratio.csv (the diagonal unit's (1 + l^2)/(1 - l^2)^2 at 200 memories from
    1.5 to 10^3.1) and curse_of_memory_settings.csv (N, N_SE, DENSE_N, DENSE_SEEDS)."""
    lam = np.linspace(0.45, 0.9995, 400)
    closed = pd.concat([pd.DataFrame({"case": label, "parameter": param, "normalize": normalize,
                                      "lam": lam, "memory": 1 / (1 - lam),
                                      "sensitivity": theory.memory_sensitivity(lam, form,
                                                                               normalize)})
                        for label, param, normalize, form in CASES], ignore_index=True)
    m = np.logspace(np.log10(1.5), 3.1, 200)
    ratio = pd.DataFrame({"memory": m, "diagonal_ratio": diagonal_ratio(m)})
    settings = pd.DataFrame([{"N": N, "n_se": N_SE, "dense_N": DENSE_N,
                              "dense_seeds": DENSE_SEEDS}])
    return dict(zip(plot.TABLES, (measured, closed, ratio, settings)))


def main(argv=None) -> int:
    return standalone(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
