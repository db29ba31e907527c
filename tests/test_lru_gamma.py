"""``model.gamma``: the LRU's normaliser as its own parameter (``param``, the default: Orvieto et
al.'s LRU and Zucchet & Orvieto's code) or sqrt(1 - |lambda|^2) differentiated through |lambda|
(``tied``: their code's ``L2``).

Checks: the key defaults to param on the LRU and stays null elsewhere; the refusals are one line
(on another cell, through the command line before any directory and in Python through
``schema.check_cell``; a value outside param/tied; tied with model.normalize=false); the
training block ``LRUBlock`` with ``tied`` holds no gamma parameter, its gamma is sqrt(1 -
|lambda|^2) to 1e-15 and autograd reaches nu through it (d out / d nu differs from param's by
exactly the path through gamma, checked against a finite difference), and a tied model.pt
reloads; param's block is the block as it was (gamma_log trained), and a run at param keeps the
configuration hash it had before the key (both apps) while tied hashes apart. The sensitivity of
both against autograd: tests/test_sensitivity.py; its closed forms: tests/test_memory_theory.py.
"""
import math

import pytest
import torch
from conftest import assert_refused

from rnnlab.checks import ConfigError
from rnnlab.engine.cells.lru import LRUBlock
from rnnlab.measure.config import ModelSpec, RunSpec
from rnnlab.train.config import TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")

LRU = dict(cell="lru", activation="linear", init="ring")
SMALL = ["model.hidden_size=4", "model.input_size=2", "model.output_size=3", "data.seq_len=8",
         "data.batch_size=2", "measure.progress=false", "measure.device=cpu"]
TRAIN = dict(task="temporal_order", length=12, hidden_size=6, steps=30, eval_every=15,
             eval_size=50, test_size=50, eval_batch=50, batch_size=8, probe_size=4, lr=1e-2)


def test_default_is_param_on_the_lru_only():
    assert ModelSpec(**LRU).gamma == "param"
    assert ModelSpec().gamma is None
    assert TrainConfig(**TRAIN, **LRU).validate().gamma == "param"


@pytest.mark.parametrize("overrides,needle", [
    (["model=gru", "model.gamma=param"], "unknown key 'model.gamma' in this configuration: it "
                                         "is a key of model=lru"),
    (["model=lru", "model.gamma=learned"], "model.gamma='learned' is not allowed; choose one "
                                           "of ['param', 'tied']"),
    (["model=lru", "model.gamma=tied", "model.normalize=false"],
     "model.gamma='tied' with model.normalize=false"),
])
def test_bad_gamma_is_one_line_before_any_directory(tmp_path, decay_in_process, overrides,
                                                    needle):
    run = tmp_path / "run"
    status, _, err = decay_in_process(f"hydra.run.dir={run}", *overrides, *SMALL)
    assert_refused(status, err, run, needle)


@pytest.mark.parametrize("cell", ["elman", "gru"])
def test_gamma_on_another_cell_is_refused_in_python(cell):
    """schema.check_cell: another cell's own key set in Python (or by a sweep's grid)."""
    with pytest.raises(ConfigError, match=rf"^model.gamma='tied' with model.cell='{cell}': "
                                          r"this key is model.cell='lru''s"):
        RunSpec(model=ModelSpec(cell=cell, gamma="tied")).validate()
    with pytest.raises(ConfigError, match=r"^model.gamma='tied' with model.cell='gru'"):
        TrainConfig(**TRAIN, cell="gru", activation="tanh", init="pytorch",
                    gamma="tied").validate()


def block(gamma: str) -> LRUBlock:
    torch.manual_seed(3)
    return LRUBlock(3, 5, r_min=0.6, r_max=0.95, max_phase=2.0, normalize=True, gamma=gamma,
                    dtype=torch.float64)


def test_tied_block_recomputes_gamma_from_nu():
    param, tied = block("param"), block("tied")
    names = {n for n, _ in tied.named_parameters()}
    assert "gamma_log" in dict(param.named_parameters()) and "gamma_log" not in names
    r = torch.exp(-torch.exp(tied.nu))
    torch.testing.assert_close(tied.gamma, torch.sqrt(1 - r * r), rtol=1e-15, atol=0)
    # the same draw: at init both blocks compute the same outputs
    x = torch.randn(2, 7, 3, dtype=torch.float64)
    torch.testing.assert_close(param(x)[0], tied(x)[0], rtol=1e-12, atol=1e-12)
    # d/dnu of a scalar of the output: tied adds the path through gamma (finite difference)
    def loss(m):
        return m(x)[0].pow(2).sum()
    grads = {}
    for name, m in (("param", param), ("tied", tied)):
        m.zero_grad()
        loss(m).backward()
        grads[name] = m.nu.grad[0].item()
    eps = 1e-6
    with torch.no_grad():
        tied.nu[0] += eps
        up = loss(tied).item()
        tied.nu[0] -= 2 * eps
        down = loss(tied).item()
        tied.nu[0] += eps
    assert grads["tied"] == pytest.approx((up - down) / (2 * eps), rel=1e-6)
    assert abs(grads["tied"] - grads["param"]) > 1e-3 * abs(grads["param"])
    assert block("tied").engine_params().tied and not block("param").engine_params().tied


def test_tied_state_dict_reloads():
    m = block("tied")
    again = LRUBlock(3, 5, r_min=0.6, r_max=0.95, max_phase=2.0, normalize=True, gamma="tied",
                     dtype=torch.float64)
    again.load_state_dict(m.state_dict())
    x = torch.randn(2, 4, 3, dtype=torch.float64)
    assert torch.equal(again(x)[0], m(x)[0])
    assert "gamma=tied" in repr(m) and not math.isnan(m.gamma.sum().item())


def test_param_keeps_earlier_hashes_and_tied_has_its_own():
    """model.gamma joined the LRU after runs of it were stored (Cell.keys_since): at param a
    run's hash is the one it had without the key (both apps); tied hashes differently."""
    from rnnlab.measure.config import hashed_params
    from rnnlab.runs.store import params_hash
    from rnnlab.train.app import config_hash, params

    spec = RunSpec(model=ModelSpec(**LRU)).validate()
    flat = spec.flat()
    before = {k: v for k, v in flat.items() if k != "model.gamma"}  # a run.json of then
    assert spec.config_hash() == params_hash(hashed_params(before))
    tied = RunSpec(model=ModelSpec(**LRU, gamma="tied")).validate()
    assert tied.config_hash() != spec.config_hash()
    train = TrainConfig(**TRAIN, **LRU).validate()
    stored = {k: v for k, v in params(train).items() if k != "gamma"}
    from rnnlab.train.config import hashed_params as train_hashed
    assert config_hash(train) == params_hash(train_hashed(stored))
    assert config_hash(TrainConfig(**TRAIN, **LRU, gamma="tied").validate()) != config_hash(train)
