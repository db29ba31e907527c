"""Aggregate a sweep of training runs: runs.parquet, curves.parquet, success tables, figures.

Per sweep directory (every run directory below it holding a run.json of a training run):

- ``runs.parquet`` / ``runs.csv``: one row per run, its configuration (``task``, ``length`` = T,
  ``arch`` = cell/activation/init, ``clip``...) and outcome (status, solved, steps_to_solve,
  eval_error_rate with eval_count, final_loss, baseline_loss, initial_decay_rate);
- ``curves.parquet``: every run's curve.parquet with its configuration;
- ``success.csv``: per configuration and T, the number of seeds, the success rate (solved /
  seeds, failed runs count as unsolved), the median steps_to_solve of the solved seeds, the median
  initial decay rate and the gradient horizon 1/|rate| (steps). A configuration is the task, arch,
  optimiser, learning rate and clipping, and every other key that varies across the sweep's runs
  (``hidden_size``, ``batch_size``, ``steps``, a scale key...): only seeds are pooled;
- ``longest_solved.csv``: per configuration without T, the longest T solved by a majority of
  seeds, beside the median initial decay rate at that configuration's longest T tried;
- figures: success rate against T per arch (one panel per clipping setting), learning curves
  (validation error against update, per T), and the initial gradient horizon against the
  longest T solved.
"""
from __future__ import annotations

import math
from dataclasses import fields
from pathlib import Path

import pandas as pd

from ..runs import store
from .archs import arch_name
from .config import TrainConfig

# always a group (in this order), whether or not they vary
GROUP = ["task", "arch", "optimizer", "lr", "clip_label"]
# configuration keys shown through a GROUP column (arch: cell, activation, init, orthogonal;
# clip_label: clip; the LRU's ring keys, named in arch when not arch=lru's)
# or that only tell runs apart (seed) or are the x axis (length)
_FOLDED = ("task", "cell", "activation", "init", "orthogonal", "clip", "seed", "length",
           "optimizer", "lr", "r_min", "r_max", "max_phase", "normalize", "gamma")
CONFIG_KEYS = tuple(f.name for f in fields(TrainConfig) if f.name not in _FOLDED)
DEFAULTS = {f.name: f.default for f in fields(TrainConfig)}


def group_keys(runs: pd.DataFrame) -> list[str]:
    """GROUP and every other configuration key that takes more than one value across ``runs``:
    the keys that tell configurations apart (never pooled as seeds)."""
    varying = [k for k in CONFIG_KEYS if k in runs and runs[k].astype(str).nunique() > 1]
    return GROUP + varying


def table_keys(table: pd.DataFrame) -> list[str]:
    """The group keys a success table was built with (its columns among them)."""
    return [k for k in GROUP + list(CONFIG_KEYS) if k in table.columns]


def clip_label(clip) -> str:
    return "no clipping" if clip is None or (isinstance(clip, float) and math.isnan(clip)) \
        else f"clip {clip:g}"


RECORD_KEYS = ("solved", "steps_to_solve", "steps_done", "eval_error_rate", "eval_count",
               "final_loss", "baseline_loss", "initial_decay_rate", "seconds", "error")


def run_row(params: dict, record: dict, run: str = "") -> dict:
    """One row of runs.parquet from a run's configuration and its run.json (or
    ``TrainResult.record()``) fields. A key added after a run was made (absent from its stored
    params) takes its default, the value that reproduces what that run did."""
    params = {**DEFAULTS, **params}
    row = {"run": run, **params, "arch": arch_name(params),
           "clip_label": clip_label(params["clip"]), "status": record.get("status"),
           **{k: record.get(k) for k in RECORD_KEYS}}
    row["solved"] = bool(row["solved"]) and row["status"] == "completed"
    row["crashed"] = "traceback" in record  # an exception, not a loss that became NaN/inf
    return row


def runs_frame(rows: list[dict]) -> pd.DataFrame:
    runs = pd.DataFrame(rows)
    if not runs.empty:
        for k in ("steps_to_solve", "eval_error_rate", "final_loss", "initial_decay_rate",
                  "clip", "eval_count"):
            runs[k] = pd.to_numeric(runs[k], errors="coerce")
    return runs


def is_training_sweep(sweep_dir: Path) -> bool:
    """Whether ``sweep_dir`` holds runs of ``experiments/train.py`` (its first readable run
    record has a task), read without collecting the runs."""
    for path in sorted(Path(sweep_dir).rglob("run.json")):
        rec = store.read_run(path.parent)
        if rec:
            return "task" in (rec.get("params") or {})
    return False


def collect(sweep_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs, curves) of every training run below ``sweep_dir``."""
    rows, curves = [], []
    for path in sorted(Path(sweep_dir).rglob("run.json")):
        if any(part.startswith("stale-") for part in path.parts):
            continue
        rec = store.read_run(path.parent)
        if not rec or "task" not in (rec.get("params") or {}):
            continue
        row = run_row(rec["params"], rec, str(path.parent.relative_to(sweep_dir)))
        rows.append(row)
        curve_path = path.parent / "curve.parquet"
        if curve_path.exists():
            c = pd.read_parquet(curve_path)
            for k in ("run", "task", "length", "arch", "clip_label", "seed", "optimizer",
                      *CONFIG_KEYS):
                c[k] = row[k]
            curves.append(c)
    return runs_frame(rows), (pd.concat(curves, ignore_index=True) if curves else pd.DataFrame())


def success_table(runs: pd.DataFrame, keys: list[str] | None = None) -> pd.DataFrame:
    """Success rate, median steps_to_solve and initial decay rate per configuration (``keys``,
    default ``group_keys(runs)``) and T."""
    def agg(g):
        rate = g["initial_decay_rate"].median()
        return pd.Series({
            "seeds": len(g), "solved": int(g["solved"].sum()),
            "success_rate": g["solved"].mean(),
            "failed_runs": int((g["status"] == "failed").sum()),
            "median_steps_to_solve": g.loc[g["solved"], "steps_to_solve"].median(),
            "median_test_error": g["eval_error_rate"].median(),
            "median_initial_decay_rate": rate,
            "horizon_steps": 1 / abs(rate) if rate and math.isfinite(rate) else math.nan})
    keys = group_keys(runs) if keys is None else keys
    return (runs.groupby(keys + ["length"], dropna=False).apply(agg, include_groups=False)
            .reset_index())


def longest_solved(success: pd.DataFrame, keys: list[str] | None = None) -> pd.DataFrame:
    """Per configuration (``keys``, default the success table's own), the longest T solved by
    more than half of the seeds (0: none), and the median initial decay rate (and horizon) at
    that configuration's longest T tried."""
    out, keys = [], table_keys(success) if keys is None else keys
    for key, g in success.groupby(keys, dropna=False):
        g = g.sort_values("length")
        ok = g.loc[g["success_rate"] > 0.5, "length"]
        last = g.iloc[-1]  # the longest T: the rate's fit covers the most lags (up to 50)
        out.append({**dict(zip(keys, key)), "longest_T_solved": int(ok.max()) if len(ok) else 0,
                    "lengths_tried": ",".join(str(int(v)) for v in g["length"]),
                    "initial_decay_rate": last["median_initial_decay_rate"],
                    "horizon_steps": last["horizon_steps"], "rate_at_T": int(last["length"])})
    return pd.DataFrame(out)


def write_tables(sweep_dir: Path) -> dict:
    """Write the tables; returns {name: DataFrame}."""
    sweep_dir = Path(sweep_dir)
    runs, curves = collect(sweep_dir)
    if runs.empty:
        return {"runs": runs}
    success = success_table(runs)
    longest = longest_solved(success)
    store.atomic_write(sweep_dir / "runs.parquet", lambda p: runs.to_parquet(p, index=False))
    store.write_if_changed(sweep_dir / "runs.csv", runs.drop(columns=["error"], errors="ignore")
                           .to_csv(index=False, float_format="%.6g").encode())
    if not curves.empty:
        store.atomic_write(sweep_dir / "curves.parquet",
                           lambda p: curves.to_parquet(p, index=False))
    store.write_if_changed(sweep_dir / "success.csv",
                           success.to_csv(index=False, float_format="%.6g").encode())
    store.write_if_changed(sweep_dir / "longest_solved.csv",
                           longest.to_csv(index=False, float_format="%.6g").encode())
    return {"runs": runs, "curves": curves, "success": success, "longest": longest}


def format_success(success: pd.DataFrame) -> str:
    """Success rate (solved/seeds) against T, one line per configuration."""
    wide = success.assign(cell=lambda d: [f"{int(s)}/{int(n)}"
                                          for s, n in zip(d["solved"], d["seeds"])])
    wide = wide.pivot_table(index=table_keys(success), columns="length", values="cell",
                            aggfunc="first")
    wide.columns = [f"T={c}" for c in wide.columns]
    return wide.reset_index().to_string(index=False)

