"""A cell is one module: this file defines a new cell and measures it without touching rnnlab.

The leaky-tanh cell h' = (1 - a) h + a tanh(W h + U x + b) (leak a = ``LEAK``) is written here
with everything ``rnnlab.engine.cells.Cell`` asks for (weights dataclass, layer maps, forward,
draw, autograd reference step) and registered by a fixture that removes it again afterwards.
Then it is measured end to end, with no other module edited:

- its layer maps agree with autograd: J_k^T and J_k (``vjp_``, ``vjp``, ``jvp``) against the
  Jacobian of ``reference_step``, and the weight gradient built from ``recurrent_cotangent``
  (``rnnlab.engine.weightgrad``) against autograd's dL/dW;
- the Python API: ``rnnlab.engine.adjoint.forward`` + ``log_grad_norms`` on a drawn network, a
  two-layer stack through ``rnnlab.engine.cells.run_layers``, and
  ``rnnlab.measure.run.measure(RunSpec.from_dict(...))``, each against the autograd reference
  (``rnnlab.engine.reference``) to 1e-10 in log10, with a burn-in and with max_lag;
- the command line: ``experiments/decay.py``'s driver run in this process with ``model=leaky``
  from a ``conf/model/leaky.yaml`` in a Hydra search-path directory of the test's own; run.json
  says completed with a finite decay rate, and lags.parquet and tensors.npz match the autograd
  reference of the saved tensors to 1e-10.
"""
from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import hydra
import numpy as np
import pandas as pd
import pytest
import torch
from torch import Tensor

from rnnlab.engine import adjoint, cells, reference
from rnnlab.engine.cells import Cell, register
from rnnlab.engine.cells.stack import workspace
from rnnlab.engine.init import recurrent_matrix
from rnnlab.engine.model import readout_losses
from rnnlab.engine.weightgrad import weight_grad_by_lag
from rnnlab.measure.config import DataSpec, ModelSpec, RunSpec
from rnnlab.measure.networks import draw as draw_network
from rnnlab.measure.run import measure

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
LN10 = math.log(10)
TOL = 1e-10  # in log10

# ============================================================================================
# The cell: everything below up to ``CELL`` is what a new cell module contains
# ============================================================================================
LEAK = 0.5  # a: the fraction of the new tanh state mixed in at each step


@dataclass(frozen=True)
class LeakyParams:
    """A leaky-tanh RNN: U (N, D), W (N, N), b (N,), readout V (C, N), c (C,)."""

    U: Tensor
    W: Tensor
    b: Tensor
    V: Tensor
    c: Tensor
    cell = "leaky"

    @property
    def hidden_size(self) -> int:
        return self.W.shape[0]

    def tensors(self) -> dict:
        return {k: getattr(self, k) for k in "UWbVc"}

    def to(self, device=None, dtype=None) -> LeakyParams:
        return replace(self, **{k: v.to(device=device, dtype=dtype)
                                for k, v in self.tensors().items()})


class LeakyLayer:
    """J_k = (1 - a) I + a diag(1 - n_k^2) W with n_k = tanh(W h_{k-1} + U x_k + b); the input
    map a diag(1 - n_k^2) U."""

    parts = ("h",)

    def __init__(self, W: Tensor, s: Tensor, W_ih: Tensor | None = None):
        self.W, self.s, self.W_ih = W, s, W_ih  # s (T, B, N) = a (1 - n^2)
        self.hidden = self.size = W.shape[0]
        self.work: Tensor | None = None

    def vjp_(self, k: int, D: Tensor) -> None:
        m, N = D.shape[0], self.size
        self.work = workspace(self.work, m, self.s.shape[0], D.shape[1:], D)
        torch.mul(D, self.s[k], out=self.work[:m])
        D.mul_(1 - LEAK)
        D.view(-1, N).addmm_(self.work[:m].view(-1, N), self.W)

    def recurrent_cotangent(self, k: int, D: Tensor) -> Tensor:
        """The cotangent of W h_{k-1} in the pre-activation."""
        return D * self.s[k]

    def vjp(self, k: int, D: Tensor, need_input: bool):
        G = self.recurrent_cotangent(k, D)
        return (1 - LEAK) * D + G @ self.W, (G @ self.W_ih if need_input else None)

    def jvp(self, k: int, Q: Tensor, Q_in: Tensor | None = None) -> Tensor:
        A = torch.matmul(self.W, Q)
        if Q_in is not None:
            A = A + torch.matmul(self.W_ih, Q_in)
        return (1 - LEAK) * Q + self.s[k].unsqueeze(-1) * A


def layer_forward(U: Tensor, W: Tensor, b: Tensor, inp: Tensor, h: Tensor):
    """One leaky layer over inp (T, B, D) from h (B, N)."""
    drive = torch.matmul(inp, U.T) + b
    hs, ns = [], []
    for t in range(inp.shape[0]):
        n = torch.tanh(torch.addmm(drive[t], h, W.T))
        h = (1 - LEAK) * h + LEAK * n
        hs.append(h)
        ns.append(n)
    hs, ns = torch.stack(hs), torch.stack(ns)
    return (hs,), lambda sl: LeakyLayer(W, LEAK * (1 - ns[sl] * ns[sl]), U)


def draw(model, T: int, g: torch.Generator) -> dict:
    """W, U, b in float64 from ``g``, in that order, as Elman's."""
    N, D = model.hidden_size, model.input_size
    W = recurrent_matrix(N, model.init, model.spectral_radius, model.gain, g)
    U = torch.randn(N, D, generator=g, dtype=torch.float64) * (model.input_gain / math.sqrt(D))
    b = torch.randn(N, generator=g, dtype=torch.float64) * model.bias_std
    return dict(U=U, W=W, b=b)


def step(p: LeakyParams, x_t: Tensor, h: Tensor) -> Tensor:
    """The leaky step written out, differentiable."""
    return (1 - LEAK) * h + LEAK * torch.tanh(x_t @ p.U.T + h @ p.W.T + p.b)


def reference_step(p: LeakyParams):
    return lambda x_t, s: (step(p, x_t, s[0]),)


CELL = Cell(name="leaky", params=LeakyParams, layer_forward=layer_forward,
            layer_weights=lambda p: (p.U, p.W, p.b), draw=draw, reference_step=reference_step,
            paper="a leaky-tanh RNN (this test)")
# ============================================================================================


@pytest.fixture
def leaky():
    """The leaky cell, registered for this test only."""
    assert "leaky" not in cells.CELLS
    register(CELL)
    try:
        yield CELL
    finally:
        cells.CELLS.pop("leaky", None)


def log10_diff(a, b) -> float:
    """max |a - b| of two log10 arrays, NaN where both are NaN (outside the triangle) counted as
    equal, NaN on one side only as inf."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert a.shape == b.shape, (a.shape, b.shape)
    both = np.isnan(a) & np.isnan(b)
    d = np.where(both, 0.0, np.abs(a - b))
    return float(np.nan_to_num(d, nan=np.inf).max())


def small_net(seed=3, N=7, D=4, C=5, T=12, B=3, burn_in=4, spectral_radius=1.3):
    m = ModelSpec(cell="leaky", hidden_size=N, input_size=D, output_size=C,
                  spectral_radius=spectral_radius, bias_std=0.3)
    d = DataSpec(seq_len=T, batch_size=B, burn_in=burn_in, h0_std=0.5)
    m.validate()
    d.validate()
    return draw_network(m, d, seed)


def test_registered_cell_validates(leaky):
    assert cells.get("leaky") is leaky and "leaky" in cells.names()
    RunSpec.from_dict({"model": {"cell": "leaky"}}).validate()


def test_registration_is_undone():
    """The fixture leaves no trace: no other test sees the leaky cell."""
    assert "leaky" not in cells.CELLS


def step_jacobians(p: LeakyParams, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
    """Per sample, dh'/dh (B, N, N) and dh'/dx (B, N, D) of the reference step, by autograd."""
    jac = [torch.autograd.functional.jacobian(lambda h_i, x_i: step(p, x_i, h_i), (h_i, x_i))
           for h_i, x_i in zip(h, x)]
    return torch.stack([j[0] for j in jac]), torch.stack([j[1] for j in jac])


def test_layer_maps_against_autograd(leaky):
    """vjp_, vjp and jvp are J_k^T and J_k of the reference step, at every measured step."""
    net = small_net()
    p = net.params
    rec = leaky.forward(p, net.x, net.h0, burn_in=4)
    layer = rec.maps.layers[0]
    T, B, N = rec.u.shape
    h_prev = torch.cat([rec.state_in[None], rec.u[:-1]])  # h_{k-1}, k = 0..T-1
    g = torch.Generator().manual_seed(0)
    for k in range(T):
        J, J_in = step_jacobians(p, net.x[:, 4 + k], h_prev[k])
        D = torch.randn(2, B, N, generator=g, dtype=torch.float64)
        want = torch.einsum("bij,mbi->mbj", J, D)
        got = D.clone()
        layer.vjp_(k, got)
        assert torch.allclose(got, want, rtol=1e-12, atol=1e-13)
        out, d_in = layer.vjp(k, D, need_input=True)
        assert torch.allclose(out, want, rtol=1e-12, atol=1e-13)
        assert torch.allclose(d_in, torch.einsum("bij,mbi->mbj", J_in, D), rtol=1e-12,
                              atol=1e-13)
        Q = torch.randn(B, N, 3, generator=g, dtype=torch.float64)
        Q_in = torch.randn(B, p.U.shape[1], 3, generator=g, dtype=torch.float64)
        assert torch.allclose(layer.jvp(k, Q), J @ Q, rtol=1e-12, atol=1e-13)
        assert torch.allclose(layer.jvp(k, Q, Q_in), J @ Q + J_in @ Q_in, rtol=1e-12,
                              atol=1e-13)


@pytest.mark.parametrize("burn_in,max_lag", [(0, None), (5, None), (3, 4)])
def test_adjoint_matches_reference(leaky, burn_in, max_lag):
    """forward + log_grad_norms against cell_reference, every pair and sample, to 1e-10."""
    net = small_net(burn_in=burn_in)
    traj = adjoint.forward(net.params, net.x, net.h0, net.y_target, burn_in=burn_in)
    fast = adjoint.log_grad_norms(traj, max_lag).numpy()
    ref = reference.cell_reference(net.params, net.x, net.h0, net.y_target, burn_in,
                                   max_lag=max_lag)
    assert set(ref) == {""}
    assert np.isfinite(fast[~np.isnan(fast)]).all()
    assert (~np.isnan(fast)).sum() > 0
    assert log10_diff(fast / LN10, ref[""].numpy() / LN10) < TOL


def test_stack_of_leaky_layers(leaky):
    """Two leaky layers through the seam's ``run_layers`` (layer 2 reads layer 1's h: ``vjp``
    with the input cotangent) against autograd through both steps, with a burn-in."""
    g = torch.Generator().manual_seed(1)
    B, T, burn_in, D, N, C = 2, 10, 3, 4, 6, 5
    f64 = dict(generator=g, dtype=torch.float64)

    def layer(n_in):
        return (torch.randn(N, n_in, **f64) / math.sqrt(n_in),
                torch.randn(N, N, **f64) * 1.4 / math.sqrt(N), torch.randn(N, **f64) * 0.2)

    w1, w2 = layer(D), layer(N)
    V, c = torch.randn(C, N, **f64) / math.sqrt(N), torch.randn(C, **f64) * 0.1
    x = torch.randn(B, burn_in + T, D, **f64)
    h0 = [torch.randn(B, N, **f64) * 0.5 for _ in range(2)]
    y = torch.nn.functional.one_hot(torch.randint(C, (B, T), generator=g), C).double()
    rec = cells.run_layers([("leaky", w1), ("leaky", w2)], x, [(h0[0],), (h0[1],)], burn_in)
    readout = LeakyParams(*w2, V=V, c=c)
    traj = adjoint.trajectory(rec, readout, y, "mse")
    assert traj.shape == (T, B, 2 * N)
    fast = adjoint.log_grad_norms(traj).numpy()
    p1, p2 = LeakyParams(*w1, V=V, c=c), readout

    def two_layers(x_t, s):
        h1 = step(p1, x_t, s[0])
        return h1, step(p2, h1, s[1])

    ref = reference.autograd_log_grad_norms(two_layers, tuple(h0), x, readout, y, burn_in)
    assert log10_diff(fast / LN10, ref[""].numpy() / LN10) < TOL


def test_weight_grad_uses_recurrent_cotangent(leaky):
    """The weight gradient by lag, summed over lags, is autograd's dL/dW of L = sum_t L_t."""
    net = small_net(burn_in=0)
    p = net.params
    traj = adjoint.forward(p, net.x, net.h0, net.y_target)
    got = weight_grad_by_lag(traj)["log10_total_norm"][0]
    W = p.W.clone().requires_grad_()
    q = replace(p, W=W)
    h, loss = net.h0, 0.0
    for t in range(net.x.shape[1]):
        h = step(q, net.x[:, t], h)
        loss = loss + readout_losses(q, h, net.y_target[:, t], "mse").sum()
    (dW,) = torch.autograd.grad(loss, W)
    assert abs(got - math.log10(torch.linalg.matrix_norm(dW).item())) < 1e-10


def spec_dict(**measure) -> dict:
    return {"seed": 5,
            "model": {"cell": "leaky", "hidden_size": 8, "input_size": 3, "output_size": 4,
                      "init": "orthogonal", "spectral_radius": 1.2, "bias_std": 0.2},
            "data": {"seq_len": 12, "batch_size": 3, "burn_in": 6, "h0_std": 0.3},
            "measure": {"device": "cpu", "save_tensors": True, "progress": False,
                        "lyapunov": True, "jacobian": True, "weight_grad": True, **measure}}


def reference_of_saved(tensors: dict, max_lag) -> np.ndarray:
    """The batch mean of log10 ||dL_t/dh_k|| (T, T) by autograd from saved tensors."""
    t = {k: torch.as_tensor(v) for k, v in tensors.items()}
    p = LeakyParams(t["U"], t["W"], t["b"], t["V"], t["c"])
    ref = reference.cell_reference(p, t["x"], t["h0"], t["y_target"], max_lag=max_lag)
    return ref[""].mean(-1).numpy() / LN10


def lag_means(log10_matrix: np.ndarray, L: int) -> np.ndarray:
    """Per lag, the mean over the pairs (t, t - lag) of a (T, T) matrix of batch means."""
    T = log10_matrix.shape[0]
    return np.array([np.mean([log10_matrix[t, t - lag] for t in range(lag, T)])
                     for lag in range(L)])


@pytest.mark.parametrize("max_lag", [None, 5])
def test_measure_api(leaky, max_lag):
    """``measure`` of a RunSpec naming the new cell: its log10_grad and lag table are the
    autograd reference's; the fit and the optional tables come out finite."""
    spec = RunSpec.from_dict(spec_dict(max_lag=max_lag))
    m = measure(spec)
    assert set(m.theory) == {"lyapunov_1"}  # the cell brings no theory of its own
    assert math.isfinite(m.theory["lyapunov_1"])
    assert math.isfinite(m.fit["decay_rate"])
    ref = reference_of_saved(m.tensors, max_lag)
    assert log10_diff(m.tensors["log10_grad"], ref) < TOL
    L = len(m.lags["lag"])
    assert L == (12 if max_lag is None else max_lag + 1)
    assert np.abs(m.lags["log10_grad_mean"] - lag_means(ref, L)).max() < TOL
    assert (m.lags["n_zero"] == 0).all()
    assert np.isfinite(m.jacobian["log10_spec_mean"]).all()
    assert np.isfinite(m.weight_grad["log10_norm"]).all()


# --------------------------------------------------------------------------------------------
# The command line, in this process (the cell is registered here only)
# --------------------------------------------------------------------------------------------
MODEL_YAML = """\
# @package model
# model.cell=leaky (a test's own cell) with every other key as in elman.yaml
defaults:
  - elman
  - _self_

cell: leaky
"""


def test_command_line_with_conf_model_file(leaky, in_process, tmp_path, monkeypatch, capsys):
    from rnnlab.measure.app import APP

    driver = in_process
    conf = tmp_path / "conf"
    (conf / "model").mkdir(parents=True)
    (conf / "model" / "leaky.yaml").write_text(MODEL_YAML)
    run_dir = tmp_path / "run"

    @hydra.main(version_base="1.3", config_path=str(CONF), config_name="decay")
    def hydra_main(cfg) -> None:
        driver.run_job(APP, cfg)

    overrides = ["model=leaky", f"hydra.searchpath=[file://{conf}]", f"hydra.run.dir={run_dir}",
                 "model.hidden_size=6", "model.input_size=3", "model.output_size=4",
                 "model.spectral_radius=1.1", "model.bias_std=0.2", "data.seq_len=12",
                 "data.batch_size=2", "data.burn_in=3", "data.h0_std=0.4", "measure.max_lag=8",
                 "measure.save_tensors=true", "measure.device=cpu", "measure.progress=false"]
    monkeypatch.setattr(sys, "argv", ["decay.py", *overrides])
    status = driver.main(hydra_main, CONF, APP, argv=overrides)
    out = capsys.readouterr()
    assert status == 0, out.err[-3000:]

    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "completed", run
    assert math.isfinite(run["decay_rate"])
    assert run["params"]["model.cell"] == "leaky"
    assert run["params"]["model.hidden_size"] == 6
    tensors = dict(np.load(run_dir / "tensors.npz"))
    assert tensors["W"].shape == (6, 6) and tensors["x"].shape == (2, 12, 3)
    ref = reference_of_saved(tensors, 8)
    assert log10_diff(tensors["log10_grad"], ref) < TOL
    lags = pd.read_parquet(run_dir / "lags.parquet")
    assert list(lags["lag"]) == list(range(9))
    assert np.abs(lags["log10_grad_mean"].to_numpy() - lag_means(ref, 9)).max() < TOL
