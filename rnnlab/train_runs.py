"""Hydra glue for training runs (``experiments/train.py``): Hydra config -> TrainConfig ->
``store.execute`` -> model.pt, curve.parquet, run.json.

The run store (``rnnlab.store``) owns the directory, atomic writes, the lock, resume by
configuration hash and provenance, exactly as for measurement runs; this module supplies what a
training run computes (``rnnlab.train.train`` with the exact decay-rate hook of
``rnnlab.horizon``) and the files it writes. A run whose loss or gradient became NaN or inf is
recorded with ``status: failed``, the step and the reason (no model.pt), and a sweep goes on; a
re-run computes it again. A run killed mid-way leaves no run.json, so a re-run trains it again
from step 0 (no checkpoint is kept: the sweep's runs take seconds to minutes).
"""
from __future__ import annotations

import math
from dataclasses import asdict, fields
from pathlib import Path

import pandas as pd
import torch

from . import store
from .config import ConfigError, suggest
from .horizon import make_measure, weight_grad_table
from .train import TrainConfig, build, sample, save_model, stream, train

RESULT_FILES = ("model.pt", "curve.parquet", "weight_grad.parquet", "run.json")
TOP_KEYS = ("seed", "task", "model", "train", "sweep")
# runner settings: not part of the configuration (nor of its hash)
RUNNER_KEYS = ("progress", "threads")
MODEL_KEYS = ("cell", "activation", "hidden_size", "init", "spectral_radius", "gain")
TRAIN_KEYS = tuple(f.name for f in fields(TrainConfig)
                   if f.name not in ("task", "length", "seed") + MODEL_KEYS)


def _section(plain: dict, name: str, allowed) -> dict:
    part = plain.get(name) or {}
    if not isinstance(part, dict):
        raise ConfigError(f"{name}={part!r} is not allowed; it must be a group of keys")
    for key in part:
        if key not in allowed:
            known = [f"{name}.{k}" for k in allowed]
            raise ConfigError(f"unknown key {name}.{key!r}{suggest(f'{name}.{key}', known)} "
                              f"(allowed: {', '.join(known)})")
    return part


def config_from_plain(plain: dict) -> tuple[TrainConfig, dict]:
    """(validated TrainConfig, runner settings) from the plain config of ``conf/train.yaml``."""
    unknown = sorted(set(plain) - set(TOP_KEYS) - {"hydra"})
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r}{suggest(unknown[0], TOP_KEYS)} "
                          f"(allowed top-level keys: {', '.join(TOP_KEYS)})")
    task = _section(plain, "task", ("name", "length"))
    model = _section(plain, "model", MODEL_KEYS)
    tr = dict(_section(plain, "train", TRAIN_KEYS + RUNNER_KEYS))
    runner = {k: tr.pop(k) for k in RUNNER_KEYS if k in tr}
    try:
        cfg = TrainConfig(task=task.get("name"), length=task.get("length"),
                          seed=plain.get("seed", 0), **model, **tr).validate()
        threads = runner.get("threads")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                    or threads < 1):
            raise ValueError(f"train.threads={threads!r} is not allowed; it must be null or an "
                             "integer >= 1")
    except ConfigError:
        raise
    except (ValueError, TypeError) as err:  # the pure core's checks, reported in one line
        raise ConfigError(str(err)) from None
    return cfg, runner


def spec_from_config(cfg) -> tuple[TrainConfig, dict]:
    """The validated (TrainConfig, runner settings) of a Hydra/OmegaConf config."""
    from omegaconf import OmegaConf

    plain = {k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v
             for k, v in cfg.items() if k not in ("sweep", "hydra")}
    return config_from_plain(plain)


def params(cfg: TrainConfig) -> dict:
    """The flat configuration stored in run.json and hashed (every field, defaults included)."""
    return asdict(cfg)


def rehash(stored: dict) -> str:
    """The hash of stored ``params`` as this version normalises them (missing keys: defaults)."""
    return store.params_hash(params(TrainConfig(**stored).validate()))


def write_training(run_dir: Path, cfg: TrainConfig, result) -> dict:
    """model.pt and weight_grad.parquet (completed runs only), curve.parquet; returns run.json's
    fields. weight_grad.parquet: the trained loss's dL/dW_hh by lag on the probe batch, for the
    initial and the final weights (``stage``)."""
    if result.status == "completed":
        save_model(run_dir / "model.pt", result.rnn, result.head, result.config)
        table = weight_grad_stages(cfg, result)
        store.atomic_write(run_dir / "weight_grad.parquet",
                           lambda p: table.to_parquet(p, index=False))
        from .plots import weight_grad_figure
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
        return train(cfg, measure=make_measure(cfg.task), progress=progress)

    return store.execute(Path(run_dir), params(cfg), store.params_hash(params(cfg)), compute,
                         lambda d, r: write_training(d, cfg, r), result_files=RESULT_FILES,
                         device="cpu", dtype=cfg.dtype, rehash=rehash, resume=resume,
                         raise_errors=raise_errors)


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


def run_from_hydra(hydra_cfg) -> dict:
    """The body of ``experiments/train.py``: one training run in Hydra's output directory."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from .cli import RunError, interruptible, reported, _state

    hc = HydraConfig.get()
    cfg, runner = spec_from_config(hydra_cfg)
    run_dir = Path(hc.runtime.output_dir)
    threads = runner.get("threads", 1)
    if hc.mode != RunMode.MULTIRUN:
        _state["run_dir"] = run_dir
        try:
            with reported():
                with interruptible():
                    record = execute(cfg, run_dir, threads,
                                     None if runner.get("progress", True) else False,
                                     raise_errors=False)
                if record["outcome"] == "locked":
                    raise RunError(f"{run_dir} is being computed by another process "
                                   f"({run_dir / '.lock'}); delete the lock if that process "
                                   "is gone")
                if record.get("status") == "failed":
                    raise RunError(f"the run failed: {record.get('error')} (recorded in "
                                   f"{run_dir / 'run.json'})")
                note = " (already complete there: not recomputed)" \
                    if record["outcome"] == "skipped" else ""
                print(f"{describe(record)}, {record['seconds']:.1f} s -> {run_dir}{note}")
                return record
        except BaseException:
            _state["discarded"] = store.discard_if_empty(run_dir)
            raise
    try:
        with interruptible():
            record = execute(cfg, run_dir, threads, progress=False, raise_errors=False)
    except BaseException:  # interrupted: a run that wrote nothing leaves no directory
        store.discard_if_empty(run_dir)
        raise
    store.record_outcome(Path(hc.sweep.dir), run_dir, record)
    return record
