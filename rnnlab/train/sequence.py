"""A cell module run over a sequence, and the task's head where the task reads it: what the
training loop, the regularisers and ``train_module`` share, for any cell.

A cell module is a ``torch.nn.Module`` with

    step(x_t, state) -> state      x_t (B, D); state a tuple of (B, N_i) tensors, h first
    init_state(batch_size) -> tuple

(the registered cells' ``Cell.module``, ``rnnlab.engine.cells``, or a user's own). A step treats
the rows of its batch independently. Optional, where a cell has them:

- ``fused = True``: ``forward(x (B, T, D)) -> (out (B, T, .), last)`` is the whole sequence at
  once (torch's fused ``nn.RNN`` / ``GRU`` / ``LSTM`` kernels, the LRU's closed form), ``out``
  what the readout sees at every step, as ``torch.nn.RNN`` returns it;
- ``unroll(x, state0) -> [state_0, ..., state_{T-1}]``: the states step by step in one pass (the
  Elman cell's input drive of every step in one GEMM);
- ``features(h, x)``: what the readout sees when it is not h itself (the LRU block's MLP on
  Re(C h) + D x);
- ``jacobian_factors(h) -> (d, W)``: the step Jacobian in closed form, J_t = diag(d_t) W (the
  Elman cell), used by the regularisers instead of autograd.

The state enters the engine's measurement and the Lyapunov QR as its parts side by side,
s = (h, c, ...) (B, S).

Truncated backpropagation through time (``train.truncate=K``, ``truncated_outputs``): the
sequence is cut into chunks of K steps from its start, [0, K), [K, 2K), ... (the last one
T - K floor((T - 1)/K) steps long), and the state entering each chunk is the previous chunk's
last state detached: the forward values are those of the whole sequence, and the loss at step t
sends its gradient back to the first step of t's chunk only. This is truncated BPTT with
k1 = k2 = K in Sutskever's notation (I. Sutskever 2013, "Training recurrent neural networks",
PhD thesis, University of Toronto: every k1 steps, backpropagate k2 steps), which is Williams &
Peng 1990's BPTT(h; h') with h = h' = K (Neural Computation 2(4), 490-501): a loss at step t
keeps the lags t - k from 0 to t mod K only, not 0 to K - 1 at every t (that would be k1 = 1,
k2 = K, a backward pass per step).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import jvp, vmap

from .. import tasks
from ..engine import cells, derived


def is_cell_module(module) -> bool:
    return callable(getattr(module, "step", None)) and \
        callable(getattr(module, "init_state", None))


def as_cell_module(module: nn.Module) -> nn.Module:
    """``module`` itself when it is a cell module; a plain one-layer batch-first
    ``torch.nn.RNN`` / ``GRU`` / ``LSTM`` (a model.pt loaded into torch's own class) as its
    registered cell's module holding the very same parameters (an update of one is an update
    of the other)."""
    if is_cell_module(module):
        return module
    cell = cells.for_module(module)
    if cell is None or cell.module is None:
        raise TypeError(f"{type(module).__name__} is not a cell module: it needs step(x_t, "
                        "state) and init_state(batch_size), or to be a one-layer torch.nn.RNN, "
                        "GRU or LSTM")
    if module.num_layers != 1 or not module.batch_first or module.bidirectional:
        raise ValueError(f"{type(module).__name__}(num_layers={module.num_layers}, "
                         f"batch_first={module.batch_first}, bidirectional="
                         f"{module.bidirectional}) is not allowed here; a cell module is one "
                         "batch-first unidirectional layer")
    with torch.random.fork_rng(devices=[]):
        view = cell.module(module.input_size, module.hidden_size,
                           {"activation": getattr(module, "nonlinearity", "tanh")})
    for name, p in module.named_parameters():
        setattr(view, name, p)
    return view


def flat(state: tuple[Tensor, ...]) -> Tensor:
    """The state's parts side by side, (B, S)."""
    return state[0] if len(state) == 1 else torch.cat(state, -1)


def split(s: Tensor, sizes: list[int]) -> tuple[Tensor, ...]:
    """``flat``'s inverse for parts of ``sizes``."""
    return tuple(torch.split(s, sizes, -1)) if len(sizes) > 1 else (s,)


def unroll(module: nn.Module, x: Tensor, state0: tuple | None = None) -> list[tuple]:
    """The states after each step over x (B, T, D), from ``state0`` (default ``init_state``),
    each the tuple the next step reads (so autograd gives dE/ds_t of every step)."""
    if callable(getattr(module, "unroll", None)):
        return module.unroll(x, state0)
    state = module.init_state(x.shape[0]) if state0 is None else tuple(state0)
    out = []
    for t in range(x.shape[1]):
        state = tuple(module.step(x[:, t], state))
        out.append(state)
    return out


def readout_input(module: nn.Module, h: Tensor, x: Tensor) -> Tensor:
    """What the readout sees at each step from the states' h (B, T, N) and the inputs x."""
    return module.features(h, x) if callable(getattr(module, "features", None)) else h


def outputs(module: nn.Module, x: Tensor) -> Tensor:
    """(B, T, .) what the readout sees at every step of x (B, T, D): the fused forward where the
    module has one, else its steps from ``init_state``."""
    if getattr(module, "fused", False):
        return module(x)[0]
    h = torch.stack([s[0] for s in unroll(module, x)], 1)
    return readout_input(module, h, x)


def _chunk(module: nn.Module, x: Tensor, state: tuple | None) -> tuple[Tensor, tuple]:
    """(what the readout sees (B, T, .), the last state as ``step`` reads it) over x (B, T, D)
    from ``state`` (None: ``init_state``). A torch ``nn.RNN`` / ``GRU`` / ``LSTM`` (the Elman,
    GRU and LSTM cells' modules) runs its fused kernel from hx = state; every other module its
    steps (``unroll``): the LRU's closed form starts at h = 0 only, minGRU's and minLSTM's
    log-space scan needs h_{-1} = 0 (their forward from h0 is their steps), the sLSTM's forward
    from h0 restarts c, n, m, so the steps are the one path exact for every cell."""
    if isinstance(module, nn.RNNBase):
        if state is None:
            out, last = module(x)
        elif isinstance(module, nn.LSTM):
            out, last = module(x, (state[0][None], state[1][None]))
        else:
            out, last = module(x, state[0][None])
        return out, tuple(t[0] for t in last) if isinstance(last, tuple) else (last[0],)
    states = unroll(module, x, state)
    h = torch.stack([s[0] for s in states], 1)
    return readout_input(module, h, x), tuple(states[-1])


def truncated_outputs(module: nn.Module, x: Tensor, truncate: int) -> Tensor:
    """``outputs`` under truncated backpropagation through time with K = ``truncate`` steps
    (the module docstring: chunks of K steps from the start, the state detached between them,
    k1 = k2 = K). The values equal ``outputs``' (to rounding where a chunk runs steps instead of
    a fused kernel); only the gradient is cut. K >= T is ``outputs`` itself."""
    T = x.shape[1]
    if truncate >= T:
        return outputs(module, x)
    state, out = None, []
    for start in range(0, T, truncate):
        if state is not None:  # the cut: no gradient flows into the previous chunk
            state = tuple(t.detach() for t in state)
        piece, state = _chunk(module, x[:, start:start + truncate], state)
        out.append(piece)
    return torch.cat(out, 1)


def predict(task: tasks.TaskSpec, module: nn.Module, head: nn.Module, x: Tensor,
            truncate: int | None = None) -> Tensor:
    """The head on what the readout sees where the task reads it (last step, or every step);
    ``truncate`` = K cuts the gradient every K steps (``truncated_outputs``), None: full BPTT."""
    seen = outputs(module, x) if truncate is None else truncated_outputs(module, x, truncate)
    return head(tasks.readout(task, seen))


@dataclass
class Network:
    """What a training run trains: a cell module, the head and the task; ``truncate``: the
    truncation K of its gradient (``train.truncate``; None: full backpropagation)."""

    rnn: nn.Module
    head: nn.Module
    task: tasks.TaskSpec
    truncate: int | None = None

    @property
    def params(self) -> list[nn.Parameter]:
        return [*self.rnn.parameters(), *self.head.parameters()]

    def backward(self, x: Tensor, y: Tensor) -> Tensor:
        """The task loss E of the batch (x, y), detached, with every parameter's ``.grad`` set
        to dE/dtheta (none when E is not finite), truncated every ``truncate`` steps when set."""
        loss = tasks.loss(self.task, predict(self.task, self.rnn, self.head, x, self.truncate),
                          y)
        if torch.isfinite(loss):
            loss.backward()
        return loss.detach()


def check_cell_module(module, input_size: int) -> list[int]:
    """The state part sizes N_i of a user's cell module, after one probe step on zeros (B = 2,
    D = ``input_size``); anything a cell module must do and does not is one line."""
    name = type(module).__name__
    if not isinstance(module, nn.Module) or not is_cell_module(module):
        raise TypeError(f"cell is a {name}; it must be a torch.nn.Module with step(x_t, state) "
                        "-> state and init_state(batch_size) -> tuple of (batch, N_i) tensors")
    if not any(p.requires_grad for p in module.parameters()):
        raise ValueError(f"cell {name} has no trainable parameters")
    state = module.init_state(2)
    derived.check_state(state, 2, f"{name}.init_state(2)")
    derived.check_step(module.step, state[0].new_zeros(2, input_size), state, f"{name}.step")
    return [t.shape[-1] for t in state]


class StepMaps:
    """The step Jacobians J_t = ds_t/ds_{t-1} of a cell module along one input sequence x
    (1, T, D), as the engine's Lyapunov QR reads them (``state_size``, ``jvp(t, Q)``): J_t Q by
    forward-mode autograd of ``step`` (``torch.func.jvp``, one tangent per column of Q through
    ``torch.func.vmap``), differentiable in the module's parameters (the states too are computed
    with the graph). ``s0``: the state tuple entering step 0 (default ``init_state``)."""

    def __init__(self, module: nn.Module, x: Tensor, s0: tuple | None = None):
        if x.shape[0] != 1:
            raise ValueError(f"x has shape {tuple(x.shape)}; StepMaps takes one sequence "
                             "(1, T, D)")
        self.module, self.x = module, x
        state = module.init_state(1) if s0 is None else tuple(s0)
        self.sizes = [t.shape[-1] for t in state]
        self.state_size = sum(self.sizes)
        self.states = [flat(state)[0]]  # the state (S,) entering step t
        for t in range(x.shape[1] - 1):
            self.states.append(self._step(self.states[-1], x[:, t]))

    def _step(self, s: Tensor, x_t: Tensor) -> Tensor:
        """s_t (S,) from s_{t-1} (S,) and x_t (1, D)."""
        return flat(tuple(self.module.step(x_t, split(s[None], self.sizes))))[0]

    def jvp(self, t: int, Q: Tensor) -> Tensor:
        """J_t Q for a frame Q (1, S, k)."""
        s, x_t = self.states[t], self.x[:, t]
        column = lambda v: jvp(lambda s_: self._step(s_, x_t), (s,), (v,))[1]
        return vmap(column, in_dims=1, out_dims=1)(Q[0]).unsqueeze(0)
