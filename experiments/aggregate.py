"""Rebuild a sweep's tables and figures from whatever runs exist.

    python experiments/aggregate.py results/default

Writes runs.parquet, lags.parquet, rates.csv, summary.csv, figures/ and report.html in the sweep
directory; names missing, failed and unreadable runs and carries on.
"""
import argparse
import sys
from pathlib import Path

from rnnlab.measure import plots, report, tables


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, help="a sweep directory, e.g. results/default")
    parser.add_argument("--no-figures", action="store_true", help="tables only")
    args = parser.parse_args(argv)
    if not args.sweep_dir.is_dir():
        parser.error(f"{args.sweep_dir} is not a directory")
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
