"""The linear recurrent unit (``model.cell=lru``) in the exact engine.

- every ln ||dL_t/ds_k|| of the real 2N-state (Re h, Im h) against a per-target autograd loop
  through the recurrence written in torch's complex arithmetic (``lru.reference_step``), readout
  Re(C h) + D x included: < 1e-10 in log10, float64, with burn-in, max_lag and all three losses;
  the skip D x_t really enters g_t (leaving it out moves the reference by > 1e-6);
- with r_min = r_max = r every ratio ||dL_t/ds_k|| / ||dL_t/ds_t|| is r^(t-k): to 1e-10 in log10
  in float64 (any phases); in float32 at T = 3000, r = 0.999, every ratio finite and within
  8 eps_32 per step of lag (each step rounds the rotation and the renormalisation a few ulps,
  and |lambda| itself is rounded to float32) of (t-k) ln r;
- ``measure``: tensors.npz's tensors reproduce ``log10_grad`` by the autograd reference (1e-10),
  run.json's theory ``log_rho`` = ln max |lambda| equals the fitted rate and lambda_1 (1e-10)
  when the radii are equal, and the Jacobian-product norms are r^l (1e-10 in log10);
- the command line with ``model=lru`` writes the usual files, and bad LRU input (r_min > r_max, a
  radius outside (0, 1), a negative max_phase, LRU keys on another cell, the LRU with
  ``measure.weights=redrawn`` or ``measure.weight_grad=true`` or a bias) is one line, exit 2, no
  run directory (an LRU key without ``model=lru`` is a key of another option, named as such);
  the LRU keys set in Python on another cell are refused by the cell registry's check.
"""
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import assert_refused, log_diff, make

from rnnlab.checks import ConfigError
from rnnlab.engine import adjoint, reference
from rnnlab.engine.cells.lru import LRUParams
from rnnlab.measure.config import ModelSpec, RunSpec
from rnnlab.measure.run import measure

LN10 = math.log(10)
TOL = 1e-10 * LN10  # 1e-10 in log10, compared in natural log
LRU = dict(cell="lru", activation="linear", init="ring")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("loss,max_lag,burn_in,normalize", [
    ("mse", None, 0, True), ("xent", 5, 4, False), ("mse_linear", None, 3, True)])
def test_lru_matches_autograd(loss, max_lag, burn_in, normalize):
    net, p, traj = make(seed=2, hidden_size=7, input_size=3, output_size=5, batch_size=3,
                        seq_len=16, h0_std=0.5, burn_in=burn_in, loss=loss, r_min=0.4,
                        r_max=0.95, max_phase=3.0, normalize=normalize, **LRU)
    ref = reference.cell_reference(p, net.x, net.h0, net.y_target, burn_in, loss, max_lag)[""]
    fast = adjoint.log_grad_norms(traj, max_lag)
    measured = ~torch.isnan(ref)
    assert torch.equal(measured, ~torch.isnan(fast)) and measured.sum() > 0
    assert log_diff(fast[measured], ref[measured]) < TOL
    # the skip D x_t is part of the loss: the reference without it is a different measurement
    from rnnlab.engine.cells import get
    step = get("lru").reference_step(p)
    no_skip = reference.autograd_log_grad_norms(step, (net.h0,), net.x, p, net.y_target,
                                                burn_in, loss, max_lag)[""]
    assert log_diff(fast[measured], no_skip[measured]) > 1e-6


@pytest.mark.parametrize("r,max_phase", [(0.93, 2 * math.pi), (0.5, 0.0)])
def test_equal_radii_give_exact_powers(r, max_phase):
    _, _, traj = make(seed=3, hidden_size=6, input_size=4, output_size=3, batch_size=2,
                      seq_len=40, burn_in=5, r_min=r, r_max=r, max_phase=max_phase, **LRU)
    ratio = adjoint.log_grad_norms(traj, ratio=True)
    lag = torch.arange(40)[:, None] - torch.arange(40)[None, :]
    expected = (lag.double() * math.log(r))[..., None].expand_as(ratio)
    ok = ~torch.isnan(ratio)
    assert log_diff(ratio[ok], expected[ok]) < TOL


def test_equal_radii_float32_long_sequence():
    r = 0.999
    _, _, traj = make(seed=0, hidden_size=8, input_size=8, output_size=4, batch_size=1,
                      seq_len=3000, dtype=torch.float32, r_min=r, r_max=r, **LRU)
    prof = adjoint.pair_profile(traj)
    assert prof.ln_ratio["nonfinite"].sum() == 0
    assert (prof.ln_ratio["count"].sum(1) == prof.n_pairs).all()
    lag = np.arange(3000)
    err = np.abs(prof.ln_ratio["mean"][:, 0] - lag * math.log(r))
    assert (err <= 8 * np.finfo(np.float32).eps * np.maximum(lag, 1)).all(), err.max()


def spec(**model) -> RunSpec:
    return RunSpec.from_dict({
        "seed": 4,
        "model": {**LRU, "hidden_size": 6, "input_size": 3, "output_size": 4, **model},
        "data": {"seq_len": 14, "batch_size": 2, "burn_in": 6, "h0_std": 0.3},
        "measure": {"device": "cpu", "save_tensors": True, "progress": False,
                    "lyapunov": True, "jacobian": True, "max_lag": 9}})


def reference_of_saved(tensors: dict, max_lag) -> np.ndarray:
    """The batch mean of log10 ||dL_t/ds_k|| (T, T) by autograd from tensors.npz alone."""
    t = {k: torch.as_tensor(v) for k, v in tensors.items()}
    p = LRUParams(*(t[k] for k in ("nu", "theta", "gamma", "B_re", "B_im", "C_re", "C_im",
                                   "D")))
    ref = reference.cell_reference(p, t["x"], t["h0"], t["y_target"], max_lag=max_lag)
    return ref[""].mean(-1).numpy() / LN10


def test_measure_saves_tensors_that_reproduce_it():
    m = measure(spec(r_min=0.7, r_max=0.95))
    assert set(m.tensors) >= {"nu", "theta", "gamma", "B_re", "B_im", "C_re", "C_im", "D", "h0",
                              "x", "y_target", "log10_grad"}
    assert m.tensors["h0"].shape == (2, 12) and m.tensors["x"].shape == (2, 14, 3)
    ref = reference_of_saved(m.tensors, 9)
    both = np.isnan(ref) & np.isnan(m.tensors["log10_grad"])
    assert np.nan_to_num(np.abs(ref - m.tensors["log10_grad"]), nan=np.inf)[~both].max() < 1e-10
    modulus = np.exp(-np.exp(m.tensors["nu"]))
    assert m.theory["log_rho"] == pytest.approx(math.log(modulus.max()), abs=1e-15)
    assert np.allclose(m.tensors["gamma"], np.sqrt(1 - modulus ** 2), rtol=1e-14, atol=0)


def test_equal_radii_rate_theory_lyapunov_and_jacobian():
    r = 0.8
    m = measure(spec(r_min=r, r_max=r, normalize=False))
    assert abs(m.fit["decay_rate"] - math.log(r)) < 1e-10
    assert abs(m.theory["log_rho"] - math.log(r)) < 1e-12
    assert abs(m.theory["lyapunov_1"] - math.log(r)) < 1e-10
    lag = m.jacobian["lag"]
    assert np.abs(m.jacobian["log10_spec_mean"] - lag * math.log10(r)).max() < 1e-10
    assert (m.tensors["gamma"] == 1).all()


SMALL = ["model.hidden_size=4", "model.input_size=2", "model.output_size=3", "data.seq_len=8",
         "data.batch_size=2", "measure.progress=false", "measure.device=cpu"]


def test_command_line_runs_the_lru(tmp_path, decay_in_process):
    run = tmp_path / "lru"
    status, _, err = decay_in_process("model=lru", f"hydra.run.dir={run}", "model.r_min=0.6",
                                      "measure.save_tensors=true", "data.burn_in=3", *SMALL)
    assert status == 0, err
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed"
    assert record["params"]["model.cell"] == "lru" and record["params"]["model.r_min"] == 0.6
    assert record["params"]["model.normalize"] is True
    tensors = dict(np.load(run / "tensors.npz"))
    modulus = np.exp(-np.exp(tensors["nu"]))
    assert (modulus >= 0.6 - 1e-12).all() and (modulus <= 0.999 + 1e-12).all()
    assert record["theory"]["log_rho"] == pytest.approx(math.log(modulus.max()), abs=1e-15)
    ref = reference_of_saved(tensors, None)
    both = np.isnan(ref) & np.isnan(tensors["log10_grad"])
    assert np.nan_to_num(np.abs(ref - tensors["log10_grad"]), nan=np.inf)[~both].max() < 1e-10
    assert list(pd.read_parquet(run / "lags.parquet")["lag"]) == list(range(8))


@pytest.mark.parametrize("overrides,needle", [
    (["model=lru", "model.r_min=0.99", "model.r_max=0.9"], "model.r_min=0.99 > model.r_max=0.9"),
    (["model=lru", "model.r_max=1.0"], "model.r_max=1.0 is not allowed"),
    (["model=lru", "model.r_min=0"], "model.r_min=0.0 is not allowed"),
    (["model=lru", "model.max_phase=-1"], "model.max_phase=-1.0 is not allowed"),
    (["model.r_min=0.5"], "unknown key 'model.r_min' in this configuration: it is a key of "
                          "model=lru"),
    (["model=gru", "model.normalize=true"], "unknown key 'model.normalize' in this "
                                            "configuration: it is a key of model=lru"),
    (["model=lru", "measure.weights=redrawn"], "measure.weights='redrawn' with model.cell='lru'"),
    (["model=lru", "measure.weight_grad=true"], "measure.weight_grad=true with model.cell='lru'"),
    (["model=lru", "model.bias_std=0.1"], "model.bias_std=0.1 with model.cell='lru'"),
    (["model=lru", "model.activation=tanh"], "model.activation='tanh' with model.cell='lru'"),
])
def test_bad_lru_input_is_one_line_before_any_directory(tmp_path, decay_in_process, overrides,
                                                        needle):
    run = tmp_path / "run"
    status, _, err = decay_in_process(f"hydra.run.dir={run}", *overrides, *SMALL)
    assert_refused(status, err, run, needle)


def test_lru_keys_default_and_stay_out_of_other_cells():
    m = ModelSpec(**LRU)
    assert (m.r_min, m.r_max, m.max_phase, m.normalize) == (0.9, 0.999, 2 * math.pi, True)
    assert ModelSpec().r_min is None  # an Elman run's hash and params are unchanged
    RunSpec(model=m).validate()
    for other in ("elman", "gru"):  # set in Python (or by a sweep's grid) on another cell
        with pytest.raises(ConfigError, match=rf"^model.r_min=0.5 with model.cell='{other}': "):
            RunSpec(model=ModelSpec(cell=other, r_min=0.5)).validate()
