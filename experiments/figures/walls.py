"""Walls of the one-unit error surface, with clipped and unclipped gradient steps.

Figure: Pascanu, Mikolov, Bengio 2013 (arXiv:1211.5063), Fig. 6; docs/theory.md, "Pascanu's
bounds and the one-unit model".
The one-unit recurrent model ``x_t = w sigmoid(x_{t-1}) + b``, ``x_0 = 0.5``, with the error
``E_50 = (sigmoid(x_50) - 0.7)^2``, over (w, b) in [-10, 10]^2 on a 401 x 401 grid (step 0.05).

EXPECTED (recomputed in float64 on exactly this grid, docs/theory.md): the gradient norm
``||dE_50/d(w, b)||`` has median 4.6e-3 and maximum 26, and 0.26% of the grid lies above 100x the
median: flat plateaus cut by thin walls of huge gradient. The walls lie where x_0 = 0.5 sits on
the basin boundary of the bistable map (x = 0.5 is the unstable fixed point, ``b = 0.5 - w
sigmoid(0.5)``) inside the saddle-node wedge ``w sigmoid'(x) = 1``, ``b = x - w sigmoid(x)``;
both curves are drawn as theory lines. A plain gradient-descent step that lands on a wall is
thrown far away (here out of the plotted square); with gradient-norm clipping (Pascanu: if
``||g|| > threshold``, ``g <- threshold g / ||g||``, threshold 1) every step is at most
``lr * threshold`` long and the trajectory stays local.

The grid costs well under a second, so quick mode uses the same 401 x 401 grid and the same
tolerances as the full mode. Run alone: ``python experiments/figures/walls.py [--quick]`` or
``python -m experiments.figures.walls [--quick]`` (about 5 s). That a clipped step never
exceeds lr * threshold is a property of the clipping code (tests/test_figure_scripts.py), not
a reproduced result, so it is not a row of summary.csv.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

if not __package__:  # run as a file: the repo root on sys.path, for experiments.figures
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np
import pandas as pd
import torch

from experiments.figures.common import is_quick, row, standalone
from experiments.figures.plots import walls as plot

FIGURE = plot.FIGURE
STEPS, X0, TARGET = 50, 0.5, 0.7
GRID = 401  # 401 x 401 over [-10, 10]^2: the grid the expected values were computed on
LR, THRESHOLD, N_STEPS = 0.2, 1.0, 40  # gradient descent; clipping threshold as in Pascanu 2013


def error_and_grad(w: torch.Tensor, b: torch.Tensor):
    """E_50 and dE_50/dw, dE_50/db by autograd, elementwise over any shape, float64."""
    w = w.detach().clone().requires_grad_()
    b = b.detach().clone().requires_grad_()
    x = torch.full_like(w, X0)
    for _ in range(STEPS):
        x = w * torch.sigmoid(x) + b
    E = (torch.sigmoid(x) - TARGET) ** 2
    gw, gb = torch.autograd.grad(E.sum(), (w, b))  # E of each point depends on its own w, b only
    return E.detach(), gw, gb


def descend(start, clip: bool) -> pd.DataFrame:
    """N_STEPS of gradient descent on (w, b), optionally with Pascanu's norm clipping."""
    p, rows = torch.tensor(start, dtype=torch.float64), []
    for k in range(N_STEPS + 1):
        E, gw, gb = error_and_grad(p[0], p[1])
        g = torch.stack([gw, gb])
        norm = float(torch.linalg.vector_norm(g))
        if clip and norm > THRESHOLD:
            g = g * (THRESHOLD / norm)
        step = -LR * g
        rows.append({"clipped": clip, "step": k, "w": float(p[0]), "b": float(p[1]),
                     "E": float(E), "grad_norm": norm,
                     "step_length": float(torch.linalg.vector_norm(step)) if k < N_STEPS else 0.0})
        p = p + step
    return pd.DataFrame(rows)


def theory_curves():
    """Bifurcation curves of the fixed points x = w sigma(x) + b, parametrised by x: saddle-node
    (w sigma'(x) = 1) and period doubling (w sigma'(x) = -1); and the basin-boundary line
    through x_0 (x_0 itself the unstable fixed point)."""
    x = np.linspace(-6, 6, 2001)
    s = 1 / (1 + np.exp(-x))
    w_sn, w_pd = 1 / (s * (1 - s)), -1 / (s * (1 - s))
    curves = [(w_sn, x - w_sn * s), (w_pd, x - w_pd * s)]
    s0 = 1 / (1 + math.exp(-X0))
    w_line = np.linspace(1 / (s0 * (1 - s0)), 10, 200)  # x_0 is a fixed point with slope > 1
    b_line = X0 - w_line * s0
    return curves, (w_line, b_line)


def measure(mode: str) -> dict:
    """The error and its gradient norm over the grid, the steepest wall point, both descents
    from beside it, and a finer grid around it. The same in both modes (it takes seconds)."""
    is_quick(mode)
    # 1. gradient norm over the whole grid, one vectorised autograd pass
    axis = torch.linspace(-10, 10, GRID, dtype=torch.float64)
    W, B = torch.meshgrid(axis, axis, indexing="ij")
    E, gw, gb = error_and_grad(W, B)
    norm = torch.hypot(gw, gb).numpy()
    median = float(np.median(norm))
    i, j = np.unravel_index(norm.argmax(), norm.shape)
    w_wall, b_wall = float(W[i, j]), float(B[i, j])

    # 2. descent from two grid cells above the steepest wall point, where the descent direction
    #    points into the wall (low-error side of the cliff), with and without clipping
    start = (w_wall, b_wall + 0.1)
    traj = pd.concat([descend(start, clip=False), descend(start, clip=True)], ignore_index=True)

    # 3. the error on a finer grid around the steepest wall point
    zoom = (w_wall - 0.6, w_wall + 0.6, b_wall - 0.4, b_wall + 0.4)
    zw, zb = torch.meshgrid(torch.linspace(zoom[0], zoom[1], 241, dtype=torch.float64),
                            torch.linspace(zoom[2], zoom[3], 241, dtype=torch.float64),
                            indexing="ij")
    zE = error_and_grad(zw, zb)[0]
    return {"E": E.numpy(), "norm": norm, "median": median, "peak": float(norm.max()),
            "wall_pct": 100 * float((norm > 100 * median).mean()),
            "wall": (w_wall, b_wall), "descent": traj, "zoom": zoom, "zoom_E": zE.numpy(),
            "grid": (W.numpy(), B.numpy()), "zoom_grid": (zw.numpy(), zb.numpy())}


def rows(measured: dict) -> list[dict]:
    # The expected values were recomputed in float64 on exactly this grid (docs/theory.md) and are
    # given to two significant digits, so the only legitimate difference is half a unit of that
    # last digit: 0.05e-3 of 4.6e-3, 0.5 of 26, 0.005 points of 0.26%.
    basis = ("recomputed in float64 on this grid (not a published number), given to 2 "
             "significant digits: tolerance half a unit of the last digit")
    return [
        row(FIGURE, "median gradient norm", 4.6e-3, measured["median"], 0.05e-3, kind="exact",
            basis=basis),
        row(FIGURE, "max gradient norm", 26.0, measured["peak"], 0.5, kind="exact", basis=basis),
        row(FIGURE, "% of grid above 100x median", 0.26, measured["wall_pct"], 0.005,
            kind="exact", basis=basis),
    ]


def tables(measured: dict) -> dict:
    """walls_grid.csv (the grid's statistics, the steepest point, the longest steps),
    walls_descent.csv (both descents), walls_surface.parquet (w, b, E_50 and the gradient norm
    on the GRID x GRID grid), walls_zoom.parquet (w, b, E_50 on the 241 x 241 grid around the
    steepest wall), walls_theory.csv (the curves of theory_curves: curve, w, b) and
    walls_settings.csv (LR and THRESHOLD). The grids are Parquet: float64 exactly, a third of
    the CSV's size."""
    (w_wall, b_wall), traj = measured["wall"], measured["descent"]
    plain, clipped = traj[~traj["clipped"]], traj[traj["clipped"]]
    stats = pd.DataFrame([
        {"quantity": "grid", "value": GRID},
        {"quantity": "median_grad_norm", "value": measured["median"]},
        {"quantity": "max_grad_norm", "value": measured["peak"]},
        {"quantity": "pct_above_100x_median", "value": measured["wall_pct"]},
        {"quantity": "argmax_w", "value": w_wall}, {"quantity": "argmax_b", "value": b_wall},
        {"quantity": "longest_unclipped_step", "value": float(plain["step_length"].max())},
        {"quantity": "longest_clipped_step", "value": float(clipped["step_length"].max())},
    ])
    (w, b), (zw, zb) = measured["grid"], measured["zoom_grid"]
    surface = pd.DataFrame({"w": w.ravel(), "b": b.ravel(), "E": measured["E"].ravel(),
                            "grad_norm": measured["norm"].ravel()})
    zoom = pd.DataFrame({"w": zw.ravel(), "b": zb.ravel(), "E": measured["zoom_E"].ravel()})
    (sn, pd_curve), line = theory_curves()
    curves = pd.concat([pd.DataFrame({"curve": name, "w": cw, "b": cb}) for name, (cw, cb) in
                        (("saddle-node", sn), ("period doubling", pd_curve),
                         ("basin boundary", line))], ignore_index=True)
    settings = pd.DataFrame([{"lr": LR, "threshold": THRESHOLD}])
    return {"walls_grid.csv": stats, "walls_descent.csv": traj, "walls_surface.parquet": surface,
            "walls_zoom.parquet": zoom, "walls_theory.csv": curves,
            "walls_settings.csv": settings}


def main(argv=None) -> int:
    return standalone(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
