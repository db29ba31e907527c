"""Engelken 2023's delayed tasks (gradient flossing, arXiv:2312.17306; his
``GradientFlossing_XOR.jl``) on i.i.d. input bits s_t in {0, 1} (P = 1/2 each), with the delay
d as the task's ``length``:

- ``delayed_copy``: y_t = s_{t-d}, scored at every step t >= d;
- ``delayed_xor``: y_t = s_{t-d} XOR s_{t-2d}, scored at every step t >= 2d.

A sequence has ``STEPS_PER_DELAY`` * d steps (copy: 3d scored steps, XOR: 2d); Engelken's README
example uses T = 300 at d = 10, longer than this, because its cost is one network of 80 units.
x (B, T, 1) holds the bits; y (B, T, 1) the target bits, NaN at the steps that are not scored.
Loss: binary cross-entropy of the one logit read at every step (``tasks.loss`` ``bce``: nats per
scored step); a scored step is wrong when the sign of the logit misses the bit. His RNG cannot be
matched: the statistics are, the sequences are not.

No-memory baseline: every target bit is independent of the inputs the predictor sees at step t
(s_t itself never enters y_t), so the best memoryless prediction is P = 1/2 (logit 0):
ln 2 = 0.693147 nats per scored step, and half the scored bits wrong.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from . import TaskSpec, register

STEPS_PER_DELAY = 4  # sequence length in units of the delay d


def _delayed(batch, length, rng, taps):
    """Bits (B, T, 1) and the XOR of the bits ``taps`` multiples of d back, NaN before."""
    d = length
    steps = STEPS_PER_DELAY * d
    s = rng.randint(2, size=(batch, steps)).astype(np.float64)
    y = np.full((batch, steps), np.nan)
    first = taps * d
    y[:, first:] = s[:, first - d:steps - d]
    if taps == 2:
        y[:, first:] = np.logical_xor(y[:, first:], s[:, :steps - first]).astype(np.float64)
    return s[..., None], y[..., None]


DELAYED_COPY = register(TaskSpec(
    "delayed_copy", 1, 1, "bce", "all", 1, 0.5, "Engelken 2023, GradientFlossing_XOR.jl",
    draw=lambda batch, length, rng: _delayed(batch, length, rng, 1),
    baseline=lambda length: math.log(2), baseline_output=torch.zeros_like))
DELAYED_XOR = register(TaskSpec(
    "delayed_xor", 1, 1, "bce", "all", 1, 0.5, "Engelken 2023, GradientFlossing_XOR.jl",
    draw=lambda batch, length, rng: _delayed(batch, length, rng, 2),
    baseline=lambda length: math.log(2), baseline_output=torch.zeros_like))
