"""lyapunov: the largest Lyapunov exponent lambda_1 of a noisy random tanh network against its
gain at two noise levels, with 1/2 log chi; forward lambda_1 against the engine's backward decay
rate on the same trajectory; the full spectrum of an i.i.d. Gaussian product against Newman's law.

Sources: Molgedey, Schuchhardt, Schuster 1992 (PRL 69:3717); Engelken, Wolf, Abbott 2023
(arXiv:2006.02427); Benettin et al. 1980 (QR method); Newman 1986 (CMP 103:121);
docs/theory.md ("Lyapunov QR", "Newman") and docs/tolerances.md.

EXPECTED:
- lambda_1 = 1/2 log chi with the noise variance in q* (Molgedey 1992), for the network mean
  field describes: weights redrawn at every step (experiments/figures/annealed.py). Full-rank
  input noise s_in^2 = 0.1, 100 burn-in steps, then QR with one vector over T = 200 steps of 2
  sequences (the first 50 are the frame's warm-up, rnnlab.engine.lyapunov.frame_transient), at
  N = 250 and 500, extrapolated per seed to N = infinity as 2 l(500) - l(250) (a 1/N term); the
  mean of SEEDS = 10 seeds (CHECK_SEEDS = 20 at sigma_w = 0.8 and 2) within 3 standard errors
  (SD / sqrt(n) of the per-seed values) of 1/2 log chi for every sigma_w in [0.5, 3]. At 0.8 and
  2 the row's basis also gives the SD of seeds 0-9 beside that of all 20: the check of the
  10-seed spread (5 seeds, as before, underestimated it at 0.8 by a factor 1.7, 0.0025 against
  0.0043). Beside each, two findings: the finite-N term
  l(250) - l(500), and the quenched - annealed gap (one fixed W minus redrawn at N = 500, same
  seeds). One fixed W's exponent in the ordered phase sits above mean field (at N = 1000, means
  of 10 networks: +0.012 at sigma_w = 0.5, +0.0065 at 0.8): the gap is that finding, not a
  failure of the theory. s_in^2 = 0.01 is drawn (2 seeds; 10 at the sign row's gain 1.3);
- the 1/N law the extrapolation rests on, measured for lambda_1 (findings): at sigma_w = 0.8,
  s_in^2 = 0.1, N (l(N) - 1/2 log chi) at N = 250, 500 (20 seeds) and 1000 (LAW_SEEDS = 10
  seeds, N = 1000 redrawn costs 17 s a seed) is constant in N within its standard errors, and
  2 l(1000) - l(500) agrees with 2 l(500) - l(250) (what was measured: docs/tolerances.md);
- noise moves the onset of chaos to larger gain (critical 1.1934 at s_in^2 = 0.01, 1.4093 at
  0.1): at sigma_w = 1.3 the extrapolated redrawn lambda_1 > 0 with s_in^2 = 0.01 (mean field
  +0.022). The other side, lambda_1 < 0 at s_in^2 = 0.1, is already the row at sigma_w = 1.3;
- consistency of two measurements, not a theory value: forward lambda_1 (QR) and the engine's
  backward rate (slope of ln r over lags 1..50, fit_decay) on one fixed network (N = 1000,
  500 burn-in steps, seed 0) and trajectory agree within 0.002 over 1000 steps (quick mode,
  300 steps: 0.005). Asserted at sigma_w = 1 and 2 (quick: 2). In the deep ordered phase
  (sigma_w = 0.5) lags <= 50 are too short for the backward cotangent to align with the leading
  direction and the two differ by ~0.01;
- Newman's law for products of i.i.d. Gaussian 50 x 50 matrices (entry variance 1/N):
  lambda_i = 1/2 (log(2/N) + digamma((N-i+1)/2)). Each log R_t[i, i] is exactly distributed as
  log(chi_{N-i+1} / sqrt(N)), so each exponent's standard error is known exactly,
  se_i = 1/2 sqrt(trigamma((N-i+1)/2) / n) for n products x steps; the row is the largest
  |z_i| = |lambda_i - Newman_i| / se_i over all 50, against 4.04 (a false alarm for any of the
  50 at once has probability 0.27%, "3 sigma"). Full mode 64 products x 5000 steps, quick
  64 x 1000. The table lists every exponent and its standard error.
Full mode: about 20 minutes of CPU on one core (redrawn N = 250 and 500 cost about 7 s a seed
and gain, N = 1000 17 s; 45 minutes of wall time on a shared 2-core machine); quick mode N = 100
and 200, two gains (a smoke test: its lambda_1 theory rows may fail). Run alone:
``python experiments/figures/lyapunov.py [--quick]`` or
``python -m experiments.figures.lyapunov [--quick]``.
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
from scipy.special import polygamma
from scipy.stats import norm
from tqdm import tqdm

from experiments.figures import annealed
from experiments.figures.common import (
    full_rank_noise,
    is_quick,
    network,
    row,
    standalone,
    stderr,
    windowed_rate,
)
from experiments.figures.plots import lyapunov as plot
from rnnlab import theory
from rnnlab.engine.lyapunov import (
    frame_transient,
    lyapunov_from_jacobians,
    lyapunov_from_maps,
    lyapunov_from_matrices,
)
from rnnlab.engine.model import phi_prime_from_h

FIGURE = plot.FIGURE
GAINS = {"full": [0.5, 0.8, 1.0, 1.2, 1.3, 1.4, 1.6, 2.0, 2.5, 3.0], "quick": [1.3, 2.0]}
NOISE = (0.01, 0.1)
SEEDS = 10  # seeds of the judged lambda_1 rows at s_in^2 = 0.1, and of the sign row
CHECK_SEEDS, CHECK_GAINS = 20, (0.8, 2.0)  # where the 10-seed standard deviation is checked
DRAWN_SEEDS = 2  # s_in^2 = 0.01 away from the sign row's gain: drawn, never judged
SIGN_GAIN = 1.3  # the sign row's gain (s_in^2 = 0.01)
SIZES = {"full": (250, 500), "quick": (100, 200)}  # N: the extrapolation's two sizes
LAW_GAIN, LAW_N = 0.8, {"full": 1000, "quick": 400}  # the finite-N law, measured at a third N
LAW_SEEDS = {"full": 10, "quick": 5}  # seeds at LAW_N (N = 1000 redrawn: 17 s each)
T, BURN_IN = 200, 100
ESTIMATOR = (f"QR lambda_1 (one vector), {T} steps x 2 sequences after {BURN_IN} burn-in, "
             "the first 50 the frame's warm-up")
BACKWARD = {"full": (1.0, 2.0), "quick": (2.0,)}  # gains of the consistency rows
N_BACKWARD, BURN_IN_BACKWARD = 1000, 500
NEWMAN_N, NEWMAN_FAMILY = 50, 0.0027  # family-wise false-alarm rate of the z-score row


def lambda_1(sigma_w, s_in2, seed, N, weights) -> float:
    """lambda_1 (nats per step) of one network, fixed or redrawn: QR on its step Jacobians over
    T steps (2 sequences, the frame's warm-up discarded)."""
    _, traj = network(seed=seed, weights=weights, activation="tanh", gain=sigma_w,
                      spectral_radius=None, seq_len=T, batch_size=2, burn_in=BURN_IN,
                      **full_rank_noise(N, s_in2))
    return lyapunov_from_maps(traj.maps, T, k=1, transient=frame_transient(T),
                              generator=torch.Generator().manual_seed(seed),
                              batch=2).mean().item()


def forward_backward(sigma_w, steps):
    """(forward lambda_1, backward windowed rate) of one fixed network (seed 0, N_BACKWARD,
    s_in^2 = 0.1) on the same trajectory: QR on the Jacobians diag(phi'(a_t)) W, and the adjoint
    sweep's slope of ln r over lags 1..50."""
    p, traj = network(seed=0, activation="tanh", gain=sigma_w, spectral_radius=None,
                      seq_len=steps, batch_size=2, burn_in=BURN_IN_BACKWARD,
                      **full_rank_noise(N_BACKWARD, 0.1))
    lam = lyapunov_from_jacobians(p.W, phi_prime_from_h(traj.u, "tanh"), k=1,
                                  transient=frame_transient(steps),
                                  generator=torch.Generator().manual_seed(0)).mean().item()
    return lam, windowed_rate(p, traj, max_lag=50)[0]


def seeds(s_in2: float, sigma_w: float) -> int:
    """Seeds of one point: SEEDS where a row is judged (CHECK_SEEDS at CHECK_GAINS, s_in^2 = 0.1),
    DRAWN_SEEDS where it is only drawn."""
    if s_in2 == 0.1:
        return CHECK_SEEDS if sigma_w in CHECK_GAINS else SEEDS
    return SEEDS if sigma_w == SIGN_GAIN else DRAWN_SEEDS


def law(mode: str, table: pd.DataFrame) -> pd.DataFrame:
    """The redrawn lambda_1 at sigma_w = LAW_GAIN, s_in^2 = 0.1: (N, seed, rate) at the
    extrapolation's two sizes for every seed the table holds there (taken from it: same seed, N
    and function), and at LAW_N for seeds 0..LAW_SEEDS - 1 (measured here; in quick mode, where
    the table lacks LAW_GAIN, all three sizes are measured for those seeds)."""
    have = table[(table.s_in2 == 0.1) & (table.sigma_w == LAW_GAIN)
                 & (table.weights == "redrawn")][["N", "seed", "rate"]]
    jobs = [(N, seed) for N in SIZES[mode] if have.empty for seed in range(LAW_SEEDS[mode])]
    jobs += [(LAW_N[mode], seed) for seed in range(LAW_SEEDS[mode])]
    new = pd.DataFrame([dict(N=N, seed=seed, rate=lambda_1(LAW_GAIN, 0.1, seed, N, "redrawn"))
                        for N, seed in jobs])
    return pd.concat([have, new], ignore_index=True).sort_values(["N", "seed"],
                                                                 ignore_index=True)


def sizes(mode: str):
    """(T of the consistency rows, their tolerance, Newman steps) of a mode."""
    return (300, 0.005, 1000) if is_quick(mode) else (1000, 0.002, 5000)


def measure(mode: str) -> dict:
    """{"mode", "table": lambda_1 per noise, gain, seed, weights and N beside 1/2 log chi,
    "backward": the consistency pairs, "newman": the 50 exponents of the i.i.d. products beside
    Newman's law and their standard errors, "batch"}."""
    steps_fb, _, steps = sizes(mode)
    n = SIZES[mode]
    jobs = [(s_in2, g, seed) for s_in2 in NOISE for g in GAINS[mode]
            for seed in range(seeds(s_in2, g))]
    table = pd.DataFrame([dict(s_in2=s_in2, sigma_w=g, N=n[i], seed=seed, weights=w,
                               rate=lambda_1(g, s_in2, seed, n[i], w))
                          for s_in2, g, seed in tqdm(jobs, desc=FIGURE, disable=None)
                          for w, i in annealed.RUNS])
    table["mean_field_rate"] = [float(theory.log_chi_rate("tanh", g, s))
                                for g, s in zip(table.sigma_w, table.s_in2)]
    backward = pd.DataFrame([dict(sigma_w=g, T=steps_fb,
                                  **dict(zip(("lambda_1", "backward_rate"),
                                             forward_backward(g, steps_fb))))
                             for g in BACKWARD[mode]])
    finite_n = law(mode, table)

    nn, batch = NEWMAN_N, 64
    gen = torch.Generator().manual_seed(5)
    mats = (torch.randn(batch, nn, nn, generator=gen, dtype=torch.float64) / nn ** 0.5
            for _ in range(steps))
    spectrum = lyapunov_from_matrices(mats, k=nn, generator=gen).mean(0).numpy()
    newman = theory.newman_spectrum(nn, 1.0)
    i = np.arange(1, nn + 1)
    se = np.sqrt(polygamma(1, (nn - i + 1) / 2) / 4 / (batch * steps))
    return {"mode": mode, "table": table, "backward": backward, "batch": batch, "law": finite_n,
            "newman": pd.DataFrame({"i": i, "measured": spectrum, "newman": newman, "stderr": se,
                                    "z": (spectrum - newman) / se})}


def law_rows(finite_n: pd.DataFrame) -> list[dict]:
    """Findings: the finite-N law of the redrawn lambda_1 at sigma_w = LAW_GAIN, s_in^2 = 0.1.
    N (lambda_1(N) - 1/2 log chi) per seed at each N (constant in N under the 1/N law the
    extrapolation assumes), and the extrapolation from the two larger sizes against mean field."""
    mf = float(theory.log_chi_rate("tanh", LAW_GAIN, 0.1))
    by_n = finite_n.pivot(index="seed", columns="N", values="rate")
    head = f"lambda_1 at sigma_w = {LAW_GAIN:g}, s_in^2 = 0.1, weights redrawn"
    every = by_n.dropna().index  # the seeds measured at all three sizes
    out = []
    for N in by_n.columns:
        scaled = N * (by_n[N] - mf).dropna()
        out.append(row(FIGURE, f"{head}: N x (lambda_1(N) - 1/2 log chi) at N = {N} (the 1/N "
                       "law: constant in N)", 0.0, float(scaled.mean()), math.nan,
                       kind="finding", seeds=len(scaled), spread=float(scaled.std(ddof=1)),
                       basis=f"estimator: {ESTIMATOR}, per seed N (r(N) - 1/2 log chi), 1/2 log "
                       f"chi = {mf:+.5f}; n = {len(scaled)} seeds; redrawn r(N={N}) "
                       f"{by_n[N].mean():+.5f}; SE = SD/sqrt(n) of the per-seed values = "
                       f"{stderr(scaled):.3f}; on the {len(every)} seeds measured at every N "
                       f"{(N * (by_n.loc[every, N] - mf)).mean():+.3f} +- "
                       f"{stderr(N * (by_n.loc[every, N] - mf)):.3f}"))
    mid, big = by_n.columns[-2:]
    inf = (2 * by_n[big] - by_n[mid] - mf).dropna()
    out.append(row(FIGURE, f"{head}: 2 lambda_1(N={big}) - lambda_1(N={mid}) minus 1/2 log chi",
                   0.0, float(inf.mean()), math.nan, kind="finding", seeds=len(inf),
                   spread=float(inf.std(ddof=1)),
                   basis=f"estimator: {ESTIMATOR}, per seed 2 r(N={big}) - r(N={mid}) - 1/2 log "
                   f"chi; n = {len(inf)} seeds; SE = SD/sqrt(n) of the per-seed values = "
                   f"{stderr(inf):.4f}"))
    return out


def quick_may_fail(r: dict) -> bool:
    """At quick sizes (N = 100 and 200) the 1/N law behind the extrapolation need not hold yet,
    so the theory rows of lambda_1 are a smoke test there."""
    return r["kind"] == "theory" and "lambda_1" in r["quantity"]


def rows(measured: dict) -> list[dict]:
    mode, table, out = measured["mode"], measured["table"], []
    _, tol_fb, steps = sizes(mode)
    for (s_in2, sw), g in table.groupby(["s_in2", "sigma_w"]):
        if s_in2 == 0.1:
            out += annealed.rows(FIGURE, f"lambda_1 at sigma_w = {sw:g}, s_in^2 = 0.1", g,
                                 float(g.mean_field_rate.iloc[0]), what="lambda_1",
                                 law=f"this figure's findings at sigma_w = {LAW_GAIN:g}",
                                 estimator=ESTIMATOR)
            if sw in CHECK_GAINS:  # the standard deviation of SEEDS seeds against all of them
                inf = annealed.series(g)["extrapolated"]
                out[-3]["basis"] += (f"; check of the {SEEDS}-seed spread: SD of seeds "
                                     f"0-{SEEDS - 1} {inf.iloc[:SEEDS].std(ddof=1):.4f}, of all "
                                     f"{len(inf)} {inf.std(ddof=1):.4f}")
    out += law_rows(measured["law"])
    for r in measured["backward"].itertuples():
        out.append(row(FIGURE, f"backward rate (lags 1-50) vs forward lambda_1, same "
                       f"trajectory, one fixed W, N = {N_BACKWARD}, sigma_w = {r.sigma_w}, "
                       f"s_in^2 = 0.1, T = {r.T}", r.lambda_1, r.backward_rate, tol_fb,
                       kind="consistency", seeds=1, basis="two measurements of one number; "
                       "the difference is a boundary term, O(1/lag)"))
    at13 = annealed.series(table[(table.s_in2 == 0.01) & (table.sigma_w == 1.3)])
    crit = theory.critical_gain("tanh", 0.01)
    lam13 = at13["extrapolated"]
    out.append(row(FIGURE, f"sign of lambda_1 (weights redrawn, N -> infinity) at sigma_w = 1.3, "
                   f"s_in^2 = 0.01 (critical gain {crit:.4f})", 1.0, float(np.sign(lam13.mean())),
                   0.0, kind="sign", seeds=len(lam13), spread=float(lam13.std(ddof=1)),
                   estimator=f"the sign of the seed mean of {ESTIMATOR}, per seed "
                   f"2 r(N={at13['big']}) - r(N={at13['small']}), weights redrawn",
                   se=f"SD of the per-seed values / sqrt(n) = {stderr(lam13):.4f}",
                   basis=f"mean {lam13.mean():+.4f}, {lam13.mean() / stderr(lam13):+.1f} SE from "
                   f"0; mean field {theory.log_chi_rate('tanh', 1.3, 0.01):+.3f} nats/step"))

    spectrum = measured["newman"]
    n, batch, z = len(spectrum), measured["batch"], spectrum["z"].to_numpy()
    z_crit = float(norm.isf(NEWMAN_FAMILY / (2 * n)))
    worst = int(np.argmax(np.abs(z)))
    off = spectrum["measured"].iloc[worst] - spectrum["newman"].iloc[worst]
    out.append(row(FIGURE, f"Newman spectrum N = {n}, {batch} x {steps} products: max |z| "
                   f"over the {n} exponents (worst i = {worst + 1}, off by {off:+.4f})", 0.0,
                   float(np.abs(z).max()), z_crit, kind="theory", seeds=batch * steps,
                   basis=f"exact standard errors; Bonferroni over {n} exponents, family-wise "
                   f"{NEWMAN_FAMILY:.2%}"))
    return out


def tables(measured: dict) -> dict:
    """lambda_vs_gain.csv (every lambda_1), forward_backward.csv, newman_spectrum.csv,
    finite_n_law.csv, lyapunov_summary.csv (annealed.summary per s_in^2 and sigma_w, with
    1/2 log chi), lyapunov_theory.csv (1/2 log chi over 300 gains from 0.45 to the largest + 0.05
    and the critical gain, per s_in^2) and lyapunov_settings.csv (the Newman products' batch and
    steps, the backward rows' N)."""
    mode, table = measured["mode"], measured["table"]
    _, _, steps = sizes(mode)
    summary = annealed.summary(table, ["s_in2", "sigma_w"])
    summary["mean_field_rate"] = np.nan
    grid = np.linspace(0.45, max(GAINS[mode]) + 0.05, 300)
    curves = []
    for s_in2 in NOISE:
        at = summary.s_in2 == s_in2
        summary.loc[at, "mean_field_rate"] = theory.log_chi_rate(
            "tanh", summary.loc[at, "sigma_w"].to_numpy(), s_in2)
        curves.append(pd.DataFrame({"s_in2": s_in2, "sigma_w": grid,
                                    "mean_field_rate": theory.log_chi_rate("tanh", grid, s_in2),
                                    "critical_sigma_w": theory.critical_gain("tanh", s_in2)}))
    settings = pd.DataFrame([{"newman_batch": measured["batch"], "newman_steps": steps,
                              "backward_N": N_BACKWARD}])
    return {"lambda_vs_gain.csv": table, "finite_n_law.csv": measured["law"],
            **dict(zip(plot.TABLES, (summary, pd.concat(curves, ignore_index=True),
                                     measured["backward"], measured["newman"], settings)))}


def main(argv=None) -> int:
    return standalone(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
