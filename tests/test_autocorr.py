"""``data.autocorr``: the stationary AR(1) input of the measurement app (``rnnlab.engine.inputs
.ar1``, ``rnnlab.measure.networks.draw``).

Checks: over 4000 independent sequences, x_t has mean 0 and variance 1 at the first, a middle
and the last step (stationary from the first step, not only after a transient) and the lag-1 and
lag-5 correlations are rho and rho^5, each within 4 standard errors (the SE of a mean of 4000
i.i.d. products, estimated from their spread; the check is a function of a seed); rho = 0 leaves
a run's draw bit for bit as it was (the noise itself, then the targets from the same generator)
and rho != 0 draws the same random numbers (x_0 and the targets unchanged); input_std scales the
unit-variance sequence; rho outside (-1, 1) is one line before any directory, on the command line
and in Python.
"""
import json
import math

import pytest
import torch
from conftest import Check, assert_checks, assert_refused

from rnnlab.checks import ConfigError
from rnnlab.engine import cells
from rnnlab.engine.inputs import ar1
from rnnlab.measure.config import DataSpec, ModelSpec, RunSpec
from rnnlab.measure.networks import draw

pytestmark = pytest.mark.usefixtures("one_thread")

B, T = 4000, 40
N_SE = 4.0


def moment_checks(rho: float, seed: int) -> list[Check]:
    """Mean, variance and lag-1/lag-5 correlations of ar1 against 0, 1, rho, rho^5."""
    g = torch.Generator().manual_seed(seed)
    x = ar1(torch.randn(B, T, 2, generator=g, dtype=torch.float64), rho)
    checks = []

    def near(name, samples, want):
        mean = samples.mean().item()
        se = (samples.std() / math.sqrt(samples.numel())).item()
        checks.append(Check(name, abs(mean - want), N_SE * se))

    for t in (0, T // 2, T - 1):
        near(f"mean at t = {t}", x[:, t, 0], 0.0)
        near(f"variance at t = {t}", x[:, t, 0] ** 2, 1.0)
    near("lag-1 correlation", x[:, T - 1, 1] * x[:, T - 2, 1], rho)
    near("lag-5 correlation", x[:, 5, 1] * x[:, 0, 1], rho ** 5)
    near("the two coordinates are independent", x[:, T - 1, 0] * x[:, T - 1, 1], 0.0)
    return checks


@pytest.mark.parametrize("rho", [0.0, 0.9, -0.5])
def test_ar1_is_stationary_with_the_asked_correlation(rho):
    assert_checks(moment_checks(rho, seed=0))


def test_ar1_recurrence_and_rho_zero():
    eps = torch.randn(3, 6, 2, dtype=torch.float64)
    assert ar1(eps, 0.0) is eps
    x = ar1(eps, 0.7)
    assert torch.equal(x[:, 0], eps[:, 0])
    want = 0.7 * x[:, :-1] + math.sqrt(1 - 0.49) * eps[:, 1:]
    torch.testing.assert_close(x[:, 1:], want, rtol=1e-15, atol=1e-15)
    # time along another dim: the same sequences
    torch.testing.assert_close(ar1(eps.transpose(0, 1), 0.7, dim=0), x.transpose(0, 1),
                               rtol=0, atol=0)


@pytest.mark.parametrize("cell", ["elman", "lstm", "lru"])
def test_rho_zero_is_the_old_draw_bit_for_bit(cell):
    """The draw before data.autocorr existed: cell weights, readout, h0, then x = randn *
    input_std and the targets, from one generator (rnnlab.measure.networks)."""
    kw = dict(cell=cell, hidden_size=4, input_size=3, output_size=2)
    if cell == "lru":
        kw.update(activation="linear", init="ring")
    m = ModelSpec(**kw)
    d = DataSpec(seq_len=7, batch_size=3, burn_in=2, input_std=0.7, h0_std=0.3)
    new = draw(m, d, seed=11)
    g = torch.Generator().manual_seed(11)
    c = cells.get(cell)
    c.draw(m, d.seq_len, g)
    if not c.own_readout:
        torch.rand(2, 4, generator=g, dtype=torch.float64)
        torch.rand(2, generator=g, dtype=torch.float64)
    for _ in c.state_parts:
        torch.randn(3, c.components * 4, generator=g, dtype=torch.float64)
    x = torch.randn(3, 9, 3, generator=g, dtype=torch.float64) * 0.7
    classes = torch.randint(2, (3, 7), generator=g)
    assert torch.equal(new.x, x)
    assert torch.equal(new.y_target, torch.nn.functional.one_hot(classes, 2).double())
    # rho != 0 draws the same numbers: the first step and the targets are unchanged
    corr = draw(m, DataSpec(**{**d.__dict__, "autocorr": 0.9}), seed=11)
    assert torch.equal(corr.x[:, 0], x[:, 0]) and torch.equal(corr.y_target, new.y_target)
    assert torch.equal(corr.h0, new.h0) and not torch.equal(corr.x, x)
    torch.testing.assert_close(corr.x / 0.7, ar1(x / 0.7, 0.9), rtol=1e-14, atol=1e-14)


SMALL = ["model.hidden_size=4", "model.input_size=2", "model.output_size=3", "data.seq_len=8",
         "data.batch_size=2", "measure.progress=false", "measure.device=cpu"]


@pytest.mark.parametrize("value", ["1", "-1.0", "1.5", "nan"])
def test_rho_outside_the_open_interval_is_one_line(tmp_path, decay_in_process, value):
    run = tmp_path / "run"
    status, _, err = decay_in_process(f"hydra.run.dir={run}", f"data.autocorr={value}", *SMALL)
    assert_refused(status, err, run, "data.autocorr=")
    assert "(-1, 1)" in err or "finite number" in err


def test_python_spec_and_function_refuse_rho_one():
    with pytest.raises(ConfigError, match=r"^data.autocorr=1.0 is not allowed; it must lie in "
                                          r"\(-1, 1\)"):
        RunSpec(data=DataSpec(autocorr=1.0)).validate()
    with pytest.raises(ConfigError, match=r"^rho=-1.0 is not allowed"):
        ar1(torch.zeros(2, 3), -1.0)


def test_command_line_runs_with_correlated_inputs(tmp_path, decay_in_process):
    run = tmp_path / "run"
    status, _, err = decay_in_process(f"hydra.run.dir={run}", "data.autocorr=0.5", *SMALL)
    assert status == 0, err
    assert json.loads((run / "run.json").read_text())["params"]["data.autocorr"] == 0.5
