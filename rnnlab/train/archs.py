"""The training presets (``arch=...``, ``conf/arch/<name>.yaml``): a cell, its activation and its
init under one name, with the label and colour every table and figure uses. This is the one list of
archs; a test checks it against conf/arch/.

A new arch is one entry here plus its YAML file (docs/architecture.md).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Arch:
    name: str
    cell: str
    activation: str
    init: str
    label: str
    colour: str
    orthogonal: bool = False  # W_hh kept orthogonal while training (rnnlab.train.orthogonal)


ARCHS = {a.name: a for a in (
    Arch("tanh", "elman", "tanh", "pytorch", "tanh (PyTorch init)", "#1f77b4"),
    Arch("relu", "elman", "relu", "pytorch", "relu (PyTorch init)", "#d62728"),
    Arch("irnn", "elman", "relu", "identity", "IRNN (relu, W = I)", "#e377c2"),
    Arch("gru", "gru", "tanh", "pytorch", "GRU", "#ff7f0e"),
    Arch("lstm", "lstm", "tanh", "pytorch", "LSTM", "#9467bd"),
    Arch("sigmoid", "elman", "sigmoid", "pascanu_sigmoid", "sigmoid (Pascanu)", "#2ca02c"),
    Arch("basic_tanh", "elman", "tanh", "pascanu_basic_tanh", "basic tanh (Pascanu)", "#17becf"),
    Arch("smart_tanh", "elman", "tanh", "pascanu_smart_tanh", "smart tanh (Pascanu)", "#393b79"),
    Arch("orthogonal_tanh", "elman", "tanh", "orthogonal", "tanh, W kept orthogonal", "#8c564b",
         orthogonal=True),
    Arch("lru", "lru", "linear", "ring", "LRU (Orvieto et al. 2023)", "#bcbd22"),
    Arch("mingru", "mingru", "linear", "pytorch", "minGRU (Feng et al. 2024)", "#aec7e8"),
    Arch("minlstm", "minlstm", "linear", "pytorch", "minLSTM (Feng et al. 2024)", "#ffbb78"),
    Arch("rglru", "rglru", "linear", "ring", "RG-LRU (De et al. 2024)", "#98df8a"),
    Arch("slstm", "slstm", "tanh", "xlstm", "sLSTM (Beck et al. 2024)", "#c5b0d5"),
    Arch("mamba", "mamba", "linear", "mamba", "Mamba S6 (Gu and Dao 2023)", "#c49c94"),
    # W = rho Q at init only (Q Haar-orthogonal, rho = model.spectral_radius, 2 in its YAML):
    # every singular value of W is rho, so for rho > 1 the gradient explodes at init
    Arch("scaled_orthogonal_tanh", "elman", "tanh", "orthogonal", "tanh, W = rho Q at init",
         "#7f7f7f"),
)}


def arch_name(params: dict) -> str:
    """The arch of a run's cell/activation/init (and orthogonal constraint), or
    ``cell-activation-init`` for none (``-orthogonal`` appended when constrained). An LRU whose
    ring keys differ from conf/arch/lru.yaml's is ``lru(r_min=..., ...)`` (never pooled with it)."""
    orthogonal = bool(params.get("orthogonal", False))  # absent from runs before the key
    key = (params["cell"], params["activation"], params["init"], orthogonal)
    for a in ARCHS.values():
        if (a.cell, a.activation, a.init, a.orthogonal) == key:
            if a.cell == "lru":
                return a.name + _lru_suffix(params)
            return a.name
    return "-".join(key[:3]) + ("-orthogonal" if orthogonal else "")


def _lru_suffix(params: dict) -> str:
    from ..engine.cells.lru import DEFAULTS

    off = [f"{k}={params.get(k)}" for k, v in DEFAULTS.items()
           if params.get(k) is not None and params.get(k) != v]
    return f"({', '.join(off)})" if off else ""


def label(name: str) -> str:
    return ARCHS[name].label if name in ARCHS else name


def colour_table() -> dict:
    return {a.name: a.colour for a in ARCHS.values()}
