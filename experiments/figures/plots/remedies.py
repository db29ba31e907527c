"""remedies, drawn from its tables: Engelken's README network's Lyapunov spectrum before and after
flossing, its exponents after flossing against the window length, and, where the remedies sweep
is committed, the success rate against T per remedy (with the GRU and IRNN of the trainability
sweep) and lambda_1, lambda_4 and the decay rate against the update.

Reads flossed_spectrum.csv (per exponent i the mean and sd over networks of each estimate:
before flossing, the objective, settled windows of each length), remedies_settings.csv (width,
networks, flossing updates, the objective's window), success.csv (per remedy and T),
remedies_references.csv (per arch and T, the trainability cells sweep) and remedies_curves.csv
(per remedy and update at T = 50 the seed means of lambda_1, lambda_4 and the decay rate); the
last three have no rows when the sweep is not there (quick mode): two panels then.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from rnnlab.plotting import plt

FIGURE = "remedies"
TABLES = ("flossed_spectrum.csv", "remedies_settings.csv", "success.csv",
          "remedies_references.csv", "remedies_curves.csv")
REMEDIES = ("none", "omega", "floss_pre", "floss_during", "orthogonal")  # colours C0..C4
REFERENCE_ARCHS = {"gru": "k--", "irnn": "k:"}  # the trainability sweep's archs drawn, styles
EXPONENTS = (0, 3, -1)  # lambda_1, lambda_4 and the last, against the window length


def draw(tables: dict, out_dir: Path) -> Path:
    spectrum, settings, success, references, curves = (tables[name] for name in TABLES)
    setting = settings.to_dict("records")[0]
    n, window = setting["networks"], setting["window"]
    windows = sorted(int(m.group(1)) for c in spectrum.columns
                     if (m := re.fullmatch(r"settled_(\d+)_mean", c)))
    longest = max(windows)
    mean = lambda key: spectrum[f"{key}_mean"].to_numpy()
    sem = lambda key: spectrum[f"{key}_std"].to_numpy() / math.sqrt(n)
    settled = f"settled_{longest}"
    panels = 5 if len(success) else 2
    fig, axes = plt.subplots(1, panels, figsize=(4.6 * panels, 4.2), squeeze=False,
                             constrained_layout=True)
    axes = axes[0]
    i = spectrum["i"].to_numpy()
    k = len(i)
    axes[0].errorbar(i, mean("before"), yerr=sem("before"), fmt="o", ms=4, capsize=2,
                     label=f"before flossing ({longest}-step windows, settled)")
    axes[0].errorbar(i - 0.15, mean("objective"), yerr=sem("objective"), fmt="s", ms=4,
                     capsize=2, label=f"after: the objective ({window} steps from h = 0)")
    axes[0].errorbar(i + 0.15, mean(settled), yerr=sem(settled), fmt="^",
                     ms=4, capsize=2, label=f"after: {longest}-step windows, settled")
    axes[0].axhline(0, color="k", lw=0.6)
    axes[0].set(xlabel="i", ylabel=r"$\lambda_i$ (nats per step; bars: SE over networks)",
                title=f"README network (N = {setting['N']}), {n} networks, "
                      f"{setting['floss_steps']} flossing updates")
    axes[0].title.set_fontsize(9)
    axes[0].legend(fontsize=7, loc="lower left")
    inset = axes[0].inset_axes([0.1, 0.45, 0.88, 0.3])  # the flossed exponents, near 0
    inset.errorbar(i - 0.15, mean("objective"), yerr=sem("objective"), fmt="s", ms=3,
                   capsize=2, color="C1")
    inset.errorbar(i + 0.15, mean(settled), yerr=sem(settled), fmt="^", ms=3, capsize=2,
                   color="C2")
    inset.axhline(0, color="k", lw=0.6)
    inset.tick_params(labelsize=6)
    inset.set_title("after flossing (zoom)", fontsize=7)
    ax, lengths = axes[1], np.array(windows)
    for j, idx in enumerate(e % k for e in EXPONENTS):
        ax.errorbar(lengths, [mean(f"settled_{w}")[idx] for w in windows],
                    yerr=[sem(f"settled_{w}")[idx] for w in windows],
                    fmt="o-", ms=4, capsize=2, color=f"C{j}",
                    label=rf"$\lambda_{{{idx + 1}}}$, settled, discard 10 + ceil(T/10)")
        ax.errorbar([0.9 * window], [mean("objective")[idx]], yerr=[sem("objective")[idx]],
                    fmt="s", ms=6, mfc="none", capsize=2, color=f"C{j}")
    ax.plot([], [], "ks", mfc="none", label=f"the objective ({window} steps from h = 0)")
    ax.axhline(0, color="k", lw=0.6)
    ax.set(xscale="log", xlabel="window T (steps)", ylabel="nats per step (SE over networks)",
           title="after flossing: exponents against the window length")
    ax.title.set_fontsize(9)
    ax.legend(fontsize=7)
    if len(success):
        draw_sweep(success, references, curves, axes[2:])
    path = out_dir / "remedies.png"
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def draw_sweep(success, references, curves, axes) -> None:
    ax = axes[0]
    for j, remedy in enumerate(REMEDIES):
        g = success[success.remedy == remedy].sort_values("length")
        ax.plot(g.length, g.success_rate, "o-", color=f"C{j}", label=remedy)
    for arch, style in REFERENCE_ARCHS.items():
        g = references[references.arch == arch].sort_values("length")
        ax.plot(g.length, g.success_rate, style, label=f"{arch} (trainability sweep)")
    ax.set(xscale="log", xlabel="T (temporal order)", ylabel="seeds solved (fraction)",
           title="success against T (tanh, PyTorch init)")
    ax.title.set_fontsize(9)
    ax.legend(fontsize=7)
    T = int(curves["length"].iloc[0])
    for ax, column, title in (
            (axes[1], "lyap_1", rf"$\lambda_1$ and $\lambda_4$ (dashed), T = {T}"),
            (axes[2], "decay_rate", f"decay rate of the last-step loss, T = {T}")):
        for j, remedy in enumerate(REMEDIES):
            g = curves[curves.remedy == remedy]
            ax.plot(g["step"].to_numpy(), g[column].to_numpy(), "-", color=f"C{j}",
                    label=remedy)
            if column == "lyap_1":
                ax.plot(g["step"].to_numpy(), g["lyap_4"].to_numpy(), "--", color=f"C{j}")
        ax.axhline(0, color="k", lw=0.6)
        ax.set(xlabel="update", ylabel="nats per step (mean of 3 seeds)", title=title)
        ax.title.set_fontsize(9)
        ax.legend(fontsize=7)
