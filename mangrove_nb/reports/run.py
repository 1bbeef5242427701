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
notebook is.

One process, one kernel per report: the kernel boots while the parent generates missing batches
(``generate_missing``) and loads nbconvert in a thread (and launches Chromium in another, for a PDF), and it is
stopped at once after the last cell.

``render_reports`` renders a range of quarters or years (``notebook.report_range``) in one go: the checks once, then
each report in its own kernel, the next one launched as soon as the current one answers, so it is ready when its turn
comes; every generation asked for happens before the first report reads. Every report kernel's client reads through
``snapshot.connect``: a read cache in a private temporary folder shared by the command's reports (each answer read
once), or, for ``from_snapshot``, the snapshot (no token, no API; the last progress line says which snapshot, taken
when). ``snapshot=True`` keeps what each report read as ``<stem>.snapshot/``. The spare kernel, the cache and the logs
never outlive the call, whatever ends it. Files of a report's name in a format not rendered this time (an older
``.pdf`` beside a fresh ``.html``), and a snapshot folder not taken this time, are left as they are and named by a
``StaleReportWarning`` (and ``ReportPaths.stale``): they may show other data.

A report asking for a PDF fails once its kernel answers, before any cell runs, when Chromium does not start
(``PdfPrinter.ready``). A failure or an interrupt after some of a report's files were written says which were and
which were not ("2024Q2 is incomplete: its notebook and HTML were written, not its PDF"; "2024Q2's report was
written, not its snapshot"); the tables file for the workbook is removed on every way out, and the browser is closed
(waited for, through another Ctrl-C) before the error goes on. A generation asked for over a range that fails says
at which period, and what was generated before it.

Its rooms, their names importable from here: ``_arguments`` (``FORMATS``, the periods: one outside ``REPORT_YEARS``,
1970 to 2100, is a ``PeriodError``), ``_kernel`` (executing in a kernel), ``_outputs`` (``ReportPaths``, the page,
the stale files) and ``generate``; what tests replace (``_render``, ``_execute``, ``PdfPrinter``...) is called here.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mangrove_nb.errors import ReportError
from mangrove_nb.frames import ledger_names
from mangrove_nb.settings import Secret

from ._arguments import FORMATS, REPORT_YEARS, _check_years, _periods, parse_formats
from ._kernel import _execute, _kernel_env, _launch, _stop_kernel
from ._outputs import (
    ReportPaths,
    StaleReportWarning,
    _check_replayed,
    _read_tables,
    _warn_stale,
    _written,
)
from ._text import _one_line
from .clean import KERNEL_ENV, _cleaned, _KernelEnvironment, _printable, _scrub_sources, _secret_scrubber
from .files import _output_folder, _write_bytes, _write_notebook, _write_text
from .generate import _generate_for_report, generate_missing_batches
from .html import _html_title, _WarmExporter
from .notebook import (
    META_KEY,
    _check_project,
    _collected_metadata,
    _project_argument,
    build_report,
    inject_parameters,
    report_period,
    report_stem,
    resolve_ledgers,
)
from .pdf import PdfPrinter, pdf_browser
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
    replay_description,
    replaying_client,
    responses_text,
    write_snapshot,
)
from .xlsx import workbook

if TYPE_CHECKING:
    from nbformat import NotebookNode

    from mangrove_nb import Client, Period

__all__ = ["FORMATS", "REPORT_YEARS", "ReportPaths", "StaleReportWarning", "generate_missing_batches", "parse_formats",
           "render_report", "render_reports"]


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
