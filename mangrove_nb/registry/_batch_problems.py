"""The problems of one batch in a plan: not the project's, not complete, no balance left (or, at submission, less
than the report holds), on another report, another unit, a ledger other than the server's or none; and, by the
quarterly report's rules in ``frames``, generated with a skipped input that may overstate it, one of two complete
batches of a partition, a balance larger than the output. Each problem names its batch and what to do. Pure: the
rows, details and listings come from ``checks``, which reads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from .. import frames
from ._display import _amount_text, _ledger_argument, _plain
from .plan import Problem

if TYPE_CHECKING:
    from .checks import _Pool

# Amounts are compared with this slack (the API rounds them to 3 decimals; floats add the rest).
_AMOUNT_SLACK = 1e-9


def batch_problems(bid: str, row: Mapping[str, Any], pool: _Pool, elsewhere: Mapping[str, list[str]],
                   held: float | None, *, project: str | None, on_report: bool, submitting: bool) -> list[Problem]:
    """The problems of one batch the report would hold (its row shows them all)."""
    if bid in pool.unknown:
        fix = ("take it off the report (fill the report without it)" if on_report
               else "check it against the id column of client.batches() and leave it out")
        return [Problem(bid, "unknown_batch", f"Batch {bid}: no batch has this id (404, deleted or mistyped); "
                                              f"{fix}.")]
    if bid in pool.other_project:
        return [Problem(bid, "other_project", f"Batch {bid} belongs to another project than the report's "
                                              f"(project {project}); choose batches of project {project}.")]
    found = []
    state = row.get("state")
    if state != "complete":
        found.append(Problem(bid, "not_complete", f"Batch {bid} is {state or 'of unknown state'!r}, not "
                                                  "'complete'; wait for it to complete (or generate its period "
                                                  "again if it failed), or leave it out."))
    balance = row.get("ledger_balance")
    unit = row.get("unit") or ""
    left = "unknown" if balance is None else _amount_text(balance, unit)
    if submitting:
        if held is None or balance is None or held > balance + _AMOUNT_SLACK:
            found.append(Problem(bid, "amount_gone", f"Batch {bid} is on the report with "
                                                     f"{_amount_text(held, unit)} but {left} is left (allocated "
                                                     "elsewhere since, or unknown); fill the report again (a "
                                                     "fill includes each batch at its balance now) or without "
                                                     "it, and submit then."))
    elif balance is not None and balance < -_AMOUNT_SLACK:
        found.append(Problem(bid, "negative_balance",
                             f"Batch {bid} has a negative balance (ledger_balance {left}): its month's emissions "
                             "exceed its removal (or a correction took more than it held), so nothing of it can be "
                             f"allocated. Leaving it out makes the report {_amount_text(-balance, unit)} "
                             "more than the period's net removal: say so to the registry, whose methodology decides "
                             "how a negative month counts (the quarterly report shows the period's net)."))
    elif balance is None or balance <= _AMOUNT_SLACK:
        found.append(Problem(bid, "no_balance", f"Batch {bid} has no balance left (ledger_balance {left}): it is "
                                                "already allocated elsewhere, so it would add nothing; leave it "
                                                "out."))
    for other in elsewhere.get(bid, []):
        found.append(Problem(bid, "on_other_report", f"Batch {bid} is already on {other}; a batch is reported "
                                                     "once: leave it out."))
    return found


def skipped_input(rid: str, bid: str, row: Mapping[str, Any], detail: Mapping[str, Any]) -> Problem | str | None:
    """What a batch generated with a skipped input means for report ``rid``, by the quarterly report's rule
    (``frames.skipped_effect``: a skipped input counts as zero, and unless a calculation shows that it only took a
    removal term to zero, the batch's output may be overstated): a ``skipped_input`` problem of the batch when it
    may overstate it, a note when it can only understate it, None without a skipped input."""
    found = frames.skipped_effect(detail)
    if found is None:
        return None
    inputs, effect, direction = found
    effect = _plain(effect[:1].lower() + effect[1:])  # "generated without ...", after the batch
    said, month = _batch_said(bid, row)
    ledger = row.get("ledger_id")
    generate = (f" (client.generate({_ledger_argument(row.get('ledger_name'), str(ledger))}, '{month}'))"
                if isinstance(ledger, str) and month != "its month" else "")
    again = (f"add the missing reading of {_plain(inputs)} in Mangrove (a documented estimate if need be), then "
             f"delete the batch with client.delete_batch({bid!r}, even_if_complete=True) and generate {month} "
             f"again{generate}")
    if not frames.may_overstate(direction):
        return (f"{said}: {effect} It cannot overstate the report; to report its whole removal, first {again}.")
    would = "would overstate" if direction == "overstated" else "may overstate"
    return Problem(bid, "skipped_input", f"{said}: {effect} Its amount {would} the report's removal. First {again}; "
                                         f"or {_leave_out(rid)}.")


def partition_problems(rid: str, bid: str, row: Mapping[str, Any],
                       duplicate: tuple[str, str, Any, list[str], list[str]] | None,
                       names: Mapping[str, str]) -> list[Problem]:
    """The quarterly report's two rules of a batch beside its partition, as problems of that batch: another complete
    batch of its ledger for the same partition (``frames.duplicate_partitions``: a double generation, both
    counted), and a balance larger than its output (``frames.balance_exceeds_output``: the API's balance is
    wrong, and the report would include it at that balance)."""
    found = []
    said, _month = _batch_said(bid, row)
    if duplicate is not None:
        ledger, partition, feedstock, ids, tracking = duplicate
        others = [f"{_plain(i)} ({_plain(t)})" for i, t in zip(ids, tracking, strict=True) if i != bid]
        of = f" ({_plain(feedstock)})" if feedstock else ""
        found.append(Problem(bid, "duplicate_partition",
                             f"{said} is one of {len(ids)} complete batches of {_plain(names.get(ledger, ledger))} "
                             f"for {partition}{of}; the other{'s are' if len(others) > 1 else ' is'} "
                             f"{', '.join(others)}. A partition gets one batch per generation: this is what a double "
                             "generation leaves, and the report would count the month twice (the quarterly report "
                             "marks it 'possibly generated twice'). Check which of them is right (client.calculations"
                             f"([{', '.join(repr(i) for i in ids)}]) shows their terms), delete the other with "
                             "client.delete_batch(its id, even_if_complete=True), and plan again."))
    balance, output = row.get("ledger_balance"), row.get("output_value")
    if frames.balance_exceeds_output(balance, output):
        unit = row.get("unit") or ""
        found.append(Problem(bid, "balance_exceeds_output",
                             f"{said}: its balance (ledger_balance {_amount_text(balance, unit)}) is larger than its "
                             f"output ({_amount_text(output, unit)}). A balance cannot exceed what was produced (an "
                             "allocation of a negative amount, or a balance computed wrongly), so the amount the "
                             "report would take of it may overstate the report. Ask Mangrove why its balance "
                             f"exceeds its output, and until it is corrected {_leave_out(rid)}."))
    return found


def _batch_said(bid: str, row: Mapping[str, Any]) -> tuple[str, str]:
    """A batch as a problem names it ("Batch bat_... (NCR-2025-02, 2025-02)"), and its month (``YYYY-MM`` of its
    start, UTC; "its month" when not known)."""
    start = row.get("start_time")
    month = f"{start.tz_convert('UTC'):%Y-%m}" if isinstance(start, pd.Timestamp) and start.tzinfo is not None \
        else "its month"
    tracking = row.get("tracking_id")
    said = f"Batch {bid} ({_plain(tracking)}, {month})" if tracking else f"Batch {bid} ({month})"
    return said, month


def _leave_out(rid: str) -> str:
    """How to leave a batch out of report ``rid`` (the command line rewords it: it cannot)."""
    return f"leave it out (fill the report without it: client.fill_report({rid!r}, batches_without_it))"


def unit_problems(rid: str, rows: list[Mapping[str, Any]]) -> list[Problem]:
    """A report's allocation is one sum in one unit: every batch in another unit than the first one's."""
    units = [str(r["unit"]) for r in rows if r.get("unit") is not None]
    if len(set(units)) <= 1:
        return []
    first = units[0]
    return [Problem(str(r["batch_id"]), "mixed_units",
                    f"Batch {r['batch_id']} is in {_plain(r['unit'])!r}, the report's first batch in "
                    f"{_plain(first)!r}: report {rid}'s allocation is one sum in one unit; keep batches of one unit.")
            for r in rows if r.get("unit") is not None and str(r["unit"]) != first]


def unknown_ledger(bid: str, claimed: str | None = None) -> Problem:
    frame = (f" The frame given says {_plain(claimed)}, but the server does not put the batch on that ledger (nor on "
             "any other), so that cannot be checked." if claimed is not None else "")
    return Problem(bid, "unknown_ledger", f"Batch {bid}: its ledger is not known (the batch does not say it, and no "
                                          "ledger's batches list it, or the ledgers could not be read), so it cannot "
                                          "be checked to be a removal the project reports: biochar or feedstock "
                                          f"tonnes would overstate the report.{frame} Give the batches as a frame of "
                                          "client.batches(ledger, period), which says their ledger, or leave it out.")


def ledger_claimed(bid: str, claimed: str, ledger: str, names: Mapping[str, str]) -> Problem:
    """The problem of a batch whose ledger the analyst's frame gives otherwise than the server."""
    def shown(one: str) -> str:
        return f"{_plain(names[one])} ({_plain(one)})" if one in names else _plain(one)

    return Problem(bid, "ledger_mismatch",
                   f"Batch {bid}: the frame given says it is on {shown(claimed)}, but the server lists it on "
                   f"{shown(ledger)}. Which ledger a batch is on decides whether it is a removal to report, so the "
                   "plan takes the server's; check the frame's ledger_id column (changed by hand?), and give the "
                   "batches as client.batches(ledger, period) or client.report_candidates(report, period) gives "
                   "them, or leave it out.")
