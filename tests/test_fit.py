"""Checks of the decay-rate standard error of rnnlab.engine.fit (docs/theory.md, "decay-rate fit").

* ``step_weights`` (the weight of each step's log growth in the fitted slope) equals a brute-force
  sum over the pairs of the triangle, with and without a lag window, and over the single path of
  the O(T) profile, to 1e-12.
* A synthetic random walk ln r(t, k) = sum_{s=k+1..t} e_s, e_s i.i.d. N(-0.1, 0.3^2), shared by
  every pair (the model the standard error assumes): over 400 replicates the replicates' SD of
  the slope over the RMS reported stderr is 1 within 4 of its relative standard errors,
  1/sqrt(2 x 399) = 3.5% each (all pairs, a lag window, the single path), and the slopes' mean
  is -0.1 within 4 standard errors; the old pairwise least-squares error was ~10x too small. (The
  ratio's tolerance was 10%, 2.8 of its standard errors, crossed by 1 of 60 seeds.)
* Exact case: a linear RNN with W = rho Q has deterministic ratios, stderr 0 (to 1e-12).
* The engine, tanh, N = 128, full-rank input noise s_in^2 = 0.1, one sequence (B = 1), T = 300:
  - chaotic, sigma_w = 2: over 8 networks the SD of the rate over the RMS reported stderr lies
    inside the two-sided 0.1% range of that statistic's own sampling distribution, 0.263 to
    4.22 (groups of 8 drawn from 960 networks, experiments/statistical_references.py); over all
    960 the ratio is 1.42, heavy-tailed by a few networks far from the rest (the old estimator
    was ~200x low). This replaces "within a factor 2 of 1", read off one group (seeds 0..7:
    1.03) and crossed by 3 of 20 groups;
  - one network, 16 sequences fitted one by one, sigma_w = 0.5, 1.2, 2: the ratio SD over the
    sequences / RMS stderr within 4 sqrt(SD^2 + SE^2) of its population mean over 40 networks,
    0.352, 0.639, 0.654 (SD 0.078, 0.163, 0.158): the stderr covers the sequences' spread and is
    conservative by 1.5-2.8x, because nearby targets' cotangents are not fully aligned. This
    replaces the bounds 1/3 and 1.25, read off network 0 (0.48, 0.49, 0.83); at sigma_w = 0.5
    the population mean itself is near 1/3, and 4 of 20 networks fell below it. The pooled fit's
    stderr is the RMS of the 16 over 4 (within 10%; equal to 4 decimals over 40 networks at
    sigma_w = 0.5).
  In the ordered phase the seed-to-seed spread is larger than any single run can see (the
  finite-N offset of the rate differs from network to network); docs/theory.md gives numbers.

Each statistical check here is a function of a seed, re-run over 20 seeds by
tests/test_false_failures.py (docs/statistical-tests.md).
"""
import math

import numpy as np
import pytest
from conftest import Check, assert_checks

from rnnlab.engine import adjoint as gradients
from rnnlab.engine.fit import fit_decay, step_weights
from rnnlab.measure.config import DataSpec, ModelSpec
from rnnlab.measure.networks import draw


def brute_weights(T, lags, a, single_path=False):
    c = np.zeros(T + 1)
    for l, w in zip(lags, a):
        for t in ([T - 1] if single_path else range(l, T)):
            c[t - l + 1:t + 1] += w
    return c


@pytest.mark.parametrize("T,lags,single", [(12, range(0, 12), False), (20, range(2, 7), False),
                                           (15, range(0, 15), True)])
def test_step_weights_match_brute_force(T, lags, single):
    lags = np.array(list(lags))
    targets = np.ones_like(lags) if single else T - lags
    a = np.random.default_rng(0).normal(size=lags.size)
    assert np.allclose(step_weights(lags, targets, a, T), brute_weights(T, lags, a, single),
                       atol=1e-12, rtol=0)


def walk_moments(e, max_lag=None, single_path=False):
    """Per-lag moments (L, 1) of ln r(t, t - l) = sum of e over steps t-l+1..t."""
    T = e.size
    S = np.concatenate([[0.0], np.cumsum(e)])  # S[j] = e_0 + ... + e_{j-1}
    L = T if max_lag is None else max_lag + 1
    out = {k: np.zeros((L, 1)) for k in ("count", "mean", "M2", "nonfinite")}
    for l in range(L):
        t = np.array([T - 1]) if single_path else np.arange(l, T)
        v = S[t + 1] - S[t + 1 - l]
        out["count"][l], out["mean"][l] = v.size, v.mean()
        out["M2"][l] = ((v - v.mean()) ** 2).sum()
    return np.arange(L), out


def random_walk_checks(max_lag, window, single, seed):
    """400 replicate walks: the slopes' mean within 4 standard errors of -0.1, and the slopes'
    SD over the RMS reported stderr within 4 relative standard errors 1/sqrt(2 x 399) of 1."""
    rng = np.random.default_rng(seed)
    fits = [fit_decay(*walk_moments(rng.normal(-0.1, 0.3, 200), max_lag, single), *window)
            for _ in range(400)]
    rates = np.array([f["decay_rate"] for f in fits])
    se = np.sqrt(np.mean([f["decay_rate_stderr"] ** 2 for f in fits]))
    return [Check("|mean slope + 0.1|", abs(rates.mean() + 0.1),
                  4 * rates.std() / math.sqrt(rates.size)),
            Check("|SD / stderr - 1|", abs(rates.std(ddof=1) / se - 1),
                  4 / math.sqrt(2 * (rates.size - 1)))]


@pytest.mark.parametrize("max_lag,window,single", [(None, (1, None), False), (40, (1, 40), False),
                                                   (None, (1, None), True)])
def test_stderr_matches_random_walk_spread(max_lag, window, single):
    assert_checks(random_walk_checks(max_lag, window, single, seed=1))


def test_linear_orthogonal_has_zero_stderr():
    m = ModelSpec(activation="linear", hidden_size=32, init="orthogonal", spectral_radius=0.9)
    d = DataSpec(seq_len=60, batch_size=2)
    net = draw(m, d, 0)
    traj = gradients.forward(net.params, net.x, net.h0, net.y_target)
    prof = gradients.pair_profile(traj)
    fit = fit_decay(prof.lag, prof.ln_ratio)
    assert abs(fit["decay_rate"] - math.log(0.9)) < 1e-9
    assert fit["decay_rate_stderr"] < 1e-12


def tanh_profile(seed, sigma_w, batch):
    m = ModelSpec(activation="tanh", hidden_size=128, input_size=128, gain=sigma_w,
                  spectral_radius=None, input_gain=math.sqrt(0.1))
    d = DataSpec(seq_len=300, batch_size=batch, input_std=1.0, burn_in=300)
    net = draw(m, d, seed)
    traj = gradients.forward(net.params, net.x, net.h0, net.y_target, burn_in=d.burn_in)
    return gradients.pair_profile(traj, max_lag=50)


def ratio_interval(name, ratio, lo, hi):
    """lo <= ratio <= hi, as |ln ratio - the interval's log centre| <= its log half-width."""
    return [Check(f"{name} in [{lo:.3g}, {hi:.3g}] (log distance from the centre)",
                  abs(math.log(ratio) - math.log(lo * hi) / 2), math.log(hi / lo) / 2)]


# The chaotic ratio's own sampling distribution (experiments/statistical_references.py,
# chaotic): over 960 networks (seeds 1000..1959) the SD of the rate is 1.417 x the RMS stderr;
# over groups of 8 of them (100,000 draws) the ratio has median 1.01 and 0.05% / 99.95%
# quantiles 0.263 and 4.22 (heavy-tailed: a few networks' rates sit far below the rest; rates
# 0.125 +- SD 0.010, the lowest 0.049).
CHAOTIC_GROUP_OF_8 = (0.263, 4.22)
# SD over 16 sequences / RMS stderr for one network, over 40 networks (seeds 1000..1039):
# sigma_w -> (mean, standard error of the mean, SD).
SEQUENCE_RATIO = {0.5: (0.35236, 0.01229, 0.07774), 1.2: (0.63875, 0.02574, 0.16282),
                  2.0: (0.65420, 0.02506, 0.15847)}


def chaotic_seed_checks(seed):
    """8 networks (seeds 8 seed .. 8 seed + 7): their SD of the rate over the RMS stderr, inside
    the two-sided 0.1% range of that statistic's own sampling distribution."""
    profiles = (tanh_profile(s, 2.0, 1) for s in range(8 * seed, 8 * seed + 8))
    fits = [fit_decay(p.lag, p.ln_ratio, 1, 50) for p in profiles]
    sd = np.std([f["decay_rate"] for f in fits], ddof=1)
    se = math.sqrt(np.mean([f["decay_rate_stderr"] ** 2 for f in fits]))
    return ratio_interval("SD over networks / stderr", sd / se, *CHAOTIC_GROUP_OF_8)


def test_stderr_covers_seed_spread_chaotic():
    assert_checks(chaotic_seed_checks(seed=0))


def trajectory_checks(sigma_w, seed):
    """One network (seed), 16 sequences fitted one by one: their SD over the RMS stderr within
    4 sqrt(SD^2 + SE^2) of the same ratio's population mean (SEQUENCE_RATIO); and the pooled
    fit's stderr equal to the RMS / 4 (within 10%; equal to 4 decimals over 40 networks at
    sigma_w = 0.5)."""
    p = tanh_profile(seed, sigma_w, 16)
    fits = [fit_decay(p.lag, {k: v[:, b:b + 1] for k, v in p.ln_ratio.items()}, 1, 50)
            for b in range(16)]
    sd = np.std([f["decay_rate"] for f in fits], ddof=1)
    se = math.sqrt(np.mean([f["decay_rate_stderr"] ** 2 for f in fits]))
    pooled = fit_decay(p.lag, p.ln_ratio, 1, 50)["decay_rate_stderr"]
    # 16 sequences: sqrt(16) times smaller
    mean, se_mean, sd_mean = SEQUENCE_RATIO[sigma_w]
    return [Check("|SD over sequences / stderr - population mean|", abs(sd / se - mean),
                  4 * math.hypot(sd_mean, se_mean)),
        Check("|pooled stderr / (RMS stderr / 4) - 1|", abs(pooled / (se / 4) - 1), 0.1)]


@pytest.mark.parametrize("sigma_w", [0.5, 1.2, 2.0])
def test_stderr_covers_trajectory_spread(sigma_w):
    assert_checks(trajectory_checks(sigma_w, seed=0))
