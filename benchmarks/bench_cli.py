"""What the command line costs before and around the work, in CPU seconds, side by side.

    python benchmarks/bench_cli.py             # each command 3 times, the median
    python benchmarks/bench_cli.py --repeat 5
    python benchmarks/bench_cli.py --quick     # a smoke run: each command once, small runs

Each command runs in a fresh process (user + system CPU of the child, from getrusage) in a
temporary folder, torch on one thread (OMP_NUM_THREADS=1); nothing else should be running. The
table gives each command's CPU seconds and its ratio to ``import torch``:

- ``import torch``: the floor of any command that computes;
- a misspelt key (``model.activaton=tanh``) and a bad value (``model.activation=tanhh``): both
  exit 2 with one line;
- ``-m`` (the default sweep, 36 runs) re-run after it finished: every run is skipped from its
  stored hash and the unchanged tables are not re-aggregated;
- one default measurement (``decay.py``, one run and its figures).

``--quick`` runs each command once, with a one-run sweep (``sweep=quick`` at tanh, rho 1, T = 20)
in place of the default sweep and N = 8, T = 10 for the single measurement. A command that
exits otherwise than expected, or outlives ``--timeout``, ends the benchmark with its stderr's
tail and exit status 1.

Expected: a rejected key and a rejected value cost less than importing torch (they are rejected
before torch, pandas and seaborn are imported), and a finished sweep's re-run costs a few torch
imports.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DECAY = str(ROOT / "experiments" / "decay.py")


def cpu_seconds(cmd: list[str], cwd: Path, expect: int, timeout: float) -> float:
    """User + system CPU of one child process running ``cmd``; its exit status must be
    ``expect``, within ``timeout`` seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                              env=os.environ | {"OMP_NUM_THREADS": "1"})
    except subprocess.TimeoutExpired:
        sys.exit(f"{' '.join(cmd)}: no exit within --timeout {timeout:g} s; killed")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != expect:
        sys.exit(f"{' '.join(cmd)} exited {done.returncode}, expected {expect}:\n"
                 f"{done.stderr[-2000:]}")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="runs per command (the median)")
    ap.add_argument("--timeout", type=float, default=3600.0,
                    help="seconds one command may take (default 3600)")
    ap.add_argument("--quick", action="store_true",
                    help="a smoke run: each command once, a one-run sweep, a small measurement")
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error(f"--repeat {args.repeat}: must be >= 1")
    py = sys.executable
    if args.quick:
        args.repeat = 1
        grid, runs = ["sweep=quick", "model.activation=tanh", "model.spectral_radius=1.0",
                      "data.seq_len=20"], 1
        one, one_name = ["model.hidden_size=8", "data.seq_len=10"], "N = 8, T = 10"
    else:
        grid, runs, one, one_name = [], 36, [], "default run"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sweep = ["-m", *grid, f"hydra.sweep.dir={tmp / 'sweep'}"]
        print(f"the {'quick' if args.quick else 'default'} sweep, once ({runs} run"
              f"{'s' if runs > 1 else ''}) ...",
              flush=True)
        first = cpu_seconds([py, DECAY, *sweep], tmp, 0, args.timeout)
        # each a function of the repetition: a single run gets a new directory each time
        commands = {
            "import torch": (lambda i: [py, "-c", "import torch"], 0),
            "misspelt key (exit 2)": (lambda i: [py, DECAY, "model.activaton=tanh"], 2),
            "bad value (exit 2)": (lambda i: [py, DECAY, "model.activation=tanhh"], 2),
            f"finished sweep re-run ({runs} skipped)": (lambda i: [py, DECAY, *sweep], 0),
            f"one measurement ({one_name})":
                (lambda i: [py, DECAY, *one, f"hydra.run.dir={tmp / f'one{i}'}"], 0),
        }
        rows = {}
        for name, (cmd, expect) in commands.items():
            times = [cpu_seconds(cmd(i), tmp, expect, args.timeout) for i in range(args.repeat)]
            rows[name] = statistics.median(times)
            print(f"  {name}: {', '.join(f'{t:.2f}' for t in times)} s", flush=True)
    torch_s = rows["import torch"]
    print(f"\nCPU seconds (median of {args.repeat}; the sweep's first run took {first:.1f} s)")
    print("| command | CPU s | / import torch |\n|---|---:|---:|")
    for name, s in rows.items():
        print(f"| {name} | {s:.2f} | {s / torch_s:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
