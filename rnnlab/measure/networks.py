"""The seeded draw of one measurement run: network and data.

Every random number of a run comes from one CPU ``torch.Generator`` in float64, in a fixed order:
the cell's weights (its own ``draw``: Elman W, U, b; GRU/LSTM the recurrent weights, the input
weights, the biases; minimalRNN W, U, W_z, b; the LRU its whole layer with its readout C, D), then
V, c (unless the cell drew its own readout), h0 (and c0 for the LSTM), x, targets; a stack
(``model.layers`` etc.) draws every layer's weights in turn, layer 1 first, then V, c, every
layer's h0, x, targets. The inputs x are i.i.d. N(0, input_std^2) or, with ``data.autocorr`` =
rho != 0, the stationary AR(1) sequence made from the same noise (``rnnlab.engine.inputs.ar1``;
unit variance before the scale input_std, lag-one correlation rho per input coordinate and
sequence). It is cast and moved afterwards: the same seed gives the same network and data on
every device and in every dtype.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..engine import attention, cells, stacks
from ..engine.inputs import ar1
from ..engine.redrawn import step_seed
from .config import DataSpec, ModelSpec


@dataclass(frozen=True)
class Draw:
    """One run's network (a registered cell's weights with the readout V, c) and data (float64,
    CPU): h0 (B, S) the state entering the first step (LSTM: (h, c) side by side),
    x (B, burn_in + T, D), y_target (B, T, C)."""

    params: object
    h0: Tensor
    x: Tensor
    y_target: Tensor


def draw(model: ModelSpec, data: DataSpec, seed: int) -> Draw:
    """Seeded network and data for a run; see the module docstring for the order of draws.

    Each part of the state (h, and the LSTM's c) starts ~ N(0, h0_std^2).
    """
    g = torch.Generator().manual_seed(seed)
    N, D, C = model.hidden_size, model.input_size, model.output_size
    f64 = dict(generator=g, dtype=torch.float64)
    if model.cell == attention.NAME:
        return _draw_attention(model, data, g)
    cell = cells.get(model.cell)
    if stacks.is_stacked(model):
        return _draw_stack(cell, model, data, g)
    weights = cell.draw(model, data.seq_len, g)
    if not cell.own_readout:
        # V and c as nn.Linear initialises the tutorial's readout: U(-1/sqrt N, 1/sqrt N).
        weights["V"] = (torch.rand(C, N, **f64) * 2 - 1) / math.sqrt(N)
        weights["c"] = (torch.rand(C, **f64) * 2 - 1) / math.sqrt(N)
    B, T = data.batch_size, data.seq_len
    params = cell.params(**weights)
    # each state part's width: the params' hidden_size (N; Mamba's N d_state) per component
    S = cell.components * params.hidden_size
    h0 = torch.cat([torch.randn(B, S, **f64) * data.h0_std for _ in cell.state_parts], -1)
    # the noise is drawn alike for every data.autocorr (rho = 0 is the noise itself, bit for bit)
    x = ar1(torch.randn(B, data.burn_in + T, D, **f64), data.autocorr) * data.input_std
    classes = torch.randint(C, (B, T), generator=g)
    y_target = torch.nn.functional.one_hot(classes, C).to(torch.float64)
    return Draw(params, h0, x, y_target)


def _draw_stack(cell, model: ModelSpec, data: DataSpec, g: torch.Generator) -> Draw:
    """A stack's draw (``rnnlab.engine.stacks``): every layer's weights (layer 1 first, each by
    the cell's ``draw``), then V, c on y^L, h0 (every layer's parts side by side), x, targets."""
    N, C = model.hidden_size, model.output_size
    f64 = dict(generator=g, dtype=torch.float64)
    layers = stacks.draw_layers(cell, model, data.seq_len, g)
    V = (torch.rand(C, N, **f64) * 2 - 1) / math.sqrt(N)
    c = (torch.rand(C, **f64) * 2 - 1) / math.sqrt(N)
    B, T = data.batch_size, data.seq_len
    params = tuple(cell.params(**w, V=V, c=c) for w in layers)
    # a layer's state width is its own (Mamba's S6: N d_state), not the stack's width N
    h0 = torch.cat([torch.randn(B, cell.components * q.hidden_size, **f64) * data.h0_std
                    for q in params for _ in cell.state_parts], -1)
    x = ar1(torch.randn(B, data.burn_in + T, model.input_size, **f64), data.autocorr) \
        * data.input_std
    classes = torch.randint(C, (B, T), generator=g)
    y_target = torch.nn.functional.one_hot(classes, C).to(torch.float64)
    residual = tuple(stacks.residual_on(l, model.input_size, N, model.residual)
                     for l in range(1, model.layers + 1))
    p = stacks.StackParams(model.cell, params, V, c, model.norm, residual)
    return Draw(p, h0, x, y_target)


def _draw_attention(model: ModelSpec, data: DataSpec, g: torch.Generator) -> Draw:
    """``model=attention``: the layer's W_Q, W_K, W_V (``CausalSelfAttention``'s own draw,
    N(0, 1/D) each, from the run's generator; W_Q then times ``model.query_gain``), then x and
    the targets as for a cell (h0 empty: no state)."""
    D, C = model.input_size, model.output_size
    layer = attention.CausalSelfAttention(D, C, generator=g)
    with torch.no_grad():
        layer.W_Q.mul_(model.query_gain)
    B, T = data.batch_size, data.seq_len
    x = ar1(torch.randn(B, T, D, generator=g, dtype=torch.float64), data.autocorr) \
        * data.input_std
    classes = torch.randint(C, (B, T), generator=g)
    y_target = torch.nn.functional.one_hot(classes, C).to(torch.float64)
    return Draw(layer, torch.zeros(B, 0, dtype=torch.float64), x, y_target)


def redrawn_weights(model: ModelSpec, data: DataSpec, seed: int, params, device, dtype):
    """``measure.weights=redrawn``: the weights of step t (burn-in included) as the cell's
    ``layer_forward`` takes them. Step 0 is the run's own draw ``params`` (already on ``device``
    in ``dtype``); step t >= 1 is the cell's ``draw`` from a generator seeded by
    ``rnnlab.engine.redrawn.step_seed(seed, t)``, in float64 on the CPU, then cast and moved, so
    every device and dtype sees the same weights. The readout V, c is the run's."""
    cell = cells.get(model.cell)

    def at(t: int) -> tuple:
        if t == 0:
            return cell.layer_weights(params)
        g = torch.Generator().manual_seed(step_seed(seed, t))
        drawn = cell.params(**cell.draw(model, data.seq_len, g), V=params.V, c=params.c)
        return cell.layer_weights(drawn.to(device, dtype))

    return at
