"""Every shape of sweep ends with its tables, figures and report.html.

Each case runs ``experiments/decay.py -m sweep=custom ...`` through the command-line driver in
this process (tiny networks: N = 6, T = 12, B = 2), then ``experiments/aggregate.py`` on the same
directory, and checks: exit status 0 both times; rates.csv has one row per configuration; the
figures this shape calls for exist (``rate_vs_<x>`` and ``rate_heatmap`` with a numeric swept
key, ``rate_by_<key>`` without one) and are embedded in report.html; any figure not drawn is
named in report.html with a one-line reason; the report's rates table leaves out the columns
that are the same in every row and says their value once.
"""
from __future__ import annotations

import base64
import re

import pandas as pd
import pytest

SMALL = ["model.hidden_size=6", "model.input_size=3", "model.output_size=4",
         "data.batch_size=2", "measure.progress=false", "measure.device=cpu"]

# (swept overrides, configurations, figures drawn, figure noted as not drawn)
SHAPES = {
    "categorical": (["model.activation=tanh,relu"], 2, ["decay_curves", "rate_by_cell"],
                    "rate_heatmap"),
    "cells only": (["model.cell=gru,lstm,minimal"], 3, ["decay_curves", "rate_by_cell"],
                   "rate_heatmap"),
    "seeds only": (["seed=0,1,2"], 1, ["decay_curves", "rate_by_cell"], "rate_heatmap"),
    "one numeric": (["model.spectral_radius=0.8,1.5"], 2,
                    ["decay_curves", "rate_vs_rho", "rate_heatmap"], None),
    "two numeric": (["model.spectral_radius=0.8,1.5", "data.seq_len=10,14"], 4,
                    ["decay_curves", "rate_vs_rho", "rate_heatmap"], None),
    "numeric and categorical": (["model.gain=0.8,1.5", "model.spectral_radius=null",
                                 "model.activation=tanh,relu", "seed=0,1"], 4,
                                ["decay_curves", "rate_vs_gain", "rate_heatmap"], None),
    "two categorical": (["model.init=gaussian,orthogonal", "measure.dtype=float32,float64"], 4,
                        ["decay_curves", "rate_by_init"], "rate_heatmap"),
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_every_sweep_shape_gets_figures_and_a_report(shape, decay_in_process, tmp_path):
    swept, n_configs, drawn, not_drawn = SHAPES[shape]
    sweep_dir = tmp_path / "sweep"
    fixed_T = [] if any(o.startswith("data.seq_len") for o in swept) else ["data.seq_len=12"]
    status, _, err = decay_in_process("-m", "sweep=custom", *swept, *SMALL, *fixed_T,
                                      f"hydra.sweep.dir={sweep_dir}")
    assert status == 0, err[-3000:]

    rates = pd.read_csv(sweep_dir / "rates.csv")
    assert len(rates) == n_configs
    assert rates["decay_rate"].notna().all()
    figures = sweep_dir / "figures"
    for stem in drawn:
        assert (figures / f"{stem}.png").stat().st_size > 0, stem
    assert sorted(p.stem for p in figures.glob("*.png")) == sorted(drawn)

    page = (sweep_dir / "report.html").read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == len(drawn)
    assert all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in images)
    if not_drawn:
        assert re.search(rf"<li class=\"note\">{not_drawn}: not drawn \([^<]+\)</li>", page)
    assert "not drawn for this sweep" not in page, "a planned figure failed"
    rates_html = page[page.index("<h2>Rates"):page.index("<h2>Provenance")]
    if n_configs > 1:
        assert "model.hidden_size" not in rates_html.split("The same in every row")[0]

    if "rate_heatmap" not in drawn:  # the shapes that once crashed experiments/aggregate.py too
        from experiments import aggregate

        assert aggregate.main([str(sweep_dir)]) == 0


def test_report_names_constant_keys_once_and_scrolls_wide_tables(tmp_path):
    """A gain sweep's rates keep model.spectral_radius = null out of the table (said once), and
    each table sits in a horizontally scrolling box."""
    from rnnlab.measure import report

    rates = pd.DataFrame({"model.activation": ["tanh", "tanh"], "model.gain": [0.5, 1.0],
                          "model.spectral_radius": [None, None], "data.seq_len": [30, 30],
                          "decay_rate": [-1.0, -0.5]})
    table, fixed = report.split_constant(rates, keep=("data.seq_len",))
    assert list(table.columns) == ["model.gain", "data.seq_len", "decay_rate"]
    assert list(fixed) == ["model.activation", "model.spectral_radius"]
    assert report._table(table).startswith('<div class="wide">')
