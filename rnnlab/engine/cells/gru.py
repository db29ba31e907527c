"""PyTorch's GRU (``torch.nn.GRU``, gates r, z, n):

    r = s(W_ir x + b_ir + W_hr h + b_hr),  z = s(W_iz x + b_iz + W_hz h + b_hz),
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),  h' = (1 - z) * n + z * h

(s the logistic sigmoid; z multiplies the old state, so z is the keep gate that ``model.gate_bias``
shifts). Weights, inits and theory: ``rnnlab.engine.cells.gated``.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from . import Cell, gated, register
from .stack import workspace


class GRULayer:
    """J_k = diag(z) + [diag(c_r), diag(c_z), diag(c_n r)] W_hh with c_n = (1 - z)(1 - n^2),
    c_z = (h_{k-1} - n) z (1 - z), c_r = c_n (W_hn h_{k-1} + b_hn) r (1 - r); the input map has c_n
    in place of c_n r (the candidate's input term is not reset by r)."""

    parts = ("h",)

    def __init__(self, W_hh: Tensor, W_ih: Tensor, z: Tensor, C: Tensor, c_n: Tensor):
        self.W, self.W_ih, self.z, self.C, self.c_n = W_hh, W_ih, z, C, c_n
        self.hidden = self.size = W_hh.shape[1]
        self.work: Tensor | None = None

    def _gates(self, k, D, out=None):
        B, N = self.z.shape[1:]
        G = torch.mul(D.unsqueeze(-2), self.C[k].view(B, 3, N), out=out)
        return G.view(*D.shape[:-1], 3 * N)

    def vjp_(self, k: int, D: Tensor) -> None:
        m, (B, N) = D.shape[0], self.z.shape[1:]
        self.work = workspace(self.work, m, self.z.shape[0], (B, 3, N), D)
        G = self._gates(k, D, out=self.work[:m])
        D.mul_(self.z[k])
        D.view(-1, N).addmm_(G.view(-1, 3 * N), self.W)

    def recurrent_cotangent(self, k: int, D: Tensor) -> Tensor:
        """The cotangent of W_hh h_{k-1} (r, z, n blocks; the n block through r)."""
        return self._gates(k, D)

    def recurrent_tangent(self, k: int, A: Tensor) -> Tensor:
        """The state's tangent for a tangent A (B, 3N, r) of W_hh h_{k-1}: sum over the r, z,
        n blocks of the block's factor times its rows."""
        B, N = self.z.shape[1:]
        return (self.C[k].view(B, 3, N, 1) * A.view(B, 3, N, -1)).sum(1)

    def vjp(self, k: int, D: Tensor, need_input: bool):
        G = self._gates(k, D)
        prev = self.z[k] * D + G @ self.W
        if not need_input:
            return prev, None
        N = self.size
        G_in = torch.cat([G[..., :2 * N], D * self.c_n[k]], -1)
        return prev, G_in @ self.W_ih

    def jvp(self, k: int, Q: Tensor, Q_in: Tensor | None = None) -> Tensor:
        B, N = self.z.shape[1:]
        C = self.C[k].view(B, 3, N, 1)
        A = torch.matmul(self.W, Q).view(B, 3, N, -1)
        out = self.z[k].unsqueeze(-1) * Q + (C * A).sum(1)
        if Q_in is not None:
            A_in = torch.matmul(self.W_ih, Q_in).view(B, 3, N, -1)
            C_in = torch.stack([C[:, 0], C[:, 1], self.c_n[k].unsqueeze(-1)], 1)
            out = out + (C_in * A_in).sum(1)
        return out


def layer_forward(W_ih, W_hh, b_ih, b_hh, inp: Tensor, h: Tensor):
    """torch.nn.GRU's recurrence over inp (T, B, D) from h (B, N)."""
    N = W_hh.shape[1]
    gi = torch.matmul(inp, W_ih.T) + b_ih
    hs, zs, Cs, cns = [], [], [], []
    for t in range(inp.shape[0]):
        gh = torch.addmm(b_hh, h, W_hh.T)
        r = torch.sigmoid(gi[t, :, :N] + gh[:, :N])
        z = torch.sigmoid(gi[t, :, N:2 * N] + gh[:, N:2 * N])
        hn = gh[:, 2 * N:]
        n = torch.tanh(gi[t, :, 2 * N:] + r * hn)
        c_n = (1 - z) * (1 - n * n)
        Cs.append(torch.cat([c_n * hn * r * (1 - r), (h - n) * z * (1 - z), c_n * r], -1))
        h = (1 - z) * n + z * h
        hs.append(h)
        zs.append(z)
        cns.append(c_n)
    hs, zs, Cs, cns = (torch.stack(v) for v in (hs, zs, Cs, cns))
    return (hs,), lambda sl: GRULayer(W_hh, W_ih, zs[sl], Cs[sl], cns[sl])


def reference_step(p: gated.GatedParams):
    """``torch.nn.GRUCell``'s own step on the weights of ``p``, for the reference."""
    return gated.torch_step(p)


class GRUModule(gated.GatedModule, nn.GRU):
    """``torch.nn.GRU`` with the cell's ``step``: PyTorch's own GRU step (``torch.gru_cell``,
    what ``nn.GRUCell`` computes) on the layer-0 weights; state (h,), h_{-1} = 0. A saved
    state_dict loads into a plain ``torch.nn.GRU``."""

    cell = "gru"

    def init_state(self, batch_size: int) -> tuple[Tensor]:
        return (self.weight_hh_l0.new_zeros(batch_size, self.hidden_size),)

    def step(self, x_t: Tensor, state: tuple[Tensor]) -> tuple[Tensor]:
        return (torch.gru_cell(x_t, state[0], self.weight_ih_l0, self.weight_hh_l0,
                               self.bias_ih_l0, self.bias_hh_l0),)


CELL = register(Cell(
    recurrent="weight_hh", name="gru", params=gated.GatedParams, layer_forward=layer_forward,
    layer_weights=gated.layer_weights, draw=gated.draw, gates=3, keep_gate=1,
    inits=gated.INITS, scaled_inits=gated.SCALED_INITS, theory=gated.theory,
    reference_step=reference_step, torch_module=nn.GRU, module_layer=gated.module_layer,
    module=gated.module_of(GRUModule), groups=("W_hr", "W_hz", "W_hn"),
    paper="Cho et al. 2014; PyTorch's torch.nn.GRU"))
