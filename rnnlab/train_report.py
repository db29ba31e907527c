"""Aggregate a sweep of training runs: runs.parquet, curves.parquet, success tables, figures.

Per sweep directory (every run directory below it holding a run.json of a training run):

- ``runs.parquet`` / ``runs.csv``: one row per run, its configuration (``task``, ``length`` = T,
  ``arm`` = cell/activation/init, ``clip``...) and outcome (status, solved, steps_to_solve,
  eval_error_rate with eval_count, final_loss, baseline_loss, initial_decay_rate);
- ``curves.parquet``: every run's curve.parquet with its configuration;
- ``success.csv``: per task, arm, clipping and T, the number of seeds, the success rate (solved /
  seeds, failed runs count as unsolved), the median steps_to_solve of the solved seeds, the median
  initial decay rate and the gradient horizon 1/|rate| (steps);
- ``longest_solved.csv``: per run configuration without T and seed, the longest T solved by a
  majority of seeds, beside the median initial decay rate at that arm's longest T tried;
- figures: success rate against T per arm (one panel per clipping setting), learning curves
  (validation error against update, per T), and the initial gradient horizon against the
  longest T solved.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import pandas as pd

from . import store

ARM_NAMES = {("elman", "tanh", "pytorch"): "tanh", ("elman", "relu", "pytorch"): "relu",
             ("elman", "relu", "identity"): "irnn", ("gru", "tanh", "pytorch"): "gru",
             ("lstm", "tanh", "pytorch"): "lstm",
             ("elman", "sigmoid", "pascanu_sigmoid"): "sigmoid",
             ("elman", "tanh", "pascanu_basic_tanh"): "basic_tanh",
             ("elman", "tanh", "pascanu_smart_tanh"): "smart_tanh"}
GROUP = ["task", "arm", "optimizer", "lr", "clip_label"]


def arm_name(p: dict) -> str:
    """The short name of a run's cell/activation/init (conf/arch), or ``cell-activation-init``."""
    key = (p["cell"], p["activation"], p["init"])
    return ARM_NAMES.get(key, "-".join(key))


def clip_label(clip) -> str:
    return "no clipping" if clip is None or (isinstance(clip, float) and math.isnan(clip)) \
        else f"clip {clip:g}"


RECORD_KEYS = ("solved", "steps_to_solve", "steps_done", "eval_error_rate", "eval_count",
               "final_loss", "baseline_loss", "initial_decay_rate", "seconds", "error")


def run_row(params: dict, record: dict, run: str = "") -> dict:
    """One row of runs.parquet from a run's configuration and its run.json (or
    ``TrainResult.record()``) fields."""
    row = {"run": run, **params, "arm": arm_name(params), "clip_label": clip_label(params["clip"]),
           "status": record.get("status"), **{k: record.get(k) for k in RECORD_KEYS}}
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
            for k in ("run", "task", "length", "arm", "clip_label", "seed", "optimizer"):
                c[k] = row[k]
            curves.append(c)
    return runs_frame(rows), (pd.concat(curves, ignore_index=True) if curves else pd.DataFrame())


def success_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Success rate, median steps_to_solve and initial decay rate per configuration and T."""
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
    return (runs.groupby(GROUP + ["length"], dropna=False).apply(agg, include_groups=False)
            .reset_index())


def longest_solved(success: pd.DataFrame) -> pd.DataFrame:
    """Per configuration, the longest T solved by more than half of the seeds (0: none), and the
    median initial decay rate (and horizon) at that configuration's longest T tried."""
    out = []
    for key, g in success.groupby(GROUP, dropna=False):
        g = g.sort_values("length")
        ok = g.loc[g["success_rate"] > 0.5, "length"]
        last = g.iloc[-1]  # the longest T: the rate's fit covers the most lags (up to 50)
        out.append({**dict(zip(GROUP, key)), "longest_T_solved": int(ok.max()) if len(ok) else 0,
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


def finish_sweep(sweep_dir: Path) -> int:
    """The end of ``experiments/train.py -m``: tables and figures. Failed runs (NaN/inf) are part
    of the results (they count as unsolved) and are named; exit 0 unless aggregation failed."""
    from .train_plots import figures

    tables = write_tables(sweep_dir)
    runs = tables["runs"]
    if runs.empty:
        print(f"rnnlab: no finished training runs in {sweep_dir}", file=sys.stderr)
        return 1
    paths = figures(Path(sweep_dir), tables)
    failed = runs[runs["status"] == "failed"]
    for _, r in failed.iterrows():
        print(f"rnnlab: run {r['run']} failed: {r['error']} (counted as unsolved)",
              file=sys.stderr)
    crashed = int(runs["crashed"].sum())
    print(f"rnnlab: {len(runs)} runs, {int(runs['solved'].sum())} solved, {len(failed)} failed; "
          f"tables and {len(paths)} figures in {sweep_dir}")
    print(format_success(tables["success"]))
    if crashed:
        print(f"rnnlab: {crashed} run(s) raised an error (named above); re-running the same "
              "command computes them again", file=sys.stderr)
        return 1
    return 0


def format_success(success: pd.DataFrame) -> str:
    """Success rate (solved/seeds) against T, one line per configuration."""
    wide = success.assign(cell=lambda d: [f"{int(s)}/{int(n)}"
                                          for s, n in zip(d["solved"], d["seeds"])])
    wide = wide.pivot_table(index=GROUP, columns="length", values="cell", aggfunc="first")
    wide.columns = [f"T={c}" for c in wide.columns]
    return wide.reset_index().to_string(index=False)

