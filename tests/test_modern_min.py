"""minGRU and minLSTM (Feng et al. 2024, arXiv:2410.01201; ``model=mingru``, ``model=minlstm``,
``arch=mingru``, ``arch=minlstm``) in the exact engine and the training app, float64:

- the hand-written diagonal step maps equal those derived by torch.func from each cell's step
  (``rnnlab.engine.derived``) to 1e-12: J_k = diag(1 - z_k) resp. diag(f'_k), and a stack's
  input maps dh_k/dx_k (the cotangent of ``vjp(need_input)``, the tangent of ``jvp(Q, Q_in)``);
- every ln ||dL_t/dh_k|| against a per-target autograd loop through the cell's reference step
  (``reference.cell_reference``) < 1e-10 in log10, with burn-in, max_lag and every loss; a
  minGRU on a minLSTM stacked through the seam against autograd on the two steps;
- ||dh_{T-1}/dh_{T-1-l}||_2 from the engine (``jacobian_norms``) equals max_i prod_s a_{i,s}
  with the gates recomputed from the inputs and the weights (a = 1 - s(W_z x) resp.
  f' = s(W_f x) / (s(W_f x) + s(W_i x))), every lag, to 1e-12 in ln, and the Frobenius norm
  the root of the sum of the squared products;
- the trainable module's parallel scan in log space equals its sequential step loop to 1e-12
  (states; the weights' gradient of a loss through each relative to its largest entry), a
  sequence run in two chunks (the second from the first's last state) equals it whole, and the
  engine's recurrence on its ``engine_params`` gives the same states;
- the quadratures of ``rnnlab.theory`` (``mingru_log_keep``, ``minlstm_log_keep``) equal scipy's
  adaptive ``quad`` / ``dblquad`` to 1e-10, over scales 0.1 to 20, nonzero means and
  correlations up to 1; a zero-mean minGRU unit's rate lies below -ln 2 and rises towards it
  as its scale falls (Jensen);
- theory against measurement (``diag_rate_checks``, re-run over 20 seeds in
  tests/test_false_failures.py): over n = 20 networks (N = 16, D = 8, input_std = 1.5, B = 8,
  T = 1000) the mean of (measured - theory) lies within t_{0.99865, n-1} = 3.45 standard errors
  of 0, the standard error from the spread over the networks. Two estimators:
  the slowest unit's measured mean log factor, mean over steps and batch of ln a_{i*} with
  i* = argmax_i E[ln a_i] chosen by the theory (unbiased: E = the theory's value exactly); and
  the long-lag rate, the least-squares slope of the batch mean of ln ||dh_{T-1}/dh_{T-1-l}||_2
  (the engine's Jacobian-product norm) against l over T/2 <= l <= T. The second is a max over
  units of noisy sums, so its expectation exceeds max_i E[ln a_i] (an upward finite-T bias that
  vanishes as the lag window moves out); measured by simulating this estimator on 2000 networks
  of the same shape (numpy, the slope of this estimator minus max_i E[ln a_i]): +4e-5 +- 1.1e-4
  (minGRU) and +0.2e-5 +- 0.9e-4 (minLSTM) nats/step, so |bias| < 3e-4, a quarter of the
  20-network standard error (1.1e-3, 0.9e-3). The same data reject a wrong
  theory, the rate of a "typical" unit (gates of the RMS norm) instead of the slowest one;
- ``decay.py model=mingru|minlstm`` writes run.json with the theory's ``diag_rate``; ``train.py
  arch=mingru|minlstm`` trains on temporal order (T = 10, 20 updates) through the command line's
  config path, model.pt reloads and scores exactly the run's reported test errors, and the
  run's initial decay rate is the engine's on ``engine_params``; bad input (a bias, a gate
  bias, the weight gradient by lag or the sensitivity, another activation or init, a scale
  key, the LSTM's h-only state, a recurrent init or ``model.orthogonal`` in training) is one
  line, exit 2, no run directory.
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
from rnnlab.engine.cells import mingru
from rnnlab.measure.config import DataSpec, ModelSpec
from rnnlab.measure.networks import draw

CELLS = ("mingru", "minlstm")
TOL = 1e-10 * math.log(10)  # 1e-10 in log10, compared in natural log
EXACT = 1e-12

pytestmark = pytest.mark.usefixtures("one_thread")


def network(cell, T=9, B=3, burn_in=2, seed=1, N=5, D=3, C=4, **data):
    model = ModelSpec(cell=cell, activation="linear", init="pytorch", hidden_size=N,
                      input_size=D, output_size=C)
    return draw(model, DataSpec(seq_len=T, batch_size=B, burn_in=burn_in, **data), seed), model


def log_factors(p, x):
    """ln a (B, T, N) of every step, from the inputs x (B, T, D) and the weights alone."""
    if p.cell == "mingru":
        return torch.log(1 - torch.sigmoid(x @ p.W_z.T))
    f, i = torch.sigmoid(x @ p.W_f.T), torch.sigmoid(x @ p.W_i.T)
    return torch.log(f / (f + i))


# --------------------------------------------------------------------------------------------
# the step maps
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cell", CELLS)
def test_hand_maps_equal_derived_maps(cell):
    net, _ = network(cell, h0_std=0.5)
    c = cells.get(cell)
    hand = c.forward(net.params, net.x, net.h0, 2)
    auto = c.forward(net.params, net.x, net.h0, 2, jacobians="derived")
    assert (hand.u - auto.u).abs().max().item() < EXACT
    layer, derived_layer = hand.maps.layers[0], auto.maps.layers[0]
    B, N, D = net.x.shape[0], net.params.hidden_size, net.x.shape[-1]
    a = torch.exp(log_factors(net.params, net.x[:, 2:])).transpose(0, 1)
    gen = torch.Generator().manual_seed(0)
    for k in range(net.y_target.shape[1]):
        J, J_x = derived_layer.jacobian(k), derived_layer.input_jacobian(k)
        assert (J - hand_jacobian(hand.maps, k, N, B)).abs().max().item() < EXACT
        assert (J - torch.diag_embed(a[k])).abs().max().item() < EXACT  # diagonal, 1 - z / f'
        E = torch.eye(N, dtype=torch.float64)[:, None, :].expand(N, B, N)
        _, g_x = layer.vjp(k, E.clone(), need_input=True)
        assert (g_x.transpose(0, 1) - J_x).abs().max().item() < EXACT
        Q = torch.randn(B, N, 2, dtype=torch.float64, generator=gen)
        Q_in = torch.randn(B, D, 2, dtype=torch.float64, generator=gen)
        assert (layer.jvp(k, Q, Q_in) - (J @ Q + J_x @ Q_in)).abs().max().item() < EXACT
        assert (layer.jvp(k, Q) - J @ Q).abs().max().item() < EXACT


@pytest.mark.parametrize("cell,loss,max_lag,burn_in", [
    ("mingru", "mse", None, 0), ("mingru", "xent", 5, 4), ("minlstm", "mse_linear", None, 3),
    ("minlstm", "xent", 6, 0)])
def test_measurement_matches_autograd(cell, loss, max_lag, burn_in):
    net, _ = network(cell, T=16, B=3, burn_in=burn_in, N=7, D=4, C=5, h0_std=0.5,
                     input_std=1.3)
    assert_cell_matches_autograd(net, burn_in, loss, max_lag)


def test_a_stack_through_the_seam_matches_autograd():
    """A minGRU layer on a minLSTM layer: the input cotangents carry the gradient down."""
    low, _ = network("minlstm", T=12, B=2, burn_in=0, N=4, D=3, seed=3)
    high, _ = network("mingru", T=12, B=2, burn_in=0, N=5, D=4, C=3, seed=4)
    assert_stack_matches_autograd(low.params, high.params, low.x, high.y_target,
                                  (4, 5))


@pytest.mark.parametrize("cell", CELLS)
def test_jacobian_norm_is_the_slowest_units_product(cell):
    T = 60
    net, _ = network(cell, T=T, B=3, burn_in=0, N=6, D=3, input_std=2.0)
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
@pytest.mark.parametrize("cell", CELLS)
def test_parallel_scan_equals_the_sequential_steps(cell):
    torch.manual_seed(2)
    module = cells.get(cell).module(4, 6, {"activation": "linear"}, torch.float64)
    head = torch.nn.Linear(6, 3, dtype=torch.float64)
    x = 2 * torch.randn(3, 200, 4, dtype=torch.float64)
    parallel, last = module(x)
    state, seq = module.init_state(3), []
    for t in range(200):
        state = module.step(x[:, t], state)
        seq.append(state[0])
    seq = torch.stack(seq, 1)
    assert (parallel - seq).abs().max().item() < EXACT
    assert (last[0] - seq[:, -1]).abs().max().item() < EXACT
    grads = [torch.autograd.grad((h ** 2).sum(), module.parameters()) for h in (parallel, seq)]
    # relative to the largest entry (~1e3 here: the states sum 200 steps of h^2)
    assert all((a - b).abs().max() < EXACT * b.abs().max() for a, b in zip(*grads))
    # the engine's recurrence on the module's weights (engine_params splits the rows right)
    p = module.engine_params(head)
    (engine,), _ = cells.get(cell).layer_forward(p, x.transpose(0, 1).detach(),
                                                 torch.zeros(3, 6, dtype=torch.float64))
    assert (engine.transpose(0, 1) - seq.detach()).abs().max().item() < EXACT
    # from a given state (torch.nn.RNN's h0): a sequence in two chunks is the whole
    first, mid = module(x[:, :80])
    rest, last2 = module(x[:, 80:], mid)
    assert (torch.cat([first, rest], 1) - parallel).abs().max().item() < EXACT
    assert (last2 - last).abs().max().item() < EXACT
    with pytest.raises(ValueError, match=r"h0 has shape \(3, 6\); .* \(1, batch, hidden_size\)"):
        module(x, torch.zeros(3, 6, dtype=torch.float64))


# --------------------------------------------------------------------------------------------
# theory
# --------------------------------------------------------------------------------------------
def _softplus(a):
    return np.logaddexp(0.0, a)


@pytest.mark.parametrize("s,mean", [(0.1, 0.0), (0.6, 0.3), (2.0, -1.0), (8.0, 0.0),
                                    (20.0, 2.0)])
def test_mingru_quadrature(s, mean):
    def f(z):
        return -_softplus(mean + s * z) * math.exp(-z * z / 2) / math.sqrt(2 * math.pi)

    want = integrate.quad(f, -14, 14, points=[-mean / s], epsabs=1e-14, limit=400)[0]
    assert th.mingru_log_keep(s, mean) == pytest.approx(want, abs=1e-10)
    # Jensen: softplus is convex, so at a zero mean a unit keeps at most half per step
    assert th.mingru_log_keep(s) < th.mingru_log_keep(s / 2) < -math.log(2)


@pytest.mark.parametrize("s_f,s_i,rho,m_f,m_i", [
    (0.5, 0.6, 0.1, 0.0, 0.0), (1.0, 1.0, 0.5, 0.5, -1.0), (2.0, 3.0, -0.3, 0.0, 0.0),
    (5.0, 4.0, 0.9, 0.0, 0.0), (0.6, 0.6, 1.0, 0.0, 0.0)])
def test_minlstm_quadrature(s_f, s_i, rho, m_f, m_i):
    r = math.sqrt(1 - rho * rho)

    def f(z2, z1):
        a, b = m_f + s_f * z1, m_i + s_i * (rho * z1 + r * z2)
        log_f = -_softplus(_softplus(-a) - _softplus(-b))
        return log_f * math.exp(-(z1 * z1 + z2 * z2) / 2) / (2 * math.pi)

    want = integrate.dblquad(f, -12, 12, -12, 12, epsabs=1e-13, epsrel=1e-13)[0]
    assert th.minlstm_log_keep(s_f, s_i, rho, m_f, m_i) == pytest.approx(want, abs=1e-10)
    both = th.minlstm_log_keep([s_f, s_i], [s_i, s_f], rho)  # broadcast, one row per unit
    assert both.shape == (2,) and both[0] == pytest.approx(th.minlstm_log_keep(s_f, s_i, rho),
                                                           abs=1e-15)


N_NETWORKS = 20
THEORY = dict(N=16, D=8, T=1000, B=8, input_std=1.5)


def diag_rate_checks(cell: str, seed: int) -> list[Check]:
    """Measured minus theory over ``N_NETWORKS`` networks (seeds seed * n .. seed * n + n - 1)
    for the slowest unit's mean log factor and the long-lag slope (module docstring); each
    within t_{0.99865, n-1} standard errors of 0, and a wrong theory outside them."""
    n, T = N_NETWORKS, THEORY["T"]
    lags = np.arange(T + 1)
    far = lags >= T // 2
    rows = []
    for j in range(n):
        net, model = network(cell, T=T, B=THEORY["B"], burn_in=0, seed=seed * n + j,
                             N=THEORY["N"], D=THEORY["D"], C=2, input_std=THEORY["input_std"])
        p = net.params
        rec = cells.get(cell).forward(p, net.x, net.h0)
        traj = adjoint.trajectory(rec, p, net.y_target, "mse")
        ln = adjoint.jacobian_norms(traj, T)["ln_spec"].mean(1).numpy()
        slope = np.polyfit(lags[far], ln[far], 1)[0]
        W = [mingru.numpy_rows(getattr(p, k)) for k in
             (("W_z",) if cell == "mingru" else ("W_f", "W_i"))]
        rates = th.diag_log_keep(cell, W, THEORY["input_std"])
        slowest = torch.log(rec.maps.layers[0].a[..., int(rates.argmax())]).mean().item()
        theory = cells.get(cell).theory(p, model, DataSpec(input_std=THEORY["input_std"]))
        assert theory["diag_rate"] == rates.max()
        # a wrong theory: the rate of a "typical unit", gates of the RMS norm (and independent)
        rms = [THEORY["input_std"] * np.sqrt((w ** 2).sum(1).mean()) for w in W]
        wrong = th.mingru_log_keep(*rms) if cell == "mingru" else th.minlstm_log_keep(*rms)
        rows.append((slowest - rates.max(), slope - rates.max(), slope - wrong))
    d = np.array(rows)
    mean, se = d.mean(0), d.std(0, ddof=1) / math.sqrt(n)
    t = student_t.ppf(1 - 0.0027 / 2, n - 1)
    return [Check(f"{cell}: slowest unit's mean ln a - theory", abs(mean[0]), t * se[0]),
            Check(f"{cell}: long-lag slope - theory", abs(mean[1]), t * se[1]),
            Check(f"{cell}: a wrong theory is rejected (t SE - |slope - wrong|)",
                  t * se[2] - abs(mean[2]), 0.0)]


@pytest.mark.parametrize("cell", CELLS)
def test_theory_rate_matches_the_measured_long_lag_rate(cell):
    assert_checks(diag_rate_checks(cell, seed=0))


# --------------------------------------------------------------------------------------------
# the command lines
# --------------------------------------------------------------------------------------------
SMALL = ["model.hidden_size=4", "model.input_size=2", "model.output_size=3", "data.seq_len=8",
         "data.batch_size=2", "measure.progress=false", "measure.device=cpu"]


@pytest.mark.parametrize("cell", CELLS)
def test_decay_command_line(tmp_path, decay_in_process, cell):
    run = tmp_path / cell
    status, _, err = decay_in_process(f"model={cell}", f"hydra.run.dir={run}",
                                      "measure.save_tensors=true", "measure.jacobian=true",
                                      "data.input_std=0.7", *SMALL)
    assert status == 0, err
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed" and record["params"]["model.cell"] == cell
    tensors = dict(np.load(run / "tensors.npz"))
    gate = "W_z" if cell == "mingru" else "W_f"
    assert tensors[gate].shape == (4, 2) and (np.abs(tensors[gate]) <= 1 / math.sqrt(2)).all()
    W = [tensors[k] for k in (("W_z",) if cell == "mingru" else ("W_f", "W_i"))]
    assert record["theory"]["diag_rate"] == pytest.approx(
        th.diag_log_keep(cell, W, 0.7).max(), abs=1e-15)
    assert list(pd.read_parquet(run / "lags.parquet")["lag"]) == list(range(8))


@pytest.mark.parametrize("cell", CELLS)
def test_train_command_line(tmp_path, train_in_process, cell):
    run = tmp_path / cell
    status, _, err = train_in_process(f"arch={cell}", f"hydra.run.dir={run}", *TINY_TRAIN)
    assert status == 0, err
    record, _ = assert_tiny_run_reloads(run, {"mingru": "MinGRU", "minlstm": "MinLSTM"}[cell])
    assert record["params"]["cell"] == cell
    assert record["params"]["activation"] == "linear" and record["params"]["init"] == "pytorch"


@pytest.mark.parametrize("overrides,needle", [
    (["model=mingru", "model.bias_std=0.1"],
     "model.bias_std=0.1 with model.cell='mingru': its linear layers have no bias"),
    (["model=minlstm", "model.gate_bias=1"],
     "model.gate_bias=1.0 with model.cell='minlstm': its linear layers have no bias"),
    (["model=mingru", "measure.weight_grad=true"],
     "measure.weight_grad=true with model.cell='mingru' is not supported: its gates see the "
     "input only"),
    (["model=minlstm", "measure.sensitivity=true"],
     "measure.sensitivity=true with model.cell='minlstm' is not supported"),
    (["model=mingru", "model.activation=tanh"], "model.activation='tanh' with model.cell="
                                                "'mingru': this cell's nonlinearities are fixed"),
    (["model=minlstm", "model.init=gaussian"],
     "model.init='gaussian' with model.cell='minlstm' is not allowed"),
    (["model=mingru", "model.spectral_radius=1.0"],
     "model.spectral_radius=1.0 with model.init='pytorch': this init takes no scale key"),
    (["model=minlstm", "measure.lstm_state=h"],
     "measure.lstm_state='h' with model.cell='minlstm'"),
])
def test_bad_decay_input_is_one_line(tmp_path, decay_in_process, overrides, needle):
    run = tmp_path / "run"
    status, _, err = decay_in_process(f"hydra.run.dir={run}", *overrides, *SMALL)
    assert_refused(status, err, run, needle)


@pytest.mark.parametrize("overrides,needle", [
    (["arch=mingru", "model.init=orthogonal"],
     "model.init='orthogonal' with model.cell='mingru' is not allowed"),
    (["arch=minlstm", "model.orthogonal=true"], "model.orthogonal=true with model.cell="
                                                "'minlstm'"),
])
def test_bad_train_input_is_one_line(tmp_path, train_in_process, overrides, needle):
    run = tmp_path / "run"
    status, _, err = train_in_process(f"hydra.run.dir={run}", *overrides, *TINY_TRAIN)
    assert_refused(status, err, run, needle)
