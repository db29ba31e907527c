"""truncation, drawn from its tables: for one linear unit h_t = lambda h_{t-1} + x_t with white
input, the share of E[(dh/dlambda)^2] from input lags >= K (left) and the share that truncated
backpropagation over K steps leaves out (right), against K, closed forms as lines and the
engine's measurements as markers (mean +- n_se standard errors).

Reads truncation_summary.csv (per share, lambda and K: measured, its standard error, the units,
the closed forms), truncation_theory.csv (both shares for K = 1..400, at the measured T and
stationary) and truncation_settings.csv (T, n_se, the sequences, the group);
truncation.csv (every unit) is the record the summary is made from.
"""
from __future__ import annotations

from pathlib import Path

from rnnlab.plotting import plt

FIGURE = "truncation"
TABLES = ("truncation.csv", "truncation_summary.csv", "truncation_theory.csv",
          "truncation_settings.csv")
COLOURS = ("C0", "C3")  # per lambda, in the theory table's order
PANELS = {  # share: (title, y label)
    "input": ("from input lags j >= K:\nsum_{j>=K} j^2 lambda^(2(j-1)) / sum_{j>=1} (same)",
              "share of E[(dh/dlambda)^2]"),
    "residual": ("left out by truncated BPTT over K steps (Jacobian lags >= K):\n"
                 "E[R_K^2] / E[(dh/dlambda)^2], R_K = lambda^K dh_{t-K}/dlambda",
                 "share of E[(dh/dlambda)^2]"),
}


def draw(tables: dict, out_dir: Path) -> Path:
    _, summary, closed, settings = (tables[name] for name in TABLES)
    setting = settings.to_dict("records")[0]
    n_se = setting["n_se"]
    units = {"input": f"groups of {setting['group']} sequences", "residual": "sequences"}
    fig, axes = plt.subplots(2, 2, figsize=(13, 9), constrained_layout=True)
    for col, (share, (title, ylabel)) in enumerate(PANELS.items()):
        c = closed[closed.share == share]
        for row, log in enumerate((False, True)):
            ax = axes[row, col]
            for (lam, g), colour in zip(c.groupby("lam"), COLOURS):
                ax.plot(g.K.to_numpy(), g.finite_T.to_numpy(), "-", color=colour, lw=1.4,
                        label=f"closed form, lambda = {lam:g} (T = {setting['T']})")
                ax.plot(g.K.to_numpy(), g.stationary.to_numpy(), ":", color="k", lw=0.9,
                        label="stationary (T -> infinity)" if lam == c.lam.iloc[-1] else None)
                s = summary[(summary.share == share) & (summary.lam == lam)]
                ax.errorbar(s.K.to_numpy(), s.measured.to_numpy(),
                            yerr=n_se * s.se.to_numpy(), fmt="o", color=colour, ms=6,
                            capsize=3, label=f"measured, lambda = {lam:g} "
                            f"(n = {int(s.n.iloc[0])} {units[share]})")
            if log:
                ax.set(yscale="log", ylim=(1e-30, 3))
            else:
                ax.set(ylim=(0, 1.15), title=title)
                ax.title.set_fontsize(9)
            ax.set(xlabel="K (steps)", ylabel=ylabel + (" (log)" if log else ""))
            ax.legend(fontsize=7, loc="lower left" if log else "upper right")
    fig.suptitle(f"one linear unit h_t = lambda h_(t-1) + x_t, white unit input, last step of "
                 f"T = {setting['T']} steps: what lies K or more steps back "
                 f"(engine's measurement, mean +- {n_se:g} SE)", fontsize=10)
    path = out_dir / "truncation.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
