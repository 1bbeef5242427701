"""The command line: ``build_parser()`` (every command, its options and their help), the argument types that
refuse bad input before anything runs (a usage error on one line, exit code 2), and which module runs each
command."""

from __future__ import annotations

import argparse
import math
import os
from typing import NoReturn

from . import demo as demo_command
from . import emulator as emulator_command
from . import notebooks as notebooks_command
from . import registry as registry_command
from . import report as report_command
from ._messages import EXIT_INPUT, one_line

DESCRIPTION = ("The mangrove-nb command: serve a local Mangrove API emulator, run the demo, render a quarterly "
               "report (an executed notebook and an offline HTML page, a PDF or an Excel workbook), copy the starter "
               "notebooks, or plan and submit a registry report.")


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error on one line (which argument, why, where to read more) instead of two."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_INPUT, f"{self.prog}: {one_line(message)} (see {self.prog} --help)\n")


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
    from ..errors import ValidationError
    from ..reports import parse_formats

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


def _template(text: str) -> str:
    """``--template``: a notebook file that exists (an edited copy of the template); checked before anything runs."""
    if not os.path.isfile(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a notebook file; give the path of the report template "
                                         "you edited (mangrove-nb notebooks copies it as 03_quarterly_report.ipynb)")
    return text


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__
    from ..emulator import DEFAULT_HOST, DEFAULT_PORT

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
    emu.set_defaults(run=emulator_command.run)

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
    demo.set_defaults(run=demo_command.run)

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
    report.set_defaults(run=report_command.run, parser=report)

    notebooks = commands.add_parser(
        "notebooks", help="copy the starter notebooks and the report template into a folder, for JupyterLab",
        description="Copy the starter notebooks (01_explore, 02_generate_batches, 04_submit_report) and the "
                    "quarterly report template (03_quarterly_report) that ship in the package into DIR, and print how "
                    "to open them in JupyterLab against a local emulator. A notebook already in DIR is never "
                    "overwritten without --force; nothing is written unless every file can be.")
    notebooks.add_argument("dir", nargs="?", default="mangrove-notebooks", metavar="DIR",
                           help="the folder to copy them into (default: mangrove-notebooks; created if missing)")
    notebooks.add_argument("--force", action="store_true", help="overwrite the notebooks already in DIR")
    notebooks.set_defaults(run=notebooks_command.run)

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
    registry.add_argument("--quarter", help="the calendar quarter whose batches to report, e.g. 2025Q1 (or Q1 2025)")
    registry.add_argument("--report", metavar="REPORT",
                          help="the report: its id (rpt_...) or its name (case-insensitive), a draft to fill")
    registry.add_argument("--ledger", action="append", default=[], metavar="LEDGER",
                          help="a ledger name or id whose batches to report (repeat it for each; default: the "
                               "ledgers the project's submitted reports hold; several are a problem until named here)")
    registry.add_argument("--submit", action="store_true",
                          help="fill the report with the planned batches and submit it (irreversible)")
    registry.add_argument("--yes", action="store_true", help="with --submit: do not ask to type the report id")
    registry.add_argument("--list", action="store_true",
                          help="list the registry reports (id, name, status, batches, allocated) and exit; with "
                               "--report, only that one")
    registry.add_argument("--reconcile", action="store_true",
                          help="after a submission whose outcome is unknown: read the report's status and say "
                               "whether it was sent")
    registry.set_defaults(run=registry_command.run, parser=registry)
    return parser
