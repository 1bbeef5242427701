"""The report as a PDF: the report's own HTML printed by headless Chromium, driven through Playwright.

The PDF is the HTML page (``html.export_html``) printed, so it has the same content: the same tables, notes and
figures, with the page's print rules (``@media print`` in the HTML's style: A4, margins, no table row, figure or
output cut across pages, table headers repeated on every page). Chromium adds the footer: the report's title
(escaped) and "page X of Y".

The browser is the **system** Chromium, never one Playwright downloads (nbconvert's ``WebPDFExporter`` launches only
Playwright's own browser, which needs a download; that is why the report drives Playwright itself). It is found,
in this order, at ``MANGROVE_NB_CHROMIUM`` (a path to a Chromium or Chrome executable), ``/usr/bin/chromium``, then
``chromium``, ``chromium-browser`` or ``google-chrome`` on ``PATH``. ``pdf_browser()`` finds it and checks that
Playwright (the ``pdf`` extra) imports; without either it raises a one-line ``ReportError`` saying how to install
it (``pip install "mangrove_nb[pdf]"``, ``sudo apt-get install chromium``), and ``render_report`` calls it before
the kernel starts. A ``MANGROVE_NB_CHROMIUM`` that names no executable is a ``BrowserSettingError``, a
``ReportError`` that is also a ``ConfigurationError`` (the command exits 2: configuration to correct).

Nothing leaves the machine: the page is loaded with ``set_content`` (it is never written to disk), JavaScript is off,
service workers are blocked, Chromium runs with its background networking off, and a route handler aborts every
request that is not a ``data:`` URL (the report's images); ``PrintedPdf.blocked`` lists what was aborted (a report
page requests nothing, so it is empty).

``PdfPrinter`` keeps the browser in a thread of its own (Playwright's sync API belongs to the thread that started
it): ``start()`` imports Playwright, launches Chromium and opens the page while the kernel starts (each costs about
a second), ``ready()`` waits for that launch (``render_report`` calls it once the kernel answers, so a browser that
does not start fails the report before any cell runs), ``print()`` prints once the HTML exists, ``close()`` stops
the browser whatever happened, waiting for it through a Ctrl-C (re-raised after).
Playwright is imported inside the functions that need it.
"""

from __future__ import annotations

import contextlib
import html
import os
import shutil
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mangrove_nb.errors import ConfigurationError, ReportError
from mangrove_nb.settings import CHROMIUM_ENV_VAR, chromium_setting

from ._text import _one_line

BROWSER_ENV = CHROMIUM_ENV_VAR
SYSTEM_CHROMIUM = Path("/usr/bin/chromium")
ON_PATH = ("chromium", "chromium-browser", "google-chrome")
INSTALL_PLAYWRIGHT = 'pip install "mangrove_nb[pdf]"'
INSTALL_CHROMIUM = "sudo apt-get install chromium"
# Chromium without its own network traffic (updates, sync, field trials, QUIC) and without a sandbox (containers
# rarely allow one; the page runs no script and loads nothing).
CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-default-apps", "--disable-extensions",
                 "--metrics-recording-only", "--no-pings", "--disable-domain-reliability")
MARGINS = {"top": "14mm", "bottom": "16mm", "left": "12mm", "right": "12mm"}
TIMEOUT_MS = 120_000  # to load and print one report
CLOSE_TIMEOUT_S = 30.0  # to wait for the browser to close (after its launch, if that is still going on)

_FOOTER = ('<div style="box-sizing: border-box; width: 100%; padding: 0 12mm; font-family: sans-serif; '
           'font-size: 8px; color: #555; display: flex; justify-content: space-between;">'
           '<span>{title}</span><span>page <span class="pageNumber"></span> of <span class="totalPages"></span>'
           '</span></div>')


class BrowserSettingError(ReportError, ConfigurationError):
    """``MANGROVE_NB_CHROMIUM`` names no executable: configuration to correct (the command exits 2), and a
    ``ReportError`` like every other reason the PDF cannot be made."""


@dataclass(frozen=True)
class PrintedPdf:
    """The PDF's bytes, and the URLs the page asked for that were aborted (none, for a report)."""

    data: bytes
    blocked: tuple[str, ...]


def pdf_browser(environ: Mapping[str, str] | None = None) -> str:
    """The Chromium to print with, once Playwright is known to import; else a one-line ``ReportError`` saying how
    to install what is missing. ``environ`` replaces ``os.environ`` (tests)."""
    chosen, search_path = chromium_setting(environ)
    problem = None
    try:
        import playwright.sync_api  # noqa: F401 - only whether it imports
    except ImportError:
        problem = (f"A PDF needs Playwright, which is not installed in this Python: {INSTALL_PLAYWRIGHT} (it drives "
                   f"the system Chromium and downloads no browser; {INSTALL_CHROMIUM} if you have none).")
    if problem is not None:
        raise ReportError(problem) from None
    if chosen:
        path = Path(chosen).expanduser()
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
        raise BrowserSettingError(f"{BROWSER_ENV} is {_one_line(chosen, 200)!r}, which is not an executable file; "
                                  f"set it to a Chromium or Chrome executable, or unset it to use {SYSTEM_CHROMIUM} "
                                  f"({INSTALL_CHROMIUM}).")
    if SYSTEM_CHROMIUM.is_file() and os.access(SYSTEM_CHROMIUM, os.X_OK):
        return str(SYSTEM_CHROMIUM)
    for name in ON_PATH:
        found = shutil.which(name, path=search_path)
        if found:
            return found
    raise ReportError(f"A PDF needs Chromium, and none was found ({SYSTEM_CHROMIUM}, or {', '.join(ON_PATH)} on "
                      f"PATH): install it with {INSTALL_CHROMIUM} (and {INSTALL_PLAYWRIGHT}), or set {BROWSER_ENV} "
                      "to a Chromium or Chrome executable.")


def _problem(exc: BaseException) -> str:
    """A Playwright error in a few words: its type and first line."""
    return f"{type(exc).__name__}: {_one_line(str(exc).split(chr(10))[0], 300)}".rstrip(": ")


def footer_template(title: str) -> str:
    """Chromium's footer for every page: the report's title (escaped: it holds API text) and "page X of Y"."""
    return _FOOTER.format(title=html.escape(_one_line(title, 150), quote=True))


class PdfPrinter:
    """Headless Chromium in a thread of its own: ``start()`` launches it (while the kernel works), ``print()`` makes
    the PDF of an HTML page, ``close()`` stops it. A launch failure is raised, as a ``ReportError``, by ``print()``.
    """

    def __init__(self, executable: str) -> None:
        self.executable = executable
        self._pool: ThreadPoolExecutor | None = None
        self._launched: Future[None] | None = None
        self._playwright: Any = None
        self._browser: Any = None
        self._ready: tuple[Any, Any, list[str]] | None = None

    def start(self) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mangrove-report-pdf")
            self._launched = self._pool.submit(self._launch)

    def ready(self) -> None:
        """Wait until the browser has started (``start()`` launched it); a ``ReportError`` if it could not, so that a
        report asking for a PDF fails before its kernel runs, not after."""
        self.start()
        assert self._launched is not None
        problem = None
        try:
            self._launched.result()
        except Exception as exc:  # Playwright's errors: the browser did not start or timed out
            problem = _problem(exc)
        if problem is not None:
            raise ReportError(f"Chromium ({self.executable}) did not start ({problem}); nothing was rendered. Check "
                              f"that it starts (`{self.executable} --headless --version`), or point {BROWSER_ENV} at "
                              "another Chromium.") from None

    def print(self, page: str, *, title: str) -> PrintedPdf:
        """The PDF of ``page`` (a self-contained HTML document), with ``title`` in every page's footer."""
        self.start()
        assert self._pool is not None
        assert self._launched is not None
        problem = None
        try:
            self._launched.result()
            return self._pool.submit(self._print, page, title).result()
        except ReportError:
            raise
        except Exception as exc:  # Playwright's errors: the browser did not start, crashed or timed out
            problem = _problem(exc)
        raise ReportError(f"Chromium ({self.executable}) could not print the PDF ({problem}); check that it starts "
                          f"(`{self.executable} --headless --version`), or point {BROWSER_ENV} at another Chromium."
                          ) from None

    def close(self) -> None:
        """Stop the browser and its thread (safe to call more than once, and after a failure), waiting for it even
        through Ctrl-C (re-raised once the browser is closed, within ``CLOSE_TIMEOUT_S``): a Playwright thread still
        running when the interpreter exits can crash it."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        interrupted: BaseException | None = None
        stopped = pool.submit(self._stop)
        deadline = time.monotonic() + CLOSE_TIMEOUT_S
        while not stopped.done() and time.monotonic() < deadline:
            try:
                wait([stopped], timeout=max(0.0, deadline - time.monotonic()))
            except KeyboardInterrupt as exc:  # again: the browser is closed first, then it is raised
                interrupted = interrupted or exc
        pool.shutdown(wait=stopped.done())
        if interrupted is not None:
            raise interrupted

    def __enter__(self) -> PdfPrinter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- in the printer's thread ---------------------------------------------------------------------------

    def _launch(self) -> None:
        from playwright.sync_api import sync_playwright

        self._playwright = sync_playwright().start()
        # Ctrl-C, SIGTERM and SIGHUP are the report's to handle: close() stops the browser.
        self._browser = self._playwright.chromium.launch(
            executable_path=self.executable, args=list(CHROMIUM_ARGS), handle_sigint=False, handle_sigterm=False,
            handle_sighup=False, timeout=TIMEOUT_MS)
        self._ready = self._new_page()  # a page costs about a second too: made while the kernel still works

    def _new_page(self) -> tuple[Any, Any, list[str]]:
        """A context (no JavaScript, no service workers, every request but ``data:`` aborted), its page in print
        media, and the list the route handler adds each aborted URL to."""
        blocked: list[str] = []

        def route(route: Any) -> None:
            url = str(route.request.url)
            if url.startswith("data:"):
                route.continue_()
            else:
                blocked.append(url)
                route.abort("blockedbyclient")

        context = self._browser.new_context(java_script_enabled=False, service_workers="block",
                                            accept_downloads=False)
        context.route("**/*", route)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.emulate_media(media="print")
        return context, page, blocked

    def _print(self, page_html: str, title: str) -> PrintedPdf:
        ready, self._ready = self._ready, None
        context, page, blocked = ready if ready is not None else self._new_page()
        try:
            page.set_content(page_html, wait_until="load")
            data = page.pdf(format="A4", margin=MARGINS, print_background=True, display_header_footer=True,
                            header_template="<span></span>", footer_template=footer_template(title))
        finally:
            context.close()
        return PrintedPdf(bytes(data), tuple(blocked))

    def _stop(self) -> None:
        self._ready = None  # its context goes with the browser
        browser, self._browser = self._browser, None
        playwright, self._playwright = self._playwright, None
        for stop in (browser.close if browser is not None else None,
                     playwright.stop if playwright is not None else None):
            if stop is not None:
                with contextlib.suppress(Exception):  # best effort: the browser may already be gone
                    stop()
