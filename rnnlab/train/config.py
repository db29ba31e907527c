"""The configuration of one training run (``experiments/train.py``), validated before any compute
with the vocabulary of ``rnnlab.checks``.

Cells are the registered ones that have a ``torch.nn`` module (``rnnlab.engine.cells``); the
recurrent inits ``gaussian``, ``orthogonal``, ``identity`` set each gate's recurrent block as the
measurement runs do; Pascanu et al. 2013's inits are Elman-only (``rnnlab.train.loop``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch

from .. import tasks
from ..checks import ConfigError, choice, flag, integer, number, suggest
from ..engine import cells
from ..engine.cells import lru as lru_cell

ACTIVATIONS = ("tanh", "relu", "sigmoid", "linear")  # linear: the LRU's recurrence only
RECURRENT_INITS = cells.RECURRENT_INITS
# Pascanu et al. 2013: (std of every weight, activation, sparse W rescaled to rho 0.95)
PASCANU_INITS = {"pascanu_sigmoid": (0.01, "sigmoid", False),
                 "pascanu_basic_tanh": (0.1, "tanh", False),
                 "pascanu_smart_tanh": (0.01, "tanh", True)}
INITS = ("pytorch",) + RECURRENT_INITS + tuple(PASCANU_INITS) + ("ring",)  # ring: LRU only
# the LRU's own model.* keys (its cell's keys): null on every other cell; on model.cell=lru a
# null takes the engine's default (rnnlab.engine.cells.lru.DEFAULTS, as conf/arch/lru.yaml)
LRU_KEYS = tuple(lru_cell.DEFAULTS)
OPTIMIZERS = {"sgd": torch.optim.SGD, "rmsprop": torch.optim.RMSprop, "adam": torch.optim.Adam}
DTYPES = {"float32": torch.float32, "float64": torch.float64}
# train.regularizer: none, or Pascanu et al. 2013's Omega (rnnlab.train.omega)
REGULARIZERS = ("none", "omega", "flossing")
FLOSS_KEYS = ("k", "window", "discard", "pre_steps", "every", "steps", "times", "lr", "run_in")
DEFAULT_REG_WEIGHT = 2.0  # alpha of Pascanu's RNN.py (state['alpha'] = 2.)


def cell_names() -> tuple[str, ...]:
    """The cells training offers: every registered cell with a trainable module
    (``Cell.module``)."""
    return tuple(c.name for c in cells.CELLS.values() if c.module is not None)


@dataclass(frozen=True)
class TrainConfig:
    """One training run. Field ``f`` is the CLI key ``KEYS[f]`` in error messages."""

    task: str = "adding_pascanu"
    length: int = 50
    cell: str = "elman"
    activation: str = "tanh"
    hidden_size: int = 64
    init: str = "pytorch"
    spectral_radius: float | None = None
    gain: float | None = None
    optimizer: str = "adam"
    lr: float = 1e-3
    batch_size: int = 32
    steps: int = 1000
    clip: float | None = 1.0
    eval_every: int = 100
    eval_size: int = 1000
    test_size: int = 10000
    eval_batch: int = 1000
    probe_size: int = 32
    seed: int = 0
    dtype: str = "float32"
    # keys added after the first hashed configuration (HASH_BASE): each default reproduces the
    # earlier behaviour, and the hash leaves a key out while it holds its default
    orthogonal: bool = False
    lyap_k: int = 0
    regularizer: str = "none"
    reg_weight: float = DEFAULT_REG_WEIGHT
    # gradient flossing (train.regularizer=flossing; the floss group, rnnlab.train.flossing):
    # Engelken 2023's README example, k excepted (his 75 of 80 units)
    floss_k: int = 16
    floss_window: int = 55
    floss_discard: int = 16  # 10 + ceil(55 / 10)
    floss_pre_steps: int = 500
    floss_every: int = 100
    floss_steps: int = 500
    floss_times: int = 2
    floss_lr: float = 1e-3
    # steps from h = 0 before each flossing window (0: the window starts at h = 0, his code)
    floss_run_in: int = 0
    # the LRU (model.cell=lru, rnnlab.engine.cells.lru): null on every other cell
    r_min: float | None = None
    r_max: float | None = None
    max_phase: float | None = None
    normalize: bool | None = None

    def __post_init__(self):
        # an LRU key left null takes the engine's default, so run.json records the value used
        if self.cell == "lru":
            for key in LRU_KEYS:
                if getattr(self, key) is None:
                    object.__setattr__(self, key, lru_cell.DEFAULTS[key])

    KEYS = {"task": "task", "length": "task.length", "seed": "seed",
            **{k: f"model.{k}" for k in ("cell", "activation", "hidden_size", "init",
                                          "spectral_radius", "gain", "orthogonal",
                                          *LRU_KEYS)},
            **{k: f"train.{k}" for k in ("optimizer", "lr", "batch_size", "steps", "clip",
                                          "eval_every", "eval_size", "test_size", "eval_batch",
                                          "probe_size", "dtype", "lyap_k", "regularizer",
                                          "reg_weight")},
            **{f"floss_{k}": f"floss.{k}" for k in FLOSS_KEYS}}

    def validate(self) -> TrainConfig:
        """Reject a bad configuration before any compute, naming the key and the allowed values."""
        k = self.KEYS
        tasks.spec(self.task).check_length(self.length)
        choice(k["cell"], self.cell, cell_names())
        choice(k["activation"], self.activation, ACTIVATIONS)
        choice(k["init"], self.init, INITS)
        choice(k["optimizer"], self.optimizer, OPTIMIZERS)
        choice(k["dtype"], self.dtype, DTYPES)
        self._validate_lru()
        if self.cell not in ("elman", "lru") and self.activation != "tanh":
            raise ConfigError(f"{k['activation']}={self.activation!r} with {k['cell']}="
                             f"{self.cell!r}: gated cells have fixed nonlinearities; "
                             "allowed: model.activation='tanh'")
        if self.init in PASCANU_INITS:
            needs = PASCANU_INITS[self.init][1]
            if self.cell != "elman" or self.activation != needs:
                raise ConfigError(f"{k['init']}={self.init!r} is Pascanu's Elman init with "
                                 f"{needs} units; allowed with it: model.cell='elman', "
                                 f"model.activation={needs!r}")
        self._validate_scale()
        for key in ("hidden_size", "batch_size", "eval_every", "eval_size", "test_size",
                    "eval_batch", "probe_size"):
            integer(k[key], getattr(self, key), 1)
        integer(k["steps"], self.steps, 0)
        integer(k["seed"], self.seed, 0)
        number(k["lr"], self.lr, positive=True)
        number(k["clip"], self.clip, positive=True, optional=True)
        self._validate_remedies()
        return self

    def _validate_remedies(self):
        """model.orthogonal, train.lyap_k, train.regularizer and train.reg_weight."""
        k = self.KEYS
        flag(k["orthogonal"], self.orthogonal)
        integer(k["lyap_k"], self.lyap_k, 0)
        if self.lyap_k > self.hidden_size:
            raise ConfigError(f"{k['lyap_k']}={self.lyap_k} is not allowed; it must be at most "
                              f"model.hidden_size={self.hidden_size} (0 = off)")
        if self.orthogonal and (self.cell != "elman" or self.activation not in ("tanh", "relu")
                                or self.init != "orthogonal" or self.rho != 1.0):
            raise ConfigError(
                f"{k['orthogonal']}=true with model.cell={self.cell!r}, model.activation="
                f"{self.activation!r}, model.init={self.init!r}, model.spectral_radius="
                f"{self.spectral_radius!r}: an orthogonal recurrence needs model.cell='elman', "
                "model.activation 'tanh' or 'relu', model.init='orthogonal' and "
                "model.spectral_radius null or 1 (arch=orthogonal_tanh)")
        choice(k["regularizer"], self.regularizer, REGULARIZERS)
        number(k["reg_weight"], self.reg_weight)
        if self.regularizer != "omega" and self.reg_weight != DEFAULT_REG_WEIGHT:
            raise ConfigError(f"{k['reg_weight']}={self.reg_weight!r} with {k['regularizer']}="
                              f"{self.regularizer!r}: it weights Omega; set "
                              "train.regularizer='omega' or leave train.reg_weight at "
                              f"{DEFAULT_REG_WEIGHT}")
        self._validate_flossing()
        if self.regularizer == "omega" and self.orthogonal:
            raise ConfigError(f"{k['regularizer']}='omega' with model.orthogonal=true: "
                              "Pascanu's Omega is implemented for a free recurrence only; "
                              "allowed with it: model.orthogonal=false")

    def _validate_lru(self):
        """model.cell=lru goes with model.activation=linear and model.init=ring (arch=lru), the
        LRU keys in range (the engine's check); those keys, linear and ring on no other cell;
        no model.orthogonal (the LRU has no W_hh)."""
        k = self.KEYS
        if self.cell != "lru":
            given = [key for key in LRU_KEYS if getattr(self, key) is not None]
            if given:
                raise ConfigError(f"{k[given[0]]}={getattr(self, given[0])!r} with "
                                  f"model.cell={self.cell!r}: the LRU keys apply to "
                                  "model.cell='lru' only (arch=lru); leave them null")
            for key, value in (("activation", "linear"), ("init", "ring")):
                if getattr(self, key) == value:
                    raise ConfigError(f"{k[key]}={value!r} with model.cell={self.cell!r}: it "
                                      "is the LRU's; allowed with it: model.cell='lru'")
            return
        if self.activation != "linear" or self.init != "ring":
            raise ConfigError(f"model.cell='lru' with model.activation={self.activation!r}, "
                              f"model.init={self.init!r}: the LRU takes model.activation="
                              "'linear', model.init='ring' (arch=lru)")
        lru_cell.check(_LRUKeys(self.r_min, self.r_max, self.max_phase, self.normalize))
        if self.orthogonal:
            raise ConfigError(f"{k['orthogonal']}=True with model.cell='lru': the LRU has no "
                              "W_hh to keep orthogonal; not allowed with the LRU")

    def _validate_scale(self):
        rho, gain, k = self.spectral_radius, self.gain, self.KEYS
        number(k["spectral_radius"], rho, positive=True, optional=True)
        number(k["gain"], gain, positive=True, optional=True)
        if self.init == "gaussian" and (rho is None) == (gain is None):
            raise ConfigError(f"model.spectral_radius={rho!r} and model.gain={gain!r} with "
                             "model.init='gaussian': set exactly one of them, the other null")
        if self.init in ("orthogonal", "identity") and gain is not None:
            raise ConfigError(f"model.gain={gain!r} with model.init={self.init!r}: a gain applies "
                             "to model.init='gaussian' only; set model.spectral_radius instead")
        if self.init not in RECURRENT_INITS and (rho is not None or gain is not None):
            raise ConfigError(f"model.spectral_radius={rho!r}, model.gain={gain!r} with "
                             f"model.init={self.init!r}: they apply to {list(RECURRENT_INITS)} "
                             "only; set both to null")

    def _validate_flossing(self):
        """The floss group: set only with train.regularizer=flossing, each value in range."""
        k = self.KEYS
        defaults = TrainConfig.__dataclass_fields__
        if self.regularizer != "flossing":
            for name in (f"floss_{key}" for key in FLOSS_KEYS):
                if getattr(self, name) != defaults[name].default:
                    raise ConfigError(f"{k[name]}={getattr(self, name)!r} with train.regularizer="
                                      f"{self.regularizer!r}: the floss keys apply to "
                                      "train.regularizer='flossing' only")
            return
        for name, low in (("floss_k", 1), ("floss_window", 2), ("floss_discard", 0),
                          ("floss_pre_steps", 0), ("floss_every", 1), ("floss_steps", 0),
                          ("floss_times", 0), ("floss_run_in", 0)):
            integer(k[name], getattr(self, name), low)
        number(k["floss_lr"], self.floss_lr, positive=True)
        if self.floss_k > self.hidden_size:
            raise ConfigError(f"floss.k={self.floss_k} is not allowed; it must be at most "
                              f"model.hidden_size={self.hidden_size}")
        if self.floss_window <= self.floss_discard:
            raise ConfigError(f"floss.window={self.floss_window} is not allowed; it must be "
                              f"longer than floss.discard={self.floss_discard}")

    @property
    def rho(self) -> float | None:
        """The spectral radius actually used (orthogonal and identity default to 1)."""
        if self.init in ("orthogonal", "identity") and self.spectral_radius is None:
            return 1.0
        return self.spectral_radius


@dataclass(frozen=True)
class _LRUKeys:
    """The model.* keys ``rnnlab.engine.cells.lru.check`` reads (the LRU has no bias)."""

    r_min: float
    r_max: float
    max_phase: float
    normalize: bool
    bias_std: float = 0.0


TOP_KEYS = ("seed", "task", "model", "train", "floss", "sweep")

# runner settings: not part of the configuration (nor of its hash)
RUNNER_KEYS = ("progress", "threads")
MODEL_KEYS = ("cell", "activation", "hidden_size", "init", "spectral_radius", "gain",
              "orthogonal", *LRU_KEYS)
TRAIN_KEYS = tuple(f.name for f in fields(TrainConfig)
                   if f.name not in ("task", "length", "seed") + MODEL_KEYS
                   and not f.name.startswith("floss_"))

# Every field of the first hashed configuration. A field added since then is left out of the
# hash while it holds its default, so the runs already under results/ keep their hash and are
# still recognised as finished (docs/architecture.md, "A new sweep axis").
HASH_BASE = frozenset((
    "task", "length", "cell", "activation", "hidden_size", "init", "spectral_radius", "gain",
    "optimizer", "lr", "batch_size", "steps", "clip", "eval_every", "eval_size", "test_size",
    "eval_batch", "probe_size", "seed", "dtype"))


def hashed_params(params: dict) -> dict:
    """The part of a run's flat configuration that its hash covers: the HASH_BASE fields, and
    every later field that differs from its default."""
    defaults = asdict(TrainConfig())
    return {k: v for k, v in params.items() if k in HASH_BASE or v != defaults.get(k)}


def _section(plain: dict, name: str, allowed) -> dict:
    part = plain.get(name) or {}
    if not isinstance(part, dict):
        raise ConfigError(f"{name}={part!r} is not allowed; it must be a group of keys")
    for key in part:
        if key not in allowed:
            known = [f"{name}.{k}" for k in allowed]
            raise ConfigError(f"unknown key {name}.{key!r}{suggest(f'{name}.{key}', known)} "
                              f"(allowed: {', '.join(known)})")
    return part


def config_from_plain(plain: dict) -> tuple[TrainConfig, dict]:
    """(validated TrainConfig, runner settings) from the plain config of ``conf/train.yaml``."""
    unknown = sorted(set(plain) - set(TOP_KEYS) - {"hydra"})
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r}{suggest(unknown[0], TOP_KEYS)} "
                          f"(allowed top-level keys: {', '.join(TOP_KEYS)})")
    task = _section(plain, "task", ("name", "length"))
    model = _section(plain, "model", MODEL_KEYS)
    tr = dict(_section(plain, "train", TRAIN_KEYS + RUNNER_KEYS))
    runner = {k: tr.pop(k) for k in RUNNER_KEYS if k in tr}
    floss = {f"floss_{k}": v for k, v in _section(plain, "floss", FLOSS_KEYS).items()}
    try:
        cfg = TrainConfig(task=task.get("name"), length=task.get("length"),
                          seed=plain.get("seed", 0), **model, **tr, **floss).validate()
        if runner.get("threads") is not None:
            integer("train.threads", runner["threads"], 1)
    except TypeError as err:  # a value of the wrong kind for the dataclass
        raise ConfigError(str(err)) from None
    return cfg, runner


def spec_from_config(cfg) -> tuple[TrainConfig, dict]:
    """The validated (TrainConfig, runner settings) of a Hydra/OmegaConf config."""
    from omegaconf import OmegaConf

    plain = {k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v
             for k, v in cfg.items() if k not in ("sweep", "hydra")}
    return config_from_plain(plain)
