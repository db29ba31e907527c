"""Wall time of one measurement against the torch thread count, idle and beside a CPU load.

    python benchmarks/bench_threads.py            # sizes (N, B, T) of the default runs and larger
    python benchmarks/bench_threads.py --load 2   # the same beside 2 busy processes

Each (size, threads) is timed in a fresh process (torch fixes its pool at first use), best of
``--repeat``; the load is ``--load`` processes spinning in Python. This is how
``rnnlab.engine.threads.ONE_THREAD_WORK`` was chosen.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--load", type=int, default=0, help="busy processes beside the runs")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    load = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range(args.load)]
    try:
        time.sleep(0.5 if load else 0)
        print(f"load: {args.load} busy processes")
        print("| N | B | T | B N^2 | " + " | ".join(f"{t} thread(s)" for t in args.threads)
              + " |")
        for N, B, T in SIZES:
            times = []
            for threads in args.threads:
                code = CHILD.format(threads=threads, N=N, B=B, T=T, repeat=args.repeat)
                out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                                     text=True, check=True)
                times.append(json.loads(out.stdout))
            print(f"| {N} | {B} | {T} | {B * N * N} | "
                  + " | ".join(f"{t:.3f} s" for t in times) + " |", flush=True)
    finally:
        for p in load:
            p.kill()


if __name__ == "__main__":
    main()
