"""The linear teacher-student task of Zucchet & Orvieto 2024 (arXiv:2405.21064, Sec. 5 and
Fig. 4; their code ``source/dataloaders/regression.py`` and ``source/model.py``) and its three
students.

Teacher: a dense linear system h_t = A h_{t-1} + B x_t, y_t = C h_t + D x_t from h_0 = 0, with
x_t ~ N(0, I) (Gaussian input, unit variance, fresh sequences every batch). ``Teacher.draw``:
A = Re(V diag(l') V^-1) where V diag(l) V^-1 is the eigendecomposition of a N(0, 1/n) matrix
and l' = (nu_0 + (1 - nu_0) tanh|l|) exp(i arg(l) * max_phase / pi), so every eigenvalue
magnitude lies in [nu_0, 1); B ~ N(0, 1/D_in), C ~ N(0, 1/n), D ~ N(0, 1/D_in).
``Teacher.conjugate_pairs``: their Hessian case (``figures/hessian_analysis.ipynb``), n = 4,
two conjugate pairs lambda = (0.99 + 0.003 u) exp(2 pi i u'), u, u' ~ U[0, 1), in a random
complex basis.

Loss: L = 1/2 * the mean over sequences and time steps of ||y_hat_t - y_t||^2 (squared error
summed over the outputs; their ``loss_fn`` with every mask 1).

Students (64 hidden units in the paper), each a ``torch.nn.Module`` whose ``forward(x)`` is the
output sequence from h_0 = 0:
- ``DenseStudent``: their ``MultiHeadRNN`` with one head, h_t = A h_{t-1} + B x_t,
  y_t = C h_t + D x_t; A drawn as the teacher's with magnitudes tanh|l| in [0, 1) (their code
  passes no nu_0 to the dense student: "better results without"), B, C, D flax's lecun_normal
  (truncated normal of variance 1 / fan-in).
- ``DiagonalStudent``: a complex diagonal recurrence h_t = lambda * h_t-1 + gamma * (B x_t),
  y_t = Re(C h_t) + D x_t (their ``LRU``), lambda = exp(log lambda) with log lambda from one of
  the parametrisations: ``cartesian`` (lambda = a + i b: their ``lru_param=default``, the
  Fig. 4 "complex diagonal" student, labels lambda^re, lambda^im), ``polar``
  (lambda = nu exp(i theta)) and ``exp`` (lambda = exp(-exp(w_nu) + i exp(w_theta)), the LRU's);
  ``gamma=True`` adds gamma = exp(w_gamma) as a parameter of its own, initialised at
  sqrt(1 - |lambda|^2) and not recomputed when lambda moves (their ``which_gamma=learned``).
  Init (their ``nu_init``): |lambda|^2 ~ U[nu_0^2, 1), theta ~ U[-max_phase, max_phase) mod
  2 pi; B's parts N(0, 1/n), C's parts N(0, 1/D_out), D N(0, 1/D_in) (their ``matrix_init``,
  the normal divided by the square root of the first dimension).

The output is computed from the impulse response K_j = C A^j B (dense) or
Re(C diag(lambda^j gamma) B) (diagonal), j = 0..T-1, convolved with the input by FFT: the same
function as running the recurrence from h_0 = 0 (``recurrence`` runs it step by step; the
tests hold the two equal), at O(T log T) per sequence instead of T sequential steps, so its
gradient is the BPTT gradient up to float64 rounding. Everything is float64.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from rnnlab.checks import ConfigError

DTYPE = torch.float64
PARAMETRISATIONS = ("cartesian", "polar", "exp")
TRUNC_STD = 0.87962566103423978  # std of N(0, 1) truncated to [-2, 2] (flax's lecun_normal)


def _positive(name: str, value) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{name}={value!r}; it must be a positive integer")
    return value


def lecun_normal(shape, fan_in: int, g: torch.Generator) -> torch.Tensor:
    """flax's default Dense kernel: N(0, 1/fan_in) truncated to +-2 standard deviations, with
    the standard deviation corrected for the truncation (variance exactly 1/fan_in)."""
    z = torch.empty(shape, dtype=DTYPE)
    torch.nn.init.trunc_normal_(z, 0.0, 1.0, -2.0, 2.0, generator=g)
    return z / TRUNC_STD / math.sqrt(fan_in)


def _normal(shape, g: torch.Generator) -> torch.Tensor:
    return torch.randn(shape, generator=g, dtype=DTYPE)


def squashed_matrix(n: int, nu_0: float, max_phase: float, g: torch.Generator) -> torch.Tensor:
    """A real n x n matrix whose eigenvalues have magnitudes nu_0 + (1 - nu_0) tanh|l| in
    [nu_0, 1): the eigenvalues l of a N(0, 1/n) matrix, magnitudes squashed, phases scaled by
    max_phase / pi (their ``recurrent_matrix_init``; conjugate pairs stay pairs, so A is real
    up to rounding and its real part is kept)."""
    a = _normal((n, n), g) / math.sqrt(n)
    lam, V = torch.linalg.eig(a)
    mag = nu_0 + (1 - nu_0) * torch.tanh(lam.abs())
    lam = mag * torch.exp(1j * torch.angle(lam) * max_phase / math.pi)
    return (V @ torch.diag(lam) @ torch.linalg.inv(V)).real.contiguous()


def impulse_response_dense(A, B, C, T: int) -> torch.Tensor:
    """K_j = C A^j B for j = 0..T-1, (T, D_out, D_in): the response of y_t to x_{t-j}.
    By doubling: [B, AB, ..., A^(2k-1) B] = [V_k, A^k V_k] with A^(2k) = (A^k)^2, so
    ceil(log2 T) matrix products instead of T sequential ones (what autograd differentiates)."""
    n, d_in = B.shape
    V, P = B, A  # V_k = [B, AB, ..., A^(k-1) B] as (n, k D_in) columns, P = A^k
    while V.shape[1] < T * d_in:
        V = torch.cat([V, P @ V], dim=1)
        P = P @ P
    V = V[:, :T * d_in].reshape(n, T, d_in)
    return torch.einsum("on,nti->toi", C, V)


def convolve(K: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """y_t = sum_{j<=t} K_j x_{t-j} for x (batch, T, D_in), K (T, D_out, D_in): a causal
    convolution by FFT of length 2T (no wrap-around)."""
    T = x.shape[1]
    n = 2 * T
    Kf = torch.fft.rfft(K, n=n, dim=0)  # (F, D_out, D_in)
    xf = torch.fft.rfft(x, n=n, dim=1)  # (batch, F, D_in)
    yf = torch.einsum("foi,bfi->bfo", Kf, xf)
    return torch.fft.irfft(yf, n=n, dim=1)[:, :T]


def loss(y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """1/2 mean over sequences and steps of the squared error summed over outputs."""
    return 0.5 * ((y_hat - y) ** 2).sum(-1).mean()


@dataclass
class Teacher:
    """A linear system (A, B, C, D), float64; ``sample`` draws its (input, output) batches."""
    A: torch.Tensor
    B: torch.Tensor
    C: torch.Tensor
    D: torch.Tensor

    @property
    def hidden_size(self) -> int:
        return self.A.shape[0]

    @classmethod
    def draw(cls, hidden_size: int = 10, nu_0: float = 0.99, seed: int = 0,
             input_size: int = 1, output_size: int = 1, max_phase: float = 3.14) -> Teacher:
        """The dense teacher of their Fig. 4 (their ``LinearSystem``, parametrization=dense)."""
        _positive("hidden_size", hidden_size)
        if not 0.0 <= nu_0 < 1.0:
            raise ConfigError(f"nu_0={nu_0!r}; allowed: 0 <= nu_0 < 1")
        g = torch.Generator().manual_seed(seed)
        A = squashed_matrix(hidden_size, nu_0, max_phase, g)
        B = _normal((hidden_size, input_size), g) / math.sqrt(input_size)
        C = _normal((output_size, hidden_size), g) / math.sqrt(hidden_size)
        D = _normal((output_size, input_size), g) / math.sqrt(input_size)
        return cls(A, B, C, D)

    @classmethod
    def conjugate_pairs(cls, seed: int = 0, r: float = 0.99, spread: float = 0.003) -> Teacher:
        """Their Hessian case: n = 4, D_in = D_out = 1, eigenvalues two conjugate pairs
        (r + spread u) exp(2 pi i u') in the complex basis U (2 x 4 rows N(0, 1/8) per part,
        with their conjugates), A = Re(U^-1 diag(lambda) U); B, C, D as ``draw``'s."""
        g = torch.Generator().manual_seed(seed)
        mag = r + spread * torch.rand(2, generator=g, dtype=DTYPE)
        phase = 2 * math.pi * torch.rand(2, generator=g, dtype=DTYPE)
        lam = mag * torch.exp(1j * phase)
        lam = torch.cat([lam, lam.conj()])
        U = torch.complex(_normal((2, 4), g), _normal((2, 4), g)) / (2 * math.sqrt(2))
        U = torch.cat([U, U.conj()])
        A = (torch.linalg.inv(U) @ torch.diag(lam) @ U).real.contiguous()
        B = _normal((4, 1), g)
        C = _normal((1, 4), g) / 2.0
        D = _normal((1, 1), g)
        return cls(A, B, C, D)

    def eigenvalues(self) -> torch.Tensor:
        return torch.linalg.eigvals(self.A)

    def kernel(self, T: int) -> torch.Tensor:
        return impulse_response_dense(self.A, self.B, self.C, T)

    def sample(self, batch_size: int, T: int, g: torch.Generator, kernel=None):
        """(x, y): x (batch, T, D_in) ~ N(0, 1), y the teacher's outputs from h_0 = 0."""
        x = _normal((batch_size, T, self.B.shape[1]), g)
        K = self.kernel(T) if kernel is None else kernel
        return x, convolve(K, x) + x @ self.D.T


class DenseStudent(torch.nn.Module):
    """h_t = A h_{t-1} + B x_t, y_t = C h_t + D x_t (parameters A, B, C, D)."""

    GROUPS = ("A", "B", "C", "D")
    RECURRENT = ("A",)

    def __init__(self, hidden_size: int = 64, input_size: int = 1, output_size: int = 1,
                 seed: int = 0, max_phase: float = 3.14):
        super().__init__()
        _positive("hidden_size", hidden_size)
        g = torch.Generator().manual_seed(seed)
        n = hidden_size
        self.A = torch.nn.Parameter(squashed_matrix(n, 0.0, max_phase, g))
        self.B = torch.nn.Parameter(lecun_normal((n, input_size), input_size, g))
        self.C = torch.nn.Parameter(lecun_normal((output_size, n), n, g))
        self.D = torch.nn.Parameter(lecun_normal((output_size, input_size), input_size, g))

    @classmethod
    def from_teacher(cls, teacher: Teacher) -> DenseStudent:
        """The student at the teacher's solution (same n): A, B, C, D copied, loss 0."""
        s = cls(teacher.hidden_size, teacher.B.shape[1], teacher.C.shape[0])
        with torch.no_grad():
            for name in cls.GROUPS:
                getattr(s, name).copy_(getattr(teacher, name))
        return s

    def kernel(self, T: int) -> torch.Tensor:
        return impulse_response_dense(self.A, self.B, self.C, T)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return convolve(self.kernel(x.shape[1]), x) + x @ self.D.T

    def recurrence(self, x: torch.Tensor) -> torch.Tensor:
        """The same outputs by the step-by-step recurrence (the reference the tests use)."""
        h = x.new_zeros(x.shape[0], self.A.shape[0])
        out = []
        for t in range(x.shape[1]):
            h = h @ self.A.T + x[:, t] @ self.B.T
            out.append(h @ self.C.T + x[:, t] @ self.D.T)
        return torch.stack(out, 1)


class DiagonalStudent(torch.nn.Module):
    """h_t = lambda * h_{t-1} + gamma * (B x_t), y_t = Re(C h_t) + D x_t, lambda complex
    diagonal in one of PARAMETRISATIONS; gamma a parameter (``gamma=True``) or 1.

    Parameters: ``lam`` (2, n), the two real coordinates of each lambda (a, b; nu, theta; or
    w_nu, w_theta), ``gamma`` (n,) its log where present, ``B_re``, ``B_im`` (n, D_in),
    ``C_re``, ``C_im`` (D_out, n), ``D`` (D_out, D_in)."""

    RECURRENT = ("lam",)
    # the names of lam's two rows per parametrisation (their figure's labels)
    COMPONENTS = {"cartesian": ("re", "im"), "polar": ("nu", "theta"),
                  "exp": ("w_nu", "w_theta")}

    def __init__(self, hidden_size: int = 64, input_size: int = 1, output_size: int = 1,
                 seed: int = 0, parametrisation: str = "cartesian", gamma: bool = False,
                 nu_0: float = 0.99, max_phase: float = 3.14):
        super().__init__()
        _positive("hidden_size", hidden_size)
        if parametrisation not in PARAMETRISATIONS:
            raise ConfigError(f"parametrisation={parametrisation!r}; allowed: "
                              f"{', '.join(PARAMETRISATIONS)}")
        if not 0.0 <= nu_0 < 1.0:
            raise ConfigError(f"nu_0={nu_0!r}; allowed: 0 <= nu_0 < 1")
        self.parametrisation = parametrisation
        n = hidden_size
        g = torch.Generator().manual_seed(seed)
        u = torch.rand(n, generator=g, dtype=DTYPE)
        mag = torch.sqrt(u * (1 - nu_0 ** 2) + nu_0 ** 2)
        theta = torch.remainder(
            (2 * torch.rand(n, generator=g, dtype=DTYPE) - 1) * max_phase, 2 * math.pi)
        self.lam = torch.nn.Parameter(self.coordinates(mag * torch.exp(1j * theta)))
        self.gamma = (torch.nn.Parameter(0.5 * torch.log(1 - mag ** 2)) if gamma else None)
        self.B_re = torch.nn.Parameter(_normal((n, input_size), g) / math.sqrt(n))
        self.B_im = torch.nn.Parameter(_normal((n, input_size), g) / math.sqrt(n))
        self.C_re = torch.nn.Parameter(_normal((output_size, n), g) / math.sqrt(output_size))
        self.C_im = torch.nn.Parameter(_normal((output_size, n), g) / math.sqrt(output_size))
        self.D = torch.nn.Parameter(_normal((output_size, input_size), g) /
                                    math.sqrt(output_size))

    @property
    def GROUPS(self) -> tuple:
        return ("lam",) + (("gamma",) if self.gamma is not None else ()) + (
            "B_re", "B_im", "C_re", "C_im", "D")

    def coordinates(self, lam: torch.Tensor) -> torch.Tensor:
        """The (2, n) real coordinates of complex eigenvalues ``lam`` in this parametrisation."""
        if self.parametrisation == "cartesian":
            return torch.stack([lam.real, lam.imag]).contiguous()
        theta = torch.remainder(torch.angle(lam), 2 * math.pi)
        if self.parametrisation == "polar":
            return torch.stack([lam.abs(), theta])
        return torch.stack([torch.log(-torch.log(lam.abs())), torch.log(theta)])

    def log_lambda(self) -> torch.Tensor:
        a, b = self.lam
        if self.parametrisation == "exp":
            return torch.complex(-torch.exp(a), torch.exp(b))
        lam = torch.complex(a, b) if self.parametrisation == "cartesian" else a * torch.exp(1j * b)
        return torch.log(lam)

    def lambdas(self) -> torch.Tensor:
        return torch.exp(self.log_lambda())

    def input_matrix(self) -> torch.Tensor:
        """gamma * B (n, D_in), complex."""
        B = torch.complex(self.B_re, self.B_im)
        return B if self.gamma is None else torch.exp(self.gamma)[:, None] * B

    @classmethod
    def from_teacher(cls, teacher: Teacher, parametrisation: str = "cartesian",
                     gamma: bool = False) -> DiagonalStudent:
        """The student at the teacher's solution (n = the teacher's): lambda = eig(A) = d,
        A = U diag(d) U^-1, B' = U^-1 B (divided by gamma = sqrt(1 - |d|^2) where gamma is a
        parameter), C' = C U, D copied (their ``hessian_analysis.ipynb``); loss 0."""
        n = teacher.hidden_size
        s = cls(n, teacher.B.shape[1], teacher.C.shape[0], parametrisation=parametrisation,
                gamma=gamma)
        d, U = torch.linalg.eig(teacher.A.to(torch.complex128))
        B = torch.linalg.solve(U, teacher.B.to(torch.complex128))
        C = teacher.C.to(torch.complex128) @ U
        with torch.no_grad():
            s.lam.copy_(s.coordinates(d))
            if gamma:
                g = torch.sqrt(1 - d.abs() ** 2)
                s.gamma.copy_(torch.log(g))
                B = B / g[:, None]
            s.B_re.copy_(B.real)
            s.B_im.copy_(B.imag)
            s.C_re.copy_(C.real)
            s.C_im.copy_(C.imag)
            s.D.copy_(teacher.D)
        return s

    def kernel(self, T: int) -> torch.Tensor:
        """K_j = Re(C diag(lambda^j) gamma B), (T, D_out, D_in)."""
        j = torch.arange(T, dtype=DTYPE)
        powers = torch.exp(j[:, None] * self.log_lambda()[None, :])  # (T, n)
        C = torch.complex(self.C_re, self.C_im)
        return torch.einsum("on,tn,ni->toi", C, powers, self.input_matrix()).real

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return convolve(self.kernel(x.shape[1]), x) + x @ self.D.T

    def recurrence(self, x: torch.Tensor) -> torch.Tensor:
        """The same outputs by the step-by-step recurrence (the reference the tests use)."""
        lam, Bg = self.lambdas(), self.input_matrix()
        C = torch.complex(self.C_re, self.C_im)
        h = torch.zeros(x.shape[0], lam.shape[0], dtype=torch.complex128)
        out = []
        for t in range(x.shape[1]):
            h = lam * h + x[:, t].to(torch.complex128) @ Bg.T
            out.append((h @ C.T).real + x[:, t] @ self.D.T)
        return torch.stack(out, 1)


def train(net: torch.nn.Module, teacher: Teacher, steps: int, *, T: int = 300,
          batch_size: int = 128, lr: float = 1e-3, seed: int = 0, every: int = 100,
          progress=None) -> list[dict]:
    """Adam (lr constant, betas (0.9, 0.999), eps 1e-8: optax's defaults) on fresh teacher
    batches for ``steps`` steps. Every ``every`` steps and after the last, one record per
    parameter group: the step, the batch loss of the last update, and Adam's effective learning
    rate (``rnnlab.train.adam_lr``: their unit-gradient statistic ``lr_unit`` and the
    momentum-free ``lr_scale``); a diagonal student's ``lam`` gets a record for both rows
    together and one per row (``lam.re``, ``lam.im``, ...). ``progress``: called with 1 after
    every step (a tqdm update). Returns (the records, the optimizer)."""
    from rnnlab.train import adam_lr

    for name, value in (("steps", steps), ("T", T), ("batch_size", batch_size),
                        ("every", every)):
        _positive(name, value)
    if not lr > 0:
        raise ConfigError(f"lr={lr!r}; it must be positive")
    g = torch.Generator().manual_seed(seed)
    K = teacher.kernel(T)
    opt = torch.optim.Adam(net.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8)
    names = {p: n for n, p in net.named_parameters()}
    records = []
    for step in range(1, steps + 1):
        x, y = teacher.sample(batch_size, T, g, kernel=K)
        opt.zero_grad(set_to_none=True)
        value = loss(net(x), y)
        value.backward()
        opt.step()
        if progress is not None:
            progress(1)
        if step % every == 0 or step == steps:
            unit, scale = adam_lr.unit_gradient_update(opt), adam_lr.step_size(opt)
            for p, u in unit.items():
                parts = [(names[p], u, scale[p])]
                if names[p] == "lam":
                    labels = DiagonalStudent.COMPONENTS[net.parametrisation]
                    parts += [(f"lam.{c}", u[k], scale[p][k]) for k, c in enumerate(labels)]
                records += [dict(step=step, loss=float(value.detach()), group=group,
                                 lr_unit=adam_lr.statistic(a), lr_scale=adam_lr.geometric_mean(b))
                            for group, a, b in parts]
    return records, opt
