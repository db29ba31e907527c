"""curse-of-memory: the state's sensitivity to its recurrent parameter against lambda (the memory
1/(1 - lambda)) for inputs of autocorrelation rho = 0, 0.9, 0.99, raw, normalised (gamma its own
parameter, or tied to lambda) and in nu: Zucchet & Orvieto's Fig. 1A and 2, measured on real
diagonal LRUs by the engine; beside it the decay rate of ||dL_t/dh_k|| of the same networks
(nothing explodes) and dense cells at matched memory.

Source: Zucchet & Orvieto 2024 (arXiv:2405.21064, Fig. 1A: raw d/dlambda for rho in {0, 0.9,
0.99, 0.999, 1}; Fig. 2: normalised h_t and d/dnu), their code's figures/1D-case.ipynb; the LRU
of Orvieto et al. 2023 (arXiv:2303.06349); docs/theory.md ("the curse of memory").

EXPECTED. The measured networks are LRUs (``model.cell=lru``) with r_min = r_max = lambda and
max_phase = 0: every lambda_j is the real number lambda, so each unit is a pair of real units
(Re h_j, Im h_j) h_t = lambda h_{t-1} + gamma (B x_t). The inputs are ``data.autocorr`` = rho:
each coordinate a stationary AR(1) sequence of unit variance (``rnnlab.engine.inputs.ar1``), so
Re(B_j x_t) is one too, of variance ||Re B_j||^2. Three variants: raw (``model.normalize=false``,
gamma = 1), ``param`` (gamma = sqrt(1 - lambda^2) its own parameter, ``model.gamma=param``, the
default) and ``tied`` (``model.gamma=tied``: d/dr differentiates gamma = sqrt(1 - r^2)). The
sensitivity is the engine's forward-mode ``measure.sensitivity`` (``rnnlab.engine.sensitivity``,
the LRU's O(T B N) tangent recurrence): the mean over units, sequences and measured steps of
|dh_j/dp_j|^2, divided by the network's mean ||B_j||^2 (per unit of input variance); the state's
mean square the same way. Closed forms (``rnnlab.theory.memory_sensitivity``,
``memory_state_variance``; derived in docs/theory.md, the raw ones equal to the notebook's), with
kappa = (1 + rho)/(1 - rho) and m = 1/(1 - lambda) for their limits:
- raw, d/dlambda: S = [(1 + l^2)(1 - l^2 rho^2) + 2 l rho (1 - l^2)] / [(1 - l^2)^3 (1 - l rho)^2]
  ~ kappa m^3/4 (rho = 0: 263.9, 2.513e5 at lambda = 0.9, 0.99);
- param, d/dlambda: (1 - l^2) S ~ kappa m^2/2; in nu (x l^2 ln^2 l) -> kappa/2;
- tied, d/dlambda: (1 + l rho)/[(1 - l^2)^2 (1 - l rho)] ~ kappa m^2/4; in nu -> kappa/4;
- normalised E[h^2] (param and tied alike): (1 + l rho)/(1 - l rho) -> kappa.
The d/dnu value of a run is (lambda ln lambda)^2 times its d/dlambda value (the engine's chain
rule), so a nu row passes or fails with the d/dlambda row of the same runs; nu rows are kept at
rho = 0 for the two normalisers (their limits 1/2 and 1/4 differ), the curves at every rho.
Sizes: lambda = 0.5, 0.7, 0.9, 0.95, 0.99; rho = 0, 0.9, 0.99 (0.999 drawn as theory only: its
input correlation time of 1000 steps would cost ten times the rest); N = 8 units, D = 8 inputs,
16 sequences per network. Each network runs a burn-in of 12 m steps from h0 = 0 (the input is
stationary from its first step; the state's transient falls as lambda^t, the tangent's as
t lambda^t: below 2e-4 relative after 12 m steps) and is then averaged over 20 c steps, c =
max(m, 1/(1 - rho)) the longest correlation time. Standard error: M = 8 independent networks
(seeds: their own B and inputs) per point, batch means: the point's estimate is the mean of the
8 per-network values and its standard error their sample standard deviation / sqrt(8), so time
correlation inside a run needs no model. The same seeds serve every lambda, rho and variant
(their noise starts alike), so neighbouring rows are correlated; each row's standard error is
its own. Tolerance: ``common.t_multiple(8)`` standard errors (Student's t with 7 degrees of
freedom at the two-sided coverage of 3 sigma, 99.73%), fixed before any run.
The decay rate of ||dL_t/dh_k|| of the same networks (least-squares slope over lags 1..100,
T = 200, 2 sequences, white input): with every |lambda_j| = lambda, J = lambda I and every ratio
is exactly lambda^(t-k), so the rate is ln lambda < 0 (nothing explodes, however long the
memory): one exact row per lambda, tolerance 1e-12 (float64 rounding of the log-space sweep,
~1e-16 per step over at most 100 lags, with margin).
Contrast, drawn and reported as findings (never judged): the sensitivity of every recurrent
matrix entry, ||ds_t/dW||_F^2 / N (``rnnlab.engine.sensitivity.dense_sensitivity``; for the GRU
summed over its three gate blocks), divided by the mean ||s_t||^2 / N so that the input scale
cancels, for N = 16 (the dense forward mode is O(T B N^4)), white input: a linear Elman
W = lambda Q (Q orthogonal) at lambda = 0.5, 0.9, 0.95, 0.99; a tanh Elman W = rho Q with input
gain 0.3 at rho = 0.9, 1.0, 1.1, 1.3; a GRU with PyTorch's init at update-gate bias 0, 2, 4
(bias 6, m = 330, cost three quarters of this contrast and is left out). Memory is matched
through the decay rate: m = 1/(1 - exp(rate)) with the rate measured on the network itself
(lags 1..50, T = 300 after 300 burn-in steps), exactly 1/(1 - lambda) for the linear cells.
Burn-in 15 m, 40 m measured steps, 4 sequences, 5 seeds. Beside each, the diagonal unit's own
ratio at the same memory, (1 + lambda^2)/(1 - lambda^2)^2 with lambda = 1 - 1/m.
Quick mode: lambda = 0.5, 0.9, 0.99, rho = 0 and 0.9, 4 networks of 10 m + 8 c steps, one
contrast point per cell. Run alone: ``python experiments/figures/curse_of_memory.py [--quick]``
(or ``python -m experiments.figures.curse_of_memory [--quick]``).
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
    drawn,
    is_quick,
    network,
    row,
    standalone,
    stderr,
    t_multiple,
    windowed_rate,
)
from experiments.figures.plots import curse_of_memory as plot
from rnnlab import theory
from rnnlab.engine.sensitivity import sensitivity

FIGURE = plot.FIGURE
LAMBDAS = {"full": [0.5, 0.7, 0.9, 0.95, 0.99], "quick": [0.5, 0.9, 0.99]}
RHOS = {"full": [0.0, 0.9, 0.99], "quick": [0.0, 0.9]}
RHO_LINES = (0.0, 0.9, 0.99, 0.999)  # the closed forms drawn (their Fig. 1A's, rho = 1 aside)
NETWORKS = {"full": 8, "quick": 4}  # M independent networks per point (batch means)
LENGTHS = {"full": (12, 20), "quick": (10, 8)}  # burn-in in memories m, measured in c
N, D, SEQUENCES = 8, 8, 16
# the real diagonal network: an LRU whose every lambda_j is the real r_min = r_max (no phase),
# linear, unbiased; lambda, rho, sizes and the normaliser are added per network
DIAGONAL = dict(cell="lru", activation="linear", init="ring", spectral_radius=None,
                bias_std=0.0, hidden_size=N, input_size=D, max_phase=0.0)
# variant (rnnlab.theory's gamma): its model keys and label
VARIANTS = {"none": (dict(normalize=False), "raw (gamma = 1)"),
            "param": (dict(normalize=True, gamma="param"), "normalised, gamma a parameter"),
            "tied": (dict(normalize=True, gamma="tied"), "normalised, gamma tied to lambda")}
TOL_RATE = 1e-12
RATE_T, RATE_LAGS = 200, 100
DENSE_N, DENSE_SEEDS, DENSE_LENGTHS = 16, 5, (15, 40)
CONTRAST = {  # cell label: (network keywords, the swept key, its values full / quick)
    "linear Elman W = lambda Q": (dict(cell="elman", activation="linear", init="orthogonal"),
                                  "spectral_radius", [0.5, 0.9, 0.95, 0.99], [0.9]),
    "tanh Elman W = rho Q": (dict(cell="elman", activation="tanh", init="orthogonal",
                                  input_gain=0.3), "spectral_radius", [0.9, 1.0, 1.1, 1.3],
                             [1.1]),
    "GRU, PyTorch init": (dict(cell="gru", init="pytorch", spectral_radius=None), "gate_bias",
                          [0.0, 2.0, 4.0], [2.0]),
}


def correlation_time(lam: float, rho: float) -> float:
    """c = max(1/(1 - lambda), 1/(1 - rho)): the longest correlation time of the run, steps."""
    return max(1 / (1 - lam), 1 / (1 - rho))


def diagonal(lam: float, rho: float, gamma: str, seed: int, mode: str) -> dict:
    """One real-lambda LRU: its mean squares per unit of input variance (``r``, ``nu``,
    ``gamma`` where gamma is a parameter, and ``state``: E[h^2])."""
    burn = math.ceil(LENGTHS[mode][0] / (1 - lam))
    measured = math.ceil(LENGTHS[mode][1] * correlation_time(lam, rho))
    net, _, d = drawn(seed=seed, output_size=1, batch_size=SEQUENCES, seq_len=measured,
                      burn_in=burn, r_min=lam, r_max=lam, autocorr=rho,
                      **VARIANTS[gamma][0], **DIAGONAL)
    p = net.params
    input_var = float(((p.B_re ** 2).sum(1) + (p.B_im ** 2).sum(1)).mean())
    rows = sensitivity(p, net.x, net.h0, d.burn_in)
    out = {r["parameter"]: r["mean_sq_derivative"] / input_var for r in rows}
    out["state"] = rows[0]["mean_sq_state"] / input_var
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
    """One record per diagonal network (lambda, rho, gamma, seed) and measured quantity, per
    lambda's decay rate, and per dense network (cell, swept value, seed)."""
    quick = is_quick(mode)
    records = []
    points = [(lam, rho, g, s) for lam in LAMBDAS[mode] for rho in RHOS[mode] for g in VARIANTS
              for s in range(NETWORKS[mode])]
    for lam, rho, gamma, seed in tqdm(points, desc=FIGURE, mininterval=2.0):
        v = diagonal(lam, rho, gamma, seed, mode)
        records += [dict(part="diagonal", cell="LRU, real lambda", lam=lam, rho=rho,
                         gamma=gamma, seed=seed, parameter=k, value=x) for k, x in v.items()]
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


def closed_form(gamma: str, parameter: str, lam, rho: float):
    """The closed form of a measured quantity: ``r``/``nu`` (E[(dh/dp)^2]), ``state`` (E[h^2]),
    ``gamma`` (E[(dh/dgamma)^2] = E[h^2] / gamma^2, the raw state's variance)."""
    if parameter == "state":
        return theory.memory_state_variance(lam, gamma, rho)
    if parameter == "gamma":
        return theory.memory_state_variance(lam, "none", rho)
    return theory.memory_sensitivity(lam, "lambda" if parameter == "r" else "nu", gamma, rho)


# the judged (gamma, parameter, rho-filter): d/dlambda of every variant at every rho, d/dnu of
# the normalisers at rho = 0, the normalised state's variance at every rho (their Fig. 2, left)
JUDGED = [(g, "r", None) for g in VARIANTS] + [(g, "nu", 0.0) for g in ("param", "tied")] \
    + [("param", "state", None)]
WHAT = {"r": "E[(dh/dlambda)^2]", "nu": "E[(dh/dnu)^2]", "state": "E[h^2]"}


def rows(measured: pd.DataFrame) -> list[dict]:
    out = []
    diag = measured[measured.part == "diagonal"]
    for gamma, parameter, only_rho in JUDGED:
        sel = diag[(diag.gamma == gamma) & (diag.parameter == parameter)]
        for (rho, lam), g in sel.groupby(["rho", "lam"]):
            if only_rho is not None and rho != only_rho:
                continue
            expected = float(closed_form(gamma, parameter, lam, rho))
            se, n_se = stderr(g.value), t_multiple(len(g))
            label = VARIANTS[gamma][1] if parameter != "state" else "normalised"
            out.append(row(FIGURE, f"{label}, rho = {rho:g}, lambda = {lam:g} (m = "
                           f"{1 / (1 - lam):.4g}): {WHAT[parameter]} per unit input variance "
                           "vs the closed form", expected, float(g.value.mean()), n_se * se,
                           kind="theory", seeds=len(g), spread=float(g.value.std(ddof=1)),
                           estimator=f"per network the batch mean of {WHAT[parameter]} per unit "
                           f"input variance ({SEQUENCES} sequences of {LENGTHS['full'][1]} c "
                           f"steps after {LENGTHS['full'][0]} m burn-in in full mode, c = "
                           f"{correlation_time(lam, rho):.4g}), averaged over independent "
                           "networks (own B and inputs)",
                           se=f"SD over networks / sqrt(n) = {se:.3g}",
                           basis=f"{n_se:.3g} standard errors (t, {len(g) - 1} dof, two-sided "
                           "coverage of 3 sigma)"))
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


# the closed forms drawn: (gamma, parameter); the raw unit in nu is not
DRAWN = [("none", "lambda"), ("param", "lambda"), ("param", "nu"), ("tied", "lambda"),
         ("tied", "nu")]
FLOAT_FORMATS = {"curse_of_memory_theory.csv": "%.8g"}


def tables(measured: pd.DataFrame) -> dict:
    """curse_of_memory.csv (every network), curse_of_memory_theory.csv (per drawn variant and
    parameter, DRAWN, and rho of RHO_LINES the closed forms E[(dh/dp)^2] and E[h^2] at 150
    lambda with memories 1.5 to 2 10^4, 8 significant digits), curse_of_memory_ratio.csv (the
    diagonal unit's (1 + l^2)/(1 - l^2)^2 at 200 memories from 1.5 to 10^3.1) and
    curse_of_memory_settings.csv (N, the networks per point, the error bars' multiple,
    DENSE_N, DENSE_SEEDS)."""
    lam = 1 - 1 / np.logspace(np.log10(1.5), np.log10(2e4), 150)
    closed = pd.concat([pd.DataFrame({"gamma": g, "parameter": param, "rho": rho, "lam": lam,
                                      "memory": 1 / (1 - lam),
                                      "sensitivity": theory.memory_sensitivity(lam, param, g,
                                                                               rho),
                                      "state": theory.memory_state_variance(lam, g, rho)})
                        for g, param in DRAWN for rho in RHO_LINES], ignore_index=True)
    m = np.logspace(np.log10(1.5), 3.1, 200)
    ratio = pd.DataFrame({"memory": m, "diagonal_ratio": diagonal_ratio(m)})
    diag = measured[measured.part == "diagonal"]
    networks = int(diag.seed.nunique()) if len(diag) else 0
    settings = pd.DataFrame([{"N": N, "networks": networks,
                              "n_se": t_multiple(networks) if networks > 1 else math.nan,
                              "dense_N": DENSE_N, "dense_seeds": DENSE_SEEDS}])
    return dict(zip(plot.TABLES, (measured, closed, ratio, settings)))


def main(argv=None) -> int:
    return standalone(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
