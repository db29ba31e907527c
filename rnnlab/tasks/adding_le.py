"""The adding task of Le, Jaitly, Hinton 2015 (IRNN), with two markers as in Arjovsky, Shah,
Bengio 2016: target a + b. No-memory baseline: predict 1 (MSE 1/6, error rate
P(|a + b - 1| > 0.2) = 0.64).
"""
from __future__ import annotations

import numpy as np
import torch

from . import TaskSpec, register


def _adding_le(batch, length, rng):
    half = length // 2
    values = rng.uniform(size=(length, batch))
    pos = rng.randint(half, size=(batch, 2))
    pos[:, 1] += half
    x = np.zeros((batch, length, 2))
    x[:, :, 1] = values.T
    b = np.arange(batch)
    x[b, pos[:, 0], 0] = 1.
    x[b, pos[:, 1], 0] = 1.
    y = (x[b, pos[:, 0], 1] + x[b, pos[:, 1], 1]).reshape(-1, 1)
    return x, y


ADDING_LE = register(TaskSpec(
    "adding_le", 2, 1, "mse", "last", 2, 0.64, "Le et al. 2015; Arjovsky et al. 2016",
    draw=_adding_le, baseline=lambda length: 1 / 6, baseline_output=torch.ones_like))
