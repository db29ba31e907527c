"""modern, drawn from its tables: the mean ln ||dh_t/dh_k||_2 of each diagonal cell at its
published init against the lag, beside its closed-form line (left); the gradient through the
inputs, log10 ||dy_t/dx_k|| against the lag, of causal attention (flat) and of one-layer cells
with a linear readout (top right); the depth x time map of 8-layer stacks at init, plain and
with rmsnorm + residual: log10 ||do^l_t/dx_t|| against the layer l (bottom left) and the top
layer's log10 ||do^L_t/dx_k|| against the lag (bottom right).

Reads modern_curves.csv (per cell and lag: mean and sd over networks, closed form) and
modern_inputs.csv (lag tables of ||dy_t/dx_k||, one per model) and modern_depth.csv (per cell,
variant, layer and lag); modern_rates.csv and modern_depth_falls.csv hold the per-network
numbers behind the rows.
"""
from __future__ import annotations

from pathlib import Path

from rnnlab.plotting import plt

FIGURE = "modern"
TABLES = ("modern_curves.csv", "modern_inputs.csv", "modern_depth.csv")
DRAWN_VARIANTS = {"plain": "-", "rmsnorm + residual": "--"}


def draw(tables: dict, out_dir: Path) -> Path:
    curves, inputs, depth = (tables[name] for name in TABLES)
    fig, ((left, right), (by_layer, by_lag)) = plt.subplots(2, 2, figsize=(13, 9.6),
                                                            constrained_layout=True)
    colors = {cell: f"C{i}" for i, cell in
              enumerate(dict.fromkeys([*curves["cell"], *depth["cell"]]))}
    for cell, g in curves.groupby("cell", sort=False):
        color = colors[cell]
        lag, mean, sd = (g[k].to_numpy() for k in ("lag", "ln_norm", "ln_norm_std"))
        left.plot(lag, mean, color=color, lw=1.4, label=f"{cell}, measured")
        left.fill_between(lag, mean - sd, mean + sd, color=color, alpha=0.15, lw=0)
        left.plot(lag, g["closed_form"].to_numpy(), "--", color=color, lw=1,
                  label=f"{cell}, closed form (slope)")
    left.set(xlabel="lag l", ylabel="ln ||dh_(T-1)/dh_(T-1-l)||_2 (batch mean)",
             title="diagonal cells at their published init: mean +- sd over networks;\n"
             "dashed: the closed-form rate max_i E[ln a_i] times the lag")
    left.title.set_fontsize(9)
    left.legend(fontsize=7, ncols=2)
    greys = iter(("0.0", "0.55", "0.3"))
    for name, g in inputs.groupby("model", sort=False):
        attention = name.startswith("attention")
        right.plot(g["lag"].to_numpy(), g["log10_grad_mean"].to_numpy(),
                   "-" if attention else "-.", lw=1.4, label=name,
                   color=next(greys) if attention else colors.get(name, "C9"))
    right.set(xlabel="lag t - k", ylabel="log10 ||dy_t/dx_k||_F (mean over pairs and batch)",
              title="the gradient through the inputs: attention is flat in the lag\n"
              "(W_Q = 0: exactly ||W_V|| / (t + 1)), a recurrence decays")
    right.title.set_fontsize(9)
    right.legend(fontsize=7)
    top = int(depth["layer"].max())
    for (cell, variant), g in depth.groupby(["cell", "variant"], sort=False):
        if variant not in DRAWN_VARIANTS:
            continue
        style, color = DRAWN_VARIANTS[variant], colors[cell]
        lag0 = g[g["lag"] == 0]
        by_layer.plot(lag0["layer"].to_numpy(), lag0["log10_grad_mean"].to_numpy(), style,
                      marker="o", ms=3, color=color, lw=1.2, label=f"{cell}, {variant}")
        last = g[g["layer"] == top]
        by_lag.plot(last["lag"].to_numpy(), last["log10_grad_mean"].to_numpy(), style,
                    color=color, lw=1.2, label=f"{cell}, {variant}")
    by_layer.set(xlabel="layer l", ylabel="log10 ||do^l_t/dx_t||_F (lag 0)",
                 title=f"{top}-layer stacks at init: the gradient through the inputs by depth\n"
                 "(solid: plain; dashed: rmsnorm + residual; all four variants in the rows)")
    by_lag.set(xlabel="lag t - k", ylabel=f"log10 ||do^{top}_t/dx_k||_F (top layer)",
               title=f"the same stacks by lag at layer {top}")
    for ax in (by_layer, by_lag):
        ax.title.set_fontsize(9)
        ax.legend(fontsize=6, ncols=2)
    path = out_dir / "modern.png"
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path
