"""The RG-LRU (De et al. 2024, arXiv:2402.19427; ``model=rglru``, ``arch=rglru``) in the exact
engine and the training app, float64:

- the hand-written diagonal step maps equal those derived by torch.func from the cell's step
  (``rnnlab.engine.derived``) to 1e-12, with one head and with block-diagonal gates: J_k =
  diag(a_k), and a stack's input maps dh_k/dx_k (the cotangent of ``vjp(need_input)``, the
  tangent of ``jvp(Q, Q_in)``);
- every ln ||dL_t/dh_k|| against a per-target autograd loop through the cell's reference step
  (``reference.cell_reference``) < 1e-10 in log10, with burn-in, max_lag and every loss; two
  RG-LRU layers stacked through the seam against autograd on the two steps;
- ||dh_{T-1}/dh_{T-1-l}||_2 from the engine (``jacobian_norms``) equals max_i prod_s a_{i,s} with
  a = a_0^(8 s(W_a U x + b_a)) recomputed from the inputs and the weights, every lag, to 1e-12 in
  ln, and the Frobenius norm the root of the sum of the squared products;
- the trainable module's sequence forward equals its step loop and the engine's recurrence on
  its ``engine_params`` (block-diagonal gates unfolded right) to 1e-12, a sequence in two chunks
  equals it whole, its init draws a_0^2 in [0.9^2, 0.999^2] and zero biases;
  ``model.bound_normaliser`` leaves every forward value bit-identical and changes only the
  gradient, which is capped at 1000 for sqrt(v) (exactly 1/(2 sqrt v) above the cap);
- ``rnnlab.theory.rglru_log_keep`` equals scipy's adaptive ``quad`` to 1e-10 over scales 0.1 to
  20 and nonzero means, and is c ln a_0 / 2 exactly at mean 0;
- theory against measurement over n = 20 networks (N = 16, D = 8, input_std = 1.5, B = 8,
  T = 1000): the mean of (measured - theory) lies within t_{0.99865, n-1} = 3.45 standard errors
  of 0, the standard error from the spread over the networks, for two estimators (as the minGRU's
  test): the slowest unit's measured mean ln a_{i*} (i* chosen by the theory; unbiased), and the
  least-squares slope of the batch mean of ln ||dh_{T-1}/dh_{T-1-l}||_2 over T/2 <= l <= T (a
  max over units of noisy sums, so possibly biased; measured by simulating that estimator on
  2000 networks of this shape (numpy, slope minus max_i E[ln a_i]): -1.0e-5 +- 0.7e-5
  nats/step, a fifth of the 20-network standard error, 4.5e-5). Seeds 0..11: z from -2.1 to
  +2.2. The same data reject a wrong theory, ln max_i a_0,i (the ring variable read as the
  decay, as for the LRU's |lambda|): z from -4.8 to -7.7;
- ``decay.py model=rglru`` writes run.json with the theory's ``diag_rate``; ``train.py
  arch=rglru`` trains on temporal order (T = 10, 20 updates) through the command line's config
  path, model.pt reloads and scores exactly the run's reported test errors, and the run's initial
  decay rate is the engine's on ``engine_params``; bad input (heads not dividing N, a non-bool
  bound_normaliser, a bias, the weight gradient by lag or the sensitivity, another activation or
  init) is one line, exit 2, no run directory.
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
    assert_stack_matches_autograd,
    assert_tiny_run_reloads,
)
from scipy import integrate
from scipy.stats import t as student_t
from test_derived import hand_jacobian

from rnnlab import theory as th
from rnnlab.engine import adjoint, cells
from rnnlab.engine.cells import rglru
from rnnlab.measure.config import DataSpec, ModelSpec
from rnnlab.measure.networks import draw

TOL = 1e-10 * math.log(10)  # 1e-10 in log10, compared in natural log
EXACT = 1e-12

pytestmark = pytest.mark.usefixtures("one_thread")


def network(T=9, B=3, burn_in=2, seed=1, N=6, D=3, C=4, heads=1, **data):
    model = ModelSpec(cell="rglru", activation="linear", init="ring", hidden_size=N,
                      input_size=D, output_size=C, heads=heads)
    return draw(model, DataSpec(seq_len=T, batch_size=B, burn_in=burn_in, **data), seed), model


def log_factors(p, x):
    """ln a (B, T, N) of every step, from the inputs x (B, T, D) and the weights alone."""
    r = torch.sigmoid(x @ p.U.T @ p.W_a.T + p.b_a)
    return 8 * r * torch.log(torch.sigmoid(-p.Lam))


# --------------------------------------------------------------------------------------------
# the step maps
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("heads", [1, 3])
def test_hand_maps_equal_derived_maps(heads):
    net, _ = network(h0_std=0.5, input_std=1.4, heads=heads)
    p = net.params
    if heads == 3:  # block-diagonal: nothing outside the 2 x 2 blocks
        mask = torch.block_diag(*[torch.ones(2, 2)] * 3) == 0
        assert (p.W_a[mask] == 0).all() and (p.W_x[mask] == 0).all() and (p.W_a != 0).sum() == 12
    # nonzero biases, as after training (the input maps' bias terms checked too)
    gen = torch.Generator().manual_seed(0)
    p = type(p)(**{**p.tensors(), "b_a": torch.randn(6, dtype=torch.float64, generator=gen),
                   "b_x": torch.randn(6, dtype=torch.float64, generator=gen)})
    c = cells.get("rglru")
    hand = c.forward(p, net.x, net.h0, 2)
    auto = c.forward(p, net.x, net.h0, 2, jacobians="derived")
    assert (hand.u - auto.u).abs().max().item() < EXACT
    layer, derived_layer = hand.maps.layers[0], auto.maps.layers[0]
    B, N, D = net.x.shape[0], p.hidden_size, net.x.shape[-1]
    a = torch.exp(log_factors(p, net.x[:, 2:])).transpose(0, 1)
    for k in range(net.y_target.shape[1]):
        J, J_x = derived_layer.jacobian(k), derived_layer.input_jacobian(k)
        assert (J - hand_jacobian(hand.maps, k, N, B)).abs().max().item() < EXACT
        assert (J - torch.diag_embed(a[k])).abs().max().item() < EXACT  # diag(a_k)
        E = torch.eye(N, dtype=torch.float64)[:, None, :].expand(N, B, N)
        _, g_x = layer.vjp(k, E.clone(), need_input=True)
        assert (g_x.transpose(0, 1) - J_x).abs().max().item() < EXACT
        Q = torch.randn(B, N, 2, dtype=torch.float64, generator=gen)
        Q_in = torch.randn(B, D, 2, dtype=torch.float64, generator=gen)
        assert (layer.jvp(k, Q, Q_in) - (J @ Q + J_x @ Q_in)).abs().max().item() < EXACT
        assert (layer.jvp(k, Q) - J @ Q).abs().max().item() < EXACT


@pytest.mark.parametrize("loss,max_lag,burn_in,heads", [
    ("mse", None, 0, 1), ("xent", 5, 4, 2), ("mse_linear", None, 3, 7)])
def test_measurement_matches_autograd(loss, max_lag, burn_in, heads):
    net, _ = network(T=16, B=3, burn_in=burn_in, N=14, D=4, C=5, heads=heads, h0_std=0.5,
                     input_std=1.3)
    assert_cell_matches_autograd(net, burn_in, loss, max_lag)


def test_a_stack_through_the_seam_matches_autograd():
    """Two RG-LRU layers: the input cotangents carry the gradient down."""
    low, _ = network(T=12, B=2, burn_in=0, N=4, D=3, seed=3)
    high, _ = network(T=12, B=2, burn_in=0, N=6, D=4, C=3, seed=4, heads=2)
    assert_stack_matches_autograd(low.params, high.params, low.x, high.y_target,
                                  (4, 6))


def test_jacobian_norm_is_the_slowest_units_product():
    T = 60
    net, _ = network(T=T, B=3, burn_in=0, N=6, D=3, input_std=2.0)
    traj = adjoint.forward(net.params, net.x, net.h0, net.y_target)
    norms = adjoint.jacobian_norms(traj, T)
    ln_a = log_factors(net.params, net.x).transpose(0, 1)  # (T, B, N)
    # ln prod_{s=T-l..T-1} a_s, l = 0..T (the empty product at l = 0)
    tail = torch.cat([torch.zeros(1, *ln_a.shape[1:], dtype=torch.float64),
                      torch.cumsum(ln_a.flip(0), 0)])
    assert (norms["ln_spec"] - tail.max(-1).values).abs().max().item() < EXACT
    assert (norms["ln_frob"] - 0.5 * torch.logsumexp(2 * tail, -1)).abs().max().item() < EXACT


# --------------------------------------------------------------------------------------------
# the trainable module
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("heads", [1, 2])
def test_module_sequence_equals_steps_and_engine(heads):
    torch.manual_seed(2)
    module = cells.get("rglru").module(4, 6, {"heads": heads}, torch.float64)
    a0 = torch.sigmoid(-module.a_param.detach())
    assert ((a0 ** 2 >= 0.9 ** 2) & (a0 ** 2 <= 0.999 ** 2)).all()
    assert not module.a_gate.b.any() and not module.input_gate.b.any()
    assert module.a_gate.w.shape == (heads, 6 // heads, 6 // heads)
    with torch.no_grad():  # nonzero biases, as after training
        module.a_gate.b.normal_()
        module.input_gate.b.normal_()
    head = torch.nn.Linear(6, 3, dtype=torch.float64)
    x = 2 * torch.randn(3, 200, 4, dtype=torch.float64)
    whole, last = module(x)
    state, seq = module.init_state(3), []
    for t in range(200):
        state = module.step(x[:, t], state)
        seq.append(state[0])
    seq = torch.stack(seq, 1)
    assert (whole - seq).abs().max().item() < EXACT
    assert (last[0] - seq[:, -1]).abs().max().item() < EXACT
    p = module.engine_params(head)
    (engine,), _ = cells.get("rglru").layer_forward(p, x.transpose(0, 1),
                                                    torch.zeros(3, 6, dtype=torch.float64))
    assert (engine.transpose(0, 1) - seq.detach()).abs().max().item() < EXACT
    first, mid = module(x[:, :80])
    rest, last2 = module(x[:, 80:], mid)
    assert (torch.cat([first, rest], 1) - whole).abs().max().item() < EXACT
    assert (last2 - last).abs().max().item() < EXACT
    with pytest.raises(ValueError, match=r"h0 has shape \(3, 6\); .* \(1, batch, hidden_size\)"):
        module(x, torch.zeros(3, 6, dtype=torch.float64))


def test_bound_normaliser_changes_the_backward_only():
    v = torch.tensor([1e-10, 2.5e-7, 0.25, 0.81], dtype=torch.float64, requires_grad=True)
    (g_bound,) = torch.autograd.grad(rglru.BoundedSqrt.apply(v).sum(), v)
    assert torch.equal(rglru.BoundedSqrt.apply(v), torch.sqrt(v))
    want = torch.tensor([1000.0, 1000.0, 1.0, 1 / 1.8], dtype=torch.float64)
    assert (g_bound - want).abs().max().item() < EXACT
    # a module whose slowest unit has a_0 = 1 - 1e-9: 1 - a^2 below the cap at r ~ 1/8
    torch.manual_seed(5)
    bounded = rglru.RGLRU(3, 4, dtype=torch.float64)
    exact = rglru.RGLRU(3, 4, bound_normaliser=False, dtype=torch.float64)
    with torch.no_grad():
        bounded.a_param[0] = math.log(1 / (1 - 1e-9) - 1)
    exact.load_state_dict(bounded.state_dict())
    x = torch.randn(2, 30, 3, dtype=torch.float64)
    h_b, h_e = bounded(x)[0], exact(x)[0]
    assert torch.equal(h_b, h_e)  # the same forward, bit for bit
    g_b = torch.autograd.grad(h_b.sum(), bounded.a_gate.w)[0]
    g_e = torch.autograd.grad(h_e.sum(), exact.a_gate.w)[0]
    # the other units' gradients agree (their 1 - a^2 is above the cap); unit 0's (column 0 of
    # the gate's weights) is smaller where its derivative of sqrt is capped
    assert (g_b[..., 1:] - g_e[..., 1:]).abs().max() < EXACT * g_e.abs().max()
    assert (g_e[..., 0].abs() > 2 * g_b[..., 0].abs()).all()


# --------------------------------------------------------------------------------------------
# theory
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("s,mean", [(0.1, 0.0), (0.6, 0.3), (2.0, -1.0), (8.0, 0.0),
                                    (20.0, 2.0)])
def test_rglru_quadrature(s, mean):
    def f(z):
        return math.exp(-z * z / 2) / math.sqrt(2 * math.pi) / (1 + math.exp(-(mean + s * z)))

    log_a0 = math.log(0.95)
    want = 8 * log_a0 * integrate.quad(f, -14, 14, points=[-mean / s], epsabs=1e-14,
                                       limit=400)[0]
    assert th.rglru_log_keep(log_a0, s, mean) == pytest.approx(want, abs=1e-10)
    assert th.rglru_log_keep(log_a0, s) == pytest.approx(4 * log_a0, abs=1e-14)
    both = th.rglru_log_keep([log_a0, 2 * log_a0], s, mean)
    assert both.shape == (2,) and both[1] == pytest.approx(2 * both[0], rel=1e-14)


N_NETWORKS = 20
THEORY = dict(N=16, D=8, T=1000, B=8, input_std=1.5)


def diag_rate_checks(seed: int) -> tuple[list[Check], np.ndarray]:
    """Measured minus theory over ``N_NETWORKS`` networks (seeds seed * n .. seed * n + n - 1)
    for the slowest unit's mean ln a and the long-lag slope (module docstring); each within
    t_{0.99865, n-1} standard errors of 0, and a wrong theory outside them. Also the z-scores."""
    n, T = N_NETWORKS, THEORY["T"]
    lags = np.arange(T + 1)
    far = lags >= T // 2
    rows = []
    for j in range(n):
        net, model = network(T=T, B=THEORY["B"], burn_in=0, seed=seed * n + j, N=THEORY["N"],
                             D=THEORY["D"], C=2, input_std=THEORY["input_std"])
        p = net.params
        rec = cells.get("rglru").forward(p, net.x, net.h0)
        traj = adjoint.trajectory(rec, p, net.y_target, "mse")
        ln = adjoint.jacobian_norms(traj, T)["ln_spec"].mean(1).numpy()
        slope = np.polyfit(lags[far], ln[far], 1)[0]
        rates = rglru.unit_rates(p, THEORY["input_std"])
        slowest = torch.log(rec.maps.layers[0].a[..., int(rates.argmax())]).mean().item()
        theory = cells.get("rglru").theory(p, model, DataSpec(input_std=THEORY["input_std"]))
        assert theory["diag_rate"] == rates.max()
        wrong = p.log_a0.max().item()  # ln max a_0: the ring variable read as the decay
        rows.append((slowest - rates.max(), slope - rates.max(), slope - wrong))
    d = np.array(rows)
    mean, se = d.mean(0), d.std(0, ddof=1) / math.sqrt(n)
    t = student_t.ppf(1 - 0.0027 / 2, n - 1)
    return [Check("rglru: slowest unit's mean ln a - theory", abs(mean[0]), t * se[0]),
            Check("rglru: long-lag slope - theory", abs(mean[1]), t * se[1]),
            Check("rglru: a wrong theory is rejected (t SE - |slope - wrong|)",
                  t * se[2] - abs(mean[2]), 0.0)], mean / se


def test_theory_rate_matches_the_measured_long_lag_rate():
    assert_checks(diag_rate_checks(seed=0)[0])


# --------------------------------------------------------------------------------------------
# the command lines
# --------------------------------------------------------------------------------------------
SMALL = ["model.hidden_size=4", "model.input_size=2", "model.output_size=3", "data.seq_len=8",
         "data.batch_size=2", "measure.progress=false", "measure.device=cpu"]


def test_decay_command_line(tmp_path, decay_in_process):
    run = tmp_path / "rglru"
    status, _, err = decay_in_process("model=rglru", f"hydra.run.dir={run}", "model.heads=2",
                                      "measure.save_tensors=true", "measure.jacobian=true",
                                      "data.input_std=0.7", *SMALL)
    assert status == 0, err
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed" and record["params"]["model.cell"] == "rglru"
    assert record["params"]["model.heads"] == 2
    tensors = dict(np.load(run / "tensors.npz"))
    assert tensors["W_a"].shape == (4, 4) and (tensors["W_a"][:2, 2:] == 0).all()
    a0 = 1 / (1 + np.exp(tensors["Lam"]))
    assert ((a0 >= 0.9) & (a0 <= 0.999)).all()
    s = 0.7 * np.linalg.norm(tensors["W_a"] @ tensors["U"], axis=1)
    assert record["theory"]["diag_rate"] == pytest.approx(
        th.rglru_log_keep(-np.logaddexp(0, tensors["Lam"]), s).max(), abs=1e-15)
    assert record["theory"]["diag_rate"] == pytest.approx(4 * np.log(a0.max()), abs=1e-14)
    assert list(pd.read_parquet(run / "lags.parquet")["lag"]) == list(range(8))


def test_train_command_line(tmp_path, train_in_process):
    run = tmp_path / "rglru"
    status, _, err = train_in_process("arch=rglru", f"hydra.run.dir={run}", "model.heads=2",
                                      *TINY_TRAIN)
    assert status == 0, err
    record, _ = assert_tiny_run_reloads(run, "RGLRU")
    assert record["params"]["cell"] == "rglru"
    assert record["params"]["init"] == "ring" and record["params"]["heads"] == 2
    assert record["params"]["bound_normaliser"] is True


@pytest.mark.parametrize("overrides,needle", [
    (["model.heads=3"], "model.heads=3 does not divide model.hidden_size=4"),
    (["model.heads=0"], "model.heads=0 is not allowed; it must be an integer >= 1"),
    (["model.bound_normaliser=maybe"], "model.bound_normaliser='maybe' is not allowed"),
    (["model.bias_std=0.1"], "model.bias_std=0.1 with model.cell='rglru': its gate biases "
                             "start at 0"),
    (["measure.weight_grad=true"], "measure.weight_grad=true with model.cell='rglru' is not "
                                   "supported: its gates see the input only"),
    (["measure.sensitivity=true"], "measure.sensitivity=true with model.cell='rglru' is not "
                                   "supported"),
    (["model.activation=tanh"], "model.activation='tanh' with model.cell='rglru'"),
    (["model.init=gaussian"], "model.init='gaussian' with model.cell='rglru' is not allowed"),
])
def test_bad_decay_input_is_one_line(tmp_path, decay_in_process, overrides, needle):
    run = tmp_path / "run"
    status, _, err = decay_in_process(f"hydra.run.dir={run}", "model=rglru", *overrides, *SMALL)
    assert_refused(status, err, run, needle)


def test_bad_train_input_is_one_line(tmp_path, train_in_process):
    run = tmp_path / "run"
    status, _, err = train_in_process(f"hydra.run.dir={run}", "arch=rglru", "model.heads=4",
                                      *TINY_TRAIN)
    assert_refused(status, err, run, "model.heads=4 does not divide model.hidden_size=6")
