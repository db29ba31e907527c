"""The tutorial's Elman RNN as a cell: h_t = phi(U x_t + W h_{t-1} + b) (``rnnlab.engine.model``).

Step Jacobian J_k = diag(phi'(a_k)) W (Pascanu et al. 2013, eq. 5), phi' recovered from h.
Unbounded, positively homogeneous activations (relu, linear) run their forward pass in log scale,
h_t = exp(s_t) u_t with ||u_t|| kept in [e^-30, e^30], which is exact because
relu(c a) = c relu(a) for c > 0: states beyond float64's range keep exact, finite ratios.
Initial weights: W by ``rnnlab.engine.init.recurrent_matrix``, U_ij ~ N(0, sigma_u^2 / D),
b_i ~ N(0, sigma_b^2), drawn in that order. Theory: the mean-field rate 1/2 log chi, ln rho(W)
and Pascanu's bound ln(gamma sigma_max(W)) (``rnnlab.theory``).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ... import theory as th
from ..init import recurrent_matrix, spectral_radius
from ..logspace import RESCALE, rescale, unit
from ..model import ACTIVATIONS, ElmanParams, hidden_states, phi, phi_prime_from_h
from . import Cell, register
from .stack import Recorded, Stack, workspace

HOMOGENEOUS = ("relu", "linear")


class ElmanLayer:
    """J_k = diag(phi'(a_k)) W (Pascanu et al. 2013, eq. 5); the input map diag(phi') W_ih."""

    parts = ("h",)

    def __init__(self, W: Tensor, dphi: Tensor, W_ih: Tensor | None = None):
        self.W, self.dphi, self.W_ih = W, dphi, W_ih
        self.hidden = self.size = N = W.shape[0]
        self.work: Tensor | None = None
        # the sweep's GEMM reads W as the transpose of a contiguous W^T: MKL's float64 kernels
        # for that layout ran 4% (N = 64) to 16% (N = 256) faster on a 2-core AMD EPYC, but 13%
        # slower at N = 32 and no faster in float32 (benchmarks/bench_gradients.py); the values
        # are W's, the sums' rounding that of another kernel
        fast = W.device.type == "cpu" and W.dtype == torch.float64 and N >= 64
        self.W_gemm = W.T.contiguous().T if fast else W

    def vjp_(self, k: int, D: Tensor) -> None:
        m, N = D.shape[0], self.size
        self.work = workspace(self.work, m, self.dphi.shape[0], D.shape[1:], D)
        torch.mul(D, self.dphi[k], out=self.work[:m])
        torch.mm(self.work[:m].view(-1, N), self.W_gemm, out=D.view(-1, N))

    def recurrent_cotangent(self, k: int, D: Tensor) -> Tensor:
        """dL/da_k, the cotangent of W h_{k-1}: dL/dW = sum over pairs of it times h_{k-1}^T."""
        return D * self.dphi[k]

    def recurrent_tangent(self, k: int, A: Tensor) -> Tensor:
        """The state's tangent for a tangent A (B, N, r) of W h_{k-1}: phi'(a_k) A."""
        return self.dphi[k].unsqueeze(-1) * A

    def vjp(self, k: int, D: Tensor, need_input: bool):
        G = self.recurrent_cotangent(k, D)
        return G @ self.W, (G @ self.W_ih if need_input else None)

    def jvp(self, k: int, Q: Tensor, Q_in: Tensor | None = None) -> Tensor:
        A = torch.matmul(self.W, Q)
        if Q_in is not None:
            A = A + torch.matmul(self.W_ih, Q_in)
        return self.dphi[k].unsqueeze(-1) * A


def layer_forward(W_ih, W_hh, b, activation: str, inp: Tensor, h: Tensor):
    """A plain Elman layer (a layer of ``torch.nn.RNN``) over inp (T, B, D) from h (B, N)."""
    drive = torch.matmul(inp, W_ih.T) + b
    hs = []
    for t in range(inp.shape[0]):
        h = phi(torch.addmm(drive[t], h, W_hh.T), activation)
        hs.append(h)
    hs = torch.stack(hs)
    return (hs,), lambda sl: ElmanLayer(W_hh, phi_prime_from_h(hs[sl], activation), W_ih)


def scaled_states(p: ElmanParams, drive: Tensor, h0: Tensor) -> tuple[Tensor, Tensor]:
    """Homogeneous forward h_t = exp(s_t) u_t: u (T, B, N), s (T, B) float64.

    While ||h|| stays in [e^-30, e^30] the scale is exactly 0 and the arithmetic is the plain
    recurrence's, bit for bit; outside, a_t = exp(s_new) (exp(s - s_new) W u + exp(-s_new) d_t),
    exact by homogeneity, where s_new only leaves s when the state is negligible beside the drive.
    """
    u, s = rescale(h0, torch.zeros(h0.shape[0], dtype=torch.float64, device=h0.device))
    d_dir, d_log = unit(drive)  # (B, T, N), (B, T)
    us, ss = [], []
    for t in range(drive.shape[1]):
        # the state's scale, unless the state is below e^-30 of the drive: then the drive's
        s_new = torch.where(s >= d_log[:, t] - RESCALE, s, d_log[:, t])
        # exp(d_log - s_new) <= e^30, finite in float32; at s_new = 0 the drive enters as is
        d_term = torch.where((s_new == 0).unsqueeze(-1), drive[:, t],
                             torch.exp(d_log[:, t] - s_new).to(u.dtype).unsqueeze(-1)
                             * d_dir[:, t])
        a = torch.exp(s - s_new).to(u.dtype).unsqueeze(-1) * (u @ p.W.T) + d_term
        u, s = rescale(phi(a, p.activation), s_new)
        us.append(u)
        ss.append(s)
    return torch.stack(us), torch.stack(ss)


def record(p: ElmanParams, x: Tensor, h0: Tensor, burn_in: int = 0) -> Recorded:
    """The forward pass of rnnlab's own Elman networks: x (B, burn_in + T, D), h0 (B, N); relu
    and linear in log scale (``scaled_states``)."""
    if p.activation in HOMOGENEOUS:
        u_all, s_all = scaled_states(p, torch.matmul(x, p.U.T) + p.b, h0)
    else:
        u_all = hidden_states(p, x, h0)
        s_all = torch.zeros(u_all.shape[:2], dtype=torch.float64, device=u_all.device)
    if burn_in:
        h_in = torch.exp(s_all[burn_in - 1]).unsqueeze(-1) * u_all[burn_in - 1].double()
    else:
        h_in = h0.double()
    u, s = u_all[burn_in:], s_all[burn_in:]
    return Recorded(u, s, Stack([ElmanLayer(p.W, phi_prime_from_h(u, p.activation))]), h_in)


def draw(model, T: int, g: torch.Generator) -> dict:
    """W, U, b in float64 from ``g``, in that order (the module docstring)."""
    N, D = model.hidden_size, model.input_size
    W = recurrent_matrix(N, model.init, model.spectral_radius, model.gain, g)
    U = torch.randn(N, D, generator=g, dtype=torch.float64) * (model.input_gain / math.sqrt(D))
    b = torch.randn(N, generator=g, dtype=torch.float64) * model.bias_std
    return dict(U=U, W=W, b=b, activation=model.activation)


def theory(p: ElmanParams, model, data) -> dict:
    """What theory says for this network (docs/theory.md), rates in nats per step.

    sigma_w is the network's own entry scale, sqrt(||W||_F^2 / N) (= rho for W = rho Q, ~ gain
    for Gaussian W); s2 = (input_gain input_std)^2 + bias_std^2 is the per-unit variance of the
    drive. ``mean_field_rate`` = 1/2 log chi assumes a full-rank drive (input_size >= hidden_size)
    and large N; ``log_rho`` = ln rho(W) is the exact rate of a linear RNN with normal W;
    ``pascanu_log_eta`` = ln(gamma sigma_max(W)) bounds every rate from above.
    """
    W = p.W
    sigma_w = float(torch.linalg.matrix_norm(W).item() / math.sqrt(W.shape[0]))
    s2 = (model.input_gain * data.input_std) ** 2 + model.bias_std ** 2
    out = {"sigma_w": sigma_w, "s2": s2, "log_rho": math.log(spectral_radius(W)),
           "pascanu_log_eta": math.log(th.pascanu_eta(W, model.activation))}
    try:
        out["mean_field_chi"] = th.chi(model.activation, sigma_w, s2)
        out["mean_field_rate"] = 0.5 * math.log(out["mean_field_chi"])
    except (ValueError, ArithmeticError):  # no finite fixed point (e.g. exploding relu q*)
        out["mean_field_chi"] = out["mean_field_rate"] = math.nan
    return out


def reference_step(p: ElmanParams):
    """The tutorial's step, differentiable, for the autograd reference."""
    return lambda x_t, s: (phi(x_t @ p.U.T + p.b + s[0] @ p.W.T, p.activation),)


def module_layer(rnn: nn.RNN, l: int, b_ih: Tensor, b_hh: Tensor) -> tuple:
    """``layer_forward``'s weights of layer ``l`` of a ``torch.nn.RNN``: b = b_ih + b_hh."""
    return (getattr(rnn, f"weight_ih_l{l}").detach(), getattr(rnn, f"weight_hh_l{l}").detach(),
            b_ih + b_hh, rnn.nonlinearity)


class ElmanSteps:
    """The trainable Elman cell's step on ``torch.nn.RNN``'s one-layer parameter names:
    h_t = phi(W_ih x_t + b_ih + b_hh + W_hh h_{t-1}), state (h,), h_{-1} = 0."""

    def init_state(self, batch_size: int) -> tuple[Tensor]:
        return (self.weight_hh_l0.new_zeros(batch_size, self.hidden_size),)

    def step(self, x_t: Tensor, state: tuple[Tensor]) -> tuple[Tensor]:
        drive = x_t @ self.weight_ih_l0.T + self.bias_ih_l0 + self.bias_hh_l0
        return (phi(torch.addmm(drive, state[0], self.weight_hh_l0.T), self.activation),)

    def unroll(self, x: Tensor, state0: tuple[Tensor] | None = None) -> list[tuple[Tensor]]:
        """The states (h_t,) for t = 0..T-1 over x (B, T, D), each the tensor the next step
        reads: ``step`` with the input drive of every step in one GEMM."""
        drive = x @ self.weight_ih_l0.T + self.bias_ih_l0 + self.bias_hh_l0
        h = self.init_state(x.shape[0])[0] if state0 is None else state0[0]
        out = []
        for t in range(x.shape[1]):
            h = phi(torch.addmm(drive[:, t], h, self.weight_hh_l0.T), self.activation)
            out.append((h,))
        return out

    def jacobian_factors(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """(d, W) with the step Jacobian J_t = diag(d_t) W at the states h_t (any leading
        shape): d = phi'(a_t) recovered from h_t, W = W_hh (Pascanu et al. 2013, eq. 5)."""
        return phi_prime_from_h(h, self.activation), self.weight_hh_l0

    def engine_params(self, head: nn.Linear) -> ElmanParams:
        """The engine's ``ElmanParams`` of these weights (b = b_ih + b_hh) with ``head``'s
        readout, detached, in the module's dtype."""
        b = self.bias_ih_l0.detach() + self.bias_hh_l0.detach()
        return ElmanParams(self.weight_ih_l0.detach(), self.weight_hh_l0.detach(), b,
                           head.weight.detach(), head.bias.detach(), self.activation)

    def set_recurrent(self, W: Tensor) -> None:
        """W_hh = W (``model.init``'s matrix) and every bias zero."""
        with torch.no_grad():
            self.weight_hh_l0.copy_(W)
            self.bias_ih_l0.zero_()
            self.bias_hh_l0.zero_()


class ElmanModule(ElmanSteps, nn.RNN):
    """``torch.nn.RNN`` (tanh or relu, one layer, batch first) with the cell's ``step``: the
    fused ``forward`` is the sequence fast path and the state_dict is ``nn.RNN``'s, so a saved
    model loads into a plain ``torch.nn.RNN``."""

    fused = True

    def __init__(self, input_size: int, hidden_size: int, nonlinearity: str = "tanh",
                 batch_first: bool = True, **kwargs):
        super().__init__(input_size, hidden_size, nonlinearity=nonlinearity,
                         batch_first=batch_first, **kwargs)

    @property
    def activation(self) -> str:
        return self.nonlinearity


class SigmoidRNN(ElmanSteps, nn.Module):
    """h_t = sigmoid(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh) (Pascanu et al. 2013's logistic
    units, which ``nn.RNN`` does not offer), with ``nn.RNN``'s parameter names, default init and
    batch-first interface: ``forward(x, h0=None) -> (out (B, T, N), h_n)``."""

    fused = True
    activation = "sigmoid"

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        N, D = hidden_size, input_size
        self.weight_ih_l0 = nn.Parameter(torch.empty(N, D))
        self.weight_hh_l0 = nn.Parameter(torch.empty(N, N))
        self.bias_ih_l0 = nn.Parameter(torch.empty(N))
        self.bias_hh_l0 = nn.Parameter(torch.empty(N))
        for p in self.parameters():
            nn.init.uniform_(p, -1 / math.sqrt(N), 1 / math.sqrt(N))

    def forward(self, x: Tensor, h0: Tensor | None = None):
        hs = [s[0] for s in self.unroll(x, None if h0 is None else (h0[0],))]
        return torch.stack(hs, 1), hs[-1].unsqueeze(0)


def module(input_size: int, hidden_size: int, model: dict, dtype=None) -> nn.Module:
    """The trainable Elman cell with torch's default init from the global RNG: ``nn.RNN``'s
    own draw (``ElmanModule``), or ``SigmoidRNN`` for ``activation='sigmoid'``; then cast to
    ``dtype``."""
    activation = model.get("activation", "tanh")
    rnn = SigmoidRNN(input_size, hidden_size) if activation == "sigmoid" else \
        ElmanModule(input_size, hidden_size, nonlinearity=activation)
    return rnn if dtype is None else rnn.to(dtype)


CELL = register(Cell(
    name="elman", params=ElmanParams, layer_forward=layer_forward,
    layer_weights=lambda p: (p.U, p.W, p.b, p.activation), draw=draw,
    activations=tuple(ACTIVATIONS), record=record, theory=theory, reference_step=reference_step,
    torch_module=nn.RNN, module_layer=module_layer, module=module, square_w=True,
    paper="the tutorial's Elman RNN; Pascanu, Mikolov, Bengio 2013 (arXiv:1211.5063)"))
