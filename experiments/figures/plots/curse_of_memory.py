"""curse-of-memory, drawn from its tables: the sensitivity of real diagonal LRUs against the
memory with the closed forms (left), their decay rate against ln lambda (middle), and dense cells'
sensitivity at matched memory beside the diagonal unit's (right).

Reads curse_of_memory.csv (every network: the diagonal sensitivities, the LRUs' decay rates and
the dense cells' ratios), curse_of_memory_theory.csv (the closed forms per case against lambda),
curse_of_memory_ratio.csv (the diagonal unit's ratio against the memory) and
curse_of_memory_settings.csv (the widths, the error bars' multiple, the dense cells' seeds).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from rnnlab.plotting import plt

FIGURE = "curse-of-memory"
TABLES = ("curse_of_memory.csv", "curse_of_memory_theory.csv", "curse_of_memory_ratio.csv",
          "curse_of_memory_settings.csv")
CASE_COLOURS = ("C3", "C0", "C2")  # per case, in the theory table's order
DENSE_STYLES = (("C1", "s"), ("C4", "^"), ("C5", "D"))  # per dense cell, in the table's order


def draw(tables: dict, out_dir: Path) -> Path:
    measured, closed, ratio, settings = (tables[name] for name in TABLES)
    setting = settings.to_dict("records")[0]
    n_se = setting["n_se"]
    fig, (left, mid, right) = plt.subplots(1, 3, figsize=(17, 5), constrained_layout=True)
    diag = measured[measured.part == "diagonal"]
    for (label, c), color in zip(closed.groupby("case", sort=False), CASE_COLOURS):
        param, normalize = c["parameter"].iloc[0], bool(c["normalize"].iloc[0])
        left.plot(c["memory"].to_numpy(), c["sensitivity"].to_numpy(), "-", color=color,
                  lw=1.2, label=f"closed form: {label}")
        g = diag[(diag.parameter == param) & (diag.normalize == normalize)].groupby("lam").value
        m = 1 / (1 - g.mean().index.to_numpy())
        left.errorbar(m, g.mean(), yerr=n_se * g.std(ddof=1) / np.sqrt(g.count()), fmt="o",
                      color=color, ms=5, capsize=2, label=f"measured: {label}")
    left.set(xscale="log", yscale="log", xlabel="memory m = 1 / (1 - lambda)",
             ylabel="E[(dh/dp)^2] per unit input variance",
             title=f"real diagonal LRU (N = {setting['N']}): measured (mean +- {n_se:g} SE, "
             f"{diag.seed.nunique()} networks)\nagainst the closed forms")
    left.title.set_fontsize(9)
    left.legend(fontsize=7)
    rate = measured[measured.part == "rate"]
    lam = closed.loc[closed["case"] == closed["case"].iloc[0], "lam"].to_numpy()
    # -ln lambda on log axes: the memories 2..1000 spread evenly instead of crowding at 0
    decay = -np.log(lam)
    mid.plot(decay, decay, "k-", lw=1, label="-ln lambda (exact)")
    mid.plot(-np.log(rate.lam), -rate.value, "o", color="C0", ms=6,
             label="measured: minus the decay rate")
    mid.set(xscale="log", yscale="log", xlabel="-ln lambda",
            ylabel="-(decay rate of ||dL_t/dh_k||) (nats per step; > 0: vanishing)",
            title="the same networks: ||dL_t/dh_k|| = lambda^(t-k) ||dL_t/dh_t||, nothing "
            "explodes\n(the sensitivity on the left diverges all the same)")
    mid.title.set_fontsize(9)
    mid.legend(fontsize=8)
    right.plot(ratio["memory"].to_numpy(), ratio["diagonal_ratio"].to_numpy(), "k-", lw=1.2,
               label="diagonal unit, plain d/dlambda: (1 + l^2)/(1 - l^2)^2")
    dense_rows = measured[(measured.part == "dense")].dropna(subset=["value"])
    for (label, g), (color, fmt) in zip(dense_rows.groupby("cell", sort=False), DENSE_STYLES):
        s = g.groupby("lam")[["memory", "value"]].agg(["mean", "std"])
        right.errorbar(s["memory"]["mean"], s["value"]["mean"], yerr=s["value"]["std"],
                       fmt=fmt + "-", color=color, ms=5, capsize=2, lw=0.8, label=label)
    right.set(xscale="log", yscale="log",
              xlabel="matched memory m = 1 / (1 - exp(decay rate))",
              ylabel="||ds/dW_hh||_F^2 / ||s||^2 (summed over the matrix)",
              title=f"dense cells at N = {setting['dense_N']} (mean +- std over "
              f"{setting['dense_seeds']} seeds)")
    right.title.set_fontsize(9)
    right.legend(fontsize=7)
    path = out_dir / "curse_of_memory.png"
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path
