"""The report's files: the output folder checked before anything runs, and every file written whole or not at all.

A file is written to a temporary file beside its path and renamed over it, so a symlink at an output path is
replaced, never written through, and an earlier report survives a failed write.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from mangrove_nb.errors import ReportError

if TYPE_CHECKING:
    from nbformat import NotebookNode

# Output files are never opened through a symlink (os.replace renames over one instead).
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _output_folder(out_dir: str | os.PathLike[str]) -> Path:
    """``out_dir`` as a folder this process can write to (created if missing), or a one-line ``ReportError``.

    Writability is tested by creating and deleting a file in it, which also holds for root (who ignores the
    permission bits) on a read-only or pseudo file system.
    """
    out = Path(out_dir)
    fix = "give --out (out_dir=) a folder you can write to"
    problem = None
    try:
        out.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # a file, or a symlink to nothing
        problem = f"The output folder {out} exists but is not a folder; {fix}, or move that file away."
    except OSError as exc:
        problem = f"The output folder {out} cannot be created ({_os_reason(exc)}); {fix}."
    else:
        probe = out / f".mangrove-nb-write-test-{os.urandom(6).hex()}"
        try:
            os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600))
            probe.unlink()
        except OSError as exc:
            problem = f"The output folder {out} is not writable ({_os_reason(exc)}); {fix}."
    if problem is not None:
        raise ReportError(problem) from None
    return out


def _os_reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _write_text(path: Path, text: str) -> None:
    """``_write_bytes`` of ``text`` in UTF-8 (line breaks as written)."""
    _write_bytes(path, text.encode("utf-8"))


def _write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all: into a new temporary file beside it, then renamed over it.

    The rename replaces whatever is at ``path`` (a symlink included) without following it, so nothing outside the
    output folder is ever written; until the rename, an earlier file at ``path`` stays as it was.
    """
    temporary = path.with_name(f".{path.name}.{os.urandom(6).hex()}.tmp")
    problem = None
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o666)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        problem = f"Cannot write {path} ({_os_reason(exc)}); give --out (out_dir=) a folder you can write to."
        with contextlib.suppress(OSError):
            temporary.unlink()
    if problem is not None:
        raise ReportError(problem) from None


def _write_notebook(nb: NotebookNode, path: Path) -> None:
    import nbformat

    nbformat.validate(nb)
    text = nbformat.writes(nb)
    _write_text(path, text if text.endswith("\n") else text + "\n")
