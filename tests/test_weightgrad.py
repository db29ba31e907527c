"""The weight gradient by lag (rnnlab.engine.weightgrad) against autograd, and exactly on the
linear case.

- Autograd with a separate copy of W (W_hh) at every step gives dL_t/dW_k, the part of the
  gradient carried by the pair (t, k); grouped by lag t - k, its Frobenius norms equal the
  sweep's to 1e-10 in log10, and so do the tail shares (1e-12), for Elman (tanh, relu), GRU and
  LSTM (torch.nn.GRUCell / LSTMCell through torch.func.functional_call), with max_lag and bins;
- linear W = rho Q: log10 ||G_l|| = l log10 rho + log10 ||sum_k g_{k+l} h_{k-1}^T|| (1e-12);
- an exploding relu network (rho = 10, T = 400: states beyond float64) keeps every group's log
  norm finite.
"""
import math

import numpy as np
import pytest
import torch
from conftest import make
from torch.func import functional_call

from rnnlab.engine.cells import gated
from rnnlab.engine.model import phi, readout_losses
from rnnlab.engine.weightgrad import weight_grad_by_lag

T = 12


def _groups_elman(p, net, loss):
    Ws = [p.W.clone().requires_grad_() for _ in range(T)]
    h, hs = net.h0, []
    for t in range(T):
        h = phi(net.x[:, t] @ p.U.T + p.b + h @ Ws[t].T, p.activation)
        hs.append(h)
    return _group(Ws, hs, p, net, loss, lambda s: s)


def _groups_cell(p, net, loss):
    cell = gated.torch_cell(p)
    N = p.hidden_size
    Ws = [p.weight_hh.clone().requires_grad_() for _ in range(T)]
    weights = {k: getattr(p, k) for k in ("weight_ih", "bias_ih", "bias_hh")}
    s = (net.h0,) if p.cell == "gru" else (net.h0[:, :N], net.h0[:, N:])
    states = []
    for t in range(T):
        out = functional_call(cell, {**weights, "weight_hh": Ws[t]},
                              (net.x[:, t], s[0] if p.cell == "gru" else s))
        s = (out,) if p.cell == "gru" else out
        states.append(s)
    return _group(Ws, states, p, net, loss, lambda s: s[0])


def _group(Ws, states, p, net, loss, top):
    G = torch.zeros(T, *Ws[0].shape, dtype=torch.float64)
    for t in range(T):
        L_t = readout_losses(p, top(states[t]), net.y_target[:, t], loss).sum()
        for k, g in enumerate(torch.autograd.grad(L_t, Ws[:t + 1], retain_graph=True)):
            G[t - k] += g
    return G


def _shares(G):
    total = torch.linalg.matrix_norm(G.sum(0))
    return np.array([(torch.linalg.matrix_norm(G[l:].sum(0)) / total).item()
                     for l in range(G.shape[0])])


CASES = [dict(activation="tanh", spectral_radius=1.3, loss="mse"),
         dict(activation="relu", spectral_radius=1.1, loss="xent"),
         dict(cell="gru", init="pytorch", loss="mse"),
         dict(cell="lstm", init="orthogonal", spectral_radius=1.5, loss="xent")]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.get("cell", c.get("activation")))
def test_groups_match_autograd(case):
    case = dict(case)
    loss = case.pop("loss")
    net, p, traj = make(seed=2, hidden_size=6, input_size=3, output_size=4, seq_len=T,
                        batch_size=3, h0_std=0.5, loss=loss, **case)
    G = (_groups_cell if "cell" in case else _groups_elman)(p, net, loss)
    out = weight_grad_by_lag(traj)
    ref = torch.log10(torch.linalg.matrix_norm(G)).numpy()
    assert np.abs(out["log10_norm"] - ref).max() < 1e-10
    assert np.abs(out["share_ge"] - _shares(G)).max() < 1e-12
    total = G.sum(0)
    proj = [((G[l:].sum(0) * total).sum() / (total * total).sum()).item() for l in range(T)]
    assert np.abs(out["projection_share_ge"] - proj).max() < 1e-12
    binned = weight_grad_by_lag(traj, max_lag=8, bin_width=4)
    ref_b = [torch.log10(torch.linalg.matrix_norm(G[a:min(a + 4, 9)].sum(0))).item()
             for a in (0, 4, 8)]
    assert list(binned["lag"]) == [0, 4, 8] and list(binned["lag_hi"]) == [3, 7, 8]
    assert np.abs(binned["log10_norm"] - ref_b).max() < 1e-10


def test_linear_orthogonal_groups_shrink_like_rho_to_the_lag():
    rho = 0.8
    net, p, traj = make(seed=5, activation="linear", init="orthogonal", spectral_radius=rho,
                        hidden_size=9, input_size=4, output_size=5, seq_len=30, batch_size=2,
                        h0_std=1.0)
    out = weight_grad_by_lag(traj)
    hs = traj.u.double()  # linear, |h| moderate: no log scale in use
    assert torch.all(traj.log_scale == 0)
    h_prev = torch.cat([traj.h0[None], hs[:-1]])
    g = traj.g_dir.double() * torch.exp(traj.g_log_norm).unsqueeze(-1)
    for l in (0, 1, 7, 29):
        M = sum(g[k + l].T @ h_prev[k] for k in range(30 - l))
        expected = l * math.log10(rho) + math.log10(torch.linalg.matrix_norm(M).item())
        assert abs(out["log10_norm"][l] - expected) < 1e-12


def test_exploding_relu_stays_finite():
    net, p, traj = make(seed=0, activation="relu", spectral_radius=10.0, hidden_size=8,
                        seq_len=400, batch_size=2, input_size=8)
    out = weight_grad_by_lag(traj, max_lag=399, bin_width=10)
    # states reach ~1e400 and the softmax saturates: the groups span ~270 orders of magnitude
    assert np.isfinite(out["log10_norm"]).all() and np.ptp(out["log10_norm"]) > 100
    assert out["share_ge"][0] == pytest.approx(1.0)


def test_training_table_is_the_trained_losss_decomposition():
    """For a last-step task (temporal order) the table decomposes the gradient of the loss at
    the last step alone: against autograd through torch.nn.RNNCell with a copy of W_hh at every
    step (1e-10 in log10), one pair per lag."""
    from rnnlab import tasks
    from rnnlab.train.horizon import weight_grad_table

    torch.manual_seed(0)
    rnn, head = torch.nn.RNN(6, 8, batch_first=True).double(), torch.nn.Linear(8, 4).double()
    x, y = tasks.generate("temporal_order", 3, 20, np.random.RandomState(0))
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    table = weight_grad_table(rnn, head, "temporal_order", x, y)
    cell = torch.nn.RNNCell(6, 8).double()
    cell.load_state_dict({k.removesuffix("_l0"): v for k, v in rnn.state_dict().items()})
    L = x.shape[1]
    Ws = [cell.weight_hh.detach().clone().requires_grad_() for _ in range(L)]
    h = torch.zeros(3, 8, dtype=torch.float64)
    for t in range(L):
        h = functional_call(cell, {"weight_ih": cell.weight_ih, "weight_hh": Ws[t],
                                   "bias_ih": cell.bias_ih, "bias_hh": cell.bias_hh}, (x[:, t], h))
    loss = -(y * torch.log_softmax(head(h), -1)).sum()
    grads = torch.autograd.grad(loss, Ws)
    with np.errstate(divide="ignore"):
        ref = np.log10([torch.linalg.matrix_norm(grads[L - 1 - l]).item() for l in range(L)])
    got = table["log10_norm"].to_numpy()
    assert (table["n_pairs"] == 1).all()
    assert np.isneginf(ref[-1]) and np.isneginf(got[-1])  # h_{-1} = 0: lag T-1 carries nothing
    assert np.abs(got[:-1] - ref[:-1]).max() < 1e-10
