"""The report form: put a period's batches on a draft registry report, check them, fill the report and submit it,
once, with a confirmation, progress and the outcome.

    form = mnb.ReportForm(client, report="2025Q1 Quarterly Report", period="2025Q1")
    form                                   # the widgets live, a static copy when saved
    form.plan(); form.fill(); form.submit(); form.confirm(); form.wait()      # the same, from code

A thin shell over the client's registry calls (``registry.ReportsMixin``): **Plan** is ``report_candidates`` (the
period's complete batches on the ledgers the project reports) then ``plan_report`` (added, removed, kept, totals,
problems; nothing sent); **Fill** is ``fill_report`` with the planned batches (one PATCH; only a draft, only a plan
without problems); **Submit** reads the report again and asks a question that names it, its number of batches and
its total per unit; only **Confirm submit** sends, through ``submit_report`` (checked again, POSTed once). The
submission is followed in a background thread through ``Task.wait(progress=..., stop=...)`` with the form's bar;
the end shows the allocation (amount and unit), or the registry's refusal in its own words, or, after a lost answer
(``SubmissionOutcomeUnknownError``), a **Reconcile** button (``reconcile_report``). That end, ``reconcile()`` and
the static copy are ``_report_outcomes.ReportOutcomes``', which the form extends; this module holds the choice, the
steps up to Confirm submit and the controls.

One action per click, as in ``GenerationForm`` (both are a ``_sending.SendingForm``: confirm, send once, wait, the
outcome, in one ``FormState`` under one lock): a second click on Fill, Submit or Confirm submit, or one while a
request runs, sends nothing more; a re-run cell (a new form) or a second client is refused by the client itself,
process-wide (a submission running or of unknown outcome) and by the report's status (a report no longer a draft
cannot be filled or submitted).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from ..api import Client
from ..errors import (
    MangroveError,
    PreconditionError,
    SubmissionOutcomeUnknownError,
)
from ..periods import Period, PeriodError, PeriodLike, parse_period
from ..registry import Report, ReportPlan, ReportReconciliation, SubmissionTask
from ..registry.report import resolve_report
from ._html import plural
from ._report_html import plan_html, question, report_facts, report_label, text
from ._report_outcomes import Key, ReportOutcomes
from ._sending import BUSY, FormState
from .period_picker import PeriodPicker

__all__ = ["ReportForm"]


class ReportForm(ReportOutcomes):
    """Fill a draft registry report with a period's batches and submit it, once; see the module docstring.

    ``report`` (an id or a name; exact, then case-insensitive) preselects that report, listed even when it is not a
    draft (then it cannot be filled); without it the form lists the draft reports and preselects the one whose name
    holds the period's label (``"2025Q1"``), else the first. ``period`` is anything ``parse_period`` reads (None:
    the last complete quarter). ``ledgers`` (names or ids) are the ledgers whose batches go on the report; by
    default those the project's reports already hold (``client.report_candidates``).

    Controls (ipywidgets): ``report_dropdown``, ``period_picker`` (a ``PeriodPicker``), ``plan_button``,
    ``fill_button``, ``submit_button``, ``confirm_button`` ("Confirm submit"), ``cancel_button``, ``progress``,
    ``progress_label``, ``stop_button``, ``reconcile_button``, ``status``; ``widget`` is the whole box. Methods
    do what the buttons do: ``plan()``, ``fill()``, ``submit()`` (asks), ``confirm()`` (sends), ``cancel()``,
    ``wait()``, ``stop_waiting()``, ``reconcile()``. Outcome: ``plan_result`` (the ``ReportPlan``),
    ``candidates``, ``report`` (the chosen report as last read), ``confirmation``, ``task`` (a ``SubmissionTask``),
    ``result`` (the report as submitted), ``reconciliation``, ``error``, ``state`` (a ``FormState``: ``previewed``
    means planned), ``static_html``. Changing the report or the period starts afresh.
    """

    _kind = "Report form"
    _unknown_error = SubmissionOutcomeUnknownError
    _state_after_refusal = FormState.PREVIEWED  # the plan stands: Submit asks again
    _thread_name = "mangrove-report-task"
    _nothing_to_confirm = "Nothing to confirm: Plan, Fill, then Submit, then Confirm submit."
    _changed_since_question = "The report or the period changed since the question; plan again."
    _cancelled = "Cancelled: nothing was submitted."
    _not_started = "No submission was started by this form: Plan, Fill, Submit, then Confirm submit."

    def __init__(self, client: Client, report: str | None = None, period: PeriodLike | None = "2025Q1", *,
                 ledgers: str | list[str] | None = None) -> None:
        import ipywidgets as w

        chosen_period = parse_period(period) if period is not None else None
        super().__init__(client, client.ledgers())
        self.plan_result: ReportPlan | None = None
        self.candidates: pd.DataFrame | None = None
        self.report: Report | None = None
        self.reconciliation: ReportReconciliation | None = None
        self._ledgers = ledgers
        self._plan_key: Key | None = None
        self._sent_key: Key | None = None  # the choice whose submission this form sent (late clicks see it)
        self._action: str | None = None  # "filling" or "submitting", while the state is STARTING
        self._shown: Key | None = None
        self._shown_period: Period | None = None  # the period of ``_shown``, to put back while a request runs
        self._unknowns: dict[str, MangroveError] = {}  # report id -> lost answer, until reconciled
        self._asked: Report | None = None  # the report the question was built from: Confirm submits that or nothing

        self.reports_frame = client.reports()
        listed = self._listed(report, chosen_period)
        style = {"description_width": "70px"}
        options = [(report_label(row), str(row.id)) for row in listed.itertuples()]
        self.report_dropdown = w.Dropdown(options=options, value=self._preselect(listed, report, chosen_period),
                                          description="Report", style=style, layout=w.Layout(width="720px"))
        now = datetime.now(UTC).year
        first = chosen_period.start.year if chosen_period is not None else now
        self.period_picker = PeriodPicker(chosen_period, years=range(min(first, now) - 1, max(first, now) + 1))
        self.facts_html = w.HTML()
        self.plan_button = w.Button(description="Plan", icon="search",
                                    tooltip="Check the period's complete batches against the report; sends nothing")
        self.fill_button = w.Button(description="Fill", icon="list", disabled=True,
                                    tooltip="Put the planned batches on the draft report (one request)")
        self.submit_button = w.Button(description="Submit", icon="paper-plane",
                                      disabled=True, tooltip="Asks for a confirmation that names what is sent")
        self.plan_html = w.HTML()
        self._build_sending(style, confirm="Confirm submit", confirm_width="auto",
                            stop_tooltip="Stop following the submission; it goes on on the server",
                            reconcile_tooltip="Read the report's status after a submission with an unknown outcome")
        self.widget = w.VBox([
            w.HTML("<b>Registry report</b>"), self.report_dropdown, self.facts_html, self.period_picker.widget,
            w.HBox([self.plan_button, self.fill_button, self.submit_button]), self.plan_html, self.confirm_box,
            self.progress_box, self.status, self.reconcile_button, self.result_html,
        ])

        self.plan_button.on_click(self._callback(self.plan))
        self.fill_button.on_click(self._callback(self.fill))
        self.submit_button.on_click(self._callback(self.submit))
        self.report_dropdown.observe(self._callback(self._choice_changed), "value")
        self.period_picker.on_change(self._callback(self._choice_changed))

        self._choice_changed()
        self._publish_static()

    # -- the buttons' methods -------------------------------------------------------------------------------

    def plan(self) -> ReportPlan:
        """Check the period's complete batches against the chosen report: added, removed, kept, the totals per
        ledger and unit, and every problem (``client.plan_report``). Sends nothing."""
        with self._lock:
            if self.state in BUSY:
                raise PreconditionError(self._busy_message())
            self._refuse_if_unknown("planning")
        rid, period = self._choice()
        candidates = self.client.report_candidates(rid, period, ledgers=self._ledgers)
        plan = self.client.plan_report(rid, candidates)
        with self._lock:
            if self._current_key() != (rid, period.start, period.end):
                raise PreconditionError("The report or the period changed while the plan was read; plan again.")
            self.candidates, self.plan_result, self.report = candidates, plan, plan.report
            self._plan_key, self._pending_key, self.confirmation = self._current_key(), None, None
            self._sent_key = None  # a new plan: a late click on an earlier Confirm submit is no longer quiet
            self.state, self.error = FormState.PREVIEWED, None
            self._show_plan(plan, period)
            self._refresh_controls()
            self._publish_static()
        return plan

    def fill(self) -> Report | None:
        """Put the planned batches on the draft report (``client.fill_report``: checked again, one PATCH); the report
        as filled. A plan with problems, or of a report that is not a draft, is refused (``ReportPlanError``) and
        nothing is sent; a report that already holds exactly the planned batches is left as it is."""
        with self._lock:
            if self.state == FormState.STARTING and self._action == "filling":
                return None  # a second click while the first one's request runs
            if self.state in BUSY:
                raise PreconditionError(self._busy_message())
            plan = self._plan_for_choice("Fill")
            if not plan.ok:
                raise plan.error()
            if not plan.changes:
                return self.report  # already filled (a late second click): nothing to send
            self.state, self._action, self.error = FormState.STARTING, "filling", None
            self._set_status("info", f"Filling report {text(plan.report.name)!r} with "
                                     f"{plural(len(plan.batch_ids), 'batch')}…")
            self._refresh_controls()
        rid, period = plan.report.id, self.period_picker.period
        try:
            # The ledgers the plan was made with (named, or none): a list of ids alone would not say them.
            named = list(plan.named_ledgers) if plan.named_ledgers is not None else None
            filled = self.client.fill_report(rid, list(plan.batch_ids), ledgers=named)
            replanned = self.client.plan_report(rid, list(plan.batch_ids), ledgers=named)
        except BaseException:
            with self._lock:
                self.state, self._action, self._plan_key = FormState.IDLE, None, None
                self._refresh_controls()
            raise
        with self._lock:
            self.report, self.plan_result, self.state, self._action = filled, replanned, FormState.PREVIEWED, None
            self._show_plan(replanned, period)
            if filled.inclusions_source == "request":  # accepted, yet the server does not list them
                self._set_status("warn", f"Filled: the server accepted {plural(len(filled.inclusions), 'batch')} "
                                         f"but does not list this draft's batches, so they cannot be checked here "
                                         f"(a plan shows them as added again). To submit it, let the server's own "
                                         f"checks decide, from code: client.submit_report({rid!r}, "
                                         "even_if_unlisted=True).")
            elif replanned.ok:  # else the plan's problems stay in the status
                held = plural(len(filled.inclusions), "batch")
                self._set_status("ok", f"Filled: report {text(filled.name)!r} holds {held}. Check the plan, then "
                                       "Submit (it asks for a confirmation first).")
            self._refresh_controls()
            self._publish_static()
        return filled

    def submit(self) -> str | None:
        """Ask for the confirmation of a submission: reads the report again and returns the question, which names
        it, its number of batches, their ledgers and units, and its total per unit. Sends nothing: only
        ``confirm()`` does, and only the batches and amounts the question named (``submit_report(expected=...)``)."""
        with self._lock:
            if self.state == FormState.CONFIRMING or self.state in BUSY:
                return self._ask_again()
            plan = self._plan_for_choice("Submit")
            if not plan.ok:
                raise plan.error()
            if plan.changes:
                raise PreconditionError("Fill first: the report does not hold the planned batches yet (Fill puts "
                                        "them on it; Submit sends what the report holds).")
            if not plan.batch_ids:
                raise PreconditionError(f"Report {plan.report.id} holds no batch: there is nothing to submit.")
            key = self._plan_key
            assert key is not None  # _plan_for_choice: the plan is of the current choice
        report = self.client.report(plan.report.id)
        with self._lock:
            if self._current_key() != key or self.state != FormState.PREVIEWED:
                raise PreconditionError("The report or the period changed; plan again.")
            if set(report.batch_ids) != set(plan.batch_ids) or report.status != "draft":
                self.report = report
                raise PreconditionError(f"Report {report.id} changed since the plan (it is now "
                                        f"{text(report.status)!r} with {plural(len(report.batch_ids), 'batch')}): "
                                        "plan again.")
            self.report = self._asked = report
            self._set_status("warn", "Read the question above: Confirm submit sends the report to the registry, "
                                     "once; Cancel sends nothing.")
            self._ask(key, question(report, self._names(), plan.months_text(), plan.warnings),
                      style="font-weight:600;max-width:900px")
        return self.confirmation

    # Confirm submit, Cancel, Stop waiting, wait(): SendingForm's, with the words above and these steps.

    def _confirmed_already(self) -> bool:
        # A late click on Confirm submit after the outcome of this choice's submission: nothing more is sent.
        return (self._sent_key is not None and self._sent_key == self._current_key()
                and self.state != FormState.CONFIRMING)

    def _prepare_send(self, key: tuple[Any, ...]) -> Callable[[], SubmissionTask]:
        self._action = "submitting"
        rid, asked = key[0], self._asked
        plan = self.plan_result
        named = list(plan.named_ledgers) if plan is not None and plan.named_ledgers is not None else None

        def send() -> SubmissionTask:
            if asked is None or asked.id != rid:  # (the question is always asked of a report read for it)
                raise PreconditionError(self._nothing_to_confirm)
            # What the question named, or nothing: another client may have filled the draft since it was asked. The
            # ledgers the plan was made with: several only when named.
            return self.client.submit_report(rid, expected=asked, ledgers=named)

        return send

    def _record_sent(self, key: tuple[Any, ...]) -> None:
        self._action, self._sent_key = None, (key[0], key[1], key[2])

    def _started_text(self, task: SubmissionTask) -> str:
        return (f"Task {task.id} started: submitting report "
                f"{text(self.report.name if self.report else task.report_id)!r} to the registry.")

    # -- reacting to the controls ---------------------------------------------------------------------------

    def _choice_changed(self, *_: Any) -> None:
        """A new report or period starts afresh: the previous plan, question, outcome and progress are cleared
        (an unknown outcome stays with its report). While a request runs, the choice is put back."""
        with self._lock:
            if self._revert_if_busy():
                return
            key = self._current_key()
            if key == self._shown and self._shown is not None:
                return
            self._shown, self._shown_period = key, self.period_picker.value
            cleared = self._has_outcome()
            self._clear_outcome()
            self._show_facts()
            rid = self.report_dropdown.value
            if rid is not None and rid in self._unknowns:
                self.state = FormState.OUTCOME_UNKNOWN
                self._show_unknown()
            elif rid is None:
                self._set_status("warn", "No draft report to fill: reports are made in Mangrove's app (the API "
                                         "fills and submits them). Make one there, then run this cell again.")
            elif key is None:
                self._set_status("warn", "Choose a valid period (see the message under the period).")
            else:
                self._set_status("info", f"{text(self._row(rid).name)}, {self.period_picker.period.label}: Plan to "
                                         "check the period's complete batches against the report.")
            self._refresh_controls()
            if cleared or self.state == FormState.OUTCOME_UNKNOWN:
                self._publish_static()

    def _put_back(self) -> str | None:
        """While a request runs (a fill or a submission), its report and period stay chosen."""
        if self._shown is None or self._shown_period is None:
            return None
        rid, period = self._shown[0], self._shown_period
        if self.report_dropdown.value != rid:
            self.report_dropdown.value = rid
        if self.period_picker.value != period:
            self.period_picker.value = period
        return f"{self._busy_message()} The report and the period stay as they are until it ends."

    def _has_outcome(self) -> bool:
        return super()._has_outcome() or self.plan_result is not None

    def _clear_outcome(self) -> None:
        """Forget the previous choice's plan, question, outcome and progress (under the lock)."""
        super()._clear_outcome()
        self.plan_result = self.candidates = self.report = self._asked = None
        self._plan_key = self._sent_key = None
        self.plan_html.value = ""

    # -- helpers ---------------------------------------------------------------------------------------------

    def _listed(self, wanted: str | None, period: Period | None) -> pd.DataFrame:
        """The reports the drop-down offers: the drafts, and the one asked for (whatever its status)."""
        frame = self.reports_frame
        drafts = frame[frame["status"] == "draft"]
        if wanted is None:
            return drafts.reset_index(drop=True)
        rid = resolve_report(frame, wanted)
        if rid in set(drafts["id"]):
            return drafts.reset_index(drop=True)
        return pd.concat([frame[frame["id"] == rid], drafts], ignore_index=True)

    @staticmethod
    def _preselect(listed: pd.DataFrame, wanted: str | None, period: Period | None) -> str | None:
        if not len(listed):
            return None
        if wanted is not None:
            return resolve_report(listed, wanted)
        if period is not None:
            named = listed[listed["name"].fillna("").str.contains(period.label, regex=False)]
            if len(named):
                return str(named["id"].iloc[0])
        return str(listed["id"].iloc[0])

    def _row(self, rid: str) -> Any:
        return next(r for r in self.reports_frame.itertuples() if r.id == rid)

    def _choice(self) -> tuple[str, Period]:
        rid = self.report_dropdown.value
        if rid is None:
            raise PreconditionError("No report is chosen: there is no draft report to fill (reports are made in "
                                    "Mangrove's app).")
        return rid, self.period_picker.period

    def _current_key(self) -> Key | None:
        rid = self.report_dropdown.value
        try:
            period = self.period_picker.period
        except PeriodError:
            return None
        return (rid, period.start, period.end) if rid is not None else None

    def _plan_for_choice(self, action: str) -> ReportPlan:
        """The shown plan, when it is of the current choice (under the lock)."""
        self._refuse_if_unknown(action.lower())
        plan = self.plan_result
        if plan is None or self._plan_key is None or self._plan_key != self._current_key() \
                or self.state not in (FormState.PREVIEWED, FormState.CONFIRMING):
            raise PreconditionError(f"Plan this report and period first: {action} acts on what a plan of the same "
                                    "choice showed.")
        return plan

    def _refuse_if_unknown(self, doing: str) -> None:
        rid = self.report_dropdown.value
        if self.state == FormState.OUTCOME_UNKNOWN and rid in self._unknowns:
            raise PreconditionError(f"The last submission of report {rid} has an unknown outcome: click Reconcile "
                                    f"(form.reconcile()) to read its status before {doing} again.")

    def _show_plan(self, plan: ReportPlan, period: Period) -> None:
        self.plan_html.value = plan_html(plan, period.label)
        self._show_facts()
        if plan.ok:
            if plan.changes:
                self._set_status("info", f"Planned: {plan.summary()} Click Fill to put these batches on the report.")
            elif plan.batch_ids:
                self._set_status("info", f"Planned: {plan.summary()} The report holds exactly these batches: click "
                                         "Submit (it asks for a confirmation first).")
            else:
                self._set_status("warn", f"No complete batch of {period.label} to put on the report (on the ledgers "
                                         "the project reports), and the report holds none: generate the period first.")
        else:
            self._set_status("error", f"Planned: {plan.summary()} Fix the problems listed under the plan: nothing "
                                      "can be filled or submitted until then.")

    def _show_facts(self) -> None:
        rid = self.report_dropdown.value
        if rid is None:
            self.facts_html.value = ""
            return
        report = self.report if self.report is not None and self.report.id == rid else None
        self.facts_html.value = report_facts(report, self._row(rid))

    def _busy_message(self) -> str:
        if self.state == FormState.STARTING and self._action == "filling":
            return "The report is being filled; wait for it. Nothing new was sent."
        task_id = self.task.id if self.task is not None else "(starting)"
        return f"Task {task_id} is submitting the report; wait for it (form.wait()). Nothing new was sent."

    def _refresh_controls(self) -> None:
        with self._lock:
            state = self.state
            busy = state in BUSY
            key = self._current_key()
            plan = self.plan_result if self._plan_key is not None and self._plan_key == key else None
            planned = state == FormState.PREVIEWED and plan is not None
            self.report_dropdown.disabled = self.period_picker.disabled = busy
            self.plan_button.disabled = busy or key is None
            self.fill_button.disabled = not (planned and plan is not None and plan.ok and plan.changes)
            self.submit_button.disabled = not (planned and plan is not None and plan.ok and not plan.changes
                                               and bool(plan.batch_ids))
            # Primary (blue) only when it can be clicked: a disabled button must not look like the next step.
            self.submit_button.button_style = "" if self.submit_button.disabled else "primary"
            submitting = self.task is not None or (state == FormState.STARTING and self._action == "submitting")
            self._show_sending(progress=submitting)
