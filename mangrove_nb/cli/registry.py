"""``mangrove-nb registry``: list the registry reports, plan a report's batches for a quarter and, with
``--submit``, fill it and submit it once after the analyst types the report id; or reconcile a submission whose
outcome is unknown."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ._messages import EXIT_FAILED, cli_words, one_line

if TYPE_CHECKING:
    from .. import Period


def run(args: argparse.Namespace) -> int:
    """List the registry reports; plan a report's batches for a quarter, and with --submit fill it and submit it after
    a confirmation; or reconcile a submission whose outcome is unknown."""
    from .. import connect
    from ..errors import MangroveError, ReportPlanError

    if args.list:
        if args.submit or args.reconcile or args.quarter or args.ledger:
            args.parser.error("--list lists the reports and takes no other option but --report (to show one)")
    elif args.reconcile:
        if args.report is None or args.submit or args.quarter or args.ledger:
            args.parser.error("--reconcile takes --report (the report's id or name) and no other option")
    elif args.quarter is None or args.report is None:
        args.parser.error("the following arguments are required: --quarter and --report (or --list to list the "
                          "reports)")
    quarter = _quarter(args.quarter) if args.quarter is not None else None
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
            print(cli_words("registry", one_line(found.advice())), flush=True)
            return 0 if found.sent is not None else EXIT_FAILED
        assert quarter is not None  # required above, unless --list or --reconcile
        batches = client.report_candidates(rid, quarter, ledgers=args.ledger or None)
        plan = client.plan_report(rid, batches)
        print(cli_words("registry", plan.to_text(unsent=not args.submit)), flush=True)  # --submit goes on to send
        if not args.submit:
            return 0 if plan.ok else EXIT_FAILED
        if not plan.ok:
            raise plan.error()
        report = plan.report
        if not args.yes and not _confirmed(report.id, plan.summary(unsent=False), plan.ledgers_text(),
                                           plan.months_text(), plan.warnings):
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


# A quarter written the way report names write it: "Q1 2025", "q1-2025", "2025 Q1" (as 2025Q1).
_QUARTER_WORDS = (re.compile(r"[Qq]([1-4])[\s_/-]*([0-9]{4})"), re.compile(r"([0-9]{4})[\s_/]+[Qq]([1-4])"))


def _quarter(text: str) -> Period:
    """The calendar quarter ``--quarter`` names: as ``parse_period`` reads one ("2025Q1", "2025-Q1"), or as report
    names write it ("Q1 2025"). Anything else is a ``PeriodError`` in the command's words, for what was typed: a
    month names the quarter that holds it, a year or a range says to run the command once per quarter."""
    from .. import parse_period
    from ..errors import PeriodError

    typed = text.strip()
    for number, pattern in enumerate(_QUARTER_WORDS):
        if match := pattern.fullmatch(typed):
            year, quarter = match.groups() if number == 1 else reversed(match.groups())
            return parse_period(f"{year}Q{quarter}")
    shown = one_line(repr(typed if len(typed) <= 60 else typed[:59] + "…"))
    if ".." in typed:
        raise PeriodError(f"--quarter takes one quarter, not a range such as {shown}: run the command once per "
                          "quarter.", argument="quarter")
    try:
        found = parse_period(typed)
    except PeriodError:
        raise PeriodError(f"--quarter takes one calendar quarter such as 2025Q1 (a year and Q1 to Q4; Q1 2025 also "
                          f"reads), not {shown}.", argument="quarter") from None
    if found.kind == "quarter":
        return found
    if found.kind == "month":
        holds = f"{found.start.year}Q{(found.start.month - 1) // 3 + 1}"
        raise PeriodError(f"--quarter takes a quarter, not a month such as {found.label} ({holds} holds it).",
                          argument="quarter")
    if found.kind == "year":
        raise PeriodError(f"--quarter takes a quarter, not a year such as {found.label}: run the command once per "
                          f"quarter, {found.label}Q1 to {found.label}Q4.", argument="quarter")
    raise PeriodError(f"--quarter takes one calendar quarter such as 2025Q1, not {shown}.", argument="quarter")


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
    print(f"\n{one_line(summary)}{warned}\nIt adds up {one_line(ledgers)}.{of} "
          f"Submitting to the registry is irreversible. Type the report id ({one_line(report_id)}) to fill and "
          "submit it, anything else to stop:", flush=True)
    try:
        answer = input()
    except EOFError:
        return False
    return answer.strip() == report_id
