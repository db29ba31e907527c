"""What a training run measures at each evaluation (``rnnlab.train.horizon``):

- the decay rate of the last-step tasks now comes from the last step's O(T) profile
  (``adjoint.loss_profiles``); it equals the rate read, as before, from row T-1 of the all-pairs
  sweep's (T, T) matrix: per lag the batch mean ln ||dL_{T-1}/dh_k|| agrees to 1e-10 and the
  slope to 1e-12 (nats/step), for tanh, GRU, LSTM and Pascanu's sigmoid RNN on temporal order
  and adding (the same quantity, the same float64 arithmetic up to summation order);
- ``train.lyap_k`` = 3: curve.parquet has finite lyap_1..lyap_3 at every evaluation, and the
  last row equals an independent computation on the saved model.pt (a plain
  ``nn.RNN`` forward, J_t = diag(1 - h_t^2) W, numpy's QR with diag R > 0, the same initial frame
  and transient) to 1e-10 nats/step;
- ``train.lyap_k`` larger than the hidden size is a one-line error.
"""
import math

import numpy as np
import pandas as pd
import pytest
import torch

from rnnlab.checks import ConfigError
from rnnlab.engine import adjoint
from rnnlab.engine.lyapunov import frame_transient, random_frame
from rnnlab.train.app import execute
from rnnlab.train.config import TrainConfig
from rnnlab.train.horizon import decay_rate, log10_grad_matrix, trajectory
from rnnlab.train.loop import build, load_model, sample, stream

ARCHS = {"tanh": {}, "gru": dict(cell="gru"), "lstm": dict(cell="lstm"),
         "sigmoid": dict(activation="sigmoid", init="pascanu_sigmoid")}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("task", ["temporal_order", "adding_pascanu"])
@pytest.mark.parametrize("arch", list(ARCHS))
def test_O_T_profile_equals_the_all_pairs_row(arch, task):
    cfg = TrainConfig(task=task, length=30, hidden_size=8, seed=2, **ARCHS[arch]).validate()
    rnn, head = build(cfg)
    x, y = sample(task, 5, 30, stream(2, "probe"), torch.float32)
    T, L = x.shape[1], 20
    matrix, _ = log10_grad_matrix(rnn, head, task, x, y, L)
    lags = np.arange(1, L + 1)
    row = matrix[T - 1, T - 1 - lags] * math.log(10)  # the old hook's numbers
    _, ln_grad, _ = adjoint.loss_profiles(trajectory(rnn, head, task, x, y))
    profile = ln_grad[1:L + 1].mean(1).numpy()
    assert np.abs(profile - row).max() < 1e-10
    assert decay_rate(rnn, head, task, x, y, max_lag=L) == pytest.approx(
        np.polyfit(lags, row, 1)[0], abs=1e-12)


def _independent_lyapunov(rnn, x, k, seed):
    """lambda_1..k of a plain nn.RNN (tanh) along x, by numpy QR, batch mean."""
    with torch.no_grad():
        h, _ = rnn(x)
    h = h.numpy()
    W = rnn.weight_hh_l0.detach().numpy()
    B, T, N = h.shape
    Q0 = random_frame(N, k, (B,), generator=torch.Generator().manual_seed(seed)).numpy()
    lam = np.zeros((B, k))
    for b in range(B):
        Q, total = Q0[b], np.zeros(k)
        for t in range(T):
            Q, R = np.linalg.qr((1 - h[b, t] ** 2)[:, None] * (W @ Q))
            s = np.where(np.diag(R) < 0, -1.0, 1.0)
            Q = Q * s
            if t >= frame_transient(T):
                total += np.log(np.abs(np.diag(R)))
        lam[b] = total / (T - frame_transient(T))
    return lam.mean(0)


def test_lyapunov_columns_match_an_independent_computation(tmp_path):
    cfg = TrainConfig(task="temporal_order", length=20, hidden_size=8, steps=40, eval_every=20,
                      eval_size=50, test_size=50, eval_batch=50, batch_size=8, lr=1e-2,
                      probe_size=4, lyap_k=3, seed=5).validate()
    record = execute(cfg, tmp_path / "run", threads=1, progress=False)
    assert record["status"] == "completed"
    curve = pd.read_parquet(tmp_path / "run" / "curve.parquet")
    lyap = curve[["lyap_1", "lyap_2", "lyap_3"]].to_numpy()
    assert list(curve["step"]) == [0, 20, 40] and np.isfinite(lyap).all()
    rnn, _, _ = load_model(tmp_path / "run" / "model.pt")
    x, _ = sample(cfg.task, 4, 20, stream(5, "probe"), torch.float64)
    expected = _independent_lyapunov(rnn.double(), x, 3, cfg.seed)
    assert np.abs(lyap[-1] - expected).max() < 1e-10


def test_lyap_k_above_hidden_size_is_one_line():
    with pytest.raises(ConfigError, match=r"^train.lyap_k=9 is not allowed; it must be at most "
                                          r"model.hidden_size=8 \(0 = off\)$"):
        TrainConfig(hidden_size=8, lyap_k=9).validate()
