"""The loss Hessian of a torch module on its flattened parameters, its spectrum, and how
concentrated its eigenvectors are on coordinates (Zucchet & Orvieto 2024, arXiv:2405.21064,
Fig. 4 right and Sec. 5; their ``figures/hessian_analysis.ipynb``, ``jax.hessian`` of the loss
on ``ravel_pytree(params)``).

``loss_hessian``: H = d^2 L / dp dp' by ``torch.func.hessian`` of p -> L(module with p) on one
fixed batch, p the module's parameters in ``named_parameters`` order, each flattened row-major.
``participation_ratio``: of a vector v, PR(v) = (sum_i v_i^2)^2 / sum_i v_i^4, the number of
coordinates it effectively occupies (1 for a coordinate axis, P for a vector spread evenly
over P coordinates). The paper draws the top eigenvectors' entries and names no statistic; the
participation ratio is ours, the usual one for localisation.
"""
from __future__ import annotations

import torch
from torch.func import functional_call
from torch.func import hessian as func_hessian


def flat_parameters(module: torch.nn.Module):
    """(p: the parameters flattened into one vector, [(name, shape, size)] in that order)."""
    layout = [(n, tuple(q.shape), q.numel()) for n, q in module.named_parameters()]
    p = torch.cat([q.detach().reshape(-1) for _, q in module.named_parameters()])
    return p, layout


def unflatten(p: torch.Tensor, layout) -> dict:
    """{name: tensor} of the flat vector ``p`` cut along ``layout``."""
    out, i = {}, 0
    for name, shape, size in layout:
        out[name] = p[i:i + size].reshape(shape)
        i += size
    return out


def loss_hessian(module: torch.nn.Module, loss, x: torch.Tensor, y: torch.Tensor):
    """(H (P, P), layout): the Hessian of loss(module(x), y) in the module's flattened
    parameters at their current values."""
    p, layout = flat_parameters(module)

    def f(flat):
        return loss(functional_call(module, unflatten(flat, layout), (x,)), y)

    return func_hessian(f)(p), layout


def spectrum(H: torch.Tensor):
    """(eigenvalues in decreasing order, eigenvectors as columns in that order) of the
    symmetric part of H."""
    w, V = torch.linalg.eigh(0.5 * (H + H.T))
    return w.flip(0), V.flip(1)


def participation_ratio(V: torch.Tensor) -> torch.Tensor:
    """PR of each column of V: (sum v^2)^2 / sum v^4, in [1, rows]."""
    sq = V ** 2
    return sq.sum(0) ** 2 / (sq ** 2).sum(0)


def group_mass(v: torch.Tensor, layout) -> dict:
    """{parameter name: the share of ||v||^2 on that parameter's coordinates}."""
    sq, out, i = v ** 2 / (v ** 2).sum(), {}, 0
    for name, _, size in layout:
        out[name] = float(sq[i:i + size].sum())
        i += size
    return out
