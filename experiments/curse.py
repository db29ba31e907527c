"""Why Adam rescues diagonal recurrences: its effective learning rates on the linear
teacher-student task, and the loss Hessian at the optimum (Zucchet & Orvieto 2024,
arXiv:2405.21064, Fig. 4; their figures/linear_system_adam_lr.ipynb, hessian_analysis.ipynb).

    python experiments/curse.py                 # 5 seeds x 10 000 steps -> results/curse/
    python experiments/curse.py --quick         # seconds, into results/curse-quick/
    python experiments/curse.py --seeds 3 --steps 2000 --out /tmp/curse
    python experiments/curse.py --redraw        # rows.csv and the figures again from the tables

Effective learning rate. A dense linear teacher (10 units, eigenvalue magnitudes in [0.99, 1),
T = 300, Gaussian inputs) and four students of 64 units (rnnlab.train.teacher): dense (A, B, C,
D), complex diagonal with lambda = a + i b (their Fig. 4 "complex diagonal", lru_param=default),
the same with lambda = nu e^(i theta) (polar), and the LRU (lambda = exp(-e^w_nu + i e^w_theta),
gamma a parameter). Adam, lr 1e-3 constant, batch 128, fresh batches, `--steps` steps (the
paper: 100 epochs x 100 batches = 10 000). Every 100 steps and at the end, per parameter group,
their statistic 10^mean(log10(max(-u, 0) + 1e-8)) of u, Adam's update for a unit gradient from
the current state (rnnlab.train.adam_lr: the unit gradient enters both moments, as optax's
opt.update(ones, state) in their source/train.py does), and the momentum-free
lr / (sqrt(v_hat) + eps) beside it. Seed s: teacher Teacher.draw(seed=s), student seed 1000 + s,
batches from seed 2000 + s.

Hessian. Their hidden-4 case: a teacher whose A has two conjugate pairs with |lambda| in
[0.99, 0.993) (Teacher.conjugate_pairs(seed=s)); the dense student and the complex-diagonal
students placed at the teacher's solution (loss 0 to rounding; not trained), the Hessian of the
loss on one batch of 64 sequences of T = 300 (seed 1000 + s) by torch.func.hessian on the
flattened parameters (25 each), its spectrum, and the participation ratio
PR(v) = (sum v_i^2)^2 / sum v_i^4 of its top eigenvectors over the coordinates.

EXPECTED (rows stated before the run, committed as they come out):
(a) the dense recurrent matrix's effective learning rate (their statistic, end of training) is
    at least two decades below the diagonal recurrence's eigenvalue parameters (both rows of
    lam together): log10 ELR(lambda) - log10 ELR(A) >= 2 in every seed, for the cartesian
    (their Fig. 4) and the polar diagonal student. Sign rows count the seeds below 2; finding
    rows give the mean difference and its spread over seeds.
(b) the diagonal model's top Hessian eigenvectors are more concentrated on coordinates than the
    dense model's: the mean PR of the top 4 eigenvectors (as many as the teacher's eigenvalues)
    is lower for the diagonal student in every seed (cartesian and polar). Sign rows count the
    seeds where it is not; finding rows give both means.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

if not __package__:  # run as a file: the repo root on sys.path, for experiments.figures
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from experiments.figures.common import row
from experiments.figures.plots import adam_hessian as summary_plot
from rnnlab.plotting import plt
from rnnlab.train import hessian as hs
from rnnlab.train import teacher as ts
from rnnlab.train.adam_lr import step_size, unit_gradient_update

ROOT = Path(__file__).resolve().parents[1]
FIGURE = summary_plot.FIGURE
STUDENTS = {  # name: (class, keywords): the students of their Fig. 4, and the polar form
    "dense": (ts.DenseStudent, {}),
    "diagonal": (ts.DiagonalStudent, dict(parametrisation="cartesian")),
    "diagonal-polar": (ts.DiagonalStudent, dict(parametrisation="polar")),
    "lru": (ts.DiagonalStudent, dict(parametrisation="exp", gamma=True)),
}
HESSIAN_STUDENTS = ("dense", "diagonal", "diagonal-polar")
DIAGONALS = ("diagonal", "diagonal-polar")
FULL = dict(seeds=5, steps=5_000, every=100)  # sized to the 2-core machine: README
QUICK = dict(seeds=2, steps=150, every=50)
T, HIDDEN, TEACHER_HIDDEN, NU_0, BATCH, LR = 300, 64, 10, 0.99, 128, 1e-3
HESSIAN_BATCH, TOP = 64, 4
DECADES = 2.0


def say(message: str) -> None:
    print(f"curse.py: {message}", file=sys.stderr)


def effective_lr(seeds: int, steps: int, every: int):
    """(every checkpoint's per-group record, seed 0's final per-entry values)."""
    records, entries = [], []
    with tqdm(total=seeds * len(STUDENTS) * steps, desc="effective lr", mininterval=5.0) as bar:
        for seed in range(seeds):
            teacher = ts.Teacher.draw(TEACHER_HIDDEN, NU_0, seed=seed)
            for name in STUDENTS:
                cls, kw = STUDENTS[name]
                net = cls(HIDDEN, seed=1000 + seed, **kw)
                rec, opt = ts.train(net, teacher, steps, T=T, batch_size=BATCH, lr=LR,
                                    seed=2000 + seed, every=every, progress=bar.update)
                records += [dict(r, student=name, seed=seed) for r in rec]
                if seed == 0:
                    entries += final_entries(name, net, opt)
    return pd.DataFrame(records), pd.DataFrame(entries)


def final_entries(name, net, opt) -> list[dict]:
    """Per entry of every parameter: max(-u, 0) (their scatter's values) and the step size."""
    unit, scale = unit_gradient_update(opt), step_size(opt)
    out = []
    for group, p in net.named_parameters():
        u, s = unit[p], scale[p]
        if group == "lam":
            parts = [(f"lam.{c}", u[k], s[k]) for k, c in
                     enumerate(ts.DiagonalStudent.COMPONENTS[net.parametrisation])]
        else:
            parts = [(group, u, s)]
        for g, a, b in parts:
            out += [dict(student=name, group=g, lr_unit=float(x), lr_scale=float(y))
                    for x, y in zip((-a).clamp(min=0).reshape(-1).tolist(),
                                    b.reshape(-1).tolist())]
    return out


def hessians(seeds: int):
    """(per seed, student and eigenvalue rank: eigenvalue, PR, share on the recurrent
    parameters; seed 0's Hessians as long tables of entries and of the top 10 eigenvectors)."""
    rows_, matrix, vectors = [], [], []
    for seed in tqdm(range(seeds), desc="hessian", mininterval=5.0):
        teacher = ts.Teacher.conjugate_pairs(seed)
        x, y = teacher.sample(HESSIAN_BATCH, T, torch.Generator().manual_seed(1000 + seed))
        for name in HESSIAN_STUDENTS:
            net = (ts.DenseStudent.from_teacher(teacher) if name == "dense" else
                   ts.DiagonalStudent.from_teacher(teacher, STUDENTS[name][1]
                                                   ["parametrisation"]))
            with torch.no_grad():
                at_optimum = float(ts.loss(net(x), y))
            H, layout = hs.loss_hessian(net, ts.loss, x, y)
            w, V = hs.spectrum(H)
            pr = hs.participation_ratio(V)
            for k in range(len(w)):
                mass = hs.group_mass(V[:, k], layout)
                rows_.append(dict(seed=seed, student=name, rank=k + 1, eigenvalue=float(w[k]),
                                  participation_ratio=float(pr[k]),
                                  recurrent_share=sum(mass[g] for g in net.RECURRENT),
                                  loss=at_optimum))
            if seed == 0:
                names = [n for n, _, size in layout for _ in range(size)]
                P = H.shape[0]
                matrix += [dict(student=name, i=i, j=j, param_i=names[i], param_j=names[j],
                                value=float(H[i, j])) for i in range(P) for j in range(P)]
                vectors += [dict(student=name, rank=k + 1, coordinate=i, param=names[i],
                                 value=float(V[i, k])) for k in range(min(10, P))
                            for i in range(P)]
    return pd.DataFrame(rows_), pd.DataFrame(matrix), pd.DataFrame(vectors)


def final_table(curve: pd.DataFrame) -> pd.DataFrame:
    """Per student, group and seed the end-of-training log10 of both statistics."""
    last = curve[curve.step == curve.step.max()]
    return last.assign(log10_lr_unit=np.log10(last.lr_unit),
                       log10_lr_scale=np.log10(last.lr_scale))[
        ["student", "seed", "group", "step", "loss", "log10_lr_unit", "log10_lr_scale"]]


def recurrent(curve: pd.DataFrame) -> pd.DataFrame:
    """The recurrent groups' records (dense A, every diagonal student's lam together)."""
    return curve[curve.group.isin(["A", "lam"])].reset_index(drop=True)


def gaps(final: pd.DataFrame, student: str, column: str = "log10_lr_unit") -> pd.Series:
    """Per seed: log10 ELR(student's lam) - log10 ELR(dense A)."""
    f = final.set_index(["student", "group", "seed"]).sort_index()[column]
    return f.loc[(student, "lam")] - f.loc[("dense", "A")]


def top_pr(hess: pd.DataFrame, student: str) -> pd.Series:
    """Per seed: the mean participation ratio of the top TOP eigenvectors."""
    h = hess[(hess.student == student) & (hess["rank"] <= TOP)]
    return h.groupby("seed").participation_ratio.mean()


def rows(final: pd.DataFrame, hess: pd.DataFrame) -> list[dict]:
    """The rows stated in the module docstring, in summary.csv's format."""
    out = []
    steps = int(final.step.max())
    for student in DIAGONALS + ("lru",):
        for column, what in (("log10_lr_unit", "their unit-gradient statistic"),
                             ("log10_lr_scale", "momentum-free lr/(sqrt(v_hat)+eps)")):
            d = gaps(final, student, column)
            n = len(d)
            judged = column == "log10_lr_unit" and student in DIAGONALS
            quantity = (f"Adam effective lr ({what}), {student} lambda over dense A after "
                        f"{steps} steps: log10 difference")
            basis = (f"estimator: per seed log10 of the geometric mean over the group's entries "
                     f"at step {steps}, difference of the two students on the same teacher; "
                     f"n = {n}; spread: SD over seeds")
            out.append(row(FIGURE, quantity, DECADES, float(d.mean()), float("nan"),
                           kind="finding", seeds=n, spread=float(d.std(ddof=1)) if n > 1
                           else None, basis=basis + ("; the paper's claim: >= 2 decades" if
                                                     judged else "; shown, not judged")))
            if judged:
                out.append(row(FIGURE, f"seeds where the {student} lambda's effective lr "
                               f"(their statistic) is less than {DECADES:g} decades above dense "
                               f"A's after {steps} steps", 0, float((d < DECADES).sum()), 0,
                               kind="sign", seeds=n,
                               basis=f"stated before the run: log10 ELR(lambda) - log10 "
                               f"ELR(A) >= {DECADES:g} in every seed; per-seed differences "
                               + ", ".join(f"{v:.2f}" for v in d)))
    dense = top_pr(hess, "dense")
    prs = {"dense": dense, **{student: top_pr(hess, student) for student in DIAGONALS}}
    for name, v in prs.items():
        n = len(v)
        out.append(row(FIGURE, f"Hessian at the optimum (hidden-4 teacher, T = {T}): mean "
                       f"participation ratio of the top {TOP} eigenvectors, {name}",
                       float(dense.mean()), float(v.mean()), float("nan"), kind="finding",
                       seeds=n, spread=float(v.std(ddof=1)) if n > 1 else None,
                       basis="expected column: the dense model's mean; PR(v) = "
                       "(sum v^2)^2 / sum v^4 over the 25 coordinates; shown, judged by the "
                       "sign rows"))
    for student in DIAGONALS:
        diag = prs[student]
        out.append(row(FIGURE, f"seeds where the {student} student's top-{TOP} Hessian "
                       "eigenvectors are not more concentrated than the dense one's (mean PR "
                       "not lower)", 0, float((diag >= dense).sum()), 0, kind="sign",
                       seeds=len(diag),
                       basis="stated before the run: lower mean PR in every seed; per seed "
                       "(diagonal, dense) " + ", ".join(f"({a:.2f}, {b:.2f})" for a, b in
                                                        zip(diag, dense))))
    return out


def draw_entries(entries: pd.DataFrame, out: Path) -> Path:
    """Their Fig. 4 left: every entry's effective lr per group, seed 0, one panel per student."""
    fig, axes = plt.subplots(1, len(STUDENTS), figsize=(16, 4), constrained_layout=True)
    rng = np.random.default_rng(0)
    for ax, name in zip(axes, STUDENTS):
        e = entries[entries.student == name]
        groups = list(dict.fromkeys(e.group))
        for i, g in enumerate(groups):
            v = e[e.group == g].lr_unit.to_numpy()
            pos = v > 0
            ax.scatter(i + rng.normal(0, 0.08, pos.sum()), np.log10(v[pos]), s=2, color="C0")
            gm = np.log10(e[e.group == g].lr_scale.to_numpy()).mean()
            ax.plot([i - 0.3, i + 0.3], [gm, gm], color="C3", lw=1.5)
        ax.axhline(np.log10(LR), color="0.6", zorder=-1)
        ax.set_xticks(range(len(groups)), groups, rotation=45, fontsize=8)
        ax.set_title(name, fontsize=10)
        ax.set_ylabel("log10 effective lr")
    fig.suptitle("Adam's effective lr per entry at the end of training, seed 0 (dots: their "
                 "max(-u, 0) for a unit gradient, zeros left out; red: geometric mean of "
                 "lr/(sqrt(v_hat)+eps); grey: lr)", fontsize=9)
    path = out / "effective_lr_entries.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def draw_hessian(matrix: pd.DataFrame, vectors: pd.DataFrame, hess: pd.DataFrame,
                 out: Path) -> Path:
    """Their Fig. 4 right, seed 0: |H| (log colour), the top 10 eigenvectors, the spectrum."""
    fig, axes = plt.subplots(3, len(HESSIAN_STUDENTS), figsize=(13, 10),
                             gridspec_kw={"height_ratios": [3, 1.2, 1.2]},
                             constrained_layout=True)
    for c, name in enumerate(HESSIAN_STUDENTS):
        m = matrix[matrix.student == name]
        P = int(m.i.max()) + 1
        H = m.value.to_numpy().reshape(P, P)
        labels = m[m.j == 0].param_i.to_numpy()
        starts = [i for i in range(P) if i == 0 or labels[i] != labels[i - 1]]
        im = axes[0, c].imshow(np.log10(np.abs(H) + 1e-12), cmap="viridis", vmin=-4)
        axes[0, c].set_xticks(starts, labels[starts], rotation=90, fontsize=7)
        axes[0, c].set_yticks(starts, labels[starts], fontsize=7)
        axes[0, c].set_title(f"{name}: log10 |H| at the optimum", fontsize=9)
        fig.colorbar(im, ax=axes[0, c], shrink=0.7)
        v = vectors[vectors.student == name].pivot(index="rank", columns="coordinate",
                                                   values="value").to_numpy()
        axes[1, c].imshow(v, cmap="PRGn", vmin=-1, vmax=1, aspect="auto")
        axes[1, c].set_xticks(starts, labels[starts], rotation=90, fontsize=7)
        axes[1, c].set_yticks(range(0, 10, 3), [str(k + 1) for k in range(0, 10, 3)])
        axes[1, c].set_ylabel("eigenvector rank", fontsize=8)
        axes[1, c].set_title("top 10 eigenvectors' entries (colour -1 to 1)", fontsize=8)
        h = hess[(hess.student == name) & (hess.seed == 0)]
        axes[2, c].semilogy(h["rank"], h.eigenvalue.clip(lower=1e-10), "o-", ms=3)
        axes[2, c].set(xlabel="eigenvalue rank", ylabel="eigenvalue (clipped at 1e-10)")
        pr = h.participation_ratio.to_numpy()[:TOP]
        axes[2, c].set_title("PR of the top 4: " + ", ".join(f"{p:.1f}" for p in pr),
                             fontsize=8)
    path = out / "hessian.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def run(seeds: int, steps: int, every: int) -> dict:
    """Every table of the experiment (a dict of DataFrames), nothing written."""
    curve, entries = effective_lr(seeds, steps, every)
    hess, matrix, vectors = hessians(seeds)
    final = final_table(curve)
    summary = pd.DataFrame(rows(final, hess))
    return {"effective_lr.csv": curve, "effective_lr_final.csv": final,
            "effective_lr_recurrent.csv": recurrent(curve),
            "effective_lr_entries.csv": entries, "hessian.csv": hess,
            "hessian_matrix.csv": matrix, "hessian_vectors.csv": vectors,
            "rows.csv": summary}


TABLES = ("effective_lr.csv", "effective_lr_final.csv", "effective_lr_recurrent.csv",
          "effective_lr_entries.csv", "hessian.csv", "hessian_matrix.csv",
          "hessian_vectors.csv")


def draw(frames: dict, out: Path) -> list[Path]:
    """The three figures: the entries (their Fig. 4 left), the Hessians (Fig. 4 right) and
    the summary (the reproduction figure's draw step, experiments/figures/plots)."""
    return [draw_entries(frames["effective_lr_entries.csv"], out),
            draw_hessian(frames["hessian_matrix.csv"], frames["hessian_vectors.csv"],
                         frames["hessian.csv"], out),
            summary_plot.draw({k: frames[k] for k in summary_plot.TABLES}, out)]


def redraw(out: Path) -> int:
    """rows.csv and the figures again from the tables in ``out`` (nothing measured)."""
    absent = [name for name in TABLES if not (out / name).is_file()]
    if absent:
        say(f"--redraw: {out / absent[0]} is missing; make it with python experiments/curse.py "
            f"--out {out}")
        return 2
    frames = {name: pd.read_csv(out / name) for name in TABLES}
    table = pd.DataFrame(rows(frames["effective_lr_final.csv"], frames["hessian.csv"]))
    table.to_csv(out / "rows.csv", index=False)
    for path in draw(frames, out):
        print(f"redrawn {path}")
    return 0


def check(args) -> str:
    """The first thing wrong with the command line ('' if nothing)."""
    for name in ("seeds", "steps", "every"):
        v = getattr(args, name)
        if v is not None and v < 1:
            return f"--{name} {v}: it must be a positive integer"
    if args.seeds is not None and args.seeds < 2:
        return f"--seeds {args.seeds}: the rows need a spread over seeds, at least 2"
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        return f"--out {args.out}: exists and is not a folder"
    if args.redraw and (args.quick or any(getattr(args, k) is not None
                                          for k in ("seeds", "steps", "every"))):
        return "--redraw draws from the tables in --out; it takes no --quick, --seeds, " \
               "--steps or --every"
    return ""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="seconds: 2 seeds x 150 steps")
    ap.add_argument("--out", type=Path, default=None,
                    help="output folder (default results/curse, --quick results/curse-quick)")
    ap.add_argument("--seeds", type=int, default=None, help="seeds (default 5; quick 2)")
    ap.add_argument("--steps", type=int, default=None,
                    help="Adam steps per student (default 10000, the paper's; quick 150)")
    ap.add_argument("--every", type=int, default=None,
                    help="record every this many steps (default 100, their epoch; quick 50)")
    ap.add_argument("--redraw", action="store_true",
                    help="rows.csv and the figures again from --out's tables, no training")
    args = ap.parse_args(argv)
    problem = check(args)
    if problem:
        say(problem)
        return 2
    if args.redraw:
        return redraw(args.out or ROOT / "results" / "curse")
    size = dict(QUICK if args.quick else FULL)
    size.update({k: getattr(args, k) for k in size if getattr(args, k) is not None})
    out = args.out or ROOT / "results" / ("curse-quick" if args.quick else "curse")
    torch.set_num_threads(1)
    wall, cpu = time.perf_counter(), time.process_time()
    frames = run(**size)
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in frames.items():
        frame.to_csv(out / name, index=False)
    draw(frames, out)
    info = dict(size, T=T, hidden=HIDDEN, teacher_hidden=TEACHER_HIDDEN, nu_0=NU_0,
                batch=BATCH, lr=LR, hessian_batch=HESSIAN_BATCH, top=TOP,
                wall_s=round(time.perf_counter() - wall, 1),
                cpu_s=round(time.process_time() - cpu, 1), torch_threads=1,
                torch=torch.__version__, machine=platform.processor() or platform.machine(),
                cpu_count=__import__("os").cpu_count())
    (out / "run.json").write_text(json.dumps(info, indent=2) + "\n")
    table = frames["rows.csv"]
    with pd.option_context("display.width", 220, "display.max_colwidth", 110):
        print(table[["quantity", "expected", "measured", "spread", "passed"]].to_string(
            index=False))
    failed = int(table.passed.eq(False).sum())
    print(f"{len(table) - failed}/{len(table)} rows not failed, {info['wall_s']} s wall, "
          f"{info['cpu_s']} s CPU -> {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
