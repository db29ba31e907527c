"""Engelken 2023's delayed tasks (``rnnlab/tasks/delayed.py``):

- layout: x and y (B, 4d, 1); inputs are bits; y_t = s_{t-d} (copy) or s_{t-d} XOR s_{t-2d}
  (XOR) exactly at every scored step, NaN before d (copy) or 2d (XOR); the bits are fair
  (mean within 4 standard errors of 1/2);
- the bce loss and error count by hand: the mean binary cross-entropy over the scored steps
  (1e-12) and the scored bits whose logit has the wrong sign;
- the exact engine sees binary cross-entropy on one logit as two-class cross-entropy on (0, o):
  its g_t = dL_t/dh_t equals autograd's gradient of the per-step BCE to 1e-12 at every scored
  step and is exactly 0 at the unscored ones; the decay rate is finite;
- a short training run (delayed_copy, d = 3) completes with decay rate and Lyapunov columns, and
  weight_grad.parquet is written.
(The no-memory baseline, ln 2 and half the bits wrong, is checked with every task's by
tests/test_tasks.py.)

The fair-bits check is a function of a seed, re-run over 20 seeds by tests/test_false_failures.py
(docs/statistical-tests.md).
"""
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from conftest import Check, assert_checks

from rnnlab import tasks
from rnnlab.train.app import execute
from rnnlab.train.config import TrainConfig
from rnnlab.train.horizon import decay_rate, trajectory
from rnnlab.train.loop import build, sample, stream


def fair_bits_checks(name, seed):
    """The input bits of 400 sequences (d = 5, ``RandomState(seed)``): their mean within 4
    binomial standard errors 0.5 / sqrt(n) of 1/2."""
    x, _ = tasks.generate(name, 400, 5, np.random.RandomState(seed))
    s = x[..., 0]
    return [Check(f"{name}: |mean bit - 1/2|", abs(s.mean() - 0.5), 4 * 0.5 / math.sqrt(s.size))]


@pytest.mark.parametrize("name,taps", [("delayed_copy", 1), ("delayed_xor", 2)])
def test_layout(name, taps):
    d = 5
    x, y = tasks.generate(name, 400, d, np.random.RandomState(3))
    assert x.shape == y.shape == (400, 4 * d, 1)
    s, y = x[..., 0], y[..., 0]
    assert set(np.unique(s)) == {0.0, 1.0}
    assert_checks(fair_bits_checks(name, seed=3))
    assert np.isnan(y[:, :taps * d]).all() and np.isfinite(y[:, taps * d:]).all()
    t = np.arange(taps * d, 4 * d)
    want = s[:, t - d] if taps == 1 else np.logical_xor(s[:, t - d], s[:, t - 2 * d])
    np.testing.assert_array_equal(y[:, t], want)


def test_loss_and_errors_by_hand():
    task = tasks.spec("delayed_xor")
    x, y = (torch.from_numpy(v)
            for v in tasks.generate("delayed_xor", 6, 4, np.random.RandomState(0)))
    pred = torch.randn(y.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    scored = torch.isfinite(y)
    bce = F.binary_cross_entropy_with_logits(pred[scored], y[scored], reduction="none")
    per_seq = bce.reshape(6, -1).mean(1)
    assert (tasks.sequence_losses(task, pred, y) - per_seq).abs().max().item() < 1e-12
    wrong = int(((pred[scored] > 0) != (y[scored] == 1)).sum())
    assert tasks.errors(task, pred, y) == (wrong, int(scored.sum()))


def test_engine_loss_gradient_is_the_bce_gradient():
    cfg = TrainConfig(task="delayed_xor", length=4, hidden_size=6, dtype="float64").validate()
    rnn, head = build(cfg)
    x, y = sample("delayed_xor", 3, 4, stream(0, "probe"), torch.float64)
    traj = trajectory(rnn, head, "delayed_xor", x, y)
    g = torch.exp(traj.g_log_norm).unsqueeze(-1) * traj.g_dir  # (T, B, N)
    with torch.no_grad():
        h, _ = rnn(x)
    h = h.clone().requires_grad_()
    scored = torch.isfinite(y)
    per = F.binary_cross_entropy_with_logits(head(h), torch.where(scored, y, 0.0),
                                             reduction="none")
    want, = torch.autograd.grad((per * scored).sum(), h)
    want = want.transpose(0, 1)
    mask = scored[..., 0].T
    assert (g[mask] - want[mask]).abs().max().item() < 1e-12
    assert (traj.g_dir[~mask] == 0).all()
    assert math.isfinite(decay_rate(rnn, head, "delayed_xor", x, y, max_lag=8))


def test_training_run_on_delayed_copy(tmp_path):
    torch.set_num_threads(1)
    cfg = TrainConfig(task="delayed_copy", length=3, hidden_size=8, steps=40, eval_every=20,
                      eval_size=50, test_size=50, eval_batch=50, batch_size=8, lr=1e-2,
                      probe_size=4, lyap_k=2).validate()
    record = execute(cfg, tmp_path / "run", threads=1, progress=False)
    assert record["status"] == "completed"
    assert record["baseline_loss"] == pytest.approx(math.log(2), abs=1e-15)
    assert record["eval_count"] == 50 * 9  # 9 scored bits per sequence of 12
    curve = pd.read_parquet(tmp_path / "run" / "curve.parquet")
    assert curve[["decay_rate", "lyap_1", "lyap_2"]].notna().all().all()
    assert (tmp_path / "run" / "weight_grad.parquet").exists()
