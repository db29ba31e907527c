"""Reproduce the figures of docs/theory.md ("reproduced figures") and compare each with theory.

    python experiments/reproduce.py                  # every figure (~16 min of CPU on one core)
    python experiments/reproduce.py lyapunov walls   # some of them
    python experiments/reproduce.py --quick          # small sizes, for tests and a first look

Each figure script in experiments/figures/ writes its PNG and tables to <out>/<name>/ and
returns comparison rows; this runner collects them into <out>/summary.csv, one row per check:
figure, quantity, kind (exact, theory, consistency, bound, sign), expected, measured,
tolerance, passed, seeds, spread (the seeds' standard deviation), basis (why the tolerance is
what it is), mode (full or quick). <out>/provenance.json records the git commit, package
versions, torch's thread count, the time and each figure's seconds.

torch runs on one thread (experiments/figures/common.py: THREADS), whatever the machine, so a
second full run on the same machine and versions reproduces every CSV bit for bit. Full results
go to results/reproduction/ (committed), quick ones to results/reproduction-quick/ (never the
committed ones) unless --out says otherwise. Exit status 1 if any comparison fails.

Each figure is a module of experiments.figures (measure, rows, draw; its package docstring);
FIGURES below is the one list of them, in summary.csv's order. Also ``python -m
experiments.reproduce``.
"""
import argparse
import json
import sys
import time
from pathlib import Path

if not __package__:  # run as a file: the repo root on sys.path, for experiments.figures
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd
import torch

from experiments.figures import (
    bifurcation,
    common,
    critical_line,
    gate_timescales,
    isometry,
    lag_decay,
    lyapunov,
    minimalrnn,
    rate_vs_gain,
    trainability,
    walls,
)
from rnnlab.runs.store import provenance

ROOT = common.ROOT
# the reproduced figures by name (their folders under results/reproduction/), in summary.csv's
# order
FIGURES = {figure.FIGURE: figure for figure in (
    lag_decay, rate_vs_gain, critical_line, lyapunov, isometry, bifurcation, walls,
    gate_timescales, minimalrnn, trainability)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help=f"figures to make (default all): {list(FIGURES)}")
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke run, not a test")
    ap.add_argument("--out", type=Path, default=None,
                    help="output folder (default results/reproduction, or "
                    "results/reproduction-quick with --quick)")
    args = ap.parse_args(argv)
    bad = [n for n in args.names if n not in FIGURES]
    if bad:
        ap.error(f"unknown figure {bad[0]!r}; choose from {list(FIGURES)}")
    mode = "quick" if args.quick else "full"
    out = args.out or ROOT / "results" / ("reproduction-quick" if args.quick else "reproduction")
    names = args.names or list(FIGURES)
    rows, seconds = [], {}
    with common.fixed_threads():
        threads = torch.get_num_threads()
        for name in names:
            start = time.perf_counter()
            print(f"[{name}] ...", flush=True)
            figure_rows = common.make(FIGURES[name], mode, out / name)
            seconds[name] = round(time.perf_counter() - start, 1)
            rows += figure_rows
            failed = [r["quantity"] for r in figure_rows if not r["passed"]]
            verdict = f": FAILED {'; '.join(failed)}" if failed else ""
            print(f"[{name}] {len(figure_rows) - len(failed)}/{len(figure_rows)} comparisons "
                  f"pass ({seconds[name]:.0f} s){verdict}", flush=True)
    table = pd.DataFrame(rows, columns=common.COLUMNS).assign(mode=mode)
    summary, record = out / "summary.csv", out / "provenance.json"
    if summary.exists() and args.names:  # a partial run updates its own figures' rows only
        old = pd.read_csv(summary)
        if list(old.columns) == list(table.columns) and (old["mode"] == mode).all():
            table = pd.concat([old[~old["figure"].isin(names)], table], ignore_index=True)
            table["figure"] = pd.Categorical(table["figure"], list(FIGURES), ordered=True)
            table = table.sort_values("figure", kind="stable")
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(summary, index=False)
    earlier = json.loads(record.read_text()) if record.exists() and args.names else {}
    info = provenance("cpu", "float64") | {"mode": mode, "torch_threads": threads,
                                           "figures": list(table["figure"].unique())}
    info["seconds"] = earlier.get("seconds", {}) | seconds if earlier.get("mode") == mode \
        else seconds
    record.write_text(json.dumps(info, indent=2) + "\n")
    with pd.option_context("display.width", 160, "display.max_rows", 500,
                           "display.max_colwidth", 60):
        print(table[["figure", "quantity", "measured", "tolerance", "passed"]].to_string(
            index=False))
    print(f"{int(table['passed'].sum())}/{len(table)} pass; {sum(seconds.values()):.0f} s on "
          f"{threads} thread(s) -> {summary}")
    return 0 if table["passed"].all() else 1


if __name__ == "__main__":
    sys.exit(main())
