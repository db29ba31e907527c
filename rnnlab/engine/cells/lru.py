"""The linear recurrent unit (Orvieto et al. 2023, arXiv:2303.06349, eqs. 3-7):

    h_t = lambda * h_{t-1} + gamma * (B x_t),   y_t = Re(C h_t) + D x_t,
    lambda_j = exp(-exp(nu_j) + i exp(theta_j)),   gamma_j = sqrt(1 - |lambda_j|^2) (normalised)

with h complex (N units), measured as the real 2N-vector s = (Re h, Im h). The recurrence is one
real 2 x 2 block per unit, a rotation by the phase exp(theta_j) scaled by |lambda_j|:

    J = [[diag(Re lambda), -diag(Im lambda)], [diag(Im lambda), diag(Re lambda)]]

the same at every step, so ||dL_t/ds_k|| = ||J^(t-k)T g_t|| and with every |lambda_j| = r each
ratio is exactly r^(t-k) (J / r is orthogonal). The readout in the run's loss is o_t = V s_t +
D x_t with V = [Re C, -Im C] (Re(C h) = Re C Re h - Im C Im h) and no bias (c = 0); D x_t moves
g_t = dL_t/ds_t but no step Jacobian (``Recorded.offset``).

Initial weights (the paper's ring init, section 3.3 and its appendix code), from the run's
generator in this order: |lambda_j|^2 ~ U[r_min^2, r_max^2] (uniform in area on the ring),
phase_j ~ U[0, max_phase]; nu_j = ln(-ln |lambda_j|), theta_j = ln phase_j (-inf at phase 0,
exp(-inf) = 0); gamma_j = sqrt(1 - |lambda_j|^2) with ``model.normalize`` else 1 (with
``model.gamma=param``, the default, gamma is then a parameter of its own, not differentiated when
lambda moves: Orvieto et al.'s LRU and Zucchet & Orvieto's code; ``tied`` differentiates
gamma = sqrt(1 - |lambda|^2) through |lambda|: their code's ``L2``); B's real and
imaginary parts ~ N(0, sigma_u^2 / (2D)) (sigma_u = ``model.input_gain``, 1 in the paper); C's
~ N(0, 1/N) each; D ~ N(0, 1/D) (the paper's D is a diagonal ~ N(0, 1) for input size = output
size; here it is a C x D matrix at the scale of a Glorot-style readout).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from types import SimpleNamespace

import torch
from torch import Tensor, nn

from ...checks import ConfigError, choice, flag, number
from . import Cell, register
from .stack import Recorded, Stack

# the model.* keys only the LRU takes, and their defaults (conf/model/lru.yaml holds the same)
DEFAULTS = {"r_min": 0.9, "r_max": 0.999, "max_phase": 2 * math.pi, "normalize": True,
            "gamma": "param"}
# model.gamma: gamma its own parameter (param), or sqrt(1 - |lambda|^2) differentiated through
# |lambda| (tied); what the sensitivity differentiates and, in training, what is trained
GAMMAS = ("param", "tied")
TENSORS = ("nu", "theta", "gamma", "B_re", "B_im", "C_re", "C_im", "D")


@dataclass(frozen=True)
class LRUParams:
    """An LRU layer: nu, theta, gamma (N,); B_re, B_im (N, D); C_re, C_im (C, N); D (C, D).

    ``V`` (C, 2N) and ``c`` (C,) are the readout of the measured state (Re h, Im h) as every
    cell has it: V = [C_re, -C_im], c = 0."""

    nu: Tensor
    theta: Tensor
    gamma: Tensor
    B_re: Tensor
    B_im: Tensor
    C_re: Tensor
    C_im: Tensor
    D: Tensor
    normalize: bool = True  # gamma = sqrt(1 - |lambda|^2) at the draw (else 1)
    tied: bool = False  # model.gamma=tied: gamma a function of |lambda| (the sensitivity's d/dr)
    cell = "lru"

    @property
    def hidden_size(self) -> int:
        return self.nu.shape[0]

    @property
    def modulus(self) -> Tensor:
        """|lambda| = exp(-exp(nu))."""
        return torch.exp(-torch.exp(self.nu))

    @property
    def lam(self) -> tuple[Tensor, Tensor]:
        """(Re lambda, Im lambda), each (N,)."""
        r, phase = self.modulus, torch.exp(self.theta)
        return r * torch.cos(phase), r * torch.sin(phase)

    @property
    def V(self) -> Tensor:
        return torch.cat([self.C_re, -self.C_im], 1)

    @property
    def c(self) -> Tensor:
        return self.C_re.new_zeros(self.C_re.shape[0])

    def tensors(self) -> dict:
        return {k: getattr(self, k) for k in TENSORS}

    def to(self, device=None, dtype=None) -> LRUParams:
        return replace(self, **{k: v.to(device=device, dtype=dtype)
                                for k, v in self.tensors().items()})


class LRULayer:
    """J = [[diag(a), -diag(b)], [diag(b), diag(a)]] with a + i b = lambda, every step; the
    state (B, 2N) is (Re h, Im h)."""

    parts = ("h",)

    def __init__(self, lam_re: Tensor, lam_im: Tensor):
        self.a, self.b = lam_re, lam_im
        self.n = lam_re.shape[0]
        self.hidden = self.size = 2 * self.n

    def vjp_(self, k: int, D: Tensor) -> None:
        """J^T D = (a D_re + b D_im, a D_im - b D_re), in place."""
        re, im = D[..., :self.n], D[..., self.n:]
        old_re = re.clone()
        re.mul_(self.a).addcmul_(im, self.b)
        im.mul_(self.a).addcmul_(old_re, self.b, value=-1)

    def vjp(self, k: int, D: Tensor, need_input: bool):
        if need_input:
            raise ValueError("an LRU is measured as a single layer")
        out = D.clone()
        self.vjp_(k, out)
        return out, None

    def jvp(self, k: int, Q: Tensor, Q_in: Tensor | None = None) -> Tensor:
        """J Q for Q (B, 2N, r): (a Q_re - b Q_im, b Q_re + a Q_im)."""
        a, b = self.a.unsqueeze(-1), self.b.unsqueeze(-1)
        re, im = Q[:, :self.n], Q[:, self.n:]
        return torch.cat([a * re - b * im, b * re + a * im], 1)


def states(p: LRUParams, x: Tensor, h0: Tensor) -> Tensor:
    """s_t = (Re h_t, Im h_t) for t = 0..T-1, (T, B, 2N), from x (B, T, D) and h0 (B, 2N)."""
    N = p.hidden_size
    a, b = p.lam
    u_re = torch.matmul(x, p.B_re.T).transpose(0, 1) * p.gamma  # gamma Re(B x_t), (T, B, N)
    u_im = torch.matmul(x, p.B_im.T).transpose(0, 1) * p.gamma
    re, im = h0[:, :N], h0[:, N:]
    out = []
    for t in range(x.shape[1]):
        re, im = a * re - b * im + u_re[t], b * re + a * im + u_im[t]
        out.append(torch.cat([re, im], -1))
    return torch.stack(out) if out else h0.new_zeros((0,) + tuple(h0.shape))


def readout_offset(p: LRUParams, x: Tensor) -> Tensor:
    """D x_t for x (B, T, D): (B, T, C)."""
    return torch.matmul(x, p.D.T)


def record(p: LRUParams, x: Tensor, h0: Tensor, burn_in: int = 0) -> Recorded:
    """The forward pass over x (B, burn_in + T, D) from h0 (B, 2N)."""
    s = states(p, x, h0)
    state_in = s[burn_in - 1] if burn_in else h0
    u = s[burn_in:]
    offset = readout_offset(p, x[:, burn_in:]).transpose(0, 1)
    return Recorded(u, torch.zeros(u.shape[:2], dtype=torch.float64, device=u.device),
                    Stack([LRULayer(*p.lam)]), state_in.double(), offset)


def layer_forward(p: LRUParams, inp: Tensor, h: Tensor):
    """One LRU layer over inp (T, B, D) from h (B, 2N) (the seam's generic form)."""
    s = states(p, inp.transpose(0, 1), h)
    return (s,), lambda sl: LRULayer(*p.lam)


def draw(model, T: int, g: torch.Generator) -> dict:
    """Every tensor of ``LRUParams`` in float64 from ``g``, in the module docstring's order."""
    N, D, C = model.hidden_size, model.input_size, model.output_size
    f64 = dict(generator=g, dtype=torch.float64)
    r2 = model.r_min ** 2 + torch.rand(N, **f64) * (model.r_max ** 2 - model.r_min ** 2)
    phase = torch.rand(N, **f64) * model.max_phase
    nu = torch.log(-0.5 * torch.log(r2))
    theta = torch.log(phase)
    gamma = torch.sqrt(1 - r2) if model.normalize else torch.ones(N, dtype=torch.float64)
    B_re = torch.randn(N, D, **f64) * (model.input_gain / math.sqrt(2 * D))
    B_im = torch.randn(N, D, **f64) * (model.input_gain / math.sqrt(2 * D))
    C_re = torch.randn(C, N, **f64) / math.sqrt(N)
    C_im = torch.randn(C, N, **f64) / math.sqrt(N)
    D_skip = torch.randn(C, D, **f64) / math.sqrt(D)
    return dict(nu=nu, theta=theta, gamma=gamma, B_re=B_re, B_im=B_im, C_re=C_re, C_im=C_im,
                D=D_skip, normalize=model.normalize,
                tied=getattr(model, "gamma", "param") == "tied")


def check(model) -> None:
    """0 < r_min <= r_max < 1, max_phase >= 0, normalize a bool, gamma in ``GAMMAS`` (tied only
    with normalize); no bias (the LRU has none)."""
    for key in ("r_min", "r_max"):
        v = getattr(model, key)
        number(f"model.{key}", v, positive=True)
        if v >= 1:
            raise ConfigError(f"model.{key}={v!r} is not allowed; a radius |lambda| must lie in "
                              "(0, 1)")
    if model.r_min > model.r_max:
        raise ConfigError(f"model.r_min={model.r_min!r} > model.r_max={model.r_max!r}; the ring "
                          "needs 0 < r_min <= r_max < 1")
    number("model.max_phase", model.max_phase)
    flag("model.normalize", model.normalize)
    choice("model.gamma", model.gamma, GAMMAS)
    if model.gamma == "tied" and not model.normalize:
        raise ConfigError("model.gamma='tied' with model.normalize=false: tied differentiates "
                          "gamma = sqrt(1 - |lambda|^2), which normalize=false replaces by 1; "
                          "use model.normalize=true or model.gamma=param")
    bias_std = getattr(model, "bias_std", 0)  # a training run's model has no such key
    if bias_std != 0:
        raise ConfigError(f"model.bias_std={bias_std!r} with model.cell='lru': the LRU has "
                          "no bias; use model.bias_std=0")


def theory(p: LRUParams, model, data) -> dict:
    """``log_rho`` = ln max_j |lambda_j|, nats per step: the exact long-lag rate of
    ||dL_t/ds_k|| (J is normal with eigenvalues lambda, conj lambda); ``log_rho_min`` the
    fastest unit's."""
    r = p.modulus
    return {"log_rho": math.log(r.max().item()), "log_rho_min": math.log(r.min().item())}


def sensitivity(p: LRUParams, x: Tensor, h0: Tensor, burn_in: int = 0) -> list[dict]:
    """``measure.sensitivity`` of the LRU in forward mode, O(T B N) (``rnnlab.engine.sensitivity``
    for the columns). Per unit, with lambda = r e^(i phase), phase = exp(theta):

        d/dr:     tau_t = lambda tau_{t-1} + e^(i phase) h_{t-1} + gamma'(r) (B x_t),
                  gamma'(r) = -r / sqrt(1 - r^2) with ``model.gamma=tied``, else 0 (``param``:
                  gamma is its own parameter and stays put when r moves; gamma = 1 without
                  ``normalize``)
        d/dtheta: tau_t = lambda tau_{t-1} + i phase lambda h_{t-1}
        d/dnu:    dh/dnu = (dr/dnu) dh/dr = r ln r dh/dr   (r = exp(-exp(nu)))
        d/dgamma: tau_t = lambda tau_{t-1} + B x_t   (= h_t / gamma from h0 = 0): the group
                  ``gamma``, only where gamma is a parameter (``param`` with ``normalize``)

    each tau = 0 at the start of the run (burn-in included); |tau|^2 is the squared modulus
    (Re^2 + Im^2 of the unit's two state coordinates)."""
    N = p.hidden_size
    r, phase = p.modulus, torch.exp(p.theta)
    lam, rot = torch.polar(r, phase), torch.polar(torch.ones_like(r), phase)
    tied = p.normalize and p.tied
    dgamma = -r / torch.sqrt(1 - r * r) if tied else torch.zeros_like(r)
    u = torch.complex(x @ p.B_re.T, x @ p.B_im.T)  # (B, T_all, N)
    h = torch.complex(h0[:, :N], h0[:, N:])
    tau_r, tau_theta, tau_gamma = torch.zeros_like(h), torch.zeros_like(h), torch.zeros_like(h)
    sq_r = torch.zeros(N, dtype=torch.float64, device=h.device)
    sq_theta, sq_h, sq_gamma = (torch.zeros_like(sq_r) for _ in range(3))
    for t in range(x.shape[1]):
        tau_r = lam * tau_r + rot * h + dgamma * u[:, t]
        tau_theta = lam * tau_theta + 1j * phase * lam * h
        tau_gamma = lam * tau_gamma + u[:, t]
        h = lam * h + p.gamma * u[:, t]
        if t >= burn_in:
            sq_r += (tau_r.abs() ** 2).double().sum(0)
            sq_theta += (tau_theta.abs() ** 2).double().sum(0)
            sq_gamma += (tau_gamma.abs() ** 2).double().sum(0)
            sq_h += (h.abs() ** 2).double().sum(0)
    n = x.shape[0] * (x.shape[1] - burn_in) * N  # values averaged: batch x steps x units
    dr_dnu = (r * torch.log(r)).double()
    state = sq_h.sum().item() / n
    groups = [("r", sq_r), ("theta", sq_theta), ("nu", dr_dnu ** 2 * sq_r)]
    if p.normalize and not p.tied:
        groups.append(("gamma", sq_gamma))
    return [{"parameter": name, "mean_sq_derivative": v.sum().item() / n, "mean_sq_state": state}
            for name, v in groups]


def reference_step(p: LRUParams):
    """The recurrence in torch's complex arithmetic (independent of the real 2 x 2 form), on the
    state (Re h, Im h), differentiable."""
    N = p.hidden_size
    lam = torch.polar(p.modulus, torch.exp(p.theta))
    B = torch.complex(p.B_re, p.B_im)

    def step(x_t, s):
        h = torch.complex(s[0][:, :N], s[0][:, N:])
        h = lam * h + p.gamma * (x_t.to(B.dtype) @ B.T)
        return (torch.cat([h.real, h.imag], -1),)

    return step


class LRUBlock(nn.Module):
    """The trainable LRU: one layer with its readout and a position-wise MLP, the paper's block
    (one layer, no residual or normalisation layer), batch first:

        h_t = lambda * h_{t-1} + gamma * (B x_t),   y_t = Re(C h_t) + D x_t,
        out_t = GELU(W y_t + b)                     (the MLP, H -> H; H = N)

    with lambda = exp(-exp(nu) + i exp(theta)), gamma = exp(gamma_log) (``gamma="param"``) or
    sqrt(1 - |lambda|^2) recomputed from nu at every call (``gamma="tied"``). Trained
    parameters: nu, theta, gamma_log (with ``normalize`` and ``param``; a buffer, gamma = 1,
    without ``normalize``; none with ``tied``), B_re, B_im, C_re, C_im, D and the MLP's W, b;
    the exponential parametrisation keeps |lambda| < 1 for every nu. Init: this cell's ``draw``
    (the ring) from a generator seeded by torch's global RNG, in float64, cast once to
    ``dtype``; the MLP keeps torch's default init.

    As a cell module: state (s,) with s = (Re h, Im h) (B, 2N), the engine's measured state;
    ``step`` the recurrence in that real form; the readout sees ``features(s, x)`` = out_t,
    not s. ``forward(x (B, T, D)) -> (out (B, T, N), s_last (1, B, 2N))`` as ``torch.nn.RNN``
    returns (output, h_n), from the closed form h_t = sum_{k<=t} lambda^(t-k) gamma B x_k: one
    (T, T, N) table of powers lambda^(t-k) = exp((t-k) ln lambda) times the inputs, exact for
    h_{-1} = 0, differentiable, and far faster on a CPU than T small steps.

    model.pt holds this module's ``state_dict`` (the names above, ``mlp.weight``,
    ``mlp.bias``; no ``gamma_log`` with ``tied``) with the ring keys in ``config``:
    ``LRUBlock(D, N, **{k: config[k] for k in DEFAULTS})`` then ``load_state_dict``.
    """

    fused = True

    def __init__(self, input_size: int, hidden_size: int, r_min: float, r_max: float,
                 max_phase: float, normalize: bool, gamma: str = "param",
                 dtype: torch.dtype | None = None):
        super().__init__()
        choice("model.gamma", gamma, GAMMAS)
        self.input_size, self.hidden_size = input_size, hidden_size
        self.r_min, self.r_max, self.max_phase = r_min, r_max, max_phase
        self.normalize = normalize
        self.tied = normalize and gamma == "tied"
        N = hidden_size
        # the ring draw from a generator seeded by torch's global RNG (the caller seeds it, as
        # for every torch.nn module), in float64 and cast once to ``dtype`` (default: torch's),
        # so a float64 model keeps every digit of the draw
        g = torch.Generator().manual_seed(int(torch.randint(0, 2 ** 62, (1,)).item()))
        model = SimpleNamespace(hidden_size=N, input_size=input_size, output_size=N,
                                r_min=r_min, r_max=r_max, max_phase=max_phase,
                                normalize=normalize, input_gain=1.0)
        w = draw(model, 0, g)
        f32 = dtype or torch.get_default_dtype()
        for name in ("nu", "theta", "B_re", "B_im", "C_re", "C_im", "D"):
            setattr(self, name, nn.Parameter(w[name].to(f32)))
        gamma_log = torch.log(w["gamma"]).to(f32)
        if self.tied:  # gamma recomputed from nu (the ``gamma`` property): nothing to hold
            pass
        elif normalize:
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
        """exp(gamma_log), or with ``tied`` sqrt(1 - |lambda|^2) = sqrt(1 - exp(-2 exp(nu)))."""
        if self.tied:
            return torch.sqrt(-torch.expm1(-2 * torch.exp(self.nu)))
        return torch.exp(self.gamma_log)

    def init_state(self, batch_size: int) -> tuple[Tensor]:
        return (self.nu.new_zeros(batch_size, 2 * self.hidden_size),)

    def step(self, x_t: Tensor, state: tuple[Tensor]) -> tuple[Tensor]:
        """s_t from s_{t-1}: (a re - b im, b re + a im) + gamma (Re B x_t, Im B x_t) with
        a + i b = lambda (``states``' real form)."""
        N, s = self.hidden_size, state[0]
        r, phase = torch.exp(-torch.exp(self.nu)), torch.exp(self.theta)
        a, b = r * torch.cos(phase), r * torch.sin(phase)
        re, im = s[:, :N], s[:, N:]
        return (torch.cat([a * re - b * im + self.gamma * (x_t @ self.B_re.T),
                           b * re + a * im + self.gamma * (x_t @ self.B_im.T)], -1),)

    def states(self, x: Tensor) -> Tensor:
        """s_t = (Re h_t, Im h_t), (B, T, 2N), from x (B, T, D) with h_{-1} = 0 (closed form)."""
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
        s (..., 2N) and inputs x (..., D) of the same steps: what the readout sees."""
        N = self.hidden_size
        y = s[..., :N] @ self.C_re.T - s[..., N:] @ self.C_im.T + x @ self.D.T
        return nn.functional.gelu(self.mlp(y))

    def forward(self, x: Tensor, h0: Tensor | None = None):
        if h0 is not None:
            raise ValueError("LRUBlock starts from h = 0 (its closed form needs it)")
        s = self.states(x)
        return self.features(s, x), s[:, -1].unsqueeze(0)

    def engine_params(self, head: nn.Module | None = None) -> LRUParams:
        """The engine's ``LRUParams`` of the recurrence, detached copies in the module's dtype
        (C and D are the block's own readout, so V = [C_re, -C_im] is the engine's linear
        readout before the MLP; ``head`` acts after the MLP and is not part of them)."""
        t = {k: getattr(self, k).detach().clone()
             for k in ("nu", "theta", "B_re", "B_im", "C_re", "C_im", "D")}
        return LRUParams(gamma=self.gamma.detach().clone(), normalize=bool(self.normalize),
                         tied=self.tied, **t)

    def extra_repr(self) -> str:
        return (f"{self.input_size}, {self.hidden_size}, r_min={self.r_min}, "
                f"r_max={self.r_max}, max_phase={self.max_phase:.4g}, "
                f"normalize={self.normalize}, gamma={'tied' if self.tied else 'param'}")


def module(input_size: int, hidden_size: int, model: dict, dtype=None) -> LRUBlock:
    """The trainable LRU block with the ring keys of ``model`` (a null takes ``DEFAULTS``)."""
    keys = {k: v if model.get(k) is None else model[k] for k, v in DEFAULTS.items()}
    return LRUBlock(input_size, hidden_size, **keys, dtype=dtype)


CELL = register(Cell(
    recurrent=None, name="lru", params=LRUParams, layer_forward=layer_forward,
    layer_weights=lambda p: (p,), draw=draw, activations=("linear",), inits=("ring",),
    scaled_inits=(), record=record, theory=theory, reference_step=reference_step,
    components=2, own_readout=True, readout_offset=readout_offset, keys=DEFAULTS,
    keys_since=("gamma",),  # param, the default, is the training block as it was
    # gamma: reported only where gamma is a parameter (model.gamma=param, model.normalize=true)
    check=check, groups=("r", "theta", "nu", "gamma"), sensitivity=sensitivity, module=module,
    refuses=(("weights", "redrawn", "the LRU's lambda is one fixed diagonal"),
             ("weight_grad", True, "the LRU has no recurrent matrix W to split by lag")),
    paper="Orvieto et al. 2023 (arXiv:2303.06349)"))
