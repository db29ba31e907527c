"""The configuration schema of both apps: every key of the groups ``model``, ``data``, ``measure``
(``experiments/decay.py``) and ``task``, ``model``, ``train``, ``floss`` (``experiments/train.py``)
declared once, with its type, its default and the values it allows where they are fixed. The
YAML files of ``conf/`` give the same defaults with a comment each (``tests/test_schema.py``
holds the two together); the key tables of docs/measurement.md and docs/training.md say what
each key means.

Pure Python (``rnnlab.checks`` only), so a command line is checked against it before torch is
imported: ``check(app, plain)`` refuses a misspelt key, a value of the wrong type, a number out of
range or a name outside a fixed list, in one line naming the key. What depends on a registry (the
cells, their activations and inits, the tasks) is the apps' second stage, once the registry is
loaded; so are the keys a cell declares itself (``rnnlab.engine.cells.Cell.keys``: typed here by
their default, checked by the cell's ``check``), which are why ``model`` is the one group whose
unknown keys this first stage leaves to the app.

Each app's specification is a frozen dataclass whose fields this module makes from the keys
(``spec``), so a key is a field of ``RunSpec``'s ``ModelSpec`` or of ``TrainConfig`` by being
declared here, and ``check_spec`` runs the same per-key checks on a specification built in Python.
``check_cell`` holds the checks of the ``model`` keys that depend on the cell, shared by the apps.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

from . import checks
from .checks import ConfigError, choice, flag, integer, known_keys, number, real, suggest

DECAY, TRAIN = ("decay",), ("train",)
BOTH = DECAY + TRAIN


@dataclass(frozen=True)
class Key:
    """One configuration key. ``kind``: int, float, bool or str; ``default``, or per app in
    ``defaults`` (``{"train": ...}``); ``null``: None allowed. Fixed ranges: an int is >= ``low``;
    a float is finite and >= 0, > 0 with ``positive``, of either sign with ``signed``, in
    (-1, 1) with ``correlation``; a str is one of ``choices`` when they are fixed (a registry's
    names are checked by the app). ``apps``: the apps that take it; ``by_cell``: a cell's own
    key (``Cell.keys``), checked by the cell."""

    kind: type
    default: object = None
    null: bool = False
    low: int = 0
    positive: bool = False
    signed: bool = False
    choices: tuple = ()
    apps: tuple = BOTH
    defaults: tuple = ()  # ((app, default), ...): where an app's default differs
    by_cell: bool = False
    correlation: bool = False  # a float strictly inside (-1, 1)

    def default_for(self, app: str):
        return dict(self.defaults).get(app, self.default)

    @property
    def annotation(self):
        return self.kind | None if self.null else self.kind

    def check(self, key: str, value) -> None:
        """One line naming ``key`` when ``value`` is not of this key's type and range."""
        if self.by_cell or (value is None and self.null):
            return
        if self.kind is bool:
            flag(key, value)
        elif self.kind is int:
            integer(key, value, self.low)
        elif self.kind is float:
            if self.correlation:
                checks.correlation(key, value)
            elif self.signed:
                real(key, value)
            else:
                number(key, value, positive=self.positive, optional=self.null)
        elif self.choices:
            choice(key, value, self.choices)


SEED = Key(int, 0)
# the groups of each app, in the order of its configuration record
APPS = {"decay": ("model", "data", "measure"), "train": ("task", "model", "train", "floss")}
# top-level keys that are the runner's, not the configuration's (the sweep's name and grid)
RUNNER = ("sweep",)

GROUPS: dict[str, dict[str, Key]] = {
    # the recurrent network; a cell's own keys come from the cell registry (Cell.keys)
    "model": {
        "cell": Key(str, "elman"),
        "activation": Key(str, "tanh"),
        "hidden_size": Key(int, 64, low=1),
        "input_size": Key(int, 8, low=1, apps=DECAY),
        "output_size": Key(int, 8, low=1, apps=DECAY),
        "init": Key(str, "gaussian", defaults=(("train", "pytorch"),)),
        "spectral_radius": Key(float, None, null=True, positive=True),
        "gain": Key(float, None, null=True, positive=True),
        "input_gain": Key(float, 1.0, apps=DECAY),
        "bias_std": Key(float, 0.0, apps=DECAY),
        "gate_bias": Key(float, 0.0, signed=True, apps=DECAY),
        # model=attention only: W_Q ~ N(0, query_gain^2 / D); 0 makes every weight 1 / (t + 1)
        "query_gain": Key(float, 1.0, apps=DECAY),
        "loss": Key(str, "mse", apps=DECAY),
        "orthogonal": Key(bool, False, apps=TRAIN),
        # a stack of the cell (rnnlab.engine.stacks): its depth, each layer's pre-norm, and
        # whether a layer adds its input to its output
        "layers": Key(int, 1, low=1),
        "norm": Key(str, "none", choices=("none", "rmsnorm", "layernorm")),
        "residual": Key(bool, False),
    },
    "data": {
        "seq_len": Key(int, 100, low=1),
        "batch_size": Key(int, 16, low=1),
        "input_std": Key(float, 1.0),
        "burn_in": Key(int, 0),
        "h0_std": Key(float, 0.0),
        # x_t = rho x_{t-1} + sqrt(1 - rho^2) eps_t, stationary (rnnlab.engine.inputs.ar1)
        "autocorr": Key(float, 0.0, correlation=True),
    },
    "measure": {
        "max_lag": Key(int, None, null=True),
        "dtype": Key(str, "float64", choices=("float32", "float64")),
        "device": Key(str, "auto", choices=("auto", "cpu", "cuda")),
        "save_tensors": Key(bool, False),
        "mode": Key(str, "pairs", choices=("pairs", "profile")),
        "fit_min_lag": Key(int, 1),
        "fit_max_lag": Key(int, None, null=True, low=1),  # and > fit_min_lag (the app's check)
        "neutral_tol": Key(float, 1e-3),
        "progress": Key(bool, True),
        "threads": Key(int, None, null=True, low=1),
        "lyapunov": Key(bool, False),
        "jacobian": Key(bool, False),
        "weight_grad": Key(bool, False),
        # fixed: one draw of the weights for every step (an RNN, quenched); redrawn: every step's
        # weights drawn afresh (annealed: what mean-field theory assumes; rnnlab.engine.redrawn)
        "weights": Key(str, "fixed", choices=("fixed", "redrawn")),
        # a state of several parts: joint, or h alone with the rest held fixed (Vogt et al.)
        "lstm_state": Key(str, "joint", choices=("joint", "h")),
        "sensitivity": Key(bool, False),
        # the step Jacobians: the cell's hand-derived ones (its derived ones where it has none),
        # or derived by torch.func from the cell's step
        "jacobians": Key(str, "cell", choices=("cell", "derived")),
        # the gradient measured: state, dL_t/dh_k through the state; input, dy_t/dx_k of the
        # network's outputs and do^l_t/dx_k of every layer (rnnlab.input_sensitivity)
        "target": Key(str, "state", choices=("state", "input")),
    },
    "task": {
        "name": Key(str, "adding_pascanu"),
        "length": Key(int, 50, low=1),  # and the task's own minimum (rnnlab.tasks)
    },
    "train": {
        "optimizer": Key(str, "adam", choices=("sgd", "rmsprop", "adam")),
        "lr": Key(float, 1e-3, positive=True),
        "batch_size": Key(int, 32, low=1),
        "steps": Key(int, 1000),
        "clip": Key(float, 1.0, null=True, positive=True),
        "eval_every": Key(int, 100, low=1),
        "eval_size": Key(int, 1000, low=1),
        "test_size": Key(int, 10000, low=1),
        "eval_batch": Key(int, 1000, low=1),
        "probe_size": Key(int, 32, low=1),
        "dtype": Key(str, "float32", choices=("float32", "float64")),
        "lyap_k": Key(int, 0),
        # none, Pascanu et al. 2013's Omega (rnnlab.train.omega), or gradient flossing
        "regularizer": Key(str, "none", choices=("none", "omega", "flossing")),
        "reg_weight": Key(float, 2.0),  # alpha of Pascanu's RNN.py (state['alpha'] = 2.)
        "progress": Key(bool, True),
        "threads": Key(int, 1, null=True, low=1),
        # truncated backpropagation: the state detached every K steps (rnnlab.train.sequence);
        # null: full backpropagation through time
        "truncate": Key(int, None, null=True, low=1),
    },
    # gradient flossing (train.regularizer=flossing; rnnlab.train.flossing): Engelken 2023's
    # README example, k excepted (his 75 of 80 units)
    "floss": {
        "k": Key(int, 16, low=1),
        "window": Key(int, 55, low=2),
        "discard": Key(int, 16),  # 10 + ceil(55 / 10)
        "pre_steps": Key(int, 500),
        "every": Key(int, 100, low=1),
        "steps": Key(int, 500),
        "times": Key(int, 2),
        "lr": Key(float, 1e-3, positive=True),
        # steps from h = 0 before each flossing window (0: the window starts at h = 0, his code)
        "run_in": Key(int, 0),
    },
}


def group(app: str, name: str) -> dict[str, Key]:
    """The keys of group ``name`` that ``app`` takes, in declaration order."""
    return {k: key for k, key in GROUPS[name].items() if app in key.apps}


def default(key: str, app: str = "decay"):
    """The default of a dotted key (``model.cell``) in ``app``."""
    head, _, tail = key.partition(".")
    return GROUPS[head][tail].default_for(app)


def cell_key(value) -> Key:
    """A cell's own key (``Cell.keys``, default ``value`` for that cell): typed by its default,
    null for every other cell, its values checked by the cell."""
    return Key(type(value), None, null=True, by_cell=True)


def plain(cfg) -> dict:
    """The plain nested dict of a composed Hydra config, without the runner's ``sweep`` and
    Hydra's own ``hydra`` (a plain dict passes through the same way)."""
    from omegaconf import OmegaConf

    return {k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v
            for k, v in cfg.items() if k not in (*RUNNER, "hydra")}


def check(app: str, cfg: dict) -> None:
    """The first stage of ``app``'s checks on a plain config (``plain``), before torch: every
    top-level key and every key of a group exists (``model``'s others are left to the cells),
    and every declared value has its type and fixed range."""
    allowed = ("seed", *APPS[app], *RUNNER)
    unknown = sorted(set(cfg) - set(allowed) - {"hydra"})
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r}{suggest(unknown[0], allowed)} "
                          f"(allowed top-level keys: {', '.join(allowed)})")
    SEED.check("seed", cfg.get("seed", SEED.default))
    for name in APPS[app]:
        part = cfg.get(name) or {}
        if not isinstance(part, dict):
            raise ConfigError(f"{name}={part!r} is not allowed; it must be a group of keys")
        keys = group(app, name)
        # model's other keys may be a cell's own; not one of another app's
        known_keys(name, [k for k in part if name != "model" or k in GROUPS[name]], keys)
        for k, value in part.items():
            if k in keys:
                keys[k].check(f"{name}.{k}", value)


def spec(keys: dict[str, tuple[str, Key]], app: str):
    """Class decorator: the class as a frozen dataclass whose fields are ``keys`` (field name ->
    (dotted key, Key)), in order, each typed and defaulted by its Key for ``app``; the class
    keeps the map as ``KEYS`` (field -> dotted key) and ``SCHEMA`` (field -> Key)."""
    def make(cls):
        cls.__annotations__ = {f: key.annotation for f, (_, key) in keys.items()}
        for f, (_, key) in keys.items():
            setattr(cls, f, key.default_for(app))
        cls.KEYS = {f: dotted for f, (dotted, _) in keys.items()}
        cls.SCHEMA = {f: key for f, (_, key) in keys.items()}
        return dataclass(frozen=True)(cls)
    return make


def check_spec(spec_) -> None:
    """Every field of a specification made by ``spec`` checked against its Key."""
    for f in fields(spec_):
        spec_.SCHEMA[f.name].check(spec_.KEYS[f.name], getattr(spec_, f.name))


def check_cell(model, cell, cells: dict, inits: Callable, choose: Callable[[str], str]) -> None:
    """The ``model`` keys that depend on the cell, for either app: ``model`` has the keys as
    attributes, ``cell`` is its registered cell among ``cells`` (name -> Cell), ``inits(cell)``
    the ``model.init`` values the app draws for a cell, ``choose(name)`` how a user picks a cell
    (``model=lru``). Another cell's own keys stay null; the cell's own are its ``check``'s; the
    activation and init are among the cell's; an init drawn at PyTorch's own scale takes no
    scale key."""
    for other in cells.values():
        for key in other.keys:
            value = getattr(model, key, None)
            if key not in cell.keys and value is not None:
                raise ConfigError(f"model.{key}={value!r} with model.cell={cell.name!r}: this "
                                  f"key is model.cell={other.name!r}'s; use {choose(other.name)} "
                                  f"or model.{key}=null")
    if cell.check is not None:
        cell.check(model)
    if model.activation not in cell.activations:
        takers = [c.name for c in cells.values() if model.activation in c.activations]
        raise ConfigError(f"model.activation={model.activation!r} with model.cell="
                          f"{cell.name!r}: this cell's nonlinearities are fixed; choose "
                          f"model.activation in {list(cell.activations)} or model.cell in "
                          f"{takers}")
    if model.init not in inits(cell):
        takers = [c.name for c in cells.values() if model.init in inits(c)]
        raise ConfigError(f"model.init={model.init!r} with model.cell={cell.name!r} is not "
                          f"allowed; it applies to model.cell in {takers}")
    if model.init not in cell.scaled_inits:
        for key in ("spectral_radius", "gain"):
            value = getattr(model, key)
            if value is not None:
                other = f" or use model.init in {list(cell.scaled_inits)}" \
                    if cell.scaled_inits else ""
                raise ConfigError(f"model.{key}={value!r} with model.init={model.init!r}: this "
                                  "init takes no scale key; leave model.spectral_radius and "
                                  f"model.gain null{other}")


def stacked(model) -> bool:
    """Whether ``model`` (with the keys as attributes) is more than one plain layer."""
    return model.layers > 1 or model.norm != "none" or bool(model.residual)


def stack_line(model) -> str:
    """The stack keys as a command line sets them, for a refusal."""
    return (f"model.layers={model.layers}, model.norm={model.norm!r}, model.residual="
            f"{str(bool(model.residual)).lower()}")


def check_stack(model, cell, input_size: int) -> None:
    """The stack keys against the cell and the input size (both apps): a cell that is one
    block with its own readout (a complex state, the LRU's C and D) cannot be stacked, and a
    residual needs a layer whose input has its output's size."""
    if not stacked(model):
        return
    if cell.own_readout or cell.components != 1:
        raise ConfigError(f"{stack_line(model)} with model.cell={cell.name!r}: this cell is "
                          "one block with its own readout, not a layer whose output is h; "
                          "a stack takes a cell without its own readout (leave model.layers=1, "
                          "model.norm=none, model.residual=false)")
    if model.residual and model.layers == 1 and input_size != model.hidden_size:
        raise ConfigError(f"model.residual=true with model.layers=1 and input size {input_size}"
                          f" != model.hidden_size={model.hidden_size}: no layer's input has "
                          "its output's size, so none can add it; use model.layers >= 2 or an "
                          "input size equal to model.hidden_size")

