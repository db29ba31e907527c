"""One configuration schema for both apps (``rnnlab.schema``).

- a key both apps take is one declaration: ``model.hidden_size``'s Key is the same object in the
  schema, in the measurement's ``ModelSpec`` and in the training's ``TrainConfig``; every field
  of the two specifications is a schema key or a registered cell's own key (``Cell.keys``), and
  the LRU's keys are fields of both without being declared in the schema or in
  conf/model/elman.yaml and conf/train.yaml;
- the defaults of conf/'s group files are the schema's, key for key (both apps);
- the first stage (``schema.check``) refuses, in one line naming the key, a misspelt key, a value
  of the wrong type for each kind (int, float, bool, a fixed list), one out of range and
  ``measure.jacobians=bogus``, with no torch imported (a fresh process); a ``model`` key it does
  not know is left to the second stage, which knows the cells' own keys (on the command line the
  driver's key check names it first); the specifications built in Python run the same checks;
- ``measure.jacobians`` is carried in ``MeasureSpec`` and at its default stays out of the
  configuration hash (a run made before the key keeps its hash), ``derived`` changes it;
- both apps compose the same Hydra settings from conf/hydra/rnnlab.yaml (run and sweep
  directories, run names) with their own ``exclude_keys``.
"""
from __future__ import annotations

import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from rnnlab import schema
from rnnlab.checks import ConfigError
from rnnlab.engine import cells
from rnnlab.measure.config import DataSpec, MeasureSpec, ModelSpec, RunSpec
from rnnlab.runs.store import params_hash
from rnnlab.train.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"


def test_a_key_both_apps_take_is_declared_once():
    declared = schema.GROUPS["model"]["hidden_size"]
    assert ModelSpec.SCHEMA["hidden_size"] is declared
    assert TrainConfig.SCHEMA["hidden_size"] is declared
    assert TrainConfig.KEYS["hidden_size"] == ModelSpec.KEYS["hidden_size"] == "model.hidden_size"
    assert schema.GROUPS["train"]["dtype"].choices == schema.GROUPS["measure"]["dtype"].choices


@pytest.mark.parametrize("spec", [ModelSpec, DataSpec, MeasureSpec, TrainConfig])
def test_every_field_is_a_schema_key_or_a_cells_own(spec):
    own = {k for c in cells.CELLS.values() for k in c.keys}
    for f in fields(spec):
        group, _, key = spec.KEYS[f.name].rpartition(".")
        if spec.SCHEMA[f.name].by_cell:
            assert group == "model" and key in own, f.name
        elif group:
            assert schema.GROUPS[group][key] is spec.SCHEMA[f.name], f.name
        else:
            assert spec.SCHEMA[f.name] is schema.SEED


def test_a_cells_own_keys_come_from_the_registry_alone():
    lru = cells.get("lru").keys
    assert lru and not set(lru) & set(schema.GROUPS["model"])
    for spec in (ModelSpec, TrainConfig):
        assert set(lru) <= {f.name for f in fields(spec)}
    elman = yaml.safe_load((CONF / "model" / "elman.yaml").read_text())
    train = yaml.safe_load((CONF / "train.yaml").read_text())["model"]
    assert not set(lru) & (set(elman) | set(train))
    m = ModelSpec(cell="lru", activation="linear", init="ring")
    assert {k: getattr(m, k) for k in lru} == lru
    t = TrainConfig(cell="lru", activation="linear", init="ring")
    assert {k: getattr(t, k) for k in lru} == lru


@pytest.mark.parametrize("app,group,path", [
    ("decay", "model", "model/elman.yaml"), ("decay", "data", "data/random.yaml"),
    ("decay", "measure", "measure/default.yaml"), ("train", "train", "train/default.yaml"),
    ("train", "floss", "floss/default.yaml"),
])
def test_conf_defaults_are_the_schemas(app, group, path):
    conf = yaml.safe_load((CONF / path).read_text())
    conf.pop("defaults", None)
    want = {k: key.default_for(app) for k, key in schema.group(app, group).items()}
    assert conf == want


PROBE = """
import sys
from rnnlab import schema
from rnnlab.checks import ConfigError
for app, cfg in {cases!r}:
    try:
        schema.check(app, cfg)
        print("accepted")
    except ConfigError as err:
        print(str(err).replace("\\n", " NEWLINE "))
print("torch" in sys.modules)
"""

REFUSED = [
    ("decay", {"data": {"seq_lem": 4}}, "unknown key data.seq_lem; did you mean 'data.seq_len'"),
    ("decay", {"mesure": {}}, "unknown key 'mesure'; did you mean 'measure'?"),
    ("decay", {"data": {"seq_len": "long"}}, "data.seq_len='long' is not allowed; it must be an "
                                             "integer >= 1"),
    ("decay", {"data": {"seq_len": 2.5}}, "data.seq_len=2.5 is not allowed"),
    ("decay", {"data": {"batch_size": True}}, "data.batch_size=True is not allowed"),
    ("decay", {"model": {"spectral_radius": "big"}}, "model.spectral_radius='big' is not "
                                                     "allowed; it must be a finite number > 0 "
                                                     "or null"),
    ("decay", {"model": {"gate_bias": "x"}}, "model.gate_bias='x' is not allowed; it must be a "
                                             "finite number"),
    ("decay", {"measure": {"save_tensors": "yes"}}, "measure.save_tensors='yes' is not allowed; "
                                                    "choose one of [true, false]"),
    ("decay", {"measure": {"jacobians": "bogus"}}, "measure.jacobians='bogus' is not allowed; "
                                                   "choose one of ['cell', 'derived']"),
    ("decay", {"measure": {"threads": 0}}, "measure.threads=0 is not allowed"),
    ("decay", {"seed": -1}, "seed=-1 is not allowed"),
    ("train", {"train": {"lr": "fast"}}, "train.lr='fast' is not allowed"),
    ("train", {"train": {"optimizer": "lbfgs"}}, "train.optimizer='lbfgs' is not allowed"),
    ("train", {"floss": {"window": 1}}, "floss.window=1 is not allowed; it must be an integer "
                                        ">= 2"),
    ("train", {"task": {"length": "long"}}, "task.length='long' is not allowed"),
    ("train", {"model": {"input_size": 3}}, "unknown key model.input_size"),  # decay's, not train's
    ("train", {"data": {}}, "unknown key 'data'"),
]
ACCEPTED = [
    ("decay", {"model": {"r_min": "a cell's own key: the cell checks it"}}),
    ("decay", {"model": {"cell": "unknown to the schema: the registry says"}}),
    ("decay", {"measure": {"jacobians": "derived", "max_lag": None}, "sweep": {"name": "x"}}),
    ("train", {"train": {"threads": None, "clip": None}, "model": {"orthogonal": True}}),
]


def test_the_first_stage_refuses_misspelt_and_mistyped_keys_without_torch():
    cases = [(app, cfg) for app, cfg, _ in REFUSED] + ACCEPTED
    out = subprocess.run([sys.executable, "-c", PROBE.format(cases=cases)], capture_output=True,
                         text=True, cwd=ROOT, check=True).stdout.strip().splitlines()
    assert out[-1] == "False", "rnnlab.schema imported torch"
    for (app, cfg, needle), line in zip(REFUSED, out):
        assert line.startswith(needle) and "NEWLINE" not in line, (app, cfg, line)
    assert out[len(REFUSED):-1] == ["accepted"] * len(ACCEPTED)


def test_the_specifications_run_the_same_checks():
    # a model key no cell declares: the second stage, which knows the cells' keys
    with pytest.raises(ConfigError, match=r"^unknown key model.hidden_sise; did you mean"):
        RunSpec.from_dict({"model": {"hidden_sise": 4}})
    with pytest.raises(ConfigError, match=r"^measure.jacobians='bogus' is not allowed"):
        RunSpec(measure=MeasureSpec(jacobians="bogus")).validate()
    with pytest.raises(ConfigError, match=r"^model.hidden_size=0 is not allowed"):
        TrainConfig(hidden_size=0).validate()
    with pytest.raises(ConfigError, match=r"^floss.window=1 is not allowed"):
        TrainConfig(regularizer="flossing", floss_window=1).validate()


def test_measure_jacobians_is_carried_and_at_its_default_leaves_the_hash_alone():
    spec = RunSpec().validate()
    assert spec.measure.jacobians == "cell" and spec.flat()["measure.jacobians"] == "cell"
    before = {k: v for k, v in spec.flat().items() if k != "measure.jacobians"}
    from rnnlab.measure.config import hashed_params, rehash
    assert spec.config_hash() == params_hash(hashed_params(before)) == rehash(before)
    derived = RunSpec(measure=MeasureSpec(jacobians="derived")).validate()
    assert derived.config_hash() != spec.config_hash()


def _composed(name: str, overrides: list[str]):
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        loader = GlobalHydra.instance().hydra.config_loader
        return loader.load_configuration(name, overrides, run_mode=RunMode.MULTIRUN)


def test_both_apps_share_the_hydra_settings_and_keep_their_own_exclusions():
    from omegaconf import OmegaConf

    decay, train = (OmegaConf.to_container(cfg.hydra, resolve=False) for cfg in
                    (_composed("decay", []), _composed("train", ["sweep=trainability"])))
    assert decay["run"] == train["run"] == {"dir": "results/runs/${now:%Y-%m-%d_%H-%M-%S-%f}"}
    assert decay["sweep"] == train["sweep"] == {"dir": "results/${sweep.name}",
                                                "subdir": "${hydra:job.override_dirname}"}
    naming = [cfg["job"]["config"]["override_dirname"] for cfg in (decay, train)]
    assert [(n["kv_sep"], n["item_sep"]) for n in naming] == [("=", ",")] * 2
    assert decay["output_subdir"] is None and train["output_subdir"] is None
    for key in ("job_logging", "hydra_logging"):  # rnnlab's, not Hydra's default
        assert decay[key] == train[key] and decay[key]["root"]["handlers"] == ["console"]
    assert naming[0]["exclude_keys"] == ["sweep", "sweep.name", "hydra/launcher",
                                         "measure.progress", "measure.threads"]
    assert naming[1]["exclude_keys"] == ["sweep", "sweep.name", "hydra/launcher",
                                         "hydra.launcher.n_jobs", "train.progress",
                                         "train.threads"]
    assert train["launcher"]["n_jobs"] == 2  # a sweep file still sets Hydra's own keys
