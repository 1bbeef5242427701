"""Registry reports: list and read the reports Mangrove submits to a registry, plan and fill them with batches,
and submit them once.

    client.reports(status="draft")                         # DataFrame, one row per report
    rid = client.report_id("2025Q1 Quarterly Report")      # an id from a name (or an id)
    report = client.report("rpt_...")                      # Report: its fields, report.inclusions (a frame)
    batches = client.report_candidates("rpt_...", "2025Q1")  # the quarter's complete batches of its project
    plan = client.plan_report("rpt_...", batches)          # added / removed / kept, totals, problems, warnings
    client.fill_report("rpt_...", batches)                 # the same checks, then PATCH (draft reports only)
    task = client.submit_report("rpt_...", expected=plan)  # checked (and still what was confirmed), POSTed once
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
  draft, is in another unit than the report's first batch, is on a ledger that cannot be read
  (``unknown_ledger``) or on another than the analyst's frame says (``ledger_mismatch``: a batch's ledger is the
  server's), or, by the quarterly report's rules in ``frames``, was generated with a skipped input that may
  overstate it (``skipped_input``: ``frames.skipped_effects``; only one shown to have zeroed a removal term alone
  is a note), is one of two complete batches of its partition (``duplicate_partition``:
  ``frames.duplicate_partitions``) or has a balance larger than its output (``balance_exceeds_output``:
  ``frames.balance_exceeds_output``), or (at submission) no longer has the amount the report holds of it; a
  report that is not a draft, or (at submission) lists no batch; ledgers chosen by default that are several.
  ``fill_report`` and ``submit_report`` raise ``ReportPlanError`` listing them, and send nothing.
* **One ledger, unless named.** A report's allocation is one sum: batches of several ledgers are a problem
  (``mixed_ledgers``) unless the analyst named those ledgers (``ledgers=``, or a ``report_candidates`` frame given
  them, or the confirmed plan's); with ledgers named, a batch on another is one (``other_ledger``). Not named,
  batches of one ledger that the project's submitted reports do not hold are one (``unreported_ledger``), and so
  are they when those reports do not say which ledgers they hold, or none was submitted
  (``reported_ledgers_unknown``: ``report_candidates`` refuses then, and asks to name the ledger).
* **Never emptied by accident.** A ``report_candidates`` frame of a period without complete batches is a problem
  (``no_candidates``: generate it first), and a fill that would take every batch off a draft is one
  (``would_empty``) unless ``allow_empty=True``.
* **Said as it is.** A report that is not a draft is planned with what it holds (its amounts, its allocation), not
  its batches' balances of 0; the plan says the months of its batches, warns when they are not those the report's
  name says (a quarter or a year), and notes a batch also on another draft. A mistyped report id's 404 names the
  closest ids and names and the draft reports.
* **Only what was confirmed.** ``submit_report(..., expected=...)`` takes what the analyst's confirmation showed
  (the plan, or the report read for the question) and, under the lock, refuses a report that holds other batches
  or amounts now (``ReportPlanError`` naming each batch added, taken off or changed): another client may fill a
  draft between the question and the answer.
* **Never overstated.** A plan's totals count only the batches without a problem: for a fill, each at the
  balance it has now (a fill includes every batch at its balance, as the emulator does); for a submission, at
  the amount the report holds of it, checked to be still available.
* **Submitted once.** ``submit_report`` sends the POST through ``HttpClient.send_once``: never re-sent after it
  may have reached the server, no redirect followed. The checks (every one of them, the report read again), the
  record and the send happen under the API's lock in ``_sent.Sent`` (the one generations use), so a double call,
  racing threads, a second client of the same API or two drafts sharing batches send one POST. An answer lost
  after sending, or a task the server no longer knows, is ``SubmissionOutcomeUnknownError``; the submission is
  recorded (in memory and in the state file, so a restarted kernel knows too) and that report is not submitted
  again until ``reconcile_report`` has read its status and found it settled: a draft read within
  ``submission.grace_seconds`` (``call_deadline`` + ``read_timeout``) of the sending is "not seen yet", as the
  request may still arrive.
* **The server may say less.** The documentation's own examples show ``inclusions: []`` and sparse objects:
  a missing optional field is NA (or None); when a submitted report lists no inclusions but batches list it
  in their ``report_allocations``, its inclusions are read from those batches (``report.inclusions_source``
  says where they came from). Every text from the API is escaped in HTML and cleaned of control characters in text.

The package's rooms: ``report`` (``Report`` and its frames read from the API's report objects, and the reads that
complete one), ``plan`` (``ReportPlan``, ``Problem``, their frames and their HTML and text), ``checks`` (what is read
and checked to make a plan), ``_batch_problems`` (the problems of one batch), ``_ledgers`` (which ledgers a report
adds up), ``submission`` (``SubmissionTask``, ``ReportReconciliation``, the record around the one POST); ``_input``
checks the analyst's arguments, ``_values`` reads values and makes typed frames, ``_display``
shows them. Here: ``ReportsMixin``, the client's calls. Import from ``mangrove_nb.registry``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from .._arguments import short
from .._sent import Sent
from ..client import HttpClient
from ..errors import ReportPlanError, ValidationError
from ..periods import PeriodLike, parse_period
from ..settings import Settings
from ._input import _confirmed_batches, _id_argument, _ledger_list, _report_id, _wanted_batches
from ._ledgers import ledgers_not_named, no_candidates, unreported_ledgers
from ._values import _frame
from .checks import changed_since_confirmed, confirmed_text, make_plan
from .plan import PLAN_BATCHES_SCHEMA, PROBLEMS_SCHEMA, TOTALS_SCHEMA, Problem, ReportPlan, _planned_inclusions
from .report import (
    INCLUSIONS_SCHEMA,
    REPORT_STATUSES,
    REPORTS_SCHEMA,
    Report,
    _report_of,
    _report_row,
    _with_inclusions,
    find_report,
    inclusions_from_batches,
    read_report,
    reported_ledgers,
    resolve_report,
    unknown_ledgers_said,
)
from .submission import (
    ReportReconciliation,
    SubmissionTask,
    reconcile,
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

    def report_id(self, report: str) -> str:
        """The id of ``report``, given as an id or as a name (exact, then case-insensitive; it must be one report's):
        what ``mangrove-nb registry --report`` and the report form take. Reads ``client.reports()`` (every status,
        the session's project).

        A name no report has raises ``ValidationError`` (argument ``report``) naming the closest ids and names and
        the draft reports, as does a name several reports have (naming their ids). An id in the documented form
        (``rpt_...``) that is not listed is read, as the server may know it: ``NotFoundError`` (404) when it does
        not, naming the closest too.
        """
        wanted = _report_id(report)
        listed = self.reports()
        found = find_report(listed, wanted)
        if found is not None:
            return found
        if not wanted.startswith("rpt_"):
            return resolve_report(listed, wanted)  # raises, naming the closest
        read_report(self, wanted)  # the server may know it (not listed); else its 404 names the closest
        return wanted

    def report_candidates(self, report_id: str, period: PeriodLike, *,
                          ledgers: str | Iterable[str] | None = None) -> pd.DataFrame:
        """The complete batches of ``period`` (by start time) on the report's project and on ``ledgers``: what
        ``mangrove-nb registry`` fills a report with. A batches frame as ``client.batches()`` gives it (with
        ``ledger_id`` and ``ledger_name``), ready for ``plan_report``; ``attrs["ledgers"]`` names the ledgers (ids,
        joined), ``attrs["ledger_ids"]`` lists them, ``attrs["ledgers_by_default"]`` says they were not named and
        ``attrs["candidates"]`` how many batches were found (a plan of none is a ``no_candidates`` problem).

        ``ledgers`` (names or ids) defaults to the ledgers whose batches the project's complete (submitted)
        reports hold: the ledgers the project reports to the registry. Drafts do not count (one batch put on a
        draft by mistake would change every report's candidates), and never every ledger: adding biochar or
        feedstock tonnes to a removal report would overstate it. When that default finds several ledgers, a plan
        of these batches lists it as a problem (``ledgers_not_named``) until ``ledgers`` names them. Raises
        ``ValidationError`` (argument ``ledgers``) when no submitted report lists a batch (name the ledgers
        then), ``PeriodError`` for a bad period, and the client's errors for the requests.
        """
        span = parse_period(period)
        named = None if ledgers is None else [self.ledger_id(one) for one in _ledger_list(ledgers)]
        report = self.report(report_id)
        project = report.project_id or self.settings.project_id
        if named is not None:
            chosen = named
        else:
            chosen, silent = reported_ledgers(self, project)
            if not chosen:
                raise ValidationError(f"Which ledger report {report.id} adds up is not known: "
                                      f"{unknown_ledgers_said(project, silent)}, and drafts do not count. Name it "
                                      "with ledgers=['Net Carbon Removal'] (--ledger on the command line).",
                                      argument="ledgers")
        frame = self.batches(chosen, span, state="complete")
        if project is not None:
            listed = self.http.batches(**{"filter[project_id][eq]": project, "filter[state][eq]": "complete"})
            ids = {str(item.get("id")) for item in listed if isinstance(item, Mapping)}
            frame = frame[frame["id"].isin(ids)].reset_index(drop=True)
        frame.attrs = _provenance(self.settings, project=project, period=span.label, report=report.id,
                                  ledgers=", ".join(chosen))
        frame.attrs.update(ledger_ids=list(chosen), ledgers_by_default=named is None, candidates=len(frame))
        return frame

    # -- planning and filling -----------------------------------------------------------------------------------

    def plan_report(self, report_id: str, batches: pd.DataFrame | Iterable[str], *,
                    ledgers: str | Iterable[str] | None = None, allow_empty: bool = False) -> ReportPlan:
        """What filling ``report_id`` with ``batches`` would do, checked, without writing anything.

        ``batches`` is a frame with an ``id`` (``client.batches()``, ``report_candidates()``) or ``batch_id``
        column (``plan.added``, ``report.inclusions``), or a list of batch ids; it becomes the report's whole set.
        Returns a ``ReportPlan`` (added, removed, kept, totals, problems, warnings, notes). Raises
        ``ValidationError`` (argument ``batches``, ``ledgers`` or ``report_id``) for other input, ``NotFoundError``
        for an unknown report (naming the closest ids and names), and the client's errors for the requests;
        problems are listed in the plan, not raised.

        A report's allocation is one sum, so batches of several ledgers are a problem (``mixed_ledgers``) unless
        the analyst named those ledgers: ``ledgers`` (names or ids), or a ``report_candidates`` frame given
        ``ledgers=``; with named ledgers, a batch on another ledger is a problem (``other_ledger``), and a named
        ledger that no submitted report of the project holds is a warning (is it a removal to report?). A
        ``report_candidates`` frame whose ledgers were chosen by default and are several is a problem
        (``ledgers_not_named``), and an empty one (the period has no complete batch) is one too
        (``no_candidates``: generate it first). Taking every batch off a draft that holds some is a problem
        (``would_empty``) unless ``allow_empty=True``. Not named, batches of one ledger are a problem when the
        project's submitted reports hold others (``unreported_ledger``) or do not say which they hold, or none was
        submitted (``reported_ledgers_unknown``). A batch generated with a skipped input that may overstate it
        (``skipped_input``), one of two complete batches of its partition (``duplicate_partition``) and one whose
        balance exceeds its output (``balance_exceeds_output``) are problems of that batch, as the quarterly report
        marks them ⚠; so is a batch whose ledger a frame's ``ledger_id`` gives otherwise than the server
        (``ledger_mismatch``): the server's ledger is the one checked.
        """
        rid = _report_id(report_id)
        wanted, ledger_of = _wanted_batches(batches)
        if not isinstance(allow_empty, bool):
            raise ValidationError(f"allow_empty must be True or False, not {short(allow_empty)}.",
                                  argument="allow_empty")
        attrs = batches.attrs if isinstance(batches, pd.DataFrame) else {}
        from_candidates = isinstance(batches, pd.DataFrame) and isinstance(attrs.get("ledger_ids"), list) \
            and isinstance(attrs.get("period"), str) and isinstance(attrs.get("candidates"), int)
        defaulted = attrs.get("ledger_ids") if from_candidates and attrs.get("ledgers_by_default") is True else None
        if ledgers is not None:
            named: list[str] | None = list(dict.fromkeys(self.ledger_id(one) for one in _ledger_list(ledgers)))
        elif from_candidates and attrs.get("ledgers_by_default") is False:
            named = [str(lg) for lg in attrs["ledger_ids"]]
        else:
            named = None
        several_by_default = isinstance(defaulted, list) and len(defaulted) > 1
        report = self.report(rid)
        plan = make_plan(self, report, wanted, ledger_of, submitting=False, named=named, allow_empty=allow_empty)
        extra: list[Problem] = []
        dropped = set()
        if several_by_default:
            assert isinstance(defaulted, list)
            extra.append(ledgers_not_named(self, plan.report.id, [str(lg) for lg in defaulted]))
            dropped.add("mixed_ledgers")  # the same problem, said as what to name
        if from_candidates and attrs["candidates"] == 0 and not wanted:
            extra.append(no_candidates(self, plan.report.id, str(attrs["period"]),
                                       [str(lg) for lg in attrs["ledger_ids"]],
                                       report.project_id or self.settings.project_id))
            dropped.add("would_empty")  # the cause is the period: said once, with what to do
        if extra or dropped:
            kept = tuple(p for p in plan.problems if p.kind not in dropped)
            plan = dataclasses.replace(plan, problems=(*kept, *extra))
        if named is not None:
            plan = dataclasses.replace(plan, warnings=(*plan.warnings, *unreported_ledgers(self, plan, named)))
        return plan

    def fill_report(self, report_id: str, batches: pd.DataFrame | Iterable[str], *,
                    ledgers: str | Iterable[str] | None = None, allow_empty: bool = False) -> Report:
        """Make ``batches`` the report's batches (``PATCH /reports/{id}`` with ``batch_ids``), after the checks of
        ``plan_report`` (``ledgers`` and ``allow_empty`` as there: batches of several ledgers only when named, and
        never a draft emptied unless ``allow_empty=True``); returns the updated ``Report``.

        Only a draft can be filled. Nothing is sent when the plan finds a problem (``ReportPlanError`` lists them,
        its ``plan`` attached) or changes nothing (the report is returned as read). The server's own refusal is a
        ``ValidationError`` carrying its messages (422) or ``NotFoundError`` (404). The PATCH is not retried once
        it may have reached the server: on a transport error, read the report and fill it again (the same set
        twice is harmless). When the server's answer lists no inclusions, they are the batches sent
        (``inclusions_source == "request"``).
        """
        plan = self.plan_report(report_id, batches, ledgers=ledgers, allow_empty=allow_empty)
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

    def submit_report(self, report_id: str, *, expected: ReportPlan | Report | Mapping[str, float | None]
                      | Iterable[str] | None = None, even_if_unlisted: bool = False,
                      ledgers: str | Iterable[str] | None = None) -> SubmissionTask:
        """Submit the report to the registry, once; returns the task (``wait()`` returns the report as
        submitted, read again after completion). Irreversible.

        ``expected`` is what the analyst confirmed: the ``ReportPlan`` shown (its batches at its amounts), the
        ``Report`` the question was built from (its inclusions), a mapping of batch id to amount, or batch ids
        alone (amounts not compared). Give it whenever a person confirmed something: another client may fill the
        draft between the question and the answer, and then nothing is sent (``ReportPlanError``, each batch put
        on, taken off or at another amount, to the API's 3 decimals, named as a ``changed_since_confirmed``
        problem). None checks nothing of the kind.

        A report holding batches of several ledgers is refused (``mixed_ledgers``) unless they are named: ``ledgers``
        (names or ids), else the ledgers the ``expected`` plan was made with (``ReportPlan.named_ledgers``).

        Checked, nothing sent otherwise: no submission of this report from this process (or, through the state
        file, an earlier one) is running or of unknown outcome (``PreconditionError``; run ``reconcile_report``);
        then, under the API's lock, right before the POST, the report is read again and must be a draft that
        lists at least one batch, every batch still complete, in the project, on no other report that is not a
        draft, with its included amount still available, and (``expected``) what was confirmed
        (``ReportPlanError`` listing each problem). A draft the server reads back with no inclusions (the API
        documentation's own example does) cannot be checked here: ``even_if_unlisted=True`` sends it anyway and
        lets the server's own checks decide (a 422 refuses it); ``expected`` cannot be compared then either.

        A lost answer raises ``SubmissionOutcomeUnknownError`` (recorded: this report is refused until
        ``reconcile_report``); the server's refusal (422) a ``ValidationError`` with its messages. A failed task
        raises ``TaskFailedError`` from ``wait()`` with the registry's message.
        """
        rid = _report_id(report_id)
        confirmed = None if expected is None else _confirmed_batches(expected)
        if ledgers is not None:
            named: list[str] | None = list(dict.fromkeys(self.ledger_id(one) for one in _ledger_list(ledgers)))
        elif isinstance(expected, ReportPlan) and expected.named_ledgers is not None:
            named = list(expected.named_ledgers)
        else:
            named = None
        if not isinstance(even_if_unlisted, bool):
            raise ValidationError(f"even_if_unlisted must be True or False, not {short(even_if_unlisted)}.",
                                  argument="even_if_unlisted")
        with self._sent.lock:
            refuse_recorded_submission(self, rid)
            report = self.report(rid)
            plan = make_plan(self, report, list(report.batch_ids), {}, submitting=True, named=named)
            unlisted = report.inclusions_source == "none"
            problems = [p for p in plan.problems if not (even_if_unlisted and unlisted and p.kind == "empty")]
            if problems:
                raise dataclasses.replace(plan, problems=tuple(problems)).error()
            if confirmed is not None and not unlisted:
                changed = changed_since_confirmed(report, confirmed)
                if changed:
                    raise ReportPlanError(
                        f"Nothing was sent: report {rid} changed since the submission was confirmed (confirmed: "
                        f"{confirmed_text(confirmed, report)}; it holds now: "
                        f"{confirmed_text(_confirmed_batches(report), report)}). "
                        + " ".join(p.message for p in changed) + " Read it again (plan it, or Plan in the form) "
                        "and confirm what it holds now.", report_id=rid, problems=[p.message for p in changed],
                        batch_ids=[p.batch_id for p in changed],
                        plan=dataclasses.replace(plan, problems=tuple(changed)))
            return send_submission(self, rid)

    def report_task(self, report_id: str, task_id: int | str) -> SubmissionTask:
        """Re-attach to a report's submission task (after a kernel restart or an interrupted ``wait()``); its
        ``wait()`` returns the report read again after completion, as ``submit_report``'s does."""
        rid = _report_id(report_id)
        return submission_task(self, rid, task_id)

    def reconcile_report(self, report_id: str) -> ReportReconciliation:
        """After ``SubmissionOutcomeUnknownError``: read the report's status and say whether the submission was
        sent. ``submitting`` or ``complete``: it was sent; ``draft``: nothing is being submitted (it did not
        arrive, or the registry refused it), but only once ``grace_seconds`` (the settings' ``call_deadline``
        plus ``read_timeout``; 150 s by default) have passed since the submission was sent: before that, a
        request may still arrive, so ``sent`` is None and ``check_again_in`` says after how many seconds to read
        it again. The time is this process's monotonic clock for its own submissions, the wall clock of the state
        file's record for an earlier session's. Once settled (sent, or a draft after that time), this process's
        record of the unknown outcome is cleared (in the state file too), so ``submit_report`` no longer refuses
        on its account (the server refuses a report that is not a draft). Another status keeps the record.
        Returns a ``ReportReconciliation`` (``advice()`` says what to do); raises ``NotFoundError`` for an
        unknown report.
        """
        rid = _report_id(report_id)
        return reconcile(self, self.report(rid, look_in_batches=False))


def _provenance(settings: Settings, **extra: Any) -> dict[str, Any]:
    attrs: dict[str, Any] = {"base_url": settings.base_url,
                             "fetched_at": datetime.now(UTC).isoformat(timespec="seconds")}
    attrs.update({k: v for k, v in extra.items() if v is not None})
    return attrs

