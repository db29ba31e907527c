"""Timed trial training runs over task x T x cell x clip x seed, to size the trainability sweep.

    python benchmarks/trainability_trials.py --tasks adding_pascanu --lengths 25 50 100 \\
        --cells tanh irnn gru lstm --clips 1 none --seeds 0 --steps 3000 --out trials.csv
    python benchmarks/trainability_trials.py --quick --out smoke.csv   # one tiny run

One row per run (appended to ``--out`` as it finishes, so a long trial can be read while it runs):
the configuration, ``solved``, ``steps_to_solve``, the test-set ``eval_error_rate`` and
``final_loss`` beside the no-memory ``baseline_loss``, the last validation error, wall seconds and
updates per second (evaluations included). One thread per process.

``benchmarks/trainability_trials.csv`` holds the 132 trial runs behind the sizing of the
trainability sweep (N = 32, batch 32, seed 0 unless stated; two trial processes at a time on a
2-core machine shared with other jobs, its load average in ``load``), from these invocations:

- Adam lr 1e-3, clip 1, 3000 steps: adding_pascanu and temporal_order, T = 25, 50, 100, cells
  tanh irnn gru lstm; tanh at T = 10, 15 with clips 1 and none, seeds 0 1; irnn gru lstm at
  T = 50 with clip none; lstm at T = 50 with lr 3e-3; temporal_order, T = 25, 50, 100, cells
  tanh irnn gru lstm, clip 1, seeds 1 2 with 2000 steps;
- SGD lr 0.1, 2000 steps: both tasks, T = 10, 25, 50, cells tanh irnn smart_tanh, clips 1 none;
  temporal_order with gru lstm at T = 10, 25, 50; tanh irnn smart_tanh at T = 25, seeds 1 2.
"""
from __future__ import annotations

# Only the standard library up here: `--help` and a bad argument answer without torch or pandas.
import argparse
import os
import sys
import time
from pathlib import Path

CELLS = {"tanh": dict(), "relu": dict(activation="relu"),
         "irnn": dict(activation="relu", init="identity"),
         "gru": dict(cell="gru"), "lstm": dict(cell="lstm"),
         "smart_tanh": dict(init="pascanu_smart_tanh")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", nargs="+", default=["adding_pascanu"])
    ap.add_argument("--lengths", type=int, nargs="+", default=[25, 50, 100])
    ap.add_argument("--cells", nargs="+", default=["tanh", "irnn", "gru", "lstm"],
                    choices=list(CELLS))
    ap.add_argument("--clips", nargs="+", default=["1"], help="thresholds, or none")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--optimizer", default="adam")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--eval-size", type=int, default=500)
    ap.add_argument("--test-size", type=int, default=2000)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--quick", action="store_true",
                    help="a smoke run: one tanh run, T = 10, N = 8, batch 4, 3 updates, "
                         "evaluations of 4 sequences")
    args = ap.parse_args(argv)
    if args.quick:
        args.lengths, args.cells, args.clips, args.seeds = [10], ["tanh"], ["1"], [0]
        args.hidden, args.batch, args.steps = 8, 4, 3
        args.eval_every, args.eval_size, args.test_size = 3, 4, 4
    import pandas as pd
    import torch

    from rnnlab.train.config import TrainConfig
    from rnnlab.train.loop import train

    torch.set_num_threads(1)
    start = time.perf_counter()
    for task in args.tasks:
        for T in args.lengths:
            for cell in args.cells:
                for clip in args.clips:
                    for seed in args.seeds:
                        cfg = TrainConfig(
                            task=task, length=T, hidden_size=args.hidden, seed=seed,
                            batch_size=args.batch, optimizer=args.optimizer, lr=args.lr,
                            steps=args.steps, clip=None if clip == "none" else float(clip),
                            eval_every=args.eval_every, eval_size=args.eval_size,
                            test_size=args.test_size, eval_batch=1000, **CELLS[cell])
                        r = train(cfg, progress=False)
                        row = {"task": task, "T": T, "cell": cell, "clip": clip, "seed": seed,
                               "N": args.hidden, "optimizer": args.optimizer, "lr": args.lr,
                               "status": r.status, "solved": r.solved,
                               "steps_to_solve": r.steps_to_solve, "steps_done": r.steps_done,
                               "eval_error_rate": r.eval_error_rate, "final_loss": r.final_loss,
                               "baseline_loss": r.baseline_loss,
                               "last_valid_error": r.curve["eval_error_rate"].iloc[-1],
                               "seconds": round(r.seconds, 1),
                               "updates_per_s": round(r.steps_done / r.seconds, 1),
                               "failure": r.failure, "load": round(os.getloadavg()[0], 1)}
                        pd.DataFrame([row]).to_csv(args.out, mode="a", index=False,
                                                   header=not args.out.exists())
                        print(", ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    print(f"total {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
