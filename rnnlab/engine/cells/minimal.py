"""The minimalRNN (Chen, Pennington, Schoenholz 2018, arXiv:1806.05394):

    z = U x,  u = s(W h + W_z z + b),  h' = u * h + (1 - u) * z

with J_k = diag(u) + diag((h_{k-1} - z) u (1 - u)) W. Initial weights: embedding
U ~ N(0, sigma_u^2 / D), W drawn as Elman's (``rnnlab.engine.init.recurrent_matrix``),
W_z ~ N(0, 1 / N) (sigma_v = 1) and b ~ N(gate_bias, sigma_b^2) (Chen et al.'s mu_b), in that
order. Theory: their mean-field rate 1/2 ln chi (``rnnlab.theory.minimal_chi``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

from ... import theory as th
from ..init import recurrent_matrix
from . import Cell, register
from .stack import workspace


@dataclass(frozen=True)
class MinimalParams:
    """A minimalRNN: input embedding U (N, D), recurrent gate weights W (N, N), input gate
    weights W_z (N, N), gate bias b (N,), readout V (C, N), c (C,)."""

    U: Tensor
    W: Tensor
    W_z: Tensor
    b: Tensor
    V: Tensor
    c: Tensor
    cell: str = "minimal"

    @property
    def hidden_size(self) -> int:
        return self.W.shape[0]

    def tensors(self) -> dict:
        return {k: getattr(self, k) for k in ("U", "W", "W_z", "b", "V", "c")}

    def to(self, device=None, dtype=None) -> MinimalParams:
        return replace(self, **{k: v.to(device=device, dtype=dtype)
                                for k, v in self.tensors().items()})


class MinimalLayer:
    """J_k = diag(u) + diag((h_{k-1} - z) u (1 - u)) W (Chen et al. 2018, eq. 8)."""

    parts = ("h",)

    def __init__(self, W: Tensor, u: Tensor, c_u: Tensor):
        self.W, self.u, self.c_u = W, u, c_u
        self.hidden = self.size = W.shape[0]
        self.work: Tensor | None = None

    def vjp_(self, k: int, D: Tensor) -> None:
        m, N = D.shape[0], self.size
        self.work = workspace(self.work, m, self.u.shape[0], D.shape[1:], D)
        torch.mul(D, self.c_u[k], out=self.work[:m])
        D.mul_(self.u[k])
        D.view(-1, N).addmm_(self.work[:m].view(-1, N), self.W)

    def recurrent_cotangent(self, k: int, D: Tensor) -> Tensor:
        """The cotangent of W h_{k-1} in the gate's pre-activation."""
        return D * self.c_u[k]

    def recurrent_tangent(self, k: int, A: Tensor) -> Tensor:
        """The state's tangent for a tangent A (B, N, r) of W h_{k-1} in the gate."""
        return self.c_u[k].unsqueeze(-1) * A

    def vjp(self, k: int, D: Tensor, need_input: bool):
        if need_input:
            raise ValueError("a minimalRNN is measured as a single layer")
        return self.u[k] * D + self.recurrent_cotangent(k, D) @ self.W, None

    def jvp(self, k: int, Q: Tensor, Q_in: Tensor | None = None) -> Tensor:
        return self.u[k].unsqueeze(-1) * Q + self.c_u[k].unsqueeze(-1) * torch.matmul(self.W, Q)


def layer_forward(p: MinimalParams, inp: Tensor, h: Tensor):
    """The minimalRNN over inp (T, B, D) from h (B, N)."""
    z_all = torch.matmul(inp, p.U.T)
    e_in = torch.matmul(z_all, p.W_z.T) + p.b
    hs, us, cus = [], [], []
    for t in range(inp.shape[0]):
        u = torch.sigmoid(torch.addmm(e_in[t], h, p.W.T))
        cus.append((h - z_all[t]) * u * (1 - u))
        h = u * h + (1 - u) * z_all[t]
        hs.append(h)
        us.append(u)
    hs, us, cus = (torch.stack(v) for v in (hs, us, cus))
    return (hs,), lambda sl: MinimalLayer(p.W, us[sl], cus[sl])


def draw(model, T: int, g: torch.Generator) -> dict:
    """W, U, W_z, b in float64 from ``g`` (the module docstring)."""
    N, D = model.hidden_size, model.input_size
    f64 = dict(generator=g, dtype=torch.float64)
    W = recurrent_matrix(N, model.init, model.spectral_radius, model.gain, g)
    U = torch.randn(N, D, **f64) * (model.input_gain / math.sqrt(D))
    W_z = torch.randn(N, N, **f64) / math.sqrt(N)
    b = model.gate_bias + torch.randn(N, **f64) * model.bias_std
    return dict(U=U, W=W, W_z=W_z, b=b)


def theory(p: MinimalParams, model, data) -> dict:
    """``mean_field_rate`` = 1/2 ln chi of Chen et al. 2018 at the network's
    sigma_w = ||W||_F / sqrt N, mu_b = gate_bias and R = (input_gain input_std)^2 (the embedding's
    per-unit variance for input_size >= N), nats per step."""
    W = p.W
    sigma_w = float(torch.linalg.matrix_norm(W).item() / math.sqrt(W.shape[0]))
    R = (model.input_gain * data.input_std) ** 2
    out = {"sigma_w": sigma_w, "R": R}
    try:
        out["mean_field_chi"] = th.minimal_chi(sigma_w, model.gate_bias, R)
        out["mean_field_rate"] = 0.5 * math.log(out["mean_field_chi"])
    except (ValueError, ArithmeticError):
        out["mean_field_chi"] = out["mean_field_rate"] = math.nan
    return out


def step(p: MinimalParams, x_t: Tensor, h: Tensor) -> Tensor:
    """Chen et al. 2018's minimalRNN step, written out (torch has no such cell)."""
    z = x_t @ p.U.T
    u = torch.sigmoid(h @ p.W.T + z @ p.W_z.T + p.b)
    return u * h + (1 - u) * z


class MinimalModule(nn.Module):
    """The trainable minimalRNN: parameters U (N, D), W (N, N), W_z (N, N), b (N,) as in
    ``MinimalParams``, each drawn as torch draws a recurrent layer's weights,
    U(-1/sqrt N, 1/sqrt N), in that order; ``step`` is the cell's ``step``; state (h,),
    h_{-1} = 0. No fused kernel: a sequence is its steps."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        N, D = hidden_size, input_size
        self.U = nn.Parameter(torch.empty(N, D))
        self.W = nn.Parameter(torch.empty(N, N))
        self.W_z = nn.Parameter(torch.empty(N, N))
        self.b = nn.Parameter(torch.empty(N))
        for p in self.parameters():
            nn.init.uniform_(p, -1 / math.sqrt(N), 1 / math.sqrt(N))

    def init_state(self, batch_size: int) -> tuple[Tensor]:
        return (self.W.new_zeros(batch_size, self.hidden_size),)

    def step(self, x_t: Tensor, state: tuple[Tensor]) -> tuple[Tensor]:
        return (step(self, x_t, state[0]),)

    def engine_params(self, head: nn.Linear) -> MinimalParams:
        """The engine's ``MinimalParams`` of these weights with ``head``'s readout, detached."""
        return MinimalParams(*(t.detach() for t in (self.U, self.W, self.W_z, self.b,
                                                     head.weight, head.bias)))

    def set_recurrent(self, W: Tensor) -> None:
        """W = ``model.init``'s matrix and the gate bias b zero."""
        with torch.no_grad():
            self.W.copy_(W)
            self.b.zero_()


def module(input_size: int, hidden_size: int, model: dict, dtype=None) -> MinimalModule:
    """The trainable minimalRNN from the global RNG, cast to ``dtype``."""
    rnn = MinimalModule(input_size, hidden_size)
    return rnn if dtype is None else rnn.to(dtype)


CELL = register(Cell(
    name="minimal", params=MinimalParams, layer_forward=layer_forward,
    layer_weights=lambda p: (p,), draw=draw, keep_gate=0, theory=theory,
    reference_step=lambda p: (lambda x_t, s: (step(p, x_t, s[0]),)), module=module,
    paper="Chen, Pennington, Schoenholz 2018 (arXiv:1806.05394)"))
