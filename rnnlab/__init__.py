"""rnnlab: how ||dL_t/dh_k|| vanishes or explodes with the lag t - k in recurrent networks.

Layers (docs/architecture.md): ``checks`` (the validation vocabulary), ``engine`` (the exact
measurement), ``theory``, ``tasks``, ``runs`` (the run store and the one command-line driver),
and the two apps on top, ``measure`` (experiments/decay.py) and ``train`` (experiments/train.py).
"""
__version__ = "0.1.0"

__all__ = ["input_sensitivity", "measure_module", "train_module"]


def __getattr__(name):
    # lazily, so that ``import rnnlab.checks`` (the command line's first checks) needs no torch
    if name == "measure_module":
        from .engine.torch_modules import measure_module
        return measure_module
    if name == "input_sensitivity":
        from .engine.input_sensitivity import input_sensitivity
        return input_sensitivity
    if name == "train_module":
        from .train.loop import train_module
        return train_module
    raise AttributeError(f"module 'rnnlab' has no attribute {name!r}")
