"""truncation: how much of the state's sensitivity to its recurrent parameter comes from far back,
and so what truncated backpropagation over K steps (``train.truncate=K``) throws away, exactly
where the memory is long.

Source: Zucchet & Orvieto 2024 (arXiv:2405.21064), the curse of memory; truncated BPTT: Williams
& Peng 1990 (Neural Computation 2(4)); docs/theory.md ("Truncated backpropagation").

EXPECTED. One real unit h_t = lambda h_{t-1} + x_t, x_t white with unit variance, h_{-1} = 0,
read at the last step t = T - 1 of T = 600 steps: dh_t/dlambda = sum_{j>=1} j lambda^(j-1)
x_{t-j} (input lag j) = sum_{l>=0} lambda^l h_{t-l-1} (Jacobian lag l = t - k). Two shares
of E[(dh_t/dlambda)^2], closed forms at finite T (``rnnlab.theory``; T = 600 is 60 memories at
lambda = 0.9 and 6 at 0.99, where q^T = lambda^(2T) = 6e-6, so the finite-T and stationary values
differ by < 1e-4 relative; the rows use the finite-T form):
- from input lags j >= K (``truncation_input_share``; cross terms vanish for white input):
  stationary q^(K-1) [q (1+q) + 2 K q (1-q) + K^2 (1-q)^2] / (1+q), q = lambda^2: at lambda = 0.9,
  K = 10, 50, 100, 300: 0.676, 1.94e-3, 1.89e-7, 8.0e-25; at 0.99: 0.999, 0.921, 0.677, 0.0611;
- left out by truncated BPTT over K steps (the Jacobian lags l >= K, R_K = lambda^K
  dh_{t-K}/dlambda; ``truncation_residual_share``): E[R_K^2] / E[(dh/dlambda)^2], stationary
  lambda^(2K): at 0.9: 0.122, 2.66e-5, 7.06e-10, 3.5e-28; at 0.99: 0.818, 0.366, 0.134, 2.40e-3.
The network: the engine's Elman cell with one unit, linear, W = lambda, U = 1, b = 0, readout
V = 1, c = 0, loss ``mse_linear`` on the last step only (target 0): its states are exactly
h_t = lambda h_{t-1} + x_t. Measured:
- the residual share by the engine's weight gradient by lag (``rnnlab.engine.weightgrad``:
  ``WeightGradStats`` in the adjoint sweep, every lag, lag bins of 1, loss steps = the last):
  with one unit and one loss step, dL/dW split by lag l is g lambda^l h_{t-l-1} (g = dL/dh_t),
  so the tail over l >= K is g R_K and the whole is g dh_t/dlambda; per sequence
  |R_K| = share_ge[K] |S| and |S| = ||dL/dW|| / |g| (g from the trajectory); one sequence per
  sweep (the accumulators sum over a batch);
- the input share by the engine's forward-mode sensitivity (``rnnlab.engine.sensitivity``,
  measured at the last step only: burn-in T - 1): E[(dh/dlambda)^2] of the sequences and of the
  same sequences with the inputs of lags j < K set to 0 (dh/dlambda is linear in x, so that is the
  part from lags >= K), in groups of 8 sequences (the sensitivity is a batch mean).
Estimator: the ratio of sums sum(num)/sum(den) over the units (sequences, or groups), standard
error by the delta method over units, sqrt(sum (num_i - r den_i)^2 / (n (n - 1))) / mean(den)
(the ratio of two means; n = 160 sequences or 20 groups; the rows' spread is SE sqrt(n), the
standard deviation of the linearised (num_i - r den_i) / mean(den)). Tolerance 4 standard
errors, fixed before any run (normal: p = 6e-5 per row; t with 19 degrees of freedom:
p = 8e-4). The same sequences serve both lambdas, every K and both shares, so rows are
correlated.
Full mode: 160 sequences per lambda, about 2 min on one shared core; quick mode 16 sequences (the
rows then have 2 groups for the input share: a smoke test). Run alone:
``python experiments/figures/truncation.py [--quick]``.
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

from experiments.figures.common import is_quick, row, standalone
from experiments.figures.plots import truncation as plot
from rnnlab import theory
from rnnlab.engine import adjoint
from rnnlab.engine.model import ElmanParams
from rnnlab.engine.sensitivity import sensitivity
from rnnlab.engine.weightgrad import WeightGradStats

FIGURE = plot.FIGURE
LAMBDAS = (0.9, 0.99)
KS = (10, 50, 100, 300)
T = 600
SEQUENCES = {"full": 160, "quick": 16}
GROUP = 8  # sequences per sensitivity call (its value is their mean)
N_SE = 4.0
SHARES = {  # quantity: (label, closed form)
    "input": ("share of E[(dh/dlambda)^2] from input lags j >= K",
              theory.truncation_input_share),
    "residual": ("share of E[(dh/dlambda)^2] left out by truncated BPTT over K steps "
                 "(Jacobian lags >= K)", theory.truncation_residual_share),
}


def unit(lam: float) -> ElmanParams:
    """The one-unit linear Elman cell h_t = lambda h_{t-1} + x_t with readout o_t = h_t."""
    one = torch.ones(1, 1, dtype=torch.float64)
    zero = torch.zeros(1, dtype=torch.float64)
    return ElmanParams(U=one, W=lam * one, b=zero, V=one, c=zero, activation="linear")


def inputs(n: int) -> torch.Tensor:
    """x (n, T, 1): sequence i drawn from its own generator seeded i (white, unit variance)."""
    return torch.stack([torch.randn(T, 1, dtype=torch.float64,
                                    generator=torch.Generator().manual_seed(i))
                        for i in range(n)])


def residual(p: ElmanParams, x: torch.Tensor) -> tuple[float, np.ndarray]:
    """(S^2, R_K^2 for K in KS) of one sequence x (1, T, 1) at its last step, from the weight
    gradient by lag (the module docstring)."""
    h0 = torch.zeros(1, 1, dtype=torch.float64)
    target = torch.zeros(1, T, 1, dtype=torch.float64)
    traj = adjoint.forward(p, x, h0, target, loss="mse_linear")
    last = np.zeros(T, dtype=bool)
    last[-1] = True
    stats = WeightGradStats(traj, None, 1, last)
    adjoint.sweep_pairs(traj, None, stats)
    out = stats.result()
    S = 10.0 ** out["log10_total_norm"][0] / math.exp(traj.g_log_norm[-1, 0].item())
    return S ** 2, np.array([(out["share_ge"][K] * S) ** 2 for K in KS])


def input_part(p: ElmanParams, x: torch.Tensor, K: int | None) -> float:
    """E[(dh_t/dlambda)^2] over the batch x (B, T, 1) at the last step, with the inputs of lags
    j < K zeroed (K None: none)."""
    if K is not None:
        x = x.clone()
        x[:, T - K:] = 0.0  # x_{t-j} for j = 0..K-1
    h0 = torch.zeros(x.shape[0], 1, dtype=torch.float64)
    return sensitivity(p, x, h0, burn_in=T - 1)[0]["mean_sq_derivative"]


def measure(mode: str) -> pd.DataFrame:
    """One record per (lambda, share, K, unit): ``num`` and ``den`` of the ratio (R_K^2 and S^2
    per sequence; the zeroed and whole sensitivity per group of GROUP sequences)."""
    n = SEQUENCES["quick" if is_quick(mode) else "full"]
    x = inputs(n)
    records = []
    for lam in LAMBDAS:
        p = unit(lam)
        for i in tqdm(range(n), desc=f"{FIGURE} lambda={lam:g}", mininterval=2.0):
            S2, R2 = residual(p, x[i:i + 1])
            records += [dict(lam=lam, share="residual", K=K, unit=i, num=r, den=S2)
                        for K, r in zip(KS, R2)]
        for g in range(n // GROUP):
            xg = x[g * GROUP:(g + 1) * GROUP]
            whole = input_part(p, xg, None)
            records += [dict(lam=lam, share="input", K=K, unit=g, num=input_part(p, xg, K),
                             den=whole) for K in KS]
    return pd.DataFrame(records)


def ratio(num, den) -> tuple[float, float]:
    """sum(num)/sum(den) and its delta-method standard error over the units."""
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    r = num.sum() / den.sum()
    n = num.size
    se = math.sqrt(((num - r * den) ** 2).sum() / (n * (n - 1))) / den.mean()
    return float(r), float(se)


def summary(measured: pd.DataFrame) -> pd.DataFrame:
    """Per (share, lambda, K): the measured ratio, its standard error, the units, the finite-T
    and stationary closed forms."""
    out = []
    for (share, lam, K), g in measured.groupby(["share", "lam", "K"], sort=False):
        r, se = ratio(g.num, g.den)
        closed = SHARES[share][1]
        out.append(dict(share=share, lam=lam, K=K, measured=r, se=se, n=len(g),
                        expected=float(closed(lam, K, T)),
                        stationary=float(closed(lam, K))))
    return pd.DataFrame(out)


def quick_may_fail(r: dict) -> bool:
    """Quick mode's input share comes from 2 groups: a smoke test there."""
    return r["kind"] == "theory"


def rows(measured: pd.DataFrame) -> list[dict]:
    out = []
    for _, s in summary(measured).iterrows():
        label = SHARES[s.share][0]
        per = "sequence" if s.share == "residual" else f"group of {GROUP} sequences"
        how = ("R_K^2 and S^2 from the weight gradient by lag (tail over lags >= K, and the "
               "whole)" if s.share == "residual" else
               "E[S^2] of the sequences with the inputs of lags < K zeroed, and of the whole, "
               "from the forward-mode sensitivity")
        out.append(row(FIGURE, f"lambda = {s.lam:g}, K = {s.K}: {label}, one linear unit, "
                       f"white input, last step of T = {T}, vs the closed form",
                       s.expected, s.measured, N_SE * s.se, kind="theory", seeds=int(s.n),
                       spread=s.se * math.sqrt(s.n),
                       estimator=f"{how}; sum over units / sum over units, one unit = one {per}",
                       se=f"delta method over units = {s.se:.3g}",
                       basis=f"{N_SE:g} standard errors, fixed before the run (stationary "
                       f"closed form {s.stationary:.4g})"))
    return out


def tables(measured: pd.DataFrame) -> dict:
    """truncation.csv (every unit's num and den), truncation_summary.csv (per share, lambda, K:
    measured, SE, closed forms), truncation_theory.csv (both shares at finite T and stationary
    for K = 1..400) and truncation_settings.csv (T, N_SE, the sequences, the group)."""
    K = np.arange(1, 401)
    theory_rows = pd.concat([pd.DataFrame({"share": share, "lam": lam, "K": K,
                                           "finite_T": closed(lam, K, T),
                                           "stationary": closed(lam, K)})
                             for share, (_, closed) in SHARES.items() for lam in LAMBDAS],
                            ignore_index=True)
    settings = pd.DataFrame([{"T": T, "n_se": N_SE, "sequences": int(measured.unit[
        measured.share == "residual"].nunique()), "group": GROUP}])
    return dict(zip(plot.TABLES, (measured, summary(measured), theory_rows, settings)))


def main(argv=None) -> int:
    return standalone(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
