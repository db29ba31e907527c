"""Ways of computing every ||dL_t/dh_k||, timed side by side on the same inputs, one torch thread.

    python benchmarks/bench_gradients.py                       # CPU, float64, the issue's shapes
    python benchmarks/bench_gradients.py --cells elman gru lstm minimal --shapes 256,32,300
    python benchmarks/bench_gradients.py --methods sweep --shapes 64,1,1000 1024,32,300
    python benchmarks/bench_gradients.py --device cuda --dtype float32 --threads 0 \\
        --shapes 256,32,1000 1024,64,1000
    python benchmarks/bench_gradients.py --quick               # a smoke run on a tiny shape

Each column of the table is one entry of ``METHODS`` (its name, what it runs, whether the sweep's
flop count applies to it): a new way of computing the norms is one entry there. For each cell and
(N, B, T) the table gives each method's time (forward pass included), the autograd reference's
time over each other method's (the speedup), the achieved GFLOP/s of a sweep counted as
G B N^2 (T^2 + T) (one multiply-add per entry of each live GEMM with the stacked recurrent
matrix, x2; G = 1 for Elman and the minimalRNN, 3 for GRU, 4 for LSTM) as a percent of this
machine's GEMM peak for the dtype (the best n x n x n product, n in 512, 1024, 2048, best of 10
tries, on the same threads and clock), and each method's peak memory above its inputs.

Threads: ``--threads 1`` by default, so that the sweep and the peak it is compared with share one
core (0: torch's default). With one thread on CPU every time is the CPU time of the measuring
process, the time the work held its core, which other jobs on a shared machine do not stretch;
otherwise (more threads, GPU) it is wall time. Each time is the best of ``--repeat`` runs in one
process; the memory is polled during the first. Every measurement runs in a fresh process (RSS
peaks do not mix, and a crash or a hang of one measurement is reported, not waited on): a failed
or timed-out measurement ends the benchmark with its error's last line and exit status 1. TF32 is
off on GPU. Expected: the sweep is >= 10x the reference at (64, 1, 1000) and at least half the
GEMM peak at every shape.
"""
from __future__ import annotations

# Only the standard library above main(): `--help` and a bad argument answer without torch.
import argparse
import json
import math
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial

DTYPES = ("float32", "float64")
GEMM_BLOCKS = {"elman": 1, "minimal": 1, "gru": 3, "lstm": 4}
SHAPES = ["64,1,1000", "256,32,300", "512,32,300"]
QUICK_SHAPE = "16,2,20"


def _sweep(p, x, h0, y, **forward_options) -> None:
    """The batched adjoint sweep: forward pass, then every pair's norm into the per-lag moments
    (what a run computes)."""
    from rnnlab.engine import adjoint

    adjoint.pair_profile(adjoint.forward(p, x, h0, y, **forward_options))


def _reference(p, x, h0, y) -> None:
    """The per-target autograd loop (through torch.nn.GRUCell / LSTMCell for gated cells)."""
    from rnnlab.engine import reference

    if p.cell == "elman":
        reference.reference_log_grad_norms(p, x, h0, y)
    else:
        reference.cell_reference(p, x, h0, y)


@dataclass(frozen=True)
class Method:
    """One column of the table. ``run(p, x, h0, y)`` computes every ||dL_t/dh_k|| of a drawn
    network (its weights ``p``, inputs, initial state and targets on the compute device);
    ``sweep_flops``: it does the sweep's G B N^2 (T^2 + T) flops, so its % of the GEMM peak is
    printed."""

    run: Callable
    sweep_flops: bool
    help: str


# The columns, in the table's order; a new way of computing the norms is one entry here.
METHODS = {
    "sweep": Method(partial(_sweep), True, "rnnlab.engine.adjoint: forward + pair_profile"),
    "derived": Method(partial(_sweep, jacobians="derived"), True,
                      "the same sweep on step Jacobians derived by torch.func from the cell's "
                      "step (rnnlab.engine.derived)"),
    "reference": Method(_reference, False, "rnnlab.engine.reference: one autograd.grad per t"),
}
BASELINE = "reference"  # the speedup columns are its time over each other method's


class Failed(Exception):
    """A measurement's process failed or timed out; the message is one line."""


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="methods:\n" + "\n".join(
                                     f"  {name:10} {m.help}" for name, m in METHODS.items()))
    ap.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    ap.add_argument("--dtype", default="float64", choices=DTYPES)
    ap.add_argument("--shapes", nargs="+", default=None,
                    help=f"N,B,T triples (default: {' '.join(SHAPES)}; {QUICK_SHAPE} with --quick)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    ap.add_argument("--cells", nargs="+", default=["elman"], choices=list(GEMM_BLOCKS))
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS),
                    help="the columns (default: all)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs per measurement, the best one counts (default 3; 1 with --quick)")
    ap.add_argument("--timeout", type=float, default=3600.0,
                    help="seconds one measurement may take before it is killed (default 3600)")
    ap.add_argument("--quick", action="store_true",
                    help=f"a smoke run: shape {QUICK_SHAPE} unless --shapes is given, and a short "
                         "GEMM peak (n <= 512, 3 tries)")
    # a measurement's own process: METHOD,CELL,N,B,T (the other options as given to the parent)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.shapes is None:
        args.shapes = [QUICK_SHAPE] if args.quick else SHAPES
    shapes = []
    for s in args.shapes:
        parts = s.split(",")
        if len(parts) != 3 or not all(v.isdigit() and int(v) > 0 for v in parts):
            ap.error(f"--shapes {s!r}: each shape must be N,B,T with three positive integers")
        shapes.append(tuple(int(v) for v in parts))
    args.shapes = shapes
    if args.quick:
        args.repeat = 1
    if args.repeat < 1:
        ap.error(f"--repeat {args.repeat}: must be >= 1")
    if args.threads < 0:
        ap.error(f"--threads {args.threads}: must be >= 0 (0: torch's default)")
    if not args.timeout > 0:
        ap.error(f"--timeout {args.timeout}: must be > 0 seconds")
    return args


# --------------------------------------------------------------------------------------------
# In a measurement's own process (torch imported)
# --------------------------------------------------------------------------------------------
def _setup(args):
    import torch

    torch.set_flush_denormal(True)  # as the apps do: denormal arithmetic is slow on CPU
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return torch, device


def _sync(torch, device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _clock(args) -> Callable[[], float]:
    """The clock every time is read on: the process's CPU time with one thread on CPU (the time
    the work held its core, which other jobs on the machine do not lengthen), else wall time."""
    return time.process_time if args.device == "cpu" and args.threads == 1 else time.perf_counter


def gemm_peak(args) -> float:
    """GFLOP/s of the best n x n x n matrix product over sizes and tries (the % of peak's base)."""
    torch, device = _setup(args)
    dtype, clock = getattr(torch, args.dtype), _clock(args)
    sizes, tries = ((256, 512), 3) if args.quick else ((512, 1024, 2048), 10)
    best = 0.0
    for n in sizes:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        for _ in range(tries):
            _sync(torch, device)
            t = clock()
            a @ b
            _sync(torch, device)
            best = max(best, 2 * n ** 3 / (clock() - t) / 1e9)
    return best


class RssPeak:
    """Peak resident memory (MB) while the block runs, polled from /proc every millisecond:
    torch's CPU allocator keeps no statistics of its own. ``cpu``: the poller's own CPU
    seconds, taken off the measured process's."""

    def __enter__(self):
        import threading

        self.base = self.peak = self._now()
        self.cpu = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self):
        start = time.thread_time()
        while not self._stop.wait(0.001):
            self.peak = max(self.peak, self._now())
        self.cpu = time.thread_time() - start

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._now())

    @staticmethod
    def _now() -> float:
        import resource

        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize() / 2 ** 20


def measure(args, method: str, cell: str, N: int, B: int, T: int) -> dict:
    """Best time of ``--repeat`` runs (on ``_clock``) and the peak memory (MB above the inputs)
    of one method on one drawn network; the memory is polled during the first run only, so that
    the poller does not share the core with the other runs."""
    torch, device = _setup(args)
    from rnnlab.measure.config import DataSpec, ModelSpec
    from rnnlab.measure.networks import draw

    net = draw(ModelSpec(cell=cell, activation="tanh", hidden_size=N, input_size=N,
                         output_size=10, spectral_radius=1.0),
               DataSpec(seq_len=T, batch_size=B), seed=0)
    dtype, clock = getattr(torch, args.dtype), _clock(args)
    inputs = (net.params.to(device, dtype), net.x.to(device, dtype), net.h0.to(device, dtype),
              net.y_target.to(device, dtype))
    best, peak = math.inf, 0.0
    for i in range(args.repeat):
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
        _sync(torch, device)
        with RssPeak() if i == 0 else nullcontext() as rss:
            t = clock()
            METHODS[method].run(*inputs)
            _sync(torch, device)
            seconds = clock() - t
        if i == 0:
            if clock is time.process_time:
                seconds -= rss.cpu
            peak = (torch.cuda.max_memory_allocated(device) - base) / 2 ** 20 \
                if device.type == "cuda" else rss.peak - rss.base
        best = min(best, seconds)
    return {"seconds": best, "mb": peak}


def child(args) -> int:
    """One measurement (or the GEMM peak), its result as one JSON line on stdout."""
    if args.child == "peak":
        import torch

        from rnnlab.runs.store import cpu_model

        result = {"gflops": gemm_peak(args), "torch": torch.__version__,
                  "device": torch.cuda.get_device_name(args.device)
                  if args.device.startswith("cuda") else cpu_model()}
    else:
        method, cell, *shape = args.child.split(",")
        result = measure(args, method, cell, *(int(v) for v in shape))
    print(json.dumps(result), flush=True)
    return 0


# --------------------------------------------------------------------------------------------
# The parent: no torch, one child process per measurement
# --------------------------------------------------------------------------------------------
def run_child(args, what: str) -> dict:
    """Run ``--child what`` in a fresh process; its JSON result, or Failed with the last line of
    its traceback (or the timeout)."""
    argv = [sys.executable, __file__, "--child", what, "--device", args.device,
            "--dtype", args.dtype, "--threads", str(args.threads), "--repeat", str(args.repeat)] + \
        (["--quick"] if args.quick else [])
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        raise Failed(f"no result within --timeout {args.timeout:g} s; killed") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise Failed(lines[-1] if lines else f"exit status {done.returncode}, stderr empty")
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(args, peak: float) -> int:
    """Measure every (shape, cell, method) and print the rows as they come."""
    methods = [m for m in METHODS if m in args.methods]
    fast = [m for m in methods if m != BASELINE]
    ratios = [m for m in fast if BASELINE in methods]
    flops = [m for m in methods if METHODS[m].sweep_flops]
    both = "sweep" in methods and "derived" in methods  # derived over hand-written Jacobians
    head = (f"{'cell':>7} {'N':>5} {'B':>4} {'T':>5} | "
            + " ".join(f"{m + ' s':>11}" for m in methods)
            + (" | " + " ".join(f"{'ref/' + m:>11}" for m in ratios) if ratios else "")
            + (" | " + " ".join(f"{m + ' %peak':>13}" for m in flops) if flops else "")
            + (f" | {'derived/hand':>12}" if both else "")
            + " | " + " ".join(f"{m + ' MB':>12}" for m in methods))
    print(head)
    print("-" * len(head), flush=True)
    for (N, B, T), cell in ((s, c) for s in args.shapes for c in args.cells):
        got = {}
        for m in methods:
            try:
                got[m] = run_child(args, f"{m},{cell},{N},{B},{T}")
            except Failed as e:
                print(f"bench_gradients: {m} of {cell} at (N, B, T) = ({N}, {B}, {T}) failed: "
                      f"{e}", file=sys.stderr)
                return 1
        work = GEMM_BLOCKS[cell] * B * N * N * (T * T + T) / 1e9
        print(f"{cell:>7} {N:>5} {B:>4} {T:>5} | "
              + " ".join(f"{got[m]['seconds']:>11.3f}" for m in methods)
              + (" | " + " ".join(f"{got[BASELINE]['seconds'] / got[m]['seconds']:>10.1f}x"
                                  for m in ratios) if ratios else "")
              + (" | " + " ".join(f"{100 * work / got[m]['seconds'] / peak:>12.1f}%"
                                  for m in flops) if flops else "")
              + (f" | {got['derived']['seconds'] / got['sweep']['seconds']:>11.2f}x"
                 if both else "")
              + " | " + " ".join(f"{got[m]['mb']:>12.1f}" for m in methods), flush=True)
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        try:
            return child(args)
        except Exception:
            traceback.print_exc()
            return 1
    try:
        peak = run_child(args, "peak")
    except Failed as e:
        print(f"bench_gradients: the GEMM peak on {args.device} failed: {e}", file=sys.stderr)
        return 1
    clock = "CPU seconds of the measuring process" if args.device == "cpu" and \
        args.threads == 1 else "wall seconds"
    print(f"device: {peak['device']}; {args.threads or 'default'} torch thread(s); "
          f"dtype {args.dtype}; torch {peak['torch']}; load average "
          f"{os.getloadavg()[0]:.1f}")
    print(f"times: {clock}, best of {args.repeat}")
    print(f"GEMM peak (best n^3 product{', n <= 512 (--quick)' if args.quick else ''}): "
          f"{peak['gflops']:.1f} GFLOP/s\n")
    return table(args, peak["gflops"])


if __name__ == "__main__":
    sys.exit(main())
