"""lyapunov: the largest Lyapunov exponent against gain at two noise levels, a Newman spectrum,
and forward lambda_1 against the backward decay rate of the same trajectory.

Sources: Molgedey, Schuchhardt, Schuster 1992 (PRL 69:3717); Engelken et al. 2023
(arXiv:2006.02427); Newman 1986 (CMP 103:121); REFERENCE.md sections 3, 4 and 8.

EXPECTED:
- in a random tanh network driven by fresh noise, lambda_1 = 1/2 log chi with the noise in q*;
  noise moves the onset of chaos to larger gain (s_in^2 = 0.1: from 1 to 1.409). Compared where
  the finite-size error is small (sigma_w >= 1.6; REFERENCE: within 0.012 at N = 500), tolerance
  0.02 at N = 500;
- products of i.i.d. Gaussian N x N matrices (entry variance s^2/N):
  lambda_i = log s + 1/2 (log(2/N) + digamma((N-i+1)/2)), within 0.01 (the issue's acceptance;
  the statistical error after 32 x 6000 steps is ~0.002 for the last exponent);
- the forward rate lambda_1 and the long-lag backward rate of ||dL_{T-1}/dh_k|| are the same
  number: within 0.005 on one trajectory (REFERENCE: 0.002 for long runs).
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from _measure import full_rank_noise, network  # noqa: E402

from rnnlab import gradients, theory  # noqa: E402
from rnnlab.lyapunov import lyapunov_from_jacobians, lyapunov_from_matrices  # noqa: E402
from rnnlab.model import phi_prime_from_h  # noqa: E402
from rnnlab.tables import comparison  # noqa: E402

FIGURE = "lyapunov"
GAINS = [0.8, 1.0, 1.2, 1.4, 1.6, 2.0, 2.5]
COMPARED = (1.6, 2.0, 2.5)


def lambda_1(p, traj, seed=0):
    dphi = phi_prime_from_h(traj.u, p.activation)
    g = torch.Generator().manual_seed(seed)
    return lyapunov_from_jacobians(p.W, dphi, k=1, generator=g).mean().item()


def run(out_dir: Path, quick: bool = False) -> list[dict]:
    out_dir.mkdir(parents=True, exist_ok=True)
    N, T, tol = (150, 400, 0.05) if quick else (500, 1500, 0.02)
    rows, table = [], []
    for s_in2 in (0.01, 0.1):
        for sigma_w in GAINS:
            p, traj = network(seed=3, activation="tanh", gain=sigma_w, spectral_radius=None,
                              seq_len=T, batch_size=2, burn_in=300, **full_rank_noise(N, s_in2))
            lam, mf = lambda_1(p, traj), float(theory.log_chi_rate("tanh", sigma_w, s_in2))
            table.append({"s_in2": s_in2, "sigma_w": sigma_w, "lambda_1": lam,
                          "mean_field_rate": mf})
            if sigma_w in COMPARED:
                rows.append(comparison(FIGURE, f"lambda_1 at sigma_w = {sigma_w}, s_in^2 = "
                                       f"{s_in2} vs 1/2 log chi", mf, lam, tol))
    table = pd.DataFrame(table)
    table.to_csv(out_dir / "lambda_vs_gain.csv", index=False)

    # forward against backward on one trajectory: the long-lag slope of the last loss's profile
    p, traj = network(seed=4, activation="tanh", gain=1.5, spectral_radius=None,
                      seq_len=T, batch_size=2, burn_in=300, **full_rank_noise(N, 0.1))
    lam = lambda_1(p, traj)
    ln_ratio, _, _ = gradients.loss_profiles(traj)
    lags = np.arange(T)
    window = lags >= 50  # past the transient of the direction of g_t
    backward = np.polyfit(lags[window], ln_ratio.mean(1).numpy()[window], 1)[0]
    rows.append(comparison(FIGURE, "backward decay rate vs forward lambda_1 (same trajectory)",
                           lam, backward, 0.005))

    n, s, steps, batch = 50, 1.0, (1000 if quick else 6000), 32
    gen = torch.Generator().manual_seed(5)
    mats = (torch.randn(batch, n, n, generator=gen, dtype=torch.float64) * (s / n ** 0.5)
            for _ in range(steps))
    spectrum = lyapunov_from_matrices(mats, k=n, generator=gen).mean(0).numpy()
    newman = theory.newman_spectrum(n, s)
    worst = int(np.argmax(np.abs(spectrum - newman)))
    rows.append(comparison(FIGURE, f"Newman spectrum N = 50: worst exponent (i = {worst + 1})",
                           float(newman[worst]), float(spectrum[worst]),
                           0.03 if quick else 0.01))
    pd.DataFrame({"i": np.arange(1, n + 1), "measured": spectrum, "newman": newman}).to_csv(
        out_dir / "newman_spectrum.csv", index=False)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    grid = np.linspace(min(GAINS), max(GAINS), 200)
    for s_in2, color in ((0.01, "tab:blue"), (0.1, "tab:red")):
        axes[0].plot(grid, theory.log_chi_rate("tanh", grid, s_in2), color=color, lw=1,
                     label=rf"$\frac{{1}}{{2}}\log\chi$, $s_{{in}}^2$ = {s_in2}")
        m = table[table["s_in2"] == s_in2]
        axes[0].plot(m["sigma_w"], m["lambda_1"], "o", color=color,
                     label=rf"$\lambda_1$ measured, N = {N}")
    axes[0].axhline(0, color="0.5", lw=0.6, ls=":")
    axes[0].set_xlabel(r"gain $\sigma_w$")
    axes[0].set_ylabel(r"$\lambda_1$ (nats per step)")
    axes[0].legend(fontsize=7)
    i = np.arange(1, n + 1) / n
    axes[1].plot(i, newman, "k-", lw=1, label="Newman 1986")
    axes[1].plot(i, spectrum, "o", ms=3, label=f"QR method, {batch} x {steps} products")
    axes[1].set_xlabel("i / N")
    axes[1].set_ylabel(r"$\lambda_i$ (nats per step)")
    axes[1].set_title("i.i.d. Gaussian products, N = 50, s = 1", fontsize=9)
    axes[1].legend(fontsize=7)
    fig.savefig(out_dir / "lyapunov.png", dpi=130, bbox_inches="tight")
    plt.close(fig)
    return rows
