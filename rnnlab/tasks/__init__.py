"""Long-dependency tasks: generators, no-memory baselines, success rules, losses and error counts.

``generate(name, batch, length, rng)`` returns ``(x, y)`` as float64 numpy arrays, batch first,
drawn from one ``numpy.random.RandomState`` in the authors' order so that a seed gives their
sequences bit for bit:

- ``adding_pascanu`` (Pascanu, Mikolov, Bengio 2013, their ``addition.py``): x (B, l, 2), channel 0
  the marker, channel 1 values U[0, 1); markers p0 in [0, 0.1 l), p1 in [0.1 l, 0.5 l); target
  y (B, 1) = (a + b) / 2. The length ``l = length + randint(int(0.1 length))`` is drawn once per
  call, so **one batch shares one l in [length, 1.1 length)** and ``x.shape[1]`` may exceed
  ``length``; evaluate in several calls to average over l, as their code does.
- ``multiplication_pascanu`` (their ``multiplication.py``): the same draws, target a * b.
- ``temporal_order`` (their ``tempOrder.py``): x (B, length, 6) one-hot, channels A = 0, B = 1 and
  distractors 2..5; A or B at p0 in [0.1 L, 0.2 L) and at p1 in [0.5 L, 0.6 L); y (B, 4) one-hot of
  the class v0 + 2 v1 (AA, BA, AB, BB).
- ``adding_le`` (Le, Jaitly, Hinton 2015; two markers as in Arjovsky, Shah, Bengio 2016):
  x (B, T, 2), marker first as for Pascanu's adding, values U[0, 1); one marker in [0, T//2), one in
  [T//2, 2 (T//2)); target y (B, 1) = a + b. Draw order of Arjovsky's code: values (T, B), then the
  two positions (B, 2).
- ``copy`` (Arjovsky et al. 2016): 10 symbols from {1..8}, T - 1 blanks (0), the delimiter 9 at
  index T + 9, 10 blanks; x (B, T + 20, 10) one-hot; y (B, T + 20, 10) one-hot: blanks for T + 10
  steps, then the 10 symbols. ``length`` is the delay T, not the sequence length.
- ``delayed_copy``, ``delayed_xor`` (Engelken 2023): i.i.d. bits, y_t = s_{t-d} (scored from
  t >= d) or s_{t-d} XOR s_{t-2d} (from t >= 2d); ``length`` is the delay d, a sequence 4d steps;
  x, y (B, 4d, 1), y NaN where not scored (``delayed``).

Each task is one module of this package that describes itself with a ``TaskSpec`` and
``register``s it (``pascanu``, ``adding_le``, ``copy``); everything below reads the registry.

Losses: mean squared error of the readout (target units squared, mean over the batch) for the
regression tasks; cross-entropy in nats (per sequence at the last step, per step for copy).
The delayed tasks: binary cross-entropy of one logit in nats per scored step (``bce``); a scored
bit is wrong when the logit's sign misses it.
A regression prediction is an error when its squared error is > 0.04 (Pascanu's rule); a class
prediction when its argmax is wrong; for copy only the 10 recalled symbols are counted (the blanks
are predictable from the clock alone and would dilute the rate). A non-finite prediction is always
an error. A task is solved when fewer than 1% of the counted predictions are errors (Pascanu's
rule on 10,000 fresh sequences).

No-memory baselines (the best predictor that sees no input before the last step):
adding_pascanu predicts 0.5: MSE 1/24, error rate P(|a + b - 1| > 0.4) = 0.36;
multiplication_pascanu predicts E[ab] = 1/4: MSE 1/9 - 1/16 = 7/144, error rate
P(ab < 0.05) + P(ab > 0.45) with P(ab <= c) = c - c ln c; temporal_order predicts uniform
classes: ln 4 nats, 75% errors; adding_le predicts 1: MSE 1/6, error rate P(|a + b - 1| > 0.2) =
0.64; copy predicts blanks for T + 10 steps (it knows the clock) and uniform over {1..8} after:
10 ln 8 / (T + 20) nats per step, 7/8 of the recalled symbols wrong; the delayed tasks predict
P = 1/2 (a target bit is independent of the current input s_t, the only one a memoryless
predictor sees): ln 2 nats per scored step, half the bits wrong.
"""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..checks import ConfigError, choice

ERROR_THRESHOLD = 0.04  # squared error above which a regression prediction counts as wrong
SUCCESS_ERROR_RATE = 0.01  # solved: fewer than 1% of the counted predictions wrong
COPY_SYMBOLS = 10  # symbols to remember in the copy task (the readout "all" counts its last 10)


@dataclass(frozen=True)
class TaskSpec:
    """What a task is, independent of any model.

    ``loss`` is ``mse``, ``xent`` or ``bce`` (targets NaN where not scored); ``readout`` says where
    the prediction is read: ``last`` (the head on the top layer's h at the last step) or ``all``
    (every step). ``min_length`` is the shortest ``length`` whose marker ranges are non-empty.
    ``draw(batch, length, rng)`` gives (x, y) (``generate``); ``baseline(length)`` the no-memory
    loss (mse: target units squared; xent: nats, per step for copy) and ``baseline_output(y)`` what
    that predictor outputs.
    """

    name: str
    input_size: int
    output_size: int
    loss: str
    readout: str
    min_length: int
    baseline_error_rate: float
    paper: str
    draw: Callable
    baseline: Callable
    baseline_output: Callable

    def baseline_loss(self, length: int) -> float:
        """The no-memory loss (mse: target units squared; xent: nats, per step for copy)."""
        return self.baseline(length)

    def check_length(self, length) -> None:
        if isinstance(length, bool) or not isinstance(length, (int, np.integer)) \
                or length < self.min_length:
            raise ConfigError(f"task.length={length!r} is too short for task {self.name}; "
                              f"the minimum is {self.min_length}")


TASKS: dict[str, TaskSpec] = {}


def register(task: TaskSpec) -> TaskSpec:
    TASKS[task.name] = task
    return task


def spec(name: str) -> TaskSpec:
    choice("task", name, TASKS)
    return TASKS[name]


def generate(name: str, batch: int, length: int, rng: np.random.RandomState):
    """(x, y) float64, batch first, for task ``name``; see the module docstring for each layout."""
    task = spec(name)
    task.check_length(length)
    if not isinstance(rng, np.random.RandomState):
        raise TypeError(f"rng must be a numpy.random.RandomState (the authors' legacy stream), "
                        f"not {type(rng).__name__}")
    return task.draw(batch, length, rng)


def readout(task: TaskSpec, out: Tensor) -> Tensor:
    """The steps where predictions are read from the top layer's outputs ``out`` (B, l, N)."""
    return out[:, -1] if task.readout == "last" else out


def sequence_losses(task: TaskSpec, pred: Tensor, y: Tensor) -> Tensor:
    """Loss of each sequence (B,): squared error, or cross-entropy of the logits (copy: the mean
    over its steps; delayed tasks: binary cross-entropy, the mean over the scored steps)."""
    if task.loss == "mse":
        return ((pred - y) ** 2).sum(-1)
    if task.loss == "bce":
        scored = torch.isfinite(y)
        per = F.binary_cross_entropy_with_logits(pred, torch.where(scored, y, 0.0),
                                                 reduction="none")
        return (per * scored).sum((1, 2)) / scored.sum((1, 2))
    xent = F.cross_entropy(pred.reshape(-1, pred.shape[-1]), y.reshape(-1, y.shape[-1]).argmax(-1),
                           reduction="none")
    return xent.reshape(pred.shape[0], -1).mean(-1)


def loss(task: TaskSpec, pred: Tensor, y: Tensor) -> Tensor:
    """Mean loss over the batch (and over steps for copy and the delayed tasks): mse,
    cross-entropy of the logits, or binary cross-entropy of one logit over the scored steps."""
    return sequence_losses(task, pred, y).mean()


def errors(task: TaskSpec, pred: Tensor, y: Tensor) -> tuple[int, int]:
    """(wrong, counted) predictions: squared error > 0.04, or a wrong argmax class (copy: over the
    10 recalled symbols only; delayed tasks: the scored bits, by the logit's sign); a non-finite
    prediction is wrong."""
    finite = torch.isfinite(pred).all(-1)
    if task.loss == "bce":
        scored = torch.isfinite(y).all(-1)
        wrong = ((pred > 0) != (y > 0.5)).any(-1) | ~finite
        return int(wrong[scored].sum()), int(scored.sum())
    if task.loss == "mse":
        wrong = ((pred - y) ** 2).sum(-1) > ERROR_THRESHOLD
    else:
        if task.readout == "all":
            pred, y, finite = (v[:, -COPY_SYMBOLS:] for v in (pred, y, finite))
        wrong = pred.argmax(-1) != y.argmax(-1)
    wrong = wrong | ~finite
    return int(wrong.sum()), wrong.numel()


def baseline_prediction(task: TaskSpec, y: Tensor) -> Tensor:
    """What the no-memory predictor outputs (values, or logits) for targets shaped like ``y``.

    Only the shape of ``y`` is used, never its values: the predictor sees no input.
    """
    return task.baseline_output(y)


def _import_modules() -> None:
    """Import every module of this package, so a task module dropped in registers itself without
    an edit anywhere else: Pascanu's first (the paper the tasks come from, and the order errors
    list them in), then the rest alphabetically."""
    names = sorted(module.name for module in pkgutil.iter_modules(__path__))
    for name in sorted(names, key=lambda name: name != "pascanu"):
        importlib.import_module(f"{__name__}.{name}")


_import_modules()
