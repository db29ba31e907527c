"""Step Jacobians derived from a cell's torch ``step`` by ``torch.func``, where nobody wrote them.

A cell step s_k = f(x_k, s_{k-1}) acts on a state that is a tuple of (B, N_i) tensors (h first,
the part the readout sees); the engine sees it concatenated, s_k (B, S) with S = sum N_i. The
exact step Jacobian

    J_k = d s_k / d s_{k-1}   (S x S per sequence; and d s_k / d x_k, S x D, for a stack's input)

enters the measurement as the two maps every cell gives the engine
(``rnnlab.engine.cells.stack``), derived from ``step`` after one forward pass has recorded every
state: the cotangent map J_k^T D pulls a whole (targets x batch x state) block back through
``step`` at step k (``torch.func.vjp``, vmapped over the targets), the tangent map J_k Q pushes a
frame forward (``torch.func.jvp``, vmapped over its columns). Neither forms J_k, so a step costs
the GEMMs a hand-written map does plus the step's own elementwise work. A small state whose
every J_k fits the budget has them formed once instead, and the maps are batched GEMMs (the
per-step pull-back's dispatch would cost more than its arithmetic). J_k is materialised by
reverse mode: the steps
being independent once recorded, ``step`` is applied to a chunk of steps stacked as one batch of
rows and its pull-back vmapped over the S unit cotangents, chunks sized to hold at most
``budget`` numbers and computed when first asked for (``StepJacobians.jacobian``). The weight
gradient by lag and the sensitivity differentiate ``step`` with respect to the recurrent weight
the same way.

``step`` must act on each sequence (row) alone, as every recurrent cell does; a step that mixes
the batch (batch statistics) has no per-sequence Jacobian. The forward here is the plain one, in
the compute dtype: valid while the state stays within the dtype's range (the hand-written Elman
path's log scale, for relu beyond float64's range, has no counterpart here).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import torch
from torch import Tensor
from torch.func import jvp, vjp, vmap

from .cells.stack import Recorded, Stack

# numbers of one chunk of Jacobians: 2^24 float64 = 128 MiB
BUDGET = 2 ** 24


def flat_step(step: Callable, sizes: tuple[int, ...]) -> Callable:
    """``step`` on concatenated states: (x (R, D), s (R, S)) -> s' (R, S)."""
    def f(x: Tensor, s: Tensor) -> Tensor:
        return torch.cat(tuple(step(x, tuple(torch.split(s, sizes, dim=-1)))), -1)
    return f


def check_state(state, batch: int, what: str) -> tuple[int, ...]:
    """The part sizes N_i of a state that must be a non-empty tuple of (batch, N_i) tensors of
    one dtype; anything else is named in one line."""
    if not isinstance(state, tuple) or not state or not all(isinstance(s, Tensor) for s in state):
        kind = type(state).__name__ if not isinstance(state, tuple) else \
            f"tuple of ({', '.join(type(s).__name__ for s in state)})"
        raise ValueError(f"{what} is a {kind}; a state must be a non-empty tuple of (batch, N_i) "
                         "tensors, h first")
    bad = [tuple(s.shape) for s in state if s.dim() != 2 or s.shape[0] != batch]
    if bad:
        raise ValueError(f"{what} holds tensors of shape {bad}; each part must be (batch, N_i) "
                         f"with batch = {batch}")
    dtypes = {s.dtype for s in state}
    if len(dtypes) > 1:
        raise ValueError(f"{what} mixes dtypes {sorted(map(str, dtypes))}; every part must "
                         "have one dtype")
    return tuple(s.shape[1] for s in state)


def check_step(step: Callable, x_t: Tensor, state: tuple, what: str = "step") -> None:
    """One probe step: its output must have the state's part shapes and dtype."""
    with torch.no_grad():
        out = step(x_t, state)
    if not isinstance(out, tuple):
        raise ValueError(f"{what}(x_t, state) returned a {type(out).__name__}; it must return "
                         f"the new state as a tuple of {len(state)} tensors shaped as the state")
    got = [tuple(o.shape) if isinstance(o, Tensor) else type(o).__name__ for o in out]
    want = [tuple(s.shape) for s in state]
    if got != want:
        raise ValueError(f"{what}(x_t, state) changed the state's shape from {want} to {got}; "
                         "a step must return parts shaped as it takes them")
    dtypes = [str(o.dtype) for o in out if o.dtype != state[0].dtype]
    if dtypes:
        raise ValueError(f"{what}(x_t, state) changed the state's dtype from "
                         f"{state[0].dtype} to {dtypes[0]}; a step must keep the dtype")


class StepJacobians:
    """A layer of ``rnnlab.engine.cells.Stack`` whose step maps are derived from ``step``.

    ``x`` (T, B, D): the inputs of the measured steps; ``prev`` (T, B, S): the state entering
    each of them; ``sizes``: the state's part sizes, ``parts`` their names (h first; the parts
    after the first are reported on their own, as the LSTM's c).

    When every J_k fits in ``budget`` numbers (a small state: ``materialised``) they are formed
    once and the maps are batched GEMMs with them. Otherwise the maps never form J_k: ``vjp_``
    pulls a whole (targets x batch x state) block back through ``step`` at step k
    (``torch.func.vjp``, vmapped over the targets) and ``jvp`` pushes a frame forward
    (``torch.func.jvp``, vmapped over its columns), at the cost of the GEMMs a hand-written map
    does. ``jacobian(k)`` materialises J_k (B, S, S) in either case, a chunk of steps at a time
    within ``budget`` numbers (module docstring).
    """

    def __init__(self, step: Callable, x: Tensor, prev: Tensor, sizes: tuple[int, ...],
                 parts: tuple[str, ...] | None = None, budget: int = BUDGET, top: int = 0,
                 weight: tuple | None = None):
        self.f = flat_step(step, sizes)
        # (W, step_of): the recurrent weight and the step as a function of it, for the weight
        # gradient by lag and the sensitivity (``param_cotangent``, ``param_tangent``)
        self.weight = weight
        self.x, self.prev, self.sizes = x, prev, sizes
        self.parts = tuple(parts) if parts else \
            tuple(f"s{i}" if i else "h" for i in range(len(sizes)))
        if len(self.parts) != len(sizes):
            raise ValueError(f"state_parts {self.parts} name {len(self.parts)} parts, but the "
                             f"state has {len(sizes)}")
        self.top = top
        self.hidden, self.size = sizes[top], sum(sizes)
        T, B = prev.shape[:2]
        S, D = self.size, x.shape[-1]
        self.chunk = max(1, min(T, budget // max(1, B * S * (S + D))))
        # every J_k within the budget: one chunk, and the maps as batched GEMMs with it (a
        # small state's per-step pull-back would cost more in dispatch than in arithmetic)
        self.materialised = self.chunk == T
        self.start, self.J, self.Jx = None, None, None
        self.k, self.pull = None, None

    @property
    def extra_parts(self) -> dict:
        """Named state slices other than h's, offsets within this layer's state: name -> list
        of slices (a stack's c parts, one per layer, are one part)."""
        out, o = {}, 0
        for name, n in zip(self.parts, self.sizes):
            if name != "h":
                out.setdefault(name, []).append(slice(o, o + n))
            o += n
        return out

    @property
    def top_offset(self) -> int:
        """Where the h the readout sees starts in this layer's state."""
        return sum(self.sizes[:self.top])

    def leading(self) -> StepJacobians:
        """The maps of the first part alone, the others held fixed: the h block dh_k/dh_{k-1}
        of J_k (the LSTM's h-only convention, ``measure.lstm_state=h``)."""
        return _Leading(self)

    # ---- materialised J_k, a chunk of steps at a time
    def _load(self, k: int) -> None:
        if self.start is not None and self.start <= k < self.start + self.J.shape[0]:
            return
        T, B = self.prev.shape[:2]
        start = (k // self.chunk) * self.chunk
        stop = min(T, start + self.chunk)
        x = self.x[start:stop].reshape(-1, self.x.shape[-1])
        s = self.prev[start:stop].reshape(-1, self.size)
        J, Jx = jacobians(self.f, x, s, need_input=True)
        self.J = J.view(stop - start, B, self.size, self.size)
        self.Jx = Jx.view(stop - start, B, self.size, -1)
        self.start = start

    def jacobian(self, k: int) -> Tensor:
        """J_k = d s_k / d s_{k-1} (B, S, S), materialised."""
        self._load(k)
        return self.J[k - self.start]

    def input_jacobian(self, k: int) -> Tensor:
        """d s_k / d x_k (B, S, D), materialised."""
        self._load(k)
        return self.Jx[k - self.start]

    # ---- the maps, through step's own pull-back and push-forward
    def _pullback(self, k: int) -> Callable:
        if self.k != k:
            with torch.enable_grad():
                _, self.pull = vjp(self.f, self.x[k], self.prev[k])
            self.k = k
        return self.pull

    def vjp(self, k: int, D: Tensor, need_input: bool):
        """(J_k^T D, (d s_k / d x_k)^T D) for D (m, B, S)."""
        if self.materialised:
            Dt = D.transpose(0, 1)
            return (torch.bmm(Dt, self.jacobian(k)).transpose(0, 1),
                    torch.bmm(Dt, self.input_jacobian(k)).transpose(0, 1) if need_input
                    else None)
        pull = self._pullback(k)
        try:
            gx, gs = vmap(pull)(D)
        except RuntimeError:  # an op vmap does not cover: one pull-back per target
            rows = [pull(d) for d in D]
            gx, gs = torch.stack([r[0] for r in rows]), torch.stack([r[1] for r in rows])
        return gs.detach(), (gx.detach() if need_input else None)

    def vjp_(self, k: int, D: Tensor) -> None:
        """D (m, B, S) <- J_k^T D."""
        D.copy_(self.vjp(k, D, False)[0])

    # ---- derivatives with respect to the recurrent weight W at fixed s_{k-1}
    def _of_weight(self, k: int) -> Callable:
        W, step_of = self.weight
        x, s = self.x[k], self.prev[k]
        return lambda W_: flat_step(step_of(W_), self.sizes)(x, s)

    @property
    def W(self) -> Tensor:
        if self.weight is None:
            raise ValueError("no recurrent weight was named for these derived maps: the weight "
                             "gradient by lag and the sensitivity need one")
        return self.weight[0]

    def param_cotangent(self, k: int, D: Tensor) -> Tensor:
        """sum over the batch of D[:, b]^T (d s_k / d W)_b at fixed s_{k-1}: (m, *W.shape) for
        D (m, B, S), the weight gradient's term of each target."""
        with torch.enable_grad():
            _, pull = vjp(self._of_weight(k), self.W)
        return vmap(pull)(D)[0].detach()

    def param_tangent(self, k: int, E: Tensor) -> Tensor:
        """(d s_k / d W) E for the W-shaped tangents E (r, *W.shape), at fixed s_{k-1}:
        (B, S, r), the explicit part of the sensitivity's recurrence."""
        f = self._of_weight(k)
        out = vmap(lambda e: jvp(f, (self.W,), (e,))[1], out_dims=2)(E)
        return out.detach()

    def jvp(self, k: int, Q: Tensor, Q_in: Tensor | None = None) -> Tensor:
        """J_k Q (+ (d s_k / d x_k) Q_in) for Q (B, S, r)."""
        if self.materialised:
            A = torch.bmm(self.jacobian(k), Q)
            return A if Q_in is None else A + torch.bmm(self.input_jacobian(k), Q_in)
        x, s = self.x[k], self.prev[k]
        if Q_in is None:
            Q_in = x.new_zeros(x.shape + (Q.shape[-1],))

        def push(q, q_in):
            return jvp(self.f, (x, s), (q_in, q))[1]

        try:
            return vmap(push, in_dims=(2, 2), out_dims=2)(Q, Q_in).detach()
        except RuntimeError:  # no forward-mode formula for an op of the step: materialise
            return torch.bmm(self.jacobian(k), Q) + torch.bmm(self.input_jacobian(k), Q_in)


class _Leading:
    """``StepJacobians.leading``: J_k restricted to the first part (the others' tangents zero,
    their cotangents dropped), read on it."""

    parts = ("h",)
    extra_parts: dict = {}
    top_offset = 0

    def __init__(self, full: StepJacobians):
        self.full = full
        self.hidden = self.size = full.sizes[0]

    def _pad(self, D: Tensor, dim: int) -> Tensor:
        shape = list(D.shape)
        shape[dim] = self.full.size - self.size
        return torch.cat([D, D.new_zeros(shape)], dim)

    def jacobian(self, k: int) -> Tensor:
        return self.full.jacobian(k)[:, :self.size, :self.size]

    def vjp(self, k: int, D: Tensor, need_input: bool):
        gs, gx = self.full.vjp(k, self._pad(D, -1), need_input)
        return gs[..., :self.size], gx

    def vjp_(self, k: int, D: Tensor) -> None:
        D.copy_(self.vjp(k, D, False)[0])

    def jvp(self, k: int, Q: Tensor, Q_in: Tensor | None = None) -> Tensor:
        return self.full.jvp(k, self._pad(Q, 1), Q_in)[:, :self.size]


def jacobians(f: Callable, x: Tensor, s: Tensor, need_input: bool = False):
    """Per row r: J_r = d f(x, s)_r / d s_r (R, S, S) and, with ``need_input``, d f_r / d x_r
    (R, S, D); rows independent. One forward of f over all rows, then its pull-back vmapped over
    the S unit cotangents (a loop of pull-backs where the step has an op vmap does not cover)."""
    with torch.enable_grad():
        if need_input:
            out, pull = vjp(f, x, s)
        else:  # the input's pull-back would cost as much again
            out, pull_s = vjp(lambda s_: f(x, s_), s)
            pull = lambda v: (v[..., :0], *pull_s(v))  # noqa: E731
    R, S = out.shape
    basis = torch.eye(S, dtype=out.dtype, device=out.device)[:, None, :].expand(S, R, S)
    try:
        gx, gs = vmap(pull)(basis)
    except RuntimeError:
        rows = [pull(basis[i]) for i in range(S)]
        gs = torch.stack([r[1] for r in rows])
        gx = torch.stack([r[0] for r in rows]) if need_input else None
    # the transforms ignore the caller's no_grad: nothing of the measurement keeps a graph
    return gs.detach().permute(1, 0, 2).contiguous(), \
        (gx.detach().permute(1, 0, 2).contiguous() if need_input else None)


def record(step: Callable, x: Tensor, state0: tuple, burn_in: int = 0,
           parts: tuple[str, ...] | None = None, budget: int = BUDGET, top: int = 0,
           weight: tuple | None = None) -> Recorded:
    """Run ``step`` over x (B, burn_in + T, D) from ``state0`` (a tuple of (B, N_i)), and return
    what the engine measures: the part ``top`` (the h the readout sees, (T, B, N_top)) of the
    measured steps, their derived step Jacobians, and the state entering measured step 0.
    ``parts`` names the state's parts ("h" for an h; any other name is reported on its own)."""
    sizes = tuple(s.shape[1] for s in state0)
    inp = x.transpose(0, 1)
    s = torch.cat(state0, -1)
    f = flat_step(step, sizes)
    states = []
    with torch.no_grad():
        for t in range(inp.shape[0]):
            s = f(inp[t], s)
            states.append(s)
    states = torch.stack(states)  # (burn_in + T, B, S)
    s_in = states[burn_in - 1] if burn_in else torch.cat(state0, -1)
    prev = torch.cat([s_in[None], states[burn_in:-1]]) if states.shape[0] > burn_in else \
        states[:0]
    layer = StepJacobians(step, inp[burn_in:], prev, sizes, parts, budget=budget, top=top,
                          weight=weight)
    h = states[burn_in:, :, layer.top_offset:layer.top_offset + layer.hidden]
    log_scale = torch.zeros(h.shape[:2], dtype=torch.float64, device=h.device)
    return Recorded(h, log_scale, Stack([layer]), s_in.double())


def record_cell(cell, p, x: Tensor, h0: Tensor, burn_in: int = 0,
                budget: int = BUDGET) -> Recorded:
    """``record`` of a registered cell's one-layer network ``p`` through its differentiable
    ``reference_step`` (``measure.jacobians=derived``): h0 (B, S) split into the cell's state
    parts as its hand-written forward takes it, with the cell's readout offset."""
    N = p.hidden_size * cell.components
    state0 = tuple(h0[:, i * N:(i + 1) * N] for i in range(len(cell.state_parts)))
    rec = record(cell.reference_step(p), x, state0, burn_in, cell.state_parts, budget,
                 weight=cell_weight(cell, p))
    if cell.readout_offset is not None:
        rec.offset = cell.readout_offset(p, x[:, burn_in:]).transpose(0, 1)
    return rec


def cell_weight(cell, p) -> tuple | None:
    """(W, step_of) of a registered cell: its recurrent weight ``Cell.recurrent`` (every gate
    block stacked) and its reference step as a function of it; None for a cell without one."""
    if cell.recurrent is None:
        return None
    return getattr(p, cell.recurrent), \
        lambda W: cell.reference_step(replace(p, **{cell.recurrent: W}))


def sensitivity(cell, p, x: Tensor, h0: Tensor, burn_in: int = 0
                ) -> tuple[list[float], Tensor]:
    """The dense sensitivity (``rnnlab.engine.sensitivity``) on derived maps: per gate block g
    of W, the mean over measured steps and batch of ||ds_t/dW_g||_F^2 / N, the tangent
    tau_t = J_t tau_{t-1} + (d s_t / d W_g) carried over every entry of the block from where
    the run starts (burn-in included, not averaged). Also the measured states (T, B, S)."""
    rec = record_cell(cell, p, x, h0, 0)
    layer = rec.maps.layers[0]
    W = layer.W
    G, N = W.shape[0] // W.shape[1], W.shape[1]
    T_all, B = rec.u.shape[:2]
    rows = []
    for g in range(G):
        # the unit tangents of block g's entries, (N^2, G N, N)
        E = torch.zeros((N * N,) + tuple(W.shape), dtype=W.dtype, device=W.device)
        idx = torch.arange(N * N, device=W.device)
        E[idx, g * N + idx // N, idx % N] = 1
        tau = W.new_zeros(B, layer.size, N * N)
        total = torch.zeros((), dtype=torch.float64, device=W.device)
        for k in range(T_all):
            tau = layer.jvp(k, tau) + layer.param_tangent(k, E)
            if k >= burn_in:
                total += (tau.double() ** 2).sum()
        rows.append(total.item() / (N * B * (T_all - burn_in)))
    states = torch.cat([layer.prev[1:], layer.f(layer.x[-1], layer.prev[-1])[None]])
    return rows, states[burn_in:]
