"""``arch=orthogonal_tanh`` (``model.orthogonal=true``) and the new training keys' hash:

- after 30 Adam updates in float64, W_hh^T W_hh = I to 1e-12 (max abs entry) and W_hh moved away
  from its initial value (by more than 1e-3 in Frobenius norm), so the constraint held while it
  trained;
- model.pt holds the plain ``nn.RNN`` names only, loads into a plain ``torch.nn.RNN`` (and through
  ``load_model`` into the Elman cell's unparametrised ``nn.RNN`` subclass), and gives the trained
  module's outputs to 1e-12 (float64);
- the arch registry names the run ``orthogonal_tanh``; a bad combination is one line;
- the configuration hash leaves the new keys out at their defaults: every committed training run
  under results/ still hashes to its stored ``config_hash``, and a non-default value changes it;
  the sweep tables still read the committed runs (their params lack the new keys).
"""
import json
from pathlib import Path

import pytest
import torch
from torch.nn.utils import parametrize

from rnnlab.checks import ConfigError
from rnnlab.train.app import config_hash
from rnnlab.train.archs import arch_name
from rnnlab.train.config import TrainConfig
from rnnlab.train.loop import load_model, save_model, train
from rnnlab.train.tables import collect

ROOT = Path(__file__).resolve().parents[1]
ORTHO = dict(cell="elman", activation="tanh", init="orthogonal", orthogonal=True)


pytestmark = pytest.mark.usefixtures("one_thread")


def test_recurrence_stays_orthogonal_and_reloads_as_plain_rnn(tmp_path):
    cfg = TrainConfig(task="temporal_order", length=12, hidden_size=10, steps=30, eval_every=30,
                      eval_size=50, test_size=50, eval_batch=50, batch_size=8, lr=1e-2,
                      dtype="float64", **ORTHO)
    from rnnlab.train.loop import build
    W0 = build(cfg)[0].weight_hh_l0.detach().clone()
    result = train(cfg, progress=False)
    assert result.status == "completed" and result.steps_done == 30
    W = result.rnn.weight_hh_l0.detach()
    assert (W.T @ W - torch.eye(10, dtype=torch.float64)).abs().max().item() < 1e-12
    assert torch.linalg.norm(W - W0).item() > 1e-3
    save_model(tmp_path / "model.pt", result.rnn, result.head, result.config)
    saved = torch.load(tmp_path / "model.pt", weights_only=True)
    assert sorted(saved["rnn"]) == ["bias_hh_l0", "bias_ih_l0", "weight_hh_l0", "weight_ih_l0"]
    plain = torch.nn.RNN(6, 10, batch_first=True).double()
    plain.load_state_dict(saved["rnn"])
    rnn, head, _ = load_model(tmp_path / "model.pt")
    # load_model gives the Elman cell's module, an unparametrised torch.nn.RNN
    assert isinstance(rnn, torch.nn.RNN) and not parametrize.is_parametrized(rnn)
    x = torch.randn(3, 12, 6, dtype=torch.float64)
    with torch.no_grad():
        want, _ = result.rnn(x)
        for module in (plain, rnn):
            got, _ = module(x)
            assert (got - want).abs().max().item() < 1e-12
    assert arch_name(result.config) == "orthogonal_tanh"


@pytest.mark.parametrize("change", [dict(cell="gru"), dict(activation="sigmoid"),
                                    dict(init="pytorch"), dict(spectral_radius=0.9)])
def test_bad_orthogonal_combination_is_one_line(change):
    with pytest.raises(ConfigError, match=r"^model.orthogonal=true with ") as err:
        TrainConfig(**{**ORTHO, **change}).validate()
    assert "\n" not in str(err.value)


def test_new_keys_leave_committed_hashes_unchanged():
    runs = sorted((ROOT / "results").rglob("run.json"))
    checked = 0
    for path in runs:
        rec = json.loads(path.read_text())
        params = rec.get("params", {})
        if "probe_size" not in params:  # a measurement run, not a training run
            continue
        assert config_hash(TrainConfig(**params).validate()) == rec["config_hash"], path
        checked += 1
    assert checked > 0
    # and the aggregation reads them (their params lack the new keys: defaults fill them in)
    runs, curves = collect(ROOT / "results" / "trainability" / "cells")
    assert len(runs) > 0 and (runs["lyap_k"] == 0).all() and (runs["regularizer"] == "none").all()
    assert "orthogonal_tanh" not in set(runs["arch"]) and len(curves) > 0
    base = TrainConfig()
    for change in (dict(lyap_k=2), dict(regularizer="omega"), dict(**ORTHO)):
        assert config_hash(TrainConfig(**change).validate()) != config_hash(base)
