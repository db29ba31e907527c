"""Wall time of one measurement against the torch thread count, idle and beside a CPU load.

    python benchmarks/bench_threads.py            # sizes (N, B, T) of the default runs and larger
    python benchmarks/bench_threads.py --load 2   # the same beside 2 busy processes
    python benchmarks/bench_threads.py --quick    # a smoke run: the smallest size, once

Each (size, threads) is timed in a fresh process (torch fixes its pool at first use), best of
``--repeat``; the load is ``--load`` processes spinning in Python. A measurement that fails or
outlives ``--timeout`` ends the benchmark with its error's last line and exit status 1. This is
how ``rnnlab.engine.threads.ONE_THREAD_WORK`` was chosen.
"""
import argparse
import json
import subprocess
import sys
import time

SIZES = [(16, 4, 40), (64, 16, 100), (64, 16, 200), (128, 16, 200), (256, 32, 300)]

CHILD = """
import json, sys, time, torch
torch.set_flush_denormal(True)
torch.set_num_threads({threads})
from rnnlab.measure.config import DataSpec, MeasureSpec, ModelSpec, RunSpec
from rnnlab.measure.run import measure
spec = RunSpec(model=ModelSpec(hidden_size={N}), data=DataSpec(batch_size={B}, seq_len={T}),
               measure=MeasureSpec(progress=False, device="cpu"))
measure(spec)  # warm-up
best = min(measure(spec).seconds for _ in range({repeat}))
print(json.dumps(best))
"""


def timed(code: str, timeout: float) -> float:
    """The best time a child process running ``code`` prints; SystemExit with its error's last
    line if it fails or outlives ``timeout``."""
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=timeout)
    except subprocess.TimeoutExpired:
        sys.exit(f"bench_threads: no result within --timeout {timeout:g} s; killed")
    if out.returncode != 0:
        lines = [line for line in out.stderr.splitlines() if line.strip()]
        sys.exit(f"bench_threads: a measurement failed: "
                 f"{lines[-1] if lines else f'exit status {out.returncode}'}")
    return json.loads(out.stdout)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--load", type=int, default=0, help="busy processes beside the runs")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--timeout", type=float, default=3600.0,
                        help="seconds one (size, threads) may take (default 3600)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: the smallest size, one thread, once")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.load < 0 or min(args.threads) < 1:
        parser.error("--repeat and every --threads must be >= 1, --load >= 0")
    sizes = SIZES[:1] if args.quick else SIZES
    if args.quick:
        args.threads, args.repeat = [1], 1
    load = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range(args.load)]
    try:
        time.sleep(0.5 if load else 0)
        print(f"load: {args.load} busy processes")
        print("| N | B | T | B N^2 | " + " | ".join(f"{t} thread(s)" for t in args.threads)
              + " |")
        for N, B, T in sizes:
            times = [timed(CHILD.format(threads=threads, N=N, B=B, T=T, repeat=args.repeat),
                           args.timeout) for threads in args.threads]
            print(f"| {N} | {B} | {T} | {B * N * N} | "
                  + " | ".join(f"{t:.3f} s" for t in times) + " |", flush=True)
    finally:
        for p in load:
            p.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
