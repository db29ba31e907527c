"""``rnnlab.input_sensitivity``: log10 ||dy_t/dx_k||_F of any sequence model, and the causal
self-attention layer it is contrasted with (``rnnlab.engine.attention``).

- a GRU with a linear head, a causal convolution (exact zeros beyond its kernel) and the attention
  layer with random weights: every pair, per sequence and batch mean, equals an independent
  autograd loop (each sequence run alone, one backward per (t, c)) to 1e-10 in log10, whatever
  the chunk of targets per backward call; above the diagonal NaN and no non-causal pair;
- the exact rows: a scalar linear RNN h_t = rho h_{t-1} + x_t gives (t - k) log10 rho (1e-12) and
  the fitted rate ln rho with standard error 0; attention with W_Q = 0 has dy_t/dx_k =
  W_O W_V / (t + 1) for every k <= t (the Jacobian blocks, 1e-12), so its rows are flat in the
  lag (rate 0 exactly), with or without the positional encoding;
- non-causal models are measured and reported, one line: a module that adds x_{t+1} (exactly the
  pairs (t, t + 1)) and a bidirectional GRU (every pair above the diagonal);
- an infinite derivative is +inf (not an exact zero), and autograd's NaN (0 * inf) above the
  diagonal is not reported non-causal;
- a backward graph that cannot be vmapped falls back to one backward per direction, same numbers;
- on CUDA (``gpu``-marked), the same numbers as on the CPU (1e-9);
- bad input, one line each before the Jacobians: x not 3-d, an integer x, a dtype or device
  mismatch, an output that is not one (B, T, C) tensor, an output that does not depend on x, a
  bad chunk; and the attention layer's own checks.
"""
import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import rnnlab
from rnnlab.engine.attention import CausalSelfAttention, sinusoidal
from rnnlab.engine.input_sensitivity import NonCausalWarning, input_sensitivity

TOL = 1e-10


def autograd_loop(model, x):
    """log10 ||dy_t/dx_k||_F (B, T, T), every pair: each sequence alone, one backward per (t, c)."""
    B, T, _ = x.shape
    out = torch.empty(B, T, T, dtype=torch.float64)
    for b in range(B):
        xb = x[b:b + 1].clone().requires_grad_(True)
        y = model(xb)[0]  # (T, C)
        for t in range(T):
            rows = [torch.autograd.grad(y[t, c], xb, retain_graph=True)[0][0]
                    for c in range(y.shape[1])]
            J = torch.stack(rows)  # (C, T, D): dy_{t,c}/dx_{k,d}
            out[b, t] = torch.log10(J.square().sum((0, 2)).sqrt())
    return out.numpy()


def lower(a):
    """a copy with NaN above the diagonal of the last two axes."""
    a = np.array(a, dtype=float)
    T = a.shape[-1]
    a[..., np.triu(np.ones((T, T), dtype=bool), 1)] = math.nan
    return a


class GRUHead(nn.Module):
    def __init__(self, D, N, C, bidirectional=False):
        super().__init__()
        self.rnn = nn.GRU(D, N, batch_first=True, bidirectional=bidirectional)
        self.head = nn.Linear(N * (2 if bidirectional else 1), C)

    def forward(self, x):
        return self.head(self.rnn(x)[0])


class CausalConv(nn.Module):
    """y_t = sum_{j < K} W_j x_{t-j} + b: a Conv1d padded on the left only."""

    def __init__(self, D, C, K):
        super().__init__()
        self.K, self.conv = K, nn.Conv1d(D, C, K)

    def forward(self, x):
        x = nn.functional.pad(x.transpose(1, 2), (self.K - 1, 0))
        return torch.tanh(self.conv(x)).transpose(1, 2)


class LinearRNN(nn.Module):
    """h_t = rho h_{t-1} + x_t, y_t = h_t (D = C = 1)."""

    def __init__(self, rho):
        super().__init__()
        self.rho = rho

    def forward(self, x):
        h, out = torch.zeros_like(x[:, 0]), []
        for t in range(x.shape[1]):
            h = self.rho * h + x[:, t]
            out.append(h)
        return torch.stack(out, 1)


class PeekAhead(nn.Module):
    """y_t = W x_t + U x_{t+1} (x_T = 0): non-causal at exactly the pairs (t, t + 1)."""

    def __init__(self, D, C):
        super().__init__()
        self.W, self.U = nn.Linear(D, C), nn.Linear(D, C, bias=False)

    def forward(self, x):
        ahead = torch.cat([x[:, 1:], torch.zeros_like(x[:, :1])], 1)
        return self.W(x) + self.U(ahead)


class NumpySquare(torch.autograd.Function):
    """x^2 with a backward that leaves torch (numpy), so it cannot be vmapped."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        x, = ctx.saved_tensors
        return torch.from_numpy(2 * x.detach().numpy() * g.detach().numpy())


class NumpyModel(nn.Module):
    def __init__(self, D, C):
        super().__init__()
        self.rnn = GRUHead(D, 4, C)

    def forward(self, x):
        return self.rnn(NumpySquare.apply(x))


def quiet(model, x, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a causal model warns nothing
        return input_sensitivity(model, x, **kw)


def check_against_loop(model, x, **kw):
    got = quiet(model, x, per_sequence=True, **kw)
    want = autograd_loop(model, x)
    assert got.causal and got.noncausal.shape == (0, 2)
    assert np.isnan(got.per_sequence[np.broadcast_to(
        np.triu(np.ones((x.shape[1],) * 2, dtype=bool), 1), want.shape)]).all()
    np.testing.assert_allclose(got.per_sequence, lower(want), atol=TOL, rtol=0)
    np.testing.assert_allclose(got.log10_grad, lower(want.mean(0)), atol=TOL, rtol=0)
    return got


@pytest.mark.parametrize("chunk", [None, 1, 7])
def test_gru_matches_autograd_loop(chunk):
    torch.manual_seed(0)
    model = GRUHead(2, 8, 3).double()
    x = torch.randn(3, 25, 2, dtype=torch.float64)
    got = check_against_loop(model, x, chunk=chunk)
    lags = got.lags
    assert list(lags["lag"]) == list(range(25))
    assert (lags["n_finite"] == 3 * (25 - lags["lag"])).all()
    assert got.regime == "vanishing" and got.decay_rate < 0


def test_causal_convolution_matches_autograd_loop():
    torch.manual_seed(1)
    K, T = 3, 20
    model = CausalConv(2, 3, K).double()
    got = check_against_loop(model, torch.randn(2, T, 2, dtype=torch.float64))
    lag = np.subtract.outer(np.arange(T), np.arange(T))
    assert np.isneginf(got.log10_grad[lag >= K]).all()  # beyond the kernel: exactly zero
    assert np.isfinite(got.log10_grad[(lag >= 0) & (lag < K)]).all()
    assert (got.lags["n_zero"][K:] == 2 * (T - got.lags["lag"][K:])).all()


@pytest.mark.parametrize("projection", [False, True])
def test_attention_matches_autograd_loop(projection):
    g = torch.Generator().manual_seed(2)
    layer = CausalSelfAttention(3, 2, key_size=4, projection=projection, generator=g)
    check_against_loop(layer, torch.randn(2, 15, 3, dtype=torch.float64, generator=g))


@pytest.mark.parametrize("rho", [0.8, 1.1])
def test_linear_rnn_exact(rho):
    T = 40
    x = torch.randn(2, T, 1, dtype=torch.float64)
    got = quiet(LinearRNN(rho), x)
    lag = np.subtract.outer(np.arange(T), np.arange(T)).astype(float)
    np.testing.assert_allclose(got.log10_grad, lower(lag * math.log10(rho)), atol=1e-12, rtol=0)
    assert abs(got.decay_rate - math.log(rho)) < 1e-12 and got.decay_rate_stderr < 1e-12
    assert got.regime == ("vanishing" if rho < 1 else "exploding")


@pytest.mark.parametrize("positional", [False, True])
def test_attention_uniform_weights_exact(positional):
    g = torch.Generator().manual_seed(3)
    B, T, D, C = 2, 12, 3, 2
    layer = CausalSelfAttention(D, C, projection=True, value_size=4, positional=positional,
                                generator=g)
    layer.W_Q.data.zero_()
    x = torch.randn(B, T, D, dtype=torch.float64, generator=g)
    A = layer.W_O.detach() @ layer.W_V.detach()  # (C, D)
    J = torch.autograd.functional.jacobian(layer, x)  # (B, T, C, B, T, D)
    J = J.diagonal(dim1=0, dim2=3).permute(4, 0, 1, 2, 3)  # each sequence's own: (B, T, C, T, D)
    for t in range(T):
        for k in range(T):
            want = A / (t + 1) if k <= t else torch.zeros_like(A)
            assert (J[:, t, :, k] - want).abs().max() < 1e-12
    got = quiet(layer, x)
    t = np.arange(T)[:, None] + np.zeros(T)
    want = lower(math.log10(torch.linalg.norm(A).item()) - np.log10(t + 1))
    np.testing.assert_allclose(got.log10_grad, want, atol=1e-12, rtol=0)
    np.testing.assert_allclose(got.lags["log10_ratio_mean"], 0.0, atol=1e-12)
    assert abs(got.decay_rate) < 1e-12 and got.regime == "neutral"


def test_positional_encoding():
    pe = sinusoidal(5, 4)
    t = torch.arange(5, dtype=torch.float64)
    assert torch.allclose(pe[:, 0], torch.sin(t)) and torch.allclose(pe[:, 1], torch.cos(t))
    assert torch.allclose(pe[:, 3], torch.cos(t / 100))
    g = torch.Generator().manual_seed(4)
    plain = CausalSelfAttention(4, 2, generator=g)
    pos = CausalSelfAttention(4, 2, positional=True)
    pos.load_state_dict(plain.state_dict())
    x = torch.zeros(1, 5, 4, dtype=torch.float64)
    assert plain(x).abs().max() == 0 and pos(x).abs().max() > 0.1


def test_peek_ahead_reported_noncausal():
    torch.manual_seed(5)
    T = 10
    with pytest.warns(NonCausalWarning) as record:
        got = input_sensitivity(PeekAhead(2, 3).double(), torch.randn(2, T, 2, dtype=torch.float64))
    assert got.noncausal.tolist() == [[t, t + 1] for t in range(T - 1)] and not got.causal
    message = str(record[0].message)
    assert "\n" not in message and f"{T - 1} pairs" in message and "(0, 1)" in message
    assert np.isnan(got.log10_grad[np.triu_indices(T, 1)]).all()  # reported, not in the matrix
    assert np.isfinite(np.diag(got.log10_grad)).all()


def test_bidirectional_gru_reported_noncausal():
    torch.manual_seed(6)
    T = 8
    with pytest.warns(NonCausalWarning):
        got = input_sensitivity(GRUHead(2, 4, 2, bidirectional=True).double(),
                                torch.randn(2, T, 2, dtype=torch.float64))
    assert sorted(map(tuple, got.noncausal.tolist())) == list(zip(*np.triu_indices(T, 1)))


def test_unvmappable_backward_falls_back():
    torch.manual_seed(7)
    model = NumpyModel(2, 2).double()
    x = torch.randn(2, 9, 2, dtype=torch.float64)
    with pytest.warns(RuntimeWarning, match="cannot be vmapped"):
        got = input_sensitivity(model, x, per_sequence=True, chunk=4)
    np.testing.assert_allclose(got.per_sequence, lower(autograd_loop(model, x)), atol=TOL, rtol=0)


def test_public_name():
    assert rnnlab.input_sensitivity is input_sensitivity


class Detached(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(1, dtype=torch.float64))

    def forward(self, x):
        return self.w * torch.ones_like(x)


@pytest.mark.parametrize("model,x,match", [
    (GRUHead(2, 4, 2).double(), torch.randn(5, 2, dtype=torch.float64), r"x has shape \(5, 2\)"),
    (GRUHead(2, 4, 2).double(), torch.ones(2, 5, 2, dtype=torch.int64), "x has dtype torch.int64"),
    (GRUHead(2, 4, 2), torch.randn(2, 5, 2, dtype=torch.float64),
     "x has dtype torch.float64 but the model's rnn.weight_ih_l0 has torch.float32"),
    (GRUHead(2, 4, 2).double(), torch.empty(2, 5, 2, dtype=torch.float64, device="meta"),
     "x is on meta but the model's rnn.weight_ih_l0 is on cpu"),
    (nn.GRU(2, 4, batch_first=True).double(), torch.randn(2, 5, 2, dtype=torch.float64),
     "the model returned a tuple"),
    (nn.Flatten(1).double(), torch.randn(2, 5, 2, dtype=torch.float64),
     r"maps x \(2, 5, 2\) to \(2, 10\)"),
    (Detached(), torch.randn(2, 5, 1, dtype=torch.float64), "does not depend on x"),
    ("not a module", torch.randn(2, 5, 2), "model is a str"),
])
def test_bad_input_one_line(model, x, match):
    with pytest.raises((ValueError, TypeError), match=match) as err:
        input_sensitivity(model, x)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("kw,match", [({"chunk": 0}, "chunk=0"), ({"chunk": 2.5}, "chunk=2.5"),
                                      ({"memory": 0}, "memory=0")])
def test_bad_options_one_line(kw, match):
    with pytest.raises(ValueError, match=match):
        input_sensitivity(GRUHead(2, 4, 2).double(), torch.randn(2, 5, 2, dtype=torch.float64),
                          **kw)


@pytest.mark.parametrize("kw,match", [({"input_size": 0, "output_size": 2}, "input_size=0"),
                                      ({"input_size": 2, "output_size": 2, "value_size": 3},
                                       "value_size=3 needs projection=True")])
def test_attention_bad_sizes(kw, match):
    with pytest.raises(ValueError, match=match):
        CausalSelfAttention(**kw)
    with pytest.raises(ValueError, match=r"x has shape \(2, 5, 3\)"):
        CausalSelfAttention(2, 2)(torch.zeros(2, 5, 3, dtype=torch.float64))


@pytest.mark.gpu
def test_cuda_matches_cpu():
    torch.manual_seed(8)
    model = GRUHead(3, 16, 2).double()
    x = torch.randn(4, 60, 3, dtype=torch.float64)
    cpu = input_sensitivity(model, x, per_sequence=True)
    gpu = input_sensitivity(model.cuda(), x.cuda(), per_sequence=True)
    np.testing.assert_allclose(gpu.per_sequence, cpu.per_sequence, atol=1e-9, rtol=0)
    assert gpu.causal and abs(gpu.decay_rate - cpu.decay_rate) < 1e-9


class Sqrt(nn.Module):
    def forward(self, x):
        return torch.sqrt(x).cumsum(1)


def test_infinite_and_nan_derivatives():
    """d sqrt(x)/dx = inf at x = 0: +inf, not an exact zero; the NaNs autograd makes of it
    above the diagonal (0 * inf) are not reported as non-causal."""
    x = torch.rand(2, 6, 1, dtype=torch.float64) + 0.5
    x[0, 2, 0] = 0.0
    got = quiet(Sqrt(), x, per_sequence=True)
    assert np.isposinf(got.per_sequence[0, 2:, 2]).all() and got.causal
    assert np.isfinite(got.per_sequence[1][np.tril_indices(6)]).all()
