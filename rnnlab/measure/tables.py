"""Aggregation of a sweep directory into pandas tables.

Reads every run directory under ``results/<sweep>/`` (whatever exists), names the missing, failed
and unreadable ones and carries on, then writes:

- ``runs.parquet``: one row per run, every parameter (``model.activation`` ...), the fit, status;
- ``lags.parquet``: each completed run's lag rows joined with its parameters;
- ``rates.csv``: per configuration (all parameters but the seed) the mean decay rate over seeds, a
  95% Student-t interval and the number of seeds;
- ``summary.csv``: the mean decay rate pivoted to rows (activation, spectral radius or gain, any
  other swept key) and one column per sequence length.
"""
from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from ..runs import store
from .config import lags_file

# CSV floats to 12 significant digits: the same measurement repeated can differ in the last bit or
# two (summation order), and equal numbers must give equal bytes; 12 digits are far below any
# decay rate's standard error.
CSV_FLOAT = "%.12g"
RUN_COLUMNS = ["decay_rate", "decay_rate_stderr", "regime", "seconds", "status"]
# theory beside each measurement (run.json "theory"; rnnlab.measure.run.predict), nats per step
THEORY_COLUMNS = ["mean_field_rate", "log_rho", "pascanu_log_eta", "lyapunov_1", "sigma_w", "s2"]
_ALWAYS_COLUMNS = ["model.activation", "model.spectral_radius", "data.seq_len"]


@dataclass
class Aggregate:
    runs: pd.DataFrame
    lags: pd.DataFrame
    rates: pd.DataFrame
    summary: pd.DataFrame
    swept: list[str]
    problems: list[str] = field(default_factory=list)


def _run_dirs(sweep_dir: Path) -> list[Path]:
    return sorted(p for p in sweep_dir.iterdir()
                  if p.is_dir() and not p.name.startswith((".", "stale-", "figures")))


def collect(sweep_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """runs and lags tables of every readable run, and a line per missing/failed/unreadable one."""
    sweep_dir = Path(sweep_dir)
    problems, rows, lag_frames = [], [], []
    planned = []
    plan = sweep_dir / store.PLAN_FILE
    if plan.exists():
        try:
            planned = json.loads(plan.read_text()).get("runs", [])
        except ValueError:
            problems.append(f"unreadable: {plan}")
    present = {p.name: p for p in _run_dirs(sweep_dir)}
    for name in planned:
        if name not in present:
            problems.append(f"missing: {name} (planned, no run directory)")
    for name, run_dir in present.items():
        path = run_dir / "run.json"
        if not path.exists():
            problems.append(f"missing: {name} (no run.json: never finished)")
            continue
        try:
            record = json.loads(path.read_text())
            params = record["params"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            problems.append(f"unreadable: {path} ({type(err).__name__})")
            continue
        row = {"run": name, **params, **{k: record.get(k) for k in RUN_COLUMNS},
               **{k: record.get("theory", {}).get(k) for k in THEORY_COLUMNS}}
        if row.get("mean_field_rate") is not None and row.get("decay_rate") is not None:
            row["rate_minus_mean_field"] = row["decay_rate"] - row["mean_field_rate"]
        if record.get("status") != "completed":
            problems.append(f"failed: {name}: {record.get('error', record.get('status'))}")
            rows.append(row)
            continue
        table = run_dir / lags_file(params.get("measure.target"))
        try:
            lags = pd.read_parquet(table)
        except Exception as err:  # pyarrow raises several types for a corrupt file
            problems.append(f"unreadable: {table} ({type(err).__name__})")
            rows.append({**row, "status": "unreadable"})
            continue
        rows.append(row)
        lag_frames.append(lags.assign(run=name, **{k: v for k, v in params.items()}))
    runs = pd.DataFrame(rows)
    lags = pd.concat(lag_frames, ignore_index=True) if lag_frames else pd.DataFrame()
    return runs, lags, problems


def swept_keys(runs: pd.DataFrame) -> list[str]:
    """Parameters that take more than one value across the runs (the seed excluded)."""
    params = [c for c in runs.columns if "." in c and c != "run"]
    return [c for c in params if runs[c].astype(str).nunique() > 1]


def seed_intervals(runs: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Mean decay rate over seeds per configuration, with a 95% Student-t interval."""
    ok = runs[runs["status"] == "completed"].copy()
    if ok.empty:
        return pd.DataFrame(columns=keys + ["decay_rate", "ci_low", "ci_high", "n_seeds"])

    def interval(r):
        r = r.dropna()
        n, mean = len(r), r.mean()
        half = stats.t.ppf(0.975, n - 1) * r.std(ddof=1) / math.sqrt(n) if n > 1 else np.nan
        return pd.Series({"decay_rate": mean, "ci_low": mean - half, "ci_high": mean + half,
                          "n_seeds": n})

    by = keys or ["model.activation"]
    groups = ok.groupby([ok[k].astype(object).where(ok[k].notna(), "null") for k in by],
                        sort=True)
    rates = groups["decay_rate"].apply(interval).unstack().reset_index()
    if "mean_field_rate" in ok:
        rates["mean_field_rate"] = groups["mean_field_rate"].mean().to_numpy()
        rates["rate_minus_mean_field"] = rates["decay_rate"] - rates["mean_field_rate"]
    return rates


def aggregate(sweep_dir: Path, quiet: bool = False) -> Aggregate:
    """Build and write runs.parquet, lags.parquet, rates.csv and summary.csv."""
    sweep_dir = Path(sweep_dir)
    runs, lags, problems = collect(sweep_dir)
    if runs.empty:
        raise FileNotFoundError(f"{sweep_dir}: no run directories with a run.json to aggregate")
    swept = [k for k in swept_keys(runs) if k != "seed"]
    keys = list(dict.fromkeys([k for k in _ALWAYS_COLUMNS if k in runs] + swept))
    rates = seed_intervals(runs, keys)
    index = [k for k in keys if k != "data.seq_len"]
    summary = rates.pivot_table(index=index, columns="data.seq_len", values="decay_rate") \
        if not rates.empty else pd.DataFrame()
    for name, table in (("runs", runs), ("lags", lags)):
        store.atomic_write(sweep_dir / f"{name}.parquet",
                           lambda p, t=table: t.to_parquet(p, index=False))
    for name, table, index in (("rates", rates, False), ("summary", summary, True)):
        # unchanged tables are not rewritten: committed results stay byte-identical
        store.write_if_changed(sweep_dir / f"{name}.csv",
                               table.to_csv(index=index, float_format=CSV_FLOAT).encode())
    if not quiet:
        report(sweep_dir, runs, summary, problems)
    return Aggregate(runs, lags, rates, summary, swept, problems)


def report(sweep_dir, runs, summary, problems) -> None:
    n_ok = int((runs["status"] == "completed").sum())
    print(f"\n{sweep_dir}: {n_ok} completed of {len(runs)} run directories")
    for line in problems:
        print(f"  {line}", file=sys.stderr)
    if not summary.empty:
        print("decay rate (nats per step; rows: configuration, columns: T = data.seq_len)")
        with pd.option_context("display.width", 120, "display.max_rows", 200):
            print(summary.round(4).to_string())
    print(f"tables: runs.parquet lags.parquet rates.csv summary.csv in {sweep_dir}")


def comparison(figure: str, quantity: str, expected: float, measured: float,
               tolerance: float) -> dict:
    """A row of results/reproduction/summary.csv: passed when |measured - expected| <= tolerance
    (absolute; nats per step for rates)."""
    passed = bool(abs(measured - expected) <= tolerance) if math.isfinite(measured) else False
    return {"figure": figure, "quantity": quantity, "expected": float(expected),
            "measured": float(measured), "tolerance": float(tolerance), "passed": passed}
