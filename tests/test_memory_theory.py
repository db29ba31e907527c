"""The curse-of-memory closed forms (``rnnlab.theory.memory_*``, docs/theory.md) against a numpy
simulation of one real unit h_t = lambda h_{t-1} + g(lambda) x_t, x_t ~ N(0, 1) i.i.d.

The simulation does not use the derivation: h is the recurrence run by ``scipy.signal.lfilter``
from h = 0, and dh/dp is the central difference (h(p + eps) - h(p - eps)) / (2 eps) of two runs on
the same noise (p = lambda, or nu with lambda = exp(-exp(nu)); g = 1, or sqrt(1 - lambda^2)
recomputed at each p, so the normalisation is differentiated through). eps = 1e-5 (1 - lambda) in
lambda and 1e-5 in nu: the difference's truncation error (relative eps^2 times the scale of h's
dependence on p) and rounding (1e-16 / eps relative) are both below 1e-7, far below the standard
error. The first 30 / (1 - lambda) steps are dropped (transient below e^-30 times its start).

Standard error: M = 64 independent chains (independent noise), each averaged over
T = 500 / (1 - lambda) steps (500 correlation times of h); the estimate is the mean of the 64
chain averages and its SE is their sample standard deviation / sqrt(64) (batch means over
independent chains, so the time correlation inside a chain needs no model). Each closed form
must lie within 4 SE of the estimate, and the SE must be below 5% of the value (so the check has
the power to see a wrong exponent or factor).

The check is a function of a seed, re-run over 20 seeds by tests/test_false_failures.py
(docs/statistical-tests.md).
"""
import math

import numpy as np
import pytest
from conftest import Check, assert_checks
from scipy.signal import lfilter

from rnnlab import theory as th

M = 64
N_SE = 4.0


def simulate(lam_of_p, p: float, eps: float, normalize: bool, rng) -> tuple:
    """Per-chain time averages of h^2 and of (dh/dp)^2, each (M,)."""
    lam = lam_of_p(p)
    burn, T = math.ceil(30 / (1 - lam)), math.ceil(500 / (1 - lam))
    x = rng.standard_normal((M, burn + T))

    def run(q):
        lq = lam_of_p(q)
        g = math.sqrt(1 - lq * lq) if normalize else 1.0
        return lfilter([g], [1.0, -lq], x, axis=1)[:, burn:]

    h = run(p)
    dh = (run(p + eps) - run(p - eps)) / (2 * eps)
    return (h * h).mean(1), (dh * dh).mean(1)


def check(name: str, chain_means: np.ndarray, expected: float) -> list[Check]:
    """The closed form within N_SE standard errors of the chains' mean, and the SE below 5% of
    it."""
    est = chain_means.mean()
    se = chain_means.std(ddof=1) / math.sqrt(len(chain_means))
    return [Check(f"{name}: SE", se, 0.05 * expected),
            Check(f"{name}: |estimate - closed form|", abs(est - expected), N_SE * se)]


def closed_form_checks(lam, param, normalize, seed):
    """Seed 0 is the fast test's noise; another seed appends itself to the generator's entropy."""
    rng = np.random.default_rng([int(lam * 1000), param == "nu", normalize]
                                + ([seed] if seed else []))
    if param == "lambda":
        sq_h, sq_dh = simulate(lambda q: q, lam, 1e-5 * (1 - lam), normalize, rng)
    else:
        nu = math.log(-math.log(lam))
        sq_h, sq_dh = simulate(lambda q: math.exp(-math.exp(q)), nu, 1e-5, normalize, rng)
    return (check("E h^2", sq_h, float(th.memory_state_variance(lam, normalize)))
            + check("E (dh/dp)^2", sq_dh, float(th.memory_sensitivity(lam, param, normalize))))


@pytest.mark.parametrize("lam", [0.5, 0.9, 0.99])
@pytest.mark.parametrize("param", ["lambda", "nu"])
@pytest.mark.parametrize("normalize", [False, True])
def test_closed_forms_match_simulation(lam, param, normalize):
    assert_checks(closed_form_checks(lam, param, normalize, seed=0))


def test_reference_values_and_limits():
    """The plain closed form at the reference's quoted points, and each form over a m^p -> 1
    as lambda -> 1 (m = 1 / (1 - lambda))."""
    assert th.memory_sensitivity(0.9) == pytest.approx(263.8868639743405, rel=1e-12)
    assert th.memory_sensitivity(0.99) == pytest.approx(2.5126262610240557e5, rel=1e-12)
    lam = 1 - 1e-6
    for param in ("lambda", "nu"):
        for normalize in (False, True):
            a, p = th.memory_sensitivity_limit(param, normalize)
            ratio = th.memory_sensitivity(lam, param, normalize) / (a * (1 / (1 - lam)) ** p)
            assert abs(ratio - 1) < 1e-5, (param, normalize, ratio)
