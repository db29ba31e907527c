"""Adam's effective learning rate, read from ``torch.optim.Adam``'s state (Zucchet & Orvieto
2024, arXiv:2405.21064, Fig. 4; their ``source/train.py``).

Their definition: u = the update Adam would make if the next gradient were 1 in every
coordinate, from the current state (``opt.update(ones, opt_state, params)`` in optax): with
m, v the first and second moments after t steps,

    m' = b1 m + (1 - b1),  v' = b2 v + (1 - b2),
    u  = -lr (m' / (1 - b1^(t+1))) / (sqrt(v' / (1 - b2^(t+1))) + eps),

so -u is the step per unit of gradient, momentum and the unit gradient's own contribution to
the moments included (u can be >= 0 where the momentum points the other way). Their statistic
per parameter group is the geometric mean 10^mean(log10(max(-u, 0) + 1e-8)) over its entries
(``statistic``). ``step_size`` is the momentum-free reading, lr / (sqrt(v / (1 - b2^t)) + eps):
Adam's per-coordinate scale of the gradient (what the paper's text means by "effective learning
rate"); both are reported.
"""
from __future__ import annotations

import torch

from rnnlab.checks import ConfigError

FLOOR = 1e-8  # their additive floor inside the log10


def _groups(optimizer: torch.optim.Adam):
    if not isinstance(optimizer, torch.optim.Adam) or isinstance(optimizer, torch.optim.AdamW):
        raise ConfigError(f"optimizer={type(optimizer).__name__}; allowed: torch.optim.Adam")
    for group in optimizer.param_groups:
        for key, plain in (("amsgrad", False), ("maximize", False), ("weight_decay", 0)):
            if group.get(key, plain) != plain:
                raise ConfigError(f"Adam {key}={group[key]!r}; the effective learning rate is "
                                  f"defined for {key}={plain!r}")
        yield group


def unit_gradient_update(optimizer: torch.optim.Adam) -> dict:
    """{parameter: u} for every parameter with a state: Adam's update for a unit gradient
    (their definition, module docstring); the optimizer's state is left as it is."""
    out = {}
    for group in _groups(optimizer):
        lr, (b1, b2), eps = group["lr"], group["betas"], group["eps"]
        for p in group["params"]:
            state = optimizer.state.get(p)
            if not state:
                continue
            t = float(state["step"]) + 1
            m = b1 * state["exp_avg"] + (1 - b1)
            v = b2 * state["exp_avg_sq"] + (1 - b2)
            out[p] = -lr * (m / (1 - b1 ** t)) / ((v / (1 - b2 ** t)).sqrt() + eps)
    return out


def step_size(optimizer: torch.optim.Adam) -> dict:
    """{parameter: lr / (sqrt(v_hat) + eps)}, v_hat = v / (1 - b2^t) after t steps."""
    out = {}
    for group in _groups(optimizer):
        lr, (_, b2), eps = group["lr"], group["betas"], group["eps"]
        for p in group["params"]:
            state = optimizer.state.get(p)
            if not state:
                continue
            t = float(state["step"])
            out[p] = lr / ((state["exp_avg_sq"] / (1 - b2 ** t)).sqrt() + eps)
    return out


def statistic(u: torch.Tensor) -> float:
    """Their per-group statistic of the update u: 10^mean(log10(max(-u, 0) + 1e-8))."""
    return float(10 ** torch.log10(torch.clamp(-u, min=0) + FLOOR).mean())


def geometric_mean(s: torch.Tensor) -> float:
    """10^mean(log10(s + 1e-8)) of positive step sizes (the same floor as ``statistic``)."""
    return float(10 ** torch.log10(s + FLOOR).mean())
