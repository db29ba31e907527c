"""critical-line, drawn from its tables: the mean-field rate over the (sigma_w^2, s2) plane with
the line chi = 1, the measured points on either side and the measured crossing (left); the rates
across the line per s2 against 1/2 log chi (right).

Reads critical_line.csv (the critical gain over s2), critical_line_map.csv (1/2 log chi on a
sigma_w^2 x s2 grid), critical_line_curves.csv (1/2 log chi against sigma_w per measured s2),
critical_gains.csv (the critical gains: theory and as stated to 4 decimals),
critical_line_summary.csv (per s2 and sigma_w the seeds' mean and sd of each estimate) and
critical_line_crossings.csv (per seed the zero crossing at s2 = 0.1); measured_rates.csv (every
seed's rate) is the table behind the summary.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from rnnlab.plotting import plt

FIGURE = "critical-line"
TABLES = ("critical_line.csv", "critical_line_map.csv", "critical_line_curves.csv",
          "critical_gains.csv", "critical_line_summary.csv", "critical_line_crossings.csv")
COLOURS = ("C0", "C1", "C2", "C3")  # one per measured s2, in increasing order


def draw(tables: dict, out_dir: Path) -> Path:
    line, grid, curves, gains, summary, cross = (tables[name] for name in TABLES)
    crossing = float(cross["extrapolated"].mean())
    at = float(cross["s2"].iloc[0])
    n = int(summary.N_big.iloc[0])
    critical = dict(zip(gains["s2"], gains["critical_sigma_w"]))

    fig, axes = plt.subplots(1, 2, figsize=(12.5, 4.4), gridspec_kw={"wspace": 0.45})
    ax = axes[0]
    rate = grid.pivot(index="s2", columns="sigma_w2", values="mean_field_rate")
    sw2, s2 = np.meshgrid(rate.columns.to_numpy(), rate.index.to_numpy())
    im = ax.pcolormesh(sw2, s2, rate.to_numpy(), cmap="RdBu_r", vmin=-0.4, vmax=0.4,
                       shading="auto")
    fig.colorbar(im, ax=ax, label=r"mean field $\frac{1}{2}\log\chi$ (nats per step)")
    ax.plot(line["critical_sigma_w"] ** 2, line["s2"], "k-", label=r"$\chi = 1$ (theory)")
    ax.plot(list(gains["stated"] ** 2), list(gains["s2"]), "wo", mec="k",
            label="critical gains (4 decimals)")
    for sign, color in ((-1, "tab:blue"), (1, "tab:red")):
        m = summary[np.sign(summary.extrapolated) == sign]
        ax.plot(m.sigma_w ** 2, m.s2, "s", ms=7, mec="k", color=color,
                label=f"measured rate {'< 0' if sign < 0 else '> 0'} (redrawn, N -> inf)")
    ax.plot(crossing ** 2, at, "k*", ms=12, label=f"measured crossing, s2 = {at:g}")
    ax.set_xlabel(r"$\sigma_w^2$")
    ax.set_ylabel(r"$s^2 = s_{in}^2 + s_b^2$")
    ax.set_title("tanh: ordered (blue) and chaotic (red)", fontsize=10)
    ax.legend(fontsize=7, loc="center right")
    ax = axes[1]
    for (s2v, m), color in zip(summary.groupby("s2"), COLOURS):
        curve = curves[curves["s2"] == s2v]
        ax.plot(curve["sigma_w"], curve["mean_field_rate"], "-", lw=1, color=color)
        ax.errorbar(m.sigma_w, m.extrapolated, yerr=m.extrapolated_std, fmt="o", color=color,
                    ms=4, capsize=2, label=f"s2 = {s2v}: redrawn, N -> inf (mean field: line)")
        ax.plot(m.sigma_w, m.quenched, "s", mfc="none", color=color, ms=5,
                label=f"s2 = {s2v}: one fixed W, N = {n}")
        ax.axvline(critical[s2v], color=color, lw=0.6, ls=":")
    ax.axhline(0, color="0.5", lw=0.6)
    ax.set_xlabel(r"gain $\sigma_w$")
    ax.set_ylabel("rate: slope of ln r over lags 1-50 (nats per step)")
    seeds = summary.groupby(summary["s2"] == at)["seeds"].max()
    ax.set_title(f"rates across the line (dotted: critical gains), {seeds[True]} seeds at "
                 f"s2 = {at:g}" + (f", {seeds[False]} elsewhere" if False in seeds else ""),
                 fontsize=9)
    ax.legend(fontsize=6)
    path = out_dir / "critical_line.png"
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return path
