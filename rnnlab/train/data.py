"""A training run's random streams and its batches of task sequences.

``stream(seed, name)`` is ``numpy.random.RandomState([seed, k])``, one stream per use: the task
data (``train``, ``valid``, ``test``, ``probe``), Pascanu's inits (``init``) and the flossing
windows (``floss``), so no use shifts another's draws.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .. import tasks

STREAMS = {"init": 0, "train": 1, "valid": 2, "test": 3, "probe": 4, "floss": 5}


def stream(seed: int, name: str) -> np.random.RandomState:
    """The seeded legacy numpy stream ``name`` of a run."""
    return np.random.RandomState([seed, STREAMS[name]])


def sample(task_name: str, batch: int, length: int, rng, dtype) -> tuple[Tensor, Tensor]:
    """A batch (x (B, l, D), y) of the task from ``rng``, as torch tensors of ``dtype``."""
    x, y = tasks.generate(task_name, batch, length, rng)
    return torch.from_numpy(x).to(dtype), torch.from_numpy(y).to(dtype)
