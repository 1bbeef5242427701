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
from ._display import _amount_text, _escape, _html_table, _plain, _text_table, _totals_text
from ._values import _frame, _sums
from .report import INCLUSIONS_SCHEMA, Report

#: ``plan.added`` / ``plan.removed`` / ``plan.kept``: one row per batch. ``amount`` is what the report would hold of
#: it (for a fill, its balance now; for a report that is not a draft, or checking a submission, the amount the report
#: holds); ``problem`` every problem found for it (their sentences, one after the other), else NA.
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


_NOTHING_SENT = "Nothing has been sent."


@dataclass(frozen=True)
class Problem:
    """Something that stops a report from being filled or submitted: the batch (None for the report itself),
    a ``kind`` (of a batch: ``unknown_batch``, ``other_project``, ``not_complete``, ``no_balance``,
    ``negative_balance``, ``amount_gone``, ``on_other_report``, ``mixed_units``, ``other_ledger``, ``unknown_ledger``,
    ``ledger_mismatch``,
    ``skipped_input``, ``duplicate_partition``, ``balance_exceeds_output``, ``changed_since_confirmed``; of the
    report: ``not_draft``, ``empty``, ``mixed_ledgers``, ``unreported_ledger``, ``reported_ledgers_unknown``,
    ``ledgers_not_named``, ``no_candidates``, ``would_empty``)
    and a sentence that says what to do."""

    batch_id: str | None
    kind: str
    message: str


@dataclass(frozen=True)
class ReportPlan:
    """What filling a report with some batches would do, checked but not sent (``client.plan_report``).

    ``added``, ``removed``, ``kept`` (``PLAN_BATCHES_SCHEMA``) compare the chosen batches with the report's;
    ``batch_ids`` is the set the report would hold (what ``fill_report`` sends); ``totals`` (``TOTALS_SCHEMA``)
    sums, per ledger and unit, the batches it would hold that have no problem (for a report that is not a draft,
    which cannot change, what it holds); ``problems`` lists every problem found (``ok`` is True when there is none);
    ``warnings`` what does not stop a fill but deserves a look before it (batches of other months than the report's
    name says); ``notes`` what could not be checked, or is worth knowing (a batch also on another draft, ledgers
    the analyst named that are several). ``named_ledgers`` are the ledgers the analyst named (ids; None when the
    batches' ledgers were not named): only named ledgers may be several. Display it in a notebook (HTML, every API
    text escaped), print it (``to_text()``), or read its frames.
    """

    report: Report
    batch_ids: tuple[str, ...]
    added: pd.DataFrame = field(repr=False, compare=False)
    removed: pd.DataFrame = field(repr=False, compare=False)
    kept: pd.DataFrame = field(repr=False, compare=False)
    totals: pd.DataFrame = field(repr=False, compare=False)
    problems: tuple[Problem, ...] = ()
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    named_ledgers: tuple[str, ...] | None = None

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

    @property
    def settled(self) -> bool:
        """True when the report is not a draft (submitting, complete, or another status it says): it cannot change,
        so the totals are what it holds."""
        return self.report.status is not None and self.report.status != "draft"

    def summary(self, *, unsent: bool = True) -> str:
        """One sentence: the changes, the totals (what the report would hold; what it holds, for a report that is
        not a draft), the months of its batches, and how many problems and warnings; then "Nothing has been sent."
        unless ``unsent`` is False (a plan shown right before it is sent)."""
        report = self.report
        return (f"Report {_plain(report.id)} ({_plain(report.status or 'status unknown')}): {self._said()}"
                + (f" {_NOTHING_SENT}" if unsent else ""))

    def _said(self) -> str:
        """The summary after the report's id and status, without "Nothing has been sent."."""
        totals = _totals_text(self.totals) or "nothing"
        problems = f"{len(self.problems)} problem(s)" if self.problems else "no problem"
        warnings = f", {len(self.warnings)} warning(s)" if self.warnings else ""
        months = self.months_text()
        of = f" of {months}" if months else ""
        report = self.report
        if self.settled:
            allocated = (f", allocated {_amount_text(report.allocated_amount, report.allocated_unit)}"
                         if report.allocated_amount is not None else "")
            holds = f"it holds {totals}{of}{allocated}; being {_plain(report.status)}, not a draft, it cannot change"
        else:
            holds = f"it would hold {totals}{of}"
        return (f"{len(self.added)} added, {len(self.removed)} removed, {len(self.kept)} kept; {holds}; "
                f"{problems}{warnings}.")

    def months_text(self) -> str:
        """The months of the batches the report would hold (for a report that is not a draft, holds), by their
        start: "2025-01 to 2025-03 (2025Q1)", "2024-07, 2025-01"; "" when it would hold none (or none says)."""
        frames = [self.kept, self.added] if not self.settled else [self.kept, self.removed]
        starts = [s for frame in frames for s in frame["start_time"] if isinstance(s, pd.Timestamp)]
        return months_text(starts)

    def ledgers_text(self) -> str:
        """The ledgers and units the report would add up, as "Net Carbon Removal (t)" (API text cleaned), joined
        with "and"; "no ledger" when it would hold no batch without a problem."""
        named = dict.fromkeys(
            f"{_plain(name if isinstance(name, str) else ledger if isinstance(ledger, str) else 'an unknown ledger')}"
            + (f" ({_plain(unit)})" if isinstance(unit, str) else "")
            for ledger, name, unit in zip(self.totals["ledger_id"], self.totals["ledger_name"], self.totals["unit"],
                                          strict=True))
        return " and ".join(named) or "no ledger"

    def to_text(self, *, unsent: bool = True) -> str:
        """The plan as plain text tables (what ``mangrove-nb registry`` prints); API text cleaned of control
        characters. ``unsent=False`` leaves out "Nothing has been sent." (``mangrove-nb registry --submit`` prints
        the plan, then fills and submits it)."""
        lines = [self.summary(unsent=unsent)]
        if self.problems:
            lines.append("")
            lines.append(f"Problems ({len(self.problems)}), to fix before filling or submitting:")
            lines.extend(f"  - {_plain(p.message)}" for p in self.problems)
        for warning in self.warnings:
            lines.append(f"Warning: {_plain(warning)}")
        for note in self.notes:
            lines.append(f"Note: {_plain(note)}")
        for title, frame in ((self._totals_title(), self.totals), ("Added", self.added),
                             ("Removed", self.removed), ("Kept", self.kept)):
            lines.append("")
            lines.append(f"{title} ({len(frame)}):")
            lines.append(_text_table(frame) if len(frame) else "  (none)")
        return "\n".join(lines)

    def _totals_title(self) -> str:
        return f"Totals the report holds ({_plain(self.report.status)})" if self.settled else \
            "Totals the report would hold"

    def __repr__(self) -> str:
        return f"<ReportPlan {self.summary()}>"

    def _repr_html_(self) -> str:
        e = _escape
        report = self.report
        head = (f"<p><strong>Plan for report</strong> <code>{e(report.id)}</code> {e(report.name or '')} "
                f"(status {e(report.status or 'unknown')}): "
                f"{e(self._said())} <em>{_NOTHING_SENT}</em></p>")
        if self.problems:
            items = "".join(f"<li>{e(p.message)}</li>" for p in self.problems)
            problems = (f"<p><strong>{len(self.problems)} problem(s)</strong> to fix before filling or "
                        f"submitting; the totals leave those batches out:</p><ul>{items}</ul>")
        else:
            problems = "<p>No problem found.</p>"
        warnings = "".join(f"<p><strong>Warning:</strong> {e(w)}</p>" for w in self.warnings)
        notes = "".join(f"<p>Note: {e(n)}</p>" for n in self.notes)
        parts = [head, problems, warnings, notes]
        for title, frame in ((self._totals_title(), self.totals), ("Added", self.added),
                             ("Removed", self.removed), ("Kept", self.kept)):
            parts.append(f"<h4>{e(title)} ({len(frame)})</h4>{_html_table(frame) if len(frame) else '<p>none</p>'}")
        return f"<div class='mangrove-report-plan'>{''.join(parts)}</div>"


def months_text(starts: list[pd.Timestamp]) -> str:
    """Months (``YYYY-MM``, UTC) of these start times: a run of consecutive months as "first to last", followed by
    its quarter or year when it is exactly one ("2025-01 to 2025-03 (2025Q1)"), other months listed; "" for none."""
    months = sorted({(s.tz_convert("UTC").tz_localize(None) if s.tzinfo is not None else s).to_period("M")
                     for s in starts})
    if not months:
        return ""
    runs: list[list[pd.Period]] = [[months[0]]]
    for month in months[1:]:
        if month == runs[-1][-1] + 1:
            runs[-1].append(month)
        else:
            runs.append([month])
    shown = ", ".join(f"{run[0]}" if len(run) == 1 else f"{run[0]} to {run[-1]}" for run in runs)
    first = months[0]
    if len(runs) == 1 and len(months) == 3 and first.month % 3 == 1:
        shown += f" ({first.year}Q{(first.month - 1) // 3 + 1})"
    elif len(runs) == 1 and len(months) == 12 and first.month == 1:
        shown += f" ({first.year})"
    return shown


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
