"""The command line's fast paths.

* A misspelt key, a value of the wrong type, out of its range or outside a fixed list
  (``measure.jacobians=bogus``) exits 2 with its one line before torch, pandas or seaborn are
  imported (the schema's check, ``rnnlab.schema``); a bad value whose check needs a registry (a
  cell's activations, a task's minimum length: torch code) exits 2 before pandas or seaborn are
  imported. Both for experiments/decay.py and experiments/train.py, in a fresh process.
* A sweep composes each job's config once (Hydra's launcher; the driver's own check composes once
  per distinct config-group choice): 2 jobs, at most 3 compositions.
* A finished sweep run again: every run is skipped from its stored hash without Hydra launching
  a job (the job function is never called), and the aggregation is skipped while no run.json
  changed and its outputs are there; a changed run.json or a deleted output re-aggregates.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import hydra
import pytest

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
HEAVY = ("torch", "pandas", "seaborn")

PROBE = """
import runpy, sys
sys.argv = [{script!r}, {override!r}]
try:
    runpy.run_path({script!r}, run_name="__main__")
except SystemExit as e:
    print("exit", e.code, ",".join(m for m in {heavy!r} if m in sys.modules))
"""


@pytest.mark.parametrize("script, override, loaded", [
    ("decay.py", "model.activaton=tanh", ""),
    ("decay.py", "measure.jacobians=bogus", ""),
    ("decay.py", "model.hidden_size=abc", ""),
    ("decay.py", "data.input_std=-1", ""),
    ("decay.py", "model.activation=tanhh", "torch"),
    ("train.py", "model.cel=gru", ""),
    ("train.py", "train.lr=fast", ""),
    ("train.py", "task.length=-3", ""),
    ("train.py", "task.length=3", "torch"),
])
def test_rejected_before_the_heavy_imports(script, override, loaded, tmp_path):
    code = PROBE.format(script=str(ROOT / "experiments" / script), override=override,
                        heavy=HEAVY)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path)
    assert done.stdout.strip().splitlines()[-1] == f"exit 2 {loaded}".strip(), \
        done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and "rnnlab: error:" in done.stderr
    assert not list(tmp_path.iterdir())


def test_finished_sweep_skips_runs_and_aggregation(in_process, tmp_path, capsys, monkeypatch):
    from rnnlab.measure.app import APP

    driver = in_process
    sweep_dir = tmp_path / "sweep"
    calls = []

    @hydra.main(version_base="1.3", config_path=str(CONF), config_name="decay")
    def hydra_main(cfg) -> None:
        calls.append(1)
        driver.run_job(APP, cfg)

    overrides = ["-m", "sweep=custom", "model.spectral_radius=0.8,1.5", "model.hidden_size=6",
                 "model.input_size=3", "model.output_size=4", "data.batch_size=2",
                 "data.seq_len=10", "measure.progress=false", "measure.device=cpu",
                 f"hydra.sweep.dir={sweep_dir}"]
    monkeypatch.setattr(sys, "argv", ["decay.py", *overrides])
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    composed = []
    load = ConfigLoaderImpl.load_sweep_config
    monkeypatch.setattr(ConfigLoaderImpl, "load_sweep_config",
                        lambda self, *a, **k: composed.append(1) or load(self, *a, **k))

    def run():
        status = driver.main(hydra_main, CONF, APP, argv=overrides)
        return status, capsys.readouterr().out

    status, _ = run()
    assert status == 0 and len(calls) == 2 and len(composed) <= 3
    report = sweep_dir / "report.html"
    made = report.stat().st_mtime_ns

    status, out = run()
    assert status == 0 and len(calls) == 2, out
    assert "every run is already complete" in out and "up to date" in out
    assert report.stat().st_mtime_ns == made

    run_json = next(sweep_dir.glob("*/run.json"))
    run_json.write_text(run_json.read_text())  # same content, a new mtime: an input changed
    status, out = run()
    assert status == 0 and len(calls) == 2 and "up to date" not in out
    assert "report:" in out

    report.unlink()
    status, out = run()
    assert status == 0 and report.exists() and "up to date" not in out
