"""``measure.weights=redrawn``: weights drawn afresh at every step (rnnlab.engine.redrawn).

- exact: every log10 ||dL_t/ds_k|| of a redrawn run (Elman tanh and relu, GRU, LSTM,
  minimalRNN, minGRU, minLSTM; burn-in and max_lag) equals the per-target autograd loop through
  the cell's reference step with step t's own weights (drawn here from the documented recipe:
  the run's draw at t = 0, the cell's draw from step_seed(seed, t) after) to 1e-10, float64; the
  largest Lyapunov exponent's tangent maps and the O(T) profile mode go through the same maps;
- the weights do change: a redrawn run differs from the fixed run with the same seed, and its
  step-0 state, readout and data are the fixed run's;
- step seeds are distinct across steps and seeds; the key is validated (one line), refuses
  weight_grad, and leaves the configuration hash of fixed runs unchanged.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rnnlab.checks import ConfigError
from rnnlab.engine import adjoint, cells, redrawn
from rnnlab.engine.reference import autograd_log_grad_norms
from rnnlab.measure.config import RunSpec
from rnnlab.measure.networks import draw, redrawn_weights

CASES = {
    "elman-tanh": dict(model=dict(activation="tanh", spectral_radius=1.3)),
    "elman-relu": dict(model=dict(activation="relu", spectral_radius=0.9)),
    "gru": dict(model=dict(cell="gru")),
    "lstm": dict(model=dict(cell="lstm", gate_bias=1.0)),
    "minimal": dict(model=dict(cell="minimal", gain=3.0, spectral_radius=None)),
    **{c: dict(model=dict(cell=c, activation="linear", init="pytorch"))
       for c in ("mingru", "minlstm")},
}


def spec_of(case: str, burn_in=3, T=9, **measure) -> RunSpec:
    cfg = {"seed": 4, "model": {"hidden_size": 5, "input_size": 3, "output_size": 4,
                                **CASES[case]["model"]},
           "data": {"seq_len": T, "batch_size": 2, "burn_in": burn_in},
           "measure": {"weights": "redrawn", "progress": False, **measure}}
    return RunSpec.from_dict(cfg).validate()


def redrawn_trajectory(spec: RunSpec):
    m, d = spec.model, spec.data
    net = draw(m, d, spec.seed)
    at = redrawn_weights(m, d, spec.seed, net.params, "cpu", torch.float64)
    rec = redrawn.record(cells.get(m.cell), at, net.x, net.h0, d.burn_in)
    return net, adjoint.trajectory(rec, net.params, net.y_target, m.loss)


def step_params(spec: RunSpec, net, t: int):
    """Step t's weights by the documented recipe, written out independently of the engine."""
    cell = cells.get(spec.model.cell)
    if t == 0:
        return net.params
    g = torch.Generator().manual_seed(redrawn.step_seed(spec.seed, t))
    return cell.params(**cell.draw(spec.model, spec.data.seq_len, g), V=net.params.V,
                       c=net.params.c)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("max_lag", [None, 4])
def test_redrawn_matches_autograd_with_each_steps_weights(case, max_lag):
    spec = spec_of(case)
    net, traj = redrawn_trajectory(spec)
    got = adjoint.pair_profile(traj, max_lag, keep_matrix=True).log10_grad

    cell = cells.get(spec.model.cell)
    N, parts = spec.model.hidden_size, cell.state_parts
    t = iter(range(spec.data.burn_in + spec.data.seq_len))

    def step(x_t, s):
        return cell.reference_step(step_params(spec, net, next(t)))(x_t, s)

    state0 = tuple(net.h0[:, i * N:(i + 1) * N] for i in range(len(parts)))
    ref = autograd_log_grad_norms(step, state0, net.x, net.params, net.y_target,
                                  spec.data.burn_in, spec.model.loss, max_lag,
                                  c_index=tuple(range(1, len(parts))))[""]
    ref = (ref / math.log(10)).mean(-1).numpy()
    ok = np.isfinite(ref)
    assert np.array_equal(ok, np.isfinite(got))
    assert np.abs(got[ok] - ref[ok]).max() < 1e-10


def test_the_weights_change_and_step_zero_is_the_fixed_runs():
    from rnnlab.measure.run import measure

    spec = spec_of("elman-tanh", burn_in=0, T=12)
    fixed = RunSpec.from_dict({**{"seed": spec.seed}, "model": vars(spec.model),
                               "data": vars(spec.data),
                               "measure": {**vars(spec.measure), "weights": "fixed"}}).validate()
    net, traj = redrawn_trajectory(spec)
    fixed_traj = adjoint.forward(net.params, net.x, net.h0, net.y_target, loss=spec.model.loss)
    # step 0: the run's own weights (to rounding: the one-step forward orders its sums otherwise)
    assert torch.allclose(traj.u[0], fixed_traj.u[0], rtol=0, atol=1e-14)
    assert not torch.allclose(traj.u[1:], fixed_traj.u[1:])
    assert measure(spec).fit["decay_rate"] != measure(fixed).fit["decay_rate"]


def test_lyapunov_and_profile_mode_run_on_redrawn_maps():
    from rnnlab.measure.run import measure

    spec = spec_of("gru", burn_in=0, T=30, lyapunov=True)
    out = measure(spec)
    assert math.isfinite(out.theory["lyapunov_1"]) and math.isfinite(out.fit["decay_rate"])
    prof = measure(spec_of("gru", burn_in=0, T=30, mode="profile"))
    # the profile's last-loss row is the pairs matrix's last row
    pairs = measure(spec_of("gru", burn_in=0, T=30, save_tensors=True))
    last = pairs.tensors["log10_grad"][-1, ::-1]
    assert np.allclose(prof.lags["log10_grad_mean"], last[:len(prof.lags["lag"])], atol=1e-12)


def test_step_seeds_are_distinct():
    seeds = {redrawn.step_seed(s, t) for s in range(5) for t in range(200)}
    assert len(seeds) == 1000


def test_key_is_checked_and_fixed_hashes_do_not_move():
    with pytest.raises(ConfigError, match="measure.weights='annealed'"):
        RunSpec.from_dict({"measure": {"weights": "annealed"}}).validate()
    with pytest.raises(ConfigError, match="weight_grad=true with measure.weights='redrawn'"):
        RunSpec.from_dict({"measure": {"weights": "redrawn", "weight_grad": True}}).validate()
    fixed = RunSpec().config_hash()
    assert RunSpec.from_dict({"measure": {"weights": "fixed"}}).config_hash() == fixed
    assert RunSpec.from_dict({"measure": {"weights": "redrawn"}}).config_hash() != fixed
