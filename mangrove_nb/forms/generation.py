"""The generation form: preview and generate a period's batches on a ledger, with confirmation, progress and
the outcome.

Waiting for a generation runs in a background thread started by Confirm, so the kernel stays responsive and
"Stop waiting" works; it waits through ``Task.wait()`` (its poll schedule, timeout and outcomes), showing the
task's progress on the form. Only one generation per ledger and period: the form's own state (under a lock)
ignores a second click or confirmation, and ``Client.generate`` refuses, process-wide, a generation that
overlaps one still running or one whose outcome is unknown (a re-run cell, a second form, another client of
the same API); the server refuses one that overlaps a running generation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from ..api import Client, Reconciliation
from ..errors import PreconditionError
from ..frames import can_generate
from ..periods import Period, PeriodError, PeriodLike
from ..tasks import Task
from ._choice import LedgerChoice, question
from ._html import count_table, plural, status_html
from ._outcomes import GenerationOutcomes, Unknown
from ._sending import BUSY, FormState
from .missing_input import Dropped, MissingInput, can_skip, read_dropped, skip_text

__all__ = ["FormState", "GenerationForm"]


class GenerationForm(GenerationOutcomes):
    """Preview and generate a period's batches on a ledger, with confirmation, progress and the outcome.

    Controls (ipywidgets): ``ledger``, ``period_picker`` (a ``PeriodPicker``), ``inputs_html``,
    ``candidates`` (data points for manual-select inputs), ``preview_button``, ``generate_button``,
    ``confirm_button``, ``cancel_button``, ``stop_button``, ``reconcile_button``, ``skip_button`` and
    ``rest_button`` (after a failure on a missing input), ``progress`` (0–100), ``progress_label``,
    ``status``; ``widget`` is the whole box. Methods do what the buttons do: ``preview()``, ``generate()``
    (asks for confirmation), ``confirm()`` (starts), ``cancel()``, ``wait()``, ``stop_waiting()``,
    ``reconcile()``, ``preview_month_without_input()``, ``preview_rest_of_period()``. Outcome:
    ``preview_frame``, ``task``, ``result`` (the new batches, with a ``note`` on those generated without an
    input), ``error``, ``state`` (a ``FormState``), ``offer``, ``skip``, ``dropped``, ``rest``, ``static_html``.

    Leaving an input out of a month drops every reading of it in that month, not only the missing one: the offer,
    the preview and the confirmation name the readings it drops (``client.readings``, with the session's
    project), and only a confirmation that names them sends the generation with ``drop_existing_readings=True``.

    Changing the ledger or the period starts afresh: the preview, result, error, progress and offers of the
    previous choice are cleared (an unknown outcome stays remembered for its own ledger and period).
    """

    _kind = "Generation form"
    _nothing_to_confirm = "Nothing to confirm: Preview, then Generate, then Confirm."
    _changed_since_question = "The selection changed since the preview; preview it again."
    _cancelled = "Cancelled: nothing was created."
    _not_started = "No generation was started by this form: Preview, Generate, then Confirm."

    def __init__(self, client: Client, ledger: str | None = None, period: PeriodLike | None = None, *,
                 project_id: int | str | None = None) -> None:
        import ipywidgets as w

        style = {"description_width": "70px"}
        #: The ledger, period and data points, and what they load (``required``, ``candidate_frame``).
        self.choice = LedgerChoice(client, ledger, period, project_id=project_id, style=style)
        super().__init__(client, self.choice.ledgers)
        self.preview_frame: pd.DataFrame | None = None
        self.reconciliation: Reconciliation | None = None
        #: After a failure on one month's missing input: generating that month without it is offered.
        self.offer: MissingInput | None = None
        #: The input the next generation leaves out, in ``skip.month`` only (set by preview_month_without_input()).
        self.skip: MissingInput | None = None
        #: What leaving the offer's (then the skip's) inputs out of its month drops: the readings it does have.
        self.dropped: Dropped | None = None
        #: After the month without the input: the period whose rest is offered next, without skipping.
        self.rest: Period | None = None
        self._preview_key: tuple[Any, ...] | None = None
        self._running: tuple[str, Period, tuple[str, ...], MissingInput | None] | None = None
        self._shown: tuple[Any, ...] | None = None
        self._unknowns: list[Unknown] = []  # requests of this form whose outcome is unknown, until reconciled
        self._unknown: Unknown | None = None

        choice = self.choice
        self.ledgers, self.ledger, self.period_picker = choice.ledgers, choice.ledger, choice.period_picker
        self.model_html, self.inputs_html = choice.model_html, choice.inputs_html
        self.candidates, self.candidates_html, self.candidates_box = (choice.candidates, choice.candidates_html,
                                                                      choice.candidates_box)
        self.preview_button = w.Button(description="Preview", icon="search", tooltip="Count what would be created")
        self.generate_button = w.Button(description="Generate", icon="play", button_style="primary",
                                        disabled=True, tooltip="Enabled after a preview of this selection")
        self.skip_html = w.HTML()
        self.preview_html = w.HTML()
        self._build_sending(style, confirm="Confirm",
                            stop_tooltip="Stop following the task; it goes on running on the server",
                            reconcile_tooltip="See what the server made after a request with an unknown outcome")
        self.offer_html = w.HTML()
        self.skip_button = w.Button(button_style="warning", icon="forward", layout=w.Layout(width="auto"),
                                    tooltip="Last resort: preview that month alone without the input, which "
                                            "drops the readings of it the month does have (named in the preview "
                                            "and the confirmation); adding the missing reading is better")
        self.rest_button = w.Button(button_style="info", icon="forward", layout=w.Layout(width="auto"),
                                    tooltip="Preview the rest of the period, without skipping anything")
        self.offer_box = w.VBox([self.offer_html, w.HBox([self.skip_button, self.rest_button])])
        self.plot = w.Image(format="png", layout=w.Layout(max_width="900px"))
        self.widget = w.VBox([
            w.HTML("<b>Generate batches</b>"), self.ledger, self.period_picker.widget, self.model_html,
            self.inputs_html, self.candidates_box, w.HBox([self.preview_button, self.generate_button]),
            self.skip_html, self.preview_html, self.confirm_box, self.progress_box, self.status,
            self.reconcile_button, self.offer_box, self.result_html, self.plot,
        ])

        self.preview_button.on_click(self._callback(self.preview))
        self.generate_button.on_click(self._callback(self.generate))
        self.skip_button.on_click(self._callback(self.preview_month_without_input))
        self.rest_button.on_click(self._callback(self.preview_rest_of_period))
        self.ledger.observe(self._callback(self._ledger_changed), "value")
        self.period_picker.on_change(self._callback(self._period_changed))
        self.candidates.observe(self._callback(self._candidates_changed), "value")

        choice.load_ledger()
        self._selection_changed()
        self._publish_static()

    @property
    def candidate_frame(self) -> pd.DataFrame | None:
        """The data points a manual-select input can use in the chosen period (``client.candidates``)."""
        return self.choice.candidate_frame

    # -- the buttons' methods -------------------------------------------------------------------------------

    def preview(self) -> pd.DataFrame:
        """Count the batches generating the chosen ledger and period would create (one row per ledger)."""
        with self._lock:
            if self.state in BUSY:
                raise PreconditionError(self._busy_message())
            if self.state == FormState.OUTCOME_UNKNOWN and self._unknown is not None:
                raise PreconditionError(
                    f"The last generation request for {self._unknown_label(self._unknown)} has an unknown outcome: "
                    "click Reconcile (form.reconcile()) to see what the server made before previewing again.")
        ledger_id, period, points = self.choice.selection()
        self.choice.check_can_generate(ledger_id, points)
        skip = self._active_skip(ledger_id, period)
        dropped = read_dropped(self.client, skip) if skip is not None else None
        if dropped is not None and not dropped.checked:
            raise PreconditionError(dropped.unread("Not previewed"))
        frame = self.client.preview(ledger_id, period, data_point_ids=list(points) or None)
        total = int(frame["count"].sum())
        reason = self.choice.nothing_to_generate(ledger_id, period) if total == 0 else ""
        with self._lock:
            self.preview_frame, self._preview_key = frame, self._key(ledger_id, period, points, skip)
            self.state, self.error, self.confirmation, self.offer = FormState.PREVIEWED, None, None, None
            self.dropped = dropped
            if dropped is not None:
                self.skip_html.value = status_html("warn", skip_text(dropped))
            self.preview_html.value = "<b>Preview</b>" + count_table(frame, "Batches to create")
            if total == 0:
                self._set_status("warn", reason)
            else:
                without = f" without {skip.quoted}, dropping {dropped.what}" if skip and dropped else ""
                self._set_status("info", f"Preview of {period}{without}: {plural(total, 'batch')} would be "
                                         "created. Click Generate to create them.")
            self._refresh_controls()
            self._publish_static()
        return frame

    def generate(self) -> str | None:
        """Ask for confirmation of what the last preview counted; returns the question (Confirm starts)."""
        with self._lock:
            if self.state == FormState.CONFIRMING or self.state in BUSY:
                return self._ask_again()
            key = self._current_key()
            if self._preview_key is None or key != self._preview_key:
                raise PreconditionError("Preview this ledger, period and selection first: Generate creates what "
                                        "a preview of the same selection counted.")
            assert self.preview_frame is not None
            assert key is not None
            if int(self.preview_frame["count"].sum()) == 0:
                raise PreconditionError("The preview counts 0 batches: there is nothing to generate.")
            period = self.period_picker.period
            skip = self._active_skip(key[0], period)
            if skip is not None and (self.dropped is None or self.dropped.skip is not skip):
                raise PreconditionError("Preview again: the preview reads the readings that leaving the input out "
                                        "would drop, and the question names them.")
            self._ask(key, question(self.preview_frame, period, key[3], self.dropped if skip else None))
        return self.confirmation

    # Confirm, Cancel, Stop waiting, wait(): SendingForm's, with these steps.

    def _prepare_send(self, key: tuple[Any, ...]) -> Callable[[], Task[pd.DataFrame]]:
        ledger_id, _, _, points, _ = key
        period = self.period_picker.period
        skip = self._active_skip(ledger_id, period)
        named = self.dropped if skip is not None else None
        self._running = (ledger_id, period, points, skip)
        self._plot_uri = None
        self.plot.value = b""

        def send() -> Task[pd.DataFrame]:
            # A skip drops the readings the month has: only those the confirmation named, read again now.
            drop = self._check_dropped(skip, named) if skip is not None else False
            # The client checks, process-wide and under one lock, that no generation of this API overlapping
            # this ledger and period is running or has an unknown outcome, then sends the trigger once.
            return self.client.generate(ledger_id, period, data_point_ids=list(points) or None,
                                        skipped_data_point_type_ids=list(skip.type_ids) if skip else None,
                                        drop_existing_readings=drop)
        return send

    def _started_text(self, task: Task[pd.DataFrame]) -> str:
        return f"Task {task.id} started: {self.confirmation or ''}".strip()

    def preview_month_without_input(self) -> pd.DataFrame:
        """After a failure on one month's missing input: preview that month alone, leaving that input out.

        The period becomes that month and the next generation carries ``skipped_data_point_type_ids`` for it.
        The API leaves the whole input out of that month, so the readings it does have there are dropped too:
        the preview and the confirmation name them (``dropped``), and Confirm sends the generation with
        ``drop_existing_readings=True`` only if they are still exactly those. Without the session's project they
        cannot be read, and this raises ``PreconditionError``. Afterwards ``preview_rest_of_period()`` offers
        the rest of the failed period, without skipping.
        """
        with self._lock:
            offer = self.offer
            if (offer is None and self.skip is not None and self.preview_frame is not None
                    and self.state in (FormState.PREVIEWED, FormState.CONFIRMING)
                    and self._active_skip(self.ledger.value, self.period_picker.value) is self.skip):
                return self.preview_frame  # a second click: that month is previewed already
            if offer is None or self.state != FormState.FAILED:
                raise PreconditionError("Nothing to offer: this appears after a generation fails because one month "
                                        "lacks a reading of one input (the server's message names both).")
            if offer.ledger_id != self.ledger.value:
                raise PreconditionError("The ledger changed since the failure; preview again.")
            dropped = self.dropped  # read with the offer
            if dropped is None or not can_skip(dropped):
                raise PreconditionError(dropped.unread("Not offered") if dropped is not None else
                                        "Not offered: the readings that leaving the input out would drop were not "
                                        "read.")
        self._choose(offer.month)
        with self._lock:
            self.skip, self.rest = offer, offer.rest
        return self.preview()

    def preview_rest_of_period(self) -> pd.DataFrame:
        """After the month generated without its missing input: preview the rest of the period, skipping nothing."""
        with self._lock:
            rest = self.rest
            if rest is None or self.state != FormState.DONE:
                raise PreconditionError("Nothing to offer: the rest of a period is offered after its month with a "
                                        "missing input was generated without it.")
        self._choose(rest)
        return self.preview()

    # -- reacting to the controls ---------------------------------------------------------------------------

    def _ledger_changed(self) -> None:
        if self._revert_if_busy():
            return
        self.choice.load_ledger()
        self._selection_changed()

    def _period_changed(self) -> None:
        if self._revert_if_busy():
            return
        self.choice.load_candidates()
        self._selection_changed()

    def _candidates_changed(self) -> None:
        if self._revert_if_busy():
            return
        self._selection_changed()

    def _put_back(self) -> str | None:
        """While a generation starts or runs, its ledger, period and data points stay chosen."""
        if self._running is None:
            return None
        ledger_id, period, points, _ = self._running
        if self.ledger.value != ledger_id:
            self.ledger.value = ledger_id
        if self.period_picker.value != period:
            self.period_picker.value = period
        if tuple(sorted(self.candidates.value)) != points:
            self.candidates.value = points
        task = self.task.id if self.task is not None else "(starting)"
        return (f"Task {task} is generating {self._names().get(ledger_id, ledger_id)} {period.label}: the ledger, "
                "period and data points stay as they are until it ends (or Stop waiting).")

    def _selection_changed(self) -> None:
        """A new ledger or period starts afresh (the previous outcome is cleared); new data points void the
        preview and a pending confirmation."""
        with self._lock:
            key = self._current_key()
            shown = key[:3] if key is not None else None
            cleared = False
            if shown != self._shown or key is None:
                self._shown = shown
                cleared = self._has_outcome()
                self._clear_outcome()
                self._unknown = self._unknown_for(key)
                if self._unknown is not None:
                    self.state = FormState.OUTCOME_UNKNOWN
                    self._show_unknown()
                elif key is None:
                    self._set_status("warn", "Choose a valid period (see the message under the period).")
                else:
                    name = self._names().get(key[0], key[0])
                    self._set_status("info", f"{name}, {self.period_picker.period.label}: Preview to count what "
                                             "would be created, then Generate.")
            elif self._preview_key is not None and key != self._preview_key:
                self._preview_key = None
                if self.state == FormState.CONFIRMING:
                    self.state, self._pending_key = FormState.PREVIEWED, None
                self._set_status("info", "The selection changed: preview it before generating.")
            self._refresh_controls()
            # The saved copy follows outcomes, and the clearing of one: a live front end redraws the widget view
            # on every update of the display, so a mere change of choice does not update it.
            if cleared or self.state == FormState.OUTCOME_UNKNOWN:
                self._publish_static()

    def _has_outcome(self) -> bool:
        """Whether the form shows something of the current choice: a preview, result, error, task or offer."""
        return super()._has_outcome() or self.preview_frame is not None or self.offer is not None

    def _clear_outcome(self) -> None:
        """Forget the previous choice's preview, result, error, progress and offers (under the lock)."""
        super()._clear_outcome()
        self.preview_frame = self._preview_key = None
        self.offer = self.skip = self.rest = self.dropped = None
        self._plot_uri = None
        self.preview_html.value = self.offer_html.value = self.skip_html.value = ""
        self.plot.value = b""

    def _choose(self, period: Period) -> None:
        """Set the period from one of the form's own offers (which clears the previous outcome)."""
        if self.period_picker.value == period:
            return
        self.period_picker.value = period

    # -- helpers -----------------------------------------------------------------------------------------------

    @staticmethod
    def _key(ledger_id: str, period: Period, points: tuple[str, ...], skip: MissingInput | None) -> tuple[Any, ...]:
        return (ledger_id, period.start, period.end, points, skip.type_ids if skip else None)

    def _current_key(self) -> tuple[Any, ...] | None:
        try:
            ledger_id, period, points = self.choice.selection()
        except PeriodError:
            return None
        return self._key(ledger_id, period, points, self._active_skip(ledger_id, period))

    def _active_skip(self, ledger_id: str, period: Period | None) -> MissingInput | None:
        """The skip, when the choice is exactly its ledger and month (a skip never spans months)."""
        skip = self.skip
        if skip is None or skip.ledger_id != ledger_id or skip.month != period:
            return None
        return skip

    def _check_dropped(self, skip: MissingInput, named: Dropped | None) -> bool:
        """Whether to send ``drop_existing_readings=True``: the readings that leaving ``skip`` out would drop, read
        again now, must be exactly those the confirmation ``named`` (then True when there are any); else
        ``PreconditionError`` and nothing is sent."""
        now = read_dropped(self.client, skip)
        if not now.checked:
            raise PreconditionError(now.unread("Not sent"))
        if named is None or named.skip is not skip or now.signature != named.signature:
            said = named.what if named is not None else "nothing"
            raise PreconditionError(f"Not sent: the readings that leaving {skip.quoted} out of {skip.month.label} "
                                    f"would drop changed since the preview (it named {said}; now {now.what}). "
                                    "Preview again.")
        return now.count > 0

    def _busy_message(self) -> str:
        task_id = self.task.id if self.task is not None else "(starting)"
        return (f"Task {task_id} is running; wait for it (form.wait()) or stop waiting first. Nothing new was "
                "started.")

    def _refresh_controls(self) -> None:
        with self._lock:
            state = self.state
            busy = state in BUSY
            key = self._current_key()
            may_generate = (not busy and state != FormState.CONFIRMING and self._preview_key is not None
                            and key == self._preview_key and self.preview_frame is not None
                            and int(self.preview_frame["count"].sum()) > 0)
            self.choice.disabled = busy
            self.preview_button.disabled = busy or not can_generate(self.choice.row())
            self.generate_button.disabled = not may_generate
            dropping = self.dropped if state == FormState.CONFIRMING and self.skip is not None else None
            self.confirm_button.description = (f"Confirm, dropping {dropping.short}" if dropping is not None
                                               and dropping.count else "Confirm")
            self._show_sending(progress=self.task is not None or busy)
            offer = state == FormState.FAILED and self.offer is not None
            rest = state == FormState.DONE and self.rest is not None
            self.skip_button.layout.display = "" if offer and can_skip(self.dropped) else "none"
            self.rest_button.layout.display = "" if rest else "none"
            self.offer_box.layout.display = "" if offer or rest else "none"
            if rest and self.rest is not None:
                self.rest_button.description = f"Preview the rest of {self.rest.label}"
                self.offer_html.value = ""
            skip = self._active_skip(self.ledger.value, self.period_picker.value) if key is not None else None
            self.skip_html.layout.display = "" if skip is not None and not busy else "none"
            self.plot.layout.display = "" if self._plot_uri else "none"
