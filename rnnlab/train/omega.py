"""Pascanu, Mikolov, Bengio 2013's regulariser Omega (arXiv:1211.5063, section 3.3, eq. 9-10),
``train.regularizer=omega`` with ``train.reg_weight`` = alpha, for the Elman cells:

    Omega = mean over (k, b) of ( ||delta_{k+1}^T J_{k+1}|| / ||delta_{k+1}|| - 1 )^2,

with delta_{k+1} = dE/dh_{k+1} the total gradient of the trained loss E with respect to the state
h_{k+1} (through every later step), J_{k+1} = dh_{k+1}/dh_k = diag(phi'(a_{k+1})) W the step
Jacobian (so delta^T J = (phi'(a) * delta)^T W), k + 1 = 0..T-1 (J_0 maps h_{-1} = 0, as in
Pascanu's RNN.py), and the mean taken over the (step, sequence) pairs with ||delta||^2 >= 1e-20
(his ``bound``: a gradient that underflowed has no ratio). Omega is dimensionless; it is 0 exactly
when every step preserves the norm of the backpropagated gradient.

As in the paper and his code, delta and phi'(a) are held constant: only the direct dependence of
J on W is differentiated, and only the recurrent matrix W (``weight_hh_l0``) receives
alpha * dOmega/dW, added to the task loss's gradient, whose every component is unchanged; the
joint gradient-norm clipping then acts on the sum, as his ``norm_theta`` does. One difference
from his code, which takes the ratio of squared norms: here the norms themselves, as eq. 9
writes them (both vanish exactly when the norm is preserved).

The states are unrolled step by step here (not through ``torch.nn.RNN``'s fused loop) so that
autograd gives the total dE/dh_t of every step in the same backward pass as the parameters'
gradient.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .. import tasks
from ..engine.model import phi, phi_prime_from_h

BOUND = 1e-20  # ||delta||^2 below this: no ratio (Pascanu's state['bound'])


def elman_states(rnn: nn.Module, activation: str, x: Tensor,
                 h0: Tensor | None = None) -> list[Tensor]:
    """h_0 .. h_{T-1} of a one-layer Elman module (``nn.RNN`` names, batch first, h_{-1} = 0
    unless ``h0`` (B, N) gives it), h_t = phi(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh): each h_t
    the tensor the next step reads."""
    drive = x @ rnn.weight_ih_l0.T + rnn.bias_ih_l0 + rnn.bias_hh_l0
    h = x.new_zeros(x.shape[0], rnn.hidden_size) if h0 is None else h0
    hs = []
    for t in range(x.shape[1]):
        h = phi(torch.addmm(drive[:, t], h, rnn.weight_hh_l0.T), activation)
        hs.append(h)
    return hs


def omega(W: Tensor, delta: Tensor, dphi: Tensor) -> Tensor:
    """Omega of eq. 9-10 (the module docstring) as a function of W (N, N), differentiable in W
    only: ``delta`` (T, B, N) the total dE/dh_t and ``dphi`` (T, B, N) phi'(a_t) are detached."""
    delta, dphi = delta.detach(), dphi.detach()
    num = torch.linalg.vector_norm((dphi * delta) @ W, dim=-1)
    den2 = (delta * delta).sum(-1)
    valid = den2 >= BOUND
    ratio = torch.where(valid, num / den2.clamp(min=BOUND).sqrt(), 1.0)
    return ((ratio - 1) ** 2).sum() / valid.sum().clamp(min=1)


def omega_backward(rnn: nn.Module, head: nn.Linear, task: tasks.TaskSpec, x: Tensor, y: Tensor,
                   activation: str, alpha: float) -> tuple[Tensor, float]:
    """One training step's gradients with the regulariser: every parameter's ``.grad`` is set to
    dE/dtheta of the task loss E on (x, y), and W_hh's gets alpha * dOmega/dW added. Returns
    (E detached, Omega); a non-finite E sets no gradient."""
    params = [*rnn.parameters(), *head.parameters()]
    hs = elman_states(rnn, activation, x)
    loss = tasks.loss(task, head(tasks.readout(task, torch.stack(hs, 1))), y)
    if not torch.isfinite(loss):
        return loss.detach(), float("nan")
    grads = torch.autograd.grad(loss, params + hs)
    delta = torch.stack(grads[len(params):])
    dphi = phi_prime_from_h(torch.stack(hs).detach(), activation)
    W = rnn.weight_hh_l0
    Omega = omega(W, delta, dphi)
    gW, = torch.autograd.grad(Omega, W)
    for p, g in zip(params, grads):
        p.grad = g + alpha * gW if p is W else g
    return loss.detach(), Omega.item()
