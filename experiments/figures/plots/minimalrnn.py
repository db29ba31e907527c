"""minimalrnn, drawn from its tables: the decay rate against sigma_w at each gate bias (redrawn
extrapolated to N -> infinity, redrawn and one fixed W at the larger N; mean and sd over seeds)
beside the mean-field curve (left); the quenched - annealed gap against the fixed network's
gate-input autocorrelation (right).

Reads minimalrnn_summary.csv (per mu_b and sigma_w the seeds' statistics, the gap and the gate
correlation) and minimalrnn_theory.csv (1/2 ln chi against sigma_w per mu_b); minimalrnn.csv
(every seed's rate) is the table behind the summary.
"""
from __future__ import annotations

from pathlib import Path

from rnnlab.plotting import plt

FIGURE = "minimalrnn"
TABLES = ("minimalrnn_summary.csv", "minimalrnn_theory.csv")
COLOURS = ("C0", "C3")  # per gate bias, in increasing order


def draw(tables: dict, out_dir: Path) -> Path:
    summary, curves = (tables[name] for name in TABLES)
    fig, (ax, right) = plt.subplots(1, 2, figsize=(13.5, 4.8), constrained_layout=True,
                                    gridspec_kw={"width_ratios": [1.4, 1]})
    for mu, color in zip(sorted(summary.mu_b.unique()), COLOURS):
        curve = curves[curves.mu_b == mu]
        ax.plot(curve["sigma_w"].to_numpy(), curve["mean_field_rate"].to_numpy(), "-",
                color=color, lw=1.2, label=f"mean field 1/2 ln chi, mu_b = {mu:g}")
        m = summary[summary.mu_b == mu]
        x, n = m["sigma_w"].to_numpy(), int(m["N_big"].iloc[0])
        for key, fmt, fill, text in (
                ("extrapolated", "o", color, "redrawn, N -> inf"),
                ("annealed", "^", "none", f"redrawn, N = {n}"),
                ("quenched", "s", "none", f"one fixed W, N = {n}")):
            ax.errorbar(x, list(m[key]), yerr=list(m[f"{key}_std"]), fmt=fmt, mfc=fill,
                        color=color, ms=5, capsize=2, label=f"{text}, mu_b = {mu:g}")
        right.errorbar(m["gate_correlation"], list(m["gap"]), xerr=m["gate_correlation_std"],
                       yerr=list(m["gap_se"]), fmt="o", color=color, ms=5, capsize=2,
                       label=f"mu_b = {mu:g}")
        for v, cx, g in zip(x, m["gate_correlation"], m["gap"]):
            right.annotate(f"{v:g}", (cx, g), textcoords="offset points",
                           xytext=(4, 3), fontsize=7, color=color)
    ax.axhline(0, color="0.6", lw=0.6)
    ax.set(xlabel="sigma_w (recurrent gate weights W_ij ~ N(0, sigma_w^2 / N))",
           ylabel="decay rate of ||dL_t/dh_k|| (nats per step)",
           title=f"minimalRNN, {int(summary['seeds'].max())} seeds (mean +- std): mean field is "
           "the N -> inf limit of\nweights redrawn every step (filled); one fixed W (squares) is "
           "a finding")
    ax.title.set_fontsize(9)
    ax.legend(fontsize=7, ncols=2)
    right.axhline(0, color="0.6", lw=0.6)
    right.set(xlabel="lag-1 autocorrelation of the gate input W h + W_z z, one fixed W "
              "(redrawn: 0)", ylabel=f"fixed W minus redrawn rate, N = {n} (nats per step)",
              title="the quenched gap beside the gate's memory\n(labels: sigma_w; mean +- SE over "
              "seeds)")
    right.title.set_fontsize(9)
    right.xaxis.label.set_fontsize(8)
    right.legend(fontsize=7)
    path = out_dir / "minimalrnn.png"
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path
