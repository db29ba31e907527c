"""The run and sweep runner: Hydra config -> RunSpec -> measurement -> files. The only module that
knows Hydra.

A run directory holds ``lags.parquet``, ``tensors.npz`` (on request) and ``run.json``. Each file is
written to a temporary name and renamed into place; ``run.json`` comes last and is the completion
marker: a run whose run.json says ``completed`` with the same configuration hash is skipped on a
re-run, a failed or half-written one is computed again, and one computed under another
configuration is moved into ``stale-<time>/`` beside the new results (nothing is overwritten).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import socket
import subprocess
import sys
import time
import traceback
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .config import RunSpec
from .run import Measurement, measure

RESULT_FILES = ("lags.parquet", "tensors.npz", "jacobian.parquet", "run.json")
PROGRESS_FILE = ".progress"
PLAN_FILE = ".plan.json"
# keys that change how a run is shown or scheduled, not what it computes
_UNHASHED = ("measure.progress", "measure.threads")


def config_hash(spec: RunSpec) -> str:
    flat = {k: v for k, v in spec.flat().items() if k not in _UNHASHED}
    return hashlib.sha256(json.dumps(flat, sort_keys=True).encode()).hexdigest()[:16]


def _finite(obj):
    """JSON has no inf or NaN: write them as null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(tmp)
    os.replace(tmp, path)


def write_json(path: Path, obj: dict) -> None:
    _atomic(path, lambda p: p.write_text(json.dumps(_finite(obj), indent=2, allow_nan=False)))


def read_run(run_dir: Path) -> dict | None:
    """run.json of a run directory, or None when absent or unreadable."""
    try:
        return json.loads((Path(run_dir) / "run.json").read_text())
    except (OSError, ValueError):
        return None


def provenance(device: str, dtype: str) -> dict:
    root = Path(__file__).resolve().parents[1]

    def git(*args):
        try:
            out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                                 timeout=10)
            return out.stdout.strip() if out.returncode == 0 else None
        except (OSError, subprocess.SubprocessError):
            return None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    versions = {}
    for pkg in ("rnnlab", "torch", "numpy", "scipy", "pandas", "hydra-core", "seaborn"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {"git_commit": commit, "git_dirty": None if status is None else bool(status),
            "packages": versions, "python": sys.version.split()[0], "device": device,
            "dtype": dtype, "host": socket.gethostname(), "command": " ".join(sys.argv),
            "utc": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def _set_aside(run_dir: Path, reason: str) -> None:
    present = [f for f in RESULT_FILES if (run_dir / f).exists()]
    if not present:
        return
    stale = run_dir / f"stale-{datetime.now(timezone.utc):%Y%m%dT%H%M%S%fZ}"
    stale.mkdir()
    for f in present:
        os.replace(run_dir / f, stale / f)
    print(f"rnnlab: {run_dir}: {reason}; earlier results moved to {stale.name}/", file=sys.stderr)


class _Lock:
    """An exclusive lock file per run directory, so two sweeps never compute the same run; a lock
    left by a dead process on this host is taken over."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / ".lock"
        self.held = False

    def __enter__(self):
        me = f"{socket.gethostname()} {os.getpid()}"
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                os.write(fd, me.encode())
                os.close(fd)
                self.held = True
                return self
            except FileExistsError:
                host, _, pid = self.path.read_text().partition(" ")
                if host != socket.gethostname() or _alive(int(pid or 0)):
                    return self
                self.path.unlink(missing_ok=True)
        return self

    def __exit__(self, *exc):
        if self.held:
            self.path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return pid > 0
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _savez(path: Path, arrays: dict) -> None:
    with open(path, "wb") as f:  # a file object: np.savez would append .npz to the name
        np.savez(f, **arrays)


def write_run(run_dir: Path, spec: RunSpec, m: Measurement, chash: str) -> dict:
    """Write lags.parquet, tensors.npz, then run.json (the completion marker)."""
    _atomic(run_dir / "lags.parquet", lambda p: pd.DataFrame(m.lags).to_parquet(p, index=False))
    if m.tensors:
        _atomic(run_dir / "tensors.npz", lambda p: _savez(p, m.tensors))
    if m.jacobian:
        _atomic(run_dir / "jacobian.parquet",
                lambda p: pd.DataFrame(m.jacobian).to_parquet(p, index=False))
    record = {"status": "completed", "config_hash": chash, "params": spec.flat(), **m.fit,
              "theory": m.theory, "seconds": m.seconds,
              "provenance": provenance(m.device, spec.measure.dtype)}
    write_json(run_dir / "run.json", record)
    return record


def execute(spec: RunSpec, run_dir: Path, resume: bool = True, raise_errors: bool = True) -> dict:
    """Measure one configuration into ``run_dir`` unless it is already complete there.

    Returns run.json's record with ``outcome`` added: computed, skipped, failed or locked.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    chash = config_hash(spec)
    with _Lock(run_dir) as lock:
        if not lock.held:
            return {"outcome": "locked", "run_dir": str(run_dir)}
        for tmp in run_dir.glob(".*.tmp"):  # left by a process killed mid-write
            tmp.unlink(missing_ok=True)
        old = read_run(run_dir)
        if resume and old and old.get("status") == "completed" and old.get("config_hash") == chash:
            return {**old, "outcome": "skipped"}
        if old and old.get("config_hash") != chash:
            _set_aside(run_dir, "configuration changed")
        if spec.measure.threads:
            torch.set_num_threads(spec.measure.threads)
        start = time.perf_counter()
        try:
            m = measure(spec)
        except Exception as err:  # a failed run is recorded and named, and the sweep goes on
            record = {"status": "failed", "config_hash": chash, "params": spec.flat(),
                      "error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc(),
                      "seconds": time.perf_counter() - start,
                      "provenance": provenance("unknown", spec.measure.dtype)}
            write_json(run_dir / "run.json", record)
            if raise_errors:
                raise
            print(f"rnnlab: run {run_dir} failed: {record['error']}", file=sys.stderr)
            return {**record, "outcome": "failed"}
        return {**write_run(run_dir, spec, m, chash), "outcome": "computed"}


# --------------------------------------------------------------------------------------------
# Hydra glue: the task body and the sweep callback
# --------------------------------------------------------------------------------------------
def spec_from_config(cfg) -> RunSpec:
    """A validated RunSpec from a Hydra/OmegaConf config (the ``sweep`` and ``hydra`` keys
    are the runner's, not the measurement's)."""
    from omegaconf import OmegaConf

    plain = {k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v
             for k, v in cfg.items() if k not in ("sweep", "hydra")}
    unknown = sorted(set(plain) - {"seed", "model", "data", "measure"})
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r}; allowed top-level keys: "
                         "['seed', 'model', 'data', 'measure', 'sweep']")
    return RunSpec.from_dict(plain).validate()


def run_from_hydra(cfg) -> dict:
    """The body of ``experiments/decay.py``: one run in Hydra's output directory."""
    from dataclasses import replace

    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    spec = spec_from_config(cfg)
    run_dir = Path(hc.runtime.output_dir)
    if hc.mode != RunMode.MULTIRUN:
        m = execute(spec, run_dir)
        if m["outcome"] == "locked":
            raise RuntimeError(f"{run_dir} is being computed by another process "
                               f"({run_dir / '.lock'}); delete the lock if that process is gone")
        note = " (already complete there: not recomputed)" if m["outcome"] == "skipped" else ""
        rate, err = (v if v is not None else math.nan
                     for v in (m["decay_rate"], m["decay_rate_stderr"]))
        print(f"decay_rate = {rate:+.6g} +- {err:.2g} nats/step ({m['regime']}), "
              f"{m['seconds']:.2f} s -> {run_dir}{note}")
        if m["outcome"] == "computed":
            from . import plots
            plots.single_run_figures(run_dir)
        return m
    launcher = hc.launcher.get("_target_", "")
    if spec.measure.threads is None and ("Joblib" in launcher or "Ray" in launcher):
        # these run several jobs per machine (and set OMP_NUM_THREADS=1): one torch thread each
        spec = replace(spec, measure=replace(spec.measure, threads=1))
    spec = replace(spec, measure=replace(spec.measure, progress=False))
    record = execute(spec, run_dir, raise_errors=False)
    _report(Path(hc.sweep.dir), run_dir, record)
    return record


def _report(sweep_dir: Path, run_dir: Path, record: dict) -> None:
    """Append this run's outcome to the sweep's progress file (O_APPEND: safe across processes)
    and print the tally."""
    line = f"{record['outcome']}\t{run_dir.name}\n"
    with open(sweep_dir / PROGRESS_FILE, "a") as f:
        f.write(line)
    outcomes = [l.split("\t")[0] for l in (sweep_dir / PROGRESS_FILE).read_text().splitlines()]
    try:
        total = json.loads((sweep_dir / PLAN_FILE).read_text())["total"]
    except (OSError, ValueError, KeyError):
        total = "?"
    counts = {o: outcomes.count(o) for o in ("computed", "skipped", "failed", "locked")}
    tally = ", ".join(f"{n} {o}" for o, n in counts.items() if n)
    if isinstance(total, int):
        tally += f", {total - len(outcomes)} left"
    rate = record.get("decay_rate")
    rate = f"rate {rate:+.4f}" if isinstance(rate, float) else record.get("error", "")
    print(f"[{sweep_dir.name} {len(outcomes)}/{total}: {tally}] {run_dir.name}: "
          f"{record['outcome']} {rate}", flush=True)


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


def validate_jobs(config, jobs: list[list[str]]) -> None:
    """Reject a bad value anywhere in the grid before the first job runs."""
    from omegaconf import OmegaConf, open_dict

    base = OmegaConf.masked_copy(config, [k for k in config if k != "hydra"])
    for job in jobs:
        cfg = base.copy()
        with open_dict(cfg):
            for item in job:
                key, _, value = item.partition("=")
                key = key.lstrip("+~")
                group = key in ("sweep", "model", "data", "measure")
                if "/" in key or group or key.startswith("hydra"):
                    continue  # a config-group choice: Hydra itself rejects unknown ones
                OmegaConf.update(cfg, key, _parse_value(value), force_add=True)
        try:
            spec_from_config(cfg)
        except ValueError as err:
            raise ValueError(f"sweep job {','.join(job)}: {err}") from None


def _parse_value(text: str):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_override(f"k={text}").value()


try:
    from hydra.experimental.callback import Callback
except ImportError:  # pragma: no cover - hydra is a dependency; keep the core importable without it
    Callback = object


class SweepCallback(Callback):
    """Checks the whole grid before any job, keeps the progress tally, and aggregates at the end."""

    def on_multirun_start(self, config, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        jobs, names = plan_jobs(config)
        validate_jobs(config, jobs)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        write_json(sweep_dir / PLAN_FILE, {"total": len(jobs), "runs": names})
        (sweep_dir / PROGRESS_FILE).write_text("")
        print(f"rnnlab: sweep of {len(jobs)} runs into {sweep_dir}", flush=True)

    def on_multirun_end(self, config, **kwargs) -> None:
        from . import plots, tables

        sweep_dir = Path(config.hydra.sweep.dir)
        result = tables.aggregate(sweep_dir)
        plots.sweep_figures(sweep_dir, result)
