"""Measure a cell the user wrote: any ``torch.nn.Module`` with ``step(x_t, state) -> state``
(x_t (B, D); state a tuple of (B, N_i) tensors, h first: the part the head reads) and
``init_state(batch_size)``, through ``rnnlab.measure_module`` (docs/own-cell.md).

The measured state s_k is the concatenated parts; the step Jacobians are derived from ``step``
by ``torch.func`` (``rnnlab.engine.derived``), and the measurement is the engine's exact
log-domain sweep, as for rnnlab's own cells. x is time-major, (T, B, D), as a cell sees it.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.func import functional_call

from ..checks import choice
from . import adjoint, cells, derived
from .heads import as_targets, check_threads, head_gradient, readout_of
from .model import LOSSES, RNN
from .threads import threads_for, torch_threads


def is_step_module(module) -> bool:
    """A module measured through its own ``step`` (a cell the user wrote): it has ``step`` and
    ``init_state`` and is not one of torch's recurrent modules, which are read as rnnlab's
    cells."""
    return (isinstance(module, nn.Module) and not isinstance(module, (nn.RNN, nn.GRU, nn.LSTM,
                                                                      RNN))
            and callable(getattr(module, "step", None))
            and callable(getattr(module, "init_state", None)))


class _Stepper(nn.Module):
    """A module's ``step`` as a ``forward``, for ``torch.func.functional_call``."""

    def __init__(self, cell: nn.Module):
        super().__init__()
        self.cell = cell

    def forward(self, x_t, state):
        return self.cell.step(x_t, state)


def module_weight(module: nn.Module, name: str) -> tuple:
    """(W, step_of) for ``derived.record``: the module's parameter ``name`` and its step as a
    function of it."""
    params = dict(module.named_parameters())
    if name not in params:
        raise ValueError(f"weight_grad={name!r}: {type(module).__name__} has no parameter of "
                         f"that name; allowed: {sorted(params)}")
    wrapper = _Stepper(module)

    def step_of(W):
        return lambda x_t, s: functional_call(wrapper, {f"cell.{name}": W}, (x_t, s))

    return params[name].detach(), step_of


def step_trajectory(module: nn.Module, x: Tensor, y_target: Tensor, head=None,
                    loss: str = "xent", h0=None, threads: int | None = None,
                    jacobians: str = "cell", weight: str | None = None
                    ) -> adjoint.Trajectory:
    """The engine's forward pass of a module with ``step(x_t, state) -> state`` and
    ``init_state(batch_size)``: x time-major (T, B, D), y_target (T, B, C) or class indices
    (T, B), ``h0`` a state tuple (default ``init_state(B)``). The measured state s_k is the
    concatenated state parts, h (the first) read by the head; its step Jacobians are derived
    from ``step`` (``rnnlab.engine.derived``). ``weight``: the name of the parameter the weight
    gradient by lag differentiates."""
    choice("jacobians", jacobians, cells.JACOBIANS)
    choice("loss", loss, LOSSES)
    check_threads(threads)
    if not torch.is_tensor(x) or x.dim() != 3:
        shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
        raise ValueError(f"x has shape {shape}; a module measured through its step takes x "
                         "time-major, (seq, batch, input_size)")
    T, B, _ = x.shape
    with torch.no_grad():
        state0 = module.init_state(B) if h0 is None else h0
    what = f"{type(module).__name__}.init_state({B})" if h0 is None else "h0"
    sizes = derived.check_state(state0, B, what)
    state0 = tuple(s.detach() for s in state0)
    dtype = state0[0].dtype
    x = x.to(dtype)
    derived.check_step(module.step, x[0], state0, f"{type(module).__name__}.step")
    W = None if weight is None else module_weight(module, weight)
    N = sizes[0]
    readout, C, linear = readout_of(head, N, state0[0])
    y = as_targets(y_target, False, C, state0[0])
    if y.shape[:2] != (B, T):
        raise ValueError(f"y_target covers (seq, batch) = {tuple(y.shape[:2])[::-1]} but x "
                         f"covers {(T, B)} (both time-major for a module measured through its "
                         "step)")
    if jacobians == "cell":  # a module of the user's has no hand-written maps
        cells.say_once(f"jacobians='cell': {type(module).__name__} has no hand-written step "
                       "Jacobians; they are derived from its step (jacobians='derived')")
    if threads is None:
        threads = threads_for(x.device, B, sum(sizes))
    parts = getattr(module, "state_parts", None)
    with torch.no_grad(), torch_threads(threads):
        recorded = derived.record(module.step, x.transpose(0, 1), state0, 0, parts,
                                  weight=W)
        grad = None if linear else head_gradient(head, recorded, y, loss)
        return adjoint.trajectory(recorded, readout, y, loss, grad=grad)
