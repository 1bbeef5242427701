"""The project's own promises: one front door, a light import, conda and pip in step, two set-up commands."""

from __future__ import annotations
import __future__

import re
import subprocess
import sys
import tomllib
import types
from pathlib import Path

import pytest
import yaml

import mangrove_nb

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("matplotlib", "ipywidgets", "nbformat", "nbclient", "nbconvert", "flask", "werkzeug")


def _requirement(text: str) -> tuple[str, str]:
    match = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*(.*?)\s*", text)
    assert match, text
    return match.group(1).lower().replace("_", "-"), match.group(2).replace(" ", "")


def test_environment_yml_installs_what_pyproject_declares() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {_requirement(r) for r in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        declared |= {_requirement(r) for r in extra}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = {_requirement(d) for d in env["dependencies"] if isinstance(d, str) and not d.startswith(("python", "pip"))}
    assert conda == declared, f"only in environment.yml: {conda - declared}; only in pyproject: {declared - conda}"
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip_section == ["--no-deps -e ."]
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert python.replace("python", "") == project["requires-python"]


def test_readme_gives_exactly_two_setup_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    setup = readme.split("## Set up", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^\s*(make [a-z-]+)\s*$", setup, flags=re.MULTILINE)
    assert commands == ["make demo", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, re.MULTILINE) and re.search(r"^test:", makefile, re.MULTILINE)
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_import_is_light() -> None:
    """``import mangrove_nb``, and the console script's ``from mangrove_nb.cli import main``, load none of the heavy
    libraries, pandas and requests included: they take 0.4 s, and Ctrl-C during them, before ``main`` can catch it,
    printed a traceback (the client loads them on first use)."""
    for module in ("mangrove_nb", "mangrove_nb.cli"):
        code = f"import sys, {module}; print([m for m in {(*HEAVY, 'pandas', 'requests')!r} if m in sys.modules])"
        loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        assert loaded.strip() == "[]", module


def test_public_names_are_listed_once() -> None:
    defined = {name for name, value in vars(mangrove_nb).items()
               if not name.startswith("_") and not isinstance(value, types.ModuleType | __future__._Feature)}
    lazy = set(mangrove_nb._LAZY)  # all installed here (the test extra includes the notebook extra)
    assert set(mangrove_nb.__all__) == defined | lazy | {"__version__"}
    assert len(mangrove_nb.__all__) == len(set(mangrove_nb.__all__))


def test_the_front_door_keeps_its_modules_as_attributes() -> None:
    """``import mangrove_nb`` loaded the client at once, so ``mangrove_nb.settings`` (the README points there),
    ``.client`` or ``.frames`` worked without importing them; the lazy front door keeps that."""
    code = ("import mangrove_nb as m; print(m.settings.Settings.__name__, m.client.HttpClient.__name__, "
            "m.frames.BATCHES_SCHEMA is not None, m.api.Client is m.Client)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/")
    assert result.stdout.split() == ["Settings", "HttpClient", "True", "True"]
    with pytest.raises(AttributeError, match="has no attribute 'nosuch'"):
        mangrove_nb.nosuch  # noqa: B018
    assert not hasattr(mangrove_nb, "a.b")  # raised ModuleNotFoundError


def test_a_core_install_imports_star_and_names_the_extra_a_widget_needs() -> None:
    """Without the notebook extra (matplotlib, ipywidgets), ``from mangrove_nb import *`` raised
    ModuleNotFoundError: it now gives the core names, and a widget or plot asked for by name says which extra
    installs it."""
    code = ("import sys; sys.modules['matplotlib'] = None; sys.modules['ipywidgets'] = None\n"
            "from mangrove_nb import *\nimport mangrove_nb as m\nprint(connect.__name__, 'plot_batches' in m.__all__)\n"
            "try:\n    m.GenerationForm\nexcept ModuleNotFoundError as e:\n    print(e)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/")
    first, said = result.stdout.splitlines()
    assert first == "connect False"
    assert said == ("mangrove_nb.GenerationForm needs ipywidgets and matplotlib, which are not installed in this "
                    "Python; install it with pip install 'mangrove_nb[notebook]'.")


def test_lazy_names_resolve_only_when_used() -> None:
    code = ("import sys, mangrove_nb as m; assert 'matplotlib' not in sys.modules; "
            "assert callable(m.plot_batches); assert 'matplotlib' in sys.modules; print('ok')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "ok"
    assert mangrove_nb.__version__ == tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
