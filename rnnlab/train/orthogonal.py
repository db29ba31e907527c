"""An Elman recurrence kept orthogonal while it trains (``arch=orthogonal_tanh``,
``model.orthogonal=true``): W_hh = Q with Q^T Q = I after every update.

The constraint is ``torch.nn.utils.parametrizations.orthogonal`` on ``weight_hh_l0`` (its default
map for a square real matrix, the matrix exponential of a skew-symmetric A, with the trivialisation
base set to the initial W): the optimiser updates A, and W = base exp(A) is orthogonal by
construction, to rounding (about 1e-15 in float64, 1e-6 in float32). The initial W is Haar
orthogonal (``model.init=orthogonal``), which the parametrisation keeps as its base exactly.

Saved and measured as a plain module: ``plain_state_dict`` holds the materialised W under
``nn.RNN``'s own name ``weight_hh_l0``, so model.pt loads into a plain ``torch.nn.RNN`` (the
parametrisation's A and base are not kept: to train further, load it and register the
parametrisation again, whose base is then the saved W). ``plain_copy`` is that plain module.
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import orthogonal

WEIGHT = "weight_hh_l0"


def keep_orthogonal(rnn: nn.RNN) -> nn.RNN:
    """Register the orthogonal parametrisation on ``rnn.weight_hh_l0`` (in place)."""
    orthogonal(rnn, WEIGHT)
    return rnn


def plain_state_dict(rnn: nn.Module) -> dict:
    """``rnn``'s state_dict under the plain module's names: a parametrised weight is replaced by
    its current value (detached); an unparametrised module's state_dict as it is."""
    if not parametrize.is_parametrized(rnn):
        return rnn.state_dict()
    state = {k: v for k, v in rnn.state_dict().items() if not k.startswith("parametrizations.")}
    for name in rnn.parametrizations:
        state[name] = getattr(rnn, name).detach().clone()
    return state


def plain_copy(rnn: nn.Module) -> nn.Module:
    """A plain copy of ``rnn`` (``copy.deepcopy`` cannot copy a parametrised ``nn.RNN``): a fresh
    module of its class before the parametrisation (an ``nn.RNN`` or the Elman cell's subclass
    of it) of the same shape, dtype and nonlinearity holding the materialised weights. The
    caller's random state is untouched."""
    if not parametrize.is_parametrized(rnn):
        return copy.deepcopy(rnn)
    plain = type(rnn).__bases__[0]  # parametrize made the class Parametrized<plain>(plain)
    with torch.random.fork_rng(devices=[]):
        new = plain(rnn.input_size, rnn.hidden_size, nonlinearity=rnn.nonlinearity,
                    batch_first=rnn.batch_first)
    ref = getattr(rnn, WEIGHT)
    new = new.to(device=ref.device, dtype=ref.dtype)
    new.load_state_dict(plain_state_dict(rnn))
    return new
