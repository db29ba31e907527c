"""A user's own cell module, defined in this file and unknown to rnnlab, trained through the public
``rnnlab.train_module`` (the loop of every training run, ``rnnlab.train.loop``):

- the leaky tanh cell h_t = (1 - a) h_{t-1} + a tanh(W h_{t-1} + U x_t + b) (a = 0.2, N = 16)
  solves temporal order at T = 50 (fewer than 1% wrong on 1000 fresh test sequences; the
  no-memory baseline is 75% wrong) within 1000 Adam updates: seeds 0..19 needed at most 500
  (measured), and 1000 is twice that; the result holds the user's module, trained in place, and
  records its class name as the cell;
- the regularisers run on it through the cell's ``step`` alone: Omega (its ``omega`` column
  finite and >= 0 after step 0) and gradient flossing (finite ``floss_loss``, the cell's weights
  moved by the updates before training);
- bad input is one line before any compute: a module without ``step``, a ``step`` that returns
  the wrong shapes, an unknown setting, a bad training value.
"""
import math

import pytest
import torch
from torch import nn

import rnnlab

pytestmark = pytest.mark.usefixtures("one_thread")


class Leaky(nn.Module):
    """h_t = (1 - a) h_{t-1} + a tanh(W h_{t-1} + U x_t + b), h_{-1} = 0."""

    def __init__(self, input_size: int, hidden_size: int, a: float, seed: int):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.a, self.hidden_size = a, hidden_size
        self.W = nn.Parameter(torch.randn(hidden_size, hidden_size, generator=g)
                              / math.sqrt(hidden_size))
        self.U = nn.Parameter(torch.randn(hidden_size, input_size, generator=g)
                              / math.sqrt(input_size))
        self.b = nn.Parameter(torch.zeros(hidden_size))

    def init_state(self, batch_size):
        return (self.W.new_zeros(batch_size, self.hidden_size),)

    def step(self, x_t, state):
        h = state[0]
        return ((1 - self.a) * h + self.a * torch.tanh(h @ self.W.T + x_t @ self.U.T + self.b),)


SETTINGS = dict(eval_every=100, eval_size=200, test_size=1000, eval_batch=500, batch_size=20)


def test_leaky_cell_learns_temporal_order():
    cell = Leaky(6, 16, 0.2, seed=0)
    W0 = cell.W.detach().clone()
    result = rnnlab.train_module(cell, task="temporal_order", length=50, steps=1000, lr=0.01,
                                 seed=0, **SETTINGS)
    assert result.status == "completed" and result.solved, result.curve
    assert result.eval_error_rate < 0.01 and result.eval_count == 1000
    assert result.baseline_error_rate == 0.75
    assert result.rnn is cell and not torch.equal(cell.W, W0)
    assert result.config["cell"] == "Leaky" and result.config["hidden_size"] == 16
    assert rnnlab.train.train_module is rnnlab.train_module


SHORT = dict(task="temporal_order", length=12, steps=10, lr=0.01, eval_every=5, eval_size=20,
             test_size=20, eval_batch=20, batch_size=8)


def test_omega_and_flossing_run_on_the_users_cell():
    result = rnnlab.train_module(Leaky(6, 8, 0.5, seed=1), regularizer="omega", reg_weight=1.0,
                                 **SHORT)
    omega = result.curve["omega"]
    assert result.status == "completed" and math.isnan(omega.iloc[0])
    assert (omega.iloc[1:] >= 0).all() and omega.iloc[1:].notna().all()
    cell = Leaky(6, 8, 0.5, seed=1)
    W0 = cell.W.detach().clone()
    result = rnnlab.train_module(cell, regularizer="flossing", floss_k=2, floss_window=12,
                                 floss_discard=3, floss_pre_steps=3, **{**SHORT, "steps": 0})
    assert result.status == "completed" and math.isfinite(result.curve["floss_loss"].iloc[0])
    assert not torch.equal(cell.W, W0)  # steps=0: only the flossing updates moved it


class NoStep(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(3))


class WrongShape(Leaky):
    def step(self, x_t, state):
        return (state[0][:, :-1],)


@pytest.mark.parametrize("cell,change,error,message", [
    (NoStep(), {}, TypeError, r"^cell is a NoStep; it must be a torch.nn.Module with step"),
    (WrongShape(6, 4, 0.5, 0), {}, ValueError,
     r"^WrongShape.step\(x_t, state\) changed the state's shape from \[\(2, 4\)\] to "
     r"\[\(2, 3\)\]"),
    (Leaky(6, 4, 0.5, 0), dict(activation="relu"), ValueError,
     r"^train_module got the setting 'activation', which is not allowed; allowed: optimizer, "),
    (Leaky(6, 4, 0.5, 0), dict(lr=-1.0), ValueError, r"^train.lr=-1.0 is not allowed"),
    (Leaky(6, 4, 0.5, 0), dict(task="adding"), ValueError, r"^task='adding' is not allowed"),
])
def test_bad_input_is_one_line(cell, change, error, message):
    with pytest.raises(error, match=message) as err:
        rnnlab.train_module(cell, **{**SHORT, **change})
    assert "\n" not in str(err.value)
