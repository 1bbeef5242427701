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

The package's rooms: ``report`` (``Report`` and its frames read from the API's report objects, and the reads that
complete one), ``plan`` (``ReportPlan``, ``Problem``, their frames and their HTML and text), ``checks`` (what is read
and checked to make a plan), ``submission`` (``SubmissionTask``, ``ReportReconciliation``, the record around the one
POST); ``_input`` checks the analyst's arguments, ``_values`` reads values and makes typed frames, ``_display``
shows them. Here: ``ReportsMixin``, the client's calls. Import from ``mangrove_nb.registry``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from .._arguments import short
from .._sent import Sent
from ..client import HttpClient
from ..errors import PreconditionError, ValidationError
from ..periods import PeriodLike, parse_period
from ..settings import Settings
from ._input import _id_argument, _ledger_list, _report_id, _wanted_batches
from ._values import _frame
from .checks import make_plan
from .plan import PLAN_BATCHES_SCHEMA, PROBLEMS_SCHEMA, TOTALS_SCHEMA, Problem, ReportPlan, _planned_inclusions
from .report import (
    INCLUSIONS_SCHEMA,
    REPORT_STATUSES,
    REPORTS_SCHEMA,
    Report,
    _report_of,
    _report_row,
    _with_inclusions,
    inclusions_from_batches,
    read_report,
    reported_ledgers,
)
from .submission import (
    ReportReconciliation,
    SubmissionTask,
    clear_unknown,
    refuse_recorded_submission,
    send_submission,
    submission_task,
)

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


class ReportsMixin:
    """The registry-report calls of ``api.Client`` (it inherits them): see the module docstring.

    It has no private helper: the machinery is functions of the client in the package's modules (``checks``,
    ``report``, ``submission``), so none can be shadowed by one of ``Client``'s."""

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
        report = read_report(self, rid)
        submitted = report.status == "complete" or report.allocated_amount is not None
        if look_in_batches and submitted and report.inclusions_source == "none":
            report = inclusions_from_batches(self, report)
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
        chosen = named if named is not None else reported_ledgers(self, report, project)
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
        return make_plan(self, self.report(rid), wanted, ledger_of, submitting=False)

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
        refuse_recorded_submission(self, rid)
        report = self.report(rid)
        plan = make_plan(self, report, list(report.batch_ids), {}, submitting=True)
        if plan.problems:
            raise plan.error()
        with self._sent.lock:
            refuse_recorded_submission(self, rid)
            status = read_report(self, rid).status
            if status != "draft":
                raise PreconditionError(f"Not sent: report {rid} is now {status!r}, not 'draft' (it changed while it "
                                        f"was checked); client.reconcile_report({rid!r}) says what happened.")
            return send_submission(self, rid)

    def report_task(self, report_id: str, task_id: int | str) -> SubmissionTask:
        """Re-attach to a report's submission task (after a kernel restart or an interrupted ``wait()``); its
        ``wait()`` returns the report read again after completion, as ``submit_report``'s does."""
        rid = _report_id(report_id)
        return submission_task(self, rid, task_id)

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
        cleared = clear_unknown(self, rid) if sent is not None else 0
        return ReportReconciliation(report, sent, cleared)


def _provenance(settings: Settings, **extra: Any) -> dict[str, Any]:
    attrs: dict[str, Any] = {"base_url": settings.base_url,
                             "fetched_at": datetime.now(UTC).isoformat(timespec="seconds")}
    attrs.update({k: v for k, v in extra.items() if v is not None})
    return attrs

