"""Train a cell module on a long-dependency task (``rnnlab.tasks``): the pure core, no Hydra, no
files. ``train(cfg)`` trains a run's network (``rnnlab.train.networks.build``: a registered
cell's module and a ``torch.nn.Linear`` head); ``train_module(cell, ...)`` trains a user's own
cell module (any ``torch.nn.Module`` with ``step`` and ``init_state``,
``rnnlab.train.sequence``) through the same loop.

Optimisation: SGD, RMSProp or Adam on the task loss of a fresh batch each step, through the
run's regulariser (``rnnlab.train.regularizer``: none, Pascanu's Omega, gradient flossing);
gradient clipping by the joint norm over all parameters, ``g <- clip g / ||g||`` when ``||g|| >
clip`` (strict, as Pascanu's code). Every ``eval_every`` steps (and at step 0) the model is scored
on ``eval_size`` fresh sequences from the validation stream; when fewer than 1% are wrong the fixed
test set (``test_size`` sequences from the test stream, Pascanu's 10,000) confirms it and the run
stops as solved. ``eval_error_rate`` is always the test-set score of the returned model, so a saved
model reproduces it. A loss or gradient norm that becomes NaN or inf ends the run as ``failed`` with
the step and the reason, without raising. Random streams: ``rnnlab.train.data``.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .. import tasks
from .config import DTYPES, MODEL_KEYS, OPTIMIZERS, TrainConfig
from .data import sample, stream
from .networks import build, load_model, save_model  # noqa: F401 (this module's callers' names)
from .regularizer import Regularizer, make
from .sequence import Network, check_cell_module, outputs, predict

# the decay rate, or a dict of curve columns ({"decay_rate": ..., "lyap_1": ...})
Measure = Callable[[nn.Module, nn.Linear, Tensor, Tensor], "float | dict"]


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


@dataclass
class TrainResult:
    """What a run reports. ``curve`` has one row per evaluation point: step, train_loss (mean
    since the last point), grad_norm (mean joint norm before clipping), clip_fraction,
    eval_loss, eval_error_rate, eval_count (validation), decay_rate and, with ``lyap_k`` > 0,
    lyap_1 .. lyap_k (the ``measure`` hook's columns; decay_rate NaN without one), then the
    regulariser's columns: with ``regularizer=omega`` omega (Pascanu's Omega, mean since the
    last point), with ``regularizer=flossing`` floss_loss (the flossing loss, mean over the
    flossing updates since the last point; at step 0 the updates before training). ``eval_*``
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
    head: nn.Module = field(repr=False)

    def record(self) -> dict:
        """Every scalar of the result (for run.json)."""
        skip = ("config", "curve", "rnn", "head")
        return {"task": self.config["task"],
                **{k: v for k, v in self.__dict__.items() if k not in skip}}


class Curve:
    """The rows of curve.parquet, and the updates' statistics since the last evaluation point."""

    def __init__(self):
        self.rows: list[dict] = []
        self._afresh()

    def _afresh(self):
        self.losses, self.norms, self.clipped = [], [], 0

    def add(self, loss: float, norm: float, clipped: bool) -> None:
        self.losses.append(loss)
        self.norms.append(norm)
        self.clipped += clipped

    def point(self, step: int, ev: Evaluation, measured: dict, extra: dict) -> None:
        n = self.norms
        self.rows.append({"step": step,
                          "train_loss": np.mean(self.losses) if self.losses else math.nan,
                          "grad_norm": np.mean(n) if n else math.nan,
                          "clip_fraction": self.clipped / len(n) if n else math.nan,
                          "eval_loss": ev.loss, "eval_error_rate": ev.error_rate,
                          "eval_count": ev.count, "decay_rate": math.nan, **measured, **extra})
        self._afresh()


class Run:
    """One run of the loop: the network, its optimiser and regulariser, the data streams, the
    curve and the progress bar."""

    def __init__(self, cfg: TrainConfig, net: Network, measure: Measure | None, label: str,
                 progress: bool | None):
        self.cfg, self.net, self.measure = cfg, net, measure
        self.dtype = DTYPES[cfg.dtype]
        self.regularizer: Regularizer = make(cfg, net)  # the one place it is chosen
        self.opt = OPTIMIZERS[cfg.optimizer](net.params, lr=cfg.lr)
        self.train_rng, self.valid_rng = stream(cfg.seed, "train"), stream(cfg.seed, "valid")
        self.probe = sample(cfg.task, cfg.probe_size, cfg.length, stream(cfg.seed, "probe"),
                            self.dtype)
        self.curve, self.steps_done, self.final = Curve(), 0, None
        self.bar = tqdm(total=cfg.steps, desc=f"{cfg.task} T={cfg.length} {label}",
                        leave=False, disable=None if progress is None else not progress)
        self.start = time.perf_counter()

    def update(self, step: int) -> str | None:
        """Training update ``step`` and the regulariser's work after it; a failure message."""
        cfg = self.cfg
        x, y = sample(cfg.task, cfg.batch_size, cfg.length, self.train_rng, self.dtype)
        self.opt.zero_grad(set_to_none=True)
        loss = self.regularizer.backward(self.net, x, y)
        if not torch.isfinite(loss):
            return f"train loss became {loss.item()} at step {step}"
        norm = clip_joint_norm(self.net.params, cfg.clip)
        if not math.isfinite(norm):
            return f"gradient norm became {norm} at step {step}"
        self.opt.step()
        self.steps_done = step
        self.curve.add(loss.item(), norm, cfg.clip is not None and norm > cfg.clip)
        self.bar.update(1)
        return self.regularizer.after_step(step)

    def checkpoint(self, step: int) -> Evaluation:
        """The evaluation point ``step``: validation score, the measure hook and the
        regulariser's columns into the curve."""
        cfg, net = self.cfg, self.net
        ev = evaluate(net.rnn, net.head, cfg.task, cfg.length, self.valid_rng, cfg.eval_size,
                      cfg.eval_batch)
        measured = {} if self.measure is None else self.measure(net.rnn, net.head, *self.probe)
        if not isinstance(measured, dict):  # a hook giving the decay rate alone
            measured = {"decay_rate": float(measured)}
        self.curve.point(step, ev, measured, self.regularizer.curve())
        self.bar.set_postfix(loss=f"{ev.loss:.4g}", err=f"{100 * ev.error_rate:.1f}%")
        return ev

    def test(self) -> Evaluation:
        """The fixed test set's score (the test stream drawn afresh from its seed)."""
        cfg = self.cfg
        return evaluate(self.net.rnn, self.net.head, cfg.task, cfg.length,
                        stream(cfg.seed, "test"), cfg.test_size, cfg.eval_batch)

    def solved(self, step: int) -> bool:
        """Evaluation point ``step``: whether the validation and then the test set show fewer
        than 1% errors."""
        if self.checkpoint(step).error_rate >= tasks.SUCCESS_ERROR_RATE:
            return False
        self.final = self.test()
        return self.final.error_rate < tasks.SUCCESS_ERROR_RATE

    def result(self, config: dict, failure: str | None, solved_at: int | None) -> TrainResult:
        """The run's ``TrainResult``: the test set's score of the returned weights (none for a
        failed run)."""
        self.bar.close()
        final = Evaluation(math.nan, 0, 0) if failure is not None else \
            self.final if solved_at is not None else self.test()
        task, rows = self.net.task, self.curve.rows
        return TrainResult(
            config=config, status="failed" if failure else "completed",
            solved=solved_at is not None, steps_to_solve=solved_at, steps_done=self.steps_done,
            eval_error_rate=final.error_rate if final.count else math.nan,
            eval_errors=final.errors, eval_count=final.count, final_loss=final.loss,
            baseline_loss=task.baseline_loss(self.cfg.length),
            baseline_error_rate=task.baseline_error_rate,
            initial_decay_rate=rows[0]["decay_rate"], failure=failure,
            seconds=time.perf_counter() - self.start, curve=pd.DataFrame(rows),
            rnn=self.net.rnn, head=self.net.head)


def fit(cfg: TrainConfig, net: Network, config: dict, measure: Measure | None = None,
        label: str = "", progress: bool | None = None) -> TrainResult:
    """The training loop on ``net`` with the validated settings ``cfg``; ``config`` is what the
    result records."""
    run = Run(cfg, net, measure, label, progress)
    failure, solved_at = run.regularizer.before(), None
    run.checkpoint(0)
    for step in range(1, cfg.steps + 1):
        if failure is not None:
            break
        failure = run.update(step)
        if failure is None and (step % cfg.eval_every == 0 or step == cfg.steps) \
                and run.solved(step):
            solved_at = step
            break
    return run.result(config, failure, solved_at)


def train(cfg: TrainConfig, measure: Measure | None = None, progress: bool | None = None
          ) -> TrainResult:
    """Train one run; ``progress=None`` shows a tqdm bar on a terminal only."""
    cfg.validate()
    task = tasks.spec(cfg.task)
    rnn, head = build(cfg)
    config = {**asdict(cfg), "input_size": task.input_size, "output_size": task.output_size}
    return fit(cfg, Network(rnn, head, task, cfg.truncate), config, measure, cfg.cell, progress)


def _default_head(cell: nn.Module, task: tasks.TaskSpec, seed: int) -> nn.Linear:
    """``nn.Linear`` from what the cell's readout sees (its size from one step on zeros) to the
    task's outputs, torch's init from ``seed`` (the caller's random state untouched)."""
    dtype = next(cell.parameters()).dtype
    with torch.no_grad():
        size = outputs(cell, torch.zeros(1, 1, task.input_size, dtype=dtype)).shape[-1]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Linear(size, task.output_size)


# what train_module takes besides its named arguments: the training keys of TrainConfig
MODULE_SETTINGS = tuple(k for k in TrainConfig.__dataclass_fields__
                        if k not in (*MODEL_KEYS, "task", "length", "steps", "lr", "seed",
                                     "lyap_k"))


def train_module(cell: nn.Module, task: str = "temporal_order", length: int = 50,
                 steps: int = 1000, lr: float = 1e-3, seed: int = 0,
                 head: nn.Module | None = None, measure: Measure | None = None,
                 progress: bool | None = False, **settings) -> TrainResult:
    """Train a user's own cell module on ``task`` with the loop of every training run.

    ``cell``: any ``torch.nn.Module`` with ``step(x_t, state) -> state`` (x_t (B, D); state a
    tuple of (B, N_i) tensors, h first, h what the head reads) and ``init_state(batch_size)``
    (``rnnlab.train.sequence``); it is cast to ``dtype`` and trained in place. ``head``: the
    readout on h where the task reads it; default ``torch.nn.Linear(N_h, C)`` with torch's
    init from ``seed``. ``settings``: any other training key of
    ``rnnlab.train.config.TrainConfig`` (``MODULE_SETTINGS``: optimizer, batch_size, clip,
    eval_every, eval_size, test_size, eval_batch, probe_size, dtype, regularizer, reg_weight,
    truncate (truncated backpropagation, ``rnnlab.train.sequence``) and the ``floss_*`` keys),
    each checked as on the command line. ``measure``: the evaluation hook
    of ``train`` (none by default). Returns the ``TrainResult``; ``config`` records ``cell`` as
    the module's class name."""
    unknown = sorted(set(settings) - set(MODULE_SETTINGS))
    if unknown:
        raise ValueError(f"train_module got the setting {unknown[0]!r}, which is not allowed; "
                         f"allowed: {', '.join(MODULE_SETTINGS)}")
    spec = tasks.spec(task)
    sizes = check_cell_module(cell, spec.input_size)
    cfg = TrainConfig(task=task, length=length, steps=steps, lr=lr, seed=seed,
                      hidden_size=sum(sizes), **settings).validate()
    dtype = DTYPES[cfg.dtype]
    cell = cell.to(dtype)
    head = (_default_head(cell, spec, seed) if head is None else head).to(dtype)
    name = type(cell).__name__
    config = {"cell": name, **{k: v for k, v in asdict(cfg).items() if k not in MODEL_KEYS},
              "hidden_size": sum(sizes), "input_size": spec.input_size,
              "output_size": spec.output_size}
    return fit(cfg, Network(cell, head, spec, cfg.truncate), config, measure, name, progress)
