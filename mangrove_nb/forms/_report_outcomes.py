"""How a submission ends, as the report form shows it: complete (the allocation and the batches on the report),
refused by the registry (in its own words), no longer followed, or of unknown outcome until reconciled; and the
static copy of all that.

``ReportForm`` is built from ``ReportOutcomes`` (this module: the end of a run, on the confirm → send once → wait →
outcome of ``_sending.SendingForm``) and its own module (``report``: the choice, Plan, Fill, Submit, the controls), as
``GenerationForm`` is from ``_outcomes``. The texts and HTML are ``_report_html``'s; the form's states are
``FormState``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import pandas as pd

from ..errors import MangroveError, PreconditionError, TaskFailedError
from ..registry import Report, ReportPlan, ReportReconciliation, SubmissionTask
from ._html import error_text, esc, status_html
from ._report_html import inclusions_html, outcome_text, report_facts, text
from ._sending import FormState, SendingForm
from .period_picker import PeriodPicker

# A choice: the report's id and the period's bounds.
Key = tuple[str, pd.Timestamp, pd.Timestamp]


class ReportOutcomes(SendingForm[SubmissionTask, Report]):
    """The end of a submission, for ``ReportForm``: ``reconcile()``, what ``SendingForm`` calls as it ends
    (``_completed`` through ``_when_complete``, ``_failure``, ``_detached_text``, ``_end_run``,
    ``_remember_unknown``, ``_show_unknown``) and ``_publish_static``. The attributes below are the form's (set in
    ``ReportForm.__init__``)."""

    report_dropdown: Any
    period_picker: PeriodPicker
    plan_html: Any
    reports_frame: pd.DataFrame
    plan_result: ReportPlan | None
    report: Report | None
    reconciliation: ReportReconciliation | None
    _plan_key: Key | None
    _sent_key: Key | None
    _action: str | None
    _unknowns: dict[str, MangroveError]

    def reconcile(self) -> ReportReconciliation:
        """After a submission with an unknown outcome: read the report's status (``client.reconcile_report``) and
        show what happened. Complete: the outcome; submitting: it goes on on the server; a draft: nothing is being
        submitted, plan and submit again."""
        with self._lock:
            rid = self.report_dropdown.value
            if self.state != FormState.OUTCOME_UNKNOWN or rid not in self._unknowns:
                raise PreconditionError("There is nothing to reconcile: no submission of this form has an unknown "
                                        "outcome.")
        found = self.client.reconcile_report(rid)
        report = found.report
        with self._lock:
            self.reconciliation, self.report = found, report
            if found.sent is not None:
                self._unknowns.pop(rid, None)
            advice = found.advice()
            if found.sent is True and report.status == "complete":
                self.state, self.result, self.error = FormState.DONE, report, None
                self.plan_html.value = ""
                self.result_html.value = "<b>On the report</b>" + inclusions_html(report, self._names())
                self._set_status("ok", f"Reconciled: {advice}\n{outcome_text(report, None)}")
            elif found.sent is True:
                self.state, self.error = FormState.DETACHED, None
                self._set_status("warn", f"Reconciled: {advice}")
            elif found.sent is False:
                self._clear_outcome()  # nothing was sent: back to the start, the reconciliation kept
                self.reconciliation, self.report = found, report
                self._set_status("info", f"Reconciled: {advice} Plan it again, then Submit.")
            else:
                self._set_status("warn", f"Reconciled, still unknown: {advice}")
            self._show_facts()
            self._refresh_controls()
            self._publish_static()
        return found

    # -- how the submission ends (``SendingForm`` follows it in the background thread) -----------------------------

    def _when_complete(self, task: SubmissionTask) -> Callable[[Report], None]:
        return partial(self._completed, task)

    def _completed(self, task: SubmissionTask, report: Report) -> None:
        with self._ending(task, FormState.DONE) as ours:
            if not ours:
                return
            self.result, self.report = report, report
            self.progress.value = 100
            self.plan_html.value = ""  # the plan was of the draft; the report as submitted replaces it
            self.result_html.value = "<b>On the report</b>" + inclusions_html(report, self._names())
            done = report.status == "complete" and report.allocated_amount is not None
            self._set_status("ok" if done else "warn", outcome_text(report, task.id))
            self._show_facts()

    def _failure(self, task: SubmissionTask, exc: BaseException) -> Callable[[], None]:
        rid = task.report_id
        if isinstance(exc, TaskFailedError):
            said = exc.error_message or "(the registry gave no reason)"
            shown = (f"The submission failed (task {task.id}). The registry said:\n{said}\n\nA refused report goes "
                     "back to draft and nothing is allocated: fix what the message names, then Plan, Fill and Submit "
                     "again.")
        else:
            shown = (error_text(exc) + "\n\nThe submission may still be running on the server; re-attach with "
                     f"client.report_task({rid!r}, {task.id!r}).wait(), or read the report with "
                     f"client.report({rid!r}).")
        return partial(self._set_status, "error", shown)

    def _detached_text(self, task: SubmissionTask) -> str:
        rid = task.report_id
        return (f"Stopped waiting for task {task.id}; the submission goes on on the server. Re-attach with "
                f"client.report_task({rid!r}, {task.id!r}).wait(), or read the report with client.report({rid!r}).")

    def _end_run(self) -> None:
        super()._end_run()
        self._action = None

    def _remember_unknown(self, exc: MangroveError, key: tuple[Any, ...]) -> None:
        self._unknowns[key[0]] = exc
        self._sent_key = (key[0], key[1], key[2])

    def _show_unknown(self) -> None:
        exc = self._unknowns.get(self.report_dropdown.value)
        if exc is not None:
            self._set_status("error", "Outcome unknown: " + error_text(exc) + "\n\nClick Reconcile to read the "
                                      "report's status before anything else; this session will not submit it again "
                                      "until then.")

    def _publish_static(self) -> None:
        rid = self.report_dropdown.value
        row = self._row(rid) if rid is not None else None
        period = self.period_picker.value
        kind, status = self._status
        meta = [f"Report: <b>{esc(text(row.name))}</b> <code>{esc(rid)}</code>" if row is not None else "Report: —",
                f"Period: {esc(period.label) if period is not None else '—'}"]
        if self.task is not None:
            meta.append(f"Task {esc(self.task.id)}")
        parts = ["<h3>Registry report</h3>", f'<p class="mnb-meta">{" · ".join(meta)}</p>']
        if row is not None:
            report = self.report if self.report is not None and self.report.id == rid else None
            parts.append(report_facts(report, row, indent=False))
        parts.append(status_html(kind, status))
        if self.state == FormState.CONFIRMING and self.confirmation:
            parts.append(status_html("warn", self.confirmation))
        if self.plan_result is not None and self._plan_key == self._current_key() and self.result is None:
            parts.append(self.plan_html.value)
        if self.result is not None:
            parts.append(f"<h4>On the report ({len(self.result.inclusions)})</h4>"
                         + inclusions_html(self.result, self._names()))
        self._publish("".join(parts))

    # ReportForm's (the facts of the chosen report; its row in the reports frame):

    def _show_facts(self) -> None:
        raise NotImplementedError

    def _row(self, rid: str) -> Any:
        raise NotImplementedError
