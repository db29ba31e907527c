"""The plain-autograd decay rate of ``experiments/initial_decay.py`` on exact cases (float64):

- tanh ``nn.RNN`` with zero input weights and biases stays at h = 0, so every Jacobian is W = rho Q
  and ln ||dL_t/dh_k|| falls by exactly ln rho per lag: the rate is ln rho to 1e-9, for a last-step
  task (temporal order) and an every-step task (copy, one backward per target);
- ``nn.LSTM`` with every weight zero and forget bias b_f: dc_{k+1}/dc_k = sigmoid(b_f) and h_k does
  not reach step k + 1, so the rate is ln sigmoid(b_f) (b_f = 1: -0.3133) to 1e-9.
"""
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: experiments

from experiments import initial_decay
from rnnlab.engine.init import haar_orthogonal
from rnnlab.train.config import TrainConfig
from rnnlab.train.loop import build, sample, stream


@pytest.mark.parametrize("task,length", [("temporal_order", 60), ("copy", 20)])
def test_zero_state_tanh_rate_is_log_rho(task, length):
    rho = 0.9
    cfg = TrainConfig(task=task, length=length, hidden_size=12, dtype="float64")
    rnn, head = build(cfg)
    with torch.no_grad():
        rnn.weight_ih_l0.zero_()
        rnn.bias_ih_l0.zero_()
        rnn.bias_hh_l0.zero_()
        rnn.weight_hh_l0.copy_(rho * haar_orthogonal(12, torch.Generator().manual_seed(1)))
    x, y = sample(task, 4, length, stream(0, "probe"), torch.float64)
    rate = initial_decay.decay_rate(rnn, head, task, x, y, max_lag=30)
    assert rate == pytest.approx(math.log(rho), abs=1e-9)


def test_lstm_forget_gate_rate():
    cfg = TrainConfig(task="temporal_order", length=40, cell="lstm", hidden_size=6,
                      dtype="float64")
    rnn, head = build(cfg)
    with torch.no_grad():
        for p in rnn.parameters():
            p.zero_()
        rnn.bias_hh_l0[6:12] = 1.0  # forget gate, PyTorch's order i, f, g, o
        rnn.bias_ih_l0[12:18] = 0.5  # g != 0 so that c, h and the loss gradient are not zero
    x, y = sample("temporal_order", 3, 40, stream(0, "probe"), torch.float64)
    logs = initial_decay.log_state_grads(rnn, head, "temporal_order", x, y)
    assert np.isfinite(np.concatenate(list(logs.values()))).all()
    rate = initial_decay.decay_rate(rnn, head, "temporal_order", x, y, max_lag=30)
    assert rate == pytest.approx(math.log(1 / (1 + math.exp(-1.0))), abs=1e-9)
