"""Flossing from a settled state (``floss.run_in``): how close do the asymptotic exponents come
to 0?

Engelken's README network (N = 80, g = 1, input weights N(0, 1), no biases, i.i.d. bits; the
remedies figure's ``readme_rnn``) is flossed with k = 16, window 55, discard 16, Adam 1e-3, one
fresh bit sequence per update, from h = 0 (run_in = 0, his code and every committed run) or after
``run_in`` steps from h = 0 (the state entering the window held constant, no gradient through
the run-in; ``rnnlab.train.flossing``). After 500 and 2000 updates each network is measured by

- the asymptotic exponents: the exact engine's QR over ``--long`` fresh windows of 5000 steps,
  each after 500 steps from h = 0, the first 510 = 10 + ceil(5000/10) discarded;
- the objective it was trained on, re-evaluated: its own estimator (window 55 after run_in steps,
  discard 16, its training frame) on 100 fresh windows, mean lambda_i and mean loss;
- the mean of its last 50 training losses.

Standard errors are over the networks (seeds), SE = SD/sqrt(n).

EXPECTED, stated before measuring: with run_in = 0 the window sees the transient from h = 0
(phi'^2 larger than in the settled state), so driving the window's exponents to 0 leaves the
settled exponents below 0 (measured on the remedies figure: about -0.01 to -0.02 for lambda_1
after 500 updates, -0.025 for the lower ones on the sweep's N = 32 networks). A run-in removes
that part of the bias, so the asymptotic exponents should come closer to 0; what is left is the
unaligned frame (the frame still starts at the window: lambda_1 under-estimated, the lower ones
over-estimated) and E[l^2] = (E l)^2 + Var l over 39 averaged steps, so not exactly 0.

``python experiments/floss_run_in.py [--seeds 8] [--run-in 0 200 500] [--out CSV]``; one
thread. Writes results/remedies/floss_run_in.csv (one row per seed, run_in and update count)
and prints the table of results/remedies/README.md.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

if not __package__:  # run as a file: the repo root on sys.path, for experiments.figures
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd
import torch

from experiments.figures import remedies
from experiments.figures.remedies import LAST, K, objective_windows, settled_exponents
from rnnlab.engine.lyapunov import lyapunov_from_jacobians
from rnnlab.engine.model import phi_prime_from_h
from rnnlab.train import flossing
from rnnlab.train.omega import elman_states

ROOT = Path(__file__).resolve().parents[1]
UPDATES = (500, 2000)
LONG, FRESH = 5000, 100


def exponents_through_run_in(rnn, activation, x, Q0, discard, run_in=0):
    """``flossing_exponents`` of an Elman module with the gradient flowing through the run-in
    too (the state entering the window as a function of the weights): the variant
    ``floss.run_in`` does not take, measured here beside it (``--through``)."""
    h = torch.stack(elman_states(rnn, x))[run_in:, 0]
    return lyapunov_from_jacobians(rnn.weight_hh_l0, phi_prime_from_h(h, activation),
                                   Q0.shape[-1], discard, Q0=Q0)


def measure(seed: int, run_in: int, long_windows: int, through: bool = False) -> list[dict]:
    rows = []
    original = flossing.flossing_exponents
    if through:  # the Flosser's update with the gradient through the run-in
        flossing.flossing_exponents = exponents_through_run_in
    try:
        rows = _measure(seed, run_in, long_windows)
    finally:
        flossing.flossing_exponents = original
    for r in rows:
        r["through"] = through
    return rows


def _measure(seed: int, run_in: int, long_windows: int) -> list[dict]:
    rows = []
    for updates, rnn, flosser in remedies.floss_readme(seed, list(UPDATES), run_in):
        check = np.random.RandomState(70_000 + seed)  # the same fresh inputs for every run_in
        own = objective_windows(rnn, flosser.Q0, check, FRESH, run_in)
        asym = settled_exponents(rnn, check, LONG, long_windows, seed)
        r = dict(seed=seed, run_in=run_in, updates=updates,
                 loss_last=float(np.mean(flosser.losses[-LAST:])),
                 loss_fresh=float((own ** 2).mean()))
        r.update({f"own_{i + 1}": v for i, v in enumerate(own.mean(0))})
        r.update({f"asym_{i + 1}": v for i, v in enumerate(asym)})
        rows.append(r)
    return rows


def table(df: pd.DataFrame) -> str:
    """Markdown: mean +- SE over seeds per run_in and update count."""
    def cell(v, digits=4):
        return f"{v.mean():+.{digits}f} ± {v.std(ddof=1) / math.sqrt(len(v)):.{digits}f}"
    asym = [f"asym_{i}" for i in range(1, K + 1)]
    own = [f"own_{i}" for i in range(1, K + 1)]
    lines = ["| run_in | updates | n | objective λ_1 | objective mean_i λ_i | loss (fresh) "
             "| asymptotic λ_1 | asymptotic mean_i λ_i | asymptotic λ_16 | asymptotic "
             "mean_i λ_i² |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for (run_in, updates), g in df.groupby(["run_in", "updates"]):
        lines.append(f"| {run_in} | {updates} | {len(g)} | {cell(g.own_1)} | "
                     f"{cell(g[own].mean(1))} | {cell(g.loss_fresh, 5)} | {cell(g.asym_1)} | "
                     f"{cell(g[asym].mean(1))} | {cell(g[f'asym_{K}'])} | "
                     f"{cell((g[asym] ** 2).mean(1), 5)} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--run-in", type=int, nargs="+", default=[0, 200, 500])
    ap.add_argument("--long", type=int, default=2, help="5000-step windows per network")
    ap.add_argument("--through", action="store_true",
                    help="let the gradient flow through the run-in (a variant, not floss.run_in)")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "remedies" /
                    "floss_run_in.csv")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    rows, start = [], time.time()
    for seed in range(args.seeds):
        for run_in in args.run_in:
            rows += measure(seed, run_in, args.long, args.through)
            pd.DataFrame(rows).to_csv(args.out, index=False)  # partial results survive a stop
            print(f"seed {seed} run_in {run_in}: {time.time() - start:.0f} s", flush=True)
    print(table(pd.DataFrame(rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
