"""README.md and docs/*.md name only modules that exist.

Every dotted name starting with ``rnnlab.`` (in backticks or plain text) must be a module or
package of rnnlab, or an attribute of one (``rnnlab.measure_module``,
``rnnlab.engine.torch_modules.measure_module``: the longest prefix that imports as a module, then
``getattr`` for the rest); every path ``rnnlab/...py`` must be a file and every ``rnnlab/.../``
a directory of the repository. A failure lists each stale name with its file and line.
"""
from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# not preceded by a word character, dot, dash or slash: leaves out results/rnnlab_x, x.rnnlab.y
DOTTED = re.compile(r"(?<![\w.\-/])rnnlab(?:\.[A-Za-z_]\w*)+")
# rnnlab/ itself, rnnlab/a/b/, rnnlab/a/b.py (a sentence's final dot is not part of it)
PATH = re.compile(r"(?<![\w.\-])rnnlab/(?:\w+/)*(?:\w+\.py)?")


def mentions() -> list[tuple[str, int, str]]:
    """(file relative to the repository, line, name) for every module name and path."""
    out = []
    for doc in DOCS:
        for i, line in enumerate(doc.read_text().splitlines(), 1):
            for rx in (DOTTED, PATH):
                out += [(str(doc.relative_to(ROOT)), i, m.group(0)) for m in rx.finditer(line)]
    return out


def _import(name: str):
    """The module ``name``, or None where no such module exists (an error inside an existing
    module propagates)."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name is not None and (name == err.name or name.startswith(err.name + ".")):
            return None
        raise


def resolves(name: str) -> bool:
    """Whether a dotted ``rnnlab.`` name or an ``rnnlab/`` path exists."""
    if "/" in name:
        path = ROOT / name
        return path.is_dir() if name.endswith("/") else path.is_file()
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        module = _import(".".join(parts[:n]))
        if module is None:
            continue
        obj = module
        for attr in parts[n:]:
            try:
                obj = getattr(obj, attr)
            except AttributeError:
                return False
        return True
    return False


def test_the_scan_finds_names():
    """The patterns see the documents' names (so the check below is not vacuous)."""
    names = {name for _, _, name in mentions()}
    assert any("." in n for n in names) and any("/" in n for n in names), names


@pytest.mark.parametrize("name,ok", [
    ("rnnlab", True), ("rnnlab.engine", True), ("rnnlab.engine.cells.stack", True),
    ("rnnlab.measure_module", True), ("rnnlab.engine.torch_modules.measure_module", True),
    ("rnnlab.engine.cells.Cell", True), ("rnnlab.engine.cells.stack.Stack.vjp_", True),
    ("rnnlab/", True), ("rnnlab/engine/cells/", True), ("rnnlab/engine/adjoint.py", True),
    ("rnnlab.no_such_module", False), ("rnnlab.engine.no_such.thing", False),
    ("rnnlab.engine.adjoint.no_such_function", False), ("rnnlab/no_such.py", False),
    ("rnnlab/engine/no_such/", False), ("rnnlab/engine/", True), ("rnnlab/engine.py", False),
])
def test_resolver(name, ok):
    assert resolves(name) is ok


def test_readme_and_docs_name_existing_modules():
    stale = [f"{doc}:{line}: {name}" for doc, line, name in mentions() if not resolves(name)]
    assert not stale, ("README.md / docs name modules that do not exist:\n"
                       + "\n".join(stale))
