"""The measurement app (``experiments/decay.py``) as the driver sees it: Hydra config -> RunSpec ->
``runs.store.execute`` -> files, and a finished sweep -> tables, figures, report.html.

The run store owns directories, atomic writes, locks, resume and provenance; this module supplies
what a measurement run computes (``rnnlab.measure.run.measure``), the files it writes
(``lags.parquet``, ``tensors.npz``, ``jacobian.parquet``, ``weight_grad.parquet``,
``sensitivity.parquet``) and its torch
thread count.
"""
from __future__ import annotations

import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..engine.threads import threads_for as engine_threads
from ..runs import store
from ..runs.driver import App
from .config import DEFAULT_CELL, RunSpec, lags_file, measured_state, rehash, spec_from_config
from .run import Measurement, measure

# experiments/decay.py imports this module once the command line is checked, before torch starts
# its worker threads, which inherit the setting: denormals in a vanishing sweep otherwise slow
# every kernel (26x seen on a 2-core CPU)
torch.set_flush_denormal(True)

RESULT_FILES = ("lags.parquet", "tensors.npz", "jacobian.parquet", "weight_grad.parquet",
                "sensitivity.parquet", "input_lags.parquet", "depth_time.parquet", "run.json")

def threads_for(spec: RunSpec) -> int | None:
    """Torch threads for a run: ``measure.threads`` when set, else the engine's rule for its size
    (``rnnlab.engine.threads``: one thread for a small problem on CPU, else torch's default)."""
    ms = spec.measure
    if ms.threads is not None:
        return ms.threads
    return engine_threads(ms.torch_device(), spec.data.batch_size, spec.model.hidden_size)


def _savez(path: Path, arrays: dict) -> None:
    with open(path, "wb") as f:  # a file object: np.savez would append .npz to the name
        np.savez(f, **arrays)


def write_measurement(run_dir: Path, spec: RunSpec, m: Measurement) -> dict:
    """lags.parquet, tensors.npz, jacobian.parquet and weight_grad.parquet; returns run.json's
    measurement fields."""
    store.atomic_write(run_dir / lags_file(spec.measure.target),
                       lambda p: pd.DataFrame(m.lags).to_parquet(p, index=False))
    if m.depth_time:
        store.atomic_write(run_dir / "depth_time.parquet",
                           lambda p: pd.DataFrame(m.depth_time).to_parquet(p, index=False))
    if m.tensors:
        store.atomic_write(run_dir / "tensors.npz", lambda p: _savez(p, m.tensors))
    if m.jacobian:
        store.atomic_write(run_dir / "jacobian.parquet",
                           lambda p: pd.DataFrame(m.jacobian).to_parquet(p, index=False))
    if m.weight_grad:
        store.atomic_write(run_dir / "weight_grad.parquet",
                           lambda p: pd.DataFrame(m.weight_grad).to_parquet(p, index=False))
    if m.sensitivity:
        store.atomic_write(run_dir / "sensitivity.parquet",
                           lambda p: pd.DataFrame(m.sensitivity).to_parquet(p, index=False))
    return {**m.fit, **m.extra, "theory": m.theory, "seconds": m.seconds,
            "provenance": store.provenance(m.device, spec.measure.dtype)}


def execute(spec: RunSpec, run_dir: Path, resume: bool = True, raise_errors: bool = True) -> dict:
    """Measure one configuration into ``run_dir`` unless it is already complete there.

    Returns run.json's record with ``outcome`` added: computed, skipped, failed or locked.
    """
    def compute():
        threads = threads_for(spec)
        if threads:
            torch.set_num_threads(threads)
        return measure(spec)

    return store.execute(Path(run_dir), spec.flat(), spec.config_hash(), compute,
                         lambda d, m: write_measurement(d, spec, m), result_files=RESULT_FILES,
                         dtype=spec.measure.dtype, rehash=rehash, resume=resume,
                         raise_errors=raise_errors)


def run(spec: RunSpec, run_dir: Path, *, sweep: bool, launcher: str = "") -> dict:
    """The driver's call: ``execute`` reporting a failure instead of raising; a job of the joblib
    or Ray launcher (several jobs per machine, OMP_NUM_THREADS=1) uses one torch thread."""
    if sweep and spec.measure.threads is None and ("Joblib" in launcher or "Ray" in launcher):
        spec = replace(spec, measure=replace(spec.measure, threads=1))
    return execute(spec, run_dir, raise_errors=False)


def describe(record: dict) -> str:
    """``decay_rate = ... +- ... nats/step (regime)`` of a run record."""
    rate, err = (v if v is not None else math.nan
                 for v in (record.get("decay_rate"), record.get("decay_rate_stderr")))
    line = f"decay_rate = {rate:+.6g} +- {err:.2g} nats/step ({record.get('regime')})"
    params = record.get("params", {})
    if params.get("measure.target") == "input":
        return f"{line}, gradient through the inputs dy_t/dx_k"
    state = measured_state(params.get("model.cell", DEFAULT_CELL),
                           params.get("measure.lstm_state") or "joint")
    return line if state == "h" else f"{line}, state {state}"


def finish(sweep_dir: Path) -> int:
    """Aggregate a finished sweep: tables, figures, report.html. 1 when runs failed."""
    from . import plots, report, tables

    result = tables.aggregate(sweep_dir)
    figures = plots.sweep_figures(sweep_dir, result)
    page = report.write(sweep_dir, result, figures)
    print(f"report: {page}")
    failed = [p for p in result.problems if p.startswith("failed")]
    if failed:
        print(f"rnnlab: {len(failed)} run(s) failed (named above, and in {page}); "
              "re-running the same command computes them again", file=sys.stderr, flush=True)
        return 1
    return 0


def after_run(run_dir: Path):
    from .plots import single_run_figures

    return single_run_figures(run_dir)


APP = App("decay", spec_from_config, run, describe, finish, after_run,
          config_hash=RunSpec.config_hash, rehash=rehash,
          outputs=("summary.csv", "rates.csv", "report.html"))
