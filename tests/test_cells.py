"""Gated cells in the exact engine, and the cell seam that Elman now goes through.

- GRU, LSTM (state (h, c) jointly and c alone) and minimalRNN against a per-target autograd loop
  through torch.nn.GRUCell / LSTMCell (the minimalRNN's step written out): < 1e-10 in log10 in
  float64, with burn-in and max_lag, for the gaussian, pytorch and chrono inits;
- zero weight matrices, biases only: GRU ||dh_t/dh_k|| = s(b_z)^(t-k) and LSTM
  ||dc_t/dc_k|| = s(b_f)^(t-k) to 1e-12 (relative), and the fitted rate ln s(b) to 1e-12;
- float32 at T = 3000 for vanishing and exploding settings: every ratio finite;
- the Elman path through the seam is bit-identical to the pre-seam arithmetic, and the committed
  default sweep's numbers are reproduced (1e-11 nats/step: the CSV keeps 12 digits);
- Lyapunov exponents through the seam: Elman bit-identical to the Jacobian form; gated lambda_1
  equal to the engine's backward long-lag rate (0.01 nats/step, finite T);
- Jacobian-product norms of an LSTM against explicit products of torch.func Jacobians (1e-10);
- cell/key mismatches are one clear error naming both keys.

The gated lambda_1 against the backward rate is a function of a seed, re-run over 20 seeds by
tests/test_false_failures.py (docs/statistical-tests.md).
"""
import csv
import math
from pathlib import Path

import pytest
import torch
from conftest import Check, assert_checks, log_diff, make

from rnnlab.engine import adjoint as gradients
from rnnlab.engine import cells, reference
from rnnlab.engine.cells import gated
from rnnlab.engine.cells.gated import GatedParams
from rnnlab.engine.lyapunov import lyapunov_from_jacobians, lyapunov_from_maps
from rnnlab.measure.config import DataSpec, MeasureSpec, ModelSpec, RunSpec
from rnnlab.measure.run import measure

TOL = 1e-10 * math.log(10)  # 1e-10 in log10, compared in natural log
ROOT = Path(__file__).resolve().parents[1]

CASES = [
    dict(cell="gru", init="gaussian", spectral_radius=1.3, loss="mse", max_lag=None, burn_in=0),
    dict(cell="gru", init="pytorch", loss="xent", max_lag=6, burn_in=5),
    dict(cell="gru", init="chrono", loss="mse", max_lag=None, burn_in=3),
    dict(cell="lstm", init="orthogonal", spectral_radius=2.0, loss="mse", max_lag=None,
         burn_in=4),
    dict(cell="lstm", init="pytorch", loss="xent", max_lag=5, burn_in=0),
    dict(cell="lstm", init="chrono", loss="mse", max_lag=None, burn_in=2),
    dict(cell="minimal", init="gaussian", gain=3.0, spectral_radius=None, loss="mse",
         max_lag=None, burn_in=6),
    dict(cell="minimal", init="orthogonal", spectral_radius=0.7, loss="xent", max_lag=4,
         burn_in=0),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['cell']}-{c['init']}-{c['loss']}")
def test_cell_matches_autograd_through_torch_cells(case):
    case = dict(case)
    K = case.pop("max_lag")
    net, p, traj = make(seed=2, hidden_size=10, input_size=4, output_size=5, batch_size=3,
                        seq_len=16, bias_std=0.3, h0_std=0.5, gate_bias=0.5, **case)
    ref = reference.cell_reference(p, net.x, net.h0, net.y_target, case["burn_in"],
                                   case["loss"], K)
    fast = gradients.log_grad_norms(traj, K)
    measured = ~torch.isnan(ref[""])
    assert torch.equal(measured, ~torch.isnan(fast))
    assert log_diff(fast[measured], ref[""][measured]) < TOL
    if case["cell"] == "lstm":
        fast_c = gradients.log_grad_norms(traj, K, part="c")
        assert log_diff(fast_c[measured], ref["c"][measured]) < TOL
        diagonal = torch.stack([fast_c[t, t] for t in range(16)])
        assert torch.isneginf(diagonal).all()  # dL_t/dc_t = 0 by the state-to-state convention


def _zero_weights(cell, N=6, D=3, C=4, keep_bias=1.0):
    G = cells.get(cell).gates
    bias_ih = torch.zeros(G * N, dtype=torch.float64)
    bias_ih[N:2 * N] = keep_bias  # LSTM f and GRU z are both block 1
    g = torch.Generator().manual_seed(0)
    return GatedParams(cell, torch.zeros(G * N, D, dtype=torch.float64),
                             torch.zeros(G * N, N, dtype=torch.float64), bias_ih,
                             torch.zeros(G * N, dtype=torch.float64),
                             torch.randn(C, N, generator=g, dtype=torch.float64),
                             torch.randn(C, generator=g, dtype=torch.float64))


def _trajectory(p, T=50, B=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    N, D, C = p.hidden_size, p.weight_ih.shape[1], p.V.shape[0]
    S = 2 * N if p.cell == "lstm" else N
    x = torch.randn(B, T, D, generator=g, dtype=torch.float64)
    h0 = torch.randn(B, S, generator=g, dtype=torch.float64) * 0.5
    y = torch.nn.functional.one_hot(torch.randint(C, (B, T), generator=g), C).double()
    return gradients.forward(p, x, h0, y)


def test_gru_zero_weights_is_exact():
    """0.0062378454185215 = s(2)^40, recomputed from the closed form in float64."""
    traj = _trajectory(_zero_weights("gru", keep_bias=2.0))
    ratio = gradients.log_grad_norms(traj, ratio=True)
    assert math.isclose(math.exp(ratio[45, 5, 0].item()), 0.0062378454185215, rel_tol=1e-12)
    prof = gradients.pair_profile(traj)
    from rnnlab.engine.fit import fit_decay
    rate = fit_decay(prof.lag, prof.ln_ratio)["decay_rate"]
    assert abs(rate - math.log(torch.sigmoid(torch.tensor(2.0, dtype=torch.float64)).item())) \
        < 1e-12


def test_lstm_zero_weights_is_exact():
    """||dc_t/dc_k|| = s(b_f)^(t-k): with zero weights dL_t/dc_k = s(b_f)^(t-k-1) dL_t/dc_{t-1}
    elementwise, so the c part's ratio between lag 41 and lag 1 is s(1)^40 = 3.6148235981771e-06.
    """
    traj = _trajectory(_zero_weights("lstm", keep_bias=1.0))
    ln_c = gradients.log_grad_norms(traj, part="c")
    lag40 = (ln_c[48, 48 - 41] - ln_c[48, 48 - 1]).exp()
    assert torch.allclose(lag40, torch.full_like(lag40, 3.6148235981771e-06), rtol=1e-12, atol=0)
    steps = ln_c[49, :48] - ln_c[49, 1:49]  # one step of the c part at every lag >= 1
    assert (steps - math.log(torch.sigmoid(torch.tensor(1.0, dtype=torch.float64)))).abs().max() \
        < 1e-12


@pytest.mark.parametrize("cell,keys", [
    ("gru", dict(gate_bias=-6.0)),                      # vanishing: ~ -6 nats per step
    ("lstm", dict(gate_bias=-6.0)),
    ("minimal", dict(gain=12.0, spectral_radius=None)),   # exploding: chi > 1 (rate ~ +0.3)
    ("lstm", dict(init="orthogonal", spectral_radius=8.0, gate_bias=6.0)),
])
def test_float32_long_sequences_stay_finite(cell, keys, one_thread):
    net, p, traj = make(cell=cell, hidden_size=8, input_size=8, seq_len=3000, batch_size=1,
                        dtype=torch.float32, **keys)
    prof = gradients.pair_profile(traj, max_lag=2999)
    counts = prof.ln_ratio["count"].sum(1)
    assert (prof.ln_ratio["nonfinite"].sum() == 0) and (counts == prof.n_pairs).all()
    assert all(math.isfinite(v) for v in prof.ln_ratio["mean"].ravel())


def test_elman_through_the_seam_is_bit_identical():
    """The pre-seam inner loop (mul by phi', one GEMM with W, renormalise), written out here,
    gives exactly the seam's numbers."""
    net, p, traj = make(seed=4, activation="tanh", hidden_size=12, seq_len=30, batch_size=3,
                        spectral_radius=1.4)
    T, B, N = traj.shape
    D, S = traj.g_dir.clone(), torch.zeros(T, B, dtype=torch.float64)
    dphi, work = 1 - traj.u * traj.u, torch.empty_like(traj.g_dir)
    old = torch.full((T, T, B), math.nan, dtype=torch.float64)
    for k in range(T - 1, -1, -1):
        old[k:, k] = S[k:]
        if k == 0:
            continue
        torch.mul(D[k:], dphi[k], out=work[:T - k])
        torch.mm(work[:T - k].view(-1, N), p.W, out=D[k:].view(-1, N))
        n = torch.linalg.vector_norm(D[k:], dim=-1)
        S[k:] += torch.log(n)
        D[k:] /= n.unsqueeze(-1)
    new = gradients.log_grad_norms(traj, ratio=True)
    assert torch.equal(torch.nan_to_num(old, nan=7.0), torch.nan_to_num(new, nan=7.0))


@pytest.mark.parametrize("activation,rho,T", [("tanh", 1.5, 50), ("relu", 2.0, 100),
                                              ("relu", 0.5, 200)])
def test_committed_default_sweep_is_reproduced(activation, rho, T):
    rows = {(r["model.activation"], float(r["model.spectral_radius"])): r
            for r in csv.DictReader(open(ROOT / "results/default/summary.csv"))}
    spec = RunSpec(model=ModelSpec(activation=activation, spectral_radius=rho),
                   data=DataSpec(seq_len=T), measure=MeasureSpec(progress=False, device="cpu"))
    rate = measure(spec).fit["decay_rate"]
    assert abs(rate - float(rows[(activation, rho)][str(T)])) < 1e-11  # 12 digits in the CSV


def test_lyapunov_through_the_seam():
    net, p, traj = make(seed=1, activation="tanh", hidden_size=16, seq_len=80, batch_size=2,
                        spectral_radius=1.8)
    dphi = 1 - traj.u * traj.u
    a = lyapunov_from_jacobians(p.W, dphi, k=3, generator=torch.Generator().manual_seed(5))
    b = lyapunov_from_maps(traj.maps, 80, k=3, generator=torch.Generator().manual_seed(5),
                           batch=2, dtype=torch.float64)
    assert torch.equal(a, b)


def gated_lyapunov_checks(cell: str, seed: int):
    """lambda_1 (forward QR) and the slope of ln ||dL_{T-1}/ds_k|| at long lags are the same
    number for a long trajectory; 0.01 nats/step covers the finite-T transients (measured
    differences at seed 0: below 0.003; over 20 seeds see docs/statistical-tests.md)."""
    keys = dict(gain=2.5, spectral_radius=None) if cell != "lstm" else \
        dict(init="orthogonal", spectral_radius=3.0, gate_bias=1.0)
    net, p, traj = make(seed=seed, cell=cell, hidden_size=24, input_size=24, seq_len=1500,
                        batch_size=2, burn_in=200, **keys)
    lam = lyapunov_from_maps(traj.maps, 1500, k=1, transient=200, batch=2, dtype=torch.float64,
                             generator=torch.Generator().manual_seed(seed))
    ln_ratio, _, _ = gradients.loss_profiles(traj)
    lags = torch.arange(200, 1300, dtype=torch.float64)
    y = ln_ratio[200:1300].mean(1)
    slope = ((lags - lags.mean()) * (y - y.mean())).sum() / ((lags - lags.mean()) ** 2).sum()
    return [Check(f"{cell}: |lambda_1 - backward long-lag rate|",
                  abs(lam.mean().item() - slope.item()), 0.01)]


@pytest.mark.parametrize("cell", ["gru", "lstm", "minimal"])
def test_gated_lyapunov_equals_backward_rate(cell, one_thread):
    assert_checks(gated_lyapunov_checks(cell, seed=0))


def test_lstm_jacobian_norms_match_explicit_products():
    net, p, traj = make(seed=3, cell="lstm", init="pytorch", hidden_size=5, input_size=3,
                        seq_len=12, batch_size=2, h0_std=0.5)
    got = gradients.jacobian_norms(traj, max_lag=12)
    cell = gated.torch_cell(p)
    N, x = 5, net.x
    for b in range(2):
        s = net.h0[b]
        states = [s]
        for t in range(12):
            h, c = cell(x[b, t], (s[:N], s[N:]))
            s = torch.cat([h, c]).detach()
            states.append(s)
        M = torch.eye(2 * N, dtype=torch.float64)
        for lag in range(1, 13):
            t = 12 - lag  # the step from states[t] (s_{t-1}) to states[t+1] (s_t)

            def f(s_prev, t=t, b=b):
                h, c = cell(x[b, t], (s_prev[:N], s_prev[N:]))
                return torch.cat([h, c])

            M = M @ torch.func.jacrev(f)(states[t])
            ln_spec = torch.log(torch.linalg.matrix_norm(M, ord=2))
            assert abs(ln_spec - got["ln_spec"][lag, b]) < TOL


@pytest.mark.parametrize("keys,needle", [
    (dict(cell="lstm", activation="relu"), "model.activation='relu' with model.cell='lstm'"),
    (dict(cell="elman", gate_bias=1.0), "model.gate_bias=1.0 with model.cell='elman'"),
    (dict(cell="gru", gate_bias=math.inf), "model.gate_bias=inf"),
    (dict(cell="gru", gate_bias=math.nan), "model.gate_bias=nan"),
    (dict(cell="minimal", init="pytorch"), "model.init='pytorch' with model.cell='minimal'"),
    (dict(cell="gru", init="chrono", gain=1.0, spectral_radius=None), "model.gain=1.0 with"),
    (dict(cell="transformer"), "model.cell='transformer' is not allowed"),
])
def test_cell_key_mismatch_is_one_clear_error(keys, needle):
    with pytest.raises(ValueError) as err:
        ModelSpec(**keys).validate()
    assert needle in str(err.value) and "\n" not in str(err.value)
