"""The configuration of one run as plain, validated dataclasses.

Hydra composes ``conf/``; ``RunSpec.from_dict`` turns the resolved config into these values at the
edge, and ``validate`` rejects a bad one before any compute, naming the key and the allowed values.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import torch

from .cells import CELLS
from .model import ACTIVATIONS, LOSSES, check_choice as _choice

INIT_NAMES = ("gaussian", "orthogonal", "identity", "pytorch", "chrono")
# inits that draw the weights themselves and take no scale key: pytorch draws everything as
# torch.nn.GRU / LSTM do; chrono adds Tallec & Ollivier's gate biases to that
_OWN_SCALE = ("pytorch", "chrono")
_INIT_CELLS = {"pytorch": ("gru", "lstm"), "chrono": ("gru", "lstm")}
DTYPES = {"float32": torch.float32, "float64": torch.float64}
DEVICES = ("auto", "cpu", "cuda")
MODES = ("pairs", "profile")


def _int(key, value, low):
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{key}={value!r} is not allowed; it must be an integer >= {low}")


def _number(key, value, positive=False, optional=False):
    if value is None and optional:
        return
    bad = isinstance(value, bool) or not isinstance(value, (int, float)) or value != value
    if bad or value < 0 or (positive and value == 0) or value == float("inf"):
        kind = "a finite number > 0" if positive else "a finite number >= 0"
        raise ValueError(f"{key}={value!r} is not allowed; it must be {kind}"
                         + (" or null" if optional else ""))


@dataclass(frozen=True)
class ModelSpec:
    cell: str = "elman"
    activation: str = "tanh"
    hidden_size: int = 64
    input_size: int = 8
    output_size: int = 8
    init: str = "gaussian"
    spectral_radius: float | None = 1.0
    gain: float | None = None
    input_gain: float = 1.0
    bias_std: float = 0.0
    gate_bias: float = 0.0
    loss: str = "mse"

    def validate(self):
        _choice("model.cell", self.cell, CELLS)
        _choice("model.activation", self.activation, ACTIVATIONS)
        _choice("model.init", self.init, INIT_NAMES)
        _choice("model.loss", self.loss, LOSSES)
        self._validate_cell()
        for key in ("hidden_size", "input_size", "output_size"):
            _int(f"model.{key}", getattr(self, key), 1)
        if self.init not in _OWN_SCALE and (self.spectral_radius is None) == (self.gain is None):
            raise ValueError(
                f"model.spectral_radius={self.spectral_radius!r} and model.gain={self.gain!r}: "
                "set exactly one of them and the other to null")
        _number("model.spectral_radius", self.spectral_radius, positive=True, optional=True)
        _number("model.gain", self.gain, positive=True, optional=True)
        if self.gain is not None and self.init != "gaussian":
            raise ValueError(f"model.gain={self.gain!r} with model.init={self.init!r}: a gain "
                             "(sigma_w) applies to model.init='gaussian' only; for "
                             f"'{self.init}' set model.spectral_radius and model.gain=null")
        _number("model.input_gain", self.input_gain)
        _number("model.bias_std", self.bias_std)

    def _validate_cell(self):
        """Keys that make no sense for the chosen cell are errors naming both keys."""
        g = self.gate_bias
        if isinstance(g, bool) or not isinstance(g, (int, float)) or g != g or abs(g) == float("inf"):
            raise ValueError(f"model.gate_bias={g!r} is not allowed; it must be a finite number")
        if self.cell == "elman":
            if g != 0:
                raise ValueError(f"model.gate_bias={g!r} with model.cell='elman': the Elman RNN "
                                 "has no gate; use model.cell in ['gru', 'lstm', 'minimal'] or "
                                 "model.gate_bias=0")
            if self.init in _OWN_SCALE:
                raise ValueError(f"model.init={self.init!r} with model.cell='elman' is not "
                                 f"allowed; it applies to model.cell in {list(_INIT_CELLS[self.init])}")
            return
        if self.activation != "tanh":
            raise ValueError(f"model.activation={self.activation!r} with model.cell="
                             f"{self.cell!r}: a gated cell's nonlinearities are fixed (sigmoid "
                             "gates, tanh); leave model.activation=tanh or use model.cell=elman")
        if self.init in _OWN_SCALE:
            if self.cell not in _INIT_CELLS[self.init]:
                raise ValueError(f"model.init={self.init!r} with model.cell={self.cell!r} is not "
                                 f"allowed; it applies to model.cell in {list(_INIT_CELLS[self.init])}")
            if self.gain is not None:
                raise ValueError(f"model.gain={self.gain!r} with model.init={self.init!r}: this "
                                 "init draws the weights at PyTorch's own scale; set model.gain=null "
                                 "or use model.init in ['gaussian', 'orthogonal', 'identity']")


@dataclass(frozen=True)
class DataSpec:
    seq_len: int = 100
    batch_size: int = 16
    input_std: float = 1.0
    burn_in: int = 0
    h0_std: float = 0.0

    def validate(self):
        _int("data.seq_len", self.seq_len, 1)
        _int("data.batch_size", self.batch_size, 1)
        _int("data.burn_in", self.burn_in, 0)
        _number("data.input_std", self.input_std)
        _number("data.h0_std", self.h0_std)


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

    def validate(self):
        if self.threads is not None:
            _int("measure.threads", self.threads, 1)
        if self.max_lag is not None:
            _int("measure.max_lag", self.max_lag, 0)
        _choice("measure.dtype", self.dtype, DTYPES)
        _choice("measure.device", self.device, DEVICES)
        _choice("measure.mode", self.mode, MODES)
        _int("measure.fit_min_lag", self.fit_min_lag, 0)
        if self.fit_max_lag is not None:
            _int("measure.fit_max_lag", self.fit_max_lag, self.fit_min_lag + 1)
        _number("measure.neutral_tol", self.neutral_tol)
        for key in ("save_tensors", "progress", "lyapunov", "jacobian"):
            if not isinstance(getattr(self, key), bool):
                raise ValueError(f"measure.{key}={getattr(self, key)!r} is not allowed; "
                                 "choose one of [true, false]")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ValueError("measure.device='cuda' but no CUDA device is available; "
                             "choose one of ['auto', 'cpu'] on this machine")

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
    def from_dict(cls, cfg: dict) -> "RunSpec":
        """Build from a plain nested dict (a resolved Hydra config); unknown keys are errors."""
        parts = {}
        for name, spec in (("model", ModelSpec), ("data", DataSpec), ("measure", MeasureSpec)):
            given = dict(cfg.get(name) or {})
            known = {f.name for f in fields(spec)}
            unknown = sorted(set(given) - known)
            if unknown:
                raise ValueError(f"unknown key {name}.{unknown[0]}; allowed: "
                                 f"{sorted(f'{name}.{k}' for k in known)}")
            parts[name] = spec(**given)
        return cls(seed=cfg.get("seed", 0), **parts)

    def validate(self) -> "RunSpec":
        _int("seed", self.seed, 0)
        self.model.validate()
        self.data.validate()
        self.measure.validate()
        return self

    def flat(self) -> dict:
        """Flat ``{"model.hidden_size": 64, ...}`` of every scalar, for run.json and tables."""
        out = {"seed": self.seed}
        for name in ("model", "data", "measure"):
            out.update({f"{name}.{k}": v for k, v in asdict(getattr(self, name)).items()})
        return out
