"""Exact cases of docs/theory.md ("exact cases"), measured by the fast sweep.

- linear W = rho Q: every ratio ||dL_t/dh_k|| / ||dL_t/dh_t|| is rho^(t-k) (rtol 1e-12, lag <= 50
  and beyond) and the fitted decay rate is ln rho to 1e-9;
- tanh at the zero fixed point (h0 = 0, x = 0, b = 0): ||dh_30/dh_0||_2 = 0.95^30; sigmoid at 0
  contracts by rho/4 per step;
- IRNN (relu, W = I, all units active): every Jacobian product has norm exactly 1;
- Pascanu's bound ||dL_t/dh_k|| <= (gamma sigma_max(W))^(t-k) ||g_t|| on random trajectories;
- non-normal W (0.9 I + superdiagonal ones): rho = 0.9 yet the product norms grow for a long time.
"""
import math

import numpy as np
import pytest
import torch
from conftest import make

from rnnlab.engine import adjoint as gradients
from rnnlab.engine.fit import fit_decay
from rnnlab.engine.init import spectral_radius
from rnnlab.engine.model import GAMMA, ElmanParams


@pytest.mark.parametrize("rho", [0.5, 0.9, 1.0, 1.3, 3.0])
def test_linear_orthogonal_ratios_are_rho_to_the_lag(rho):
    net, p, traj = make(seed=5, activation="linear", init="orthogonal", spectral_radius=rho,
                        hidden_size=16, seq_len=60, batch_size=3)
    assert abs(spectral_radius(p.W) - rho) < 1e-12
    ln_ratio = gradients.log_grad_norms(traj, ratio=True)
    T = 60
    for t in range(T):
        lags = torch.arange(t + 1, dtype=torch.float64)
        expected = lags[:, None] * math.log(rho)
        assert torch.allclose(ln_ratio[t, t - lags.long()].exp(), expected.exp(), rtol=1e-12,
                              atol=0)
    prof = gradients.pair_profile(traj)
    fit = fit_decay(prof.lag, prof.ln_ratio)
    assert abs(fit["decay_rate"] - math.log(rho)) < 1e-9
    assert fit["regime"] == ("neutral" if rho == 1.0 else
                             "vanishing" if rho < 1 else "exploding")


def test_tanh_zero_fixed_point():
    N = 32
    Q = torch.linalg.qr(torch.randn(N, N, dtype=torch.float64,
                                    generator=torch.Generator().manual_seed(0)))[0]
    zeros = dict(U=torch.zeros(N, 1, dtype=torch.float64), b=torch.zeros(N, dtype=torch.float64),
                 V=torch.randn(3, N, dtype=torch.float64), c=torch.zeros(3, dtype=torch.float64))
    x = torch.zeros(1, 31, 1, dtype=torch.float64)
    h0 = torch.zeros(1, N, dtype=torch.float64)
    y = torch.eye(3, dtype=torch.float64)[None, [0] * 31]
    p = ElmanParams(W=0.95 * Q, activation="tanh", **zeros)
    traj = gradients.forward(p, x, h0, y)
    jac = gradients.jacobian_norms(traj, max_lag=30)
    # dh_30/dh_0 = J_30 ... J_1: lag 30 from the last measured step (index 30)
    assert abs(jac["ln_spec"][30, 0].exp().item() - 0.214638763943) < 1e-12
    assert abs(0.95 ** 30 - 0.214638763943) < 1e-12
    # sigmoid: with b = -W 1/2 the state h = 1/2 (a = 0) is a fixed point, where phi' = 1/4
    half = torch.full((1, N), 0.5, dtype=torch.float64)
    sig = ElmanParams(W=0.95 * Q, activation="sigmoid",
                      **{**zeros, "b": -(0.95 * Q) @ half[0]})
    traj = gradients.forward(sig, x, half, y)
    quarter = torch.full((1, N), 0.25, dtype=torch.float64)
    assert torch.allclose(traj.maps.layers[0].dphi[30], quarter)
    jac = gradients.jacobian_norms(traj, max_lag=30)
    expected = torch.arange(31, dtype=torch.float64) * math.log(0.95 / 4)
    assert torch.allclose(jac["ln_spec"][:, 0], expected, atol=1e-12)


def test_irnn_identity_products_have_norm_one():
    N = 20
    torch.manual_seed(0)
    # positive drive keeps every relu unit active
    p = ElmanParams(U=torch.eye(N, dtype=torch.float64), W=torch.eye(N, dtype=torch.float64),
                    b=torch.zeros(N, dtype=torch.float64), V=torch.randn(4, N).double(),
                    c=torch.zeros(4).double(), activation="relu")
    x = torch.rand(2, 40, N, dtype=torch.float64) + 0.1
    y = torch.nn.functional.one_hot(torch.randint(4, (2, 40)), 4).double()
    traj = gradients.forward(p, x, torch.zeros(2, N, dtype=torch.float64), y)
    jac = gradients.jacobian_norms(traj, max_lag=40)
    # exactly 1 up to the rounding of the Frobenius renormalisation (sqrt N)
    assert jac["ln_spec"].abs().max() < 1e-14
    ln = gradients.log_grad_norms(traj)
    for t in range(40):
        assert torch.allclose(ln[t, :t + 1], ln[t, t].expand(t + 1, 2), atol=1e-13, rtol=0)


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid", "linear"])
@pytest.mark.parametrize("seed", [0, 1])
def test_pascanu_bound_holds(activation, seed):
    net, p, traj = make(seed=seed, activation=activation, hidden_size=24, seq_len=40,
                        batch_size=4, spectral_radius=1.5, bias_std=0.5, h0_std=1.0)
    eta = GAMMA[activation] * torch.linalg.matrix_norm(p.W, ord=2).item()
    ln = gradients.log_grad_norms(traj)
    for t in range(40):
        lags = torch.arange(t + 1, dtype=torch.float64)
        bound = lags[:, None] * math.log(eta) + ln[t, t]
        assert (ln[t, t - lags.long()] <= bound + 1e-12).all()


def test_non_normal_transient_growth():
    N = 64
    W = 0.9 * torch.eye(N, dtype=torch.float64) + torch.diag(torch.ones(N - 1), 1).double()
    assert abs(spectral_radius(W) - 0.9) < 1e-9
    p = ElmanParams(U=torch.zeros(N, 1).double(), W=W, b=torch.zeros(N).double(),
                    V=torch.ones(2, N).double(), c=torch.zeros(2).double(), activation="linear")
    T = 450
    x = torch.zeros(1, T, 1, dtype=torch.float64)
    y = torch.eye(2, dtype=torch.float64)[None, [0] * T]
    traj = gradients.forward(p, x, torch.ones(1, N, dtype=torch.float64), y)
    ln_spec = gradients.jacobian_norms(traj, max_lag=T)["ln_spec"][:, 0].numpy()
    # ||W^n||_2 reaches ~1e58-1e59 near n = 400 (docs/theory.md, non-normal case; 58.98 by
    # numpy's dense power) although rho = 0.9 < 1, and is still growing there
    log10 = ln_spec / math.log(10)
    assert 58.5 < log10[400] < 59.5
    assert (np.diff(log10[:T]) > 0).all()
