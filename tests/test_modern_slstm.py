"""The sLSTM (Beck et al. 2024, arXiv:2405.04517; ``model=slstm``, ``arch=slstm``) in the exact
engine and the training app, float64, measured in the stabiliser-free state (h, c e^m, n e^m):

- the forget gate's bias is the authors' "powerlaw_blockdependent" (one block): 5 for unit 0 down
  to -7, the other gates' 0, R = 0 by default and U(-1/sqrt N, 1/sqrt N) with
  ``model.recurrent_init=uniform``; the module draws the same biases;
- the hand-written step maps (``SLSTMLayer``) equal those derived by torch.func from the
  reference step (``rnnlab.engine.derived``) to 1e-12: J_k, dh_k/dx_k (the cotangent of
  ``vjp(need_input)``), the tangent of ``jvp(Q, Q_in)``, the recurrent cotangent / tangent,
  with R = 0 and with R drawn; the weight gradient by lag (1e-10 in log10 norms and shares)
  and the sensitivity to R's gate blocks (1e-12 relative) on the hand maps equal those on the
  derived maps;
- with R = 0, dh_k/dh_{k-1} = 0 exactly (every entry == 0.0, hand and derived maps) and the
  (c^, n^) -> (c^, n^) block is diag s(f~_k) (1e-12);
- every ln ||dL_t/dh_k|| against a per-target autograd loop through the reference step
  (``reference.cell_reference``) < 1e-10 in log10, with burn-in, max_lag, several losses, R
  zero and drawn;
- the trainable module's stabilised (c, n, m) recursion and the engine's recurrence in the
  stabiliser-free coordinates on its ``engine_params`` give the same h to 1e-12 (T = 60, R
  drawn); a sequence in two chunks equals it whole;
- theory against measurement (``rate_checks``): over n = 20 networks (N = 16, D = 8,
  input_std = 1.5, B = 8, T = 1000, R = 0) the mean of (measured - theory) lies within
  t_{0.99865, n-1} = 3.45 standard errors of 0 (the standard error from the spread over the
  networks), for the slowest unit's mean ln s(f~) (the unit the theory picks; unbiased) and the
  long-lag slope of the batch mean of ln ||ds_{T-1}/ds_{T-1-l}||_2 over T/2 <= l <= T; a wrong
  theory (the forget gate at its bias alone, ln s(b_f), Jensen's gap left out) is rejected;
- ``decay.py model=slstm`` writes run.json with the theory's ``diag_rate``; ``train.py
  arch=slstm`` trains on temporal order (T = 10, 20 updates), model.pt reloads and scores the
  run's reported test errors; bad input (a recurrent init not allowed, a bias draw, a gate-bias
  shift, another activation or init) is one line, exit 2, no run directory.
"""
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import (
    TINY_TRAIN,
    Check,
    assert_cell_matches_autograd,
    assert_checks,
    assert_refused,
    assert_tiny_run_reloads,
)
from scipy.stats import t as student_t
from test_derived import hand_jacobian

from rnnlab import theory as th
from rnnlab.engine import adjoint, cells
from rnnlab.engine.cells import slstm
from rnnlab.engine.sensitivity import sensitivity
from rnnlab.engine.weightgrad import weight_grad_by_lag
from rnnlab.measure.config import DataSpec, ModelSpec
from rnnlab.measure.networks import draw

TOL = 1e-10 * math.log(10)  # 1e-10 in log10, compared in natural log
EXACT = 1e-12
RECURRENT = ("zeros", "uniform")

pytestmark = pytest.mark.usefixtures("one_thread")


def network(recurrent_init="zeros", T=9, B=3, burn_in=2, seed=1, N=5, D=3, C=4, **data):
    model = ModelSpec(cell="slstm", activation="tanh", init="xlstm", hidden_size=N,
                      input_size=D, output_size=C, recurrent_init=recurrent_init)
    return draw(model, DataSpec(seq_len=T, batch_size=B, burn_in=burn_in, **data), seed), model


# --------------------------------------------------------------------------------------------
# the init
# --------------------------------------------------------------------------------------------
def test_init_is_the_authors():
    b = slstm.forget_bias(16)
    assert b[0].item() == 5.0 and b[-1].item() == -7.0 and (b.diff() < 0).all()
    assert b[1].item() == pytest.approx(5 - 12 * (1 / 15) ** 0.3, abs=1e-15)
    net, _ = network(N=16, D=8)
    p = net.params
    assert (p.R == 0).all() and torch.equal(p.b[16:32], b)
    assert (p.b[:16] == 0).all() and (p.b[32:] == 0).all()
    assert p.W.std().item() == pytest.approx(math.sqrt(2 / 40), rel=0.15)
    drawn, _ = network("uniform", N=16, D=8)
    assert drawn.params.R.abs().max() <= 0.25 and drawn.params.R.abs().max() > 0.2
    torch.manual_seed(0)
    m = slstm.module(8, 16, {"recurrent_init": None}, torch.float64)
    assert (m.R == 0).all() and torch.equal(m.W.bias[16:32], b)


# --------------------------------------------------------------------------------------------
# the step maps
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("recurrent_init", RECURRENT)
def test_hand_maps_equal_derived_maps(recurrent_init):
    net, _ = network(recurrent_init, h0_std=0.3)
    c = cells.get("slstm")
    hand = c.forward(net.params, net.x, net.h0, 2)
    auto = c.forward(net.params, net.x, net.h0, 2, jacobians="derived")
    assert (hand.u - auto.u).abs().max().item() < EXACT
    layer, derived_layer = hand.maps.layers[0], auto.maps.layers[0]
    B, N, D = net.x.shape[0], net.params.hidden_size, net.x.shape[-1]
    S = 3 * N
    gen = torch.Generator().manual_seed(0)
    for k in range(net.y_target.shape[1]):
        J, J_x = derived_layer.jacobian(k), derived_layer.input_jacobian(k)
        assert (J - hand_jacobian(hand.maps, k, S, B)).abs().max().item() < EXACT
        E = torch.eye(S, dtype=torch.float64)[:, None, :].expand(S, B, S)
        _, g_x = layer.vjp(k, E.clone(), need_input=True)
        assert (g_x.transpose(0, 1) - J_x).abs().max().item() < EXACT
        Q = torch.randn(B, S, 2, dtype=torch.float64, generator=gen)
        Q_in = torch.randn(B, D, 2, dtype=torch.float64, generator=gen)
        assert (layer.jvp(k, Q, Q_in) - (J @ Q + J_x @ Q_in)).abs().max().item() < EXACT
        assert (layer.jvp(k, Q) - J @ Q).abs().max().item() < EXACT
        # the recurrent tangent / cotangent: J's h columns are those of R through them
        A = net.params.R @ Q[:, :N]
        tangent = layer.recurrent_tangent(k, A)
        assert (tangent - J[:, :, :N] @ Q[:, :N]).abs().max().item() < EXACT
        G = layer.recurrent_cotangent(k, E.clone())  # (S, B, 4N)
        assert ((G @ net.params.R).transpose(0, 1) - J[:, :, :N]).abs().max().item() < EXACT


def test_the_exact_zero_row_with_r_zero():
    net, _ = network("zeros", h0_std=0.3)
    c = cells.get("slstm")
    hand = c.forward(net.params, net.x, net.h0, 2)
    auto = c.forward(net.params, net.x, net.h0, 2, jacobians="derived")
    B, N = net.x.shape[0], net.params.hidden_size
    p = net.params
    for k in range(net.y_target.shape[1]):
        for J in (hand_jacobian(hand.maps, k, 3 * N, B), auto.maps.layers[0].jacobian(k)):
            assert (J[:, :, :N] == 0).all()  # dh_k/dh_{k-1} and d(c^, n^)_k/dh_{k-1}: exactly 0
            f = net.x[:, 2 + k] @ p.W[N:2 * N].T + p.b[N:2 * N]
            diag = torch.diag_embed(torch.sigmoid(f))
            for a, b in ((1, 1), (2, 2)):
                block = J[:, a * N:(a + 1) * N, b * N:(b + 1) * N]
                assert (block - diag).abs().max().item() < EXACT
            assert (J[:, N:2 * N, 2 * N:] == 0).all() and (J[:, 2 * N:, N:2 * N] == 0).all()


def test_weight_gradient_and_sensitivity_equal_the_derived_maps():
    """R drawn: the weight gradient by lag through ``recurrent_cotangent`` and the sensitivity
    through ``recurrent_tangent`` equal those of the derived maps."""
    net, _ = network("uniform", T=10, h0_std=0.3)
    c = cells.get("slstm")
    out = []
    for jac in ("cell", "derived"):
        rec = c.forward(net.params, net.x, net.h0, 2, jacobians=jac)
        out.append(weight_grad_by_lag(adjoint.trajectory(rec, net.params, net.y_target, "xent")))
    for key in ("log10_norm", "share_ge", "projection_share_ge", "log10_total_norm"):
        a, b = (torch.as_tensor(o[key]) for o in out)
        assert (a - b).abs().max().item() < 1e-10, key
    a, b = (sensitivity(net.params, net.x, net.h0, 2, jacobians=j) for j in ("cell", "derived"))
    assert [r["parameter"] for r in a] == [r["parameter"] for r in b] == [
        "R_i", "R_f", "R_z", "R_o"]
    for ra, rb in zip(a, b):
        assert math.isclose(ra["mean_sq_derivative"], rb["mean_sq_derivative"], rel_tol=1e-12)


@pytest.mark.parametrize("recurrent_init,loss,max_lag,burn_in", [
    ("zeros", "mse", None, 0), ("uniform", "xent", 5, 4), ("uniform", "mse_linear", None, 3)])
def test_measurement_matches_autograd(recurrent_init, loss, max_lag, burn_in):
    net, _ = network(recurrent_init, T=16, B=3, burn_in=burn_in, N=7, D=4, C=5, h0_std=0.3,
                     input_std=1.3)
    assert_cell_matches_autograd(net, burn_in, loss, max_lag)


# --------------------------------------------------------------------------------------------
# the trainable module
# --------------------------------------------------------------------------------------------
def test_stabilised_module_equals_the_stabiliser_free_engine():
    torch.manual_seed(2)
    module = slstm.module(4, 6, {"recurrent_init": "uniform"}, torch.float64)
    with torch.no_grad():
        module.W.weight.mul_(3)  # exponential input gates well away from 1
    head = torch.nn.Linear(6, 3, dtype=torch.float64)
    x = 2 * torch.randn(3, 60, 4, dtype=torch.float64)
    h, last = module(x)
    p = module.engine_params(head)
    zeros = torch.zeros(3, 6, dtype=torch.float64)
    (engine, c_hat, n_hat), _ = cells.get("slstm").layer_forward(
        p.W, p.R, p.b, x.transpose(0, 1), zeros, zeros, zeros)
    assert (engine.transpose(0, 1) - h.detach()).abs().max().item() < EXACT
    assert (last[0] - h[:, -1]).abs().max().item() == 0
    # the stabilised state is the same memory: c e^m = c^, n e^m = n^ (relative)
    state = module.init_state(3)
    for t in range(60):
        state = module.step(x[:, t], state)
    _, c, n, m = state
    assert ((n * torch.exp(m) - n_hat[-1]) / n_hat[-1]).abs().max().item() < EXACT
    assert ((c * torch.exp(m) - c_hat[-1]) / n_hat[-1]).abs().max().item() < EXACT
    first, mid = module(x[:, :25])
    rest, _ = module(x[:, 25:], mid)
    assert torch.isfinite(rest).all() and (first - h[:, :25]).abs().max().item() == 0
    with pytest.raises(ValueError, match=r"h0 has shape \(3, 6\); .* \(1, batch, hidden_size\)"):
        module(x, zeros)


# --------------------------------------------------------------------------------------------
# theory against measurement
# --------------------------------------------------------------------------------------------
N_NETWORKS = 20
THEORY = dict(N=16, D=8, T=1000, B=8, input_std=1.5)


def rate_checks(seed: int) -> list[Check]:
    """Measured minus theory over ``N_NETWORKS`` networks (module docstring)."""
    n, T, N = N_NETWORKS, THEORY["T"], THEORY["N"]
    lags = np.arange(T + 1)
    far = lags >= T // 2
    rows = []
    for j in range(n):
        net, model = network(T=T, B=THEORY["B"], burn_in=0, seed=seed * n + j, N=N,
                             D=THEORY["D"], C=2, input_std=THEORY["input_std"])
        p = net.params
        rec = cells.get("slstm").forward(p, net.x, net.h0)
        traj = adjoint.trajectory(rec, p, net.y_target, "mse")
        ln = adjoint.jacobian_norms(traj, T)["ln_spec"].mean(1).numpy()
        slope = np.polyfit(lags[far], ln[far], 1)[0]
        W_f, b_f = p.W[N:2 * N].numpy(), p.b[N:2 * N].numpy()
        rates = th.mingru_log_keep(THEORY["input_std"] * np.linalg.norm(W_f, axis=1), -b_f)
        theory = cells.get("slstm").theory(p, model, DataSpec(input_std=THEORY["input_std"]))
        assert theory["diag_rate"] == rates.max()
        slowest = torch.log(rec.maps.layers[0].sf[..., int(rates.argmax())]).mean().item()
        wrong = (-np.logaddexp(0.0, -b_f)).max()  # ln s(b_f): the gate at its mean input
        rows.append((slowest - rates.max(), slope - rates.max(), slope - wrong))
    d = np.array(rows)
    mean, se = d.mean(0), d.std(0, ddof=1) / math.sqrt(n)
    t = student_t.ppf(1 - 0.0027 / 2, n - 1)
    return [Check("slstm: slowest unit's mean ln s(f~) - theory", abs(mean[0]), t * se[0]),
            Check("slstm: long-lag slope - theory", abs(mean[1]), t * se[1]),
            Check("slstm: a wrong theory is rejected (t SE - |slope - wrong|)",
                  t * se[2] - abs(mean[2]), 0.0)]


def test_theory_rate_matches_the_measured_long_lag_rate():
    assert_checks(rate_checks(seed=0))


# --------------------------------------------------------------------------------------------
# the command lines
# --------------------------------------------------------------------------------------------
SMALL = ["model.hidden_size=4", "model.input_size=2", "model.output_size=3", "data.seq_len=8",
         "data.batch_size=2", "measure.progress=false", "measure.device=cpu"]


def test_decay_command_line(tmp_path, decay_in_process):
    run = tmp_path / "slstm"
    status, _, err = decay_in_process("model=slstm", f"hydra.run.dir={run}",
                                      "measure.save_tensors=true", "measure.jacobian=true",
                                      "data.input_std=0.7", *SMALL)
    assert status == 0, err
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed" and record["params"]["model.cell"] == "slstm"
    tensors = dict(np.load(run / "tensors.npz"))
    assert tensors["R"].shape == (16, 4) and (tensors["R"] == 0).all()
    W_f, b_f = tensors["W"][4:8], tensors["b"][4:8]
    assert b_f[0] == 5.0
    assert record["theory"]["diag_rate"] == pytest.approx(
        th.mingru_log_keep(0.7 * np.linalg.norm(W_f, axis=1), -b_f).max(), abs=1e-15)
    assert list(pd.read_parquet(run / "lags.parquet")["lag"]) == list(range(8))


def test_train_command_line(tmp_path, train_in_process):
    run = tmp_path / "slstm"
    status, _, err = train_in_process("arch=slstm", f"hydra.run.dir={run}", *TINY_TRAIN)
    assert status == 0, err
    record, rnn = assert_tiny_run_reloads(run, "SLSTM")
    assert rnn.R.abs().max() > 0  # R starts at zero; training moved it
    assert record["params"]["cell"] == "slstm"
    assert record["params"]["recurrent_init"] == "zeros"
    assert math.isfinite(record["initial_decay_rate"])


@pytest.mark.parametrize("overrides,needle", [
    (["model.recurrent_init=orthogonal"], "model.recurrent_init='orthogonal' is not allowed"),
    (["model.bias_std=0.1"], "model.bias_std=0.1 with model.cell='slstm': its biases are"),
    (["model.gate_bias=1"], "model.gate_bias=1.0 with model.cell='slstm'"),
    (["model.activation=relu"], "model.activation='relu' with model.cell='slstm': this cell's "
                                "nonlinearities are fixed"),
    (["model.init=gaussian"], "model.init='gaussian' with model.cell='slstm' is not allowed"),
])
def test_bad_decay_input_is_one_line(tmp_path, decay_in_process, overrides, needle):
    run = tmp_path / "run"
    status, _, err = decay_in_process(f"hydra.run.dir={run}", "model=slstm", *overrides, *SMALL)
    assert_refused(status, err, run, needle)
