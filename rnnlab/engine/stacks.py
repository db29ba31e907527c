"""Stacks of recurrent layers as people build them: ``model.layers``, ``model.norm`` and
``model.residual``, for any registered cell, in the measurement and in training.

One stacked step, layers l = 1..L of one cell, hidden size N, input x_t (D), y^0_t = x_t:

    u^l_t = norm(y^{l-1}_t)                      pre-norm: none (u = y), rmsnorm or layernorm
    s^l_t = step^l(u^l_t, s^l_{t-1})             the cell's step on its own state parts
    o^l_t = output^l(u^l_t, s^l_t)               the layer's output where the cell has one
                                                 (Mamba's S6: y = C h + D u), else h^l_t
    y^l_t = o^l_t + y^{l-1}_t   (residual, on a layer whose input size equals N)
    y^l_t = o^l_t               (otherwise)

and the readout reads y^L_t: o_t = V y^L_t + c. Layer 1's input is x_t (D), every later
layer's y^{l-1} (N): with ``model.residual`` every layer l >= 2 adds its input, and layer 1 does
only when D = N (no residual on layer 1 otherwise: there is no identity from R^D to R^N that
would not be a choice of its own). There is no norm after the last layer.

The norms act on each row alone (no batch statistics), eps = 1e-5:

    rmsnorm(y)   = y / sqrt(mean_i y_i^2 + eps)                     (Zhang and Sennrich 2019)
    layernorm(y) = (y - mean_i y_i) / sqrt(var_i y + eps)           (Ba et al. 2016; biased var)

without an affine map in the measurement (weight 1 and bias 0, what the trained
``torch.nn.RMSNorm`` / ``torch.nn.LayerNorm`` start from; in training both are learnt).

The measured state is every layer's state parts side by side, s_t = (s^1_t, ..., s^L_t), and
the measurement is that of any step ``(x_t, state tuple) -> state tuple`` through the derived
step Jacobians (``rnnlab.engine.derived``): ||dL_t/ds_k|| with L_t the loss of the readout on
y^L_t, a function of (x_t, s_t) alone (``StackedStep.top``). Because the readout reads y^L (the
top h plus every residual below it), g_t = dL_t/ds_t is formed by autograd on the whole state
(``trajectory``), not on the top layer's h. A plain stack (no norm, no residual, no layer
output) of a cell with hand-written maps can also be measured through them
(``rnnlab.engine.cells.run_layers``, ``measure.jacobians=cell``): the same numbers to rounding.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor, nn

from ..schema import GROUPS
from ..schema import stacked as is_stacked  # noqa: F401 (more than one plain layer)
from . import adjoint, cells, derived
from .logspace import unit
from .model import readout_losses

NORMS = GROUPS["model"]["norm"].choices
EPS = 1e-5  # the norms' epsilon (torch.nn.LayerNorm's default; RMSNorm set to the same)


def residual_on(layer: int, input_size: int, hidden_size: int, residual: bool) -> bool:
    """Whether layer ``layer`` (1-based) adds its input: with ``residual``, every layer whose
    input has the output's size N (layer 1 only when D = N)."""
    return bool(residual) and (layer > 1 or input_size == hidden_size)


def rmsnorm(y: Tensor) -> Tensor:
    return y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + EPS)


def layernorm(y: Tensor) -> Tensor:
    m = y.mean(-1, keepdim=True)
    return (y - m) * torch.rsqrt((y - m).pow(2).mean(-1, keepdim=True) + EPS)


NORM_FUNCTIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "none": lambda y: y, "rmsnorm": rmsnorm, "layernorm": layernorm}


@dataclass(frozen=True)
class StackedStep:
    """One stacked step from L layers (module docstring). ``steps[l](u, s^l) -> s^l'`` and
    ``outputs[l](u, s^l') -> o^l`` (None: o^l = h^l, the first part) per layer, ``sizes[l]``
    its state part sizes, ``norms[l]`` its pre-norm, ``residual[l]`` whether it adds its
    input."""

    steps: tuple
    outputs: tuple
    sizes: tuple
    norms: tuple
    residual: tuple

    def _split(self, state: tuple) -> list[tuple]:
        out, i = [], 0
        for sz in self.sizes:
            out.append(tuple(state[i:i + len(sz)]))
            i += len(sz)
        return out

    def _layer_out(self, l: int, u: Tensor, s: tuple, below: Tensor) -> tuple[Tensor, Tensor]:
        """(o^l, y^l) of layer l from its input u^l, its new state and y^{l-1}."""
        out = self.outputs[l]
        o = s[0] if out is None else out(u, s)
        return o, (o + below if self.residual[l] else o)

    def __call__(self, x_t: Tensor, state: tuple) -> tuple:
        """s_t = f(x_t, s_{t-1}) on the state tuple of every layer's parts."""
        y, new = x_t, []
        for l, s in enumerate(self._split(state)):
            u = self.norms[l](y)
            s = tuple(self.steps[l](u, s))
            new.extend(s)
            y = self._layer_out(l, u, s, y)[1]
        return tuple(new)

    def layer_outputs(self, x_t: Tensor, state: tuple) -> list[tuple[Tensor, Tensor]]:
        """(o^l_t, y^l_t) for l = 1..L from the step's input x_t and the new state s_t."""
        y, out = x_t, []
        for l, s in enumerate(self._split(state)):
            u = self.norms[l](y)
            o, y = self._layer_out(l, u, s, y)
            out.append((o, y))
        return out

    def top(self, x_t: Tensor, state: tuple) -> Tensor:
        """y^L_t, what the readout reads, from x_t and the new state s_t."""
        return self.layer_outputs(x_t, state)[-1][1]


@dataclass(frozen=True)
class StackParams:
    """A stack's weights for the measurement: ``layers`` the cell's params of each layer (layer
    1 takes x (D), the others y^{l-1} (N)), the readout ``V`` (C, N), ``c`` (C,) on y^L, the
    cell's name, the norm and whether layers add their input."""

    cell: str
    layers: tuple
    V: Tensor
    c: Tensor
    norm: str = "none"
    residual: tuple = field(default_factory=tuple)

    @property
    def hidden_size(self) -> int:
        return self.layers[0].hidden_size

    def tensors(self) -> dict:
        out = {"V": self.V, "c": self.c}
        for l, p in enumerate(self.layers, 1):
            out.update({f"layer{l}.{k}": v for k, v in p.tensors().items()
                        if k not in ("V", "c")})
        return out

    def to(self, device=None, dtype=None) -> StackParams:
        return replace(self, layers=tuple(p.to(device, dtype) for p in self.layers),
                       V=self.V.to(device=device, dtype=dtype),
                       c=self.c.to(device=device, dtype=dtype))

    def state_sizes(self) -> tuple:
        """Each layer's state part sizes."""
        cell = cells.get(self.cell)
        return tuple((p.hidden_size * cell.components,) * len(cell.state_parts)
                     for p in self.layers)

    def step(self) -> StackedStep:
        """The stacked reference step of these weights (the cells' ``reference_step``s)."""
        cell = cells.get(self.cell)
        out = cell.reference_output
        return StackedStep(tuple(cell.reference_step(p) for p in self.layers),
                           tuple(None if out is None else out(p) for p in self.layers),
                           self.state_sizes(), (NORM_FUNCTIONS[self.norm],) * len(self.layers),
                           self.residual)

    def plain(self) -> bool:
        """No norm, no residual, no layer output, hand-written maps: the cells' own
        ``run_layers`` can record it."""
        cell = cells.get(self.cell)
        return self.norm == "none" and not any(self.residual) and \
            cell.reference_output is None and cell.layer_forward is not None


def draw_layers(cell, model, T: int, g: torch.Generator) -> list[dict]:
    """Every layer's weights from the run's generator, layer 1 first: the cell's own ``draw``
    with ``model.input_size`` for layer 1 and N for the layers above."""
    out = []
    for l in range(model.layers):
        m = model if l == 0 else replace(model, input_size=model.hidden_size)
        out.append(cell.draw(m, T, g))
    return out


def parts(cell, layers: int) -> tuple[str, ...]:
    """The names of the stacked state's parts: every layer's own (h, c, ...), so a part beyond
    h is reported as every layer's together (``measure.lstm_state``'s c)."""
    return tuple(cell.state_parts) * layers


def record(p: StackParams, x: Tensor, h0: Tensor, burn_in: int = 0,
           jacobians: str = "derived"):
    """The stack ``p`` over x (B, burn_in + T, D) from h0 (B, S) (every layer's state parts side
    by side): ``(Recorded, states)`` with the measured steps' Jacobians and the states s_t
    (T, B, S) after each measured step. ``jacobians``: ``derived`` (torch.func on the stacked
    reference step) or ``cell`` (a plain stack through the cells' hand-written maps)."""
    sizes = p.state_sizes()
    chunks = torch.split(h0, [sum(s) for s in sizes], -1)
    state0 = [tuple(torch.split(c, list(s), -1)) for c, s in zip(chunks, sizes)]
    if jacobians == "cell" and p.plain():
        cell = cells.get(p.cell)
        rec = cells.run_layers([(p.cell, cell.layer_weights(q)) for q in p.layers], x, state0,
                               burn_in)
        states = _states(p.step(), x, h0, sizes, burn_in)
        return rec, states
    if jacobians == "cell":
        cells.say_once(f"measure.jacobians=cell: a stack of model.cell={p.cell!r} with a norm, "
                       "a residual or a layer output has no hand-written step Jacobians; they "
                       "are derived from its step (measure.jacobians=derived)")
    step = p.step()
    flat0 = tuple(t for s in state0 for t in s)
    rec = derived.record(step, x, flat0, burn_in, parts(cells.get(p.cell), len(p.layers)))
    layer = rec.maps.layers[0]
    states = torch.cat([layer.prev[1:], layer.f(layer.x[-1], layer.prev[-1])[None]]) \
        if layer.prev.shape[0] else layer.prev
    return rec, states


def _states(step: StackedStep, x: Tensor, h0: Tensor, sizes: tuple, burn_in: int) -> Tensor:
    """The states after each measured step (T, B, S), by the stacked step."""
    f = derived.flat_step(step, tuple(n for s in sizes for n in s))
    s, out = h0, []
    with torch.no_grad():
        for t in range(x.shape[1]):
            s = f(x[:, t], s)
            if t >= burn_in:
                out.append(s)
    return torch.stack(out)


def state_gradient(step: StackedStep, readout: Callable[[Tensor], Tensor], x: Tensor,
                   states: Tensor, y_target: Tensor, loss: str) -> tuple[Tensor, Tensor]:
    """g_t = dL_t/ds_t on the whole stacked state, (direction (T, B, S), ln norm (T, B)), by
    autograd in float64: L_t the loss of ``readout(y^L_t)`` (logits (.., C)) against y_target
    (B, T, C), y^L_t = ``step.top(x_t, s_t)``; x (B, T, D) the measured steps' inputs, states
    (T, B, S). ``step`` and ``readout`` must be float64."""
    T, B, S = states.shape
    sizes = tuple(n for s in step.sizes for n in s)
    s = states.double().reshape(T * B, S).requires_grad_()
    xt = x.transpose(0, 1).double().reshape(T * B, -1)
    with torch.enable_grad():
        y = step.top(xt, tuple(torch.split(s, sizes, -1)))
        L = readout_losses(readout, y, y_target.transpose(0, 1).double().reshape(T * B, -1),
                           loss).sum()
        g, = torch.autograd.grad(L, s)
    return unit(g.reshape(T, B, S))


def trajectory(p: StackParams, x: Tensor, h0: Tensor, y_target: Tensor, burn_in: int = 0,
               loss: str = "mse", jacobians: str = "derived") -> adjoint.Trajectory:
    """The engine's Trajectory of a stack: its recorded step maps (``record``) and g_t =
    dL_t/ds_t of the readout on y^L (``state_gradient``) on the whole state."""
    with torch.no_grad():
        rec, states = record(p, x, h0, burn_in, jacobians)
    p64 = p.to(dtype=torch.float64)
    V, c = p64.V, p64.c
    g_dir, g_ln = state_gradient(p64.step(), lambda y: y @ V.T + c, x[:, burn_in:], states,
                                 y_target, loss)
    return adjoint.Trajectory(rec.u, rec.log_scale, g_dir.to(rec.u.dtype), g_ln,
                              rec.state_in.double(), rec.maps)


def as_stack(p) -> StackParams:
    """A one-layer network's params as a stack of one plain layer (the same step and readout)."""
    if isinstance(p, StackParams):
        return p
    return StackParams(p.cell, (p,), p.V, p.c, "none", (False,))


class Network(nn.Module):
    """A drawn network as a sequence model for ``rnnlab.input_sensitivity``: x (B, T, D) of the
    measured steps -> (B, T, .) from the state entering them, ``state0`` (every layer's parts).
    ``layer`` None: the readout's logits o_t = V y^L_t + c (+ the cell's readout offset of a
    one-layer network, the LRU's D x_t), before the softmax; ``layer`` l (1-based): the layer's
    own output o^l_t (h^l, or the cell's output; without the residual it adds)."""

    def __init__(self, p: StackParams, state0: tuple, layer: int | None = None):
        super().__init__()
        self.p, self.state0, self.layer = p, tuple(state0), layer
        self.f = p.step()
        cell = cells.get(p.cell)
        self.offset = cell.readout_offset if len(p.layers) == 1 else None

    def forward(self, x: Tensor) -> Tensor:
        state, out = self.state0, []
        for t in range(x.shape[1]):
            state = self.f(x[:, t], state)
            if self.layer is None:
                out.append(self.f.top(x[:, t], state))
            else:
                out.append(self.f.layer_outputs(x[:, t], state)[self.layer - 1][0])
        y = torch.stack(out, 1)
        if self.layer is not None:
            return y
        y = y @ self.p.V.T + self.p.c
        if self.offset is not None:
            y = y + self.offset(self.p.layers[0], x)
        return y


def entering_state(p: StackParams, x: Tensor, h0: Tensor, burn_in: int) -> tuple:
    """The state tuple entering measured step 0: h0 (B, S) split into every layer's parts and
    run through the ``burn_in`` unmeasured steps of x."""
    sizes = tuple(n for s in p.state_sizes() for n in s)
    state = tuple(torch.split(h0, sizes, -1))
    f = p.step()
    with torch.no_grad():
        for t in range(burn_in):
            state = f(x[:, t], state)
    return state


@dataclass
class InputMaps:
    """``input_maps``: the output's ``rnnlab.engine.input_sensitivity.InputSensitivity`` and one
    per layer (o^l), layer 1 first."""

    output: object
    layers: list


def input_maps(p, x: Tensor, h0: Tensor, burn_in: int = 0, **fit) -> InputMaps:
    """||dy_t/dx_k|| of the network's logits and the depth x time map ||do^l_t/dx_k|| of every
    layer, for every pair k <= t of the measured steps (x (B, burn_in + T, D), h0 (B, S)), by
    ``rnnlab.input_sensitivity`` on ``Network`` (exact batched vector-Jacobian products); ``fit``
    its fit keys (``fit_min_lag``, ``fit_max_lag``, ``neutral_tol``)."""
    from .input_sensitivity import input_sensitivity

    p = as_stack(p)
    state0 = entering_state(p, x, h0, burn_in)
    xm = x[:, burn_in:]
    out = input_sensitivity(Network(p, state0), xm, **fit)
    layers = [input_sensitivity(Network(p, state0, l), xm, **fit)
              for l in range(1, len(p.layers) + 1)]
    return InputMaps(out, layers)


# --------------------------------------------------------------------------------------------
# training: a stacked cell module
# --------------------------------------------------------------------------------------------
def norm_module(name: str, size: int) -> nn.Module | None:
    """The trainable pre-norm of a layer of width ``size`` (weight 1, bias 0 at init), or None."""
    if name == "rmsnorm":
        return nn.RMSNorm(size, eps=EPS)
    if name == "layernorm":
        return nn.LayerNorm(size, eps=EPS)
    return None


class StackModule(nn.Module):
    """A cell module (``rnnlab.train.sequence``) of L layers of registered cell modules, the
    stacked step of this module's docstring with learnt norms: ``step``, ``init_state`` (every
    layer's parts, layer 1 first), ``state_parts``, ``top(x_t, state)`` (y^L from the step's
    input and the new state: what the readout reads) and a batch-first ``forward`` (``fused``:
    the readout's input at every step, and the last state). A layer's output is its module's
    ``output(u_t, state)`` where it has one, else h."""

    fused = True

    def __init__(self, layers: list[nn.Module], norm: str, residual: bool, input_size: int,
                 hidden_size: int, state_parts: tuple = ("h",), cell: str | None = None):
        super().__init__()
        self.cell = cell
        self.layers = nn.ModuleList(layers)
        sizes = [input_size] + [hidden_size] * (len(layers) - 1)
        self.norms = nn.ModuleList([norm_module(norm, n) or nn.Identity() for n in sizes])
        self.norm = norm
        self.residual = tuple(residual_on(l + 1, input_size, hidden_size, residual)
                              for l in range(len(layers)))
        self.input_size, self.hidden_size = input_size, hidden_size
        self.state_parts = tuple(state_parts) * len(layers)
        self.sizes = tuple(tuple(t.shape[-1] for t in m.init_state(1)) for m in layers)

    def _stacked(self) -> StackedStep:
        outs = tuple(m.output if callable(getattr(m, "output", None)) else None
                     for m in self.layers)
        return StackedStep(tuple(m.step for m in self.layers), outs, self.sizes,
                           tuple(self.norms), self.residual)

    def engine_step(self, head: nn.Module, batch_size: int) -> tuple[StackedStep, tuple, tuple]:
        """(step, state entering step 0, part names) of the engine's view of this stack: each
        layer's registered cell's ``reference_step`` (and ``reference_output``) of its module's
        ``engine_params`` on the cell's measured state parts (what a one-layer module is
        measured through while it learns; torch.func differentiates it where a module's own step
        cannot, the RG-LRU's bounded square root; the sLSTM's state without its stabiliser m,
        which is 0 at ``init_state``), with this module's learnt norms. A layer module without
        ``engine_params`` keeps its own ``step``, ``output`` and state."""
        state0 = [m.init_state(batch_size) for m in self.layers]
        if self.cell is None or not all(hasattr(m, "engine_params") for m in self.layers):
            return self._stacked(), tuple(t for s in state0 for t in s), self.state_parts
        cell = cells.get(self.cell)
        k = len(cell.state_parts)
        params = [m.engine_params(head) for m in self.layers]
        outs = tuple(None if cell.reference_output is None else cell.reference_output(q)
                     for q in params)
        sizes = tuple(tuple(t.shape[-1] for t in s[:k]) for s in state0)
        step = StackedStep(tuple(cell.reference_step(q) for q in params), outs, sizes,
                           tuple(self.norms), self.residual)
        return step, tuple(t for s in state0 for t in s[:k]), tuple(cell.state_parts) * len(
            self.layers)

    def init_state(self, batch_size: int) -> tuple:
        return tuple(t for m in self.layers for t in m.init_state(batch_size))

    def step(self, x_t: Tensor, state: tuple) -> tuple:
        return self._stacked()(x_t, tuple(state))

    def top(self, x_t: Tensor, state: tuple) -> Tensor:
        return self._stacked().top(x_t, tuple(state))

    def forward(self, x: Tensor, state0: tuple | None = None):
        f = self._stacked()
        state = self.init_state(x.shape[0]) if state0 is None else tuple(state0)
        out = []
        for t in range(x.shape[1]):
            state = f(x[:, t], state)
            out.append(f.top(x[:, t], state))
        return torch.stack(out, 1), state

    def set_recurrent(self, Ws: list[Tensor]) -> None:
        """Each layer's ``set_recurrent`` with its own matrix (every gate block stacked)."""
        for m, W in zip(self.layers, Ws):
            m.set_recurrent(W)


def module_trajectory(rnn: StackModule, readout: Callable[[Tensor], Tensor], x: Tensor,
                      y_target: Tensor, loss: str) -> adjoint.Trajectory:
    """The engine's Trajectory of a float64 ``StackModule`` from its ``init_state``: step maps
    derived from its engine step (``StackModule.engine_step``), g_t = dL_t/ds_t of ``readout``
    on y^L on the whole state (what training measures while it learns)."""
    head = readout if isinstance(readout, nn.Linear) else nn.Linear(rnn.hidden_size, 1).double()
    step, state0, parts = rnn.engine_step(head, x.shape[0])
    with torch.no_grad():
        rec = derived.record(step, x, state0, 0, parts)
        layer = rec.maps.layers[0]
        states = torch.cat([layer.prev[1:], layer.f(layer.x[-1], layer.prev[-1])[None]])
    g_dir, g_ln = state_gradient(step, readout, x, states, y_target, loss)
    return adjoint.Trajectory(rec.u, rec.log_scale, g_dir.to(rec.u.dtype), g_ln,
                              rec.state_in.double(), rec.maps)


def stack_module(cell, input_size: int, hidden_size: int, model: dict, layers: int, norm: str,
                 residual: bool, dtype=None) -> StackModule:
    """L layers of ``cell``'s trainable module (``Cell.module``) from the global RNG, layer 1
    first, then the norms, cast to ``dtype``."""
    mods = [cell.module(input_size if l == 0 else hidden_size, hidden_size, model, dtype)
            for l in range(layers)]
    rnn = StackModule(mods, norm, residual, input_size, hidden_size, cell.state_parts,
                      cell.name)
    return rnn if dtype is None else rnn.to(dtype)

