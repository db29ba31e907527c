"""lyapunov, drawn from its tables: lambda_1 against the gain at two noise levels beside
1/2 log chi (left), the deviations from it with the backward rate's (middle), and the spectrum of
i.i.d. Gaussian products against Newman's law (right).

Reads lyapunov_summary.csv (per s_in^2 and sigma_w the seeds' mean and sd of each estimate and
the mean-field rate), lyapunov_theory.csv (1/2 log chi against sigma_w and the critical gain per
s_in^2), forward_backward.csv, newman_spectrum.csv and lyapunov_settings.csv (the products'
batch and steps, the backward rows' N); lambda_vs_gain.csv (every seed) is the table behind the
summary.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from rnnlab.plotting import plt

FIGURE = "lyapunov"
TABLES = ("lyapunov_summary.csv", "lyapunov_theory.csv", "forward_backward.csv",
          "newman_spectrum.csv", "lyapunov_settings.csv")
COLOURS = ("tab:blue", "tab:red")  # one per noise level, in increasing order


def seeds_label(m) -> str:
    """'10 seeds (20 at 0.8, 2)': the usual number of seeds of a noise level's points and the
    gains with another."""
    usual = int(m["seeds"].mode().iloc[0])
    other = m[m["seeds"] != usual].groupby("seeds")["sigma_w"]
    return f"{usual} seeds" + "".join(f" ({n} at {', '.join(f'{g:g}' for g in gains)})"
                                      for n, gains in other)


def draw(tables: dict, out_dir: Path) -> Path:
    summary, curves, bw, spectra, settings = (tables[name] for name in TABLES)
    settings = settings.to_dict("records")[0]
    n = len(spectra)
    i, spectrum, newman = (spectra[k].to_numpy() for k in ("i", "measured", "newman"))
    big = int(summary.N_big.iloc[0])

    fig, axes = plt.subplots(1, 3, figsize=(16.5, 4.3), gridspec_kw={"wspace": 0.3})
    for s_in2, color in zip(sorted(summary.s_in2.unique()), COLOURS):
        m = summary[summary.s_in2 == s_in2]
        curve = curves[curves.s_in2 == s_in2]
        mf = m["mean_field_rate"].to_numpy()
        se = m.extrapolated_std / np.sqrt(m.seeds)  # the seed mean's standard error
        axes[0].plot(curve["sigma_w"], curve["mean_field_rate"], color=color, lw=1,
                     label=rf"$\frac{{1}}{{2}}\log\chi$, $s_{{in}}^2$ = {s_in2}")
        axes[0].errorbar(m.sigma_w, m.extrapolated, yerr=se, fmt="o", ms=4,
                         capsize=2, color=color, label=r"$\lambda_1$ redrawn, N -> inf, "
                         + seeds_label(m))
        axes[0].plot(m.sigma_w, m.quenched, "s", mfc="none", ms=5, color=color,
                     label=rf"$\lambda_1$ one fixed W, N = {big}")
        axes[0].axvline(curve["critical_sigma_w"].iloc[0], color=color, lw=0.6, ls=":")
        axes[1].errorbar(m.sigma_w, m.extrapolated - mf, yerr=se, fmt="o-",
                         color=color, ms=4, capsize=2,
                         label=rf"redrawn, N -> inf, $s_{{in}}^2$ = {s_in2}")
        axes[1].plot(m.sigma_w, m.quenched - mf, "s--", mfc="none", color=color, ms=5, lw=0.8,
                     label=rf"one fixed W, N = {big}, $s_{{in}}^2$ = {s_in2}")
    axes[1].plot(bw.sigma_w, bw.backward_rate - bw.lambda_1, "kx", ms=8,
                 label=f"backward rate - forward, one fixed W, N = {settings['backward_N']}")
    axes[0].axhline(0, color="0.5", lw=0.6)
    axes[0].set_ylabel("rate (nats per step)")
    axes[0].set_title("largest Lyapunov exponent (dotted: critical gains)", fontsize=10)
    axes[1].axhline(0, color="k", lw=0.6)
    axes[1].set_ylabel("measured - 1/2 log chi (nats per step)")
    axes[1].set_title("deviations: annealed (filled; bars: SE of the seed mean)\n"
                      "and quenched (open)", fontsize=10)
    for ax in axes[:2]:
        ax.set_xlabel(r"gain $\sigma_w$")
    axes[0].legend(fontsize=7)
    # below the panel: inside it the legend hid the quenched points at small gain
    axes[1].legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    axes[2].plot(i / n, newman, "k-", lw=1, label="Newman 1986")
    axes[2].plot(i / n, spectrum, "o", ms=3, label=f"QR method, {settings['newman_batch']} x "
                 f"{settings['newman_steps']} products")
    axes[2].set_xlabel("i / N")
    axes[2].set_ylabel(r"$\lambda_i$ (nats per step)")
    axes[2].set_title(f"i.i.d. Gaussian products, N = {n}, entry variance 1/N", fontsize=10)
    axes[2].legend(fontsize=7)
    path = out_dir / "lyapunov.png"
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return path
