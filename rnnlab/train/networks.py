"""The networks a training run starts from, and the saved model: a cell module from the cell
registry (``Cell.module``, ``rnnlab.engine.cells``) and a ``torch.nn.Linear`` head on what its
readout sees (the top layer's h; the LRU block's MLP output; a stack's y^L: ``model.layers``,
``model.norm``, ``model.residual`` make a ``rnnlab.engine.stacks.StackModule`` of the cell's
modules).

The cells' modules are batch first. The Elman cell is ``torch.nn.RNN`` (tanh, relu) or, for the
logistic units of Pascanu et al. 2013 that ``nn.RNN`` does not offer, ``SigmoidRNN`` with
``nn.RNN``'s parameter names; the GRU and the LSTM are ``torch.nn.GRU`` / ``LSTM``; each of these
is a subclass that adds the cell's ``step`` and keeps torch's state_dict, so model.pt loads into
the plain torch module. IRNN (Le, Jaitly, Hinton 2015) is ``cell=elman, activation=relu,
init=identity``: W = I and zero biases.

Recurrent inits (``init``): ``pytorch`` leaves every weight as the module draws it; ``gaussian``
(W_ij ~ N(0, 1/N) times ``gain``, or rescaled to ``spectral_radius`` exactly), ``orthogonal``
(Haar Q times rho) and ``identity`` (rho I) set each gate's recurrent block as the measurement
runs do (``rnnlab.engine.init.recurrent_matrix``, the module's ``set_recurrent``) and zero every
bias; the input weights and the head keep torch's draws. Pascanu et al. 2013 (arXiv:1211.5063,
their ``RNN.py``), on the Elman cell: ``pascanu_sigmoid`` (every weight N(0, 0.01^2), sigmoid
units), ``pascanu_basic_tanh`` (every weight N(0, 0.1^2), tanh), ``pascanu_smart_tanh`` (input and
output N(0, 0.01^2); W with 15 non-zeros per row of their h_{t-1} W layout, i.e. per column of
torch's ``weight_hh``, rescaled to spectral radius 0.95), all biases zero, drawn in their order
from one ``RandomState``.

torch's own draws use ``torch.manual_seed(seed)`` inside a forked RNG, so building a run never
disturbs the caller's random state.
"""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

from .. import tasks
from ..engine import cells, stacks
from ..engine.init import recurrent_matrix
from ..runs.store import atomic_write
from .config import DTYPES, PASCANU_INITS, RECURRENT_INITS, TrainConfig
from .data import stream
from .orthogonal import keep_orthogonal, plain_state_dict


def model_keys(cell: cells.Cell, source) -> dict:
    """The ``model.*`` keys a cell's module reads from ``source`` (a config object or a saved
    config dict): ``activation`` and the cell's own keys."""
    get = source.get if isinstance(source, dict) else lambda k: getattr(source, k, None)
    return {"activation": get("activation"), **{k: get(k) for k in cell.keys}}


def modules(cell: str, input_size: int, hidden_size: int, output_size: int, model: dict,
            dtype: torch.dtype | None = None, stack: dict | None = None):
    """Bare (rnn, head) from the global torch RNG: the registered cell's module (its own draw,
    cast to ``dtype``) and ``nn.Linear(hidden_size, output_size)`` drawn after it. ``stack``:
    ``layers``, ``norm``, ``residual``; a stack (``rnnlab.engine.stacks.is_stacked``) is a
    ``StackModule`` of the cell's modules, layer 1 drawn first."""
    spec = cells.get(cell)
    if spec.module is None:
        raise ValueError(f"model.cell={cell!r} has no trainable module")
    shape = SimpleNamespace(**(stack or {"layers": 1, "norm": "none", "residual": False}))
    if stacks.is_stacked(shape):
        rnn = stacks.stack_module(spec, input_size, hidden_size, model, shape.layers, shape.norm,
                                  shape.residual, dtype)
    else:
        rnn = spec.module(input_size, hidden_size, model, dtype)
    return rnn, nn.Linear(hidden_size, output_size)


def stack_keys(source) -> dict:
    """``layers``, ``norm``, ``residual`` of a config object or a saved config dict (a model.pt
    saved before these keys: one plain layer)."""
    get = source.get if isinstance(source, dict) else lambda k: getattr(source, k, None)
    default = {"layers": 1, "norm": "none", "residual": False}
    return {k: default[k] if get(k) is None else get(k) for k in default}


def _pascanu_init(cfg: TrainConfig, rnn, head):
    """Pascanu et al.'s draws, in his order, from the ``init`` stream (his W_hh acts as h W_hh)."""
    std, _, smart = PASCANU_INITS[cfg.init]
    rng = stream(cfg.seed, "init")
    N, D, C = cfg.hidden_size, rnn.input_size, head.out_features
    W_uh = rng.normal(size=(D, N), scale=std, loc=0.)
    W_hh = rng.normal(size=(N, N), scale=std, loc=0.)
    if smart:
        for row in range(N):
            W_hh[row][rng.permutation(N)[15:]] = 0.
        W_hh = 0.95 * W_hh / np.max(np.abs(np.linalg.eigvals(W_hh)))
    W_hy = rng.normal(size=(N, C), scale=std, loc=0.)
    for p, value in ((rnn.weight_ih_l0, W_uh.T), (rnn.weight_hh_l0, W_hh.T), (head.weight, W_hy.T)):
        p.copy_(torch.from_numpy(np.ascontiguousarray(value)))
    for p in (rnn.bias_ih_l0, rnn.bias_hh_l0, head.bias):
        p.zero_()


def build(cfg: TrainConfig):
    """The initial (rnn, head) of a run in ``cfg.dtype``; the same config gives the same weights."""
    task = tasks.spec(cfg.task)
    cell, N, dtype = cells.get(cfg.cell), cfg.hidden_size, DTYPES[cfg.dtype]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        rnn, head = modules(cfg.cell, task.input_size, N, task.output_size,
                            model_keys(cell, cfg), dtype, stack_keys(cfg))
    head = head.to(dtype)  # before the draws, so float64 keeps every digit
    with torch.no_grad():
        if cfg.init in PASCANU_INITS:
            _pascanu_init(cfg, rnn, head)
        elif cfg.init in RECURRENT_INITS:
            g = torch.Generator().manual_seed(cfg.seed)
            # each gate's recurrent block, PyTorch's order (a stack's layers in turn, layer 1
            # first, from the one generator)
            draw = lambda: torch.cat([recurrent_matrix(N, cfg.init, cfg.rho, cfg.gain, g)  # noqa: E731
                                      for _ in range(cell.gates)])
            if isinstance(rnn, stacks.StackModule):
                rnn.set_recurrent([draw() for _ in rnn.layers])
            else:
                rnn.set_recurrent(draw())
    if cfg.orthogonal:
        keep_orthogonal(rnn)
    return rnn, head


def save_model(path, rnn: nn.Module, head: nn.Linear, config: dict) -> None:
    """Write ``{"rnn": state_dict, "head": state_dict, "config": config}`` (config: plain
    scalars with at least ``cell``, ``activation``, ``input_size`` and ``hidden_size``), via a
    temporary file and a rename. A parametrised recurrence (``model.orthogonal``) is saved
    materialised under the plain module's names (``rnnlab.train.orthogonal.plain_state_dict``)."""
    atomic_write(Path(path), lambda p: torch.save({"rnn": plain_state_dict(rnn),
                                                  "head": head.state_dict(),
                                                  "config": dict(config)}, p))


def load_model(path):
    """(rnn, head, config) rebuilt from a ``save_model`` file: the cell's module (the class
    training used, whose state_dict is torch's own) and the head; sizes from ``config``, dtype
    from the saved weights, the cell's own keys from ``config``."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    cfg, rnn_sd, head_sd = saved["config"], saved["rnn"], saved["head"]
    dtype = next(v.dtype for v in rnn_sd.values() if v.is_floating_point())
    cell = cells.get(cfg["cell"])
    rnn, head = modules(cell.name, cfg["input_size"], cfg["hidden_size"],
                        head_sd["weight"].shape[0], model_keys(cell, cfg), dtype,
                        stack_keys(cfg))
    head = head.to(dtype)
    rnn.load_state_dict(rnn_sd)
    head.load_state_dict(head_sd)
    return rnn, head, cfg
