"""Truncated backpropagation through time (``train.truncate=K``, ``rnnlab.train.sequence``):
for every trainable cell, K >= T gives exactly the full gradient, and K < T gives the gradient of
an independent hand-written truncated computation (the cell's ``step`` from its initial state,
the state detached at steps K, 2K, ..., autograd) to 1e-12 in float64, which differs from the
full gradient; the values of the forward pass are unchanged; the refusals (K < 1, K longer than
the task's sequence, K with Omega) are one line before anything is written; a tiny training run
with truncation goes through the command line."""
import json

import numpy as np
import pytest
import torch
from conftest import TINY_TRAIN, assert_refused

from rnnlab import tasks
from rnnlab.engine import cells
from rnnlab.train.config import TrainConfig, cell_names, sequence_length
from rnnlab.train.sequence import Network, outputs, readout_input, truncated_outputs

N, B, T = 3, 2, 11  # T = 11 leaves a short last chunk for K = 3 and 5


def network(name: str, task: str = "temporal_order", truncate=None) -> Network:
    spec = tasks.spec(task)
    torch.manual_seed(0)
    rnn = cells.get(name).module(spec.input_size, N, {"activation": "tanh"},
                                 dtype=torch.float64)
    size = outputs(rnn, torch.zeros(1, 1, spec.input_size, dtype=torch.float64)).shape[-1]
    torch.manual_seed(1)
    head = torch.nn.Linear(size, spec.output_size).double()
    return Network(rnn, head, spec, truncate)


def batch(task: str = "temporal_order", length: int = T):
    x, y = tasks.generate(task, B, length, np.random.RandomState(3))
    return torch.from_numpy(x), torch.from_numpy(y)


def gradient(net: Network, x, y) -> list[torch.Tensor]:
    for p in net.params:
        p.grad = None
    net.backward(x, y)
    return [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in net.params]


def by_hand(net: Network, x, y, K: int) -> list[torch.Tensor]:
    """The truncated gradient written out: steps from init_state, detach at t = K, 2K, ..."""
    rnn = net.rnn
    state, hs = rnn.init_state(x.shape[0]), []
    for t in range(x.shape[1]):
        if t > 0 and t % K == 0:
            state = tuple(s.detach() for s in state)
        state = tuple(rnn.step(x[:, t], state))
        hs.append(state[0])
    seen = readout_input(rnn, torch.stack(hs, 1), x)
    loss = tasks.loss(net.task, net.head(tasks.readout(net.task, seen)), y)
    grads = torch.autograd.grad(loss, net.params, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(net.params, grads)]


def close(a: list, b: list, tol: float) -> bool:
    return all(torch.allclose(u, v, rtol=tol, atol=tol) for u, v in zip(a, b))


@pytest.mark.parametrize("name", cell_names())
def test_no_cut_is_full_backpropagation(name):
    x, y = batch()
    full = gradient(network(name), x, y)
    for K in (T, T + 5):
        assert all(torch.equal(u, v) for u, v in zip(gradient(network(name, truncate=K), x, y),
                                                     full)), (name, K)


@pytest.mark.parametrize("name", cell_names())
def test_truncated_gradient_matches_the_hand_written_one(name):
    x, y = batch()
    full = gradient(network(name), x, y)
    for K in (1, 3, 5):
        net = network(name, truncate=K)
        got, want = gradient(net, x, y), by_hand(net, x, y, K)
        assert close(got, want, 1e-12), (name, K)
        assert not close(got, full, 1e-6), (name, K)  # the cut is real
        with torch.no_grad():  # only the gradient is cut: the values stay those of the sequence
            assert torch.allclose(truncated_outputs(net.rnn, x, K), outputs(net.rnn, x),
                                  rtol=1e-12, atol=1e-12), (name, K)


@pytest.mark.parametrize("name", ["elman", "lstm", "lru"])
def test_every_step_loss_is_truncated_too(name):
    """copy reads every step: each step's loss reaches back to its chunk's start only."""
    x, y = batch("copy", 3)  # 23 steps
    net = network(name, "copy", truncate=4)
    assert close(gradient(net, x, y), by_hand(net, x, y, 4), 1e-12)


def test_the_sequence_length_the_check_reads():
    assert sequence_length("temporal_order", 50) == 50
    assert sequence_length("adding_pascanu", 50) == 50  # l in [50, 55): its shortest
    assert sequence_length("copy", 10) == 30
    assert sequence_length("delayed_xor", 5) == 20
    TrainConfig(task="copy", length=10, truncate=30).validate()
    TrainConfig(task="temporal_order", length=50, truncate=50,
                regularizer="flossing").validate()


@pytest.mark.parametrize("overrides, needle", [
    (["train.truncate=0"], "train.truncate=0"),
    (["train.truncate=11"], "train.truncate=11 is not allowed; it must be at most the task's "
                            "sequence length, 10 steps"),
    (["train.truncate=5", "train.regularizer=omega"], "train.truncate with "
                                                      "train.regularizer='omega'"),
])
def test_bad_truncation_is_one_line(tmp_path, train_in_process, overrides, needle):
    run = tmp_path / "run"
    status, _, err = train_in_process(f"hydra.run.dir={run}", *TINY_TRAIN, *overrides)
    assert_refused(status, err, run, needle)


def test_tiny_truncated_training_run(tmp_path, train_in_process):
    run = tmp_path / "run"
    status, _, err = train_in_process(f"hydra.run.dir={run}", *TINY_TRAIN, "train.truncate=4")
    assert status == 0, err
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed" and record["params"]["truncate"] == 4
    assert record["steps_done"] == 20


class LinearUnit(torch.nn.Module):
    """h_t = lambda h_{t-1} + x_t, one unit: the recurrence of docs/theory.md's truncation
    shares, as a user's cell module."""

    def __init__(self, lam: float):
        super().__init__()
        self.lam = torch.nn.Parameter(torch.tensor(lam, dtype=torch.float64))

    def init_state(self, batch_size):
        return (self.lam.new_zeros(batch_size, 1),)

    def step(self, x_t, state):
        return (self.lam * state[0] + x_t,)


@pytest.mark.parametrize("K, T", [(5, 20), (7, 21), (4, 30)])
def test_what_a_full_chunk_keeps(K, T):
    """At the last step of a chunk, truncated BPTT over K steps keeps the Jacobian lags 0..K-1
    of dh_t/dlambda: sum_j min(j, K) lambda^(j-1) x_{t-j} (rnnlab.theory's residual share is
    what it leaves out); a step r steps into a chunk keeps min(j, r + 1)."""
    lam = 0.9
    x = torch.from_numpy(np.random.RandomState(0).standard_normal((1, T, 1)))
    cell = LinearUnit(lam)
    out = truncated_outputs(cell, x, K)
    j = np.arange(1, T)
    xs = x[0, :, 0].numpy()
    for t in (T - 1, T - 2):  # the chunk's last step, and one step before it
        (g,) = torch.autograd.grad(out[0, t, 0], cell.lam, retain_graph=True)
        r = t % K
        lags = j[j <= t]
        want = (np.minimum(lags, r + 1) * lam ** (lags - 1.0) * xs[t - lags]).sum()
        assert abs(g.item() - want) <= 1e-12 * max(1.0, abs(want)), (t, g.item(), want)
