"""Mamba's selective scan S6 (Gu and Dao 2023, arXiv:2312.00752; ``model=mamba``, ``arch=mamba``)
in the exact engine and the training app, float64:

- the initial weights follow the official ``Mamba.__init__`` (state-spaces/mamba,
  ``mamba_ssm/modules/mamba_simple.py``), both the engine's draw and the trainable module's:
  A_log[d, n] = ln(n + 1) and D = 1 exactly, dt_rank = ceil(N / 16) when null, b_dt =
  dt + ln(-expm1(-dt)) exactly for the dt replayed from the same generator (softplus(b_dt) = dt
  to 1e-12 relative), and the distributions: every entry inside its bound (W_u 1/sqrt D, W_x
  1/sqrt N, W_dt dt_rank^-0.5 dt_scale, dt in [dt_min, dt_max]) and its mean and variance (the
  uniform's 0 and k^2/3; ln dt's (1/2, 1/12) of the log range) within 4 standard errors over
  N = 4096 channels; with dt_min below the floor, the clamped fraction within 4 SE of its
  probability and every clamped dt exactly the floor;
- the hand-written diagonal maps (``mingru.DiagonalLayer``) equal those derived by torch.func
  from the cell's step (``measure.jacobians=derived``) to 1e-12: J_k = diag(exp(Delta_k A)) and
  the input maps (the cotangent of ``vjp(need_input)``, the tangent of ``jvp(Q, Q_in)``);
- every ln ||dL_t/dh_k|| of the engine, L_t = loss(softmax(V y_t + c)) with y_t = C_t h_t +
  D u_t, against a per-target autograd loop through an independent implementation of the
  equations written here (mamba-minimal's ``ssm`` and ``selective_scan``, on h (B, N,
  d_state)) < 1e-10 in log10, with burn-in, max_lag, every loss, hand and derived maps;
- ||dh_{T-1}/dh_{T-1-l}||_2 from the engine equals max_(d,n) prod_s exp(Delta_s[d] A[d, n])
  recomputed from the inputs and the weights, every lag, to 1e-12 in ln;
- the trainable module's sequence forward equals its step loop, its ``output`` / ``features``
  and the engine's recurrence and y on its ``engine_params`` to 1e-12; a sequence in two
  chunks equals it whole;
- ``rnnlab.theory.mamba_log_keep`` equals scipy's adaptive ``quad`` to 1e-12 (relative);
- theory against measurement over n = 20 networks (N = 8, d_state = 4, D = 8, input_std = 2,
  B = 8, T = 1000): the mean of (measured - theory) within t_{0.99865, n-1} = 3.45 standard
  errors of 0 (the standard error from the spread over the networks) for the slowest unit's
  measured mean ln a (unit chosen by the theory) and the least-squares slope of the batch mean
  of ln ||dh_{T-1}/dh_{T-1-l}||_2 over T/2 <= l <= T;
- every channel's measured mean Delta (N = 64, input_std = 1, B T = 16000 samples) against the
  quadrature's E[softplus(pre)]: the largest |z| over the channels within the Bonferroni bound
  4.33 (two-sided 0.0027 / N), and the noiseless Delta = softplus(b_dt) (Jensen's gap left out)
  beyond it;
- ``decay.py model=mamba`` writes run.json with the theory's ``diag_rate``; ``train.py
  arch=mamba`` trains on temporal order (T = 10, 20 updates), model.pt reloads and scores the
  run's reported test errors, and the run's initial decay rate is the engine's; bad input
  (d_state, dt_rank, dt_min, dt_max, dt_init_floor, dt_scale out of range, a bias, the weight
  gradient by lag, the sensitivity, redrawn weights, another activation or init) is one line,
  exit 2, no run directory.
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
    assert_checks,
    assert_refused,
    assert_tiny_run_reloads,
    log_diff,
)
from scipy import integrate
from scipy.stats import norm
from scipy.stats import t as student_t
from test_derived import hand_jacobian
from torch.nn import functional as F

from rnnlab import theory as th
from rnnlab.engine import adjoint, cells
from rnnlab.engine.cells import mamba
from rnnlab.measure.config import DataSpec, ModelSpec
from rnnlab.measure.networks import draw

TOL = 1e-10 * math.log(10)  # 1e-10 in log10, compared in natural log
EXACT = 1e-12
SE4 = 4.0  # distribution checks: within 4 standard errors (two-sided 6e-5 per check)

pytestmark = pytest.mark.usefixtures("one_thread")


def network(T=9, B=3, burn_in=2, seed=1, N=5, D=3, C=4, d_state=3, **data):
    keys = {k: data.pop(k) for k in list(data) if k in (*mamba.DEFAULTS, "input_gain")}
    model = ModelSpec(cell="mamba", activation="linear", init="mamba", hidden_size=N,
                      input_size=D, output_size=C, d_state=d_state, **keys)
    model.validate()
    return draw(model, DataSpec(seq_len=T, batch_size=B, burn_in=burn_in, **data), seed), model


# --------------------------------------------------------------------------------------------
# an independent S6: mamba-minimal's ssm and selective_scan (johnma2006/mamba-minimal,
# model.py), batch first, on h (B, N, d_state)
# --------------------------------------------------------------------------------------------
def ssm_inputs(p, x):
    """(u, delta, A, B, C, D) of x (B, T, D_in) as mamba-minimal's ``ssm`` forms them."""
    u = x @ p.W_u.T
    n = p.A_log.shape[1]
    r = p.W_x.shape[0] - 2 * n
    x_dbl = u @ p.W_x.T
    delta, B, C = x_dbl.split([r, n, n], dim=-1)
    delta = F.softplus(delta @ p.W_dt.T + p.b_dt)
    return u, delta, -torch.exp(p.A_log), B, C, p.D


def scan_terms(delta, A, B, u):
    """deltaA = exp(delta A), deltaB_u = delta B u, each (B, T, N, d_state)."""
    deltaA = torch.exp(torch.einsum("bld,dn->bldn", delta, A))
    deltaB_u = torch.einsum("bld,bln,bld->bldn", delta, B, u)
    return deltaA, deltaB_u


def losses(o, target, loss):
    if loss == "mse_linear":
        return 0.5 * ((o - target) ** 2).sum(-1)
    y = torch.softmax(o, -1)
    if loss == "mse":
        return 0.5 * ((y - target) ** 2).sum(-1)
    return -(target * torch.log(y)).sum(-1)


def reference_log_grad_norms(p, x, h0, target, burn_in, loss, max_lag):
    """ln ||dL_t/dh_k||_F (T, T, B), NaN outside the measured triangle, by one autograd call per
    target t through the selective scan written out."""
    u, delta, A, B, C, D = ssm_inputs(p, x)
    deltaA, deltaB_u = scan_terms(delta, A, B, u)
    N, n = A.shape
    h = h0.view(-1, N, n)
    with torch.no_grad():
        for i in range(burn_in):
            h = deltaA[:, i] * h + deltaB_u[:, i]
    h = h.detach().clone().requires_grad_()
    T = target.shape[1]
    hs = []
    for i in range(burn_in, burn_in + T):
        h = (deltaA[:, i] * h + deltaB_u[:, i]).clone()
        hs.append(h)
    out = torch.full((T, T, x.shape[0]), math.nan, dtype=torch.float64)
    for t in range(T):
        i = burn_in + t
        y = torch.einsum("bdn,bn->bd", hs[t], C[:, i]) + u[:, i] * D
        L = losses(y @ p.V.T + p.c, target[:, t], loss).sum()
        k0 = 0 if max_lag is None else max(0, t - max_lag)
        grads = torch.autograd.grad(L, hs[k0:t + 1], retain_graph=True)
        for k, g in zip(range(k0, t + 1), grads):
            out[t, k] = torch.log(torch.linalg.vector_norm(g.flatten(1), dim=-1))
    return out


# --------------------------------------------------------------------------------------------
# the initialisation
# --------------------------------------------------------------------------------------------
def uniform_checks(name, W, k):
    """Every entry in [-k, k]; mean 0 and variance k^2/3 within 4 SE (the uniform's moments:
    SE of the mean k/sqrt(3 m), of the variance k^2 (4/45)^(1/2) / sqrt m)."""
    w, m = W.flatten().double(), W.numel()
    return [Check(f"{name}: max |w| - bound", w.abs().max().item() - k, 0.0),
            Check(f"{name}: |mean|", abs(w.mean().item()), SE4 * k / math.sqrt(3 * m)),
            Check(f"{name}: |var - k^2/3|", abs((w ** 2).mean().item() - k * k / 3),
                  SE4 * k * k * math.sqrt(4 / 45) / math.sqrt(m))]


def dt_checks(dt, dt_min, dt_max):
    """ln dt uniform on [ln dt_min, ln dt_max]: in range, position v mean 1/2 and variance 1/12
    within 4 SE (SE sqrt(1/12 / m) and sqrt(1/180 / m))."""
    v = (torch.log(dt) - math.log(dt_min)) / (math.log(dt_max) - math.log(dt_min))
    m = v.numel()
    return [Check("dt: below dt_min", dt_min - dt.min().item(), 0.0),
            Check("dt: above dt_max", dt.max().item() - dt_max, 0.0),
            Check("ln dt: |mean - 1/2|", abs(v.mean().item() - 0.5), SE4 * math.sqrt(1 / 12 / m)),
            Check("ln dt: |var - 1/12|", abs(v.var().item() - 1 / 12),
                  SE4 * math.sqrt(1 / 180 / m))]


def init_checks(W_u, W_x, W_dt, b_dt, A_log, D, N, D_in, d_state, dt_rank, input_gain=1.0,
                dt_scale=1.0, dt_min=0.001, dt_max=0.1):
    assert W_u.shape == (N, D_in) and W_x.shape == (dt_rank + 2 * d_state, N)
    assert W_dt.shape == (N, dt_rank) and b_dt.shape == (N,)
    assert torch.equal(A_log, torch.log(torch.arange(1.0, d_state + 1,
                                                     dtype=A_log.dtype)).repeat(N, 1))
    assert torch.equal(D, torch.ones(N, dtype=D.dtype))
    dt = F.softplus(b_dt)
    return (uniform_checks("W_u", W_u, input_gain / math.sqrt(D_in))
            + uniform_checks("W_x", W_x, 1 / math.sqrt(N))
            + uniform_checks("W_dt", W_dt, dt_scale / math.sqrt(dt_rank))
            + dt_checks(dt, dt_min, dt_max))


def test_engine_draw_is_the_official_init():
    N, D, n = 4096, 6, 2
    net, model = network(T=2, B=1, burn_in=0, N=N, D=D, d_state=n, seed=3)
    p = net.params
    assert model.dt_rank is None and p.dt_rank == 256 == math.ceil(N / 16)
    assert p.hidden_size == N * n and p.channels == N and net.h0.shape == (1, N * n)
    assert_checks(init_checks(p.W_u, p.W_x, p.W_dt, p.b_dt, p.A_log, p.D, N, D, n, 256))
    # b_dt is the inverse softplus of the dt replayed from the same generator, in its order
    g = torch.Generator().manual_seed(3)
    for shape in ((N, D), (256 + 2 * n, N), (N, 256)):
        torch.rand(*shape, generator=g, dtype=torch.float64)
    rand = torch.rand(N, generator=g, dtype=torch.float64)
    dt = torch.exp(rand * (math.log(0.1) - math.log(0.001)) + math.log(0.001)).clamp(min=1e-4)
    assert torch.equal(p.b_dt, dt + torch.log(-torch.expm1(-dt)))
    assert ((F.softplus(p.b_dt) - dt).abs() / dt).max().item() < EXACT
    # given keys: dt_rank, dt_scale, input_gain; dt_min under the floor clamps a quarter of dt
    net, _ = network(T=2, B=1, burn_in=0, N=N, D=D, d_state=1, seed=4, dt_rank=3, dt_scale=2.0,
                     dt_min=1e-5, input_gain=0.5)
    p = net.params
    assert p.W_dt.shape == (N, 3) and p.W_x.shape == (5, N)
    assert_checks(uniform_checks("W_dt", p.W_dt, 2 / math.sqrt(3))
                  + uniform_checks("W_u", p.W_u, 0.5 / math.sqrt(D)))
    dt = F.softplus(p.b_dt)
    floored = (dt - 1e-4).abs() < 1e-4 * EXACT
    assert dt.min().item() >= 1e-4 * (1 - EXACT)
    prob = 0.25  # (ln 1e-4 - ln 1e-5) / (ln 0.1 - ln 1e-5)
    assert abs(floored.double().mean().item() - prob) < SE4 * math.sqrt(prob * (1 - prob) / N)


def test_module_init_is_the_official_init():
    torch.manual_seed(0)
    N, D, n = 4096, 5, 2
    m = cells.get("mamba").module(D, N, {"d_state": n}, torch.float64)
    assert m.dt_rank == 256 and set(dict(m.named_parameters())) == {
        "in_proj.weight", "x_proj.weight", "dt_proj.weight", "dt_proj.bias", "A_log", "D"}
    assert_checks(init_checks(m.in_proj.weight.detach(), m.x_proj.weight.detach(),
                              m.dt_proj.weight.detach(), m.dt_proj.bias.detach(),
                              m.A_log.detach(), m.D.detach(), N, D, n, 256))
    m = cells.get("mamba").module(D, 17, {"d_state": n, "dt_scale": 0.5}, torch.float64)
    assert m.dt_rank == 2 and m.dt_proj.weight.abs().max().item() <= 0.5 / math.sqrt(2)


# --------------------------------------------------------------------------------------------
# the step maps and the measurement
# --------------------------------------------------------------------------------------------
def test_hand_maps_equal_derived_maps():
    net, _ = network(h0_std=0.5, input_std=1.4, dt_min=0.05, dt_max=1.0)
    p = net.params
    c = cells.get("mamba")
    hand = c.forward(p, net.x, net.h0, 2)
    auto = c.forward(p, net.x, net.h0, 2, jacobians="derived")
    assert (hand.u - auto.u).abs().max().item() < EXACT
    assert (hand.output.y - auto.output.y).abs().max().item() < EXACT
    layer, derived_layer = hand.maps.layers[0], auto.maps.layers[0]
    B, S, D = net.x.shape[0], p.hidden_size, net.x.shape[-1]
    u, delta, A, _, _, _ = ssm_inputs(p, net.x[:, 2:])
    a = torch.exp(torch.einsum("bld,dn->bldn", delta, A)).flatten(-2).transpose(0, 1)
    gen = torch.Generator().manual_seed(0)
    for k in range(net.y_target.shape[1]):
        J, J_x = derived_layer.jacobian(k), derived_layer.input_jacobian(k)
        assert (J - hand_jacobian(hand.maps, k, S, B)).abs().max().item() < EXACT
        assert (J - torch.diag_embed(a[k])).abs().max().item() < EXACT  # diag(exp(Delta A))
        E = torch.eye(S, dtype=torch.float64)[:, None, :].expand(S, B, S)
        _, g_x = layer.vjp(k, E.clone(), need_input=True)
        assert (g_x.transpose(0, 1) - J_x).abs().max().item() < EXACT
        Q = torch.randn(B, S, 2, dtype=torch.float64, generator=gen)
        Q_in = torch.randn(B, D, 2, dtype=torch.float64, generator=gen)
        assert (layer.jvp(k, Q, Q_in) - (J @ Q + J_x @ Q_in)).abs().max().item() < EXACT
        assert (layer.jvp(k, Q) - J @ Q).abs().max().item() < EXACT


@pytest.mark.parametrize("loss,max_lag,burn_in,jacobians,dt", [
    ("mse", None, 0, "cell", (0.001, 0.1)), ("xent", 5, 3, "cell", (0.05, 1.0)),
    ("mse_linear", None, 2, "derived", (0.05, 1.0))])
def test_measurement_matches_an_independent_selective_scan(loss, max_lag, burn_in, jacobians,
                                                             dt):
    net, _ = network(T=14, B=3, burn_in=burn_in, N=6, D=4, C=5, d_state=3, h0_std=0.5,
                     input_std=1.3, dt_min=dt[0], dt_max=dt[1], dt_rank=2)
    p = net.params
    rec = cells.get("mamba").forward(p, net.x, net.h0, burn_in, jacobians)
    fast = adjoint.log_grad_norms(adjoint.trajectory(rec, p, net.y_target, loss), max_lag)
    ref = reference_log_grad_norms(p, net.x, net.h0, net.y_target, burn_in, loss, max_lag)
    measured = ~torch.isnan(ref)
    assert torch.equal(measured, ~torch.isnan(fast)) and measured.sum() > 0
    assert log_diff(fast[measured], ref[measured]) < TOL
    if max_lag is None and dt[0] > 0.01:  # the gradient decays with the lag here (not flat)
        assert (ref[-1, 0] - ref[-1, -1]).max().item() < -0.5


def test_jacobian_norm_is_the_slowest_units_product():
    T = 60
    net, _ = network(T=T, B=3, burn_in=0, N=4, D=3, d_state=3, input_std=2.0, dt_min=0.01,
                     dt_max=0.5)
    traj = adjoint.forward(net.params, net.x, net.h0, net.y_target)
    norms = adjoint.jacobian_norms(traj, T)
    _, delta, A, _, _, _ = ssm_inputs(net.params, net.x)
    ln_a = torch.einsum("bld,dn->bldn", delta, A).flatten(-2).transpose(0, 1)  # (T, B, S)
    tail = torch.cat([torch.zeros(1, *ln_a.shape[1:], dtype=torch.float64),
                      torch.cumsum(ln_a.flip(0), 0)])
    assert (norms["ln_spec"] - tail.max(-1).values).abs().max().item() < EXACT
    assert (norms["ln_frob"] - 0.5 * torch.logsumexp(2 * tail, -1)).abs().max().item() < EXACT


# --------------------------------------------------------------------------------------------
# the trainable module
# --------------------------------------------------------------------------------------------
def test_module_sequence_equals_steps_and_engine():
    torch.manual_seed(2)
    module = cells.get("mamba").module(4, 6, {"d_state": 3, "dt_min": 0.05, "dt_max": 1.0},
                                       torch.float64)
    head = torch.nn.Linear(6, 3, dtype=torch.float64)
    x = 2 * torch.randn(3, 120, 4, dtype=torch.float64)
    whole, last = module(x)
    assert whole.shape == (3, 120, 6) and last.shape == (1, 3, 18)
    state, hs, ys = module.init_state(3), [], []
    for t in range(120):
        state = module.step(x[:, t], state)
        hs.append(state[0])
        ys.append(module.output(x[:, t], state))
    hs, ys = torch.stack(hs, 1), torch.stack(ys, 1)
    assert (whole - ys).abs().max().item() < EXACT
    assert (module.features(hs, x) - ys).abs().max().item() < EXACT
    assert (last[0] - hs[:, -1]).abs().max().item() < EXACT
    # the independent scan on the module's weights
    p = module.engine_params(head)
    u, delta, A, B, C, D = ssm_inputs(p, x)
    deltaA, deltaB_u = scan_terms(delta, A, B, u)
    h, ref = torch.zeros(3, 6, 3, dtype=torch.float64), []
    for i in range(120):
        h = deltaA[:, i] * h + deltaB_u[:, i]
        ref.append(torch.einsum("bdn,bn->bd", h, C[:, i]) + u[:, i] * D)
    assert (torch.stack(ref, 1) - ys).abs().max().item() < EXACT
    rec = cells.get("mamba").forward(p, x, torch.zeros(3, 18, dtype=torch.float64))
    assert (rec.u.transpose(0, 1) - hs.detach()).abs().max().item() < EXACT
    assert (rec.output.y.transpose(0, 1) - ys.detach()).abs().max().item() < EXACT
    first, mid = module(x[:, :50])
    rest, last2 = module(x[:, 50:], mid)
    assert (torch.cat([first, rest], 1) - whole).abs().max().item() < EXACT
    assert (last2 - last).abs().max().item() < EXACT
    with pytest.raises(ValueError, match=r"h0 has shape \(3, 18\); .* \(1, 3, 18\)"):
        module(x, torch.zeros(3, 18, dtype=torch.float64))


# --------------------------------------------------------------------------------------------
# theory
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("s,mean", [(0.1, -6.0), (0.6, -3.0), (2.0, 0.5), (8.0, -1.0)])
def test_mamba_quadrature(s, mean):
    def f(z):
        v = mean + s * z
        return math.exp(-z * z / 2) / math.sqrt(2 * math.pi) * (max(v, 0) + math.log1p(
            math.exp(-abs(v))))

    want = integrate.quad(f, -14, 14, points=[-mean / s], epsabs=1e-15, epsrel=1e-13,
                          limit=400)[0]
    A = -np.arange(1.0, 4.0)[None, :]
    got = th.mamba_log_keep(A, [mean], [s])
    assert got.shape == (1, 3)
    assert np.allclose(got, A * want, rtol=1e-12, atol=0)


N_NETWORKS = 20
THEORY = dict(N=8, d_state=4, D=8, T=1000, B=8, input_std=4.0)


def diag_rate_checks(seed: int) -> tuple[list[Check], np.ndarray]:
    """Measured minus theory over ``N_NETWORKS`` networks (seeds seed * n .. seed * n + n - 1)
    for the slowest unit's mean ln a and the long-lag slope (module docstring); each within
    t_{0.99865, n-1} standard errors of 0, and the rate without the input's noise outside them.
    Also the z-scores."""
    n, T = N_NETWORKS, THEORY["T"]
    lags = np.arange(T + 1)
    far = lags >= T // 2
    rows = []
    for j in range(n):
        net, model = network(T=T, B=THEORY["B"], burn_in=0, seed=seed * n + j, N=THEORY["N"],
                             D=THEORY["D"], C=2, d_state=THEORY["d_state"],
                             input_std=THEORY["input_std"])
        p = net.params
        rec = cells.get("mamba").forward(p, net.x, net.h0)
        traj = adjoint.trajectory(rec, p, net.y_target, "mse")
        ln = adjoint.jacobian_norms(traj, T)["ln_spec"].mean(1).numpy()
        slope = np.polyfit(lags[far], ln[far], 1)[0]
        rates = mamba.unit_rates(p, THEORY["input_std"])
        slowest = torch.log(rec.maps.layers[0].a[..., int(rates.argmax())]).mean().item()
        theory = cells.get("mamba").theory(p, model, DataSpec(input_std=THEORY["input_std"]))
        assert theory["diag_rate"] == rates.max()
        rows.append((slowest - rates.max(), slope - rates.max()))
    d = np.array(rows)
    mean, se = d.mean(0), d.std(0, ddof=1) / math.sqrt(n)
    t = student_t.ppf(1 - 0.0027 / 2, n - 1)
    return [Check("mamba: slowest unit's mean ln a - theory", abs(mean[0]), t * se[0]),
            Check("mamba: long-lag slope - theory", abs(mean[1]), t * se[1])], mean / se


CHANNELS = dict(N=64, T=2000, B=8, input_std=1.0)


def channel_checks(seed: int) -> tuple[list[Check], np.ndarray]:
    """Every channel's measured mean Delta against E[softplus(pre)] of the quadrature: one
    network (N = 64 channels, d_state = 1, D = 8, input_std = 1, B = 8, T = 2000). Delta_t is
    independent across steps and samples (x_t white), so z_d = (mean_d - E_d) / sqrt(var_d / m)
    (var_d the sample variance, m = B T) is ~ N(0, 1) for each channel; the channels are
    correlated (their pre-activations share a rank-dt_rank projection), so the N are judged by
    their maximum against the Bonferroni bound Phi^-1(1 - 0.0027 / (2 N)) = 4.33. The same
    statistic for the noiseless Delta = softplus(b_dt) (Jensen's gap left out) lies beyond it.
    Also the two maxima."""
    N, T, B, std = CHANNELS["N"], CHANNELS["T"], CHANNELS["B"], CHANNELS["input_std"]
    net, _ = network(T=T, B=B, burn_in=0, seed=seed, N=N, D=8, C=2, d_state=1, input_std=std)
    p = net.params
    delta = -torch.log(cells.get("mamba").forward(p, net.x, net.h0).maps.layers[0].a)
    mean, var, m = delta.mean((0, 1)).numpy(), delta.var((0, 1)).numpy(), T * B
    expected = -mamba.unit_rates(p, std)[:, 0]  # A[d, 0] = -1
    z = [float(np.abs((mean - e) / np.sqrt(var / m)).max())
         for e in (expected, F.softplus(p.b_dt).numpy())]
    bound = float(norm.ppf(1 - 0.0027 / (2 * N)))
    return [Check("mamba: max over channels of |z| of the mean Delta - theory", z[0], bound),
            Check("mamba: the noiseless Delta is rejected (bound - max |z|)", bound - z[1], 0.0)
            ], np.array(z)


def test_every_channels_mean_delta_matches_the_quadrature():
    assert_checks(channel_checks(seed=0)[0])


def test_theory_rate_matches_the_measured_long_lag_rate():
    assert_checks(diag_rate_checks(seed=0)[0])


# --------------------------------------------------------------------------------------------
# the command lines
# --------------------------------------------------------------------------------------------
SMALL = ["model.hidden_size=4", "model.input_size=2", "model.output_size=3", "data.seq_len=8",
         "data.batch_size=2", "measure.progress=false", "measure.device=cpu"]


def test_decay_command_line(tmp_path, decay_in_process):
    run = tmp_path / "mamba"
    status, _, err = decay_in_process("model=mamba", f"hydra.run.dir={run}", "model.d_state=3",
                                      "measure.save_tensors=true", "measure.jacobian=true",
                                      "data.input_std=0.7", *SMALL)
    assert status == 0, err
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed" and record["params"]["model.cell"] == "mamba"
    assert record["params"]["model.d_state"] == 3 and record["params"]["model.dt_rank"] is None
    tensors = dict(np.load(run / "tensors.npz"))
    assert tensors["A_log"].shape == (4, 3) and tensors["W_dt"].shape == (4, 1)
    assert tensors["h0"].shape == (2, 12)
    s = 0.7 * np.linalg.norm(tensors["W_dt"] @ tensors["W_x"][:1] @ tensors["W_u"], axis=1)
    want = th.mamba_log_keep(-np.exp(tensors["A_log"]), tensors["b_dt"], s).max()
    assert record["theory"]["diag_rate"] == pytest.approx(want, rel=1e-13)
    assert list(pd.read_parquet(run / "lags.parquet")["lag"]) == list(range(8))


def test_train_command_line(tmp_path, train_in_process):
    run = tmp_path / "mamba"
    status, _, err = train_in_process("arch=mamba", f"hydra.run.dir={run}", "model.d_state=4",
                                      "model.dt_min=0.01", *TINY_TRAIN)
    assert status == 0, err
    record, _ = assert_tiny_run_reloads(run, "MambaS6")
    assert record["params"]["cell"] == "mamba"
    assert record["params"]["init"] == "mamba" and record["params"]["d_state"] == 4
    assert record["params"]["dt_min"] == 0.01 and record["params"]["dt_rank"] is None


@pytest.mark.parametrize("overrides,needle", [
    (["model.d_state=0"], "model.d_state=0 is not allowed; it must be an integer >= 1"),
    (["model.dt_rank=0"], "model.dt_rank=0 is not allowed; it must be an integer >= 1"),
    (["model.dt_min=0"], "model.dt_min=0.0 is not allowed; it must be a finite number > 0"),
    (["model.dt_min=0.2"], "model.dt_min=0.2 > model.dt_max=0.1; dt is drawn log-uniformly"),
    (["model.dt_init_floor=-1"], "model.dt_init_floor=-1.0 is not allowed"),
    (["model.dt_scale=-0.5"], "model.dt_scale=-0.5 is not allowed"),
    (["model.bias_std=0.1"], "model.bias_std=0.1 with model.cell='mamba': its biases are"),
    (["measure.weight_grad=true"], "measure.weight_grad=true with model.cell='mamba' is not "
                                   "supported: its gates see the input only"),
    (["measure.sensitivity=true"], "measure.sensitivity=true with model.cell='mamba' is not "
                                   "supported"),
    (["measure.weights=redrawn"], "measure.weights='redrawn' with model.cell='mamba' is not "
                                  "supported"),
    (["model.activation=tanh"], "model.activation='tanh' with model.cell='mamba'"),
    (["model.init=ring"], "model.init='ring' with model.cell='mamba' is not allowed"),
])
def test_bad_decay_input_is_one_line(tmp_path, decay_in_process, overrides, needle):
    run = tmp_path / "run"
    status, _, err = decay_in_process(f"hydra.run.dir={run}", "model=mamba", *overrides, *SMALL)
    assert_refused(status, err, run, needle)


def test_bad_train_input_is_one_line(tmp_path, train_in_process):
    run = tmp_path / "run"
    status, _, err = train_in_process(f"hydra.run.dir={run}", "arch=mamba", "model.dt_max=0.0001",
                                      *TINY_TRAIN)
    assert_refused(status, err, run, "model.dt_min=0.001 > model.dt_max=0.0001")
