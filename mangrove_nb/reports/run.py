"""Render a report: check the arguments, build the notebook, execute it in one kernel (progress per cell,
failures named by cell), clean it, write the ``.ipynb`` and its HTML.

``render_report`` executes the notebook in one kernel whose environment carries ``MANGROVE_API_URL``,
``MANGROVE_API_TOKEN`` and ``MANGROVE_NB_QUIET=1`` (the token is never written into the notebook), prints one
line per cell on stderr, and writes ``<stem>.ipynb`` and, as ``formats`` asks (``FORMATS``: html, pdf, xlsx;
default html), ``<stem>.html``, ``<stem>.pdf`` (``pdf``) and ``<stem>.xlsx`` (``xlsx``: the template's last cell
writes the tables to ``.<stem>.tables.json`` in the output folder, read and deleted here). An unknown format, and a
PDF without Playwright or Chromium, are one-line errors raised before anything runs. A failing cell stops the run with
``ReportError`` naming the cell (its number, section heading and first line) and leaves the partial notebook as
``<stem>_FAILED.ipynb``; so does an interrupt (Ctrl-C), which is re-raised with a note saying where the partial
notebook is. Errors raised while the kernel starts are not chained to frames that hold its environment, and a
failing cell's error is chained to a scrubbed copy without frames.

One process, one kernel per report: the kernel boots while the parent generates missing batches
(``generate_missing``) and loads nbconvert in a thread (and launches Chromium in another, for a PDF), and it is
stopped at once after the last cell.

``render_reports`` renders a range of quarters or years (``notebook.report_range``) in one go: the checks once, then
each report in its own kernel, the next one launched (importing what the template uses as it boots: ipykernel's
``exec_lines``) as soon as the current one answers, so it is ready when its turn comes; every generation asked for
happens before the first report reads. Every report kernel's client reads through ``snapshot.connect``: a read
cache in a private temporary folder shared by the command's reports (each answer read once), or, for
``from_snapshot``, the snapshot (no token, no API; the last progress line says which snapshot, taken when).
``snapshot=True`` keeps what each report read as ``<stem>.snapshot/``. The spare kernel, the cache and the logs never
outlive the call, whatever ends it. Files of a report's name in a format not rendered this time (an older ``.pdf``
beside a fresh ``.html``), and a snapshot folder not taken this time, are left as they are and named by a
``StaleReportWarning`` (and ``ReportPaths.stale``): they may show other data.

Before anything runs, a period outside ``REPORT_YEARS`` (1970 to 2100) is a ``PeriodError``. A report asking for a
PDF fails once its kernel answers, before any cell runs, when Chromium does not start (``PdfPrinter.ready``). A
failure or an interrupt after some of a report's files were written says which were and which were not
("2024Q2 is incomplete: its notebook and HTML were written, not its PDF"; "2024Q2's report was written, not its
snapshot"); the tables file for the workbook is
removed on every way out, and the browser is closed (waited for, through another Ctrl-C) before the error goes on. A
generation asked for over a range that fails says at which period, and what was generated before it. The HTML page
(and the PDF printed from it) carries no control or format character of API text (``_printable``). An interrupt
cancels what nbclient left running on its event loop before the kernel stops (``_settle_tasks``), so nothing prints
after the one line; one that lands while a kernel stops does not leave it running (``_stop_kernel`` tries again).

nbclient and jupyter_client are imported inside the functions that need them.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from mangrove_nb.errors import MangroveError, ReportError, redact
from mangrove_nb.frames import can_generate, ledger_names
from mangrove_nb.settings import PROJECT_ENV_VAR, Secret

from ._text import _one_line, _plural
from .clean import KERNEL_ENV, _cleaned, _KernelEnvironment, _scrub_sources, _secret_scrubber
from .files import _NOFOLLOW, _os_reason, _output_folder, _write_bytes, _write_notebook, _write_text
from .html import _html_title, _WarmExporter
from .notebook import (
    MAX_REPORTS,
    META_KEY,
    _check_project,
    _collected_metadata,
    _project_argument,
    build_report,
    inject_parameters,
    quarter_period,
    report_period,
    report_range,
    report_stem,
    resolve_ledgers,
)
from .pdf import PdfPrinter, pdf_browser
from .sections.ledgers import select_ledgers
from .snapshot import (
    MANIFEST_NAME,
    RESPONSES_NAME,
    SUFFIX,
    Plan,
    ReadCache,
    Snapshot,
    check_snapshot,
    load_snapshot,
    manifest,
    other_version,
    replay_description,
    replaying_client,
    responses_text,
    write_snapshot,
)
from .xlsx import workbook

if TYPE_CHECKING:
    from nbformat import NotebookNode

    from mangrove_nb import Client, Period


FORMATS = ("html", "pdf", "xlsx")
# The years a report may cover: those the emulator accepts in a request body (the contract names no bound; pandas,
# which the report's cells use, cannot hold a date before 1678 at all).
REPORT_YEARS = (1970, 2100)


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


def parse_formats(formats: str | Sequence[str]) -> tuple[str, ...]:
    """The report formats ``formats`` names (``"html,pdf"`` or ``["html", "pdf"]``), in ``FORMATS`` order; an
    unknown one is a one-line ``ValidationError`` (``argument="format"``) naming the valid formats."""
    import difflib

    from mangrove_nb.errors import ValidationError

    items = formats.split(",") if isinstance(formats, str) else [str(item) for item in formats]
    wanted = {item.strip().lower() for item in items if item.strip()}
    unknown = sorted(wanted - set(FORMATS))
    if unknown or not wanted:
        bad = unknown[0] if unknown else ""
        close = difflib.get_close_matches(bad, FORMATS, n=1, cutoff=0.5) if bad else []
        what = f"Unknown report format {_one_line(bad, 40)!r}" + (f" (did you mean {close[0]!r}?)" if close else "") \
            if bad else "No report format given"
        raise ValidationError(f"{what}; the formats are {', '.join(FORMATS)}: give one or a comma list such as "
                              "html,pdf,xlsx.", argument="format")
    return tuple(f for f in FORMATS if f in wanted)


def render_report(
    quarter: str | None = None,
    *,
    year: str | int | None = None,
    ledgers: Sequence[str] | None = None,
    project: int | str | None = None,
    out_dir: str | os.PathLike[str] = "reports",
    base_url: str | None = None,
    token: str | Secret | None = None,
    generate_missing: bool = False,
    progress: bool = True,
    timeout: int = 600,
    template: str | os.PathLike[str] | None = None,
    formats: str | Sequence[str] = ("html",),
    snapshot: bool = False,
    from_snapshot: str | os.PathLike[str] | None = None,
) -> ReportPaths:
    """Build, execute and export the report for ``quarter`` (or, with ``year``, the annual report of that calendar
    year, compared with the year before); returns the paths written (``ReportPaths``: the ``.ipynb``, each format
    asked for, the snapshot folder, and ``stale``, older files of the report's name that this call did not write,
    which a ``StaleReportWarning`` names too).

    ``ledgers`` are ledger ids or names (default: every ledger with a model); a report on chosen ledgers is
    written under its own name (``quarterly_report_2025Q1_net-carbon-removal.html``), never over the
    all-ledger report. ``project`` is the project the report is titled with; it defaults to
    ``MANGROVE_PROJECT_ID``, else to the project the ledgers say they belong to (when the API says so).
    ``token`` and ``base_url`` default to ``MANGROVE_API_TOKEN`` / ``MANGROVE_API_URL``; both reach the kernel
    through its environment only. ``generate_missing=True`` first generates, ledger by ledger, what the
    quarter's preview says is missing (never anything else); without it nothing is generated. ``progress``
    prints one line per cell on stderr. ``timeout`` is the limit for each cell, in seconds. ``formats`` are the
    files to write besides the ``.ipynb`` (``FORMATS``: ``"html"``, ``"pdf"``, ``"xlsx"``; a list or a comma
    list); a PDF needs the ``pdf`` extra (Playwright) and a system Chromium (``pdf.pdf_browser``).

    ``snapshot=True`` also writes what the report read from the API as ``<stem>.snapshot/`` (``snapshot``:
    every answer as JSON lines, and a manifest without the token). ``from_snapshot=`` a snapshot folder renders
    that report again from it alone: no token, no API contacted, the same numbers and fingerprint; ``quarter``,
    ``year``, ``ledgers``, ``project`` and ``base_url`` may be left out (they come from its manifest), and when
    given must be the snapshot's.

    Before anything runs or is generated, the quarter, the settings (token and URL), the template, the ledgers
    (every name or id must be one the API lists; an unknown one is named with the closest matches), the project
    and ``out_dir`` are checked: the folder must exist or be creatable, and be writable. Files are written to a
    temporary file in ``out_dir`` and renamed into place, so a symlink at an output path is replaced, never
    written through, and an earlier report stays whole when writing fails. Every expected failure is a
    ``MangroveError`` with a one-line message (``ReportError``, ``PeriodError``, ``ValidationError``,
    ``ConfigurationError``, the API's errors); an interrupt (Ctrl-C) stops the kernel, keeps the partial notebook
    and is re-raised.
    """
    # Sealed first, before anything can raise: no frame of this module holds the raw token in a local, so a
    # traceback shown with its locals (IPython's verbose mode, error trackers) cannot show it.
    token = Secret(token) if isinstance(token, str) else token
    periods = _periods(quarter, year, one=True, from_snapshot=from_snapshot is not None)
    return _render_all(periods, ledgers=ledgers, project=project, out_dir=out_dir, base_url=base_url, token=token,
                       generate_missing=generate_missing, progress=progress, timeout=timeout, template=template,
                       formats=formats, snapshot=snapshot, from_snapshot=from_snapshot)[0]


def render_reports(
    quarters: str | Sequence[str] | None = None,
    *,
    years: str | int | Sequence[str | int] | None = None,
    ledgers: Sequence[str] | None = None,
    project: int | str | None = None,
    out_dir: str | os.PathLike[str] = "reports",
    base_url: str | None = None,
    token: str | Secret | None = None,
    generate_missing: bool = False,
    progress: bool = True,
    timeout: int = 600,
    template: str | os.PathLike[str] | None = None,
    formats: str | Sequence[str] = ("html",),
    snapshot: bool = False,
) -> list[ReportPaths]:
    """``render_report`` for each quarter of ``quarters`` (``"2024Q1..2025Q4"``, or a list of quarters), or each
    year of ``years`` (``"2023..2025"``), in one go; returns the paths in order.

    The range is checked first (a reversed range, mixed kinds of period, more than ``MAX_REPORTS``: a one-line
    ``PeriodError`` naming the fix); then the settings, ledgers, project and ``out_dir``, once. Each report still
    runs in a kernel of its own, but the next kernel starts (and imports pandas, matplotlib and mangrove_nb) while
    the current one runs, and the reports share one read cache, so each API answer is read once (a quarter's
    batches are also the next one's previous quarter). ``generate_missing=True`` generates every period's missing
    batches before the first report reads anything. No kernel is left running after success, failure or Ctrl-C;
    a failure keeps the reports already written and says so.
    """
    token = Secret(token) if isinstance(token, str) else token
    periods = _periods(quarters, years, one=False, from_snapshot=False)
    return _render_all(periods, ledgers=ledgers, project=project, out_dir=out_dir, base_url=base_url, token=token,
                       generate_missing=generate_missing, progress=progress, timeout=timeout, template=template,
                       formats=formats, snapshot=snapshot, from_snapshot=None)


def _periods(quarters: Any, years: Any, *, one: bool, from_snapshot: bool) -> list[Period] | None:
    """The periods asked for: quarters or years (one, a range ``A..B``, or a list), checked; None when a snapshot
    says which."""
    from mangrove_nb.errors import ValidationError

    if quarters is not None and years is not None:
        raise ValidationError("Give quarters or years (--quarter or --year), not both.", argument="quarter")
    if quarters is None and years is None:
        if from_snapshot:
            return None
        raise ValidationError("Give the quarter to report on (--quarter 2025Q1, a range such as 2024Q1..2025Q4) or "
                              "the year (--year 2025).", argument="quarter")
    kind, given = ("quarter", quarters) if quarters is not None else ("year", years)
    items = [given] if isinstance(given, str | int) else list(given)
    periods: list[Period] = []
    for item in items:
        if kind == "quarter" and one and ".." not in str(item):
            periods.append(quarter_period(str(item)))  # its error names what a quarter is
        else:
            periods.extend(report_range(item, kind))
    if one and len(periods) != 1:
        if from_snapshot:
            raise ValidationError(f"A snapshot holds one report, not {len(periods)}: give one {kind} with "
                                  "--from-snapshot, or none (its manifest says which).", argument=kind)
        raise ValidationError(f"render_report renders one report, not {len(periods)}: give one {kind}, or call "
                              "render_reports for a range.", argument=kind)
    if len({p.label for p in periods}) != len(periods) or len(periods) > MAX_REPORTS:
        raise ValidationError(f"Give each {kind} once, at most {MAX_REPORTS} in one command.", argument=kind)
    _check_years(periods, kind)
    return periods


def _check_years(periods: Sequence[Period], kind: str) -> None:
    """A ``PeriodError`` for a period outside ``REPORT_YEARS``, before anything runs, rather than a report cell that
    fails on the API's 422 (or pandas' date range) and leaves ``_FAILED.ipynb``."""
    from mangrove_nb.errors import PeriodError

    first, last = REPORT_YEARS
    outside = next((p for p in periods if not first <= p.start.year <= last), None)
    if outside is not None:
        raise PeriodError(f"{outside.label} is outside the years a report covers ({first} to {last}): give a {kind} "
                          f"from {first} to {last}.", argument=kind)


@dataclass
class _Job:
    """One report of a command: its period, notebook (parameters injected) and file name."""

    period: Period
    nb: NotebookNode
    stem: str
    parameters: dict[str, Any]


def _render_all(periods: list[Period] | None, *, ledgers: Sequence[str] | None, project: int | str | None,
                out_dir: str | os.PathLike[str], base_url: str | None, token: Secret | None, generate_missing: bool,
                progress: bool, timeout: int, template: str | os.PathLike[str] | None, formats: str | Sequence[str],
                snapshot: bool, from_snapshot: str | os.PathLike[str] | None) -> list[ReportPaths]:
    """Check everything once, then render each period's report (``_run_jobs``)."""
    from mangrove_nb import connect
    from mangrove_nb.errors import ValidationError

    chosen_formats = parse_formats(formats)  # before anything runs: a typo costs nothing
    browser = pdf_browser() if "pdf" in chosen_formats else None
    started = time.monotonic()
    if isinstance(ledgers, str):
        raise TypeError("ledgers must be a list of ledger ids or names, not a single string; wrap it: [ledger].")
    replay = None
    if from_snapshot is not None:
        if generate_missing:
            raise ValidationError("A report rendered from a snapshot sends nothing: leave --generate-missing out, "
                                  "or render from the API.", argument="generate_missing")
        replay = load_snapshot(from_snapshot)
        check_snapshot(replay, period=periods[0] if periods else None, ledgers=None,
                       project=_project_argument(project) if project is not None else None, base_url=base_url)
        periods = [report_period(replay.period)]
        _check_years(periods, periods[0].kind)
        client = replaying_client(replay, show_progress=progress)
    else:
        # Settings are resolved (the token found and checked, the URL checked) before anything is written or any
        # kernel starts: a missing or malformed token fails here, fast. connect() sends nothing.
        options: dict[str, Any] = {"show_progress": progress}
        if project is not None:
            options["project_id"] = _project_argument(project)
        client = connect(token, base_url, **options)  # type: ignore[arg-type]  # the Secret, as Settings takes it
    assert periods is not None
    try:
        if replay is not None:
            taken = replay.parameters
            chosen = resolve_ledgers(client, taken["ledgers"]) if taken.get("ledgers") is not None else None
            if ledgers is not None:  # given: they must be the snapshot's (names or ids, as the API lists them)
                check_snapshot(replay, period=None, ledgers=[i for i, _ in resolve_ledgers(client, ledgers)],
                               project=None, base_url=None)
            project_id = str(taken["project"]) if taken.get("project") is not None else None
            given_url = taken.get("base_url")
        else:
            chosen = resolve_ledgers(client, ledgers) if ledgers is not None else None
            project_id = client.settings.project_id
            given_url = base_url
        if project_id is not None:
            _check_project(client, project_id)
        ids = [i for i, _ in chosen] if chosen is not None else None
        jobs = []
        for period in periods:
            nb = build_report(period.label, ledgers=ids, base_url=given_url, project=project_id, template=template)
            jobs.append(_Job(period, nb, "", dict(nb.metadata["papermill"]["parameters"])))
        out = _output_folder(out_dir)
        every = _every_ledger(client) if chosen is not None else None
        for job in jobs:
            job.stem = report_stem(job.period, chosen, every)
        return _run_jobs(jobs, client, out=out, ledgers=ids, generate_missing=generate_missing, progress=progress,
                         timeout=timeout, started=started, formats=chosen_formats, browser=browser, replay=replay,
                         keep_snapshot=snapshot)
    finally:
        client.close()


def _run_jobs(jobs: Sequence[_Job], client: Client, *, out: Path, ledgers: Sequence[str] | None,
              generate_missing: bool, progress: bool, timeout: int, started: float, formats: Sequence[str],
              browser: str | None, replay: Snapshot | None, keep_snapshot: bool) -> list[ReportPaths]:
    """Render the jobs in order, one kernel each, the next kernel started while the current one runs, all reading
    through one read cache (or the snapshot being replayed). No kernel outlives this call."""
    work = Path(tempfile.mkdtemp(prefix="mangrove-report-"))  # private (0700): the read cache and the kernels' logs
    cache = ReadCache(work / "cache")
    cache.folder.mkdir()
    exporter = _WarmExporter()  # nbconvert loads in a thread while the first kernel starts, once for every report
    spare: dict[int, Any] = {}
    done: list[ReportPaths] = []
    many = len(jobs) > 1
    replayed = "" if replay is None else (f", {replay_description(replay.path, replay.manifest)}; nothing was sent "
                                          f"to {_one_line(replay.base_url, 300)}")

    def plan(index: int) -> Plan:
        log = str(work / f"{index}.log")
        if replay is not None:
            return Plan("replay", log, snapshot=str(replay.path.resolve()))
        return Plan("record", log, cache=str(cache.folder))

    def first_meanwhile() -> None:  # while the first kernel starts: nbconvert, then every generation asked for
        exporter.start()
        if generate_missing:
            for number, job in enumerate(jobs):
                try:
                    _generate_for_report(client, job.period, ledgers, progress=progress)
                except BaseException as exc:
                    if many:  # which period blocked the run, and what was generated before it
                        exc.add_note(_generation_stopped(jobs, number))
                    raise

    try:
        for index, job in enumerate(jobs):
            begun = started if index == 0 else time.monotonic()

            def launch_next(index: int = index) -> None:  # the current kernel answers: start the next one
                following = index + 1
                if following < len(jobs) and following not in spare:
                    with contextlib.suppress(ReportError):  # it fails again, and is reported, at its turn
                        spare[following] = _launch(jobs[following].nb, env=_kernel_env(
                            client.settings, plan(following), replay=replay is not None), cwd=out, timeout=timeout)

            def check(nb: NotebookNode, index: int = index) -> None:
                if replay is not None:
                    _check_replayed(nb, replay, work / f"{index}.log")

            paths = _render(job.nb, client, job.period, ledgers=ledgers, stem=job.stem, out=out,
                            generate_missing=False, progress=progress, timeout=timeout, started=begun,
                            formats=formats, browser=browser, exporter=exporter,
                            meanwhile=first_meanwhile if index == 0 else None, kernel=spare.pop(index, None),
                            on_ready=launch_next, plan=plan(index), replaying=replay is not None, check=check,
                            prefix=f"{job.period.label} " if many else "", replayed=replayed)
            if keep_snapshot:
                paths = paths._replace(snapshot=out / f"{job.stem}{SUFFIX}")
                try:
                    _keep_snapshot(out / f"{job.stem}{SUFFIX}", job, client, paths,
                                   cache.records([work / f"{index}.log"]))
                except BaseException as exc:
                    exc.add_note(f"{job.period.label}'s report was written, not its snapshot.")
                    raise
            paths = _warn_stale(paths, out / job.stem, formats, replay=replay)
            done.append(paths)
        if many and progress:
            print(f"{len(done)} reports rendered in {time.monotonic() - started:.1f} s.", file=sys.stderr, flush=True)
        return done
    except BaseException as exc:
        if many:
            kept = f"{len(done)} of {len(jobs)} reports were written" + (
                f" ({jobs[0].period.label}..{jobs[len(done) - 1].period.label})" if done else "")
            exc.add_note(f"{kept}; the rest were not rendered.")
        raise
    finally:
        try:
            for launched in spare.values():
                _stop_kernel(launched)
        finally:
            shutil.rmtree(work, ignore_errors=True)


def _generation_stopped(jobs: Sequence[_Job], number: int) -> str:
    """"Generating stopped at 2025Q4: what was missing in 2025Q1..2025Q3 was generated, and no report was rendered;
    render 2025Q1..2025Q3 alone, or fix 2025Q4 and render the range again." """
    blocked = jobs[number].period.label
    if number == 0:
        return f"Generating stopped at {blocked}, the first of the range; no report was rendered."
    before = jobs[0].period.label if number == 1 else f"{jobs[0].period.label}..{jobs[number - 1].period.label}"
    return (f"Generating stopped at {blocked}: what was missing in {before} was generated, and no report was "
            f"rendered; render {before} alone, or fix {blocked} and render the range again.")


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


def _kernel_env(settings: Any, plan: Plan, *, replay: bool) -> _KernelEnvironment:
    """The kernel's environment: this process's, quiet, with the API URL and token (made up, for a replay) and the
    plan for its reads; a replay's kernel takes its project from the parameters only."""
    base = {**os.environ, KERNEL_ENV["quiet"]: "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1", **plan.environment()}
    if replay:
        base.pop(PROJECT_ENV_VAR, None)
    return _KernelEnvironment(base, url=settings.base_url, token=settings.token)


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


def _keep_snapshot(folder: Path, job: _Job, client: Client, paths: ReportPaths,
                   records: Sequence[Mapping[str, Any]]) -> None:
    """Write what the report read as ``folder`` (``snapshot.write_snapshot``): responses and manifest, no token."""
    import nbformat

    from mangrove_nb import __version__

    scrub = _secret_scrubber([client.settings.token])
    facts = nbformat.read(paths.ipynb, as_version=4).metadata.get(META_KEY, {})
    data = scrub(responses_text(records).decode("ascii")).encode("utf-8")  # the client redacted them already
    about = manifest(period=job.period, parameters=job.parameters, facts=facts, base_url=client.settings.base_url,
                     version=__version__, records=records, responses=data)
    text = scrub(json.dumps(about, indent=2, sort_keys=True, ensure_ascii=True) + "\n")
    write_snapshot(folder, {RESPONSES_NAME: data, MANIFEST_NAME: text.encode("utf-8")}, scrub)


def _every_ledger(client: Client) -> list[tuple[str, str]]:
    """``(id, name)`` of every ledger the API lists, so a chosen ledger's file name is its own (``report_stem``)."""
    return list(ledger_names(client.ledgers()).items())


def _render(nb: NotebookNode, client: Client, period: Period, *, ledgers: Sequence[str] | None, stem: str,
            out: Path, generate_missing: bool, progress: bool, timeout: int, started: float,
            formats: Sequence[str] = ("html",), browser: str | None = None, exporter: _WarmExporter | None = None,
            meanwhile: Callable[[], None] | None = None, kernel: Any = None,
            on_ready: Callable[[], None] | None = None, plan: Plan | None = None, replaying: bool = False,
            check: Callable[[NotebookNode], None] | None = None, prefix: str = "", replayed: str = "") -> ReportPaths:
    """Execute one report and write its files. ``exporter`` (shared by a command's reports, started by the caller),
    ``meanwhile`` (more work while the kernel starts), ``kernel`` (started already, by ``_launch``), ``on_ready``
    (called once the kernel answers), ``plan`` (what the kernel's client does with its reads), ``check`` (the
    executed notebook, before anything is written), ``prefix`` (of the progress lines) and ``replayed`` (what the
    last progress line says of a replay) serve ``_run_jobs``."""
    settings = client.settings
    secrets = [settings.token]
    scrub = _secret_scrubber(secrets)
    # A parameter that holds the token (pasted as a ledger id, say) is masked before the notebook exists anywhere
    # but here: the kernel gets the token from its environment only.
    _scrub_sources(nb, scrub)
    partial = out / f"{stem}_FAILED.ipynb"
    own_exporter = exporter is None
    exporter = exporter if exporter is not None else _WarmExporter()  # nbconvert loads in a thread meanwhile
    printer = PdfPrinter(browser) if browser is not None else None  # and Chromium launches in another
    tables = out / f".{stem}.tables.json" if "xlsx" in formats else None
    if tables is not None:  # the template's last cell writes the tables there (the kernel runs in ``out``)
        inject_parameters(nb, {**nb.metadata["papermill"]["parameters"], "export_tables": tables.name})

    def while_starting() -> None:  # runs while the kernel starts
        if own_exporter:
            exporter.start()
        if printer is not None:
            printer.start()
        if generate_missing:
            _generate_for_report(client, period, ledgers, progress=progress)
        if meanwhile is not None:
            meanwhile()

    def salvage(ran: bool) -> tuple[Path | None, str]:
        """Clean the notebook in place (frames of a traceback show it too) and keep what ran as ``partial``."""
        _cleaned(nb, secrets, out)
        if not ran:
            return None, ""
        try:
            _write_notebook(nb, partial)
        except ReportError as error:
            return None, f"The partial notebook could not be kept: {error}"
        return partial, f"The partial notebook is at {partial}."

    if plan is not None:
        env = _kernel_env(settings, plan, replay=replaying)
    else:
        env = _KernelEnvironment({**os.environ, KERNEL_ENV["quiet"]: "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1"},
                                 url=settings.base_url, token=settings.token)

    def when_ready() -> None:  # the kernel answers: a browser that did not start fails the report before any cell
        if printer is not None:
            printer.ready()
        if on_ready is not None:
            on_ready()

    written: list[Path] = []
    paths: ReportPaths | None = None
    failing = False
    try:
        try:
            _execute(nb, env=env, cwd=out, timeout=timeout, progress=progress, meanwhile=while_starting,
                     scrub=scrub, salvage=salvage, kernel=kernel, on_ready=when_ready, prefix=prefix)
            nb = _cleaned(nb, secrets, out)
            nb.metadata[META_KEY] = _collected_metadata(nb)
            if check is not None:
                check(nb)
            as_html, as_pdf, as_xlsx = (out / f"{stem}.{f}" if f in formats else None for f in FORMATS)
            paths = ReportPaths(out / f"{stem}.ipynb", as_html, as_pdf, as_xlsx)
            _write_notebook(nb, paths.ipynb)
            written.append(paths.ipynb)
            title = _html_title(nb.metadata[META_KEY], period)
            page = _printable(exporter.export(nb, title=title)) if paths.html or paths.pdf else ""
            if paths.html is not None:
                _write_text(paths.html, page)
                written.append(paths.html)
            if paths.pdf is not None and printer is not None:
                _write_bytes(paths.pdf, printer.print(page, title=title).data)
                written.append(paths.pdf)
            if paths.xlsx is not None and tables is not None:
                _write_bytes(paths.xlsx, workbook(_read_tables(tables), scrub=scrub))
                written.append(paths.xlsx)
        except BaseException:
            failing = True
            raise
        finally:
            # The tables file first (nothing can stop an unlink halfway), then the browser, waited for even through
            # another Ctrl-C (PdfPrinter.close), which goes on unless an error already does.
            if tables is not None:
                with contextlib.suppress(OSError):
                    tables.unlink()
            if printer is not None:
                try:
                    printer.close()
                except KeyboardInterrupt:
                    if not failing:
                        raise
        # A stale failure no longer describes this report (a symlink: the link goes, not its target).
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
        if progress:
            shown = [p for p in (paths.html, paths.pdf, paths.xlsx) if p is not None] or [paths.ipynb]
            print(f"Report {period.label} rendered in {time.monotonic() - started:.1f} s{replayed}: "
                  f"{', '.join(str(p) for p in shown)}", file=sys.stderr, flush=True)
    except BaseException as exc:
        said = _written(period, paths, written) if paths is not None and written else ""
        if said:  # some or all of this report's files were written: say which
            exc.add_note(said)
        raise
    return paths


def _printable(page: str) -> str:
    """The HTML page without what API text may carry that no page should show: terminal escape sequences (whole),
    control characters but tab, line feed and carriage return, and Unicode format characters (bidirectional overrides
    and isolates, zero-width characters). The classes of ``mangrove_nb._text.one_line``, which cleans the title and
    the PDF's footer, with the page's line breaks and spacing (non-breaking spaces between figures and units) kept."""
    return _unprintable().sub("", page)


@functools.cache
def _unprintable() -> re.Pattern[str]:
    import unicodedata

    controls = [c for c in range(0x110000) if unicodedata.category(chr(c)) in ("Cc", "Cf", "Cs")
                and chr(c) not in "\t\n\r"]
    ranges: list[tuple[int, int]] = []
    for code in controls:  # contiguous runs as ranges: a short character class
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1] = (ranges[-1][0], code)
        else:
            ranges.append((code, code))
    members = "".join(f"\\U{a:08x}" + (f"-\\U{b:08x}" if b != a else "") for a, b in ranges)
    return re.compile(r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]|\x1b[ -/]*[0-~]?|[" + members + "]")


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


def _generate_for_report(client: Client, period: Period, ledgers: Sequence[str] | None, *, progress: bool) -> None:
    """``generate_missing_batches``, with a ledger selection it cannot use (an unknown id) as a ``ReportError``."""
    problem = None
    try:
        generate_missing_batches(client, period, ledgers, progress=progress)
    except MangroveError:
        raise
    except (ValueError, TypeError) as exc:  # from select_ledgers: unknown ids, or no ledger with a model
        problem = _one_line(str(exc))
    if problem is not None:
        raise ReportError(f"Cannot generate the missing batches of {period.label}: {problem}") from None


def generate_missing_batches(client: Client, period: Period, ledgers: Sequence[str] | None, *,
                             progress: bool = True) -> list[str]:
    """Generate ``period`` on the ledgers whose preview counts batches to make; returns the ledgers generated.

    Ledgers without a model and ledgers with manual-select inputs (which need a choice of upstream batches)
    are skipped with a message. The preview is asked again right before each generation, so a ledger whose
    batches were made by an earlier one (models that run concurrently) is not generated twice; the client's
    own pre-checks guard against duplicates as well.
    """
    all_ledgers = client.ledgers()
    chosen = select_ledgers(all_ledgers, ledgers)
    candidates: list[tuple[int, str, str]] = []
    for row in chosen.itertuples():
        if not can_generate(row):
            _say(progress, f"Not generating {row.name} ({row.id}): it has no model.")
            continue
        inputs = client.required_inputs(row.id)
        if bool(inputs["is_manual_select"].fillna(False).any()):
            _say(progress, f"Not generating {row.name} ({row.id}): its manual-select inputs need a choice of "
                           "upstream batches (use the generation form or client.generate(..., data_point_ids=)).")
            continue
        preview = client.preview(row.id, period)
        reach = int((preview["count"] > 0).sum())
        if reach:
            candidates.append((-reach, str(row.name), str(row.id)))
    generated: list[str] = []
    # Ledgers whose generation also fills other ledgers (models that run concurrently) go first, so those
    # others then preview 0 and need no request of their own.
    for _, name, ledger_id in sorted(candidates):
        preview = client.preview(ledger_id, period)
        if int(preview["count"].sum()) == 0:
            continue
        _say(progress, f"Generating {period.label} on {name} ({ledger_id}): the preview counts "
                       f"{_counts_per_ledger(preview, ledger_id, name)}.")
        client.generate(ledger_id, period).wait(progress=progress)
        generated.append(ledger_id)
    return generated


def _counts_per_ledger(preview: Any, ledger_id: str, name: str) -> str:
    """A preview's counts, ledger by ledger, the generated ledger first: "3 batches on Net Carbon Removal, 3 on
    Biochar Produced (made by the same model)" (a total over ledgers would read as that many on one ledger)."""
    own = preview[preview["ledger_id"].astype(str) == str(ledger_id)]
    others = preview[(preview["ledger_id"].astype(str) != str(ledger_id)) & (preview["count"] > 0)]
    parts = [f"{_plural(int(own['count'].sum()), 'batch')} on {_one_line(name, 200)}"]
    for row in others.itertuples():
        shown = row.ledger_name if isinstance(row.ledger_name, str) and row.ledger_name else row.ledger_id
        parts.append(f"{int(row.count)} on {_one_line(str(shown), 200)}")
    return ", ".join(parts) + (" (made by the same model)" if len(parts) > 1 else "")


def _say(enabled: bool, message: str) -> None:
    if enabled:
        print(message, file=sys.stderr, flush=True)


# --- executing -------------------------------------------------------------------------------------------


def _execute(nb: NotebookNode, *, env: Mapping[str, str], cwd: Path, timeout: int, progress: bool,
             meanwhile: Callable[[], None] | None = None, scrub: Callable[[str], str] = redact,
             salvage: Callable[[bool], tuple[Path | None, str]] | None = None, kernel: Any = None,
             on_ready: Callable[[], None] | None = None, prefix: str = "") -> None:
    """Run every code cell in one kernel, printing ``[n/N] label`` per cell; ``ReportError`` on a failing cell.

    The kernel is launched first (or was, by ``_launch``: ``kernel``) and ``meanwhile`` runs while it starts
    (generation, loading nbconvert), so the kernel's start-up costs no extra time; ``on_ready`` runs once it
    answers, before the first cell (``_run_jobs`` starts the next report's kernel there). The kernel is stopped at
    once when the last cell is done, and on any failure or interrupt.

    Errors are raised outside the ``except`` blocks that caught their causes, and a failing cell's error is
    chained to a frameless copy with ``scrub`` applied: the frames of jupyter_client, nbclient and subprocess
    hold the kernel's environment (the token) and the kernel's raw replies, and a traceback shown with its
    locals must not reach them. ``salvage(ran)`` is called once a cell failed or the run was interrupted (after
    the kernel stopped): it cleans ``nb`` in place and keeps the partial notebook, returning its path and a
    sentence saying where it is.
    """
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    code = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"]
    labels = _cell_labels(nb)
    current: dict[str, int] = {}

    def on_cell_start(cell: Any, cell_index: int) -> None:
        if cell_index not in labels:
            return  # nbclient calls this for markdown cells too
        current["index"] = cell_index
        if progress:
            print(f"{prefix}[{code.index(cell_index) + 1}/{len(code)}] {labels[cell_index].short}", file=sys.stderr,
                  flush=True)

    name = _kernel_name(nb)
    client = kernel if kernel is not None else _launch(nb, env=env, cwd=cwd, timeout=timeout)
    client.on_cell_start = on_cell_start
    failure: ReportError | None = None
    try:
        if meanwhile is not None:
            meanwhile()
    except BaseException:
        _stop_kernel(client)
        raise
    reply = None
    try:
        client.start_new_kernel_client()  # waits until the kernel answers
        reply = client.wait_for_reply(client.kc.kernel_info())
    except Exception as exc:  # the kernel died at once, or never answered
        failure = _kernel_failure(name, exc)
    except BaseException:
        _stop_kernel(client)
        raise
    if failure is not None:
        _stop_kernel(client)
        raise failure from None
    try:
        if on_ready is not None:
            on_ready()
    except BaseException:
        _stop_kernel(client)
        raise
    if reply is not None and "language_info" in reply["content"]:
        nb.metadata["language_info"] = reply["content"]["language_info"]

    cause: BaseException | None = None
    why = ""
    try:
        try:
            for number, cell in enumerate(nb.cells):
                client.execute_cell(cell, number, execution_count=client.code_cells_executed + 1)
        finally:  # what an interrupt left running on nbclient's event loop goes first, then the kernel
            _stop_kernel(client)
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as exc:
        cause = _scrubbed(exc, scrub)
        index = current.get("index")
        why = _one_line(scrub(_short_error(nb.cells[index], exc) if index is not None else
                              f"{type(exc).__name__}: {_last_line(str(exc))}"), 1000)
    except BaseException as exc:  # Ctrl-C, or an unexpected error: keep what ran, say where, re-raise as it is
        if salvage is not None:
            _path, where = salvage("index" in current)
            if where:
                exc.add_note(where)
        raise
    if cause is None:
        return
    index = current.get("index")
    path, where = salvage(index is not None) if salvage is not None else (None, "")
    ending = "" if why.endswith((".", "!", "?")) else "."
    if index is None:
        raise ReportError(f"The report kernel stopped before any cell ran ({why}); run the report again.") from cause
    number = code.index(index) + 1
    label = _one_line(scrub(str(labels[index])), 300)
    raise ReportError(f"Report cell {number} of {len(code)} failed ({label}): {why}{ending} {where}".rstrip(),
                      cell_number=number, cell_label=label, partial=path) from cause


def _launch(nb: NotebookNode, *, env: Mapping[str, str], cwd: Path, timeout: int) -> Any:
    """The notebook's ``NotebookClient`` with its kernel process started (not yet answering: it boots while the
    caller goes on), or a one-line ``ReportError``; a python3 kernel imports what the report uses as it boots."""
    from nbclient import NotebookClient

    name = _kernel_name(nb)
    client = NotebookClient(nb, timeout=timeout, kernel_name=name, allow_errors=False,
                            record_timing=False, store_widget_state=False,
                            shutdown_kernel="immediate", resources={"metadata": {"path": str(cwd.resolve())}},
                            config=_kernel_config(), extra_arguments=_warm_up_arguments(name))
    client.reset_execution_trackers()
    client.km = client.create_kernel_manager()
    failure: ReportError | None = None
    try:
        client.start_new_kernel(env=env)
    except Exception as exc:  # no such kernel, its command missing...: the frames below hold the environment
        failure = _kernel_failure(name, exc)
    except BaseException:
        _stop_kernel(client)
        raise
    if failure is not None:
        _stop_kernel(client)
        raise failure from None
    return client


# What a python3 report kernel imports while it boots (ipykernel's exec_lines, run before it answers and never part
# of the notebook): the libraries of the template's cells, and one figure drawn (matplotlib's fonts, Agg).
_WARM_UP = "import mangrove_nb.reports.run as _mangrove_run; _mangrove_run._warm_up(); del _mangrove_run"


def _warm_up_arguments(kernel: str) -> list[str]:
    return [f"--IPKernelApp.exec_lines={_WARM_UP}"] if kernel in ("python3", "python") else []


def _warm_up() -> None:
    """Import, in a report kernel as it boots, what the template's cells import, and draw one small figure."""
    with contextlib.suppress(Exception):  # best effort: the cells import what they need anyway
        import io

        import IPython.display  # noqa: F401
        import pandas  # noqa: F401
        from matplotlib.figure import Figure

        import mangrove_nb.plots  # noqa: F401

        Figure(figsize=(1, 1)).savefig(io.BytesIO(), format="png")


def _kernel_failure(kernel: str, exc: BaseException) -> ReportError:
    """The one-line error for a kernel that could not start, from what went wrong (never its locals)."""
    from jupyter_client.kernelspec import NoSuchKernel

    if isinstance(exc, NoSuchKernel):
        what = f"no kernel named '{kernel}' is installed"
    else:
        what = f"{type(exc).__name__}: {_one_line(str(exc), 300)}".rstrip(": ")
    return ReportError(
        f"The report kernel '{kernel}' could not start ({what}). Install ipykernel in the Python that runs the "
        "report (pip install 'mangrove_nb[reports]'), or check the kernel with `jupyter kernelspec list`.")


def _stop_kernel(client: Any) -> None:
    """Stop the kernel and close its channels, from whatever state a failed start or an interrupt left them in
    (``_settle_tasks`` first: nothing nbclient left running prints on its way out). A Ctrl-C while it stops (the
    last cell had just finished, say) does not leave the kernel running and its connection file behind: the stop is
    tried again, then the interrupt is raised."""
    interrupted: KeyboardInterrupt | None = None
    for _attempt in range(3):
        try:
            _settle_tasks()  # also what an interrupted earlier attempt left on the loop
            with contextlib.suppress(Exception):  # best effort: the error being raised is the one to show
                if client.km is not None:
                    client._cleanup_kernel()
            break
        except KeyboardInterrupt as exc:
            interrupted = interrupted or exc
    if interrupted is not None:
        raise interrupted


def _settle_tasks() -> None:
    """Cancel what an interrupt left running on nbclient's event loop (a cell's polls, its reply's wait) and wait for
    it, its exceptions retrieved and its loop's error messages silenced meanwhile: the consequences of an interrupt
    (the kernel "died", a poll's assertion, the KeyboardInterrupt a task caught) are not news, and would otherwise
    print "Task exception was never retrieved" with a traceback after the command's one line."""
    import asyncio
    import gc

    from jupyter_core.utils import ensure_event_loop

    with contextlib.suppress(Exception):
        loop = ensure_event_loop()  # the loop nbclient's calls ran on, in this thread
        if loop.is_running() or loop.is_closed():
            return
        previous = loop.get_exception_handler()
        loop.set_exception_handler(lambda _loop, _context: None)
        try:
            pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.wait(pending, timeout=10))
            for task in pending:
                if task.done() and not task.cancelled():
                    task.exception()  # retrieved: never reported
            del pending
            gc.collect()  # tasks that ended with an interrupt, unreferenced now, report (to the silent handler) here
        finally:
            loop.set_exception_handler(previous)


def _scrubbed(exc: BaseException, scrub: Callable[[str], str]) -> BaseException:
    """A copy of a cell's error with ``scrub`` applied to its text and no traceback frames, to chain to."""
    from nbclient.exceptions import CellExecutionError

    if isinstance(exc, CellExecutionError):
        return CellExecutionError(scrub(exc.traceback), exc.ename, scrub(exc.evalue))
    try:
        return type(exc)(scrub(str(exc)))
    except Exception:
        return RuntimeError(scrub(str(exc)))


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""


def _kernel_config() -> Any:
    """Encrypt the kernel's loopback channels (CurveZMQ) where pyzmq and jupyter_client can: the kernel's
    environment holds the token, and ipykernel warns about plain-text TCP otherwise."""
    import zmq
    from jupyter_client.manager import KernelManager
    from traitlets.config import Config

    config = Config()
    if zmq.has("curve") and "transport_encryption" in KernelManager.class_trait_names():
        config.KernelManager.transport_encryption = "auto"
    return config


def _kernel_name(nb: NotebookNode) -> str:
    return str(nb.metadata.get("kernelspec", {}).get("name") or "python3")


@dataclass(frozen=True)
class _CellLabel:
    heading: str  # the section: the last markdown heading above the cell
    first_line: str

    @property
    def short(self) -> str:
        """For progress lines: the first line without its comment sign ("Batches: totals per month...")."""
        text = self.first_line.lstrip("#").strip() or self.heading
        return text if len(text) <= 64 else text[:63] + "…"

    def __str__(self) -> str:
        section = f"section '{self.heading}', " if self.heading else ""
        return f"{section}first line: {self.first_line}"


def _cell_labels(nb: NotebookNode) -> dict[int, _CellLabel]:
    """Each code cell's section heading and first line, by cell index."""
    labels: dict[int, _CellLabel] = {}
    heading = ""
    for index, cell in enumerate(nb.cells):
        lines = [line.strip() for line in str(cell.source).splitlines() if line.strip()]
        if cell.cell_type == "markdown":
            heading = next((line.lstrip("#").strip() for line in lines if line.startswith("#")), heading)
        elif cell.cell_type == "code":
            first = lines[0] if lines else "(empty cell)"
            labels[index] = _CellLabel(heading, first if len(first) <= 100 else first[:99] + "…")
    return labels


def _short_error(cell: Any, exc: BaseException) -> str:
    error = next((o for o in cell.get("outputs", []) if o.get("output_type") == "error"), None)
    if error is not None:
        return f"{error.get('ename', 'Error')}: {error.get('evalue', '')}".strip()
    return f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
