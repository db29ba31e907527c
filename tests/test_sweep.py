"""Sweeps: named grids compose, run end to end, resume after a kill, aggregate around damage.

- every named sweep in conf/sweep composes with Hydra's compose API into a valid RunSpec grid;
- ``decay.py -m sweep=quick`` writes one directory per run named by its parameters, then
  runs.parquet, lags.parquet, summary.csv, rates.csv and figures;
- a sweep killed after a few runs and re-run computes only the missing ones, leaves finished ones
  byte-for-byte untouched, and a third invocation computes nothing;
- a run whose stored hash came from an earlier hashing recipe is recognised by its stored params;
- a changed configuration under the same sweep name is recomputed, the old results set aside;
- the aggregator names a corrupt and a missing run and still aggregates the rest;
- several seeds give a mean and a 95% Student-t interval;
- the joblib launcher gives the same decay rates as the basic one.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from rnnlab.measure import tables
from rnnlab.measure.app import spec_from_config

ROOT = Path(__file__).resolve().parents[1]
QUICK_RUNS = 12


def sweep(tmp_path, *overrides, wait=True):
    tmp_path.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(ROOT / "experiments" / "decay.py"), "-m", "sweep=quick",
           f"hydra.sweep.dir={tmp_path}", *overrides]
    if not wait:
        return subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def outcomes(sweep_dir):
    lines = (Path(sweep_dir) / ".progress").read_text().splitlines()
    return [line.split("\t")[0] for line in lines]


def completed(sweep_dir):
    return {p.parent.name: p.read_bytes() for p in Path(sweep_dir).glob("*/run.json")
            if json.loads(p.read_text()).get("status") == "completed"}


def _is_training_sweep(path: Path) -> bool:
    """conf/sweep/ is shared with experiments/train.py, whose sweeps choose a task."""
    return "override /task" in path.read_text()


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "conf" / "sweep").glob("*.yaml")
                                        if not _is_training_sweep(p)))
def test_named_sweeps_compose(name):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("decay", overrides=[f"sweep={name}"], return_hydra_config=True)
    assert cfg.sweep.name == name
    assert name == "custom" or cfg.hydra.sweeper.params, "a named sweep carries its grid"
    spec_from_config(cfg)
    for key, values in cfg.hydra.sweeper.params.items():
        for value in str(values).split(","):
            with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
                job = compose("decay", overrides=[f"sweep={name}", f"{key}={value}"])
            spec_from_config(job)


def test_quick_sweep_end_to_end_and_resume(tmp_path):
    proc = sweep(tmp_path, wait=False)
    deadline = time.time() + 240
    while len(completed(tmp_path)) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = completed(tmp_path)
    assert 3 <= len(first) < QUICK_RUNS, "the kill should land mid-sweep"
    mtimes = {n: os.stat(tmp_path / n / "run.json").st_mtime_ns for n in first}

    out = sweep(tmp_path)
    done = outcomes(tmp_path)
    assert done.count("skipped") == len(first)
    assert done.count("computed") == QUICK_RUNS - len(first)
    second = completed(tmp_path)
    assert len(second) == QUICK_RUNS
    for name, content in first.items():
        assert second[name] == content
        assert os.stat(tmp_path / name / "run.json").st_mtime_ns == mtimes[name]
    names = sorted(second)
    assert "data.seq_len=20,model.activation=relu,model.spectral_radius=0.5" in names

    for f in ("runs.parquet", "lags.parquet", "summary.csv", "rates.csv"):
        assert (tmp_path / f).exists(), f
    assert len(list((tmp_path / "figures").glob("*.png"))) >= 3
    runs = pd.read_parquet(tmp_path / "runs.parquet")
    assert len(runs) == QUICK_RUNS and (runs["status"] == "completed").all()
    for col in ("model.activation", "model.spectral_radius", "data.seq_len", "decay_rate",
                "decay_rate_stderr", "regime", "seconds", "status"):
        assert col in runs
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert {"20", "40"} <= set(summary.columns)
    assert "decay rate" in out.stdout

    sweep(tmp_path)
    assert set(outcomes(tmp_path)) == {"skipped"}
    assert completed(tmp_path) == second

    # a run hashed under an earlier recipe is recognised by its stored params, not recomputed
    name = names[0]
    record = json.loads((tmp_path / name / "run.json").read_text())
    record["config_hash"] = "0123456789abcdef"
    (tmp_path / name / "run.json").write_text(json.dumps(record))
    sweep(tmp_path)
    assert set(outcomes(tmp_path)) == {"skipped"}

    # a run computed under another configuration (say, an edited default) in the same place:
    # recomputed, and its earlier results set aside rather than mixed or overwritten
    record["params"]["model.input_gain"] = 0.5
    (tmp_path / name / "run.json").write_text(json.dumps(record))
    sweep(tmp_path)
    assert sorted(outcomes(tmp_path)) == ["computed"] + ["skipped"] * (QUICK_RUNS - 1)
    stale = list((tmp_path / name).glob("stale-*/run.json"))
    assert len(stale) == 1 and json.loads(stale[0].read_text())["config_hash"] == "0123456789abcdef"
    assert len(pd.read_parquet(tmp_path / "runs.parquet")) == QUICK_RUNS


def test_aggregate_names_corrupt_and_missing_runs(tmp_path):
    sweep(tmp_path)
    names = sorted(completed(tmp_path))
    (tmp_path / names[0] / "lags.parquet").write_bytes(b"not a parquet file")
    (tmp_path / names[1] / "run.json").write_text("{ truncated")
    import shutil
    shutil.rmtree(tmp_path / names[2])
    out = subprocess.run([sys.executable, str(ROOT / "experiments" / "aggregate.py"),
                          str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert names[0] in out.stderr and "unreadable" in out.stderr
    assert names[1] in out.stderr
    assert names[2] in out.stderr and "missing" in out.stderr
    runs = pd.read_parquet(tmp_path / "runs.parquet")
    assert (runs["status"] == "completed").sum() == QUICK_RUNS - 3


def test_seed_intervals():
    runs = pd.DataFrame({"model.activation": ["tanh"] * 3, "seed": [0, 1, 2],
                         "decay_rate": [-0.1, -0.2, -0.3], "status": ["completed"] * 3})
    rates = tables.seed_intervals(runs, ["model.activation"])
    row = rates.iloc[0]
    assert row["n_seeds"] == 3 and abs(row["decay_rate"] + 0.2) < 1e-12
    half = 4.302652729911275 * 0.1 / 3 ** 0.5  # t_{0.975, 2} * sd / sqrt(n)
    assert abs(row["ci_high"] - row["decay_rate"] - half) < 1e-9


def test_joblib_matches_basic_launcher(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    grid = ["model.activation=tanh,relu", "model.spectral_radius=0.8,1.5", "data.seq_len=30"]
    sweep(tmp_path / "basic", *grid)
    sweep(tmp_path / "joblib", *grid, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
    a = pd.read_parquet(tmp_path / "basic" / "runs.parquet").set_index("run")
    b = pd.read_parquet(tmp_path / "joblib" / "runs.parquet").set_index("run")
    assert len(a) == 4 and sorted(a.index) == sorted(b.index)
    assert (a["decay_rate"] == b.loc[a.index, "decay_rate"]).all()


@pytest.mark.slow
@pytest.mark.parametrize("launcher,plugin", [
    ("submitit_local", "hydra_plugins.hydra_submitit_launcher"),
    ("rnnlab_ray_local", "hydra_plugins.hydra_ray_launcher"),
])
def test_cluster_launchers_run_locally(tmp_path, launcher, plugin):
    """The cluster launchers' local variants (pip install -e '.[slurm]' or '.[ray]') give the
    basic launcher's numbers."""
    pytest.importorskip(plugin)
    grid = ["model.activation=tanh,relu", "model.spectral_radius=0.5", "data.seq_len=20"]
    sweep(tmp_path / "basic", *grid)
    sweep(tmp_path / launcher, *grid, f"hydra/launcher={launcher}")
    a = pd.read_parquet(tmp_path / "basic" / "runs.parquet").set_index("run")
    b = pd.read_parquet(tmp_path / launcher / "runs.parquet").set_index("run")
    assert (a["decay_rate"] == b.loc[a.index, "decay_rate"]).all()
