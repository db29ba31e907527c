"""The state's sensitivity to the recurrent parameters (the curse of memory, Zucchet & Orvieto
2024, arXiv:2405.21064), in forward mode.

For a recurrent parameter theta the tangent tau_t = ds_t/dtheta obeys a linear recurrence beside
the state,

    tau_t = J_t tau_{t-1} + (explicit ds_t/dtheta at fixed s_{t-1}),   tau = 0 where the run starts

(h0 does not depend on theta; burn-in steps are run, not averaged). Reported per parameter group,
in mean squares per unit (N units):

    mean_sq_derivative = mean over measured steps and batch of ||ds_t/dtheta||_F^2 / N
    mean_sq_state      = mean over measured steps and batch of ||s_t||^2 / N

The state s is h (Elman, GRU, minimalRNN), (h, c) for the LSTM, (Re h, Im h) for the LRU. For a
matrix group (Elman's and the minimalRNN's W, each gate block W_h* of GRU and LSTM) theta
runs over its N^2 entries: ``dense_sensitivity`` carries the tangent (B, S, N^2) through the
layer's step map (``jvp``) and its ``recurrent_tangent`` (the explicit part: a unit perturbation
of entry (i, j) moves row i of W h_{t-1} by h_{t-1, j}). That costs O(T B G N^4) time and
O(B N^3) memory, so ``MAX_DENSE_N`` bounds N. The dense forward is the plain one (no log
scale): valid while the state stays within the dtype's range. A cell with a diagonal recurrence
supplies its own O(T B N) form (``Cell.sensitivity``: the LRU's r, theta, nu).
"""
from __future__ import annotations

import torch
from torch import Tensor

from . import cells

MAX_DENSE_N = 64


def sensitivity(p, x: Tensor, h0: Tensor, burn_in: int = 0, jacobians: str = "cell"
                ) -> list[dict]:
    """One row per recurrent parameter group of the cell of ``p``: ``parameter``,
    ``mean_sq_derivative``, ``mean_sq_state`` (module docstring). x (B, burn_in + T, D), h0 (B, S)
    as ``rnnlab.engine.adjoint.forward`` takes them. ``jacobians='derived'``: the dense form on
    step maps and weight derivatives derived from the cell's step (``rnnlab.engine.derived``);
    a cell's own closed form (the LRU's) is used either way."""
    cell = cells.get(p.cell)
    with torch.no_grad():
        if cell.sensitivity is not None:
            return cell.sensitivity(p, x, h0, burn_in)
        if jacobians == "derived":
            from .derived import sensitivity as derived_sensitivity

            N = p.hidden_size
            if N > MAX_DENSE_N:
                raise ValueError(f"model.hidden_size={N}: the dense sensitivity costs "
                                 f"O(T B N^4); allowed up to {MAX_DENSE_N}")
            values, states = derived_sensitivity(cell, p, x, h0, burn_in)
            return rows_of(cell.groups, values, mean_sq(states, N))
        return dense_sensitivity(cell, p, x, h0, burn_in)


def dense_sensitivity(cell, p, x: Tensor, h0: Tensor, burn_in: int = 0) -> list[dict]:
    """Forward mode over every entry of each N x N gate block of W_hh, through the seam."""
    N = p.hidden_size
    if N > MAX_DENSE_N:
        raise ValueError(f"model.hidden_size={N}: the dense sensitivity costs O(T B N^4); "
                         f"allowed up to {MAX_DENSE_N}")
    parts = len(cell.state_parts)
    state0 = tuple(h0[:, i * N:(i + 1) * N] for i in range(parts))
    states, make = cell.layer_forward(*cell.layer_weights(p), x.transpose(0, 1), *state0)
    layer = make(slice(0, None))  # every step's map, burn-in included
    s = torch.cat(states, -1)  # (T_all, B, S)
    h_prev = torch.cat([h0[None, :, :N], s[:-1, :, :N]])
    T_all, B = s.shape[:2]
    G = cell.gates
    eye = torch.eye(N, dtype=s.dtype, device=s.device)
    rows = []
    for g in range(G):
        tau = s.new_zeros(B, layer.size, N * N)
        total = torch.zeros((), dtype=torch.float64, device=s.device)
        for k in range(T_all):
            # entry (i, j) of block g moves row g N + i of W_hh h_{k-1} by h_{k-1, j}
            A = s.new_zeros(B, G * N, N * N)
            A[:, g * N:(g + 1) * N] = (eye[None, :, :, None]
                                       * h_prev[k][:, None, None, :]).reshape(B, N, N * N)
            tau = layer.jvp(k, tau) + layer.recurrent_tangent(k, A)
            if k >= burn_in:
                total += (tau.double() ** 2).sum()
        rows.append(total.item() / (N * B * (T_all - burn_in)))
    return rows_of(cell.groups, rows, mean_sq(s[burn_in:], N))


def mean_sq(s: Tensor, N: int) -> float:
    """Mean over steps and batch of ||s_t||^2 / N, s (T, B, S)."""
    return ((s.double() ** 2).sum(-1).mean() / N).item()


def rows_of(names, values, mean_sq_state: float) -> list[dict]:
    return [{"parameter": n, "mean_sq_derivative": v, "mean_sq_state": mean_sq_state}
            for n, v in zip(names, values)]
