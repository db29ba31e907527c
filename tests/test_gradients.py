"""The fast adjoint sweep equals the per-target autograd reference.

float64, every activation and loss, several shapes, with and without max_lag and burn-in:
max |log10 difference| < 1e-10 over every pair (t, k) and sample. The O(T) last-loss and
summed-loss profiles and the Jacobian-product norms are checked against autograd and explicit
products to the same tolerance.
"""
import math

import pytest
import torch
from conftest import log_diff, make

from rnnlab.engine import adjoint as gradients
from rnnlab.engine import reference
from rnnlab.engine.model import ElmanParams, hidden_states, losses, outputs

TOL = 1e-10 * math.log(10)  # 1e-10 in log10, compared in natural log


CASES = [
    dict(activation=a, hidden_size=N, input_size=D, output_size=C, batch_size=B, seq_len=T,
         max_lag=K, burn_in=bi, loss=loss)
    for a in ("tanh", "relu", "sigmoid", "linear")
    for (N, D, C, B, T, K, bi, loss) in [
        (8, 3, 4, 2, 15, None, 0, "mse"),
        (16, 16, 5, 3, 24, 6, 7, "mse"),
        (5, 2, 3, 1, 12, 0, 2, "xent"),
        (12, 4, 10, 2, 18, None, 5, "xent"),
    ]
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{v}" for v in c.values()))
def test_pairs_match_autograd(case):
    K, bi, loss = case.pop("max_lag"), case["burn_in"], case["loss"]
    net, p, traj = make(seed=3, spectral_radius=1.1, bias_std=0.2, h0_std=0.5, **case)
    fast = gradients.log_grad_norms(traj, K)
    ref = reference.reference_log_grad_norms(p, net.x, net.h0, net.y_target, bi, loss, K)
    measured = ~torch.isnan(ref)
    assert torch.equal(measured, ~torch.isnan(fast))
    T = case["seq_len"]
    expected = sum(min(t, T - 1 if K is None else K) + 1 for t in range(T)) * case["batch_size"]
    assert measured.sum() == expected
    assert log_diff(fast[measured], ref[measured]) < TOL


def test_pair_profile_matches_pairs():
    """The streamed per-lag moments equal mean and std computed from all pairs at once."""
    net, p, traj = make(seed=1, activation="tanh", hidden_size=10, seq_len=30, batch_size=4,
                        spectral_radius=1.3)
    full = gradients.log_grad_norms(traj)
    prof = gradients.pair_profile(traj, keep_matrix=True)
    T = 30
    for lag in (0, 1, 7, 29):
        vals = torch.stack([full[t, t - lag] for t in range(lag, T)])  # (pairs, B)
        per_sample = vals.mean(0)
        assert torch.allclose(torch.as_tensor(prof.ln_grad["mean"][lag]), per_sample, atol=1e-12)
        assert prof.ln_grad["count"][lag].sum() == vals.numel()
        M2 = ((vals - per_sample) ** 2).sum(0)
        assert torch.allclose(torch.as_tensor(prof.ln_grad["M2"][lag]), M2, atol=1e-10)
    matrix = torch.as_tensor(prof.log10_grad)
    assert torch.allclose(matrix.nan_to_num(), (full.mean(-1) / math.log(10)).nan_to_num(),
                          atol=1e-12)


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid", "linear"])
def test_loss_profiles_match_autograd(activation):
    net, p, traj = make(seed=2, activation=activation, hidden_size=9, input_size=4,
                        output_size=3, seq_len=20, batch_size=3, spectral_radius=1.1,
                        burn_in=3, h0_std=1.0)
    ln_ratio, ln_last, ln_sum = gradients.loss_profiles(traj)
    h = traj.h0.clone().requires_grad_()
    hs = []
    for t in range(20):
        h = hidden_states(p, net.x[:, 3 + t:4 + t], h)[0]
        hs.append(h)
    L = losses(outputs(p, torch.stack(hs)), net.y_target.transpose(0, 1))
    g_last = torch.autograd.grad(L[-1].sum(), hs, retain_graph=True)
    g_sum = torch.autograd.grad(L.sum(), hs)
    for k in range(20):
        lag = 19 - k
        assert log_diff(ln_last[lag], g_last[k].norm(dim=-1).log()) < TOL
        ratio = g_last[k].norm(dim=-1).log() - g_last[-1].norm(dim=-1).log()
        assert log_diff(ln_ratio[lag][torch.isfinite(ratio)], ratio[torch.isfinite(ratio)]) < TOL
        assert log_diff(ln_sum[lag], g_sum[k].norm(dim=-1).log()) < TOL


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_jacobian_norms_match_explicit_products(activation):
    N, T = 7, 12
    net, p, traj = make(seed=4, activation=activation, hidden_size=N, seq_len=T, batch_size=2,
                        spectral_radius=1.2, h0_std=1.0)
    out = gradients.jacobian_norms(traj, max_lag=T, svd_lags=(0, 5, T))
    for b in range(2):
        M = torch.eye(N, dtype=torch.float64)
        for lag in range(T + 1):
            if lag > 0:
                M = M @ (torch.diag(traj.maps.layers[0].dphi[T - lag][b]) @ p.W)
            s = torch.linalg.svdvals(M)
            assert abs(out["ln_spec"][lag, b] - s[0].log()) < TOL
            assert abs(out["ln_frob"][lag, b] - M.norm().log()) < TOL
            if lag in (0, 5, T):
                # singular values are accurate relative to the largest one only
                big = s > 1e-8 * s[0]
                assert torch.allclose(out["ln_svals"][lag][b][big], s[big].log(), atol=1e-7)
    with pytest.raises(ValueError, match="max_lag"):
        gradients.jacobian_norms(traj, max_lag=T + 1)


def test_tutorial_rnn_weights_measured_like_unrolled():
    """Converting the tutorial's nn.RNN to (U, W, b, V, c) gives the same measurement."""
    from rnnlab.engine.model import RNN, elman_from_tutorial

    torch.manual_seed(0)
    model = RNN(4, 3, 6, n_layers=1).double()
    p = elman_from_tutorial(model)
    assert isinstance(p, ElmanParams) and p.activation == "tanh"
    x = torch.randn(2, 10, 4, dtype=torch.float64)
    y = torch.nn.functional.one_hot(torch.randint(3, (2, 10)), 3).double()
    h0 = torch.zeros(2, 6, dtype=torch.float64)
    traj = gradients.forward(p, x, h0, y)
    fast = gradients.log_grad_norms(traj)
    ref = reference.reference_log_grad_norms(p, x, h0, y)
    ok = ~torch.isnan(ref)
    assert log_diff(fast[ok], ref[ok]) < TOL
