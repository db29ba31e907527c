"""Shared by the figure scripts: one network's decay rate, windowed, from the engine."""
from __future__ import annotations

import math

import torch

from rnnlab import gradients
from rnnlab.config import DataSpec, ModelSpec
from rnnlab.fit import fit_decay
from rnnlab.init import draw


def network(seed=0, **kw):
    """(params, trajectory) for ModelSpec/DataSpec fields given as keywords, float64 CPU."""
    model_keys = set(ModelSpec.__dataclass_fields__)
    m = ModelSpec(**{k: v for k, v in kw.items() if k in model_keys})
    d = DataSpec(**{k: v for k, v in kw.items() if k not in model_keys})
    m.validate()
    d.validate()
    net = draw(m, d, seed)
    traj = gradients.forward(net.params, net.x, net.h0, net.y_target, burn_in=d.burn_in)
    return net.params, traj


def windowed_rate(params, traj, max_lag=50, min_lag=1) -> float:
    """Least-squares slope of the ln ratio over lags min_lag..max_lag (nats per step)."""
    prof = gradients.pair_profile(traj, params.W, max_lag=max_lag)
    return fit_decay(prof.lag, prof.ln_ratio, min_lag, max_lag)["decay_rate"], prof


def full_rank_noise(N, s_in2):
    """Fresh per-step drive of per-unit variance s_in^2 through a full-rank U (D = N):
    the setting in which mean-field theory holds (REFERENCE.md section 3)."""
    return dict(hidden_size=N, input_size=N, input_gain=math.sqrt(s_in2), input_std=1.0)


torch.set_num_threads(min(2, torch.get_num_threads()))
