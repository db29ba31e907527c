"""What a sweep's results say they are (issue: verdicts that hold on any machine):

- an unnamed ``sweep=custom`` sweep lives in ``results/custom/<its keys joined by +>``: two
  such sweeps over different keys get two directories, so neither's tables, figures and
  report.html pool the other's runs; the same keys again extend the same grid;
- a sweep into a directory that holds runs named by other keys (a named sweep, or
  ``hydra.sweep.dir``) is refused with one line and exit 2 before anything is computed or
  written;
- an LSTM measured with ``measure.lstm_state=h`` is labelled as h alone with c held fixed, in the
  figures' y label and in the printed line; with ``joint`` as (h, c).
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from rnnlab.measure import plots
from rnnlab.measure.app import describe
from rnnlab.measure.config import measured_state

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["model.hidden_size=4", "data.seq_len=6", "data.batch_size=2", "measure.progress=false"]


def decay(cwd, *overrides):
    # the checkout's experiments/decay.py writes under the current directory's results/
    return subprocess.run([sys.executable, str(ROOT / "experiments" / "decay.py"), *overrides],
                          capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_unnamed_custom_sweeps_get_their_own_directories(tmp_path, monkeypatch,
                                                         decay_in_process):
    monkeypatch.chdir(tmp_path)  # results/ is relative to the working directory
    first = decay_in_process("-m", "sweep=custom", "model.spectral_radius=0.5,1.5", *SMALL)
    second = decay_in_process("-m", "sweep=custom", "data.seq_len=5,7", "model.hidden_size=4",
                              "data.batch_size=2", "measure.progress=false")
    assert first[0] == 0 and second[0] == 0, first[2] + second[2]
    a = tmp_path / "results/custom/data.batch_size+data.seq_len+model.hidden_size+"\
        "model.spectral_radius"
    b = tmp_path / "results/custom/data.batch_size+data.seq_len+model.hidden_size"
    assert sorted(p.name for p in (tmp_path / "results/custom").iterdir()) == sorted([a.name,
                                                                                     b.name])
    assert len(pd.read_parquet(a / "runs.parquet")) == 2
    assert sorted(pd.read_parquet(b / "runs.parquet")["data.seq_len"]) == [5, 7]
    # report.html names the command of the sweep it shows
    assert "model.spectral_radius=0.5,1.5" in json.loads((a / ".plan.json").read_text())["command"]
    assert "data.seq_len=5,7" in (b / "report.html").read_text()
    # the same keys again: the grid is extended in place
    again = decay_in_process("-m", "sweep=custom", "model.spectral_radius=1.0", *SMALL)
    assert again[0] == 0, again[2]
    assert len(pd.read_parquet(a / "runs.parquet")) == 3


def test_a_sweep_into_another_grids_directory_is_refused(tmp_path, decay_in_process):
    sweep = tmp_path / "s"
    first = decay_in_process("-m", "sweep=custom", "model.spectral_radius=0.5,1.5", *SMALL,
                             f"hydra.sweep.dir={sweep}")
    assert first[0] == 0, first[2]
    before = sorted(p.relative_to(sweep) for p in sweep.rglob("*"))
    out = decay(tmp_path, "-m", "sweep=custom", "model.gain=0.5,1.5", *SMALL,
                f"hydra.sweep.dir={sweep}")
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rnnlab: error: ")
    assert "holds runs of another grid" in lines[0] and "model.gain" in lines[0]
    assert sorted(p.relative_to(sweep) for p in sweep.rglob("*")) == before


def test_lstm_state_is_labelled():
    assert measured_state("lstm", "h") == "h alone (c held fixed)"
    assert measured_state("lstm", "joint") == "(h, c)"
    assert measured_state("gru", "joint") == measured_state("elman") == "h"
    h_alone = plots.ratio_label({"lstm": measured_state("lstm", "h")})
    assert "h alone (c held fixed) for lstm" in h_alone
    assert plots.ratio_label({"lstm": "(h, c)"}) == plots.STATE_RATIO_LABEL + "\n((h, c) for lstm)"
    mixed = plots.ratio_label({"gru": "h", "lstm": "(h, c) or h alone (c held fixed)"})
    assert mixed.endswith("(s = h; (h, c) or h alone (c held fixed) for lstm)")
    assert plots.ratio_label({"elman": "h"}) == plots.RATIO_LABEL
    runs = pd.DataFrame({"model.cell": ["lstm", "gru"], "measure.lstm_state": ["h", "joint"]})
    assert plots.measured_states(runs) == {"gru": "h", "lstm": "h alone (c held fixed)"}
    record = {"decay_rate": -0.1, "decay_rate_stderr": 0.01, "regime": "vanishing",
              "params": {"model.cell": "lstm", "measure.lstm_state": "h"}}
    assert describe(record).endswith("state h alone (c held fixed)")
    record["params"]["measure.lstm_state"] = "joint"
    assert describe(record).endswith("state (h, c)")
    record["params"]["model.cell"] = "gru"
    assert describe(record).endswith("nats/step (vanishing)")


def test_lstm_state_h_run_says_so(tmp_path, decay_in_process):
    status, out, err = decay_in_process("model=lstm", "measure.lstm_state=h", *SMALL,
                                        f"hydra.run.dir={tmp_path / 'run'}")
    assert status == 0, err
    assert "state h alone (c held fixed)" in out
