"""Properties of the figure scripts that are checks of their code rather than reproduced results
(so they are tests here, not rows of summary.csv):

* walls: with Pascanu's norm clipping every gradient-descent step is at most lr * threshold long
  (to 1e-12), and a plain step from the same start on the wall is far longer;
* bifurcation: the attractors iterated at b = -2.5 equal the roots of x = 5 sigmoid(x) - 2.5
  (to 1e-8), and the saddle-nodes by root-finding are the stated -2.6556 and -2.3444 (1e-4:
  4-decimal rounding plus brentq);
* summary rows: a one-sided ``bound`` row passes at or below expected + tolerance and fails
  above it; a two-sided row fails on NaN; an unknown kind is refused.
"""
import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: experiments

from experiments.figures import bifurcation, common, walls


def test_clipped_steps_never_exceed_lr_times_threshold():
    import torch
    axis = torch.linspace(-10, 10, walls.GRID, dtype=torch.float64)
    W, B = torch.meshgrid(axis, axis, indexing="ij")
    _, gw, gb = walls.error_and_grad(W, B)
    i, j = np.unravel_index(int(torch.hypot(gw, gb).argmax()), W.shape)
    start = (float(W[i, j]), float(B[i, j]) + 0.1)  # beside the steepest wall, as walls.py
    clipped = walls.descend(start, clip=True)
    plain = walls.descend(start, clip=False)
    assert clipped["step_length"].max() <= walls.LR * walls.THRESHOLD + 1e-12
    assert (clipped["grad_norm"] > walls.THRESHOLD).any()  # clipping did act
    assert plain["step_length"].max() > 10 * walls.LR * walls.THRESHOLD


def test_iterated_attractors_are_the_fixed_points():
    x, ok = bifurcation.iterate(np.array([[-2.5]]), np.linspace(-10, 10, 41)[None, :], 20000)
    found = bifurcation.attractors(x, ok)[0]
    from scipy.optimize import brentq
    from scipy.special import expit
    fixed = lambda v: 5.0 * expit(v) - 2.5 - v  # noqa: E731 (one line, for brentq)
    roots = [brentq(fixed, -10.0, -1.0, xtol=1e-15), brentq(fixed, 1.0, 10.0, xtol=1e-15)]
    assert len(found) == 2 and np.allclose(found, roots, atol=1e-8, rtol=0)


def test_row_kinds():
    bound = dict(kind="bound", basis="b")
    assert common.row("f", "q", 0.0, -0.3, 1e-9, **bound)["passed"]
    assert common.row("f", "q", 0.0, 1e-9, 1e-9, **bound)["passed"]
    assert not common.row("f", "q", 0.0, 1e-6, 1e-9, **bound)["passed"]
    assert not common.row("f", "q", 0.0, math.nan, 1.0, **bound)["passed"]
    assert not common.row("f", "q", 0.0, math.nan, 1.0, kind="theory", basis="b")["passed"]
    r = common.row("f", "q", 1.0, 1.1, 0.2, kind="theory", basis="b", seeds=5, spread=0.1)
    assert r["passed"] and list(r) == common.COLUMNS
    with pytest.raises(ValueError, match="allowed"):
        common.row("f", "q", 0.0, 0.0, 0.0, kind="guess", basis="b")


def test_saddle_nodes_by_root_finding_are_the_stated_constants():
    """The bifurcation figure's root-finding (brentq, xtol 1e-15) gives the saddle-nodes it
    states to 4 decimals: rounding (5e-5) plus root-finding, 1e-4."""
    for got, expected in zip(bifurcation.saddle_nodes(), bifurcation.EXPECTED):
        assert abs(got - expected) < 1e-4
