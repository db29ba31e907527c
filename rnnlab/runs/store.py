"""The run store: one directory per run, independent of what a run computes.

A run directory holds the files its writer puts there and ``run.json`` last: ``run.json`` is the
completion marker. Every file is written to a temporary name and renamed into place, so an
interrupted or killed run never leaves a file that looks complete. On a re-run:

- a run whose ``run.json`` says ``completed`` for the same configuration is skipped (the
  configuration is compared by hash, and where the stored hash was made under another hashing
  scheme, by re-hashing the ``params`` stored beside it);
- a failed or half-written run is computed again;
- a run computed under another configuration has its files moved into ``stale-<time>/`` first.

A lock file per directory keeps two processes on one host from computing the same run; a lock left
by a dead process is taken over. ``execute`` takes the computation and the file writer as
functions, so measurement runs and training runs share all of this.
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import platform
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

PROGRESS_FILE = ".progress"
PLAN_FILE = ".plan.json"
OUTCOMES = ("computed", "skipped", "failed", "locked")


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------
def _finite(obj):
    """JSON has no inf or NaN: write them as null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def atomic_write(path: Path, write: Callable[[Path], Any]) -> None:
    """``write(tmp)`` then rename tmp onto ``path``: readers see the old file or the whole new one.
    The temporary file is removed if writing fails or is interrupted."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: dict) -> None:
    atomic_write(path, lambda p: p.write_text(json.dumps(_finite(obj), indent=2,
                                                         allow_nan=False)))


def write_if_changed(path: Path, content: bytes) -> bool:
    """Write ``content`` atomically unless the file already holds exactly these bytes (keeps
    committed outputs and their timestamps untouched). True when written."""
    path = Path(path)
    try:
        if path.read_bytes() == content:
            return False
    except OSError:
        pass
    atomic_write(path, lambda p: p.write_bytes(content))
    return True


def read_run(run_dir: Path) -> dict | None:
    """run.json of a run directory, or None when absent or unreadable."""
    try:
        return json.loads((Path(run_dir) / "run.json").read_text())
    except (OSError, ValueError):
        return None


# --------------------------------------------------------------------------------------------
# Provenance
# --------------------------------------------------------------------------------------------
_ROOT = Path(__file__).resolve().parents[2]


def _git(*args) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(_ROOT), *args], capture_output=True, text=True,
                             timeout=10)
        return out.stdout.strip() if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def _torch_threads() -> int | None:
    try:
        import torch
    except ImportError:  # the store itself does not need torch
        return None
    return torch.get_num_threads()


@functools.cache
def torch_build() -> dict | None:
    """What decides torch's kernels beyond its version: the build's git commit, CUDA version (None
    for a CPU build), whether MKL and oneDNN are in, and the CPU instruction set torch dispatches
    to (``torch.backends.cpu.get_cpu_capability``: AVX2, AVX512, ...)."""
    try:
        import torch
    except ImportError:
        return None
    return {"version": torch.__version__, "git": torch.version.git_version,
            "cuda": torch.version.cuda, "mkl": torch.backends.mkl.is_available(),
            "mkldnn": torch.backends.mkldnn.is_available(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability()}


@functools.cache
def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux, else ``platform.processor()``): another CPU
    may run other BLAS kernels and round differently."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance(device: str, dtype: str,
               packages=("rnnlab", "torch", "numpy", "scipy", "pandas", "hydra-core",
                         "seaborn")) -> dict:
    """Git commit and dirty flag, package versions, python, device, dtype, torch's thread count,
    torch's build and the CPU model (a chaotic run is a new sample under another thread count,
    torch build or CPU: docs/tolerances.md), host, command, UTC.

    ``git_dirty`` looks at tracked source only: results/ is output, and a sweep that rewrites its
    own committed tables must not mark the next run's source as modified."""
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results")
    versions = {}
    for pkg in packages:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {"git_commit": commit, "git_dirty": None if status is None else bool(status),
            "packages": versions, "python": sys.version.split()[0], "device": device,
            "dtype": dtype, "torch_threads": _torch_threads(), "torch_build": torch_build(),
            "cpu": cpu_model(), "host": socket.gethostname(),
            "command": " ".join(sys.argv),
            "utc": datetime.now(timezone.utc).isoformat(timespec="seconds")}


# --------------------------------------------------------------------------------------------
# Configuration hash
# --------------------------------------------------------------------------------------------
def params_hash(params: dict) -> str:
    """sha256 (16 hex digits) of a flat ``{key: scalar}`` dict, independent of key order and of
    int/float spelling of the same number (1 and 1.0 hash alike)."""
    def norm(v):
        if isinstance(v, float) and v.is_integer():
            return int(v)
        return v
    flat = {k: norm(v) for k, v in params.items()}
    return hashlib.sha256(json.dumps(flat, sort_keys=True).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# Lock, set-aside
# --------------------------------------------------------------------------------------------
class Lock:
    """An exclusive lock file per run directory, so two sweeps never compute the same run; a lock
    left by a dead process on this host is taken over."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / ".lock"
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
                try:
                    host, _, pid = self.path.read_text().partition(" ")
                except FileNotFoundError:  # released between our open and read
                    continue
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


def set_aside(run_dir: Path, files, reason: str) -> None:
    """Move the given result files of ``run_dir`` into ``stale-<UTC time>/`` (nothing is
    overwritten or deleted)."""
    present = [f for f in files if (run_dir / f).exists()]
    if not present:
        return
    stale = run_dir / f"stale-{datetime.now(timezone.utc):%Y%m%dT%H%M%S%fZ}"
    stale.mkdir()
    for f in present:
        os.replace(run_dir / f, stale / f)
    print(f"rnnlab: {run_dir}: {reason}; earlier results moved to {stale.name}/", file=sys.stderr)


def same_config(old: dict | None, chash: str, rehash: Callable[[dict], str] | None) -> bool:
    """Whether a stored run.json was made for the configuration hashed ``chash``: by its stored
    hash or, for runs hashed under an earlier scheme, by re-hashing its stored ``params``."""
    if not old:
        return False
    if old.get("config_hash") == chash:
        return True
    if rehash is None or not isinstance(old.get("params"), dict):
        return False
    try:
        return rehash(old["params"]) == chash
    except (ValueError, TypeError, KeyError):  # params of a key set this version cannot read
        return False


# --------------------------------------------------------------------------------------------
# One run
# --------------------------------------------------------------------------------------------
def execute(run_dir: Path, params: dict, chash: str, compute: Callable[[], Any],
            write: Callable[[Path, Any], dict], *, result_files, device: str = "unknown",
            dtype: str | None = None, rehash: Callable[[dict], str] | None = None,
            resume: bool = True, raise_errors: bool = True) -> dict:
    """Compute one run into ``run_dir`` unless it is already complete there.

    ``compute()`` returns the result; ``write(run_dir, result)`` writes its files (with
    ``atomic_write``) and returns the fields of run.json; the store adds ``status``,
    ``config_hash``, ``params`` and ``seconds`` (unless given) and writes run.json last.
    ``result_files`` are the names a run may leave (set aside when the configuration changed).
    Returns run.json's record with ``outcome``: computed, skipped, failed or locked. An
    interrupt (Ctrl-C) releases the lock and leaves no run.json, so a re-run computes it again.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with Lock(run_dir) as lock:
        if not lock.held:
            return {"outcome": "locked", "run_dir": str(run_dir)}
        for tmp in run_dir.glob(".*.tmp"):  # left by a process killed mid-write
            tmp.unlink(missing_ok=True)
        old = read_run(run_dir)
        matches = same_config(old, chash, rehash)
        if resume and matches and old.get("status") == "completed":
            return {**old, "outcome": "skipped"}
        if old and not matches:
            set_aside(run_dir, dict.fromkeys([*result_files, "run.json"]), "configuration changed")
        start = time.perf_counter()
        try:
            result = compute()
            fields = write(run_dir, result)
        except Exception as err:  # a failed run is recorded and named, and the sweep goes on
            record = {"status": "failed", "config_hash": chash, "params": params,
                      "error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc(),
                      "seconds": time.perf_counter() - start,
                      "provenance": provenance(device, dtype)}
            write_json(run_dir / "run.json", record)
            if raise_errors:
                raise
            print(f"rnnlab: run {run_dir} failed: {record['error']}", file=sys.stderr)
            return {**record, "outcome": "failed"}
        record = {"status": "completed", "config_hash": chash, "params": params, **fields}
        record.setdefault("seconds", time.perf_counter() - start)
        write_json(run_dir / "run.json", record)
        # a writer may record a failure it caught itself (a training loss that became NaN)
        return {**record, "outcome": "failed" if record["status"] == "failed" else "computed"}


def discard_if_empty(run_dir: Path) -> bool:
    """Remove a run directory that holds nothing (a run rejected or interrupted before it wrote
    anything); True when removed."""
    try:
        Path(run_dir).rmdir()
        return True
    except OSError:
        return False


# --------------------------------------------------------------------------------------------
# A sweep's ledger: the plan and the outcome of each run, in files (works under any launcher)
# --------------------------------------------------------------------------------------------
def start_sweep(sweep_dir: Path, names: list[str] | None) -> None:
    """Write the plan (every run's directory name; None when the sweeper decides them as it
    goes) and reset the progress file."""
    sweep_dir = Path(sweep_dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    write_json(sweep_dir / PLAN_FILE, {"total": None if names is None else len(names),
                                       "runs": names or [],
                                       "command": " ".join(sys.argv), "utc": now})
    (sweep_dir / PROGRESS_FILE).write_text("")


def tally(sweep_dir: Path) -> tuple[dict, int | None]:
    """Outcome counts so far and the planned total (None without a plan)."""
    try:
        lines = (Path(sweep_dir) / PROGRESS_FILE).read_text().splitlines()
    except OSError:
        lines = []
    outcomes = [line.split("\t")[0] for line in lines]
    try:
        total = json.loads((Path(sweep_dir) / PLAN_FILE).read_text())["total"]
    except (OSError, ValueError, KeyError):
        total = None
    return {o: outcomes.count(o) for o in OUTCOMES}, total


def tally_text(counts: dict, total: int | None) -> str:
    text = ", ".join(f"{n} {o}" for o, n in counts.items() if n) or "none finished"
    if total is not None:
        text += f", {max(total - sum(counts.values()), 0)} left"
    return text


def note_outcome(sweep_dir: Path, name: str, outcome: str) -> None:
    """Append one run's outcome to the sweep's progress file (O_APPEND: safe across
    processes)."""
    with open(Path(sweep_dir) / PROGRESS_FILE, "a") as f:
        f.write(f"{outcome}\t{name}\n")


def record_outcome(sweep_dir: Path, run_dir: Path, record: dict) -> None:
    """Append this run's outcome to the sweep's progress file (O_APPEND: safe across processes)
    and print the tally line."""
    sweep_dir = Path(sweep_dir)
    note_outcome(sweep_dir, run_dir.name, record["outcome"])
    counts, total = tally(sweep_dir)
    rate = record.get("decay_rate")
    rate = f"rate {rate:+.4f}" if isinstance(rate, float) else record.get("error", "")
    print(f"[{sweep_dir.name} {sum(counts.values())}/{total or '?'}: "
          f"{tally_text(counts, total)}] {run_dir.name}: {record['outcome']} {rate}", flush=True)
