"""How a generation ends, as the generation form shows it: complete (the new batches, flagged and plotted),
failed (with the server's words, and what the form offers after a missing input), no longer followed, or of
unknown outcome until reconciled; and the static copy of all that.

``GenerationForm`` is built from ``GenerationOutcomes`` (this module: the end of a run, on the confirm → send
once → wait → outcome of ``_sending.SendingForm``) and its own module (the choice, the steps up to Confirm, the
controls). The form's states are ``FormState``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from ..api import Reconciliation
from ..errors import (
    GenerationOutcomeUnknownError,
    MangroveError,
    PreconditionError,
    TaskFailedError,
    secret_safe_logger,
)
from ..periods import Period
from ..tasks import Task
from ._base import ledger_label, plot_png
from ._choice import LedgerChoice
from ._html import count_table, error_text, esc, plural, png_data_uri, status_html
from ._sending import FormState, SendingForm
from .missing_input import (
    Dropped,
    MissingInput,
    offer_after,
    offer_text,
    read_dropped,
    skip_note,
    with_skip_notes,
)

log = secret_safe_logger(__name__)

# A request of this form whose outcome is unknown: ledger id, period, the error (a lost answer).
Unknown = tuple[str, Period, MangroveError]


class GenerationOutcomes(SendingForm[Task[pd.DataFrame], pd.DataFrame]):
    """The end of a generation, for ``GenerationForm``: what ``SendingForm`` calls as it ends (``_completed``
    through ``_when_complete``, ``_failure``, ``_detached_text``, ``_remember_unknown``), ``reconcile()`` and
    ``_publish_static``. The attributes below are the form's (set in ``GenerationForm.__init__``)."""

    _unknown_error = GenerationOutcomeUnknownError
    _state_after_refusal = FormState.IDLE  # preview again

    choice: LedgerChoice
    preview_frame: pd.DataFrame | None
    reconciliation: Reconciliation | None
    offer: MissingInput | None
    skip: MissingInput | None
    dropped: Dropped | None
    rest: Period | None
    period_picker: Any
    skip_button: Any
    offer_html: Any
    skip_html: Any
    plot: Any
    _preview_key: tuple[Any, ...] | None
    _running: tuple[str, Period, tuple[str, ...], MissingInput | None] | None
    _unknowns: list[Unknown]
    _unknown: Unknown | None

    @property
    def required(self) -> pd.DataFrame | None:
        """The chosen ledger's required inputs (None for a ledger without a model)."""
        return self.choice.required

    def reconcile(self) -> Reconciliation:
        """After an unknown outcome: what the server has for that ledger and period, shown in the form.

        When nothing is left to generate the unknown outcome is settled and the form shows the batches;
        otherwise it keeps saying the outcome is unknown, with the advice of ``Reconciliation.advice()``.
        """
        with self._lock:
            if self.state != FormState.OUTCOME_UNKNOWN or self._unknown is None:
                raise PreconditionError("There is nothing to reconcile: no generation request of this form has an "
                                        "unknown outcome.")
            unknown = self._unknown
        ledger_id, period, _ = unknown
        found = self.client.reconcile(ledger_id, period)
        name = self._names().get(ledger_id, ledger_id)
        with self._lock:
            self.reconciliation = found
            self.result_html.value = ("<b>On the server</b>" + self._batches_table(found.batches)
                                      + "<b>Still to generate</b>" + count_table(found.still_missing, "Batches"))
            on_server = f"Reconciled {name} {found.period.label}: {plural(len(found.batches), 'batch')} on the server"
            if found.complete:
                self._unknowns = [u for u in self._unknowns if u is not unknown]
                self.state, self._unknown, self.result, self.error = FormState.DONE, None, found.batches, None
                self._set_status("ok", f"{on_server} and nothing left to generate. The earlier request's outcome no "
                                       "longer matters.")
            else:
                self._set_status("warn", f"{on_server}, {int(found.still_missing['count'].sum())} still to "
                                         f"generate. {found.advice()}")
            self._refresh_controls()
            self._publish_static()
        return found

    def _when_complete(self, task: Task[pd.DataFrame]) -> Callable[[pd.DataFrame], None]:
        assert self._running is not None  # set by _prepare_send
        _, period, _, skip = self._running
        return lambda frame: self._completed(task, frame, period, skip)

    def _note_wait_error(self, task: Task[pd.DataFrame], exc: BaseException) -> None:
        call = task.reattach
        said = [str(exc), *(str(note) for note in getattr(exc, "__notes__", ()))]
        if not (task.status is not None and task.status.done) and not any(call in text for text in said):
            exc.add_note(f"Task {task.id} may still be running on the server; re-attach with {call}.")

    def _completed(self, task: Task[pd.DataFrame], frame: pd.DataFrame, period: Period,
                   skip: MissingInput | None) -> None:
        # The slow parts first, outside the lock: which batches were made without an input, and the plot.
        warning = ""
        try:
            frame = with_skip_notes(self.client, frame, period=period)
        except MangroveError as exc:
            warning = f"\nCould not read the new batches' details ({type(exc).__name__}), so they are not checked " \
                      "for inputs left out."
            frame = frame.copy()
            if skip is not None:  # what this form asked for is known all the same
                frame["note"] = pd.Series(skip_note(", ".join(skip.names), False), index=frame.index,
                                          dtype="string")
        names = self._names()
        frame["ledger_name"] = frame["ledger_name"].fillna(frame["ledger_id"].map(names)).astype("string")
        png = plot_png(frame, period=period, title=f"New batches, {period.label}", labels=names)
        with self._ending(task, FormState.DONE) as ours:
            if not ours:
                return  # the form moved on (a new choice); this outcome is not its to show
            made = len(frame)
            # What the confirmation named as dropped (the skip's readings, read again at Confirm).
            dropped = self.dropped if skip is not None and self.dropped is not None and self.dropped.skip is skip \
                else None
            self.result, self.skip, self.dropped = frame, None, None
            self.rest = skip.rest if skip is not None else None
            self.progress.value = 100
            flagged = int(frame["note"].notna().sum()) if "note" in frame.columns else 0
            self.result_html.value = f"<b>New batches ({made})</b>" + self._batches_table(frame)
            text = f"Task {task.id} complete: created {plural(made, 'batch')} for {period.label}."
            if flagged:
                text += (f"\n{plural(flagged, 'batch')} generated without an input (counted as zero): see the "
                         "Note column.")
            if dropped is not None and dropped.count:
                text += (f"\nLeaving {dropped.skip.quoted} out dropped {dropped.what} in {dropped.skip.month.label}: "
                         "their emissions are not counted, so net removal is overstated.")
            if self.rest is not None:
                text += (f"\nNext: the rest of {self.rest.label}, without skipping anything (Preview the rest of "
                         f"{self.rest.label}).")
            self._set_status("warn" if flagged or warning else "ok", text + warning)
            if not self.choice.manual_inputs().empty:  # the data points just used may have no balance left
                try:
                    self.choice.load_candidates()
                except MangroveError as exc:
                    log.warning("Could not list the candidates again after the generation: %s", exc)
            self.plot.value = png
            self._plot_uri = png_data_uri(png)

    def _failure(self, task: Task[pd.DataFrame], exc: BaseException) -> Callable[[], None]:
        running = self._running
        offer = dropped = None
        if isinstance(exc, TaskFailedError) and running is not None:
            ledger_id, period, _points, skipped = running
            offer = offer_after(exc.error_message, ledger_id, period, self.required, skipped)
            # What leaving the input out would drop (read here, outside the lock: it asks the API).
            dropped = read_dropped(self.client, offer) if offer is not None else None

        def show() -> None:
            self.skip, self.offer, self.dropped = None, offer, dropped
            # The client's advice for a missing input (in the exception's message) is the offer's, in the form:
            # shown once, as the offer, when there is one.
            self._set_status("error", error_text(exc, advice=offer is None))
            if offer is None or dropped is None:
                self.offer_html.value = ""
            else:
                self.skip_button.description = (f"Preview {offer.month.label} without {offer.name}"
                                                 + (f" (drops {dropped.short})" if dropped.count else ""))
                self.offer_html.value = status_html("warn", offer_text(offer, dropped))
        return show

    def _detached_text(self, task: Task[pd.DataFrame]) -> str:
        return (f"Stopped waiting for task {task.id}; it goes on running on the server. Re-attach with "
                f"{task.reattach}, or see its batches with a BatchExplorer later.")

    def _end_run(self) -> None:
        super()._end_run()
        self._preview_key = self._running = None

    def _remember_unknown(self, exc: MangroveError, key: tuple[Any, ...]) -> None:
        assert self._running is not None  # set by _prepare_send
        ledger_id, period = self._running[:2]
        self._unknown = (ledger_id, period, exc)
        self._unknowns.append(self._unknown)

    def _unknown_for(self, key: tuple[Any, ...] | None) -> Unknown | None:
        if key is None:
            return None
        ledger_id, start, end = key[:3]
        for unknown in self._unknowns:
            if unknown[0] == ledger_id and unknown[1].start <= end and start <= unknown[1].end:
                return unknown
        return None

    def _unknown_label(self, unknown: Unknown) -> str:
        return f"{self._names().get(unknown[0], unknown[0])} {unknown[1].label}"

    def _show_unknown(self) -> None:
        unknown = self._unknown
        if unknown is None:
            return
        self._set_status("error", f"Outcome unknown ({self._unknown_label(unknown)}): " + error_text(unknown[2])
                         + "\n\nClick Reconcile to see what the server has before doing anything else; this "
                           "session will not send this generation again until then.")

    def _publish_static(self) -> None:
        row = self.choice.row()
        period = self.period_picker.value
        kind, text = self._status
        meta = [f"Ledger: <b>{esc(ledger_label(row))}</b>", f"Period: {esc(period) if period else '—'}"]
        if self.task is not None:
            meta.append(f"Task {esc(self.task.id)}")
        parts = [f"<h3>Batch generation: {esc(row.name)}</h3>", f'<p class="mnb-meta">{" · ".join(meta)}</p>',
                 status_html(kind, text)]
        if period is not None and self._active_skip(row.id, period) is not None:
            parts.append(self.skip_html.value)
        if self.preview_frame is not None:
            parts.append("<h4>Preview</h4>" + count_table(self.preview_frame, "Batches to create"))
        if self.state == FormState.FAILED and self.offer is not None and self.dropped is not None:
            parts.append(status_html("warn", offer_text(self.offer, self.dropped)))
        if self.result is not None:
            parts.append(f"<h4>New batches ({len(self.result)})</h4>" + self._batches_table(self.result))
            if self._plot_uri:
                parts.append(f'<img alt="New batches" src="{self._plot_uri}">')
        self._publish("".join(parts))

    # GenerationForm's (the controls for the current state; the skip that applies to a choice):

    def _refresh_controls(self) -> None:
        raise NotImplementedError

    def _active_skip(self, ledger_id: str, period: Period | None) -> MissingInput | None:
        raise NotImplementedError
