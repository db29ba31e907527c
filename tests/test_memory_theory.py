"""The curse-of-memory closed forms (``rnnlab.theory.memory_*``, docs/theory.md) against a numpy
simulation of one real unit h_t = lambda h_{t-1} + g x_t, x_t a stationary AR(1) input of unit
variance and lag-one correlation rho (rho = 0: white noise).

The simulation does not use the derivation: x is the AR(1) recurrence run by
``scipy.signal.lfilter`` from x_0 = eps_0 (stationary), h the unit's recurrence run the same way
from h = 0, and dh/dp the central difference (h(p + eps) - h(p - eps)) / (2 eps) of two runs on
the same input (p = lambda, or nu with lambda = exp(-exp(nu))). The normaliser g: 1 (``none``),
sqrt(1 - lambda_0^2) at the tested lambda_0 and held there when p moves (``param``), or sqrt(1 -
lambda^2) recomputed at each p (``tied``, differentiated through). eps = 1e-5 (1 - lambda) in
lambda and 1e-5 in nu: the difference's truncation error (relative eps^2 times the scale of h's
dependence on p) and rounding (1e-16 / eps relative) are both below 1e-7, far below the standard
error. The first 30 c steps are dropped, c = max(1/(1 - lambda), 1/(1 - rho)) the longest
correlation time (the transient of h from 0 is below e^-30 times its start).

Standard error: M = 64 independent chains (independent noise), each averaged over T = 400 c
steps; the estimate is the mean of the 64 chain averages and its SE is their sample standard
deviation / sqrt(64) (batch means over independent chains, so the time correlation inside a
chain needs no model). Each closed form must lie within 4 SE of the estimate, and the SE must
be below 5% of the value (so the check has the power to see a wrong exponent or factor).

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


def simulate(lam_of_p, p: float, eps: float, gamma: str, rho: float, rng) -> tuple:
    """Per-chain time averages of h^2 and of (dh/dp)^2, each (M,)."""
    lam = lam_of_p(p)
    c = max(1 / (1 - lam), 1 / (1 - rho))
    burn, T = math.ceil(30 * c), math.ceil(400 * c)
    noise = rng.standard_normal((M, burn + T))
    s = math.sqrt(1 - rho * rho)
    # x_t = rho x_{t-1} + s eps_t from x_0 = eps_0: the filter's state adds (1 - s) eps_0 at t = 0
    x = lfilter([s], [1.0, -rho], noise, axis=1, zi=(1 - s) * noise[:, :1])[0]
    g0 = math.sqrt(1 - lam * lam)

    def run(q):
        lq = lam_of_p(q)
        g = {"none": 1.0, "param": g0, "tied": math.sqrt(1 - lq * lq)}[gamma]
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


def closed_form_checks(lam, param, gamma, seed, rho=0.0):
    """Seed 0 is the fast test's noise; another seed appends itself to the generator's entropy."""
    rng = np.random.default_rng([int(lam * 1000), param == "nu", th.GAMMAS.index(gamma),
                                 int(rho * 1000)] + ([seed] if seed else []))
    if param == "lambda":
        sq_h, sq_dh = simulate(lambda q: q, lam, 1e-5 * (1 - lam), gamma, rho, rng)
    else:
        nu = math.log(-math.log(lam))
        sq_h, sq_dh = simulate(lambda q: math.exp(-math.exp(q)), nu, 1e-5, gamma, rho, rng)
    return (check("E h^2", sq_h, float(th.memory_state_variance(lam, gamma, rho)))
            + check("E (dh/dp)^2", sq_dh, float(th.memory_sensitivity(lam, param, gamma, rho))))


@pytest.mark.parametrize("lam", [0.5, 0.9, 0.99])
@pytest.mark.parametrize("param", ["lambda", "nu"])
@pytest.mark.parametrize("gamma", ["none", "param", "tied"])
def test_closed_forms_match_simulation(lam, param, gamma):
    assert_checks(closed_form_checks(lam, param, gamma, seed=0))


@pytest.mark.parametrize("lam", [0.5, 0.9, 0.99])
@pytest.mark.parametrize("gamma", ["none", "param", "tied"])
@pytest.mark.parametrize("rho", [0.9, 0.99])
def test_closed_forms_match_simulation_with_correlated_input(lam, gamma, rho):
    assert_checks(closed_form_checks(lam, "lambda", gamma, seed=0, rho=rho))


def test_reference_values_and_limits():
    """The raw closed form at the reference's quoted points, the white-input forms as the
    authors' notebook's expressions at rho = 0, and each form over a m^p -> 1 as lambda -> 1
    (m = 1 / (1 - lambda)) for rho = 0 and 0.9."""
    assert th.memory_sensitivity(0.9) == pytest.approx(263.8868639743405, rel=1e-12)
    assert th.memory_sensitivity(0.99) == pytest.approx(2.5126262610240557e5, rel=1e-12)
    lam = np.array([0.3, 0.9, 0.99])
    white = {"none": (1 + lam ** 2) / (1 - lam ** 2) ** 3,
             "param": (1 + lam ** 2) / (1 - lam ** 2) ** 2, "tied": 1 / (1 - lam ** 2) ** 2}
    for gamma, want in white.items():
        np.testing.assert_allclose(th.memory_sensitivity(lam, "lambda", gamma), want, rtol=1e-12)
    lam = 1 - 1e-6
    for rho in (0.0, 0.9):
        for param in ("lambda", "nu"):
            for gamma in th.GAMMAS:
                a, p = th.memory_sensitivity_limit(param, gamma, rho)
                ratio = th.memory_sensitivity(lam, param, gamma, rho) / (a * (1 / (1 - lam)) ** p)
                assert abs(ratio - 1) < 1e-4, (param, gamma, rho, ratio)


@pytest.mark.parametrize("bad", [1.0, -1.0, 1.5, float("nan")])
def test_rho_outside_the_open_interval_is_one_line(bad):
    with pytest.raises(ValueError, match=r"^rho=.* is not allowed; it must "):
        th.memory_sensitivity(0.9, rho=bad)
