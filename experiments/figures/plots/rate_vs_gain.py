"""rate-vs-gain, drawn from its tables: per panel the measured rates against sigma_w (redrawn
extrapolated to N -> infinity, redrawn at the larger N, one fixed W; mean and sd over seeds)
beside the mean-field curve, and every panel's deviation from mean field.

Reads rate_vs_gain_summary.csv (per panel and sigma_w: the seeds' mean and sd of each estimate,
the mean-field rate) and rate_vs_gain_theory.csv (the mean-field curve per panel);
rate_vs_gain.csv (every seed's rate) is the table behind the summary.
"""
from __future__ import annotations

from pathlib import Path

from rnnlab.plotting import plt

FIGURE = "rate-vs-gain"
TABLES = ("rate_vs_gain_summary.csv", "rate_vs_gain_theory.csv")


def draw(tables: dict, out_dir: Path) -> Path:
    summary, curves = (tables[name] for name in TABLES)
    fig, axes = plt.subplots(1, 4, figsize=(20, 4.4))
    for i, (ax, panel) in enumerate(zip(axes, summary["panel"].unique())):
        m = summary[summary["panel"] == panel]
        mf = m["mean_field_rate"].to_numpy()
        axes[3].errorbar(m.sigma_w, m.extrapolated - mf, yerr=m.extrapolated_std, fmt="o",
                         color=f"C{i}", ms=5, capsize=2, label=f"{panel}: redrawn, N -> inf")
        axes[3].plot(m.sigma_w, m.quenched - mf, "s--", mfc="none", color=f"C{i}", ms=5,
                     lw=0.8, label=f"{panel}: one fixed W, N = {int(m.N_big.iloc[0])}")
        curve = curves[curves["panel"] == panel]
        ax.plot(curve["sigma_w"], curve["mean_field_rate"], "k-", lw=1,
                label=r"mean field $\frac{1}{2}\log\chi$")
        n = int(m.N_big.iloc[0])
        for key, fmt, fill, text in (("extrapolated", "o", None, "redrawn, N -> inf"),
                                     ("annealed", "^", "none", f"redrawn, N = {n}"),
                                     ("quenched", "s", "none", f"one fixed W, N = {n}")):
            ax.errorbar(m.sigma_w, m[key], yerr=m[f"{key}_std"], fmt=fmt, mfc=fill, ms=5,
                        capsize=2, label=text)
        ax.axhline(0, color="0.5", lw=0.6, ls=":")
        ax.set_title(panel, fontsize=10)
        ax.set_xlabel(r"gain $\sigma_w$ (W$_{ij}$ ~ N(0, $\sigma_w^2$/N))")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("rate: slope of ln r over lags 1-50 (nats per step)")
    axes[3].axhline(0, color="k", lw=0.6)
    axes[3].set(xlabel=r"gain $\sigma_w$", ylabel="measured - mean field (nats per step)",
                title="deviation from mean field")
    axes[3].title.set_fontsize(10)
    axes[3].legend(fontsize=6, loc="lower left")
    fig.suptitle(f"mean, sd of {int(summary['seeds'].max())} seeds; mean field is the N -> inf "
                 "limit of weights redrawn every step (filled); one fixed W (squares) is a "
                 "finding", fontsize=9)
    path = out_dir / "rate_vs_gain.png"
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return path
