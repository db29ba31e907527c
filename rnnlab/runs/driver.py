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
3. a sweep's plan is written, Hydra runs the jobs (any launcher; each job's body is ``run_job``),
   then the app aggregates the sweep; a failed aggregation or failed runs exit 1;
4. Ctrl-C ends with one line: what finished and that re-running the same command resumes.

``RNNLAB_TRACEBACK=1`` (or Hydra's ``HYDRA_FULL_ERROR=1``) shows the full traceback instead.
"""
from __future__ import annotations

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
    run adds at the end (its figures), optional.
    """

    name: str
    spec_from_config: Callable[[Any], Any]
    execute: Callable[..., dict]
    describe: Callable[[dict], str]
    finish: Callable[[Path], int]
    after_run: Callable[[Path], Any] | None = None


@dataclass
class Plan:
    multirun: bool
    out_dir: Path  # the run directory, or the sweep directory
    names: list[str] | None = field(default_factory=list)  # None: the sweeper plans the jobs
    specs: list = field(default_factory=list)


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
          app: App) -> Plan:
    """Compose and validate the command line as Hydra will run it; nothing is written."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    parsed = OverridesParser.create().parse_overrides(overrides)
    with initialize_config_dir(config_dir=str(Path(conf_dir).absolute()), version_base="1.3"):
        loader = GlobalHydra.instance().hydra.config_loader
        if any(not o.is_hydra_override() for o in parsed):
            base = loader.load_configuration(config_name, [], run_mode=RunMode.RUN)
            grid.check_keys(parsed, base, set(loader.list_groups("")) | {"hydra"})
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
        specs = grid.validate_jobs(cfg, jobs,
                                   lambda job: loader.load_sweep_config(cfg, list(job)),
                                   app.spec_from_config)
        grid.writable(out)
        return Plan(True, out, names, specs)


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
            _state["plan"] = plan
            if plan.multirun:
                store.start_sweep(plan.out_dir, plan.names)
                count = "?" if plan.names is None else len(plan.names)
                print(f"rnnlab: sweep of {count} runs into {plan.out_dir}", flush=True)
            _hydra(hydra_main)
            if _Interrupt.pending:
                raise KeyboardInterrupt
            if plan.multirun:
                return app.finish(plan.out_dir)
        return 0
    except KeyboardInterrupt:
        if _debug():
            raise
        _say(interrupted_line())
        return EXIT_INTERRUPTED


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
def run_job(app: App, cfg) -> dict:
    """Run the job Hydra composed into its output directory."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
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
