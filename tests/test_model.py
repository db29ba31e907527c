"""The model, its initialisers, seeding and configuration checks.

- the tutorial's ``RNN`` (nn.RNN + nn.Linear) and the unrolled Elman form give the same outputs
  in float64 (1e-12), batch_first or not, tanh and relu; n_layers > 1 is refused for measuring;
- spectral-radius scaling is exact (1e-12) for every init; gain gives W_ij ~ N(0, sigma_w^2/N):
  the entries' sample SD within 3.5 of its relative standard errors 1/sqrt(2 N^2), and the
  spectral radius / gain within 4 SD of that estimator's population mean at N = 400 (1.032,
  SD 0.019 over 40 draws; the circular law's 1 is its N -> infinity limit);
- one seed gives identical networks, data and measurements; another seed does not;
- every bad configuration fails before compute with an error naming the key and allowed values;
  neither scale key set means rho = 1, gain alone is allowed.

The gain check is a function of a seed, re-run over 20 seeds by tests/test_false_failures.py
(docs/statistical-tests.md).
"""
import math

import numpy as np
import pytest
import torch
from conftest import Check, assert_checks

from rnnlab.engine.init import spectral_radius
from rnnlab.engine.model import RNN, ElmanRNN, elman_from_tutorial, hidden_states, outputs
from rnnlab.measure.config import DataSpec, MeasureSpec, ModelSpec, RunSpec
from rnnlab.measure.networks import draw
from rnnlab.measure.run import measure


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("batch_first", [True, False])
def test_tutorial_rnn_matches_unrolled(nonlinearity, batch_first):
    torch.manual_seed(0)
    model = RNN(5, 4, 7, n_layers=1, nonlinearity=nonlinearity, batch_first=batch_first).double()
    x = torch.randn(3, 11, 5, dtype=torch.float64)
    h0 = torch.randn(1, 3, 7, dtype=torch.float64)
    logits, h_last = model(x if batch_first else x.transpose(0, 1), h0)
    p = elman_from_tutorial(model)
    h = hidden_states(p, x, h0[0])  # (T, B, N)
    y = outputs(p, h.transpose(0, 1))  # (B, T, C)
    assert torch.allclose(torch.softmax(logits, -1).view(3, 11, 4), y, atol=1e-12, rtol=0)
    assert torch.allclose(h_last[0], h[-1], atol=1e-12, rtol=0)
    y2, _ = ElmanRNN(p)(x, h0[0])
    assert torch.allclose(y2, y, atol=1e-14, rtol=0)


def test_multilayer_tutorial_rnn_is_refused():
    with pytest.raises(ValueError, match="n_layers=2"):
        elman_from_tutorial(RNN(3, 2, 4, n_layers=2))


@pytest.mark.parametrize("init", ["gaussian", "orthogonal", "identity"])
@pytest.mark.parametrize("rho", [0.3, 1.0, 7.5])
def test_spectral_radius_is_exact(init, rho):
    net = draw(ModelSpec(init=init, spectral_radius=rho, hidden_size=50), DataSpec(), seed=4)
    assert abs(spectral_radius(net.params.W) - rho) < 1e-12 * max(1, rho)


# The spectral radius of an N = 400 Gaussian matrix with entry variance 1/N over 40 draws
# (experiments/statistical_references.py): mean, standard error of the mean, SD. It sits above
# the circular law's radius 1 by a finite-N amount (the largest modulus of N eigenvalues).
RADIUS_400 = (1.03235, 0.00301, 0.01905)


def gain_checks(seed):
    """W's entries have variance gain^2/N: the sample SD of the N^2 entries within 3.5 of its
    relative standard errors 1/sqrt(2 N^2) of gain/sqrt(N); and its spectral radius / gain within
    4 sqrt(SD^2 + SE^2) of the population mean RADIUS_400."""
    N, gain = 400, 1.7
    W = draw(ModelSpec(gain=gain, spectral_radius=None, hidden_size=N), DataSpec(),
             seed).params.W
    mean, se, sd = RADIUS_400
    return [Check("|sample SD / (gain / sqrt N) - 1|",
                  abs(W.std().item() * math.sqrt(N) / gain - 1), 3.5 / math.sqrt(2 * N * N)),
            Check("|spectral radius / gain - population mean|",
                  abs(spectral_radius(W) / gain - mean), 4 * math.hypot(sd, se))]


def test_gain_scales_entries():
    assert_checks(gain_checks(seed=0))


def test_seed_determinism():
    spec = RunSpec(seed=7, model=ModelSpec(activation="relu", hidden_size=12),
                   data=DataSpec(seq_len=30, batch_size=3, burn_in=5, h0_std=1.0),
                   measure=MeasureSpec(device="cpu", save_tensors=True, progress=False))
    a, b = measure(spec), measure(spec)
    for key in a.tensors:
        assert np.array_equal(a.tensors[key], b.tensors[key], equal_nan=True), key
    assert a.fit == b.fit
    c = measure(RunSpec(seed=8, model=spec.model, data=spec.data, measure=spec.measure))
    assert not (c.tensors["W"] == a.tensors["W"]).all()


BAD = [
    ({"model": {"activation": "gelu"}}, "model.activation='gelu'.*tanh"),
    ({"model": {"init": "xavier"}}, "model.init='xavier'.*gaussian"),
    ({"measure": {"dtype": "float16"}}, "measure.dtype='float16'.*float32"),
    ({"measure": {"device": "tpu"}}, "measure.device='tpu'.*auto"),
    ({"measure": {"mode": "fast"}}, "measure.mode='fast'.*pairs"),
    ({"model": {"spectral_radius": 1.0, "gain": 1.0}}, "are both set"),
    ({"model": {"init": "identity", "spectral_radius": None, "gain": 1.0}},
     "model.gain=1.0 with model.init='identity'"),
    ({"model": {"spectral_radius": -1.0}}, "model.spectral_radius=-1.0"),
    ({"model": {"hidden_size": 0}}, "model.hidden_size=0.*>= 1"),
    ({"model": {"input_size": -3}}, "model.input_size=-3"),
    ({"model": {"output_size": 2.5}}, "model.output_size=2.5"),
    ({"data": {"seq_len": 0}}, "data.seq_len=0.*>= 1"),
    ({"data": {"batch_size": 0}}, "data.batch_size=0"),
    ({"data": {"burn_in": -1}}, "data.burn_in=-1"),
    ({"data": {"input_std": -0.1}}, "data.input_std=-0.1"),
    ({"measure": {"max_lag": -2}}, "measure.max_lag=-2"),
    ({"model": {"hidden_units": 3}}, "unknown key model.hidden_units"),
    ({"seed": -1}, "seed=-1"),
]


@pytest.mark.parametrize("cfg,message", BAD, ids=[m for _, m in BAD])
def test_bad_configuration_fails_before_compute(cfg, message, monkeypatch):
    import rnnlab.measure.run

    monkeypatch.setattr(rnnlab.measure.run, "draw",
                        lambda *a: pytest.fail("computed before checking"))
    with pytest.raises(ValueError, match=message):
        measure(RunSpec.from_dict(cfg))


def test_scale_keys_neither_means_rho_one():
    m = RunSpec.from_dict({"model": {"spectral_radius": None, "gain": None}}).validate().model
    assert m.spectral_radius == 1.0 and m.gain is None
    m = RunSpec.from_dict({"model": {"gain": 1.5}}).validate().model
    assert m.spectral_radius is None and m.gain == 1.5


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without a GPU")
def test_cuda_without_gpu_is_refused():
    with pytest.raises(ValueError, match="measure.device='cuda'.*no CUDA device"):
        RunSpec.from_dict({"measure": {"device": "cuda"}}).validate()
