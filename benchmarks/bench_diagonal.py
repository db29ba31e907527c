"""Every ||dL_t/dh_k|| of a diagonal recurrence three ways, timed side by side: the diagonal fast
path, the adjoint sweep and naive autograd (one torch thread on CPU).

    python benchmarks/bench_diagonal.py                  # (N, B, T) = (1024, 8, 4096), both dtypes
    python benchmarks/bench_diagonal.py --shape 256,8,1024 --dtypes float64 --cell minlstm
    python benchmarks/bench_diagonal.py --device cuda     # the same three on a GPU
    python benchmarks/bench_diagonal.py --quick           # a smoke run: (16, 2, 40), checked

The network is ``--cell`` at its initialisation (minGRU by default; ``rnnlab.measure.networks.
draw``, D = N inputs, 10 classes, mse loss). Columns, each for every pair k <= t:

- forward: ``adjoint.forward``, the recorded forward pass both engine paths start from (its
  input projections are a (B T, N) x (N, 2N) product: as many flops as the fast path's pairs);
- fast: ``rnnlab.engine.diagonal.pair_profile`` (the per-lag moments a run writes);
- dense: ``rnnlab.engine.adjoint.pair_profile``, the sweep D <- a_k D over every live target;
- naive: what a user would write: the cell's step (``reference_step``) run step by step under
  autograd, then one ``torch.autograd.grad`` of L_t per target t with respect to every h_k,
  k <= t, and the norms. Its forward is included. A target's backward runs through t steps, so
  at large T ``--naive-targets`` targets spread evenly over [0, T) are timed and the sum over
  all T targets is estimated as T x their mean cost (the line says so); with T <= that count
  every target is run.

The ratios compare whole measurements, forward included ((forward + dense) / (forward + fast),
naive / (forward + fast)), and the pairs alone (dense / fast, naive's backward passes / fast).
Times are the CPU seconds of this process with one thread on CPU (other jobs on a shared machine
do not lengthen them; ``--threads`` > 1 gives wall time), wall seconds after a synchronize on
CUDA (TF32 off). One run of each, no repeat: the shapes are long.
With ``--quick`` the three are also checked against each other (the ln ratios of every pair,
float64, to 1e-8).
"""
from __future__ import annotations

# Only the standard library up here: `--help` and a bad argument answer without torch.
import argparse
import math
import os
import sys

SHAPE = "1024,8,4096"
QUICK_SHAPE = "16,2,40"
DTYPES = ("float32", "float64")
CELLS = {"mingru": dict(init="pytorch"), "minlstm": dict(init="pytorch"),
         "rglru": dict(init="ring"), "lru": dict(init="ring")}


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", default=None,
                    help=f"N,B,T (default {SHAPE}; {QUICK_SHAPE} with --quick)")
    ap.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=DTYPES)
    ap.add_argument("--cell", default="mingru", choices=list(CELLS))
    ap.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads on CPU (default 1)")
    ap.add_argument("--methods", nargs="+", default=["fast", "dense", "naive"],
                    choices=["fast", "dense", "naive"], help="the columns (default: all)")
    ap.add_argument("--naive-targets", type=int, default=16,
                    help="targets the naive loop is timed on when T is larger (default 16)")
    ap.add_argument("--quick", action="store_true",
                    help=f"a smoke run: shape {QUICK_SHAPE} unless --shape is given, every "
                         "naive target, and the three checked against each other")
    args = ap.parse_args(argv)
    shape = args.shape or (QUICK_SHAPE if args.quick else SHAPE)
    parts = shape.split(",")
    if len(parts) != 3 or not all(v.isdigit() and int(v) > 0 for v in parts):
        ap.error(f"--shape {shape!r}: must be N,B,T with three positive integers")
    args.shape = tuple(int(v) for v in parts)
    if args.threads < 1:
        ap.error(f"--threads {args.threads}: must be >= 1")
    if args.naive_targets < 1:
        ap.error(f"--naive-targets {args.naive_targets}: must be >= 1")
    if args.quick:
        args.naive_targets = args.shape[2]
    return args


def network(args, dtype, device):
    """The drawn network of ``--cell`` at ``--shape`` on the device, in ``dtype``."""
    from rnnlab.measure.config import DataSpec, ModelSpec
    from rnnlab.measure.networks import draw

    N, B, T = args.shape
    net = draw(ModelSpec(cell=args.cell, activation="linear", hidden_size=N, input_size=N,
                         output_size=10, **CELLS[args.cell]),
               DataSpec(seq_len=T, batch_size=B), seed=0)
    return (net.params.to(device, dtype), net.x.to(device, dtype), net.h0.to(device, dtype),
            net.y_target.to(device, dtype))


def naive(torch, p, x, h0, y, targets, clock):
    """(forward seconds, seconds per target (mean), {t: ln ||dL_t/dh_k|| (t+1, B)}): the
    step-by-step recurrence under autograd, one ``autograd.grad`` per target."""
    from rnnlab.engine import cells
    from rnnlab.engine.heads import Readout
    from rnnlab.engine.model import readout_losses

    cell = cells.get(p.cell)
    step = cell.reference_step(p)
    offset = None if cell.readout_offset is None else cell.readout_offset(p, x)
    start = clock()
    state = (h0.detach().clone().requires_grad_(),)
    hs = []
    for t in range(x.shape[1]):
        state = step(x[:, t], state)
        hs.append(state[0])
    forward = clock() - start
    out, start = {}, clock()
    for t in targets:
        head = Readout(p.V, p.c if offset is None else p.c + offset[:, t])
        L_t = readout_losses(head, hs[t], y[:, t], "mse").sum()
        grads = torch.autograd.grad(L_t, hs[:t + 1], retain_graph=True)
        out[t] = torch.log(torch.linalg.vector_norm(torch.stack(grads), dim=-1)).double()
    per_target = (clock() - start) / len(targets)
    return forward, per_target, out


def check(traj, naive_norms: dict) -> str:
    """The three agree (quick runs): every ln ||dL_t/dh_k|| of the fast path and the sweep, and
    the naive loop's, float64 to 1e-8; the worst difference, or an exception."""
    from rnnlab.engine import adjoint, diagonal

    fast = diagonal.log_grad_norms(traj)
    dense = adjoint.log_grad_norms(traj)
    worst = (fast - dense).abs().nan_to_num(0.0).max().item()
    for t, v in naive_norms.items():
        worst = max(worst, (fast[t, :t + 1].cpu() - v.cpu()).abs().max().item())
    if not worst < 1e-8:
        raise SystemExit(f"bench_diagonal: the three disagree by {worst:.3g} in ln norm")
    return f"fast = dense = naive to {worst:.1e} (ln norm, every pair)"


def row(args, torch, dtype_name: str, device) -> tuple[str, str | None]:
    from rnnlab.engine import adjoint, diagonal

    dtype = getattr(torch, dtype_name)
    from _timing import Clock  # benchmarks/_timing.py, beside this script

    clock = Clock(torch, device, args.threads)
    p, x, h0, y = network(args, dtype, device)
    N, B, T = args.shape
    start = clock()
    traj = adjoint.forward(p, x, h0, y)
    got = {"forward": clock() - start}
    if "fast" in args.methods:
        start = clock()
        diagonal.pair_profile(traj)
        got["fast"] = clock() - start
    if "dense" in args.methods:
        start = clock()
        adjoint.pair_profile(traj)
        got["dense"] = clock() - start
    note, norms = None, {}
    if "naive" in args.methods:
        n = min(T, args.naive_targets)
        targets = sorted({min(T - 1, int((j + 0.5) * T / n)) for j in range(n)})
        fwd, per_target, norms = naive(torch, p, x, h0, y, targets, clock)
        got["naive"] = fwd + per_target * T
        got["naive pairs"] = per_target * T
        if len(targets) < T:
            note = (f"naive ({dtype_name}): {len(targets)} of {T} targets timed (evenly "
                    f"spread), {per_target:.3f} s each; total = its forward {fwd:.2f} s + "
                    f"{T} x that")
    quick_check = check(traj, norms) if args.quick and dtype_name == "float64" \
        else None
    cells_ = [f"{dtype_name:>7} {N:>5} {B:>3} {T:>5}", f"{got['forward']:>9.2f}"]
    for m in ("fast", "dense", "naive"):
        cells_.append(f"{got[m]:>10.2f}" if m in got else f"{'-':>10}")
    # whole measurements (the forward in each), then the pairs alone (no forward in any)
    whole = {m: got[m] + got["forward"] for m in ("fast", "dense") if m in got}
    whole["naive"] = got.get("naive", math.nan)
    pairs = {m: got.get(m, math.nan) for m in ("fast", "dense")}
    pairs["naive"] = got.get("naive pairs", math.nan)
    for times in (whole, pairs):
        cells_.append(" ".join(f"{times.get(m, math.nan) / times.get('fast', math.nan):>9.1f}x"
                               for m in ("dense", "naive")))
    return " | ".join(cells_), note or quick_check


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from rnnlab.runs.store import cpu_model

    torch.set_flush_denormal(True)  # as the apps do: denormal arithmetic is slow on CPU
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        name = torch.cuda.get_device_name(device)
    else:
        name = cpu_model()
    clock = "CPU seconds of this process" if device.type == "cpu" and args.threads == 1 \
        else "wall seconds"
    print(f"device: {name}; {args.threads} torch thread(s); cell {args.cell}; torch "
          f"{torch.__version__}; load average {os.getloadavg()[0]:.1f}; times: {clock}")
    ratios = " ".join(f"{r:>10}" for r in ("dense/fast", "naive/fast"))
    head = (f"{'dtype':>7} {'N':>5} {'B':>3} {'T':>5} | {'forward s':>9} | {'fast s':>10} | "
            f"{'dense s':>10} | {'naive s':>10} | {ratios} | {ratios}")
    print(f"{'':>{len(head) - 2 * len(ratios) - 3}}{'whole (forward in)':^{len(ratios)}} | "
          f"{'pairs alone':^{len(ratios)}}")
    print(head)
    print("-" * len(head), flush=True)
    notes = []
    for dtype_name in args.dtypes:
        line, note = row(args, torch, dtype_name, device)
        print(line, flush=True)
        if note:
            notes.append(note)
    for note in notes:
        print(note)
    print(f"ratios: whole = each measurement with its forward (fast and dense: forward + "
          f"pairs; naive: its own forward under autograd + every target's backward); pairs "
          f"alone = without any forward; load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
