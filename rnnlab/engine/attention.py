"""Causal softmax self-attention, one head: the contrast to a recurrence for the gradient through
the inputs (Vaswani et al. 2017, "Attention is all you need", with the decoder's causal mask).

For x (B, T, D), batch first,

    q_t = W_Q x_t,  k_j = W_K x_j,  v_j = W_V x_j,
    a_{t,j} = softmax_{j <= t}(q_t . k_j / sqrt(d_k)),   (a_{t,j} = 0 for j > t)
    y_t = W_O sum_{j <= t} a_{t,j} v_j                  (W_O = identity without a projection),

so y (B, T, C). No positional encoding by default: the layer then sees its inputs as a set
(``positional=True`` adds the sinusoidal encoding of Vaswani et al. to x first). The exact row:
with W_Q = 0 every score is 0 and every weight a_{t,j} = 1 / (t + 1), so

    dy_t/dx_k = W_O W_V / (t + 1)   for every k <= t

(the scores' derivative through the keys is multiplied by q_t = 0): flat in the lag t - k,
where a recurrence's ||dy_t/dx_k|| goes as exp(rate (t - k)).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

NAME = "attention"  # model.cell=attention (model=attention) in the measurement app


def sinusoidal(T: int, D: int, dtype=torch.float64, device=None) -> Tensor:
    """The (T, D) sinusoidal positional encoding: pe[t, 2i] = sin(t / 10000^(2i/D)),
    pe[t, 2i+1] = cos(t / 10000^(2i/D))."""
    t = torch.arange(T, dtype=dtype, device=device)[:, None]
    i = torch.arange(D, device=device)
    angle = t / 10000 ** ((i - i % 2).to(dtype) / D)
    return torch.where(i % 2 == 0, torch.sin(angle), torch.cos(angle))


class CausalSelfAttention(nn.Module):
    """One head of causal softmax self-attention, (B, T, D) -> (B, T, C), batch first.

    ``key_size`` d_k (default D) is the size of q and k; the values have size C without an
    output projection, or ``value_size`` (default C) with one (``projection=True``: W_O, C x
    value_size). The weights are drawn N(0, 1 / fan_in) from torch's generator (or
    ``generator``); the parameters ``W_Q``, ``W_K``, ``W_V`` (and ``W_O``) can be set directly
    (``layer.W_Q.data.zero_()`` for the uniform-weight case).
    """

    def __init__(self, input_size: int, output_size: int, key_size: int | None = None,
                 value_size: int | None = None, projection: bool = False,
                 positional: bool = False, dtype=torch.float64, device=None,
                 generator: torch.Generator | None = None):
        super().__init__()
        for name, v in (("input_size", input_size), ("output_size", output_size),
                        ("key_size", key_size), ("value_size", value_size)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValueError(f"{name}={v!r} is not allowed; it must be an integer >= 1")
        if value_size is not None and not projection:
            raise ValueError(f"value_size={value_size} needs projection=True; without an output "
                             f"projection the values have the output's size {output_size}")
        D, C = input_size, output_size
        d_k = D if key_size is None else key_size
        d_v = (C if value_size is None else value_size) if projection else C
        self.input_size, self.output_size, self.key_size = D, C, d_k
        self.positional = positional

        def draw(rows, cols):
            w = torch.randn(rows, cols, dtype=dtype, device=device, generator=generator)
            return nn.Parameter(w / math.sqrt(cols))

        self.W_Q, self.W_K, self.W_V = draw(d_k, D), draw(d_k, D), draw(d_v, D)
        self.W_O = draw(C, d_v) if projection else None

    def encode(self, x: Tensor) -> Tensor:
        """x with the positional encoding added (x itself without one)."""
        if not self.positional:
            return x
        return x + sinusoidal(x.shape[1], x.shape[2], x.dtype, x.device)

    def _weights(self, x: Tensor) -> Tensor:
        q, k = x @ self.W_Q.T, x @ self.W_K.T
        scores = q @ k.transpose(1, 2) / math.sqrt(self.key_size)
        T = x.shape[1]
        future = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
        # -inf gives an exact 0 weight and an exact 0 derivative for every j > t
        return torch.softmax(scores.masked_fill(future, -math.inf), dim=-1)

    def _check(self, x: Tensor) -> None:
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ValueError(f"x has shape {tuple(x.shape)}; this layer takes (B, T, "
                             f"{self.input_size}), batch first")

    def weights(self, x: Tensor) -> Tensor:
        """The attention weights a_{t,j} (B, T, T), zero above the diagonal."""
        self._check(x)
        return self._weights(self.encode(x))

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        x = self.encode(x)
        y = self._weights(x) @ (x @ self.W_V.T)
        return y if self.W_O is None else y @ self.W_O.T
