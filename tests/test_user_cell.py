"""A cell the user writes, measured through the public API without rnnlab knowing its name:

- a leaky tanh cell (defined here, ten lines) through ``rnnlab.measure_module``: every pair's
  log10 ||dL_t/dh_k|| equals a per-target autograd loop to 1e-10 at T = 200 (float64), with a
  linear head and with an MLP head;
- a two-part state (h, m) named by the module's ``state_parts``: the joint norm and the m part
  alone against autograd (1e-10), and the parts' columns in the lag table;
- ``jacobians='cell'`` on a module without hand-written Jacobians falls back to the derived ones
  and says so once;
- the same cell trains on temporal order through ``rnnlab.train_module`` and, trained, still
  matches autograd (1e-10);
- bad input, each one line naming the value, before any measurement: no step/init_state, a
  state that is not a tuple of (batch, N) tensors, a step that changes the state's shape or
  dtype, x not time-major 3-d, targets that do not cover x.
"""
import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import rnnlab
from rnnlab.engine.heads import Readout
from rnnlab.engine.reference import autograd_log_grad_norms
from rnnlab.engine.step_modules import step_trajectory

TOL = 1e-10


class Leaky(nn.Module):
    """h_t = (1 - a) h_{t-1} + a tanh(W h_{t-1} + U x_t + b)."""

    def __init__(self, D, N, a=0.3):
        super().__init__()
        self.N, self.a = N, a
        self.W = nn.Parameter(torch.randn(N, N) * 1.2 / N ** 0.5)
        self.U = nn.Parameter(torch.randn(N, D) / D ** 0.5)
        self.b = nn.Parameter(torch.zeros(N))

    def init_state(self, batch_size):
        return (self.W.new_zeros(batch_size, self.N),)

    def step(self, x_t, state):
        h, = state
        return ((1 - self.a) * h + self.a * torch.tanh(h @ self.W.T + x_t @ self.U.T + self.b),)


class Momentum(Leaky):
    """A two-part state: m_t = 0.9 m_{t-1} + tanh(W h_{t-1} + U x_t), h_t = h_{t-1} + 0.1 m_t."""

    state_parts = ("h", "m")

    def init_state(self, batch_size):
        return (self.W.new_zeros(batch_size, self.N), self.W.new_zeros(batch_size, self.N))

    def step(self, x_t, state):
        h, m = state
        m = 0.9 * m + torch.tanh(h @ self.W.T + x_t @ self.U.T + self.b)
        return (h + 0.1 * m, m)


def reference(cell, x, y, head, c_index=()):
    """log10 ||dL_t/ds_k|| batch means (T, T) by autograd, one target at a time."""
    C = head.out_features if isinstance(head, nn.Linear) else 5
    readout = Readout(head.weight.detach(), head.bias.detach()) if isinstance(head, nn.Linear) \
        else head
    onehot = nn.functional.one_hot(y, C).double().transpose(0, 1)
    out = autograd_log_grad_norms(cell.step, cell.init_state(x.shape[1]), x.transpose(0, 1),
                                  readout, onehot, loss="xent", c_index=c_index)
    return {k: (v.mean(-1) / math.log(10)).numpy() for k, v in out.items()}


def data(T=200, B=4, D=3, C=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(T, B, D, generator=g, dtype=torch.float64),
            torch.randint(C, (T, B), generator=g))


def close(a, b):
    m = np.isfinite(a)
    assert (m == np.isfinite(b)).all()
    return np.abs(a[m] - b[m]).max()


@pytest.mark.parametrize("head_kind", ["linear", "mlp"])
def test_leaky_cell_matches_autograd(head_kind):
    torch.manual_seed(0)
    cell = Leaky(3, 16).double()
    head = nn.Linear(16, 5).double() if head_kind == "linear" else \
        nn.Sequential(nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 5)).double()
    x, y = data()
    m = rnnlab.measure_module(cell, x, y, head=head, keep_matrix=True, jacobians="derived")
    assert m.log10_grad.shape == (200, 200)
    assert close(m.log10_grad, reference(cell, x, y, head)[""]) < TOL
    assert m.regime in ("vanishing", "exploding", "neutral") and math.isfinite(m.decay_rate)


def test_two_part_state_is_measured_jointly_and_by_part():
    torch.manual_seed(1)
    cell, head = Momentum(3, 6).double(), nn.Linear(6, 5).double()
    x, y = data(T=40, B=2)
    traj = step_trajectory(cell, x, y, head, jacobians="derived")
    assert traj.maps.state_size == 12 and set(traj.maps.parts) == {"m"}
    m = rnnlab.measure_module(cell, x, y, head=head, keep_matrix=True, jacobians="derived")
    ref = reference(cell, x, y, head, c_index=(1,))
    assert close(m.log10_grad, ref[""]) < TOL
    assert "log10_grad_m_mean" in m.lags.columns
    assert np.isfinite(m.lags["log10_grad_m_mean"].iloc[1:]).all()


def test_cell_jacobians_fall_back_to_derived_and_say_so_once():
    class Quiet(Leaky):
        pass

    cell, head = Quiet(3, 4).double(), nn.Linear(4, 5).double()
    x, y = data(T=10, B=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a = rnnlab.measure_module(cell, x, y, head=head)
        rnnlab.measure_module(cell, x, y, head=head)
    said = [str(w.message) for w in caught if "hand-written" in str(w.message)]
    assert len(said) == 1 and "Quiet" in said[0] and "derived" in said[0]
    b = rnnlab.measure_module(cell, x, y, head=head, jacobians="derived")
    assert (a.lags["log10_grad_mean"] - b.lags["log10_grad_mean"]).abs().max() == 0


class NoStep(nn.Module):
    def forward(self, x):
        return x


class Broken(Leaky):
    def __init__(self, fault):
        super().__init__(3, 4)
        self.double()
        self.fault = fault

    def init_state(self, batch_size):
        h = self.W.new_zeros(batch_size, self.N)
        return {"list": [h], "shape": (h[:, None],), "tensor": h}.get(self.fault, (h,))

    def step(self, x_t, state):
        h, = super().step(x_t, state)
        return {"grow": (torch.cat([h, h], -1),), "dtype": (h.float(),),
                "bare": h}.get(self.fault, (h,))


@pytest.mark.parametrize("module, pattern", [
    (NoStep(), r"rnn is a NoStep; .*step\(x_t, state\).*init_state"),
    (Broken("list"), r"Broken.init_state\(2\) is a list; a state must be a non-empty tuple"),
    (Broken("tensor"), r"init_state\(2\) is a Tensor; a state must be a non-empty tuple"),
    (Broken("shape"), r"holds tensors of shape \[\(2, 1, 4\)\]; each part must be \(batch, N_i\)"),
    (Broken("grow"), r"changed the state's shape from \[\(2, 4\)\] to \[\(2, 8\)\]"),
    (Broken("dtype"), r"changed the state's dtype from torch.float64 to torch.float32"),
    (Broken("bare"), r"returned a Tensor; it must return the new state as a tuple of 1"),
])
def test_bad_modules_are_one_line(module, pattern):
    x, y = data(T=6, B=2, C=4)
    with pytest.raises((TypeError, ValueError), match=pattern) as err:
        rnnlab.measure_module(module, x, y)
    assert "\n" not in str(err.value)


def test_bad_shapes_are_one_line():
    cell = Leaky(3, 4).double()
    x, y = data(T=6, B=2, C=4)
    with pytest.raises(ValueError, match=r"x has shape \(6, 3\); .*time-major"):
        rnnlab.measure_module(cell, x[:, 0], y)
    with pytest.raises(ValueError, match=r"y_target covers \(seq, batch\) = \(5, 2\)"):
        rnnlab.measure_module(cell, x, y[:5])


def test_weight_gradient_by_lag_of_a_user_cell():
    """Summed over lags, the weight gradient is autograd's dL/dW of the summed loss."""
    torch.manual_seed(2)
    cell, head = Leaky(3, 5).double(), nn.Linear(5, 4).double()
    x, y = data(T=30, B=2, C=4)
    m = rnnlab.measure_module(cell, x, y, head=head, weight_grad=True, jacobians="derived")
    wg = m.weight_grad
    assert wg["share_ge"].iloc[0] == pytest.approx(1.0, abs=1e-12)
    h, hs = cell.init_state(2), []
    for t in range(30):
        h = cell.step(x[t], h)
        hs.append(h[0])
    L = nn.functional.cross_entropy(head(torch.stack(hs)).reshape(-1, 4), y.reshape(-1),
                                    reduction="sum")
    g, = torch.autograd.grad(L, cell.W)
    total = 10 ** wg["log10_total_norm"].iloc[0]
    assert total == pytest.approx(torch.linalg.matrix_norm(g).item(), rel=1e-10)
    with pytest.raises(ValueError, match=r"weight_grad='V': Leaky has no parameter of that "
                                         r"name; allowed: \['U', 'W', 'b'\]"):
        rnnlab.measure_module(cell, x, y, head=head, weight_grad="V", jacobians="derived")


def test_the_same_cell_trains_on_temporal_order_and_is_measured_after():
    """Trained through the public API (tests/test_user_cell_train.py checks the training
    loop with it in detail), then measured on the task's own sequences: still exact."""
    torch.manual_seed(0)
    cell = Leaky(6, 16, a=0.2)
    result = rnnlab.train_module(cell, task="temporal_order", length=50, steps=1000, lr=0.01,
                                 seed=0, eval_every=100, eval_size=200, test_size=1000,
                                 eval_batch=500, batch_size=20)
    assert result.solved and result.eval_error_rate < 0.01
    cell, head = result.rnn.double(), result.head.double()
    x, y = rnnlab.tasks.generate("temporal_order", 3, 200, np.random.RandomState(0))
    x = torch.from_numpy(x).transpose(0, 1)
    y = torch.randint(head.out_features, (200, 3), generator=torch.Generator().manual_seed(0))
    m = rnnlab.measure_module(cell, x, y, head=head, keep_matrix=True, jacobians="derived")
    assert close(m.log10_grad, reference(cell, x, y, head)[""]) < TOL


def test_training_a_user_cell_records_its_gradient_horizon():
    """The training loop's measure hook (``rnnlab.train.horizon``) takes a user's cell through
    derived maps: its step-0 decay rate equals the last-step loss's slope computed here from
    autograd on the same probe batch (1e-10 nats/step), and every evaluation has a rate."""
    from rnnlab.train import horizon
    from rnnlab.train.data import sample, stream

    torch.manual_seed(3)
    cell = Leaky(6, 8, a=0.5).double()
    result = rnnlab.train_module(cell, task="temporal_order", length=20, steps=20, lr=0.01,
                                 seed=0, eval_every=10, eval_size=20, test_size=20,
                                 eval_batch=20, batch_size=8, probe_size=4, dtype="float64",
                                 measure=horizon.make_measure("temporal_order", max_lag=15,
                                                              lyap_k=2))
    curve = result.curve
    assert curve["decay_rate"].notna().all() and curve["lyap_1"].notna().all()
    # the step-0 rate again, on the initial weights, by autograd
    torch.manual_seed(3)
    cell0 = Leaky(6, 8, a=0.5).double()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        head0 = nn.Linear(8, 4)
    head0 = head0.double()
    x, y = sample("temporal_order", 4, 20, stream(0, "probe"), torch.float64)
    h, hs = cell0.init_state(4), []
    for t in range(20):
        h = cell0.step(x[:, t], h)
        hs.append(h[0])
    L = nn.functional.cross_entropy(head0(hs[-1]), y.argmax(-1), reduction="sum")
    grads = torch.autograd.grad(L, hs)
    ln = torch.stack([torch.log(torch.linalg.vector_norm(g, dim=-1)).mean() for g in grads])
    lags = torch.arange(19, -1, -1, dtype=torch.float64)
    keep = (lags >= 1) & (lags <= 15)
    slope = np.polyfit(lags[keep].numpy(), ln[keep].numpy(), 1)[0]
    assert abs(curve["decay_rate"].iloc[0] - slope) < 1e-10
