"""Reproduce the figures of REFERENCE.md section 8 and compare each with its paper or theory.

    python experiments/reproduce.py                  # every figure (under 30 min on 2 CPU cores)
    python experiments/reproduce.py lyapunov walls   # some of them
    python experiments/reproduce.py --quick          # small sizes, for tests and a first look

Each figure script in experiments/figures/ writes its PNG and a table to
results/reproduction/<name>/ and returns comparison rows; this runner collects them into
results/reproduction/summary.csv with columns figure, quantity, expected, measured, tolerance,
passed (expected: the paper's or the theory's number; tolerance: the one REFERENCE.md justifies,
absolute, nats per step for rates). Exit status 1 if any comparison fails.
"""
import argparse
import importlib.util
import sys
import time
from pathlib import Path

import pandas as pd
import torch

torch.set_flush_denormal(True)

FIGURES_DIR = Path(__file__).resolve().parent / "figures"
FIGURES = ["lag-decay", "rate-vs-gain", "critical-line", "lyapunov", "isometry", "bifurcation",
           "walls"]
COLUMNS = ["figure", "quantity", "expected", "measured", "tolerance", "passed"]


def load(name: str):
    if str(FIGURES_DIR) not in sys.path:  # the scripts share experiments/figures/_measure.py
        sys.path.insert(0, str(FIGURES_DIR))
    path = FIGURES_DIR / f"{name.replace('-', '_')}.py"
    spec = importlib.util.spec_from_file_location(f"figures.{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help=f"figures to make (default all): {FIGURES}")
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke run, not a test")
    ap.add_argument("--out", type=Path, default=Path("results/reproduction"))
    args = ap.parse_args(argv)
    bad = [n for n in args.names if n not in FIGURES]
    if bad:
        ap.error(f"unknown figure {bad[0]!r}; choose from {FIGURES}")
    names = args.names or FIGURES
    rows = []
    for name in names:
        start = time.perf_counter()
        print(f"[{name}] ...", flush=True)
        figure_rows = load(name).run(args.out / name, quick=args.quick)
        rows += figure_rows
        failed = [r["quantity"] for r in figure_rows if not r["passed"]]
        verdict = f": FAILED {', '.join(failed)}" if failed else ""
        print(f"[{name}] {len(figure_rows) - len(failed)}/{len(figure_rows)} comparisons pass "
              f"({time.perf_counter() - start:.0f} s){verdict}", flush=True)
    table = pd.DataFrame(rows, columns=COLUMNS)
    summary = args.out / "summary.csv"
    if summary.exists() and args.names:  # a partial run updates its own figures' rows only
        old = pd.read_csv(summary)
        table = pd.concat([old[~old["figure"].isin(names)], table], ignore_index=True)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(summary, index=False)
    with pd.option_context("display.width", 160, "display.max_rows", 500,
                           "display.max_colwidth", 60):
        print(table.to_string(index=False))
    print(f"summary: {summary}")
    return 0 if table["passed"].all() else 1


if __name__ == "__main__":
    sys.exit(main())
