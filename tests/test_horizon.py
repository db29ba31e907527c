"""The decay rate measured while training (``rnnlab.train.horizon``), by the exact engine:

- on the last-step tasks it equals, to float64 rounding, the slope of the plain-autograd
  reference of experiments/initial_decay.py (a zero leaf added to each state, one backward pass),
  for tanh, IRNN, GRU, LSTM, Pascanu's sigmoid (not a torch module type: measured through
  rnnlab.engine.adjoint) and smart tanh, on temporal order and adding;
- the modules it is given are left unchanged (dtype and weights);
- through ``train(..., measure=make_measure(task))`` the curve's step-0 rate is the initial
  network's rate and run's ``initial_decay_rate``.
"""
import sys
from pathlib import Path

import pytest
import torch

from rnnlab.train.config import TrainConfig
from rnnlab.train.horizon import decay_rate, make_measure
from rnnlab.train.loop import build, sample, stream, train

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
import initial_decay  # noqa: E402 (after its folder is on sys.path)

ARCHS = {"tanh": {}, "irnn": dict(activation="relu", init="identity"), "gru": dict(cell="gru"),
         "lstm": dict(cell="lstm"), "sigmoid": dict(activation="sigmoid", init="pascanu_sigmoid"),
         "smart_tanh": dict(init="pascanu_smart_tanh")}


@pytest.mark.parametrize("task", ["temporal_order", "adding_pascanu"])
@pytest.mark.parametrize("arch", list(ARCHS))
def test_engine_rate_equals_the_autograd_reference(arch, task):
    torch.set_num_threads(1)
    cfg = TrainConfig(task=task, length=30, hidden_size=8, seed=3, **ARCHS[arch]).validate()
    rnn, head = build(cfg)
    x, y = sample(task, 5, 30, stream(3, "probe"), torch.float32)
    before = {k: v.clone() for k, v in rnn.state_dict().items()}
    rate = decay_rate(rnn, head, task, x, y, max_lag=20)
    expected = initial_decay.decay_rate(rnn, head, task, x, y, max_lag=20)
    assert rate == pytest.approx(expected, abs=1e-12)
    assert rate < 0
    assert rnn.weight_hh_l0.dtype == torch.float32
    assert all(torch.equal(before[k], v) for k, v in rnn.state_dict().items())


def test_training_curve_starts_at_the_initial_rate():
    torch.set_num_threads(1)
    cfg = TrainConfig(task="temporal_order", length=12, hidden_size=8, steps=20, eval_every=10,
                      eval_size=50, test_size=100, probe_size=4, seed=1).validate()
    result = train(cfg, measure=make_measure(cfg.task), progress=False)
    rnn, head = build(cfg)
    x, y = sample(cfg.task, 4, 12, stream(1, "probe"), torch.float32)
    assert result.curve["decay_rate"].iloc[0] == decay_rate(rnn, head, cfg.task, x, y)
    assert result.initial_decay_rate == result.curve["decay_rate"].iloc[0]
    assert result.curve["decay_rate"].notna().all() and len(result.curve) == 3
