"""Training speed per cell: updates per second of ``rnnlab.train.train`` (data, forward, backward,
clip and optimiser step; one thread), to size training sweeps on this machine.

    python benchmarks/bench_train.py
    python benchmarks/bench_train.py --hidden 32 64 --lengths 25 50 100 200 --batch 32 --steps 60
    python benchmarks/bench_train.py --quick      # a smoke run: N = 8, T = 10, 3 updates, tanh

Each cell is timed on ``--steps`` updates after a 5-update warm-up, with evaluation off; the wall
time of a real run adds its evaluations (eval_size sequences every eval_every steps, test_size at
the end). Other processes on the machine slow these numbers down: the load average is printed.
"""
from __future__ import annotations

# Only the standard library up here: `--help` and a bad argument answer without torch.
import argparse
import os
import sys

CELLS = {"tanh": dict(), "irnn": dict(activation="relu", init="identity"),
         "gru": dict(cell="gru"), "lstm": dict(cell="lstm")}


def updates_per_second(task, length, hidden, batch, steps, **model) -> float:
    from rnnlab.train.config import TrainConfig
    from rnnlab.train.loop import train

    common = dict(task=task, length=length, hidden_size=hidden, batch_size=batch,
                  eval_every=10 ** 9, eval_size=1, test_size=1, eval_batch=1, **model)
    train(TrainConfig(steps=5, **common), progress=False)
    result = train(TrainConfig(steps=steps, **common), progress=False)
    return steps / result.seconds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", default="adding_pascanu")
    ap.add_argument("--hidden", type=int, nargs="+", default=[32, 64])
    ap.add_argument("--lengths", type=int, nargs="+", default=[25, 50, 100, 200])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--cells", nargs="+", default=list(CELLS), choices=list(CELLS))
    ap.add_argument("--quick", action="store_true",
                    help="a smoke run: --hidden 8 --lengths 10 --batch 4 --steps 3 --cells tanh")
    args = ap.parse_args(argv)
    if args.quick:
        args.hidden, args.lengths, args.batch, args.steps, args.cells = [8], [10], 4, 3, ["tanh"]
    if min(args.hidden + args.lengths + [args.batch, args.steps]) < 1:
        ap.error("--hidden, --lengths, --batch and --steps must be >= 1")
    import torch

    torch.set_num_threads(1)
    print(f"task={args.task} batch={args.batch} threads=1 load={os.getloadavg()[0]:.1f}")
    heads = [f"{c}:N={n}".rjust(12) for c in args.cells for n in args.hidden]
    print("updates/s  " + "  ".join(heads))
    for T in args.lengths:
        row = [updates_per_second(args.task, T, n, args.batch, args.steps, **CELLS[c])
               for c in args.cells for n in args.hidden]
        print(f"T={T:<7d} " + "  ".join(f"{v:12.1f}" for v in row), flush=True)
    print(f"load={os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
