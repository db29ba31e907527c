"""The run store (rnnlab.runs.store) and the configuration hash, independent of what a run computes.

- ``store.execute`` runs any compute/writer pair (here a stand-in for a training run writing its
  own files): computed once, skipped on a re-run, a failure recorded, an interrupt leaves neither
  run.json nor temporary files, a changed configuration is set aside into stale-<time>/;
- the hash normalises defaults: 1 and 1.0, both scale keys unset and rho = 1 written out, and the
  display keys (progress, threads) give one hash; a key newer than the hash's base list at its
  default does not change it (a run stored without that key is recognised); a real change does;
- ``git_dirty`` ignores results/ but not the source;
- CSV tables are written so that the same numbers, up to the last bits, give the same bytes, and
  an unchanged file is not rewritten.
"""
import json
import subprocess
from dataclasses import replace

import pandas as pd
import pytest

from rnnlab.measure import config, tables
from rnnlab.measure.config import DataSpec, MeasureSpec, ModelSpec, RunSpec
from rnnlab.runs import store


def writer(run_dir, result):
    store.atomic_write(run_dir / "curve.csv", lambda p: p.write_text(result))
    return {"final_loss": 0.5}


def test_store_runs_any_compute_and_writer(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return "step,loss\n0,1.0\n"

    kw = dict(result_files=("curve.csv",), rehash=None)
    first = store.execute(tmp_path, {"task": "copy"}, "h1", compute, writer, **kw)
    assert first["outcome"] == "computed" and (tmp_path / "curve.csv").exists()
    assert json.loads((tmp_path / "run.json").read_text())["final_loss"] == 0.5
    assert store.execute(tmp_path, {"task": "copy"}, "h1", compute, writer,
                         **kw)["outcome"] == "skipped"
    assert len(calls) == 1

    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store.execute(tmp_path / "i", {}, "h", interrupted, writer, **kw)
    assert not list((tmp_path / "i").iterdir()), "no run.json, no lock, no temporary file"

    def half_written(run_dir, result):
        def write(p):
            p.write_text("partial")
            raise KeyboardInterrupt
        store.atomic_write(run_dir / "curve.csv", write)

    with pytest.raises(KeyboardInterrupt):
        store.execute(tmp_path / "w", {}, "h", compute, half_written, **kw)
    assert not list((tmp_path / "w").iterdir())

    def broken():
        raise RuntimeError("diverged")

    failed = store.execute(tmp_path / "f", {}, "h", broken, writer, raise_errors=False, **kw)
    assert failed["outcome"] == "failed" and "diverged" in failed["error"]

    changed = store.execute(tmp_path, {"task": "copy", "lr": 2}, "h2", compute, writer, **kw)
    assert changed["outcome"] == "computed"
    stale = list(tmp_path.glob("stale-*"))
    assert len(stale) == 1 and {p.name for p in stale[0].iterdir()} == {"curve.csv", "run.json"}


def spec(**model):
    return RunSpec(model=ModelSpec(hidden_size=8, **model), data=DataSpec(seq_len=10),
                   measure=MeasureSpec(progress=False))


def test_hash_normalises_defaults():
    h = spec().config_hash()
    assert spec().model.spectral_radius == 1.0 and spec().model.gain is None
    assert spec(spectral_radius=1).config_hash() == h
    assert spec(spectral_radius=1.0, gain=None).config_hash() == h
    s = spec()
    assert replace(s, measure=replace(s.measure, threads=1, progress=True)).config_hash() == h
    assert spec(spectral_radius=1.1).config_hash() != h
    assert spec(gain=1.0).config_hash() != h
    assert config.rehash(s.flat()) == h


def test_a_key_added_later_at_its_default_keeps_the_hash(monkeypatch):
    s = spec()
    old_params = {k: v for k, v in s.flat().items() if k != "measure.jacobian"}
    # pretend measure.jacobian is a key added after the hash's base list was frozen
    monkeypatch.setattr(config, "HASH_BASE", config.HASH_BASE - {"measure.jacobian"})
    h = s.config_hash()
    assert config.rehash(old_params) == h  # a run stored before the key existed
    on = replace(s, measure=replace(s.measure, jacobian=True))
    assert on.config_hash() != h  # the key at another value is another configuration
    assert store.same_config({"config_hash": "old", "params": old_params}, h, config.rehash)


def test_git_dirty_ignores_results(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    (repo / "results").mkdir(parents=True)
    (repo / "src.py").write_text("x = 1\n")
    (repo / "results" / "summary.csv").write_text("a\n1\n")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "init"], check=True)
    monkeypatch.setattr(store, "_ROOT", repo)
    assert store.provenance("cpu", "float64")["git_dirty"] is False
    (repo / "results" / "summary.csv").write_text("a\n2\n")
    assert store.provenance("cpu", "float64")["git_dirty"] is False
    (repo / "src.py").write_text("x = 2\n")
    assert store.provenance("cpu", "float64")["git_dirty"] is True


def test_csv_bytes_are_stable(tmp_path):
    for i, rate in enumerate([-0.45583814778387455, -0.6859465127435986]):
        run = tmp_path / f"run{i}"
        run.mkdir()
        params = {**spec(spectral_radius=0.5 + i).flat()}
        pd.DataFrame({"lag": [0, 1], "log10_ratio_mean": [0.0, rate]}).to_parquet(
            run / "lags.parquet")
        store.write_json(run / "run.json", {"status": "completed", "params": params,
                                            "decay_rate": rate, "decay_rate_stderr": 0.01,
                                            "regime": "vanishing", "seconds": 1.0})
    tables.aggregate(tmp_path, quiet=True)
    first = {f: (tmp_path / f).read_bytes() for f in ("summary.csv", "rates.csv")}
    mtimes = {f: (tmp_path / f).stat().st_mtime_ns for f in first}
    for i in range(2):  # the same rates again, differing in the last bit (summation order)
        path = tmp_path / f"run{i}" / "run.json"
        record = json.loads(path.read_text())
        record["decay_rate"] = record["decay_rate"] * (1 + 2.3e-16)
        path.write_text(json.dumps(record))
    tables.aggregate(tmp_path, quiet=True)
    for f, content in first.items():
        assert (tmp_path / f).read_bytes() == content
        assert (tmp_path / f).stat().st_mtime_ns == mtimes[f]
    assert "-0.455838147784" in first["summary.csv"].decode()
