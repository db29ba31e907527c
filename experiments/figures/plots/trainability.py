"""trainability, drawn from its tables: the success rate against T per arch (Adam), with and
without clipping (SGD), for the exploding init (SGD, with the pooled gain of clipping), and the
initial decay rate of Pascanu's inits against their population means.

Reads trainability_success.csv (per task, arch, optimizer, clipping and T: seeds and success
rate), trainability_exploding.csv (the pooled gain of clipping on the exploding init; no row
when its sweep is absent), initial_decay.csv (the initial decay rate per init and network) and
initial_decay_reference.csv (per init its population mean and standard error, and the protocol's
length and width). Arch colours and labels are the presets of rnnlab.train.archs.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from rnnlab.plotting import plt
from rnnlab.train.archs import colour_table
from rnnlab.train.archs import label as arch_label

FIGURE = "trainability"
TABLES = ("trainability_success.csv", "trainability_exploding.csv", "initial_decay.csv",
          "initial_decay_reference.csv")
ORDERING_TASK = "temporal_order"  # the task of the success panels


def draw(tables: dict, out_dir: Path) -> Path:
    success, boom_table, rates, reference = (tables[name] for name in TABLES)
    exploding = boom_table["arch"].iloc[0] if len(boom_table) else None
    colours = colour_table()
    fig, axes = plt.subplots(1, 4, figsize=(19, 3.8))
    adam = success[(success["optimizer"] == "adam") & (success["task"] == ORDERING_TASK)]
    for i, (arch, g) in enumerate(adam.groupby("arch")):
        g = g.sort_values("length")
        axes[0].plot(g["length"], g["success_rate"], marker="o", ms=max(11 - 2 * i, 3),
                     color=colours.get(arch), label=arch_label(arch))
    axes[0].set_title("temporal order, Adam 1e-3, clip 1", fontsize=9)
    sgd = success[(success["optimizer"] == "sgd") & (success["arch"] != exploding)]
    for i, ((arch, clip), g) in enumerate(sgd.groupby(["arch", "clip_label"])):
        g = g.sort_values("length")
        # success rates are exact fractions, so lines coincide: shrinking markers drawn on top
        # of each other keep every line visible without moving a point off its value
        axes[1].plot(g["length"], g["success_rate"], marker="o" if clip == "clip 1" else "X",
                     ms=max(11 - 1.5 * i, 3), mfc="none" if clip == "clip 1" else None,
                     ls="-" if clip == "clip 1" else "--", color=colours.get(arch),
                     label=f"{arch_label(arch)}, {clip}")
    axes[1].set_title("temporal order, SGD 0.1: clip 1 (solid) vs none (dashed)", fontsize=9)
    # claim 2b: the exploding init, success rate +- its binomial SE sqrt(p (1 - p) / seeds)
    boom = success[(success["optimizer"] == "sgd") & (success["arch"] == exploding)]
    for clip, g in boom.groupby("clip_label"):
        g = g.sort_values("length")
        p, n = g["success_rate"].to_numpy(float), g["seeds"].to_numpy(float)
        shift = 1.03 if clip == "clip 1" else 1 / 1.03  # side by side on the log axis
        axes[2].errorbar(g["length"] * shift, p, yerr=np.sqrt(p * (1 - p) / n),
                         marker="o" if clip == "clip 1" else "X", capsize=3,
                         ls="-" if clip == "clip 1" else "--",
                         color="k" if clip == "clip 1" else "C3",
                         label=f"{clip} ({int(n.min())} seeds per T)")
    rho = boom_table["spectral_radius"].iloc[0] if len(boom_table) else ""
    title = f"SGD 0.1, tanh W = {rho} Q at init (exploding): +- binomial SE"
    if len(boom_table) and boom_table["both_arms"].iloc[0]:
        g = boom_table.iloc[0]
        title += (f"\npooled over T: D = {g['k_c']}/{g['n_c']} - {g['k_n']}/{g['n_n']} = "
                  f"{g['D']:+.2f}, SE0 = {g['se0']:.3f}, z = {g['z']:.1f}")
    axes[2].set_title(title, fontsize=9)
    for ax, part in zip(axes[:3], (adam, sgd, boom)):
        if part.empty:
            continue
        ax.set_xscale("log")
        ts = sorted(part["length"].unique())
        ax.set_xticks(ts, [str(int(t)) for t in ts])
        ax.minorticks_off()
        ax.set_xlabel("T")
        ax.set_ylabel("success rate (fraction of seeds)")
        ax.set_ylim(-0.05, 1.05)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    ax = axes[3]
    for i, r in enumerate(reference.itertuples()):
        mine = rates.loc[rates["init"] == r.init, "decay_rate"]
        ax.errorbar([i - 0.1], [r.mean], yerr=[3 * r.se], fmt="s", color="k", capsize=3,
                    label="population mean" if i == 0 else None)
        ax.errorbar([i + 0.1], [mine.mean()], yerr=[3 * mine.std(ddof=1) / np.sqrt(len(mine))],
                    fmt="o", color="C3", capsize=3,
                    label="measured (exact engine)" if i == 0 else None)
    ax.set_yscale("symlog", linthresh=0.05)
    ax.set_xticks(range(len(reference)), list(reference["name"]))
    ax.set_ylabel("initial decay rate (nats/step), mean +- 3 SE")
    n = int(rates.groupby("init").size().min())
    ax.set_title(f"temporal order, L = {reference['length'].iloc[0]}, N = "
                 f"{reference['hidden_size'].iloc[0]}, {n} networks per init", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = out_dir / "trainability.png"
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return path
