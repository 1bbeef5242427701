"""``mangrove-nb report``: render the report for a quarter, a range of quarters, a year or a snapshot, and print
each path written; SIGTERM and SIGHUP stop it as Ctrl-C does (``_signals``), and an older PDF or workbook
beside a fresh HTML is said in the command's words."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
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
        hint = None if args.generate_missing or args.from_snapshot else _generatable(paths.ipynb)
        if hint:
            print(f"mangrove-nb report: {hint}", file=sys.stderr, flush=True)
    return 0


def _generatable(notebook: Path) -> str | None:
    """What the report found not generated that the preview says could be: a report of a quarter nobody generated
    renders, exit 0, every month "not generated"; the command says so on stderr (stdout has only paths) with the
    option that generates them first. None when the coverage says nothing is missing or cannot be read."""
    try:
        facts = json.loads(notebook.read_text(encoding="utf-8")).get("metadata", {}).get("mangrove_nb", {})
    except (OSError, ValueError):
        return None
    rows = facts.get("coverage") if isinstance(facts, dict) else None
    if not isinstance(rows, list):
        return None
    rows = [row for row in rows if isinstance(row, dict)]
    missing = [row for row in rows if row.get("Generated") is False]
    could = sum(row["Preview: new batches"] for row in rows
                if isinstance(row.get("Preview: new batches"), int) and row["Preview: new batches"] > 0)
    if not could:
        return None
    return (f"{notebook.stem}: {len(missing)} of {len(rows)} ledger-months have no complete batch, and the preview "
            f"counts {could} batch(es) that could still be generated; the report shows them as not generated. "
            "Add --generate-missing to generate them before the report (checked first, sent once).")
