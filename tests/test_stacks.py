"""Stacks (``model.layers``, ``model.norm``, ``model.residual``; ``rnnlab.engine.stacks``).

- the stacked derived measurement of a drawn stack equals an independent per-target autograd
  loop on the stack written out with torch's own norms (``reference.stack_reference``), to
  1e-10 in log10, for plain, normed and residual stacks of several cells, burn-in included;
- a plain two-layer stack measured through the cells' hand-written maps (``jacobians=cell``)
  equals the derived path to 1e-12;
- the one-layer default draws and measures exactly as before (the stack keys at their defaults
  leave the network, the numbers and the configuration hash as they were);
- bad stack settings are refused in one line before compute, in both apps;
- ``experiments/train.py`` trains a 2-layer rmsnorm residual stack, and its initial decay rate is
  that of the rebuilt stack measured through the engine.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import TINY_TRAIN, assert_refused, log_diff

from rnnlab.checks import ConfigError
from rnnlab.engine import adjoint, reference, stacks
from rnnlab.measure.config import RunSpec
from rnnlab.measure.networks import draw
from rnnlab.train.config import TrainConfig
from rnnlab.train.networks import build, load_model

CASES = [
    ("elman", dict(layers=2), 0),
    ("gru", dict(layers=2, norm="rmsnorm", residual=True), 2),
    ("lstm", dict(layers=3, norm="layernorm", residual=True), 0),
    ("minimal", dict(layers=1, norm="rmsnorm", residual=True, input_size=5), 0),
    ("slstm", dict(layers=2, norm="layernorm"), 1),
    ("mamba", dict(layers=2, norm="rmsnorm", residual=True), 1),
    ("mamba", dict(layers=2), 0),
    ("mingru", dict(layers=2, norm="layernorm", residual=True), 0),
    ("rglru", dict(layers=2), 1),
]
# the cells whose init takes no spectral radius: their published init and nonlinearity
PRESETS = {"slstm": dict(init="xlstm"), "mingru": dict(init="pytorch", activation="linear"),
           "rglru": dict(init="ring", activation="linear"),
           "mamba": dict(init="mamba", activation="linear", d_state=2)}


def spec(cell, burn_in=0, **model):
    m = {"cell": cell, "hidden_size": 5, "input_size": 3, "output_size": 4, "spectral_radius": 1.2}
    m.update(model)
    if cell in PRESETS:
        m.pop("spectral_radius")
        m.update(PRESETS[cell])
    return RunSpec.from_dict({"model": m, "data": {"seq_len": 7, "batch_size": 3,
                                                   "burn_in": burn_in, "h0_std": 0.5},
                              "measure": {"progress": False}}).validate()


@pytest.mark.parametrize("cell,model,burn_in", CASES)
def test_stack_matches_autograd(cell, model, burn_in):
    s = spec(cell, burn_in, **model)
    net = draw(s.model, s.data, s.seed)
    traj = stacks.trajectory(net.params, net.x, net.h0, net.y_target, burn_in, "mse", "derived")
    fast = adjoint.log_grad_norms(traj)
    ref = reference.stack_reference(net.params, net.x, net.h0, net.y_target, burn_in, "mse")
    measured = ~torch.isnan(ref)
    assert torch.equal(measured, ~torch.isnan(fast)) and measured.sum() > 0
    assert log_diff(fast[measured], ref[measured]) < 1e-10 * math.log(10)


@pytest.mark.parametrize("cell", ["elman", "lstm"])
def test_plain_stack_hand_maps_equal_derived(cell):
    s = spec(cell, 1, layers=3)
    net = draw(s.model, s.data, s.seed)
    a = adjoint.log_grad_norms(stacks.trajectory(net.params, net.x, net.h0, net.y_target, 1,
                                                 "mse", "cell"))
    b = adjoint.log_grad_norms(stacks.trajectory(net.params, net.x, net.h0, net.y_target, 1,
                                                 "mse", "derived"))
    ok = ~torch.isnan(a)
    assert torch.equal(ok, ~torch.isnan(b))
    assert (a[ok] - b[ok]).abs().max() < 1e-12


def test_one_layer_default_is_unchanged():
    plain = RunSpec.from_dict({"model": {"hidden_size": 5}}).validate()
    explicit = RunSpec.from_dict({"model": {"hidden_size": 5, "layers": 1, "norm": "none",
                                            "residual": False}}).validate()
    assert plain.config_hash() == explicit.config_hash()
    assert not stacks.is_stacked(plain.model)
    assert not isinstance(draw(plain.model, plain.data, 0).params, stacks.StackParams)
    deeper = RunSpec.from_dict({"model": {"hidden_size": 5, "layers": 2}}).validate()
    assert deeper.config_hash() != plain.config_hash()
    assert TrainConfig().validate() == TrainConfig(layers=1, norm="none", residual=False)


@pytest.mark.parametrize("model,measure,needle", [
    (dict(layers=0), {}, "model.layers=0 is not allowed"),
    (dict(norm="batchnorm"), {}, "model.norm='batchnorm' is not allowed"),
    (dict(residual=True), {}, "model.residual=true with model.layers=1 and input size 3"),
    (dict(cell="lru", activation="linear", init="ring", layers=2), {}, "model.cell='lru'"),
    (dict(layers=2), dict(weights="redrawn"), "measure.weights='redrawn' with model.layers=2"),
    (dict(layers=2), dict(sensitivity=True), "measure.sensitivity=true with model.layers=2"),
    (dict(layers=2), dict(weight_grad=True), "measure.weight_grad=true with model.layers=2"),
])
def test_bad_stack_is_refused(model, measure, needle):
    m = {"hidden_size": 5, "input_size": 3, **model}
    with pytest.raises(ConfigError) as err:
        RunSpec.from_dict({"model": m, "measure": measure}).validate()
    assert needle in str(err.value) and "\n" not in str(err.value), str(err.value)


@pytest.mark.parametrize("fields,needle", [
    (dict(layers=2, init="pascanu_basic_tanh", activation="tanh"),
     "model.init='pascanu_basic_tanh'"),
    (dict(layers=2, regularizer="omega"), "train.regularizer='omega' with model.layers=2"),
    (dict(layers=2, cell="lru", activation="linear", init="ring"), "model.layers=2, model.norm"),
    (dict(residual=True, init="pytorch"), "model.residual=true with model.layers=1 and input "
                                          "size 2 != model.hidden_size=64"),
])
def test_bad_train_stack_is_refused(fields, needle):
    with pytest.raises(ConfigError) as err:
        TrainConfig(**fields).validate()
    assert str(err.value).startswith(needle) and "\n" not in str(err.value), str(err.value)


def test_decay_command_line_refuses_before_compute(tmp_path, decay_in_process):
    run = tmp_path / "run"
    status, _, err = decay_in_process("model.layers=2", "measure.weights=redrawn",
                                      f"hydra.run.dir={run}")
    assert_refused(status, err, run, "measure.weights='redrawn' with model.layers=2")


def test_two_layer_rmsnorm_residual_trains(tmp_path, train_in_process):
    from rnnlab.train.data import sample, stream
    from rnnlab.train.horizon import decay_rate

    run = tmp_path / "run"
    status, _, err = train_in_process("arch=gru", "model.layers=2", "model.norm=rmsnorm",
                                      "model.residual=true", f"hydra.run.dir={run}", *TINY_TRAIN)
    assert status == 0, err
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed" and record["params"]["layers"] == 2
    curve = pd.read_parquet(run / "curve.parquet")
    assert np.isfinite(curve["eval_loss"]).all() and np.isfinite(curve["decay_rate"]).all()
    assert not (run / "weight_grad.parquet").exists()
    rnn, head, _ = load_model(run / "model.pt")
    assert isinstance(rnn, stacks.StackModule) and len(rnn.layers) == 2
    assert rnn.residual == (True, True)  # temporal order's input size is 6 = N: layer 1 adds it too
    cfg = TrainConfig(**record["params"]).validate()
    rnn0, head0 = build(cfg)
    x, y = sample("temporal_order", 4, 10, stream(0, "probe"), torch.float64)
    assert decay_rate(rnn0, head0, "temporal_order", x, y) == pytest.approx(
        record["initial_decay_rate"], rel=1e-12)
    moved = [(a - b).abs().max().item() for a, b in zip(rnn.parameters(), rnn0.parameters())]
    assert max(moved) > 0


@pytest.mark.parametrize("cell,norm", [("gru", "rmsnorm"), ("lstm", "layernorm"),
                                       ("minimal", "none"), ("mamba", "rmsnorm")])
def test_training_stack_is_the_measured_stack(cell, norm):
    """The trained module's forward (torch modules, learnt norms at init) is the engine's stacked
    step, and its trajectory equals the measurement's (the cells' reference steps, functional
    norms) and the autograd reference."""
    from rnnlab.engine.cells import get

    torch.manual_seed(0)
    rnn = stacks.stack_module(get(cell), 3, 3, {"activation": "tanh"}, 2, norm, True,
                              torch.float64)
    head = torch.nn.Linear(3, 2).double()
    x = torch.randn(2, 6, 3, dtype=torch.float64)
    y = torch.nn.functional.one_hot(torch.randint(2, (2, 6)), 2).double()
    # the module's own forward (torch's modules and norms) is the engine's stacked step
    step, state, _ = rnn.engine_step(head, 2)
    tops = []
    for t in range(6):
        state = step(x[:, t], state)
        tops.append(step.top(x[:, t], state))
    with torch.no_grad():
        assert (rnn(x)[0] - torch.stack(tops, 1)).abs().max() < 1e-12
    traj = stacks.module_trajectory(rnn, head, x, y, "xent")
    p = stacks.StackParams(cell, tuple(m.engine_params(head) for m in rnn.layers),
                           head.weight.detach(), head.bias.detach(), norm, rnn.residual)
    h0 = torch.zeros(2, traj.shape[2], dtype=torch.float64)
    a = adjoint.log_grad_norms(traj)
    b = adjoint.log_grad_norms(stacks.trajectory(p, x, h0, y, 0, "xent"))
    ref = reference.stack_reference(p, x, h0, y, 0, "xent")
    ok = ~torch.isnan(ref)
    assert torch.equal(ok, ~torch.isnan(a)) and torch.equal(ok, ~torch.isnan(b))
    assert log_diff(a[ok], ref[ok]) < 1e-10 * math.log(10)
    assert log_diff(b[ok], ref[ok]) < 1e-10 * math.log(10)
