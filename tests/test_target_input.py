"""``measure.target=input``: the gradient through the inputs of rnnlab's own networks, and
``model=attention`` (``rnnlab.engine.stacks.input_maps``, ``rnnlab.measure.run``).

- a stack's (2 layers, layernorm, residual, burn-in) log10 ||dy_t/dx_k|| of the logits and every
  layer's log10 ||do^l_t/dx_k|| equal an independent autograd loop (each sequence alone, one
  backward per output coordinate, the stack written out in ``reference.stack_forward``), 1e-10;
- the depth map's layer 1 is the one-layer network's input measurement (layer 1 with an identity
  readout), 1e-12;
- through the app: input_lags.parquet, depth_time.parquet (layer, lag, mean and spread), the
  rate in run.json, the figures; the hash of a run at the default target is unchanged;
- the attention layer's exact row through the app: with model.query_gain=0 (W_Q = 0),
  log10 ||dy_t/dx_k|| = log10(||W_V||_F / (t + 1)) for every k <= t (1e-12) and the rate 0;
- refusals in one line before compute, nothing written: target=input with weights=redrawn
  (command line) and with every other key it cannot take; attention with target=state.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import assert_refused

from rnnlab.checks import ConfigError
from rnnlab.engine import reference, stacks
from rnnlab.measure.config import INPUT_REFUSES, RunSpec
from rnnlab.measure.networks import draw


def stack_spec(**measure):
    return RunSpec.from_dict({
        "model": {"cell": "gru", "hidden_size": 4, "input_size": 3, "output_size": 2,
                  "layers": 2, "norm": "layernorm", "residual": True, "init": "pytorch"},
        "data": {"seq_len": 6, "batch_size": 2, "burn_in": 2, "h0_std": 0.5},
        "measure": {"progress": False, "target": "input", **measure}}).validate()


def loop(forward, x):
    """log10 ||dz_t/dx_k||_F (T, T) batch mean, k <= t: each sequence alone, one backward per
    output coordinate of ``forward`` (x (1, T, D) -> (T, C))."""
    B, T, _ = x.shape
    out = np.full((B, T, T), math.nan)
    for b in range(B):
        xb = x[b:b + 1].clone().requires_grad_(True)
        z = forward(b, xb)
        for t in range(T):
            J = torch.stack([torch.autograd.grad(z[t, c], xb, retain_graph=True)[0][0]
                             for c in range(z.shape[1])])
            out[b, t, :t + 1] = torch.log10(J.square().sum((0, 2)).sqrt())[:t + 1].numpy()
    return out.mean(0)


def test_input_maps_equal_an_autograd_loop():
    s = stack_spec()
    net = draw(s.model, s.data, s.seed)
    p, burn = net.params, s.data.burn_in
    maps = stacks.input_maps(p, net.x, net.h0, burn)
    n = len(stacks.parts(stacks.cells.get(p.cell), 1))
    parts = torch.split(net.h0, p.hidden_size, -1)

    def run(b, xb, what):
        states = [tuple(t[b:b + 1] for t in parts[l * n:(l + 1) * n]) for l in range(2)]
        with torch.no_grad():
            for t in range(burn):
                states, _ = reference.stack_forward(p, net.x[b:b + 1, t], states)
        rows = []
        for t in range(xb.shape[1]):
            states, ys = reference.stack_forward(p, xb[:, t], states)
            if what == "y":
                rows.append(ys[-1] @ p.V.T + p.c)
            else:  # o^l: layer l's y^l minus the input it adds
                below = xb[:, t] if what == 0 else ys[what - 1]
                rows.append(ys[what] - below if p.residual[what] else ys[what])
        return torch.cat(rows)

    x = net.x[:, burn:]
    ok = np.tril(np.ones((6, 6), dtype=bool))
    want = loop(lambda b, xb: run(b, xb, "y"), x)
    assert np.abs(maps.output.log10_grad[ok] - want[ok]).max() < 1e-10
    for l in range(2):
        want = loop(lambda b, xb, l=l: run(b, xb, l), x)
        assert np.abs(maps.layers[l].log10_grad[ok] - want[ok]).max() < 1e-10


def test_layer_one_is_the_one_layer_input_measurement():
    s = stack_spec()
    net = draw(s.model, s.data, s.seed)
    p = net.params
    deep = stacks.input_maps(p, net.x, net.h0, 2)
    N = p.hidden_size
    one = stacks.StackParams(p.cell, p.layers[:1], torch.eye(N, dtype=torch.float64),
                             torch.zeros(N, dtype=torch.float64), p.norm, p.residual[:1])
    alone = stacks.input_maps(one, net.x, net.h0[:, :N], 2)
    ok = np.tril(np.ones((6, 6), dtype=bool))
    assert np.abs(deep.layers[0].log10_grad[ok] - alone.output.log10_grad[ok]).max() < 1e-12
    assert np.abs(alone.layers[0].log10_grad[ok] - alone.output.log10_grad[ok]).max() < 1e-12


def test_the_app_writes_the_tables_and_the_figure(tmp_path, decay_in_process):
    run = tmp_path / "run"
    status, out, err = decay_in_process(
        "model=gru", "model.layers=3", "model.norm=rmsnorm", "model.residual=true",
        "model.hidden_size=4", "data.seq_len=8", "data.batch_size=2", "measure.target=input",
        "measure.max_lag=5", f"hydra.run.dir={run}")
    assert status == 0, err
    record = json.loads((run / "run.json").read_text())
    lags = pd.read_parquet(run / "input_lags.parquet")
    depth = pd.read_parquet(run / "depth_time.parquet")
    assert not (run / "lags.parquet").exists()
    assert list(lags["lag"]) == list(range(6)) and lags["log10_ratio_mean"][0] == 0
    assert sorted(set(depth["layer"])) == [1, 2, 3] and depth["lag"].max() == 5
    assert {"log10_grad_mean", "log10_grad_std"} <= set(depth.columns)
    assert math.isfinite(record["decay_rate"]) and len(record["layer_decay_rates"]) == 3
    assert (run / "figures" / "depth_time.png").exists()
    assert "gradient through the inputs" in out


def test_the_default_target_keeps_every_hash():
    plain = RunSpec.from_dict({"model": {"hidden_size": 5}}).validate()
    explicit = RunSpec.from_dict({"model": {"hidden_size": 5, "query_gain": 1.0},
                                  "measure": {"target": "state"}}).validate()
    assert plain.config_hash() == explicit.config_hash()
    other = RunSpec.from_dict({"model": {"hidden_size": 5}, "measure": {"target": "input"}})
    assert other.validate().config_hash() != plain.config_hash()


def test_attention_uniform_row_through_the_app(tmp_path, decay_in_process):
    run = tmp_path / "run"
    status, _, err = decay_in_process(
        "model=attention", "model.query_gain=0", "model.input_size=3", "model.output_size=2",
        "data.seq_len=7", "data.batch_size=2", "measure.target=input",
        "measure.save_tensors=true", f"hydra.run.dir={run}")
    assert status == 0, err
    with np.load(run / "tensors.npz") as t:
        grad, W_V = t["log10_grad"], t["W_V"]
        assert not t["W_Q"].any()
    T = 7
    for t in range(T):
        want = math.log10(np.linalg.norm(W_V) / (t + 1))
        assert np.abs(grad[t, :t + 1] - want).max() < 1e-12
        assert np.isnan(grad[t, t + 1:]).all()
    record = json.loads((run / "run.json").read_text())
    assert record["decay_rate"] == 0.0 and record["regime"] == "neutral"
    assert not (run / "depth_time.parquet").exists()


@pytest.mark.parametrize("key,value", INPUT_REFUSES)
def test_target_input_refuses_what_it_cannot_take(key, value):
    with pytest.raises(ConfigError) as err:
        RunSpec.from_dict({"measure": {"target": "input", key: value}}).validate()
    line = str(err.value)
    assert line.startswith("measure.target='input' with measure." + key) and "\n" not in line


def test_attention_with_target_state_is_refused():
    with pytest.raises(ConfigError, match="^measure.target='state' with model.cell='attention'"):
        RunSpec.from_dict({"model": {"cell": "attention"}}).validate()


def test_command_line_refuses_input_with_redrawn(tmp_path, decay_in_process):
    run = tmp_path / "run"
    status, _, err = decay_in_process("measure.target=input", "measure.weights=redrawn",
                                      f"hydra.run.dir={run}")
    assert_refused(status, err, run, "measure.target='input' with measure.weights='redrawn'")
