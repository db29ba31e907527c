"""critical-line: the edge of chaos chi = 1 in the (sigma_w^2, s2) plane.

Source: Poole et al. 2016 (arXiv:1606.05340); Schoenholz et al. 2017 (arXiv:1611.01232);
REFERENCE.md sections 3 and 8.

EXPECTED: the tanh critical gain for s2 = s_in^2 + s_b^2 (checked values, 4 decimals):
0 -> 1, 0.01 -> 1.1934, 0.05 -> 1.3270, 0.1 -> 1.4093, 0.3 -> 1.5828, 1.0 -> 1.8556; input noise
moves the edge of chaos to larger gain. Measured networks on either side of the line have rates
of opposite sign: at s2 = 0.1, vanishing at sigma_w = 1.2 and exploding at sigma_w = 1.7.
"""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from _measure import full_rank_noise, network, windowed_rate  # noqa: E402

from rnnlab import theory  # noqa: E402
from rnnlab.tables import comparison  # noqa: E402

FIGURE = "critical-line"
TABLE = {0.0: 1.0, 0.01: 1.1934, 0.05: 1.3270, 0.1: 1.4093, 0.3: 1.5828, 1.0: 1.8556}


def run(out_dir: Path, quick: bool = False) -> list[dict]:
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for s2, expected in TABLE.items():
        rows.append(comparison(FIGURE, f"tanh critical sigma_w at s2 = {s2}", expected,
                               theory.critical_gain("tanh", s2), 1e-4))  # 4-decimal values
    N = 200 if quick else 500
    measured = []
    for sigma_w in (1.2, 1.7):
        p, traj = network(seed=2, activation="tanh", gain=sigma_w, spectral_radius=None,
                          seq_len=80, batch_size=4, burn_in=300, **full_rank_noise(N, 0.1))
        rate, _ = windowed_rate(p, traj, max_lag=50)
        measured.append({"sigma_w": sigma_w, "s2": 0.1, "decay_rate": rate,
                         "mean_field_rate": float(theory.log_chi_rate("tanh", sigma_w, 0.1))})
        rows.append(comparison(FIGURE, f"sign of the measured rate at sigma_w = {sigma_w}, "
                               "s2 = 0.1", -1.0 if sigma_w < TABLE[0.1] else 1.0,
                               math.copysign(1.0, rate), 0.0))
    s2_grid = np.linspace(0, 1.0, 41)
    line = pd.DataFrame({"s2": s2_grid,
                         "critical_sigma_w": [theory.critical_gain("tanh", s) for s in s2_grid]})
    line.to_csv(out_dir / "critical_line.csv", index=False)
    pd.DataFrame(measured).to_csv(out_dir / "measured_rates.csv", index=False)

    fig, ax = plt.subplots(figsize=(5.6, 4.2))
    sw2, s2 = np.meshgrid(np.linspace(0.5, 4.0, 30), np.linspace(0, 1.0, 21))
    rate = np.vectorize(lambda a, b: 0.5 * math.log(theory.chi("tanh", math.sqrt(a), b)))(sw2, s2)
    im = ax.pcolormesh(sw2, s2, rate, cmap="RdBu_r", vmin=-0.4, vmax=0.4, shading="auto")
    fig.colorbar(im, ax=ax, label=r"$\frac{1}{2}\log\chi$ (nats per step)")
    ax.plot(line["critical_sigma_w"] ** 2, line["s2"], "k-", label=r"$\chi = 1$ (theory)")
    ax.plot([v ** 2 for v in TABLE.values()], list(TABLE), "wo", mec="k",
            label="REFERENCE table")
    for m in measured:
        ax.plot(m["sigma_w"] ** 2, m["s2"], "s", ms=9, mec="k",
                color="tab:blue" if m["decay_rate"] < 0 else "tab:red")
    ax.set_xlabel(r"$\sigma_w^2$")
    ax.set_ylabel(r"$s^2 = s_{in}^2 + s_b^2$")
    ax.set_title("tanh: ordered (blue) and chaotic (red); squares measured", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.savefig(out_dir / "critical_line.png", dpi=130, bbox_inches="tight")
    plt.close(fig)
    return rows
