"""Aggregation of training sweeps (``rnnlab.train.tables``) on hand-made run records:

- success_table counts solved seeds per cell/init, clipping and T, counts a failed (NaN) run as
  unsolved, and takes the median steps_to_solve of the solved seeds only;
- longest_solved takes the longest T solved by more than half of the seeds (a T solved by one
  of three does not count) and the horizon 1/|rate| at the longest T tried;
- arch names follow conf/arch, and clip null is "no clipping";
- a key that varies across a sweep (here the hidden size) is a group of its own, never pooled:
  two hidden sizes x 3 seeds give two groups of 3 seeds in success.csv and longest_solved.csv,
  and two lines in success_vs_T.
"""
import math

import pytest

from rnnlab.runs.store import write_json
from rnnlab.train.archs import arch_name
from rnnlab.train.config import TrainConfig
from rnnlab.train.plots import success_figure
from rnnlab.train.tables import (
    group_keys,
    longest_solved,
    run_row,
    runs_frame,
    success_table,
    write_tables,
)

BASE = dict(task="temporal_order", cell="elman", activation="tanh", init="pytorch",
            optimizer="adam", lr=1e-3, clip=1.0)


def rec(T, seed, solved, steps=None, rate=-0.5, status="completed", **kw):
    params = {**BASE, "length": T, "seed": seed, **kw}
    record = {"status": status, "solved": solved, "steps_to_solve": steps,
              "eval_error_rate": 0.0 if solved else 0.5, "initial_decay_rate": rate}
    return run_row(params, record)


def test_success_and_longest_solved():
    rows = [rec(10, s, True, 250 * (s + 1)) for s in range(3)]
    rows += [rec(25, 0, True, 1000), rec(25, 1, True, 2000), rec(25, 2, False)]
    rows += [rec(50, 0, True, 500), rec(50, 1, False), rec(50, 2, False, status="failed")]
    rows += [rec(50, s, s < 2, 250, rate=-0.01 * (s + 1), activation="relu", init="identity",
                 clip=None) for s in range(3)]
    success = success_table(runs_frame(rows))
    tanh = success[success["arch"] == "tanh"].set_index("length")
    assert list(tanh["solved"]) == [3, 2, 1] and list(tanh["seeds"]) == [3, 3, 3]
    assert tanh.loc[50, "failed_runs"] == 1 and tanh.loc[50, "success_rate"] == pytest.approx(1 / 3)
    assert tanh.loc[10, "median_steps_to_solve"] == 500
    assert tanh.loc[25, "median_steps_to_solve"] == 1500
    irnn = success[success["arch"] == "irnn"].iloc[0]
    assert irnn["clip_label"] == "no clipping" and irnn["success_rate"] == pytest.approx(2 / 3)
    assert irnn["horizon_steps"] == pytest.approx(1 / 0.02)

    longest = longest_solved(success).set_index("arch")
    assert longest.loc["tanh", "longest_T_solved"] == 25  # 1 of 3 at T = 50 is no majority
    assert longest.loc["tanh", "rate_at_T"] == 50
    assert longest.loc["irnn", "longest_T_solved"] == 50


def test_names():
    assert arch_name({"cell": "elman", "activation": "relu", "init": "identity"}) == "irnn"
    assert arch_name({"cell": "gru", "activation": "tanh", "init": "pytorch"}) == "gru"
    assert arch_name({"cell": "elman", "activation": "tanh", "init": "orthogonal"}) == \
        "scaled_orthogonal_tanh"  # W = rho Q at init only (rho in model.spectral_radius)
    assert arch_name({"cell": "elman", "activation": "relu", "init": "orthogonal"}) == \
        "elman-relu-orthogonal"
    row = rec(10, 0, True, status="failed")
    assert row["solved"] is False and not math.isnan(row["initial_decay_rate"])


def test_a_swept_hidden_size_is_grouped_not_pooled(tmp_path):
    for N in (16, 32):
        for seed in range(3):
            cfg = TrainConfig(task="temporal_order", length=10, hidden_size=N, seed=seed)
            solved = N == 32 or seed == 0  # 3/3 solved at N = 32, 1/3 at N = 16
            run_dir = tmp_path / f"model.hidden_size={N},seed={seed}"
            run_dir.mkdir()
            write_json(run_dir / "run.json",
                       {"status": "completed", "params": dict(vars(cfg)), "solved": solved,
                        "steps_to_solve": 100 if solved else None, "eval_error_rate": 0.0,
                        "initial_decay_rate": -0.5, "task": "temporal_order"})
    tables = write_tables(tmp_path)
    assert group_keys(tables["runs"])[-1] == "hidden_size"
    success = tables["success"].set_index("hidden_size")
    assert list(success["seeds"]) == [3, 3]
    assert success.loc[16, "solved"] == 1 and success.loc[32, "solved"] == 3
    csv = (tmp_path / "success.csv").read_text().splitlines()
    assert "hidden_size" in csv[0] and len(csv) == 3
    longest = tables["longest"].set_index("hidden_size")
    assert longest.loc[16, "longest_T_solved"] == 0 and longest.loc[32, "longest_T_solved"] == 10
    ax = success_figure(tables["success"]).axes[0]
    assert len(ax.lines) == 2
    assert sorted(line.get_label() for line in ax.lines) == ["tanh (PyTorch init), hidden_size 16",
                                                             "tanh (PyTorch init), hidden_size 32"]
