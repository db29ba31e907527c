"""Closed-form and mean-field predictions for gradient growth in Elman RNNs, gated cells and linear
recurrent units.

All rates are natural logs per time step. Notation follows docs/theory.md:
``a_t = U x_t + W h_{t-1} + b``, ``h_t = phi(a_t)``, one-step Jacobian ``J_t = diag(phi'(a_t)) W``.

* Mean field (Poole et al. 2016, arXiv:1606.05340; Schoenholz et al. 2017, arXiv:1611.01232;
  Chen, Pennington, Schoenholz 2018, arXiv:1806.05394): random ``W_ij ~ N(0, sigma_w^2/N)``,
  fresh per-unit input variance ``s_in^2`` and bias variance ``s_b^2``, ``s2 = s_in^2 + s_b^2``.
* Pascanu, Mikolov, Bengio 2013 (arXiv:1211.5063): the sufficient condition for vanishing.
* Newman 1986 (CMP 103:121): Lyapunov spectrum of products of i.i.d. Gaussian matrices.
* Pennington, Schoenholz, Ganguli 2017 (arXiv:1711.04735): dynamical isometry.
* Zucchet & Orvieto 2024 (arXiv:2405.21064): the curse of memory, the sensitivity of a linear
  unit's state to its recurrent parameter (raw, normalised with gamma its own parameter or tied
  to lambda, and in the LRU's nu), for white and AR(1)-correlated input.

Gaussian expectations ``E_z[f(sqrt(q) z)]`` of the smooth activations (tanh, sigmoid) use the
trapezoidal rule in z; relu and linear use their closed forms (relu's step derivative makes
quadrature about 3% wrong).
"""
from __future__ import annotations

import functools
import math

import numpy as np
import torch
from scipy.special import digamma

from .checks import choice, correlation
from .engine.model import GAMMA


def brentq(*args, **kw):
    """scipy.optimize.brentq, imported on first use: the cell registry imports this module,
    and the command line validates a configuration without paying for scipy.optimize."""
    from scipy.optimize import brentq as solve

    return solve(*args, **kw)

ACTIVATIONS = ("tanh", "sigmoid", "relu", "linear")

# Gauss-Hermite with a fixed node count fails at large q: its nodes near z = 0 are ~pi/sqrt(2n)
# apart, i.e. ~2 in a = sqrt(q) z at q ~ 200 (n = 201), coarser than phi's scale of 1 (measured
# errors: 6e-7 at q = 6.4, 3e-2 at q = 188). The trapezoidal rule converges exponentially for
# analytic integrands, error ~ exp(-2 pi d / h) with d = pi / (2 sqrt(q)) the distance of tanh's
# poles from the real z axis, so a step h = 0.25 / sqrt(q) keeps the error near 1e-13 for any q
# (checked against scipy.integrate.quad in the tests).
_Z_MAX = 12.0  # the N(0, 1) density is 5e-32 there


def _gauss_grid(q: float):
    h = min(0.1, 0.25 / math.sqrt(q)) if q > 0 else 0.1
    n = int(math.ceil(_Z_MAX / h))
    z = h * np.arange(-n, n + 1)
    return z, h * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


def _sigmoid(a):
    return 0.5 * (1.0 + np.tanh(0.5 * a))  # overflow-free logistic


_PHI = {"tanh": np.tanh, "sigmoid": _sigmoid}
_DPHI = {"tanh": lambda a: 1.0 - np.tanh(a) ** 2,
         "sigmoid": lambda a: _sigmoid(a) * (1.0 - _sigmoid(a))}


def gaussian_mean(f, q: float) -> float:
    """E_z[f(sqrt(q) z)], z ~ N(0, 1), by the trapezoidal rule (q >= 0 and finite)."""
    z, w = _gauss_grid(q)
    return float(w @ f(math.sqrt(q) * z))


def phi_prime_moment(activation: str, q: float, k: int = 1) -> float:
    """mu_k = E_z[phi'(sqrt(q) z)^(2k)] (Pennington et al. 2017); mu_1 = chi / sigma_w^2."""
    choice("activation", activation, ACTIVATIONS)
    if activation == "linear":
        return 1.0
    if activation == "relu":
        return 0.5  # phi' is 0 or 1 with probability 1/2 each
    return gaussian_mean(lambda a: _DPHI[activation](a) ** (2 * k), q)


def _vectorised(fn):
    """Broadcast a scalar function over array arguments; scalars in give a float out."""
    vec = np.vectorize(fn, otypes=[float], excluded={0, "activation"})

    def wrapper(activation, *args, **kwargs):
        out = vec(activation, *args, **kwargs)
        return float(out) if np.ndim(out) == 0 else out

    return functools.update_wrapper(wrapper, fn)


@_vectorised
def q_star(activation: str, sigma_w: float, s2: float) -> float:
    """Fixed point of the pre-activation variance map (Poole et al. 2016, eq. 3):

        q* = sigma_w^2 E_z[phi(sqrt(q*) z)^2] + s2,    s2 = s_in^2 + s_b^2.

    Closed forms: relu ``q* = s2 / (1 - sigma_w^2/2)``, linear ``q* = s2 / (1 - sigma_w^2)``,
    ``inf`` where the map has no finite stable fixed point. tanh with ``s2 = 0``: ``q* = 0`` for
    ``sigma_w <= 1``, the nonzero (stable) fixed point otherwise. Broadcasts over arrays.
    """
    choice("activation", activation, ACTIVATIONS)
    if s2 < 0 or sigma_w < 0:
        raise ValueError(f"sigma_w={sigma_w} and s2={s2} must be >= 0")
    gain = {"relu": sigma_w**2 / 2, "linear": sigma_w**2}.get(activation)
    if gain is not None:  # q -> gain q + s2 is linear
        if s2 == 0 and gain <= 1:
            return 0.0
        return s2 / (1 - gain) if gain < 1 else math.inf

    phi = _PHI[activation]

    def excess(q):  # > 0 below the stable fixed point, < 0 above it
        return sigma_w**2 * gaussian_mean(lambda a: phi(a) ** 2, q) + s2 - q

    hi = sigma_w**2 + s2 + 1.0  # E[phi^2] <= 1 for tanh and sigmoid, so excess(hi) < 0
    if activation == "tanh" and s2 == 0:
        if sigma_w <= 1:
            return 0.0  # the only fixed point; excess(q) < 0 for all q > 0
        # q = 0 is an unstable root; bracket the other one from a q where excess > 0
        # (small q: excess ~ (sigma_w^2 - 1) q - 2 sigma_w^2 q^2).
        lo = (sigma_w**2 - 1) / (4 * sigma_w**2)
        while excess(lo) <= 0:
            lo /= 2
            if lo < 1e-300:
                return 0.0
        return brentq(excess, lo, hi, xtol=1e-14, rtol=1e-13)
    return brentq(excess, 0.0, hi, xtol=1e-14, rtol=1e-13)


@_vectorised
def chi(activation: str, sigma_w: float, s2: float) -> float:
    """Mean squared one-step gradient gain at the fixed point (Schoenholz et al. 2017, eq. 5):

        chi = sigma_w^2 E_z[phi'(sqrt(q*) z)^2].

    relu: ``sigma_w^2 / 2`` for any q; linear: ``sigma_w^2``; ``q* = 0``: ``sigma_w^2 phi'(0)^2``.
    Squared gradient norms scale as ``chi^(t-k)``. Dimensionless; broadcasts over arrays.
    """
    choice("activation", activation, ACTIVATIONS)
    if activation == "relu":
        return sigma_w**2 / 2
    if activation == "linear":
        return sigma_w**2
    q = q_star(activation, sigma_w, s2)
    if q == 0:
        return sigma_w**2 * _DPHI[activation](0.0) ** 2
    return sigma_w**2 * phi_prime_moment(activation, q, 1)


def log_chi_rate(activation: str, sigma_w, s2):
    """Mean-field growth rate of gradient norms, ``1/2 log chi`` (natural log per step).

    ``||dL_t/dh_k|| ~ exp((t - k) * rate)``; negative: vanishing, positive: exploding.
    Molgedey et al. 1992 (PRL 69:3717): it is also lambda_1 of the noisy random network.
    """
    return 0.5 * np.log(chi(activation, sigma_w, s2))


def xi(activation: str, sigma_w, s2):
    """Depth scale of squared gradient norms, ``xi = -1 / log chi`` (steps; Schoenholz 2017).

    ``||dL_t/dh_k||^2 ~ exp(-(t - k) / xi)``; ``inf`` at ``chi = 1``, negative when ``chi > 1``
    (then ``-xi`` is the e-folding length of growth).
    """
    log_chi = np.log(chi(activation, sigma_w, s2))
    with np.errstate(divide="ignore"):
        out = np.where(log_chi == 0, np.inf, -1.0 / log_chi)  # +inf, not -1/(+0) = -inf
    return float(out) if out.ndim == 0 else out


def switched_drive_rate(activation: str, sigma_w: float, s2_on: float, p_on: float,
                        steps: int = 20000, seed: int = 0) -> float:
    """Mean-field lambda_1 (nats per step) of a network whose input variance switches at random
    between s2_on (probability p_on) and 0, i.i.d. per step: i.i.d. bits s_t in {0, 1} through
    input weights of variance s2_on, redrawn with W every step (annealed). The length map
    q_t = sigma_w^2 E[phi(sqrt(q_{t-1}) z)^2] + s_t s2_on is driven by the bits, and
    lambda_1 = < 1/2 ln(sigma_w^2 E[phi'(sqrt(q_t) z)^2]) >_t, the time average over ``steps``
    steps of one bit sequence (seeded) after 200 steps of transient. Engelken 2023's README
    network (bits through N(0, 1) input weights, Bernoulli 1/2): s2_on = 1, p_on = 1/2. With
    p_on = 1 it is ``log_chi_rate(activation, sigma_w, s2_on)``."""
    choice("activation", activation, ("tanh", "sigmoid"))
    bits = np.random.default_rng(seed).random(steps + 200) < p_on
    q, total = s2_on, 0.0
    for t, on in enumerate(bits):
        q = sigma_w ** 2 * gaussian_mean(lambda a: _PHI[activation](a) ** 2, q) + on * s2_on
        if t >= 200:
            total += 0.5 * math.log(sigma_w ** 2 * phi_prime_moment(activation, q, 1))
    return total / steps


def critical_gain(activation: str, s2: float) -> float:
    """sigma_w on the critical line ``chi(sigma_w, s2) = 1`` (Poole 2016; Schoenholz 2017).

    relu ``sqrt 2``, linear ``1``, tanh with ``s2 = 0`` exactly ``1``; otherwise brentq.
    """
    choice("activation", activation, ACTIVATIONS)
    if activation == "relu":
        return math.sqrt(2.0)
    if activation == "linear" or (activation == "tanh" and s2 == 0):
        return 1.0
    excess = lambda sigma_w: chi(activation, sigma_w, s2) - 1.0
    lo = 1.0 / GAMMA[activation]  # chi <= (gamma sigma_w)^2 < 1 below this gain
    hi = 2 * lo
    while excess(hi) < 0:
        lo, hi = hi, 2 * hi
        if hi > 1e6:
            raise ValueError(f"no critical gain below {hi} for {activation}, s2={s2}")
    return brentq(excess, lo, hi, xtol=1e-13, rtol=1e-13)


# --- Pascanu, Mikolov, Bengio 2013, section 3 -----------------------------------------------

def gamma(activation: str) -> float:
    """gamma = sup |phi'|: tanh, relu, linear 1; logistic sigmoid 1/4 (Pascanu et al. 2013)."""
    choice("activation", activation, GAMMA)
    return GAMMA[activation]


def pascanu_eta(W, activation: str) -> float:
    """eta = gamma sigma_max(W): each step ``||J_t^T delta|| <= eta ||delta||`` (Pascanu 2013)."""
    W = torch.as_tensor(W)
    return gamma(activation) * float(torch.linalg.matrix_norm(W, ord=2))


def certifies_vanishing(W, activation: str) -> bool:
    """True if ``eta < 1``: the sufficient condition for vanishing of Pascanu et al. 2013.

    For Gaussian W (entry variance sigma_w^2/N) sigma_max -> 2 sigma_w, so for tanh this
    certifies only sigma_w < 1/2 although the spectral radius is ~sigma_w.
    """
    return pascanu_eta(W, activation) < 1.0


def pascanu_bound(log_g_norm, lag, W, activation: str):
    """Log upper bound ``lag log(eta) + log ||g_t||`` on ``log ||dL_t/dh_k||``, ``lag = t - k``.

    From ``||dL_t/dh_k|| <= eta^(t-k) ||g_t||`` (Pascanu et al. 2013, eq. 5-7), natural log.
    Holds on every trajectory; broadcasts over arrays or tensors of lags and norms.
    """
    eta = pascanu_eta(W, activation)
    log_eta = math.log(eta) if eta > 0 else -math.inf
    if isinstance(lag, torch.Tensor) and not lag.is_floating_point():
        # int tensor * float gives float32: keep the precision of the norms instead
        wide = isinstance(log_g_norm, torch.Tensor) and log_g_norm.is_floating_point()
        lag = lag.to(log_g_norm.dtype if wide else torch.float64)
    return lag * log_eta + log_g_norm


# --- exact predictions ----------------------------------------------------------------------

def linear_log_ratio(rho, lag):
    """``log r(t, k) = (t - k) log rho`` for a linear RNN with ``W = rho Q``, Q orthogonal.

    Every singular value of ``dh_t/dh_k = (rho Q)^(t-k)`` is ``rho^(t-k)`` (docs/theory.md,
    "exact cases").
    """
    return lag * np.log(rho)


def newman_spectrum(N: int, s: float = 1.0) -> np.ndarray:
    """Lyapunov spectrum of products of i.i.d. N x N Gaussian matrices, entry variance s^2/N:

        lambda_i = log s + 1/2 (log(2/N) + digamma((N - i + 1)/2)),  i = 1..N

    (Newman 1986, CMP 103:121), natural log per factor, in decreasing order. ``R_t[i, i]`` of
    the QR method is exactly ``s chi_{N-i+1} / sqrt(N)`` there, so the terms are i.i.d.
    """
    i = np.arange(1, N + 1)
    return math.log(s) + 0.5 * (math.log(2.0 / N) + digamma((N - i + 1) / 2.0))


def fuss_catalan_edge(L):
    """Largest singular value of a product of L critical (variance 1/N) Gaussian N x N matrices
    as N -> inf: ``sqrt((L+1)^(L+1) / L^L)``, the edge of the Fuss-Catalan law (2, 3.49, 6.69
    for L = 1, 4, 16; Pennington et al. 2017). Grows like ``sqrt(e (L+1))``.
    """
    L = np.asarray(L, dtype=float)
    out = np.exp(0.5 * ((L + 1) * np.log(L + 1) - L * np.log(L)))
    return float(out) if out.ndim == 0 else out


def isometry_variance(activation: str, sigma_w: float, s2: float, L: int,
                      weights: str = "orthogonal") -> tuple[float, float]:
    """Mean and variance of the eigenvalues of ``J J^T``, ``J = prod_l D_l W_l`` (L factors):

        mean = chi^L,   variance = L (mu_2 / mu_1^2 - 1 - s_1),   mu_k = E[phi'(sqrt(q*) z)^(2k)],

    with ``s_1 = 0`` for scaled orthogonal W and ``-1`` for Gaussian W (Pennington, Schoenholz,
    Ganguli 2017, eq. 12-14). The variance formula assumes criticality, ``chi = 1``.
    Linear orthogonal: 0; linear Gaussian: L; relu: L (orthogonal), 2L (Gaussian).
    """
    choice("weights", weights, ("orthogonal", "gaussian"))
    s_1 = 0.0 if weights == "orthogonal" else -1.0
    q = 0.0 if activation in ("relu", "linear") else q_star(activation, sigma_w, s2)
    mu_1 = phi_prime_moment(activation, q, 1)
    mu_2 = phi_prime_moment(activation, q, 2)
    return chi(activation, sigma_w, s2) ** L, L * (mu_2 / mu_1**2 - 1 - s_1)


# --------------------------------------------------------------------------------------------
# Gated cells (Gilboa et al. 2019, arXiv:1901.08987; Chen, Pennington, Schoenholz 2018,
# arXiv:1806.05394). s is the logistic sigmoid; rates are natural log per step.
# --------------------------------------------------------------------------------------------
def keep_gate_rate(bias) -> float:
    """ln s(b): the exact per-step rate of ||dc_t/dc_k|| (LSTM, b = b_f) or ||dh_t/dh_k|| (GRU,
    b = b_z) when every weight matrix is zero, so the kept fraction is s(b) at every step."""
    return float(-np.logaddexp(0.0, -np.asarray(bias, dtype=float)))


def gate_noise_rate(mu: float, s: float) -> float:
    """1/2 ln E[f^2], f = s(a), a ~ N(mu, s^2) fresh each step: the norm rate of a product of
    independent diagonal gates (recurrent path off)."""
    return 0.5 * math.log(gaussian_mean(lambda a: _sigmoid(mu + a) ** 2, s * s))


def _minimal_moments(mu_b: float, q_e: float):
    """E[u^2], E[(1 - u)^2], E[s'(e)^2] for u = s(e), e ~ N(mu_b, q_e)."""
    Eu2 = gaussian_mean(lambda a: _sigmoid(mu_b + a) ** 2, q_e)
    E1u2 = gaussian_mean(lambda a: (1 - _sigmoid(mu_b + a)) ** 2, q_e)
    Eds2 = gaussian_mean(lambda a: (_sigmoid(mu_b + a) * (1 - _sigmoid(mu_b + a))) ** 2, q_e)
    return Eu2, E1u2, Eds2


def minimal_q_star(sigma_w: float, mu_b: float, R: float = 1.0, sigma_v: float = 1.0) -> float:
    """Fixed point Q* of the minimalRNN's state variance (Chen et al. 2018, section 4):

        Q* = R E[(1 - u)^2] / (1 - E[u^2]),   u = s(e),  e ~ N(mu_b, sigma_w^2 Q* + sigma_v^2 R),

    for input z_t ~ N(0, R) per unit, fresh each step. Solved by Brent's method on the excess.
    """
    if R <= 0:
        return 0.0

    def excess(Q):
        Eu2, E1u2, _ = _minimal_moments(mu_b, sigma_w ** 2 * Q + sigma_v ** 2 * R)
        return R * E1u2 / (1 - Eu2) - Q

    # (1 - u)^2 <= 1 - u^2 for u in [0, 1], so Q* <= R brackets the root
    return brentq(excess, 0.0, R, xtol=1e-14, rtol=1e-13)


def minimal_chi(sigma_w: float, mu_b: float, R: float = 1.0, sigma_v: float = 1.0) -> float:
    """chi = E[u^2] + sigma_w^2 (Q* + R) E[s'(e)^2] at the fixed point (Chen et al. 2018);
    the predicted norm rate is 1/2 ln chi per step (the tests check Q* and chi against an
    independently computed table)."""
    Q = minimal_q_star(sigma_w, mu_b, R, sigma_v)
    Eu2, _, Eds2 = _minimal_moments(mu_b, sigma_w ** 2 * Q + sigma_v ** 2 * R)
    return Eu2 + sigma_w ** 2 * (Q + R) * Eds2


# --------------------------------------------------------------------------------------------
# The curse of memory (Zucchet & Orvieto 2024, arXiv:2405.21064; the LRU of Orvieto et al. 2023,
# arXiv:2303.06349). One real unit h_t = lambda h_{t-1} + g x_t in its stationary state, x_t a
# stationary AR(1) input of unit variance and lag-one correlation rho (E[x_t x_{t-j}] =
# rho^|j|; rho = 0 is white noise). The normaliser g: 1 (``gamma="none"``, raw), sqrt(1 -
# lambda^2) held as its own parameter and not differentiated when lambda moves (``"param"``:
# the LRU of Orvieto et al. and Zucchet & Orvieto's code), or sqrt(1 - lambda^2) differentiated
# through lambda (``"tied"``: their code's ``L2``). Derivatives with respect to lambda itself or
# to nu, lambda = exp(-exp(nu)). Derivation: docs/theory.md; the raw forms under AR(1) input
# agree with the notebook figures/1D-case.ipynb of Zucchet & Orvieto's code (``h2``,
# ``dh_dlamb``), derived here independently.
# --------------------------------------------------------------------------------------------
SENSITIVITY_PARAMS = ("lambda", "nu")
GAMMAS = ("none", "param", "tied")


def _memory_args(lam, gamma: str, rho: float):
    choice("gamma", gamma, GAMMAS)
    correlation("rho", rho)
    return np.asarray(lam, dtype=float)


def memory_state_variance(lam, gamma: str = "none", rho: float = 0.0):
    """E[h^2] of the stationary unit (section comment above), for 0 < lambda < 1:

        raw (gamma = "none"):        (1 + lambda rho) / ((1 - lambda^2)(1 - lambda rho))
        normalised (param, tied):    (1 + lambda rho) / (1 - lambda rho)

    (white input: 1 / (1 - lambda^2) and 1). The normalised state's variance is 1 only for white
    input: it tends to (1 + rho)/(1 - rho) as lambda -> 1."""
    lam = _memory_args(lam, gamma, rho)
    normalised = (1 + lam * rho) / (1 - lam * rho)
    return normalised if gamma != "none" else normalised / (1 - lam ** 2)


def memory_sensitivity(lam, param: str = "lambda", gamma: str = "none", rho: float = 0.0):
    """E[(dh_t/dp)^2] in the stationary state, p = lambda or nu (lambda = exp(-exp(nu)),
    dlambda/dnu = lambda ln lambda), for 0 < lambda < 1 and AR(1) input of correlation rho:

        raw, d/dlambda:    S(lambda, rho) = [(1 + lambda^2)(1 - lambda^2 rho^2)
                                             + 2 lambda rho (1 - lambda^2)]
                                            / [(1 - lambda^2)^3 (1 - lambda rho)^2]
        param, d/dlambda:  (1 - lambda^2) S(lambda, rho)
        tied, d/dlambda:   (1 + lambda rho) / [(1 - lambda^2)^2 (1 - lambda rho)]
        d/dnu:             lambda^2 ln^2(lambda) times the d/dlambda form

    White input (rho = 0): raw (1 + lambda^2)/(1 - lambda^2)^3, param (1 + lambda^2)/(1 -
    lambda^2)^2, tied 1/(1 - lambda^2)^2. S is the notebook's ``dh_dlamb`` of Zucchet &
    Orvieto's code (figures/1D-case.ipynb); ``param`` is their Fig. 2's normalised curve."""
    choice("param", param, SENSITIVITY_PARAMS)
    lam = _memory_args(lam, gamma, rho)
    l2, lr = lam ** 2, lam * rho
    if gamma == "tied":
        out = (1 + lr) / ((1 - l2) ** 2 * (1 - lr))
    else:
        out = ((1 + l2) * (1 - lr ** 2) + 2 * lr * (1 - l2)) / ((1 - l2) ** 3 * (1 - lr) ** 2)
        if gamma == "param":
            out = out * (1 - l2)
    return out * (lam * np.log(lam)) ** 2 if param == "nu" else out


def memory_sensitivity_limit(param: str = "lambda", gamma: str = "none",
                             rho: float = 0.0) -> tuple:
    """(a, p): E[(dh/dparam)^2] ~ a m^p as lambda -> 1 at fixed rho, with the memory
    m = 1 / (1 - lambda) and kappa = (1 + rho)/(1 - rho) (1 for white input):

        raw:    d/dlambda kappa m^3 / 4,   d/dnu kappa m / 4
        param:  d/dlambda kappa m^2 / 2,   d/dnu kappa / 2
        tied:   d/dlambda kappa m^2 / 4,   d/dnu kappa / 4

    (1 - lambda^2 ~ 2/m, ln lambda ~ -1/m.) Under nu, the param and tied normalisers both leave
    a bounded sensitivity, but their limits differ by a factor 2; kappa -> infinity as rho -> 1:
    correlated input brings the curse back."""
    choice("param", param, SENSITIVITY_PARAMS)
    _memory_args(0.5, gamma, rho)
    kappa = (1 + rho) / (1 - rho)
    a = {"none": 0.25, "param": 0.5, "tied": 0.25}[gamma] * kappa
    return a, (3 if gamma == "none" else 2) - (2 if param == "nu" else 0)


# --------------------------------------------------------------------------------------------
# Diagonal recurrences whose gates see the input only: minGRU and minLSTM (Feng et al. 2024,
# arXiv:2410.01201). Each unit's step factor a_i = dh_{t,i}/dh_{t-1,i} depends on x_t alone, so
# ||dh_t/dh_k|| = max_i prod_{s=k+1..t} a_{i,s} and its long-lag rate is max_i E[ln a_i], nats
# per step. For white input x_t ~ N(0, sigma_x^2 I) a unit's gate pre-activation w . x_t is
# exactly Gaussian, N(0, sigma_x^2 ||w||^2), so E[ln a_i] is a one- or two-dimensional Gaussian
# integral, taken by the trapezoidal rule in z (``_gauss_grid``): Gauss-Hermite with a fixed
# node count loses digits as the pre-activation's scale grows (measured against scipy's quad:
# 3e-7 at s = 4 and 3e-4 at s = 8 with 80 nodes), the trapezoidal rule at step 0.25 / s does not.
# --------------------------------------------------------------------------------------------
_DIAG_CHUNK = 2 ** 22  # numbers of one chunk of the two-dimensional grid


def _log_sigmoid(a):
    return -np.logaddexp(0.0, -a)


def mingru_log_keep(s, mean=0.0):
    """E[ln(1 - z)] = -E[softplus(a)], z = s(a), a ~ N(mean, s^2): the mean log step factor of a
    minGRU unit (dh_t/dh_{t-1} = diag(1 - z_t)), nats per step, for each entry of ``s`` (>= 0,
    finite; ``mean`` broadcast with it). For z_t = s(w . x_t) with x_t ~ N(0, sigma_x^2 I):
    s = sigma_x ||w||, mean = 0."""
    s, mean = np.broadcast_arrays(np.asarray(s, dtype=float), np.asarray(mean, dtype=float))
    if s.size == 0:
        return s.copy()
    z, w = _gauss_grid(float(np.max(s)) ** 2)
    a = mean[..., None] + s[..., None] * z
    out = -(np.logaddexp(0.0, a) @ w)
    return float(out) if out.ndim == 0 else out


def minlstm_log_keep(s_f, s_i, rho=0.0, mean_f=0.0, mean_i=0.0):
    """E[ln f'] with f' = f / (f + i), f = s(a), i = s(b) and (a, b) jointly Gaussian with means
    (mean_f, mean_i), standard deviations (s_f, s_i) and correlation ``rho``: the mean log step
    factor of a minLSTM unit (dh_t/dh_{t-1} = diag(f'_t)), nats per step, elementwise over the
    broadcast arguments. ln f' = ln s(a) - ln(s(a) + s(b)) = -softplus(softplus(-a) -
    softplus(-b)). For f_t = s(w_f . x_t), i_t = s(w_i . x_t) with x_t ~ N(0, sigma_x^2 I):
    s_f = sigma_x ||w_f||, s_i = sigma_x ||w_i||, rho = cos(w_f, w_i) (the two gates see the same
    x_t, so a fixed network's are correlated; rho = 0 is the independent case), means 0.

    Two-dimensional trapezoidal rule in (z1, z2) ~ N(0, I), a = mean_f + s_f z1,
    b = mean_i + s_i (rho z1 + sqrt(1 - rho^2) z2), step 0.25 / max(s_f, s_i)."""
    args = np.broadcast_arrays(*(np.asarray(v, dtype=float)
                                 for v in (s_f, s_i, rho, mean_f, mean_i)))
    s_f, s_i, rho, mean_f, mean_i = (v.ravel() for v in args)
    if np.any(np.abs(rho) > 1):
        raise ValueError(f"rho={rho[np.abs(rho) > 1][0]!r} is not allowed; a correlation lies "
                         "in [-1, 1]")
    shape = args[0].shape
    if s_f.size == 0:
        return np.zeros(shape)
    z, w = _gauss_grid(float(max(np.max(s_f), np.max(s_i))) ** 2)
    W2 = np.outer(w, w)
    out = np.empty(s_f.size)
    step = max(1, _DIAG_CHUNK // z.size ** 2)
    for lo in range(0, s_f.size, step):
        sl = slice(lo, lo + step)
        m_f, sd_f, m_i, sd_i, r = (v[sl, None, None] for v in (mean_f, s_f, mean_i, s_i, rho))
        a = m_f + sd_f * z[:, None]  # (units, z1, z2)
        b = m_i + sd_i * (r * z[:, None] + np.sqrt(1 - r ** 2) * z[None, :])
        log_f = -np.logaddexp(0.0, np.logaddexp(0.0, -a) - np.logaddexp(0.0, -b))
        out[sl] = (log_f * W2).sum((-2, -1))
    out = out.reshape(shape)
    return float(out) if out.ndim == 0 else out


def diag_log_keep(cell: str, W_gates, input_std: float):
    """Per unit, the mean log step factor E[ln a_i] of a minGRU (``W_gates`` = (W_z,)) or minLSTM
    (``W_gates`` = (W_f, W_i)) at white input x_t ~ N(0, input_std^2 I), each W (N, D) as a numpy
    array; nats per step. The long-lag rate of ||dh_t/dh_k|| is the slowest unit's, max_i."""
    choice("cell", cell, ("mingru", "minlstm"))
    if cell == "mingru":
        (W_z,) = W_gates
        return mingru_log_keep(input_std * np.linalg.norm(W_z, axis=1))
    W_f, W_i = W_gates
    n_f, n_i = np.linalg.norm(W_f, axis=1), np.linalg.norm(W_i, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.where((n_f > 0) & (n_i > 0), (W_f * W_i).sum(1) / (n_f * n_i), 0.0)
    return minlstm_log_keep(input_std * n_f, input_std * n_i, np.clip(rho, -1.0, 1.0))


def rglru_log_keep(log_a0, s, mean=0.0, c: float = 8.0):
    """E[ln a] = c ln a_0 E[s(r)], r ~ N(mean, s^2): the mean log step factor of an RG-LRU unit
    (De et al. 2024; ln a_t = c r_t ln a_0 with r_t = s(pre-activation), dh_t/dh_{t-1} =
    diag(a_t)), nats per step, elementwise over the broadcast arguments (``s`` >= 0 finite). For
    the gate s(w . u_t + b) with u_t ~ N(0, Sigma): s = sqrt(w Sigma w), mean = b. At mean 0,
    E[s(r)] = 1/2 exactly (s(-v) = 1 - s(v))."""
    log_a0, s, mean = np.broadcast_arrays(*(np.asarray(v, dtype=float)
                                            for v in (log_a0, s, mean)))
    if s.size == 0:
        return s.copy()
    z, w = _gauss_grid(float(np.max(s)) ** 2)
    out = c * log_a0 * (_sigmoid(mean[..., None] + s[..., None] * z) @ w)
    return float(out) if out.ndim == 0 else out


def mamba_log_keep(A, mean, s):
    """E[ln a] = A E[softplus(r)], r ~ N(mean, s^2): the mean log step factor of a Mamba S6
    state entry (Gu and Dao 2023; ln a_t[d, n] = Delta_t[d] A[d, n] with Delta_t =
    softplus(pre_t), dh_t/dh_{t-1} = diag(a_t)), nats per step. ``A`` (N, d_state), ``mean`` and
    ``s`` (>= 0, finite) per channel (N,): Delta's pre-activation b_dt[d] + (W_dt W_x^dt W_u)[d] .
    x_t at x_t ~ N(0, sigma_x^2 I) has mean b_dt[d] and s = sigma_x ||(W_dt W_x^dt W_u)[d]||.
    Returns (N, d_state); the trapezoidal rule in z as ``mingru_log_keep``."""
    A = np.asarray(A, dtype=float)
    mean, s = np.broadcast_arrays(np.asarray(mean, dtype=float), np.asarray(s, dtype=float))
    if s.size == 0:
        return np.zeros(A.shape)
    z, w = _gauss_grid(float(np.max(s)) ** 2)
    delta = np.logaddexp(0.0, mean[..., None] + s[..., None] * z) @ w  # E[softplus], (N,)
    return A * delta[..., None]


# --------------------------------------------------------------------------------------------
# Truncated backpropagation and the curse of memory: how much of the sensitivity of one real
# unit h_t = lambda h_{t-1} + x_t (x_t white, unit variance; h_{-1} = 0, so t + 1 inputs) comes
# from far back. With q = lambda^2, dh_t/dlambda = sum_{j=1..t} j lambda^(j-1) x_{t-j} (input
# lag j); the cross terms vanish in expectation, so E[(dh_t/dlambda)^2] = sum_j j^2 q^(j-1) and
# each lag's share adds. Derivation: docs/theory.md ("Truncated backpropagation").
# --------------------------------------------------------------------------------------------
def _lag_tail(q, K):
    """sum_{j >= K} j^2 q^(j-1) = q^(K-1) [K^2/(1-q) + 2 K q/(1-q)^2 + q (1+q)/(1-q)^3]
    (``(m + K)^2`` summed against q^m over m >= 0), elementwise."""
    return q ** (K - 1) * (K ** 2 / (1 - q) + 2 * K * q / (1 - q) ** 2
                           + q * (1 + q) / (1 - q) ** 3)


def _truncation_args(lam, K, T):
    lam = np.asarray(lam, dtype=float)
    K = np.asarray(K, dtype=float)
    bad = lam[~(np.abs(lam) < 1)]
    if bad.size:
        raise ValueError(f"lambda={float(bad[0])!r} is not allowed; it must be in (-1, 1)")
    bad = K[(K < 1) | (K != np.round(K))]
    if bad.size:
        raise ValueError(f"K={float(bad[0]):g} is not allowed; it must be an integer >= 1")
    if T is not None and (isinstance(T, bool) or int(T) != T or T < 2):
        raise ValueError(f"T={T!r} is not allowed; it must be an integer >= 2 or None")
    return lam ** 2, K


def truncation_input_share(lam, K, T: int | None = None):
    """The share of the sensitivity E[(dh_t/dlambda)^2] of h_t = lambda h_{t-1} + x_t that comes
    from inputs at lags j >= K (x_{t-j}, j >= K), white unit input, dimensionless in [0, 1]:

        S_in(K) = sum_{j=K..T-1} j^2 q^(j-1) / sum_{j=1..T-1} j^2 q^(j-1),   q = lambda^2,

    at the last step t = T - 1 of a sequence of T steps from h_{-1} = 0; with A(K) = sum_{j>=K}
    j^2 q^(j-1) in closed form (``_lag_tail``) it is (A(K) - A(T)) / (A(1) - A(T)), 0 for K >= T.
    ``T=None``: the stationary limit T -> infinity, A(K)/A(1) = q^(K-1) [q (1+q) + 2 K q (1-q)
    + K^2 (1-q)^2] / (1+q). Elementwise over lambda in (-1, 1) and integer K >= 1."""
    q, K = _truncation_args(lam, K, T)
    if T is None:
        return q ** (K - 1) * (q * (1 + q) + 2 * K * q * (1 - q) + K ** 2 * (1 - q) ** 2) \
            / (1 + q)
    total = _lag_tail(q, 1) - _lag_tail(q, T)
    return np.where(K < T, (_lag_tail(q, np.minimum(K, T)) - _lag_tail(q, T)) / total, 0.0)


def truncation_residual_share(lam, K, T: int | None = None):
    """What truncated backpropagation over K steps leaves out of dh_t/dlambda, as a share of
    E[(dh_t/dlambda)^2] (h_t = lambda h_{t-1} + x_t, white unit input), dimensionless.

    Backpropagating K steps from t keeps the Jacobian lags l = t - k = 0..K-1 of dh_t/dlambda =
    sum_{l>=0} lambda^l h_{t-l-1}, i.e. sum_j min(j, K) lambda^(j-1) x_{t-j}; it leaves out
    R_K = sum_{l>=K} lambda^l h_{t-l-1} = lambda^K dh_{t-K}/dlambda = sum_{j>K} (j - K)
    lambda^(j-1) x_{t-j}, so

        E[R_K^2] / E[(dh_t/dlambda)^2] = q^K (A(1) - A(T-K)) / (A(1) - A(T)),   q = lambda^2,

    at the last step t = T - 1 of T steps from h_{-1} = 0 (0 for K >= T - 1); ``T=None``: the
    stationary q^K = lambda^(2K). This is the step at the end of a chunk of truncated BPTT with
    k1 = k2 = K (``train.truncate=K``); a step r < K - 1 steps into its chunk keeps r + 1 lags
    and leaves lambda^(2(r+1)). R_K and the kept part are correlated, so the two shares do not
    add to 1. Elementwise over lambda in (-1, 1) and integer K >= 1."""
    q, K = _truncation_args(lam, K, T)
    if T is None:
        return q ** K
    kept = np.maximum(T - K, 1)
    total = _lag_tail(q, 1) - _lag_tail(q, T)
    return np.where(K < T - 1, q ** K * (_lag_tail(q, 1) - _lag_tail(q, kept)) / total, 0.0)
