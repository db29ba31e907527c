"""``arch=lru``: one LRU layer (Orvieto et al. 2023) with its readout and MLP in the training app
(``rnnlab.train.lru``):

- the block's closed-form forward, h_t = sum_k lambda^(t-k) gamma B x_k, equals the engine's
  step-by-step recurrence (``rnnlab.engine.cells.lru.states``) to 1e-12 (float64, max abs), and
  its initial ring lies inside r_min <= |lambda| <= r_max with gamma = sqrt(1 - |lambda|^2) to
  1e-12;
- a short training run (30 Adam updates, float64, a few seconds) completes, moves nu, and its
  curve's decay rate (the engine's LRU cell, g_T through the MLP and head) equals the slope of
  ln ||dL_{T-1}/ds_k|| computed by autograd through an independent complex recurrence
  (``reference_step``) to 1e-10 nats/step, at step 0 and after training; the leading Lyapunov
  exponent is at most ln max|lambda| (+1e-12), as J is normal with eigenvalues lambda;
- model.pt reloads (``load_model``, and by hand into ``LRUBlock``) and gives the trained
  module's outputs to 1e-12 (float64) and bit for bit (float32); the arch is named ``lru``;
- settings that do not apply (flossing, model.orthogonal, LRU keys on another cell, the LRU
  without linear/ring, r_min > r_max) are one ConfigError line; through the command line
  ``arch=lru train.regularizer=flossing`` exits 2 with one line and creates no directory;
- the LRU keys at their null defaults leave every other cell's configuration hash unchanged, and
  conf/arch/lru.yaml holds the engine's defaults (r_min 0.9, r_max 0.999, max_phase 2 pi,
  normalize true) exactly.
"""
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnlab.checks import ConfigError
from rnnlab.engine.cells import lru as lru_cell
from rnnlab.train.app import config_hash
from rnnlab.train.archs import arch_name
from rnnlab.train.config import TrainConfig
from rnnlab.train.horizon import MAX_LAG, decay_rate
from rnnlab.train.loop import build, load_model, sample, save_model, stream, train
from rnnlab.train.lru import LRU_KEYS, LRUBlock

ROOT = Path(__file__).resolve().parents[1]
LRU = dict(cell="lru", activation="linear", init="ring")
SMALL = dict(task="temporal_order", length=12, hidden_size=6, steps=30, eval_every=15,
             eval_size=50, test_size=50, eval_batch=50, batch_size=8, probe_size=4, lr=1e-2)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_closed_form_matches_the_engine_recurrence_and_the_ring_init():
    torch.manual_seed(0)
    block = LRUBlock(3, 5, r_min=0.5, r_max=0.99, max_phase=math.pi, normalize=True,
                     dtype=torch.float64)
    x = torch.randn(4, 40, 3, dtype=torch.float64)
    p = block.engine_params()
    want = lru_cell.states(p, x, torch.zeros(4, 10, dtype=torch.float64)).transpose(0, 1)
    assert (block.states(x) - want).abs().max().item() < 1e-12
    r = p.modulus
    assert ((r >= 0.5 - 1e-12) & (r <= 0.99 + 1e-12)).all()
    assert (p.gamma - torch.sqrt(1 - r ** 2)).abs().max().item() < 1e-12
    assert (torch.exp(p.theta) <= math.pi).all()


def autograd_rate(rnn, head, x, y):
    """The last-step loss's decay rate by autograd through the engine's complex reference step:
    slope of the batch mean of ln ||dL_{T-1}/ds_k|| against the lag T-1-k, lags 1..min(50, T-1)."""
    rnn, head = rnn.double(), head.double()
    x, y = x.double(), y.double()
    p = rnn.engine_params()
    step = lru_cell.reference_step(p)
    s = (torch.zeros(x.shape[0], 2 * rnn.hidden_size, dtype=torch.float64,
                     requires_grad=True),)
    states = []
    for t in range(x.shape[1]):
        s = step(x[:, t], s)
        s[0].retain_grad()
        states.append(s[0])
    logits = head(rnn.features(states[-1], x[:, -1]))
    torch.nn.functional.cross_entropy(logits, y.argmax(-1), reduction="sum").backward()
    T = x.shape[1]
    lags = np.arange(1, min(MAX_LAG, T - 1) + 1)
    ln = [torch.log(torch.linalg.vector_norm(states[T - 1 - l].grad, dim=-1)).mean().item()
          for l in lags]
    return np.polyfit(lags, ln, 1)[0]


def test_training_run_and_its_decay_rate_match_autograd():
    cfg = TrainConfig(**SMALL, **LRU, dtype="float64", lyap_k=2).validate()
    assert (cfg.r_min, cfg.r_max, cfg.normalize) == (0.9, 0.999, True)  # arch=lru's values
    from rnnlab.train.horizon import make_measure
    result = train(cfg, measure=make_measure(cfg.task, lyap_k=2), progress=False)
    assert result.status == "completed" and result.steps_done == 30
    rnn0, head0 = build(cfg)
    assert (result.rnn.nu - rnn0.nu).abs().max().item() > 1e-4
    x, y = sample(cfg.task, cfg.probe_size, cfg.length, stream(cfg.seed, "probe"), torch.float64)
    for (rnn, head), rate in (((rnn0, head0), result.initial_decay_rate),
                              ((result.rnn, result.head), result.curve["decay_rate"].iloc[-1])):
        assert rate == pytest.approx(decay_rate(rnn, head, cfg.task, x, y), abs=0)
        assert abs(rate - autograd_rate(rnn, head, x, y)) < 1e-10
    ln_r_max = math.log(result.rnn.engine_params().modulus.max().item())
    assert result.curve["lyap_1"].iloc[-1] <= ln_r_max + 1e-12
    assert arch_name(result.config) == "lru"


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-12), ("float32", 0.0)])
def test_model_pt_reload_reproduces_the_outputs(tmp_path, dtype, tol):
    cfg = TrainConfig(**{**SMALL, "steps": 5}, **LRU, dtype=dtype).validate()
    result = train(cfg, progress=False)
    save_model(tmp_path / "model.pt", result.rnn, result.head, result.config)
    rnn, head, config = load_model(tmp_path / "model.pt")
    saved = torch.load(tmp_path / "model.pt", weights_only=True)
    by_hand = LRUBlock(config["input_size"], config["hidden_size"],
                       **{k: config[k] for k in LRU_KEYS}, dtype=saved["rnn"]["nu"].dtype)
    by_hand.load_state_dict(saved["rnn"])
    x = torch.randn(3, cfg.length, 6, dtype=saved["rnn"]["nu"].dtype)
    with torch.no_grad():
        want = result.head(result.rnn(x)[0])
        for module in (rnn, by_hand):
            got = head(module(x)[0])
            assert (got - want).abs().max().item() <= tol


@pytest.mark.parametrize("change,key", [
    (dict(regularizer="flossing"), "train.regularizer"),
    (dict(orthogonal=True), "model.orthogonal"),
    (dict(r_min=0.99, r_max=0.9), "model.r_min"),
    (dict(r_max=1.0), "model.r_max"),
    (dict(activation="tanh"), "model.activation"),
    (dict(cell="elman", activation="tanh", init="pytorch", r_max=0.9), "model.r_max"),
    (dict(cell="gru", activation="tanh", init="ring"), "model.init"),
])
def test_settings_that_do_not_apply_are_refused(change, key):
    with pytest.raises(ConfigError) as err:
        TrainConfig(**{**SMALL, **LRU, **change}).validate()
    assert key in str(err.value) and "\n" not in str(err.value)


def test_flossing_with_lru_exits_2_on_the_command_line(tmp_path):
    run_dir = tmp_path / "run"
    out = subprocess.run([sys.executable, str(ROOT / "experiments" / "train.py"), "arch=lru",
                          "train.regularizer=flossing", f"hydra.run.dir={run_dir}"],
                         capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rnnlab: error:")
    assert "train.regularizer" in lines[0] and "lru" in lines[0]
    assert not run_dir.exists()


def test_null_lru_keys_leave_other_hashes_alone():
    base = TrainConfig(**SMALL).validate()
    assert all(getattr(base, k) is None for k in LRU_KEYS)
    from rnnlab.runs import store
    from rnnlab.train.app import params
    from rnnlab.train.config import HASH_BASE
    old = {k: v for k, v in params(base).items() if k in HASH_BASE}
    assert config_hash(base) == store.params_hash(old)


def test_arch_lru_yaml_holds_the_engine_defaults():
    import yaml
    conf = yaml.safe_load((ROOT / "conf" / "arch" / "lru.yaml").read_text())
    assert {k: conf[k] for k in LRU_KEYS} == lru_cell.DEFAULTS
