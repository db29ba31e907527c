"""The cell registry: every recurrent cell rnnlab measures is one module of this package that
describes itself with a ``Cell`` and calls ``register``; the rest of rnnlab (the engine's forward,
the measurement app's draw, checks and theory, ``measure_module``, the autograd references) reads
only this registry.

A new cell is one module (docs/architecture.md, "a new cell"): its weights as a dataclass (with
the readout ``V``, ``c`` and ``tensors()``, ``to()``, ``hidden_size``), a ``layer_forward`` that
records its step Jacobians (``rnnlab.engine.cells.stack``), a ``draw`` of its initial weights, and
optionally its theory and its autograd reference step.
"""
from __future__ import annotations

import importlib
import pkgutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

from ...schema import GROUPS
from .stack import Output, Recorded, Stack, record_layers, run_layers, workspace  # noqa: F401 (the seam's API)

RECURRENT_INITS = ("gaussian", "orthogonal", "identity")
# where the step Jacobians come from: the cell's hand-written maps, or torch.func on its step
JACOBIANS = GROUPS["measure"]["jacobians"].choices


@dataclass(frozen=True)
class Cell:
    """What rnnlab needs to know of a recurrent cell.

    ``params``: the weights' dataclass; ``layer_forward(*weights, inp (T, B, D), *state0)`` runs
    one layer and returns its state sequences ((h,) or (h, c), each (T, B, N)) and a function of
    a slice of steps that builds the layer's step maps; ``layer_weights(params)`` the weights as
    ``layer_forward`` takes them; ``draw(model, T, generator)`` the fields of ``params`` but the
    readout, drawn in float64 from ``generator`` (``model`` any object with the ``model.*`` keys
    as attributes, T the measured length). ``state_parts``: the measured state, h first;
    ``gates``: blocks stacked in the recurrent matrix; ``keep_gate``: the block whose
    pre-activation ``model.gate_bias`` shifts (None: the cell has no gate); ``activations`` and
    ``inits``: the allowed ``model.activation`` and ``model.init``; ``scaled_inits``: those that
    take ``model.spectral_radius`` / ``model.gain``. Optional: ``record(params, x, h0, burn_in)``
    replacing the generic one-layer forward (Elman's log-scaled states); ``theory(params, model,
    data)`` the rates theory predicts, nats per step; ``reference_step(params)`` a differentiable
    step ``(x_t, state tuple) -> state tuple`` for the autograd reference; ``torch_module``: the
    ``torch.nn`` class ``measure_module`` maps onto this cell, and
    ``module_layer(module, l, b_ih, b_hh)`` the weights of its layer ``l`` for ``layer_forward``.

    A cell unlike the classic ones (the LRU) may also set: ``components`` (real numbers per unit
    of each state part: 2 for a complex state measured as (Re h, Im h)); ``own_readout`` (its
    ``draw`` returns the readout too, so ``params`` exposes ``V`` and ``c`` itself);
    ``readout_offset(p, x)`` a per-step term of the readout, o_t = V s_t + c + offset_t, from the
    measured inputs x (B, T, D) as (B, T, C) (the LRU's skip D x_t); ``output(p, x, h)`` what
    the readout reads when it is not the state, from the measured inputs x (B, T, D) and the
    top layer's states h (T, B, N), as a ``stack.Output`` (y and the pull-back of its
    cotangent; Mamba's y_t = C_t h_t + D u_t, so the loss is L_t(V y_t + c)); ``keys`` the
    ``model.*`` keys only this cell takes, with their defaults (null for every other cell), and
    ``check(model)`` their checks (raising ``ConfigError``); ``keys_since``: those of its keys
    added after runs of the cell were stored, each left out of a run's configuration hash while
    it holds its default (which must reproduce the cell as it was), so those runs keep their
    hash; ``refuses``: ``(measure key, value,
    reason)`` settings it cannot be measured under. ``groups``: the names of the recurrent
    parameter groups ``measure.sensitivity`` reports (the gate blocks of W_hh in order; default
    one matrix W); ``sensitivity(p, x, h0, burn_in)`` the cell's own forward-mode sensitivity
    (``rnnlab.engine.sensitivity``; default: through its layer's ``recurrent_tangent``);
    ``recurrent``: the field of ``params`` holding the recurrent weight W (every gate block
    stacked), which the derived maps differentiate for the weight gradient and the sensitivity
    (None: the cell has none). ``reference_output(params)``: a differentiable ``(u_t, state)
    -> o_t`` (B, N), what one layer of a stack passes up where it is not h (Mamba's S6: C h +
    D u; ``rnnlab.engine.stacks``); the trainable module's counterpart is its ``output``.

    ``module(input_size, hidden_size, model, dtype)``: the cell's trainable ``torch.nn.Module``
    (``model`` a dict of the ``model.*`` keys it reads: ``activation`` and the cell's own
    ``keys``), with ``step(x_t, state) -> state`` (x_t (B, D); state a tuple of (B, N_i), h
    first), ``init_state(batch_size)`` and ``engine_params(head)`` (this cell's ``params`` of the
    trained weights, the readout from the ``torch.nn.Linear`` head); None: not trainable.
    ``square_w``: the recurrence is one square matrix W inside an elementwise nonlinearity,
    h' = phi(W h + U x + b) (no gate, no diagonal): what a parametrisation can keep orthogonal
    (``model.orthogonal``) and what Pascanu et al.'s inits draw.
    """

    name: str
    params: type
    draw: Callable
    layer_forward: Callable | None = None
    layer_weights: Callable | None = None
    state_parts: tuple = ("h",)
    gates: int = 1
    keep_gate: int | None = None
    activations: tuple = ("tanh",)
    inits: tuple = RECURRENT_INITS
    scaled_inits: tuple = RECURRENT_INITS
    record: Callable | None = None
    theory: Callable | None = None
    reference_step: Callable | None = None
    torch_module: type | None = None
    module_layer: Callable | None = None
    paper: str = ""
    components: int = 1
    own_readout: bool = False
    readout_offset: Callable | None = None
    output: Callable | None = None
    keys: dict = field(default_factory=dict)
    check: Callable | None = None
    keys_since: tuple = ()
    refuses: tuple = ()
    groups: tuple = ("W",)
    sensitivity: Callable | None = None
    recurrent: str | None = "W"
    module: Callable | None = None
    square_w: bool = False
    reference_output: Callable | None = None

    def forward(self, p, x, h0, burn_in: int = 0, jacobians: str = "cell") -> Recorded:
        """Run ``p`` over x (B, burn_in + T, D) from h0 (B, S), recording the measured steps.
        ``jacobians``: ``cell``, the hand-written step maps; ``derived``, the step Jacobians
        derived by ``torch.func`` from the cell's ``reference_step`` (``rnnlab.engine.derived``)."""
        from ...checks import choice

        choice("measure.jacobians", jacobians, JACOBIANS)
        if jacobians == "cell" and not self.hand_jacobians:
            say_once(f"measure.jacobians=cell: model.cell={self.name!r} has no hand-written "
                      "step Jacobians; they are derived from its step (measure.jacobians="
                      "derived)")
            jacobians = "derived"
        if jacobians == "derived":
            from ..derived import record_cell

            rec = record_cell(self, p, x, h0, burn_in)
        elif self.record is not None:
            rec = self.record(p, x, h0, burn_in)
        else:
            rec = record_layers(self, p, x, h0, burn_in)
        if self.output is not None:  # the readout reads y_t, a function of h_t and x_t
            rec.output = self.output(p, x[:, burn_in:], rec.u)
        return rec

    @property
    def hand_jacobians(self) -> bool:
        """Whether the cell writes its step maps itself (else they are derived from its
        ``reference_step``)."""
        return self.record is not None or self.layer_forward is not None

    def keep_slice(self, N: int) -> slice:
        """The rows of the stacked gate blocks that ``model.gate_bias`` shifts."""
        return slice(self.keep_gate * N, (self.keep_gate + 1) * N)


CELLS: dict[str, Cell] = {}
_SAID: set = set()


def say_once(message: str) -> None:
    """A warning given once per process (a sweep's runs, or a loop of measure_module calls,
    repeat it otherwise)."""
    if message not in _SAID:
        _SAID.add(message)
        warnings.warn(message, stacklevel=3)


def register(cell: Cell) -> Cell:
    """Add a cell to the registry (a name registered again is replaced)."""
    CELLS[cell.name] = cell
    return cell


def get(name: str) -> Cell:
    from ...checks import choice

    choice("model.cell", name, CELLS)
    return CELLS[name]


def names() -> tuple[str, ...]:
    return tuple(CELLS)


def for_module(module) -> Cell | None:
    """The registered cell of a ``torch.nn`` recurrent module (``measure_module``), if any; a
    subclass (a cell's trainable module) is read as its torch class."""
    for cell in CELLS.values():
        if cell.torch_module is not None and isinstance(module, cell.torch_module):
            return cell
    return None


def _import_modules() -> None:
    """Import every module of this package, so a cell module dropped in registers itself without
    an edit anywhere else (alphabetical order, the order errors list the cells in)."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


_import_modules()
