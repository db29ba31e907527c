"""gate-timescales: the decay rate of ||dL_t/ds_k|| against the keep gate's bias, LSTM and GRU.

Source: Gilboa et al. 2019 (arXiv:1901.08987); Tallec & Ollivier 2018 (arXiv:1804.11188);
docs/cells.md ("exact cases").

EXPECTED (nats per step; the keep gate is the LSTM's forget gate f, the GRU's update gate z,
whose bias is ``model.gate_bias``):
- zero weights (recurrent gain 1e-6, no input, zero state): every step keeps the fraction
  s(b), so the rate is ln s(b) exactly: -2.127, -1.313, -0.693, -0.313, -0.127, -0.049,
  -0.018, -0.0067 for b = -2..5. One row per cell, the worst |rate - ln s(b)| over the biases,
  within 1e-6 (the rate is first order in the 1e-6 weights);
- gate noise (recurrent gain 1e-6, fresh input through W_ih with D = N = 256, so the gate's
  pre-activation is ~ N(b, 1) each step): the rate is 1/2 ln E[s(b + z)^2]: -0.1582, -0.0691,
  -0.0108 at b = 2, 3, 5 (only there: at b <= 1 the per-unit products are far from their
  annealed mean over lags <= 40 and theory is drawn only). Mean of 5 networks within 3
  standard errors of that mean (the seeds' spread sets the tolerance);
- realistic weights (``model.init=pytorch``: every weight ~ U(-1/sqrt N, 1/sqrt N), N = 64,
  unit input): the rate is drawn, not predicted; a larger keep bias never speeds up the decay:
  no step in b lowers the 5-seed mean rate by more than 2 combined standard errors (one sign
  row per cell). Past b ~ 3 the LSTM's rate levels off near -0.01 (its other gates and
  recurrent weights set the floor) while the GRU's follows ln s(b).
Each rate is the least-squares slope of ln r(t, k) over lags 1..40 (T = 80, 2 sequences per
network, 800 burn-in steps so the LSTM's c is stationary). Full mode about 1 minute on one
core; quick mode the same sizes and seeds at three biases. Run alone:
``python experiments/figures/gate_timescales.py [--quick]`` (or ``python -m
experiments.figures.gate_timescales [--quick]``).
"""
from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as a file: the repo root on sys.path, for experiments.figures
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np
import pandas as pd
from tqdm import tqdm

from experiments.figures.common import is_quick, network, row, standalone, stderr
from rnnlab import theory
from rnnlab.engine import adjoint as gradients
from rnnlab.engine.fit import fit_decay
from rnnlab.plotting import plt

FIGURE = "gate-timescales"
CELLS = ("lstm", "gru")
BIASES = {"full": [-2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0], "quick": [0.0, 2.0, 5.0]}
NOISE_ROWS = (2.0, 3.0, 5.0)  # the gate-noise rates with a stated value
SEEDS, MAX_LAG, T, BURN_IN = 5, 40, 80, 800
TOL_EXACT = 1e-6
REGIMES = {  # name: network keywords (gate_bias and seed added per point)
    "zero weights": dict(gain=1e-6, spectral_radius=None, input_gain=0.0, hidden_size=64,
                         batch_size=2, seq_len=T),
    "gate noise": dict(gain=1e-6, spectral_radius=None, input_gain=1.0, input_size=256,
                       hidden_size=256, batch_size=2, seq_len=T, burn_in=BURN_IN),
    "pytorch init": dict(init="pytorch", spectral_radius=None, hidden_size=64, batch_size=2,
                         seq_len=T, burn_in=BURN_IN),
}


def rate(**kw) -> float:
    _, traj = network(**kw)
    prof = gradients.pair_profile(traj, max_lag=MAX_LAG)
    return fit_decay(prof.lag, prof.ln_ratio, 1, MAX_LAG)["decay_rate"]


def measure(mode: str) -> pd.DataFrame:
    """One rate per cell, regime, bias and seed (one seed for zero weights)."""
    is_quick(mode)
    points = [(c, r, b, s) for c in CELLS for r in REGIMES for b in BIASES[mode]
              for s in (range(1) if r == "zero weights" else range(SEEDS))]
    records = []
    for cell, regime, b, seed in tqdm(points, desc=FIGURE, mininterval=2.0):
        records.append(dict(cell=cell, regime=regime, gate_bias=b, seed=seed,
                            rate=rate(seed=seed, cell=cell, gate_bias=b, **REGIMES[regime])))
    return pd.DataFrame(records)


def rows(measured: pd.DataFrame) -> list[dict]:
    out = []
    for cell, g in measured.groupby("cell"):
        exact = g[g.regime == "zero weights"]
        dev = (exact.rate - exact.gate_bias.map(theory.keep_gate_rate)).abs()
        out.append(row(FIGURE, f"{cell}, zero weights: max |rate - ln s(b)| over b", 0.0,
                       float(dev.max()), TOL_EXACT, kind="exact", seeds=1,
                       basis="recurrent weights 1e-6 (not 0): the rate is first order in them"))
        noise = g[g.regime == "gate noise"]
        for b in NOISE_ROWS:
            r = noise[noise.gate_bias == b].rate
            if r.empty:
                continue
            se = stderr(r)
            out.append(row(FIGURE, f"{cell}, gate noise N(b, 1), b = {b:g}",
                           theory.gate_noise_rate(b, 1.0), float(r.mean()), 3 * se,
                           kind="theory", seeds=len(r), spread=float(r.std(ddof=1)),
                           basis="3 standard errors of the seed mean (N = D = 256)"))
        real = g[g.regime == "pytorch init"].groupby("gate_bias").rate
        mean = real.mean().sort_index()
        se = (real.std(ddof=1) / np.sqrt(real.count())).sort_index()
        drop = -np.diff(mean.to_numpy())  # > 0 where the rate decreases as b grows
        violations = int((drop > 2 * np.hypot(se.to_numpy()[1:], se.to_numpy()[:-1])).sum())
        out.append(row(FIGURE, f"{cell}, pytorch init: significant decreases of the rate as b "
                       "grows", 0, violations, 0, kind="sign", seeds=SEEDS,
                       spread=float(real.std(ddof=1).max()),
                       basis="a decrease counts beyond 2 combined standard errors of the two "
                       "5-seed means"))
    return out


def draw(measured: pd.DataFrame, out_dir: Path) -> None:
    measured.to_csv(out_dir / "gate_timescales.csv", index=False)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True, constrained_layout=True)
    b = np.linspace(-2.2, 5.2, 200)
    style = {"zero weights": ("o", "C0"), "gate noise": ("s", "C1"), "pytorch init": ("^", "C2")}
    for ax, cell in zip(axes, CELLS):
        ax.plot(b, [theory.keep_gate_rate(v) for v in b], "k-", lw=1.2,
                label="ln s(b) (zero weights, exact)")
        ax.plot(b, [theory.gate_noise_rate(v, 1.0) for v in b], "k--", lw=1.0,
                label="1/2 ln E[s(b + z)^2] (gate noise)")
        for regime, (marker, color) in style.items():
            sel = (measured.cell == cell) & (measured.regime == regime)
            g = measured[sel].groupby("gate_bias").rate
            m, sd = g.mean(), g.std(ddof=1).fillna(0.0)
            ax.errorbar(m.index, m.to_numpy(), yerr=sd.to_numpy(), fmt=marker, color=color,
                        ms=5, capsize=2, label=f"measured: {regime}")
        ax.axhline(0, color="0.6", lw=0.6)
        ax.set(title={"lstm": "LSTM (forget gate bias b_f)", "gru": "GRU (update gate bias b_z)"}
               [cell], xlabel="keep-gate bias b (model.gate_bias)")
    axes[0].set_ylabel("decay rate of ||dL_t/ds_k|| (nats per step)")
    axes[1].legend(fontsize=8, loc="lower right")
    fig.savefig(out_dir / "gate_timescales.png", dpi=130)
    plt.close(fig)


def main(argv=None) -> int:
    return standalone(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
