"""What a render writes and says of it: ``ReportPaths``, the tables for the workbook (``_read_tables``), the files
of a report's name not rendered this time (``_warn_stale``, ``StaleReportWarning``), what a failed or interrupted
report wrote (``_written``), and a replay's check against its snapshot (``_check_replayed``).
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from mangrove_nb.errors import ReportError

from ._arguments import FORMATS
from ._text import _one_line
from .files import _NOFOLLOW, _os_reason
from .notebook import META_KEY
from .snapshot import SUFFIX, Snapshot, other_version

if TYPE_CHECKING:
    from nbformat import NotebookNode

    from mangrove_nb import Period


class ReportPaths(NamedTuple):
    """Where ``render_report`` wrote the executed notebook and each format asked for (None: not asked for), the
    snapshot folder (``snapshot=True``), and ``stale``: files of the same name in a format not rendered this time
    (and a snapshot folder not taken this time), left from an earlier render; they may show other data."""

    ipynb: Path
    html: Path | None
    pdf: Path | None = None
    xlsx: Path | None = None
    snapshot: Path | None = None
    stale: tuple[Path, ...] = ()


class StaleReportWarning(UserWarning):
    """Files of a report's name, in formats not rendered this time, left beside it from an earlier render (never
    deleted: they are the user's). ``files`` are their paths; ``formats`` the formats that would refresh them all
    (this render's and theirs), ``snapshot`` whether one of them is a snapshot folder."""

    def __init__(self, files: Sequence[Path], formats: Sequence[str], snapshot: bool) -> None:
        self.files = tuple(files)
        self.formats = tuple(formats)
        self.snapshot = snapshot
        super().__init__(self.text(f"formats={','.join(self.formats)!r}", "snapshot=True"))

    def text(self, formats: str, snapshot: str) -> str:
        """The warning, with how to ask for the formats (``formats``) and for a snapshot (``snapshot``) in the
        caller's words: ``formats='html,pdf'`` in Python, ``--format html,pdf`` on the command line."""
        names = ", ".join(str(path) for path in self.files)
        one = len(self.files) == 1
        how = formats + (f" and {snapshot}" if self.snapshot else "")
        return (f"⚠ {names} {'was' if one else 'were'} left from an earlier render (not rendered this time) and may "
                f"show other data than this report: render {'it' if one else 'them'} again with {how}, or remove "
                f"{'it' if one else 'them'}.")


def _warn_stale(paths: ReportPaths, stem: Path, formats: Sequence[str], *, replay: Snapshot | None) -> ReportPaths:
    """``paths`` with ``stale``: the files named ``stem`` in the formats not rendered now, and a snapshot folder of
    that name not taken now (unless it is the one replayed), each left from an earlier render; a
    ``StaleReportWarning`` names them. Nothing is deleted."""
    left = [f for f in FORMATS if f not in formats and os.path.lexists(stem.with_name(f"{stem.name}.{f}"))]
    folder = stem.with_name(stem.name + SUFFIX)
    replayed = replay is not None and folder.resolve() == replay.path.resolve()
    old_snapshot = paths.snapshot is None and os.path.lexists(folder) and not replayed
    stale = (*(stem.with_name(f"{stem.name}.{f}") for f in left), *([folder] if old_snapshot else []))
    if stale:
        warnings.warn(StaleReportWarning(stale, [f for f in FORMATS if f in formats or f in left], old_snapshot),
                      stacklevel=3)
    return paths._replace(stale=stale)


def _check_replayed(nb: NotebookNode, replay: Snapshot, log: Path) -> None:
    """A replay that asked the snapshot for something it does not hold (even where the error was swallowed), or
    whose data fingerprint is not the snapshot's, is refused before anything is written."""
    with contextlib.suppress(FileNotFoundError):
        missed = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line]
        if missed:
            raise ReportError(_one_line(str(missed[0])))
    found = nb.metadata.get(META_KEY, {}).get("fingerprint")
    if found != replay.manifest.get("fingerprint"):
        raise ReportError(_one_line(
            f"The data of the snapshot {replay.path.name} do not give the fingerprint its manifest records: the "
            f"report rendered from it has {str(found)[:12]}…, not {str(replay.manifest.get('fingerprint'))[:12]}…, so "
            "the snapshot was edited or damaged since it was taken (or the report's template is not the one it was "
            f"rendered with){other_version(replay)}{_older_fingerprint(replay)}. Nothing was written."))


def _older_fingerprint(replay: Snapshot) -> str:
    """A snapshot whose manifest does not say its fingerprint covers every answer read was taken before it did (or
    with an edited template): its fingerprint cannot be reproduced."""
    if "fingerprint_format" in replay.manifest:
        return ""
    return ("; or it was taken before the fingerprint covered every answer the report read: take it again with "
            "--snapshot")


def _written(period: Period, paths: ReportPaths, written: Sequence[Path]) -> str:
    """What an interrupted or failed report wrote: "2024Q2 is incomplete: its notebook and HTML were written, not
    its PDF." (and whether a file of a missing one's name is left from an earlier render), or, interrupted once
    every file was written, "2024Q2's notebook, HTML and PDF were written."."""
    kinds = {paths.ipynb: "notebook", paths.html: "HTML", paths.pdf: "PDF", paths.xlsx: "workbook"}
    done = [kinds[p] for p in written]
    absent = [p for p in (paths.html, paths.pdf, paths.xlsx) if p is not None and p not in written]

    def listed(names: Sequence[str]) -> str:
        return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"

    were = "was" if len(done) == 1 else "were"
    if not absent:
        return f"{period.label}'s {listed(done)} {were} written."
    older = [p.name for p in absent if os.path.lexists(p)]
    left = f" ({listed(older)} beside it {'is' if len(older) == 1 else 'are'} from an earlier render)" if older else ""
    return (f"{period.label} is incomplete: its {listed(done)} {were} written, not its "
            f"{listed([kinds[p] for p in absent])}{left}.")


def _read_tables(path: Path) -> str:
    """The tables the template's last cell wrote (never read through a symlink), or a one-line ``ReportError``."""
    problem = None
    try:
        descriptor = os.open(path, os.O_RDONLY | _NOFOLLOW)
        with os.fdopen(descriptor, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        problem = (f"The report's last cell wrote no tables for the spreadsheet ({path.name}): the template must end "
                   "with the cell that calls reports.write_tables(export_tables, ...), as the template mangrove_nb "
                   "ships does.")
    except OSError as exc:
        problem = f"Cannot read the report's tables for the spreadsheet ({path.name}: {_os_reason(exc)})."
    raise ReportError(problem) from None
