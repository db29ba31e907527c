"""The scripts in benchmarks/ keep working: each answers --help with nothing outside the standard
library imported (no torch, no rnnlab), each runs end to end in its quick mode (a tiny shape)
and prints its table, and a measurement of bench_gradients.py or bench_input_sensitivity.py that
fails or never answers ends the benchmark with its error (one line) and exit status 1 instead of
a hang. Nothing here is timed: the benchmarks' numbers are read from their printed tables, not
asserted."""
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
# a hung script is killed after this; the quick runs take seconds
TIMEOUT = 300

# script -> (arguments of its quick run, files it writes under the tmp dir, what its table shows)
SMOKE = {  # the longest first: its six commands run one after another
    "bench_cli.py": (["--quick"], [], r"\| one measurement \(N = 8, T = 10\) \| \d+\.\d+ \|"),
    "bench_diagonal.py": (["--quick"], [], r"fast = dense = naive to \d\.\de[-+]\d+ \(ln norm"),
    "bench_gradients.py": (["--quick"], [], r"(?m)^\s+elman\s+16\s+2\s+20 \|.*x \|.*% \|"),
    "bench_input_sensitivity.py": (["--quick"], [],
                                   r"attention: batched = naive to \d\.\de[-+]\d+ \(log10 norm"),
    "bench_threads.py": (["--quick"], [], r"\| 16 \| 4 \| 40 \| 1024 \| \d+\.\d+ s \|"),
    "bench_train.py": (["--quick"], [], r"(?m)^T=10\s+\d+\.\d"),
    "trainability_trials.py": (["--quick", "--out", "{tmp}/trials.csv"], ["trials.csv"],
                               r"task=adding_pascanu, T=10, cell=tanh"),
    "trainability_exploding_trials.py scan": (["scan", "--quick"], [],
                                              r"gaussian 1\.5 10 \[-?\d"),
    "trainability_exploding_trials.py train": (["train", "--quick", "--out", "{tmp}/e.csv"],
                                               ["e.csv"], r"'clip': 'none'"),
}


def env(*extra_path) -> dict:
    path = os.pathsep.join([*map(str, extra_path), str(ROOT)])
    return os.environ | {"PYTHONPATH": path, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory):
    """Every quick run started at once (they are processes: the module's tests wait on them
    together rather than one after another)."""
    runs = {}
    for name, (argv, _, _) in SMOKE.items():
        tmp = tmp_path_factory.mktemp(name.replace(" ", "_").replace(".py", ""))
        cmd = [sys.executable, str(BENCH / name.split()[0]),
               *(a.format(tmp=tmp) for a in argv)]
        runs[name] = (subprocess.Popen(cmd, cwd=tmp, env=env(), stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True), tmp)
    yield runs
    for proc, _ in runs.values():
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_every_script_has_a_smoke_run():
    scripts = {p.name for p in BENCH.glob("*.py") if not p.name.startswith("_")}  # _: shared
    assert scripts == {name.split()[0] for name in SMOKE}


@pytest.mark.parametrize("name", sorted(SMOKE))
def test_quick_run_prints_its_table(smoke_runs, name):
    proc, tmp = smoke_runs[name]
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"{name} --quick did not finish in {TIMEOUT} s")
    assert proc.returncode == 0, f"{name} exited {proc.returncode}:\n{err[-3000:]}"
    _, files, table = SMOKE[name]
    assert re.search(table, out), f"{name}: no table row matching {table!r} in\n{out}"
    for f in files:
        assert (tmp / f).stat().st_size > 0


HELP = textwrap.dedent("""
    import runpy, sys

    class OnlyStdlib:
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] not in sys.stdlib_module_names:
                raise ImportError(f"--help imported {name}")

    sys.meta_path.insert(0, OnlyStdlib())
    sys.argv = [sys.argv[1], "--help"]
    runpy.run_path(sys.argv[0], run_name="__main__")
""")


@pytest.mark.parametrize("script", sorted(p.name for p in BENCH.glob("[!_]*.py")))
def test_help_needs_only_the_standard_library(script):
    """What a hook without torch runs: ``python3 benchmarks/X.py --help``."""
    done = subprocess.run([sys.executable, "-c", HELP, str(BENCH / script)], env=env(),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("usage:")


def inject(tmp_path: Path, code: str) -> Path:
    """A sitecustomize.py that runs ``code`` in each of bench_gradients.py's measurement
    processes (``--child`` on their command line) before the measurement."""
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\nif '--child' in sys.argv:\n" + textwrap.indent(code, "    "))
    return tmp_path


def run_gradients(*argv, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCH / "bench_gradients.py"), *argv],
                          env=env(site), capture_output=True, text=True, timeout=TIMEOUT)


def test_failed_measurement_ends_the_benchmark_with_its_error(tmp_path):
    # the reference's entry point missing in its measurement process (the crash this guards
    # against: a measurement that raises used to leave the parent waiting forever)
    site = inject(tmp_path, textwrap.dedent("""
        if any(a.startswith('reference,') for a in sys.argv):
            import rnnlab.engine.reference as r
            del r.reference_log_grad_norms
    """))
    done = run_gradients("--quick", "--methods", "reference", site=site)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert "reference of elman at (N, B, T) = (16, 2, 20) failed" in last
    assert "AttributeError" in last and "reference_log_grad_norms" in last
    assert "reference s" in done.stdout  # the table had begun


def test_hung_measurement_is_killed_at_the_timeout(tmp_path):
    site = inject(tmp_path, "import time\ntime.sleep(600)\n")
    done = run_gradients("--quick", "--timeout", "2", site=site)
    assert done.returncode == 1
    assert "no result within --timeout 2 s; killed" in done.stderr


def run_sensitivity(tmp_path: Path, code: str, *argv) -> subprocess.CompletedProcess:
    """bench_input_sensitivity.py --quick with ``code`` run in its process first (rnnlab's
    ``input_sensitivity`` replaced: the script imports it when it measures)."""
    (tmp_path / "sitecustomize.py").write_text(
        "import rnnlab.engine.input_sensitivity as m\n" + code)
    return subprocess.run([sys.executable, str(BENCH / "bench_input_sensitivity.py"), "--quick",
                           *argv], env=env(tmp_path), capture_output=True, text=True,
                          timeout=TIMEOUT)


def test_failed_input_sensitivity_ends_the_benchmark_in_one_line(tmp_path):
    done = run_sensitivity(tmp_path, textwrap.dedent("""
        def broken(model, x):
            raise RuntimeError("injected\\nsecond line")
        m.input_sensitivity = broken
    """))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "bench_input_sensitivity: stack (float64) at (B, T, N, C) = (2, 12, 8, 10) failed: "
        "RuntimeError: injected"]
    assert "batched s" in done.stdout  # the table had begun


def test_hung_input_sensitivity_ends_at_the_timeout(tmp_path):
    done = run_sensitivity(tmp_path, "import time\nm.input_sensitivity = lambda model, x: "
                           "time.sleep(600)\n", "--models", "attention", "--timeout", "2")
    assert done.returncode == 1
    assert done.stderr.strip().endswith("failed: no result within --timeout 2 s")
