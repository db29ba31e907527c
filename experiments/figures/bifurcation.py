"""Bifurcation diagram of the one-unit recurrent model.

Figure: Pascanu, Mikolov, Bengio 2013 (arXiv:1211.5063), Fig. 3; docs/theory.md, "Pascanu's
bounds and the one-unit model".
``x_t = w sigmoid(x_{t-1}) + b`` with ``w = 5``: the asymptotic state x_inf against the bias b,
iterated from several initial states x_0 until it converges.

EXPECTED (Pascanu 2013; recomputed in float64, docs/theory.md): two saddle-node bifurcations,
at b = -2.6556 and b = -2.3444, with the map bistable between them (two stable fixed points and an
unstable one between them; one stable fixed point outside). At b = -2.5 the iterates converge to
one of two distinct stable fixed points depending on x_0. Crossing a bifurcation moves x_inf by a
finite jump for an infinitesimal change of b: the origin of the gradient "walls" (see walls.py).

Measured: the edges of the bistable range from the simulated attractors on a fine b grid, and
the attractors at b = -2.5 by iteration. The bifurcation points by root-finding (scipy brentq on
w sigmoid'(x) = 1, then b = x - w sigmoid(x)) are drawn; that they equal the constants above is a
check of that code (tests/test_figure_scripts.py), not a row. Theory lines: the
fixed-point curve b(x) = x - w sigmoid(x), solid where stable (|w sigmoid'(x)| < 1), dashed where
unstable. The outer attractors at b = -2.5 are compared with the roots of x = w sigmoid(x) + b
in attractors.csv only: one map solved two ways in one script is a check of the script, not a
reproduced result. Run alone: ``python experiments/figures/bifurcation.py [--quick]`` or
``python -m experiments.figures.bifurcation [--quick]`` (35 s measured on the shared machine).
"""
from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as a file: the repo root on sys.path, for experiments.figures
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.special import expit

from experiments.figures.common import is_quick, row, standalone
from experiments.figures.plots import bifurcation as plot

FIGURE = plot.FIGURE
W = 5.0
EXPECTED = (-2.6556, -2.3444)  # Pascanu 2013's one-unit model, 4 decimals
CONVERGED = 1e-10  # |x_n - x_{n-1}| below this: converged
DISTINCT = 1e-6  # attractors closer than this are the same


def iterate(b: np.ndarray, x0: np.ndarray, n: int):
    """x_n of the map from every (b, x0) pair (broadcast) and whether it converged."""
    x = np.broadcast_to(x0, np.broadcast_shapes(b.shape, x0.shape)).astype(float)
    for _ in range(n):
        prev, x = x, W * expit(x) + b
    return x, np.abs(x - prev) < CONVERGED


def attractors(x_inf: np.ndarray, ok: np.ndarray) -> list[np.ndarray]:
    """Distinct converged, stable (|w sigmoid'(x)| < 1) end states per row (one row per b). The
    stability test drops an unstable fixed point hit exactly (x_0 = 0 at b = -2.5 is one)."""
    out = []
    ok = ok & (W * expit(x_inf) * (1 - expit(x_inf)) < 1)
    for ends, good in zip(x_inf, ok):
        vals = np.sort(ends[good])
        out.append(vals[np.r_[True, np.diff(vals) > DISTINCT]] if vals.size else vals)
    return out


def saddle_nodes() -> list[float]:
    """b at the saddle-node points: x = w s(x) + b and w s'(x) = 1, by brentq in x on each side
    of the inflection point x = 0 (w s'(x) peaks there at w/4 > 1)."""
    tangency = lambda x: W * expit(x) * (1 - expit(x)) - 1  # noqa: E731 (one line, for brentq)
    xs = [brentq(tangency, 0.0, 20.0, xtol=1e-15), brentq(tangency, -20.0, 0.0, xtol=1e-15)]
    return sorted(x - W * expit(x) for x in xs)


def measure(mode: str) -> dict:
    """The saddle-node points by root-finding, the simulated end states over a b grid (and the
    bistable range they give), and the attractors at b = -2.5 beside the map's roots there."""
    # 1. bifurcation points by root-finding
    b_lo, b_hi = saddle_nodes()

    # 2. simulated attractors over a b grid from several x_0. Near a saddle-node the approach is
    #    slow (the multiplier tends to 1), so runs that have not converged are left out.
    n_b, n_iter = (801, 4000) if is_quick(mode) else (4001, 20000)
    b = np.linspace(-3.5, -1.5, n_b)
    x0 = np.linspace(-6.0, 6.0, 13)
    x_inf, ok = iterate(b[:, None], x0[None, :], n_iter)
    found = attractors(x_inf, ok)
    n_att = np.array([len(a) for a in found])
    bistable = b[n_att == 2]
    edges = (bistable.min(), bistable.max()) if bistable.size else (np.nan, np.nan)

    # 3. the two attractors at b = -2.5 from a wide spread of initial states
    x_mid, ok_mid = iterate(np.array([[-2.5]]), np.linspace(-10, 10, 41)[None, :], 20000)
    at_mid = attractors(x_mid, ok_mid)[0]
    fixed = lambda x: W * expit(x) - 2.5 - x  # noqa: E731 (one line, for brentq)
    # the outer fixed points at b = -2.5
    roots = [brentq(fixed, -10.0, -1.0, xtol=1e-15), brentq(fixed, 1.0, 10.0, xtol=1e-15)]
    return {"saddle_nodes": (b_lo, b_hi), "b": b, "x0": x0, "x_inf": x_inf, "converged": ok,
            "attractors": found, "n_attractors": n_att, "bistable": bistable, "edges": edges,
            "at_mid": at_mid, "roots": roots}


def rows(measured: dict) -> list[dict]:
    # The expected values are given to 4 decimals (rounding error <= 5e-5); the simulated edges
    # are located to within one grid step db.
    edges, b = measured["edges"], measured["b"]
    db = b[1] - b[0]
    rounding = "expected value given to 4 decimals: 5e-5 rounding"
    return [row(FIGURE, "bistable range lower edge, simulated", EXPECTED[0], edges[0],
                db + 5e-5, kind="exact", basis=f"one b grid step ({db:.4g}) + {rounding}"),
            row(FIGURE, "bistable range upper edge, simulated", EXPECTED[1], edges[1],
                db + 5e-5, kind="exact", basis=f"one b grid step ({db:.4g}) + {rounding}"),
            row(FIGURE, "stable fixed points at b = -2.5 (distinct attractors)", 2,
                len(measured["at_mid"]), 0, kind="exact",
                basis="a count: bistable means exactly 2")]


def tables(measured: dict) -> dict:
    """bifurcation.csv (per b: attractors found, the lowest and highest, runs not converged),
    attractors.csv (the two at b = -2.5, iterated and as roots of the map),
    bifurcation_end_states.csv (every converged end state at every n_b // 200-th b: b, x0,
    x_inf), bifurcation_theory.csv (the fixed-point curve b(x) = x - w sigmoid(x) at 4001 x in
    [-6, 6], stable where |w sigmoid'(x)| < 1) and bifurcation_settings.csv (w and the stated
    bifurcation points)."""
    b, x_inf, ok, found = (measured[k] for k in ("b", "x_inf", "converged", "attractors"))
    table = pd.DataFrame({"b": b, "n_attractors": measured["n_attractors"],
                          "x_inf_low": [a[0] if len(a) else np.nan for a in found],
                          "x_inf_high": [a[-1] if len(a) else np.nan for a in found],
                          "n_not_converged": (~ok).sum(1)})
    at_mid = measured["at_mid"]
    two = at_mid if len(at_mid) == 2 else [np.nan, np.nan]
    attractors_table = pd.DataFrame({"attractor": ["low", "high"], "iterated": two,
                                     "root": measured["roots"]})
    thin = slice(None, None, max(1, len(b) // 200))
    bb, x0 = np.broadcast_arrays(b[:, None], measured["x0"][None, :])
    keep = ok[thin]
    ends = pd.DataFrame({"b": bb[thin][keep], "x0": x0[thin][keep], "x_inf": x_inf[thin][keep]})
    xs = np.linspace(-6, 6, 4001)
    curve = pd.DataFrame({"x": xs, "b": xs - W * expit(xs),
                          "stable": W * expit(xs) * (1 - expit(xs)) < 1})
    settings = pd.DataFrame([{"w": W, "expected_low": EXPECTED[0], "expected_high": EXPECTED[1]}])
    return {"attractors.csv": attractors_table, **dict(zip(plot.TABLES, (
        table, ends, curve, settings)))}


def main(argv=None) -> int:
    return standalone(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
