"""``mangrove-nb report``: render the report for a quarter, a range of quarters, a year or a snapshot, and print
each path written; SIGTERM and SIGHUP stop it as Ctrl-C does (``_signals``), and an older PDF or workbook
beside a fresh HTML is said in the command's words."""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import TextIO

from ._messages import one_line
from ._signals import stop_signals_interrupt


def run(args: argparse.Namespace) -> int:
    if not (args.quarter or args.year or args.from_snapshot):
        args.parser.error("the following arguments are required: --quarter (a quarter such as 2025Q1, or a range "
                          "such as 2024Q1..2025Q4), or --year, or --from-snapshot")
    from ..reports import render_report, render_reports
    from ..reports.run import StaleReportWarning

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
    with warnings.catch_warnings(), stop_signals_interrupt():  # both restore what they change
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
