"""``experiments/reproduce.py`` and the committed ``results/reproduction/``.

* A quick run of three cheap figures (lag-decay, bifurcation, walls) writes each figure's PNG
  and CSV and a summary.csv with the columns figure, quantity, kind, expected, measured,
  tolerance, passed, seeds, spread, basis, mode (= quick), every row passing, and per figure a
  provenance.json with the git commit, package versions, torch's build, the CPU model,
  torch_threads = 1 and the figure's seconds. Run twice, every CSV is identical byte for byte
  (the fixed thread count). Slow: all figures in quick mode, where every failing row is one the
  runner calls expected (fails in the committed full run too, or a quick-size smoke row).
* A full run of one figure (walls) into a copy of the committed results exits 0, reports that
  figure alone, writes its own provenance.json and leaves every other file byte for byte as it
  was (summary.csv included: walls reproduces bit for bit); ``--against`` the committed results
  agrees on every row.
* ``--quick`` without ``--out`` writes results/reproduction-quick/ (run here under a temporary
  root), never the committed results/reproduction/; a figure script run alone (as a file, or with
  ``python -m``) makes its own files; an unknown figure name is refused with the allowed names.
* ``compare``: a changed verdict, an exact row off by more than rounding and a statistical row
  more than 3 standard errors of a difference away each fail; a statistical row within them and
  a row equal to rounding pass.
* The committed summary.csv was made in full mode; every row states a kind and the basis of its
  tolerance; every statistical row (kind theory, with a seed spread) averages >= 5 seeds, and
  every passing one has a tolerance of at least 2.5 standard errors of its mean (an unbiased
  measurement fails it by chance less than 1.2% of the time; most rows have far more);
  every failed row is named in results/reproduction/README.md, which explains it; a finding
  (a measured gap reported beside a comparison) has an empty ``passed``, a seed spread and >= 5
  seeds; every figure has its own provenance.json from a full run on one thread.
* Its ``seeds`` column is an integer; every judged row averaged over seeds (with a spread)
  opens its basis with "estimator: ...; n = <seeds>; SE: ...": what was measured, how many
  times, and how its standard error was obtained.
"""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
REPRODUCE = ROOT / "experiments" / "reproduce.py"
COMMITTED = ROOT / "results" / "reproduction"
FIGURES = ["lag-decay", "rate-vs-gain", "critical-line", "lyapunov", "isometry", "bifurcation",
           "walls", "gate-timescales", "minimalrnn", "trainability", "remedies",
           "curse-of-memory", "truncation", "adam-hessian", "modern"]
COLUMNS = ["figure", "quantity", "kind", "expected", "measured", "tolerance", "passed", "seeds",
           "spread", "basis", "mode"]
CHEAP = ["lag-decay", "bifurcation", "walls"]


def reproduce(*args):
    return subprocess.run([sys.executable, str(REPRODUCE), *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT)


def check_run(out, names):
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary.columns) == COLUMNS
    assert sorted(summary["figure"].unique()) == sorted(names)
    assert (summary["mode"] == "quick").all()
    failed = summary[summary["passed"].eq(False)]
    assert failed.empty, failed.to_string()
    for name in names:
        assert list((out / name).glob("*.png")), name
        assert list((out / name).glob("*.csv")), name
    for name in names:
        info = json.loads((out / name / "provenance.json").read_text())
        assert info["torch_threads"] == 1 and info["mode"] == "quick" and info["figure"] == name
        assert info["git_commit"] and info["packages"]["torch"] and info["cpu"]
        assert info["torch_build"]["version"] == info["packages"]["torch"]
        assert info["seconds"] > 0


def test_quick_run_is_complete_and_bit_for_bit(tmp_path):
    runs = [tmp_path / "a", tmp_path / "b"]
    for out in runs:
        done = reproduce("--quick", *CHEAP, "--out", out)
        assert done.returncode == 0, done.stderr[-2000:]
        check_run(out, CHEAP)
    csvs = sorted(p.relative_to(runs[0]) for p in runs[0].rglob("*.csv"))
    assert len(csvs) > len(CHEAP)
    for rel in csvs:
        assert (runs[0] / rel).read_bytes() == (runs[1] / rel).read_bytes(), rel


@pytest.mark.slow
def test_quick_reproduction_of_every_figure(tmp_path):
    done = reproduce("--quick", "--out", tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 unexpected" in done.stdout
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert sorted(summary["figure"].unique()) == sorted(FIGURES)


def test_quick_never_writes_the_committed_results(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT))
    try:
        from experiments import reproduce as runner
    finally:
        sys.path.remove(str(ROOT))
    assert runner.default_out(quick=True) == ROOT / "results" / "reproduction-quick"
    assert runner.default_out(quick=False) == COMMITTED
    monkeypatch.setattr(runner, "ROOT", tmp_path)
    assert runner.main(["--quick", "walls"]) == 0
    assert (tmp_path / "results" / "reproduction-quick" / "walls" / "walls.png").exists()
    assert not (tmp_path / "results" / "reproduction").exists()


def test_one_full_figure_changes_nothing_else(tmp_path):
    copy = tmp_path / "reproduction"
    shutil.copytree(COMMITTED, copy)
    before = {p.relative_to(copy): p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    done = reproduce("walls", "--out", copy, "--against", COMMITTED)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "trainability" not in done.stdout and "3/3 pass" in done.stdout
    assert "3/3 rows agree (3 bit for bit)" in done.stdout
    after = {p.relative_to(copy): p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    changed = {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}
    assert changed <= {Path("walls/provenance.json")}, changed
    info = json.loads((copy / "walls" / "provenance.json").read_text())
    assert info["figure"] == "walls" and info["mode"] == "full" and info["rows"] == 3


def test_compare_verdicts_rounding_and_standard_errors():
    sys.path.insert(0, str(ROOT))
    try:
        from experiments.reproduce import compare
    finally:
        sys.path.remove(str(ROOT))
    ref = pd.DataFrame({"quantity": list("abcde"), "measured": [1.0, 2.0, 0.5, 0.5, 3.0],
                        "passed": [True, True, True, True, True],
                        "spread": [None, None, 0.1, 0.1, None], "seeds": [None, None, 8, 8, None]})
    se = 3 * 2 ** 0.5 * 0.1 / 8 ** 0.5  # 3 SE of a difference of two 8-seed means
    new = ref.assign(measured=[1.0 + 1e-13, 2.0 + 1e-6, 0.5 + 0.99 * se, 0.5 + 1.01 * se, 3.0],
                     passed=[True, True, True, True, False])
    ok = compare(new, ref).set_index("quantity")["ok"]
    assert ok.to_dict() == {"a": True, "b": False, "c": True, "d": False, "e": False}


@pytest.mark.parametrize("how", ["file", "module"])
def test_a_figure_script_runs_alone(tmp_path, how):
    script = ([str(ROOT / "experiments" / "figures" / "walls.py")] if how == "file"
              else ["-m", "experiments.figures.walls"])
    done = subprocess.run([sys.executable, *script, "--quick", "--out", str(tmp_path)],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "walls.png").exists() and (tmp_path / "walls_grid.csv").exists()
    assert "3/3 pass" in done.stdout


def test_unknown_figure_is_refused(tmp_path):
    done = reproduce("not-a-figure", "--out", tmp_path)
    assert done.returncode == 2 and "not-a-figure" in done.stderr and "lag-decay" in done.stderr


def test_committed_summary_rows_can_fail():
    summary = pd.read_csv(COMMITTED / "summary.csv")
    assert list(summary.columns) == COLUMNS
    assert sorted(summary["figure"].unique()) == sorted(FIGURES)
    assert (summary["mode"] == "full").all()
    assert summary["kind"].isin(["exact", "theory", "consistency", "bound", "sign",
                                 "finding"]).all()
    assert summary["basis"].notna().all()
    assert not summary.duplicated("quantity").any()
    statistical = summary[(summary["kind"] == "theory") & summary["spread"].notna()]
    assert len(statistical) >= 20
    assert (statistical["seeds"] >= 5).all(), statistical
    se = statistical["spread"] / statistical["seeds"] ** 0.5
    thin = statistical[statistical["passed"].eq(True) & (statistical["tolerance"] < 2.5 * se)]
    assert thin.empty, thin.to_string()
    readme = (COMMITTED / "README.md").read_text()
    findings = summary[summary["kind"] == "finding"]
    assert findings["passed"].isna().all() and findings["spread"].notna().all()
    assert (findings["seeds"] >= 5).all()
    for quantity in summary.loc[summary["passed"].eq(False), "quantity"]:
        assert quantity in readme, f"failed row not explained in the README: {quantity}"
    for name in FIGURES:
        info = json.loads((COMMITTED / name / "provenance.json").read_text())
        assert info["mode"] == "full" and info["torch_threads"] == 1 and info["figure"] == name


def test_committed_seeds_are_integers_and_judged_rows_name_their_error_bar():
    summary = pd.read_csv(COMMITTED / "summary.csv")
    assert pd.api.types.is_integer_dtype(summary["seeds"]), summary["seeds"].dtype
    assert (summary["seeds"] >= 1).all()
    # a judged row averaged over seeds says what it averaged, n, and how its SE was obtained
    judged = summary[~summary["kind"].isin(["finding", "exact"]) & (summary["seeds"] > 1)
                     & summary["spread"].notna()]
    assert len(judged) >= 20
    for r in judged.itertuples():
        assert r.basis.startswith("estimator: ") and f"; n = {r.seeds}; SE: " in r.basis, \
            (r.figure, r.quantity, r.basis)
