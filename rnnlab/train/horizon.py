"""The decay rate of a model being trained, on its task's own inputs, by the exact engine.

At each evaluation point of a training run (``rnnlab.train.loop.train(..., measure=...)``) the
model's ||dL_t/dh_k|| is measured for every pair k <= t with t - k <= ``max_lag`` on a fixed probe
batch of task sequences, in float64, by the log-domain adjoint sweep
(``rnnlab.engine.torch_modules.measure_module`` for ``torch.nn.RNN`` / ``GRU`` / ``LSTM``;
``rnnlab.engine.adjoint`` directly for Pascanu's logistic ``SigmoidRNN``,
an Elman cell torch does not offer). The decay rate is the least-squares slope of
the mean ln ||dL_t/dh_k|| against the lag over 1..``max_lag`` (nats per step); 1/|rate| is the
gradient horizon in steps.

For the last-step tasks the rate is that of the loss actually trained, read at the last step:
the slope of ln ||dL/dh_k|| against the lag T-1-k (Pascanu et al. 2013 report it on temporal
order, lags 1-50). The engine takes a target at every step; the task's target is repeated there,
which leaves the row t = T-1 exactly the last-step loss's gradient. For copy (a loss at every
step) the rate is fitted over every pair. Regression tasks use the raw readout's squared error
(``mse_linear``), classification tasks cross-entropy of the logits (``xent``).
"""
from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from .. import tasks
from ..engine import adjoint
from ..engine.fit import fit_decay
from ..engine.model import ElmanParams
from ..engine.torch_modules import measure_module
from ..engine.weightgrad import WeightGradStats
from .orthogonal import plain_copy

MAX_LAG = 50  # lags fitted: 1..50, as Pascanu et al. 2013 and experiments/initial_decay.py


def _per_step_targets(task: tasks.TaskSpec, y: Tensor, steps: int) -> Tensor:
    """(B, T, C) targets: copy's own, or the last-step target at every step."""
    if task.readout == "all":
        return y
    return y.unsqueeze(1).expand(y.shape[0], steps, y.shape[-1])


def _prepare(rnn: nn.Module, head: nn.Linear, task_name: str, x: Tensor, y: Tensor):
    """float64 copies of the modules (never changed), x, the engine's per-step targets and its
    loss for the task: the raw readout's squared error for regression, cross-entropy else."""
    task = tasks.spec(task_name)
    target = _per_step_targets(task, y.double(), x.shape[1])
    loss = "mse_linear" if task.loss == "mse" else "xent"
    return plain_copy(rnn).double(), copy.deepcopy(head).double(), x.double(), target, loss


def _sigmoid_trajectory(rnn, head, x: Tensor, target: Tensor, loss: str):
    """Pascanu's SigmoidRNN, h_t = sigmoid(W_ih x_t + W_hh h_{t-1} + b), as an Elman network."""
    w = [t.detach() for t in (rnn.weight_ih_l0, rnn.weight_hh_l0,
                              rnn.bias_ih_l0 + rnn.bias_hh_l0, head.weight, head.bias)]
    h0 = torch.zeros(x.shape[0], rnn.hidden_size, dtype=torch.float64)
    return adjoint.forward(ElmanParams(*w, "sigmoid"), x, h0, target, loss=loss)


def log10_grad_matrix(rnn: nn.Module, head: nn.Linear, task_name: str, x: Tensor, y: Tensor,
                      max_lag: int | None = None):
    """(T, T) batch mean of log10 ||dL_t/dh_k|| (rows t, columns k; NaN where k > t or t - k >
    ``max_lag``) and the fit over all pairs, by the exact engine in float64. The modules are
    copied, never changed."""
    rnn, head, x, target, loss = _prepare(rnn, head, task_name, x, y)
    if isinstance(rnn, (nn.RNN, nn.GRU, nn.LSTM)):
        m = measure_module(rnn, x, target, head, loss=loss, max_lag=max_lag, keep_matrix=True,
                           fit_max_lag=max_lag)
        return m.log10_grad, m.fit
    traj = _sigmoid_trajectory(rnn, head, x, target, loss)
    profile = adjoint.pair_profile(traj, max_lag, keep_matrix=True)
    return profile.log10_grad, fit_decay(profile.lag, profile.ln_ratio, 1, max_lag)


def decay_rate(rnn: nn.Module, head: nn.Linear, task_name: str, x: Tensor, y: Tensor,
               max_lag: int = MAX_LAG) -> float:
    """The decay rate (nats per step) of ``rnn``/``head`` on the batch (x, y) of task
    ``task_name``, lags 1..``max_lag``, in float64; NaN when not finite.

    Last-step tasks (the loss L is read at the last step T-1 only): the least-squares slope of
    the batch mean of ln ||dL/dh_k|| against the lag T-1-k, the quantity of Pascanu et al. 2013
    (temporal order, lags 1-50). Copy (a loss at every step): the slope of the mean
    ln (||dL_t/dh_k|| / ||dL_t/dh_t||) over every pair (``rnnlab.engine.fit.fit_decay``)."""
    task = tasks.spec(task_name)
    T = x.shape[1]
    lag_max = min(max_lag, T - 1)
    matrix, fit = log10_grad_matrix(rnn, head, task_name, x, y, lag_max)
    if task.readout == "all":
        rate = fit["decay_rate"]
    else:
        lags = np.arange(1, lag_max + 1)
        ln = matrix[T - 1, T - 1 - lags] * math.log(10)
        rate = np.polyfit(lags, ln, 1)[0] if len(lags) >= 2 and np.isfinite(ln).all() \
            else math.nan
    return float(rate) if rate is not None and math.isfinite(rate) else math.nan


def make_measure(task_name: str, max_lag: int = MAX_LAG):
    """A ``train(..., measure=...)`` hook: the probe batch's decay rate at each evaluation."""
    return lambda rnn, head, x, y: decay_rate(rnn, head, task_name, x, y, max_lag)


def weight_grad_table(rnn: nn.Module, head: nn.Linear, task_name: str, x: Tensor, y: Tensor,
                      max_lag: int | None = None) -> pd.DataFrame:
    """Where the update comes from: the part of dL/dW_hh carried by each lag t - k for the loss
    actually trained on the batch (x, y): the last step's for adding, multiplication and temporal
    order, every step's for copy (``rnnlab.engine.weightgrad``; the rows of weight_grad.parquet).
    Float64, on copies of the modules; one-layer modules."""
    rnn, head, x, target, loss = _prepare(rnn, head, task_name, x, y)
    steps = torch.ones(x.shape[1], dtype=torch.bool)
    if tasks.spec(task_name).readout != "all":
        steps[:-1] = False
    if isinstance(rnn, (nn.RNN, nn.GRU, nn.LSTM)):
        return measure_module(rnn, x, target, head, loss=loss, max_lag=max_lag,
                              weight_grad=True, loss_steps=steps).weight_grad
    traj = _sigmoid_trajectory(rnn, head, x, target, loss)
    stats = WeightGradStats(traj, max_lag, loss_steps=steps)
    adjoint.pair_profile(traj, max_lag, also=stats)
    return pd.DataFrame(stats.result())
