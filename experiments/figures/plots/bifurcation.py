"""bifurcation, drawn from its tables: the fixed-point curve of x = w sigmoid(x) + b (solid where
stable, dashed where not), the simulated end states, the stated bifurcations and the bistable
range found.

Reads bifurcation.csv (per b: the number of attractors found), bifurcation_end_states.csv (the
converged end states at every 20th b, per x_0), bifurcation_theory.csv (b(x) and its stability)
and bifurcation_settings.csv (w and the stated bifurcation points).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from rnnlab.plotting import plt

FIGURE = "bifurcation"
TABLES = ("bifurcation.csv", "bifurcation_end_states.csv", "bifurcation_theory.csv",
          "bifurcation_settings.csv")


def draw(tables: dict, out_dir: Path) -> Path:
    table, ends, curve, settings = (tables[name] for name in TABLES)
    settings = settings.to_dict("records")[0]
    b = table["b"].to_numpy()
    bistable = b[table["n_attractors"].to_numpy() == 2]
    edges = (bistable.min(), bistable.max()) if bistable.size else (np.nan, np.nan)

    xs, b_of_x = curve["x"].to_numpy(), curve["b"].to_numpy()
    stable = curve["stable"].to_numpy(bool)
    fig, ax = plt.subplots(figsize=(7.5, 5))
    for mask, style, label in [(stable, "-", "stable fixed points (theory)"),
                               (~stable, "--", "unstable fixed points (theory)")]:
        ax.plot(np.where(mask, b_of_x, np.nan), xs, style, color="k", lw=1.0, label=label,
                zorder=3)
    ax.scatter(ends["b"].to_numpy(), ends["x_inf"].to_numpy(), s=14, color="C0", alpha=0.6,
               label=rf"$x_\infty$ iterated from $x_0 \in [{ends['x0'].min():g}, "
               rf"{ends['x0'].max():g}]$")
    for value, name in zip((settings["expected_low"], settings["expected_high"]),
                           ["expected", None]):
        ax.axvline(value, color="C3", lw=0.8, ls=":",
                   label=None if name is None else "expected bifurcations")
    if bistable.size:
        ax.axvspan(*edges, color="C1", alpha=0.15,
                   label=f"bistable (simulated): [{edges[0]:.4f}, {edges[1]:.4f}]")
    ax.set_xlim(b[0], b[-1])
    ax.set_ylim(-6, 6)
    ax.set_xlabel("b (bias, dimensionless)")
    ax.set_ylabel(r"$x_\infty$ (state, dimensionless)")
    ax.set_title(rf"Pascanu et al. 2013 Fig. 3: $x_t = {settings['w']:g}\,\sigma(x_{{t-1}}) + b$")
    ax.legend(fontsize=8, loc="upper left")
    path = out_dir / "bifurcation.png"
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return path
