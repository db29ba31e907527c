"""lag-decay, drawn from its tables: the measured log10 gradient ratio against the lag (markers,
seed 0) per rho with its mean-field line, tanh and relu, and the exact references.

Reads lag_decay.csv (per panel and rho: the mean-field rate, ln rho for the references),
lag_decay_curves.csv (the measured curves) and lag_decay_theory.csv (per activation panel: N,
s_in^2 and the critical rho).
"""
from __future__ import annotations

import math
from pathlib import Path

from rnnlab.plotting import plt

FIGURE = "lag-decay"
TABLES = ("lag_decay.csv", "lag_decay_curves.csv", "lag_decay_theory.csv")
REFERENCE_COLOURS = ("C0", "C3", "C2", "C1")  # the exact references, in lag_decay.csv's order


def draw(tables: dict, out_dir: Path) -> Path:
    table, curves, panels = (tables[name] for name in TABLES)
    activations = list(panels["panel"])
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), sharey=True)
    cmap = plt.get_cmap("viridis")
    for ax, p in zip(axes, panels.itertuples()):
        points = table[table["panel"] == p.panel]
        for i, (rho, rate) in enumerate(zip(points["rho"], points["mean_field_rate"])):
            c = curves[(curves["panel"] == p.panel) & (curves["rho"] == rho)]
            color = cmap(i / (len(points) - 1))
            ax.plot(c["lag"], c["log10_ratio"], "o", ms=2, color=color,
                    label=rf"$\rho$ = {rho}")
            ax.plot(c["lag"], c["lag"] * rate / math.log(10), "-", lw=0.8, color=color)
        ax.set_title(f"{p.panel}, W = rho Q, N = {p.N}, s_in^2 = {p.s_in2}\n"
                     "(lines: mean field; critical rho = "
                     f"{p.critical_rho:.3f})",
                     fontsize=9)
    references = table[~table["panel"].isin(activations)]
    for (act, rho), color in zip(zip(references["panel"], references["rho"]), REFERENCE_COLOURS):
        c = curves[(curves["panel"] == act) & (curves["rho"] == rho)]
        axes[2].plot(c["lag"], c["log10_ratio"], "o" if act == "linear" else "x", ms=3,
                     color=color, label=f"{act}, rho = {rho}")
        axes[2].plot(c["lag"], c["lag"] * math.log10(rho), "-", lw=0.8, color=color)
    axes[2].set_title("exact references: W = rho Q (lines: rho^lag)", fontsize=9)
    for ax in axes:
        ax.set_xlabel("lag t - k (steps)")
        ax.legend(fontsize=7)
    axes[0].set_ylabel(r"$\log_{10}\,\|\partial L_t/\partial h_k\|"
                       r" / \|\partial L_t/\partial h_t\|$"
                       " (mean over pairs)")
    fig.suptitle("Gradient ratio against lag: markers measured, lines theory", fontsize=10,
                 y=1.04)
    path = out_dir / "lag_decay.png"
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return path
