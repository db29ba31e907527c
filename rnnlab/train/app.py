"""The training app (``experiments/train.py``) as the driver sees it: Hydra config -> TrainConfig ->
``runs.store.execute`` -> model.pt, curve.parquet, weight_grad.parquet, run.json, and a finished
sweep -> tables and figures (``rnnlab.train.tables``, ``rnnlab.train.plots``).

The run store (``rnnlab.runs.store``) owns the directory, atomic writes, the lock, resume by
configuration hash and provenance, exactly as for measurement runs; this module supplies what a
training run computes (``rnnlab.train.loop.train`` with the exact decay-rate hook of
``rnnlab.train.horizon``) and the files it writes. A run whose loss or gradient became NaN or inf is
recorded with ``status: failed``, the step and the reason (no model.pt), and a sweep goes on; a
re-run computes it again. A run killed mid-way leaves no run.json, so a re-run trains it again
from step 0 (no checkpoint is kept: the sweep's runs take seconds to minutes).
"""
from __future__ import annotations

import math
import sys
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import torch

from .. import schema
from ..engine import cells
from ..plotting import weight_grad_figure
from ..runs import store
from ..runs.driver import App
from .config import TrainConfig, hashed_params, spec_from_config
from .data import sample, stream
from .horizon import make_measure, weight_grad_table
from .loop import train
from .networks import build, save_model
from .plots import figures
from .tables import format_success, write_tables

# before torch starts its worker threads (rnnlab.measure.app)
torch.set_flush_denormal(True)

RESULT_FILES = ("model.pt", "curve.parquet", "weight_grad.parquet", "run.json")


def params(cfg: TrainConfig) -> dict:
    """The flat configuration stored in run.json and hashed (every field, defaults included)."""
    return asdict(cfg)


def config_hash(cfg: TrainConfig) -> str:
    """The hash of what determines the run (``rnnlab.train.config.hashed_params``)."""
    return store.params_hash(hashed_params(params(cfg)))


def rehash(stored: dict) -> str:
    """The hash of stored ``params`` as this version normalises them (missing keys: defaults)."""
    return config_hash(TrainConfig(**stored).validate())


def splits_by_lag(cell: str) -> bool:
    """Whether the cell's weight gradient splits by lag: not where the cell refuses
    ``measure.weight_grad`` (the LRU: no recurrent matrix W_hh)."""
    return all(key != "weight_grad" for key, _, _ in cells.get(cell).refuses)


def write_training(run_dir: Path, cfg: TrainConfig, result) -> dict:
    """model.pt and weight_grad.parquet (completed runs only; none for a cell whose weight
    gradient does not split by lag, ``splits_by_lag``), curve.parquet;
    returns run.json's fields. weight_grad.parquet: the trained loss's dL/dW_hh by lag on the
    probe batch, for the initial and the final weights (``stage``)."""
    if result.status == "completed":
        save_model(run_dir / "model.pt", result.rnn, result.head, result.config)
    if result.status == "completed" and splits_by_lag(cfg.cell) and not schema.stacked(cfg):
        table = weight_grad_stages(cfg, result)
        store.atomic_write(run_dir / "weight_grad.parquet",
                           lambda p: table.to_parquet(p, index=False))
        weight_grad_figure(table, run_dir / "figures" / "weight_grad")
    store.atomic_write(run_dir / "curve.parquet",
                       lambda p: result.curve.to_parquet(p, index=False))
    record = result.record()
    fields_ = {**record, "status": result.status,
               "provenance": store.provenance("cpu", cfg.dtype)}
    if result.status == "failed":
        fields_["error"] = result.failure
    return fields_


def weight_grad_stages(cfg: TrainConfig, result) -> pd.DataFrame:
    """The weight gradient by lag at initialisation (``build`` rebuilds the same weights) and
    after training, on the run's probe batch."""
    probe = sample(cfg.task, cfg.probe_size, cfg.length, stream(cfg.seed, "probe"),
                   torch.float64)
    stages = (("initial", build(cfg)), ("final", (result.rnn, result.head)))
    return pd.concat([weight_grad_table(rnn, head, cfg.task, *probe).assign(stage=stage)
                      for stage, (rnn, head) in stages], ignore_index=True)


def execute(cfg: TrainConfig, run_dir: Path, threads: int | None = 1,
            progress: bool | None = None, resume: bool = True,
            raise_errors: bool = True) -> dict:
    """Train one configuration into ``run_dir`` unless it is already complete there; returns
    run.json's record with ``outcome`` (computed, skipped, failed, locked)."""
    def compute():
        if threads:
            torch.set_num_threads(threads)
        return train(cfg, measure=make_measure(cfg.task, lyap_k=cfg.lyap_k, seed=cfg.seed),
                     progress=progress)

    return store.execute(Path(run_dir), params(cfg), config_hash(cfg), compute,
                         lambda d, r: write_training(d, cfg, r), result_files=RESULT_FILES,
                         device="cpu", dtype=cfg.dtype, rehash=rehash, resume=resume,
                         raise_errors=raise_errors)


def run(spec: tuple, run_dir: Path, *, sweep: bool, launcher: str = "") -> dict:
    """The driver's call: train ``spec`` = (TrainConfig, runner settings) into ``run_dir``,
    reporting a failure instead of raising; a progress bar on a terminal for a single run."""
    cfg, runner = spec
    progress = False if sweep or not runner.get("progress", True) else None
    return execute(cfg, run_dir, runner.get("threads", 1), progress, raise_errors=False)


def describe(record: dict) -> str:
    """``solved at step 750: test error 0.10% of 10000, loss 0.0123 (baseline 1.386)``."""
    if record.get("status") == "failed":
        return f"failed: {record.get('error')}"
    err = record.get("eval_error_rate")
    err = math.nan if err is None else err
    head = f"solved at step {record['steps_to_solve']}" if record.get("solved") else \
        f"not solved in {record.get('steps_done')} steps"
    return (f"{head}: test error {100 * err:.2f}% of {record.get('eval_count')}, loss "
            f"{record.get('final_loss', math.nan):.4g} (no-memory baseline "
            f"{record.get('baseline_loss', math.nan):.4g}), initial decay rate "
            f"{_fmt(record.get('initial_decay_rate'))} nats/step")


def _fmt(v) -> str:
    return "nan" if v is None or not math.isfinite(v) else f"{v:+.4f}"


def finish(sweep_dir: Path) -> int:
    """The end of ``experiments/train.py -m``: tables and figures. Failed runs (NaN/inf) are part
    of the results (they count as unsolved) and are named; exit 0 unless aggregation failed."""
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


APP = App("train", spec_from_config, run, describe, finish,
          config_hash=lambda spec: config_hash(spec[0]), rehash=rehash,
          outputs=("runs.csv", "success.csv", "longest_solved.csv"))
