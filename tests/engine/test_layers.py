"""The layer rule, checked on the source (issue 16).

- The engine (``cryotiger_scipion/engine``) runs inside the managed environment, where
  Scipion is not installed: no engine module may import pyworkflow, pwem or tomo, directly
  or through another module of the package it imports.
- The Scipion layer (the Plugin, protocols, viewers, objects, wizards and the other
  top-level modules) runs in Scipion's Python, where TensorFlow is not installed: none of
  its modules may import tensorflow, directly or through the engine modules it imports.

Imports are read with ``ast``. A module's own imports count wherever they stand (a lazy
import inside a function fails at run time just the same); through the package's other
modules the check follows what importing them executes (module and class level), so a
lazy import that the engine keeps inside a FILM-only function does not count against a
Scipion module that imports a numpy-only helper from the same engine module.
"""
import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGE = "cryotiger_scipion"
SCIPION_PACKAGES = ("pyworkflow", "pwem", "tomo")
TF_PACKAGES = ("tensorflow", "keras")


def _modules():
    """{dotted module name: path} for every .py file of the package."""
    out = {}
    base = os.path.join(ROOT, PACKAGE)
    for folder, _, files in os.walk(base):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
            if rel.endswith(".__init__"):
                rel = rel[: -len(".__init__")]
            out[rel] = path
    return out


MODULES = _modules()


def _nodes(tree, lazy: bool):
    """Every node of ``tree``; without ``lazy``, not those inside function bodies."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if lazy or not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                todo.append(child)


def _imports(module: str, lazy: bool = True) -> set:
    """Absolute dotted names imported in ``module`` (relative imports resolved).

    With ``lazy`` False, only the imports that run when the module is imported.
    """
    path = MODULES[module]
    tree = ast.parse(open(path, encoding="utf-8").read(), filename=path)
    is_pkg = path.endswith("__init__.py")
    names = set()
    for node in _nodes(tree, lazy):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = module.split(".")
                parts = parts if is_pkg else parts[:-1]
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.add(base)
            # "from . import x" / "from .pkg import mod": the names may be modules too
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _own(name: str):
    """The package module a dotted import name refers to (None when it is not ours)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _closure(module: str) -> dict:
    """{external top-level package: chain of modules that leads to it} for ``module``."""
    seen, found, todo = {module: [module]}, {}, [module]
    while todo:
        current = todo.pop()
        for name in _imports(current, lazy=current == module):
            own = _own(name) if name.startswith(PACKAGE) else None
            if own is not None:
                if own not in seen:
                    seen[own] = seen[current] + [own]
                    todo.append(own)
            elif not name.startswith(PACKAGE):
                found.setdefault(name.split(".")[0], seen[current])
    return found


ENGINE = sorted(m for m in MODULES if m.startswith(PACKAGE + ".engine"))
SCIPION = sorted(m for m in MODULES if not m.startswith(PACKAGE + ".engine"))


def test_the_package_has_both_layers():
    assert len(ENGINE) > 20 and len(SCIPION) > 10
    assert f"{PACKAGE}.engine.film.network" in ENGINE
    assert f"{PACKAGE}.protocols.protocol_interpolate" in SCIPION


@pytest.mark.parametrize("module", ENGINE)
def test_engine_never_imports_scipion(module):
    found = _closure(module)
    bad = {pkg: chain for pkg, chain in found.items() if pkg in SCIPION_PACKAGES}
    assert not bad, f"{module} reaches Scipion: " + "; ".join(
        f"{pkg} via {' -> '.join(chain)}" for pkg, chain in bad.items())


@pytest.mark.parametrize("module", SCIPION)
def test_scipion_layer_never_imports_tensorflow(module):
    found = _closure(module)
    bad = {pkg: chain for pkg, chain in found.items() if pkg in TF_PACKAGES}
    assert not bad, f"{module} reaches TensorFlow: " + "; ".join(
        f"{pkg} via {' -> '.join(chain)}" for pkg, chain in bad.items())


def test_the_check_sees_a_violation(tmp_path, monkeypatch):
    """The walker follows package-internal imports to a forbidden package."""
    a = tmp_path / "a.py"
    b = tmp_path / "b.py"
    c = tmp_path / "c.py"
    a.write_text("def f():\n    from .zz_b import g\n")
    b.write_text("from .zz_c import h\n\ndef g():\n    import torch\n")
    c.write_text("class C:\n    import tensorflow as tf\n")
    monkeypatch.setitem(MODULES, f"{PACKAGE}.zz_a", str(a))
    monkeypatch.setitem(MODULES, f"{PACKAGE}.zz_b", str(b))
    monkeypatch.setitem(MODULES, f"{PACKAGE}.zz_c", str(c))
    found = _closure(f"{PACKAGE}.zz_a")
    assert found["tensorflow"] == [f"{PACKAGE}.zz_a", f"{PACKAGE}.zz_b", f"{PACKAGE}.zz_c"]
    assert "torch" not in found  # lazy, inside a function of a module reached on the way
    assert "torch" in _closure(f"{PACKAGE}.zz_b")  # but counted in the module itself


def _engine_graph() -> dict:
    """{engine module: engine modules it imports}, lazy imports included (the
    package ``engine/__init__`` itself, which only defines the errors, left out)."""
    engine = f"{PACKAGE}.engine"
    graph = {}
    for module in ENGINE:
        deps = set()
        for name in _imports(module, lazy=True):
            own = _own(name) if name.startswith(PACKAGE) else None
            if own and own != module and own != engine and own.startswith(engine + "."):
                deps.add(own)
        graph[module] = deps
    return graph


def _cycle(graph: dict):
    """One import cycle of ``graph`` as a list of modules, or None."""
    state = {}

    def visit(v, path):
        state[v] = 1
        for w in sorted(graph.get(v, ())):
            if state.get(w) == 1:
                return path[path.index(w):] + [w]
            if w not in state:
                found = visit(w, path + [w])
                if found:
                    return found
        state[v] = 2
        return None

    for v in sorted(graph):
        if v not in state:
            found = visit(v, [v])
            if found:
                return found
    return None


def test_engine_has_no_import_cycle():
    """No engine module imports, even lazily, a module that imports it back
    (issue 16: interpolate.py <-> film/interpolator.py, now film/inference.py;
    the interface lives in methods.py)."""
    cycle = _cycle(_engine_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_check_sees_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


# The engine modules the Scipion layer may import (numpy/mrcfile/matplotlib only, no
# TensorFlow and no engine driver): the file formats, output safety, the .xf resampling,
# the evaluation maths and figures, the report helpers of holdout and export, and the
# external-program finder. docs/DEVELOPING.md ("What lives where") lists the same.
SCIPION_MAY_IMPORT = {f"{PACKAGE}.engine", f"{PACKAGE}.engine.outputs", f"{PACKAGE}.engine.align",
                      f"{PACKAGE}.engine.metrics", f"{PACKAGE}.engine.plots",
                      f"{PACKAGE}.engine.holdout", f"{PACKAGE}.engine.export",
                      f"{PACKAGE}.engine.binaries"}
SCIPION_MAY_IMPORT |= {m for m in MODULES if m.startswith(f"{PACKAGE}.engine.formats")
                       and m != f"{PACKAGE}.engine.formats.training_db"}   # TensorFlow when used


@pytest.mark.parametrize("module", SCIPION)
def test_scipion_layer_imports_only_numpy_only_engine_modules(module):
    """The Scipion layer calls the engine as a separate process (the ``cryotiger``
    command); in its own Python it imports only the engine modules listed above
    (issue 16: the file formats are one module each, engine/formats/)."""
    used = {_own(name) for name in _imports(module, lazy=True)
            if name.startswith(f"{PACKAGE}.engine")}
    bad = sorted(m for m in used if m is not None and m not in SCIPION_MAY_IMPORT)
    assert not bad, f"{module} imports engine module(s) {bad}; the Scipion layer may import " \
                    f"only {sorted(SCIPION_MAY_IMPORT)}"


def test_the_format_modules_stay_light():
    """engine/formats/ imports no scipy, TensorFlow or engine driver at import time, so
    the Scipion layer (and a numpy-only caller) may import any format module."""
    # training_db (the TFRecord database) needs TensorFlow and is used by training only
    formats = [m for m in MODULES if m.startswith(f"{PACKAGE}.engine.formats")
               and m != f"{PACKAGE}.engine.formats.training_db"]
    assert {f"{PACKAGE}.engine.formats.{n}" for n in
            ("mrc", "tlt", "mdoc", "xf", "acquisition", "ctf_json", "record", "text")} <= set(formats)
    for module in formats:
        found = _closure(module)
        heavy = {pkg: chain for pkg, chain in found.items() if pkg in ("scipy",) + TF_PACKAGES}
        assert not heavy, f"{module} reaches {heavy}"
