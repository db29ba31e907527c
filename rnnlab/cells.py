"""Recurrent cells behind one seam: a forward pass that records what each step's Jacobian needs,
and the Jacobian itself as two maps.

For a state s_k (Elman, GRU and minimalRNN: h_k; LSTM: (h_k, c_k); a stacked module: every
layer's state together) the step Jacobian J_k = ds_k / ds_{k-1} enters the measurement as

* ``vjp_(k, D)``: D <- J_k^T D in place, for a whole (targets x batch x state) block at once:
  the adjoint sweep's step dL_t/ds_{k-1} = J_k^T dL_t/ds_k (one GEMM per step);
* ``jvp(k, Q)``: J_k Q for a (batch x state x r) frame: the tangent map of the QR method
  (Lyapunov exponents).

Every cell's J_k has the form ``diag(a_k) + C_k W_hh`` (a block of diagonal gate factors times the
recurrent weights), so both maps cost one GEMM with the stacked recurrent matrix. Equations and
gate order are PyTorch's (``torch.nn.GRU``: r, z, n; ``torch.nn.LSTM``: i, f, g, o):

    GRU   r = s(W_ir x + b_ir + W_hr h + b_hr),  z = s(W_iz x + b_iz + W_hz h + b_hz),
          n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),  h' = (1 - z) * n + z * h
    LSTM  i, f, o = s(.), g = tanh(.) of W_i* x + b_i* + W_h* h + b_h*,
          c' = f * c + i * g,  h' = o * tanh(c')
    minimalRNN (Chen, Pennington, Schoenholz 2018, arXiv:1806.05394)
          z = U x,  u = s(W h + W_z z + b),  h' = u * h + (1 - u) * z

(s the logistic sigmoid). For the LSTM the state is (h, c) and c_k is the independent input of
step k+1 (Gilboa et al. 2019's state-to-state convention): dL_t/dc_k has no same-step path through
h_k = o_k tanh(c_k), and dL_t/dc_t = 0. Gated states are bounded (|h| <= 1, |c_t| <= |c_0| + t),
so their forward needs no log scale; the cotangents are renormalised by the sweep as for Elman.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor

from .model import phi, phi_prime_from_h

CELLS = ("elman", "gru", "lstm", "minimal")
GATES = {"gru": 3, "lstm": 4}
# the gate whose pre-activation ``model.gate_bias`` shifts: the one multiplying the old state
KEEP_GATE = {"gru": 1, "lstm": 1}  # z is block 1 of (r, z, n); f is block 1 of (i, f, g, o)


@dataclass(frozen=True)
class GatedParams:
    """A one-layer GRU or LSTM in PyTorch's names and layout, with the readout o = V h + c:
    weight_ih (G N, D), weight_hh (G N, N), bias_ih and bias_hh (G N,), V (C, N), c (C,)."""

    cell: str
    weight_ih: Tensor
    weight_hh: Tensor
    bias_ih: Tensor
    bias_hh: Tensor
    V: Tensor
    c: Tensor

    def __post_init__(self):
        G, N = GATES[self.cell], self.weight_hh.shape[1]
        shapes = {"weight_ih": (G * N, self.weight_ih.shape[1]), "weight_hh": (G * N, N),
                  "bias_ih": (G * N,), "bias_hh": (G * N,), "V": (self.V.shape[0], N),
                  "c": (self.V.shape[0],)}
        for name, shape in shapes.items():
            if tuple(getattr(self, name).shape) != shape:
                raise ValueError(f"{name} has shape {tuple(getattr(self, name).shape)}, "
                                 f"expected {shape} for a {self.cell} with N={N}")

    @property
    def hidden_size(self) -> int:
        return self.weight_hh.shape[1]

    def tensors(self) -> dict:
        return {k: getattr(self, k) for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh",
                                                 "V", "c")}

    def to(self, device=None, dtype=None) -> "GatedParams":
        return replace(self, **{k: v.to(device=device, dtype=dtype)
                                for k, v in self.tensors().items()})


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

    def to(self, device=None, dtype=None) -> "MinimalParams":
        return replace(self, **{k: v.to(device=device, dtype=dtype)
                                for k, v in self.tensors().items()})


# --------------------------------------------------------------------------------------------
# One layer's step Jacobians, recorded along a trajectory (every tensor is (T, B, .))
# --------------------------------------------------------------------------------------------
def _workspace(buf: Tensor | None, m: int, rows: int, tail: tuple, like: Tensor) -> Tensor:
    """A scratch buffer of at least m rows (allocated once for a whole sweep: max(m, rows))."""
    if buf is None or buf.shape[0] < m:
        buf = torch.empty((max(m, rows),) + tuple(tail), dtype=like.dtype, device=like.device)
    return buf


class ElmanLayer:
    """J_k = diag(phi'(a_k)) W (Pascanu et al. 2013, eq. 5); the input map diag(phi') W_ih."""

    kind = "elman"

    def __init__(self, W: Tensor, dphi: Tensor, W_ih: Tensor | None = None):
        self.W, self.dphi, self.W_ih = W, dphi, W_ih
        self.hidden = self.size = W.shape[0]
        self.work: Tensor | None = None

    def vjp_(self, k: int, D: Tensor) -> None:
        m, N = D.shape[0], self.size
        self.work = _workspace(self.work, m, self.dphi.shape[0], D.shape[1:], D)
        torch.mul(D, self.dphi[k], out=self.work[:m])
        torch.mm(self.work[:m].view(-1, N), self.W, out=D.view(-1, N))

    def recurrent_cotangent(self, k: int, D: Tensor) -> Tensor:
        """dL/da_k, the cotangent of W h_{k-1}: dL/dW = sum over pairs of it times h_{k-1}^T."""
        return D * self.dphi[k]

    def vjp(self, k: int, D: Tensor, need_input: bool):
        G = self.recurrent_cotangent(k, D)
        return G @ self.W, (G @ self.W_ih if need_input else None)

    def jvp(self, k: int, Q: Tensor, Q_in: Tensor | None = None) -> Tensor:
        A = torch.matmul(self.W, Q)
        if Q_in is not None:
            A = A + torch.matmul(self.W_ih, Q_in)
        return self.dphi[k].unsqueeze(-1) * A


class GRULayer:
    """J_k = diag(z) + [diag(c_r), diag(c_z), diag(c_n r)] W_hh with
    c_n = (1 - z)(1 - n^2), c_z = (h_{k-1} - n) z (1 - z), c_r = c_n (W_hn h_{k-1} + b_hn) r (1 - r);
    the input map has c_n in place of c_n r (the candidate's input term is not reset by r)."""

    kind = "gru"

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
        self.work = _workspace(self.work, m, self.z.shape[0], (B, 3, N), D)
        G = self._gates(k, D, out=self.work[:m])
        D.mul_(self.z[k])
        D.view(-1, N).addmm_(G.view(-1, 3 * N), self.W)

    def recurrent_cotangent(self, k: int, D: Tensor) -> Tensor:
        """The cotangent of W_hh h_{k-1} (r, z, n blocks; the n block through r)."""
        return self._gates(k, D)

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


class LSTMLayer:
    """The (h, c) -> (h', c') Jacobian. With k_h = o (1 - tanh^2 c'), the gate factors
    c_i = g i (1 - i), c_f = c f (1 - f), c_g = i (1 - g^2), c_o = tanh(c') o (1 - o):

        dc' = f dc + [c_i, c_f, c_g, 0] W_hh dh,   dh' = k_h dc' + c_o W_ho dh,

    and the cotangent map, with dc'_tot = dc' + k_h dh' (the path through h' = o tanh c'):
    dc = f dc'_tot, dh = W_hh^T [c_i dc'_tot, c_f dc'_tot, c_g dc'_tot, c_o dh']."""

    kind = "lstm"

    def __init__(self, W_hh: Tensor, W_ih: Tensor, f: Tensor, k_h: Tensor, C: Tensor):
        self.W, self.W_ih, self.f, self.k_h, self.C = W_hh, W_ih, f, k_h, C
        self.hidden = W_hh.shape[1]
        self.size = 2 * self.hidden
        self.work: Tensor | None = None
        self.tmp: Tensor | None = None

    def vjp_(self, k: int, D: Tensor) -> None:
        m, (B, N) = D.shape[0], self.f.shape[1:]
        self.work = _workspace(self.work, m, self.f.shape[0], (B, 4, N), D)
        self.tmp = _workspace(self.tmp, m, self.f.shape[0], (B, N), D)
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


class MinimalLayer:
    """J_k = diag(u) + diag((h_{k-1} - z) u (1 - u)) W (Chen et al. 2018, eq. 8)."""

    kind = "minimal"

    def __init__(self, W: Tensor, u: Tensor, c_u: Tensor):
        self.W, self.u, self.c_u = W, u, c_u
        self.hidden = self.size = W.shape[0]
        self.work: Tensor | None = None

    def vjp_(self, k: int, D: Tensor) -> None:
        m, N = D.shape[0], self.size
        self.work = _workspace(self.work, m, self.u.shape[0], D.shape[1:], D)
        torch.mul(D, self.c_u[k], out=self.work[:m])
        D.mul_(self.u[k])
        D.view(-1, N).addmm_(self.work[:m].view(-1, N), self.W)

    def recurrent_cotangent(self, k: int, D: Tensor) -> Tensor:
        """The cotangent of W h_{k-1} in the gate's pre-activation."""
        return D * self.c_u[k]

    def vjp(self, k: int, D: Tensor, need_input: bool):
        if need_input:
            raise ValueError("a minimalRNN is measured as a single layer")
        return self.u[k] * D + self.recurrent_cotangent(k, D) @ self.W, None

    def jvp(self, k: int, Q: Tensor, Q_in: Tensor | None = None) -> Tensor:
        return self.u[k].unsqueeze(-1) * Q + self.c_u[k].unsqueeze(-1) * torch.matmul(self.W, Q)


class Stack:
    """The step Jacobians of a stack of layers, state s_k = (s^1_k, ..., s^L_k) concatenated.

    Layer l reads layer l-1's new h at the same step, so J_k is block lower-triangular through
    the input maps: the tangent map runs bottom-up, the cotangent map top-down, each layer adding
    its input cotangent to the h part of the layer below. ``parts`` names state slices reported
    on their own (the LSTM's c: every layer's c together).
    """

    def __init__(self, layers: list):
        self.layers = layers
        self.offsets, o = [], 0
        for layer in layers:
            self.offsets.append(o)
            o += layer.size
        self.state_size = o
        self.top = slice(self.offsets[-1], self.offsets[-1] + layers[-1].hidden)
        c_idx = [torch.arange(o + l.hidden, o + l.size) for o, l in zip(self.offsets, layers)
                 if l.kind == "lstm"]
        if len(c_idx) == 1:  # one contiguous block: a slice, whose norm needs no copy
            self.parts = {"c": slice(int(c_idx[0][0]), int(c_idx[0][-1]) + 1)}
        else:
            self.parts = {"c": torch.cat(c_idx)} if c_idx else {}

    def _slice(self, i):
        return slice(self.offsets[i], self.offsets[i] + self.layers[i].size)

    def vjp_(self, k: int, D: Tensor) -> None:
        """D (m, B, S) <- J_k^T D, in place."""
        if len(self.layers) == 1:
            self.layers[0].vjp_(k, D)
            return
        out, carry = torch.empty_like(D), None
        for i in range(len(self.layers) - 1, -1, -1):
            layer, sl = self.layers[i], self._slice(i)
            Dl = D[..., sl]
            if carry is not None:
                Dl = torch.cat([Dl[..., :layer.hidden] + carry, Dl[..., layer.hidden:]], -1)
            out[..., sl], carry = layer.vjp(k, Dl, need_input=i > 0)
        D.copy_(out)

    def jvp(self, k: int, Q: Tensor) -> Tensor:
        """J_k Q for Q (B, S, r)."""
        outs, below = [], None
        for i, layer in enumerate(self.layers):
            T_l = layer.jvp(k, Q[:, self._slice(i)], below)
            below = T_l[:, :layer.hidden]
            outs.append(T_l)
        return outs[0] if len(outs) == 1 else torch.cat(outs, 1)


# --------------------------------------------------------------------------------------------
# Forward passes that record the step Jacobians (no autograd graph; time-major inside)
# --------------------------------------------------------------------------------------------
def elman_layer_forward(W_ih, W_hh, b, inp: Tensor, h: Tensor, activation: str):
    """A plain Elman layer (a layer of ``torch.nn.RNN``) over inp (T, B, D) from h (B, N).

    Every layer forward returns its state sequences ((h,) or (h, c), each (T, B, N)) and a
    function that builds the layer's step Jacobians for a slice of steps."""
    drive = torch.matmul(inp, W_ih.T) + b
    hs = []
    for t in range(inp.shape[0]):
        h = phi(torch.addmm(drive[t], h, W_hh.T), activation)
        hs.append(h)
    hs = torch.stack(hs)
    return (hs,), lambda sl: ElmanLayer(W_hh, phi_prime_from_h(hs[sl], activation), W_ih)


def gru_layer_forward(W_ih, W_hh, b_ih, b_hh, inp: Tensor, h: Tensor):
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


def lstm_layer_forward(W_ih, W_hh, b_ih, b_hh, inp: Tensor, h: Tensor, c: Tensor):
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


def minimal_forward(p: MinimalParams, inp: Tensor, h: Tensor):
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


@dataclass
class StackTrajectory:
    """What the engine needs from a forward pass of a cell or a stack: the top layer's h (T, B, N)
    for the readout, the step Jacobians, and the state (B, S) entering measured step 0."""

    h_top: Tensor
    maps: Stack
    state_in: Tensor


def run_layers(layers: list, x: Tensor, state0: list, burn_in: int = 0) -> StackTrajectory:
    """Run a stack of layers over x (B, burn_in + T, D), recording the measured steps' Jacobians.

    ``layers``: per layer, ``(kind, weights)`` with kind ``elman-<activation>``, ``gru``, ``lstm``
    or ``minimal`` and weights as the forward functions above take them; ``state0``: per layer
    its initial state tensors ((h,) or (h, c) for LSTM), each (B, N).
    """
    inp = x.transpose(0, 1)
    sl = slice(burn_in, None)
    maps, entering = [], []
    for (kind, w), s0 in zip(layers, state0):
        if kind.startswith("elman-"):
            states, make = elman_layer_forward(*w, inp, *s0, kind.split("-", 1)[1])
        else:
            forward = {"gru": gru_layer_forward, "lstm": lstm_layer_forward,
                       "minimal": minimal_forward}[kind]
            states, make = forward(*w, inp, *s0)
        entering.append(torch.cat([st[burn_in - 1] for st in states], -1) if burn_in
                        else torch.cat(list(s0), -1))
        maps.append(make(sl))
        inp = states[0]
    return StackTrajectory(inp[sl], Stack(maps), torch.cat(entering, -1))


def cell_layers(p) -> list:
    """The ``run_layers`` description of a one-layer GatedParams or MinimalParams."""
    if isinstance(p, MinimalParams):
        return [("minimal", (p,))]
    return [(p.cell, (p.weight_ih, p.weight_hh, p.bias_ih, p.bias_hh))]
