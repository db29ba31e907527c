"""The decay rate of a model being trained, on its task's own inputs, by the exact engine.

At each evaluation point of a training run (``rnnlab.train.train(..., measure=...)``) the model's
||dL_t/dh_k|| is measured for every pair k <= t with t - k <= ``max_lag`` on a fixed probe batch
of task sequences, in float64, by the log-domain adjoint sweep (``rnnlab.modules.measure_module``
for ``torch.nn.RNN`` / ``GRU`` / ``LSTM``; ``rnnlab.gradients`` directly for Pascanu's logistic
``SigmoidRNN``, an Elman cell torch does not offer). The decay rate is the least-squares slope of
the mean ln (||dL_t/dh_k|| / ||dL_t/dh_t||) against the lag over 1..``max_lag`` (nats per step,
``rnnlab.fit.fit_decay``); 1/|rate| is the gradient horizon in steps.

The engine reads a loss at every step. The last-step tasks have one target per sequence; it is
given at every step (the task's target repeated), so the ratio measures how the network carries a
gradient back from any step, the quantity the rate of Pascanu et al. 2013 (their Fig. 6)
summarises; the copy task already has a target per step. Regression tasks use the raw readout's
squared error (``mse_linear``), classification tasks cross-entropy of the logits (``xent``).
"""
from __future__ import annotations

import copy
import math

import torch
from torch import Tensor, nn

from . import gradients, tasks
from .fit import fit_decay
from .model import ElmanParams
from .modules import measure_module

MAX_LAG = 50  # lags fitted: 1..50, as Pascanu et al. 2013 and experiments/initial_decay.py


def _per_step_targets(task: tasks.TaskSpec, y: Tensor, steps: int) -> Tensor:
    """(B, T, C) targets: copy's own, or the last-step target at every step."""
    if task.readout == "all":
        return y
    return y.unsqueeze(1).expand(y.shape[0], steps, y.shape[-1])


def decay_rate(rnn: nn.Module, head: nn.Linear, task_name: str, x: Tensor, y: Tensor,
               max_lag: int = MAX_LAG) -> float:
    """The fitted decay rate (nats per step) of ``rnn``/``head`` on the batch (x, y) of task
    ``task_name``, in float64; NaN when fewer than two lags can be fitted or a norm is not
    finite. The modules are copied, never changed."""
    task = tasks.spec(task_name)
    rnn, head = copy.deepcopy(rnn).double(), copy.deepcopy(head).double()
    x = x.double()
    target = _per_step_targets(task, y.double(), x.shape[1])
    loss = "mse_linear" if task.loss == "mse" else "xent"
    lag_max = min(max_lag, x.shape[1] - 1)
    if isinstance(rnn, (nn.RNN, nn.GRU, nn.LSTM)):
        rate = measure_module(rnn, x, target, head, loss=loss, max_lag=lag_max,
                              fit_max_lag=lag_max).decay_rate
    else:  # SigmoidRNN: h_t = sigmoid(W_ih x_t + W_hh h_{t-1} + b), the same engine
        with torch.no_grad():
            p = ElmanParams(rnn.weight_ih_l0, rnn.weight_hh_l0,
                            rnn.bias_ih_l0 + rnn.bias_hh_l0, head.weight, head.bias, "sigmoid")
            h0 = torch.zeros(x.shape[0], rnn.hidden_size, dtype=torch.float64)
            traj = gradients.forward(p, x, h0, target, loss=loss)
            profile = gradients.pair_profile(traj, lag_max)
        rate = fit_decay(profile.lag, profile.ln_ratio, 1, lag_max)["decay_rate"]
    return float(rate) if rate is not None and math.isfinite(rate) else math.nan


def make_measure(task_name: str, max_lag: int = MAX_LAG):
    """A ``train(..., measure=...)`` hook: the probe batch's decay rate at each evaluation."""
    return lambda rnn, head, x, y: decay_rate(rnn, head, task_name, x, y, max_lag)
