"""Gradient flossing (``rnnlab.train.flossing``, ``train.regularizer=flossing``):

- the flossing loss mean_i lambda_i^2 (QR at every step, differentiable through
  ``torch.linalg.qr``) has the gradient of a central finite difference (step 1e-6) in W_hh,
  W_ih and b_hh on tiny tanh, GRU and LSTM networks (N = 6, k = 3, window 20, discard 5,
  float64), to a relative 1e-6;
- its exponents are the exact engine's (``lyapunov_spectrum`` without a graph for Elman, the
  engine's own cell maps of ``module_trajectory`` for GRU and LSTM; the same input, frame and
  transient) to 1e-12 nats/step;
- after 200 flossing updates before training (N = 16, k = 4, Adam 1e-2) lambda_1 of the exact
  engine on 8 fresh sequences of 400 steps moves towards 0: |lambda_1| falls below half its
  initial value (measured: -0.668 to -0.010 nats/step); the head is untouched; and the flossed
  network's 4 exponents by the training estimate (mean of 20 fresh windows of 55 steps, 16
  discarded) and by the exact engine agree within 4 standard errors of that mean (measured
  z <= 1.6);
- during training: ``floss.every``/``floss.times`` give exactly that many phases (counted through
  the curve's ``floss_loss`` column and the number of flossing updates);
- bad input (k > N, window <= discard, a floss key without flossing, reg_weight with it) is one
  line;
  through the command line exit 2 and no directory.
"""
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnlab.checks import ConfigError
from rnnlab.engine.lyapunov import lyapunov_from_maps, lyapunov_spectrum, random_frame
from rnnlab.engine.model import ElmanParams
from rnnlab.engine.torch_modules import module_trajectory
from rnnlab.train.config import TrainConfig
from rnnlab.train.flossing import Flosser, drive, flossing_exponents, flossing_loss
from rnnlab.train.horizon import lyapunov, trajectory
from rnnlab.train.loop import build, sample, stream, train

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[1]


def _tiny(cell="elman"):
    cfg = TrainConfig(task="temporal_order", length=10, hidden_size=6, dtype="float64",
                      cell=cell, regularizer="flossing", floss_k=3, floss_window=20,
                      floss_discard=5, seed=2).validate()
    rnn, _ = build(cfg)
    x = drive(cfg.task, cfg.length, cfg.floss_window, np.random.RandomState(0), torch.float64)
    Q0 = random_frame(12 if cell == "lstm" else 6, 3, generator=torch.Generator().manual_seed(1))
    return rnn, x, Q0


@pytest.mark.parametrize("cell", ["elman", "gru", "lstm"])
def test_flossing_gradient_equals_finite_differences(cell):
    rnn, x, Q0 = _tiny(cell)
    loss = flossing_loss(flossing_exponents(rnn, "tanh", x, Q0, 5))
    loss.backward()
    for name, idx in (("weight_hh_l0", (0, 1)), ("weight_hh_l0", (4, 2)),
                      ("weight_ih_l0", (3, 0)), ("bias_hh_l0", (5,))):
        p = getattr(rnn, name)
        values = []
        for eps in (1e-6, -1e-6):
            with torch.no_grad():
                p[idx] += eps
                lam = flossing_exponents(rnn, "tanh", x, Q0, 5)
                values.append(flossing_loss(lam).item())
                p[idx] -= eps
        fd = (values[0] - values[1]) / 2e-6
        assert fd == pytest.approx(p.grad[idx].item(), rel=1e-6), name


def test_flossing_exponents_are_the_engines():
    rnn, x, Q0 = _tiny()
    lam = flossing_exponents(rnn, "tanh", x, Q0, 5).detach()
    p = ElmanParams(rnn.weight_ih_l0.detach(), rnn.weight_hh_l0.detach(),
                    (rnn.bias_ih_l0 + rnn.bias_hh_l0).detach(), torch.zeros(1, 6),
                    torch.zeros(1), "tanh")
    ref = lyapunov_spectrum(p.to(dtype=torch.float64), x, torch.zeros(1, 6, dtype=torch.float64),
                            3, 5, Q0=Q0.unsqueeze(0))[0]
    assert (lam - ref).abs().max().item() < 1e-12


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_gated_flossing_exponents_are_the_engines(cell):
    rnn, x, Q0 = _tiny(cell)
    lam = flossing_exponents(rnn, "tanh", x, Q0, 5).detach()
    traj = module_trajectory(rnn, x, torch.zeros(1, 20, 6, dtype=torch.float64), loss="mse")
    ref = lyapunov_from_maps(traj.maps, 20, 3, 5, Q0=Q0.unsqueeze(0))[0]
    assert (lam - ref).abs().max().item() < 1e-12


def _engine_exponents(rnn, head, cfg, k=1):
    x, y = sample(cfg.task, 8, 400, stream(99, "probe"), torch.float64)
    return lyapunov(trajectory(rnn, head, cfg.task, x, y), k)


def test_preflossing_moves_lambda_1_towards_zero():
    cfg = TrainConfig(task="temporal_order", length=20, hidden_size=16, steps=0,
                      regularizer="flossing", floss_k=4, floss_pre_steps=200, floss_lr=1e-2,
                      eval_size=10, test_size=10, eval_batch=10).validate()
    rnn0, head0 = build(cfg)
    before = _engine_exponents(rnn0, head0, cfg)[0]
    result = train(cfg, progress=False)
    engine = _engine_exponents(result.rnn, result.head, cfg, k=4)
    assert result.status == "completed" and before < 0
    assert abs(engine[0]) < 0.5 * abs(before), (before, engine[0])
    assert torch.equal(result.head.weight, head0.weight)
    assert np.isfinite(result.curve["floss_loss"].iloc[0])
    # the training estimate (20 fresh windows, own frames) against the exact engine
    rng = np.random.RandomState(7)
    est = []
    for i in range(20):
        x = drive(cfg.task, cfg.length, cfg.floss_window, rng, torch.float32)
        Q0 = random_frame(16, 4, dtype=torch.float32, generator=torch.Generator().manual_seed(i))
        with torch.no_grad():
            est.append(flossing_exponents(result.rnn, "tanh", x, Q0, cfg.floss_discard).numpy())
    est = np.array(est)
    se = est.std(0, ddof=1) / np.sqrt(len(est))
    assert (np.abs(engine - est.mean(0)) < 4 * se).all(), (engine, est.mean(0), se)


def test_flossing_phases_during_training():
    cfg = TrainConfig(task="temporal_order", length=10, hidden_size=8, steps=30, eval_every=10,
                      eval_size=20, test_size=20, eval_batch=20, regularizer="flossing",
                      floss_k=2, floss_window=12, floss_discard=3, floss_pre_steps=2,
                      floss_every=10, floss_steps=3, floss_times=2).validate()
    calls = []
    original = Flosser.step

    def counted(self):
        calls.append(1)
        return original(self)

    Flosser.step = counted
    try:
        result = train(cfg, progress=False)
    finally:
        Flosser.step = original
    assert result.status == "completed" and len(calls) == 2 + 2 * 3
    assert result.curve["floss_loss"].notna().tolist() == [True, True, True, False]


@pytest.mark.parametrize("change,message", [
    (dict(floss_k=9), r"^floss.k=9 is not allowed; it must be at most model.hidden_size=8$"),
    (dict(floss_window=16), r"^floss.window=16 is not allowed; it must be longer than "
                            r"floss.discard=16$"),
    (dict(regularizer="none", floss_k=16, floss_steps=10),
     r"^floss.steps=10 with train.regularizer='none': "),
    (dict(reg_weight=1.0), r"^train.reg_weight=1.0 with train.regularizer='flossing': "),
])
def test_bad_flossing_input_is_one_line(change, message):
    base = TrainConfig(hidden_size=8, regularizer="flossing", floss_k=4)
    with pytest.raises(ConfigError, match=message) as err:
        replace(base, **change).validate()
    assert "\n" not in str(err.value)


def test_cli_rejects_a_floss_key_without_flossing(tmp_path):
    run_dir = tmp_path / "run"
    out = subprocess.run([sys.executable, str(ROOT / "experiments" / "train.py"),
                          "floss.k=4", "train.progress=false", f"hydra.run.dir={run_dir}"],
                         capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "floss.k=4 with train.regularizer='none'" in lines[0]
    assert not run_dir.exists()
