"""The diagonal fast path (``rnnlab.engine.diagonal``) against the adjoint sweep, float64:

- every ln ratio ln ||dL_t/ds_k|| / ||g_t|| of every pair equals the sweep's to 1e-12 (relative
  where |ln ratio| > 1: float64 holds a ratio of -3000 nats to 5e-13), NaN and +-inf at the same
  pairs, for minGRU, minLSTM, RG-LRU and the LRU (several radii and phases, equal radii, a
  ring reaching r = 0.01), with and without max_lag and burn-in, with tiles and row chunks small
  enough that every block kind (the recursive square, the off-diagonal rectangle in several
  chunks, the tile's padding) is used;
- every column of the per-lag table (``lag_table``) and the (T, T) log10 matrix equal the
  sweep's to 1e-12, and so does a whole measurement (``rnnlab.measure.run.measure``), which
  takes the fast path by itself for these cells and not for a stack-free dense cell, derived
  maps, redrawn weights or the weight gradient by lag;
- strong decay (minGRU, input_gain 50): products of factors far below 1e-308 (ln ratios below
  -1500 nats), exact zero factors (1 - z rounding to 0), and pairs whose blockwise sum
  underflows, recomputed by the log-sum-exp over units: finite exactly where the sweep's are,
  equal to 1e-12;
- float32: the fast path on a float32 forward equals the float64 sweep on the same network to
  1e-5 relative (the float32 forward and factors dominate: the float32 sweep is as far); under
  strong decay, where a float32 forward saturates gates to exact zeros and the float32 sweep
  loses units below float32's range, the fast path equals the exact float64 sweep on the
  float32 run's own factors to 1e-6 relative, finite at the same pairs;
- on CUDA (``gpu``): the fast path on the device equals it on the CPU to 1e-12.
"""
import math

import pytest
import torch
from conftest import log_diff, make

from rnnlab.engine import adjoint, diagonal
from rnnlab.engine.adjoint import Trajectory
from rnnlab.engine.cells import Stack
from rnnlab.engine.cells.mingru import DiagonalLayer
from rnnlab.engine.fit import lag_table
from rnnlab.measure import run as measure_run
from rnnlab.measure.config import DataSpec, MeasureSpec, ModelSpec, RunSpec

pytestmark = pytest.mark.usefixtures("one_thread")

EXACT = 1e-12
FLOAT32 = 1e-5
KEYS = {"mingru": dict(cell="mingru", activation="linear", init="pytorch"),
        "minlstm": dict(cell="minlstm", activation="linear", init="pytorch"),
        "rglru": dict(cell="rglru", activation="linear", init="ring"),
        "lru": dict(cell="lru", activation="linear", init="ring"),
        "mamba": dict(cell="mamba", activation="linear", init="mamba", d_state=3)}
SHAPE = dict(hidden_size=12, input_size=5, output_size=4, batch_size=3, seq_len=70)


def rel_diff(a, b) -> float:
    """max |a - b| / max(1, |b|) over the pairs; equal infinities and NaN at the same pairs
    count as equal, anything else as inf."""
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    if not torch.equal(torch.isnan(a), torch.isnan(b)):
        return math.inf
    ok = ~torch.isnan(a)
    a, b = a[ok], b[ok]
    scale = torch.where(torch.isfinite(b), b.abs().clamp(min=1), 1.0)
    return log_diff(a / scale, b / scale)


def both(traj, max_lag=None):
    return (diagonal.log_grad_norms(traj, max_lag, ratio=True),
            adjoint.log_grad_norms(traj, max_lag, ratio=True))


CASES = [
    ("mingru", {}, None, 0),
    ("mingru", {}, 9, 4),
    ("minlstm", {}, None, 3),
    ("minlstm", {}, 20, 0),
    ("rglru", {}, None, 0),
    ("rglru", {}, 5, 6),
    ("lru", dict(r_min=0.4, r_max=0.95, max_phase=3.0), None, 0),
    ("lru", dict(r_min=0.9, r_max=0.999), 30, 5),
    ("lru", dict(r_min=0.7, r_max=0.7, max_phase=0.0), None, 2),
    ("lru", dict(r_min=0.01, r_max=0.99, max_phase=1.0, normalize=False), None, 0),
    ("mamba", {}, None, 0),
    ("mamba", dict(input_std=3.0), 11, 5),
]


@pytest.mark.parametrize("cell,keys,max_lag,burn_in", CASES)
def test_every_ratio_and_the_lag_table_equal_the_sweep(monkeypatch, cell, keys, max_lag,
                                                       burn_in):
    monkeypatch.setattr(diagonal, "ROWS", 5)  # the off-diagonal rectangle in several chunks
    _, _, traj = make(seed=4, burn_in=burn_in, **KEYS[cell], **SHAPE, **keys)
    assert diagonal.applies(traj)
    fast, dense = both(traj, max_lag)
    assert torch.isfinite(dense).sum() > 0 and rel_diff(fast, dense) < EXACT
    assert rel_diff(diagonal.log_grad_norms(traj, max_lag),  # ln ||dL_t/ds_k|| itself
                    adjoint.log_grad_norms(traj, max_lag)) < EXACT
    for tile in (8, diagonal.TILE):  # 70 steps: 9 tiles of 8 (the last padded), or one
        fast_p = diagonal.pair_profile(traj, max_lag, keep_matrix=True, tile=tile,
                                       progress=tile == 8)
        dense_p = adjoint.pair_profile(traj, max_lag, keep_matrix=True)
        fast_t, dense_t = lag_table(fast_p), lag_table(dense_p)
        assert fast_t.keys() == dense_t.keys()
        for col in dense_t:
            assert rel_diff(fast_t[col], dense_t[col]) < EXACT, col
        assert rel_diff(fast_p.log10_grad, dense_p.log10_grad) < EXACT


def test_strong_decay_underflow_zeros_and_the_fallback(monkeypatch):
    _, _, traj = make(seed=1, **KEYS["mingru"], hidden_size=16, input_size=8, output_size=4,
                      batch_size=2, seq_len=200, input_gain=50.0)
    a = traj.maps.layers[0].a
    assert (a == 0).any() and (a > 0).any()  # saturated gates: exact zero factors
    calls = []
    lse = torch.logsumexp

    def spy(x, *args, **kw):
        calls.append(x.shape[0])
        return lse(x, *args, **kw)

    monkeypatch.setattr(torch, "logsumexp", spy)
    fast = diagonal.log_grad_norms(traj, ratio=True)
    monkeypatch.setattr(torch, "logsumexp", lse)
    dense = adjoint.log_grad_norms(traj, ratio=True)
    assert sum(calls) > 0  # pairs recomputed by the log-sum-exp over units
    finite = torch.isfinite(dense)
    assert (dense[finite] < -1500).any()  # products far below 1e-308 (e^-1500 = 1e-651)
    assert (dense == -math.inf).any()  # every unit met a zero factor
    assert torch.equal(torch.isfinite(fast), finite)
    assert rel_diff(fast, dense) < EXACT


@pytest.mark.parametrize("cell,keys", [("mingru", {}), ("minlstm", {}), ("rglru", {}),
                                       ("lru", dict(r_min=0.4, r_max=0.99))])
def test_float32_agrees_with_float64(cell, keys):
    shape = dict(hidden_size=32, input_size=8, output_size=4, batch_size=2, seq_len=300)
    _, _, t64 = make(seed=2, **KEYS[cell], **shape, **keys)
    _, _, t32 = make(seed=2, dtype=torch.float32, **KEYS[cell], **shape, **keys)
    fast32 = diagonal.log_grad_norms(t32, ratio=True)
    assert rel_diff(fast32, adjoint.log_grad_norms(t64, ratio=True)) < FLOAT32


@pytest.mark.parametrize("gain", [20.0, 200.0])
def test_float32_under_strong_decay_is_exact_on_its_own_factors(gain):
    _, _, t32 = make(seed=2, dtype=torch.float32, **KEYS["mingru"], hidden_size=32,
                     input_size=8, output_size=4, batch_size=2, seq_len=300, input_gain=gain)
    layer = t32.maps.layers[0]
    assert (layer.a == 0).any()
    # the float64 sweep on the float32 run's factors and loss gradients: exact for them
    t64 = Trajectory(t32.u.double(), t32.log_scale, t32.g_dir.double(), t32.g_log_norm,
                     t32.h0, Stack([DiagonalLayer(layer.a.double(), layer.W_in.double(),
                                                  layer.coefficients)]))
    exact = adjoint.log_grad_norms(t64, ratio=True)
    fast32 = diagonal.log_grad_norms(t32, ratio=True)
    assert torch.equal(torch.isfinite(fast32), torch.isfinite(exact))
    assert rel_diff(fast32, exact) < 1e-6


def spec(cell="mingru", **measure_kw):
    return RunSpec(seed=5, model=ModelSpec(**KEYS[cell], hidden_size=10, input_size=4),
                   data=DataSpec(seq_len=40, batch_size=3, burn_in=3),
                   measure=MeasureSpec(progress=False, **measure_kw))


@pytest.mark.parametrize("cell,measure_kw", [("mingru", dict(save_tensors=True)),
                                             ("lru", dict(max_lag=12))])
def test_a_measurement_takes_the_fast_path_and_writes_the_same_table(monkeypatch, cell,
                                                                     measure_kw):
    used = []
    fast_profile = diagonal.pair_profile
    monkeypatch.setattr(diagonal, "pair_profile",
                        lambda *a, **kw: used.append(1) or fast_profile(*a, **kw))
    fast = measure_run.measure(spec(cell, **measure_kw))
    assert used
    monkeypatch.setattr(diagonal, "applies", lambda traj: False)
    dense = measure_run.measure(spec(cell, **measure_kw))
    assert len(used) == 1
    assert fast.lags.keys() == dense.lags.keys()
    for col in dense.lags:
        assert rel_diff(fast.lags[col], dense.lags[col]) < EXACT, col
    assert fast.fit.keys() == dense.fit.keys()
    for key, value in dense.fit.items():
        if isinstance(value, float):
            assert rel_diff([fast.fit[key]], [value]) < 1e-10, key
        else:
            assert fast.fit[key] == value, key
    if "log10_grad" in dense.tensors:
        assert rel_diff(fast.tensors["log10_grad"], dense.tensors["log10_grad"]) < EXACT


@pytest.mark.parametrize("cell,measure_kw", [
    ("mingru", dict(jacobians="derived")),
    ("mingru", dict(weights="redrawn")),
    ("minlstm", dict(jacobians="derived")),
])
def test_what_it_cannot_do_is_swept(monkeypatch, cell, measure_kw):
    monkeypatch.setattr(diagonal, "pair_profile",
                        lambda *a, **kw: pytest.fail("the fast path was taken"))
    m = measure_run.measure(spec(cell, **measure_kw))
    assert len(m.lags["lag"]) == 40


def test_a_dense_cell_is_not_diagonal():
    _, _, traj = make(cell="gru", activation="tanh", init="gaussian", hidden_size=6,
                      input_size=3, seq_len=10, batch_size=2)
    assert not diagonal.applies(traj)
    with pytest.raises(ValueError, match="the diagonal fast path takes one DiagonalLayer"):
        diagonal.pair_profile(traj)


def test_bad_tile_is_one_line():
    _, _, traj = make(seed=0, **KEYS["mingru"], hidden_size=4, input_size=2, seq_len=6,
                      batch_size=1)
    with pytest.raises(ValueError, match="tile=0 is not allowed"):
        diagonal.pair_profile(traj, tile=0)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_cuda_equals_cpu(dtype):
    kw = dict(seed=3, **KEYS["mingru"], hidden_size=64, input_size=16, output_size=4,
              batch_size=4, seq_len=600, input_gain=4.0)
    _, _, cpu = make(dtype=dtype, **kw)
    _, _, gpu = make(dtype=dtype, device="cuda", **kw)
    on_cpu = diagonal.log_grad_norms(cpu, 100, ratio=True)
    on_gpu = diagonal.log_grad_norms(gpu, 100, ratio=True).cpu()
    assert rel_diff(on_gpu, on_cpu) < (EXACT if dtype == torch.float64 else FLOAT32)
    assert rel_diff(on_cpu, adjoint.log_grad_norms(cpu, 100, ratio=True)) < \
        (EXACT if dtype == torch.float64 else FLOAT32)
