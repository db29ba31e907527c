"""Pascanu, Mikolov, Bengio 2013 (arXiv:1211.5063): their ``addition.py``, ``multiplication.py``
and ``tempOrder.py``, in their draw order from one ``RandomState`` (``rnnlab.tasks``).

No-memory baselines: adding predicts 0.5 (MSE 1/24, error rate P(|a + b - 1| > 0.4) = 0.36);
multiplication predicts E[ab] = 1/4 (MSE 1/9 - 1/16 = 7/144, error rate P(ab < 0.05) +
P(ab > 0.45) with P(ab <= c) = c - c ln c); temporal order predicts uniform classes (ln 4 nats,
75% errors).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from . import TaskSpec, register


def _p_product_below(c: float) -> float:
    """P(ab <= c) for independent a, b ~ U[0, 1]: c - c ln c."""
    return c - c * math.log(c)


def _pascanu_two_markers(batch, length, rng, combine):
    """addition.py / multiplication.py: time-major draws, returned batch first."""
    l = rng.randint(int(length * .1)) + length  # noqa: E741 (his name)
    p0 = rng.randint(int(l * .1), size=(batch,))
    p1 = rng.randint(int(l * .4), size=(batch,)) + int(l * .1)
    data = rng.uniform(size=(l, batch, 2))
    data[:, :, 0] = 0.
    b = np.arange(batch)
    data[p0, b, 0] = 1.
    data[p1, b, 0] = 1.
    y = combine(data[p0, b, 1], data[p1, b, 1]).reshape(-1, 1)
    return data.transpose(1, 0, 2).copy(), y


def _temporal_order(batch, length, rng):
    l = length
    p0 = rng.randint(int(l * .1), size=(batch,)) + int(l * .1)
    v0 = rng.randint(2, size=(batch,))
    p1 = rng.randint(int(l * .1), size=(batch,)) + int(l * .5)
    v1 = rng.randint(2, size=(batch,))
    vals = rng.randint(4, size=(l, batch)) + 2
    b = np.arange(batch)
    vals[p0, b] = v0
    vals[p1, b] = v1
    x = np.eye(6)[vals.T]
    y = np.eye(4)[v0 + 2 * v1]
    return x, y


_MUL_ERR = _p_product_below(0.25 - 0.2) + 1 - _p_product_below(0.25 + 0.2)

ADDING = register(TaskSpec(
    "adding_pascanu", 2, 1, "mse", "last", 10, 0.36, "Pascanu et al. 2013, addition.py",
    draw=lambda batch, length, rng: _pascanu_two_markers(batch, length, rng,
                                                          lambda a, b: (a + b) / 2.),
    baseline=lambda length: 1 / 24, baseline_output=lambda y: torch.full_like(y, 0.5)))
MULTIPLICATION = register(TaskSpec(
    "multiplication_pascanu", 2, 1, "mse", "last", 10, _MUL_ERR,
    "Pascanu et al. 2013, multiplication.py",
    draw=lambda batch, length, rng: _pascanu_two_markers(batch, length, rng, lambda a, b: a * b),
    baseline=lambda length: 1 / 9 - 1 / 16, baseline_output=lambda y: torch.full_like(y, 0.25)))
TEMPORAL_ORDER = register(TaskSpec(
    "temporal_order", 6, 4, "xent", "last", 10, 0.75, "Pascanu et al. 2013, tempOrder.py",
    draw=_temporal_order, baseline=lambda length: math.log(4),
    # equal logits: the uniform distribution over 4 classes
    baseline_output=torch.zeros_like))
