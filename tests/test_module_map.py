"""The README's module map is the one picture of the package: every unit has a row, and what each imports of
ours is exactly what its row lists (absolute and relative imports alike)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from imports import PACKAGE, unit_files, units_imported

README = PACKAGE.parent / "README.md"


def _table() -> dict[str, tuple[set[str], set[str]]]:
    """The README's table: unit -> (what its job column names in backticks, the units it may import)."""
    text = README.read_text(encoding="utf-8")
    start = text.index("| module | job | imports of ours |")
    rows = {}
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        unit, job, allowed = (cell.strip() for cell in line.strip("|").split("|")[:3])
        rows[unit.strip("`")] = (set(re.findall(r"`([^`]+)`", job)), set(re.findall(r"`([^`]+)`", allowed)))
    return rows


def module_jobs() -> dict[str, set[str]]:
    """The README's table: unit -> what its job column names in backticks (a package's modules among them)."""
    return {unit: job for unit, (job, _) in _table().items()}


def module_map() -> dict[str, set[str]]:
    """The README's table: unit -> the units it may import."""
    return {unit: allowed for unit, (_, allowed) in _table().items()}


def actual_imports() -> dict[str, set[str]]:
    found = {}
    for unit, files in unit_files().items():
        found[unit] = set().union(*(units_imported(path.read_text(encoding="utf-8"), path) for path in files))
    return found


def disagreements(actual: dict[str, set[str]], allowed: dict[str, set[str]]) -> list[str]:
    problems = [f"{unit} has no row in the README's module map" for unit in sorted(set(actual) - set(allowed))]
    problems += [f"the README's module map lists {unit}, which does not exist" for unit in sorted(set(allowed)
                                                                                                - set(actual))]
    for unit in sorted(set(actual) & set(allowed)):
        if extra := actual[unit] - allowed[unit]:
            problems.append(f"{unit} imports {', '.join(sorted(extra))}, against the map's arrows")
        if unused := allowed[unit] - actual[unit]:
            problems.append(f"the map says {unit} imports {', '.join(sorted(unused))}, but it does not")
    return problems


def test_the_readme_module_map_is_the_package() -> None:
    assert disagreements(actual_imports(), module_map()) == []


@pytest.mark.parametrize(("source", "unit"), [
    ("from ..client import HttpClient\n", "client"),
    ("from .. import client\n", "client"),
    ("from mangrove_nb.api import Client\n", "api"),
    ("import mangrove_nb.forms\n", "forms"),
    ("def f():\n    from ..reports import render_report\n", "reports"),
    ("from mangrove_nb import api\n", "api"),  # a module named through the front door
    ("from mangrove_nb import errors, forms\n", "forms"),  # errors is allowed, forms is not
    ("import importlib\nimportlib.import_module('mangrove_nb.client')\n", "client"),
    ("from importlib import import_module\nimport_module('..tasks', __name__)\n", "tasks"),
    ("__import__('mangrove_nb.api')\n", "api"),
])
def test_an_import_against_the_arrows_is_caught(source: str, unit: str) -> None:
    """frames may import errors only: each of these spellings of a wrong import must be reported."""
    frames = PACKAGE / "frames" / "__init__.py"
    actual = actual_imports()
    actual["frames"] = actual["frames"] | units_imported(frames.read_text() + source, frames)
    assert f"frames imports {unit}, against the map's arrows" in disagreements(actual, module_map())


def test_the_row_of_a_package_names_each_of_its_modules() -> None:
    """A package's row says what each of its modules does: a module the row does not name (``reports/_text``,
    ``forms/period_picker`` were missing) is a room the map does not show. A subpackage is named as ``name/``."""
    jobs = module_jobs()
    unnamed = []
    for unit, files in unit_files().items():
        package = PACKAGE / unit
        if not package.is_dir():
            continue
        for path in files:
            relative = path.relative_to(package).with_suffix("")
            if relative.name in ("__init__", "__main__"):
                continue
            top = relative.parts[0] + "/" if len(relative.parts) > 1 else relative.name
            if top not in jobs.get(unit, set()):
                unnamed.append(f"{unit}/{relative.as_posix()}")
    assert unnamed == [], f"modules the README's module map does not name in their package's row: {unnamed}"


def test_what_the_front_door_loads_lazily_is_on_the_map() -> None:
    """The front door imports its lazy names by a computed module name (``import_module(f".{module}")``), which no
    reading of the source can see: it also names each of those modules under TYPE_CHECKING, so its row of the map
    lists what it loads."""
    import mangrove_nb

    init = PACKAGE / "__init__.py"
    assert set(mangrove_nb._LAZY.values()) <= units_imported(init.read_text(encoding="utf-8"), init)


def test_relative_imports_inside_a_subpackage_stay_inside_it() -> None:
    app = PACKAGE / "emulator" / "app.py"
    assert units_imported("from .store import Store\nfrom . import model\n", app) == set()
    assert units_imported("from ..client import HttpClient\n", app) == {"client"}
    assert units_imported("from .. import connect\n", Path(app)) == {"mangrove_nb"}
