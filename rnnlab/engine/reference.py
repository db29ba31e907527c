"""The slow references: the per-target autograd loops a user would write, one
``torch.autograd.grad`` call per target t, to check the fast sweep on small cases (tests,
benchmarks). Not measurement tools: valid while states and gradients stay inside the dtype's
range.

Gated cells and stacked modules go through PyTorch's own ``torch.nn.GRUCell`` / ``LSTMCell`` /
``RNNCell`` (each cell's ``reference_step``), not rnnlab's forward. The state at step k is the
tuple of every layer's h (and c). Each step's outputs are cloned before the next step and the
readout read them, so ``autograd.grad(L_t, state_k)`` is the state-to-state total derivative: the
LSTM's dL_t/dc_k has no same-step path through h_k = o_k tanh(c_k) (that path starts from the
un-cloned c), and dL_t/dc_t = 0.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from . import cells
from .heads import Readout, as_targets
from .model import RNN, ElmanParams, phi, readout_losses
from .torch_modules import torch_step


def reference_log_grad_norms(p: ElmanParams, x: Tensor, h0: Tensor, y_target: Tensor,
                             burn_in: int = 0, loss: str = "mse",
                             max_lag: int | None = None) -> Tensor:
    """ln ||dL_t/dh_k|| (T, T, B) by one ``torch.autograd.grad`` call per target t.

    Plain forward, no rescaling: valid while the states and gradients stay inside the dtype's
    range. Used by the tests and the benchmark to check and time the fast sweep.
    """
    T = y_target.shape[1]
    h = h0
    with torch.no_grad():
        for t in range(burn_in):
            h = phi(x[:, t] @ p.U.T + p.b + h @ p.W.T, p.activation)
    hs, h = [], h.detach().requires_grad_()
    for t in range(burn_in, burn_in + T):
        h = phi(x[:, t] @ p.U.T + p.b + h @ p.W.T, p.activation)
        hs.append(h)
    out = torch.full((T, T, x.shape[0]), float("nan"), dtype=torch.float64)
    for t in range(T):
        k0 = 0 if max_lag is None else max(0, t - max_lag)
        L_t = readout_losses(p, hs[t], y_target[:, t], loss).sum()
        grads = torch.autograd.grad(L_t, hs[k0:t + 1], retain_graph=t < T - 1)
        for k, gk in zip(range(k0, t + 1), grads):
            out[t, k] = torch.log(torch.linalg.vector_norm(gk.double(), dim=-1)).cpu()
    return out


def autograd_log_grad_norms(step: Callable, state0: tuple, x: Tensor, readout, y_target: Tensor,
                            burn_in: int = 0, loss: str = "mse", max_lag: int | None = None,
                            c_index: tuple[int, ...] = (), offset: Tensor | None = None,
                            top: int | None = None) -> dict:
    """ln ||dL_t/ds_k|| as (T, T, B) float64, NaN outside the measured triangle, under key ""
    for the whole state and "c" for the tensors of ``state`` at positions ``c_index``.

    ``step(x_t, state) -> state`` (tuples of (B, N) tensors, the last layer's h at position
    ``top = -1`` or, for an LSTM layer on top, -2; ``top`` given: there, the sLSTM's (h, c, n) -3);
    ``readout`` has V and c; x (B, burn_in + T, D);
    ``offset`` (B, T, C): a per-step term of the readout, o_t = V s_t + c + offset_t.
    """
    T, B = y_target.shape[1], x.shape[0]
    state = state0
    with torch.no_grad():
        for t in range(burn_in):
            state = step(x[:, t], state)
    state = tuple(s.detach().clone().requires_grad_() for s in state)
    if top is None:
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
        head = readout if offset is None else Readout(readout.V, readout.c + offset[:, t])
        L_t = readout_losses(head, states[t][top], y_target[:, t], loss).sum()
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


def cell_reference(p, x: Tensor, h0: Tensor, y_target: Tensor, burn_in: int = 0,
                   loss: str = "mse", max_lag: int | None = None) -> dict:
    """``autograd_log_grad_norms`` of a one-layer run of any registered cell through its
    ``reference_step``; h0 (B, S) as ``rnnlab.engine.adjoint.forward`` takes it (LSTM: (h, c)
    side by side; the LRU: (Re h, Im h)), with the cell's readout offset (the LRU's D x_t)."""
    cell = cells.get(p.cell)
    N, parts = p.hidden_size * cell.components, cell.state_parts
    state0 = tuple(h0[:, i * N:(i + 1) * N] for i in range(len(parts)))
    c_index = tuple(i for i, name in enumerate(parts) if i > 0)
    offset = None if cell.readout_offset is None else cell.readout_offset(p, x[:, burn_in:])
    return autograd_log_grad_norms(cell.reference_step(p), state0, x, p, y_target, burn_in,
                                   loss, max_lag, c_index=c_index, offset=offset,
                                   top=-len(parts))


def module_reference(rnn: nn.Module, x: Tensor, y_target: Tensor, head: nn.Module | None = None,
                     loss: str = "xent", max_lag: int | None = None) -> dict:
    """The per-target autograd loop through one ``torch.nn.RNNCell`` / ``GRUCell`` /
    ``LSTMCell`` per layer, loaded with the module's weights, and the loss through ``head`` (a
    ``torch.nn.Linear``, any other per-step module, or None for o = h): ln norms (T, T, B) under
    "" (whole state) and, for an LSTM, "c"."""
    if isinstance(rnn, RNN):
        head = rnn.fc if head is None else head
        rnn = rnn.rnn
    N, L, ref = rnn.hidden_size, rnn.num_layers, rnn.weight_hh_l0
    step = torch_step(rnn)
    lstm = isinstance(rnn, nn.LSTM)

    x_b = x if rnn.batch_first else x.transpose(0, 1)
    B = x_b.shape[0]
    zeros = torch.zeros(B, N, dtype=ref.dtype)
    state0 = tuple(zeros for _ in range(2 * L if lstm else L))
    if head is None:
        readout, C = Readout(torch.eye(N, dtype=ref.dtype), torch.zeros(N, dtype=ref.dtype)), N
    elif isinstance(head, nn.Linear):
        readout, C = Readout(head.weight.detach(), head.bias.detach()), head.out_features
    else:  # any head module: the loss is taken through it
        readout, C = head, head(torch.zeros(1, N, dtype=ref.dtype)).shape[-1]
    y = as_targets(y_target, rnn.batch_first, C, ref)
    return autograd_log_grad_norms(step, state0, x_b, readout, y, 0, loss, max_lag,
                                   c_index=tuple(range(1, 2 * L, 2)) if lstm else ())


def stack_norm(name: str, y: Tensor) -> Tensor:
    """A stack's pre-norm by torch's own functions (weight 1, bias 0, eps 1e-5), independent of
    ``rnnlab.engine.stacks``'s."""
    if name == "rmsnorm":
        return nn.functional.rms_norm(y, y.shape[-1:], eps=1e-5)
    if name == "layernorm":
        return nn.functional.layer_norm(y, y.shape[-1:], eps=1e-5)
    return y


def stack_forward(p, x_t: Tensor, states: list[tuple]) -> tuple[list[tuple], list[Tensor]]:
    """One step of a stack (``rnnlab.engine.stacks.StackParams``) written out: each layer's new
    state tuple and its output y^l (pre-norm, the cell's ``reference_step``, output h or the
    cell's ``reference_output``, plus the layer's input where it adds it)."""
    cell = cells.get(p.cell)
    y, new, ys = x_t, [], []
    for l, (q, s) in enumerate(zip(p.layers, states)):
        u = stack_norm(p.norm, y)
        s = tuple(cell.reference_step(q)(u, s))
        o = s[0] if cell.reference_output is None else cell.reference_output(q)(u, s)
        y = o + y if p.residual[l] else o
        new.append(s)
        ys.append(y)
    return new, ys


def stack_reference(p, x: Tensor, h0: Tensor, y_target: Tensor, burn_in: int = 0,
                    loss: str = "mse") -> Tensor:
    """ln ||dL_t/ds_k|| (T, T, B) of a stack, s_k every layer's state parts, by one
    ``torch.autograd.grad`` per target t on ``stack_forward``; L_t the readout (V, c) on y^L_t."""
    cell = cells.get(p.cell)
    n = len(cell.state_parts)
    parts = torch.split(h0, p.hidden_size, -1)
    states = [tuple(parts[l * n:(l + 1) * n]) for l in range(len(p.layers))]
    with torch.no_grad():
        for t in range(burn_in):
            states, _ = stack_forward(p, x[:, t], states)
    T, B = y_target.shape[1], x.shape[0]
    kept, tops = [], []
    for t in range(burn_in, burn_in + T):
        states = [tuple(s.detach().requires_grad_() if t == burn_in else s for s in st)
                  for st in states]
        states, ys = stack_forward(p, x[:, t], states)
        states = [tuple(s.clone() for s in st) for st in states]
        kept.append([s for st in states for s in st])
        tops.append(stack_forward_top(p, x[:, t], states))
    out = torch.full((T, T, B), math.nan, dtype=torch.float64)
    for t in range(T):
        L_t = readout_losses(p, tops[t], y_target[:, t], loss).sum()
        flat = [s for k in range(t + 1) for s in kept[k]]
        grads = torch.autograd.grad(L_t, flat, retain_graph=True, allow_unused=True)
        m = len(kept[0])
        for k in range(t + 1):
            sq = sum((torch.zeros_like(s) if g is None else g).double().pow(2).sum(-1)
                     for g, s in zip(grads[k * m:(k + 1) * m], kept[k]))
            out[t, k] = 0.5 * torch.log(sq)
    return out


def stack_forward_top(p, x_t: Tensor, states: list[tuple]) -> Tensor:
    """y^L_t from x_t and the stack's new states (the outputs re-read from the cloned states,
    so dL_t/ds_t is the state's total derivative)."""
    cell = cells.get(p.cell)
    y = x_t
    for l, (q, s) in enumerate(zip(p.layers, states)):
        u = stack_norm(p.norm, y)
        o = s[0] if cell.reference_output is None else cell.reference_output(q)(u, s)
        y = o + y if p.residual[l] else o
    return y
