"""curse-of-memory, drawn from its tables: Zucchet & Orvieto's Fig. 1A and 2 on real diagonal
LRUs (the sensitivity against the memory 1/(1 - lambda) for input autocorrelations rho; raw,
normalised with gamma a parameter or tied to lambda, and in nu; the normalised state's variance),
beside the decay rate of the same networks against ln lambda and dense cells' sensitivity at
matched memory.

Reads curse_of_memory.csv (every network: the diagonal mean squares, the LRUs' decay rates and
the dense cells' ratios), curse_of_memory_theory.csv (the closed forms per variant, parameter and
rho against lambda), curse_of_memory_ratio.csv (the diagonal unit's ratio against the memory)
and curse_of_memory_settings.csv (the width, the networks per point and the error bars'
multiple, the dense cells' size and seeds).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from rnnlab.plotting import plt

FIGURE = "curse-of-memory"
TABLES = ("curse_of_memory.csv", "curse_of_memory_theory.csv", "curse_of_memory_ratio.csv",
          "curse_of_memory_settings.csv")
RHO_COLOURS = {0.0: "#08306b", 0.9: "#2171b5", 0.99: "#6baed6", 0.999: "#b7d4ea"}
STYLES = {"none": "-", "param": "-", "tied": "--"}  # line per variant
MARKERS = {"none": "o", "param": "o", "tied": "s"}
DENSE_STYLES = (("C1", "s"), ("C4", "^"), ("C5", "D"))  # per dense cell, in the table's order
MEMORY_TICKS = [1e0, 1e1, 1e2, 1e3, 1e4]


def _memory_axis(ax, ylabel: str, title: str) -> None:
    """Log memory on x with lambda = 1 - 1/m under each decade (their axis is lambda)."""
    ax.set(xscale="log", yscale="log", ylabel=ylabel, xlim=(1.3, 2.5e4))
    ax.set_xticks(MEMORY_TICKS)
    ax.set_xticklabels(["1\n(0)", "10\n(0.9)", "100\n(0.99)", "1e3\n(0.999)", "1e4\n(0.9999)"],
                       fontsize=7)
    ax.minorticks_off()
    ax.set_xlabel("memory m = 1/(1 - lambda)  (lambda)", fontsize=8)
    ax.set_title(title, fontsize=9)


def _curves(ax, closed, measured, gamma: str, parameter: str, column: str, n_se: float,
            label_rho: bool) -> None:
    """The closed forms of ``gamma``, ``parameter`` for every rho as lines; the measured means
    +- n_se standard errors as markers (``column``: the measured quantity)."""
    c = closed[(closed.gamma == gamma) & (closed.parameter == parameter)]
    for rho, line in c.groupby("rho"):
        colour = RHO_COLOURS.get(rho, "0.5")
        ax.plot(line.memory.to_numpy(), line[column].to_numpy(), STYLES[gamma], color=colour,
                lw=1.2, label=f"rho = {rho:g}" if label_rho else None)
    g = measured[(measured.gamma == gamma) & (measured.parameter == (
        "state" if column == "state" else "r" if parameter == "lambda" else "nu"))]
    for rho, pts in g.groupby("rho"):
        s = pts.groupby("lam").value.agg(["mean", "std", "count"])
        m = 1 / (1 - s.index.to_numpy())
        ax.errorbar(m, s["mean"], yerr=n_se * s["std"] / np.sqrt(s["count"]),
                    fmt=MARKERS[gamma], mfc="white" if gamma == "tied" else None,
                    color=RHO_COLOURS.get(rho, "0.5"), ms=4.5, capsize=2, lw=1)


def draw(tables: dict, out_dir: Path) -> Path:
    measured, closed, ratio, settings = (tables[name] for name in TABLES)
    setting = settings.to_dict("records")[0]
    n_se = setting["n_se"]
    diag = measured[measured.part == "diagonal"]
    fig, axes = plt.subplots(2, 3, figsize=(17, 10), constrained_layout=True)
    (raw, lam_norm, nu), (state, mid, right) = axes
    points = (f"markers: measured, real diagonal LRU (N = {setting['N']}), mean +- {n_se:.3g} SE "
              f"over {setting['networks']} networks")
    # Fig. 1A: raw d/dlambda, with the raw state's variance at rho = 0 in grey
    _curves(raw, closed, diag, "none", "lambda", "sensitivity", n_se, True)
    white = closed[(closed.gamma == "none") & (closed.parameter == "lambda") & (closed.rho == 0)]
    raw.plot(white.memory, white.state, color="0.7", lw=1, zorder=-1,
             label="E[h^2], rho = 0 (for scale)")
    _memory_axis(raw, "E[(dh/dlambda)^2] per unit input variance",
                 "raw, gamma = 1 (their Fig. 1A): ~ kappa m^3/4, kappa = (1+rho)/(1-rho)\n"
                 + points)
    raw.legend(fontsize=7, title="lines: closed form (rho = 0.999: no markers)",
               title_fontsize=7)
    # normalised, d/dlambda: param (solid, filled) and tied (dashed, open)
    for gamma in ("param", "tied"):
        _curves(lam_norm, closed, diag, gamma, "lambda", "sensitivity", n_se, gamma == "param")
    lam_norm.plot([], [], "k-o", ms=4, label="gamma a parameter (param): ~ kappa m^2/2")
    lam_norm.plot([], [], "k--s", mfc="white", ms=4, label="gamma tied to lambda: ~ kappa m^2/4")
    _memory_axis(lam_norm, "E[(dh/dlambda)^2] per unit input variance",
                 "normalised, gamma = sqrt(1 - lambda^2): d/dlambda")
    lam_norm.legend(fontsize=7)
    # their Fig. 2 right: normalised and exponential, d/dnu
    for gamma in ("param", "tied"):
        _curves(nu, closed, diag, gamma, "nu", "sensitivity", n_se, gamma == "param")
    nu.plot([], [], "k-o", ms=4, label="param: -> kappa/2")
    nu.plot([], [], "k--s", mfc="white", ms=4, label="tied: -> kappa/4")
    _memory_axis(nu, "E[(dh/dnu)^2] per unit input variance",
                 "normalised, lambda = exp(-exp(nu)) (their Fig. 2, right):\nbounded, but "
                 "by kappa: the curse is back as rho -> 1")
    nu.legend(fontsize=7)
    # their Fig. 2 left: the normalised state's variance (param and tied alike)
    _curves(state, closed, diag, "param", "lambda", "state", n_se, True)
    _memory_axis(state, "E[h^2] per unit input variance",
                 "normalised state (their Fig. 2, left): (1 + lambda rho)/(1 - lambda rho) -> "
                 "kappa")
    state.legend(fontsize=7)
    rate = measured[measured.part == "rate"]
    lam = np.linspace(0.45, 0.9995, 400)
    # -ln lambda on log axes: the memories 2..1000 spread evenly instead of crowding at 0
    decay = -np.log(lam)
    mid.plot(decay, decay, "k-", lw=1, label="-ln lambda (exact)")
    mid.plot(-np.log(rate.lam), -rate.value, "o", color="C0", ms=6,
             label="measured: minus the decay rate")
    mid.set(xscale="log", yscale="log", xlabel="-ln lambda",
            ylabel="-(decay rate of ||dL_t/dh_k||) (nats per step; > 0: vanishing)",
            title="the same networks: ||dL_t/dh_k|| = lambda^(t-k) ||dL_t/dh_t||, nothing "
            "explodes\n(the sensitivity above diverges all the same)")
    mid.title.set_fontsize(9)
    mid.legend(fontsize=8)
    right.plot(ratio["memory"].to_numpy(), ratio["diagonal_ratio"].to_numpy(), "k-", lw=1.2,
               label="diagonal unit, raw d/dlambda: (1 + l^2)/(1 - l^2)^2")
    dense_rows = measured[(measured.part == "dense")].dropna(subset=["value"])
    for (label, g), (color, fmt) in zip(dense_rows.groupby("cell", sort=False), DENSE_STYLES):
        s = g.groupby("lam")[["memory", "value"]].agg(["mean", "std"])
        right.errorbar(s["memory"]["mean"], s["value"]["mean"], yerr=s["value"]["std"],
                       fmt=fmt + "-", color=color, ms=5, capsize=2, lw=0.8, label=label)
    right.set(xscale="log", yscale="log",
              xlabel="matched memory m = 1 / (1 - exp(decay rate))",
              ylabel="||ds/dW_hh||_F^2 / ||s||^2 (summed over the matrix)",
              title=f"dense cells at N = {setting['dense_N']}, white input (mean +- std over "
              f"{setting['dense_seeds']} seeds)")
    right.title.set_fontsize(9)
    right.legend(fontsize=7)
    path = out_dir / "curse_of_memory.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
