"""The configuration of one measurement run as plain, validated dataclasses.

Hydra composes ``conf/``; ``RunSpec.from_dict`` turns the resolved config into these values at the
edge, and ``validate`` rejects a bad one before any compute, naming the key and the allowed values
(``rnnlab.checks``). Which cells, activations and inits exist, and which key makes sense with which
cell, comes from the cell registry (``rnnlab.engine.cells``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import torch

from ..checks import ConfigError, choice, flag, integer, known_keys, number, real, suggest
from ..engine import cells
from ..engine.model import ACTIVATIONS, LOSSES
from ..engine.sensitivity import MAX_DENSE_N
from ..runs.store import params_hash

DTYPES = {"float32": torch.float32, "float64": torch.float64}
DEVICES = ("auto", "cpu", "cuda")
MODES = ("pairs", "profile")
# fixed: one draw of the weights for every step (an RNN, quenched); redrawn: every step's weights
# drawn afresh (annealed: what mean-field theory assumes; rnnlab.engine.redrawn)
WEIGHTS = ("fixed", "redrawn")
# the LSTM's measured state: joint (h, c), or h alone with c held fixed (Vogt et al.'s convention)
LSTM_STATES = ("joint", "h")


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


def init_names() -> tuple[str, ...]:
    """Every ``model.init`` some registered cell accepts, in registration order."""
    return tuple(dict.fromkeys(i for c in cells.CELLS.values() for i in c.inits))


def _floats(spec) -> None:
    """An integer given for a real-valued key is that real number (rho=1 is rho=1.0), so both
    spellings give one configuration, one hash and one params record."""
    for f in fields(spec):
        v = getattr(spec, f.name)
        if "float" in str(f.type) and isinstance(v, int) and not isinstance(v, bool):
            object.__setattr__(spec, f.name, float(v))


@dataclass(frozen=True)
class ModelSpec:
    cell: str = "elman"
    activation: str = "tanh"
    hidden_size: int = 64
    input_size: int = 8
    output_size: int = 8
    init: str = "gaussian"
    spectral_radius: float | None = None  # neither this nor gain set: rho = 1
    gain: float | None = None
    input_gain: float = 1.0
    bias_std: float = 0.0
    gate_bias: float = 0.0
    loss: str = "mse"
    # the LRU's ring init (rnnlab.engine.cells.lru); null for every other cell
    r_min: float | None = None
    r_max: float | None = None
    max_phase: float | None = None
    normalize: bool | None = None

    def __post_init__(self):
        _floats(self)
        if self.spectral_radius is None and self.gain is None and self._scaled():
            object.__setattr__(self, "spectral_radius", 1.0)
        cell = cells.CELLS.get(self.cell)
        for key, default in (cell.keys.items() if cell else ()):
            if getattr(self, key) is None:  # a cell's own key left unset takes its default
                object.__setattr__(self, key, default)

    def _scaled(self) -> bool:
        """Whether this init takes a scale key (pytorch and chrono draw at PyTorch's own)."""
        cell = cells.CELLS.get(self.cell)
        return self.init in (cell.scaled_inits if cell else cells.RECURRENT_INITS)

    def validate(self):
        choice("model.cell", self.cell, cells.names())
        choice("model.activation", self.activation, ACTIVATIONS)
        choice("model.init", self.init, init_names())
        choice("model.loss", self.loss, LOSSES)
        self._validate_cell()
        for key in ("hidden_size", "input_size", "output_size"):
            integer(f"model.{key}", getattr(self, key), 1)
        if self.spectral_radius is not None and self.gain is not None:
            raise ConfigError(
                f"model.spectral_radius={self.spectral_radius!r} and model.gain={self.gain!r} "
                "are both set; set one of them (the other null), or neither for rho = 1")
        number("model.spectral_radius", self.spectral_radius, positive=True, optional=True)
        number("model.gain", self.gain, positive=True, optional=True)
        if self.gain is not None and self.init != "gaussian":
            raise ConfigError(f"model.gain={self.gain!r} with model.init={self.init!r}: a gain "
                             "(sigma_w) applies to model.init='gaussian' only; for "
                             f"'{self.init}' set model.spectral_radius and model.gain=null")
        number("model.input_gain", self.input_gain)
        number("model.bias_std", self.bias_std)

    def _validate_cell(self):
        """Keys that make no sense for the chosen cell are errors naming both keys."""
        cell, g = cells.get(self.cell), self.gate_bias
        for other in cells.CELLS.values():
            for key in other.keys:
                value = getattr(self, key)
                if key not in cell.keys and value is not None:
                    raise ConfigError(f"model.{key}={value!r} with model.cell={self.cell!r}: "
                                      f"this key is model.cell={other.name!r}'s; use "
                                      f"model={other.name} or model.{key}=null")
        if cell.check is not None:
            cell.check(self)
        real("model.gate_bias", g)
        if cell.keep_gate is None and g != 0:
            gated = [c.name for c in cells.CELLS.values() if c.keep_gate is not None]
            raise ConfigError(f"model.gate_bias={g!r} with model.cell={self.cell!r}: this cell "
                              f"has no gate; use model.cell in {gated} or model.gate_bias=0")
        if self.activation not in cell.activations:
            raise ConfigError(f"model.activation={self.activation!r} with model.cell="
                              f"{self.cell!r}: this cell's nonlinearities are fixed; choose "
                              f"model.activation in {list(cell.activations)} or use "
                              "model.cell=elman")
        if self.init not in cell.inits:
            takers = [c.name for c in cells.CELLS.values() if self.init in c.inits]
            raise ConfigError(f"model.init={self.init!r} with model.cell={self.cell!r} is not "
                              f"allowed; it applies to model.cell in {takers}")
        if self.init not in cell.scaled_inits:
            for key in ("spectral_radius", "gain"):
                value = getattr(self, key)
                if value is not None:
                    raise ConfigError(
                        f"model.{key}={value!r} with model.init={self.init!r}: this init draws "
                        "the weights at PyTorch's own scale; leave model.spectral_radius and "
                        f"model.gain unset or use model.init in {list(cell.scaled_inits)}")


@dataclass(frozen=True)
class DataSpec:
    seq_len: int = 100
    batch_size: int = 16
    input_std: float = 1.0
    burn_in: int = 0
    h0_std: float = 0.0

    def __post_init__(self):
        _floats(self)

    def validate(self):
        integer("data.seq_len", self.seq_len, 1)
        integer("data.batch_size", self.batch_size, 1)
        integer("data.burn_in", self.burn_in, 0)
        number("data.input_std", self.input_std)
        number("data.h0_std", self.h0_std)


@dataclass(frozen=True)
class MeasureSpec:
    max_lag: int | None = None
    dtype: str = "float64"
    device: str = "auto"
    save_tensors: bool = False
    mode: str = "pairs"
    fit_min_lag: int = 1
    fit_max_lag: int | None = None
    neutral_tol: float = 1e-3
    progress: bool = True
    threads: int | None = None
    lyapunov: bool = False
    jacobian: bool = False
    weight_grad: bool = False
    weights: str = "fixed"
    lstm_state: str = "joint"
    jacobians: str = "cell"
    sensitivity: bool = False

    def __post_init__(self):
        _floats(self)

    def validate(self):
        if self.threads is not None:
            integer("measure.threads", self.threads, 1)
        if self.max_lag is not None:
            integer("measure.max_lag", self.max_lag, 0)
        choice("measure.dtype", self.dtype, DTYPES)
        choice("measure.device", self.device, DEVICES)
        choice("measure.mode", self.mode, MODES)
        integer("measure.fit_min_lag", self.fit_min_lag, 0)
        if self.fit_max_lag is not None:
            integer("measure.fit_max_lag", self.fit_max_lag, self.fit_min_lag + 1)
        number("measure.neutral_tol", self.neutral_tol)
        for key in ("save_tensors", "progress", "lyapunov", "jacobian", "weight_grad",
                    "sensitivity"):
            flag(f"measure.{key}", getattr(self, key))
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("measure.device='cuda' but no CUDA device is available; "
                             "choose one of ['auto', 'cpu'] on this machine")
        choice("measure.weights", self.weights, WEIGHTS)
        choice("measure.lstm_state", self.lstm_state, LSTM_STATES)
        choice("measure.jacobians", self.jacobians, cells.JACOBIANS)
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
    seed: int = 0
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
        return cls(seed=cfg.get("seed", 0), **parts)

    def validate(self) -> RunSpec:
        integer("seed", self.seed, 0)
        self.model.validate()
        self.data.validate()
        self.measure.validate()
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
        if self.measure.lstm_state == "h" and self.model.cell != "lstm":
            raise ConfigError(f"measure.lstm_state='h' with model.cell={self.model.cell!r}: "
                              "only an LSTM has a c to hold fixed; use measure.lstm_state=joint")
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
    keys newer than HASH_BASE out while at their default. Works on the ``params`` of run.json
    too, so runs stored under an earlier hash recipe are recognised by what they computed."""
    defaults = RunSpec().flat()
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


TOP_KEYS = ("seed", "model", "data", "measure", "sweep")


def spec_from_config(cfg) -> RunSpec:
    """A validated RunSpec from a Hydra/OmegaConf config (the ``sweep`` and ``hydra`` keys
    are the runner's, not the measurement's)."""
    from omegaconf import OmegaConf

    plain = {k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v
             for k, v in cfg.items() if k not in ("sweep", "hydra")}
    unknown = sorted(set(plain) - set(TOP_KEYS))
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r}{suggest(unknown[0], TOP_KEYS)} "
                          f"(allowed top-level keys: {', '.join(TOP_KEYS)})")
    return RunSpec.from_dict(plain).validate()
