"""``measure.sensitivity``: the forward-mode sensitivity of the state to the recurrent parameters
(``rnnlab.engine.sensitivity``) against autograd, on small networks of every cell.

The reference differentiates the whole run (burn-in included) with ``torch.autograd.functional
.jacobian`` with respect to the parameter group, through a step written independently of the
engine's maps: the cell's ``reference_step`` (Elman, minimalRNN; the LRU's complex arithmetic,
with gamma = sqrt(1 - r^2) recomputed from r under model.gamma=tied, held under param, whose
gamma group differentiates gamma itself) or ``torch.nn.GRUCell`` /
``LSTMCell`` through ``torch.func.functional_call`` with W_hh as the differentiated input. For a
matrix block it takes ||ds_t/dW_block||_F^2 / N, for the LRU each unit's |dh_j/dp_j|^2 (and checks
that dh_j/dp_k = 0 for j != k), averaged over measured steps, batch (and units). Agreement:
1e-10 relative, float64. Also: a real-lambda LRU's measured mean squares follow the
curse-of-memory closed forms of ``rnnlab.theory`` (lambda = 0.5, 0.9, raw and normalised with
gamma a parameter or tied, in r and nu, white and AR(1) input (rho = 0.9); within 4 batch-means
standard errors); the command line writes sensitivity.parquet with
the documented columns; the settings that cannot give it are one-line errors.

The curse-of-memory check is a function of a seed, re-run over 20 seeds by
tests/test_false_failures.py (docs/statistical-tests.md).
"""
import math
from dataclasses import replace

import pandas as pd
import pytest
import torch
from conftest import Check, assert_checks, make

from rnnlab.engine import cells
from rnnlab.engine.cells import gated, lru
from rnnlab.engine.sensitivity import sensitivity

RTOL = 1e-10
BURN_IN = 3


pytestmark = pytest.mark.usefixtures("one_thread")

def run_states(step, state0: tuple, x, burn_in: int):
    """Every measured state, parts side by side: (T, B, S)."""
    state, out = state0, []
    for t in range(x.shape[1]):
        state = step(x[:, t], state)
        if t >= burn_in:
            out.append(torch.cat(state, -1))
    return torch.stack(out)


def dense_step(p, W):
    """A differentiable step of ``p`` with its recurrent matrix replaced by W."""
    if p.cell in ("elman", "minimal"):
        return cells.get(p.cell).reference_step(replace(p, W=W))
    module = gated.torch_cell(p)
    weights = {"weight_ih": p.weight_ih, "weight_hh": W, "bias_ih": p.bias_ih,
               "bias_hh": p.bias_hh}
    if p.cell == "gru":
        return lambda x_t, s: (torch.func.functional_call(module, weights, (x_t, s[0])),)
    return lambda x_t, s: tuple(torch.func.functional_call(module, weights, (x_t, (s[0], s[1]))))


CASES = [dict(cell="elman", activation="tanh", spectral_radius=1.2, bias_std=0.2),
         dict(cell="minimal", gain=2.0, spectral_radius=None, gate_bias=1.0),
         dict(cell="gru", init="pytorch", gate_bias=0.5),
         dict(cell="lstm", init="orthogonal", spectral_radius=1.5, gate_bias=1.0)]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["cell"])
def test_dense_cells_match_autograd(case):
    net, p, _ = make(seed=1, hidden_size=5, input_size=3, output_size=2, batch_size=2,
                     seq_len=6, burn_in=BURN_IN, h0_std=0.4, **case)
    cell = cells.get(p.cell)
    N = p.hidden_size
    W0 = p.W if p.cell in ("elman", "minimal") else p.weight_hh
    parts = len(cell.state_parts)
    state0 = tuple(net.h0[:, i * N:(i + 1) * N] for i in range(parts))
    jac = torch.autograd.functional.jacobian(
        lambda W: run_states(dense_step(p, W), state0, net.x, BURN_IN), W0)  # (T, B, S, GN, N)
    states = run_states(dense_step(p, W0), state0, net.x, BURN_IN)
    rows = sensitivity(p, net.x, net.h0, BURN_IN)
    assert [r["parameter"] for r in rows] == list(cell.groups)
    for g, row in enumerate(rows):
        block = jac[..., g * N:(g + 1) * N, :]
        want = (block ** 2).sum((2, 3, 4)).mean() / N
        assert row["mean_sq_derivative"] == pytest.approx(want.item(), rel=RTOL)
        assert row["mean_sq_state"] == pytest.approx(
            ((states ** 2).sum(-1).mean() / N).item(), rel=RTOL)


def lru_states(p, x, h0, **changed):
    return run_states(lru.reference_step(replace(p, **changed)), (h0,), x, BURN_IN)


@pytest.mark.parametrize("normalize,gamma", [(True, "param"), (True, "tied"), (False, "param")])
@pytest.mark.parametrize("autocorr", [0.0, 0.8])
def test_lru_matches_autograd(normalize, gamma, autocorr):
    net, p, _ = make(seed=2, cell="lru", activation="linear", init="ring", hidden_size=4,
                     input_size=3, output_size=2, batch_size=2, seq_len=8, burn_in=BURN_IN,
                     h0_std=0.4, r_min=0.6, r_max=0.95, max_phase=2.0, normalize=normalize,
                     gamma=gamma, autocorr=autocorr)
    N = p.hidden_size
    tied = gamma == "tied"

    def gamma_of(r):  # param: gamma its own parameter, held at its drawn value when r moves
        return torch.sqrt(1 - r * r) if tied else p.gamma

    def nu_of(r):
        return torch.log(-torch.log(r))

    x, h0 = net.x, net.h0
    by = {
        "r": (p.modulus, lambda r: lru_states(p, x, h0, nu=nu_of(r), gamma=gamma_of(r))),
        "theta": (p.theta, lambda th: lru_states(p, x, h0, theta=th)),
        "nu": (p.nu, lambda nu: lru_states(p, x, h0, nu=nu,
                                           gamma=gamma_of(torch.exp(-torch.exp(nu))))),
    }
    if normalize and not tied:
        by["gamma"] = (p.gamma, lambda g: lru_states(p, x, h0, gamma=g))
    rows = {r["parameter"]: r for r in sensitivity(p, x, h0, BURN_IN)}
    assert list(rows) == list(by)
    states = lru_states(p, x, h0)
    for name, (value, f) in by.items():
        jac = torch.autograd.functional.jacobian(f, value)  # (T, B, 2N, N)
        re, im = jac[:, :, :N], jac[:, :, N:]
        diag = torch.diagonal(re, dim1=2, dim2=3) ** 2 + torch.diagonal(im, dim1=2, dim2=3) ** 2
        mask = ~torch.eye(N, dtype=torch.bool)
        assert (re[..., mask] == 0).all() and (im[..., mask] == 0).all()  # unit j: only p_j
        assert rows[name]["mean_sq_derivative"] == pytest.approx(diag.mean().item(), rel=RTOL)
    assert rows["r"]["mean_sq_state"] == pytest.approx(
        ((states ** 2).sum(-1).mean() / N).item(), rel=RTOL)


SMALL = ["model.hidden_size=4", "model.input_size=2", "model.output_size=3", "data.seq_len=8",
         "data.batch_size=2", "measure.progress=false", "measure.device=cpu"]


@pytest.mark.parametrize("gamma,groups", [(None, ["r", "theta", "nu", "gamma"]),
                                          ("tied", ["r", "theta", "nu"])])
def test_command_line_writes_sensitivity_parquet(tmp_path, decay_in_process, gamma, groups):
    """The default model.gamma=param has a gamma group; tied has none (gamma is no parameter)."""
    run = tmp_path / "lru"
    status, _, err = decay_in_process("model=lru", f"hydra.run.dir={run}",
                                      "measure.sensitivity=true", "data.burn_in=2", *SMALL,
                                      *([f"model.gamma={gamma}"] if gamma else []))
    assert status == 0, err
    table = pd.read_parquet(run / "sensitivity.parquet")
    assert list(table.columns) == ["parameter", "mean_sq_derivative", "mean_sq_state"]
    assert list(table["parameter"]) == groups
    assert table[["mean_sq_derivative", "mean_sq_state"]].map(math.isfinite).all().all()


@pytest.mark.parametrize("overrides,needle", [
    (["measure.weights=redrawn"], "measure.sensitivity=true with measure.weights='redrawn'"),
    (["model=lstm", "measure.lstm_state=h"], "measure.sensitivity=true with measure.lstm_state"),
    (["model.hidden_size=65"], "model.hidden_size=65 and model.cell='elman'"),
])
def test_impossible_sensitivity_is_one_line(tmp_path, decay_in_process, overrides, needle):
    run = tmp_path / "run"
    status, _, err = decay_in_process(f"hydra.run.dir={run}", "measure.sensitivity=true",
                                      *SMALL, *overrides)
    lines = err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and needle in lines[0], err
    assert not run.exists()


def lru_memory_checks(lam, gamma, seed, rho=0.0):
    """A real-lambda LRU (r_min = r_max = lambda, max_phase = 0) is N pairs of real units, each
    driven by an input of variance ||B_j||^2 / 2 per part (a sum of independent AR(1) inputs of
    correlation rho is one, rescaled); its measured mean squares must be ||B_j||^2 (averaged over
    units) times ``rnnlab.theory``'s closed forms (r is lambda here; ``gamma`` "none" is
    model.normalize=false, else model.gamma; the gamma group's E[(dh/dgamma)^2] = E[h^2] /
    gamma^2 is the raw state's variance). Standard error: 8 independent calls (independent
    inputs from ``rnnlab.engine.inputs.ar1``, 16 sequences each) as batch means, each over
    150 c steps after a 30 c burn-in from h0 = 0, c = max(1/(1 - lambda), 1/(1 - rho)); the
    closed form must lie within 4 SE (a t with 7 degrees of freedom exceeds 4 with probability
    0.005), and the SE below 5% of it. ``seed`` seeds the inputs (the network is seed 5's)."""
    from rnnlab import theory as th
    from rnnlab.engine.inputs import ar1

    c = max(1 / (1 - lam), 1 / (1 - rho))
    burn, T = math.ceil(30 * c), math.ceil(150 * c)
    _, p, _ = make(seed=5, cell="lru", activation="linear", init="ring", hidden_size=4,
                   input_size=3, output_size=2, batch_size=2, seq_len=2, r_min=lam, r_max=lam,
                   max_phase=0.0, normalize=gamma != "none",
                   gamma="tied" if gamma == "tied" else "param")
    B_sq = ((p.B_re ** 2).sum(1) + (p.B_im ** 2).sum(1)).mean().item()
    g = torch.Generator().manual_seed(seed)
    calls = []
    for _ in range(8):
        x = ar1(torch.randn(16, burn + T, 3, generator=g, dtype=torch.float64), rho)
        calls.append({r["parameter"]: r for r in sensitivity(p, x, torch.zeros(16, 8), burn)})
    expected = {("r", "mean_sq_derivative"): th.memory_sensitivity(lam, "lambda", gamma, rho),
                ("nu", "mean_sq_derivative"): th.memory_sensitivity(lam, "nu", gamma, rho),
                ("r", "mean_sq_state"): th.memory_state_variance(lam, gamma, rho)}
    if gamma == "param":
        expected["gamma", "mean_sq_derivative"] = th.memory_state_variance(lam, "none", rho)
    assert ("gamma" in calls[0]) == (gamma == "param")
    checks = [Check("theta's derivative (phase 0: no rotation)",
                    max(abs(c["theta"]["mean_sq_derivative"]) for c in calls), 0.0)]
    for (name, column), closed in expected.items():
        values = torch.tensor([c[name][column] for c in calls], dtype=torch.float64)
        mean, se = values.mean().item(), (values.std() / math.sqrt(len(values))).item()
        want = B_sq * float(closed)
        checks += [Check(f"{name} {column}: SE", se, 0.05 * want),
                   Check(f"{name} {column}: |mean - closed form|", abs(mean - want), 4 * se)]
    return checks


# (lambda, gamma, rho): white input at two memories, correlated input at the longer one for
# both normalisers (the raw unit under AR(1) input: tests/test_memory_theory.py)
MEMORY_CASES = [(lam, gamma, 0.0) for lam in (0.5, 0.9) for gamma in ("none", "param", "tied")] \
    + [(0.9, gamma, 0.9) for gamma in ("param", "tied")]


@pytest.mark.parametrize("lam,gamma,rho", MEMORY_CASES)
def test_lru_sensitivity_follows_the_curse_of_memory(lam, gamma, rho):
    assert_checks(lru_memory_checks(lam, gamma, seed=0, rho=rho))
