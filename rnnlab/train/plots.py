"""Figures of a training sweep (``rnnlab.train.tables``), into ``<sweep_dir>/figures/``:

- ``success_vs_T``: the fraction of seeds that solved the task (test error < 1%) against T, one
  line per configuration (arch, and every other swept key such as the hidden size), one panel per
  clipping setting and optimiser;
- ``learning_curves``: validation error rate against the update, one panel per T, one line per
  run (colour: arch; dashed: no clipping), the no-memory baseline's error dotted;
- ``decay_rate_curves``: the same runs' decay rate of ||dL/dh_k|| at each evaluation (rate 0
  dotted), how the gradient horizon moves while the network learns;
- ``horizon_vs_longest_T``: the gradient horizon 1/|initial decay rate| (steps, the median over
  seeds before any update, at each configuration's longest T, where the fit covers the most
  lags) against the longest T it solved, with y = x.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..plotting import MARKERS, colours, plt, save, sns
from . import archs
from .tables import GROUP, table_keys


def _colours(names) -> dict:
    return colours(names, archs.colour_table())


def _lines(df: pd.DataFrame) -> list[str]:
    """The keys that tell one line from another: the arch and every swept key beyond GROUP."""
    return ["arch"] + [k for k in table_keys(df) if k not in GROUP]


def _line_label(keys, values) -> str:
    extra = ", ".join(f"{k} {v:g}" if isinstance(v, (int, float)) else f"{k} {v}"
                      for k, v in zip(keys[1:], values[1:]))
    return archs.label(values[0]) + (f", {extra}" if extra else "")


def _panels(df: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """One panel per task and optimiser setting (a sweep with a task axis: one per task)."""
    keys = ["task", "optimizer", "lr", "clip_label"]
    return [(f"{opt} lr {lr:g}, {clip}", g) for (_, opt, lr, clip), g in
            df.groupby(keys, dropna=False, sort=True)]


def success_figure(success: pd.DataFrame):
    panels = _panels(success)
    colours = _colours(success["arch"])
    lines = _lines(success)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.6), sharey=True,
                             squeeze=False)
    for ax, (title, g) in zip(axes[0], panels):
        for i, (vals, a) in enumerate(g.groupby(lines, sort=True)):
            a = a.sort_values("length")
            # a small vertical offset per line so equal rates do not hide each other
            ax.plot(a["length"], a["success_rate"] + 0.012 * (i - 1.5), marker=MARKERS[i % 8],
                    color=colours[vals[0]], label=_line_label(lines, vals))
        ax.set_xscale("log")
        ts = sorted(g["length"].unique())
        ax.set_xticks(ts, [str(int(t)) for t in ts])
        ax.minorticks_off()
        ax.set_ylim(-0.06, 1.06)
        ax.set_xlabel("T (sequence length)")
        ax.set_title(f"{g['task'].iloc[0]}: {title}", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("success rate (seeds with test error < 1%)")
    axes[0][-1].legend(fontsize=8, loc="best")
    n = int(success["seeds"].max())
    fig.suptitle(f"Trainability: fraction of {n} seeds solved", fontsize=10)
    fig.tight_layout()
    return fig


def curves_figure(curves: pd.DataFrame, runs: pd.DataFrame, column: str = "eval_error_rate"):
    lengths = sorted(curves["length"].unique())
    colours = _colours(curves["arch"])
    tasks = sorted(runs["task"].unique())
    panels = [(task, opt, t) for task in tasks for opt in sorted(curves["optimizer"].unique())
              for t in lengths]
    cols = len(lengths)
    rows = len(panels) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.0 * rows), sharey=True,
                             squeeze=False)
    baseline = runs.groupby("task")["length"].size()  # tasks present
    for ax, (task, opt, t) in zip(axes.ravel(), panels):
        sub = curves[(curves["length"] == t) & (curves["optimizer"] == opt)
                     & (curves["task"] == task)]
        for (_, arch, clip), c in sub.groupby(["run", "arch", "clip_label"]):
            ax.plot(c["step"], c[column], color=colours[arch], lw=1, alpha=0.75,
                    ls="--" if clip == "no clipping" else "-")
        ax.axhline(0.01 if column == "eval_error_rate" else 0.0, color="k", lw=0.6, ls=":")
        ax.set_title(f"{task}, {opt}, T = {int(t)}" if len(tasks) > 1 else
                     f"{opt}, T = {int(t)}", fontsize=9)
        ax.set_xlabel("update")
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("validation error rate" if column == "eval_error_rate" else
                      "decay rate of ||dL/dh_k|| (nats/step)")
    handles = [plt.Line2D([], [], color=colours[a], label=archs.label(a)) for a in colours]
    if (curves["clip_label"] == "no clipping").any():
        handles.append(plt.Line2D([], [], color="grey", ls="--", label="no clipping"))
    handles.append(plt.Line2D([], [], color="k", ls=":", lw=0.6, label="1% (solved)" if column
                              == "eval_error_rate" else "rate 0 (no decay)"))
    fig.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 0.9))
    what = "Learning curves" if column == "eval_error_rate" else \
        "Decay rate while training (exact engine, probe batch, lags 1-50)"
    fig.suptitle(f"{what} ({', '.join(baseline.index)}; one line per run; a run stops when "
                 "solved)", fontsize=10)
    fig.tight_layout()
    return fig


def horizon_figure(longest: pd.DataFrame):
    colours = _colours(longest["arch"])
    fig, ax = plt.subplots(figsize=(5.4, 4.2))
    panels = _panels(longest)
    for j, (_, g) in enumerate(panels):
        for _, r in g.iterrows():
            h = r["horizon_steps"]
            if not np.isfinite(h):
                continue
            ax.scatter(max(r["longest_T_solved"], 1), h, color=colours[r["arch"]],
                       marker=MARKERS[j % 8], s=90 if j == 0 else 35, edgecolor="k", lw=0.4)
    top = max(float(np.nanmax(longest["horizon_steps"])), 200.0)
    right = max(float(longest["longest_T_solved"].max()), 10.0)
    ax.plot([1, max(top, right)], [1, max(top, right)], color="grey", lw=0.7, ls="--",
            label="horizon = T")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("longest T solved by most seeds (1: none)")
    ax.set_ylabel("initial gradient horizon 1/|decay rate| (steps)")
    handles = [plt.Line2D([], [], color=colours[a], marker="o", ls="", label=archs.label(a))
               for a in colours]
    handles += [plt.Line2D([], [], color="grey", marker=MARKERS[j % 8], ls="", label=title)
                for j, (title, _) in enumerate(panels)]
    handles.append(plt.Line2D([], [], color="grey", ls="--", label="horizon = T"))
    ax.legend(handles=handles, fontsize=7, loc="best")
    ax.set_title("Gradient horizon at initialisation against what was learned", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return fig


def figures(sweep_dir: Path, tables: dict) -> list[Path]:
    """Every figure of a training sweep that its tables support; PNG and PDF."""
    sns.set_theme(style="ticks", context="paper")
    out = Path(sweep_dir) / "figures"
    paths = []
    if "success" in tables:
        paths += save(success_figure(tables["success"]), out / "success_vs_T")
        paths += save(horizon_figure(tables["longest"]), out / "horizon_vs_longest_T")
    if not tables.get("curves", pd.DataFrame()).empty:
        paths += save(curves_figure(tables["curves"], tables["runs"]), out / "learning_curves")
        paths += save(curves_figure(tables["curves"], tables["runs"], "decay_rate"),
                      out / "decay_rate_curves")
    return paths
