"""Measure a recurrent network the user already has: ``torch.nn.RNN``, ``GRU`` or ``LSTM`` (any
``num_layers``, either ``batch_first``; the tutorial's ``RNN`` class too) with its own weights.

The measured state at step k is every layer's h (and, for an LSTM, c) together, s_k, and the
measurement is the same exact log-domain sweep as for rnnlab's own networks: ||dL_t/ds_k|| for
every pair k <= t, the ratio to ||dL_t/ds_t||, and the decay rate of the ratio with the lag t - k
(natural log per step). The step Jacobian of a stack is block lower-triangular (layer l reads
layer l-1's new h), see ``rnnlab.engine.cells.Stack``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from ..checks import choice
from . import adjoint, cells, derived
from .fit import fit_decay, lag_table
from .heads import as_targets, check_threads, head_gradient, readout_of
from .model import LOSSES, RNN, ElmanParams
from .step_modules import is_step_module, step_trajectory
from .threads import threads_for, torch_threads
from .weightgrad import WeightGradStats


@dataclass
class ModuleMeasurement:
    """What ``measure_module`` returns: ``lags`` (the columns of lags.parquet), the fitted
    ``decay_rate`` (nats per step) with ``decay_rate_stderr`` and ``regime``, the whole ``fit``
    record, with ``keep_matrix`` the (T, T) batch mean ``log10_grad`` of log10 ||dL_t/ds_k||, and
    with ``weight_grad`` the part of dL/dW_hh carried by each lag (``rnnlab.engine.weightgrad``)."""

    lags: pd.DataFrame
    decay_rate: float
    decay_rate_stderr: float
    regime: str
    fit: dict
    log10_grad: np.ndarray | None = None
    weight_grad: pd.DataFrame | None = None


def _check_module(rnn: nn.Module, x) -> None:
    if isinstance(x, nn.utils.rnn.PackedSequence):
        raise ValueError("x is a PackedSequence: measure_module takes a padded tensor of "
                         "equal-length sequences, shaped as the module expects")
    if not isinstance(rnn, (nn.RNN, nn.GRU, nn.LSTM)):
        raise TypeError(f"rnn is a {type(rnn).__name__}; measure_module takes torch.nn.RNN, "
                        "torch.nn.GRU, torch.nn.LSTM, rnnlab.engine.model.RNN, or a module "
                        "with step(x_t, state) -> state and init_state(batch_size)")
    if rnn.bidirectional:
        raise ValueError("rnn.bidirectional=True is not supported: a backward-in-time layer has "
                         "no forward recurrence to measure; use bidirectional=False")
    if getattr(rnn, "proj_size", 0):
        raise ValueError(f"rnn.proj_size={rnn.proj_size} is not supported: use an LSTM "
                         "without projections (proj_size=0)")
    if rnn.training and rnn.dropout > 0:
        raise ValueError(f"rnn.dropout={rnn.dropout} in training mode is not supported: the "
                         "measurement needs a deterministic network; call rnn.eval() first")
    if x.dim() != 3 or x.shape[-1] != rnn.input_size:
        axes = "(batch, seq" if rnn.batch_first else "(seq, batch"
        raise ValueError(f"x has shape {tuple(x.shape)}, expected {axes}, {rnn.input_size}) "
                         f"for this module (batch_first={rnn.batch_first}, "
                         f"input_size={rnn.input_size})")


def _layers(rnn: nn.Module) -> list:
    """``(cell name, weights)`` per layer, for ``rnnlab.engine.cells.run_layers``."""
    cell = cells.for_module(rnn)
    out = []
    for l in range(rnn.num_layers):
        if rnn.bias:
            b_ih, b_hh = (getattr(rnn, f"bias_{n}_l{l}").detach() for n in ("ih", "hh"))
        else:
            b_ih = b_hh = torch.zeros_like(getattr(rnn, f"weight_hh_l{l}")[:, 0])
        out.append((cell.name, cell.module_layer(rnn, l, b_ih, b_hh)))
    return out


def torch_step(rnn: nn.Module) -> Callable:
    """The step of a ``torch.nn.RNN`` / ``GRU`` / ``LSTM`` stack, ``(x_t, state) -> state`` with
    the state every layer's h (and c) in order (h_1, c_1, h_2, ...), through one
    ``torch.nn.RNNCell`` / ``GRUCell`` / ``LSTMCell`` per layer loaded with its weights."""
    N, L, ref = rnn.hidden_size, rnn.num_layers, rnn.weight_hh_l0
    make = {nn.GRU: nn.GRUCell, nn.LSTM: nn.LSTMCell}.get(type(rnn))
    for kind in (nn.GRU, nn.LSTM):
        if make is None and isinstance(rnn, kind):
            make = {nn.GRU: nn.GRUCell, nn.LSTM: nn.LSTMCell}[kind]
    layers = []
    for l in range(L):
        D = rnn.input_size if l == 0 else N
        cell = make(D, N, bias=rnn.bias, dtype=ref.dtype, device=ref.device) if make else \
            nn.RNNCell(D, N, bias=rnn.bias, nonlinearity=rnn.nonlinearity, dtype=ref.dtype,
                       device=ref.device)
        with torch.no_grad():
            for name, _ in cell.named_parameters():
                getattr(cell, name).copy_(getattr(rnn, f"{name}_l{l}"))
        layers.append(cell)
    lstm = isinstance(rnn, nn.LSTM)

    def step(x_t, s):
        out, inp = [], x_t
        for l, cell in enumerate(layers):
            if lstm:
                h, c = cell(inp, (s[2 * l], s[2 * l + 1]))
                out += [h, c]
            else:
                h = cell(inp, s[l])
                out.append(h)
            inp = h
        return tuple(out)

    return step


def _check_h0(rnn: nn.Module, h0, B: int) -> None:
    L, N = rnn.num_layers, rnn.hidden_size
    want = (L, B, N)
    lstm = isinstance(rnn, nn.LSTM)
    if lstm and not (isinstance(h0, (tuple, list)) and len(h0) == 2
                     and all(isinstance(t, Tensor) for t in h0)):
        raise ValueError(f"h0 is a {type(h0).__name__}; an LSTM takes h0 as a tuple (h0, c0) of "
                         f"two tensors shaped (num_layers, batch, hidden_size) = {want}")
    if not lstm and not isinstance(h0, Tensor):
        raise ValueError(f"h0 is a {type(h0).__name__}; this module takes one tensor shaped "
                         f"(num_layers, batch, hidden_size) = {want}")
    for name, t in zip(("h0", "h0[1] (c0)"), h0 if lstm else (h0,)):
        if tuple(t.shape) != want:
            raise ValueError(f"{name} has shape "
                             f"{tuple(t.shape)}, expected (num_layers, batch, hidden_size) = "
                             f"{want}; torch's initial state is never batch-first, whatever "
                             f"batch_first={rnn.batch_first}")


def module_trajectory(rnn: nn.Module, x: Tensor, y_target: Tensor, head: nn.Module | None = None,
                      loss: str = "xent", h0=None, threads: int | None = None,
                      jacobians: str = "cell", weight: str | None = None
                      ) -> adjoint.Trajectory:
    """The engine's forward pass (``rnnlab.engine.adjoint.Trajectory``) of a torch RNN with its
    own weights: the recorded step maps and g_t = dL_t/dh_t of every step. Arguments and checks
    as ``measure_module``; everything the engine measures (the pair sweep, the O(T) profiles
    ``adjoint.loss_profiles``, the Lyapunov QR ``lyapunov.lyapunov_from_maps``) starts here.
    A module with ``step`` and ``init_state`` of the user's goes through ``step_trajectory``."""
    if is_step_module(rnn):
        return step_trajectory(rnn, x, y_target, head, loss, h0, threads, jacobians, weight)
    choice("jacobians", jacobians, cells.JACOBIANS)
    if isinstance(rnn, RNN):  # the tutorial's class: nn.RNN + nn.Linear
        head = rnn.fc if head is None else head
        rnn = rnn.rnn
    _check_module(rnn, x)
    choice("loss", loss, LOSSES)
    check_threads(threads)
    N = rnn.hidden_size
    ref = rnn.weight_hh_l0
    readout, C, linear = readout_of(head, N, ref)
    x_b = (x if rnn.batch_first else x.transpose(0, 1)).to(ref.dtype)
    y = as_targets(y_target, rnn.batch_first, C, ref)
    if y.shape[:2] != x_b.shape[:2]:
        raise ValueError(f"y_target covers (batch, seq) = {tuple(y.shape[:2])} but x covers "
                         f"{tuple(x_b.shape[:2])} (both batch first here; as given, "
                         f"batch_first={rnn.batch_first})")
    B, L = x_b.shape[0], rnn.num_layers
    if h0 is None:
        zeros = torch.zeros(L, B, N, dtype=ref.dtype, device=ref.device)
        h0 = (zeros, zeros) if isinstance(rnn, nn.LSTM) else zeros
    _check_h0(rnn, h0, B)
    state0 = [(h0[0][l], h0[1][l]) if isinstance(rnn, nn.LSTM) else (h0[l],) for l in range(L)]
    layers = _layers(rnn)
    if threads is None:
        threads = threads_for(ref.device, B, N)
    with torch.no_grad(), torch_threads(threads):
        if jacobians == "derived":
            lstm = isinstance(rnn, nn.LSTM)
            flat = tuple(t for s in state0 for t in s)
            parts = ("h", "c") * L if lstm else ("h",) * L
            recorded = derived.record(torch_step(rnn), x_b, flat, 0, parts,
                                      top=len(parts) - (2 if lstm else 1))
        elif layers[0][0] == "elman" and L == 1:
            # one Elman layer: the exact path of rnnlab's own networks, log-scaled for relu
            W_ih, W_hh, b, activation = layers[0][1]
            p = ElmanParams(W_ih, W_hh, b, readout.V, readout.c, activation)
            recorded = cells.get("elman").forward(p, x_b, state0[0][0], 0)
        else:
            recorded = cells.run_layers(layers, x_b, state0)
        grad = None if linear else head_gradient(head, recorded, y, loss)
        return adjoint.trajectory(recorded, readout, y, loss, grad=grad)


def measure_module(rnn: nn.Module, x: Tensor, y_target: Tensor, head: nn.Module | None = None,
                   loss: str = "xent", max_lag: int | None = None, keep_matrix: bool = False,
                   h0=None, fit_min_lag: int = 1, fit_max_lag: int | None = None,
                   neutral_tol: float = 1e-3, progress: bool = False,
                   weight_grad: bool | str = False, loss_steps=None,
                   threads: int | None = None, jacobians: str = "cell") -> ModuleMeasurement:
    """||dL_t/ds_k|| for every pair k <= t of a torch RNN with its own weights, in its dtype.

    ``x`` and ``y_target`` are laid out as the module expects (``batch_first`` or not);
    ``y_target`` holds targets over the readout's outputs or integer class indices. ``head``: the
    module mapping the top layer's h to the outputs at each step (None: the identity, o = h): a
    ``torch.nn.Linear`` takes the engine's exact readout path; any other differentiable module
    (an MLP, ``nn.Sequential``) shapes only g_t = dL_t/dh_t, which autograd computes through it,
    and the exact engine does the rest. The head must act on each step alone. ``loss``: ``xent``,
    ``mse`` (the tutorial's softmax-then-squared-error) or ``mse_linear`` (squared error of the
    raw readout). ``h0``: the initial state as the module takes it (default zeros). The decay
    rate is fitted over ``fit_min_lag <= lag <= fit_max_lag`` (``rnnlab.engine.fit.fit_decay``).
    ``weight_grad`` (one-layer modules): also the weight gradient by lag, in the same sweep, of
    the summed loss over the steps ``loss_steps`` (a (T,) boolean mask; default every step); for
    a module measured through its ``step``, of its parameter ``W``, or of the parameter
    ``weight_grad`` names.

    A module of the user's with ``step(x_t, state) -> state`` (x_t (B, D), state a tuple of
    (B, N_i) tensors, h first) and ``init_state(batch_size)`` is measured through its step: x
    and y_target are then time-major, (T, B, D) and (T, B, C) or class indices (T, B); h0 a
    state tuple; the measured state is the concatenated parts (named by the module's
    ``state_parts``, if it has one: every part but "h" gets its own columns); its step Jacobians
    are derived by ``torch.func`` (``jacobians='cell'`` falls back to ``'derived'`` and says so
    once).
    ``threads``: torch threads for this call (None: as the command line chooses, one thread on
    CPU when B N^2 < 2^21, else torch's default; ``rnnlab.engine.threads``); the caller's count
    is restored after. Convert the module with ``.double()`` for reference-quality numbers.
    """
    if max_lag is not None and (isinstance(max_lag, bool) or not isinstance(max_lag, int)
                                or max_lag < 0):
        raise ValueError(f"max_lag={max_lag!r} is not allowed; it must be null or an integer >= 0")
    weight = None
    if weight_grad and is_step_module(rnn):  # the parameter the weight gradient is of
        weight = "W" if weight_grad is True else weight_grad
    traj = module_trajectory(rnn, x, y_target, head, loss, h0, threads, jacobians, weight)
    _, B, _ = traj.shape
    if threads is None:
        threads = threads_for(traj.u.device, B, traj.u.shape[-1])
    with torch.no_grad(), torch_threads(threads):
        wg = WeightGradStats(traj, max_lag, loss_steps=loss_steps) if weight_grad else None
        profile = adjoint.pair_profile(traj, max_lag, keep_matrix=keep_matrix,
                                         progress=progress, also=wg)
    fit = fit_decay(profile.lag, profile.ln_ratio, fit_min_lag, fit_max_lag, neutral_tol)
    return ModuleMeasurement(pd.DataFrame(lag_table(profile)), fit["decay_rate"],
                             fit["decay_rate_stderr"], fit["regime"], fit, profile.log10_grad,
                             None if wg is None else pd.DataFrame(wg.result()))
