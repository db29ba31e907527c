"""Dynamical isometry: the singular-value spectrum of a product of L Jacobians at criticality.

Figure: Pennington, Schoenholz, Ganguli 2017 (arXiv:1711.04735), Figs. 1-2 and eqs. 12-14;
docs/theory.md, "Dynamical isometry". Singular-value density of ``J = dh_L/dh_0 = prod_l D_l W_l``,
``D_l = diag(phi'(a_l))``, for orthogonal vs Gaussian W and linear, relu and tanh units, each at
its critical gain (chi = 1): linear sigma_w = 1, relu sqrt 2, tanh sigma_w = 1.1934 with fresh
bias variance sigma_b^2 = 0.01 per factor (q* = 0.273; docs/theory.md, "mean field").

EXPECTED (Pennington 2017; rnnlab.theory.isometry_variance): the eigenvalues of J J^T have
mean chi^L = 1 and variance L (mu_2/mu_1^2 - 1 - s_1), s_1 = 0 orthogonal, -1 Gaussian:
linear orthogonal exactly 0, linear Gaussian L, relu orthogonal L, relu Gaussian 2L, tanh
orthogonal 0.153 L (near isometry, the paper's point: only orthogonal tanh is well conditioned),
tanh Gaussian 1.153 L. The largest singular value of a critical linear Gaussian product tends to
the Fuss-Catalan edge sqrt((L+1)^(L+1)/L^L): 2.00, 3.49, 6.69 for L = 1, 4, 16.

Setting reproduced: the paper's, a deep feed-forward product with a FRESH W_l (and fresh bias
b_l) per factor, the D_l taken from a signal propagated forward through the same layers from
a_0 ~ N(0, q*). For the record the CSV also holds the tied-weight (RNN: one W for every step, bias
still fresh, like input noise) spectral variance; the theory is not claimed for it and it is
not compared. The variance is reported scale-free, var(lambda)/mean(lambda)^2 (equal to the
paper's variance at mean 1), because the global scale of one finite product fluctuates by
several percent and would otherwise dominate the spread between draws.

Full mode: N = 1000, 24 draws per fresh-weight configuration (4 for the tied ones, which are
not compared), 15 min measured on the shared 2-core machine (~5 min of CPU; a progress bar
shows on a terminal). Run alone:
``python experiments/figures/isometry.py [--quick]`` or
``python -m experiments.figures.isometry [--quick]``.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

if not __package__:  # run as a file: the repo root on sys.path, for experiments.figures
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np
import pandas as pd
import torch
from scipy import stats
from tqdm import tqdm

from experiments.figures.common import is_quick, row, standalone
from experiments.figures.plots import isometry as plot
from rnnlab import theory
from rnnlab.engine.init import haar_orthogonal
from rnnlab.engine.model import phi, phi_prime_from_h

FIGURE = plot.FIGURE
TANH_S2 = 0.01  # sigma_b^2 for tanh; relu and linear need no bias at their critical gain
ACTIVATIONS = ("linear", "relu", "tanh")
WEIGHTS = ("orthogonal", "gaussian")
DEPTHS = (1, 2, 4, 8, 16)  # L at which the spectral moments are recorded
EDGE_DEPTHS = (1, 4, 16)
L = max(DEPTHS)  # the depth of the spectra and of the rows
BINS = np.linspace(-6, 1.5, 76)  # log10 sigma: the densities' bins


def critical(activation: str) -> tuple[float, float]:
    """(sigma_w, s2) on the critical line chi = 1."""
    s2 = TANH_S2 if activation == "tanh" else 0.0
    return theory.critical_gain(activation, s2), s2


def draw_weight(N: int, weights: str, sigma_w: float, g: torch.Generator) -> torch.Tensor:
    if weights == "orthogonal":
        return sigma_w * haar_orthogonal(N, g)
    return torch.randn(N, N, generator=g, dtype=torch.float64) * (sigma_w / math.sqrt(N))


def product(activation: str, weights: str, N: int, g: torch.Generator, tied: bool = False,
            svd_at=(L,)) -> tuple[dict, dict]:
    """Propagate a_l = W_l phi(a_{l-1}) + b_l and build J_l = D_l W_l J_{l-1} for l = 1..L.

    Returns {L: (mean, scale-free variance) of the eigenvalues of J J^T} at DEPTHS, from
    m1 = ||J||_F^2 / N and m2 = ||J^T J||_F^2 / N, and {L: singular values of J} at svd_at."""
    sigma_w, s2 = critical(activation)
    q = theory.q_star(activation, sigma_w, s2) if activation == "tanh" else 1.0  # relu: any q
    a = torch.randn(N, generator=g, dtype=torch.float64) * math.sqrt(q)
    J = torch.eye(N, dtype=torch.float64)
    W = draw_weight(N, weights, sigma_w, g)
    moments, svals = {}, {}
    for l in range(1, max(DEPTHS + tuple(svd_at)) + 1):
        if l > 1 and not tied:
            W = draw_weight(N, weights, sigma_w, g)
        bias = torch.randn(N, generator=g, dtype=torch.float64) * math.sqrt(s2)
        a = W @ phi(a, activation) + bias
        J = phi_prime_from_h(phi(a, activation), activation)[:, None] * (W @ J)
        if l in DEPTHS:
            m1 = float(torch.linalg.matrix_norm(J) ** 2) / N
            m2 = float(torch.linalg.matrix_norm(J.T @ J) ** 2) / N
            moments[l] = (m1, m2 / m1**2 - 1)
        if l in svd_at:
            svals[l] = torch.linalg.svdvals(J).numpy()
    return moments, svals


def extrapolate(Ns, means, ses) -> tuple[float, float]:
    """Intercept and its standard error of the weighted least-squares line mean = a + c N^(-2/3)
    (the Tracy-Widom scale of the soft edge), i.e. the N -> infinity limit."""
    A = np.c_[np.ones(len(Ns)), np.asarray(Ns, float) ** (-2 / 3)]
    w = 1 / np.asarray(ses) ** 2
    cov = np.linalg.inv(A.T @ (A * w[:, None]))
    return float((cov @ (A.T @ (w * np.asarray(means))))[0]), float(math.sqrt(cov[0, 0]))


def measure(mode: str) -> dict:
    """{"moments": mean and scale-free variance of the eigenvalues of J J^T per activation,
    weights, setting (fresh, tied) and depth, "spectra": the singular values at depth L per
    activation and weights (fresh), "edge": the largest singular value of critical linear
    Gaussian products per N and its N -> infinity limit, and the sizes}."""
    quick = is_quick(mode)
    N, fresh_draws, tied_draws = (128, 16, 4) if quick else (1000, 24, 4)
    # edge: draws per N chosen so that every N costs about the same
    edge_sizes = {64: 32, 128: 16, 256: 8} if quick else {250: 48, 500: 24, 1000: 12, 2000: 6}

    # 1. spectral moments per depth and singular values at L, fresh and tied weights
    moments, spectra = [], {}
    configs = [(a, w, t) for t in (False, True) for a in ACTIVATIONS for w in WEIGHTS]
    for seed, (activation, weights, tied) in enumerate(tqdm(configs, desc="isometry products",
                                                             disable=None, leave=False)):
        g = torch.Generator().manual_seed(1000 + seed)
        sigma_w, s2 = critical(activation)
        draws = tied_draws if tied else fresh_draws
        runs = [product(activation, weights, N, g, tied) for _ in range(draws)]
        if not tied:
            spectra[activation, weights] = np.concatenate([r[1][L] for r in runs])
        for depth in DEPTHS:
            m = np.array([r[0][depth] for r in runs])  # (draws, 2): mean, variance
            mean_th, var_th = theory.isometry_variance(activation, sigma_w, s2, depth, weights)
            moments.append({"activation": activation, "weights": weights,
                            "setting": "tied (RNN)" if tied else "fresh (paper)", "L": depth,
                            "N": N, "draws": draws, "sigma_w": sigma_w, "s2": s2,
                            "mean_theory": mean_th, "mean": m[:, 0].mean(),
                            "mean_sd": m[:, 0].std(ddof=1),
                            "mean_se": m[:, 0].std(ddof=1) / math.sqrt(draws),
                            "variance_theory": var_th, "variance": m[:, 1].mean(),
                            "variance_sd": m[:, 1].std(ddof=1),
                            "variance_se": m[:, 1].std(ddof=1) / math.sqrt(draws)})
    moments = pd.DataFrame(moments)

    # 2. largest singular value of critical linear Gaussian products at several N, and its
    #    N -> infinity limit by extrapolation in N^(-2/3)
    edge = []
    for N_edge, n in tqdm(edge_sizes.items(), desc="isometry edge", disable=None, leave=False):
        g = torch.Generator().manual_seed(N_edge)
        tops = np.array([[s[0] for _, s in sorted(
            product("linear", "gaussian", N_edge, g, svd_at=EDGE_DEPTHS)[1].items())]
            for _ in range(n)])  # (draws, len(EDGE_DEPTHS))
        edge += [{"L": depth, "N": N_edge, "draws": n, "sigma_max_mean": tops[:, j].mean(),
                  "sigma_max_se": tops[:, j].std(ddof=1) / math.sqrt(n)}
                 for j, depth in enumerate(EDGE_DEPTHS)]
    for depth in EDGE_DEPTHS:
        sel = [r for r in edge if r["L"] == depth]
        limit, se = extrapolate([r["N"] for r in sel], [r["sigma_max_mean"] for r in sel],
                                [r["sigma_max_se"] for r in sel])
        edge.append({"L": depth, "N": math.inf, "draws": sum(r["draws"] for r in sel),
                     "sigma_max_mean": limit, "sigma_max_se": se})
    edge = pd.DataFrame(edge).assign(edge_theory=lambda d: theory.fuss_catalan_edge(d["L"]))
    return {"N": N, "fresh_draws": fresh_draws, "edge_sizes": list(edge_sizes),
            "moments": moments, "spectra": spectra, "edge": edge}


def rows(measured: dict) -> list[dict]:
    # comparisons at L = 16, fresh weights (the paper's setting). "k SE" below is the Student-t
    # multiple with the coverage of 3 sigma (99.73%, two-sided) for that number of draws.
    # Variance: k standard errors over the draws (sampling), plus L^2/N for the finite width: the
    # O(1/N) correction of a linear Gaussian product is L(L+1)/(2N) (from E tr(W A W^T)^2 =
    # (1 + 1/N) tr A^2 + (tr A)^2 / N per factor); L^2/N bounds it with room for the relu/tanh
    # masks' own 1/N terms. Linear orthogonal is exact: float64 rounding only (1e-12).
    # Mean: k standard errors (1e-12 floor for the exact linear orthogonal case).
    # Edge: at finite N the top singular value sits below the edge by O(N^(-2/3)) (Tracy-Widom
    # scale; a few percent at L = 16, N = 2000), so the comparison is the N -> inf
    # extrapolation, with 3 standard errors of the fitted intercept (propagated from the per-N
    # standard errors of the mean) as tolerance.
    N, fresh_draws, edge = measured["N"], measured["fresh_draws"], measured["edge"]
    fresh = measured["moments"][measured["moments"]["setting"] == "fresh (paper)"]
    k = stats.t.ppf(0.99865, fresh_draws - 1)
    out = []
    for _, r in fresh[fresh["L"] == L].iterrows():
        exact = r["activation"] == "linear" and r["weights"] == "orthogonal"
        name = f"{r['activation']} {r['weights']}, L={L}, N={N}"
        if exact:
            out.append(row(FIGURE, f"var(eig JJ^T)/mean^2, {name}", 0.0, r["variance"], 1e-12,
                           kind="exact", basis="orthogonal product: isometric, float64 rounding"))
            out.append(row(FIGURE, f"mean eig JJ^T, {name}", 1.0, r["mean"], 1e-12,
                           kind="exact", basis="orthogonal product: isometric, float64 rounding"))
            continue
        out.append(row(FIGURE, f"var(eig JJ^T)/mean^2, {name}", r["variance_theory"],
                       r["variance"], k * r["variance_se"] + L**2 / N, kind="theory",
                       seeds=fresh_draws, spread=r["variance_sd"],
                       estimator="per draw of the L factors, var/mean^2 of the eigenvalues of "
                       "J J^T, averaged over draws",
                       se=f"SD over draws / sqrt(n) = {r['variance_se']:.2g}",
                       basis=f"{k:.2f} SE (t, 99.73%, {fresh_draws} draws) + finite-N bias "
                       f"bound L^2/N = {L**2 / N:.3g} (linear Gaussian: L(L+1)/(2N))"))
        out.append(row(FIGURE, f"mean eig JJ^T, {name}", r["mean_theory"], r["mean"],
                       k * r["mean_se"], kind="theory", seeds=fresh_draws, spread=r["mean_sd"],
                       estimator="per draw of the L factors, the mean eigenvalue of J J^T, "
                       "averaged over draws",
                       se=f"SD over draws / sqrt(n) = {r['mean_se']:.2g}",
                       basis=f"{k:.2f} SE (t, 99.73%, {fresh_draws} draws); no finite-N bias "
                       "term (E ||J||_F^2 / N = chi^L exactly for linear; O(1/N) otherwise)"))
    sizes = ",".join(map(str, measured["edge_sizes"]))
    for _, r in edge[edge["N"] == math.inf].iterrows():
        out.append(row(FIGURE, f"sigma_max linear Gaussian, L={int(r['L'])}, "
                       f"N->inf from N={sizes}", r["edge_theory"], r["sigma_max_mean"],
                       3 * r["sigma_max_se"], kind="theory", seeds=int(r["draws"]),
                       estimator="the top singular value of J, mean over draws at each N, "
                       "extrapolated to N -> inf as the intercept of a fit in N^(-2/3)",
                       se=f"the intercept's, propagated from the per-N standard errors of the "
                       f"mean (SD / sqrt(draws)) = {r['sigma_max_se']:.2g}",
                       basis="3 SE of the extrapolation's intercept"))
    return out


def tables(measured: dict) -> dict:
    """isometry_moments.csv, isometry_edge.csv, isometry_density.csv (per activation and
    weights, fresh: the density of log10 sigma at depth L over BINS, every sigma below the first
    bin counted in it) and isometry_theory.csv (the Fuss-Catalan edge at 100 depths 1..L)."""
    density = []
    for (activation, weights), s in measured["spectra"].items():
        logs = np.log10(np.clip(s, 1e-300, None))
        dens, _ = np.histogram(np.clip(logs, BINS[0], BINS[-1]), bins=BINS, density=True)
        density.append(pd.DataFrame({"activation": activation, "weights": weights, "L": L,
                                     "N": measured["N"], "values": len(s),
                                     "log10_sigma_low": BINS[:-1], "log10_sigma_high": BINS[1:],
                                     "density": dens}))
    depth = np.linspace(1, L, 100)
    theory_table = pd.DataFrame({"L": depth, "fuss_catalan_edge": theory.fuss_catalan_edge(depth)})
    return {"isometry_moments.csv": measured["moments"], "isometry_edge.csv": measured["edge"],
            "isometry_density.csv": pd.concat(density, ignore_index=True),
            "isometry_theory.csv": theory_table}


def main(argv=None) -> int:
    return standalone(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
