"""CPU and GPU give the same measurement (skipped without CUDA), for Elman, the gated cells and
measure_module.

float64: every ln ||dL_t/dh_k|| and ratio agrees to 1e-9 (the GEMMs sum in another order);
float32 with TF32 off: |log10 difference| < 1e-3 up to lag 50, as float32 against float64; the
fitted decay rate agrees to 1e-6 nats/step in float64.
"""
import math

import pytest
import torch
from conftest import log_diff, make

from rnnlab.engine import adjoint as gradients
from rnnlab.measure.config import DataSpec, MeasureSpec, ModelSpec, RunSpec
from rnnlab.measure.run import measure

pytestmark = pytest.mark.gpu


@pytest.fixture(autouse=True)
def no_tf32():
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32 = old


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid", "linear"])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-9), (torch.float32, 1e-3 * math.log(10))])
def test_cpu_gpu_parity(activation, dtype, tol):
    kw = dict(seed=2, activation=activation, hidden_size=48, seq_len=120, batch_size=4,
              spectral_radius=1.2, burn_in=10, h0_std=0.5, dtype=dtype)
    _, p_cpu, t_cpu = make(device="cpu", **kw)
    _, p_gpu, t_gpu = make(device="cuda", **kw)
    for ratio in (False, True):
        a = gradients.log_grad_norms(t_cpu, max_lag=50, ratio=ratio)
        b = gradients.log_grad_norms(t_gpu, max_lag=50, ratio=ratio).cpu()
        ok = ~torch.isnan(a)
        assert torch.equal(ok, ~torch.isnan(b))
        assert log_diff(a[ok], b[ok]) < tol


def test_run_on_cuda_matches_cpu():
    base = RunSpec(seed=1, model=ModelSpec(hidden_size=64), data=DataSpec(seq_len=200))
    cpu = measure(RunSpec(seed=1, model=base.model, data=base.data,
                          measure=MeasureSpec(device="cpu", progress=False)))
    gpu = measure(RunSpec(seed=1, model=base.model, data=base.data,
                          measure=MeasureSpec(device="cuda", progress=False)))
    assert abs(cpu.fit["decay_rate"] - gpu.fit["decay_rate"]) < 1e-6
    assert gpu.device == torch.cuda.get_device_name(0)


@pytest.mark.parametrize("cell,keys", [("gru", dict(init="pytorch")),
                                       ("lstm", dict(spectral_radius=1.5, gate_bias=1.0)),
                                       ("minimal", dict(gain=3.0))])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-9), (torch.float32, 1e-3 * math.log(10))])
def test_gated_cpu_gpu_parity(cell, keys, dtype, tol):
    kw = dict(seed=3, cell=cell, hidden_size=48, seq_len=120, batch_size=4, burn_in=10,
              h0_std=0.5, dtype=dtype, **keys)
    _, _, t_cpu = make(device="cpu", **kw)
    _, _, t_gpu = make(device="cuda", **kw)
    a = gradients.log_grad_norms(t_cpu, max_lag=50)
    b = gradients.log_grad_norms(t_gpu, max_lag=50).cpu()
    ok = ~torch.isnan(a)
    assert torch.equal(ok, ~torch.isnan(b))
    assert log_diff(a[ok], b[ok]) < tol


def test_measure_module_on_cuda_matches_cpu():
    from rnnlab import measure_module

    torch.manual_seed(0)
    rnn, head = torch.nn.GRU(8, 32, num_layers=2).double(), torch.nn.Linear(32, 5).double()
    x, y = torch.randn(60, 3, 8, dtype=torch.float64), torch.randint(5, (60, 3))
    cpu = measure_module(rnn, x, y, head=head)
    gpu = measure_module(rnn.cuda(), x.cuda(), y.cuda(), head=head.cuda())
    assert abs(cpu.decay_rate - gpu.decay_rate) < 1e-9
