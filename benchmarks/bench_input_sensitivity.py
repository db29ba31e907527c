"""Every log10 ||dy_t/dx_k|| (k <= t) of a sequence model two ways, timed side by side:
``rnnlab.input_sensitivity``'s batched vector-Jacobian products and the naive per-coordinate
autograd loop (one torch thread on CPU).

    python benchmarks/bench_input_sensitivity.py                 # (B, T, N) = (8, 128, 64), C = 10
    python benchmarks/bench_input_sensitivity.py --shape 8,512,64 --models attention
    python benchmarks/bench_input_sensitivity.py --device cuda --dtypes float32 float64
    python benchmarks/bench_input_sensitivity.py --quick          # a smoke run: (2, 12, 8), checked

The models, each a ``torch.nn.Module`` x (B, T, D) -> y (B, T, C) with D = N inputs and C =
``--classes`` outputs (10 by default), so that both have the same T C output directions:

- stack: a drawn two-layer recurrent network (``rnnlab.measure.networks.draw`` with
  ``model.layers=2``, ``--cell`` (GRU by default) at its pytorch initialisation, width N,
  layernorm, residual) as ``rnnlab.engine.stacks.Network``: its logits V y^2_t + c, the state
  entering step 0 its drawn h0 (no burn-in). Its forward is a Python loop over the T steps;
- attention: one head of causal softmax self-attention, ``rnnlab.engine.attention.
  CausalSelfAttention`` (N -> C, no projection, N(0, 1/N) weights), on x ~ N(0, 1).

Columns, for each model and dtype:

- batched: ``rnnlab.input_sensitivity(model, x)``, the whole public call: one forward pass,
  the T C directions vmapped through the backward graph (``is_grads_batched``) in chunks of
  whole targets (``--chunk``; by default as many as its memory budget allows: at the default
  shape 1 target, C directions, per call for the stack and 4 for attention), the norms, the
  per-lag table and the rate fit;
- naive: what a user would write: one forward under autograd, then one ``torch.autograd.grad``
  of each output coordinate, ``y[:, t, c].sum()`` (the batch summed: row b of the gradient is
  sequence b's own) with respect to x, per coordinate: T C separate backward passes, with the
  Frobenius norms over (c, d). A backward runs through the whole graph behind y_t, so at large
  T ``--naive-targets`` targets t spread evenly over [0, T) are timed (their C passes each) and
  the cost of all T is estimated as T x their mean (the line under the table says so); with
  T <= that count every target is run.

The ratio is naive / batched, both whole (forward included). Times are the CPU seconds of this
process with one thread on CPU (other jobs on a shared machine do not lengthen them;
``--threads`` > 1 gives wall time), wall seconds after a synchronize on CUDA (TF32 off). One run
of each, no repeat; the default shape takes about 1.5 CPU minutes (the stack's batched call most
of it: its cost grows as T^2). On CPU, glibc's default allocator returns the batched call's large
blocks to the kernel and faults them in again (system time, counted here);
``MALLOC_MMAP_THRESHOLD_=536870912 MALLOC_TRIM_THRESHOLD_=4294967296`` in the environment keeps
them (docs/performance.md has both). With ``--quick`` the two are also checked against each
other (float64, every pair of the timed targets, the batch mean of log10 ||dy_t/dx_k|| to 1e-8).
A measurement that raises, or that runs past ``--timeout`` seconds, ends the benchmark with one
line on stderr and exit status 1.
"""
from __future__ import annotations

# Only the standard library up here: `--help` and a bad argument answer without torch.
import argparse
import math
import os
import signal
import sys

SHAPE = "8,128,64"
QUICK_SHAPE = "2,12,8"
DTYPES = ("float32", "float64")
MODELS = ("stack", "attention")
# cells drawn at their pytorch initialisation with no further keys
CELLS = ("gru", "lstm", "mingru", "minlstm")


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", default=None,
                    help=f"B,T,N (default {SHAPE}; {QUICK_SHAPE} with --quick); D = N inputs")
    ap.add_argument("--classes", type=int, default=10, help="C, outputs per step (default 10)")
    ap.add_argument("--dtypes", nargs="+", default=["float64"], choices=DTYPES,
                    help="default: float64 (float64 with --quick, for the check)")
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument("--cell", default="gru", choices=CELLS, help="the stack's cell (default gru)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads on CPU (default 1)")
    ap.add_argument("--methods", nargs="+", default=["batched", "naive"],
                    choices=["batched", "naive"], help="the columns (default: both)")
    ap.add_argument("--chunk", type=int, default=None,
                    help="targets per vmapped backward call of the batched column (default: "
                         "input_sensitivity's own choice, from its memory budget)")
    ap.add_argument("--naive-targets", type=int, default=8,
                    help="targets the naive loop is timed on when T is larger (default 8)")
    ap.add_argument("--timeout", type=float, default=3600.0,
                    help="seconds one measurement may take before the run ends (default 3600)")
    ap.add_argument("--quick", action="store_true",
                    help=f"a smoke run: shape {QUICK_SHAPE} unless --shape is given, float64, "
                         "every naive target, and the two checked against each other")
    args = ap.parse_args(argv)
    shape = args.shape or (QUICK_SHAPE if args.quick else SHAPE)
    parts = shape.split(",")
    if len(parts) != 3 or not all(v.isdigit() and int(v) > 0 for v in parts):
        ap.error(f"--shape {shape!r}: must be B,T,N with three positive integers")
    args.shape = tuple(int(v) for v in parts)
    if args.device != "cpu" and args.device.partition(":")[0] != "cuda":
        ap.error(f"--device {args.device!r}: must be cpu or cuda (cuda:I for GPU I)")
    if args.classes < 1:
        ap.error(f"--classes {args.classes}: must be >= 1")
    if args.threads < 1:
        ap.error(f"--threads {args.threads}: must be >= 1")
    if args.chunk is not None and args.chunk < 1:
        ap.error(f"--chunk {args.chunk}: must be >= 1")
    if args.naive_targets < 1:
        ap.error(f"--naive-targets {args.naive_targets}: must be >= 1")
    if not args.timeout > 0:
        ap.error(f"--timeout {args.timeout}: must be > 0 seconds")
    if args.quick:
        args.naive_targets = args.shape[1]
        args.dtypes = ["float64"]
        args.methods = ["batched", "naive"]
    return args


class Failed(Exception):
    """A measurement raised or ran past --timeout; the message is one line."""


def bounded(seconds: float, fn, *a):
    """fn(*a), or Failed once it has run ``seconds`` of wall time (SIGALRM: the Python loops
    of both methods return to the interpreter often, where the alarm is raised) or raised."""
    def alarm(signum, frame):
        raise Failed(f"no result within --timeout {seconds:g} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn(*a)
    except Failed:
        raise
    except Exception as e:
        first = str(e).strip().partition("\n")[0][:200]
        raise Failed(f"{type(e).__name__}: {first}") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def model(args, name: str, torch, dtype, device):
    """(the module, x (B, T, N)) of ``name`` at ``--shape``, on the device in ``dtype``."""
    B, T, N = args.shape
    C = args.classes
    if name == "stack":
        from rnnlab.engine import stacks
        from rnnlab.measure.config import DataSpec, ModelSpec
        from rnnlab.measure.networks import draw

        net = draw(ModelSpec(cell=args.cell, hidden_size=N, input_size=N, output_size=C,
                             layers=2, norm="layernorm", residual=True, init="pytorch"),
                   DataSpec(seq_len=T, batch_size=B), seed=0)
        p = net.params.to(device, dtype)
        x, h0 = net.x.to(device, dtype), net.h0.to(device, dtype)
        return stacks.Network(p, stacks.entering_state(p, x, h0, 0)), x
    from rnnlab.engine.attention import CausalSelfAttention

    g = torch.Generator().manual_seed(0)
    layer = CausalSelfAttention(N, C, dtype=torch.float64, generator=g)
    x = torch.randn(B, T, N, dtype=torch.float64, generator=g)
    return layer.to(device, dtype), x.to(device, dtype)


def batched(torch, net, x, chunk, clock):
    """(seconds, the batch mean log10 ||dy_t/dx_k|| (T, T), NaN above the diagonal)."""
    from rnnlab.engine.input_sensitivity import input_sensitivity

    start = clock()
    got = input_sensitivity(net, x) if chunk is None else input_sensitivity(net, x, chunk=chunk)
    return clock() - start, got.log10_grad


def naive(torch, net, x, targets, clock):
    """(forward seconds, seconds per target (mean), {t: batch mean log10 ||dy_t/dx_k|| (t+1,)}):
    one forward, then one ``autograd.grad`` per output coordinate (t, c) of the targets."""
    start = clock()
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        y = net(x)
    forward = clock() - start
    out, start = {}, clock()
    for t in targets:
        J = torch.stack([torch.autograd.grad(y[:, t, c].sum(), x, retain_graph=True)[0]
                         for c in range(y.shape[2])])  # (C, B, T, D)
        norms = J[:, :, :t + 1].square().sum((0, 3)).sqrt()  # (B, t + 1)
        out[t] = torch.log10(norms.double()).mean(0).cpu()
    per_target = (clock() - start) / len(targets)
    return forward, per_target, out


def check(log10_grad, naive_norms: dict) -> float:
    """The worst |difference| of the two methods' batch mean log10 norms over the naive targets'
    pairs k <= t (quick runs, float64); the run ends if it is not below 1e-8."""
    worst = 0.0
    for t, v in naive_norms.items():
        worst = max(worst, float(abs(log10_grad[t, :t + 1] - v.numpy()).max()))
    if not worst < 1e-8:
        raise Failed(f"batched and naive disagree by {worst:.3g} in log10 norm")
    return worst


def row(args, torch, name: str, dtype_name: str, device) -> tuple[str, str | None]:
    dtype = getattr(torch, dtype_name)
    from _timing import Clock  # benchmarks/_timing.py, beside this script

    clock = Clock(torch, device, args.threads)
    B, T, N = args.shape
    C = args.classes
    net, x = bounded(args.timeout, model, args, name, torch, dtype, device)
    got, note, log10_grad = {}, None, None
    if "batched" in args.methods:
        got["batched"], log10_grad = bounded(args.timeout, batched, torch, net, x, args.chunk,
                                              clock)
    if "naive" in args.methods:
        n = min(T, args.naive_targets)
        targets = sorted({min(T - 1, int((j + 0.5) * T / n)) for j in range(n)})
        fwd, per_target, norms = bounded(args.timeout, naive, torch, net, x, targets, clock)
        got["naive"] = fwd + per_target * T
        if len(targets) < T:
            note = (f"naive ({name}, {dtype_name}): {len(targets)} of {T} targets timed (evenly "
                    f"spread), {per_target:.3f} s each ({C} backward passes); total = its "
                    f"forward {fwd:.2f} s + {T} x that")
        if args.quick and log10_grad is not None:
            worst = check(log10_grad, norms)
            note = (f"{name}: batched = naive to {worst:.1e} (log10 norm, every pair of "
                    f"{len(targets)} targets)")
    label = name if name == "attention" else f"stack {args.cell}"
    cells_ = [f"{label:>12} {dtype_name:>7} {B:>3} {T:>5} {N:>4} {C:>3}"]
    for m in ("batched", "naive"):
        cells_.append(f"{got[m]:>10.2f}" if m in got else f"{'-':>10}")
    cells_.append(f"{got.get('naive', math.nan) / got.get('batched', math.nan):>9.1f}x")
    return " | ".join(cells_), note


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from rnnlab.runs.store import cpu_model

    torch.set_flush_denormal(True)  # as the apps do: denormal arithmetic is slow on CPU
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"bench_input_sensitivity: --device {args.device}: this torch "
              f"({torch.__version__}) sees no CUDA device", file=sys.stderr)
        return 1
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        name = torch.cuda.get_device_name(device)
    else:
        name = cpu_model()
    clock = "CPU seconds of this process" if device.type == "cpu" and args.threads == 1 \
        else "wall seconds"
    print(f"device: {name}; {args.threads} torch thread(s); torch {torch.__version__}; load "
          f"average {os.getloadavg()[0]:.1f}; times: {clock}")
    head = (f"{'model':>12} {'dtype':>7} {'B':>3} {'T':>5} {'N':>4} {'C':>3} | "
            f"{'batched s':>10} | {'naive s':>10} | {'naive/bat':>10}")
    print(head)
    print("-" * len(head), flush=True)
    notes = []
    for name in args.models:
        for dtype_name in args.dtypes:
            try:
                line, note = row(args, torch, name, dtype_name, device)
            except Failed as e:
                B, T, N = args.shape
                print(f"bench_input_sensitivity: {name} ({dtype_name}) at (B, T, N, C) = "
                      f"({B}, {T}, {N}, {args.classes}) failed: {e}", file=sys.stderr)
                return 1
            print(line, flush=True)
            if note:
                notes.append(note)
    for note in notes:
        print(note)
    print(f"ratio: naive / batched, each whole (its forward in; batched: input_sensitivity's "
          f"fit too); load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
