"""Dynamic range and precision of the log-domain sweep.

- the loss gradient g_t = dL_t/dh_t at a saturated softmax (logit gaps up to ~600 nats) matches a
  1200-digit mpmath computation: ln ||g|| to 1e-9 and the direction to 1e-9, both losses;
- float32 agrees with float64: |log10 ratio difference| < 1e-3 up to lag 50;
- float32 and float64 stay finite at every lag: T = 2000 at rho = 3 and 0.3 (tanh), T = 3000 at
  rho = 5 and 0.2, and exploding or vanishing relu and linear networks far beyond float range;
- float32 keeps the linear exact case: ratios rho^lag with rtol 1e-5 up to lag 50.
"""
import math

import mpmath
import numpy as np
import pytest
import torch
from conftest import make

from rnnlab.engine import adjoint as gradients
from rnnlab.engine.model import ElmanParams


def _exact_grad(V, c, h, target, loss):
    mpmath.mp.dps = 1200
    C, N = V.shape
    hm = [mpmath.mpf(float(x)) for x in h]
    o = [sum(mpmath.mpf(float(V[i, j])) * hm[j] for j in range(N)) + mpmath.mpf(float(c[i]))
         for i in range(C)]
    top = max(o)
    ex = [mpmath.e ** (oi - top) for oi in o]
    y = [e / sum(ex) for e in ex]
    e = [y[i] - (1 if i == target else 0) for i in range(C)]
    if loss == "mse":
        ye = sum(y[i] * e[i] for i in range(C))
        do = [y[i] * (e[i] - ye) for i in range(C)]
    else:
        do = e
    g = [sum(do[i] * mpmath.mpf(float(V[i, j])) for i in range(C)) for j in range(N)]
    norm = mpmath.sqrt(sum(x * x for x in g))
    return float(mpmath.log(norm)), np.array([float(x / norm) for x in g])


@pytest.mark.parametrize("loss", ["mse", "xent"])
def test_saturated_softmax_gradient_matches_mpmath(loss):
    gen = torch.Generator().manual_seed(0)
    C, N = 4, 5
    V = torch.randn(C, N, generator=gen, dtype=torch.float64)
    c = 0.3 * torch.randn(C, generator=gen, dtype=torch.float64)
    p = ElmanParams(U=torch.zeros(N, 1).double(), W=torch.eye(N).double(),
                    b=torch.zeros(N).double(), V=V, c=c, activation="linear")
    for scale in (0.5, 3.0, 30.0, 100.0, 300.0):
        for target in range(C):
            u = torch.randn(1, N, generator=gen, dtype=torch.float64)
            y = torch.zeros(1, C, dtype=torch.float64)
            y[0, target] = 1
            s = torch.tensor([math.log(scale)], dtype=torch.float64)
            g_dir, ln_g = gradients.loss_grad_log(p, u, s, y, loss)
            ln_exact, dir_exact = _exact_grad(V, c, (scale * u[0]).numpy(), target, loss)
            assert abs(ln_g.item() - ln_exact) < 1e-9 * max(1, abs(ln_exact))
            assert np.abs(g_dir[0].numpy() - dir_exact).max() < 1e-9


def _ratios(dtype, **kw):
    net, p, traj = make(dtype=dtype, **kw)
    return gradients.log_grad_norms(traj, max_lag=kw.get("max_lag_", None), ratio=True)


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid", "linear"])
def test_float32_agrees_with_float64(activation):
    kw = dict(seed=0, activation=activation, hidden_size=32, seq_len=120, batch_size=4,
              spectral_radius=1.0 if activation != "sigmoid" else 3.0)
    r64 = _ratios(torch.float64, **kw)
    r32 = _ratios(torch.float32, **kw)
    T = 120
    for t in range(T):
        k = torch.arange(max(0, t - 50), t + 1)
        a, b = r64[t, k], r32[t, k]
        ok = torch.isfinite(a)
        assert torch.equal(ok, torch.isfinite(b))
        assert ((a[ok] - b[ok]).abs() / math.log(10)).max() < 1e-3


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("rho,T", [(3.0, 2000), (0.3, 2000), (5.0, 3000), (0.2, 3000)])
def test_long_sequences_stay_finite(dtype, rho, T):
    net, p, traj = make(dtype=dtype, seed=1, activation="tanh", hidden_size=16, seq_len=T,
                        batch_size=2, spectral_radius=rho)
    prof = gradients.pair_profile(traj, max_lag=None if T <= 2000 else 400)
    assert prof.ln_ratio["nonfinite"].sum() == 0 and prof.ln_grad["nonfinite"].sum() == 0
    assert np.isfinite(prof.ln_ratio["mean"]).all()
    slope = np.polyfit(prof.lag[1:200], prof.ln_ratio["mean"][1:200].mean(1), 1)[0]
    assert (slope < 0) == (rho < 1)


@pytest.mark.parametrize("activation", ["relu", "linear"])
@pytest.mark.parametrize("rho", [0.2, 10.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_unbounded_activations_far_beyond_float_range(activation, rho, dtype):
    """exp(+-2300) states: the forward and the ratios stay finite, and a linear orthogonal RNN
    keeps its exact ratios rho^lag."""
    T = 1000
    net, p, traj = make(dtype=dtype, seed=2, activation=activation, init="orthogonal",
                        hidden_size=16, seq_len=T, batch_size=2, spectral_radius=rho,
                        input_std=0.0, h0_std=1.0)
    assert torch.isfinite(traj.u).all() and torch.isfinite(traj.log_scale).all()
    assert abs(traj.log_scale[-1].max().item()) > 1000  # far outside float64's range
    ln_ratio = gradients.log_grad_norms(traj, max_lag=60, ratio=True)
    measured = ~torch.isnan(ln_ratio)
    assert torch.isfinite(ln_ratio[measured]).all()
    if activation == "linear":
        lags = torch.arange(T)[:, None] - torch.arange(T)[None, :]
        expected = (lags.double() * math.log(rho))[..., None].expand_as(ln_ratio)
        rtol = 1e-5 if dtype == torch.float32 else 1e-12
        diff = (ln_ratio[measured] - expected[measured]).abs()
        assert (diff / expected[measured].abs().clamp(min=1)).max() < rtol * 60


def test_float32_linear_exact_case():
    net, p, traj = make(dtype=torch.float32, seed=3, activation="linear", init="orthogonal",
                        spectral_radius=0.8, hidden_size=32, seq_len=51, batch_size=2)
    ln_ratio = gradients.log_grad_norms(traj, ratio=True)
    for lag in range(51):
        got = ln_ratio[50, 50 - lag].exp()
        assert torch.allclose(got, torch.full_like(got, 0.8 ** lag), rtol=1e-5, atol=0)


@pytest.mark.slow
@pytest.mark.parametrize("rho", [5.0, 0.2])
def test_float32_full_triangle_at_T3000(rho):
    """The issue's acceptance run: default network, float32, T = 3000, every lag finite."""
    from rnnlab.measure.config import DataSpec, MeasureSpec, ModelSpec, RunSpec
    from rnnlab.measure.run import measure

    m = measure(RunSpec(model=ModelSpec(spectral_radius=rho), data=DataSpec(seq_len=3000),
                        measure=MeasureSpec(dtype="float32", progress=False)))
    assert len(m.lags["lag"]) == 3000 and (m.lags["n_zero"] == 0).all()
    assert np.isfinite(m.lags["log10_ratio_mean"]).all()
    assert np.isfinite(m.lags["log10_grad_mean"]).all()
