"""Seaborn figures of sweeps and single runs, PNG and PDF, headless.

Measurements are markers, theory lines; axes carry units (log10 for gradient ratios, nats per
step for rates).
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402


RATIO_LABEL = r"$\log_{10}\,\|\partial L_t/\partial h_k\| \,/\, \|\partial L_t/\partial h_t\|$"
RATE_LABEL = "decay rate (nats per step)"


def save(fig, path: Path) -> list[Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    out = [path.with_suffix(".png"), path.with_suffix(".pdf")]
    for p in out:
        fig.savefig(p, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return out


def _gain_axis(runs: pd.DataFrame) -> str | None:
    for key in ("model.spectral_radius", "model.gain"):
        if key in runs and runs[key].notna().any() and runs[key].nunique() > 1:
            return key
    return None


def decay_curves(lags: pd.DataFrame, x_key: str, path: Path) -> list[Path]:
    """log10 ratio against lag: hue rho (or sigma_w), columns activation, rows T."""
    mean = (lags.groupby(["model.activation", "data.seq_len", x_key, "lag"], as_index=False)
            ["log10_ratio_mean"].mean())
    g = sns.relplot(data=mean, x="lag", y="log10_ratio_mean", hue=x_key, col="model.activation",
                    row="data.seq_len", kind="line", palette="viridis", height=2.6, aspect=1.3,
                    facet_kws={"sharex": "row", "sharey": False})
    g.set_axis_labels("lag t - k (steps)", RATIO_LABEL)
    g.set_titles("T = {row_name}, {col_name}")
    g.figure.suptitle("Gradient ratio against lag (batch and pair mean)", y=1.02)
    return save(g.figure, path)


def rate_vs_gain(runs: pd.DataFrame, rates: pd.DataFrame, x_key: str, path: Path) -> list[Path]:
    """Measured decay rate against rho (markers, 95% interval over seeds when there are
    several, else +-1.96 stderr), with ln rho (exact for a linear RNN with W = rho Q) and the
    regime boundary 0."""
    ok = runs[runs["status"] == "completed"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    acts = sorted(ok["model.activation"].unique())
    palette = dict(zip(acts, sns.color_palette()))
    sns.scatterplot(data=ok, x=x_key, y="decay_rate", hue="model.activation", hue_order=acts,
                    palette=palette, style="data.seq_len", ax=ax, s=45, zorder=3)
    if "ci_low" in rates and rates["n_seeds"].max() > 1:
        for _, r in rates.dropna(subset=["ci_low"]).iterrows():
            ax.plot([r[x_key]] * 2, [r["ci_low"], r["ci_high"]], color="0.4", lw=1)
    else:
        ax.errorbar(ok[x_key], ok["decay_rate"], yerr=1.96 * ok["decay_rate_stderr"].fillna(0),
                    fmt="none", ecolor="0.5", lw=0.8, zorder=2)
    grid = np.linspace(ok[x_key].min(), ok[x_key].max(), 200)
    if x_key == "model.spectral_radius":
        ax.plot(grid, np.log(grid), "k--", lw=1, label=r"$\ln\rho$ (linear, $W=\rho Q$)")
    if "mean_field_rate" in ok:
        # theory at each network's own sigma_w = ||W||_F / sqrt N, which is close to rho only
        # for large N
        theory_line = ok.groupby(["model.activation", x_key],
                                 as_index=False)["mean_field_rate"].mean()
        for act, group in theory_line.groupby("model.activation"):
            ax.plot(group[x_key], group["mean_field_rate"], color=palette[act], lw=1,
                    label=rf"mean field $\frac{{1}}{{2}}\log\chi$, {act}")
    ax.axhline(0, color="0.3", lw=0.8, ls=":", label="regime boundary")
    ax.set_xlabel({"model.spectral_radius": r"spectral radius $\rho$",
                   "model.gain": r"gain $\sigma_w$"}[x_key])
    ax.set_ylabel(RATE_LABEL)
    ax.legend(fontsize=7, ncols=2)
    return save(fig, path)


def rate_heatmap(rates: pd.DataFrame, x_key: str, path: Path) -> list[Path]:
    """Decay rate over (rho, T), one panel per activation, diverging around 0."""
    acts = sorted(rates["model.activation"].unique())
    fig, axes = plt.subplots(1, len(acts), figsize=(4.2 * len(acts), 3.4), squeeze=False)
    vmax = np.nanmax(np.abs(rates["decay_rate"])) or 1.0
    for ax, act in zip(axes[0], acts):
        table = rates[rates["model.activation"] == act].pivot_table(
            index="data.seq_len", columns=x_key, values="decay_rate")
        sns.heatmap(table, ax=ax, cmap="RdBu_r", center=0, vmin=-vmax, vmax=vmax, annot=True,
                    fmt=".2f", annot_kws={"fontsize": 7}, cbar_kws={"label": RATE_LABEL})
        ax.set_title(act)
        ax.set_xlabel(x_key.split(".")[1])
        ax.set_ylabel("T (seq_len)")
    return save(fig, path)


def grad_heatmap(log10_grad: np.ndarray, path: Path, title: str = "") -> list[Path]:
    """log10 ||dL_t/dh_k|| over (t, k): rows t, columns k, the upper triangle empty."""
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    im = ax.imshow(np.ma.masked_invalid(log10_grad), origin="upper", cmap="magma",
                   aspect="auto", interpolation="nearest")
    fig.colorbar(im, ax=ax, label=r"$\log_{10}\|\partial L_t/\partial h_k\|$")
    ax.set_xlabel("k (hidden state, step)")
    ax.set_ylabel("t (loss, step)")
    ax.set_title(title, fontsize=9)
    return save(fig, path)


def sweep_figures(sweep_dir: Path, agg) -> list[Path]:
    """The sweep's figures into ``<sweep_dir>/figures/``."""
    out_dir = Path(sweep_dir) / "figures"
    ok = agg.runs[agg.runs["status"] == "completed"] if not agg.runs.empty else agg.runs
    x_key = _gain_axis(agg.runs)
    if ok.empty or x_key is None or agg.lags.empty:
        print("figures: skipped (need completed runs over more than one rho or gain)")
        return []
    paths = decay_curves(agg.lags, x_key, out_dir / "decay_curves")
    paths += rate_vs_gain(ok, agg.rates, x_key, out_dir / "rate_vs_rho")
    paths += rate_heatmap(agg.rates, x_key, out_dir / "rate_heatmap")
    print(f"figures: {', '.join(sorted({p.stem for p in paths}))} (PNG, PDF) in {out_dir}")
    return paths


def single_run_figures(run_dir: Path) -> list[Path]:
    """Lag curve of one run and, with tensors.npz, its (t, k) heatmap."""
    run_dir = Path(run_dir)
    lags = pd.read_parquet(run_dir / "lags.parquet")
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    ax.plot(lags["lag"], lags["log10_ratio_mean"], "o", ms=2.5, label="measured (mean)")
    ax.fill_between(lags["lag"], lags["log10_ratio_mean"] - lags["log10_ratio_std"],
                    lags["log10_ratio_mean"] + lags["log10_ratio_std"], alpha=0.25, lw=0,
                    label=r"$\pm$1 std over batch and pairs")
    ax.set_xlabel("lag t - k (steps)")
    ax.set_ylabel(RATIO_LABEL)
    ax.legend(fontsize=8)
    paths = save(fig, run_dir / "figures" / "decay_curve")
    npz = run_dir / "tensors.npz"
    if npz.exists():
        with np.load(npz) as t:
            paths += grad_heatmap(t["log10_grad"], run_dir / "figures" / "grad_heatmap")
    return paths
