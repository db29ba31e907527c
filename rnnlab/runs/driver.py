"""The one command-line driver of both apps (``experiments/decay.py``, ``experiments/train.py``):
what happens before Hydra runs, inside each of its jobs, and after.

An app plugs in through an ``App``: how a composed config becomes a validated specification, how
one run is executed into its directory (through ``runs.store``), how a finished run is described
in one line, and how a finished sweep is aggregated. Nothing here imports an app.

Hydra 1.3 turns an exception raised in a callback into a warning and prints every other error with
a traceback, so the checks that must stop a run live here, before ``hydra.main`` dispatches:

1. every override key is checked against the configuration (a misspelt one is named with the
   nearest valid key), the configuration is composed with Hydra's own loader, and in a sweep every
   job's values are validated; a bad one exits 2 with one line, before any directory exists;
2. the output directory is checked to be creatable (an OS error is named with its path);
3. a sweep's plan is written; when every planned run is already complete (its stored hash),
   Hydra is not started at all; otherwise Hydra runs the jobs (any launcher; each job's body is
   ``run_job``; each job composed once). Then the app aggregates the sweep, unless no run.json
   and no rnnlab source changed since its last successful aggregation and its outputs are
   there; a failed aggregation or failed runs exit 1;
4. Ctrl-C ends with one line: what finished and that re-running the same command resumes.

``RNNLAB_TRACEBACK=1`` (or Hydra's ``HYDRA_FULL_ERROR=1``) shows the full traceback instead.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import os
import signal
import sys
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..checks import ConfigError
from . import grid, store

TRACEBACK_ENV = "RNNLAB_TRACEBACK"
EXIT_CONFIG, EXIT_FAILED, EXIT_INTERRUPTED = 2, 1, 130
CUSTOM = "custom"  # sweep=custom's default sweep.name (conf/sweep/custom.yaml)
# Hydra flags that print something instead of running: left to Hydra unchecked
_INFO_FLAGS = ("help", "hydra_help", "version", "cfg", "info", "shell_completion",
               "experimental_rerun")


class RunError(RuntimeError):
    """A run or sweep that could not be done (locked, failed): one line, exit 1."""


@dataclass(frozen=True)
class App:
    """What an app gives the driver.

    ``name``: its config in ``conf/`` (``decay``, ``train``); ``spec_from_config(cfg)``: a
    composed Hydra config -> a validated specification (raises ``ConfigError``);
    ``execute(spec, run_dir, sweep=..., launcher=...)``: compute one run into ``run_dir`` through
    ``runs.store.execute`` and return run.json's record with ``outcome``; ``describe(record)``:
    one line of a finished run; ``finish(sweep_dir)``: aggregate a finished sweep (tables,
    figures, report), returning the exit status; ``after_run(run_dir)``: what a single computed
    run adds at the end (its figures), optional. ``config_hash(spec)`` and ``rehash(params)``
    (as ``runs.store.execute`` takes them) let a re-run of a finished sweep skip every run
    before Hydra starts; ``outputs``: files ``finish`` writes in the sweep directory (the
    aggregation is skipped only while they all exist and no run changed).
    """

    name: str
    spec_from_config: Callable[[Any], Any]
    execute: Callable[..., dict]
    describe: Callable[[dict], str]
    finish: Callable[[Path], int]
    after_run: Callable[[Path], Any] | None = None
    config_hash: Callable[[Any], str] | None = None
    rehash: Callable[[dict], str] | None = None
    outputs: tuple[str, ...] = ()


@dataclass(frozen=True)
class AppRef:
    """An app by its config name, its module (whose ``APP`` is the App) and its configuration
    module (whose ``spec_from_config`` is the App's), each imported only when needed: a
    misspelt key, a value of the wrong type or out of a fixed range is rejected against the
    schema (``rnnlab.schema``) before torch is imported, a bad value that needs a registry (a
    cell, a task) before pandas and seaborn."""

    name: str
    module: str
    config: str

    def load(self) -> App:
        return importlib.import_module(self.module).APP

    def spec_from_config(self, cfg):
        from .. import schema

        schema.check(self.name, schema.plain(cfg))
        return importlib.import_module(self.config).spec_from_config(cfg)


def _load(app: App | AppRef) -> App:
    return app.load() if isinstance(app, AppRef) else app


@dataclass
class Plan:
    multirun: bool
    out_dir: Path  # the run directory, or the sweep directory
    names: list[str] | None = field(default_factory=list)  # None: the sweeper plans the jobs
    specs: list = field(default_factory=list)
    named: bool = False  # whether ``names`` are the run directories' names
    added: list[str] = field(default_factory=list)  # overrides the driver adds (sweep.name)


_state: dict = {}  # what an interrupt report needs: the plan, and a single run's directory


class _Interrupt:
    """Ctrl-C stops a run's computation at once, but never Hydra halfway through composing the
    next job's config (that surfaces as an unrelated OmegaConf error): outside a run it is noted
    and raised when the next run starts (or when Hydra returns). A second Ctrl-C is immediate."""
    pending = False
    armed = False

    @classmethod
    def handler(cls, signum, frame):
        again = cls.pending
        cls.pending = True
        if cls.armed or again:
            raise KeyboardInterrupt


@contextmanager
def interruptible():
    """Around a run's computation: Ctrl-C raises KeyboardInterrupt here."""
    if _Interrupt.pending:
        raise KeyboardInterrupt
    _Interrupt.armed = True
    try:
        yield
    finally:
        _Interrupt.armed = False


def _debug() -> bool:
    return any(os.environ.get(k, "") not in ("", "0") for k in (TRACEBACK_ENV, "HYDRA_FULL_ERROR"))


def _say(message: str) -> None:
    print(f"rnnlab: {message}", file=sys.stderr, flush=True)


def os_error_text(err: OSError) -> str:
    """``permission denied: /path`` (strerror lower-cased, then where)."""
    what = err.strerror or str(err)
    what = what[:1].lower() + what[1:]
    return f"{what}: {err.filename}" if err.filename is not None else what


@contextmanager
def reported():
    """Turn configuration errors, OS errors and run errors into one line and an exit status."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    if _debug():
        yield
        return
    try:
        yield
    except (ConfigError, HydraException, OmegaConfBaseException) as err:
        lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
        lines = lines[:next((i for i, x in enumerate(lines) if x.startswith("Config search")),
                            len(lines))]
        # a missing group option lists every allowed one; other details are cut at three lines
        shown = lines[1:] if lines[1:2] and lines[1].startswith("Available options") \
            else lines[1:4]
        _say(f"error: {lines[0]}" + (f" ({' '.join(shown)})" if shown else ""))
        raise SystemExit(EXIT_CONFIG) from None
    except OSError as err:
        _say(f"error: {os_error_text(err)}")
        raise SystemExit(EXIT_FAILED) from None
    except RunError as err:
        _say(f"error: {err}")
        raise SystemExit(EXIT_FAILED) from None


# --------------------------------------------------------------------------------------------
# Before Hydra: keys, composition, every job of the grid, the output directory
# --------------------------------------------------------------------------------------------
def check(conf_dir: Path, config_name: str, overrides: list[str], multirun: bool,
          app: App | AppRef) -> Plan:
    """Compose and validate the command line as Hydra will run it; nothing is written. The
    keys are checked before the app (torch, pandas) is imported."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    parsed = OverridesParser.create().parse_overrides(overrides)
    with initialize_config_dir(config_dir=str(Path(conf_dir).absolute()), version_base="1.3"):
        loader = GlobalHydra.instance().hydra.config_loader
        if any(not o.is_hydra_override() for o in parsed):
            groups = set(loader.list_groups("")) | {"hydra"}
            # the keys as the command line's group choices make them (model=lru adds its own;
            # Hydra's own overrides may say where the groups are: hydra.searchpath)
            chosen = [o.input_line for o in parsed if not o.is_sweep_override()
                      and (o.is_hydra_override() or "/" in o.key_or_group
                           or o.key_or_group in groups)]
            base = loader.load_configuration(config_name, chosen, run_mode=RunMode.RUN)
            grid.check_keys(parsed, base, groups,
                            lambda key: grid.options_setting(loader, base, key))
        mode = RunMode.MULTIRUN if multirun else RunMode.RUN
        cfg = loader.load_configuration(config_name, overrides, run_mode=mode)
        if not multirun:
            spec = app.spec_from_config(cfg)
            out = Path(OmegaConf.select(cfg, "hydra.run.dir"))
            grid.writable(out)
            return Plan(False, out, specs=[spec])
        out = Path(OmegaConf.select(cfg, "hydra.sweep.dir"))
        if "BasicSweeper" not in str(OmegaConf.select(cfg, "hydra.sweeper._target_")):
            # another sweeper plugin chooses its own jobs: only the base config can be checked
            # here; each job is still validated before it computes
            grid.writable(out)
            return Plan(True, out, None, [app.spec_from_config(cfg)])
        jobs, names = grid.plan_jobs(cfg)
        keys = grid.job_keys(cfg, jobs)
        added = []
        if (OmegaConf.select(cfg, "sweep.name") == CUSTOM
                and not any(o.get_key_element() == "sweep.name" for o in parsed)):
            # an unnamed custom sweep lives under its own keys: two of them never share a
            # directory (and so never pool their tables)
            added = [f"sweep.name={CUSTOM}/{'+'.join(keys) or 'base'}"]
            cfg = loader.load_configuration(config_name, [*overrides, *added], run_mode=mode)
            out = Path(OmegaConf.select(cfg, "hydra.sweep.dir"))
        specs = grid.validate_jobs(cfg, jobs,
                                   lambda job: loader.load_sweep_config(cfg, list(job)),
                                   app.spec_from_config)
        grid.writable(out)
        # the run directories are known only under the default naming
        named = OmegaConf.to_container(cfg.hydra.sweep, resolve=False).get("subdir") \
            == "${hydra:job.override_dirname}"
        if named:
            grid.same_grid(out, keys, cfg.hydra.job.config.override_dirname.kv_sep)
        return Plan(True, out, names, specs, named, added)


@contextmanager
def composed_once(plan: Plan):
    """While Hydra runs a grid the driver has already composed and validated job by job, its
    basic sweeper does not compose every job a second time before launching it
    (``BasicSweeper.validate_batch_is_legal``, which Hydra's own comment calls repeated work); the
    launcher still composes each job once to run it."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    if plan.names is None:  # another sweeper: nothing was checked job by job
        yield
        return
    before = BasicSweeper.validate_batch_is_legal
    BasicSweeper.validate_batch_is_legal = lambda self, batch: None
    try:
        yield
    finally:
        BasicSweeper.validate_batch_is_legal = before


# --------------------------------------------------------------------------------------------
# The whole command
# --------------------------------------------------------------------------------------------
def main(hydra_main, conf_dir: Path, app: App, argv=None) -> int:
    """Check, run ``hydra_main`` (the app's ``@hydra.main`` function, whose body is ``run_job``),
    finish the sweep. Exit status: 0 done, 1 failed runs / aggregation / OS error, 2 bad
    configuration, 130 interrupted."""
    from hydra._internal.utils import get_args_parser

    argv = sys.argv[1:] if argv is None else argv
    try:
        args, _ = get_args_parser().parse_known_args(argv)
    except SystemExit:  # let Hydra print its own usage message
        return _hydra(hydra_main)
    if any(getattr(args, f, None) for f in _INFO_FLAGS) or args.config_path or args.config_dir:
        return _hydra(hydra_main)  # informational, or another config tree: Hydra alone
    config_name = args.config_name or app.name
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _Interrupt.handler)
    try:
        with reported():
            plan = check(Path(conf_dir), config_name, args.overrides, args.multirun, app)
            app = _load(app)
            _state["plan"] = plan
            if not plan.multirun:
                _hydra(hydra_main)
                if _Interrupt.pending:
                    raise KeyboardInterrupt
                return 0
            done = all_finished(plan, app)
            store.start_sweep(plan.out_dir, plan.names)
            if done:
                for name in plan.names:
                    store.note_outcome(plan.out_dir, name, "skipped")
                print(f"rnnlab: sweep of {len(plan.names)} runs in {plan.out_dir}: every run "
                      "is already complete (skipped)", flush=True)
            else:
                count = "?" if plan.names is None else len(plan.names)
                print(f"rnnlab: sweep of {count} runs into {plan.out_dir}", flush=True)
                sys.argv = [*sys.argv, *plan.added]
                with composed_once(plan):
                    _hydra(hydra_main)
                if _Interrupt.pending:
                    raise KeyboardInterrupt
            return aggregate(plan.out_dir, app)
    except KeyboardInterrupt:
        if _debug():
            raise
        _say(interrupted_line())
        return EXIT_INTERRUPTED


def all_finished(plan: Plan, app: App) -> bool:
    """Whether every planned run's run.json says completed for the same configuration (the
    store's own test, ``runs.store.same_config``); False when that cannot be known before Hydra
    runs (another sweeper or run naming, or an app without ``config_hash``)."""
    if plan.names is None or not plan.named or app.config_hash is None:
        return False
    for name, spec in zip(plan.names, plan.specs):
        old = store.read_run(plan.out_dir / name)
        if not (old and old.get("status") == "completed"
                and store.same_config(old, app.config_hash(spec), app.rehash)):
            return False
    return True


AGGREGATED = ".aggregated"


def _inputs_digest(sweep_dir: Path, app: App) -> str:
    """What an aggregation depends on: every run directory's run.json (name, size, mtime) and
    rnnlab's own source files (size, mtime), so a changed run or changed code re-aggregates."""
    parts = [app.name]
    for run_json in sorted(Path(sweep_dir).glob("*/run.json")):
        st = run_json.stat()
        parts.append(f"{run_json.parent.name}:{st.st_size}:{st.st_mtime_ns}")
    for src in sorted(Path(__file__).resolve().parents[1].rglob("*.py")):
        st = src.stat()
        parts.append(f"{src.name}:{st.st_size}:{st.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def aggregate(sweep_dir: Path, app: App) -> int:
    """``app.finish(sweep_dir)``, unless it already ran successfully on these very inputs and
    its outputs are all there (a re-run of a finished sweep then costs no plotting)."""
    sweep_dir = Path(sweep_dir)
    digest = _inputs_digest(sweep_dir, app)
    marker = sweep_dir / AGGREGATED
    outputs_there = bool(app.outputs) and all((sweep_dir / f).exists() for f in app.outputs)
    try:
        previous = json.loads(marker.read_text()).get("inputs")
    except (OSError, ValueError, AttributeError):
        previous = None
    if outputs_there and previous == digest:
        print(f"rnnlab: no run changed since the last aggregation: tables, figures and "
              f"report in {sweep_dir} are up to date", flush=True)
        return 0
    marker.unlink(missing_ok=True)
    status = app.finish(sweep_dir)
    if status == 0:
        store.write_json(marker, {"inputs": digest})
    return status


def _hydra(hydra_main) -> int:
    hydra_main()
    return 0


def interrupted_line() -> str:
    plan = _state.get("plan")
    if plan is not None and plan.multirun:
        counts, total = store.tally(plan.out_dir)
        return (f"interrupted: {store.tally_text(counts, total)} in {plan.out_dir}; "
                "run the same command again to resume (finished runs are kept)")
    run_dir = _state.get("run_dir")
    where = f" ({run_dir} removed: nothing was written)" if _state.get("discarded") else \
        (f" in {run_dir}" if run_dir else "")
    return f"interrupted before the run finished{where}; run the same command again to start over"


# --------------------------------------------------------------------------------------------
# One job (the body of the ``@hydra.main`` function): a single run, or one run of a sweep
# --------------------------------------------------------------------------------------------
def run_job(app: App | AppRef, cfg) -> dict:
    """Run the job Hydra composed into its output directory."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    app = _load(app)
    spec = app.spec_from_config(cfg)
    run_dir = Path(hc.runtime.output_dir)
    if hc.mode != RunMode.MULTIRUN:
        return single_run(app, spec, run_dir)
    try:
        with interruptible():
            record = app.execute(spec, run_dir, sweep=True,
                                 launcher=hc.launcher.get("_target_", ""))
    except BaseException:  # interrupted: a run that wrote nothing leaves no directory
        store.discard_if_empty(run_dir)
        raise
    store.record_outcome(Path(hc.sweep.dir), run_dir, record)
    return record


def single_run(app: App, spec, run_dir: Path) -> dict:
    """One run into ``run_dir``: its line, and what the app adds to a computed run."""
    _state["run_dir"] = run_dir
    try:
        with reported():
            with interruptible():
                record = app.execute(spec, run_dir, sweep=False, launcher="")
            if record["outcome"] == "locked":
                raise RunError(f"{run_dir} is being computed by another process "
                               f"({run_dir / '.lock'}); delete the lock if that process is gone")
            if record["outcome"] == "failed":
                hint = f"; {TRACEBACK_ENV}=1 for the traceback" if "traceback" in record else ""
                raise RunError(f"the run failed: {record.get('error')} (recorded in "
                               f"{run_dir / 'run.json'}{hint})")
            note = " (already complete there: not recomputed)" \
                if record["outcome"] == "skipped" else ""
            print(f"{app.describe(record)}, {record['seconds']:.2f} s -> {run_dir}{note}")
            if record["outcome"] == "computed" and app.after_run is not None:
                app.after_run(run_dir)
            return record
    except BaseException:
        _state["discarded"] = store.discard_if_empty(run_dir)
        raise
