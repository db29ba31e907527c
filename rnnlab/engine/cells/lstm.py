"""PyTorch's LSTM (``torch.nn.LSTM``, gates i, f, g, o):

    i, f, o = s(.), g = tanh(.) of W_i* x + b_i* + W_h* h + b_h*,
    c' = f * c + i * g,  h' = o * tanh(c')

The state is (h, c) and c_k is the independent input of step k+1 (Gilboa et al. 2019's
state-to-state convention): dL_t/dc_k has no same-step path through h_k = o_k tanh(c_k), and
dL_t/dc_t = 0. The forget gate f is the keep gate that ``model.gate_bias`` shifts. Weights, inits
and theory: ``rnnlab.engine.cells.gated``.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from . import Cell, gated, register
from .stack import Recorded, Stack, workspace


class LSTMLayer:
    """The (h, c) -> (h', c') Jacobian. With k_h = o (1 - tanh^2 c'), the gate factors
    c_i = g i (1 - i), c_f = c f (1 - f), c_g = i (1 - g^2), c_o = tanh(c') o (1 - o):

        dc' = f dc + [c_i, c_f, c_g, 0] W_hh dh,   dh' = k_h dc' + c_o W_ho dh,

    and the cotangent map, with dc'_tot = dc' + k_h dh' (the path through h' = o tanh c'):
    dc = f dc'_tot, dh = W_hh^T [c_i dc'_tot, c_f dc'_tot, c_g dc'_tot, c_o dh']."""

    parts = ("h", "c")

    def __init__(self, W_hh: Tensor, W_ih: Tensor, f: Tensor, k_h: Tensor, C: Tensor):
        self.W, self.W_ih, self.f, self.k_h, self.C = W_hh, W_ih, f, k_h, C
        self.hidden = W_hh.shape[1]
        self.size = 2 * self.hidden
        self.work: Tensor | None = None
        self.tmp: Tensor | None = None

    def vjp_(self, k: int, D: Tensor) -> None:
        m, (B, N) = D.shape[0], self.f.shape[1:]
        self.work = workspace(self.work, m, self.f.shape[0], (B, 4, N), D)
        self.tmp = workspace(self.tmp, m, self.f.shape[0], (B, N), D)
        Dh, Dc, G, C = D[..., :N], D[..., N:], self.work[:m], self.C[k].view(B, 4, N)
        tot = torch.addcmul(Dc, self.k_h[k], Dh, out=self.tmp[:m])
        torch.mul(tot.unsqueeze(2), C[:, :3], out=G[:, :, :3])
        torch.mul(Dh, C[:, 3], out=G[:, :, 3])
        torch.mul(tot, self.f[k], out=Dc)
        torch.mm(G.view(-1, 4 * N), self.W, out=self.tmp[:m].view(-1, N))  # tot is spent
        Dh.copy_(self.tmp[:m])

    def _gate_cotangent(self, k: int, D: Tensor):
        B, N = self.f.shape[1:]
        Dh, Dc = D[..., :N], D[..., N:]
        Dc_tot = Dc + self.k_h[k] * Dh
        G = torch.stack([Dc_tot, Dc_tot, Dc_tot, Dh], -2) * self.C[k].view(B, 4, N)
        return G.view(*D.shape[:-1], 4 * N), Dc_tot

    def recurrent_cotangent(self, k: int, D: Tensor) -> Tensor:
        """The cotangent of W_hh h_{k-1} (i, f, g, o blocks)."""
        return self._gate_cotangent(k, D)[0]

    def recurrent_tangent(self, k: int, A: Tensor) -> Tensor:
        """The tangent of (h, c) for a tangent A (B, 4N, r) of W_hh h_{k-1} (i, f, g, o
        blocks): dc' = [c_i, c_f, c_g] A, dh' = k_h dc' + c_o A_o."""
        B, N = self.f.shape[1:]
        CA = self.C[k].view(B, 4, N, 1) * A.view(B, 4, N, -1)
        dc = CA[:, 0] + CA[:, 1] + CA[:, 2]
        return torch.cat([self.k_h[k].unsqueeze(-1) * dc + CA[:, 3], dc], 1)

    def vjp(self, k: int, D: Tensor, need_input: bool):
        G, Dc_tot = self._gate_cotangent(k, D)
        prev = torch.cat([G @ self.W, self.f[k] * Dc_tot], -1)
        return prev, (G @ self.W_ih if need_input else None)

    def jvp(self, k: int, Q: Tensor, Q_in: Tensor | None = None) -> Tensor:
        B, N = self.f.shape[1:]
        Qh, Qc = Q[:, :N], Q[:, N:]
        A = torch.matmul(self.W, Qh)
        if Q_in is not None:
            A = A + torch.matmul(self.W_ih, Q_in)
        CA = self.C[k].view(B, 4, N, 1) * A.view(B, 4, N, -1)
        dc = self.f[k].unsqueeze(-1) * Qc + CA[:, 0] + CA[:, 1] + CA[:, 2]
        return torch.cat([self.k_h[k].unsqueeze(-1) * dc + CA[:, 3], dc], 1)


class HOnlyLayer:
    """The h-only convention of Vogt et al.'s published Lyapunov code (shlizee/lyapunov-hyperopt):
    J^h_k = dh_k/dh_{k-1} with c_{k-1} held fixed, the state h alone (size N): the joint map
    restricted to (dh, dc = 0) and read on h. It leaves out the memory path c_{k-1} -> c_k (the
    forget gate's f), so it does not see what a keep-gate bias keeps (docs/cells.md)."""

    parts = ("h",)

    def __init__(self, joint: LSTMLayer):
        self.joint = joint
        self.hidden = self.size = joint.hidden

    def _gates(self, k: int, D: Tensor) -> Tensor:
        # the joint cotangent of (dL/dh', dL/dc' = 0): c' is not part of this state
        return self.joint._gate_cotangent(k, torch.cat([D, torch.zeros_like(D)], -1))[0]

    def vjp_(self, k: int, D: Tensor) -> None:
        D.copy_(self._gates(k, D) @ self.joint.W)

    def vjp(self, k: int, D: Tensor, need_input: bool):
        G = self._gates(k, D)
        return G @ self.joint.W, (G @ self.joint.W_ih if need_input else None)

    def recurrent_cotangent(self, k: int, D: Tensor) -> Tensor:
        return self._gates(k, D)

    def jvp(self, k: int, Q: Tensor, Q_in: Tensor | None = None) -> Tensor:
        N = self.hidden
        return self.joint.jvp(k, torch.cat([Q, torch.zeros_like(Q)], 1), Q_in)[:, :N]


def h_only(recorded: Recorded) -> Recorded:
    """A one-layer LSTM's recorded forward in the h-only convention (``measure.lstm_state=h``):
    the same trajectory, state h alone, step maps ``HOnlyLayer``."""
    (layer,) = recorded.maps.layers
    if hasattr(layer, "leading"):  # derived step Jacobians: their h block
        return Recorded(recorded.u, recorded.log_scale, Stack([layer.leading()]),
                        recorded.state_in[:, :layer.hidden])
    if not isinstance(layer, LSTMLayer):
        raise ValueError(f"the h-only convention needs a one-layer LSTM's own maps, not "
                         f"{type(layer).__name__}")
    N = layer.hidden
    return Recorded(recorded.u, recorded.log_scale, Stack([HOnlyLayer(layer)]),
                    recorded.state_in[:, :N])


def layer_forward(W_ih, W_hh, b_ih, b_hh, inp: Tensor, h: Tensor, c: Tensor):
    """torch.nn.LSTM's recurrence over inp (T, B, D) from (h, c), each (B, N)."""
    N = W_hh.shape[1]
    gi = torch.matmul(inp, W_ih.T) + b_ih
    hs, cs, fs, khs, Cs = [], [], [], [], []
    for t in range(inp.shape[0]):
        a = gi[t] + torch.addmm(b_hh, h, W_hh.T)
        i, f, o = torch.sigmoid(a[:, :N]), torch.sigmoid(a[:, N:2 * N]), torch.sigmoid(a[:, 3 * N:])
        g = torch.tanh(a[:, 2 * N:3 * N])
        c_new = f * c + i * g
        tc = torch.tanh(c_new)
        Cs.append(torch.cat([g * i * (1 - i), c * f * (1 - f), i * (1 - g * g),
                             tc * o * (1 - o)], -1))
        khs.append(o * (1 - tc * tc))
        fs.append(f)
        c, h = c_new, o * tc
        hs.append(h)
        cs.append(c)
    hs, cs, fs, khs, Cs = (torch.stack(v) for v in (hs, cs, fs, khs, Cs))
    return (hs, cs), lambda sl: LSTMLayer(W_hh, W_ih, fs[sl], khs[sl], Cs[sl])


def reference_step(p: gated.GatedParams):
    """``torch.nn.LSTMCell``'s own step on the weights of ``p``, for the reference."""
    return gated.torch_step(p)


class LSTMModule(gated.GatedModule, nn.LSTM):
    """``torch.nn.LSTM`` with the cell's ``step``: PyTorch's own LSTM step
    (``torch.lstm_cell``, what ``nn.LSTMCell`` computes) on the layer-0 weights; state (h, c),
    h_{-1} = c_{-1} = 0. A saved state_dict loads into a plain ``torch.nn.LSTM``."""

    cell = "lstm"

    def init_state(self, batch_size: int) -> tuple[Tensor, Tensor]:
        zeros = self.weight_hh_l0.new_zeros(batch_size, self.hidden_size)
        return zeros, zeros.clone()

    def step(self, x_t: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        return tuple(torch.lstm_cell(x_t, state, self.weight_ih_l0, self.weight_hh_l0,
                                     self.bias_ih_l0, self.bias_hh_l0))


CELL = register(Cell(
    recurrent="weight_hh", name="lstm", params=gated.GatedParams, layer_forward=layer_forward,
    layer_weights=gated.layer_weights, draw=gated.draw, state_parts=("h", "c"), gates=4,
    keep_gate=1, inits=gated.INITS, scaled_inits=gated.SCALED_INITS, theory=gated.theory,
    reference_step=reference_step, torch_module=nn.LSTM, module_layer=gated.module_layer,
    module=gated.module_of(LSTMModule), groups=("W_hi", "W_hf", "W_hg", "W_ho"),
    paper="Hochreiter & Schmidhuber 1997; PyTorch's torch.nn.LSTM"))
