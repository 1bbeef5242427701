"""The emulator's shape, moto's: a response layer that parses and renders, a backend that owns the state.

Read from the sources (nothing runs): the emulator imports nothing of mangrove_nb outside its own package (a
client bug cannot be mirrored in the server that tests it); only the backend side touches the database (the
routes, the request pipeline, body parsing, rendering and the worker go through ``backend.Backend``); the
backend says in its docstring what it owns; and no module outgrows a file one can read in a sitting.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import mangrove_nb.emulator

PACKAGE = Path(mangrove_nb.emulator.__file__).parent
MODULES = sorted(PACKAGE.glob("*.py"))
# The response layer and the scheduler: they reach the data only through the backend.
NO_DATABASE = ("app.py", "pipeline.py", "bodies.py", "resources.py", "worker.py", "errors.py", "faults.py")
# What reading or writing the database looks like: a connection's methods, the store's, and its query helpers.
DATABASE_NAMES = {"execute", "executemany", "executescript", "transaction", "fetch_one", "fetch_all", "in_list",
                  "Store", "store"}
MAX_LINES = 500


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_the_emulator_imports_nothing_of_mangrove_nb_outside_its_package(path: Path) -> None:
    outside = [
        ast.unparse(node) for node in ast.walk(_tree(path))
        if (isinstance(node, ast.ImportFrom) and (node.level > 1 or (node.level == 0 and (node.module or "")
                                                                      .startswith("mangrove_nb"))))
        or (isinstance(node, ast.Import) and any(alias.name.startswith("mangrove_nb") for alias in node.names))
    ]
    assert not outside, f"{path.name} imports {outside}"


@pytest.mark.parametrize("name", NO_DATABASE)
def test_only_the_backend_side_touches_the_database(name: str) -> None:
    tree = _tree(PACKAGE / name)
    used = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    used |= {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    used |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for alias in node.names}
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert not used & DATABASE_NAMES, f"{name} uses {sorted(used & DATABASE_NAMES)}: ask the backend instead"
    assert "sqlite3" not in imported or name == "resources.py", f"{name} imports sqlite3"


def test_the_backend_says_what_it_owns() -> None:
    doc = ast.get_docstring(_tree(PACKAGE / "backend.py")) or ""
    for owned in ("ledgers", "generation requests", "async tasks", "batches", "projects and their events",
                  "reset", "Not owned here"):
        assert owned in doc, owned


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_each_module_stays_readable_in_a_sitting(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.name} has {lines} lines; split it (the module map in README.md says how)"
