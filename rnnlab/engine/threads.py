"""How many torch threads a measurement uses, and setting them for one call only.

Each step of the adjoint sweep is a GEMM of B x N by N x N per sample's pair; below about 2^21
multiply-adds (B N^2) the GEMM is too small to split, and extra threads only wait on each other,
worst when other processes share the cores (docs/sweeps.md "Threads": the times measured by
benchmarks/bench_threads.py on a 2-core CPU).
"""
from __future__ import annotations

from contextlib import contextmanager

import torch

# B N^2 below which one torch thread is faster than several (measured on a 2-core CPU)
ONE_THREAD_WORK = 2 ** 21


def threads_for(device: str | torch.device, batch: int, hidden: int) -> int | None:
    """One thread for a small problem on CPU (B N^2 < ONE_THREAD_WORK); otherwise None (torch's
    default)."""
    if torch.device(device).type == "cpu" and batch * hidden ** 2 < ONE_THREAD_WORK:
        return 1
    return None


@contextmanager
def torch_threads(n: int | None):
    """torch on ``n`` threads inside the block (None: unchanged); the caller's count is restored
    after."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
