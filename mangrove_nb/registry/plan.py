"""The plan of a fill or a submission: ``ReportPlan`` (added, removed, kept, totals, problems, notes) and ``Problem``,
their frames, and the plan shown as HTML (every API text escaped) and as text tables (API text cleaned of control
characters). Nothing here reads or sends: ``checks`` makes the plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import pandas as pd

from ..errors import ReportPlanError
from ..frames._schema import _FLOAT, _INT, _TEXT, _TIME
from ._display import _escape, _html_table, _plain, _text_table, _totals_text
from ._values import _frame, _sums
from .report import INCLUSIONS_SCHEMA, Report

#: ``plan.added`` / ``plan.removed`` / ``plan.kept``: one row per batch. ``amount`` is what the report would hold of
#: it (for a fill, its balance now; checking a submission, the amount the report holds); ``problem`` the first
#: problem found, else NA.
PLAN_BATCHES_SCHEMA: Mapping[str, str] = MappingProxyType({
    "batch_id": _TEXT,
    "tracking_id": _TEXT,
    "ledger_id": _TEXT,
    "ledger_name": _TEXT,
    "start_time": _TIME,
    "end_time": _TIME,
    "state": _TEXT,
    "ledger_balance": _FLOAT,
    "amount": _FLOAT,
    "unit": _TEXT,
    "problem": _TEXT,
})

#: ``plan.totals``: per ledger and unit, the batches the report would hold without a problem, and their amount.
TOTALS_SCHEMA: Mapping[str, str] = MappingProxyType({
    "ledger_id": _TEXT,
    "ledger_name": _TEXT,
    "unit": _TEXT,
    "batches": _INT,
    "amount": _FLOAT,
})

#: ``plan.problems_frame()``: one row per problem (``batch_id`` NA for a problem of the report itself).
PROBLEMS_SCHEMA: Mapping[str, str] = MappingProxyType({
    "batch_id": _TEXT,
    "kind": _TEXT,
    "message": _TEXT,
})


@dataclass(frozen=True)
class Problem:
    """Something that stops a report from being filled or submitted: the batch (None for the report itself),
    a ``kind`` (``unknown_batch``, ``other_project``, ``not_complete``, ``no_balance``, ``amount_gone``,
    ``on_other_report``, ``mixed_units``, ``not_draft``, ``empty``) and a sentence that says what to do."""

    batch_id: str | None
    kind: str
    message: str


@dataclass(frozen=True)
class ReportPlan:
    """What filling a report with some batches would do, checked but not sent (``client.plan_report``).

    ``added``, ``removed``, ``kept`` (``PLAN_BATCHES_SCHEMA``) compare the chosen batches with the report's;
    ``batch_ids`` is the set the report would hold (what ``fill_report`` sends); ``totals`` (``TOTALS_SCHEMA``)
    sums, per ledger and unit, the batches it would hold that have no problem; ``problems`` lists every problem
    found (``ok`` is True when there is none); ``notes`` says what could not be checked, or deserves a look (a
    total that adds up several ledgers). Display it in a notebook (HTML, every API text escaped), print it
    (``to_text()``), or read its frames.
    """

    report: Report
    batch_ids: tuple[str, ...]
    added: pd.DataFrame = field(repr=False, compare=False)
    removed: pd.DataFrame = field(repr=False, compare=False)
    kept: pd.DataFrame = field(repr=False, compare=False)
    totals: pd.DataFrame = field(repr=False, compare=False)
    problems: tuple[Problem, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    @property
    def changes(self) -> bool:
        """True when filling would add or remove a batch."""
        return bool(len(self.added) or len(self.removed))

    def problems_frame(self) -> pd.DataFrame:
        """The problems as a frame (``PROBLEMS_SCHEMA``)."""
        return _frame([{"batch_id": p.batch_id, "kind": p.kind, "message": p.message} for p in self.problems],
                      PROBLEMS_SCHEMA)

    def error(self) -> ReportPlanError:
        """The ``ReportPlanError`` that lists this plan's problems (raised by ``fill_report``/``submit_report``)."""
        return ReportPlanError(report_id=self.report.id, problems=[p.message for p in self.problems],
                               batch_ids=[p.batch_id for p in self.problems], plan=self)

    def summary(self) -> str:
        """One sentence: the changes, the totals and how many problems."""
        totals = _totals_text(self.totals) or "nothing"
        problems = f"{len(self.problems)} problem(s)" if self.problems else "no problem"
        return (f"Report {_plain(self.report.id)} ({_plain(self.report.status or 'status unknown')}): "
                f"{len(self.added)} added, {len(self.removed)} removed, {len(self.kept)} kept; it would hold "
                f"{totals}; {problems}. Nothing has been sent.")

    def ledgers_text(self) -> str:
        """The ledgers and units the report would add up, as "Net Carbon Removal (t)" (API text cleaned), joined
        with "and"; "no ledger" when it would hold no batch without a problem."""
        named = dict.fromkeys(
            f"{_plain(name if isinstance(name, str) else ledger if isinstance(ledger, str) else 'an unknown ledger')}"
            + (f" ({_plain(unit)})" if isinstance(unit, str) else "")
            for ledger, name, unit in zip(self.totals["ledger_id"], self.totals["ledger_name"], self.totals["unit"],
                                          strict=True))
        return " and ".join(named) or "no ledger"

    def to_text(self) -> str:
        """The plan as plain text tables (what ``mangrove-nb registry`` prints); API text cleaned of control
        characters."""
        lines = [self.summary()]
        if self.problems:
            lines.append("")
            lines.append(f"Problems ({len(self.problems)}), to fix before filling or submitting:")
            lines.extend(f"  - {_plain(p.message)}" for p in self.problems)
        for note in self.notes:
            lines.append(f"Note: {_plain(note)}")
        for title, frame in (("Totals the report would hold", self.totals), ("Added", self.added),
                             ("Removed", self.removed), ("Kept", self.kept)):
            lines.append("")
            lines.append(f"{title} ({len(frame)}):")
            lines.append(_text_table(frame) if len(frame) else "  (none)")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<ReportPlan {self.summary()}>"

    def _repr_html_(self) -> str:
        e = _escape
        report = self.report
        head = (f"<p><strong>Plan for report</strong> <code>{e(report.id)}</code> {e(report.name or '')} "
                f"(status {e(report.status or 'unknown')}): {len(self.added)} added, {len(self.removed)} removed, "
                f"{len(self.kept)} kept. <em>Nothing has been sent.</em></p>")
        if self.problems:
            items = "".join(f"<li>{e(p.message)}</li>" for p in self.problems)
            problems = (f"<p><strong>{len(self.problems)} problem(s)</strong> to fix before filling or "
                        f"submitting; the totals leave those batches out:</p><ul>{items}</ul>")
        else:
            problems = "<p>No problem found.</p>"
        notes = "".join(f"<p>Note: {e(n)}</p>" for n in self.notes)
        parts = [head, problems, notes]
        for title, frame in (("Totals the report would hold", self.totals), ("Added", self.added),
                             ("Removed", self.removed), ("Kept", self.kept)):
            parts.append(f"<h4>{e(title)} ({len(frame)})</h4>{_html_table(frame) if len(frame) else '<p>none</p>'}")
        return f"<div class='mangrove-report-plan'>{''.join(parts)}</div>"


def _planned_inclusions(plan: ReportPlan) -> pd.DataFrame:
    """The report's inclusions as the plan would make them (what ``fill_report`` shows when the server lists none)."""
    rows = pd.concat([plan.kept, plan.added], ignore_index=True) if len(plan.kept) and len(plan.added) else (
        plan.added if len(plan.added) else plan.kept)
    order = {b: n for n, b in enumerate(plan.batch_ids)}
    records = sorted(rows.to_dict("records"), key=lambda r: order.get(str(r["batch_id"]), len(order)))
    return _frame([{k: r.get(k) for k in INCLUSIONS_SCHEMA} for r in records], INCLUSIONS_SCHEMA)


def _totals(rows: pd.DataFrame) -> pd.DataFrame:
    """Per ledger and unit, the batches without a problem and their amount."""
    fine = rows[rows["problem"].isna()] if len(rows) else rows
    if not len(fine):
        return _frame([], TOTALS_SCHEMA)
    return _sums(fine, ["ledger_id", "ledger_name", "unit"])
