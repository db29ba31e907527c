"""The Elman RNN of the tutorial, in its notation, and the tutorial's ``nn.RNN`` class.

    a_t = U x_t + W h_{t-1} + b,   h_t = phi(a_t),   o_t = V h_t + c,   y_t = softmax(o_t)
    L_t = 1/2 ||y_t - y*_t||^2     (the tutorial's loss; cross-entropy ``-log y_t[y*_t]`` optional)

Tensors are batch-major at the interface (``x``: (B, T, D)) and time-major inside (``h``:
(T, B, N)) so that one time step, or a run of them, is one contiguous slice.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

from ..checks import choice

# phi and phi'(a) written as a function of h = phi(a): the forward pass then needs no autograd
# graph, and these are the formulas torch's own backward uses (tanh: 1 - y^2, sigmoid: y (1 - y),
# relu: y > 0), so the fast path and autograd round the same way.
ACTIVATIONS = {
    "tanh": (torch.tanh, lambda h: 1 - h * h),
    "relu": (torch.relu, lambda h: (h > 0).to(h.dtype)),
    "sigmoid": (torch.sigmoid, lambda h: h * (1 - h)),
    "linear": (lambda a: a, torch.ones_like),
}
# gamma = sup |phi'| (Pascanu et al. 2013, section 3).
GAMMA = {"tanh": 1.0, "relu": 1.0, "sigmoid": 0.25, "linear": 1.0}
# mse: the tutorial's 1/2 ||softmax(o) - y*||^2; xent: -sum y* log softmax(o); mse_linear:
# 1/2 ||o - y*||^2 on the raw readout o = V h + c (regression tasks)
LOSSES = ("mse", "xent", "mse_linear")


@dataclass(frozen=True)
class ElmanParams:
    """Weights of one Elman RNN: U (N, D), W (N, N), b (N,), V (C, N), c (C,)."""

    U: Tensor
    W: Tensor
    b: Tensor
    V: Tensor
    c: Tensor
    activation: str = "tanh"
    cell = "elman"

    def __post_init__(self):
        choice("model.activation", self.activation, ACTIVATIONS)
        N = self.W.shape[0]
        shapes = {"U": (N, self.U.shape[1]), "W": (N, N), "b": (N,), "V": (self.V.shape[0], N),
                  "c": (self.V.shape[0],)}
        for name, shape in shapes.items():
            if tuple(getattr(self, name).shape) != shape:
                raise ValueError(f"{name} has shape {tuple(getattr(self, name).shape)}, "
                                 f"expected {shape} for N={N}")

    @property
    def hidden_size(self) -> int:
        return self.W.shape[0]

    def tensors(self) -> dict:
        return {k: getattr(self, k) for k in "UWbVc"}

    def to(self, device=None, dtype=None) -> ElmanParams:
        move = lambda t: t.to(device=device, dtype=dtype)
        return replace(self, U=move(self.U), W=move(self.W), b=move(self.b), V=move(self.V),
                       c=move(self.c))


def phi(a: Tensor, activation: str) -> Tensor:
    return ACTIVATIONS[activation][0](a)


def phi_prime_from_h(h: Tensor, activation: str) -> Tensor:
    """phi'(a_t) recovered from h_t = phi(a_t) (exact for the four activations)."""
    return ACTIVATIONS[activation][1](h)


def hidden_states(p: ElmanParams, x: Tensor, h0: Tensor) -> Tensor:
    """h_t for t = 0..T-1, time-major (T, B, N); x is (B, T, D), h0 (B, N) is h_{-1}.

    Differentiable: run it under ``torch.no_grad()`` for the fast path, with grad for autograd.
    """
    drive = torch.matmul(x, p.U.T) + p.b  # U x_t + b for every step in one GEMM
    hs, h = [], h0
    for t in range(x.shape[1]):
        h = phi(torch.addmm(drive[:, t], h, p.W.T), p.activation)
        hs.append(h)
    if not hs:
        return h0.new_zeros((0,) + tuple(h0.shape))
    return torch.stack(hs)


def outputs(p: ElmanParams, h: Tensor) -> Tensor:
    """y_t = softmax(V h_t + c) for h of any leading shape."""
    return torch.softmax(torch.matmul(h, p.V.T) + p.c, dim=-1)


def losses(y: Tensor, y_target: Tensor, loss: str = "mse") -> Tensor:
    """L_t per step and sample from the softmax output y: 1/2 ||y - y*||^2 (mse) or
    -sum y* log y (xent); for mse_linear pass the raw readout o as y: 1/2 ||o - y*||^2."""
    choice("model.loss", loss, LOSSES)
    if loss in ("mse", "mse_linear"):
        return 0.5 * ((y - y_target) ** 2).sum(-1)
    return -(y_target * torch.log(y)).sum(-1)


def readout_losses(p, h: Tensor, y_target: Tensor, loss: str = "mse") -> Tensor:
    """L_t of the readout o = V h + c (``p`` any object with V and c), or o = p(h) for a head
    module ``p`` (any callable acting on each step's state), per step and sample."""
    o = p(h) if callable(p) else torch.matmul(h, p.V.T) + p.c
    return losses(o if loss == "mse_linear" else torch.softmax(o, dim=-1), y_target, loss)


def loss_grad_h(p: ElmanParams, h: Tensor, y_target: Tensor, loss: str = "mse") -> Tensor:
    """g_t = dL_t/dh_t = V^T (diag(y) - y y^T)(y - y*) for mse, V^T (y - y*) for xent,
    V^T (o - y*) for mse_linear (docs/theory.md, "model"); h and y_target share their leading
    shape.
    """
    choice("model.loss", loss, LOSSES)
    if loss == "mse_linear":
        return torch.matmul(torch.matmul(h, p.V.T) + p.c - y_target, p.V)
    y = outputs(p, h)
    e = y - y_target
    if loss == "mse":
        # the softmax backward in torch's own order, y (e - y.e): this term cancels when y
        # saturates, and rounding it as autograd does keeps the two paths comparable
        do = y * (e - (y * e).sum(-1, keepdim=True))
    else:
        do = e
    return torch.matmul(do, p.V)


class ElmanRNN(nn.Module):
    """The tutorial's equations as an ``nn.Module`` with parameters named U, W, b, V, c."""

    def __init__(self, params: ElmanParams):
        super().__init__()
        self.activation = params.activation
        for name in "UWbVc":
            setattr(self, name, nn.Parameter(getattr(params, name).clone()))

    def params(self) -> ElmanParams:
        return ElmanParams(self.U, self.W, self.b, self.V, self.c, self.activation)

    def forward(self, x: Tensor, h0: Tensor | None = None):
        """x (B, T, D) -> (y (B, T, C), h (B, T, N))."""
        if h0 is None:
            h0 = x.new_zeros(x.shape[0], self.W.shape[0])
        h = hidden_states(self.params(), x, h0).transpose(0, 1)
        return outputs(self.params(), h), h


class RNN(nn.Module):
    """The tutorial's class, unchanged in spirit: ``nn.RNN`` followed by ``nn.Linear``.

    ``forward`` returns the logits o_t = V h_t + c flattened to (B*T, C) and the final hidden
    state, as in the tutorial; apply softmax for y_t. The fused ``nn.RNN`` hides the recurrence,
    so autograd's d L / d out[k] is the gradient at the layer output, not the total derivative
    through the recurrence: measure it with :func:`elman_from_tutorial` instead.
    """

    def __init__(self, input_size, output_size, hidden_dim, n_layers=1, nonlinearity="tanh",
                 batch_first=True):
        super().__init__()
        choice("nonlinearity", nonlinearity, ("tanh", "relu"))
        self.hidden_dim = hidden_dim
        self.batch_first = batch_first
        self.rnn = nn.RNN(input_size, hidden_dim, n_layers, nonlinearity=nonlinearity,
                          batch_first=batch_first)
        self.fc = nn.Linear(hidden_dim, output_size)

    def forward(self, x, hidden=None):
        r_out, hidden = self.rnn(x, hidden)
        if not self.batch_first:
            r_out = r_out.transpose(0, 1)
        output = self.fc(r_out.reshape(-1, self.hidden_dim))
        return output, hidden


def elman_from_tutorial(model: RNN) -> ElmanParams:
    """The unrolled (U, W, b, V, c) of a one-layer tutorial ``RNN``: b = b_ih + b_hh."""
    rnn = model.rnn
    if rnn.num_layers != 1:
        raise ValueError(f"n_layers={rnn.num_layers}: only a one-layer RNN has the Elman form "
                         "h_t = phi(U x_t + W h_{t-1} + b); allowed: n_layers=1")
    b = rnn.bias_ih_l0 + rnn.bias_hh_l0 if rnn.bias else torch.zeros_like(rnn.weight_hh_l0[0])
    return ElmanParams(U=rnn.weight_ih_l0.detach().clone(), W=rnn.weight_hh_l0.detach().clone(),
                       b=b.detach().clone(), V=model.fc.weight.detach().clone(),
                       c=model.fc.bias.detach().clone(), activation=rnn.nonlinearity)
