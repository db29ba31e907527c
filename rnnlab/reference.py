"""The slow references for gated cells and stacked modules: the per-target autograd loop a user
would write, through PyTorch's own ``torch.nn.GRUCell`` / ``LSTMCell`` (not rnnlab's step).

The state at step k is the tuple of every layer's h (and c). Each step's outputs are cloned before
the next step and the readout read them, so ``autograd.grad(L_t, state_k)`` is the state-to-state
total derivative: the LSTM's dL_t/dc_k has no same-step path through h_k = o_k tanh(c_k) (that path
starts from the un-cloned c), and dL_t/dc_t = 0. Valid while states and gradients stay inside the
dtype's range: a check of the fast sweep on small cases, not a measurement tool.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor, nn

from .cells import GatedParams, MinimalParams
from .model import readout_losses


def autograd_log_grad_norms(step: Callable, state0: tuple, x: Tensor, readout, y_target: Tensor,
                            burn_in: int = 0, loss: str = "mse", max_lag: int | None = None,
                            c_index: tuple[int, ...] = ()) -> dict:
    """ln ||dL_t/ds_k|| as (T, T, B) float64, NaN outside the measured triangle, under key ""
    for the whole state and "c" for the tensors of ``state`` at positions ``c_index``.

    ``step(x_t, state) -> state`` (tuples of (B, N) tensors, the last layer's h at position
    ``top = -1`` or, for an LSTM layer on top, -2); ``readout`` has V and c; x (B, burn_in + T, D).
    """
    T, B = y_target.shape[1], x.shape[0]
    state = state0
    with torch.no_grad():
        for t in range(burn_in):
            state = step(x[:, t], state)
    state = tuple(s.detach().clone().requires_grad_() for s in state)
    top = -2 if c_index and (len(state) - 1) in c_index else -1
    states = []
    for t in range(burn_in, burn_in + T):
        state = tuple(s.clone() for s in step(x[:, t], state))
        states.append(state)
    out = {name: torch.full((T, T, B), math.nan, dtype=torch.float64) for name in ("", "c")}
    if not c_index:
        del out["c"]
    for t in range(T):
        k0 = 0 if max_lag is None else max(0, t - max_lag)
        L_t = readout_losses(readout, states[t][top], y_target[:, t], loss).sum()
        flat = [s for k in range(k0, t + 1) for s in states[k]]
        grads = torch.autograd.grad(L_t, flat, retain_graph=t < T - 1, allow_unused=True)
        n = len(states[0])
        for j, k in enumerate(range(k0, t + 1)):
            g = [torch.zeros_like(s) if gi is None else gi
                 for gi, s in zip(grads[j * n:(j + 1) * n], states[k])]
            sq = [(gi.double() ** 2).sum(-1) for gi in g]
            out[""][t, k] = 0.5 * torch.log(sum(sq)).cpu()
            if c_index:
                out["c"][t, k] = 0.5 * torch.log(sum(sq[i] for i in c_index)).cpu()
    return out


def torch_cell(p: GatedParams) -> nn.Module:
    """``torch.nn.GRUCell`` or ``LSTMCell`` holding the weights of ``p`` (its dtype and device)."""
    kind = {"gru": nn.GRUCell, "lstm": nn.LSTMCell}[p.cell]
    N, D = p.hidden_size, p.weight_ih.shape[1]
    cell = kind(D, N, dtype=p.weight_hh.dtype, device=p.weight_hh.device)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).copy_(getattr(p, name))
    return cell


def minimal_step(p: MinimalParams, x_t: Tensor, h: Tensor) -> Tensor:
    """Chen et al. 2018's minimalRNN step, written out (torch has no such cell)."""
    z = x_t @ p.U.T
    u = torch.sigmoid(h @ p.W.T + z @ p.W_z.T + p.b)
    return u * h + (1 - u) * z


def cell_reference(p, x: Tensor, h0: Tensor, y_target: Tensor, burn_in: int = 0,
                   loss: str = "mse", max_lag: int | None = None) -> dict:
    """``autograd_log_grad_norms`` of a one-layer GatedParams / MinimalParams run; h0 (B, S) as
    ``gradients.forward`` takes it (LSTM: (h, c) side by side)."""
    N = p.hidden_size
    if isinstance(p, MinimalParams):
        return autograd_log_grad_norms(lambda x_t, s: (minimal_step(p, x_t, s[0]),), (h0,), x,
                                       p, y_target, burn_in, loss, max_lag)
    cell = torch_cell(p)
    if p.cell == "gru":
        return autograd_log_grad_norms(lambda x_t, s: (cell(x_t, s[0]),), (h0,), x, p,
                                       y_target, burn_in, loss, max_lag)
    return autograd_log_grad_norms(lambda x_t, s: cell(x_t, s), (h0[:, :N], h0[:, N:]), x, p,
                                   y_target, burn_in, loss, max_lag, c_index=(1,))
