"""Shared fixtures: a seeded network and trajectory builder, the GPU skip, the driver run in this
process, the checks of a statistical test (``Check``, shared by a fast test and its 20-seed
re-run in tests/test_false_failures.py), and the check that the suite leaves the repository as
it found it (tests write only to temporary directories)."""
import hashlib
import json
import logging
import math
import signal
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pytest
import torch
from torch import Tensor

torch.set_flush_denormal(True)

from rnnlab.engine import adjoint as gradients  # noqa: E402 (after set_flush_denormal)
from rnnlab.measure.config import DataSpec, ModelSpec  # noqa: E402 (after set_flush_denormal)
from rnnlab.measure.networks import draw  # noqa: E402 (after set_flush_denormal)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="no CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def make(seed=0, dtype=torch.float64, device="cpu", loss="mse", burn_in=0, **kw):
    """(draw, trajectory) for ModelSpec/DataSpec fields given as keywords."""
    model_keys = set(ModelSpec.__dataclass_fields__)
    m = ModelSpec(**{k: v for k, v in kw.items() if k in model_keys}, loss=loss)
    d = DataSpec(**{k: v for k, v in kw.items() if k not in model_keys}, burn_in=burn_in)
    m.validate()
    d.validate()
    net = draw(m, d, seed)
    p = net.params.to(device, dtype)
    traj = gradients.forward(p, net.x.to(device, dtype), net.h0.to(device, dtype),
                             net.y_target.to(device, dtype), burn_in=burn_in, loss=loss)
    return net, p, traj


class Check(NamedTuple):
    """One criterion of a statistical test: passes when ``deviation <= tolerance`` (an absolute
    deviation from the estimator's expectation, or a signed one for a one-sided bound)."""
    name: str
    deviation: float
    tolerance: float

    @property
    def ok(self) -> bool:
        return self.deviation <= self.tolerance


def assert_checks(checks: list[Check]) -> None:
    """Fails naming every criterion outside its tolerance."""
    bad = [f"{c.name}: {c.deviation:.6g} > {c.tolerance:.6g}" for c in checks if not c.ok]
    assert not bad, "; ".join(bad)


def log_diff(a, b):
    """max |a - b| for log values, counting equal infinities (exact zero gradients) as equal and
    an infinity against a finite value as inf."""
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    same_inf = torch.isinf(a) & (a == b)
    d = torch.where(same_inf, torch.zeros_like(a), (a - b).abs())
    return torch.nan_to_num(d, nan=float("inf")).max().item()


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module's tests (``pytestmark = pytest.mark.usefixtures(
    "one_thread")``): small recurrent steps run 10-30x faster on one thread when the cores are
    shared; the count is restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def in_process(monkeypatch):
    """The command-line driver (``rnnlab.runs.driver``) for a test that runs it in this process:
    afterwards the SIGINT handler, the root logger's handlers and levels, torch's thread count
    and the driver's run state are as they were."""
    from rnnlab.runs import driver

    sigint = signal.getsignal(signal.SIGINT)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {n: logging.getLogger(n).level for n in ("hydra", "hydra_plugins")}
    threads = torch.get_num_threads()
    monkeypatch.setattr(driver, "_state", {})
    try:
        yield driver
    finally:
        signal.signal(signal.SIGINT, sigint)
        for h in list(root.handlers):
            if h not in handlers:
                root.removeHandler(h)
        for h in handlers:
            if h not in root.handlers:
                root.addHandler(h)
        root.setLevel(level)
        for n, lv in levels.items():
            logging.getLogger(n).setLevel(lv)
        torch.set_num_threads(threads)


def _app_in_process(in_process, monkeypatch, capsys, app_module: str, config_name: str):
    """``experiments/<config_name>.py ARGS`` run in this process through the same driver
    (Hydra's compose and launch included): a function of the arguments returning (exit status,
    stdout, stderr). Cheaper than a subprocess where the process boundary itself is not under
    test."""
    import importlib

    import hydra

    app = importlib.import_module(app_module).APP
    conf = Path(__file__).resolve().parents[1] / "conf"

    @hydra.main(version_base="1.3", config_path=str(conf), config_name=config_name)
    def hydra_main(cfg) -> None:
        in_process.run_job(app, cfg)

    def run(*argv):
        monkeypatch.setattr(sys, "argv", [f"{config_name}.py", *argv])
        in_process._state.clear()
        try:
            status = in_process.main(hydra_main, conf, app, argv=list(argv))
        except SystemExit as done:  # Hydra's own exits
            status = done.code
        out = capsys.readouterr()
        return status, out.out, out.err

    return run


@pytest.fixture
def decay_in_process(in_process, monkeypatch, capsys):
    """``experiments/decay.py ARGS`` in this process (``_app_in_process``)."""
    return _app_in_process(in_process, monkeypatch, capsys, "rnnlab.measure.app", "decay")


@pytest.fixture
def train_in_process(in_process, monkeypatch, capsys):
    """``experiments/train.py ARGS`` in this process (``_app_in_process``)."""
    return _app_in_process(in_process, monkeypatch, capsys, "rnnlab.train.app", "train")


# a training run of a second: temporal order at T = 10, 20 updates, small evaluations
TINY_TRAIN = ["task=temporal_order", "task.length=10", "model.hidden_size=6", "train.steps=20",
              "train.eval_every=10", "train.eval_size=40", "train.test_size=40",
              "train.eval_batch=40", "train.batch_size=8", "train.probe_size=4", "train.lr=0.01",
              "train.dtype=float64", "train.progress=false"]


def assert_tiny_run_reloads(run: Path, module: str):
    """A finished ``TINY_TRAIN`` run of ``experiments/train.py``: its curve has the three
    evaluations, its model.pt reloads as ``module``, the initial decay rate is the engine's on
    the rebuilt initial network, training moved the cell, and the reloaded model scores exactly
    the test errors the run reported. Returns (run.json's record, the reloaded cell module)."""
    from rnnlab.train.config import TrainConfig
    from rnnlab.train.horizon import decay_rate
    from rnnlab.train.loop import build, evaluate, load_model, sample, stream

    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed"
    curve = pd.read_parquet(run / "curve.parquet")
    assert list(curve["step"]) == [0, 10, 20] and np.isfinite(curve["eval_loss"]).all()
    rnn, head, _ = load_model(run / "model.pt")
    assert type(rnn).__name__ == module
    rnn0, head0 = build(TrainConfig(**record["params"]).validate())
    x, y = sample("temporal_order", 4, 10, stream(0, "probe"), torch.float64)
    assert decay_rate(rnn0, head0, "temporal_order", x, y) == pytest.approx(
        record["initial_decay_rate"], rel=1e-12)
    moved = [(a - b).abs().max().item() for a, b in zip(rnn.parameters(), rnn0.parameters())]
    assert max(moved) > 0  # the updates reached the cell
    ev = evaluate(rnn, head, "temporal_order", 10, stream(0, "test"), 40, 40)
    assert (ev.errors, ev.count) == (record["eval_errors"], record["eval_count"])
    return record, rnn


def assert_refused(status: int, err: str, run: Path, needle: str) -> None:
    """A command line refused as the driver promises: exit 2, one line on stderr starting
    "rnnlab: error: " and naming ``needle``, and no run directory."""
    lines = err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and lines[0].startswith("rnnlab: error: "), err
    assert needle in lines[0], lines[0]
    assert not run.exists()


def assert_stack_matches_autograd(low, high, x: Tensor, y: Tensor, sizes: tuple) -> None:
    """Two registered one-layer cells stacked (``low`` feeds ``high``; each a drawn ``params``
    with its ``cell``) through the engine's seam: every pair's ln ||dL_t/ds_k|| equals the
    per-target autograd loop through the two reference steps, to 1e-10 in log10."""
    from rnnlab.engine import adjoint, cells, reference
    from rnnlab.engine.cells.stack import run_layers

    zeros = [torch.zeros(x.shape[0], n, dtype=torch.float64) for n in sizes]
    rec = run_layers([(low.cell, (low,)), (high.cell, (high,))], x, [(zeros[0],), (zeros[1],)])
    fast = adjoint.log_grad_norms(adjoint.trajectory(rec, high, y, "xent"))
    s_low = cells.get(low.cell).reference_step(low)
    s_high = cells.get(high.cell).reference_step(high)

    def step(x_t, state):
        h1 = s_low(x_t, state[:1])[0]
        return h1, s_high(h1, state[1:])[0]

    ref = reference.autograd_log_grad_norms(step, tuple(zeros), x, high, y, 0, "xent")[""]
    measured = ~torch.isnan(ref)
    assert torch.equal(measured, ~torch.isnan(fast))
    assert log_diff(fast[measured], ref[measured]) < 1e-10 * math.log(10)


def assert_cell_matches_autograd(net, burn_in: int, loss: str, max_lag) -> None:
    """Every pair's ln ||dL_t/ds_k|| of a drawn network (``rnnlab.measure.networks.Draw``)
    through the engine equals the per-target autograd loop through the cell's reference step,
    to 1e-10 in log10, and the two measure the same pairs."""
    from rnnlab.engine import adjoint, reference

    traj = adjoint.forward(net.params, net.x, net.h0, net.y_target, burn_in=burn_in, loss=loss)
    ref = reference.cell_reference(net.params, net.x, net.h0, net.y_target, burn_in, loss,
                                   max_lag)[""]
    fast = adjoint.log_grad_norms(traj, max_lag)
    measured = ~torch.isnan(ref)
    assert torch.equal(measured, ~torch.isnan(fast)) and measured.sum() > 0
    assert log_diff(fast[measured], ref[measured]) < 1e-10 * math.log(10)


# --------------------------------------------------------------------------------------------
# The suite leaves the repository as it found it
# --------------------------------------------------------------------------------------------
ROOT = Path(__file__).resolve().parents[1]


def _digest(path: Path):
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def tree_state() -> dict | None:
    """Every file git reports as changed or untracked, with its content digest, and every file
    under results/ (committed or ignored, e.g. results/runs/) with its size and mtime; None
    outside a git checkout."""
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "-z"],
                             cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    state = {}
    for entry in filter(None, out.split("\0")):
        path = entry[3:]
        state[path] = (entry[:2], _digest(ROOT / path))
    for p in (ROOT / "results").rglob("*"):
        if p.is_file():
            st = p.stat()
            state.setdefault(str(p.relative_to(ROOT)), ("results", st.st_size, st.st_mtime_ns))
    return state


@pytest.fixture(scope="session", autouse=True)
def repository_unchanged():
    """Fails the run (an error at the end of the session) when the suite added, changed or
    removed a file of the repository: tests write only to their temporary directories."""
    before = tree_state()
    yield
    after = tree_state()
    if before is None or after is None:
        return
    changed = sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))
    assert not changed, ("the test run changed the repository (tests must write only to "
                         "tmp_path):\n" + "\n".join(changed[:40]))
