"""The regulariser of a training run (``train.regularizer``): one interface, one module each, and
the one place that chooses among them (``make``).

- ``none``: the task loss alone (``NoRegularizer``);
- ``omega``: Pascanu et al. 2013's Omega added to the gradient (``rnnlab.train.omega.Omega``);
- ``flossing``: Engelken 2023's gradient flossing between updates
  (``rnnlab.train.flossing.Flosser``).
"""
from __future__ import annotations

from typing import Protocol

from torch import Tensor

from .data import stream
from .flossing import Flosser
from .omega import Omega
from .sequence import Network


class Regularizer(Protocol):
    """What the training loop asks of a regulariser."""

    columns: tuple[str, ...]  # its curve columns, beside the loop's own

    def before(self) -> str | None:
        """Its work before the first update; a failure message (NaN or inf), or None."""

    def backward(self, net: Network, x: Tensor, y: Tensor) -> Tensor:
        """One update's task loss E on (x, y), detached, with every parameter's ``.grad`` set
        (none when E is not finite)."""

    def after_step(self, step: int) -> str | None:
        """Its work after training update ``step``; a failure message, or None."""

    def curve(self) -> dict:
        """Its curve columns since the last evaluation point (then started afresh)."""


class NoRegularizer:
    """``train.regularizer=none``: the task loss's own gradient; no work, no columns."""

    columns: tuple[str, ...] = ()

    def before(self) -> str | None:
        return None

    def backward(self, net: Network, x: Tensor, y: Tensor) -> Tensor:
        return net.backward(x, y)

    def after_step(self, step: int) -> str | None:
        return None

    def curve(self) -> dict:
        return {}


# name -> constructor from the run's settings (``rnnlab.train.config.TrainConfig``) and network
REGULARIZERS = {
    "none": lambda cfg, net: NoRegularizer(),
    "omega": lambda cfg, net: Omega(cfg.reg_weight),
    "flossing": lambda cfg, net: Flosser(cfg, net.rnn, stream(cfg.seed, "floss")),
}


def make(cfg, net: Network) -> Regularizer:
    """The regulariser ``cfg.regularizer`` of a run on ``net``."""
    return REGULARIZERS[cfg.regularizer](cfg, net)
