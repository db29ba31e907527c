"""The trainable cells of the registry (``Cell.module``, ``rnnlab.engine.cells``) as the training
app uses them (``rnnlab.train.sequence``, ``rnnlab.train.networks``):

- for every trainable cell (Elman tanh, relu and Pascanu's sigmoid, GRU, LSTM, minimalRNN, the
  LRU block) looping ``step`` from ``init_state`` gives what the readout sees at every step, and
  the last state, equal to the fused forward (torch's ``nn.RNN`` / ``GRU`` / ``LSTM`` kernels,
  the LRU's closed form) to 1e-12 in float64 (max abs);
- the GRU, LSTM and Elman modules' state_dicts are torch's own: a plain ``torch.nn.GRU`` /
  ``LSTM`` / ``RNN`` loads them and gives the same outputs bit for bit; a plain torch module is
  read as its cell's module holding the same parameters (``as_cell_module``);
- the minimalRNN, untrainable before, trains through ``model.cell=minimal``: a short run
  completes, model.pt reloads to the same outputs bit for bit, and the decay rate the training
  app measures (the engine through ``engine_params``) equals the slope of ln ||dL_{T-1}/dh_k||
  by autograd through its ``step`` to 1e-10 nats/step;
- rnnlab/train names no cell outside the training presets (archs.py) and the configuration
  schema (config.py, whose names are the configuration's): every cell is read from the registry.
"""
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnlab import tasks
from rnnlab.engine import cells
from rnnlab.train.config import TrainConfig, cell_names
from rnnlab.train.horizon import MAX_LAG, decay_rate
from rnnlab.train.loop import train
from rnnlab.train.networks import load_model, model_keys, save_model
from rnnlab.train.sequence import as_cell_module, outputs, readout_input, unroll

ROOT = Path(__file__).resolve().parents[1]
CASES = [("elman", "tanh"), ("elman", "relu"), ("elman", "sigmoid"), ("gru", "tanh"),
         ("lstm", "tanh"), ("minimal", "tanh"), ("lru", "linear")]

pytestmark = pytest.mark.usefixtures("one_thread")


def _module(cell, activation, D=4, N=6):
    torch.manual_seed(3)
    spec = cells.get(cell)
    keys = {"activation": activation, **{k: None for k in spec.keys}}
    return spec.module(D, N, keys, torch.float64)


@pytest.mark.parametrize("cell,activation", CASES)
def test_looping_step_equals_the_fused_forward(cell, activation):
    module = _module(cell, activation)
    x = torch.randn(3, 17, 4, dtype=torch.float64)
    state = module.init_state(3)
    hs = []
    with torch.no_grad():
        for t in range(17):
            state = module.step(x[:, t], state)
            hs.append(state[0])
        looped = readout_input(module, torch.stack(hs, 1), x)
        if getattr(module, "fused", False):
            fused, last = module(x)
            last = last if isinstance(last, tuple) else (last,)
            assert len(last) == len(state)
            for part, want in zip(state, last):
                assert (part - want[0]).abs().max().item() < 1e-12
        else:
            fused = outputs(module, x)
    assert fused.shape == looped.shape and (fused - looped).abs().max().item() < 1e-12
    assert sum(p.shape[-1] for p in state) == (12 if cell in ("lstm", "lru") else 6)


@pytest.mark.parametrize("cell,activation,plain", [
    ("elman", "relu", torch.nn.RNN), ("gru", "tanh", torch.nn.GRU),
    ("lstm", "tanh", torch.nn.LSTM)])
def test_state_dict_is_torchs_own(cell, activation, plain):
    module = _module(cell, activation)
    kw = dict(nonlinearity="relu") if plain is torch.nn.RNN else {}
    torch_module = plain(4, 6, batch_first=True, **kw).double()
    torch_module.load_state_dict(module.state_dict())
    x = torch.randn(2, 9, 4, dtype=torch.float64)
    with torch.no_grad():
        assert torch.equal(torch_module(x)[0], module(x)[0])
        view = as_cell_module(torch_module)
        assert all(a is b for a, b in zip(view.parameters(), torch_module.parameters()))
        s_view, s_own = unroll(view, x)[-1], unroll(module, x)[-1]
    assert all(torch.equal(a, b) for a, b in zip(s_view, s_own))


MINIMAL = dict(task="temporal_order", length=14, cell="minimal", hidden_size=8, steps=20,
               eval_every=10, eval_size=40, test_size=40, eval_batch=40, batch_size=8,
               probe_size=4, lr=1e-2, dtype="float64")


def _autograd_rate(rnn, head, x, y):
    """Slope of the batch mean ln ||dL_{T-1}/dh_k|| against the lag T-1-k by autograd through
    the module's step (cross-entropy of the last step)."""
    state, hs = rnn.init_state(x.shape[0]), []
    for t in range(x.shape[1]):
        state = rnn.step(x[:, t], state)
        state[0].retain_grad()
        hs.append(state[0])
    torch.nn.functional.cross_entropy(head(hs[-1]), y.argmax(-1), reduction="sum").backward()
    T = x.shape[1]
    lags = np.arange(1, min(MAX_LAG, T - 1) + 1)
    ln = [torch.log(torch.linalg.vector_norm(hs[T - 1 - k].grad, dim=-1)).mean().item()
          for k in lags]
    return np.polyfit(lags, ln, 1)[0]


def test_minimal_trains_reloads_and_measures(tmp_path):
    assert "minimal" in cell_names()
    cfg = TrainConfig(**MINIMAL).validate()
    result = train(cfg, progress=False)
    assert result.status == "completed" and result.steps_done == 20
    save_model(tmp_path / "model.pt", result.rnn, result.head, result.config)
    rnn, head, config = load_model(tmp_path / "model.pt")
    x, y = tasks.generate(cfg.task, 4, cfg.length, np.random.RandomState(7))
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    with torch.no_grad():
        assert torch.equal(head(outputs(rnn, x)), result.head(outputs(result.rnn, x)))
    rate = decay_rate(rnn, head, cfg.task, x, y)
    assert abs(rate - _autograd_rate(rnn, head, x, y)) < 1e-10
    assert model_keys(cells.get("minimal"), config) == {"activation": "tanh"}


def test_train_names_no_cell():
    names = "|".join(cells.names())
    found = [f"{path.relative_to(ROOT)}:{i}: {m.group(0)}"
             for path in sorted((ROOT / "rnnlab" / "train").glob("*.py"))
             if path.name not in ("archs.py", "config.py")
             for i, line in enumerate(path.read_text().splitlines(), 1)
             for m in re.finditer(rf"[\"']({names})[\"']", line)]
    assert not found, "cell names in rnnlab/train:\n" + "\n".join(found)
