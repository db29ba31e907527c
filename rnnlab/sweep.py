"""Hydra glue for measurement runs: Hydra config -> RunSpec -> ``store.execute`` -> files.

The run store (``rnnlab.store``) owns directories, atomic writes, locks, resume and provenance;
this module supplies what a measurement run computes (``rnnlab.run.measure``) and the files it
writes (``lags.parquet``, ``tensors.npz``, ``jacobian.parquet``), and reads Hydra's config. The
command line's checks, errors and the end-of-sweep aggregation are in ``rnnlab.cli``.
"""
from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import store
from .config import ConfigError, RunSpec, rehash, suggest
from .run import Measurement, measure

RESULT_FILES = ("lags.parquet", "tensors.npz", "jacobian.parquet", "weight_grad.parquet",
                "run.json")
TOP_KEYS = ("seed", "model", "data", "measure", "sweep")
# B N^2 (the flops of one sample's step of the adjoint sweep, over N) below which one torch
# thread is faster than several: thread start-up and synchronisation cost more than the GEMM
# saves (measured on a 2-core CPU, README "Threads").
ONE_THREAD_WORK = 2 ** 21


def threads_for(spec: RunSpec) -> int | None:
    """Torch threads for a run: ``measure.threads`` when set; one for a small problem on CPU;
    otherwise None (torch's default)."""
    ms = spec.measure
    if ms.threads is not None:
        return ms.threads
    if ms.torch_device().type == "cpu" and \
            spec.data.batch_size * spec.model.hidden_size ** 2 < ONE_THREAD_WORK:
        return 1
    return None


def _savez(path: Path, arrays: dict) -> None:
    with open(path, "wb") as f:  # a file object: np.savez would append .npz to the name
        np.savez(f, **arrays)


def write_measurement(run_dir: Path, spec: RunSpec, m: Measurement) -> dict:
    """lags.parquet, tensors.npz, jacobian.parquet and weight_grad.parquet; returns run.json's
    measurement fields."""
    store.atomic_write(run_dir / "lags.parquet",
                       lambda p: pd.DataFrame(m.lags).to_parquet(p, index=False))
    if m.tensors:
        store.atomic_write(run_dir / "tensors.npz", lambda p: _savez(p, m.tensors))
    if m.jacobian:
        store.atomic_write(run_dir / "jacobian.parquet",
                           lambda p: pd.DataFrame(m.jacobian).to_parquet(p, index=False))
    if m.weight_grad:
        store.atomic_write(run_dir / "weight_grad.parquet",
                           lambda p: pd.DataFrame(m.weight_grad).to_parquet(p, index=False))
    return {**m.fit, "theory": m.theory, "seconds": m.seconds,
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


def spec_from_config(cfg) -> RunSpec:
    """A validated RunSpec from a Hydra/OmegaConf config (the ``sweep`` and ``hydra`` keys
    are the runner's, not the measurement's)."""
    from omegaconf import OmegaConf

    plain = {k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v
             for k, v in cfg.items() if k not in ("sweep", "hydra")}
    unknown = sorted(set(plain) - set(TOP_KEYS))
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r}{suggest(unknown[0], TOP_KEYS)} "
                          f"(allowed top-level keys: {', '.join(TOP_KEYS)})")
    return RunSpec.from_dict(plain).validate()


def run_from_hydra(cfg) -> dict:
    """The body of ``experiments/decay.py``: one run in Hydra's output directory."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    spec = spec_from_config(cfg)
    run_dir = Path(hc.runtime.output_dir)
    if hc.mode != RunMode.MULTIRUN:
        from .cli import single_run
        return single_run(spec, run_dir)
    launcher = hc.launcher.get("_target_", "")
    if spec.measure.threads is None and ("Joblib" in launcher or "Ray" in launcher):
        # these run several jobs per machine (and set OMP_NUM_THREADS=1): one torch thread each
        spec = replace(spec, measure=replace(spec.measure, threads=1))
    from .cli import interruptible
    try:
        with interruptible():
            record = execute(spec, run_dir, raise_errors=False)
    except BaseException:  # interrupted: a run that wrote nothing leaves no directory
        store.discard_if_empty(run_dir)
        raise
    store.record_outcome(Path(hc.sweep.dir), run_dir, record)
    return record


def describe(record: dict) -> str:
    """``decay_rate = ... +- ... nats/step (regime)`` of a run record."""
    rate, err = (v if v is not None else math.nan
                 for v in (record.get("decay_rate"), record.get("decay_rate_stderr")))
    return f"decay_rate = {rate:+.6g} +- {err:.2g} nats/step ({record.get('regime')})"


def plan_jobs(config) -> tuple[list[list[str]], list[str]]:
    """The override lists of every job of a multirun, as Hydra's basic sweeper splits them, and
    the run directory name Hydra gives each (``hydra.job.override_dirname``)."""
    from hydra._internal.config_loader_impl import get_overrides_dirname
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    params = config.hydra.sweeper.get("params") or {}
    args = [f"{k}={v}" for k, v in params.items()] + list(config.hydra.overrides.task)
    jobs = [job for batch in BasicSweeper.split_arguments(parser.parse_overrides(args), None)
            for job in batch]
    naming = config.hydra.job.config.override_dirname
    names = [get_overrides_dirname(parser.parse_overrides(job), list(naming.exclude_keys),
                                   naming.item_sep, naming.kv_sep) for job in jobs]
    return jobs, names


def validate_jobs(base, jobs: list[list[str]], load_job=None, to_spec=None) -> list:
    """The RunSpec of every job (``to_spec``, default ``spec_from_config``, for another kind of
    run), or a ConfigError naming the first bad job.

    Values (``key=value``) are set on a plain copy of the composed base config; a job that also
    chooses config groups (``model=...``) starts from Hydra's composition of those choices
    (``load_job(choices)``, Hydra's own sweep-config loader), composed once per distinct choice.
    Hydra's own keys do not reach the RunSpec and are left out."""
    import copy

    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    parser = OverridesParser.create()
    to_spec = to_spec or spec_from_config

    def plain(cfg) -> dict:
        return OmegaConf.to_container(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]),
                                      resolve=True)

    composed = {(): plain(base)}
    specs = []
    for job in jobs:
        parsed = [(text, parser.parse_override(text)) for text in job]
        parsed = [(t, o) for t, o in parsed if not o.is_hydra_override()]
        choices = tuple(t for t, o in parsed if not _is_value(base, o))
        if choices not in composed:
            composed[choices] = plain(load_job(list(choices)))
        cfg = copy.deepcopy(composed[choices])
        for text, o in parsed:
            if text in choices:
                continue
            *parents, leaf = o.key_or_group.split(".")
            node = cfg
            for part in parents:
                node = node.setdefault(part, {})
            if o.is_delete():
                node.pop(leaf, None)
            else:
                node[leaf] = o.value()
        try:
            specs.append(to_spec(cfg))
        except ConfigError as err:
            shown = [t for t in job if not t.lstrip("+~").startswith(("sweep=", "hydra"))]
            raise ConfigError(f"sweep job {','.join(shown)}: {err}") from None
    return specs


def _is_value(base, override) -> bool:
    """Whether an override sets a value (a dotted key or a scalar), not a config-group choice."""
    from omegaconf import OmegaConf

    if override.is_hydra_override():
        return True
    key = override.key_or_group
    if "/" in key:
        return False
    choices = OmegaConf.select(base, "hydra.runtime.choices", default=None)
    if choices is not None and key in choices:  # a group, whatever package it fills
        return False
    node = OmegaConf.select(base, key, default=None)
    return not OmegaConf.is_dict(node) or override.is_add()
