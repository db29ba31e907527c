"""Pascanu, Mikolov, Bengio 2013's regulariser Omega (arXiv:1211.5063, section 3.3, eq. 9-10),
``train.regularizer=omega`` with ``train.reg_weight`` = alpha, for any cell module
(``rnnlab.train.sequence``):

    Omega = mean over (k, b) of ( ||delta_{k+1}^T J_{k+1}|| / ||delta_{k+1}|| - 1 )^2,

with delta_{k+1} = dE/ds_{k+1} the total gradient of the trained loss E with respect to the state
s_{k+1} (every part of it: (h, c) for the LSTM; through every later step), J_{k+1} =
ds_{k+1}/ds_k the step Jacobian, k + 1 = 0..T-1 (J_0 maps the initial state, as in Pascanu's
RNN.py), and the mean taken over the (step, sequence) pairs with ||delta||^2 >= 1e-20 (his
``bound``: a gradient that underflowed has no ratio). Omega is dimensionless; it is 0 exactly when
every step preserves the norm of the backpropagated gradient.

As in the paper (eq. 10, the "immediate" partial derivative) and his code, delta and the states
are held constant: only the direct dependence of J on the parameters is differentiated, and
alpha * dOmega/dtheta is added to the task loss's gradient, whose every component is unchanged;
the joint gradient-norm clipping then acts on the sum, as his ``norm_theta`` does. One difference
from his code, which takes the ratio of squared norms: here the norms themselves, as eq. 9
writes them (both vanish exactly when the norm is preserved).

The Jacobian: a cell with closed-form factors J = diag(d) W (``jacobian_factors``: the Elman
cells, J = diag(phi'(a)) W) uses them as Pascanu does, phi'(a) a function of the held state
(his state is the pre-activation), so only the recurrent matrix W (``weight_hh_l0``) receives
alpha dOmega/dW; any other cell differentiates delta^T J = d(delta . step(x, s))/ds at the held
state s by autograd (``step`` applied to every (step, sequence) pair as one batch, with the
graph kept), so every parameter the step reads receives alpha dOmega/dtheta.

The states are unrolled step by step here (not through a fused kernel) so that autograd gives
the total dE/ds_t of every step in the same backward pass as the parameters' gradient.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from .. import tasks
from .sequence import Network, as_cell_module, readout_input, unroll

BOUND = 1e-20  # ||delta||^2 below this: no ratio (Pascanu's state['bound'])


def elman_states(rnn: nn.Module, x: Tensor, h0: Tensor | None = None) -> list[Tensor]:
    """h_0 .. h_{T-1} of a one-layer Elman module (h_{-1} = 0 unless ``h0`` (B, N) gives it),
    each h_t the tensor the next step reads: the module's own ``unroll``."""
    module = as_cell_module(rnn)
    return [s[0] for s in unroll(module, x, None if h0 is None else (h0,))]


def omega_ratio(v: Tensor, delta: Tensor) -> Tensor:
    """Omega from v = delta^T J (T, B, S) and delta (T, B, S) (detached): the mean of
    (||v|| / ||delta|| - 1)^2 over the pairs with ||delta||^2 >= BOUND."""
    num = torch.linalg.vector_norm(v, dim=-1)
    den2 = (delta * delta).sum(-1)
    valid = den2 >= BOUND
    ratio = torch.where(valid, num / den2.clamp(min=BOUND).sqrt(), 1.0)
    return ((ratio - 1) ** 2).sum() / valid.sum().clamp(min=1)


def omega(W: Tensor, delta: Tensor, dphi: Tensor) -> Tensor:
    """Omega of eq. 9-10 (the module docstring) for J = diag(phi'(a)) W as a function of W
    (N, N), differentiable in W only: ``delta`` (T, B, N) the total dE/dh_t and ``dphi``
    (T, B, N) phi'(a_t) are detached."""
    delta, dphi = delta.detach(), dphi.detach()
    return omega_ratio((dphi * delta) @ W, delta)


def step_cotangents(module: nn.Module, states: list[tuple], x: Tensor,
                    delta: list[Tensor]) -> Tensor:
    """delta_k^T J_k (T, B, S) for k = 0..T-1, J_k = ds_k/ds_{k-1} (s_{-1} the initial state), as
    a differentiable function of the module's parameters with the states held constant: one
    ``step`` over every (step, sequence) pair, one vector-Jacobian product with the graph kept.
    ``delta``: per state part, (T, B, N_i)."""
    B, T = x.shape[:2]
    first = module.init_state(B)
    prev = [torch.stack([first[i]] + [s[i] for s in states[:-1]]).detach()
            .reshape(T * B, -1).requires_grad_() for i in range(len(first))]
    new = module.step(x.transpose(0, 1).reshape(T * B, -1), tuple(prev))
    v = torch.autograd.grad(tuple(new), prev, [d.reshape(T * B, -1) for d in delta],
                            create_graph=True, allow_unused=True, materialize_grads=True)
    return torch.cat(v, -1).reshape(T, B, -1)


def omega_value(module: nn.Module, states: list[tuple], x: Tensor, delta: list[Tensor]):
    """Omega (a tensor differentiable in the module's parameters) of the held states and their
    total gradients ``delta`` (per state part, (T, B, N_i)); the module docstring's two ways."""
    if callable(getattr(module, "jacobian_factors", None)):
        dphi, W = module.jacobian_factors(torch.stack([s[0] for s in states]).detach())
        return omega(W, delta[0], dphi)
    v = step_cotangents(module, states, x, delta)
    return omega_ratio(v, torch.cat(delta, -1).detach())


def omega_backward(rnn: nn.Module, head: nn.Module, task: tasks.TaskSpec, x: Tensor, y: Tensor,
                   alpha: float) -> tuple[Tensor, float]:
    """One training step's gradients with the regulariser: every parameter's ``.grad`` is set to
    dE/dtheta of the task loss E on (x, y), and alpha * dOmega/dtheta added for the parameters
    Omega depends on. Returns (E detached, Omega); a non-finite E sets no gradient. ``rnn``: a
    cell module (or a plain torch module, ``sequence.as_cell_module``)."""
    module = as_cell_module(rnn)
    params = [*module.parameters(), *head.parameters()]
    states = unroll(module, x)
    h = torch.stack([s[0] for s in states], 1)
    loss = tasks.loss(task, head(tasks.readout(task, readout_input(module, h, x))), y)
    if not torch.isfinite(loss):
        return loss.detach(), float("nan")
    parts = [t for s in states for t in s]
    grads = torch.autograd.grad(loss, params + parts, allow_unused=True, materialize_grads=True)
    n = len(states[0])
    delta = [torch.stack(grads[len(params) + i::n]) for i in range(n)]
    Omega = omega_value(module, states, x, delta)
    recurrent = list(module.parameters())
    extra = torch.autograd.grad(Omega, recurrent, allow_unused=True)
    for p, g in zip(params, grads):
        p.grad = g
    for p, g in zip(recurrent, extra):
        if g is not None:
            p.grad = p.grad + alpha * g
    return loss.detach(), Omega.item()


class Omega:
    """``train.regularizer=omega`` in the training loop (``rnnlab.train.regularizer``): each
    update's gradients by ``omega_backward``; curve column ``omega``, the mean Omega since the
    last evaluation point (NaN at step 0)."""

    columns = ("omega",)

    def __init__(self, alpha: float):
        self.alpha = alpha
        self.values: list[float] = []

    def before(self) -> str | None:
        return None

    def backward(self, net: Network, x: Tensor, y: Tensor) -> Tensor:
        loss, value = omega_backward(net.rnn, net.head, net.task, x, y, self.alpha)
        self.values.append(value)
        return loss

    def after_step(self, step: int) -> str | None:
        return None

    def curve(self) -> dict:
        values, self.values = self.values, []
        return {"omega": np.mean(values) if values else math.nan}
