"""Shared by the figure modules: the run modes, one network's decay rate from the engine, the rows
of summary.csv, the fixed thread count, and running one figure (``make``: measure, write its
tables, draw from them) or one figure on the command line (``standalone``)."""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import t as student_t

from experiments.figures import tables
from rnnlab.engine import adjoint as gradients
from rnnlab.engine import cells, redrawn
from rnnlab.engine.fit import fit_decay
from rnnlab.engine.threads import torch_threads
from rnnlab.measure.config import DataSpec, ModelSpec
from rnnlab.measure.networks import draw, redrawn_weights
from rnnlab.measure.tables import comparison

# as experiments/decay.py: denormals in a vanishing gradient otherwise slow every kernel
torch.set_flush_denormal(True)

# One torch thread: chaotic runs differ in their last digits with the thread count (a rate of
# 0.134134 on 1 thread, 0.134299 on 2 at N = 256, gain 2), so the committed numbers are made,
# and reproduce bit for bit, on one thread.
THREADS = 1
ROOT = Path(__file__).resolve().parents[2]
MODES = ("full", "quick")
COLUMNS = ["figure", "quantity", "kind", "expected", "measured", "tolerance", "passed", "seeds",
           "spread", "basis"]
# exact: closed form or float rounding; theory: a statistical measurement against theory;
# consistency: two measurements of one number; bound: one-sided, measured <= expected + tolerance;
# sign: the sign (or a count of order violations) of a measured quantity; finding: a measured
# number reported with its standard error beside a comparison (the gap between one fixed W and
# weights redrawn every step), shown and never judged: its ``passed`` is empty.
KINDS = ("exact", "theory", "consistency", "bound", "sign", "finding")


def is_quick(mode: str) -> bool:
    """True for mode "quick", False for "full"; anything else is refused."""
    if mode not in MODES:
        raise ValueError(f"mode={mode!r}; allowed: {MODES}")
    return mode == "quick"


def row(figure, quantity, expected, measured, tolerance, *, kind, basis, seeds=1,
        spread=None, estimator=None, se=None) -> dict:
    """One row of summary.csv. ``seeds``: the independent networks (or draws) the measured number
    comes from, an integer (1: one computation); ``spread``: their standard deviation;
    ``basis``: why the tolerance is what it is. A statistical row names its ``estimator`` (what
    was measured, on what) and how its standard error was obtained (``se``): the basis then
    opens "estimator: ...; n = seeds; SE: ...", so a reader can judge the error bar."""
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}; allowed: {KINDS}")
    if int(seeds) != seeds or seeds < 1:
        raise ValueError(f"seeds={seeds!r}; it must be a positive integer")
    r = comparison(figure, quantity, expected, measured, tolerance)
    if kind == "bound":
        r["passed"] = bool(math.isfinite(measured) and measured <= expected + tolerance)
    if kind == "finding":
        r["passed"] = None
    if estimator is not None:
        basis = f"estimator: {estimator}; n = {int(seeds)}; SE: {se}; {basis}"
    r.update(kind=kind, seeds=int(seeds), spread=None if spread is None else float(spread),
             basis=basis)
    return {k: r[k] for k in COLUMNS}


def stderr(values) -> float:
    values = np.asarray(values, dtype=float)
    return float(values.std(ddof=1) / math.sqrt(values.size))


def t_multiple(n: int, sigmas: float = 3.0) -> float:
    """The multiple of a standard error estimated from ``n`` values (n - 1 degrees of freedom)
    with the two-sided coverage of ``sigmas`` normal sigmas (3: 99.73%): Student's t quantile.
    With 5 seeds a 3-SE tolerance covers only 96% (the SE itself is uncertain); this covers
    99.73% at any n (6.62 SE at n = 5, 3.45 at 20, 3.0 as n grows)."""
    if n < 2:
        raise ValueError(f"n={n}: a standard error needs at least 2 values")
    return float(student_t.ppf(1 - (1 - math.erf(sigmas / math.sqrt(2))) / 2, n - 1))


def fixed_threads(n: int = THREADS):
    """torch on ``n`` threads inside the block; the caller's setting is restored after."""
    return torch_threads(n)


def drawn(seed=0, **kw):
    """(the drawn network: params, x, h0, y_target; its ModelSpec; its DataSpec) for
    ModelSpec/DataSpec fields given as keywords, float64 CPU."""
    model_keys = set(ModelSpec.__dataclass_fields__)
    m = ModelSpec(**{k: v for k, v in kw.items() if k in model_keys})
    d = DataSpec(**{k: v for k, v in kw.items() if k not in model_keys})
    m.validate()
    d.validate()
    return draw(m, d, seed), m, d


def network(seed=0, weights="fixed", **kw):
    """(params, trajectory) for ModelSpec/DataSpec fields given as keywords, float64 CPU.
    ``weights``: "fixed" (one draw for every step) or "redrawn" (every step's weights drawn
    afresh, ``rnnlab.engine.redrawn``: the annealed network of mean-field theory)."""
    net, m, d = drawn(seed, **kw)
    if weights == "redrawn":
        at = redrawn_weights(m, d, seed, net.params, "cpu", torch.float64)
        with torch.no_grad():
            rec = redrawn.record(cells.get(m.cell), at, net.x, net.h0, d.burn_in)
        return net.params, gradients.trajectory(rec, net.params, net.y_target, m.loss)
    if weights != "fixed":
        raise ValueError(f"weights={weights!r}; allowed: ('fixed', 'redrawn')")
    traj = gradients.forward(net.params, net.x, net.h0, net.y_target, burn_in=d.burn_in)
    return net.params, traj


def windowed_rate(params, traj, max_lag=50, min_lag=1):
    """(least-squares slope of the ln ratio over lags min_lag..max_lag in nats per step, the
    pair profile it was fitted to)."""
    prof = gradients.pair_profile(traj, max_lag=max_lag)
    return fit_decay(prof.lag, prof.ln_ratio, min_lag, max_lag)["decay_rate"], prof


def noise_rate(activation, sigma_w, s_in2, N, seed, weights, *, T, burn_in, max_lag=50,
               batch_size=4) -> float:
    """The windowed rate (lags 1..max_lag, nats per step) of one Elman network with
    W_ij ~ N(0, sigma_w^2 / N), driven by full-rank input noise of variance s_in2 (none: h0 of
    unit variance and no input), ``weights`` fixed or redrawn every step."""
    drive = (full_rank_noise(N, s_in2) if s_in2 else
             dict(hidden_size=N, input_std=0.0, h0_std=1.0))
    return windowed_rate(*network(seed=seed, weights=weights, activation=activation,
                                  gain=sigma_w, spectral_radius=None, seq_len=T,
                                  batch_size=batch_size, burn_in=burn_in, **drive),
                         max_lag=max_lag)[0]


def full_rank_noise(N, s_in2):
    """Fresh per-step drive of per-unit variance s_in^2 through a full-rank U (D = N):
    the setting in which mean-field theory holds (docs/theory.md, "mean field")."""
    return dict(hidden_size=N, input_size=N, input_gain=math.sqrt(s_in2), input_std=1.0)


def make(figure, mode: str, out_dir: Path) -> list[dict]:
    """Measure one figure module in ``mode``, write its tables into ``out_dir``, draw its PNG
    from those files (as ``reproduce.py --redraw`` does) and return its rows."""
    measured = figure.measure(mode)
    frames = figure.tables(measured)
    lacking = sorted(set(figure.plot.TABLES) - set(frames))
    if lacking:  # a draw step reads only what the compute step writes
        raise ValueError(f"{figure.FIGURE}: its draw step reads {lacking}, which tables() does "
                         "not write")
    tables.write(out_dir, frames, getattr(figure, "FLOAT_FORMATS", None))
    tables.redraw(figure.plot, out_dir)
    return figure.rows(measured)


def standalone(figure, argv=None) -> int:
    """``python experiments/figures/<name>.py [--quick] [--out DIR]`` (or ``python -m
    experiments.figures.<name>``): make one figure alone, on THREADS threads.

    Full results go to results/reproduction/<figure>/, quick ones to
    results/reproduction-quick/<figure>/ (the committed full results are never overwritten by
    a quick run). Prints the rows; exit status 1 if one fails. summary.csv is left to
    experiments/reproduce.py."""
    name = figure.FIGURE
    ap = argparse.ArgumentParser(description=f"make the {name} figure and its comparisons")
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke run, not a test")
    ap.add_argument("--out", type=Path, default=None,
                    help="output folder (default results/reproduction[-quick]/<figure>)")
    args = ap.parse_args(argv)
    mode = "quick" if args.quick else "full"
    out = args.out or ROOT / "results" / ("reproduction-quick" if args.quick else
                                          "reproduction") / name
    start = time.perf_counter()
    with fixed_threads():
        rows = make(figure, mode, out)
    table = pd.DataFrame(rows, columns=COLUMNS)
    with pd.option_context("display.width", 200, "display.max_colwidth", 70):
        print(table[["quantity", "expected", "measured", "tolerance", "passed"]].to_string(
            index=False))
    failed = int(table["passed"].eq(False).sum())
    print(f"[{name}] {len(table) - failed}/{len(table)} pass, "
          f"{time.perf_counter() - start:.0f} s -> {out}")
    return 1 if failed else 0
