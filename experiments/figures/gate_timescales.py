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
  pre-activation is ~ N(b, 1) each step): at every b the rate is that of the diagonal product
  of independent gates s(b + z), estimated by a Monte Carlo independent of the engine (numpy: N
  units, 2 sequences of T = 80, a Gaussian cotangent per target step, the same OLS slope over
  lags 1..40; 100 replicates, with its own standard error). Mean of 5 networks within 3 standard
  errors of the difference. Its N -> infinity, long-lag limit 1/2 ln E[s(b + z)^2] (-0.1582,
  -0.0691, -0.0108 at b = 2, 3, 5) is drawn; at b <= 1 finite lags keep the product far from it
  (the Monte Carlo gives -0.336 against -0.328 at b = 1, -1.91 against -1.61 at b = -2);
- realistic weights (``model.init=pytorch``: every weight ~ U(-1/sqrt N, 1/sqrt N), N = 64,
  unit input): the rate is drawn, not predicted; a larger keep bias never speeds up the decay:
  no step in b lowers the 5-seed mean rate by more than 2 combined standard errors (one sign
  row per cell). Past b ~ 3 the LSTM's rate over lags 1..40 levels off near -0.012 while the
  GRU's follows ln s(b). What sets that floor is measured beside it, as findings at b = 3 and
  5 (third panel, every b): the same networks' slope over lags 100..250 (T = 300) and their
  largest Lyapunov exponent (QR, 1500 steps after 300 of frame warm-up). If the LSTM's floor
  were its forget gate, the long-lag slope would follow ln s(b); if it is a transient of the
  fit window while the cotangent turns into a slow joint (h, c) direction, the long-lag slope
  and lambda_1 sit near 0 while the lags 1..40 rate stays at the floor.
Each rate is the least-squares slope of ln r(t, k) over lags 1..40 (T = 80, 2 sequences per
network, 800 burn-in steps so the LSTM's c is stationary). Full mode about 1 minute on one
core; quick mode the same sizes and seeds at three biases. Run alone:
``python experiments/figures/gate_timescales.py [--quick]`` (or ``python -m
experiments.figures.gate_timescales [--quick]``).
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
from tqdm import tqdm

from experiments.figures.common import is_quick, network, row, standalone, stderr, t_multiple
from experiments.figures.plots import gate_timescales as plot
from rnnlab import theory
from rnnlab.engine import adjoint as gradients
from rnnlab.engine.fit import fit_decay
from rnnlab.engine.lyapunov import lyapunov_from_maps

FIGURE = plot.FIGURE
CELLS = ("lstm", "gru")
BIASES = {"full": [-2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0], "quick": [0.0, 2.0, 5.0]}
MC_REPLICATES = 100
SEEDS, MAX_LAG, T, BURN_IN = 5, 40, 80, 800
TOL_EXACT = 1e-6
LONG_T, LONG_LAGS, LYAP_T, LYAP_TRANSIENT = 300, (100, 250), 1500, 300
SLOW = plot.SLOW  # regimes of slow_mode
SLOW_ROWS = (3.0, 5.0)  # keep biases whose slow mode is reported as findings
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


def slow_mode(seed, cell, b) -> dict:
    """The PyTorch-init network past the fit window of ``rate``: the slope over lags
    LONG_LAGS of a T = LONG_T run, and lambda_1 (QR, one vector) over LYAP_T steps after
    LYAP_TRANSIENT frame warm-up steps, each on its own fresh inputs; nats per step."""
    kw = dict(REGIMES["pytorch init"], seed=seed, cell=cell, gate_bias=b)
    _, traj = network(**dict(kw, seq_len=LONG_T))
    prof = gradients.pair_profile(traj, max_lag=LONG_LAGS[1])
    long = fit_decay(prof.lag, prof.ln_ratio, *LONG_LAGS)["decay_rate"]
    _, traj = network(**dict(kw, seq_len=LYAP_T))
    lam = lyapunov_from_maps(traj.maps, LYAP_T, k=1, transient=LYAP_TRANSIENT, batch=2,
                             generator=torch.Generator().manual_seed(seed)).mean().item()
    return {SLOW[0]: long, SLOW[1]: lam}


def diagonal_product_rate(b: float, seed: int = 0, reps: int = MC_REPLICATES, N: int = 256,
                          T: int = T, B: int = 2, max_lag: int = MAX_LAG) -> tuple[float, float]:
    """Monte Carlo (numpy, independent of the engine) of the gate-noise rate: per unit and step
    an independent keep factor s(b + z), z ~ N(0, 1); for each target step t a Gaussian
    cotangent g_t; ln ||g_t * prod_{k<j<=t} s_j|| - ln ||g_t|| averaged over the pairs of each
    lag, and the least-squares slope over lags 1..max_lag. Returns (mean over replicates, its
    standard error), nats per step."""
    rng = np.random.default_rng([seed, int(round(100 * b)) % 2 ** 32])
    lags = np.arange(1, max_lag + 1)
    slopes = []
    for _ in range(reps):
        ln_s = -np.logaddexp(0.0, -(b + rng.standard_normal((B, T, N))))
        g = rng.standard_normal((B, T, N))
        cum = np.cumsum(ln_s, axis=1)
        ln_g = 0.5 * np.log((g ** 2).sum(-1))
        per_lag = [(0.5 * np.log((g[:, lag:] ** 2 * np.exp(2 * (cum[:, lag:] - cum[:, :-lag])))
                                 .sum(-1)) - ln_g[:, lag:]).mean() for lag in lags]
        slopes.append(np.polyfit(lags, per_lag, 1)[0])
    slopes = np.asarray(slopes)
    return float(slopes.mean()), float(slopes.std(ddof=1) / np.sqrt(reps))


def measure(mode: str) -> pd.DataFrame:
    """One rate per cell, regime, bias and seed (one seed for zero weights)."""
    is_quick(mode)
    points = [(c, r, b, s) for c in CELLS for r in REGIMES for b in BIASES[mode]
              for s in (range(1) if r == "zero weights" else range(SEEDS))]
    records = []
    for cell, regime, b, seed in tqdm(points, desc=FIGURE, mininterval=2.0):
        records.append(dict(cell=cell, regime=regime, gate_bias=b, seed=seed,
                            rate=rate(seed=seed, cell=cell, gate_bias=b, **REGIMES[regime])))
    slow = [(c, b, s) for c in CELLS for b in BIASES[mode] for s in range(SEEDS)]
    for cell, b, seed in tqdm(slow, desc=f"{FIGURE} (slow mode)", mininterval=2.0):
        for regime, value in slow_mode(seed, cell, b).items():
            records.append(dict(cell=cell, regime=regime, gate_bias=b, seed=seed, rate=value))
    for b in BIASES[mode]:
        mean, se = diagonal_product_rate(b)
        records.append(dict(cell=plot.MONTE_CARLO, regime="gate noise", gate_bias=b, seed=-1,
                            rate=mean, stderr=se))
    return pd.DataFrame(records)


def rows(measured: pd.DataFrame) -> list[dict]:
    out = []
    mc = measured[measured.cell == plot.MONTE_CARLO].set_index("gate_bias")
    for cell, g in measured[measured.cell != plot.MONTE_CARLO].groupby("cell"):
        exact = g[g.regime == "zero weights"]
        dev = (exact.rate - exact.gate_bias.map(theory.keep_gate_rate)).abs()
        out.append(row(FIGURE, f"{cell}, zero weights: max |rate - ln s(b)| over b", 0.0,
                       float(dev.max()), TOL_EXACT, kind="exact", seeds=1,
                       basis="recurrent weights 1e-6 (not 0): the rate is first order in them"))
        noise = g[g.regime == "gate noise"]
        for b, r in noise.groupby("gate_bias").rate:
            se, ref = stderr(r), mc.loc[b]
            # Student's t at the seeds' dof: conservative, as the Monte Carlo's has 99
            k = t_multiple(len(r))
            out.append(row(FIGURE, f"{cell}, gate noise N(b, 1), b = {b:g}, vs the diagonal "
                           "product", float(ref.rate), float(r.mean()),
                           k * float(np.hypot(se, ref.stderr)), kind="theory", seeds=len(r),
                           spread=float(r.std(ddof=1)),
                           estimator=f"per seed the slope of ln r over lags 1-{MAX_LAG} of one "
                           "network with gate noise, averaged over seeds",
                           se=f"SD of the per-seed slopes / sqrt(n) = {se:.1e}, combined with "
                           f"the reference's {ref.stderr:.1e}",
                           basis=f"reference: Monte Carlo of the product of independent gates "
                           f"s(b + z) at the same N = 256, lags and fit ({MC_REPLICATES} "
                           f"replicates); tolerance {k:.2f} SE of the difference (Student t, "
                           f"{len(r) - 1} dof, 99.73%); N -> infinity limit 1/2 ln E[s^2] = "
                           f"{theory.gate_noise_rate(b, 1.0):+.4f}"))
        real = g[g.regime == "pytorch init"].groupby("gate_bias").rate
        mean = real.mean().sort_index()
        se = (real.std(ddof=1) / np.sqrt(real.count())).sort_index()
        drop = -np.diff(mean.to_numpy())  # > 0 where the rate decreases as b grows
        violations = int((drop > 2 * np.hypot(se.to_numpy()[1:], se.to_numpy()[:-1])).sum())
        out.append(row(FIGURE, f"{cell}, pytorch init: significant decreases of the rate as b "
                       "grows", 0, violations, 0, kind="sign", seeds=SEEDS,
                       spread=float(real.std(ddof=1).max()),
                       estimator=f"the seed mean of one {cell}'s fitted rate (lags 1-{MAX_LAG}) "
                       "at each b",
                       se=f"SD of the per-seed rates / sqrt(n), at most {se.max():.1g}",
                       basis="a decrease counts beyond 2 combined standard errors of the two "
                       "seed means"))
        for b in SLOW_ROWS:
            at = g[g.gate_bias == b].groupby("regime").rate
            if not at.ngroups:
                continue
            short = at.get_group("pytorch init")
            for regime, what in zip(SLOW, (f"rate over lags {LONG_LAGS[0]}-{LONG_LAGS[1]}",
                                           f"lambda_1 (QR, {LYAP_T} steps)")):
                v = at.get_group(regime)
                out.append(row(FIGURE, f"{cell}, pytorch init, b = {b:g}: {what}, beside the "
                               f"lags 1-{MAX_LAG} rate {short.mean():+.4f}", 0.0,
                               float(v.mean()), math.nan, kind="finding", seeds=len(v),
                               spread=float(v.std(ddof=1)),
                               basis=f"where the decay goes past the fit window; standard "
                               f"error {stderr(v):.4f}"))
    return out


def tables(measured: pd.DataFrame) -> dict:
    """gate_timescales.csv (one rate per cell, regime, bias and seed, and the Monte Carlo with
    its standard error), gate_timescales_theory.csv (ln s(b) and 1/2 ln E[s(b + z)^2] at 200
    biases in [-2.2, 5.2]) and gate_timescales_settings.csv (the fit windows and the width of
    the PyTorch-init networks)."""
    b = np.linspace(-2.2, 5.2, 200)
    curve = pd.DataFrame({"gate_bias": b,
                          "keep_gate_rate": [theory.keep_gate_rate(v) for v in b],
                          "gate_noise_rate": [theory.gate_noise_rate(v, 1.0) for v in b]})
    settings = pd.DataFrame([{"max_lag": MAX_LAG, "long_lag_low": LONG_LAGS[0],
                              "long_lag_high": LONG_LAGS[1],
                              "pytorch_init_N": REGIMES["pytorch init"]["hidden_size"]}])
    return dict(zip(plot.TABLES, (measured, curve, settings)))


def main(argv=None) -> int:
    return standalone(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
