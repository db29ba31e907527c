"""``experiments/reproduce.py`` and the committed ``results/reproduction/``.

* A quick run of three cheap figures (lag-decay, bifurcation, walls) writes each figure's PNG
  and CSV and a summary.csv with the columns figure, quantity, kind, expected, measured,
  tolerance, passed, seeds, spread, basis, mode (= quick), every row passing, and a
  provenance.json with the git commit, package versions, torch_threads = 1 and each figure's
  seconds. Run twice, every CSV is identical byte for byte (the fixed thread count). Slow: all
  figures in quick mode pass.
* ``--quick`` without ``--out`` writes results/reproduction-quick/, never the committed
  results/reproduction/; a figure script run alone (as a file, or with ``python -m``) makes its
  own files; an unknown figure name is refused with the allowed names.
* The committed summary.csv was made in full mode; every row states a kind and the basis of its
  tolerance; every statistical row (kind theory, with a seed spread) averages >= 5 seeds, and
  every passing one has a tolerance of at least 2.5 standard errors of its mean (an unbiased
  measurement fails it by chance less than 1.2% of the time; most rows have far more);
  every failed row is named in results/reproduction/README.md, which explains it.
"""
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
REPRODUCE = ROOT / "experiments" / "reproduce.py"
COMMITTED = ROOT / "results" / "reproduction"
FIGURES = ["lag-decay", "rate-vs-gain", "critical-line", "lyapunov", "isometry", "bifurcation",
           "walls", "gate-timescales", "minimalrnn", "trainability"]
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
    failed = summary[~summary["passed"]]
    assert failed.empty, failed.to_string()
    for name in names:
        assert list((out / name).glob("*.png")), name
        assert list((out / name).glob("*.csv")), name
    info = json.loads((out / "provenance.json").read_text())
    assert info["torch_threads"] == 1 and info["mode"] == "quick"
    assert info["git_commit"] and info["packages"]["torch"]
    assert sorted(info["seconds"]) == sorted(names)


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
    check_run(tmp_path, FIGURES)
    assert done.returncode == 0, done.stderr[-2000:]


def test_quick_never_writes_the_committed_results():
    before = {p: p.stat().st_mtime_ns for p in COMMITTED.rglob("*") if p.is_file()}
    done = reproduce("--quick", "bifurcation")
    assert done.returncode == 0, done.stderr[-2000:]
    assert (ROOT / "results" / "reproduction-quick" / "bifurcation" / "bifurcation.png").exists()
    assert {p: p.stat().st_mtime_ns for p in COMMITTED.rglob("*") if p.is_file()} == before


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
    assert summary["kind"].isin(["exact", "theory", "consistency", "bound", "sign"]).all()
    assert summary["basis"].notna().all()
    assert not summary.duplicated("quantity").any()
    statistical = summary[(summary["kind"] == "theory") & summary["spread"].notna()]
    assert len(statistical) >= 20
    assert (statistical["seeds"] >= 5).all(), statistical
    se = statistical["spread"] / statistical["seeds"] ** 0.5
    thin = statistical[statistical["passed"] & (statistical["tolerance"] < 2.5 * se)]
    assert thin.empty, thin.to_string()
    readme = (COMMITTED / "README.md").read_text()
    for quantity in summary.loc[~summary["passed"], "quantity"]:
        assert quantity in readme, f"failed row not explained in the README: {quantity}"
    info = json.loads((COMMITTED / "provenance.json").read_text())
    assert info["mode"] == "full" and info["torch_threads"] == 1
