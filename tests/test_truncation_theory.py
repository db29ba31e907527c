"""The truncation shares of one linear unit h_t = lambda h_{t-1} + x_t with white unit input
(``rnnlab.theory.truncation_input_share``, ``truncation_residual_share``): the closed forms
against their direct sums (finite T and stationary), against a Monte Carlo of the recurrence
itself (statistical: ``share_checks``, 4 delta-method standard errors, re-run over 20 seeds by
tests/test_false_failures.py), the identity R_K = lambda^K dh_{t-K}/dlambda behind the residual,
and the refusals."""
import numpy as np
import pytest
from conftest import Check, assert_checks

from rnnlab import theory as th


def direct(lam, K, T):
    """(input share, residual share) as the sums over input lags j = 1..T-1."""
    q, j = lam ** 2, np.arange(1, T)
    total = (j ** 2 * q ** (j - 1.0)).sum()
    return ((j[j >= K] ** 2 * q ** (j[j >= K] - 1.0)).sum() / total,
            ((j - K)[j > K] ** 2 * q ** (j[j > K] - 1.0)).sum() / total)


@pytest.mark.parametrize("lam", [0.5, -0.7, 0.9, 0.99, 0.999])
@pytest.mark.parametrize("T", [5, 60, 600, 5000, None])
def test_closed_forms_are_the_sums(lam, T):
    # the finite-T form subtracts two tails: digits go where q^T is near 1 (T short against
    # the memory): 1e-12 relative where q^T < 1/2, 1e-8 otherwise (at worst 1e-9, measured)
    rel = 1e-12 if T is None or lam ** (2 * T) < 0.5 else 1e-8
    for K in (1, 2, 4, 10, 50, 100, 300):
        want = direct(lam, K, 300000 if T is None else T)
        got = th.truncation_input_share(lam, K, T), th.truncation_residual_share(lam, K, T)
        for g, w in zip(got, want):
            assert g == pytest.approx(w, rel=rel, abs=1e-300), (lam, T, K)
    assert th.truncation_input_share(lam, 1, T) == pytest.approx(1.0, rel=1e-12)
    assert th.truncation_residual_share(lam, 100) == pytest.approx(lam ** 200, rel=1e-12)


def test_values_the_figure_states():
    share = th.truncation_input_share([0.9, 0.99], [[10], [50], [100], [300]])
    np.testing.assert_allclose(share[:, 1], [0.99900, 0.92062, 0.67667, 0.061075], rtol=5e-5)
    np.testing.assert_allclose(share[:, 0], [0.67618, 1.9404e-3, 1.8924e-7, 8.0067e-25],
                               rtol=5e-5)


def share_checks(seed: int) -> list[Check]:
    """A Monte Carlo of the recurrence itself (4000 sequences of T = 400 at lambda = 0.95,
    K = 20): h and dh/dlambda forward, the truncated gradient written as BPTT over the Jacobian
    lags 0..K-1, the input part from the sequences with their last K inputs zeroed. Each share is
    the ratio of sums over sequences against its closed form, within 4 delta-method standard
    errors; the identity R_K = lambda^K dh_{t-K}/dlambda to rounding."""
    rng = np.random.default_rng(seed)
    lam, T, K, n = 0.95, 400, 20, 4000
    x = rng.standard_normal((n, T))

    def run(x):
        h, s = np.zeros(n), np.zeros(n)
        hs, ss = [], []
        for t in range(T):
            s = h + lam * s  # ds_t = h_{t-1} + lambda ds_{t-1}
            h = lam * h + x[:, t]
            hs.append(h)
            ss.append(s)
        return np.array(hs), np.array(ss)

    h, S = run(x)
    t = T - 1
    kept = sum(lam ** l * h[t - l - 1] for l in range(K))  # BPTT over lags 0..K-1
    R = S[t] - kept
    checks = [Check("R_K = lambda^K dh_{t-K}/dlambda",
                    float(np.abs(R - lam ** K * S[t - K]).max()), 1e-9)]
    old = x.copy()
    old[:, T - K:] = 0.0
    O = run(old)[1][t]
    den = S[t] ** 2
    for name, num, want in (("input share", O ** 2, th.truncation_input_share(lam, K, T)),
                            ("residual share", R ** 2,
                             th.truncation_residual_share(lam, K, T))):
        r = num.sum() / den.sum()
        se = np.sqrt(((num - r * den) ** 2).sum() / (n * (n - 1))) / den.mean()
        checks.append(Check(name, abs(r - float(want)), 4 * se))
    return checks


def test_monte_carlo_of_the_recurrence():
    assert_checks(share_checks(0))


@pytest.mark.parametrize("lam, K, T, needle", [(1.0, 5, None, "lambda=1.0"),
                                               (0.9, 0, None, "K=0"), (0.9, 2.5, None, "K=2.5"),
                                               (0.9, 5, 1, "T=1")])
def test_bad_input_is_one_line(lam, K, T, needle):
    with pytest.raises(ValueError, match=needle):
        th.truncation_residual_share(lam, K, T)
