"""``rnnlab.measure_module`` on a user's own torch RNN.

- multi-layer GRU and LSTM (either batch_first), multi-layer relu nn.RNN, a one-layer nn.RNN
  (which takes the Elman path) and the tutorial's class: every log10 ||dL_t/ds_k|| (state = every
  layer's h and c) equals the per-target autograd loop through per-layer torch cells to 1e-10
  in float64, and so does the LSTM's c part;
- any head module: with a two-layer MLP head (``nn.Sequential(Linear, Tanh, Linear)``) on a
  two-layer GRU and LSTM and on one-layer tanh and relu ``nn.RNN`` (each loss), every log10
  ||dL_t/ds_k|| equals the autograd loop through the module and the head to 1e-10, and the
  weight gradient's total ||dL/dW_hh|| equals autograd's to 1e-10 in log10;
- the decay rate equals the fit of the engine's own run on the same weights;
- threads: a call leaves torch's thread count as it found it, and one thread gives the same
  numbers as the default choice;
- unsupported modules and bad arguments (out-of-range class indices, a wrongly shaped or typed
  h0, a head that does not map N to C, a bad thread count) are clear errors naming what is wrong.
"""
import math

import numpy as np
import pytest
import torch
from torch import nn

from rnnlab import measure_module
from rnnlab.engine.model import RNN
from rnnlab.engine.reference import module_reference

TOL = 1e-10


def _data(batch_first, T=14, B=3, D=4, C=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    shape = (B, T) if batch_first else (T, B)
    return (torch.randn(*shape, D, generator=g, dtype=torch.float64),
            torch.randint(C, shape, generator=g))


def _max_diff(fast, ref):
    ok = np.isfinite(ref)
    assert np.array_equal(ok, np.isfinite(fast))
    return np.abs(fast[ok] - ref[ok]).max()


MODULES = [
    ("gru-2", lambda bf: nn.GRU(4, 6, num_layers=2, batch_first=bf), "xent"),
    ("lstm-2", lambda bf: nn.LSTM(4, 6, num_layers=2, batch_first=bf), "mse"),
    ("lstm-3-nobias", lambda bf: nn.LSTM(4, 5, num_layers=3, bias=False, batch_first=bf),
     "mse_linear"),
    ("relu-rnn-2", lambda bf: nn.RNN(4, 6, num_layers=2, nonlinearity="relu", batch_first=bf),
     "xent"),
    ("tanh-rnn-1", lambda bf: nn.RNN(4, 6, batch_first=bf), "mse"),
]


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("name,build,loss", MODULES, ids=[m[0] for m in MODULES])
def test_module_matches_autograd(name, build, loss, batch_first):
    torch.manual_seed(1)
    rnn = build(batch_first).double()
    head = nn.Linear(rnn.hidden_size, 5).double()
    x, y = _data(batch_first)
    got = measure_module(rnn, x, y, head=head, loss=loss, keep_matrix=True, max_lag=9)
    ref = module_reference(rnn, x, y, head=head, loss=loss, max_lag=9)
    assert _max_diff(got.log10_grad, (ref[""] / math.log(10)).mean(-1).numpy()) < TOL
    if isinstance(rnn, nn.LSTM):  # the c part, lag by lag, against the reference's pairs
        ln_c = ref["c"]
        for lag in (1, 4, 9):
            vals = torch.stack([ln_c[t, t - lag] for t in range(lag, 14)])
            assert abs(got.lags["log10_grad_c_mean"][lag] - vals.mean().item() / math.log(10)) \
                < TOL
    assert math.isfinite(got.decay_rate) and got.regime in ("vanishing", "neutral", "exploding")
    assert list(got.lags["lag"]) == list(range(10))


def test_tutorial_class_goes_through_the_same_path():
    torch.manual_seed(2)
    model = RNN(4, 5, 6, n_layers=2).double()
    x, y = _data(True)
    got = measure_module(model, x, y, loss="mse", keep_matrix=True)
    ref = module_reference(model, x, y, loss="mse")
    assert _max_diff(got.log10_grad, (ref[""] / math.log(10)).mean(-1).numpy()) < TOL


def test_one_layer_rnn_equals_the_engines_elman_run():
    """A one-layer nn.RNN is the Elman RNN with U = W_ih, W = W_hh, b = b_ih + b_hh: the
    module's rate is the rate of rnnlab's own measurement of those weights."""
    from rnnlab.engine import adjoint as gradients
    from rnnlab.engine.fit import fit_decay
    from rnnlab.engine.model import ElmanParams

    torch.manual_seed(3)
    rnn, head = nn.RNN(4, 8, nonlinearity="relu").double(), nn.Linear(8, 5).double()
    x, y = _data(False, T=30)
    got = measure_module(rnn, x, y, head=head)
    p = ElmanParams(rnn.weight_ih_l0.detach(), rnn.weight_hh_l0.detach(),
                    (rnn.bias_ih_l0 + rnn.bias_hh_l0).detach(), head.weight.detach(),
                    head.bias.detach(), "relu")
    yb = nn.functional.one_hot(y.transpose(0, 1), 5).double()
    traj = gradients.forward(p, x.transpose(0, 1), torch.zeros(3, 8, dtype=torch.float64), yb,
                             loss="xent")
    prof = gradients.pair_profile(traj)
    assert got.decay_rate == fit_decay(prof.lag, prof.ln_ratio)["decay_rate"]


@pytest.mark.parametrize("module,x_shape,needle", [
    (lambda: nn.GRU(4, 6, bidirectional=True), (5, 2, 4), "bidirectional=True"),
    (lambda: nn.LSTM(4, 6, proj_size=3), (5, 2, 4), "proj_size=3"),
    (lambda: nn.GRU(4, 6, num_layers=2, dropout=0.5).train(), (5, 2, 4), "dropout=0.5"),
    (lambda: nn.GRU(4, 6), (5, 2, 3), "input_size=4"),
    (lambda: nn.Linear(4, 6), (5, 2, 4), "torch.nn.RNN, torch.nn.GRU"),
])
def test_unsupported_modules_are_named(module, x_shape, needle):
    rnn = module()
    x = torch.randn(*x_shape)
    with pytest.raises((ValueError, TypeError)) as err:
        measure_module(rnn, x, torch.zeros(x_shape[:2], dtype=torch.long))
    assert needle in str(err.value)


def test_packed_sequences_are_refused():
    rnn = nn.GRU(4, 6)
    packed = nn.utils.rnn.pack_padded_sequence(torch.randn(5, 2, 4), [5, 3])
    with pytest.raises(ValueError, match="PackedSequence"):
        measure_module(rnn, packed, torch.zeros(5, 2, dtype=torch.long))


def test_head_and_target_mismatches_are_named():
    rnn = nn.GRU(4, 6, batch_first=True).double()
    x, y = _data(True)
    with pytest.raises(ValueError, match="head.in_features=7"):
        measure_module(rnn, x, y, head=nn.Linear(7, 5).double())
    with pytest.raises(ValueError, match="y_target"):
        measure_module(rnn, x, torch.zeros(3, 14, 4, dtype=torch.float64),
                       head=nn.Linear(6, 5).double())
    with pytest.raises(ValueError, match="loss='hinge'"):
        measure_module(rnn, x, y, head=nn.Linear(6, 5).double(), loss="hinge")


def _mlp(N, C=5, hidden=7):
    return nn.Sequential(nn.Linear(N, hidden), nn.Tanh(), nn.Linear(hidden, C)).double()


MLP_CASES = [
    ("gru-2", lambda: nn.GRU(4, 6, num_layers=2, batch_first=True), "xent", True),
    ("lstm-2", lambda: nn.LSTM(4, 6, num_layers=2), "mse", False),
    ("tanh-rnn-1", lambda: nn.RNN(4, 6), "mse_linear", False),
    ("relu-rnn-1", lambda: nn.RNN(4, 6, nonlinearity="relu", batch_first=True), "xent", True),
]


@pytest.mark.parametrize("name,build,loss,batch_first", MLP_CASES, ids=[c[0] for c in MLP_CASES])
def test_any_head_module_matches_autograd(name, build, loss, batch_first):
    torch.manual_seed(4)
    rnn = build().double()
    head = _mlp(rnn.hidden_size)
    x, y = _data(batch_first)
    got = measure_module(rnn, x, y, head=head, loss=loss, keep_matrix=True, max_lag=9)
    ref = module_reference(rnn, x, y, head=head, loss=loss, max_lag=9)
    assert _max_diff(got.log10_grad, (ref[""] / math.log(10)).mean(-1).numpy()) < TOL


def test_mlp_head_weight_grad_matches_autograd():
    from torch.func import functional_call

    torch.manual_seed(5)
    rnn, head = nn.RNN(4, 6, batch_first=True).double(), _mlp(6)
    x, y = _data(True, T=10)
    got = measure_module(rnn, x, y, head=head, loss="xent", weight_grad=True).weight_grad
    cell = nn.RNNCell(4, 6).double()
    cell.load_state_dict({k.removesuffix("_l0"): v for k, v in rnn.state_dict().items()})
    T = x.shape[1]
    Ws = [cell.weight_hh.detach().clone().requires_grad_() for _ in range(T)]
    h, loss = torch.zeros(3, 6, dtype=torch.float64), 0.0
    for t in range(T):
        h = functional_call(cell, {"weight_ih": cell.weight_ih, "weight_hh": Ws[t],
                                   "bias_ih": cell.bias_ih, "bias_hh": cell.bias_hh}, (x[:, t], h))
        loss = loss - torch.log_softmax(head(h), -1).gather(1, y[:, t:t + 1]).sum()
    grads = torch.autograd.grad(loss, Ws)
    # the head enters only through g_t, which every lag group shares; the grouping by lag is
    # checked against autograd in test_weightgrad.py, the total through the MLP head here
    total = torch.linalg.matrix_norm(sum(grads)).item()
    assert abs(got["log10_total_norm"].iloc[0] - math.log10(total)) < TOL


def test_threads_are_the_callers_after_the_call():
    torch.manual_seed(6)
    rnn = nn.GRU(4, 6, batch_first=True).double()
    x, y = _data(True)
    before = torch.get_num_threads()
    default = measure_module(rnn, x, y, keep_matrix=True)
    assert torch.get_num_threads() == before
    one = measure_module(rnn, x, y, keep_matrix=True, threads=1)
    assert torch.get_num_threads() == before
    assert np.array_equal(default.log10_grad, one.log10_grad, equal_nan=True)
    with pytest.raises(ValueError, match="threads=0"):
        measure_module(rnn, x, y, threads=0)


def test_argument_errors_name_the_argument_and_shapes():
    rnn = nn.GRU(4, 6, num_layers=2, batch_first=True).double()
    x, y = _data(True)
    with pytest.raises(ValueError, match=r"class indices from 1 to 6.*\[0, 5\]"):
        measure_module(rnn, x, torch.where(y == 0, 6, y), head=nn.Linear(6, 6).double())
    with pytest.raises(ValueError, match=r"from -1 to"):
        measure_module(rnn, x, y - 1, head=nn.Linear(6, 5).double())
    with pytest.raises(ValueError, match=r"h0 has shape \(2, 6, 3\), expected .*\(2, 3, 6\)"):
        measure_module(rnn, x, y, head=nn.Linear(6, 5).double(),
                       h0=torch.zeros(2, 6, 3, dtype=torch.float64))
    lstm = nn.LSTM(4, 6).double()
    xt, yt = _data(False)
    with pytest.raises(ValueError, match=r"tuple \(h0, c0\)"):
        measure_module(lstm, xt, yt, head=nn.Linear(6, 5).double(),
                       h0=torch.zeros(1, 3, 6, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"c0\) has shape \(1, 3, 5\)"):
        measure_module(lstm, xt, yt, head=nn.Linear(6, 5).double(),
                       h0=(torch.zeros(1, 3, 6, dtype=torch.float64),
                           torch.zeros(1, 3, 5, dtype=torch.float64)))
    with pytest.raises(ValueError, match=r"x has shape \(14, 3, 5\), expected \(seq, batch, 4\)"):
        measure_module(lstm, torch.zeros(14, 3, 5, dtype=torch.float64), yt)
    with pytest.raises(ValueError, match=r"expected \(batch, seq, 4\)"):
        measure_module(rnn, torch.zeros(3, 14, 5, dtype=torch.float64), y)
    with pytest.raises(ValueError, match="head \\(Sequential\\) cannot take"):
        measure_module(rnn, x, y, head=_mlp(7))
