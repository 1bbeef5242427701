"""The report form's HTML and texts: a report's facts, a plan (batches added, removed and kept; totals per ledger
and unit; the problems), the submission question and its outcome.

Pure functions from the client's values (``registry.Report``, ``registry.ReportPlan``, ``client.reports()`` rows)
to strings, like ``_html``: every text that came from the API reaches HTML through ``esc`` or ``html_table``
(which escapes every cell), and plain texts are escaped by ``status_html`` where they are shown.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from .._text import one_line
from ..registry import Report, ReportPlan
from ._html import esc, html_table, number, plural, span

# The plan's batch table: one row per batch, what filling would do with it.
_PLAN_HEADER = ["Change", "Tracking id", "Ledger", "Period", "State", "Balance", "Amount", "Unit", "Problem"]


def text(value: Any) -> str:
    """API text as plain text, on one line without control or bidi characters (``_text.one_line``: no ESC, BEL
    or bidi override reaches a drop-down's label or the status; NA as an em dash); escaped later, where it is
    shown."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "—"
    return one_line(value)


def per_unit(units: Iterable[Any], amounts: Iterable[Any]) -> dict[str, float | None]:
    """Amounts summed per unit, in the order first seen; a unit with a missing amount sums to None (unknown:
    never counted as 0, which would understate what is sent, nor guessed)."""
    totals: dict[str, float | None] = {}
    for unit, amount in zip(units, amounts, strict=True):
        key = "" if unit is None or pd.isna(unit) else str(unit)
        missing = amount is None or pd.isna(amount)
        if key not in totals:
            totals[key] = 0.0
        before = totals[key]
        totals[key] = None if missing or before is None else before + float(amount)
    return totals


def amounts_text(totals: Mapping[str, float | None]) -> str:
    """``227.174 t`` (``+`` between units); an unknown sum says so."""
    if not totals:
        return "nothing"
    return " + ".join(f"{number(amount)} {unit}".strip() if amount is not None else f"an unknown amount of {unit}"
                      for unit, amount in totals.items())


def report_label(row: Any) -> str:
    """A report as the drop-down lists it (plain text: a drop-down shows its labels as text). Its batches are said
    under it (they change when it is filled; the label does not)."""
    status = "" if row.status == "draft" else f" [{text(row.status)}: cannot be filled]"
    return f"{text(row.name)} — {text(row.id)}{status}"


def report_facts(report: Report | None, row: Any, *, indent: bool = True) -> str:
    """One line about the chosen report: its status, batches and allocation (from ``report`` when read, else the
    listing's ``row``); escaped. ``indent`` lines it up under the drop-down's value (in the widget)."""
    if report is not None:
        status, count = report.status, len(report.inclusions)
        amount, unit = report.allocated_amount, report.allocated_unit
        totals = per_unit(report.inclusions["unit"], report.inclusions["amount"])
        holds = f"holds {plural(count, 'batch')}" + (f" ({amounts_text(totals)})" if count else "")
    else:
        status, amount, unit = row.status, row.allocated_amount, row.allocated_unit
        holds = (f"holds {plural(int(row.batch_count), 'batch')}" if not pd.isna(row.batch_count)
                 else "does not list its batches")
    allocated = (f"; allocated {number(amount)} {text(unit)}" if amount is not None and not pd.isna(amount)
                 else "")
    margin = "2px 0 6px 78px" if indent else "2px 0 6px"
    return (f'<div style="margin:{margin};color:#52606d">Report <code>{esc(text(row.id))}</code>: '
            f"<b>{esc(text(status))}</b>, {esc(holds)}{esc(allocated)}.</div>")


def _plan_rows(plan: ReportPlan) -> list[list[Any]]:
    rows = []
    for change, frame in (("added", plan.added), ("removed", plan.removed), ("kept", plan.kept)):
        for r in frame.itertuples(index=False):
            ledger = r.ledger_name if isinstance(r.ledger_name, str) else r.ledger_id
            rows.append([change, r.tracking_id, ledger, span(r.start_time, r.end_time), r.state,
                         number(r.ledger_balance), number(r.amount), r.unit, "" if pd.isna(r.problem) else r.problem])
    return rows


def plan_html(plan: ReportPlan, period_label: str) -> str:
    """The plan: what filling would change, the totals the report would hold per ledger and unit, and every
    problem (each names the batch and what to do). Says that nothing has been sent."""
    report = plan.report
    parts = [f"<div><b>Plan for {esc(text(report.name))} with the complete batches of {esc(period_label)}</b>"
             f" ({len(plan.added)} added, {len(plan.removed)} removed, {len(plan.kept)} kept; nothing sent yet)</div>"]
    if plan.problems:
        items = "".join(f"<li>{esc(p.message)}</li>" for p in plan.problems)
        parts.append(f'<div style="color:#610404;margin:4px 0"><b>{plural(len(plan.problems), "problem")}</b> to '
                     f'fix before filling or submitting (the totals leave those batches out):<ul '
                     f'style="margin:2px 0 6px">{items}</ul></div>')
    parts.extend(f'<div style="color:#8a4b00;margin:4px 0"><b>Warning:</b> {esc(warning)}</div>'
                 for warning in plan.warnings)
    parts.extend(f'<div style="color:#52606d">Note: {esc(note)}</div>' for note in plan.notes)
    rows = [(r.ledger_name if isinstance(r.ledger_name, str) else r.ledger_id, r.unit, r.batches, number(r.amount))
            for r in plan.totals.itertuples(index=False)]
    title = (f"Totals the report holds ({esc(text(report.status))}: it cannot change)" if plan.settled
             else "Totals the report would hold")
    months = plan.months_text()
    title += f", of {esc(months)}" if months else ""
    parts.append(f'<div style="margin-top:6px"><b>{title}</b></div>' + (
        html_table(["Ledger", "Unit", "Batches", "Amount"], rows, numeric=[2, 3]) if rows
        else "<div>none</div>"))
    batch_rows = _plan_rows(plan)
    if batch_rows:
        header = _PLAN_HEADER
        if not any(row[-1] for row in batch_rows):  # the Problem column only when a batch has one
            header, batch_rows = header[:-1], [row[:-1] for row in batch_rows]
        parts.append("<div><b>Batches</b></div>" + html_table(header, batch_rows, numeric=[5, 6], wrap=[8]))
    else:
        parts.append(f"<div>No complete batch in {esc(period_label)}, and the report holds none.</div>")
    return "".join(parts)


def question(report: Report, names: Mapping[str, str] | None = None, months: str = "",
             warnings: Iterable[str] = ()) -> str:
    """The confirmation: the report, how many batches of which ledgers (and units), of which months, the total per
    unit, and that it cannot be undone. ``names``: ledger id -> name (a ledger it lacks is called by its id);
    ``months``: the months of its batches (``ReportPlan.months_text()``); ``warnings``: the plan's, said again."""
    frame = report.inclusions
    totals = amounts_text(per_unit(frame["unit"], frame["amount"]))
    ledgers = " and ".join(dict.fromkeys(
        f"{text((names or {}).get(str(lg), lg) if isinstance(lg, str) else 'an unknown ledger')}"
        + (f" ({text(unit)})" if isinstance(unit, str) else "")
        for lg, unit in zip(frame["ledger_id"], frame["unit"], strict=True)))
    return (f"Submit report {text(report.name)!r} ({report.id}) to the registry with {plural(len(frame), 'batch')}"
            f"{f' of {ledgers}' if ledgers else ''}{f', from {months}' if months else ''}, {totals}? "
            + "".join(f"Warning: {text(w)} " for w in warnings) + "Submitting is "
            "irreversible: the registry allocates "
            "these amounts and each batch's balance drops by its amount. Click Confirm submit to send it, once.")


def inclusions_html(report: Report, names: Mapping[str, str]) -> str:
    """The batches a report holds, with their amounts (escaped table)."""
    rows = [(r.tracking_id if isinstance(r.tracking_id, str) else r.batch_id,
             names.get(str(r.ledger_id), r.ledger_id), number(r.amount), r.unit)
            for r in report.inclusions.itertuples(index=False)]
    if not rows:
        return "<div>The report lists no batch.</div>"
    return html_table(["Tracking id", "Ledger", "Amount", "Unit"], rows, numeric=[2])


def outcome_text(report: Report, task_id: Any) -> str:
    """What a completed submission did: the report's status and the allocation (amount and unit)."""
    count = plural(len(report.inclusions), "batch")
    if report.allocated_amount is not None:
        allocated = f"the registry allocated {number(report.allocated_amount)} {text(report.allocated_unit)}"
    else:
        allocated = "the report shows no allocation yet (read it again later with client.report())"
    done = f"Task {task_id} complete: report" if task_id is not None else "Report"
    return f"{done} {text(report.name)!r} is {text(report.status)}; {allocated} ({count})."
