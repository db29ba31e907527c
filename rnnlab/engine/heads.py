"""What maps a recurrent network's state to its outputs at each step, for ``measure_module``:
the exact linear readout (``Readout``), any per-step head module differentiated by autograd
(``head_gradient``: g_t = dL_t/dh_t through it), and the targets in the engine's layout
(``as_targets``).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

from . import cells
from .logspace import unit
from .model import readout_losses


@dataclass(frozen=True)
class Readout:
    """o = V h + c: a ``torch.nn.Linear`` head's weight and bias, or the identity."""

    V: Tensor
    c: Tensor

    def to(self, device=None, dtype=None) -> Readout:
        return replace(self, V=self.V.to(device=device, dtype=dtype),
                       c=self.c.to(device=device, dtype=dtype))


def as_targets(y_target: Tensor, batch_first: bool, C: int, like: Tensor) -> Tensor:
    if not batch_first:
        y_target = y_target.transpose(0, 1)
    if not torch.is_floating_point(y_target):  # class indices (B, T)
        if y_target.numel() and (y_target.min() < 0 or y_target.max() >= C):
            raise ValueError(f"y_target holds class indices from {int(y_target.min())} to "
                             f"{int(y_target.max())}, but the readout has {C} outputs: "
                             f"indices must lie in [0, {C - 1}]")
        y_target = nn.functional.one_hot(y_target.long(), C)
    if y_target.dim() != 3 or y_target.shape[-1] != C:
        raise ValueError(f"y_target has shape {tuple(y_target.shape)} (batch first), expected "
                         f"(batch, seq, {C}) targets or (batch, seq) class indices for a "
                         f"readout with {C} outputs")
    return y_target.to(like.dtype)


def _head_outputs(head: nn.Module, N: int, like: Tensor) -> int:
    """C, the number of outputs of a head module, from one probe state; a head that does not map
    (batch, N) to (batch, C) is named."""
    try:
        with torch.no_grad():
            out = head(torch.zeros(2, N, dtype=like.dtype, device=like.device))
    except Exception as err:
        raise ValueError(f"head ({type(head).__name__}) cannot take the top layer's state "
                         f"(..., {N}): {type(err).__name__}: {err}") from None
    if not isinstance(out, Tensor) or out.dim() != 2 or out.shape[0] != 2:
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"head ({type(head).__name__}) maps (2, {N}) to {shape}; it must map "
                         f"each step's state (..., {N}) to outputs (..., C)")
    return out.shape[1]


def head_gradient(head: nn.Module, recorded: cells.Recorded, y_target: Tensor, loss: str):
    """g_t = dL_t/dh_t of the top layer's h through any head module, by autograd: (direction,
    ln ||g_t||), as ``adjoint.loss_grad_log`` returns them. The head acts step by step, so one
    backward of sum_t L_t gives every g_t; it runs on a float64 copy of the head. Unlike the
    linear readout's factored form, a softmax saturated beyond float64 underflows here."""
    head64 = copy.deepcopy(head).double()
    h = (torch.exp(recorded.log_scale).clamp(max=1e300).unsqueeze(-1)
         * recorded.u.double()).requires_grad_()
    with torch.enable_grad():
        L = readout_losses(head64, h, y_target.transpose(0, 1).double(), loss).sum()
        g, = torch.autograd.grad(L, h)
    return unit(g)


def readout_of(head, N: int, like: Tensor) -> tuple[Readout, int, bool]:
    """(readout, C, linear) of a head on states of size N: a ``torch.nn.Linear`` is the exact
    readout; None is o = h; any other module keeps the placeholder o = h and is differentiated
    by autograd (``head_gradient``)."""
    if head is not None and not isinstance(head, nn.Module):
        raise TypeError(f"head is a {type(head).__name__}; it must be a torch.nn.Module (or None)")
    if isinstance(head, nn.Linear) and head.in_features != N:
        raise ValueError(f"head.in_features={head.in_features} does not match the module's "
                         f"hidden_size={N}")
    readout = Readout(torch.eye(N, dtype=like.dtype, device=like.device),
                      torch.zeros(N, dtype=like.dtype, device=like.device))
    if isinstance(head, nn.Linear):
        bias = head.bias if head.bias is not None else torch.zeros_like(head.weight[:, 0])
        return Readout(head.weight.detach(), bias.detach()), head.out_features, True
    if head is not None:
        return readout, _head_outputs(head, N, like), False
    return readout, N, True


def check_threads(threads) -> None:
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                or threads < 1):
        raise ValueError(f"threads={threads!r} is not allowed; it must be None or an integer "
                         ">= 1")
