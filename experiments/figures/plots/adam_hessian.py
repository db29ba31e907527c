"""adam-hessian, drawn from its tables: Adam's effective learning rate per parameter group at
the end of training (left), the recurrent parameters' effective learning rate during training
(second), the Hessian spectra at the optimum (third) and the participation ratio of its
eigenvectors (right); Zucchet & Orvieto 2024, Fig. 4.

Reads effective_lr_final.csv (per student, group and seed the end-of-training log10 of both
statistics), effective_lr_recurrent.csv (the recurrent groups, A and lam, at every checkpoint)
and hessian.csv (per seed, student and rank: eigenvalue and participation ratio).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from rnnlab.plotting import plt

FIGURE = "adam-hessian"
TABLES = ("effective_lr_final.csv", "effective_lr_recurrent.csv", "hessian.csv")
RANKS = 10  # the eigenvectors whose participation ratio is drawn (their figure shows 10)
FLOOR = 1e-10  # eigenvalues at or below rounding (the flat directions) are drawn at this floor
COLOURS = {"dense": "C3", "diagonal": "C0", "diagonal-polar": "C2", "lru": "C1"}


def draw(tables: dict, out_dir: Path) -> Path:
    final, curve, hess = (tables[name] for name in TABLES)
    fig, axes = plt.subplots(1, 4, figsize=(20, 4.8), constrained_layout=True)
    ax = axes[0]
    students = list(dict.fromkeys(final.student))
    x0 = 0
    ticks, labels = [], []
    for name in students:
        f = final[final.student == name]
        groups = [g for g in dict.fromkeys(f.group) if g != "lam"]
        for i, g in enumerate(groups):
            v = f[f.group == g].log10_lr_unit
            ax.errorbar(x0 + i, v.mean(), yerr=v.std(ddof=1) if len(v) > 1 else 0, fmt="o",
                        color=COLOURS.get(name, "k"), ms=5, capsize=2,
                        label=name if i == 0 else None)
            ticks.append(x0 + i)
            labels.append(g)
        x0 += len(groups) + 1
    ax.axhline(-3, color="0.6", zorder=-1)
    ax.set_xticks(ticks, labels, rotation=90, fontsize=7)
    steps = int(final.step.max())
    ax.set(ylabel="log10 effective lr (their statistic)",
           title=f"end of training ({steps} steps), mean +- SD over {final.seed.nunique()} "
           "seeds")
    ax.title.set_fontsize(9)
    ax.legend(fontsize=7, loc="lower left")
    ax = axes[1]
    for (name, group), c in curve.groupby(["student", "group"], sort=False):
        m = c.groupby("step").lr_unit.apply(lambda v: np.log10(v).mean())
        ax.plot(m.index, m.to_numpy(), color=COLOURS.get(name, "k"), lw=1.2,
                label=f"{name}: {group}")
    ax.axhline(-3, color="0.6", zorder=-1)
    ax.set(xlabel="Adam step", ylabel="log10 effective lr (mean over seeds)",
           title="recurrent parameters during training")
    ax.title.set_fontsize(9)
    ax.legend(fontsize=7)
    for name, h in hess.groupby("student", sort=False):
        s = h.groupby("rank")
        w = s.eigenvalue.apply(lambda v: np.log10(np.clip(v, FLOOR, None)).mean())
        axes[2].plot(w.index, w.to_numpy(), "o-", ms=3, color=COLOURS.get(name, "k"),
                     label=name)
        pr = h[h["rank"] <= RANKS].groupby("rank").participation_ratio
        axes[3].errorbar(pr.mean().index, pr.mean(), yerr=pr.std(ddof=1), fmt="o-", ms=3,
                         capsize=2, color=COLOURS.get(name, "k"), label=name)
    n = hess.seed.nunique()
    axes[2].set(xlabel="eigenvalue rank",
                ylabel=f"log10 eigenvalue (mean over seeds; clipped at {FLOOR:g})",
                title=f"Hessian at the optimum, hidden-4 teacher ({n} seeds)")
    axes[3].set(xlabel="eigenvalue rank", ylabel="participation ratio (sum v^2)^2 / sum v^4",
                title=f"coordinates (of 25) each top-{RANKS} eigenvector occupies, mean +- SD")
    for ax in axes[2:]:
        ax.title.set_fontsize(9)
        ax.legend(fontsize=7)
    path = out_dir / "adam_hessian.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
