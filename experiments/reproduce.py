"""Reproduce the figures of docs/theory.md ("reproduced figures") and compare each with theory.

    python experiments/reproduce.py                  # every figure (about 2 h on one core)
    python experiments/reproduce.py lyapunov walls   # some of them
    python experiments/reproduce.py --quick          # small sizes, for tests and a first look
    python experiments/reproduce.py --redraw [names] # the committed figures again from their
                                                     # committed tables: no torch, seconds

Each figure script in experiments/figures/ writes its PNG and tables to <out>/<name>/ and
returns comparison rows; this runner collects them into <out>/summary.csv, one row per check:
figure, quantity, kind (exact, theory, consistency, bound, sign), expected, measured,
tolerance, passed, seeds, spread (the seeds' standard deviation), basis (why the tolerance is
what it is), mode (full or quick). Each figure's <out>/<name>/provenance.json records the git
commit, package versions, torch's version, build and thread count, the CPU model, the time and
the figure's seconds: a run of some figures records only those, and replaces only their rows of
summary.csv.

torch runs on one thread (experiments/figures/common.py: THREADS), whatever the machine, so a
second full run on the same machine and versions reproduces every CSV bit for bit; another CPU
or torch build moves chaotic rows by a few standard errors (docs/tolerances.md). Full results go
to results/reproduction/ (committed), quick ones to results/reproduction-quick/ (never the
committed ones) unless --out says otherwise.

The printed table and the exit status cover the figures of this run only. A failing row is
expected when it fails in the committed full run too and results/reproduction/README.md explains
it, or (quick mode) when its figure says it need not hold at quick sizes; exit status 1 if any
other row fails, or, with ``--against DIR``, if a row disagrees with DIR's summary.csv (verdicts
equal, rows without a seed spread to rounding, statistical rows within 3 standard errors of a
difference of two means).

Each figure is a module of experiments.figures (measure, rows, tables; its package docstring)
and a draw module of experiments.figures.plots that reads only the tables; FIGURES below is the
one list of them, in summary.csv's order. ``--redraw`` imports the draw modules alone (no torch,
no rnnlab.engine) and draws each figure from <tables>/<name>/ (default the committed
results/reproduction, or results/reproduction-quick with --quick) into <out>/<name>/ (default
beside the tables); every table is checked first, and a missing one is named with the command
that computes it (exit 1). An unknown figure name is refused in one line (exit 2). Also
``python -m experiments.reproduce``.
"""
import argparse
import importlib
import json
import math
import sys
import time
from pathlib import Path

if not __package__:  # run as a file: the repo root on sys.path, for experiments.figures
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd

from experiments.figures import tables

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "results" / "reproduction"
# standard errors of a difference of two means allowed between two runs of a statistical row
N_SE = 3.0
# the reproduced figures by name (their folders under results/reproduction/), in summary.csv's
# order, each with its module: experiments/figures/<module>.py computes it (measure, rows,
# tables), experiments/figures/plots/<module>.py draws it from its tables (no torch)
FIGURES = {"lag-decay": "lag_decay", "rate-vs-gain": "rate_vs_gain",
           "critical-line": "critical_line", "lyapunov": "lyapunov", "isometry": "isometry",
           "bifurcation": "bifurcation", "walls": "walls", "gate-timescales": "gate_timescales",
           "minimalrnn": "minimalrnn", "trainability": "trainability", "remedies": "remedies",
           "curse-of-memory": "curse_of_memory", "truncation": "truncation",
           "adam-hessian": "adam_hessian", "modern": "modern"}


def figure_module(name: str):
    """The compute module of figure ``name`` (imports torch and the engine)."""
    return importlib.import_module(f"experiments.figures.{FIGURES[name]}")


def plot_module(name: str):
    """The draw module of figure ``name`` (pandas and matplotlib only)."""
    return importlib.import_module(f"experiments.figures.plots.{FIGURES[name]}")


def default_out(quick: bool) -> Path:
    """results/reproduction (full) or results/reproduction-quick (quick)."""
    return ROOT / "results" / ("reproduction-quick" if quick else "reproduction")


def verdict(value) -> bool | None:
    """A row's ``passed`` as True, False, or None for a finding (empty in summary.csv)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return bool(value)


def known_failures(reference: Path = COMMITTED) -> set[str]:
    """The quantities that fail in the committed full run and that its README explains (a
    failing row stays failing until the science changes: it is reported, not an error)."""
    summary, readme = reference / "summary.csv", reference / "README.md"
    if not summary.exists() or not readme.exists():
        return set()
    table, text = pd.read_csv(summary), readme.read_text()
    return {q for q in table.loc[table["passed"].eq(False), "quantity"] if q in text}


def expectation(figure, r: dict, mode: str, known: set[str]) -> str:
    """Why a failing row is expected ('' when it is not): it fails in the committed full run
    too, or the figure says it need not hold at quick sizes (``quick_may_fail``)."""
    if verdict(r["passed"]) is not False:  # passed, or a finding (never judged)
        return ""
    if r["quantity"] in known:
        return "fails in the full run too (results/reproduction/README.md)"
    may_fail = getattr(figure, "quick_may_fail", None)
    if mode == "quick" and may_fail is not None and may_fail(r):
        return "need not hold at quick sizes"
    return ""


def compare(table: pd.DataFrame, reference: pd.DataFrame, n_se: float = N_SE) -> pd.DataFrame:
    """This run's rows against another run's (same quantities): the verdict must be the same; a
    row without a seed spread must agree to rounding (relative 1e-9, at least 1e-12 absolute), a
    statistical row within ``n_se`` standard errors of a difference of two means,
    n_se * sqrt(2) * spread / sqrt(seeds)
    (a chaotic trajectory decorrelates after a few hundred steps, so a chaotic row recomputed on
    another CPU, torch build or thread count is a new sample of the same distribution)."""
    ref = reference.set_index("quantity")
    out = []
    for _, r in table.iterrows():
        if r["quantity"] not in ref.index:
            out.append({"quantity": r["quantity"], "check": "new row", "ok": True})
            continue
        o = ref.loc[r["quantity"]]
        diff = abs(float(r["measured"]) - float(o["measured"]))
        statistical = pd.notna(r["spread"]) and pd.notna(r["seeds"]) and r["seeds"] > 1
        if statistical:
            allowed = n_se * math.sqrt(2) * float(r["spread"]) / math.sqrt(float(r["seeds"]))
            check = f"{n_se:g} SE"
        else:
            # relative 1e-9, and 1e-12 absolute for values that are rounding noise around 0
            allowed = max(1e-9 * abs(float(o["measured"])), 1e-12)
            check = "rounding"
        same = verdict(r["passed"]) == verdict(o["passed"])
        ok = same and (diff <= allowed or (math.isnan(diff) and pd.isna(o["measured"])))
        out.append({"quantity": r["quantity"], "check": check, "measured": r["measured"],
                    "reference": o["measured"], "difference": diff, "allowed": allowed,
                    "identical": diff == 0, "same_verdict": same, "ok": ok})
    return pd.DataFrame(out)


def say(message: str) -> None:
    """One line on stderr: what was wrong and what is allowed."""
    print(f"reproduce.py: {message}", file=sys.stderr)


def redraw(names: list[str], source: Path, out: Path, quick: bool) -> int:
    """Draw each figure of ``names`` from its tables in ``source/<name>/`` into
    ``out/<name>/``, importing no torch. Every table is checked before anything is drawn: a
    missing one is named, with the command that computes it (exit 1)."""
    plots = {name: plot_module(name) for name in names}
    for name, plot in plots.items():
        absent = tables.missing(source / name, plot.TABLES)
        if absent:
            command = " ".join(["python experiments/reproduce.py", *(["--quick"] * quick), name,
                                *([] if source == default_out(quick) else ["--out",
                                                                           str(source)])])
            say(f"missing table {absent[0]} (figure {name}); compute it with: {command}")
            return 1
    start = time.perf_counter()
    for name, plot in plots.items():
        begin = time.perf_counter()
        path = tables.redraw(plot, source / name, out / name)
        print(f"[{name}] redrawn in {time.perf_counter() - begin:.1f} s -> {path}", flush=True)
    print(f"{len(names)} figure(s) redrawn from {source} in {time.perf_counter() - start:.1f} s "
          f"-> {out}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help=f"figures to make (default all): {list(FIGURES)}")
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke run, not a test")
    ap.add_argument("--out", type=Path, default=None,
                    help="output folder (default results/reproduction, or "
                    "results/reproduction-quick with --quick); with --redraw, where the PNGs "
                    "go (default: beside their tables)")
    ap.add_argument("--against", type=Path, default=None,
                    help="a folder with another run's summary.csv (e.g. results/reproduction): "
                    "compare verdicts, exact rows to rounding and statistical rows in standard "
                    "errors; exit 1 if one differs")
    ap.add_argument("--redraw", action="store_true",
                    help="draw the figures again from their tables (no measuring, no torch), "
                    "in seconds")
    ap.add_argument("--tables", type=Path, default=None,
                    help="with --redraw: the folder of the tables (default results/reproduction, "
                    "or results/reproduction-quick with --quick)")
    args = ap.parse_args(argv)
    bad = [n for n in args.names if n not in FIGURES]
    if bad:
        say(f"unknown figure {bad[0]!r}; choose from {', '.join(FIGURES)}")
        return 2
    if args.redraw and args.against is not None:
        say("--against compares a run's rows; --redraw computes none: use one of them")
        return 2
    if args.tables is not None and not args.redraw:
        say("--tables is where --redraw reads; without --redraw the tables are computed into "
            "--out")
        return 2
    if args.against is not None and not (args.against / "summary.csv").is_file():
        ap.error(f"--against {args.against}: no summary.csv there")
    names = args.names or list(FIGURES)
    if args.redraw:
        source = args.tables or default_out(args.quick)
        return redraw(names, source, args.out or source, args.quick)
    return compute(names, args)


def compute(names: list[str], args) -> int:
    """Measure, tabulate and draw each figure of ``names`` (torch on common.THREADS threads), write
    its provenance and its rows of summary.csv, print the table; exit status as the module
    docstring says."""
    import torch

    from experiments.figures import common
    from rnnlab.runs import store
    from rnnlab.runs.store import provenance

    mode = "quick" if args.quick else "full"
    out = args.out or default_out(args.quick)
    known = known_failures()
    rows, notes, total = [], [], 0.0
    with common.fixed_threads():
        threads = torch.get_num_threads()
        for name in names:
            figure = figure_module(name)
            start = time.perf_counter()
            print(f"[{name}] ...", flush=True)
            figure_rows = common.make(figure, mode, out / name)
            seconds = round(time.perf_counter() - start, 1)
            total += seconds
            rows += figure_rows
            notes += [expectation(figure, r, mode, known) for r in figure_rows]
            failed = [r["quantity"] for r in figure_rows if verdict(r["passed"]) is False]
            info = provenance("cpu", "float64") | {
                "figure": name, "mode": mode, "torch_threads": threads, "seconds": seconds,
                "rows": len(figure_rows), "failed": len(failed)}
            (out / name / "provenance.json").write_text(json.dumps(info, indent=2) + "\n")
            said = f": FAILED {'; '.join(failed)}" if failed else ""
            judged = sum(verdict(r["passed"]) is not None for r in figure_rows)
            print(f"[{name}] {judged - len(failed)}/{judged} comparisons pass ({seconds:.0f} s)"
                  f"{said}", flush=True)
    mine = pd.DataFrame(rows, columns=common.COLUMNS).assign(mode=mode)
    table, summary = mine, out / "summary.csv"
    if summary.exists() and args.names:  # a partial run updates its own figures' rows only
        old = pd.read_csv(summary)
        if list(old.columns) == list(table.columns) and (old["mode"] == mode).all():
            table = pd.concat([old[~old["figure"].isin(names)], table], ignore_index=True)
            table["figure"] = pd.Categorical(table["figure"], list(FIGURES), ordered=True)
            table = table.sort_values("figure", kind="stable")
    out.mkdir(parents=True, exist_ok=True)
    table["seeds"] = table["seeds"].astype("Int64")  # an integer column, whatever pandas read
    store.write_if_changed(summary, table.to_csv(index=False).encode())
    shown = mine[["figure", "quantity", "measured", "tolerance", "passed"]].assign(note=notes)
    with pd.option_context("display.width", 200, "display.max_rows", 500,
                           "display.max_colwidth", 60):
        print(shown.to_string(index=False))
    unexpected = [q for q, ok, note in zip(mine["quantity"], mine["passed"], notes)
                  if verdict(ok) is False and not note]
    expected = sum(bool(n) for n in notes)
    judged = mine[mine["kind"] != "finding"]
    print(f"{int(judged['passed'].eq(True).sum())}/{len(judged)} pass "
          f"({len(mine) - len(judged)} findings, not judged), {expected} expected failure(s), "
          f"{len(unexpected)} unexpected; {total:.0f} s on {threads} thread(s) -> {summary}")
    status = 1 if unexpected else 0
    if args.against is not None:
        check = compare(mine, pd.read_csv(args.against / "summary.csv"))
        bad_rows = check[~check["ok"]]
        print(f"against {args.against}: {int(check['ok'].sum())}/{len(check)} rows agree "
              f"({int(check.get('identical', pd.Series(dtype=bool)).fillna(False).sum())} "
              "bit for bit)")
        if not bad_rows.empty:
            print(bad_rows.to_string(index=False))
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
