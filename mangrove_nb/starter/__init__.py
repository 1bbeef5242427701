"""The starter notebooks, shipped in the package, and ``mangrove-nb notebooks``: copies of them in a folder.

The ``*.ipynb`` files beside this module are package data (so a wheel carries them), written together with the
copies in a checkout's ``notebooks/`` by ``notebooks/build_notebooks.py``; a test checks both are what it writes.
``copy_notebooks(directory)`` copies them, and the report template the package renders
(``mangrove_nb/reports/templates/quarterly_report.ipynb``) as ``03_quarterly_report.ipynb``, into ``directory``
(created if missing), and returns the paths it wrote:

    from mangrove_nb.starter import copy_notebooks

    copy_notebooks("mangrove-notebooks")    # [.../01_explore.ipynb, .../02_generate_batches.ipynb, ...]

An existing file (a symlink included) is never overwritten unless ``force=True`` (``--force``): the
``ConfigurationError`` names it, and nothing is written. The copies are written whole or not at all: every file is
first written to a temporary file beside its target, and only when all of them are written are they renamed into
place (a rename replaces a symlink, never writes through it), each file that was there moved aside until all are
in place. On any failure (Ctrl-C included) the files placed are removed, those moved aside put back, and the
temporary files and the folders this call created removed; the ``ConfigurationError`` says what could not be
written.

Imports nothing heavy: no nbformat, no Jupyter (a copy is a copy of bytes).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shlex
import shutil
import sys
from pathlib import Path

from mangrove_nb.errors import ConfigurationError

__all__ = ["DEFAULT_FOLDER", "REPORT_NAME", "copy_notebooks", "next_steps", "notebooks"]

HERE = Path(__file__).resolve().parent
# The template mangrove_nb.reports renders (reports.DEFAULT_TEMPLATE; a test checks they are the same path). It is
# found by its place in the package rather than imported, so copying notebooks needs none of the reports extra.
REPORT_TEMPLATE = HERE.parent / "reports" / "templates" / "quarterly_report.ipynb"
# The template's name in the copy, as in a checkout's notebooks/.
REPORT_NAME = "03_quarterly_report.ipynb"
DEFAULT_FOLDER = "mangrove-notebooks"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def notebooks() -> dict[str, Path]:
    """What ``copy_notebooks`` writes: file name -> the shipped file, in name order (the starters, the template)."""
    found = {path.name: path for path in HERE.glob("*.ipynb")}
    found[REPORT_NAME] = REPORT_TEMPLATE
    return dict(sorted(found.items()))


def copy_notebooks(directory: str | os.PathLike[str] = DEFAULT_FOLDER, *, force: bool = False) -> list[Path]:
    """Copy the starter notebooks and the report template into ``directory``, whole or not at all.

    Returns the paths written (``directory`` joined with each name). Raises ``ConfigurationError`` when a file is
    already there (unless ``force``), when ``directory`` is not a folder, or when something cannot be written;
    then nothing was written.
    """
    folder = Path(directory)
    sources = notebooks()
    targets = [folder / name for name in sources]
    if os.path.lexists(folder) and not folder.is_dir():
        raise ConfigurationError(f"{folder} exists but is not a folder; nothing was written. Give another folder "
                                 "(DIR), or move that file away.")
    existing = [target for target in targets if os.path.lexists(target)]
    if folders := [target for target in existing if target.is_dir() and not target.is_symlink()]:
        raise ConfigurationError(f"{folders[0]} is a folder, where a notebook would go; nothing was written. Move "
                                 "it away, or give another folder (DIR).")
    if existing and not force:
        more = f" (and {len(existing) - 1} more of the {len(targets)} notebooks)" if len(existing) > 1 else ""
        raise ConfigurationError(f"{existing[0]} already exists{more}; nothing was written. Pass --force "
                                 "(force=True) to overwrite the notebooks there, or give another folder (DIR).")
    # The folders this call creates (the deepest first), removed again if it fails.
    created = [path for path in (folder, *folder.parents) if not os.path.lexists(path)]
    staged: list[tuple[Path, Path]] = []  # (temporary file, its target)
    moved: list[tuple[Path, Path]] = []  # (a file that was at a target, where it was moved aside)
    placed: list[Path] = []
    target = folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for (name, source), target in zip(sources.items(), targets, strict=True):
            temporary = folder / f".{name}.{os.urandom(6).hex()}.tmp"
            staged.append((temporary, target))
            _write_new(temporary, source.read_bytes())
        for temporary, target in staged:
            if os.path.lexists(target):  # with force: kept aside until every notebook is in place
                aside = temporary.with_suffix(".old")
                os.replace(target, aside)
                moved.append((target, aside))
            os.replace(temporary, target)
            placed.append(target)
    except BaseException as exc:
        for path in placed:
            with contextlib.suppress(OSError):
                path.unlink()
        for path, aside in moved:
            with contextlib.suppress(OSError):
                os.replace(aside, path)
        for temporary, _ in staged:
            with contextlib.suppress(OSError):
                temporary.unlink()
        for path in created:
            with contextlib.suppress(OSError):
                path.rmdir()  # only if empty: never anything this call did not write
        if not isinstance(exc, OSError):
            raise
        reason = exc.strerror or type(exc).__name__
        raise ConfigurationError(f"cannot write {target} ({reason}); nothing was written. Give a folder you can "
                                 "write to (DIR).") from None
    for _, aside in moved:
        with contextlib.suppress(OSError):
            aside.unlink()
    return targets


def _write_new(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file at ``path`` (never through a symlink, never over a file)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o666)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)


def next_steps(directory: str | os.PathLike[str]) -> list[str]:
    """What to run next, as lines to print: the emulator and JupyterLab on ``directory``, in one command."""
    python = "python" if _is_on_path(sys.executable) else shlex.quote(sys.executable)
    folder = shlex.quote(str(directory))
    lines = ["Next: start a local emulator and JupyterLab on them, connected to it (Ctrl-C stops both):",
             f"  {python} -m mangrove_nb.lab --notebook-dir {folder}"]
    if importlib.util.find_spec("jupyterlab") is None:
        lines.append("JupyterLab is not installed here; first: pip install 'mangrove_nb[lab]'")
    lines.append(f"Against the real API instead: set MANGROVE_API_TOKEN, then: jupyter lab {folder}")
    return lines


def _is_on_path(executable: str) -> bool:
    """Whether ``python`` on PATH is this interpreter in this environment (so the short spelling runs the same one
    with the same packages): the same file, in the same folder (a virtualenv's python links to the system's)."""
    found = shutil.which("python")
    if found is None:
        return False
    same_folder = Path(os.path.abspath(found)).parent == Path(os.path.abspath(executable)).parent
    try:
        return same_folder and os.path.samefile(found, executable)
    except OSError:
        return False
