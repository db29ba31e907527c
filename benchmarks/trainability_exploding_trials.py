"""Timed trials that sized sweep=trainability_exploding (tanh with W = rho Q at init, Q
Haar-orthogonal, temporal order, plain SGD, clip 1 against none), and the scan of initial decay
rates behind the choice of init and rho.

    python benchmarks/trainability_exploding_trials.py scan
    python benchmarks/trainability_exploding_trials.py train --rho 2.0 --lengths 10 25 50 \\
        --seeds 0 1 --out trials.csv
    python benchmarks/trainability_exploding_trials.py scan --quick     # smoke runs: tiny
    python benchmarks/trainability_exploding_trials.py train --quick --out smoke.csv

``scan``: the initial decay rate (exact engine, float64, 32 probe sequences, lags 1..min(50, T-1))
of untrained networks, init gaussian and orthogonal at rho in {1, 1.2, 1.5, 2, 3}, T in {25, 50},
seeds 0-3, printed. ``train``: one row per run appended to ``--out``: the configuration,
``solved``, ``steps_to_solve``, test error, the initial decay rate, the mean joint gradient norm
over the first 250 updates and its largest 250-update mean, wall seconds.

``benchmarks/trainability_exploding_trials.csv`` holds the 24 trial runs (N = 32, batch 32, SGD
lr 0.1, at most 2000 updates, T in {10, 25, 50}, clip 1 and none, seeds 0 1, rho 1.5 and 2; two
trial processes at a time on the 2-core machine shared with other jobs, load average about 3).
``--quick`` shrinks either to a smoke run: N = 8, T = 10, seed 0 (scan: gaussian at rho 1.5,
4 probe sequences; train: 3 updates, evaluated every update on 4 sequences).
"""
from __future__ import annotations

# Only the standard library up here: `--help` and a bad argument answer without torch or pandas.
import argparse
import os
import sys
from pathlib import Path


def scan(inits, rhos, lengths, seeds, hidden=32, probes=32):
    import numpy as np
    import torch

    from rnnlab.train.config import TrainConfig
    from rnnlab.train.horizon import decay_rate
    from rnnlab.train.loop import build, sample, stream

    for init in inits:
        for rho in rhos:
            for T in lengths:
                rates = []
                for seed in seeds:
                    cfg = TrainConfig(task="temporal_order", length=T, hidden_size=hidden,
                                      seed=seed, init=init, spectral_radius=rho).validate()
                    rnn, head = build(cfg)
                    x, y = sample("temporal_order", probes, T, stream(seed, "probe"),
                                  torch.float32)
                    rates.append(decay_rate(rnn, head, "temporal_order", x, y, 50))
                print(init, rho, T, np.round(rates, 3), flush=True)


def trials(args, hidden=32, steps=2000, eval_every=250, eval_size=500, test_size=2000):
    import pandas as pd

    from rnnlab.train.config import TrainConfig
    from rnnlab.train.horizon import make_measure
    from rnnlab.train.loop import train

    for T in args.lengths:
        for clip in (1.0, None):
            for seed in args.seeds:
                cfg = TrainConfig(task="temporal_order", length=T, hidden_size=hidden, seed=seed,
                                  init="orthogonal", spectral_radius=args.rho, optimizer="sgd",
                                  lr=args.lr, clip=clip, steps=steps, eval_every=eval_every,
                                  eval_size=eval_size, test_size=test_size).validate()
                r = train(cfg, measure=make_measure("temporal_order"), progress=False)
                c = r.curve
                row = {"init": "orthogonal", "rho": args.rho, "lr": args.lr, "T": T,
                       "clip": "none" if clip is None else clip, "seed": seed,
                       "status": r.status, "solved": r.solved, "steps_to_solve": r.steps_to_solve,
                       "eval_error_rate": round(r.eval_error_rate, 4),
                       "initial_decay_rate": round(r.initial_decay_rate, 4),
                       "grad_norm_first_250": round(float(c["grad_norm"].iloc[1]), 3),
                       "grad_norm_max_250_mean": round(float(c["grad_norm"].max()), 3),
                       "failure": r.failure, "seconds": round(r.seconds, 1)}
                pd.DataFrame([row]).to_csv(args.out, mode="a", index=False,
                                           header=not args.out.exists())
                print(row, flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["scan", "train"])
    ap.add_argument("--rho", type=float, default=2.0)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--lengths", type=int, nargs="+", default=[10, 25, 50])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--out", type=Path, default=Path("trials.csv"))
    ap.add_argument("--quick", action="store_true", help="a smoke run (see the description)")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    if args.what == "scan":
        if args.quick:
            scan(["gaussian"], [1.5], [10], [0], hidden=8, probes=4)
        else:
            scan(["gaussian", "orthogonal"], [1.0, 1.2, 1.5, 2.0, 3.0], [25, 50], range(4))
    elif args.quick:
        args.lengths, args.seeds = [10], [0]
        trials(args, hidden=8, steps=3, eval_every=1, eval_size=4, test_size=4)
    else:
        trials(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
