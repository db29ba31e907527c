"""isometry, drawn from its tables: the singular-value densities of the product at depth L per
activation (top), the spectral variance and mean eigenvalue against depth, and the largest
singular value of critical linear Gaussian products against the Fuss-Catalan edge (bottom).

Reads isometry_density.csv (per activation and weights the histogram of log10 sigma at depth L,
fresh weights), isometry_moments.csv (mean and scale-free variance per activation, weights,
setting and depth, with theory), isometry_edge.csv (sigma_max per N and extrapolated) and
isometry_theory.csv (the Fuss-Catalan edge against L).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from rnnlab.plotting import plt

FIGURE = "isometry"
TABLES = ("isometry_density.csv", "isometry_moments.csv", "isometry_edge.csv",
          "isometry_theory.csv")
FRESH, TIED = "fresh (paper)", "tied (RNN)"  # the moments' settings
MARKERS = "os"  # per weights, in the density table's order


def draw(tables: dict, out_dir: Path) -> Path:
    density, table, edge, theory = (tables[name] for name in TABLES)
    L, N = int(density["L"].iloc[0]), int(density["N"].iloc[0])
    activations = list(density["activation"].unique())
    low = float(density["log10_sigma_low"].min())

    # figure: densities at L (markers), variance and mean vs depth (theory lines), edge
    fig, axes = plt.subplots(2, 3, figsize=(16, 9), gridspec_kw={"hspace": 0.35})
    fresh = table[table["setting"] == FRESH]
    tied = table[table["setting"] == TIED]
    for ax, activation in zip(axes[0], activations):
        mine = density[density["activation"] == activation]
        for weights, marker in zip(mine["weights"].unique(), MARKERS):
            d = mine[mine["weights"] == weights]
            r = fresh[(fresh["activation"] == activation) & (fresh["weights"] == weights)
                      & (fresh["L"] == L)].iloc[0]
            centre = (0.5 * (d["log10_sigma_high"] + d["log10_sigma_low"])).to_numpy()
            dens = d["density"].to_numpy()
            ax.plot(centre[dens > 0], dens[dens > 0], marker, ms=3.5, ls="none",
                    label=f"{weights}: var {r['variance']:.2f} (theory {r['variance_theory']:.2f})")
        ax.axvline(0, color="k", lw=0.8, label=r"isometry $\sigma = 1$")
        if activation == "linear":
            top = edge.loc[edge["L"] == L, "edge_theory"].iloc[0]
            ax.axvline(np.log10(top), color="C1", lw=0.8, label="Fuss-Catalan edge (Gaussian)")
        sigma_w = fresh.loc[fresh["activation"] == activation, "sigma_w"].iloc[0]
        ax.set_title(f"{activation}, sigma_w = {sigma_w:.4g}, L = {L}, N = {N}", fontsize=10)
        ax.set_xlabel(r"$\log_{10}\sigma$ (singular value of $\partial h_L/\partial h_0$)")
        ax.set_ylabel(r"density per unit $\log_{10}\sigma$")
        ax.set_yscale("log")
        ax.legend(fontsize=7, title=f"leftmost bin: all sigma <= 1e{low:.0f} (exact zeros: "
                  "relu's dead units)", title_fontsize=6)
    depth_line = np.linspace(0, L, 50)
    pairs = fresh[["activation", "weights"]].drop_duplicates().itertuples(index=False)
    for i, (activation, weights) in enumerate(pairs):
        color = f"C{i}"
        sel = (fresh["activation"] == activation) & (fresh["weights"] == weights)
        f, t = fresh[sel], tied[(tied["activation"] == activation) & (tied["weights"] == weights)]
        per_layer = f["variance_theory"].iloc[0] / f["L"].iloc[0]
        axes[1, 0].plot(depth_line, per_layer * depth_line, color=color, lw=1)
        axes[1, 0].errorbar(f["L"], f["variance"], 2 * f["variance_se"], fmt="o", color=color,
                            ms=4, label=f"{activation} {weights}")
        axes[1, 0].plot(t["L"], t["variance"], "x", color=color, ms=6)
        axes[1, 1].errorbar(f["L"] * 2 ** (0.05 * (i - 2.5)), f["mean"], 2 * f["mean_se"],
                            fmt="o", color=color, ms=4,
                            label=f"{activation} {weights}")
    axes[1, 0].set_xlabel("L (number of factors)")
    axes[1, 0].set_ylabel(r"var($\lambda$)/mean($\lambda$)$^2$, $\lambda$ eig. of $JJ^T$")
    axes[1, 0].set_title("spectral variance: lines theory, o fresh W (+-2 SE), x tied W",
                         fontsize=9)
    axes[1, 0].legend(fontsize=7)
    axes[1, 1].axhline(1.0, color="k", lw=1, label=r"theory $\chi^L = 1$")
    axes[1, 1].set_xscale("log", base=2)
    axes[1, 1].set_xlabel("L (number of factors)")
    axes[1, 1].set_ylabel(r"mean($\lambda$) (dimensionless)")
    axes[1, 1].set_title("mean eigenvalue of JJ^T, fresh W (+-2 SE)", fontsize=9)
    axes[1, 1].legend(fontsize=7)
    axes[1, 2].plot(theory["L"], theory["fuss_catalan_edge"], "k-", lw=1,
                    label=r"$\sqrt{(L+1)^{L+1}/L^L}$ (N $\to\infty$)")
    for (N_edge, e), marker in zip(edge.groupby("N"), "v^<>os"):
        name = (r"extrapolated N $\to\infty$ (+-2 SE)" if N_edge == math.inf
                else f"N = {int(N_edge)}")
        axes[1, 2].errorbar(e["L"], e["sigma_max_mean"], 2 * e["sigma_max_se"], fmt=marker,
                            ms=5, label=name, color="k" if N_edge == math.inf else None)
    axes[1, 2].set_xlabel("L (number of factors)")
    axes[1, 2].set_ylabel(r"$\sigma_{max}$ (dimensionless)")
    axes[1, 2].set_title("largest singular value, critical linear Gaussian product", fontsize=9)
    axes[1, 2].legend(fontsize=7)
    fig.suptitle("Dynamical isometry (Pennington, Schoenholz, Ganguli 2017): "
                 "J = prod D_l W_l at criticality, fresh W_l per factor")
    path = out_dir / "isometry.png"
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
