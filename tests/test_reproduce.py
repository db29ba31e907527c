"""``python experiments/reproduce.py --quick``: every figure of REFERENCE.md section 8 (but
trainability) is made, with its PNG and table, and its comparisons land in summary.csv with the
columns figure, quantity, expected, measured, tolerance, passed; all pass at quick sizes (whose
tolerances each script states); an unknown figure name is refused."""
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ["lag-decay", "rate-vs-gain", "critical-line", "lyapunov", "isometry", "bifurcation",
           "walls"]


def test_quick_reproduction(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "experiments" / "reproduce.py"), "--quick",
                          "--out", str(tmp_path)], capture_output=True, text=True)
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert list(summary.columns) == ["figure", "quantity", "expected", "measured", "tolerance",
                                     "passed"]
    assert sorted(summary["figure"].unique()) == sorted(FIGURES)
    failed = summary[~summary["passed"]]
    assert failed.empty, failed.to_string()
    assert out.returncode == 0, out.stderr[-2000:]
    for name in FIGURES:
        assert list((tmp_path / name).glob("*.png")), name
        assert list((tmp_path / name).glob("*.csv")), name


def test_unknown_figure_is_refused(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "experiments" / "reproduce.py"),
                          "trainability", "--out", str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 2 and "trainability" in out.stderr and "lag-decay" in out.stderr
