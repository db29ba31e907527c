"""Lyapunov exponents of Jacobian products by the QR method.

Benettin et al. 1980 (Meccanica 15:9), as used for RNNs by Vogt et al. 2022 (arXiv:2006.14123)
and Engelken, Wolf, Abbott 2023 (arXiv:2006.02427): start from an orthonormal N x k frame Q_0,
and for each step

    Z = J_t Q_{t-1},   Q_t R_t = qr(Z),   diag(R_t) > 0,
    lambda_i = 1/(T - transient) sum_{t >= transient} log R_t[i, i]     (natural log per step).

For the Elman RNN ``J_t = dh_t/dh_{t-1} = diag(phi'(a_t)) W``. lambda_1 is the long-lag rate of
``||dL_t/dh_k||``: the backward product ``J_{k+1}^T ... J_t^T`` has the same singular values as
the forward one, so the backward (BPTT) rate equals the forward rate (docs/theory.md).
Everything runs on the device and dtype of the inputs; use float64 for reference values.
"""
from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from .model import ElmanParams, hidden_states, phi_prime_from_h

FRAME_TRANSIENT = 100  # steps; see frame_transient


def frame_transient(T: int) -> int:
    """Steps to apply but not average while the random initial frame aligns with the leading
    direction: min(FRAME_TRANSIENT, T // 4). Until it has, the frame grows more slowly than
    lambda_1, which biases the average low: measured on a noisy tanh network (N = 256,
    s_in^2 = 0.1, T = 2000, 8 random frames), discarding 100 steps raises lambda_1 by 1e-4 at
    sigma_w = 2 and by 6e-4 at sigma_w = 1.2, a third of its standard error along the trajectory
    (docs/theory.md, "Lyapunov QR")."""
    return min(FRAME_TRANSIENT, T // 4)


def random_frame(N: int, k: int, batch: tuple = (), *, dtype=torch.float64, device=None,
                 generator: torch.Generator | None = None) -> Tensor:
    """A Haar-random orthonormal N x k frame (shape ``batch + (N, k)``) from the QR of a
    Gaussian matrix. Drawn on the generator's device, then moved to ``device``."""
    draw_device = generator.device if generator is not None else device
    G = torch.randn(*batch, N, k, dtype=dtype, device=draw_device, generator=generator)
    Q, R = torch.linalg.qr(G)
    Q = Q * _sign(torch.diagonal(R, dim1=-2, dim2=-1)).unsqueeze(-2)
    return Q.to(device)


def _sign(d: Tensor) -> Tensor:
    # +1 for d == 0 too: a zero column (a dead relu subspace) must not zero the frame.
    return torch.where(d < 0, -torch.ones_like(d), torch.ones_like(d))


def _qr_step(Z: Tensor) -> tuple[Tensor, Tensor]:
    """Q, log|diag R| of ``Z = Q R``, columns of Q flipped so that diag R > 0."""
    Q, R = torch.linalg.qr(Z)
    d = torch.diagonal(R, dim1=-2, dim2=-1)
    return Q * _sign(d).unsqueeze(-2), torch.log(d.abs())


def lyapunov_from_matrices(mats: Tensor | Iterable[Tensor], k: int, transient: int = 0,
                           Q0: Tensor | None = None,
                           generator: torch.Generator | None = None) -> Tensor:
    """The k leading Lyapunov exponents of the product ``M_T ... M_2 M_1`` (natural log per step).

    ``mats``: a tensor (T, N, N) or (T, B, N, N), or any iterable yielding the per-step
    (N, N) or (B, N, N) matrices in order; a generator keeps memory at one step, e.g. for i.i.d.
    Gaussian products (Newman 1986). B independent products give B rows of exponents.
    ``Q0``: initial orthonormal frame (N, k) or (B, N, k); random from ``generator`` if None.
    The first ``transient`` steps are applied but not averaged.
    Returns shape (k,) or (B, k), float with the matrices' dtype, on their device.
    """
    Q, total, n = Q0, None, 0
    for t, M in enumerate(mats):
        if Q is None:
            N, batch = M.shape[-1], tuple(M.shape[:-2])
            if not 1 <= k <= N:
                raise ValueError(f"k={k} must be in 1..N={N}")
            Q = random_frame(N, k, batch, dtype=M.dtype, device=M.device, generator=generator)
        Q, log_r = _qr_step(torch.matmul(M, Q))
        if t >= transient:
            total = log_r if total is None else total + log_r
            n += 1
    if n == 0:
        raise ValueError(f"transient={transient} leaves no steps to average")
    return total / n


def lyapunov_from_jacobians(W: Tensor, dphi: Tensor, k: int, transient: int = 0,
                            Q0: Tensor | None = None,
                            generator: torch.Generator | None = None) -> Tensor:
    """The k leading Lyapunov exponents of ``J_t = diag(dphi_t) W`` (natural log per step).

    ``dphi``: phi'(a_t) of shape (T, N), or (T, B, N) for B independent trajectories of the same
    W. ``J_t Q`` is formed as ``dphi_t * (W Q)`` (row scaling, no N x N diagonal matrix), one
    batched matmul and one batched QR per step. Returns (k,) or (B, k).
    """
    unbatched = dphi.dim() == 2
    if unbatched:
        dphi = dphi.unsqueeze(1)
        Q0 = None if Q0 is None else Q0.unsqueeze(0)
    T, B, N = dphi.shape
    if W.shape != (N, N):
        raise ValueError(f"W has shape {tuple(W.shape)}, expected ({N}, {N}) to match dphi")
    if not 1 <= k <= N:
        raise ValueError(f"k={k} must be in 1..N={N}")
    if transient >= T:
        raise ValueError(f"transient={transient} leaves no steps to average out of T={T}")
    Q = Q0 if Q0 is not None else random_frame(N, k, (B,), dtype=dphi.dtype,
                                                 device=dphi.device, generator=generator)
    total = torch.zeros(B, k, dtype=dphi.dtype, device=dphi.device)
    for t in range(T):
        Q, log_r = _qr_step(dphi[t].unsqueeze(-1) * torch.matmul(W, Q))
        if t >= transient:
            total += log_r
    lam = total / (T - transient)
    return lam[0] if unbatched else lam


def lyapunov_spectrum(p: ElmanParams, x: Tensor, h0: Tensor, k: int, transient: int = 0,
                      Q0: Tensor | None = None,
                      generator: torch.Generator | None = None) -> Tensor:
    """The k leading Lyapunov exponents along the trajectories of the Elman RNN ``p``.

    ``x``: inputs (B, T, D); ``h0``: initial state (B, N). Runs
    :func:`rnnlab.engine.model.hidden_states` without a graph, takes ``phi'(a_t)`` from ``h_t`` and
    calls :func:`lyapunov_from_jacobians`. Returns (B, k), natural log per step; the first
    ``transient`` steps (burn-in onto the attractor) are not averaged.
    """
    with torch.no_grad():
        h = hidden_states(p, x, h0)
        dphi = phi_prime_from_h(h, p.activation)
        return lyapunov_from_jacobians(p.W, dphi, k, transient, Q0=Q0, generator=generator)


def lyapunov_from_maps(maps, T: int, k: int, transient: int = 0, Q0: Tensor | None = None,
                       generator: torch.Generator | None = None, batch: int | None = None,
                       dtype=torch.float64, device=None) -> Tensor:
    """The k leading Lyapunov exponents of any cell's step Jacobians (natural log per step).

    ``maps``: a trajectory's ``rnnlab.engine.cells.Stack`` (``Trajectory.maps``), whose
    ``jvp(t, Q)`` applies J_t to a (B, S, k) frame; steps t = 0..T-1. For Elman it performs
    exactly the arithmetic of :func:`lyapunov_from_jacobians`. Returns (B, k).
    """
    S = maps.state_size
    if not 1 <= k <= S:
        raise ValueError(f"k={k} must be in 1..S={S} (the measured state size)")
    if transient >= T:
        raise ValueError(f"transient={transient} leaves no steps to average out of T={T}")
    Q = Q0 if Q0 is not None else random_frame(S, k, (batch,), dtype=dtype, device=device,
                                                 generator=generator)
    total = torch.zeros(Q.shape[0], k, dtype=Q.dtype, device=Q.device)
    for t in range(T):
        Q, log_r = _qr_step(maps.jvp(t, Q))
        if t >= transient:
            total += log_r
    return total / (T - transient)
