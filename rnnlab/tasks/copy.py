"""The copy-memory task of Arjovsky, Shah, Bengio 2016: 10 symbols, a delay of T blanks, a
delimiter, then the 10 symbols to recall. No-memory baseline: blanks for T + 10 steps (it knows
the clock) and uniform over {1..8} after: 10 ln 8 / (T + 20) nats per step, 7/8 of the recalled
symbols wrong.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from . import COPY_SYMBOLS, TaskSpec, register

COPY_CLASSES = 10  # blank 0, symbols 1..8, delimiter 9


def _copy(batch, length, rng):
    symbols = rng.randint(1, 9, size=(batch, COPY_SYMBOLS))
    steps = length + 2 * COPY_SYMBOLS
    x_sym = np.zeros((batch, steps), dtype=np.int64)
    x_sym[:, :COPY_SYMBOLS] = symbols
    x_sym[:, length + COPY_SYMBOLS - 1] = 9
    y_sym = np.zeros((batch, steps), dtype=np.int64)
    y_sym[:, -COPY_SYMBOLS:] = symbols
    eye = np.eye(COPY_CLASSES)
    return eye[x_sym], eye[y_sym]


def _baseline_output(y):
    # -1e4 rather than -inf: exp(-1e4) is exactly 0 in float32 and float64, and a finite logit is
    # not counted as an error by ``errors``
    logits = torch.full_like(y, -1e4)
    logits[:, :-COPY_SYMBOLS, 0] = 0.  # a certain blank while the clock says so
    logits[:, -COPY_SYMBOLS:, 1:9] = 0.  # uniform over the symbols 1..8 when recalling
    return logits


COPY = register(TaskSpec(
    "copy", COPY_CLASSES, COPY_CLASSES, "xent", "all", 1, 7 / 8, "Arjovsky et al. 2016",
    draw=_copy, baseline=lambda length: COPY_SYMBOLS * math.log(8) / (length + 20),
    baseline_output=_baseline_output))
