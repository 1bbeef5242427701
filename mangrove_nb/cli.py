"""The ``mangrove-nb`` command: ``emulator`` (serve the local API), ``demo`` (the cookbook, walked), ``report``
(render a quarterly report notebook and its HTML, PDF or workbook), ``notebooks`` (copy the starter notebooks and the
report template into a folder, for JupyterLab) and ``registry`` (plan, fill and submit a registry report).

Every expected failure (a bad argument, a missing or malformed token, a failing report cell, an API error...)
is one line on stderr, ``mangrove-nb COMMAND: what went wrong and how to fix it``, with exit code 2 for input
to correct (arguments, configuration, a token the API rejects with 401 or 403, the quarter) and 1 otherwise; Ctrl-C
during a report is one line and exit code 130, and SIGTERM or SIGHUP during one (``timeout``, systemd, a closed
terminal) is handled the same way, its cleanup included: one line, exit code 128 + the signal (143, 129). Nothing
prints a traceback except an unexpected error (a bug), and that one is redacted of the token like every message.
The errors are the Python API's: advice worded for Python (``pass token=... to connect()``, ``--force
(force=True)``) is put in the command's words here (``_cli_words``).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import re
import sys
import traceback
import warnings
from collections.abc import Iterator, Sequence
from typing import NoReturn, TextIO

DESCRIPTION = ("The mangrove-nb command: serve a local Mangrove API emulator, run the demo, render a quarterly "
               "report (an executed notebook and an offline HTML page, a PDF or an Excel workbook), copy the starter "
               "notebooks, or plan and submit a registry report.")
# The optional libraries, and the extra of pyproject.toml that installs each.
EXTRAS = {"nbformat": "reports", "nbclient": "reports", "nbconvert": "reports", "ipykernel": "reports",
          "jupyter_client": "reports", "flask": "emulator", "werkzeug": "emulator", "matplotlib": "notebook"}
# Input the user must correct: exit code 2 (argparse's own, for usage errors).
EXIT_INPUT = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a command killed by a closed pipe


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error on one line (which argument, why, where to read more) instead of two."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_INPUT, f"{self.prog}: {one_line(message)} (see {self.prog} --help)\n")


def one_line(text: object) -> str:
    """A message on one line, redacted of every registered token, safe to print (``_text.one_line``: a server's or
    a kernel's text cannot move the cursor, forge a second line or reorder what a reader sees)."""
    from ._text import one_line as clean

    return clean(text)


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number; give 0-65535 (0 = any free port)") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is out of range; give 0-65535 (0 = any free port)")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"{text} must be 0 or more seconds")
    return value


def _formats(text: str) -> tuple[str, ...]:
    """``--format``: a comma list of html, pdf and xlsx; a typo is a usage error (exit 2) before anything runs."""
    from .errors import ValidationError
    from .reports import parse_formats

    try:
        return parse_formats(text)
    except ValidationError as exc:
        raise argparse.ArgumentTypeError(str(exc).rstrip(".")) from None


def _per_minute(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of requests per minute") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1 request per minute")
    return value


def _token(text: str) -> str:
    """An emulator token: what a client can send in an Authorization header (printable ASCII, no space). An empty
    token, or one with a line break, a space or another character a header cannot carry, would be accepted here and
    then answer 401 to every request. The message says where the fault is, never the token."""
    if not text:
        raise argparse.ArgumentTypeError("the token is empty; give a token of printable characters without spaces, "
                                         "or leave --token out to have one made")
    for position, char in enumerate(text, start=1):
        if not "\x21" <= char <= "\x7e":
            import unicodedata

            what = {"\n": "a line break", "\r": "a carriage return", "\t": "a tab", " ": "a space"}.get(
                char, f"U+{ord(char):04X} {unicodedata.name(char, 'a control character')}")
            raise argparse.ArgumentTypeError(
                f"the token has {what} at character {position}, which no client can send in an Authorization "
                "header; give a token of printable ASCII characters without spaces, or leave --token out to have "
                "one made")
    return text


def _emulator(args: argparse.Namespace) -> int:
    import sqlite3

    from .emulator import Emulator, store
    from .emulator.seed import PROJECT_ID

    # The store's own error for a file it refuses (not SQLite, a newer schema) says what to do; older stores lack it.
    refused = getattr(store, "StoreError", ())

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr)
    try:
        emulator = Emulator(host=args.host, port=args.port, token=args.token, db=args.db,
                            read_only_tokens=tuple(args.read_only_token), batch_seconds=args.batch_seconds,
                            rate_limit=args.rate_limit, control=args.enable_control)
    except OSError as exc:
        print(f"mangrove-nb emulator: cannot listen on {args.host}:{args.port}: {one_line(exc.strerror or exc)}. "
              "Pick another port with --port (0 = any free port).", file=sys.stderr)
        return EXIT_INPUT
    except refused as exc:
        print(f"mangrove-nb emulator: {one_line(exc)}", file=sys.stderr)
        return EXIT_INPUT
    except sqlite3.Error as exc:
        print(f"mangrove-nb emulator: cannot use {args.db} as the emulator's database ({one_line(exc)}); give --db "
              "a SQLite file in a folder you can write to, or leave --db out to keep the state in memory.",
              file=sys.stderr)
        return EXIT_INPUT
    print(f"Mangrove emulator on {emulator.url}  (state: {args.db or 'in memory'})")
    if args.token is None:
        print(f"Token (shown once): {emulator.token}")
    print(f"  export MANGROVE_API_URL={emulator.url}")
    print("  export MANGROVE_API_TOKEN=<the token>")
    print(f"  export MANGROVE_PROJECT_ID={PROJECT_ID}")
    print("Press Ctrl-C to stop.", flush=True)
    emulator.serve_forever()
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(batch_seconds=args.batch_seconds, quarter=args.quarter, out_dir=args.out, cookbook=args.walk)


def _report(args: argparse.Namespace) -> int:
    if not (args.quarter or args.year or args.from_snapshot):
        args.parser.error("the following arguments are required: --quarter (a quarter such as 2025Q1, or a range "
                          "such as 2024Q1..2025Q4), or --year, or --from-snapshot")
    from .reports import render_report, render_reports
    from .reports.run import StaleReportWarning

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: TextIO | None = None,
             line: str | None = None) -> None:
        if isinstance(message, StaleReportWarning):  # an older .pdf beside a fresh .html: said in the CLI's words
            text = message.text(f"--format {','.join(message.formats)}", "--snapshot")
            print(f"mangrove-nb report: {one_line(text)}", file=sys.stderr, flush=True)
        else:
            shown(message, category, filename, lineno, file, line)

    options = {"ledgers": args.ledger or None, "project": args.project, "out_dir": args.out,
               "generate_missing": args.generate_missing, "progress": True, "formats": args.format,
               "template": args.template}
    shown = warnings.showwarning
    with warnings.catch_warnings(), _stop_signals_interrupt():  # both restore what they change
        warnings.simplefilter("always", StaleReportWarning)
        warnings.showwarning = show
        if args.from_snapshot is not None:
            rendered = [render_report(args.quarter, year=args.year, from_snapshot=args.from_snapshot, **options)]
        else:
            rendered = render_reports(args.quarter, years=args.year, snapshot=args.snapshot, **options)
    for paths in rendered:
        for path in (paths.html, paths.pdf, paths.xlsx, paths.snapshot):  # what was asked for, one path a line
            if path is not None:
                print(path)
    return 0


# The signal (SIGTERM or SIGHUP) that stopped the running command, when one did: said, and its exit code, by
# _interrupted.
_stopped_by: int | None = None


@contextlib.contextmanager
def _stop_signals_interrupt() -> Iterator[None]:
    """While a report renders, SIGTERM and SIGHUP (``timeout``, systemd, a closed terminal) interrupt it as Ctrl-C
    does (a KeyboardInterrupt), so the same cleanup runs: kernels stopped, the read cache, the kernels' logs and
    connection files removed, the browser closed. A second SIGTERM or SIGHUP while that cleanup runs is ignored
    (SIGKILL stops it for good; Ctrl-C again still interrupts it).

    An interrupt that lands while Python runs a weakref callback or a ``__del__`` (asyncio's and the garbage
    collector's) is only printed as "Exception ignored in ..." and lost, and the command would go on to exit 0: such
    a lost interrupt is never printed, and raised again a moment later (``sys.unraisablehook`` has SIGINT sent to the
    main thread once the finaliser returned). The handlers and hook in place before are restored after; outside the
    main thread nothing changes."""
    import _thread
    import signal
    import threading

    global _stopped_by
    _stopped_by = None
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    raised = [False]  # a KeyboardInterrupt of ours is on its way (not lost)

    def stop(number: int, _frame: object) -> None:
        global _stopped_by
        if number != signal.SIGINT:
            if raised[0]:
                return  # the cleanup of the first one is running
            _stopped_by = _stopped_by or number
        raised[0] = True
        raise KeyboardInterrupt(signal.Signals(_stopped_by or number).name)

    def unraisable(info: sys.UnraisableHookArgs) -> None:
        if info.exc_type is not None and issubclass(info.exc_type, KeyboardInterrupt) and raised[0]:
            raised[0] = False
            # Raised again by ``stop``, from another thread a moment later: by then this hook and the callback
            # that lost it have returned (a signal now would be handled, and lost, in this hook).
            again = threading.Timer(0.05, signal.pthread_kill, args=(threading.main_thread().ident, signal.SIGINT)) \
                if hasattr(signal, "pthread_kill") else threading.Timer(0.05, _thread.interrupt_main)
            again.daemon = True
            again.start()
            return
        hook(info)

    numbers = [signal.SIGINT, signal.SIGTERM, *([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])]
    previous = {number: signal.signal(number, stop) for number in numbers}
    hook, sys.unraisablehook = sys.unraisablehook, unraisable
    try:
        yield
    except KeyboardInterrupt:
        raise  # _interrupted says which signal it was
    except BaseException:
        _stopped_by = None
        raise
    else:
        _stopped_by = None
    finally:
        sys.unraisablehook = hook
        for number, handler in previous.items():
            signal.signal(number, handler)


def _template(text: str) -> str:
    """``--template``: a notebook file that exists (an edited copy of the template); checked before anything runs."""
    if not os.path.isfile(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a notebook file; give the path of the report template "
                                         "you edited (mangrove-nb notebooks copies it as 03_quarterly_report.ipynb)")
    return text


def _registry(args: argparse.Namespace) -> int:
    """List the registry reports; plan a report's batches for a quarter, and with --submit fill it and submit it after
    a confirmation; or reconcile a submission whose outcome is unknown."""
    from . import connect, parse_period
    from .errors import MangroveError, PeriodError, ReportPlanError

    if args.list:
        if args.submit or args.reconcile or args.quarter or args.ledger:
            args.parser.error("--list lists the reports and takes no other option but --report (to show one)")
    elif args.reconcile:
        if args.report is None or args.submit or args.quarter or args.ledger:
            args.parser.error("--reconcile takes --report (the report's id or name) and no other option")
    elif args.quarter is None or args.report is None:
        args.parser.error("the following arguments are required: --quarter and --report (or --list to list the "
                          "reports)")
    quarter = None
    if args.quarter is not None:
        quarter = parse_period(args.quarter)
        if quarter.kind != "quarter":
            raise PeriodError(f"--quarter takes a calendar quarter such as 2025Q1, not {args.quarter!r}.",
                              argument="quarter")
    with connect() as client:
        if args.list:
            listed = client.reports()
            if args.report is not None:
                listed = listed[listed["id"] == client.report_id(args.report)]
            print(_reports_text(listed), flush=True)
            return 0
        for ledger in args.ledger:  # a mistyped ledger is said first: input to correct before anything is read
            client.ledger_id(ledger)
        rid = client.report_id(args.report)  # an id, or a report's name (exact, then case-insensitive)
        if args.reconcile:
            found = client.reconcile_report(rid)
            print(_cli_words("registry", one_line(found.advice())), flush=True)
            return 0 if found.sent is not None else EXIT_FAILED
        assert quarter is not None  # required above, unless --list or --reconcile
        batches = client.report_candidates(rid, quarter, ledgers=args.ledger or None)
        plan = client.plan_report(rid, batches)
        print(_cli_words("registry", plan.to_text()), flush=True)
        if not args.submit:
            return 0 if plan.ok else EXIT_FAILED
        if not plan.ok:
            raise plan.error()
        report = plan.report
        if not args.yes and not _confirmed(report.id, plan.summary(), plan.ledgers_text(), plan.months_text(),
                                           plan.warnings):
            print("mangrove-nb registry: not confirmed (the report id was not typed); nothing was sent.",
                  file=sys.stderr, flush=True)
            return EXIT_FAILED
        filled = None
        if plan.changes:
            filled = client.fill_report(report.id, batches)
            print(f"Filled report {one_line(report.id)} with {len(filled.inclusions)} batch(es).", flush=True)
        try:
            task = client.submit_report(report.id, expected=plan)  # what was printed, or nothing is sent
        except ReportPlanError as exc:
            if filled is None:
                raise
            # The fill was sent: "Nothing was sent" would be false. What was not sent is the submission.
            said = str(exc).removeprefix("Nothing was sent")
            raise ReportPlanError(f"Report {report.id} was filled ({len(filled.inclusions)} batch(es) put on it), "
                                  f"but nothing was submitted{said}", report_id=exc.report_id, problems=exc.problems,
                                  batch_ids=exc.batch_ids, plan=exc.plan) from None
        except MangroveError as exc:
            if filled is not None:
                exc.add_note(f"(Report {one_line(report.id)} was filled before: it holds "
                             f"{len(filled.inclusions)} batch(es).)")
            raise
        print(f"Submitting report {one_line(report.id)} (task {task.id})...", flush=True)
        submitted = task.wait(progress=True)
        if submitted is not None:
            print(f"Report {one_line(submitted.id)} is {one_line(submitted.status or 'of unknown status')}"
                  + (f": allocated {submitted.allocated_amount:,.6g} {one_line(submitted.allocated_unit or '')}"
                     if submitted.allocated_amount is not None else "") + ".", flush=True)
    return 0


def _reports_text(listed: object) -> str:
    """``client.reports()`` as a text table (API text on one line, cleaned): id, name, status, batches, allocated."""
    import pandas as pd

    assert isinstance(listed, pd.DataFrame)
    if not len(listed):
        return "No registry report (reports are made in Mangrove's app)."

    def cell(value: object) -> str:
        return "" if value is None or (not isinstance(value, str) and pd.isna(value)) else one_line(value)

    rows = [["id", "name", "status", "batches", "allocated"]]
    for r in listed.itertuples(index=False):
        allocated = (f"{r.allocated_amount:,.6g} {cell(r.allocated_unit)}".rstrip()
                     if not pd.isna(r.allocated_amount) else "")
        batches = "not listed" if pd.isna(r.batch_count) else str(int(r.batch_count))
        rows.append([cell(r.id), cell(r.name), cell(r.status), batches, allocated])
    widths = [max(len(row[n]) for row in rows) for n in range(len(rows[0]))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def _confirmed(report_id: str, summary: str, ledgers: str, months: str = "", warnings: Sequence[str] = ()) -> bool:
    """The analyst types the report id to confirm an irreversible submission (end of input: not confirmed); the
    question names the ledgers and units, the months, and repeats the plan's warnings."""
    of = f" Its batches are of {one_line(months)}." if months else ""
    warned = "".join(f"\nWarning: {one_line(w)}" for w in warnings)
    print(f"\n{one_line(summary).replace(' Nothing has been sent.', '')}{warned}\nIt adds up {one_line(ledgers)}.{of} "
          f"Submitting to the registry is irreversible. Type the report id ({one_line(report_id)}) to fill and "
          "submit it, anything else to stop:", flush=True)
    try:
        answer = input()
    except EOFError:
        return False
    return answer.strip() == report_id


def _notebooks(args: argparse.Namespace) -> int:
    from .starter import copy_notebooks, next_steps

    written = copy_notebooks(args.dir, force=args.force)
    print(f"Wrote {len(written)} notebooks to {args.dir}:")
    for path in written:
        print(f"  {path}")
    print("\n".join(next_steps(args.dir)))
    return 0


# Advice the Python API's errors give, and what the command says instead: (pattern, replacement, commands it is
# for; None: every command). Matched on the one-line message, in order.
_PYTHON_ADVICE: tuple[tuple[re.Pattern[str], str, frozenset[str] | None], ...] = tuple(
    (re.compile(pattern), replacement, frozenset(commands.split()) if commands else None)
    for pattern, replacement, commands in (
        (r"pass token=\.\.\. to connect\(\), or set the MANGROVE_API_TOKEN environment variable before starting "
         r"Python or Jupyter \(for example in a \.env file loaded by your shell; never paste a token into a notebook "
         r"cell that gets saved\)", "set the MANGROVE_API_TOKEN environment variable in the shell that runs the "
         "command (export MANGROVE_API_TOKEN=..., or a .env file your shell loads)", ""),
        (r"pass token=\.\.\. or set MANGROVE_API_TOKEN", "set MANGROVE_API_TOKEN to a valid token", ""),
        (r" or connect\(base_url=\.\.\.\)", "", ""),
        (r"pass project_id=\.\.\., or set MANGROVE_PROJECT_ID (\([^()]*\)), or connect\(project_id=\.\.\.\)",
         r"pass --project ID, or set MANGROVE_PROJECT_ID \1", "report"),
        (r"pass project_id=\.\.\., or set MANGROVE_PROJECT_ID (\([^()]*\)), or connect\(project_id=\.\.\.\)",
         r"set MANGROVE_PROJECT_ID \1", ""),
        (r"Pass project_id=\.\.\. to connect\(\) or set MANGROVE_PROJECT_ID", "Set MANGROVE_PROJECT_ID", ""),
        (r"pass template= the path", "give --template the path", "report"),
        # The registry's advice, in the command's words (its options, --list, --reconcile).
        (r"Name it with ledgers=\['([^']*)'\] \(--ledger on the command line\)", r"Name it with --ledger '\1'",
         "registry"),
        (r"name them with ledgers=\[\.\.\.\] in client\.report_candidates \(--ledger on the command line, "
         r"ReportForm\(\.\.\., ledgers=\[\.\.\.\]\) in the form\)", "name them with --ledger, once per ledger",
         "registry"),
        (r"\(client\.report_candidates\(report, period\) takes", "(without --ledger, the command takes", "registry"),
        (r"name them: ledgers=\[\.\.\.\] in plan_report, fill_report or report_candidates \(--ledger, once per "
         r"ledger, on the command line\)", "name them with --ledger, once per ledger", "registry"),
        (r"client\.generate\(('[^']*'), '([^']*)'\)",
         r"mangrove-nb report --quarter \2 --ledger \1 --generate-missing generates what is missing", "registry"),
        (r"client\.reconcile_report\(('[^']*')\)", r"mangrove-nb registry --reconcile --report \1", "registry"),
        (r"client\.report_task\('[^']*', [^)]*\)\.wait\(\)", "mangrove-nb registry --list (the report's status)",
         "registry"),
        (r"client\.fill_report\(('[^']*'), batches\)",
         r"mangrove-nb registry --quarter QUARTER --report \1 --submit, which fills it", "registry"),
        (r"(client\.submit_report\('[^']*', even_if_unlisted=True\))", r"\1 in Python", "registry"),
        (r"client\.submit_report\(('[^']*')\)", r"mangrove-nb registry --quarter QUARTER --report \1 --submit",
         "registry"),
        (r"client\.report\('[^']*'\)", "mangrove-nb registry --list", "registry"),
        (r"client\.reports\([^()]*\)", "mangrove-nb registry --list", "registry"),
        (r"Read it again \(plan it, or Plan in the form\)", "Run the command again (it plans the report as it is)",
         "registry"),
        (r"pass allow_empty=True to plan_report and fill_report", "fill it with client.fill_report(..., "
         "allow_empty=True) in Python", "registry"),
        (r"(--[a-z][a-z-]*) \([a-z_]+=[^()]*\)", r"\1", ""),  # "--force (force=True)": the option alone
    ))


def _cli_words(command: str, message: str) -> str:
    """``message`` with the Python API's advice put in the command's words (``_PYTHON_ADVICE``)."""
    for pattern, replacement, commands in _PYTHON_ADVICE:
        if commands is None or command in commands:
            message = pattern.sub(replacement, message)
    return message


def _failed(command: str, exc: BaseException) -> int:
    """Print an expected failure on one line and return its exit code."""
    from .errors import (
        AuthenticationError,
        ConfigurationError,
        NotFoundError,
        PeriodError,
        PermissionDeniedError,
        ReportError,
        ValidationError,
    )

    notes = " ".join(getattr(exc, "__notes__", []))  # such as how to re-attach to a task that goes on
    print(f"mangrove-nb {command}: {_cli_words(command, one_line(f'{exc} {notes}'))}", file=sys.stderr, flush=True)
    # An argument refused before anything was sent (an unknown ledger name, say) is input to correct too.
    refused = isinstance(exc, ValidationError) and exc.status_code is None
    # A 404 where the API always answers (/ledgers) means the base URL is wrong: configuration to correct.
    wrong_url = isinstance(exc, NotFoundError) and NotFoundError.base_url_hint in str(exc)
    # A token the API rejects (401) or that may not do this (403) is configuration to correct, in the command's
    # process or in a report cell (whose error is chained to a copy naming the cell's exception).
    rejected = (AuthenticationError.__name__, PermissionDeniedError.__name__)
    token = isinstance(exc, AuthenticationError | PermissionDeniedError) or (
        isinstance(exc, ReportError) and getattr(exc.__cause__, "ename", None) in rejected)
    to_correct = isinstance(exc, ConfigurationError | PeriodError) or refused or wrong_url or token
    return EXIT_INPUT if to_correct else EXIT_FAILED


def _missing(command: str, exc: ModuleNotFoundError) -> int:
    """A library of an optional part (an extra) is not installed: say which, and how to install it."""
    package = (exc.name or "").split(".")[0]
    print(f"mangrove-nb {command}: this needs {package}, which is not installed in this Python; install it with "
          f"pip install 'mangrove_nb[{EXTRAS[package]}]'.", file=sys.stderr, flush=True)
    return EXIT_FAILED


def _interrupted(command: str, exc: KeyboardInterrupt) -> int:
    """Ctrl-C (exit 130), or SIGTERM or SIGHUP during a report (exit 128 + the signal's number), in one line."""
    import signal

    global _stopped_by
    notes = " ".join(getattr(exc, "__notes__", []))
    stopped, _stopped_by = _stopped_by, None
    how = f"stopped ({signal.Signals(stopped).name})" if stopped is not None else "interrupted (Ctrl-C)"
    print(f"mangrove-nb {command}: {how}. {one_line(notes)}".rstrip(), file=sys.stderr, flush=True)
    return 128 + stopped if stopped is not None else EXIT_INTERRUPTED


def _unexpected(command: str, exc: BaseException) -> int:
    """A bug: the traceback helps to report it, redacted of the token like every message (never with locals)."""
    from .errors import redact

    text = redact("".join(traceback.format_exception(exc)))
    print(f"mangrove-nb {command}: unexpected error (a bug; please report it with what follows):\n{text}",
          file=sys.stderr, end="", flush=True)
    return EXIT_FAILED


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .emulator import DEFAULT_HOST, DEFAULT_PORT

    parser = _Parser(prog="mangrove-nb", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"mangrove-nb {__version__}",
                        help="print the version and exit")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    emu = commands.add_parser("emulator", help="serve the local Mangrove API emulator until Ctrl-C",
                              description="Serve the local Mangrove API emulator (seeded project 123, Cascade "
                                          "Biochar Facility) on loopback until Ctrl-C. It prints its URL, a new "
                                          "token (once) and the environment variables to set.")
    emu.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST})")
    emu.add_argument("--port", type=_port, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 = a free port)")
    emu.add_argument("--token", type=_token, help="the API token to accept (default: a new one, printed once)")
    emu.add_argument("--read-only-token", type=_token, action="append", default=[], metavar="TOKEN",
                     help="also accept TOKEN for reads only: writes answer 403 (repeatable)")
    emu.add_argument("--db", help="SQLite file to keep state in across restarts (default: in memory)")
    emu.add_argument("--batch-seconds", type=_seconds, default=1.0,
                     help="seconds the model spends on each batch (default 1.0: a quarter takes about 3.5 s)")
    emu.add_argument("--rate-limit", type=_per_minute, default=1000,
                     help="requests per minute per token (default 1000)")
    emu.add_argument("--enable-control", action="store_true",
                     help="expose the test-only /_emulator endpoints (fault injection, counters, reset)")
    emu.set_defaults(run=_emulator)

    demo = commands.add_parser("demo", help="on a local emulator: generate a quarter where missing and render its "
                                            "report (or --walk the batch-generation cookbook)",
                               description="Start a local emulator, generate the quarter where batches are "
                                           "missing and render its report; or, with --walk, walk the "
                                           "batch-generation cookbook's six steps for the quarter over plain HTTP.")
    demo.add_argument("--batch-seconds", type=_seconds, default=1.0, help="emulated model speed (default 1.0)")
    demo.add_argument("--quarter", default="2025Q1",
                      help="the quarter to generate and report, or to walk (default 2025Q1)")
    demo.add_argument("--out", default="reports", metavar="DIR", help="output directory (default: reports)")
    demo.add_argument("--walk", action="store_true",
                      help="instead, walk the cookbook's six steps over plain HTTP, printing each result")
    demo.set_defaults(run=_demo)

    report = commands.add_parser(
        "report", help="render the quarterly report (executed .ipynb, and HTML, PDF or Excel); prints each path",
        description="Render the report template that ships in the package for a quarter (or each quarter of a "
                    "range, or a year): the executed notebook and a self-contained HTML, PDF or Excel workbook "
                    "(quarterly_report_QUARTER.html, annual_report_YEAR.html, or with the chosen ledgers' names in "
                    "it). To render an edited template, copy it with mangrove-nb notebooks (it writes "
                    "03_quarterly_report.ipynb), edit the copy and give its path to --template. The API token and URL "
                    "come from MANGROVE_API_TOKEN and MANGROVE_API_URL; --from-snapshot needs neither.")
    period = report.add_mutually_exclusive_group()
    period.add_argument("--quarter", help="the calendar quarter, e.g. 2025Q1, or a range such as 2024Q1..2025Q4 "
                                          "(one report each, at most 40)")
    period.add_argument("--year", help="the calendar year, e.g. 2025, for an annual report compared with the year "
                                       "before (or a range such as 2023..2025)")
    report.add_argument("--ledger", action="append", default=[], metavar="LEDGER",
                        help="a ledger name or id to report on (repeatable; default: every ledger with a model). "
                             "A report on chosen ledgers gets its own file name")
    report.add_argument("--project", metavar="ID",
                        help="the project the report is titled with (default: MANGROVE_PROJECT_ID, else the "
                             "project the ledgers name)")
    report.add_argument("--out", default="reports", metavar="DIR", help="output directory (default: reports)")
    report.add_argument("--generate-missing", action="store_true",
                        help="first generate the quarter's batches where the preview finds some missing")
    report.add_argument("--template", type=_template, metavar="NOTEBOOK",
                        help="render this notebook instead of the packaged template: an edited copy of "
                             "03_quarterly_report.ipynb (mangrove-nb notebooks writes one); it keeps the cell tagged "
                             "'parameters'")
    report.add_argument("--format", type=_formats, default=("html",), metavar="FORMATS",
                        help="what to write besides the executed .ipynb, a comma list of html, pdf (needs "
                             "mangrove_nb[pdf] and a system Chromium) and xlsx (default: html); prints each path")
    replay = report.add_mutually_exclusive_group()
    replay.add_argument("--snapshot", action="store_true",
                        help="also write what the report read from the API next to it (REPORT.snapshot/: JSON "
                             "lines and a manifest, never the token); prints the folder's path")
    replay.add_argument("--from-snapshot", metavar="PATH",
                        help="render the report again from a snapshot folder alone: no token, no API; the same "
                             "numbers and fingerprint, and its provenance says when the snapshot was taken")
    report.set_defaults(run=_report, parser=report)

    notebooks = commands.add_parser(
        "notebooks", help="copy the starter notebooks and the report template into a folder, for JupyterLab",
        description="Copy the starter notebooks (01_explore, 02_generate_batches, 04_submit_report) and the "
                    "quarterly report template (03_quarterly_report) that ship in the package into DIR, and print how "
                    "to open them in JupyterLab against a local emulator. A notebook already in DIR is never "
                    "overwritten without --force; nothing is written unless every file can be.")
    notebooks.add_argument("dir", nargs="?", default="mangrove-notebooks", metavar="DIR",
                           help="the folder to copy them into (default: mangrove-notebooks; created if missing)")
    notebooks.add_argument("--force", action="store_true", help="overwrite the notebooks already in DIR")
    notebooks.set_defaults(run=_notebooks)

    registry = commands.add_parser(
        "registry", help="list the registry reports, or plan one's batches for a quarter; --submit fills and "
                         "submits it",
        description="Plan which of the quarter's complete batches a registry report would hold (added, removed, "
                    "kept, totals per ledger and unit, the months, and every problem found before asking the "
                    "server), and print it; nothing is sent. With --submit, fill the report with them and submit it "
                    "to the registry once, after you type the report id (or --yes), showing the task's progress. "
                    "Exit 1 when the plan has problems. --list lists the reports; --reconcile reads the status of a "
                    "report whose submission has an unknown outcome. The API token and URL come from "
                    "MANGROVE_API_TOKEN and MANGROVE_API_URL.")
    registry.add_argument("--quarter", help="the calendar quarter whose batches to report, e.g. 2025Q1")
    registry.add_argument("--report", metavar="REPORT",
                          help="the report: its id (rpt_...) or its name (case-insensitive), a draft to fill")
    registry.add_argument("--ledger", action="append", default=[], metavar="LEDGER",
                          help="a ledger name or id whose batches to report (repeat it for each; default: the "
                               "ledgers the project's submitted reports hold; several are a problem until named here)")
    registry.add_argument("--submit", action="store_true",
                          help="fill the report with the planned batches and submit it (irreversible)")
    registry.add_argument("--yes", action="store_true", help="with --submit: do not ask to type the report id")
    registry.add_argument("--list", action="store_true",
                          help="list the registry reports (id, name, status, batches, allocated) and exit")
    registry.add_argument("--reconcile", action="store_true",
                          help="after a submission whose outcome is unknown: read the report's status and say "
                               "whether it was sent")
    registry.set_defaults(run=_registry, parser=registry)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; Ctrl-C at any point (the imports of a command's libraries included) is one line, exit 130."""
    try:
        return _main(argv)
    except KeyboardInterrupt:  # while parsing or importing, before a command could say it
        print("mangrove-nb: interrupted (Ctrl-C).", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `mangrove-nb ... | head`: the reader left; nothing to say, no traceback
        # Python flushes stdout again at exit; point it at /dev/null so that flush cannot fail a second time.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _main(argv: Sequence[str] | None) -> int:
    from .errors import MangroveError

    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except MangroveError as exc:
        return _failed(args.command, exc)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in EXTRAS:
            return _unexpected(args.command, exc)
        return _missing(args.command, exc)
    except KeyboardInterrupt as exc:
        return _interrupted(args.command, exc)
    except BrokenPipeError:
        raise  # the reader of our output left (`| head`): main() ends quietly
    except Exception as exc:
        return _unexpected(args.command, exc)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
