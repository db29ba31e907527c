"""The layering of rnnlab holds, and its registries agree with conf/.

Every module under rnnlab/ is parsed with ``ast`` (nothing is imported) and its imports, those
inside functions included and relative ones resolved, make a graph of rnnlab modules. Checked:

1. ``rnnlab.engine`` imports nothing from ``rnnlab.measure``, ``rnnlab.train``, ``rnnlab.runs``;
2. the two apps, ``rnnlab.measure`` and ``rnnlab.train``, never import each other;
3. ``rnnlab.runs`` (store, grid, driver) imports neither app;
4. ``rnnlab.checks`` imports nothing from rnnlab;
5. every module belongs to a layer of docs/architecture.md and imports only the layers its table
   allows;
6. there is no import cycle in rnnlab/ (edges between a package and a module inside it, either
   way, are left out: a package's ``__init__`` importing its children, and a child importing
   its parent's names, are how a package is built);

and: every registered cell (``rnnlab.engine.cells.CELLS``) has a ``conf/model/<name>.yaml`` or
is the ``cell:`` of one, and the training presets ``rnnlab.train.archs.ARCHS`` are exactly the
files ``conf/arch/*.yaml``, with the same cell, activation and init, and the registered tasks
(``rnnlab.tasks.TASKS``) are the names of ``conf/task/*.yaml``. A failure names the
offending import edge, cycle, cell or arch.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "rnnlab"


def module_names() -> dict[str, Path]:
    """Every module of rnnlab/ by dotted name (a package by its ``__init__.py``)."""
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = module_names()


def _resolve_relative(module: str, is_package: bool, level: int, target: str | None) -> str:
    package = module if is_package else module.rpartition(".")[0]
    parts = package.split(".")
    if level > 1:
        parts = parts[:len(parts) - (level - 1)]
    base = ".".join(parts)
    return f"{base}.{target}" if target else base


def imports_of(module: str, path: Path) -> list[tuple[str, int]]:
    """The rnnlab modules ``module`` imports, anywhere in its file, with line numbers. ``from X
    import Y`` imports X, and X.Y too where that is a module."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append((alias.name, node.lineno))
        elif isinstance(node, ast.ImportFrom):
            base = node.module if node.level == 0 else \
                _resolve_relative(module, is_package, node.level, node.module)
            found.append((base, node.lineno))
            for alias in node.names:
                found.append((f"{base}.{alias.name}", node.lineno))
    out = []
    for name, line in found:
        if name != "rnnlab" and not name.startswith("rnnlab."):
            continue
        # the longest prefix that is a module of rnnlab (``import rnnlab.engine.adjoint``
        # also runs rnnlab.engine, but that edge is a package's to its child)
        while name not in MODULES and "." in name:
            name = name.rpartition(".")[0]
        if name in MODULES:
            out.append((name, line))
    return out


def build_graph() -> dict[str, dict[str, int]]:
    """module -> {imported module: first line}, self-edges left out."""
    graph: dict[str, dict[str, int]] = {m: {} for m in MODULES}
    for module, path in MODULES.items():
        for target, line in imports_of(module, path):
            if target != module:
                graph[module].setdefault(target, line)
    return graph


GRAPH = build_graph()


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def nested(a: str, b: str) -> bool:
    """Whether one of a, b is a package containing the other."""
    return within(a, b) or within(b, a)


def where(module: str, line: int) -> str:
    return f"{MODULES[module].relative_to(ROOT)}:{line}"


def forbidden_edges(sources: tuple[str, ...], targets: tuple[str, ...]) -> list[str]:
    return [f"{m} -> {t} ({where(m, line)})"
            for m, deps in GRAPH.items() if any(within(m, s) for s in sources)
            for t, line in deps.items() if any(within(t, x) for x in targets)]


def test_graph_is_built():
    """The parser sees the package and its known imports (so the checks below are not vacuous)."""
    for name in ("rnnlab.checks", "rnnlab.engine.adjoint", "rnnlab.engine.cells",
                 "rnnlab.engine.cells.stack", "rnnlab.measure.app", "rnnlab.runs.driver"):
        assert name in MODULES
    assert "rnnlab.engine.cells" in GRAPH["rnnlab.engine.adjoint"]  # from . import cells
    assert "rnnlab.runs.store" in GRAPH["rnnlab.measure.app"]  # from ..runs import store
    assert "rnnlab.theory" in GRAPH["rnnlab.engine.cells.elman"]  # from ... import theory
    # an import inside a function counts: the lazy measure_module of rnnlab/__init__.py
    assert "rnnlab.engine.torch_modules" in GRAPH["rnnlab"]


def test_engine_imports_no_app_and_no_runner():
    bad = forbidden_edges(("rnnlab.engine",), ("rnnlab.measure", "rnnlab.train", "rnnlab.runs"))
    assert not bad, "the engine imports a layer above it:\n" + "\n".join(bad)


@pytest.mark.parametrize("a,b", [("rnnlab.measure", "rnnlab.train"),
                                 ("rnnlab.train", "rnnlab.measure")])
def test_apps_do_not_import_each_other(a, b):
    bad = forbidden_edges((a,), (b,))
    assert not bad, f"{a} imports {b}:\n" + "\n".join(bad)


def test_runner_imports_neither_app():
    bad = forbidden_edges(("rnnlab.runs",), ("rnnlab.measure", "rnnlab.train"))
    assert not bad, "rnnlab.runs imports an app:\n" + "\n".join(bad)


def test_checks_imports_nothing_of_rnnlab():
    bad = [f"rnnlab.checks -> {t} ({where('rnnlab.checks', line)})"
           for t, line in GRAPH["rnnlab.checks"].items()]
    assert not bad, "rnnlab.checks imports rnnlab:\n" + "\n".join(bad)


# each layer of docs/architecture.md and the layers it may import besides itself (the root
# package ``rnnlab``, whose __init__ only defers ``measure_module``, is allowed everywhere)
APPS_MAY_IMPORT = ("rnnlab.engine", "rnnlab.tasks", "rnnlab.theory", "rnnlab.checks",
                   "rnnlab.schema", "rnnlab.runs", "rnnlab.plotting")
ALLOWED = {
    "rnnlab.checks": (),
    "rnnlab.schema": ("rnnlab.checks",),
    "rnnlab.plotting": (),
    "rnnlab.tasks": ("rnnlab.checks",),
    "rnnlab.theory": ("rnnlab.checks", "rnnlab.engine.model"),
    "rnnlab.engine": ("rnnlab.checks", "rnnlab.schema", "rnnlab.theory"),
    "rnnlab.runs": ("rnnlab.checks", "rnnlab.schema"),
    "rnnlab.measure": APPS_MAY_IMPORT,
    "rnnlab.train": APPS_MAY_IMPORT,
}


def test_every_module_is_in_a_layer():
    unplaced = [m for m in MODULES if m != "rnnlab" and not any(within(m, x) for x in ALLOWED)]
    assert not unplaced, "modules in no layer of ALLOWED (docs/architecture.md):\n" + \
        "\n".join(unplaced)


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layer_imports_only_what_the_table_allows(layer):
    bad = [f"{m} -> {t} ({where(m, line)})"
           for m, deps in GRAPH.items() if within(m, layer)
           for t, line in deps.items()
           if t != "rnnlab" and not within(t, layer)
           and not any(within(t, x) for x in ALLOWED[layer])]
    assert not bad, f"{layer} imports outside docs/architecture.md's table:\n" + "\n".join(bad)


def find_cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    """One cycle of ``graph`` as [m0, m1, ..., m0], or None (iterative depth-first search)."""
    WHITE, GREY, BLACK = 0, 1, 2
    colour = dict.fromkeys(graph, WHITE)
    for start in sorted(graph):
        if colour[start] != WHITE:
            continue
        stack = [(start, iter(sorted(graph[start])))]
        path = [start]
        colour[start] = GREY
        while stack:
            node, children = stack[-1]
            for child in children:
                if colour.get(child, BLACK) == GREY:
                    return path[path.index(child):] + [child]
                if colour.get(child) == WHITE:
                    colour[child] = GREY
                    path.append(child)
                    stack.append((child, iter(sorted(graph[child]))))
                    break
            else:
                colour[node] = BLACK
                path.pop()
                stack.pop()
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {}}) == \
        ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b": 1}, "b": {}, "c": {"a": 1, "b": 1}}) is None


def test_no_import_cycle():
    graph = {m: {t: line for t, line in deps.items() if not nested(m, t)}
             for m, deps in GRAPH.items()}
    cycle = find_cycle(graph)
    if cycle is not None:
        steps = [f"{a} -> {b} ({where(a, graph[a][b])})" for a, b in zip(cycle, cycle[1:])]
        pytest.fail("import cycle in rnnlab/:\n" + "\n".join(steps))


# --------------------------------------------------------------------------------------------
# The registries against conf/
# --------------------------------------------------------------------------------------------
def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


def test_every_cell_has_a_model_config():
    from rnnlab.engine import cells

    files = {p.stem: _yaml(p) for p in sorted((ROOT / "conf" / "model").glob("*.yaml"))}
    named = {cfg.get("cell") for cfg in files.values()}
    missing = [name for name in cells.CELLS if name not in files and name not in named]
    assert not missing, (f"registered cells with no conf/model/<name>.yaml and named as the "
                         f"cell: of none: {missing}")


def test_arch_registry_is_conf_arch():
    from rnnlab.train.archs import ARCHS

    files = {p.stem: _yaml(p) for p in sorted((ROOT / "conf" / "arch").glob("*.yaml"))}
    assert sorted(ARCHS) == sorted(files), (
        f"only in rnnlab.train.archs.ARCHS: {sorted(set(ARCHS) - set(files))}; "
        f"only in conf/arch/: {sorted(set(files) - set(ARCHS))}")
    for name, arch in ARCHS.items():
        for key in ("cell", "activation", "init"):
            assert files[name].get(key) == getattr(arch, key), (
                f"conf/arch/{name}.yaml has {key}: {files[name].get(key)!r}, "
                f"ARCHS[{name!r}].{key} is {getattr(arch, key)!r}")


def test_task_registry_is_conf_task():
    from rnnlab.tasks import TASKS

    named = {_yaml(p).get("name"): p.name for p in sorted((ROOT / "conf" / "task").glob("*.yaml"))}
    assert sorted(named) == sorted(TASKS), (
        f"only in rnnlab.tasks.TASKS: {sorted(set(TASKS) - set(named))}; "
        f"named only in conf/task/: {sorted(set(named) - set(TASKS))}")
