"""Weights redrawn at every step: the annealed network that mean-field theory describes.

Mean-field rates (1/2 log chi for Elman, the minimalRNN's table, the gate-noise formula) assume
that the weights a signal meets are independent from step to step, as in a deep feed-forward
network with a fresh W_l per layer (Poole et al. 2016; Chen, Pennington, Schoenholz 2018). One
fixed W (the quenched network, what an RNN is) keeps the state and the gates correlated in time
and can sit away from that theory however large N is. Here every weight of the cell (W, U, b and
the gate weights: everything its ``draw`` makes) is drawn afresh at each step t from a generator
seeded by (run seed, t); the readout V, c stays fixed. Step 0 (the first step, burn-in included)
uses the run's own draw, so the state-0 weights, the readout and the data are those of the fixed
run with the same seed.

The forward pass keeps only the states (T, B, S); the backward sweep and the tangent maps
regenerate step k's weights from its seed and rebuild that step's Jacobian, so memory is that of
a fixed run (no T N^2 store) at the price of one weight draw and one step of forward per visited
step. relu and linear run without the fixed Elman path's log scaling: a state beyond float64's
range becomes inf here.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from .cells import Recorded, Stack


def step_seed(seed: int, t: int) -> int:
    """The seed of step t's weights: numpy's SeedSequence of (seed, t), 64 bits; independent
    streams for every (seed, t)."""
    return int(np.random.SeedSequence([seed, t]).generate_state(1, np.uint64)[0])


class RedrawnLayer:
    """The step maps of a one-layer cell whose weights change at every step; the cell's own
    layer for step k (``layer_forward`` over that one step) is rebuilt from the regenerated
    weights on first use and kept until another step is asked for."""

    def __init__(self, cell, weights_at: Callable[[int], tuple], inp: Tensor,
                 states_in: tuple[Tensor, ...], offset: int):
        self.cell, self.weights_at, self.inp, self.states_in = cell, weights_at, inp, states_in
        self.offset = offset  # burn-in steps before measured step 0
        self.parts = cell.state_parts
        self.hidden = states_in[0].shape[-1]
        self.size = self.hidden * len(self.parts)
        self._k: int | None = None
        self._layer = None

    def _at(self, k: int):
        if self._k != k:
            weights = self.weights_at(self.offset + k)
            _, make = self.cell.layer_forward(*weights, self.inp[k:k + 1],
                                              *(s[k] for s in self.states_in))
            self._layer, self._k = make(slice(0, 1)), k
        return self._layer

    def vjp_(self, k: int, D: Tensor) -> None:
        self._at(k).vjp_(0, D)

    def vjp(self, k: int, D: Tensor, need_input: bool):
        return self._at(k).vjp(0, D, need_input)

    def jvp(self, k: int, Q: Tensor, Q_in: Tensor | None = None) -> Tensor:
        return self._at(k).jvp(0, Q, Q_in)

    def recurrent_cotangent(self, k: int, D: Tensor) -> Tensor:
        return self._at(k).recurrent_cotangent(0, D)


def record(cell, weights_at: Callable[[int], tuple], x: Tensor, h0: Tensor,
           burn_in: int = 0) -> Recorded:
    """Run a one-layer ``cell`` with ``weights_at(t)`` (the weights of step t as its
    ``layer_forward`` takes them, t = 0 .. burn_in + T - 1) over x (B, burn_in + T, D) from h0
    (B, S); the measured steps' Jacobians regenerate their weights on demand."""
    N = h0.shape[-1] // len(cell.state_parts)
    state = tuple(h0[:, i * N:(i + 1) * N] for i in range(len(cell.state_parts)))
    inp = x.transpose(0, 1)
    entering, tops = [], []
    for t in range(inp.shape[0]):
        if t >= burn_in:
            entering.append(state)
        states, _ = cell.layer_forward(*weights_at(t), inp[t:t + 1], *state)
        state = tuple(s[0] for s in states)
        if t >= burn_in:
            tops.append(state[0])
    states_in = tuple(torch.stack(part) for part in zip(*entering))
    layer = RedrawnLayer(cell, weights_at, inp[burn_in:], states_in, burn_in)
    u = torch.stack(tops)
    log_scale = torch.zeros(u.shape[:2], dtype=torch.float64, device=u.device)
    return Recorded(u, log_scale, Stack([layer]), torch.cat(entering[0], -1).double())
