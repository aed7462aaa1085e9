"""Issue 16: every public function, class and method of the package has a
docstring, and a function that raises an exception itself names it there.

Read from the source (ast), so it covers the engine and the Scipion layer
without importing either.  Public: a name without a leading underscore, at
module level or in a public class.  "Raises itself": a ``raise X(...)`` or
``raise X`` in the function's own body (not in nested functions; a bare
``raise`` that re-raises does not count).
"""
import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGE = os.path.join(ROOT, "cryotiger_scipion")


def _sources():
    for folder, _, files in os.walk(PACKAGE):
        for name in sorted(files):
            if name.endswith(".py"):
                yield os.path.join(folder, name)


def _public_defs(tree):
    """(node, qualified name) of public functions, classes and methods."""
    def walk(node, prefix):
        for n in ast.iter_child_nodes(node):
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not n.name.startswith("_"):
                yield n, prefix + n.name
                if isinstance(n, ast.ClassDef):
                    yield from walk(n, prefix + n.name + ".")
    yield from walk(tree, "")


def _raised_names(func):
    """Names of the exceptions a function raises in its own body."""
    names = set()

    def scan(node):
        for c in ast.iter_child_nodes(node):
            if isinstance(c, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
                continue
            if isinstance(c, ast.Raise) and c.exc is not None:
                e = c.exc.func if isinstance(c.exc, ast.Call) else c.exc
                name = e.attr if isinstance(e, ast.Attribute) else getattr(e, "id", None)
                if name and name[:1].isupper():     # an exception class, not a variable
                    names.add(name)
            scan(c)
    scan(func)
    return names


def _report():
    missing, unnamed = [], []
    for path in _sources():
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        rel = os.path.relpath(path, ROOT)
        for node, name in _public_defs(tree):
            doc = ast.get_docstring(node)
            if not doc:
                missing.append(f"{rel}:{node.lineno} {name}")
            elif not isinstance(node, ast.ClassDef):
                absent = sorted(n for n in _raised_names(node) if n not in doc)
                if absent:
                    unnamed.append(f"{rel}:{node.lineno} {name} raises {', '.join(absent)}")
    return missing, unnamed


def test_every_public_function_class_and_method_has_a_docstring():
    missing, _ = _report()
    assert not missing, "public definitions without a docstring:\n" + "\n".join(missing)


def test_every_exception_a_function_raises_is_named_in_its_docstring():
    _, unnamed = _report()
    assert not unnamed, ("functions whose docstring does not name what they raise:\n" + "\n".join(unnamed))


def test_the_checks_see_a_missing_docstring_and_an_unnamed_raise(tmp_path):
    """The scanner itself: a public function without a docstring and one that
    raises ValueError without naming it are found; private ones are not."""
    tree = ast.parse('def f(x):\n    return x\n\n'
                     'def g(x):\n    """Doc."""\n    if x:\n        raise ValueError("x")\n\n'
                     'def _h():\n    raise KeyError\n\n'
                     'def k():\n    """Raises:\n        TypeError: never."""\n    raise TypeError\n')
    defs = dict((name, node) for node, name in _public_defs(tree))
    assert sorted(defs) == ["f", "g", "k"]
    assert ast.get_docstring(defs["f"]) is None
    assert _raised_names(defs["g"]) == {"ValueError"}
    assert _raised_names(defs["k"]) == {"TypeError"} and "TypeError" in ast.get_docstring(defs["k"])


if __name__ == "__main__":
    pytest.main([__file__, "-q"])
