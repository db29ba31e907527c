"""The batched adjoint sweep against the per-target autograd loop, side by side on the same inputs.

    python benchmarks/bench_gradients.py                       # CPU, float64, the issue's shapes
    python benchmarks/bench_gradients.py --cells elman gru lstm minimal --shapes 256,32,300
    python benchmarks/bench_gradients.py --device cuda --dtype float32 \
        --shapes 256,32,1000 1024,64,1000

For each cell and (N, B, T): wall time of each path (forward included), the speedup, the achieved
GFLOP/s of the sweep counted as G B N^2 (T^2 + T) (one multiply-add per entry of each live GEMM
with the stacked recurrent matrix, x2; G = 1 for Elman and the minimalRNN, 3 for GRU, 4 for
LSTM), its percent of this machine's measured GEMM peak for the dtype, and each path's peak
memory above the inputs (a fresh process per measurement on CPU, so RSS peaks do not mix). The
reference is the per-target autograd loop (through torch.nn.GRUCell / LSTMCell for gated
cells). TF32 is off on GPU. Expected: the sweep is >= 100x the reference at (64, 1, 1000), and
near the GEMM peak at N >= 512.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import platform
import resource
import threading
import time

import torch

torch.set_flush_denormal(True)

from rnnlab.engine import adjoint as gradients  # noqa: E402 (after set_flush_denormal)
from rnnlab.engine import reference  # noqa: E402 (after set_flush_denormal)
from rnnlab.measure.config import DataSpec, ModelSpec  # noqa: E402 (after set_flush_denormal)
from rnnlab.measure.networks import draw  # noqa: E402 (after set_flush_denormal)

DTYPES = {"float32": torch.float32, "float64": torch.float64}
GEMM_BLOCKS = {"elman": 1, "minimal": 1, "gru": 3, "lstm": 4}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def gemm_peak(device, dtype, repeats=10) -> float:
    """GFLOP/s of the best n x n x n matrix product over sizes and ``repeats`` tries."""
    best = 0.0
    for n in (512, 1024, 2048):
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        for _ in range(repeats):
            _sync(device)
            t = time.perf_counter()
            a @ b
            _sync(device)
            best = max(best, 2 * n ** 3 / (time.perf_counter() - t) / 1e9)
    return best


def _inputs(N, B, T, device, dtype, cell="elman"):
    net = draw(ModelSpec(cell=cell, activation="tanh", hidden_size=N, input_size=N,
                         output_size=10, spectral_radius=1.0),
               DataSpec(seq_len=T, batch_size=B), seed=0)
    p = net.params.to(device, dtype)
    return p, net.x.to(device, dtype), net.h0.to(device, dtype), net.y_target.to(device, dtype)


class RssPeak:
    """Peak resident memory (MB) while the block runs, polled from /proc every millisecond:
    torch's CPU allocator keeps no statistics of its own."""

    def __enter__(self):
        self.base = self.peak = self._now()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self):
        while not self._stop.wait(0.001):
            self.peak = max(self.peak, self._now())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._now())

    @staticmethod
    def _now() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize() / 2 ** 20


def measure_one(path, N, B, T, device, dtype, threads, cell="elman", queue=None):
    """(seconds, peak memory MB above the inputs) of one path."""
    if threads:
        torch.set_num_threads(threads)
    device = torch.device(device)
    p, x, h0, y = _inputs(N, B, T, device, dtype, cell)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    _sync(device)
    with RssPeak() as rss:
        t = time.perf_counter()
        if path == "sweep":
            traj = gradients.forward(p, x, h0, y)
            gradients.pair_profile(traj)
        elif cell == "elman":
            gradients.reference_log_grad_norms(p, x, h0, y)
        else:
            reference.cell_reference(p, x, h0, y)
        _sync(device)
        seconds = time.perf_counter() - t
    peak = (torch.cuda.max_memory_allocated(device) - base) / 2 ** 20 if device.type == "cuda" \
        else rss.peak - rss.base
    if queue is not None:
        queue.put((seconds, peak))
    return seconds, peak


def run_isolated(*args):
    """On CPU a fresh process per measurement: ru_maxrss is a high-water mark per process."""
    if args[4] != "cpu":
        return measure_one(*args)
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    proc = ctx.Process(target=measure_one, args=(*args, q))
    proc.start()
    result = q.get()
    proc.join()
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float64", choices=DTYPES)
    ap.add_argument("--shapes", nargs="+", default=["64,1,1000", "256,32,300", "512,32,300"],
                    help="N,B,T triples")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    ap.add_argument("--cells", nargs="+", default=["elman"], choices=list(GEMM_BLOCKS))
    ap.add_argument("--no-reference", action="store_true", help="time the sweep only")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        name = torch.cuda.get_device_name(device)
    else:
        name = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    peak = gemm_peak(device, dtype)
    print(f"device: {name}; dtype {args.dtype}; torch {torch.__version__}")
    print(f"measured GEMM peak (best n^3 product, n <= 2048): {peak:.1f} GFLOP/s\n")
    head = (f"{'cell':>7} {'N':>5} {'B':>4} {'T':>5} | "
            f"{'sweep s':>8} {'ref s':>8} {'speedup':>8} | "
            f"{'GFLOP/s':>8} {'% peak':>7} | {'sweep MB':>9} {'ref MB':>8}")
    print(head)
    print("-" * len(head))
    for cell, shape in ((c, s) for s in args.shapes for c in args.cells):
        N, B, T = (int(v) for v in shape.split(","))
        common = (N, B, T, args.device, dtype, args.threads, cell)
        t_fast, m_fast = run_isolated("sweep", *common)
        if args.no_reference:
            t_ref, m_ref = float("nan"), float("nan")
        else:
            t_ref, m_ref = run_isolated("reference", *common)
        gflops = GEMM_BLOCKS[cell] * B * N * N * (T * T + T) / t_fast / 1e9
        print(f"{cell:>7} {N:>5} {B:>4} {T:>5} | "
              f"{t_fast:>8.3f} {t_ref:>8.2f} {t_ref / t_fast:>7.1f}x | "
              f"{gflops:>8.1f} {100 * gflops / peak:>6.0f}% | {m_fast:>9.1f} {m_ref:>8.1f}",
              flush=True)


if __name__ == "__main__":
    main()
