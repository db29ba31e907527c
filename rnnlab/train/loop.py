"""Train a torch RNN on a long-dependency task (``rnnlab.tasks``): the pure core, no Hydra, no files
except ``save_model`` / ``load_model``.

Model: ``torch.nn.RNN`` (tanh or relu), ``torch.nn.GRU``, ``torch.nn.LSTM`` or the LRU block of
``rnnlab.train.lru`` (``arch=lru``), batch first, then a ``torch.nn.Linear`` head on the top
layer's h (at the last step, or every step for copy; the LRU block's MLP output). The
logistic-sigmoid RNN of Pascanu et al. 2013, which ``nn.RNN`` does not offer, is ``SigmoidRNN``
with ``nn.RNN``'s parameter names. IRNN (Le, Jaitly, Hinton 2015) is ``cell=elman,
activation=relu, init=identity``: W = I and zero biases.

Recurrent inits (``init``): ``pytorch`` leaves every weight as torch draws it; ``gaussian``
(W_ij ~ N(0, 1/N) times ``gain``, or rescaled to ``spectral_radius`` exactly), ``orthogonal``
(Haar Q times rho) and ``identity`` (rho I) set each gate's recurrent block as the measurement
runs do (``rnnlab.engine.init.recurrent_matrix``) and zero every bias; the input weights and the
head keep torch's draws. Pascanu et al. 2013 (arXiv:1211.5063, their ``RNN.py``):
``pascanu_sigmoid`` (every weight N(0, 0.01^2), sigmoid units), ``pascanu_basic_tanh`` (every
weight N(0, 0.1^2), tanh), ``pascanu_smart_tanh`` (input and output N(0, 0.01^2); W with 15
non-zeros per row of their h_{t-1} W layout, i.e. per column of torch's ``weight_hh``, rescaled to
spectral radius 0.95), all biases zero, drawn in their order from one ``RandomState``.

Optimisation: SGD, RMSProp or Adam on the task loss of a fresh batch each step (with
``regularizer=omega``, plus alpha dOmega/dW_hh of Pascanu's regulariser, ``rnnlab.train.omega``);
gradient clipping by the joint norm over all parameters, ``g <- clip g / ||g||`` when ``||g|| >
clip`` (strict, as Pascanu's code). Every ``eval_every`` steps (and at step 0) the model is scored
on ``eval_size`` fresh sequences from the validation stream; when fewer than 1% are wrong the fixed
test set (``test_size`` sequences from the test stream, Pascanu's 10,000) confirms it and the run
stops as solved. ``eval_error_rate`` is always the test-set score of the returned model, so a saved
model reproduces it. A loss or gradient norm that becomes NaN or inf ends the run as ``failed`` with
the step and the reason, without raising.

Random streams: ``stream(seed, name)`` is ``RandomState([seed, k])`` for the task data (``train``,
``valid``, ``test``, ``probe``) and Pascanu's inits (``init``); torch's own draws use
``torch.manual_seed(seed)`` inside a forked RNG, so a run never disturbs the caller's random state.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .. import tasks
from ..engine import cells
from ..engine.init import recurrent_matrix
from ..runs.store import atomic_write
from .config import DTYPES, OPTIMIZERS, PASCANU_INITS, RECURRENT_INITS, TrainConfig
from .flossing import Flosser
from .lru import LRU_KEYS, LRUBlock
from .omega import omega_backward
from .orthogonal import keep_orthogonal, plain_state_dict

STREAMS = {"init": 0, "train": 1, "valid": 2, "test": 3, "probe": 4, "floss": 5}


def stream(seed: int, name: str) -> np.random.RandomState:
    """The seeded legacy numpy stream ``name`` of a run (see the module docstring)."""
    return np.random.RandomState([seed, STREAMS[name]])


class SigmoidRNN(nn.Module):
    """h_t = sigmoid(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), with ``nn.RNN``'s parameter names,
    default init and batch-first interface: ``forward(x, h0=None) -> (out (B, T, N), h_n)``."""

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
        drive = x @ self.weight_ih_l0.T + self.bias_ih_l0 + self.bias_hh_l0
        h = x.new_zeros(x.shape[0], self.hidden_size) if h0 is None else h0[0]
        out = []
        for t in range(x.shape[1]):
            h = torch.sigmoid(torch.addmm(drive[:, t], h, self.weight_hh_l0.T))
            out.append(h)
        return torch.stack(out, 1), h.unsqueeze(0)


def modules(cell: str, activation: str, input_size: int, hidden_size: int, output_size: int,
            lru: dict | None = None, dtype: torch.dtype | None = None):
    """Bare (rnn, head) with torch's default init, from the global torch RNG; ``cell='lru'``:
    ``rnnlab.train.lru.LRUBlock`` with the ring keys ``lru`` (r_min, r_max, max_phase,
    normalize), its ring drawn in float64 and cast to ``dtype``."""
    if cell == "lru":
        rnn = LRUBlock(input_size, hidden_size, **lru, dtype=dtype)
    elif cell == "gru":
        rnn = nn.GRU(input_size, hidden_size, batch_first=True)
    elif cell == "lstm":
        rnn = nn.LSTM(input_size, hidden_size, batch_first=True)
    elif activation == "sigmoid":
        rnn = SigmoidRNN(input_size, hidden_size)
    else:
        rnn = nn.RNN(input_size, hidden_size, nonlinearity=activation, batch_first=True)
    return rnn, nn.Linear(hidden_size, output_size)


def _pascanu_init(cfg: TrainConfig, rnn, head):
    """Pascanu et al.'s draws, in his order, from the ``init`` stream (his W_hh acts as h W_hh)."""
    std, _, smart = PASCANU_INITS[cfg.init]
    rng = stream(cfg.seed, "init")
    N, D, C = cfg.hidden_size, rnn.input_size, head.out_features
    W_uh = rng.normal(size=(D, N), scale=std, loc=0.)
    W_hh = rng.normal(size=(N, N), scale=std, loc=0.)
    if smart:
        for row in range(N):
            W_hh[row][rng.permutation(N)[15:]] = 0.
        W_hh = 0.95 * W_hh / np.max(np.abs(np.linalg.eigvals(W_hh)))
    W_hy = rng.normal(size=(N, C), scale=std, loc=0.)
    for p, value in ((rnn.weight_ih_l0, W_uh.T), (rnn.weight_hh_l0, W_hh.T), (head.weight, W_hy.T)):
        p.copy_(torch.from_numpy(np.ascontiguousarray(value)))
    for p in (rnn.bias_ih_l0, rnn.bias_hh_l0, head.bias):
        p.zero_()


def build(cfg: TrainConfig):
    """The initial (rnn, head) of a run in ``cfg.dtype``; the same config gives the same weights."""
    task = tasks.spec(cfg.task)
    N = cfg.hidden_size
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        rnn, head = modules(cfg.cell, cfg.activation, task.input_size, N, task.output_size,
                            {k: getattr(cfg, k) for k in LRU_KEYS}, DTYPES[cfg.dtype])
    dtype = DTYPES[cfg.dtype]
    rnn, head = rnn.to(dtype), head.to(dtype)  # before the draws, so float64 keeps every digit
    with torch.no_grad():
        if cfg.init in PASCANU_INITS:
            _pascanu_init(cfg, rnn, head)
        elif cfg.init in RECURRENT_INITS:
            g = torch.Generator().manual_seed(cfg.seed)
            # each gate's recurrent block, PyTorch's order
            for gate in range(cells.get(cfg.cell).gates):
                W = recurrent_matrix(N, cfg.init, cfg.rho, cfg.gain, g)
                rnn.weight_hh_l0[gate * N:(gate + 1) * N] = W
            rnn.bias_ih_l0.zero_()
            rnn.bias_hh_l0.zero_()
    if cfg.orthogonal:
        keep_orthogonal(rnn)
    return rnn, head


def predict(task: tasks.TaskSpec, rnn, head, x: Tensor) -> Tensor:
    """The head on the top layer's h where the task reads it (last step, or every step)."""
    out, _ = rnn(x)
    return head(tasks.readout(task, out))


def sample(task_name: str, batch: int, length: int, rng, dtype) -> tuple[Tensor, Tensor]:
    x, y = tasks.generate(task_name, batch, length, rng)
    return torch.from_numpy(x).to(dtype), torch.from_numpy(y).to(dtype)


@dataclass(frozen=True)
class Evaluation:
    """Mean loss and error count over ``count`` counted predictions (sequences; copy: symbols)."""

    loss: float
    errors: int
    count: int

    @property
    def error_rate(self) -> float:
        return self.errors / self.count


def evaluate(rnn, head, task_name: str, length: int, rng, n: int, chunk: int) -> Evaluation:
    """Score on ``n`` fresh sequences drawn from ``rng`` in calls of ``chunk`` (the last one
    smaller); each adding/multiplication call draws its own length l, as in Pascanu's code."""
    task = tasks.spec(task_name)
    dtype = next(head.parameters()).dtype
    total, wrong, counted, done = 0.0, 0, 0, 0
    with torch.no_grad():
        while done < n:
            b = min(chunk, n - done)
            x, y = sample(task_name, b, length, rng, dtype)
            pred = predict(task, rnn, head, x)
            total += tasks.loss(task, pred, y).item() * b
            w, c = tasks.errors(task, pred, y)
            wrong, counted, done = wrong + w, counted + c, done + b
    return Evaluation(total / n, wrong, counted)


def clip_joint_norm(parameters, clip: float | None) -> float:
    """The joint gradient norm ||g|| over all parameters (Pascanu's norm_theta); when ``clip`` is
    set and ``||g|| > clip`` (strict), every gradient is scaled by clip / ||g||. Returns ||g||
    before clipping. Not ``torch.nn.utils.clip_grad_norm_``: it divides by ||g|| + 1e-6, so it
    leaves the norm slightly below the threshold and also rescales gradients just under it."""
    grads = [p.grad for p in parameters if p.grad is not None]
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    norm = norm.item()
    if clip is not None and norm > clip:
        for g in grads:
            g.mul_(clip / norm)
    return norm


# the decay rate, or a dict of curve columns ({"decay_rate": ..., "lyap_1": ...})
Measure = Callable[[nn.Module, nn.Linear, Tensor, Tensor], "float | dict"]


@dataclass
class TrainResult:
    """What a run reports. ``curve`` has one row per evaluation point: step, train_loss (mean
    since the last point), grad_norm (mean joint norm before clipping), clip_fraction,
    eval_loss, eval_error_rate, eval_count (validation), decay_rate and, with ``lyap_k`` > 0,
    lyap_1 .. lyap_k (the ``measure`` hook's columns; decay_rate NaN without one), and with
    ``regularizer=omega`` omega (Pascanu's Omega, mean since the last point), with
    ``regularizer=flossing`` floss_loss (the flossing loss, mean over the flossing updates since
    the last point; at step 0 the updates before training). ``eval_*``
    and ``final_loss`` are the test set's score of ``rnn``/``head`` (``eval_count``
    predictions: sequences, or 10 recalled symbols per copy sequence); losses are in the task's
    units (mse: target units squared; xent: nats). ``steps_to_solve`` is the
    evaluation step (a multiple of ``eval_every``) at which the validation sequences and then the
    test set showed fewer than 1% errors; None when unsolved. ``initial_decay_rate`` is the
    ``measure`` hook's value at step 0. A failed run's test set is not scored (eval_error_rate and
    final_loss NaN, eval_count 0): its weights are those before the step that failed."""

    config: dict
    status: str  # "completed" or "failed"
    solved: bool
    steps_to_solve: int | None
    steps_done: int
    eval_error_rate: float
    eval_errors: int
    eval_count: int
    final_loss: float
    baseline_loss: float
    baseline_error_rate: float
    initial_decay_rate: float
    failure: str | None
    seconds: float
    curve: pd.DataFrame
    rnn: nn.Module = field(repr=False)
    head: nn.Linear = field(repr=False)

    def record(self) -> dict:
        """Every scalar of the result (for run.json)."""
        skip = ("config", "curve", "rnn", "head")
        return {"task": self.config["task"],
                **{k: v for k, v in self.__dict__.items() if k not in skip}}


def train(cfg: TrainConfig, measure: Measure | None = None, progress: bool | None = None
          ) -> TrainResult:
    """Train one run; ``progress=None`` shows a tqdm bar on a terminal only."""
    cfg.validate()
    task = tasks.spec(cfg.task)
    dtype = DTYPES[cfg.dtype]
    rnn, head = build(cfg)
    params = [*rnn.parameters(), *head.parameters()]
    opt = OPTIMIZERS[cfg.optimizer](params, lr=cfg.lr)
    train_rng, valid_rng = stream(cfg.seed, "train"), stream(cfg.seed, "valid")
    probe = sample(cfg.task, cfg.probe_size, cfg.length, stream(cfg.seed, "probe"), dtype)
    test = lambda: evaluate(rnn, head, cfg.task, cfg.length, stream(cfg.seed, "test"),
                            cfg.test_size, cfg.eval_batch)
    rows, window, norms, omegas, clipped = [], [], [], [], 0
    solved_at, failure, steps_done, final = None, None, 0, None
    bar = tqdm(total=cfg.steps, desc=f"{cfg.task} T={cfg.length} {cfg.cell}", leave=False,
               disable=None if progress is None else not progress)
    start = time.perf_counter()

    def checkpoint(step):
        ev = evaluate(rnn, head, cfg.task, cfg.length, valid_rng, cfg.eval_size, cfg.eval_batch)
        measured = {} if measure is None else measure(rnn, head, *probe)
        if not isinstance(measured, dict):  # a hook giving the decay rate alone
            measured = {"decay_rate": float(measured)}
        rows.append({"step": step, "train_loss": np.mean(window) if window else math.nan,
                     "grad_norm": np.mean(norms) if norms else math.nan,
                     "clip_fraction": clipped / len(norms) if norms else math.nan,
                     "eval_loss": ev.loss, "eval_error_rate": ev.error_rate,
                     "eval_count": ev.count, "decay_rate": math.nan, **measured})
        if cfg.regularizer == "omega":
            rows[-1]["omega"] = np.mean(omegas) if omegas else math.nan
        if flosser is not None:  # the flossing updates since the last point
            rows[-1]["floss_loss"] = np.mean(flosser.losses) if flosser.losses else math.nan
            flosser.losses.clear()
        bar.set_postfix(loss=f"{ev.loss:.4g}", err=f"{100 * ev.error_rate:.1f}%")
        return ev

    flosser = Flosser(cfg, rnn, stream(cfg.seed, "floss")) \
        if cfg.regularizer == "flossing" else None
    if flosser is not None:
        failure = flosser.run(cfg.floss_pre_steps, at=0)
    checkpoint(0)
    for step in range(1, cfg.steps + 1):
        if failure is not None:
            break
        x, y = sample(cfg.task, cfg.batch_size, cfg.length, train_rng, dtype)
        opt.zero_grad(set_to_none=True)
        if cfg.regularizer == "omega":
            loss, Omega = omega_backward(rnn, head, task, x, y, cfg.activation, cfg.reg_weight)
            omegas.append(Omega)
        else:
            loss = tasks.loss(task, predict(task, rnn, head, x), y)
        if not torch.isfinite(loss):
            failure = f"train loss became {loss.item()} at step {step}"
            break
        if cfg.regularizer != "omega":  # omega_backward has set every gradient
            loss.backward()
        norm = clip_joint_norm(params, cfg.clip)
        if not math.isfinite(norm):
            failure = f"gradient norm became {norm} at step {step}"
            break
        opt.step()
        steps_done = step
        window.append(loss.item())
        norms.append(norm)
        clipped += cfg.clip is not None and norm > cfg.clip
        bar.update(1)
        if flosser is not None and flosser.due(step):
            flosser.phases += 1
            failure = flosser.run(cfg.floss_steps, at=step)
            if failure is not None:
                break
        if step % cfg.eval_every == 0 or step == cfg.steps:
            ev = checkpoint(step)
            window, norms, omegas, clipped = [], [], [], 0
            if ev.error_rate < tasks.SUCCESS_ERROR_RATE:
                final = test()
                if final.error_rate < tasks.SUCCESS_ERROR_RATE:
                    solved_at = step
                    break
    bar.close()
    if failure is not None:
        final = Evaluation(math.nan, 0, 0)
    elif final is None or solved_at is None:
        final = test()
    seconds = time.perf_counter() - start
    config = {**asdict(cfg), "input_size": task.input_size, "output_size": task.output_size}
    return TrainResult(
        config=config, status="failed" if failure else "completed",
        solved=solved_at is not None, steps_to_solve=solved_at, steps_done=steps_done,
        eval_error_rate=final.error_rate if final.count else math.nan,
        eval_errors=final.errors, eval_count=final.count, final_loss=final.loss,
        baseline_loss=task.baseline_loss(cfg.length), baseline_error_rate=task.baseline_error_rate,
        initial_decay_rate=rows[0]["decay_rate"], failure=failure, seconds=seconds,
        curve=pd.DataFrame(rows), rnn=rnn, head=head)


def save_model(path, rnn: nn.Module, head: nn.Linear, config: dict) -> None:
    """Write ``{"rnn": state_dict, "head": state_dict, "config": config}`` (config: plain
    scalars with at least ``cell`` and ``activation``), via a temporary file and a rename. A
    parametrised recurrence (``model.orthogonal``) is saved materialised under the plain module's
    names (``rnnlab.train.orthogonal.plain_state_dict``)."""
    atomic_write(Path(path), lambda p: torch.save({"rnn": plain_state_dict(rnn),
                                                  "head": head.state_dict(),
                                                  "config": dict(config)}, p))


def load_model(path):
    """(rnn, head, config) rebuilt as plain torch modules from a ``save_model`` file; sizes and
    dtype come from the saved weights (an LRU: ``rnnlab.train.lru.LRUBlock``, its ring keys
    from ``config``)."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    cfg, rnn_sd, head_sd = saved["config"], saved["rnn"], saved["head"]
    if cfg["cell"] == "lru":  # nu (N,), B_re (N, D)
        (N, D), ref = rnn_sd["B_re"].shape, rnn_sd["nu"]
    else:
        N, D = rnn_sd["weight_hh_l0"].shape[1], rnn_sd["weight_ih_l0"].shape[1]
        ref = rnn_sd["weight_hh_l0"]
    rnn, head = modules(cfg["cell"], cfg["activation"], D, N, head_sd["weight"].shape[0],
                        {k: cfg.get(k) for k in LRU_KEYS}, ref.dtype)
    dtype = ref.dtype
    rnn, head = rnn.to(dtype), head.to(dtype)
    rnn.load_state_dict(rnn_sd)
    head.load_state_dict(head_sd)
    return rnn, head, cfg
