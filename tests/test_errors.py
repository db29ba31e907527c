"""The command line's errors, interrupts and resume rules, through the real CLI (subprocess;
the resume rules through the same driver in this process).

- a bad value anywhere in a sweep's grid exits 2 with one line (key, value, allowed values) before
  any directory exists (Hydra 1.3 would turn a callback's exception into a warning);
- a misspelt key, with or without ``+``, exits 2 naming the nearest valid key; a bad single run
  leaves no ``results/runs/<time>/``; ``RNNLAB_TRACEBACK=1`` brings the traceback back;
- an output directory that cannot be created is named with the OS's reason;
- ``model.gain`` alone works, neither scale key means rho = 1, both is an error;
- a run re-run with its defaults written out is skipped (the hash normalises defaults), and so is
  a run whose stored hash came from an earlier recipe (recognised by its params);
- an aggregation that fails at the end of a sweep makes the sweep exit non-zero;
- Ctrl-C ends a sweep with exit 130 and one line (what finished, how to resume), leaves no run
  directory without run.json, and the re-run completes every run once;
- Hydra's per-job ``#N`` lines are silenced, rnnlab's tally is kept.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["model.hidden_size=8", "data.seq_len=10", "data.batch_size=2", "measure.progress=false"]


def decay(cwd, *overrides, env=None):
    return subprocess.run([sys.executable, str(ROOT / "experiments" / "decay.py"), *overrides],
                          capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **(env or {})})


def one_line_error(out, code=2):
    assert out.returncode == code, (out.returncode, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rnnlab: error: "), out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    return lines[0]


def test_bad_grid_value_stops_before_any_job(tmp_path):
    out = decay(tmp_path, "-m", "sweep=quick", "model.activation=tanh,gelu",
                f"hydra.sweep.dir={tmp_path / 'sweep'}")
    line = one_line_error(out)
    assert "model.activation='gelu'" in line and "'tanh'" in line and "'relu'" in line
    assert not (tmp_path / "sweep").exists()
    assert "computed" not in out.stdout


def test_misspelt_keys_and_no_empty_run_directory(tmp_path):
    for key in ("+model.activaton=tanh", "model.activaton=tanh"):
        line = one_line_error(decay(tmp_path, key, *SMALL))
        assert "'model.activaton'" in line and "did you mean 'model.activation'" in line
    line = one_line_error(decay(tmp_path, "data.seq_len=0", *SMALL[:1]))
    assert "data.seq_len=0" in line and ">= 1" in line
    assert not (tmp_path / "results").exists(), "a rejected run must leave no directory"
    out = decay(tmp_path, "model.activation=gelu", env={"RNNLAB_TRACEBACK": "1"})
    assert out.returncode != 0 and "Traceback" in out.stderr and "gelu" in out.stderr
    assert not (tmp_path / "results").exists()


def test_os_errors_name_the_path(tmp_path):
    (tmp_path / "a_file").write_text("")
    line = one_line_error(decay(tmp_path, f"hydra.run.dir={tmp_path / 'a_file' / 'run'}",
                                *SMALL), code=1)
    assert "not a directory" in line and str(tmp_path / "a_file") in line
    line = one_line_error(decay(tmp_path, "hydra.run.dir=/proc/rnnlab-test/run", *SMALL),
                          code=1)
    assert "cannot create the output directory /proc/rnnlab-test/run" in line


def test_scale_keys_and_explicit_defaults_are_skipped(tmp_path, decay_in_process):
    # in this process: the resume rules, not the process boundary, are under test here
    status, _, err = decay_in_process(f"hydra.run.dir={tmp_path / 'g'}", "model.gain=1.5", *SMALL)
    assert status == 0, err
    params = json.loads((tmp_path / "g" / "run.json").read_text())["params"]
    assert params["model.gain"] == 1.5 and params["model.spectral_radius"] is None
    status, _, err = decay_in_process(f"hydra.run.dir={tmp_path / 'both'}", "model.gain=1.5",
                                      "model.spectral_radius=0.9", *SMALL)
    lines = err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and lines[0].startswith("rnnlab: error: "), err
    assert "model.spectral_radius=0.9" in lines[0] and "model.gain=1.5" in lines[0]
    assert not (tmp_path / "both").exists()

    run = tmp_path / "r"
    status, _, err = decay_in_process(f"hydra.run.dir={run}", *SMALL)
    assert status == 0, err
    record = json.loads((run / "run.json").read_text())
    params = record["params"]
    assert params["model.spectral_radius"] == 1.0 and params["model.gain"] is None
    status, out, err = decay_in_process(f"hydra.run.dir={run}", *SMALL,
                                        "model.spectral_radius=1", "model.gain=null", "seed=0",
                                        "measure.threads=1")
    assert status == 0 and "already complete" in out, out + err

    # a run.json written under an earlier hash recipe: recognised from its params
    record["config_hash"] = "feedfacefeedface"
    (run / "run.json").write_text(json.dumps(record))
    status, out, err = decay_in_process(f"hydra.run.dir={run}", *SMALL)
    assert "already complete" in out, out + err
    assert not list(run.glob("stale-*"))


def test_failed_aggregation_is_an_error(tmp_path):
    sweep = tmp_path / "s"
    sweep.mkdir()
    (sweep / "figures").write_text("a file where the figures directory goes")
    out = decay(tmp_path, "-m", "sweep=custom", "model.spectral_radius=0.5,1.0", *SMALL,
                f"hydra.sweep.dir={sweep}")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "rnnlab: error:" in out.stderr and "figures" in out.stderr
    assert "Traceback" not in out.stderr


def test_ctrl_c_reports_once_and_resumes(tmp_path):
    sweep = tmp_path / "s"
    grid = ["-m", "sweep=custom", "model.hidden_size=16", "data.batch_size=4",
            "data.seq_len=150,1500", "model.spectral_radius=0.5,1.0,1.5",
            "measure.progress=false", f"hydra.sweep.dir={sweep}"]
    cmd = [sys.executable, str(ROOT / "experiments" / "decay.py"), *grid]
    # SIGINT at its default in the child, even when the suite itself runs in the background of
    # a non-interactive shell (which starts it with SIGINT ignored, inherited across exec)
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        progress = sweep / ".progress"
        if progress.exists() and progress.read_text().count("computed") >= 1:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "interrupted" in lines[0] and "resume" in lines[0], stderr
    assert "Traceback" not in stderr
    done = [p for p in sweep.iterdir() if p.is_dir() and (p / "run.json").exists()]
    assert 1 <= len(done) < 6, "the interrupt should land mid-sweep"
    assert all((p / "run.json").exists() for p in sweep.iterdir()
               if p.is_dir() and p.name != "figures"), "no half-written run directory"
    out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    outcomes = [x.split("\t")[0] for x in (sweep / ".progress").read_text().splitlines()]
    assert outcomes.count("skipped") == len(done) and len(outcomes) == 6
    assert "#0" not in out.stdout + out.stderr and "Launching" not in out.stdout + out.stderr
    assert "[s 6/6:" in out.stdout


def test_sweep_shows_a_progress_bar_per_run_on_a_terminal(tmp_path):
    """On a terminal (a pseudo-terminal 120 columns wide) each job shows its bar, cleared when
    the run ends, then rnnlab's tally line; no Hydra job lines."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    cmd = [sys.executable, str(ROOT / "experiments" / "decay.py"), "-m", "sweep=custom",
           "model.spectral_radius=0.5,1.0", "data.seq_len=400", "model.hidden_size=8",
           "data.batch_size=2", f"hydra.sweep.dir={tmp_path / 's'}"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=120)
    os.close(master)
    text = b"".join(chunks).decode("utf-8", "replace")
    assert proc.returncode == 0, text[-2000:]
    assert text.count("adjoint sweep:") >= 2, text[-2000:]
    assert "[s 1/2:" in text and "[s 2/2:" in text
    assert "#0" not in text and "Launching" not in text
