"""Population references for the statistical tests that have no closed form for their own
estimator: the same estimator over many independent seeds (the "larger sample" a fast test's one
seed is compared with), printed as the constants the tests hold.

    OMP_NUM_THREADS=1 python experiments/statistical_references.py

quenched lambda_1 (tests/test_lyapunov.py, ``quenched_lambda1``): one fixed-W tanh network,
N = 250, s_in^2 = 0.1, 4 trajectories, 500 burn-in steps then 1000, at sigma_w = 0.5, 1, 1.5,
2.5, over seeds 1000..1039 (disjoint from the fast test's seed 0 and the slow check's 0..19).
Expected before measuring: means near mean field's 1/2 log chi (-0.79, -0.19, +0.04, +0.35)
but displaced by the quenched - annealed gap and the finite-N term (a few 1e-3 up to a few
1e-2 on the ordered side, docs/tolerances.md), and a network-to-network SD of order 0.01.
Printed per sigma_w: mean, its standard error SD / sqrt(40), SD over the 40 networks.

Gaussian matrices W_ij ~ N(0, 1/N) (tests/test_theory.py, tests/test_model.py), numpy's
generator, seeds 1000..1039:
* the spectral radius max |eig W| at N = 400 and 1000: expected above 1 by O(sqrt(log N / N))
  (Rider's law for the largest modulus, whose asymptotic constants are poor at these N, hence
  the measured population), with an SD of order 0.01;
* the largest singular value at N = 1000: Tracy-Widom (Johnstone 2001) gives mean 1.9919 and SD
  0.0080 (``test_theory.sigma_max_tracy_widom``); printed as an independent check of that form;
* a product of L = 4 such matrices at N = 600 (tests/test_theory.py's isometry Monte Carlo):
  the mean of the squared singular values (expectation exactly 1) and their variance
  (expectation L + L(L+1)/(2N) = 4.017 to O(1/N^2)), each with its SD over draws.

The decay-rate stderr (tests/test_fit.py, ``tanh_profile``: tanh, N = 128, s_in^2 = 0.1,
T = 300 after 300 burn-in, lags 1..50):
* chaotic (sigma_w = 2), one sequence per network, networks 1000..1959: the SD of the rate over
  all 960 networks / their RMS stderr, and the sampling distribution of the same ratio over
  groups of 8 networks (the fast test's estimator), by drawing 100,000 groups of 8 of the 960
  without replacement: its 0.05% and 99.95% quantiles (two-sided 0.1%). Expected before
  measuring: near 1 (8 networks at seeds 0..7 gave 1.03), heavy-tailed above if some networks'
  rates sit far out. (A first reference of 320 networks, 1000..1319, gave a ratio of 1.357 and
  quantiles 0.247 and 4.42; its upper tail rests on the few outlying networks among them, so
  it was tripled);
* one network, 16 sequences fitted one by one (sigma_w = 0.5, 1.2, 2), networks 1000..1039:
  the ratio SD over the 16 / RMS stderr per network, its mean, standard error and SD over the
  40 networks. Expected: below 1 (seed 0 gave 0.48, 0.49, 0.83).

    OMP_NUM_THREADS=1 python experiments/statistical_references.py [lyapunov] [matrices]
        [chaotic] [sequences]
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import torch

SEEDS = range(1000, 1040)


def line(name: str, v: np.ndarray) -> None:
    sd = v.std(ddof=1)
    print(f"{name}: mean {v.mean():.5f}, SE {sd / math.sqrt(v.size):.5f}, SD {sd:.5f}, "
          f"min {v.min():.5f}, max {v.max():.5f}, n = {v.size}", flush=True)


def matrices() -> None:
    gauss = lambda N, seed: np.random.default_rng(seed).standard_normal((N, N)) / math.sqrt(N)
    for N in (400, 1000):
        line(f"spectral radius, N = {N}",
             np.array([np.abs(np.linalg.eigvals(gauss(N, s))).max() for s in SEEDS]))
    line("sigma_max, N = 1000", np.array([np.linalg.norm(gauss(1000, s), 2) for s in SEEDS]))
    means, variances = [], []
    for s in SEEDS:
        J = np.eye(600)
        for layer in range(4):
            J = gauss(600, 100 * s + layer) @ J
        eig = np.linalg.svd(J, compute_uv=False) ** 2
        means.append(eig.mean())
        variances.append(eig.var())
    line("isometry product N = 600, L = 4: mean", np.array(means))
    line("isometry product N = 600, L = 4: variance", np.array(variances))


def fit(parts) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_fit import fit_decay, tanh_profile

    if "chaotic" in parts:
        chaotic(fit_decay, tanh_profile)
    if "sequences" in parts:
        sequences(fit_decay, tanh_profile)


def chaotic(fit_decay, tanh_profile) -> None:
    rates, ses = [], []
    for s in range(1000, 1960):
        f = fit_decay(*(lambda p: (p.lag, p.ln_ratio))(tanh_profile(s, 2.0, 1)), 1, 50)
        rates.append(f["decay_rate"])
        ses.append(f["decay_rate_stderr"])
    rates, ses = np.array(rates), np.array(ses)
    print(f"chaotic: SD over {rates.size} networks / RMS stderr "
          f"{rates.std(ddof=1) / math.sqrt(np.mean(ses ** 2)):.4f}; rates mean "
          f"{rates.mean():.4f} SD {rates.std(ddof=1):.4f} min {rates.min():.4f} "
          f"max {rates.max():.4f}; RMS stderr {math.sqrt(np.mean(ses ** 2)):.4f}", flush=True)
    rng = np.random.default_rng(0)
    groups = np.array([rng.choice(rates.size, 8, replace=False) for _ in range(100_000)])
    ratio = rates[groups].std(1, ddof=1) / np.sqrt((ses[groups] ** 2).mean(1))
    q = np.quantile(ratio, [0.0005, 0.5, 0.9995])
    print(f"chaotic, groups of 8: ratio 0.05% {q[0]:.4f}, median {q[1]:.4f}, 99.95% {q[2]:.4f}",
          flush=True)


def sequences(fit_decay, tanh_profile) -> None:
    for sigma_w in (0.5, 1.2, 2.0):
        per_network = []
        for s in SEEDS:
            p = tanh_profile(s, sigma_w, 16)
            fits = [fit_decay(p.lag, {k: v[:, b:b + 1] for k, v in p.ln_ratio.items()}, 1, 50)
                    for b in range(16)]
            sd = np.std([f["decay_rate"] for f in fits], ddof=1)
            per_network.append(sd / math.sqrt(np.mean([f["decay_rate_stderr"] ** 2
                                                       for f in fits])))
        line(f"sequences SD / stderr at sigma_w = {sigma_w}", np.array(per_network))


def main() -> None:
    torch.set_num_threads(1)
    parts = sys.argv[1:] or ["lyapunov", "matrices", "chaotic", "sequences"]
    if "matrices" in parts:
        matrices()
    fit(parts)
    if "lyapunov" not in parts:
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_lyapunov import quenched_lambda1

    for sigma_w in (0.5, 1.0, 1.5, 2.5):
        v = np.array([quenched_lambda1(sigma_w, s) for s in SEEDS])
        sd = v.std(ddof=1)
        print(f"    {sigma_w}: ({v.mean():.5f}, {sd / math.sqrt(v.size):.5f}, {sd:.5f}),"
              f"  # min {v.min():+.4f} max {v.max():+.4f}", flush=True)


if __name__ == "__main__":
    main()
