"""walls, drawn from its tables: the error surface E_50 and its gradient norm over (w, b) with the
bifurcation curves and both descents, and a zoom on the steepest wall.

Reads walls_surface.parquet (E_50 and the gradient norm on the grid), walls_zoom.parquet (E_50
on the finer grid around the steepest wall), walls_descent.csv (both descents, step by step),
walls_grid.csv (the grid's statistics), walls_theory.csv (the saddle-node and period-doubling
curves and the basin boundary through x_0) and walls_settings.csv (learning rate and clipping
threshold).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from rnnlab.plotting import plt

FIGURE = "walls"
TABLES = ("walls_surface.parquet", "walls_zoom.parquet", "walls_descent.csv", "walls_grid.csv",
          "walls_theory.csv", "walls_settings.csv")
CURVES = {  # walls_theory.csv's curves: colour, line style, label
    "saddle-node": ("cyan", "-", r"saddle-node: $w\sigma'(x^*)=1$"),
    "period doubling": ("deepskyblue", "-", r"period doubling: $w\sigma'(x^*)=-1$"),
    "basin boundary": ("white", "--", r"basin boundary at $x_0$: $b = x_0 - w\sigma(x_0)$"),
}


def image(grid, value: str):
    """(the values as an array indexed [w, b], imshow's extent) of a tidy (w, b, value) grid."""
    wide = grid.pivot(index="w", columns="b", values=value)
    w, b = wide.index.to_numpy(), wide.columns.to_numpy()
    return wide.to_numpy(), (w[0], w[-1], b[0], b[-1])


def draw(tables: dict, out_dir: Path) -> Path:
    surface, zoom, traj, stats, curves, settings = (tables[name] for name in TABLES)
    stats = dict(zip(stats["quantity"], stats["value"]))
    settings = settings.to_dict("records")[0]
    median, peak, wall_pct = (stats[k] for k in ("median_grad_norm", "max_grad_norm",
                                                 "pct_above_100x_median"))
    plain, clipped = traj[~traj["clipped"]], traj[traj["clipped"]]
    longest_plain = float(plain["step_length"].max())
    grid = int(stats["grid"])

    E, extent = image(surface, "E")
    norm, _ = image(surface, "grad_norm")
    zoom_E, zoom_extent = image(zoom, "E")
    fig, axes = plt.subplots(1, 3, figsize=(19, 5.4), gridspec_kw={"wspace": 0.3})
    panels = [(axes[0], E, extent, r"$E_{50}$", "viridis"),
              (axes[1], np.log10(norm), extent, r"$\log_{10}\|\nabla_{(w,b)} E_{50}\|$",
               "magma"),
              (axes[2], zoom_E, zoom_extent, r"$E_{50}$ (zoom)", "viridis")]
    for ax, img, ext, label, cmap in panels:
        im = ax.imshow(img.T, origin="lower", extent=ext, aspect="auto", cmap=cmap)
        fig.colorbar(im, ax=ax, label=label)
        for name, (color, style, text) in CURVES.items():
            c = curves[curves["curve"] == name]
            ax.plot(c["w"].to_numpy(), c["b"].to_numpy(), color=color, lw=1, ls=style,
                    label=text)
        for data, color, ms, name in [(plain, "red", 6, "plain GD"),
                                      (clipped, "lime", 3,
                                       f"clipped GD (threshold {settings['threshold']})")]:
            ax.plot(data["w"], data["b"], "o-", ms=ms, lw=0.8, color=color,
                    label=f"{name}, lr {settings['lr']}")
        ax.set_xlim(ext[:2])
        ax.set_ylim(ext[2:])
        ax.set_xlabel("w (recurrent weight, dimensionless)")
        ax.set_ylabel("b (bias, dimensionless)")
    jump = int(plain["step_length"].idxmax())
    axes[2].text(0.98, 0.03, f"plain GD, step {plain.loc[jump, 'step']}: ||g|| = "
                 f"{plain.loc[jump, 'grad_norm']:.3g}, step length {longest_plain:.1f},\n"
                 f"lands at ({plain.loc[jump + 1, 'w']:.1f}, {plain.loc[jump + 1, 'b']:.1f}) "
                 f"and stays there (E = {plain['E'].iloc[-1]:.3f}); clipped GD stays local",
                 transform=axes[2].transAxes, ha="right", va="bottom", color="red", fontsize=7,
                 bbox=dict(facecolor="white", alpha=0.8))
    axes[0].set_title(f"error surface, {grid}x{grid} grid")
    axes[1].set_title(f"gradient norm: median {median:.2g}, max {peak:.3g}, "
                      f"{wall_pct:.2f}% > 100x median", fontsize=9)
    axes[2].set_title("zoom on the steepest wall: descent with and without clipping", fontsize=9)
    axes[1].legend(loc="lower left", fontsize=7)
    fig.suptitle(r"Pascanu et al. 2013 Fig. 6: $x_t = w\,\sigma(x_{t-1}) + b$, $x_0 = 0.5$, "
                 r"$E_{50} = (\sigma(x_{50}) - 0.7)^2$")
    path = out_dir / "walls.png"
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
