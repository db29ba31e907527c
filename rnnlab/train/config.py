"""The configuration of one training run (``experiments/train.py``): ``TrainConfig``, the flat
record of the keys of the ``task``, ``model``, ``train`` and ``floss`` groups this app takes,
declared once in ``rnnlab.schema`` (with the measurement app), validated before any compute.

What is this app's own: the flat layout (``task.length`` is the field ``length``, ``floss.k`` is
``floss_k``, in ``HASH_BASE``'s order), the checks that need a registry, and the rules of the
training loop. Its cells are the registered cells with a trainable module (``Cell.module``); what
a cell takes comes from the cell registry (``rnnlab.engine.cells``): its activations, its own keys
and their check, and its inits. A cell with recurrent weights takes the recurrent inits
``gaussian``, ``orthogonal``, ``identity`` (set on each gate's recurrent block as the measurement
runs do), ``pytorch`` (the module's own draw) and, where its recurrence is one square matrix
(``Cell.square_w``), Pascanu et al. 2013's inits and ``model.orthogonal``; a cell without one (the
LRU's block) is drawn by the engine cell's own ``draw``.
"""
from __future__ import annotations

import numpy as np
import torch

from .. import schema, tasks
from ..checks import ConfigError, choice, known_keys
from ..engine import cells
from ..engine.model import ACTIVATIONS
from .archs import ARCHS

RECURRENT_INITS = cells.RECURRENT_INITS
# Pascanu et al. 2013: (std of every weight, activation, sparse W rescaled to rho 0.95)
PASCANU_INITS = {"pascanu_sigmoid": (0.01, "sigmoid", False),
                 "pascanu_basic_tanh": (0.1, "tanh", False),
                 "pascanu_smart_tanh": (0.01, "tanh", True)}
TORCH_INIT = "pytorch"  # every weight and bias as the cell's torch.nn module draws them
# the nonlinearities of torch.nn.RNN, and of the modules training builds (train.loop.modules:
# nn.RNN and its logistic-sigmoid twin SigmoidRNN)
RNN_ACTIVATIONS = ("tanh", "relu")
MODULE_ACTIVATIONS = RNN_ACTIVATIONS + ("sigmoid",)
OPTIMIZERS = {"sgd": torch.optim.SGD, "rmsprop": torch.optim.RMSprop, "adam": torch.optim.Adam}
DTYPES = {name: getattr(torch, name) for name in schema.GROUPS["train"]["dtype"].choices}
DEFAULT_REG_WEIGHT = schema.default("train.reg_weight", "train")
RUNNER_KEYS = ("progress", "threads")  # runner settings: not part of the configuration

# Every field of the first hashed configuration, in its order. A field added since then is left
# out of the hash while it holds its default, so the runs already under results/ keep their hash
# and are still recognised as finished (docs/architecture.md, "A new sweep axis").
HASH_BASE = ("task", "length", "cell", "activation", "hidden_size", "init", "spectral_radius",
             "gain", "optimizer", "lr", "batch_size", "steps", "clip", "eval_every", "eval_size",
             "test_size", "eval_batch", "probe_size", "seed", "dtype")


def cell_names() -> tuple[str, ...]:
    """The cells training offers: every registered cell with a trainable module
    (``Cell.module``), in the registry's order."""
    return tuple(c.name for c in cells.CELLS.values() if c.module is not None)


def inits(cell) -> tuple[str, ...]:
    """The ``model.init`` values training draws for a registered ``cell`` (module docstring): a
    cell without a scaled recurrent init (the LRU's ring) its own; any other torch's draw, the
    recurrent inits, and Pascanu's for a square W."""
    recurrent = tuple(i for i in cell.inits if i in RECURRENT_INITS)
    if not recurrent:
        return cell.inits
    return (TORCH_INIT,) + recurrent + (tuple(PASCANU_INITS) if cell.square_w else ())


def _training_cells() -> dict:
    return {name: cells.CELLS[name] for name in cell_names()}


def _choose(name: str) -> str:
    """How a training run picks cell ``name``: its first arch."""
    return next((f"arch={a.name}" for a in ARCHS.values() if a.cell == name),
                f"model.cell={name}")


def _field(group: str, key: str) -> str:
    """The TrainConfig field of ``group.key``: task.name is ``task``, task.length ``length``,
    floss.k ``floss_k``; every other key its own name."""
    if group == "task":
        return "task" if key == "name" else key
    return f"floss_{key}" if group == "floss" else key


def _keys() -> dict:
    """TrainConfig's fields: field -> (dotted key, Key), HASH_BASE's first, then every key added
    since in the schema's order, then the training cells' own keys (``Cell.keys``)."""
    declared = {"seed": ("seed", schema.SEED)}
    for group in schema.APPS["train"]:
        for key, spec in schema.group("train", group).items():
            if not (group == "train" and key in RUNNER_KEYS):
                declared[_field(group, key)] = (f"{group}.{key}", spec)
    out = {f: declared[f] for f in HASH_BASE}
    out.update((f, v) for f, v in declared.items() if f not in HASH_BASE)
    for cell in _training_cells().values():
        for key, value in cell.keys.items():
            out.setdefault(key, (f"model.{key}", schema.cell_key(value)))
    return out


INITS = tuple(dict.fromkeys(i for c in _training_cells().values() for i in inits(c)))


# the fields of the model group (the cells' own keys among them): what a user's own cell module
# replaces (rnnlab.train.loop.train_module)
MODEL_KEYS = tuple(f for f, (key, _) in _keys().items() if key.startswith("model."))


@schema.spec(_keys(), "train")
class TrainConfig:
    """One training run. Field ``f`` is the key ``KEYS[f]`` in error messages."""

    def __post_init__(self):
        # a cell's own key left null takes the cell's default, so run.json records the value used
        cell = cells.CELLS.get(self.cell)
        for key, default in (cell.keys.items() if cell else ()):
            if getattr(self, key) is None:
                object.__setattr__(self, key, default)

    def validate(self) -> TrainConfig:
        """Reject a bad configuration before any compute, naming the key and the allowed values."""
        schema.check_spec(self)
        tasks.spec(self.task).check_length(self.length)
        choice("model.cell", self.cell, cell_names())
        choice("model.activation", self.activation, ACTIVATIONS)
        choice("model.init", self.init, INITS)
        cell = cells.get(self.cell)
        schema.check_cell(self, cell, _training_cells(), inits, _choose)
        if cell.torch_module is not None and self.activation not in MODULE_ACTIVATIONS:
            raise ConfigError(f"model.activation={self.activation!r} with model.cell="
                              f"{self.cell!r}: training builds this cell as a torch.nn module, "
                              f"which has no such units; allowed: {list(MODULE_ACTIVATIONS)}")
        if self.init in PASCANU_INITS and self.activation != PASCANU_INITS[self.init][1]:
            needs = PASCANU_INITS[self.init][1]
            raise ConfigError(f"model.init={self.init!r} is Pascanu's Elman init with {needs} "
                              f"units; allowed with it: model.activation={needs!r}")
        self._validate_scale()
        schema.check_stack(self, cell, tasks.spec(self.task).input_size)
        self._validate_stack()
        if self.lyap_k > self.hidden_size:
            raise ConfigError(f"train.lyap_k={self.lyap_k} is not allowed; it must be at most "
                              f"model.hidden_size={self.hidden_size} (0 = off)")
        self._validate_remedies(cell)
        self._validate_truncate()
        return self

    def _validate_stack(self):
        """What a stack cannot take: the Elman-only Pascanu inits, an orthogonal W_hh and
        Omega (each names one matrix W_hh, and Omega reads h as the readout's input)."""
        if not schema.stacked(self):
            return
        for bad, what in ((self.init in PASCANU_INITS, f"model.init={self.init!r}"),
                          (self.orthogonal, "model.orthogonal=true"),
                          (self.regularizer == "omega", "train.regularizer='omega'")):
            if bad:
                raise ConfigError(f"{what} with {schema.stack_line(self)}: it acts on one "
                                  "layer's W_hh read by the readout; use model.layers=1, "
                                  "model.norm=none and model.residual=false, or another "
                                  "init / remedy")

    def _validate_truncate(self):
        """train.truncate = K: 1 <= K <= the task's sequence length (``sequence_length``), and
        not with Omega, whose delta_k is the total gradient through every later step."""
        K = self.truncate
        if K is None:
            return
        steps = sequence_length(self.task, self.length)
        if K > steps:
            raise ConfigError(f"train.truncate={K} is not allowed; it must be at most the "
                              f"task's sequence length, {steps} steps for task={self.task!r} "
                              f"with task.length={self.length} (null: full backpropagation)")
        if self.regularizer == "omega":
            raise ConfigError("train.truncate with train.regularizer='omega' is not allowed: "
                              "Omega is defined on the total gradient dE/ds_k through every "
                              "later step, which truncation cuts; allowed with it: "
                              "train.regularizer in ['none', 'flossing']")

    def _validate_scale(self):
        """A gaussian W takes exactly one of model.spectral_radius and model.gain (no default
        scale in training); a gain is the gaussian's only."""
        rho, gain = self.spectral_radius, self.gain
        if self.init == "gaussian" and (rho is None) == (gain is None):
            raise ConfigError(f"model.spectral_radius={rho!r} and model.gain={gain!r} with "
                              "model.init='gaussian': set exactly one of them, the other null")
        if self.init != "gaussian" and gain is not None:
            raise ConfigError(f"model.gain={gain!r} with model.init={self.init!r}: a gain applies "
                              "to model.init='gaussian' only; set model.spectral_radius instead")

    def _validate_remedies(self, cell):
        """model.orthogonal, train.regularizer, train.reg_weight and the floss group."""
        if self.orthogonal and (not cell.square_w or self.activation not in RNN_ACTIVATIONS
                                or self.init != "orthogonal" or self.rho != 1.0):
            square = [c.name for c in _training_cells().values() if c.square_w]
            raise ConfigError(
                f"model.orthogonal=true with model.cell={self.cell!r}, model.activation="
                f"{self.activation!r}, model.init={self.init!r}, model.spectral_radius="
                f"{self.spectral_radius!r}: an orthogonal recurrence needs one square W "
                f"(model.cell in {square}), model.activation in {list(RNN_ACTIVATIONS)}, "
                "model.init='orthogonal' and model.spectral_radius null or 1 "
                "(arch=orthogonal_tanh)")
        if self.regularizer != "omega" and self.reg_weight != DEFAULT_REG_WEIGHT:
            raise ConfigError(f"train.reg_weight={self.reg_weight!r} with train.regularizer="
                              f"{self.regularizer!r}: it weights Omega; set "
                              "train.regularizer='omega' or leave train.reg_weight at "
                              f"{DEFAULT_REG_WEIGHT}")
        if self.regularizer == "omega" and self.orthogonal:
            raise ConfigError("train.regularizer='omega' with model.orthogonal=true: Omega's "
                              "gradient is added to the recurrent matrix's own, which "
                              "model.orthogonal replaces by a parametrisation; allowed with it: "
                              "model.orthogonal=false")
        self._validate_flossing()

    def _validate_flossing(self):
        """The floss group: set only with train.regularizer=flossing, each value in range."""
        floss = [f for f, key in self.KEYS.items() if key.startswith("floss.")]
        if self.regularizer != "flossing":
            for name in floss:
                if getattr(self, name) != self.__dataclass_fields__[name].default:
                    raise ConfigError(f"{self.KEYS[name]}={getattr(self, name)!r} with "
                                      f"train.regularizer={self.regularizer!r}: the floss keys "
                                      "apply to train.regularizer='flossing' only")
            return
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


# tasks whose generator draws the sequence length l per batch, l in [length, 1.1 length)
# (Pascanu's addition.py and multiplication.py, rnnlab.tasks): their shortest is task.length
VARIABLE_LENGTH = ("adding_pascanu", "multiplication_pascanu")


def sequence_length(task: str, length: int) -> int:
    """The steps of the task's shortest sequence at ``task.length`` = ``length``: ``length`` for
    a task in ``VARIABLE_LENGTH``, otherwise the steps of one sequence drawn by the task's own
    generator from a throwaway numpy stream (copy: length + 20; delayed_copy and delayed_xor:
    4 length; temporal_order and adding_le: length). Numpy only: no model is computed."""
    if task in VARIABLE_LENGTH:
        return length
    x, _ = tasks.generate(task, 1, length, np.random.RandomState(0))
    return int(x.shape[1])


def hashed_params(params: dict) -> dict:
    """The part of a run's flat configuration that its hash covers: the HASH_BASE fields, and
    every later field that differs from its default (a cell's own key added since its runs,
    ``Cell.keys_since``, from the cell's default)."""
    defaults = {f: TrainConfig.__dataclass_fields__[f].default for f in TrainConfig.KEYS}
    cell = cells.CELLS.get(params.get("cell"))
    for k in (cell.keys_since if cell else ()):
        defaults[k] = cell.keys[k]
    return {k: v for k, v in params.items() if k in HASH_BASE or v != defaults.get(k)}


def config_from_plain(plain: dict) -> tuple[TrainConfig, dict]:
    """(validated TrainConfig, runner settings) from the plain config of ``conf/train.yaml``."""
    schema.check("train", plain)
    known_keys("model", plain.get("model") or {},
               [f for f, key in TrainConfig.KEYS.items() if key.startswith("model.")])
    fields_ = {"seed": plain.get("seed", schema.SEED.default)}
    for group in schema.APPS["train"]:
        for key, value in (plain.get(group) or {}).items():
            fields_[_field(group, key)] = value
    runner = {k: fields_.pop(k) for k in RUNNER_KEYS if k in fields_}
    return TrainConfig(**fields_).validate(), runner


def spec_from_config(cfg) -> tuple[TrainConfig, dict]:
    """The validated (TrainConfig, runner settings) of a Hydra/OmegaConf config."""
    return config_from_plain(schema.plain(cfg))
