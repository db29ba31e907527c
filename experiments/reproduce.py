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

torch runs on one thread (experiments/figures/_measure.py: THREADS), whatever the machine, so a
second full run on the same machine and versions reproduces every CSV bit for bit. Full results
go to results/reproduction/ (committed), quick ones to results/reproduction-quick/ (never the
committed ones) unless --out says otherwise. Exit status 1 if any comparison fails.
"""
import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import pandas as pd
import torch

torch.set_flush_denormal(True)

ROOT = Path(__file__).resolve().parents[1]
FIGURES_DIR = ROOT / "experiments" / "figures"
FIGURES = ["lag-decay", "rate-vs-gain", "critical-line", "lyapunov", "isometry", "bifurcation",
           "walls", "gate-timescales", "minimalrnn", "trainability"]
if str(FIGURES_DIR) not in sys.path:  # the scripts share experiments/figures/_measure.py
    sys.path.insert(0, str(FIGURES_DIR))
import _measure  # noqa: E402

from rnnlab.runs.store import provenance  # noqa: E402


def load(name: str):
    path = FIGURES_DIR / f"{name.replace('-', '_')}.py"
    spec = importlib.util.spec_from_file_location(f"figures.{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help=f"figures to make (default all): {FIGURES}")
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke run, not a test")
    ap.add_argument("--out", type=Path, default=None,
                    help="output folder (default results/reproduction, or "
                    "results/reproduction-quick with --quick)")
    args = ap.parse_args(argv)
    bad = [n for n in args.names if n not in FIGURES]
    if bad:
        ap.error(f"unknown figure {bad[0]!r}; choose from {FIGURES}")
    mode = "quick" if args.quick else "full"
    out = args.out or ROOT / "results" / ("reproduction-quick" if args.quick else "reproduction")
    names = args.names or FIGURES
    rows, seconds = [], {}
    with _measure.fixed_threads():
        threads = torch.get_num_threads()
        for name in names:
            start = time.perf_counter()
            print(f"[{name}] ...", flush=True)
            figure_rows = load(name).run(out / name, quick=args.quick)
            seconds[name] = round(time.perf_counter() - start, 1)
            rows += figure_rows
            failed = [r["quantity"] for r in figure_rows if not r["passed"]]
            verdict = f": FAILED {'; '.join(failed)}" if failed else ""
            print(f"[{name}] {len(figure_rows) - len(failed)}/{len(figure_rows)} comparisons "
                  f"pass ({seconds[name]:.0f} s){verdict}", flush=True)
    table = pd.DataFrame(rows, columns=_measure.COLUMNS).assign(mode=mode)
    summary, record = out / "summary.csv", out / "provenance.json"
    if summary.exists() and args.names:  # a partial run updates its own figures' rows only
        old = pd.read_csv(summary)
        if list(old.columns) == list(table.columns) and (old["mode"] == mode).all():
            table = pd.concat([old[~old["figure"].isin(names)], table], ignore_index=True)
            table["figure"] = pd.Categorical(table["figure"], FIGURES, ordered=True)
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
