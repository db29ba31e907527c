"""Sweep figures for any swept axis, the single-run figure, and report.html in a real browser.

- every swept key is drawn, never averaged: a hidden_size x rho x activation sweep gets one curve
  per (N, rho, cell) and one marker series per (cell, N); x is the numeric key that varies
  (rho before gain before T before N); a sweep over N alone gets N on the x axis;
- cells keep fixed colours across sweeps (elman-tanh is the same blue wherever it appears);
- the heatmap has one panel per cell with one shared colour bar (no overprinted labels);
- a categorical-only sweep draws the rate per value (seeds as points, the mean with its interval)
  and the legend reads row by row; an LSTM's ratio axis is labelled with the state s = (h, c);
- the weight-gradient figure leaves a share of exactly 0 off its log axis (and says so) and puts
  ticks at whole lags;
- the single-run figure carries the fitted line (slope decay_rate / ln 10, to 1e-12) and the
  rate in its title;
- report.html is self-contained (no external resource) and, in headless chromium (Debian's
  package; .ci/run installs it), loads with no console errors, every image decodes to a non-zero
  size, and a screenshot is written.
"""
import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rnnlab.measure import plots, report, tables

ROOT = Path(__file__).resolve().parents[1]


def synthetic(tmp_path, grid: dict, seeds=1) -> Path:
    """A sweep directory of fake completed runs over ``grid`` (exact lines: rate = -1/rho)."""
    import itertools

    from rnnlab.measure.config import RunSpec
    from rnnlab.runs.store import write_json

    base = RunSpec().flat()
    keys = list(grid)
    for values in itertools.product(*grid.values()):
        for seed in range(seeds):
            params = {**base, **dict(zip(keys, values)), "seed": seed}
            name = ",".join(f"{k}={v}" for k, v in zip(keys, values)) + f",seed={seed}"
            run = tmp_path / name
            run.mkdir(parents=True)
            rate = -1.0 / params["model.spectral_radius"] + 0.01 * seed
            lag = np.arange(params["data.seq_len"])
            pd.DataFrame({"lag": lag, "log10_ratio_mean": rate * lag / math.log(10),
                          "log10_ratio_std": 0.1, "log10_grad_mean": 0.0, "n_pairs": 5,
                          "n_finite": 5}).to_parquet(run / "lags.parquet")
            write_json(run / "run.json", {
                "status": "completed", "params": params, "decay_rate": rate,
                "decay_rate_stderr": 0.01, "regime": "vanishing", "seconds": 0.1,
                "fit_min_lag": 1, "fit_max_lag": int(lag[-1]),
                "theory": {"mean_field_rate": rate + 0.02},
                "provenance": {"git_commit": "abc", "device": "cpu"}})
    return tmp_path


def test_hidden_size_sweep_draws_every_configuration(tmp_path):
    d = synthetic(tmp_path, {"model.hidden_size": [32, 64], "model.spectral_radius": [0.5, 1.0],
                             "model.activation": ["tanh", "relu"]}, seeds=2)
    agg = tables.aggregate(d, quiet=True)
    ok = agg.runs
    lay = plots.layout(ok, agg.swept)
    assert (lay.x, lay.style, lay.facets) == ("model.spectral_radius", "model.hidden_size", [])

    fig = plots.decay_curves_figure(agg.lags, ok, lay)
    axes = [ax for ax in fig.axes if ax.get_visible() and ax.lines]
    assert len(axes) == 4  # 2 cells x 2 hidden sizes
    assert sum(len(ax.lines) for ax in axes) == 8  # and 2 rho each: 8 configurations, 16 runs
    titles = sorted(ax.get_title() for ax in axes)
    assert titles[0] == "elman-relu, N = 32"

    fig = plots.rate_figure(ok, lay)
    (ax,) = [a for a in fig.axes if a.get_visible()]
    assert len(ax.containers) == 4  # one errorbar series per (cell, N)
    colours = {plt_rgb(c.lines[0].get_color()) for c in ax.containers}
    assert colours == {plt_rgb(plots.PALETTE[n]) for n in ("elman-tanh", "elman-relu")}
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "elman-tanh" in labels and "N = 32" in labels
    assert not any("model." in t for t in labels), "legend names, not raw keys"

    fig = plots.rate_heatmap_figure(ok, lay)
    panels = [a for a in fig.axes if a.get_visible() and a.get_title()]
    assert len(panels) == 2 and len(fig.axes) == 3  # two cells and one colour bar


def plt_rgb(colour):
    from matplotlib.colors import to_rgb
    return to_rgb(colour)


def test_x_axis_is_whatever_numeric_key_varies_and_colours_are_fixed(tmp_path):
    d = synthetic(tmp_path, {"model.hidden_size": [16, 32, 64],
                             "model.activation": ["tanh"]})
    agg = tables.aggregate(d, quiet=True)
    lay = plots.layout(agg.runs, agg.swept)
    assert lay.x == "model.hidden_size" and lay.style is None
    fig = plots.rate_figure(agg.runs, lay)
    ax = [a for a in fig.axes if a.get_visible()][0]
    assert ax.get_xlabel() == "N (hidden units)"
    (series,) = ax.containers
    assert plt_rgb(series.lines[0].get_color()) == plt_rgb(plots.PALETTE["elman-tanh"])
    paths = plots.sweep_figures(d, agg)
    assert {p.name for p in paths} >= {"decay_curves.png", "rate_vs_hidden_size.png"}
    for name in ("elman-tanh", "elman-relu", "elman-sigmoid", "elman-linear", "gru", "lstm",
                 "minimal"):
        assert name in plots.PALETTE
    assert len(set(plots.PALETTE.values())) == len(plots.PALETTE)


def test_single_run_figure_has_fit_and_rate(tmp_path):
    from rnnlab.measure.app import execute
    from rnnlab.measure.config import DataSpec, MeasureSpec, ModelSpec, RunSpec

    spec = RunSpec(model=ModelSpec(activation="linear", init="orthogonal", spectral_radius=0.9,
                                   hidden_size=8), data=DataSpec(seq_len=30, batch_size=2),
                   measure=MeasureSpec(progress=False))
    record = execute(spec, tmp_path)
    lags = pd.read_parquet(tmp_path / "lags.parquet")
    x, y = plots.fitted_line(lags, record)
    slope = (y[1] - y[0]) / (x[1] - x[0])
    assert abs(slope - math.log10(0.9)) < 1e-12
    assert abs(y[0] - x[0] * math.log10(0.9)) < 1e-12  # exact: ratios are 0.9^lag
    paths = plots.single_run_figures(tmp_path)
    assert (tmp_path / "figures" / "decay_curve.png") in paths


def test_report_is_self_contained_and_renders(tmp_path):
    d = synthetic(tmp_path / "sweep", {"model.spectral_radius": [0.5, 1.0, 2.0],
                                       "model.activation": ["tanh", "relu"],
                                       "data.seq_len": [20, 40]})
    (d / "broken").mkdir()  # a run that never finished: named in the report
    agg = tables.aggregate(d, quiet=True)
    page = report.write(d, agg, plots.sweep_figures(d, agg))
    text = page.read_text()
    assert "missing: broken" in text
    assert re.search(r"""(src|href)=["'](?!data:)""", text) is None, "nothing outside the page"
    assert text.count("<img") == 3 and "decay rate" in text

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no chromium on this machine (Debian: apt-get install chromium; .ci/run does)")
    # the page itself has no script; a copy gets a probe that records console errors and the
    # decoded size of every image into the DOM, which chromium dumps after load
    probe = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message || e.type)), true);
const _err = console.error; console.error = (...a) => { window.__errors.push(a.join(' ')); };
window.addEventListener('load', () => {
  const sizes = [...document.images].map(i => [i.naturalWidth, i.naturalHeight,
                                               i.getBoundingClientRect().width]);
  const out = document.createElement('pre'); out.id = 'probe';
  out.textContent = JSON.stringify({errors: window.__errors, sizes: sizes});
  document.body.appendChild(out);
});
</script>"""
    probed = tmp_path / "probed.html"
    probed.write_text(text.replace("<head>", "<head>" + probe, 1))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             "--enable-logging=stderr", "--v=0"]
    out = subprocess.run([browser, *flags, "--virtual-time-budget=5000", "--dump-dom",
                          probed.as_uri()], capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="probe">(.*?)</pre>', out.stdout, re.S)
    assert found, out.stderr[-2000:]
    result = json.loads(found.group(1).replace("&quot;", '"'))
    assert result["errors"] == []
    assert len(result["sizes"]) == 3 and all(w > 0 and h > 0 and shown > 0
                                             for w, h, shown in result["sizes"])
    assert "Uncaught" not in out.stderr
    shot = tmp_path / "report.png"
    subprocess.run([browser, *flags, f"--screenshot={shot}", "--window-size=1200,2400",
                    page.as_uri()], capture_output=True, text=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 10_000


def test_categorical_sweep_figure_and_row_major_legend(tmp_path):
    d = synthetic(tmp_path, {"model.init": ["gaussian", "orthogonal"],
                             "model.activation": ["tanh", "relu"]}, seeds=3)
    agg = tables.aggregate(d, quiet=True)
    lay = plots.layout(agg.runs, agg.swept)
    assert lay.x is None and lay.style == "model.init"
    fig = plots.rate_by_value_figure(agg.runs, lay)
    (ax,) = [a for a in fig.axes if a.get_visible()]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["gaussian", "orthogonal"]
    assert len(ax.containers) == 4  # a mean with its interval per (init, cell)
    seeds = [ln for ln in ax.lines if ln.get_marker() == "o"]
    assert sum(len(ln.get_xdata()) for ln in seeds) == 12  # every seed drawn
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    handles = ["elman-relu", "elman-tanh", "one seed", "mean over seeds, 95% interval"]
    # three columns filled column by column: reading row by row gives the original order
    assert [labels[i] for i in (0, 2, 4, 1)] == handles
    assert plots.ratio_label({"gru": "h", "lstm": "(h, c)"}).startswith(plots.STATE_RATIO_LABEL)
    assert plots.ratio_label({"elman": "h"}) == plots.RATIO_LABEL


def test_weight_grad_figure_leaves_zero_shares_off_the_log_axis(monkeypatch, tmp_path):
    import rnnlab.plotting as plotting

    seen = {}
    monkeypatch.setattr(plotting, "save", lambda fig, stem: seen.setdefault("fig", fig) and [])
    wg = pd.DataFrame({"lag": np.arange(6), "log10_norm": -np.arange(6.0),
                       "share_ge": [1, 0.1, 0.01, 1e-3, 0.0, 0.0]})
    plotting.weight_grad_figure(wg, tmp_path / "wg")
    a, b = seen["fig"].axes
    share = b.lines[0].get_ydata()
    assert np.isnan(share[4:]).all() and (share[:4] > 0).all()
    assert any("exactly 0 not drawn" in t.get_text() for t in b.texts)
    assert all(float(t).is_integer() for t in a.get_xticks())
