"""Gradient flossing (Engelken 2023, NeurIPS, arXiv:2312.17306; his ``GradientFlossing`` code),
``train.regularizer=flossing`` with the ``floss`` group, for any cell module
(``rnnlab.train.sequence``: every cell of the training app, and a user's own).

The network s_t = step(x_t, s_{t-1}) (s_{-1} = 0, the initial state) is driven by a fresh input
sequence of the task (batch 1: the task's sequences laid end to end, cut at ``floss.run_in +
floss.window`` steps). The first ``floss.run_in`` steps (default 0, as in Engelken's code) only
carry the state from 0 towards the settled one; the window starts there. The k = ``floss.k``
leading Lyapunov exponents of the window's step Jacobians J_t = ds_t/ds_{t-1} come from the QR
method at every step (Benettin et al. 1980; the exact engine's ``lyapunov_from_jacobians`` /
``lyapunov_from_maps``, which are differentiable):

    Z = J_t Q_{t-1},   Q_t R_t = qr(Z),   diag R_t > 0,
    lambda_i = 1/(window - discard) sum_{t >= discard} ln R_t[i, i]

(nats per step, t counted from the window's first step; Q_0 a Haar-random S x k frame applied at
the window's first step, the same for every update of a run, as his code reseeds it; S the state
size: N, or 2N for the LSTM's (h, c) and the LRU's (Re h, Im h)). J_t is formed as
diag(phi'(a_t)) W for a cell that gives these factors (``jacobian_factors``: the Elman cells,
h_t = phi(a_t), a_t = W_ih x_t + b_ih + b_hh + W h_{t-1}), else applied by forward-mode autograd
of the module's ``step`` (``rnnlab.train.sequence.StepMaps``). The flossing loss is
mean_i lambda_i^2 (nats^2 per step^2), differentiated through ``torch.linalg.qr`` and the
Jacobians. The gradient does not flow through the run-in: the state entering the window is held
constant (computed without a graph), so the update is the gradient of the window's estimator
given its start state, as truncated backpropagation would have it, and a run-in costs a forward
pass only. Its own Adam (``floss.lr``) updates every parameter of the cell module (never the
head), without clipping.

Schedule: ``floss.pre_steps`` updates before training; then after every ``floss.every``
training updates another ``floss.steps``, at most ``floss.times`` times. Defaults: his README
example (window 55, discard 10 + ceil(55/10) = 16, Adam 1e-3, 500 updates before training and
500 more every 100 training updates at most twice, no run-in), except k = 16 (his 75 of 80
units).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from .. import tasks
from ..engine.lyapunov import lyapunov_from_jacobians, lyapunov_from_maps, random_frame
from .sequence import Network, StepMaps, as_cell_module, unroll


def flossing_exponents(rnn: nn.Module, x: Tensor, Q0: Tensor, discard: int,
                       run_in: int = 0) -> Tensor:
    """lambda_1 .. lambda_k (nats per step) of the cell module along one input sequence x
    (1, run_in + window, D): the first ``run_in`` steps from the initial state without a graph
    (not averaged; the frame Q0 (S, k) starts after them), then the window, differentiable in the
    module's parameters (module docstring). ``rnn``: a cell module (or a plain torch module,
    ``sequence.as_cell_module``)."""
    module, k, s0 = as_cell_module(rnn), Q0.shape[-1], None
    if run_in:
        with torch.no_grad():
            s0 = unroll(module, x[:, :run_in])[-1]
        x = x[:, run_in:]
    if callable(getattr(module, "jacobian_factors", None)):
        h = torch.stack([s[0] for s in unroll(module, x, s0)])[:, 0]  # (window, N)
        dphi, W = module.jacobian_factors(h)
        return lyapunov_from_jacobians(W, dphi, k, discard, Q0=Q0)
    return lyapunov_from_maps(StepMaps(module, x, s0), x.shape[1], k, discard,
                              Q0=Q0.unsqueeze(0))[0]


def flossing_loss(lam: Tensor) -> Tensor:
    """mean_i lambda_i^2: the exponents pushed towards 0."""
    return (lam ** 2).mean()


def drive(task_name: str, length: int, window: int, rng, dtype) -> Tensor:
    """A fresh input sequence (1, window, D) of the task: its sequences end to end, cut."""
    xs, steps = [], 0
    while steps < window:
        x, _ = tasks.generate(task_name, 1, length, rng)
        xs.append(x[0])
        steps += x.shape[1]
    return torch.from_numpy(np.concatenate(xs)[:window][None]).to(dtype)


class Flosser:
    """The flossing updates of one run: its Adam, its frame Q_0 and its input stream ``rng``
    (a ``numpy.random.RandomState``). ``phases`` counts the flossing phases during training.

    As ``train.regularizer=flossing`` in the training loop (``rnnlab.train.regularizer``):
    ``floss.pre_steps`` updates before training, a phase of ``floss.steps`` after every
    ``floss.every`` training updates (at most ``floss.times``), the task loss's own gradient
    for the training updates; curve column ``floss_loss``, the mean flossing loss of the
    updates since the last evaluation point (at step 0: the updates before training)."""

    columns = ("floss_loss",)

    def __init__(self, cfg, rnn: nn.Module, rng):
        self.cfg, self.rnn, self.rng = cfg, rnn, rng
        module = as_cell_module(rnn)
        self.params = list(module.parameters())
        self.opt = torch.optim.Adam(self.params, lr=cfg.floss_lr)
        dtype = self.params[0].dtype
        state_size = sum(t.shape[-1] for t in module.init_state(1))
        self.Q0 = random_frame(state_size, cfg.floss_k, dtype=dtype,
                               generator=torch.Generator().manual_seed(cfg.seed))
        self.phases = 0
        self.losses: list[float] = []

    def step(self) -> float:
        """One flossing update on a fresh sequence (run-in and window drawn in one piece from
        the run's input stream); returns the loss before it."""
        cfg = self.cfg
        x = drive(cfg.task, cfg.length, cfg.floss_run_in + cfg.floss_window, self.rng,
                  self.Q0.dtype)
        self.opt.zero_grad(set_to_none=True)
        loss = flossing_loss(flossing_exponents(self.rnn, x, self.Q0,
                                                cfg.floss_discard, cfg.floss_run_in))
        if not torch.isfinite(loss):
            return loss.item()
        loss.backward()
        self.opt.step()
        return loss.item()

    def run(self, n: int, at: int) -> str | None:
        """``n`` updates; a failure message if the loss became NaN or inf (at training step
        ``at``), else None."""
        for _ in range(n):
            loss = self.step()
            if not math.isfinite(loss):
                return f"flossing loss became {loss} at step {at}"
            self.losses.append(loss)
        return None

    def due(self, step: int) -> bool:
        """Whether a flossing phase follows training update ``step``."""
        return step % self.cfg.floss_every == 0 and self.phases < self.cfg.floss_times

    def before(self) -> str | None:
        return self.run(self.cfg.floss_pre_steps, at=0)

    def backward(self, net: Network, x: Tensor, y: Tensor) -> Tensor:
        return net.backward(x, y)

    def after_step(self, step: int) -> str | None:
        if not self.due(step):
            return None
        self.phases += 1
        return self.run(self.cfg.floss_steps, at=step)

    def curve(self) -> dict:
        losses, self.losses = self.losses, []
        return {"floss_loss": np.mean(losses) if losses else math.nan}
