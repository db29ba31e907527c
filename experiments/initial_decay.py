"""Initial decay rate of ||dL_t/dh_k|| on a task's own inputs, by plain autograd through the torch
modules of ``rnnlab.train`` (a small reference, not the exact engine; training runs use the exact
engine's ``rnnlab.train.horizon.decay_rate``, which agrees with this to float64 rounding,
tests/test_horizon.py).

    python experiments/initial_decay.py          # temporal order, L = 200, 50 units, 10 seeds
    python experiments/initial_decay.py --task adding_pascanu --length 100 --seeds 5
    python -m experiments.initial_decay --archs sigmoid basic_tanh smart_tanh

One line per arch of ``rnnlab.train.archs`` (its cell, activation and init; default every arch).

Each step is run as its own module call and a zero leaf z_k is added to the state it hands on
(h_k, and c_k for an LSTM), so dL_t/dz_k is the state-to-state adjoint: the total derivative of the
loss at target step t through everything after step k. Each target step is one backward pass (one
for the last-step tasks, T + 20 for copy); samples are independent, so the batch sum gives every
sample's gradient at once. The decay rate is the least-squares slope of the mean over samples and
targets of ln (||dL_t/dz_k|| / ||dL_t/dz_{t-1}||) (joint norm over h and c; the ratio to lag 1
removes each target's loss scale, which matters when several targets mix at one lag) against the
lag t - k over lags 1..50, in nats per step,
in float64 (a factor e^-4 per step reaches e^-200 at lag 50, below float32's range). The spread
is the std over seeds, each a fresh network and batch.

For Pascanu, Mikolov, Bengio 2013's inits (arXiv:1211.5063, their RNN.py) on temporal order at
L = 200 with 50 units, the population means of this protocol (our computation over 1200 networks,
not numbers the paper printed) are sigmoid -4.000 +- 0.002 and basic tanh -0.331 +- 0.002; smart
tanh -0.072 (10 networks, SD 0.007). A 10-network mean spreads by about 0.019 around them.
"""
from __future__ import annotations

import argparse
import copy
import math

import numpy as np
import torch

from rnnlab import tasks
from rnnlab.train.archs import ARCHS
from rnnlab.train.config import TrainConfig
from rnnlab.train.loop import build, sample, stream


def log_state_grads(rnn, head, task_name: str, x: torch.Tensor, y: torch.Tensor,
                    ratio: bool = False) -> dict:
    """{lag: ln ||dL_t/dz_k|| for every (target t, sample) at that lag}, lags >= 1; with
    ``ratio``, minus ln ||dL_t/dz_{t-1}|| (lag 1), which removes each target's loss scale."""
    task = tasks.spec(task_name)
    T = x.shape[1]
    state, zs, outs = None, [], []
    for t in range(T):
        out, state = rnn(x[:, t:t + 1], state)
        outs.append(out[:, 0])
        parts = state if isinstance(state, tuple) else (state,)
        z = tuple(torch.zeros_like(p, requires_grad=True) for p in parts)
        zs.append(z)
        state = tuple(p + q for p, q in zip(parts, z))
        state = state if len(state) == 2 else state[0]
    out = torch.stack(outs, 1)
    pred = head(tasks.readout(task, out))
    targets = [T - 1] if task.readout == "last" else list(range(T))
    by_lag: dict[int, list] = {}
    for t in targets:
        if task.readout == "last":
            L_t = tasks.sequence_losses(task, pred, y).sum()
        else:  # the loss at step t of every sequence, summed over the batch
            L_t = tasks.sequence_losses(task, pred[:, t:t + 1], y[:, t:t + 1]).sum()
        leaves = [leaf for k in range(t) for leaf in zs[k]]
        if not leaves:
            continue
        grads = torch.autograd.grad(L_t, leaves, retain_graph=True, allow_unused=True)
        per = len(zs[0])
        logs = []
        for k in range(t):
            g = [grads[k * per + i] for i in range(per)]
            logs.append(0.5 * torch.log(sum((gi[0] ** 2).sum(-1) for gi in g if gi is not None)))
        for k in range(t):
            by_lag.setdefault(t - k, []).append(logs[k] - logs[t - 1] if ratio else logs[k])
    return {lag: torch.cat(v).numpy() for lag, v in by_lag.items()}


def decay_rate(rnn, head, task_name, x, y, max_lag=50) -> float:
    """Slope of the mean ln ratio against lag 1..max_lag (nats per step), float64."""
    rnn, head = copy.deepcopy(rnn).double(), copy.deepcopy(head).double()
    logs = log_state_grads(rnn, head, task_name, x.double(), y.double(), ratio=True)
    lags = np.array(sorted(k for k in logs if k <= max_lag))
    means = np.array([np.mean(logs[k]) for k in lags])
    if len(lags) < 2 or not np.isfinite(means).all():
        return math.nan
    return float(np.polyfit(lags, means, 1)[0])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", default="temporal_order")
    ap.add_argument("--length", type=int, default=200)
    ap.add_argument("--hidden-size", type=int, default=50)
    ap.add_argument("--batch", type=int, default=20)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--max-lag", type=int, default=50)
    ap.add_argument("--archs", nargs="*", default=list(ARCHS), choices=list(ARCHS),
                    help="archs of rnnlab.train.archs (default all)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    print(f"task={args.task} L={args.length} N={args.hidden_size} batch={args.batch} "
          f"seeds={args.seeds} lags 1..{args.max_lag}; rate in nats/step, mean +- std over seeds")
    for name in args.archs:
        arch, rates = ARCHS[name], []
        for seed in range(args.seeds):
            cfg = TrainConfig(task=args.task, length=args.length, hidden_size=args.hidden_size,
                              seed=seed, dtype="float64", cell=arch.cell,
                              activation=arch.activation, init=arch.init).validate()
            rnn, head = build(cfg)
            x, y = sample(args.task, args.batch, args.length, stream(seed, "probe"),
                          torch.float64)
            rates.append(decay_rate(rnn, head, args.task, x, y, args.max_lag))
        rates = np.array(rates)
        print(f"{name:12s} {arch.label:22s} {rates.mean():+.4f} +- {rates.std(ddof=1):.4f}   "
              f"[{rates.min():+.4f}, {rates.max():+.4f}]")


if __name__ == "__main__":
    main()
