"""The seam every recurrent cell goes through: a forward pass that records what each step's Jacobian
needs, and the Jacobian itself as two maps.

For a state s_k (Elman, GRU and minimalRNN: h_k; LSTM: (h_k, c_k); a stack: every layer's state
together) the step Jacobian J_k = ds_k / ds_{k-1} enters the measurement as

* ``vjp_(k, D)``: D <- J_k^T D in place, for a whole (targets x batch x state) block at once:
  the adjoint sweep's step dL_t/ds_{k-1} = J_k^T dL_t/ds_k (one GEMM per step);
* ``jvp(k, Q)``: J_k Q for a (batch x state x r) frame: the tangent map of the QR method
  (Lyapunov exponents).

A layer (one cell's maps along a trajectory, ``rnnlab.engine.cells.<cell>``) has ``hidden`` (N),
``size`` (its state size: N, or 2N for (h, c)), ``parts`` (names of its state slices: ("h",) or
("h", "c")), ``vjp_``, ``jvp``, ``vjp(k, D, need_input)`` (the cotangent map of one layer of a
stack, also returning the cotangent of its input) and ``recurrent_cotangent(k, D)`` (the cotangent
of W_hh h_{k-1}: the weight gradient's factor). Every cell's J_k has the form
``diag(a_k) + C_k W_hh`` (diagonal gate factors times the recurrent weights), so both maps cost one
GEMM with the stacked recurrent matrix.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor


def workspace(buf: Tensor | None, m: int, rows: int, tail: tuple, like: Tensor) -> Tensor:
    """A scratch buffer of at least m rows (allocated once for a whole sweep: max(m, rows))."""
    if buf is None or buf.shape[0] < m:
        buf = torch.empty((max(m, rows),) + tuple(tail), dtype=like.dtype, device=like.device)
    return buf


class Stack:
    """The step Jacobians of a stack of layers, state s_k = (s^1_k, ..., s^L_k) concatenated.

    Layer l reads layer l-1's new h at the same step, so J_k is block lower-triangular through
    the input maps: the tangent map runs bottom-up, the cotangent map top-down, each layer adding
    its input cotangent to the h part of the layer below. ``parts`` names state slices reported
    on their own (the LSTM's c: every layer's c together).
    """

    def __init__(self, layers: list):
        self.layers = layers
        self.offsets, o = [], 0
        for layer in layers:
            self.offsets.append(o)
            o += layer.size
        self.state_size = o
        top = self.offsets[-1] + getattr(layers[-1], "top_offset", 0)
        self.top = slice(top, top + layers[-1].hidden)
        # a layer's state beyond its h (the LSTM's c) is a named part, every layer's together
        extra: dict = {}
        for o, layer in zip(self.offsets, layers):
            named = getattr(layer, "extra_parts", None)  # a derived layer names its own slices
            if named is not None:
                for name, slices in named.items():
                    extra.setdefault(name, []).extend(torch.arange(o + sl.start, o + sl.stop)
                                                      for sl in slices)
            elif layer.size > layer.hidden:
                extra.setdefault(layer.parts[1], []).append(torch.arange(o + layer.hidden,
                                                                         o + layer.size))
        # one contiguous block is a slice, whose norm needs no copy
        self.parts = {name: slice(int(idx[0][0]), int(idx[0][-1]) + 1) if len(idx) == 1
                      else torch.cat(idx) for name, idx in extra.items()}

    def _slice(self, i):
        return slice(self.offsets[i], self.offsets[i] + self.layers[i].size)

    def vjp_(self, k: int, D: Tensor) -> None:
        """D (m, B, S) <- J_k^T D, in place."""
        if len(self.layers) == 1:
            self.layers[0].vjp_(k, D)
            return
        out, carry = torch.empty_like(D), None
        for i in range(len(self.layers) - 1, -1, -1):
            layer, sl = self.layers[i], self._slice(i)
            Dl = D[..., sl]
            if carry is not None:
                Dl = torch.cat([Dl[..., :layer.hidden] + carry, Dl[..., layer.hidden:]], -1)
            out[..., sl], carry = layer.vjp(k, Dl, need_input=i > 0)
        D.copy_(out)

    def jvp(self, k: int, Q: Tensor) -> Tensor:
        """J_k Q for Q (B, S, r)."""
        outs, below = [], None
        for i, layer in enumerate(self.layers):
            T_l = layer.jvp(k, Q[:, self._slice(i)], below)
            below = T_l[:, :layer.hidden]
            outs.append(T_l)
        return outs[0] if len(outs) == 1 else torch.cat(outs, 1)


@dataclass
class Recorded:
    """What the engine needs from a forward pass of a cell or a stack: the top layer's h (T, B, N)
    for the readout as h_t = exp(log_scale_t) u_t (log_scale (T, B) float64, zero for bounded
    cells), the step Jacobians, and the state (B, S) entering measured step 0, in float64.
    ``offset`` (T, B, C) or None: a per-step term of the readout, o_t = V h_t + c + offset_t (the
    LRU's skip D x_t, ``Cell.readout_offset``); it moves g_t but no step Jacobian. ``output``
    or None: what the readout reads when it is not the top layer's h (``Cell.output``)."""

    u: Tensor
    log_scale: Tensor
    maps: Stack
    state_in: Tensor
    offset: Tensor | None = None
    output: Output | None = None


@dataclass(frozen=True)
class Output:
    """What the readout reads when it is not the top layer's h, but a per-step function of it
    that is linear at fixed inputs (Mamba's y_t = C_t h_t + D u_t): y (T, B, N_y), the readout's
    input o_t = V y_t + c, and ``vjp(g)`` the transpose of dy_t/dh_t, mapping cotangents of y
    (T, B, N_y) to cotangents of the top layer's h (T, B, N). The engine takes dL_t/dy_t from its
    linear readout and pulls it back: g_t = (dy_t/dh_t)^T dL_t/dy_t."""

    y: Tensor
    vjp: Callable[[Tensor], Tensor]


def run_layers(layers: list, x: Tensor, state0: list, burn_in: int = 0) -> Recorded:
    """Run a stack of layers over x (B, burn_in + T, D), recording the measured steps' Jacobians.

    ``layers``: per layer, ``(cell name, weights)`` with the weights as that cell's
    ``layer_forward`` takes them; ``state0``: per layer its initial state tensors ((h,) or, for
    the LSTM, (h, c)), each (B, N).
    """
    from . import get

    # time first and contiguous: each cell's input projection of every step, inp @ W.T, is then
    # one matrix product (a transposed view makes it T small batched ones, twice as slow)
    inp = x.transpose(0, 1).contiguous()
    sl = slice(burn_in, None)
    maps, entering = [], []
    for (name, w), s0 in zip(layers, state0):
        states, make = get(name).layer_forward(*w, inp, *s0)
        entering.append(torch.cat([st[burn_in - 1] for st in states], -1) if burn_in
                        else torch.cat(list(s0), -1))
        maps.append(make(sl))
        inp = states[0]
    h_top = inp[sl]
    log_scale = torch.zeros(h_top.shape[:2], dtype=torch.float64, device=h_top.device)
    return Recorded(h_top, log_scale, Stack(maps), torch.cat(entering, -1).double())


def record_layers(cell, p, x: Tensor, h0: Tensor, burn_in: int = 0) -> Recorded:
    """A one-layer cell's forward: h0 (B, S) split into the cell's state parts, each (B, N)."""
    N = p.hidden_size
    state0 = [tuple(h0[:, i * N:(i + 1) * N] for i in range(len(cell.state_parts)))]
    return run_layers([(cell.name, cell.layer_weights(p))], x, state0, burn_in)
