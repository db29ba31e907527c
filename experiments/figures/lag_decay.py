"""lag-decay: log ||dL_t/dh_k|| against the lag, one curve per rho, tanh against relu.

Source: Pascanu, Mikolov, Bengio 2013 (arXiv:1211.5063), section 2; REFERENCE.md sections 2, 6, 8.

EXPECTED: straight lines in log scale (exponential decay or growth with the lag); for a linear
RNN with W = rho Q every ratio is exactly rho^lag (rate ln rho); no network beats Pascanu's bound
ln(gamma sigma_max(W)) per step; rates rise with rho, and relu's slope changes sign near the
mean-field critical point rho = sqrt 2 (chi = rho^2 / 2 = 1 for W = rho Q).
"""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from _measure import full_rank_noise, network, windowed_rate  # noqa: E402

from rnnlab.model import GAMMA  # noqa: E402
from rnnlab.tables import comparison  # noqa: E402

FIGURE = "lag-decay"
RHOS = [0.5, 0.8, 1.0, 1.2, 1.4, 1.6, 2.0]


def run(out_dir: Path, quick: bool = False) -> list[dict]:
    out_dir.mkdir(parents=True, exist_ok=True)
    N, T = (64, 60) if quick else (256, 150)
    rows, curves, table = [], [], []
    for act in ("tanh", "relu"):
        for rho in RHOS:
            p, traj = network(activation=act, init="orthogonal", spectral_radius=rho,
                              seq_len=T, batch_size=4, burn_in=50, **full_rank_noise(N, 0.1))
            rate, prof = windowed_rate(p, traj, max_lag=T - 1)
            log_eta = math.log(GAMMA[act] * torch.linalg.matrix_norm(p.W, ord=2).item())
            table.append({"activation": act, "rho": rho, "decay_rate": rate,
                          "pascanu_log_eta": log_eta})
            mean = (prof.ln_ratio["count"] * prof.ln_ratio["mean"]).sum(1) / prof.ln_ratio[
                "count"].sum(1)
            curves.append(pd.DataFrame({"activation": act, "rho": rho, "lag": prof.lag,
                                        "log10_ratio": mean / math.log(10)}))
    table = pd.DataFrame(table)
    for act, g in table.groupby("activation"):
        # Pascanu 2013: each step contracts by at most gamma sigma_max(W)
        excess = float((g["decay_rate"] - g["pascanu_log_eta"]).clip(lower=0).max())
        rows.append(comparison(FIGURE, f"{act}: rate above Pascanu's bound (max over rho)",
                               0.0, excess, 0.0))
        rises = float((np.diff(g.sort_values("rho")["decay_rate"]) < 0).sum())
        rows.append(comparison(FIGURE, f"{act}: rates that fall as rho rises", 0, rises, 0))
    relu = table[table["activation"] == "relu"].sort_values("rho")
    crossing = float(np.interp(0.0, relu["decay_rate"], relu["rho"]))
    # finite N (256) and the input drive move the crossing; 0.1 in rho is a 7% tolerance
    rows.append(comparison(FIGURE, "relu: rho where the rate crosses 0 (mean field sqrt 2)",
                           math.sqrt(2), crossing, 0.1))
    for rho in (0.9, 1.1):
        p, traj = network(activation="linear", init="orthogonal", spectral_radius=rho,
                          hidden_size=32, seq_len=80, batch_size=2)
        rate, _ = windowed_rate(p, traj, max_lag=79)
        rows.append(comparison(FIGURE, f"linear W = {rho} Q: rate (exact ln rho)",
                               math.log(rho), rate, 1e-9))
    table.to_csv(out_dir / "lag_decay.csv", index=False)

    curves = pd.concat(curves)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    cmap = plt.get_cmap("viridis")
    for ax, act in zip(axes, ("tanh", "relu")):
        for i, rho in enumerate(RHOS):
            c = curves[(curves["activation"] == act) & (curves["rho"] == rho)]
            ax.plot(c["lag"], c["log10_ratio"], "o", ms=1.5, color=cmap(i / len(RHOS)),
                    label=rf"$\rho$ = {rho}")
            rate = table[(table["activation"] == act) & (table["rho"] == rho)]["decay_rate"]
            ax.plot(c["lag"], c["lag"] * float(rate.iloc[0]) / math.log(10), "-", lw=0.6,
                    color=cmap(i / len(RHOS)))
        ax.set_title(f"{act}, W = rho Q, N = {N}, full-rank input noise s_in^2 = 0.1")
        ax.set_xlabel("lag t - k (steps)")
    axes[0].set_ylabel(r"$\log_{10}\|\partial L_t/\partial h_k\| / \|\partial L_t/\partial h_t\|$")
    axes[1].legend(fontsize=7)
    fig.suptitle("Gradient ratio against lag: markers measured, lines the fitted rate")
    fig.savefig(out_dir / "lag_decay.png", dpi=130, bbox_inches="tight")
    plt.close(fig)
    return rows
