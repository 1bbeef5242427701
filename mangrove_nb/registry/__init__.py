"""Registry reports: list and read the reports Mangrove submits to a registry, plan and fill them with batches,
and submit them once.

    client.reports(status="draft")                         # DataFrame, one row per report
    report = client.report("rpt_...")                      # Report: its fields, report.inclusions (a frame)
    batches = client.report_candidates("rpt_...", "2025Q1")  # the quarter's complete batches of its project
    plan = client.plan_report("rpt_...", batches)          # added / removed / kept, totals, problems: sends nothing
    client.fill_report("rpt_...", batches)                 # the same checks, then PATCH (draft reports only)
    task = client.submit_report("rpt_...")                 # checked, then POSTed once
    task.wait()                                            # progress; the report as submitted (read again)
    client.reconcile_report("rpt_...")                     # after SubmissionOutcomeUnknownError

The contract (mangrove-api.md, "Reports"): reports are made in Mangrove's app; the API lists them, reads one,
replaces a draft's batches (``PATCH`` with ``batch_ids``) and submits it (``POST .../submit``: 202 with
``async_task_id``, polled like a generation; 422 when it does not meet the submission requirements).
Submitting is irreversible: a report goes ``draft`` → ``submitting`` → ``complete``, or back to ``draft`` when
the registry refuses it (the task's ``error_message`` says why).

What this module guarantees:

* **Checked before anything is sent.** ``plan_report`` reads the report, the project's batches, each chosen
  batch's detail and the project's other reports, and lists every problem the server would refuse (or that
  would overstate the report) with the batch it concerns and what to do: a batch that does not exist, belongs
  to another project, is not ``complete``, has no balance left, is already on another report that is not a
  draft, is in another unit than the report's first batch, or (at submission) no longer has the amount the
  report holds of it; a report that is not a draft, or (at submission) holds no batch. ``fill_report`` and
  ``submit_report`` raise ``ReportPlanError`` listing them, and send nothing.
* **Never overstated.** A plan's totals count only the batches without a problem: for a fill, each at the
  balance it has now (a fill includes every batch at its balance, as the emulator does); for a submission, at
  the amount the report holds of it, checked to be still available.
* **Submitted once.** ``submit_report`` sends the POST through ``HttpClient.send_once``: never re-sent after it
  may have reached the server, no redirect followed. The check, the record and the send happen under the
  API's lock in ``_sent.Sent`` (the one generations use), so a double call, racing threads or a second client
  of the same API send one POST. An answer lost after sending is ``SubmissionOutcomeUnknownError``; the
  submission is recorded (in memory and in the state file, so a restarted kernel knows too) and that report is
  not submitted again until ``reconcile_report`` has read its status.
* **The server may say less.** The documentation's own examples show ``inclusions: []`` and sparse objects:
  a missing optional field is NA (or None); when a submitted report lists no inclusions but batches list it
  in their ``report_allocations``, its inclusions are read from those batches (``report.inclusions_source``
  says where they came from). Every text from the API is escaped in HTML and cleaned of control characters in text.
"""

from __future__ import annotations

import html
import math
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import pandas as pd

from .. import frames
from .._arguments import id_list, short
from .._sent import Sent, Submission
from ..client import HttpClient
from ..errors import (
    MalformedResponseError,
    MangroveError,
    NotFoundError,
    PreconditionError,
    ReportPlanError,
    SubmissionOutcomeUnknownError,
    TaskFailedError,
    TaskTimeoutError,
    ValidationError,
    redact,
    secret_safe_logger,
)
from ..periods import PeriodLike, parse_period
from ..settings import Settings
from ..tasks import Task, TaskStatus

if TYPE_CHECKING:
    from ..progress import Progress

log = secret_safe_logger("mangrove_nb")

__all__ = [
    "INCLUSIONS_SCHEMA",
    "PLAN_BATCHES_SCHEMA",
    "PROBLEMS_SCHEMA",
    "REPORTS_SCHEMA",
    "REPORT_STATUSES",
    "TOTALS_SCHEMA",
    "Problem",
    "Report",
    "ReportPlan",
    "ReportReconciliation",
    "ReportsMixin",
    "SubmissionTask",
]

_TEXT, _INT, _FLOAT, _TIME = "string", "Int64", "Float64", "datetime64[ns, UTC]"

#: The statuses of mangrove-api.md: ``draft`` → ``submitting`` → ``complete`` (a refused one goes back to draft).
REPORT_STATUSES = ("draft", "submitting", "complete")

#: ``client.reports()``: one row per report.
REPORTS_SCHEMA: Mapping[str, str] = MappingProxyType({
    "id": _TEXT,
    "name": _TEXT,
    "report_type": _TEXT,
    "status": _TEXT,
    "project_id": _TEXT,  # an opaque id, as every id (the API sends an integer)
    # How many batches the report lists; NA when it lists none but has an allocation (the server does not say).
    "batch_count": _INT,
    "allocated_amount": _FLOAT,  # the allocation of a submitted report; NA before
    "allocated_unit": _TEXT,
    "created_at": _TIME,
    "updated_at": _TIME,
})

#: ``report.inclusions``: one row per batch on the report; ``amount`` is the batch's balance when it was included.
INCLUSIONS_SCHEMA: Mapping[str, str] = MappingProxyType({
    "batch_id": _TEXT,
    "tracking_id": _TEXT,
    "ledger_id": _TEXT,
    "amount": _FLOAT,
    "unit": _TEXT,
})

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

# Amounts are compared with this slack (the API rounds them to 3 decimals; floats add the rest).
_AMOUNT_SLACK = 1e-9
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


# --- what the API says, read -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    """A registry report (``GET /reports/{id}``). Fields the server left out are None.

    ``inclusions`` (``INCLUSIONS_SCHEMA``) lists its batches; ``inclusions_source`` says where they came from:
    ``"report"`` (the report's ``inclusions``), ``"batches"`` (the report listed none, and these batches list it
    in their ``report_allocations``), ``"request"`` (the batch ids ``fill_report`` just sent, which the server
    accepted without listing them) or ``"none"`` (the report lists none and no batch names it: it is empty, or
    the server does not say). ``allocated_amount`` / ``allocated_unit`` are its allocation once submitted.
    """

    id: str
    name: str | None
    report_type: str | None
    status: str | None
    project_id: str | None
    created_at: pd.Timestamp | None
    updated_at: pd.Timestamp | None
    allocated_amount: float | None
    allocated_unit: str | None
    allocated_at: pd.Timestamp | None
    inclusions: pd.DataFrame = field(repr=False, compare=False)
    inclusions_source: str = "report"
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def batch_ids(self) -> tuple[str, ...]:
        """The ids of the batches on the report, in the order listed."""
        return tuple(str(i) for i in self.inclusions["batch_id"].dropna())

    @property
    def is_draft(self) -> bool:
        """True when the report says it is a draft (the only status that can be filled or submitted)."""
        return self.status == "draft"

    def totals(self) -> pd.DataFrame:
        """The inclusions summed per ledger and unit (``ledger_id``, ``unit``, ``batches``, ``amount``)."""
        grouped = self.inclusions.groupby(["ledger_id", "unit"], dropna=False, sort=True)
        out = grouped["amount"].agg(["count", "sum"]).reset_index()
        frame = pd.DataFrame({"ledger_id": out["ledger_id"].astype(_TEXT), "unit": out["unit"].astype(_TEXT),
                              "batches": out["count"].astype(_INT), "amount": out["sum"].astype(_FLOAT)})
        return frame.reset_index(drop=True)

    def __repr__(self) -> str:
        allocated = (f", allocated {_amount_text(self.allocated_amount, self.allocated_unit)}"
                     if self.allocated_amount is not None else "")
        return (f"<Report {_plain(self.id)} {_plain(self.name or '')!r} status={_plain(self.status or '?')}: "
                f"{len(self.inclusions)} batch(es) ({self.inclusions_source}){allocated}>")

    def _repr_html_(self) -> str:
        e = _escape
        rows = [("status", self.status), ("type", self.report_type), ("project", self.project_id),
                ("created", _time_text(self.created_at)), ("updated", _time_text(self.updated_at)),
                ("allocated", _amount_text(self.allocated_amount, self.allocated_unit)
                 if self.allocated_amount is not None else None)]
        facts = "".join(f"<tr><th>{e(k)}</th><td>{e(v) if v is not None else '—'}</td></tr>" for k, v in rows)
        source = _SOURCE_SENTENCES[self.inclusions_source]
        return (f"<div class='mangrove-report'><p><strong>Report</strong> <code>{e(self.id)}</code> "
                f"{e(self.name or '')}</p><table>{facts}</table><p>{len(self.inclusions)} batch(es); "
                f"{e(source)}</p>{_html_table(self.inclusions)}</div>")


_SOURCE_SENTENCES = {
    "report": "as the report lists them.",
    "batches": "the report lists none: read from the batches that name it in their report_allocations.",
    "request": "as fill_report sent them (the server accepted them without listing them).",
    "none": "the report lists none and no batch names it (it is empty, or the server does not say).",
}


@dataclass(frozen=True)
class Problem:
    """Something that stops a report from being filled or submitted: the batch (None for the report itself),
    a ``kind`` (``unknown_batch``, ``other_project``, ``not_complete``, ``no_balance``, ``amount_gone``,
    ``on_other_report``, ``not_draft``, ``empty``) and a sentence that says what to do."""

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


@dataclass(frozen=True)
class ReportReconciliation:
    """What ``reconcile_report`` found: the report as the server has it now, and whether the submission was sent
    (True: the report is submitting or complete; False: it is a draft, so nothing is being submitted; None: its
    status does not say). ``cleared`` counts the unknown outcomes this settled (no longer refusing a submit)."""

    report: Report
    sent: bool | None
    cleared: int

    def advice(self) -> str:
        """What happened and what to do next, in one or two sentences."""
        rid = self.report.id
        if self.sent is True and self.report.status == "complete":
            return (f"The submission was sent: report {rid} is complete (the registry accepted it). Do not submit "
                    "it again.")
        if self.sent is True:
            return (f"The submission was sent: report {rid} is {self.report.status!r}. Read it again later with "
                    f"client.report({rid!r}): 'complete' when the registry accepts it, 'draft' when it refuses it "
                    "(then the failed task's message says why).")
        if self.sent is False:
            return (f"Report {rid} is a draft: no submission of it is going on (it did not reach the server, or the "
                    f"registry refused it and the report went back to draft). Submitting again is safe: "
                    f"client.submit_report({rid!r}).")
        return (f"Report {rid} has status {self.report.status!r}, which does not say whether the submission was "
                "sent; check it in Mangrove's app before submitting again.")

    def __repr__(self) -> str:
        return f"<ReportReconciliation {_plain(self.advice())}>"


class SubmissionTask(Task[Report]):
    """The task of a report's submission (``submit_report``, or ``report_task`` to re-attach).

    ``wait()`` returns the report read again after the task completed (``Report``), or None when ``stop`` ended
    the wait; it raises ``TaskFailedError`` with the registry's message when the submission failed (the report
    is back to draft) and ``TaskTimeoutError`` naming how to re-attach when it stopped waiting.
    """

    def __init__(self, http: HttpClient, task_id: int | str, *, report_id: str,
                 collect: Callable[[TaskStatus], Report],
                 on_final: Callable[[Task[Report]], None] | None = None) -> None:
        super().__init__(http, task_id, collect=collect, label=f"submission of report {report_id}",
                         on_final=on_final)
        self.report_id = report_id

    def wait(self, timeout: float | None = None, *, progress: bool | Progress | None = None,
             stop: threading.Event | None = None) -> Report | None:
        """Wait for the submission and return the report as submitted; see the class docstring."""
        failed: TaskFailedError | None = None
        late: TaskTimeoutError | None = None
        try:
            return super().wait(timeout, progress=progress, stop=stop)
        except TaskFailedError as exc:
            failed = exc
        except TaskTimeoutError as exc:
            late = exc
        rid, tid = self.report_id, self.id
        if failed is not None:
            said = (f'The registry said: "{_plain(failed.error_message)}".' if failed.error_message
                    else "The server gave no reason.")
            raise TaskFailedError(
                f"The submission of report {rid} failed (task {tid}). {said} A refused report goes back to draft "
                f"(client.report({rid!r}) shows it); fix what the message names and submit it again.",
                task_id=tid, error_message=failed.error_message) from None
        assert late is not None
        raise TaskTimeoutError(
            f"Stopped waiting for the submission of report {rid} (task {tid}); it goes on on the server. Re-attach "
            f"with client.report_task({rid!r}, {tid!r}).wait(), or read the report's status with "
            f"client.report({rid!r}).", task_id=tid, timeout=late.timeout) from None


# --- the client's calls ------------------------------------------------------------------------------------


class ReportsMixin:
    """The registry-report calls of ``api.Client`` (it inherits them): see the module docstring.

    Its private helpers all start with ``_registry_``, so that none is shadowed by one of ``Client``'s."""

    http: HttpClient
    settings: Settings
    _sent: Sent

    if TYPE_CHECKING:
        def batches(self, ledger: str | Iterable[str] | None = None, period: PeriodLike | None = None, *,
                    state: str | None = None, details: bool = False) -> pd.DataFrame: ...

        def ledgers(self) -> pd.DataFrame: ...

        def ledger_id(self, ledger: str) -> str: ...

    # -- reading ------------------------------------------------------------------------------------------------

    def reports(self, status: str | None = None, *, project_id: int | str | None = None) -> pd.DataFrame:
        """Every registry report (``REPORTS_SCHEMA``: id, name, report_type, status, project_id, batch_count,
        allocated_amount, allocated_unit, created_at, updated_at in UTC), sorted by creation time then id.

        ``status`` (``"draft"``, ``"submitting"``, ``"complete"``) filters on the server; ``project_id`` defaults
        to the session's (``MANGROVE_PROJECT_ID``), else every report the token sees. An empty result keeps the
        columns and dtypes. Raises ``ValidationError`` (argument ``status``) for another status, and the
        client's errors for the request.
        """
        params: dict[str, Any] = {}
        if status is not None:
            if not isinstance(status, str) or status not in REPORT_STATUSES:
                raise ValidationError(f"status must be one of {', '.join(REPORT_STATUSES)} (or None for every "
                                      f"report), not {short(status)}.", argument="status")
            params["filter[status][eq]"] = status
        project = project_id if project_id is not None else self.settings.project_id
        if project is not None:
            params["filter[project_id][eq]"] = _id_argument(project, "project_id", "a project id such as 123")
        rows = [_report_row(item, index) for index, item in enumerate(self.http.reports(**params))]
        frame = _frame(rows, REPORTS_SCHEMA)
        if len(frame):
            frame = frame.sort_values(["created_at", "id"], kind="stable", na_position="last", ignore_index=True)
        frame.attrs = _provenance(self.settings, project=str(project) if project is not None else None)
        return frame

    def report(self, report_id: str, *, look_in_batches: bool = True) -> Report:
        """The report ``report_id`` (``GET /reports/{id}``) as a ``Report``, its batches in ``inclusions``.

        When a submitted report (status ``complete``, or with an allocation) lists no inclusions and
        ``look_in_batches`` is true, the details of its project's complete batches are read (one request each)
        and those that name the report in ``report_allocations`` fill them (``inclusions_source == "batches"``);
        batches name a report only once its submission completed, so a draft's are not looked for.

        Raises ``ValidationError`` (argument ``report_id``) for an id that is not a non-empty string,
        ``NotFoundError`` for a report that does not exist, ``MalformedResponseError`` for an answer that is not
        a report.
        """
        rid = _report_id(report_id)
        report = _report_of(self.http.report(rid), f"GET /reports/{rid}")
        submitted = report.status == "complete" or report.allocated_amount is not None
        if look_in_batches and submitted and report.inclusions_source == "none":
            report = self._registry_inclusions_from_batches(report)
        return report

    def report_candidates(self, report_id: str, period: PeriodLike, *,
                          ledgers: str | Iterable[str] | None = None) -> pd.DataFrame:
        """The complete batches of ``period`` (by start time) on the report's project and on ``ledgers``: what
        ``mangrove-nb registry`` fills a report with. A batches frame as ``client.batches()`` gives it (with
        ``ledger_id`` and ``ledger_name``), ready for ``plan_report``; ``attrs["ledgers"]`` names the ledgers.

        ``ledgers`` (names or ids) defaults to the ledgers whose batches the project's reports (this one
        included) already hold: the ledgers the project reports to the registry. Never every ledger: adding
        biochar or feedstock tonnes to a removal report would overstate it. Raises ``ValidationError``
        (argument ``ledgers``) when no report holds a batch yet (name the ledgers then), ``PeriodError`` for a
        bad period, and the client's errors for the requests.
        """
        span = parse_period(period)
        named = None if ledgers is None else [self.ledger_id(one) for one in _ledger_list(ledgers)]
        report = self.report(report_id)
        project = report.project_id or self.settings.project_id
        chosen = named if named is not None else self._registry_reported_ledgers(report, project)
        if not chosen:
            raise ValidationError(f"No report of project {project} holds a batch yet, so which ledger it reports to "
                                  "the registry is not known: name it with ledgers=['Net Carbon Removal'] (--ledger "
                                  "on the command line).", argument="ledgers")
        frame = self.batches(chosen, span, state="complete")
        if project is not None:
            listed = self.http.batches(**{"filter[project_id][eq]": project, "filter[state][eq]": "complete"})
            ids = {str(item.get("id")) for item in listed if isinstance(item, Mapping)}
            frame = frame[frame["id"].isin(ids)].reset_index(drop=True)
        frame.attrs = _provenance(self.settings, project=project, period=span.label, report=report.id,
                                  ledgers=", ".join(chosen))
        return frame

    # -- planning and filling -----------------------------------------------------------------------------------

    def plan_report(self, report_id: str, batches: pd.DataFrame | Iterable[str]) -> ReportPlan:
        """What filling ``report_id`` with ``batches`` would do, checked, without writing anything.

        ``batches`` is a frame with an ``id`` (``client.batches()``, ``report_candidates()``) or ``batch_id``
        column (``plan.added``, ``report.inclusions``), or a list of batch ids; it becomes the report's whole set
        (``[]`` empties it). Returns a ``ReportPlan`` (added, removed, kept, totals, problems, notes). Raises
        ``ValidationError`` (argument ``batches`` or ``report_id``) for other input, ``NotFoundError`` for an
        unknown report, and the client's errors for the requests; problems are listed in the plan, not raised.
        """
        rid = _report_id(report_id)
        wanted, ledger_of = _wanted_batches(batches)
        return self._registry_plan(self.report(rid), wanted, ledger_of, submitting=False)

    def fill_report(self, report_id: str, batches: pd.DataFrame | Iterable[str]) -> Report:
        """Make ``batches`` the report's batches (``PATCH /reports/{id}`` with ``batch_ids``), after the checks of
        ``plan_report``; returns the updated ``Report``.

        Only a draft can be filled. Nothing is sent when the plan finds a problem (``ReportPlanError`` lists them,
        its ``plan`` attached) or changes nothing (the report is returned as read). The server's own refusal is a
        ``ValidationError`` carrying its messages (422) or ``NotFoundError`` (404). The PATCH is not retried once
        it may have reached the server: on a transport error, read the report and fill it again (the same set
        twice is harmless). When the server's answer lists no inclusions, they are the batches sent
        (``inclusions_source == "request"``).
        """
        plan = self.plan_report(report_id, batches)
        if plan.problems:
            raise plan.error()
        if not plan.changes:
            return plan.report
        rid = plan.report.id
        answer = self.http.update_report(rid, {"report": {"batch_ids": list(plan.batch_ids)}})
        report = (_report_of(answer, f"PATCH /reports/{rid}") if isinstance(answer, Mapping)
                  else self.report(rid, look_in_batches=False))
        if report.inclusions_source == "none" and plan.batch_ids:
            report = _with_inclusions(report, _planned_inclusions(plan), "request")
        return report

    # -- submitting ---------------------------------------------------------------------------------------------

    def submit_report(self, report_id: str) -> SubmissionTask:
        """Submit the report to the registry, once; returns the task (``wait()`` returns the report as
        submitted, read again after completion). Irreversible.

        Checked first, nothing sent otherwise: no submission of this report from this process (or, through the
        state file, an earlier one) is running or of unknown outcome (``PreconditionError``; run
        ``reconcile_report``); the report is a draft, holds at least one batch, and every batch is still
        complete, in the project, on no other report that is not a draft, with its included amount still
        available (``ReportPlanError`` listing each problem). Then, under the API's lock, the status is read
        again and the POST is sent once. A lost answer raises ``SubmissionOutcomeUnknownError`` (recorded: this
        report is refused until ``reconcile_report``); the server's refusal (422) a ``ValidationError`` with its
        messages. A failed task raises ``TaskFailedError`` from ``wait()`` with the registry's message.
        """
        rid = _report_id(report_id)
        self._registry_refuse_recorded_submission(rid)
        report = self.report(rid)
        plan = self._registry_plan(report, list(report.batch_ids), {}, submitting=True)
        if plan.problems:
            raise plan.error()
        with self._sent.lock:
            self._registry_refuse_recorded_submission(rid)
            status = _report_of(self.http.report(rid), f"GET /reports/{rid}").status
            if status != "draft":
                raise PreconditionError(f"Not sent: report {rid} is now {status!r}, not 'draft' (it changed while it "
                                        f"was checked); client.reconcile_report({rid!r}) says what happened.")
            return self._registry_send_submission(rid)

    def report_task(self, report_id: str, task_id: int | str) -> SubmissionTask:
        """Re-attach to a report's submission task (after a kernel restart or an interrupted ``wait()``); its
        ``wait()`` returns the report read again after completion, as ``submit_report``'s does."""
        rid = _report_id(report_id)
        return SubmissionTask(self.http, task_id, report_id=rid, collect=lambda _status: self.report(rid),
                              on_final=self._registry_forget_submission)

    def reconcile_report(self, report_id: str) -> ReportReconciliation:
        """After ``SubmissionOutcomeUnknownError``: read the report's status and say whether the submission was
        sent. ``submitting`` or ``complete``: it was sent; ``draft``: nothing is being submitted (it did not
        arrive, or the registry refused it). Either way this process's record of the unknown outcome is cleared
        (in the state file too), so ``submit_report`` no longer refuses on its account (the server refuses a
        report that is not a draft). Another status keeps the record. Returns a ``ReportReconciliation``
        (``advice()`` says what to do); raises ``NotFoundError`` for an unknown report.
        """
        rid = _report_id(report_id)
        report = self.report(rid, look_in_batches=False)
        sent = True if report.status in ("submitting", "complete") else False if report.status == "draft" else None
        cleared = 0
        if sent is not None:
            with self._sent.lock:
                for submission in self._sent.submissions_of(rid):
                    if submission.unknown is not None:
                        self._sent.forget(submission)
                        cleared += 1
        return ReportReconciliation(report, sent, cleared)

    # -- the machinery ------------------------------------------------------------------------------------------

    def _registry_refuse_recorded_submission(self, rid: str) -> None:
        with self._sent.lock:
            recorded = self._sent.submissions_of(rid)
        for submission in recorded:
            if submission.unknown is not None:
                raise PreconditionError(
                    f"Not sent: {submission.describe()} has an unknown outcome, so the report may already have gone "
                    f"to the registry. Run client.reconcile_report({rid!r}): it reads the report's status, says "
                    "what happened and clears this.")
            task = submission.task
            if task is not None and not task.refresh().done:
                raise PreconditionError(
                    f"Not sent: task {task.id} from this session is already submitting report {rid}; wait for it "
                    f"with client.report_task({rid!r}, {task.id!r}).wait().")

    def _registry_send_submission(self, rid: str) -> SubmissionTask:
        """Record, then send; whatever happens after the request may have left, the record says so."""
        submission = Submission(rid)
        self._sent.submissions.append(submission)
        settled = False
        try:
            accepted = self.http.submit_report(rid)
            task_id = accepted.get("async_task_id")
            if isinstance(task_id, bool) or not isinstance(task_id, int | str) or task_id == "":
                raise SubmissionOutcomeUnknownError(
                    report_id=rid, detail="the server accepted the submission but its answer names no task "
                                          "(async_task_id)")
            task = SubmissionTask(self.http, task_id, report_id=rid, collect=lambda _status: self.report(rid),
                                  on_final=self._registry_forget_submission)
            submission.task = task
            settled = True
            return task
        except SubmissionOutcomeUnknownError as exc:
            submission.unknown = exc
            settled = True
            self._sent.save()
            raise
        except MangroveError:
            # A definite answer (a 4xx such as the 422 of unmet requirements) or a request that never left.
            self._sent.forget(submission)
            settled = True
            raise
        finally:
            if not settled:  # interrupted between the answer and the record: assume the worst
                submission.unknown = SubmissionOutcomeUnknownError(
                    report_id=rid, detail="interrupted while the answer was being recorded")
                self._sent.save()

    def _registry_forget_submission(self, task: Task[Report]) -> None:
        with self._sent.lock:
            for submission in list(self._sent.submissions):
                if submission.task is not None and submission.task.id == task.id:
                    self._sent.forget(submission)

    def _registry_plan(self, report: Report, wanted: list[str], ledger_of: Mapping[str, str], *,
              submitting: bool) -> ReportPlan:
        rid = report.id
        current = list(report.batch_ids)
        notes: list[str] = []
        project = report.project_id or self.settings.project_id
        if report.project_id is None:
            notes.append(f"Report {rid} names no project: " + (
                f"its batches were checked against the session's project {project}." if project is not None
                else "the batches were not checked to belong to its project."))
        if report.inclusions_source == "none" and report.allocated_amount is not None:
            notes.append(f"Report {rid} has an allocation but lists no batches, and no batch names it: its batches "
                         "are not known, so none is shown as kept or removed.")
        pool = self._registry_batch_rows(project, [*wanted, *current], ledger_of)
        details = self._registry_batch_details([b for b in dict.fromkeys([*wanted, *current]) if b in pool.found])
        elsewhere = self._registry_on_other_reports(rid, project, details)

        problems: list[Problem] = []
        if submitting and report.status != "draft":
            problems.append(Problem(None, "not_draft", _not_draft(report, "submitted")))
        elif not submitting and report.status is not None and report.status != "draft":
            problems.append(Problem(None, "not_draft", _not_draft(report, "filled")))
        if submitting and not current:
            problems.append(Problem(None, "empty", f"Report {rid} holds no batch, so there is nothing to submit: "
                                                   f"fill it first with client.fill_report({rid!r}, batches)."))
        included = {str(r.batch_id): r for r in report.inclusions.itertuples(index=False)}
        result = current if submitting else wanted
        in_current, in_result = set(current), set(result)
        rows: dict[str, dict[str, Any]] = {}
        for bid in dict.fromkeys([*result, *current]):
            row = pool.row(bid)
            inclusion = included.get(bid)
            if inclusion is not None:  # what the report lists, where the batch itself does not say
                row["unit"] = row.get("unit") or _text(inclusion.unit)
                row["tracking_id"] = row.get("tracking_id") or _text(inclusion.tracking_id)
                row["ledger_id"] = row.get("ledger_id") or _text(inclusion.ledger_id)
            # A fill (re-)includes every batch at its balance now; a submission allocates what the report holds.
            held = _number(inclusion.amount) if submitting and inclusion is not None else None
            # Removed batches are not checked (the report would no longer hold them), nor those a report that is
            # not a draft holds (its allocation took their balance; it cannot change anyway).
            checked = bid in in_result and not (bid in in_current and report.status not in (None, "draft"))
            found = (self._registry_batch_problems(bid, row, pool, elsewhere, held, project=project,
                                          on_report=bid in in_current, submitting=submitting) if checked else [])
            problems.extend(found)
            amount = held if submitting else row.get("ledger_balance")
            rows[bid] = {**row, "batch_id": bid, "amount": amount, "problem": found[0].message if found else None}
        for problem in _unit_problems(rid, [rows[b] for b in result]):
            problems.append(problem)
            row = rows[str(problem.batch_id)]
            row["problem"] = row["problem"] or problem.message
        ledgers = sorted({str(rows[b].get("ledger_name") or rows[b].get("ledger_id")) for b in result
                          if rows[b].get("ledger_id") is not None})
        if len(ledgers) > 1:
            notes.append(f"The report would add up batches of {len(ledgers)} ledgers ({', '.join(ledgers)}) in one "
                         "allocation: check that each is a removal to report to the registry.")
        added = _frame([rows[b] for b in result if b not in in_current], PLAN_BATCHES_SCHEMA)
        removed = _frame([rows[b] for b in current if b not in in_result], PLAN_BATCHES_SCHEMA)
        kept = _frame([rows[b] for b in result if b in in_current], PLAN_BATCHES_SCHEMA)
        totals = _totals(_frame([rows[b] for b in result], PLAN_BATCHES_SCHEMA))
        return ReportPlan(report, tuple(result), added, removed, kept, totals, tuple(problems), tuple(notes))

    def _registry_batch_problems(self, bid: str, row: Mapping[str, Any], pool: _Pool,
                                 elsewhere: Mapping[str, list[str]], held: float | None, *, project: str | None,
                                 on_report: bool, submitting: bool) -> list[Problem]:
        """The problems of one batch the report would hold (the first one is shown in its row)."""
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
        elif balance is None or balance <= _AMOUNT_SLACK:
            found.append(Problem(bid, "no_balance", f"Batch {bid} has no balance left (ledger_balance {left}): it is "
                                                    "already allocated elsewhere, so it would add nothing; leave it "
                                                    "out."))
        for other in elsewhere.get(bid, []):
            found.append(Problem(bid, "on_other_report", f"Batch {bid} is already on {other}; a batch is reported "
                                                         "once: leave it out."))
        return found

    def _registry_batch_rows(self, project: str | None, ids: list[str], ledger_of: Mapping[str, str]) -> _Pool:
        """The batches ``ids`` as plan rows, from the project's listing (or every batch's, without a project);
        the ids it lacks are read one by one: 404 is an unknown batch, anything else another project's."""
        params = {"filter[project_id][eq]": project} if project is not None else {}
        listed = frames.batches_frame(self.http.batches(**params))
        wanted = set(ids)
        listed = listed[listed["id"].isin(wanted)].reset_index(drop=True)
        missing_ledger = listed["ledger_id"].isna() & ~listed["id"].isin(list(ledger_of))
        names: dict[str, str] = {}
        if missing_ledger.any():
            # GET /batches does not say which ledger each batch is on (as the emulator's): read them ledger by ledger.
            by_ledger = self.batches(None)
            known = {str(i): str(lg) for i, lg in zip(by_ledger["id"], by_ledger["ledger_id"], strict=True)
                     if isinstance(lg, str)}
            names = {str(lg): str(n) for lg, n in zip(by_ledger["ledger_id"], by_ledger["ledger_name"], strict=True)
                     if isinstance(lg, str) and isinstance(n, str)}
        else:
            known = {}
        rows: dict[str, dict[str, Any]] = {}
        for record in listed.to_dict("records"):
            bid = str(record["id"])
            ledger = _text(record.get("ledger_id")) or ledger_of.get(bid) or known.get(bid)
            rows[bid] = _row_of(record, ledger)
        unknown: set[str] = set()
        other: set[str] = set()
        outside = [b for b in dict.fromkeys(ids) if b not in rows]
        for bid, detail in zip(outside, self._registry_read_details(outside), strict=True):
            if isinstance(detail, NotFoundError):
                unknown.add(bid)
                continue
            if project is not None:  # it exists, yet the project's listing does not have it
                other.add(bid)
            record = frames.batches_frame([detail]).to_dict("records")[0]
            rows[bid] = _row_of(record, ledger_of.get(bid) or known.get(bid))
        if rows and not names:
            names = self._registry_ledger_names()
        for row in rows.values():
            ledger = row.get("ledger_id")
            row["ledger_name"] = names.get(ledger) if isinstance(ledger, str) else None
        return _Pool(rows, unknown, other)

    def _registry_batch_details(self, ids: list[str]) -> dict[str, Mapping[str, Any]]:
        details = {}
        for bid, detail in zip(ids, self._registry_read_details(ids), strict=True):
            if isinstance(detail, Mapping):
                details[bid] = detail
        return details

    def _registry_read_details(self, ids: list[str]) -> list[Mapping[str, Any] | NotFoundError]:
        """``GET /batches/{id}`` of each id, several at once, in order; a 404 comes back as its error."""
        if not ids:
            return []

        def one(bid: str) -> Mapping[str, Any] | NotFoundError:
            try:
                answer = self.http.batch(bid)
            except NotFoundError as exc:
                return exc
            if not isinstance(answer, Mapping):
                raise MalformedResponseError(f"GET /batches/{bid} did not answer with a batch object.",
                                             url=f"/batches/{bid}")
            return answer

        workers = max(1, min(self.settings.max_concurrent_pages, len(ids)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mangrove-report") as pool:
            return list(pool.map(one, ids))

    def _registry_on_other_reports(self, rid: str, project: str | None, details: Mapping[str, Mapping[str, Any]]
                          ) -> dict[str, list[str]]:
        """Batch id -> the other reports (not drafts) that hold it: from those reports' inclusions, and from the
        batches' ``report_allocations``."""
        found: dict[str, list[str]] = {}

        def note(bid: str, report_id: str, name: Any, status: Any) -> None:
            said = f"report {report_id}" + (f" {_plain(str(name))!r}" if isinstance(name, str) and name else "") + (
                f" ({_plain(str(status))})" if isinstance(status, str) else "")
            if said not in found.setdefault(bid, []):
                found[bid].append(said)

        params = {"filter[project_id][eq]": project} if project is not None else {}
        for item in self.http.reports(**params):
            if not isinstance(item, Mapping) or str(item.get("id")) == rid or item.get("status") == "draft":
                continue
            for inclusion in item.get("inclusions") or []:
                if isinstance(inclusion, Mapping) and inclusion.get("batch_id") is not None:
                    note(str(inclusion["batch_id"]), str(item.get("id")), item.get("name"), item.get("status"))
        for bid, detail in details.items():
            for entry in detail.get("report_allocations") or []:
                other = entry.get("report") if isinstance(entry, Mapping) else None
                if not isinstance(other, Mapping) or other.get("id") is None or str(other.get("id")) == rid:
                    continue
                if other.get("status") != "draft":
                    note(bid, str(other["id"]), other.get("name"), other.get("status"))
        return found

    def _registry_inclusions_from_batches(self, report: Report) -> Report:
        """A report that lists no inclusions, with those its project's complete batches name it in."""
        project = report.project_id or self.settings.project_id
        params = {"filter[state][eq]": "complete"}
        if project is not None:
            params["filter[project_id][eq]"] = project
        listed = frames.batches_frame(self.http.batches(**params))
        ids = [str(i) for i in listed["id"]]
        rows = []
        by_id = {str(r["id"]): r for r in listed.to_dict("records")}
        for bid, detail in zip(ids, self._registry_read_details(ids), strict=True):
            if not isinstance(detail, Mapping):
                continue
            for entry in detail.get("report_allocations") or []:
                named = entry.get("report") if isinstance(entry, Mapping) else None
                if not isinstance(named, Mapping) or str(named.get("id")) != report.id:
                    continue
                allocation = entry.get("allocation") if isinstance(entry.get("allocation"), Mapping) else {}
                amount = _number(entry.get("amount"))
                amount = amount if amount is not None else _number(allocation.get("amount"))
                rows.append({"batch_id": bid, "tracking_id": _text(by_id[bid].get("tracking_id")),
                             "ledger_id": _text(by_id[bid].get("ledger_id")) or _text(detail.get("ledger_id")),
                             "amount": amount,
                             "unit": _text(entry.get("unit")) or _text(allocation.get("unit"))})
        if not rows:
            return report
        return _with_inclusions(report, _frame(rows, INCLUSIONS_SCHEMA), "batches")

    def _registry_reported_ledgers(self, report: Report, project: str | None) -> list[str]:
        """The ledgers whose batches the project's reports (and ``report``) hold, in the order first seen."""
        found = [str(x) for x in report.inclusions["ledger_id"].dropna()]
        params = {"filter[project_id][eq]": project} if project is not None else {}
        for item in self.http.reports(**params):
            for inclusion in (item.get("inclusions") if isinstance(item, Mapping) else None) or []:
                if isinstance(inclusion, Mapping) and isinstance(inclusion.get("ledger_id"), str | int):
                    found.append(str(inclusion["ledger_id"]))
        return list(dict.fromkeys(found))

    def _registry_ledger_names(self) -> dict[str, str]:
        try:
            table = self.ledgers()
        except MangroveError as exc:
            log.warning("Could not read the ledgers' names (%s); ledger_name is left empty.", type(exc).__name__)
            return {}
        return {str(i): str(n) for i, n in zip(table["id"], table["name"], strict=True) if isinstance(n, str)}


@dataclass
class _Pool:
    """The batches a plan looks at: their rows by id, the ids no batch has, and those of another project."""

    rows: dict[str, dict[str, Any]]
    unknown: set[str]
    other_project: set[str]

    @property
    def found(self) -> set[str]:
        return set(self.rows) - self.other_project

    def row(self, bid: str) -> dict[str, Any]:
        return dict(self.rows.get(bid, {}))


# --- reading the API's report objects ----------------------------------------------------------------------


class _Fields:
    """Typed access to one report object; every failure names the field (and the item's index in a list)."""

    def __init__(self, data: Mapping[str, Any], where: str, prefix: str = "") -> None:
        self.data, self.where, self.prefix = data, where, prefix

    def malformed(self, key: str, problem: str) -> MalformedResponseError:
        return MalformedResponseError(
            f"{self.where}: field '{self.prefix}{key}' {problem}, so the answer does not match the documented "
            "Mangrove API. Check the base URL; if it is right, report this to Mangrove support.",
            field=f"{self.prefix}{key}")

    def text(self, key: str) -> str | None:
        value = self.data.get(key)
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise self.malformed(key, f"is a {type(value).__name__}, not text")

    def ident(self, key: str, *, required: bool = False) -> str | None:
        value = self.data.get(key)
        if value is None:
            if required:
                raise self.malformed(key, "is missing" if key not in self.data else "is null")
            return None
        if isinstance(value, str) and value:
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        raise self.malformed(key, f"is {short(value)}, not an id")

    def number(self, key: str) -> float | None:
        value = self.data.get(key)
        if value is None:
            return None
        number = _number(value)
        if number is None:
            raise self.malformed(key, f"is {short(value)}, not a number")
        return number

    def timestamp(self, key: str) -> pd.Timestamp | None:
        value = self.data.get(key)
        if value is None:
            return None
        moment = _timestamp(value)
        if moment is None:
            raise self.malformed(key, f"is {short(value)}, not an ISO 8601 timestamp")
        return moment

    def mapping(self, key: str) -> Mapping[str, Any] | None:
        value = self.data.get(key)
        if value is None or isinstance(value, Mapping):
            return value
        raise self.malformed(key, f"is a {type(value).__name__}, not an object")

    def sequence(self, key: str) -> list[Any] | None:
        value = self.data.get(key)
        if value is None or isinstance(value, list):
            return value
        raise self.malformed(key, f"is a {type(value).__name__}, not a list")


def _report_of(body: Any, where: str) -> Report:
    """A ``Report`` from one report object (its inclusions as the report lists them)."""
    if not isinstance(body, Mapping):
        raise MalformedResponseError(f"{where} did not answer with a report object as documented.", url=where)
    item = _Fields(body, where)
    allocation = item.mapping("allocation")
    alloc = _Fields(allocation, where, "allocation.") if allocation is not None else None
    listed = item.sequence("inclusions")
    rows = [_inclusion_row(entry, n, where) for n, entry in enumerate(listed or [])]
    return Report(
        id=item.ident("id", required=True) or "",
        name=item.text("name"),
        report_type=item.text("report_type"),
        status=item.text("status"),
        project_id=item.ident("project_id"),
        created_at=item.timestamp("created_at"),
        updated_at=item.timestamp("updated_at"),
        allocated_amount=alloc.number("amount") if alloc else None,
        allocated_unit=alloc.text("unit") if alloc else None,
        allocated_at=alloc.timestamp("created_at") if alloc else None,
        inclusions=_frame(rows, INCLUSIONS_SCHEMA),
        inclusions_source="report" if rows else "none",
        raw=body,
    )


def _inclusion_row(entry: Any, position: int, where: str) -> dict[str, Any]:
    if not isinstance(entry, Mapping):
        raise MalformedResponseError(f"{where}: inclusions[{position}] is a {type(entry).__name__}, not an object, "
                                     "so the answer does not match the documented Mangrove API.",
                                     field=f"inclusions[{position}]")
    one = _Fields(entry, where, f"inclusions[{position}].")
    return {"batch_id": one.ident("batch_id", required=True), "tracking_id": one.text("tracking_id"),
            "ledger_id": one.ident("ledger_id"), "amount": one.number("amount"), "unit": one.text("unit")}


def _report_row(body: Any, index: int) -> dict[str, Any]:
    """One ``REPORTS_SCHEMA`` row of a listed report."""
    report = _report_of(body, f"GET /reports (item {index})")
    listed = body.get("inclusions")
    if report.inclusions_source == "report":
        count: int | None = len(report.inclusions)
    elif isinstance(listed, list) and report.allocated_amount is None:
        count = 0
    else:
        count = None  # no inclusions listed, yet an allocation (or no inclusions field): the server does not say
    return {"id": report.id, "name": report.name, "report_type": report.report_type, "status": report.status,
            "project_id": report.project_id, "batch_count": count, "allocated_amount": report.allocated_amount,
            "allocated_unit": report.allocated_unit, "created_at": report.created_at, "updated_at": report.updated_at}


def _with_inclusions(report: Report, inclusions: pd.DataFrame, source: str) -> Report:
    return Report(id=report.id, name=report.name, report_type=report.report_type, status=report.status,
                  project_id=report.project_id, created_at=report.created_at, updated_at=report.updated_at,
                  allocated_amount=report.allocated_amount, allocated_unit=report.allocated_unit,
                  allocated_at=report.allocated_at, inclusions=inclusions, inclusions_source=source, raw=report.raw)


def _planned_inclusions(plan: ReportPlan) -> pd.DataFrame:
    rows = pd.concat([plan.kept, plan.added], ignore_index=True) if len(plan.kept) and len(plan.added) else (
        plan.added if len(plan.added) else plan.kept)
    order = {b: n for n, b in enumerate(plan.batch_ids)}
    records = sorted(rows.to_dict("records"), key=lambda r: order.get(str(r["batch_id"]), len(order)))
    return _frame([{k: r.get(k) for k in INCLUSIONS_SCHEMA} for r in records], INCLUSIONS_SCHEMA)


def _row_of(record: Mapping[str, Any], ledger_id: str | None) -> dict[str, Any]:
    """A plan row's batch columns from a ``frames.BATCHES_SCHEMA`` record."""
    return {"tracking_id": _text(record.get("tracking_id")), "ledger_id": _text(record.get("ledger_id")) or ledger_id,
            "ledger_name": _text(record.get("ledger_name")),
            "start_time": record.get("start_time") if not _missing(record.get("start_time")) else None,
            "end_time": record.get("end_time") if not _missing(record.get("end_time")) else None,
            "state": _text(record.get("state")), "ledger_balance": _number(record.get("ledger_balance")),
            "unit": _text(record.get("output_unit"))}


def _unit_problems(rid: str, rows: list[Mapping[str, Any]]) -> list[Problem]:
    """A report's allocation is one sum in one unit: every batch in another unit than the first one's."""
    units = [str(r["unit"]) for r in rows if r.get("unit") is not None]
    if len(set(units)) <= 1:
        return []
    first = units[0]
    return [Problem(str(r["batch_id"]), "mixed_units",
                    f"Batch {r['batch_id']} is in {_plain(r['unit'])!r}, the report's first batch in "
                    f"{_plain(first)!r}: report {rid}'s allocation is one sum in one unit; keep batches of one unit.")
            for r in rows if r.get("unit") is not None and str(r["unit"]) != first]


def _totals(rows: pd.DataFrame) -> pd.DataFrame:
    """Per ledger and unit, the batches without a problem and their amount."""
    fine = rows[rows["problem"].isna()] if len(rows) else rows
    if not len(fine):
        return _frame([], TOTALS_SCHEMA)
    grouped = fine.groupby(["ledger_id", "ledger_name", "unit"], dropna=False, sort=True)["amount"]
    out = grouped.agg(["count", "sum"]).reset_index()
    return pd.DataFrame({"ledger_id": out["ledger_id"].astype(_TEXT), "ledger_name": out["ledger_name"].astype(_TEXT),
                         "unit": out["unit"].astype(_TEXT), "batches": out["count"].astype(_INT),
                         "amount": out["sum"].astype(_FLOAT)})


# --- arguments ---------------------------------------------------------------------------------------------


def _report_id(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"report_id must be a report id string such as 'rpt_...' (the id column of "
                              f"client.reports()), not {type(value).__name__} {short(value)}.", argument="report_id")
    return value.strip()


def _id_argument(value: Any, argument: str, example: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip():
        raise ValidationError(f"{argument} must be {example}, not {short(value)}.", argument=argument)
    return str(value).strip()


def _wanted_batches(batches: Any) -> tuple[list[str], dict[str, str]]:
    """The batch ids of a frame (``id`` or ``batch_id`` column) or a list, repeats dropped, with the ledger of
    each id where the frame says it."""
    if isinstance(batches, pd.DataFrame):
        column = "id" if "id" in batches.columns else "batch_id" if "batch_id" in batches.columns else None
        if column is None:
            raise ValidationError("batches is a frame without an 'id' or 'batch_id' column; give a frame from "
                                  "client.batches() or client.report_candidates(), or a list of batch ids.",
                                  argument="batches")
        ids = [str(i) for i in batches[column] if not _missing(i)]
        ledgers = batches["ledger_id"] if "ledger_id" in batches.columns else pd.Series([None] * len(batches))
        ledger_of = {str(i): str(lg) for i, lg in zip(batches[column], ledgers, strict=True)
                     if not _missing(i) and isinstance(lg, str)}
        return list(dict.fromkeys(ids)), ledger_of
    if isinstance(batches, pd.Series | Mapping) or batches is None:
        raise ValidationError(f"batches must be a frame from client.batches() or a list of batch ids such as "
                              f"['bat_...'], not {type(batches).__name__} {short(batches)}.", argument="batches")
    ids = id_list(batches, "batches", "the id column of client.batches()")
    return list(dict.fromkeys(ids)), {}


def _ledger_list(value: str | Iterable[str]) -> list[str]:
    if isinstance(value, str):
        return [value]
    names = [str(one) for one in id_list(value, "ledgers", "the id or name column of client.ledgers()")]
    if not names:
        raise ValidationError("ledgers is an empty list; give ledger names or ids, or None for the ledgers the "
                              "project's reports hold.", argument="ledgers")
    return names


# --- small pure helpers ------------------------------------------------------------------------------------


def _frame(rows: Sequence[Mapping[str, Any]], schema: Mapping[str, str]) -> pd.DataFrame:
    columns = {}
    for name, dtype in schema.items():
        values = [None if _missing(row.get(name)) else row.get(name) for row in rows]
        if dtype == _TIME:
            columns[name] = pd.Series(pd.to_datetime(pd.Series(values, dtype=object), utc=True), dtype=_TIME)
        else:
            columns[name] = pd.Series(values, dtype=dtype)
    return pd.DataFrame(columns, index=pd.RangeIndex(len(rows)))


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _text(value: Any) -> str | None:
    return None if _missing(value) else str(value)


def _number(value: Any) -> float | None:
    if _missing(value) or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
    else:
        try:
            number = float(value)
        except (TypeError, ValueError):
            return None
    return number if math.isfinite(number) else None


def _timestamp(value: Any) -> pd.Timestamp | None:
    if not isinstance(value, str) or not re.match(r"\s*\d{4}-\d{2}-\d{2}", value):
        return None
    try:
        moment = pd.Timestamp(value.strip())
    except (ValueError, OverflowError):
        return None
    if moment is pd.NaT:
        return None
    return moment.tz_localize(UTC) if moment.tzinfo is None else moment.tz_convert(UTC)


def _provenance(settings: Settings, **extra: Any) -> dict[str, Any]:
    attrs: dict[str, Any] = {"base_url": settings.base_url,
                             "fetched_at": datetime.now(UTC).isoformat(timespec="seconds")}
    attrs.update({k: v for k, v in extra.items() if v is not None})
    return attrs


def _not_draft(report: Report, what: str) -> str:
    status = report.status
    said = f"is {status!r}" if status is not None else "does not say its status"
    return (f"Report {report.id} {said}, not 'draft': only a draft can be {what}. Choose a draft report "
            "(client.reports(status='draft')); a refused submission puts a report back to draft.")


def _amount_text(amount: float | None, unit: str | None) -> str:
    if amount is None:
        return "unknown"
    return f"{amount:,.6g} {_plain(unit or '')}".rstrip()


def _totals_text(totals: pd.DataFrame) -> str:
    per_unit: dict[str, float] = {}
    for unit, amount in zip(totals["unit"], totals["amount"], strict=True):
        key = "" if _missing(unit) else str(unit)
        per_unit[key] = per_unit.get(key, 0.0) + (0.0 if _missing(amount) else float(amount))
    return " + ".join(_amount_text(amount, unit) for unit, amount in per_unit.items())


def _time_text(moment: pd.Timestamp | None) -> str | None:
    return None if moment is None else f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def _plain(text: Any) -> str:
    """API text for a terminal or a repr: redacted, control characters (and line breaks) as spaces."""
    return " ".join(_CONTROL.sub(" ", redact(str(text))).split())


def _escape(value: Any) -> str:
    return html.escape(_plain(value), quote=True)


def _cell(value: Any) -> str:
    if _missing(value):
        return ""
    if isinstance(value, pd.Timestamp):
        return f"{value:%Y-%m-%d %H:%M}"
    if isinstance(value, float):
        return f"{value:,.6g}"
    return _plain(value)


def _html_table(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{_escape(c)}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(v), quote=True)}</td>" for v in row) + "</tr>"
                   for row in frame.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _text_table(frame: pd.DataFrame) -> str:
    shown = [c for c in frame.columns if c != "end_time"]
    cells = [[str(c) for c in shown]] + [[_cell(v) for v in row] for row in frame[shown].itertuples(index=False)]
    widths = [max(len(r[n]) for r in cells) for n in range(len(shown))]
    return "\n".join("  " + "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells)
