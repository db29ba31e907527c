"""Pascanu et al. 2013's regulariser Omega (``rnnlab.train.omega``, ``train.regularizer=omega``):

- on a tiny tanh network (N = 5, B = 3, T = 9, float64, temporal order and adding), Omega's value
  and dOmega/dW equal an independent computation to 1e-10: the total dE/dh_t by an explicit
  backward recurrence over the Jacobian matrices J_t = diag(1 - h_t^2) W of a plain ``nn.RNN``
  forward, Omega written with those matrices and differentiated by autograd with respect to W
  alone; and dOmega/dW agrees with a central finite difference (step 1e-6) on 4 entries to 1e-7;
- the task loss's gradient is unchanged: every parameter but W_hh gets exactly the plain
  ``nn.RNN`` autograd gradient (to 1e-12), and W_hh gets it plus alpha dOmega/dW (to 1e-12);
- the relu and sigmoid cells take the same path (value against the same independent formula);
- any other cell goes through its ``step`` by autograd: on a tiny GRU (N = 5, B = 3, T = 10,
  float64, temporal order) Omega's value and its gradient with respect to every GRU parameter
  equal an independent computation to 1e-10: J_t = dh_t/dh_{t-1} as explicit matrices
  (``torch.func.jacrev`` of ``nn.GRUCell`` with the module's weights, at the fused forward's
  states), delta by the explicit backward recurrence over them, Omega written with those matrices
  and differentiated by autograd with the states and delta held (eq. 10's immediate derivative);
  the head's gradient is the task loss's alone (1e-12);
- a training run with it records the ``omega`` column, for the Elman cell and for the GRU, the
  LSTM (state (h, c)), the minimalRNN and the LRU block; with an orthogonal W, or a reg_weight
  without a regulariser, it is a one-line error (exit 2 and no directory through the command
  line).
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rnnlab import tasks
from rnnlab.checks import ConfigError
from rnnlab.train.config import TrainConfig
from rnnlab.train.loop import build, sample, stream, train
from rnnlab.train.omega import omega_backward

ROOT = Path(__file__).resolve().parents[1]
DPHI = {"tanh": lambda h: 1 - h ** 2, "relu": lambda h: (h > 0).double(),
        "sigmoid": lambda h: h * (1 - h)}


def _network(task, activation="tanh", init="pytorch", seed=0):
    cfg = TrainConfig(task=task, length=10, hidden_size=5, activation=activation, init=init,
                      dtype="float64", seed=seed).validate()
    rnn, head = build(cfg)
    x, y = sample(task, 3, 10, stream(seed, "train"), torch.float64)
    return rnn, head, x, y


def _reference(rnn, head, task_name, x, y, activation):
    """(E, Omega(W) as a differentiable function of W, plain autograd grads of E)."""
    task = tasks.spec(task_name)
    W = rnn.weight_hh_l0.detach()
    with torch.no_grad():
        if activation == "sigmoid":
            hs = []
            h = torch.zeros(x.shape[0], W.shape[0], dtype=x.dtype)
            for t in range(x.shape[1]):
                h = torch.sigmoid(x[:, t] @ rnn.weight_ih_l0.T + rnn.bias_ih_l0 + rnn.bias_hh_l0
                                  + h @ W.T)
                hs.append(h)
            h = torch.stack(hs, 1)
        else:
            h, _ = rnn(x)
    out = h.clone().requires_grad_()  # the direct dE/dh_t through the head
    E = tasks.loss(task, head(tasks.readout(task, out)), y)
    direct, = torch.autograd.grad(E, out)
    B, T, N = h.shape
    dphi = DPHI[activation](h)
    J = [torch.stack([torch.diag(dphi[b, t]) @ W for b in range(B)]) for t in range(T)]
    delta = [None] * T
    delta[T - 1] = direct[:, T - 1]
    for t in range(T - 2, -1, -1):  # delta_t = direct_t + J_{t+1}^T delta_{t+1}
        delta[t] = direct[:, t] + torch.einsum("bij,bi->bj", J[t + 1], delta[t + 1])

    def Omega(Wv):
        terms = []
        for t in range(T):
            for b in range(B):
                Jv = torch.diag(dphi[b, t]) @ Wv
                d = delta[t][b]
                if (d @ d) >= 1e-20:
                    terms.append((torch.linalg.norm(d @ Jv) / torch.linalg.norm(d) - 1) ** 2)
        return torch.stack(terms).mean()
    return E, Omega


@pytest.mark.parametrize("task", ["temporal_order", "adding_pascanu"])
def test_omega_value_and_gradient_equal_an_independent_computation(task):
    rnn, head, x, y = _network(task)
    alpha = 0.7
    E, Omega = omega_backward(rnn, head, tasks.spec(task), x, y, alpha)
    got = {n: p.grad.clone() for n, p in [*rnn.named_parameters(), *head.named_parameters()]}
    E_ref, Omega_ref = _reference(rnn, head, task, x, y, "tanh")
    W = rnn.weight_hh_l0.detach().clone().requires_grad_()
    value = Omega_ref(W)
    gW, = torch.autograd.grad(value, W)
    assert abs(Omega - value.item()) < 1e-10 and abs(E.item() - E_ref.item()) < 1e-12
    # the task loss's own gradient, by the plain nn.RNN
    rnn.zero_grad()
    head.zero_grad()
    out, _ = rnn(x)
    tasks.loss(tasks.spec(task), head(tasks.readout(tasks.spec(task), out)), y).backward()
    for n, p in [*rnn.named_parameters(), *head.named_parameters()]:
        want = p.grad + alpha * gW if n == "weight_hh_l0" else p.grad
        assert (got[n] - want).abs().max().item() < 1e-12, n
    # central finite differences of Omega in W (delta and phi' fixed)
    for i, j in ((0, 0), (1, 3), (4, 2), (2, 4)):
        Wp, Wm = W.detach().clone(), W.detach().clone()
        Wp[i, j] += 1e-6
        Wm[i, j] -= 1e-6
        fd = (Omega_ref(Wp) - Omega_ref(Wm)).item() / 2e-6
        assert abs(fd - gW[i, j].item()) < 1e-7


@pytest.mark.parametrize("activation,init", [("relu", "pytorch"),
                                             ("sigmoid", "pascanu_sigmoid")])
def test_relu_and_sigmoid_cells(activation, init):
    rnn, head, x, y = _network("temporal_order", activation, init, seed=1)
    _, Omega = omega_backward(rnn, head, tasks.spec("temporal_order"), x, y, 1.0)
    _, Omega_ref = _reference(rnn, head, "temporal_order", x, y, activation)
    assert abs(Omega - Omega_ref(rnn.weight_hh_l0.detach()).item()) < 1e-10


def test_gru_omega_equals_an_explicit_jacobian_computation():
    cfg = TrainConfig(task="temporal_order", length=10, hidden_size=5, cell="gru",
                      dtype="float64", seed=4).validate()
    rnn, head = build(cfg)
    task = tasks.spec(cfg.task)
    x, y = sample(cfg.task, 3, 10, stream(4, "train"), torch.float64)
    alpha = 0.7
    _, value = omega_backward(rnn, head, task, x, y, alpha)
    got = {n: p.grad.clone() for n, p in [*rnn.named_parameters(), *head.named_parameters()]}
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    weights = {n: getattr(rnn, f"{n}_l0").detach().clone().requires_grad_() for n in names}
    shell = torch.nn.GRUCell(6, 5, device="meta", dtype=torch.float64)
    step = lambda w, x_t, h: torch.func.functional_call(shell, w, (x_t[None], h[None]))[0]
    with torch.no_grad():
        h, _ = rnn(x)  # (B, T, N), the fused kernel
    out = h.clone().requires_grad_()
    E = tasks.loss(task, head(tasks.readout(task, out)), y)
    direct, = torch.autograd.grad(E, out)
    B, T, N = h.shape
    prev = torch.cat([torch.zeros(B, 1, N, dtype=torch.float64), h[:, :-1]], 1)
    J = lambda w, t, b: torch.func.jacrev(lambda s: step(w, x[b, t], s))(prev[b, t])
    fixed = {n: w.detach() for n, w in weights.items()}
    delta = [None] * T
    delta[T - 1] = direct[:, T - 1]
    for t in range(T - 2, -1, -1):  # delta_t = direct_t + J_{t+1}^T delta_{t+1}
        delta[t] = direct[:, t] + torch.stack([J(fixed, t + 1, b).T @ delta[t + 1][b]
                                               for b in range(B)])
    terms = [(torch.linalg.norm(delta[t][b] @ J(weights, t, b)) / torch.linalg.norm(delta[t][b])
              - 1) ** 2 for t in range(T) for b in range(B) if delta[t][b] @ delta[t][b] >= 1e-20]
    reference = torch.stack(terms).mean()
    grads = torch.autograd.grad(reference, [weights[n] for n in names])
    assert abs(value - reference.item()) < 1e-10
    rnn.zero_grad()
    head.zero_grad()
    tasks.loss(task, head(tasks.readout(task, rnn(x)[0])), y).backward()
    for n, g in zip(names, grads):
        p = getattr(rnn, f"{n}_l0")
        assert (got[f"{n}_l0"] - (p.grad + alpha * g)).abs().max().item() < 1e-10, n
        assert g.abs().max().item() > 1e-6, n  # Omega reaches every GRU parameter
    for n, p in head.named_parameters():
        assert (got[n] - p.grad).abs().max().item() < 1e-12, n


@pytest.mark.parametrize("change", [
    {}, dict(cell="gru"), dict(cell="lstm"), dict(cell="minimal"),
    dict(cell="lru", activation="linear", init="ring")])
def test_training_records_omega(change):
    cfg = TrainConfig(task="temporal_order", length=10, hidden_size=8, steps=20, eval_every=10,
                      eval_size=50, test_size=50, eval_batch=50, batch_size=8,
                      regularizer="omega", reg_weight=2.0, **change)
    torch.set_num_threads(1)
    result = train(cfg, progress=False)
    assert result.status == "completed"
    omega = result.curve["omega"]
    assert omega.iloc[0] != omega.iloc[0] and (omega.iloc[1:] >= 0).all()  # NaN at step 0


def test_omega_refuses_what_it_does_not_support():
    with pytest.raises(ConfigError, match=r"^train.regularizer='omega' with "
                                          r"model.orthogonal=true: "):
        TrainConfig(regularizer="omega", init="orthogonal", orthogonal=True).validate()
    with pytest.raises(ConfigError, match=r"^train.reg_weight=1.0 with train.regularizer='none'"):
        TrainConfig(reg_weight=1.0).validate()
    with pytest.raises(ConfigError, match=r"^train.reg_weight=-1.0 is not allowed"):
        TrainConfig(regularizer="omega", reg_weight=-1.0).validate()


@pytest.mark.parametrize("override", ["train.reg_weight=-1", "train.reg_weight=nan",
                                      "arch=orthogonal_tanh"])
def test_cli_rejects_bad_omega_input(tmp_path, override):
    run_dir = tmp_path / "run"
    out = subprocess.run([sys.executable, str(ROOT / "experiments" / "train.py"),
                          "train.regularizer=omega", override, "train.progress=false",
                          f"hydra.run.dir={run_dir}"], capture_output=True, text=True,
                         cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rnnlab: error:")
    assert ("train.reg_weight" if "reg_weight" in override else "model.orthogonal") in lines[0]
    assert not run_dir.exists()
