"""Shared fixtures: a seeded network and trajectory builder, and the GPU skip."""
import pytest
import torch

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


def log_diff(a, b):
    """max |a - b| for log values, counting equal infinities (exact zero gradients) as equal and
    an infinity against a finite value as inf."""
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    same_inf = torch.isinf(a) & (a == b)
    d = torch.where(same_inf, torch.zeros_like(a), (a - b).abs())
    return torch.nan_to_num(d, nan=float("inf")).max().item()
