"""Seaborn/matplotlib figures of sweeps and single runs, PNG and PDF, headless.

Measurements are markers, theory lines; axes carry units (log10 for gradient ratios, nats per step
for rates). A sweep's figures show every swept key (``layout``): the cell (with its
activation, in fixed colours), the x axis (the first numeric swept key among rho, gain, T, N, ...),
a marker style and facets for the rest; runs that differ only by seed are averaged, nothing else.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from scipy import stats

from ..engine import cells
from ..plotting import CELL_COLOURS, MARKERS, plt, save, sns, weight_grad_figure
from ..plotting import colours as _fixed_colours
from ..runs.driver import TRACEBACK_ENV
from ..runs.store import read_run
from .config import DEFAULT_CELL, lags_file, measured_state

RATIO_LABEL = r"$\log_{10}\,\|\partial L_t/\partial h_k\| \,/\, \|\partial L_t/\partial h_t\|$"
# a cell whose state has several parts (the LSTM's (h, c)) is measured in its joint state s, or in
# h alone with the rest held fixed (measure.lstm_state=h): the label says which, per cell
STATE_RATIO_LABEL = (r"$\log_{10}\,\|\partial L_t/\partial s_k\| \,/\, "
                     r"\|\partial L_t/\partial s_t\|$")
RATE_LABEL = "decay rate (nats per step)"
# fixed across sweeps, so a colour always means the same cell
PALETTE = CELL_COLOURS
NAMES = {"model.spectral_radius": r"spectral radius $\rho$", "model.gain": r"gain $\sigma_w$",
         "data.seq_len": "T (steps)", "model.hidden_size": "N (hidden units)",
         "model.input_size": "D (inputs)", "model.output_size": "C (classes)",
         "model.input_gain": r"input gain $\sigma_u$", "model.bias_std": r"bias std $\sigma_b$",
         "model.gate_bias": "gate bias", "model.init": "init", "model.loss": "loss",
         "data.batch_size": "B (batch)", "data.input_std": "input std",
         "data.burn_in": "burn-in (steps)", "data.h0_std": r"$h_0$ std",
         "measure.max_lag": "max lag", "measure.dtype": "dtype", "cell": "cell"}
SHORT = {"model.spectral_radius": "ρ", "model.gain": "σ_w", "data.seq_len": "T",
         "model.hidden_size": "N", "model.input_size": "D", "model.output_size": "C",
         "data.batch_size": "B"}
# the x axis: the first of these that the sweep varies, else any other numeric key
X_PRIORITY = ["model.spectral_radius", "model.gain", "data.seq_len", "model.hidden_size"]
_NETWORK_KEYS = ("model.cell", "model.activation")


def name(key: str) -> str:
    return NAMES.get(key, key.split(".")[-1].replace("_", " "))


def short(key: str) -> str:
    return SHORT.get(key, key.split(".")[-1].replace("_", " "))


# --------------------------------------------------------------------------------------------
# What goes where
# --------------------------------------------------------------------------------------------
def _cells(runs: pd.DataFrame) -> pd.Series:
    """Each run's ``model.cell`` (runs from before the key: the default cell)."""
    return runs["model.cell"].astype(str) if "model.cell" in runs \
        else pd.Series(DEFAULT_CELL, index=runs.index)


def cell_names(runs: pd.DataFrame) -> pd.Series:
    """``<cell>-<activation>`` for a cell whose activation is free (the registry's
    ``activations``: Elman's), the cell's name for one whose nonlinearities are fixed (with the
    activation appended when such a cell is swept over it)."""
    act = runs["model.activation"].astype(str) if "model.activation" in runs \
        else pd.Series("tanh", index=runs.index)
    cell = _cells(runs)
    free = {c for c in set(cell) if c in cells.CELLS and len(cells.CELLS[c].activations) > 1}
    out = cell.where(~cell.isin(free), cell + "-" + act)
    for c in set(cell) - free:
        rows = cell == c
        if act[rows].nunique() > 1:
            out[rows] = c + "-" + act[rows]
    return out


def colours(names) -> dict:
    return _fixed_colours(names, PALETTE)


# the y label of measure.target=input's ratio ||dy_t/dx_k|| / ||dy_t/dx_t||
INPUT_RATIO_LABEL = (r"$\log_{10}\,\|\partial y_t/\partial x_k\|_F"
                     r" / \|\partial y_t/\partial x_t\|_F$")


def ratio_label(states: dict) -> str:
    """The y label of gradient ratios for the drawn runs' measured states, ``{cell: state}``
    (``config.measured_state``): of h when every state is h, else of s with each cell's s."""
    other = {c: st for c, st in sorted(states.items()) if st != "h"}
    if not other:
        return RATIO_LABEL
    return STATE_RATIO_LABEL + "\n(" + "; ".join(
        ["s = h"] * (len(other) < len(states)) + [f"{st} for {c}" for c, st in other.items()]) + ")"


def measured_states(runs: pd.DataFrame) -> dict:
    """``{cell: measured state}`` of a runs table (``measure.lstm_state`` absent: joint; several
    values for one cell: joined by "or")."""
    cell = _cells(runs)
    choice = runs["measure.lstm_state"].fillna("joint").astype(str) \
        if "measure.lstm_state" in runs else pd.Series("joint", index=runs.index)
    out = {}
    for c in sorted(set(cell)):
        states = sorted({measured_state(c, v) for v in choice[cell == c]})
        out[c] = " or ".join(states)
    return out


def row_major(handles: list, ncols: int) -> list:
    """``handles`` reordered so that a legend of ``ncols`` columns (which matplotlib fills column
    by column) reads in their order row by row; blank handles pad the last row."""
    nrows = math.ceil(len(handles) / ncols)
    blank = Line2D([], [], alpha=0, label=" ")
    padded = handles + [blank] * (nrows * ncols - len(handles))
    return [padded[r * ncols + c] for c in range(ncols) for r in range(nrows)]


@dataclass
class Layout:
    """x: numeric key on the rate plot's x axis (None: none varies); style: the next swept key
    (marker); facets: every further swept key (one panel per combination)."""
    x: str | None
    style: str | None = None
    facets: list[str] = field(default_factory=list)

    @property
    def keys(self) -> list[str]:
        return ["cell"] + [k for k in (self.x, self.style) if k] + self.facets


def _numeric(col: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col) \
        and col.notna().all()


def layout(runs: pd.DataFrame, swept: list[str]) -> Layout:
    rest = [k for k in swept if k not in _NETWORK_KEYS and k != "seed"]
    numeric = [k for k in rest if _numeric(runs[k])]
    ordered = [k for k in X_PRIORITY if k in numeric] + [k for k in numeric
                                                           if k not in X_PRIORITY]
    x = ordered[0] if ordered else None
    rest = [k for k in rest if k != x]
    rest.sort(key=lambda k: (k not in numeric, X_PRIORITY.index(k) if k in X_PRIORITY else 9))
    return Layout(x, rest[0] if rest else None, rest[1:])


def _prepare(runs: pd.DataFrame) -> pd.DataFrame:
    ok = runs[runs["status"] == "completed"].copy()
    ok["cell"] = cell_names(ok)
    return ok


def _value(key, v) -> str:
    if isinstance(v, float) and v.is_integer() and key not in ("model.spectral_radius",
                                                               "model.gain"):
        v = int(v)
    return f"{short(key)} = {v}"


def _facet_label(keys, values) -> str:
    return ", ".join(_value(k, v) for k, v in zip(keys, values))


def _groups(df: pd.DataFrame, keys: list[str]):
    """(label, frame) per combination of ``keys`` (one group, label '' without keys)."""
    if not keys:
        return [("", df)]
    return [(_facet_label(keys, vals if isinstance(vals, tuple) else (vals,)), g)
            for vals, g in df.groupby(keys, sort=True, dropna=False)]


def seed_means(ok: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per configuration (every swept key): mean rate over seeds, its 95% half-width (Student t
    over seeds, or 1.96 stderr for one seed) and the mean-field rate."""
    def one(g):
        n = len(g)
        rate = g["decay_rate"].mean()
        if n > 1:
            half = stats.t.ppf(0.975, n - 1) * g["decay_rate"].std(ddof=1) / math.sqrt(n)
        else:
            half = 1.959963984540054 * float(g["decay_rate_stderr"].fillna(0).iloc[0])
        mf = g["mean_field_rate"].mean() if "mean_field_rate" in g else np.nan
        return pd.Series({"decay_rate": rate, "half": half, "mean_field_rate": mf, "n": n})
    return ok.groupby(keys, sort=True, dropna=False).apply(one, include_groups=False) \
        .reset_index()


# --------------------------------------------------------------------------------------------
# Sweep figures
# --------------------------------------------------------------------------------------------
def decay_curves_figure(lags: pd.DataFrame, runs: pd.DataFrame, lay: Layout):
    """log10 ratio against lag, one line per configuration (seed mean): hue the x key, one panel
    per cell x style x facet value."""
    ok = _prepare(runs)
    lags = lags.merge(ok[["run", "cell"]], on="run")
    hue = lay.x
    panel_keys = ["cell"] + [k for k in [lay.style] + lay.facets if k]
    curve_keys = panel_keys + ([hue] if hue else [])
    mean = lags.groupby(curve_keys + ["lag"], as_index=False, dropna=False)[
        "log10_ratio_mean"].mean()
    # columns: the cells (or, for one cell, panels wrapped three to a row); rows: every
    # combination of the style and facet keys
    names = sorted(mean["cell"].unique())
    rows = _groups(mean, panel_keys[1:])
    panels = [(f"{net}{', ' + label if label else ''}", g[g["cell"] == net])
              for label, g in rows for net in names]
    ncols = len(names) if len(names) > 1 else min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.8 * ncols + 0.6, 2.8 * nrows + 0.6),
                             squeeze=False, constrained_layout=True)
    levels = sorted(mean[hue].unique()) if hue else []
    palette = colours(ok["cell"])
    cmap = plt.get_cmap("viridis")
    colour = {v: cmap(i / max(len(levels) - 1, 1)) for i, v in enumerate(levels)}
    for ax, (label, g) in zip(axes.flat, panels):
        if g.empty:
            ax.set_visible(False)
            continue
        for v, curve in (g.groupby(hue, sort=True) if hue else [(None, g)]):
            ax.plot(curve["lag"], curve["log10_ratio_mean"], lw=1.3,
                    color=colour[v] if hue else palette[g["cell"].iloc[0]])
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("lag t - k (steps)")
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    targets = set(ok["measure.target"].fillna("state")) if "measure.target" in ok else {"state"}
    for ax in axes[:, 0]:
        ax.set_ylabel(INPUT_RATIO_LABEL if targets == {"input"} else
                      ratio_label(measured_states(ok)) if targets == {"state"} else
                      "log10 gradient ratio (state: dL_t/dh_k; input: dy_t/dx_k)")
    fig.suptitle("Gradient ratio against lag (mean over batch, pairs and seeds)")
    if hue:
        handles = [Line2D([], [], color=colour[v], lw=2, label=f"{v:g}") for v in levels]
        fig.legend(handles=handles, title=name(hue), loc="outside lower center",
                   ncols=min(len(levels), 8), fontsize=8, frameon=False)
    return fig


def rate_figure(runs: pd.DataFrame, lay: Layout):
    """Measured decay rate against the numeric x key (hollow markers at their true x, 95%
    intervals, a thin line joining each series): colour the cell, marker the style key, one panel
    per facet value; theory dashed (mean field of each cell) and dotted (ln rho for a linear
    W = rho Q), and the regime boundary 0. The categorical case is ``rate_by_value_figure``."""
    if not lay.x:
        raise ValueError("rate_figure needs a numeric swept key; use rate_by_value_figure")
    ok = _prepare(runs)
    keys = [k for k in lay.keys if k]
    pts = seed_means(ok, keys)
    palette = colours(ok["cell"])
    styles = sorted(pts[lay.style].unique()) if lay.style else [None]
    marker = {v: MARKERS[i % len(MARKERS)] for i, v in enumerate(styles)}
    panels = _groups(pts, lay.facets)
    ncols = min(len(panels), 3)
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(max(6.4, 4.6 * ncols), 3.8 * nrows + 0.8),
                             squeeze=False, sharey=True, constrained_layout=True)
    for ax, (label, panel) in zip(axes.flat, panels):
        group_keys = ["cell"] + ([lay.style] if lay.style else [])
        for vals, g in panel.groupby(group_keys, sort=True, dropna=False):
            net, sv = vals[0], (vals[1] if lay.style else None)
            g = g.sort_values(lay.x)
            c = palette[net]
            ax.errorbar(g[lay.x], g["decay_rate"], yerr=g["half"], fmt=marker[sv], color=c,
                        mfc="none", ms=5, mew=1.0, lw=0.8, capsize=2, ls="none", zorder=3)
            ax.plot(g[lay.x], g["decay_rate"], color=c, lw=0.6, alpha=0.35, zorder=2)
            if g["mean_field_rate"].notna().any():
                ax.plot(g[lay.x], g["mean_field_rate"], color=c, lw=1.0, ls="--", alpha=0.8,
                        zorder=2)
        if lay.x == "model.spectral_radius":
            grid = np.linspace(panel[lay.x].min(), panel[lay.x].max(), 200)
            ax.plot(grid, np.log(grid), color="k", lw=0.9, ls=":", zorder=1)
        ax.axhline(0, color="0.4", lw=0.8, zorder=1)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel(name(lay.x))
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel(RATE_LABEL)
    handles = [Line2D([], [], color=palette[n], marker="o", mfc="none", ls="-", lw=0.6,
                      label=n) for n in palette]
    if lay.style:
        handles += [Line2D([], [], color="0.3", marker=marker[v], mfc="none", ls="none",
                           label=_value(lay.style, v)) for v in styles]
    if ok.get("mean_field_rate") is not None and ok["mean_field_rate"].notna().any():
        handles.append(Line2D([], [], color="0.3", ls="--",
                              label=r"mean field $\frac{1}{2}\log\chi$ (each cell)"))
    if lay.x == "model.spectral_radius":
        handles.append(Line2D([], [], color="k", ls=":", label=r"$\ln\rho$ (linear, $W=\rho Q$)"))
    handles.append(Line2D([], [], color="0.4", lw=0.8, label="regime boundary (rate 0)"))
    theory = ["dashed"] if any("mean field" in h.get_label() for h in handles) else []
    theory += ["dotted"] if lay.x == "model.spectral_radius" else []
    fig.suptitle("Decay rate (hollow markers: measured, 95% interval"
                 + (f"; {' and '.join(theory)}: theory)" if theory else ")"))
    fig.legend(handles=row_major(handles, 3), loc="outside lower center", ncols=3, fontsize=8,
               frameon=False)
    return fig


def rate_by_value_figure(runs: pd.DataFrame, lay: Layout):
    """The decay rate per value of a categorical axis, for sweeps with no numeric swept key:
    the axis is the first categorical swept key (init, dtype, loss...) or else the cell; colour
    the cell; each seed a small point, the seed mean a diamond with its 95% interval (Student t
    over seeds; 1.96 standard errors of the fit for one seed), the mean-field rate a bar; one
    panel per value of the remaining keys."""
    ok = _prepare(runs)
    axis = lay.style or "cell"
    facets = lay.facets if lay.style else []
    keys = list(dict.fromkeys(["cell", axis] + facets))
    pts = seed_means(ok, keys)
    palette = colours(ok["cell"])
    values = sorted(pts[axis].unique(), key=lambda v: (str(type(v)), v))
    where = {v: i for i, v in enumerate(values)}
    hue = sorted(pts["cell"].unique()) if axis != "cell" else [None]
    width = 0.7 / len(hue)
    offset = {c: (i - (len(hue) - 1) / 2) * width for i, c in enumerate(hue)}
    panels = _groups(pts, facets)
    ncols = min(len(panels), 3)
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, squeeze=False, sharey=True, constrained_layout=True,
                             figsize=(max(5.6, (1.2 + 0.9 * len(values) * len(hue)) * ncols),
                                      3.8 * nrows + 0.8))
    for ax, (label, panel) in zip(axes.flat, panels):
        for _, p in panel.iterrows():
            x = where[p[axis]] + offset[p["cell"] if axis != "cell" else None]
            c = palette[p["cell"]]
            mask = (ok["cell"] == p["cell"]) & (ok[axis] == p[axis]) if axis != "cell" \
                else ok["cell"] == p["cell"]
            for k in facets:
                mask &= ok[k] == p[k]
            seeds = ok.loc[mask, "decay_rate"].to_numpy(float)
            spread = np.linspace(-0.3, 0.3, len(seeds)) * width if len(seeds) > 1 else [0.0]
            ax.plot(x + np.asarray(spread), seeds, "o", color=c, ms=3, alpha=0.45, zorder=2)
            ax.errorbar([x], [p["decay_rate"]], yerr=[p["half"]], fmt="D", color=c, ms=5,
                        capsize=3, lw=1.0, zorder=3)
            if np.isfinite(p["mean_field_rate"]):
                ax.plot([x - 0.4 * width, x + 0.4 * width], [p["mean_field_rate"]] * 2,
                        color=c, lw=2.0, alpha=0.6, zorder=1)
        ax.axhline(0, color="0.4", lw=0.8, zorder=1)
        ax.set_xticks(range(len(values)), [str(v) for v in values])
        ax.set_xlim(-0.6, len(values) - 0.4)
        ax.set_xlabel(name(axis))
        ax.set_title(label, fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel(RATE_LABEL)
    handles = [Line2D([], [], color=palette[n], marker="D", ls="none", label=n)
               for n in palette]
    handles += [Line2D([], [], color="0.3", marker="o", ms=3, alpha=0.45, ls="none",
                       label="one seed"),
                Line2D([], [], color="0.3", marker="D", ls="none",
                       label="mean over seeds, 95% interval")]
    if pts["mean_field_rate"].notna().any():
        handles.append(Line2D([], [], color="0.3", lw=2.0, alpha=0.6, label="mean-field rate"))
    handles.append(Line2D([], [], color="0.4", lw=0.8, label="regime boundary (rate 0)"))
    fig.suptitle(f"Decay rate by {name(axis)}")
    fig.legend(handles=row_major(handles, 3), loc="outside lower center", ncols=3, fontsize=8,
               frameon=False)
    return fig


def rate_heatmap_figure(runs: pd.DataFrame, lay: Layout):
    """Decay rate over (x key, style key), one panel per cell x facet value, one shared
    diverging colour scale around 0. None without two numeric-or-categorical axes."""
    if not lay.x:
        return None
    ok = _prepare(runs)
    keys = [k for k in lay.keys if k]
    pts = seed_means(ok, keys)
    rows = lay.style or "cell"
    panel_keys = (["cell"] if lay.style else []) + lay.facets
    panels = _groups(pts, panel_keys)
    ncols = min(len(panels), 3)
    nrows = math.ceil(len(panels) / ncols)
    height = 3.3 if lay.style else 1.6 + 0.45 * pts["cell"].nunique()
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, height * nrows), squeeze=False,
                             constrained_layout=True)
    vmax = float(np.nanmax(np.abs(pts["decay_rate"]))) or 1.0
    annotate = pts[lay.x].nunique() <= 10
    mesh = None
    for ax, (label, panel) in zip(axes.flat, panels):
        table = panel.pivot_table(index=rows, columns=lay.x, values="decay_rate")
        sns.heatmap(table, ax=ax, cmap="RdBu_r", center=0, vmin=-vmax, vmax=vmax,
                    annot=annotate, fmt=".2f", annot_kws={"fontsize": 7}, cbar=False)
        mesh = ax.collections[0]
        ax.set_title(label.replace("cell = ", ""), fontsize=9)
        ax.set_xlabel(name(lay.x))
        ax.set_ylabel(name(rows))
        ax.set_xticklabels([f"{v:g}" for v in table.columns], rotation=0)
        ax.set_yticklabels([f"{v:g}" if isinstance(v, (int, float)) else str(v)
                            for v in table.index], rotation=0)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    fig.colorbar(mesh, ax=axes.ravel().tolist(), label=RATE_LABEL, shrink=0.9)
    return fig


@dataclass
class SweepFigures:
    """The files a sweep's figures were saved to, and a one-line note per figure not drawn."""

    paths: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __iter__(self):
        return iter(self.paths)


def _axis_stem(key: str) -> str:
    stem = key.split(".")[-1]
    return {"spectral_radius": "rho"}.get(stem, stem)


def sweep_figures(sweep_dir: Path, agg) -> SweepFigures:
    """The sweep's figures into ``<sweep_dir>/figures/``: decay_curves; rate_vs_<x> against the
    numeric swept key (rate_vs_rho for rho) or, with none, rate_by_<key> per value of a
    categorical one (rate_by_cell for cells or seeds alone); rate_heatmap with a numeric axis.
    A figure that cannot be drawn for this sweep's shape is skipped with a note (shown in
    report.html): the tables and the report are never lost to a figure.
    """
    out_dir = Path(sweep_dir) / "figures"
    out = SweepFigures()
    runs = agg.runs
    ok = runs[runs["status"] == "completed"] if not runs.empty else runs
    if ok.empty or agg.lags.empty:
        out.notes.append("no figures: no completed runs")
        print("figures: skipped (no completed runs)")
        return out
    lay = layout(ok, agg.swept)

    def draw(stem: str, make) -> None:
        try:
            fig = make()
        except Exception as err:  # a shape no figure planned for must not cost the report
            plt.close("all")
            if os.environ.get(TRACEBACK_ENV):
                raise
            out.notes.append(f"{stem}: not drawn for this sweep ({type(err).__name__}: {err})")
            return
        out.paths += save(fig, out_dir / stem)

    draw("decay_curves", lambda: decay_curves_figure(agg.lags, ok, lay))
    if lay.x:
        draw(f"rate_vs_{_axis_stem(lay.x)}", lambda: rate_figure(ok, lay))
        draw("rate_heatmap", lambda: rate_heatmap_figure(ok, lay))
    else:
        draw(f"rate_by_{_axis_stem(lay.style or 'cell')}", lambda: rate_by_value_figure(ok, lay))
        out.notes.append("rate_heatmap: not drawn (no numeric key varies across the runs)")
    drawn = sorted({p.stem for p in out.paths})
    print(f"figures: {', '.join(drawn) or 'none'} (PNG, PDF) in {out_dir}")
    for note in out.notes:
        print(f"  {note}")
    return out


# --------------------------------------------------------------------------------------------
# Single runs
# --------------------------------------------------------------------------------------------
def grad_heatmap(log10_grad: np.ndarray, path: Path, title: str = "",
                 target: str = "state") -> list[Path]:
    """log10 ||dL_t/dh_k|| (``target`` state) or log10 ||dy_t/dx_k|| (input) over (t, k): rows
    t, columns k, the upper triangle empty."""
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    im = ax.imshow(np.ma.masked_invalid(log10_grad), origin="upper", cmap="magma",
                   aspect="auto", interpolation="nearest")
    if target == "input":
        fig.colorbar(im, ax=ax, label=r"$\log_{10}\|\partial y_t/\partial x_k\|_F$")
        ax.set_xlabel("k (input, step)")
        ax.set_ylabel("t (output, step)")
    else:
        fig.colorbar(im, ax=ax, label=r"$\log_{10}\|\partial L_t/\partial h_k\|$")
        ax.set_xlabel("k (hidden state, step)")
        ax.set_ylabel("t (loss, step)")
    ax.set_title(title, fontsize=9)
    return save(fig, path)


def _stack_title(params: dict) -> str:
    """The network of a run in a few words: cell, layers, norm, residual."""
    cell = params.get("model.cell", DEFAULT_CELL)
    layers = params.get("model.layers") or 1
    norm = params.get("model.norm") or "none"
    res = "residual" if params.get("model.residual") else "no residual"
    return f"{cell}, {layers} layer{'s' if layers != 1 else ''}, norm {norm}, {res}"


def depth_time_heatmap(depth: pd.DataFrame, path: Path, title: str = "") -> list[Path]:
    """The depth x time map: the batch-and-pair mean of log10 ||do^l_t/dx_k||_F per layer l
    (rows, layer 1 at the bottom) and lag t - k (columns), depth_time.parquet's
    ``log10_grad_mean``."""
    grid = depth.pivot(index="layer", columns="lag", values="log10_grad_mean").sort_index()
    L, K = grid.shape
    fig, ax = plt.subplots(figsize=(6.0, 1.6 + 0.35 * L))
    values = np.ma.masked_invalid(grid.to_numpy(dtype=float))
    im = ax.imshow(values, origin="lower", cmap="magma", aspect="auto", interpolation="nearest",
                   extent=(grid.columns.min() - 0.5, grid.columns.max() + 0.5, 0.5, L + 0.5))
    fig.colorbar(im, ax=ax, label=r"$\log_{10}\|\partial o^l_t/\partial x_k\|_F$ (mean)")
    ax.set_yticks(range(1, L + 1))
    ax.set_xlabel("lag t - k (steps)")
    ax.set_ylabel("layer l")
    ax.set_title(f"depth x time: {title}" if title else "depth x time", fontsize=9)
    return save(fig, path)


def fitted_line(lags: pd.DataFrame, record: dict):
    """(lags, log10 values) of the fitted line: slope decay_rate / ln 10 through the centroid of
    the fit window, weighted by the finite values per lag, as ``fit.fit_decay`` weights them."""
    rate = record.get("decay_rate")
    lo, hi = record.get("fit_min_lag"), record.get("fit_max_lag")
    if rate is None or lo is None or hi is None:
        return None
    win = lags[(lags["lag"] >= lo) & (lags["lag"] <= hi)]
    w = win["n_finite"] if "n_finite" in win else win["n_pairs"]
    ok = np.isfinite(win["log10_ratio_mean"]) & (w > 0)
    if not ok.any():
        return None
    xbar = np.average(win["lag"][ok], weights=w[ok])
    ybar = np.average(win["log10_ratio_mean"][ok], weights=w[ok])
    x = np.array([lo, hi], dtype=float)
    return x, ybar + rate / math.log(10) * (x - xbar)


def single_run_figures(run_dir: Path) -> list[Path]:
    """Lag curve of one run with its fitted line and rate and, with tensors.npz, its (t, k)
    heatmap."""
    run_dir = Path(run_dir)
    record = read_run(run_dir) or {}
    target = record.get("params", {}).get("measure.target") or "state"
    lags = pd.read_parquet(run_dir / lags_file(target))
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    ax.plot(lags["lag"], lags["log10_ratio_mean"], "o", ms=2.5, label="measured (mean)")
    ax.fill_between(lags["lag"], lags["log10_ratio_mean"] - lags["log10_ratio_std"],
                    lags["log10_ratio_mean"] + lags["log10_ratio_std"], alpha=0.25, lw=0,
                    label=r"$\pm$1 std over batch and pairs")
    line = fitted_line(lags, record)
    if line is not None:
        ax.plot(*line, "k--", lw=1.2, label=f"least-squares fit, lags {record['fit_min_lag']}"
                f"–{record['fit_max_lag']}")
        err = record.get("decay_rate_stderr")
        err = f" ± {err:.2g}" if isinstance(err, float) else ""
        ax.set_title(f"decay rate {record['decay_rate']:+.4g}{err} nats/step "
                     f"({record.get('regime')})", fontsize=10)
    ax.set_xlabel("lag t - k (steps)")
    params = record.get("params", {})
    cell = params.get("model.cell", DEFAULT_CELL)
    if target == "input":
        ax.set_ylabel(INPUT_RATIO_LABEL)
    else:
        ax.set_ylabel(ratio_label({cell: measured_state(cell, params.get("measure.lstm_state")
                                                        or "joint")}))
    ax.legend(fontsize=8)
    paths = save(fig, run_dir / "figures" / "decay_curve")
    npz = run_dir / "tensors.npz"
    if npz.exists():
        with np.load(npz) as t:
            paths += grad_heatmap(t["log10_grad"], run_dir / "figures" / "grad_heatmap",
                                  target=target)
    if (run_dir / "depth_time.parquet").exists():
        paths += depth_time_heatmap(pd.read_parquet(run_dir / "depth_time.parquet"),
                                    run_dir / "figures" / "depth_time", _stack_title(params))
    if (run_dir / "weight_grad.parquet").exists():
        paths += weight_grad_figure(pd.read_parquet(run_dir / "weight_grad.parquet"),
                                    run_dir / "figures" / "weight_grad")
    return paths

