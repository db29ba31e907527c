"""Gradient flossing (Engelken 2023, NeurIPS, arXiv:2312.17306; his ``GradientFlossing`` code),
``train.regularizer=flossing`` with the ``floss`` group, for every cell of the training app.

The (Elman) network h_t = phi(a_t), a_t = W_ih x_t + b_ih + b_hh + W h_{t-1} (h_{-1} = 0) is
driven by a fresh input sequence of the task (batch 1: the task's sequences laid end to end, cut
at ``floss.run_in + floss.window`` steps). The first ``floss.run_in`` steps (default 0, as in
Engelken's code) only carry the state from h = 0 towards the settled one; the window starts there.
The k = ``floss.k`` leading Lyapunov exponents of the window's step Jacobians
J_t = diag(phi'(a_t)) W come from the QR method at every step (Benettin et al. 1980; the exact
engine's ``lyapunov_from_jacobians``, which is differentiable):

    Z = J_t Q_{t-1},   Q_t R_t = qr(Z),   diag R_t > 0,
    lambda_i = 1/(window - discard) sum_{t >= discard} ln R_t[i, i]

(nats per step, t counted from the window's first step; Q_0 a Haar-random S x k frame applied at
the window's first step, the same for every update of a run, as his code reseeds it; for GRU and
LSTM, J_t is the state-to-state Jacobian of the module's step, S = N or 2N for the LSTM's (h, c),
applied by forward-mode autograd: ``ModuleMaps``), and the flossing loss is mean_i lambda_i^2
(nats^2 per step^2), differentiated through ``torch.linalg.qr`` and phi'(a_t). The gradient does
not flow through the run-in: the state entering the window is held constant (computed without a
graph), so the update is the gradient of the window's estimator given its start state, as truncated
backpropagation would have it, and a run-in costs a forward pass only. Its own Adam (``floss.lr``)
updates the recurrent and input weights and the biases (every parameter of the recurrent module,
never the head), without clipping.

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
from torch.func import functional_call, jvp, vmap

from .. import tasks
from ..engine.lyapunov import lyapunov_from_jacobians, lyapunov_from_maps, random_frame
from ..engine.model import phi_prime_from_h
from .omega import elman_states


class ModuleMaps:
    """The step Jacobians of a one-layer ``nn.GRU`` / ``nn.LSTM`` along x (1, T, D), as the
    engine's Lyapunov QR reads them (``state_size``, ``jvp(t, Q)``): J_t Q by forward-mode
    autograd (``torch.func.jvp``, one tangent per column of Q through ``torch.func.vmap``) of the
    module's step, so it stays differentiable in the module's parameters. The step is
    ``nn.GRUCell`` / ``nn.LSTMCell`` called with the module's own layer-0 tensors (the fused
    CPU kernel of ``nn.LSTM`` in float32 has no forward-mode derivative). The state is the
    engine's: h (GRU), (h, c) side by side (LSTM), h_{-1} = c_{-1} = 0 unless ``s0`` (S,) gives
    the state entering step 0."""

    def __init__(self, rnn: nn.Module, x: Tensor, s0: Tensor | None = None):
        self.x, self.N = x, rnn.hidden_size
        self.lstm = isinstance(rnn, nn.LSTM)
        self.state_size = 2 * self.N if self.lstm else self.N
        # a shell on the meta device: no draw from torch's RNG, no memory; the weights are the
        # module's own tensors
        self.cell = (nn.LSTMCell if self.lstm else nn.GRUCell)(
            rnn.input_size, self.N, device="meta", dtype=x.dtype)
        self.weights = {name: getattr(rnn, f"{name}_l0")
                        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
        states = [x.new_zeros(self.state_size) if s0 is None else s0]
        for t in range(x.shape[1] - 1):
            states.append(self.step(states[-1], x[0, t]))
        self.states = states  # the state entering step t

    def step(self, s: Tensor, x_t: Tensor) -> Tensor:
        if self.lstm:
            h, c = functional_call(self.cell, self.weights,
                                   (x_t[None], (s[None, :self.N], s[None, self.N:])))
            return torch.cat([h[0], c[0]])
        return functional_call(self.cell, self.weights, (x_t[None], s[None]))[0]

    def jvp(self, t: int, Q: Tensor) -> Tensor:
        """J_t Q for a frame Q (1, S, k)."""
        s, x_t = self.states[t], self.x[0, t]
        column = lambda v: jvp(lambda s_: self.step(s_, x_t), (s,), (v,))[1]
        return vmap(column, in_dims=1, out_dims=1)(Q[0]).unsqueeze(0)


def flossing_exponents(rnn: nn.Module, activation: str, x: Tensor, Q0: Tensor,
                       discard: int, run_in: int = 0) -> Tensor:
    """lambda_1 .. lambda_k (nats per step) of the recurrent module along one input sequence x
    (1, run_in + window, D): the first ``run_in`` steps from h = 0 without a graph (not averaged;
    the frame Q0 starts after them), then the window, differentiable in the module's parameters
    (module docstring). Elman cells: J_t = diag(phi'(a_t)) W formed directly; GRU and LSTM:
    ``ModuleMaps``."""
    k = Q0.shape[-1]
    s0 = None
    if run_in:
        with torch.no_grad():
            if isinstance(rnn, (nn.GRU, nn.LSTM)):
                s0 = ModuleMaps(rnn, x[:, :run_in + 1]).states[-1]
            else:
                s0 = elman_states(rnn, activation, x[:, :run_in])[-1]
        x = x[:, run_in:]
    if isinstance(rnn, (nn.GRU, nn.LSTM)):
        return lyapunov_from_maps(ModuleMaps(rnn, x, s0), x.shape[1], k, discard,
                                  Q0=Q0.unsqueeze(0))[0]
    h = torch.stack(elman_states(rnn, activation, x, s0))[:, 0]  # (window, N)
    return lyapunov_from_jacobians(rnn.weight_hh_l0, phi_prime_from_h(h, activation), k,
                                   discard, Q0=Q0)


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
    (a ``numpy.random.RandomState``). ``phases`` counts the flossing phases during training."""

    def __init__(self, cfg, rnn: nn.Module, rng):
        self.cfg, self.rnn, self.rng = cfg, rnn, rng
        self.params = list(rnn.parameters())
        self.opt = torch.optim.Adam(self.params, lr=cfg.floss_lr)
        dtype = next(rnn.parameters()).dtype
        state_size = 2 * cfg.hidden_size if cfg.cell == "lstm" else cfg.hidden_size
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
        loss = flossing_loss(flossing_exponents(self.rnn, cfg.activation, x, self.Q0,
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
