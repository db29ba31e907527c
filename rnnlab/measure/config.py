"""The configuration of one measurement run (``experiments/decay.py``) as validated dataclasses.

The keys of the ``model``, ``data`` and ``measure`` groups are declared once in ``rnnlab.schema``
(shared with the training app), and each group's specification here is a frozen dataclass made
from them, with every registered cell's own ``model`` keys (``Cell.keys``) beside. Hydra composes
``conf/``; ``spec_from_config`` checks the plain config against the schema (before torch, as the
driver also does), ``RunSpec.from_dict`` turns it into these values, and ``validate`` rejects a
bad one before any compute, naming the key and the allowed values. What is this app's own: the
checks that need the cell registry (which cells, activations, inits and losses exist, which key
makes sense with which cell) and those across keys; the configuration hash of a run.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import torch

from .. import schema
from ..checks import ConfigError, choice, integer, known_keys
from ..engine import attention, cells
from ..engine.model import ACTIVATIONS, LOSSES
from ..engine.sensitivity import MAX_DENSE_N
from ..runs.store import params_hash

DTYPES = {name: getattr(torch, name) for name in schema.GROUPS["measure"]["dtype"].choices}
# the cell of a run whose params have no model.cell (made before the key existed): the default
DEFAULT_CELL = schema.default("model.cell")


def measured_state(cell: str, lstm_state: str = "joint") -> str:
    """The state a run measured, in words, from its cell's ``state_parts``: "h" for a one-part
    state, "(h, c)" for the joint state, "h alone (c held fixed)" with ``measure.lstm_state=h``.
    A name the registry does not hold (a run from elsewhere) reads as h."""
    parts = cells.CELLS[cell].state_parts if cell in cells.CELLS else ("h",)
    if len(parts) == 1:
        return parts[0]
    if lstm_state == "h":
        return f"{parts[0]} alone ({', '.join(parts[1:])} held fixed)"
    return f"({', '.join(parts)})"


def lags_file(target: str | None) -> str:
    """The lag table of a run: lags.parquet (the state's, ``measure.target=state``, and every
    run made before the key) or input_lags.parquet (``measure.target=input``)."""
    return "input_lags.parquet" if target == "input" else "lags.parquet"


def init_names() -> tuple[str, ...]:
    """Every ``model.init`` some registered cell accepts, in registration order."""
    return tuple(dict.fromkeys(i for c in cells.CELLS.values() for i in c.inits))


def _keys(name: str) -> dict:
    """The fields of group ``name``'s specification: its keys of decay.py (``rnnlab.schema``)
    and, for ``model``, every registered cell's own keys (``Cell.keys``), null unless that cell."""
    keys = {k: (f"{name}.{k}", key) for k, key in schema.group("decay", name).items()}
    if name == "model":
        for cell in cells.CELLS.values():
            for k, value in cell.keys.items():
                keys.setdefault(k, (f"model.{k}", schema.cell_key(value)))
    return keys


def _floats(spec) -> None:
    """An integer given for a real-valued key is that real number (rho=1 is rho=1.0), so both
    spellings give one configuration, one hash and one params record."""
    for f in fields(spec):
        v = getattr(spec, f.name)
        if spec.SCHEMA[f.name].kind is float and isinstance(v, int) and not isinstance(v, bool):
            object.__setattr__(spec, f.name, float(v))


@schema.spec(_keys("model"), "decay")
class ModelSpec:
    """The ``model`` group: the network a run draws (``rnnlab.measure.networks``)."""

    def __post_init__(self):
        _floats(self)
        if self.spectral_radius is None and self.gain is None and self._scaled():
            object.__setattr__(self, "spectral_radius", 1.0)  # neither set: rho = 1
        cell = cells.CELLS.get(self.cell)
        for key, default in (cell.keys.items() if cell else ()):
            if getattr(self, key) is None:  # a cell's own key left unset takes its default
                object.__setattr__(self, key, default)

    def _scaled(self) -> bool:
        """Whether this init takes a scale key (pytorch and chrono draw at PyTorch's own)."""
        cell = cells.CELLS.get(self.cell)
        return self.init in (cell.scaled_inits if cell else cells.RECURRENT_INITS)

    def validate(self):
        schema.check_spec(self)
        if self.cell == attention.NAME:
            if schema.stacked(self):
                raise ConfigError(f"{schema.stack_line(self)} with model.cell='attention': the "
                                  "attention layer is measured alone; leave model.layers=1, "
                                  "model.norm=none, model.residual=false")
            return
        choice("model.cell", self.cell, cells.names() + (attention.NAME,))
        if self.query_gain != schema.default("model.query_gain"):
            raise ConfigError(f"model.query_gain={self.query_gain!r} with model.cell="
                              f"{self.cell!r}: it scales the attention layer's W_Q; use "
                              "model=attention or model.query_gain=1.0")
        choice("model.activation", self.activation, ACTIVATIONS)
        choice("model.init", self.init, init_names())
        choice("model.loss", self.loss, LOSSES)
        cell = cells.get(self.cell)
        schema.check_cell(self, cell, cells.CELLS, lambda c: c.inits, lambda name: f"model={name}")
        if cell.keep_gate is None and self.gate_bias != 0:
            gated = [c.name for c in cells.CELLS.values() if c.keep_gate is not None]
            raise ConfigError(f"model.gate_bias={self.gate_bias!r} with model.cell={self.cell!r}: "
                              f"this cell has no gate; use model.cell in {gated} or "
                              "model.gate_bias=0")
        if self.spectral_radius is not None and self.gain is not None:
            raise ConfigError(
                f"model.spectral_radius={self.spectral_radius!r} and model.gain={self.gain!r} "
                "are both set; set one of them (the other null), or neither for rho = 1")
        if self.gain is not None and self.init != "gaussian":
            raise ConfigError(f"model.gain={self.gain!r} with model.init={self.init!r}: a gain "
                             "(sigma_w) applies to model.init='gaussian' only; for "
                             f"'{self.init}' set model.spectral_radius and model.gain=null")


@schema.spec(_keys("data"), "decay")
class DataSpec:
    """The ``data`` group: the inputs and targets of a run."""

    def __post_init__(self):
        _floats(self)

    def validate(self):
        schema.check_spec(self)


# what measure.target=input cannot combine with: the state's own measurements (the Lyapunov
# QR, jacobian.parquet, the weight gradient by lag, the sensitivity, h alone), the annealed
# network, the O(T) profile of the last loss and the choice of the state's step maps
INPUT_REFUSES = (("weights", "redrawn"), ("lyapunov", True), ("jacobian", True),
                 ("weight_grad", True), ("sensitivity", True), ("lstm_state", "h"),
                 ("mode", "profile"), ("jacobians", "derived"))


@schema.spec(_keys("measure"), "decay")
class MeasureSpec:
    """The ``measure`` group: what is measured, and how."""

    def __post_init__(self):
        _floats(self)

    def validate(self):
        schema.check_spec(self)
        if self.fit_max_lag is not None:
            integer("measure.fit_max_lag", self.fit_max_lag, self.fit_min_lag + 1)
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("measure.device='cuda' but no CUDA device is available; "
                             "choose one of ['auto', 'cpu'] on this machine")
        if self.lstm_state == "h" and (self.weights == "redrawn" or self.weight_grad):
            key = "measure.weights='redrawn'" if self.weights == "redrawn" \
                else "measure.weight_grad=true"
            raise ConfigError(f"measure.lstm_state='h' with {key} is not supported; use "
                              "measure.lstm_state=joint")
        if self.sensitivity and (self.weights == "redrawn" or self.lstm_state == "h"):
            key = "measure.weights='redrawn'" if self.weights == "redrawn" \
                else "measure.lstm_state='h'"
            raise ConfigError(f"measure.sensitivity=true with {key} is not supported: the "
                              "sensitivity is that of one fixed network's whole state; use "
                              "measure.weights=fixed and measure.lstm_state=joint")
        if self.weight_grad and self.weights == "redrawn":
            raise ConfigError("measure.weight_grad=true with measure.weights='redrawn': every "
                              "step has its own W, so there is no one dL/dW to split by lag; "
                              "use measure.weights=fixed")
        if self.jacobians == "derived" and self.weights == "redrawn":
            raise ConfigError("measure.jacobians='derived' with measure.weights='redrawn': the "
                              "redrawn network is built from each step's own weights through "
                              "the cell's hand-written maps; use measure.jacobians=cell")
        if self.target == "input":
            for key, value in INPUT_REFUSES:
                if getattr(self, key) == value:
                    shown = str(value).lower() if isinstance(value, bool) else repr(value)
                    raise ConfigError(f"measure.target='input' with measure.{key}={shown}: "
                                      "the input target measures dy_t/dx_k of one fixed "
                                      "network at every pair by autograd, not the state's "
                                      "maps; use measure.target=state for it")
        if self.weight_grad and self.mode != "pairs":
            raise ConfigError(f"measure.weight_grad=true with measure.mode={self.mode!r}: the "
                              "weight gradient by lag needs every pair; use measure.mode=pairs")

    def torch_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]


@dataclass(frozen=True)
class RunSpec:
    """One measurement: the seed and the three groups (``flat`` is its record in run.json)."""

    seed: int = schema.SEED.default
    model: ModelSpec = field(default_factory=ModelSpec)
    data: DataSpec = field(default_factory=DataSpec)
    measure: MeasureSpec = field(default_factory=MeasureSpec)

    @classmethod
    def from_dict(cls, cfg: dict) -> RunSpec:
        """Build from a plain nested dict (a resolved Hydra config); unknown keys are errors."""
        parts = {}
        for name, spec in (("model", ModelSpec), ("data", DataSpec), ("measure", MeasureSpec)):
            given = dict(cfg.get(name) or {})
            known_keys(name, given, [f.name for f in fields(spec)])
            parts[name] = spec(**given)
        return cls(seed=cfg.get("seed", schema.SEED.default), **parts)

    def validate(self) -> RunSpec:
        schema.SEED.check("seed", self.seed)
        self.model.validate()
        self.data.validate()
        self.measure.validate()
        if self.model.cell == attention.NAME:
            if self.measure.target != "input":
                raise ConfigError("measure.target='state' with model.cell='attention': the "
                                  "attention layer has no state; use measure.target=input")
            if self.data.burn_in:
                raise ConfigError(f"data.burn_in={self.data.burn_in} with model.cell="
                                  "'attention': it has no state to run in; use data.burn_in=0")
            return self
        cell = cells.get(self.model.cell)
        for key, value, reason in cell.refuses:
            if getattr(self.measure, key) == value:
                shown = str(value).lower() if isinstance(value, bool) else repr(value)
                raise ConfigError(f"measure.{key}={shown} with model.cell="
                                  f"{self.model.cell!r} is not supported: {reason}")
        if self.measure.sensitivity and cell.sensitivity is None \
                and self.model.hidden_size > MAX_DENSE_N:
            raise ConfigError(f"measure.sensitivity=true with model.hidden_size="
                              f"{self.model.hidden_size} and model.cell={self.model.cell!r}: "
                              f"forward mode over a dense N x N matrix costs O(T B N^4); "
                              f"allowed up to model.hidden_size={MAX_DENSE_N}")
        schema.check_stack(self.model, cell, self.model.input_size)
        if schema.stacked(self.model):
            for key, value in (("weights", "redrawn"), ("lstm_state", "h"),
                               ("sensitivity", True), ("weight_grad", True)):
                if getattr(self.measure, key) == value:
                    shown = str(value).lower() if isinstance(value, bool) else repr(value)
                    raise ConfigError(f"measure.{key}={shown} with {schema.stack_line(self.model)}"
                                      ": a stack is measured through its derived step "
                                      "Jacobians, one fixed network's whole state; use "
                                      "model.layers=1, model.norm=none, model.residual=false")
        if self.measure.lstm_state == "h" and len(cell.state_parts) == 1:
            raise ConfigError(f"measure.lstm_state='h' with model.cell={self.model.cell!r}: "
                              f"this cell's state is {cell.state_parts[0]} alone, with nothing "
                              "to hold fixed; use measure.lstm_state=joint")
        return self

    def flat(self) -> dict:
        """Flat ``{"model.hidden_size": 64, ...}`` of every scalar, for run.json and tables."""
        out = {"seed": self.seed}
        for name in ("model", "data", "measure"):
            out.update({f"{name}.{k}": v for k, v in asdict(getattr(self, name)).items()})
        return out

    def config_hash(self) -> str:
        """The hash of what determines this run's numbers and files (``hashed_params``)."""
        return params_hash(hashed_params(self.flat()))


# keys that change how a run is shown or scheduled, not what it computes
UNHASHED = ("measure.progress", "measure.threads")
# Every key of the first hashed configuration. A key added since then is left out of the hash
# while it holds its default (a new key's default must reproduce the earlier behaviour), so
# adding a key never invalidates finished runs; a key of this list is always hashed by value.
HASH_BASE = frozenset((
    "seed", "model.activation", "model.hidden_size", "model.input_size", "model.output_size",
    "model.init", "model.spectral_radius", "model.gain", "model.input_gain", "model.bias_std",
    "model.loss", "data.seq_len", "data.batch_size", "data.input_std", "data.burn_in",
    "data.h0_std", "measure.max_lag", "measure.dtype", "measure.device", "measure.save_tensors",
    "measure.mode", "measure.fit_min_lag", "measure.fit_max_lag", "measure.neutral_tol",
    "measure.lyapunov", "measure.jacobian"))


def hashed_params(flat: dict) -> dict:
    """The part of a flat configuration that the hash covers: display and scheduling keys out,
    keys newer than HASH_BASE out while at their default (a cell's own key added since its runs,
    ``Cell.keys_since``, at the cell's default). Works on the ``params`` of run.json too, so runs
    stored under an earlier hash recipe are recognised by what they computed."""
    defaults = RunSpec().flat()
    cell = cells.CELLS.get(flat.get("model.cell"))
    for k in (cell.keys_since if cell else ()):
        defaults[f"model.{k}"] = cell.keys[k]
    return {k: v for k, v in flat.items()
            if k not in UNHASHED and (k in HASH_BASE or k not in defaults or v != defaults[k])}


def rehash(params: dict) -> str:
    """config_hash of a stored ``params`` record, normalised as a fresh run's would be."""
    nested: dict = {}
    for key, value in params.items():
        head, _, tail = key.partition(".")
        if tail:
            nested.setdefault(head, {})[tail] = value
        else:
            nested[head] = value
    return RunSpec.from_dict(nested).config_hash()


def spec_from_config(cfg) -> RunSpec:
    """A validated RunSpec from a Hydra/OmegaConf config (the ``sweep`` and ``hydra`` keys
    are the runner's, not the measurement's)."""
    plain = schema.plain(cfg)
    schema.check("decay", plain)
    return RunSpec.from_dict(plain).validate()
