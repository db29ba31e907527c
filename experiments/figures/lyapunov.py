"""lyapunov: the largest Lyapunov exponent lambda_1 of a noisy random tanh network against its
gain at two noise levels, with 1/2 log chi; forward lambda_1 against the engine's backward decay
rate on the same trajectory; the full spectrum of an i.i.d. Gaussian product against Newman's law.

Sources: Molgedey, Schuchhardt, Schuster 1992 (PRL 69:3717); Engelken, Wolf, Abbott 2023
(arXiv:2006.02427); Benettin et al. 1980 (QR method); Newman 1986 (CMP 103:121);
docs/theory.md ("Lyapunov QR", "Newman") and docs/tolerances.md.

EXPECTED:
- lambda_1 = 1/2 log chi with the noise variance in q* (Molgedey 1992). N = 1000, full-rank input
  noise s_in^2 = 0.1, 500 burn-in steps, 1000 measured steps of which the first 100 are the
  frame's warm-up (rnnlab.engine.lyapunov.frame_transient), mean of 5 seeds (10 for sigma_w <= 1,
  where lambda_1 spreads ~0.005 between networks): within 0.006 (the
  finite-N budget at N = 1000) for every sigma_w in [0.5, 3]. s_in^2 = 0.01 is drawn, not
  compared: no finite-N budget was measured for it;
- noise moves the onset of chaos to larger gain (critical 1.1934 at s_in^2 = 0.01, 1.4093 at
  0.1): at sigma_w = 1.3, lambda_1 > 0 with s_in^2 = 0.01 (mean field +0.022). The other side,
  lambda_1 < 0 at s_in^2 = 0.1, is already the mean-field row at sigma_w = 1.3;
- consistency of two measurements, not a theory value: forward lambda_1 (QR) and the engine's
  backward rate (slope of ln r over lags 1..50, fit_decay) on the same network and trajectory
  agree within 0.002 at N = 1000, 1000 steps (quick mode, 300 steps: 0.005). Asserted at
  sigma_w = 1 and 2 (quick: 2). In the deep ordered phase (sigma_w = 0.5) lags <= 50 are too
  short for the backward cotangent to align with the leading direction and the two differ by
  ~0.01;
- Newman's law for products of i.i.d. Gaussian 50 x 50 matrices (entry variance 1/N):
  lambda_i = 1/2 (log(2/N) + digamma((N-i+1)/2)). Each log R_t[i, i] is exactly distributed as
  log(chi_{N-i+1} / sqrt(N)), so each exponent's standard error is known exactly,
  se_i = 1/2 sqrt(trigamma((N-i+1)/2) / n) for n products x steps; the row is the largest
  |z_i| = |lambda_i - Newman_i| / se_i over all 50, against 4.04 (a false alarm for any of the
  50 at once has probability 0.27%, "3 sigma"). Full mode 64 products x 5000 steps, quick
  64 x 1000. The table lists every exponent and its standard error.
Full mode: 14 min measured on the shared 2-core machine (~4.5 min of CPU). Run alone:
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

from experiments.figures.common import (
    full_rank_noise,
    is_quick,
    network,
    row,
    standalone,
    windowed_rate,
)
from rnnlab import theory
from rnnlab.engine.lyapunov import (
    frame_transient,
    lyapunov_from_jacobians,
    lyapunov_from_matrices,
)
from rnnlab.engine.model import phi_prime_from_h
from rnnlab.plotting import plt

FIGURE = "lyapunov"
GAINS = {"full": [0.5, 0.8, 1.0, 1.2, 1.3, 1.4, 1.6, 2.0, 2.5, 3.0], "quick": [1.3, 2.0]}
NOISE = (0.01, 0.1)
SEEDS = range(5)
ORDERED_SEEDS = range(10)  # s_in^2 = 0.1, sigma_w <= 1: lambda_1 spreads ~0.005 between seeds
N, BURN_IN = 1000, 500
TOL_MF = 0.006  # finite-N budget: N = 1000, s_in^2 = 0.1 (docs/tolerances.md)
BACKWARD = {"full": (1.0, 2.0), "quick": (2.0,)}  # gains of the consistency rows
NEWMAN_N, NEWMAN_FAMILY = 50, 0.0027  # family-wise false-alarm rate of the z-score row


def one_network(sigma_w, s_in2, seed, T, backward=False):
    """(forward lambda_1, backward windowed rate or None) of one network: QR on the Jacobians
    diag(phi'(a_t)) W of its trajectory (2 sequences, the frame's warm-up discarded); with
    ``backward``, the rate of the same trajectory's adjoint sweep."""
    p, traj = network(seed=seed, activation="tanh", gain=sigma_w, spectral_radius=None,
                      seq_len=T, batch_size=2, burn_in=BURN_IN, **full_rank_noise(N, s_in2))
    lam = lyapunov_from_jacobians(p.W, phi_prime_from_h(traj.u, "tanh"), k=1,
                                  transient=frame_transient(T),
                                  generator=torch.Generator().manual_seed(seed)).mean().item()
    return lam, (windowed_rate(p, traj, max_lag=50)[0] if backward else np.nan)


def sizes(mode: str):
    """(T, consistency tolerance, Newman steps) of a mode."""
    return (300, 0.005, 1000) if is_quick(mode) else (1000, 0.002, 5000)


def measure(mode: str) -> dict:
    """{"mode", "table": lambda_1 per noise and gain (mean, spread, seed 0 forward and backward),
    "newman": the 50 exponents of the i.i.d. products beside Newman's law and their standard
    errors, "batch"}."""
    T, _, steps = sizes(mode)
    table = []
    points = [(s_in2, g) for s_in2 in NOISE for g in GAINS[mode]]
    for s_in2, sigma_w in tqdm(points, desc="lyapunov", disable=None, leave=False):
        backward = s_in2 == 0.1 and sigma_w in BACKWARD[mode]
        lam, bw = zip(*[one_network(sigma_w, s_in2, seed, T, backward and seed == 0)
                        for seed in (ORDERED_SEEDS if s_in2 == 0.1 and sigma_w <= 1.0
                                     else SEEDS)])
        mf = float(theory.log_chi_rate("tanh", sigma_w, s_in2))
        table.append({"s_in2": s_in2, "sigma_w": sigma_w, "seeds": len(lam),
                      "lambda_1": np.mean(lam), "lambda_1_seed_std": np.std(lam, ddof=1),
                      "mean_field_rate": mf, "difference": np.mean(lam) - mf,
                      "lambda_1_seed0": lam[0], "backward_rate_seed0": bw[0]})

    n, batch = NEWMAN_N, 64
    gen = torch.Generator().manual_seed(5)
    mats = (torch.randn(batch, n, n, generator=gen, dtype=torch.float64) / n ** 0.5
            for _ in range(steps))
    spectrum = lyapunov_from_matrices(mats, k=n, generator=gen).mean(0).numpy()
    newman = theory.newman_spectrum(n, 1.0)
    i = np.arange(1, n + 1)
    se = np.sqrt(polygamma(1, (n - i + 1) / 2) / 4 / (batch * steps))
    return {"mode": mode, "table": pd.DataFrame(table), "batch": batch,
            "newman": pd.DataFrame({"i": i, "measured": spectrum, "newman": newman, "stderr": se,
                                    "z": (spectrum - newman) / se})}


def rows(measured: dict) -> list[dict]:
    mode, table, out = measured["mode"], measured["table"], []
    T, tol_fb, steps = sizes(mode)
    for r in table.itertuples():
        if r.s_in2 != 0.1:
            continue
        se = r.lambda_1_seed_std / math.sqrt(r.seeds)  # common.stderr of the seeds' lambda_1
        out.append(row(FIGURE, f"lambda_1 at sigma_w = {r.sigma_w}, s_in^2 = 0.1, N = {N} "
                       f"({r.seeds} seeds) vs 1/2 log chi (nats/step)", r.mean_field_rate,
                       r.lambda_1, TOL_MF, kind="theory", seeds=r.seeds,
                       spread=r.lambda_1_seed_std,
                       basis=f"finite-N budget at N = {N}; 3 SE = {3 * se:.4f}"))
        if r.sigma_w in BACKWARD[mode]:
            out.append(row(FIGURE, f"backward rate (lags 1-50) vs forward lambda_1, same "
                           f"trajectory, sigma_w = {r.sigma_w}, s_in^2 = 0.1, T = {T}",
                           r.lambda_1_seed0, r.backward_rate_seed0, tol_fb, kind="consistency",
                           seeds=1, basis="two measurements of one number; the difference is "
                           "a boundary term, O(1/lag)"))
    lam13 = table[(table["s_in2"] == 0.01) & (table["sigma_w"] == 1.3)].iloc[0]
    crit = theory.critical_gain("tanh", 0.01)
    out.append(row(FIGURE, f"sign of lambda_1 at sigma_w = 1.3, s_in^2 = 0.01 (critical gain "
                   f"{crit:.4f})", 1.0, float(np.sign(lam13["lambda_1"])), 0.0, kind="sign",
                   seeds=int(lam13["seeds"]), spread=lam13["lambda_1_seed_std"],
                   basis=f"mean field {lam13['mean_field_rate']:+.3f} nats/step"))

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


def draw(measured: dict, out_dir: Path) -> None:
    mode, table, spectra = measured["mode"], measured["table"], measured["newman"]
    _, _, steps = sizes(mode)
    table.to_csv(out_dir / "lambda_vs_gain.csv", index=False)
    spectra.to_csv(out_dir / "newman_spectrum.csv", index=False)
    n, batch = len(spectra), measured["batch"]
    i, spectrum, newman = (spectra[k].to_numpy() for k in ("i", "measured", "newman"))

    fig, axes = plt.subplots(1, 3, figsize=(16.5, 4.3), gridspec_kw={"wspace": 0.3})
    grid = np.linspace(0.45, max(GAINS[mode]) + 0.05, 300)
    for s_in2, color in zip(NOISE, ("tab:blue", "tab:red")):
        m = table[table["s_in2"] == s_in2]
        axes[0].plot(grid, theory.log_chi_rate("tanh", grid, s_in2), color=color, lw=1,
                     label=rf"$\frac{{1}}{{2}}\log\chi$, $s_{{in}}^2$ = {s_in2}")
        axes[0].errorbar(m["sigma_w"], m["lambda_1"], yerr=m["lambda_1_seed_std"], fmt="o",
                         ms=4, capsize=2, color=color,
                         label=rf"$\lambda_1$ (QR), N = {N}, mean of 5-10 seeds")
        bw = m[np.isfinite(m["backward_rate_seed0"])]
        if len(bw):
            axes[0].plot(bw["sigma_w"], bw["backward_rate_seed0"], "kx", ms=8,
                         label="backward rate, lags 1-50 (seed 0)")
            axes[1].plot(bw["sigma_w"], bw["backward_rate_seed0"] - bw["mean_field_rate"], "kx",
                         ms=8, label="backward - mean field (seed 0)")
        axes[0].axvline(theory.critical_gain("tanh", s_in2), color=color, lw=0.6, ls=":")
        axes[1].plot(m["sigma_w"], m["difference"], "o-", color=color, ms=4,
                     label=rf"$\lambda_1$ - mean field, $s_{{in}}^2$ = {s_in2}")
    axes[0].axhline(0, color="0.5", lw=0.6)
    axes[0].set_ylabel("rate (nats per step)")
    axes[0].set_title("largest Lyapunov exponent (dotted: critical gains)", fontsize=10)
    axes[1].axhspan(-TOL_MF, TOL_MF, color="0.85", label="finite-N budget (N = 1000)")
    axes[1].axhline(0, color="k", lw=0.6)
    axes[1].set_ylabel("measured - 1/2 log chi (nats per step)")
    axes[1].set_title("finite-size deviations", fontsize=10)
    for ax in axes[:2]:
        ax.set_xlabel(r"gain $\sigma_w$")
        ax.legend(fontsize=7)
    axes[2].plot(i / n, newman, "k-", lw=1, label="Newman 1986")
    axes[2].plot(i / n, spectrum, "o", ms=3, label=f"QR method, {batch} x {steps} products")
    axes[2].set_xlabel("i / N")
    axes[2].set_ylabel(r"$\lambda_i$ (nats per step)")
    axes[2].set_title("i.i.d. Gaussian products, N = 50, entry variance 1/N", fontsize=10)
    axes[2].legend(fontsize=7)
    fig.savefig(out_dir / "lyapunov.png", dpi=130, bbox_inches="tight")
    plt.close(fig)


def main(argv=None) -> int:
    return standalone(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
