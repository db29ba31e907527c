"""Rebuild a sweep's tables and figures from whatever runs exist.

    python experiments/aggregate.py results/default

Writes runs.parquet, lags.parquet, rates.csv, summary.csv, figures/ and report.html in the sweep
directory; names missing, failed and unreadable runs and carries on. A training sweep
(``experiments/train.py -m``) gets its own tables and figures instead (runs, curves, success,
longest_solved, figures/), as at the end of its sweep.
"""
import argparse
import sys
from pathlib import Path

from rnnlab.measure import plots, report, tables
from rnnlab.train.app import finish as finish_training
from rnnlab.train.tables import is_training_sweep


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, help="a sweep directory, e.g. results/default")
    parser.add_argument("--no-figures", action="store_true", help="tables only")
    args = parser.parse_args(argv)
    if not args.sweep_dir.is_dir():
        parser.error(f"{args.sweep_dir} is not a directory")
    if is_training_sweep(args.sweep_dir):  # made by experiments/train.py -m
        return finish_training(args.sweep_dir)
    try:
        agg = tables.aggregate(args.sweep_dir)
    except FileNotFoundError as err:
        print(f"aggregate: {err}", file=sys.stderr)
        return 1
    figures = [] if args.no_figures else plots.sweep_figures(args.sweep_dir, agg)
    print(f"report: {report.write(args.sweep_dir, agg, figures)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
