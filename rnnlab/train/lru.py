"""One linear recurrent unit layer for training (``arch=lru``; Orvieto et al. 2023, "Resurrecting
recurrent neural networks for long sequences", arXiv:2303.06349, eqs. 3-7 and their appendix
code):

    h_t = lambda * h_{t-1} + gamma * (B x_t),      h_{-1} = 0, h complex (N units)
    lambda_j = exp(-exp(nu_j) + i exp(theta_j)),   gamma_j = exp(gamma_log_j)
    y_t = Re(C h_t) + D x_t                        (C: H x N complex, D: H x D real)
    out_t = GELU(W y_t + b)                        (the MLP, H -> H; H = N)

and the task's ``nn.Linear`` head on ``out_t`` where the task reads it (``rnnlab.train.loop``):
the paper's block (LRU, then the readout Re(C h) + D x, then a position-wise MLP), one layer, no
residual or normalisation layer. Trained parameters: nu, theta, gamma_log, B_re, B_im, C_re,
C_im, D and the MLP's W, b; the exponential parametrisation keeps |lambda| < 1 for every nu.

Init, drawn by the engine's ``rnnlab.engine.cells.lru.draw`` (one source for the ring init):
|lambda|^2 ~ U[r_min^2, r_max^2] (uniform in area on the ring), phase ~ U[0, max_phase]; gamma =
sqrt(1 - |lambda|^2) with ``normalize`` (then trained as ln gamma, the paper's ``gamma_log``),
else gamma = 1 and not trained; B's real and imaginary parts N(0, 1/(2D)); C's N(0, 1/N) each;
D N(0, 1/D). arch=lru: r_min = 0.9, r_max = 0.999, max_phase = 2 pi, normalize on (the engine's
defaults; the paper's r_min, r_max for its long-range tasks). The MLP and the head keep torch's
default init.

The forward pass evaluates the recurrence in closed form, h_t = sum_{k<=t} lambda^(t-k) gamma B
x_k, as one (T, T, N) table of powers lambda^(t-k) = exp((t-k) ln lambda) times the inputs: exact
for h_{-1} = 0, differentiable, and far faster on a CPU than T small steps; a test checks it
against the engine's step-by-step ``states``.

model.pt holds this module's ``state_dict`` under ``rnn`` (the names above, ``mlp.weight``,
``mlp.bias``) with the ring keys in ``config``; ``rnnlab.train.loop.load_model`` rebuilds it, or
by hand: ``LRUBlock(D, N, **{k: config[k] for k in LRU_KEYS})`` then ``load_state_dict``.
"""
from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import Tensor, nn

from ..engine.cells import lru as lru_cell

LRU_KEYS = tuple(lru_cell.DEFAULTS)  # r_min, r_max, max_phase, normalize


class LRUBlock(nn.Module):
    """The LRU layer, its readout and the MLP (module docstring), batch first:
    ``forward(x (B, T, D)) -> (out (B, T, N), s_last (1, B, 2N))`` as ``torch.nn.RNN`` returns
    (output, h_n), with s = (Re h, Im h) the engine's measured state."""

    def __init__(self, input_size: int, hidden_size: int, r_min: float, r_max: float,
                 max_phase: float, normalize: bool, dtype: torch.dtype | None = None):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.r_min, self.r_max, self.max_phase = r_min, r_max, max_phase
        self.normalize = normalize
        N = hidden_size
        # the engine's ring draw, from a generator seeded by torch's global RNG (the caller seeds
        # it, as for every torch.nn module), in float64 and cast once to ``dtype`` (default:
        # torch's), so a float64 model keeps every digit of the draw
        g = torch.Generator().manual_seed(int(torch.randint(0, 2 ** 62, (1,)).item()))
        model = SimpleNamespace(hidden_size=N, input_size=input_size, output_size=N,
                                r_min=r_min, r_max=r_max, max_phase=max_phase,
                                normalize=normalize, input_gain=1.0)
        w = lru_cell.draw(model, 0, g)
        f32 = dtype or torch.get_default_dtype()
        for name in ("nu", "theta", "B_re", "B_im", "C_re", "C_im", "D"):
            setattr(self, name, nn.Parameter(w[name].to(f32)))
        gamma_log = torch.log(w["gamma"]).to(f32)
        if normalize:
            self.gamma_log = nn.Parameter(gamma_log)
        else:  # gamma = 1 fixed: the unnormalised LRU of the paper's ablation
            self.register_buffer("gamma_log", gamma_log)
        self.mlp = nn.Linear(N, N, dtype=f32)

    @property
    def log_lambda(self) -> Tensor:
        """ln lambda = -exp(nu) + i exp(theta), (N,) complex."""
        return torch.complex(-torch.exp(self.nu), torch.exp(self.theta))

    @property
    def gamma(self) -> Tensor:
        return torch.exp(self.gamma_log)

    def states(self, x: Tensor) -> Tensor:
        """s_t = (Re h_t, Im h_t), (B, T, 2N), from x (B, T, D) with h_{-1} = 0."""
        T = x.shape[1]
        u = torch.complex(x @ self.B_re.T, x @ self.B_im.T) * self.gamma  # gamma B x_t
        lag = torch.arange(T, device=x.device)
        lag = lag[:, None] - lag[None, :]  # t - k
        causal = (lag >= 0).unsqueeze(-1)
        # lambda^(t-k) for k <= t, 0 above the diagonal (the clamp keeps exp finite there)
        powers = torch.exp(lag.clamp(min=0).unsqueeze(-1).to(self.nu.dtype) * self.log_lambda)
        powers = torch.where(causal, powers, torch.zeros((), dtype=powers.dtype))
        h = torch.einsum("tkn,bkn->btn", powers, u)
        return torch.cat([h.real, h.imag], -1)

    def features(self, s: Tensor, x: Tensor) -> Tensor:
        """out = GELU(W y + b) with y = Re(C h) + D x = C_re Re h - C_im Im h + D x, for states
        s (..., 2N) and inputs x (..., D) of the same steps."""
        N = self.hidden_size
        y = s[..., :N] @ self.C_re.T - s[..., N:] @ self.C_im.T + x @ self.D.T
        return nn.functional.gelu(self.mlp(y))

    def forward(self, x: Tensor, h0: Tensor | None = None):
        if h0 is not None:
            raise ValueError("LRUBlock starts from h = 0 (its closed form needs it)")
        s = self.states(x)
        return self.features(s, x), s[:, -1].unsqueeze(0)

    def engine_params(self) -> lru_cell.LRUParams:
        """The engine's ``LRUParams`` of the recurrence (float64 copies; C and D are the
        readout's, so V = [C_re, -C_im] is the engine's linear readout before the MLP)."""
        t = {k: getattr(self, k).detach().double().clone()
             for k in ("nu", "theta", "B_re", "B_im", "C_re", "C_im", "D")}
        return lru_cell.LRUParams(gamma=self.gamma.detach().double().clone(),
                                  normalize=bool(self.normalize), **t)

    def extra_repr(self) -> str:
        return (f"{self.input_size}, {self.hidden_size}, r_min={self.r_min}, "
                f"r_max={self.r_max}, max_phase={self.max_phase:.4g}, "
                f"normalize={self.normalize}")
