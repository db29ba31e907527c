"""``python experiments/reproduce.py --redraw``: figures drawn again from their committed tables
alone, in a process where torch cannot be imported.

* The subprocess runs with a ``sitecustomize`` first on PYTHONPATH that puts a finder at the head
  of ``sys.meta_path``: any import of torch raises ImportError and is logged, and at exit every
  loaded ``rnnlab.engine`` module is logged. Redrawing every committed figure into a temporary
  folder (7 s on the shared 2-core machine, 30 s under heavy load) exits 0, writes each figure's
  PNG there under its committed name and nothing else there, and logs nothing.
* Every table a draw step reads is committed (the only input of --redraw).
* An unknown figure name is refused in one line naming it and the allowed names (exit 2); a
  missing table in one line naming the file and the command that computes it (exit 1).
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPRODUCE = ROOT / "experiments" / "reproduce.py"
COMMITTED = ROOT / "results" / "reproduction"
SHIM = '''
import atexit, os, sys

LOG = os.environ["REDRAW_IMPORT_LOG"]


def log(line):
    with open(LOG, "a") as f:
        f.write(line + "\\n")


class RefuseTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            log(f"import {name}")
            raise ImportError(f"{name} is not importable in this test")
        return None


sys.meta_path.insert(0, RefuseTorch())


@atexit.register
def engine_modules():
    for name in sorted(sys.modules):
        if name == "rnnlab.engine" or name.startswith("rnnlab.engine."):
            log(f"loaded {name}")
'''


def runner():
    """experiments/reproduce.py as a module."""
    sys.path.insert(0, str(ROOT))
    try:
        from experiments import reproduce
    finally:
        sys.path.remove(str(ROOT))
    return reproduce


def redraw(tmp_path, *args):
    """Run reproduce.py --redraw ARGS without torch; (the process, the import log's lines)."""
    shim = tmp_path / "shim"
    shim.mkdir(exist_ok=True)
    (shim / "sitecustomize.py").write_text(SHIM)
    log = tmp_path / "imports.log"
    env = {**os.environ, "REDRAW_IMPORT_LOG": str(log), "MPLBACKEND": "Agg",
           "PYTHONPATH": os.pathsep.join([str(shim), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(REPRODUCE), "--redraw", *map(str, args)],
                          capture_output=True, text=True, cwd=tmp_path, env=env)
    return done, log.read_text().splitlines() if log.exists() else []


def check_redraw(tmp_path, names):
    out = tmp_path / "out"
    done, log = redraw(tmp_path, *names, "--out", out)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert log == [], log  # no attempt to import torch, no engine module loaded
    for name in names:
        pngs = list((out / name).glob("*.png"))
        assert len(pngs) == 1 and pngs[0].stat().st_size > 10_000, (name, pngs)
        assert (COMMITTED / name / pngs[0].name).is_file(), pngs[0].name  # the committed name
    written = {p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()}
    assert {p for p in written if p.parts[0] == "out"} == {
        Path("out", name, png.name) for name in names for png in (out / name).glob("*.png")}


def test_redraw_every_figure_without_torch(tmp_path):
    check_redraw(tmp_path, list(runner().FIGURES))


def test_every_table_a_draw_step_reads_is_committed():
    reproduce = runner()
    for name in reproduce.FIGURES:
        plot = reproduce.plot_module(name)
        assert plot.FIGURE == name
        assert not [p for p in (COMMITTED / name / t for t in plot.TABLES) if not p.is_file()]


def test_unknown_figure_is_one_line(tmp_path):
    done, _ = redraw(tmp_path, "lag-decay", "no-such-figure", "--out", tmp_path / "out")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "no-such-figure" in lines[0] and "curse-of-memory" in lines[0]
    assert not (tmp_path / "out").exists()


def test_missing_table_names_the_file_and_the_command(tmp_path):
    tables = tmp_path / "tables"
    shutil.copytree(COMMITTED / "bifurcation", tables / "bifurcation")
    (tables / "bifurcation" / "bifurcation_theory.csv").unlink()
    done, _ = redraw(tmp_path, "bifurcation", "--tables", tables, "--out", tmp_path / "out")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert str(tables / "bifurcation" / "bifurcation_theory.csv") in lines[0]
    assert f"python experiments/reproduce.py bifurcation --out {tables}" in lines[0]
    assert not (tmp_path / "out").exists()
