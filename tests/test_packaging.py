"""mangrove_nb installed like a library: what the sdist and the wheel hold, `mangrove-nb notebooks`, and (slow) the
wheel installed in a fresh virtualenv the way a pip user installs it.

The build uses setuptools' PEP 517 hooks (``build_sdist``, then ``build_wheel`` in the unpacked sdist, as a build
frontend does) with the setuptools the ``test`` extra installs (the requirement ``[build-system]`` names), in a
copy of the checkout (its tracked and new files, never ``.venv`` or stale ``*.egg-info``), so it works offline and
leaves the checkout alone.

The install test needs the package index for the dependencies (pandas, Flask, nbconvert...). It first asks pip,
with a short timeout and no retries, for one small package with the cache off: when pip cannot reach an index it
is configured with, the test is skipped and says which index and why; any other failure fails it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import runpy
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import tomllib
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

import mangrove_nb
from mangrove_nb import reports, starter
from mangrove_nb.errors import ConfigurationError

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
VERSION = PYPROJECT["project"]["version"]
SCRIPT = Path(sys.executable).with_name("mangrove-nb")
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "mangrove_nb.cli"]
EXTRAS = "emulator,notebook,reports"
STARTERS = ("01_explore.ipynb", "02_generate_batches.ipynb", "04_submit_report.ipynb")
EVERY_NOTEBOOK = tuple(sorted((*STARTERS, "03_quarterly_report.ipynb")))
# What the checkout holds that the sdist leaves out on purpose.
NOT_IN_SDIST = {".gitignore"}
# Checkout paths never copied for a build (local state, caches, earlier builds).
LOCAL = re.compile(r"^(\.git|\.venv|build|dist|reports|out)/|(^|/)(__pycache__|\.pytest_cache|\.ruff_cache|"
                   r"\.mypy_cache|\.hypothesis|\.ipynb_checkpoints|[^/]*\.egg-info)/|\.py[cod]$|\.sqlite3$")
UNREACHABLE = re.compile(r"Could not fetch URL (\S+): (.*?)(?: - skipping|$)", re.MULTILINE)


def run(command: list[str | Path], *, timeout: float, cwd: Path | None = None,
        env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def tail(result: subprocess.CompletedProcess[str], lines: int = 25) -> str:
    return "\n".join((result.stdout + result.stderr).splitlines()[-lines:])


# --- the starter notebooks are package data ------------------------------------------------------------------------


def test_the_starter_notebooks_ship_in_the_package_and_the_checkout_copies_are_the_same_files() -> None:
    """Both copies of each starter notebook are byte for byte what notebooks/build_notebooks.py writes, and the
    package holds exactly the notebooks the script lists (adding one there is the only change needed)."""
    builder = runpy.run_path(str(ROOT / "notebooks" / "build_notebooks.py"), run_name="builder")
    package = Path(starter.__file__).resolve().parent
    assert [folder.resolve() for folder in builder["TARGETS"]] == [ROOT / "notebooks", package]
    assert tuple(builder["NOTEBOOKS"]) == STARTERS
    assert sorted(path.name for path in package.glob("*.ipynb")) == sorted(builder["NOTEBOOKS"])
    for name in builder["NOTEBOOKS"]:
        written = builder["text"](name).encode("utf-8")
        assert (package / name).read_bytes() == written, f"run notebooks/build_notebooks.py and commit {name}"
        assert (ROOT / "notebooks" / name).read_bytes() == written, f"run notebooks/build_notebooks.py ({name})"


def test_the_notebooks_it_copies_are_the_starters_and_the_template_reports_render() -> None:
    assert starter.REPORT_TEMPLATE == reports.DEFAULT_TEMPLATE
    assert list(starter.notebooks()) == list(EVERY_NOTEBOOK)
    assert starter.notebooks()["03_quarterly_report.ipynb"].read_bytes() == (
        ROOT / "notebooks" / "03_quarterly_report.ipynb").read_bytes()


def test_the_starter_notebooks_are_declared_as_package_data() -> None:
    declared = PYPROJECT["tool"]["setuptools"]["package-data"]
    shipped = {path.resolve() for package, patterns in declared.items() for pattern in patterns
               for path in (ROOT / package.replace(".", "/")).glob(pattern)}
    assert set(starter.notebooks().values()) <= shipped


def test_the_test_extra_installs_the_build_backend_pyproject_names() -> None:
    """The packaging tests call the backend's hooks themselves, so the test extra carries [build-system]'s
    requirement (and environment.yml follows pyproject.toml: tests/test_project.py)."""
    assert set(PYPROJECT["build-system"]["requires"]) <= set(PYPROJECT["project"]["optional-dependencies"]["test"])


def test_the_readme_lists_every_command_for_a_pip_user() -> None:
    """The README's install section names `mangrove-nb notebooks` and has a row for every command of the CLI."""
    from mangrove_nb.cli import build_parser

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Install from a wheel", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^\| `mangrove-nb ([a-z-]+)", section, flags=re.MULTILINE)
    parser = build_parser()
    commands = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    assert sorted(set(listed)) == sorted(commands.choices)  # (the extras table names commands again)
    assert "    mangrove-nb notebooks" in section


# --- mangrove-nb notebooks -----------------------------------------------------------------------------------------


def notebooks_command(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("MANGROVE_")}
    return run([*COMMAND, "notebooks", *args], cwd=cwd, env=env, timeout=60)


def folder_contents(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_notebooks_copies_the_starters_and_the_template_into_a_new_folder_and_says_what_to_run_next(
        tmp_path: Path) -> None:
    result = notebooks_command(tmp_path)
    assert result.returncode == 0, tail(result)
    assert result.stderr == ""
    folder = tmp_path / "mangrove-notebooks"
    assert folder_contents(folder) == {name: path.read_bytes() for name, path in starter.notebooks().items()}
    lines = result.stdout.splitlines()
    assert lines[0] == "Wrote 4 notebooks to mangrove-notebooks:"
    assert lines[1:1 + len(EVERY_NOTEBOOK)] == [f"  {Path('mangrove-notebooks') / name}" for name in EVERY_NOTEBOOK]
    assert any(line.strip().endswith("-m mangrove_nb.lab --notebook-dir mangrove-notebooks") for line in lines)
    assert "jupyter lab mangrove-notebooks" in result.stdout


def test_notebooks_writes_into_the_folder_given_creating_its_parents(tmp_path: Path) -> None:
    result = notebooks_command(tmp_path, "work/my notebooks")
    assert result.returncode == 0, tail(result)
    assert sorted(folder_contents(tmp_path / "work" / "my notebooks")) == list(EVERY_NOTEBOOK)
    assert "--notebook-dir 'work/my notebooks'" in result.stdout  # quoted for the shell


def test_an_existing_notebook_is_never_overwritten_without_force_and_nothing_is_written(tmp_path: Path) -> None:
    folder = tmp_path / "mangrove-notebooks"
    folder.mkdir()
    (folder / "02_generate_batches.ipynb").write_text("my own work")
    result = notebooks_command(tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("mangrove-nb notebooks: ")
    assert str(Path("mangrove-notebooks") / "02_generate_batches.ipynb") in result.stderr
    assert "--force" in result.stderr and "nothing was written" in result.stderr
    assert folder_contents(folder) == {"02_generate_batches.ipynb": b"my own work"}  # no temporary file either


def test_force_overwrites_and_replaces_a_symlink_instead_of_writing_through_it(tmp_path: Path) -> None:
    folder = tmp_path / "mangrove-notebooks"
    folder.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_text("not a notebook")
    (folder / "01_explore.ipynb").symlink_to(outside)
    (folder / "03_quarterly_report.ipynb").write_text("an old copy")
    refused = notebooks_command(tmp_path)
    assert refused.returncode == 2
    assert "01_explore.ipynb already exists (and 1 more of the 4 notebooks)" in refused.stderr
    result = notebooks_command(tmp_path, "--force")
    assert result.returncode == 0, tail(result)
    assert outside.read_text() == "not a notebook"
    assert not (folder / "01_explore.ipynb").is_symlink()
    assert folder_contents(folder) == {name: path.read_bytes() for name, path in starter.notebooks().items()}


def test_a_dangling_symlink_counts_as_an_existing_file(tmp_path: Path) -> None:
    folder = tmp_path / "nbs"
    folder.mkdir()
    (folder / "01_explore.ipynb").symlink_to(tmp_path / "nowhere")
    result = notebooks_command(tmp_path, "nbs")
    assert result.returncode == 2 and "01_explore.ipynb already exists" in result.stderr
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize("where", ["a file", "under a file", "a folder at a notebook's name"])
def test_a_folder_it_cannot_use_is_one_line_and_exit_2(tmp_path: Path, where: str) -> None:
    (tmp_path / "taken").write_text("a file")
    argument = {"a file": "taken", "under a file": "taken/nbs", "a folder at a notebook's name": "nbs"}[where]
    if where == "a folder at a notebook's name":
        (tmp_path / "nbs" / "01_explore.ipynb").mkdir(parents=True)
    result = notebooks_command(tmp_path, argument, "--force")
    assert result.returncode == 2, tail(result)
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr
    assert "nothing was written" in result.stderr
    assert (tmp_path / "taken").read_text() == "a file"
    assert not list(tmp_path.rglob("*.ipynb.*.tmp"))


@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_a_failed_write_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              failure: BaseException) -> None:
    """Whole or not at all: when the last notebook cannot be put in place (a full disk, Ctrl-C), the ones already
    placed are removed, the files --force was replacing are put back, and no temporary file or folder it created
    is left."""
    rename = os.replace

    def replace(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
        if Path(target).name == "03_quarterly_report.ipynb" and str(source).endswith(".tmp"):
            raise failure
        rename(source, target)

    monkeypatch.setattr(starter.os, "replace", replace)
    expected = ConfigurationError if isinstance(failure, OSError) else KeyboardInterrupt
    with pytest.raises(expected) as raised:
        starter.copy_notebooks(tmp_path / "new" / "nbs")
    if expected is ConfigurationError:
        assert "03_quarterly_report.ipynb (No space left on device); nothing was written" in str(raised.value)
    assert not (tmp_path / "new").exists()
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "02_generate_batches.ipynb").write_text("mine")
    (kept / "03_quarterly_report.ipynb").write_text("my report")
    with pytest.raises(expected):
        starter.copy_notebooks(kept, force=True)
    assert folder_contents(kept) == {"02_generate_batches.ipynb": b"mine", "03_quarterly_report.ipynb": b"my report"}


def test_copy_notebooks_returns_the_paths_it_wrote(tmp_path: Path) -> None:
    written = starter.copy_notebooks(tmp_path / "nbs")
    assert written == [tmp_path / "nbs" / name for name in EVERY_NOTEBOOK]
    assert all(path.is_file() for path in written)


# --- the sdist and the wheel ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Built:
    checkout: list[str]  # the checkout's files that went into the build (relative, with /)
    sdist: Path
    wheel: Path


def checkout_files() -> list[str]:
    """The checkout's files as a fresh clone plus work not yet committed would have them: git's tracked and new
    files (never what .gitignore ignores), or, outside git, every file but local state."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=False, timeout=60)
    if listed.returncode == 0:
        names = [name for name in listed.stdout.split("\0") if name]
    else:
        names = [path.relative_to(ROOT).as_posix() for path in ROOT.rglob("*") if path.is_file()]
    return sorted(name for name in names if not LOCAL.search(name) and (ROOT / name).is_file())


def backend(hook: str, source: Path, out: Path) -> Path:
    """Call one of setuptools' PEP 517 hooks in ``source``, as a build frontend would; the file it built."""
    code = f"import sys; from setuptools import build_meta; print(build_meta.{hook}(sys.argv[1]))"
    result = run([sys.executable, "-c", code, out], cwd=source, timeout=300)
    assert result.returncode == 0, f"{hook} failed (pip install -e '.[test]' installs the backend):\n{tail(result)}"
    return out / result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The sdist built from a copy of the checkout, and the wheel built from the unpacked sdist."""
    base = tmp_path_factory.mktemp("build")
    source = base / "checkout"
    files = checkout_files()
    for name in files:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    sdist = backend("build_sdist", source, base / "dist")
    with tarfile.open(sdist) as archive:
        # The safe "data" filter where this Python has it (3.11.4 and later); the sdist is our own either way.
        options = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        archive.extractall(base / "unpacked", **options)  # noqa: S202
    wheel = backend("build_wheel", base / "unpacked" / f"mangrove_nb-{VERSION}", base / "dist")
    return Built(files, sdist, wheel)


@pytest.mark.slow
def test_the_sdist_holds_the_checkout_tests_notebooks_docs_benchmarks_and_the_makefile(built: Built) -> None:
    with tarfile.open(built.sdist) as archive:
        members = {member.name: member for member in archive.getmembers()}
    top = f"mangrove_nb-{VERSION}/"
    names = {name.removeprefix(top) for name, member in members.items() if member.isfile()}
    missing = sorted(set(built.checkout) - NOT_IN_SDIST - names)
    assert missing == [], f"add them to MANIFEST.in: {missing}"
    for expected in ("tests/conftest.py", "tests/test_packaging.py", "notebooks/01_explore.ipynb",
                     "notebooks/build_notebooks.py", "docs/contract/mangrove-openapi.yaml", "benchmarks/task_wait.py",
                     "Makefile", "environment.yml", "MANIFEST.in", ".ci/run", "mangrove_nb/starter/01_explore.ipynb"):
        assert expected in names
    assert members[top + ".ci/run"].mode & 0o111, ".ci/run lost its executable bit"
    local = sorted(name for name in names if LOCAL.search(name) and not name.startswith("mangrove_nb.egg-info/"))
    assert local == []


@pytest.mark.slow
def test_the_wheel_holds_the_package_and_its_data_and_no_tests(built: Built) -> None:
    with zipfile.ZipFile(built.wheel) as archive:
        names = set(archive.namelist())
    info = f"mangrove_nb-{VERSION}.dist-info/"
    assert {name.split("/")[0] + "/" for name in names} == {"mangrove_nb/", info}
    package = {name for name in built.checkout if name.startswith("mangrove_nb/")}
    assert package <= names, f"not in the wheel: {sorted(package - names)}"
    assert not any("tests" in name.split("/")[:-1] or "__pycache__" in name for name in names)
    for data in ("mangrove_nb/py.typed", "mangrove_nb/reports/templates/quarterly_report.ipynb",
                 *(f"mangrove_nb/starter/{name}" for name in STARTERS)):
        assert data in names
    with zipfile.ZipFile(built.wheel) as archive:
        assert archive.read("mangrove_nb/starter/01_explore.ipynb") == (ROOT / "notebooks" / "01_explore.ipynb"
                                                                          ).read_bytes()
        entry_points = archive.read(info + "entry_points.txt").decode()
    assert "mangrove-nb = mangrove_nb.cli:main" in entry_points


# --- the wheel, installed the way users do -------------------------------------------------------------------------


def venv_environment(venv: Path, home: Path) -> dict[str, str]:
    """The environment of a user of ``venv``: its bin first on PATH, nothing of this test run's Python, the
    Jupyter, IPython, Matplotlib and mangrove_nb state in ``home`` (pip's own settings and cache are kept)."""
    drop = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "CONDA_PREFIX", "PYTEST_")
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("MANGROVE_", "JUPYTER", *drop)) and key not in drop}
    home.mkdir(parents=True, exist_ok=True)
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}", VIRTUAL_ENV=str(venv),
               JUPYTER_DATA_DIR=str(home / "jupyter"), JUPYTER_CONFIG_DIR=str(home / "jupyter-config"),
               IPYTHONDIR=str(home / "ipython"), MPLCONFIGDIR=str(home / "matplotlib"),
               MANGROVE_NB_STATE_DIR=str(home / "state"))
    return env


def unreachable_index(python: Path, env: Mapping[str, str], scratch: Path) -> str | None:
    """Why pip cannot reach a package index it is configured with, or None when it can. One small download with
    the cache off, a 5 s timeout and no retries; pip says at debug level which index pages it could not fetch."""
    result = run([python, "-m", "pip", "download", "-vv", "--no-deps", "--no-cache-dir", "--timeout", "5",
                  "--retries", "0", "--dest", scratch, "requests>=2.31"], env=env, timeout=120)
    output = result.stdout + result.stderr
    if found := UNREACHABLE.search(output):
        return f"pip could not reach the package index {found.group(1)} ({found.group(2)[:200]})"
    assert result.returncode == 0, f"pip download failed, but not for want of the index:\n{tail(result)}"
    return None


@contextlib.contextmanager
def refusing_port() -> Iterator[int]:
    """A loopback port that refuses connections (bound, never listening)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_an_unreachable_index_is_detected_quickly_and_named(tmp_path: Path) -> None:
    """The install test's probe: with every index behind a proxy that refuses (on loopback), it names the index
    and the reason within seconds, so the install test skips saying why instead of failing or hanging."""
    with refusing_port() as port:
        env = {**os.environ, "HTTP_PROXY": f"http://127.0.0.1:{port}", "HTTPS_PROXY": f"http://127.0.0.1:{port}",
               "http_proxy": f"http://127.0.0.1:{port}", "https_proxy": f"http://127.0.0.1:{port}"}
        env = {key: value for key, value in env.items() if key.lower() != "no_proxy"}
        started = time.monotonic()
        reason = unreachable_index(Path(sys.executable), env, tmp_path)
        elapsed = time.monotonic() - started
    if reason is None:
        pytest.skip("pip is configured with no http(s) package index here (only local ones): nothing to detect")
    assert reason.startswith("pip could not reach the package index http")
    assert "connection error" in reason or "Proxy" in reason, reason
    assert elapsed < 30


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_the_wheel_installs_in_a_fresh_virtualenv_and_runs_the_notebooks_command_and_the_demo(
        built: Built, tmp_path: Path) -> None:
    """As a pip user: a new virtualenv outside the checkout (not --system-site-packages: that would hide a missing
    dependency), the wheel with [emulator,notebook,reports] resolved against the package index, ``pip check``,
    then ``mangrove-nb notebooks`` and ``mangrove-nb demo`` in an empty folder, and the report it rendered."""
    assert not tmp_path.is_relative_to(ROOT)
    venv = tmp_path / "venv"
    made = run([sys.executable, "-m", "venv", venv], timeout=300)
    assert made.returncode == 0, tail(made)
    python = venv / "bin" / "python"
    env = venv_environment(venv, tmp_path / "home")
    if reason := unreachable_index(python, env, tmp_path / "probe"):
        pytest.skip(f"{reason}: the wheel's dependencies cannot be installed")

    started = time.monotonic()
    install = run([python, "-m", "pip", "install", f"{built.wheel}[{EXTRAS}]"], env=env, timeout=1500)
    installed_in = time.monotonic() - started
    assert install.returncode == 0, tail(install)
    check = run([python, "-m", "pip", "check"], env=env, timeout=120)
    assert check.returncode == 0, tail(check)

    work = tmp_path / "empty"
    work.mkdir()
    where = run([python, "-c", "import mangrove_nb; print(mangrove_nb.__file__, mangrove_nb.__version__)"],
                cwd=work, env=env, timeout=120)
    location, version = where.stdout.split()
    assert Path(location).is_relative_to(venv) and version == mangrove_nb.__version__, tail(where)

    command = venv / "bin" / "mangrove-nb"
    copied = run([command, "notebooks", "nbs"], cwd=work, env=env, timeout=120)
    assert copied.returncode == 0, tail(copied)
    with zipfile.ZipFile(built.wheel) as wheel:  # what the wheel ships (the checkout may have moved on since)
        shipped = {name: wheel.read(path.resolve().relative_to(ROOT).as_posix())
                   for name, path in starter.notebooks().items()}
    assert folder_contents(work / "nbs") == shipped
    assert "-m mangrove_nb.lab --notebook-dir nbs" in copied.stdout

    started = time.monotonic()
    demo = run([command, "demo"], cwd=work, env=env, timeout=900)
    demo_took = time.monotonic() - started
    assert demo.returncode == 0, tail(demo)
    html = work / "reports" / "quarterly_report_2025Q1.html"
    assert f"Report (open in a browser, works offline): {Path('reports') / html.name}" in demo.stdout
    page = html.read_text(encoding="utf-8")
    assert "Net Carbon Removal" in page and "Cascade Biochar Facility" in page
    assert "<script" not in page.lower()
    assert (work / "reports" / "quarterly_report_2025Q1.ipynb").is_file()
    print(f"install {installed_in:.0f} s, demo {demo_took:.0f} s")
