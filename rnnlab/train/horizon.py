"""The decay rate and the Lyapunov exponents of a model being trained, on its task's own inputs,
by the exact engine.

At each evaluation point of a training run (``rnnlab.train.loop.train(..., measure=...)``) one
float64 forward pass of the engine (``trajectory``: the registered cell's recorded forward,
``Cell.forward``, of the weights the trained module gives, ``engine_params(head)``; g_t = dL_t/ds_t
through the head's linear readout, or by autograd through the module's ``features`` and the head
where the readout sees more than h, the LRU block's MLP) on a fixed probe batch of task sequences
gives:

- the decay rate (nats per step; 1/|rate| is the gradient horizon in steps). For the last-step
  tasks it is that of the loss actually trained, read at the last step: the least-squares slope
  of the batch mean of ln ||dL/dh_k|| against the lag T-1-k over lags 1..``max_lag`` (Pascanu
  et al. 2013 report it on temporal order, lags 1-50), from the O(T) profile of the last step's
  loss (``rnnlab.engine.adjoint.loss_profiles``, one backward pass). The engine takes a target
  at every step; the task's target is repeated there, and the last step's profile reads only
  g_{T-1}. For copy (a loss at every step) the rate is fitted over every pair with
  t - k <= ``max_lag`` (``fit_decay``); the delayed tasks likewise, over the scored steps t.
- with ``train.lyap_k`` > 0, the k leading Lyapunov exponents of the same trajectory's step
  Jacobians by the engine's QR (``lyapunov``), the mean over the probe sequences.

Regression tasks use the raw readout's squared error (``mse_linear``), classification tasks
cross-entropy of the logits (``xent``).
"""
from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from .. import tasks
from ..engine import adjoint, cells, derived, stacks
from ..engine.fit import fit_decay
from ..engine.heads import Readout
from ..engine.logspace import unit
from ..engine.lyapunov import frame_transient, lyapunov_from_maps, random_frame
from ..engine.model import readout_losses
from ..engine.threads import threads_for, torch_threads
from ..engine.weightgrad import WeightGradStats
from .orthogonal import plain_copy
from .sequence import as_cell_module

MAX_LAG = 50  # lags fitted: 1..50, as Pascanu et al. 2013 and experiments/initial_decay.py


def _per_step_targets(task: tasks.TaskSpec, y: Tensor, steps: int) -> Tensor:
    """(B, T, C) targets: copy's own, or the last-step target at every step."""
    if task.readout == "all":
        return y
    return y.unsqueeze(1).expand(y.shape[0], steps, y.shape[-1])


def _prepare(rnn: nn.Module, head: nn.Linear, task_name: str, x: Tensor, y: Tensor):
    """float64 copies of the modules (never changed; a plain torch ``nn.RNN`` / ``GRU`` /
    ``LSTM`` as its cell's module), x, the engine's per-step targets and its loss for the task:
    the raw readout's squared error for regression, cross-entropy else.

    Binary cross-entropy on one logit o (the delayed tasks) is the engine's two-class
    cross-entropy on the logits (0, o): both have dL/do = sigmoid(o) - y. The head becomes the
    two-row readout [0; V], [0; c] and the target bit the one-hot (1 - y, y); unscored steps
    (NaN) get class 0 and are left out by ``_scored``."""
    task = tasks.spec(task_name)
    head = copy.deepcopy(head).double()
    target = _per_step_targets(task, y.double(), x.shape[1])
    loss = "mse_linear" if task.loss == "mse" else "xent"
    if task.loss == "bce":
        two = nn.Linear(head.in_features, 2).double()
        with torch.no_grad():
            two.weight.copy_(torch.cat([torch.zeros_like(head.weight), head.weight]))
            two.bias.copy_(torch.cat([torch.zeros_like(head.bias), head.bias]))
        bits = torch.nan_to_num(target[..., 0]).long()
        head, target = two, nn.functional.one_hot(bits, 2).double()
    return as_cell_module(plain_copy(rnn)).double(), head, x.double(), target, loss


def _scored(task: tasks.TaskSpec, y: Tensor, steps: int) -> Tensor:
    """(B, T) True where the task scores a prediction (NaN targets of the bce tasks are not)."""
    if task.loss == "bce":
        return torch.isfinite(y).all(-1)
    scored = torch.zeros(y.shape[0], steps, dtype=torch.bool)
    scored[:, -1] = True
    return scored.fill_(True) if task.readout == "all" else scored


def _feature_gradient(rnn: nn.Module, head: nn.Module, recorded: cells.Recorded, x: Tensor,
                      target: Tensor, loss: str):
    """g_t = dL_t/dh_t (direction, ln norm) through the module's ``features`` (what its readout
    sees beside h: the LRU block's Re(C h) + D x and MLP) and the head, by autograd in float64
    (a nonlinear readout, so the engine's linear-readout gradient does not apply)."""
    h = (torch.exp(recorded.log_scale).unsqueeze(-1) * recorded.u.double()).requires_grad_()
    with torch.enable_grad():
        out = head(rnn.features(h, x.transpose(0, 1)))
        L = readout_losses(lambda o: o, out, target.transpose(0, 1), loss).sum()
        g, = torch.autograd.grad(L, h)
    return unit(g)


def _trajectory(rnn: nn.Module, head: nn.Linear, x: Tensor, target: Tensor, loss: str):
    """The engine's forward pass of float64 modules from the initial state: the cell's recorded
    step maps of ``rnn.engine_params(head)`` (a user's own cell module: maps derived from its
    ``step``, ``rnnlab.engine.derived``) and g_t of every step."""
    state0 = rnn.init_state(x.shape[0])
    if isinstance(rnn, stacks.StackModule):  # the readout reads y^L, a function of every layer
        with torch_threads(threads_for(x.device, x.shape[0], state0[0].shape[-1])):
            return stacks.module_trajectory(rnn, head, x, target, loss)
    with torch.no_grad(), torch_threads(threads_for(x.device, x.shape[0], state0[0].shape[-1])):
        if hasattr(rnn, "engine_params"):
            p = rnn.engine_params(head)
            recorded = cells.get(p.cell).forward(p, x, torch.cat(state0, -1))
        else:  # a user's own cell: its step maps derived from its step
            p = Readout(head.weight.detach(), head.bias.detach())
            recorded = derived.record(rnn.step, x, tuple(state0), 0,
                                      getattr(rnn, "state_parts", None))
        grad = _feature_gradient(rnn, head, recorded, x, target, loss) \
            if callable(getattr(rnn, "features", None)) else None
        return adjoint.trajectory(recorded, p, target, loss, grad=grad)


def trajectory(rnn: nn.Module, head: nn.Linear, task_name: str, x: Tensor, y: Tensor):
    """The exact engine's forward pass (``rnnlab.engine.adjoint.Trajectory``) of ``rnn``/``head``
    on the batch (x, y) of task ``task_name``, in float64, on copies of the modules. ``rnn``: a
    registered cell's module (``engine_params``), or a plain one-layer torch module of one."""
    task = tasks.spec(task_name)
    rnn, head, x, target, loss = _prepare(rnn, head, task_name, x, y)
    traj = _trajectory(rnn, head, x, target, loss)
    if task.loss == "bce":  # no loss at an unscored step: g_t = 0 there (no ratio, no pair)
        traj.g_dir[~_scored(task, y, x.shape[1]).T] = 0
    return traj


def log10_grad_matrix(rnn: nn.Module, head: nn.Linear, task_name: str, x: Tensor, y: Tensor,
                      max_lag: int | None = None):
    """(T, T) batch mean of log10 ||dL_t/dh_k|| (rows t, columns k; NaN where k > t or t - k >
    ``max_lag``) and the fit over all pairs, by the exact engine in float64 (the all-pairs
    sweep). The modules are copied, never changed."""
    profile = adjoint.pair_profile(trajectory(rnn, head, task_name, x, y), max_lag,
                                   keep_matrix=True)
    return profile.log10_grad, fit_decay(profile.lag, profile.ln_ratio, 1, max_lag)


def _rate(traj: adjoint.Trajectory, task: tasks.TaskSpec, max_lag: int) -> float:
    """The decay rate of a trajectory (see ``decay_rate``); NaN when not finite."""
    T = traj.shape[0]
    lag_max = min(max_lag, T - 1)
    if task.readout == "all":
        profile = adjoint.pair_profile(traj, lag_max)
        rate = fit_decay(profile.lag, profile.ln_ratio, 1, lag_max)["decay_rate"]
    else:
        # the last-step loss's O(T) profile: ln ||dL_{T-1}/dh_k||, indexed by the lag T-1-k
        _, ln_grad, _ = adjoint.loss_profiles(traj)
        lags = np.arange(1, lag_max + 1)
        ln = ln_grad[1:lag_max + 1].mean(1).cpu().numpy()
        rate = np.polyfit(lags, ln, 1)[0] if len(lags) >= 2 and np.isfinite(ln).all() \
            else math.nan
    return float(rate) if rate is not None and math.isfinite(rate) else math.nan


def decay_rate(rnn: nn.Module, head: nn.Linear, task_name: str, x: Tensor, y: Tensor,
               max_lag: int = MAX_LAG) -> float:
    """The decay rate (nats per step) of ``rnn``/``head`` on the batch (x, y) of task
    ``task_name``, lags 1..``max_lag``, in float64; NaN when not finite.

    Last-step tasks (the loss L is read at the last step T-1 only): the least-squares slope of
    the batch mean of ln ||dL/dh_k|| against the lag T-1-k, the quantity of Pascanu et al. 2013
    (temporal order, lags 1-50), read from the O(T) profile of the last step's loss
    (``rnnlab.engine.adjoint.loss_profiles``: one backward pass, no pair sweep). Copy (a loss
    at every step): the slope of the mean ln (||dL_t/dh_k|| / ||dL_t/dh_t||) over every pair
    with t - k <= ``max_lag`` (``rnnlab.engine.fit.fit_decay``)."""
    traj = trajectory(rnn, head, task_name, x, y)
    return _rate(traj, tasks.spec(task_name), max_lag)


def lyapunov(traj: adjoint.Trajectory, k: int, seed: int = 0) -> np.ndarray:
    """lambda_1 .. lambda_k (nats per step): the k leading Lyapunov exponents of the
    trajectory's step Jacobians by the exact engine's QR (Benettin et al. 1980;
    ``rnnlab.engine.lyapunov.lyapunov_from_maps``), per probe sequence, then the mean over the
    probe batch. The first ``frame_transient(T)`` steps align the frame and are not averaged;
    the initial frame is Haar-random from a generator seeded with ``seed``, the same frame at
    every evaluation of a run."""
    T, B, S = traj.shape
    g = torch.Generator().manual_seed(seed)
    Q0 = random_frame(S, k, (B,), dtype=traj.u.dtype, generator=g)
    with torch.no_grad():
        lam = lyapunov_from_maps(traj.maps, T, k, frame_transient(T), Q0=Q0)
    return lam.mean(0).cpu().numpy()


def evaluation_measures(rnn: nn.Module, head: nn.Linear, task_name: str, x: Tensor, y: Tensor,
                        lyap_k: int = 0, max_lag: int = MAX_LAG, seed: int = 0) -> dict:
    """What curve.parquet records at an evaluation beside the scores: ``decay_rate`` and
    ``lyap_1`` .. ``lyap_k`` (with ``lyap_k`` > 0), from one float64 forward pass of the probe
    batch (x, y)."""
    traj = trajectory(rnn, head, task_name, x, y)
    out = {"decay_rate": _rate(traj, tasks.spec(task_name), max_lag)}
    if lyap_k:
        lam = lyapunov(traj, lyap_k, seed)
        out.update({f"lyap_{i + 1}": float(v) for i, v in enumerate(lam)})
    return out


def make_measure(task_name: str, max_lag: int = MAX_LAG, lyap_k: int = 0, seed: int = 0):
    """A ``train(..., measure=...)`` hook: the probe batch's ``evaluation_measures``."""
    return lambda rnn, head, x, y: evaluation_measures(rnn, head, task_name, x, y, lyap_k,
                                                       max_lag, seed)


def weight_grad_table(rnn: nn.Module, head: nn.Linear, task_name: str, x: Tensor, y: Tensor,
                      max_lag: int | None = None) -> pd.DataFrame:
    """Where the update comes from: the part of dL/dW_hh carried by each lag t - k for the loss
    actually trained on the batch (x, y): the last step's for adding, multiplication and temporal
    order, every step's for copy, every scored step's for the delayed tasks
    (``rnnlab.engine.weightgrad``; the rows of weight_grad.parquet). Float64, on copies of the
    modules; one-layer modules."""
    steps = _scored(tasks.spec(task_name), y, x.shape[1])[0]  # the same steps in every sequence
    rnn, head, x, target, loss = _prepare(rnn, head, task_name, x, y)
    traj = _trajectory(rnn, head, x, target, loss)
    with torch.no_grad(), torch_threads(threads_for(x.device, x.shape[0], rnn.hidden_size)):
        stats = WeightGradStats(traj, max_lag, loss_steps=steps)
        adjoint.pair_profile(traj, max_lag, also=stats)
    return pd.DataFrame(stats.result())
