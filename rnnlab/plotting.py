"""What every figure of rnnlab shares: the headless backend (set here, once), saving PNG and PDF
without timestamps, markers and spare colours, and the weight-gradient figure both apps draw.

Import ``plt`` and ``sns`` from here, never matplotlib.pyplot directly: the backend must be chosen
before pyplot is first imported.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib
import pandas as pd
from matplotlib.ticker import MaxNLocator

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 (pyplot after the backend is chosen)
import seaborn as sns  # noqa: E402 (it imports pyplot: after the backend is chosen)

__all__ = ["plt", "sns", "save", "colours", "MARKERS", "SPARE", "CELL_COLOURS",
           "weight_grad_figure"]

MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
# colours for names that have no fixed one, in order of first use
SPARE = ["#17becf", "#bcbd22", "#e377c2", "#393b79", "#637939", "#843c39"]
# the measurement figures' fixed colour of each network (its cell, with the activation where the
# cell's is free: rnnlab.measure.plots.cell_names), the same in every sweep; a cell not here gets
# a spare colour (the training figures' colours are the archs', rnnlab.train.archs)
CELL_COLOURS = {"elman-tanh": "#1f77b4", "elman-relu": "#d62728", "elman-sigmoid": "#2ca02c",
                "elman-linear": "#7f7f7f", "gru": "#ff7f0e", "lstm": "#9467bd",
                "minimal": "#8c564b"}


def colours(names, fixed: dict) -> dict:
    """A colour per name: its fixed one, else the next spare colour (in sorted order)."""
    spare = iter(SPARE * 4)
    return {n: fixed.get(n) or next(spare) for n in sorted(set(names))}


def save(fig, path: Path) -> list[Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    out = [path.with_suffix(".png"), path.with_suffix(".pdf")]
    for p in out:
        # no timestamp in the files: the same figure gives the same bytes
        fig.savefig(p, dpi=130, bbox_inches="tight", metadata={"CreationDate": None}
                    if p.suffix == ".pdf" else None)
    plt.close(fig)
    return out


def weight_grad_figure(wg: pd.DataFrame, stem: Path) -> list[Path]:
    """Where dL/dW comes from: log10 ||G_lag||_F against the lag (left) and the share of
    ||dL/dW|| carried by lags >= d, log scale (right; the additive projection share is in the
    table only: it changes sign). A ``stage`` column (a training run's initial and final
    weights) gives one line per stage."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(9.5, 3.6), constrained_layout=True)
    stages = wg.groupby("stage", sort=False) if "stage" in wg else [(None, wg)]
    zeros = 0
    for stage, g in stages:
        a.plot(g["lag"], g["log10_norm"], "o-", ms=2.5, lw=1, label=stage)
        # a share of exactly 0 (no pair at such lags) has no place on a log axis: left out, said
        share = g["share_ge"].where(g["share_ge"] > 0)
        zeros += int((g["share_ge"] <= 0).sum())
        b.semilogy(g["lag"], share, "o-", ms=2.5, lw=1, label=stage)
    a.set(xlabel="lag t - k (steps; bin start)", ylabel="log10 ||part of dL/dW at this lag||_F",
          title="the weight gradient, lag by lag")
    b.set(xlabel="d (steps)", ylabel="||part from lags >= d||_F / ||dL/dW||_F",
          title="share of the update carried by lags >= d")
    for ax in (a, b):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # lags are whole steps
    if zeros:
        b.annotate(f"{zeros} lag(s) with share exactly 0 not drawn", (0.02, 0.03),
                   xycoords="axes fraction", fontsize=7, color="0.4")
    if "stage" in wg:
        a.legend(fontsize=8, title="weights")
    return save(fig, stem)
