"""gate-timescales, drawn from its tables: per cell the decay rate against the keep-gate bias in
three regimes (mean and sd over seeds) beside ln s(b), the gate-noise limit and the Monte Carlo
of the diagonal product; and the PyTorch-init networks' fit window against their slow mode.

Reads gate_timescales.csv (one rate per cell, regime, bias and seed; the Monte Carlo's rows have
cell "monte carlo"), gate_timescales_theory.csv (ln s(b) and 1/2 ln E[s(b + z)^2] against b) and
gate_timescales_settings.csv (the fit windows, the PyTorch-init width).
"""
from __future__ import annotations

from pathlib import Path

from rnnlab.plotting import plt

FIGURE = "gate-timescales"
TABLES = ("gate_timescales.csv", "gate_timescales_theory.csv", "gate_timescales_settings.csv")
MONTE_CARLO = "monte carlo"  # the reference's rows in gate_timescales.csv
TITLES = {"lstm": "LSTM (forget gate bias b_f)", "gru": "GRU (update gate bias b_z)"}  # per cell
STYLE = {"zero weights": ("o", "C0"), "gate noise": ("s", "C1"), "pytorch init": ("^", "C2")}
SLOW = ("pytorch init, lags 100-250", "pytorch init, lambda_1")  # the slow mode's regimes
SLOW_COLOURS = ("C2", "C4")  # per cell, third panel


def draw(tables: dict, out_dir: Path) -> Path:
    measured, curve, settings = (tables[name] for name in TABLES)
    setting = settings.to_dict("records")[0]
    cells = [c for c in measured.cell.unique() if c != MONTE_CARLO]
    b, keep = curve["gate_bias"].to_numpy(), curve["keep_gate_rate"].to_numpy()
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2), constrained_layout=True)
    axes[1].sharey(axes[0])
    for ax, cell in zip(axes[:2], cells):
        ax.plot(b, keep, "k-", lw=1.2, label="ln s(b) (zero weights, exact)")
        ax.plot(b, curve["gate_noise_rate"].to_numpy(), "k--", lw=1.0,
                label="1/2 ln E[s(b + z)^2] (gate noise, N, lag -> inf)")
        mc = measured[measured.cell == MONTE_CARLO]
        # on top of the gate-noise squares it is compared with
        ax.plot(mc.gate_bias, mc.rate, "x", color="C3", ms=9, mew=2, zorder=5,
                label="Monte Carlo of the diagonal product (gate noise, N = 256)")
        for regime, (marker, color) in STYLE.items():
            sel = (measured.cell == cell) & (measured.regime == regime)
            g = measured[sel].groupby("gate_bias").rate
            m, sd = g.mean(), g.std(ddof=1).fillna(0.0)
            ax.errorbar(m.index, m.to_numpy(), yerr=sd.to_numpy(), fmt=marker, color=color,
                        ms=5, capsize=2, label=f"measured: {regime}")
        ax.axhline(0, color="0.6", lw=0.6)
        ax.set(title=TITLES.get(cell, cell), xlabel="keep-gate bias b (model.gate_bias)")
    axes[0].set_ylabel("decay rate of ||dL_t/ds_k|| (nats per step)")
    axes[1].legend(fontsize=8, loc="lower right")
    ax = axes[2]
    for cell, color in zip(cells, SLOW_COLOURS):
        for regime, fmt, text in (
                ("pytorch init", "^-", f"lags 1-{setting['max_lag']}"),
                (SLOW[0], "v--", f"lags {setting['long_lag_low']}-{setting['long_lag_high']}"),
                (SLOW[1], "D:", "lambda_1 (QR)")):
            g = measured[(measured.cell == cell) & (measured.regime == regime)]
            m = g.groupby("gate_bias").rate.agg(["mean", "std"])
            ax.errorbar(m.index, m["mean"], yerr=m["std"], fmt=fmt, color=color, ms=4,
                        capsize=2, lw=0.8, mfc="none" if regime != "pytorch init" else color,
                        label=f"{cell}: {text}")
    ax.plot(b, keep, "k-", lw=1, label="ln s(b)")
    ax.axhline(0, color="0.6", lw=0.6)
    ax.set(xlim=(0.8, 5.3), ylim=(-0.25, 0.02), xlabel="keep-gate bias b (model.gate_bias)",
           ylabel="nats per step",
           title=f"PyTorch init (N = {setting['pytorch_init_N']}): the fit window against the "
           "slow mode")
    ax.title.set_fontsize(10)
    ax.legend(fontsize=7, loc="lower right")
    path = out_dir / "gate_timescales.png"
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path
