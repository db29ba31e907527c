"""``python experiments/train.py``, end to end through the real command line (subprocess):

- a tiny run writes model.pt, curve.parquet and run.json with the README's keys; model.pt loads
  into plain torch modules and scores exactly the reported eval_error_rate on the test stream;
  the curve's decay rate at step 0 is run.json's initial_decay_rate and matches the exact engine;
- a bad task, a too-short length, clip <= 0, lr <= 0 or an unknown optimiser exits 2 with one
  line naming the key, and creates no directory;
- re-running a finished run skips it (run.json unchanged); a run killed mid-way (a dead
  process's lock and a half-written model.pt, no run.json) is trained again from the start;
- a run whose loss becomes NaN is recorded as failed with the step, and the sweep goes on to the
  next run and to its tables;
- every trainability sweep (conf/sweep/trainability*.yaml, the exploding one included: tanh,
  W = 2Q at init, SGD, clip 1 and none, 20 seeds) composes, and each of its jobs is a valid
  TrainConfig with the stated grid (exact counts and values).
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
TINY = ["task=temporal_order", "task.length=10", "model.hidden_size=8", "train.steps=30",
        "train.eval_every=15", "train.eval_size=50", "train.test_size=200",
        "train.probe_size=4", "train.progress=false"]


def train_cli(cwd, *overrides, multirun=False):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(ROOT / "experiments" / "train.py"),
                           *(["-m"] if multirun else []), *overrides],
                          capture_output=True, text=True, cwd=cwd, env=env)


def test_tiny_run_writes_its_files_and_the_model_reproduces_its_score(tmp_path):
    from rnnlab.train.config import TrainConfig
    from rnnlab.train.horizon import decay_rate
    from rnnlab.train.loop import evaluate, load_model, sample, stream

    run_dir = tmp_path / "run"
    out = train_cli(tmp_path, *TINY, "arch=gru", f"hydra.run.dir={run_dir}")
    assert out.returncode == 0, out.stderr[-3000:]
    assert {"model.pt", "curve.parquet", "run.json"} <= {p.name for p in run_dir.iterdir()}
    run = json.loads((run_dir / "run.json").read_text())
    for key in ("task", "solved", "steps_to_solve", "eval_error_rate", "eval_count",
                "final_loss", "baseline_loss", "initial_decay_rate", "status", "provenance",
                "params", "config_hash"):
        assert key in run, key
    assert run["status"] == "completed" and run["task"] == "temporal_order"
    assert run["eval_count"] == 200 and run["params"]["cell"] == "gru"
    curve = pd.read_parquet(run_dir / "curve.parquet")
    assert {"step", "train_loss", "eval_loss", "eval_error_rate", "decay_rate"} <= set(curve)
    assert list(curve["step"]) == [0, 15, 30]

    rnn, head, config = load_model(run_dir / "model.pt")
    assert isinstance(rnn, torch.nn.GRU) and isinstance(head, torch.nn.Linear)
    ev = evaluate(rnn, head, "temporal_order", 10, stream(0, "test"), 200, 1000)
    assert ev.errors == run["eval_errors"] and ev.count == run["eval_count"]

    # step 0's rate is the initial network's, measured by the exact engine on the probe batch
    cfg = TrainConfig(**run["params"]).validate()
    from rnnlab.train.loop import build
    rnn0, head0 = build(cfg)
    x, y = sample("temporal_order", 4, 10, stream(0, "probe"), torch.float32)
    assert curve["decay_rate"].iloc[0] == pytest.approx(run["initial_decay_rate"], abs=0)
    assert decay_rate(rnn0, head0, "temporal_order", x, y) == pytest.approx(
        run["initial_decay_rate"], rel=1e-12)


@pytest.mark.parametrize("override,key", [
    ("task=nonesuch", "task"),
    ("task.length=5", "task.length"),
    ("train.clip=0", "train.clip"),
    ("train.clip=-1", "train.clip"),
    ("train.lr=0", "train.lr"),
    ("train.lr=-0.1", "train.lr"),
    ("train.optimizer=lbfgs", "train.optimizer"),
    ("model.cell=rnn", "model.cell"),
])
def test_bad_input_exits_2_with_one_line_and_no_directory(tmp_path, override, key):
    run_dir = tmp_path / "run"
    out = train_cli(tmp_path, *TINY, override, f"hydra.run.dir={run_dir}")
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rnnlab: error:"), out.stderr
    assert key in lines[0]
    assert not run_dir.exists()
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("name", ["trainability", "trainability_clipping", "trainability_adding",
                                  "trainability_exploding"])
def test_trainability_sweeps_compose_and_every_job_is_valid(name):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from rnnlab.runs.grid import plan_jobs
    from rnnlab.train.app import spec_from_config

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"sweep={name}"], return_hydra_config=True)
        jobs, names = plan_jobs(cfg)
        specs = [spec_from_config(compose("train", overrides=[f"sweep={name}", *job]))[0]
                 for job in jobs]
    assert cfg.sweep.name.startswith("trainability/")
    assert len(jobs) == {"trainability": 48, "trainability_clipping": 54,
                         "trainability_adding": 36, "trainability_exploding": 120}[name]
    assert len(set(names)) == len(names) and all("seed=" in n for n in names)
    task = "adding_pascanu" if name == "trainability_adding" else "temporal_order"
    assert {s.task for s in specs} == {task} and {s.hidden_size for s in specs} == {32}
    assert {s.steps for s in specs} == {2000}
    if name in ("trainability", "trainability_adding"):
        assert {(s.cell, s.activation, s.init) for s in specs} == {
            ("elman", "tanh", "pytorch"), ("elman", "relu", "identity"),
            ("gru", "tanh", "pytorch"), ("lstm", "tanh", "pytorch")}
        assert {(s.optimizer, s.lr, s.clip) for s in specs} == {("adam", 0.001, 1.0)}
    else:
        assert {s.clip for s in specs} == {1.0, None} and {s.optimizer for s in specs} == {"sgd"}
    if name == "trainability_exploding":  # tanh, W = 2Q at init: the exploding regime
        assert {(s.cell, s.activation, s.init, s.spectral_radius, s.orthogonal)
                for s in specs} == {("elman", "tanh", "orthogonal", 2.0, False)}
        assert {s.length for s in specs} == {10, 25, 50} and {s.lr for s in specs} == {0.1}
        assert len({s.seed for s in specs}) == 20


def test_unknown_task_lists_every_task(tmp_path):
    out = train_cli(tmp_path, *TINY, "task=nonesuch", f"hydra.run.dir={tmp_path / 'run'}")
    assert out.returncode == 2
    for name in ("adding_pascanu", "multiplication_pascanu", "temporal_order", "adding_le",
                 "copy"):
        assert name in out.stderr


def test_bad_value_in_a_sweep_job_exits_2_before_any_run(tmp_path):
    out = train_cli(tmp_path, *TINY, "train.lr=0.01,0", f"hydra.sweep.dir={tmp_path / 'sw'}",
                    multirun=True)
    assert out.returncode == 2 and "train.lr=0" in out.stderr
    assert not (tmp_path / "sw").exists()


def test_rerun_skips_a_finished_run_and_retrains_a_killed_one(tmp_path):
    run_dir = tmp_path / "run"
    args = [*TINY, f"hydra.run.dir={run_dir}"]
    assert train_cli(tmp_path, *args).returncode == 0
    first = (run_dir / "run.json").read_text()
    again = train_cli(tmp_path, *args)
    assert again.returncode == 0 and "not recomputed" in again.stdout
    assert (run_dir / "run.json").read_text() == first

    # killed mid-way: no run.json, a lock held by a process that is gone, a truncated model.pt
    (run_dir / "run.json").unlink()
    (run_dir / "model.pt").write_bytes(b"half")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    (run_dir / ".lock").write_text(f"{os.uname().nodename} {dead}")
    redo = train_cli(tmp_path, *args)
    assert redo.returncode == 0, redo.stderr[-2000:]
    assert "not recomputed" not in redo.stdout
    rec = json.loads((run_dir / "run.json").read_text())
    assert rec["status"] == "completed" and not (run_dir / ".lock").exists()
    from rnnlab.train.loop import load_model
    load_model(run_dir / "model.pt")  # a whole model again


def test_nan_run_is_recorded_as_failed_and_the_sweep_goes_on(tmp_path):
    sweep = tmp_path / "sw"
    # IRNN with plain SGD at lr 100 and no clipping: the loss is NaN at the second update
    out = train_cli(tmp_path, *TINY, "task=adding_pascanu", "task.length=20", "arch=irnn",
                    "train.optimizer=sgd", "train.clip=null", "train.lr=100,0.001",
                    f"hydra.sweep.dir={sweep}", multirun=True)
    assert out.returncode == 0, out.stderr[-3000:]
    bad_dir, = sweep.glob("*train.lr=100*")
    good_dir, = sweep.glob("*train.lr=0.001*")
    failed = json.loads((bad_dir / "run.json").read_text())
    assert failed["status"] == "failed" and "at step 2" in failed["error"]
    assert not (bad_dir / "model.pt").exists()
    ok = json.loads((good_dir / "run.json").read_text())
    assert ok["status"] == "completed"
    runs = pd.read_parquet(sweep / "runs.parquet")
    assert sorted(runs["status"]) == ["completed", "failed"]
    assert not runs.loc[runs["status"] == "failed", "solved"].any()
    assert (sweep / "success.csv").exists()
    assert (sweep / "figures" / "success_vs_T.png").exists()
    assert "failed" in out.stderr
