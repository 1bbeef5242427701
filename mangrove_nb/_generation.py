"""Generating batches, for ``api.Client`` (it inherits ``GenerationMixin``): ``generate()``, ``task()``,
``reconcile()`` and the checks that run before a trigger is sent.

The trigger is sent once: ``generate()`` checks, records and sends under the lock of this process's record
of what it sent to the API (``_sent.Sent``, one per base URL), so two threads, a double click or a re-run cell
never send it twice; an unknown outcome is remembered (also across restarts) until ``reconcile()`` settles
it. Every check that can refuse (no model, manual-select inputs, a running or unknown generation, a skip that
would drop readings, nothing to generate) runs before anything is sent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from . import frames
from ._arguments import (
    MONTH_IN_TEXT,
    generation_body,
    whole_months,
)
from ._sent import Attempt, Sent
from ._text import one_line
from .client import HttpClient
from .errors import (
    ConfigurationError,
    MalformedResponseError,
    MangroveError,
    PreconditionError,
    secret_safe_logger,
)
from .periods import Period, PeriodLike, parse_period
from .settings import Settings
from .tasks import Task, TaskStatus

log = secret_safe_logger("mangrove_nb")


@dataclass(frozen=True)
class Reconciliation:
    """What the server has for a ledger and period, after an uncertain generation request."""

    ledger_id: str
    period: Period
    batches: pd.DataFrame
    still_missing: pd.DataFrame
    #: Earlier requests of this process for this ledger and period whose outcome is still unknown (a short
    #: sentence each). Empty when the reconciliation settled them: nothing is left to generate.
    unknown_outcomes: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        """True when the preview finds nothing left to generate."""
        return int(self.still_missing["count"].sum()) == 0

    def advice(self) -> str:
        """What to do next, in one or two sentences."""
        failed = self.batches[self.batches["state"] == "failed"] if len(self.batches) else self.batches
        if len(failed) and not self.unknown_outcomes:  # a failed batch is no figure: "nothing left" would hide it
            said = "; ".join(  # the id is what delete_batch takes; the tracking id what Mangrove's app shows
                (f"{_short(r.tracking_id)} ({_short(r.id)})" if isinstance(r.tracking_id, str) else _short(r.id))
                + f": {_short(r.model_run_error if isinstance(r.model_run_error, str) else 'no reason given')}"
                for r in failed.head(3).itertuples())
            return (f"{len(failed)} batch(es) of the period failed ({said}): fix what their errors name first (a "
                    "missing or wrong reading: add or correct it in Mangrove), then delete them with "
                    "client.delete_batch(id) and generate the period again with client.generate(...); generating "
                    "as things are fails the same way.")
        if self.complete:
            return "Nothing is left to generate: every partition with data has a batch."
        if not self.unknown_outcomes:
            return ("Generate what is still missing with client.generate(...); if a generation of this period "
                    "failed, fix what its error named first (a missing or wrong reading: add or correct it in "
                    "Mangrove), or it fails the same way.")
        return ("An earlier request for this period has an unknown outcome and may still be generating: "
                "reconcile again in a minute. Generate the rest only when you are sure nothing is running "
                "(Mangrove's app lists running tasks), with client.generate(..., even_if_outcome_unknown=True).")

    def __repr__(self) -> str:
        left = ", ".join(f"{r.ledger_name}: {r.count}" for r in self.still_missing.itertuples()) or "nothing"
        return (f"<Reconciliation {self.ledger_id} {self.period.label}: {len(self.batches)} batch(es) on the "
                f"server; still to generate: {left}. {self.advice()}>")




def _short(text: object) -> str:
    """API text in an advice: one line, cut to 120 characters."""
    return one_line(text, 120)


class GenerationMixin:
    """The generation calls of ``api.Client`` (it inherits them): see the module docstring."""

    http: HttpClient
    settings: Settings
    _sent: Sent

    if TYPE_CHECKING:  # what Client provides
        def ledger_id(self, ledger: str) -> str: ...

        def required_inputs(self, ledger: str) -> pd.DataFrame: ...

        def preview(self, ledger: str, period: PeriodLike, *, data_point_ids: Sequence[str] | None = None
                    ) -> pd.DataFrame: ...

        def batches(self, ledger: str | Iterable[str] | None = None, period: PeriodLike | None = None, *,
                    state: str | None = None, details: bool = False) -> pd.DataFrame: ...

        def readings(self, ledger: str, period: PeriodLike, data_point_type_ids: Iterable[int]) -> pd.DataFrame: ...

        def _ledger_names(self, *, refresh: bool = False) -> dict[str, str]: ...

        def _names_or_nothing(self) -> dict[str, str]: ...

        def _provenance(self, *, ledger: str | None = None, period: Period | None = None,
                        task: Any = None) -> dict[str, Any]: ...

    # -- generating ----------------------------------------------------------------------------------------------

    def generate(
        self,
        ledger: str,
        period: PeriodLike,
        *,
        data_point_ids: Sequence[str] | None = None,
        batch_amounts: Sequence[Mapping[str, Any]] | None = None,
        skipped_data_point_type_ids: Sequence[int] | None = None,
        skip_in_every_month: bool = False,
        drop_existing_readings: bool = False,
        even_if_running: bool = False,
        even_if_outcome_unknown: bool = False,
    ) -> Task[pd.DataFrame]:
        """Start generating ``period``'s batches on ``ledger_id``; returns the task (``.wait()`` for it).

        Checked before anything is sent: the arguments; the ledger has a model; its manual-select inputs are
        named (``data_point_ids`` or ``batch_amounts``); a skip covers one month only (the API applies
        ``skipped_data_point_type_ids`` to every month of the request, dropping readings that exist:
        ``skip_in_every_month=True`` if that is really meant); a skip drops no reading that exists (the API skips
        a data point *type*, so every reading of it in the period goes too: the project's events are read, and
        ``drop_existing_readings=True`` is needed to skip a type that has readings); no generation this process
        started for the same
        ledger and an overlapping period is still running (``even_if_running=True`` skips this), and none of
        this or another process (the state file, read again) has an unknown outcome (run ``client.reconcile()``;
        ``even_if_outcome_unknown=True`` skips this); the
        preview finds something to generate. The trigger is sent once: if its answer is lost,
        ``GenerationOutcomeUnknownError`` says so, this process remembers it, and ``reconcile()`` shows what
        the server has.
        """
        ledger_id = self.ledger_id(ledger)
        span = parse_period(period)
        body = generation_body(span, data_point_ids=data_point_ids, batch_amounts=batch_amounts,
                                skipped=skipped_data_point_type_ids)
        record = self.http.ledger(ledger_id)
        name = record.get("name") or ledger_id
        if not record.get("latest_model"):
            raise PreconditionError(f"Ledger '{name}' ({ledger_id}) has no linked model (latest_model is null), so "
                                    "batches cannot be generated on it; link a model to it in Mangrove first.")
        if "skipped_data_point_type_ids" in body:
            if not skip_in_every_month:
                self._check_skip_is_one_month(ledger_id, span, body["skipped_data_point_type_ids"])
            if not drop_existing_readings:
                self._check_skip_drops_nothing(ledger_id, span, body["skipped_data_point_type_ids"])
        if "data_point_ids" not in body and "batch_amounts" not in body:
            self._check_manual_inputs(ledger_id, name, span)
        with self._sent.lock:
            if not even_if_outcome_unknown:
                self._check_no_unknown_outcome(ledger_id, span)
            if not even_if_running:
                self._check_not_running(ledger_id, span)
            preview_body = {k: v for k, v in body.items() if k in ("start_time", "end_time", "data_point_ids")}
            preview = frames.preview_frame(self.http.generate_preview(ledger_id, preview_body))
            if int(preview["count"].sum()) == 0:
                raise PreconditionError(self._nothing_to_generate(ledger_id, name, span))
            ledgers = [lid for lid in preview.loc[preview["count"] > 0, "ledger_id"].tolist() if lid]
            return self._send_trigger(ledger_id, span, body, ledgers, label=f"{name} {span.label}")

    def _send_trigger(self, ledger_id: str, span: Period, body: Mapping[str, Any], ledgers: list[str], *,
                      label: str) -> Task[pd.DataFrame]:
        """Record, then send; whatever happens after the request may have left, the record says so."""
        attempt = Attempt(ledger_id, span, frozenset([ledger_id, *ledgers]))
        self._sent.attempts.append(attempt)
        with self._sent.sending(attempt):
            accepted = self.http.create_batch_generation(ledger_id, body)
            task_id = accepted.get("id")
            if isinstance(task_id, bool) or not isinstance(task_id, int | str) or task_id == "":
                raise attempt.outcome_unknown("the server accepted the request but its answer names no task id")
            try:
                first: TaskStatus | None = TaskStatus.from_json(
                    {**accepted, "state": accepted.get("state", "pending")},
                    where=f"POST /ledgers/{ledger_id}/batch_generations")
            except MalformedResponseError:
                first = None  # accepted all the same; the first poll reads the state
            task = self._task(task_id, ledgers, span, label=label, created_at=first.created_at if first else None,
                              advise=lambda status: self._missing_input_advice(ledger_id, span, status))
            task.status = first
            attempt.task = task
            return task

    def task(self, task_id: int | str, *, ledgers: str | Iterable[str] | None = None,
             period: PeriodLike | None = None) -> Task[pd.DataFrame]:
        """Re-attach to a task by id (after a kernel restart, or an interrupted ``wait()``).

        Its ``wait()`` returns the batches created on ``ledgers`` (default: every ledger) between the
        task's ``started_at`` and ``finished_at``, as the server's timestamps say, that start in ``period``
        (default: any). Name both, as the messages that say how to re-attach do: a generation of another
        period or ledger that ran at the same time (yours or a colleague's) made batches in that window too.
        """
        span = parse_period(period) if period is not None else None
        chosen = None if ledgers is None else [  # names or ids, one or several: checked before any poll
            self.ledger_id(one) for one in ([ledgers] if isinstance(ledgers, str) else ledgers)]
        return self._task(task_id, chosen, span)

    def reconcile(self, ledger: str, period: PeriodLike) -> Reconciliation:
        """After ``GenerationOutcomeUnknownError``: the batches the server has and what is still missing."""
        ledger_id = self.ledger_id(ledger)
        span = parse_period(period)
        # The preview first: batches made meanwhile then show up in the listing read after it, so a
        # reconciliation that says "nothing still missing" always lists what was made.
        missing = self.preview(ledger_id, span)
        batches = self.batches(ledger_id, span)
        complete = int(missing["count"].sum()) == 0
        with self._sent.lock:
            unknown = [a for a in self._sent.overlapping(ledger_id, span) if a.unknown is not None]
            # Settled: the requests whose whole period this reconciliation covered and found nothing missing
            # in; whatever they did, nothing is left that a second request could double. A request for a
            # longer period stays unknown (reconcile that period).
            settled = [a for a in unknown if complete and span.start <= a.period.start and a.period.end <= span.end]
            for attempt in settled:
                self._sent.forget(attempt)
            unknown = [a for a in unknown if a not in settled]
        return Reconciliation(ledger_id, span, batches, missing, tuple(a.describe() for a in unknown))

    def _task(self, task_id: Any, ledgers: list[str] | None, span: Period | None, *, label: str | None = None,
              created_at: datetime | None = None,
              advise: Callable[[TaskStatus], str | None] | None = None) -> Task[pd.DataFrame]:
        if task_id is None:
            raise PreconditionError("The server accepted the generation but sent no task id; list the ledger's "
                                    "batches to follow it.")

        def collect(status: TaskStatus) -> pd.DataFrame:
            return self._made_by(status, ledgers, span, created_at)

        named = ([f"ledgers={ledgers!r}"] if ledgers is not None else []) + \
            ([f"period={span.argument}"] if span is not None else [])
        reattach = f"client.task({', '.join([repr(task_id), *named])}).wait()"
        return Task(self.http, task_id, collect=collect, label=label, on_final=self._forget, advise=advise,
                    reattach=reattach)

    def _missing_input_advice(self, ledger_id: str, span: Period, status: TaskStatus) -> str | None:
        """For a task that failed on a missing input in one month: the safe calls, naming that month."""
        text = status.error_message or ""
        months = [m for m in whole_months(span) if m.label in set(MONTH_IN_TEXT.findall(text))]
        if len(months) != 1:
            return None
        try:
            inputs = self.required_inputs(ledger_id)
        except MangroveError:
            return None
        named = [(int(r.id), str(r.name)) for r in inputs.itertuples()
                 if (isinstance(r.name, str) and r.name in text) or (isinstance(r.slug, str) and r.slug in text)]
        if len(named) != 1:
            return None
        (type_id, name), month = named[0], months[0].label
        rest = (f" then the rest of {span.label} without skipping: client.generate({ledger_id!r}, {span.argument})."
                if len(whole_months(span)) > 1 else "")
        return (f"{month} lacks a reading of {name!r}. Add it in Mangrove (a documented estimate if need be) and "
                f"generate again. Skipping the input is a last resort that drops every reading of it in {month} "
                "(the API skips a type, not one reading) and overstates net removal: "
                f"client.generate({ledger_id!r}, {month!r}, skipped_data_point_type_ids=[{type_id}], "
                f"drop_existing_readings=True),{rest} Never skip across months.")

    def _forget(self, task: Task[pd.DataFrame]) -> None:
        with self._sent.lock:
            for attempt in list(self._sent.attempts):
                if attempt.task is not None and attempt.task.id == task.id:
                    self._sent.forget(attempt)

    def _check_no_unknown_outcome(self, ledger_id: str, span: Period) -> None:
        unknown = [a for a in self._sent.overlapping(ledger_id, span) if a.unknown is not None]
        if unknown:
            first = unknown[0]
            raise PreconditionError(
                f"Not sent: {first.describe()} has an unknown outcome, so a generation may already be running "
                f"for it. Run client.reconcile({first.ledger_id!r}, {first.period.argument}) to see what the server "
                "has; it clears this once nothing is left to generate. If you are sure nothing is running, pass "
                "even_if_outcome_unknown=True.")

    def _check_not_running(self, ledger_id: str, span: Period) -> None:
        # A model that runs concurrently writes several ledgers: any of them overlapping counts.
        for attempt in self._sent.overlapping(ledger_id, span):
            task = attempt.task
            if task is not None and not task.refresh().done:
                raise PreconditionError(
                    f"Task {task.id} from this session is still generating an overlapping period on {ledger_id}; "
                    f"wait for it ({task.reattach}) or pass even_if_running=True.")

    def _nothing_to_generate(self, ledger_id: str, name: str, span: Period) -> str:
        """Why a preview counts 0: no whole month in the range, batches already there, or no data."""
        if not whole_months(span):
            return (f"Not sent: {span} holds no whole calendar month, and Mangrove makes monthly batches of the "
                    "months a range covers completely. Choose a range that covers at least one whole month, "
                    "e.g. '2025-02' or '2025Q1'.")
        existing = self.batches(ledger_id, span)
        if len(existing):
            months = sorted({f"{t:%Y-%m}" for t in existing["start_time"]})
            failed = existing[existing["state"] == "failed"]
            delete = (f" {len(failed)} of them failed: delete those with client.delete_batch(id) to generate "
                      "them again." if len(failed) else "")
            return (f"Nothing to generate on '{name}' for {span.label}: it already has {len(existing)} batch(es) "
                    f"({', '.join(months)}), and every partition with data has one.{delete}")
        return (f"Nothing to generate on '{name}' for {span.label}: the project has no data for this period "
                "(no events), so there is nothing to generate. Check the period, or add the events in Mangrove.")

    def _check_skip_is_one_month(self, ledger_id: str, span: Period, skipped: list[int]) -> None:
        months = whole_months(span)
        if len(months) <= 1:
            return
        labels = ", ".join(m.label for m in months)
        raise PreconditionError(
            f"Not sent: skipped_data_point_type_ids={skipped} would apply to every month of {span.label} "
            f"({labels}), so the readings those months do have would be dropped and their emissions not "
            "counted, overstating net removal. Generate without skipping first: a failed task names the month "
            "that lacks the reading. Then add the reading in Mangrove, or, as a last resort, skip it in that "
            "month alone; generate the other months without skipping. If the input really is missing in every "
            "month, pass skip_in_every_month=True.")

    def _check_skip_drops_nothing(self, ledger_id: str, span: Period, skipped: list[int]) -> None:
        """Refuse a skip of a data point type that has readings in the period (the API drops them all)."""
        try:
            found = self.readings(ledger_id, span, skipped)
        except ConfigurationError:
            raise PreconditionError(
                f"Not sent: a skip drops every reading of the skipped type in {span.label}, and without a project "
                "the readings cannot be checked. Pass project_id=... to connect() (or set MANGROVE_PROJECT_ID) so "
                "they are counted first, or pass drop_existing_readings=True if you know there are none.") from None
        if found.empty:
            return
        parts = [f"{len(group)} reading(s) of {group['data_point_type'].iloc[0]} "
                 f"({group['value'].sum():,.6g} {group['unit'].iloc[0] or ''}".rstrip() + ")"
                 for _type, group in found.groupby("data_point_type_id")]
        raise PreconditionError(
            f"Not sent: {span.label} has {'; '.join(parts)} that skipped_data_point_type_ids={skipped} would "
            "drop too: the API skips a data point type, not one missing reading, so those emissions would "
            "not be counted and net removal would be overstated. Add the missing reading in Mangrove (a "
            "documented estimate if need be) and generate without skipping. Only if you accept the "
            "overstatement, pass drop_existing_readings=True; the batch will list the skipped input.")

    def _check_manual_inputs(self, ledger_id: str, name: str, span: Period) -> None:
        inputs = self.required_inputs(ledger_id)
        manual = inputs[inputs["is_manual_select"].fillna(False)]
        if manual.empty:
            return
        listed = "; ".join(f"'{r.name}' (from {r.output_of_ledgers or 'another ledger'})" for r in manual.itertuples())
        raise PreconditionError(
            f"Ledger '{name}' ({ledger_id}) has manual-select input(s) {listed}: name the data points to use with "
            f"data_point_ids=... (the output_data_point_id column of client.candidates({ledger_id!r}, "
            f"{span.argument})), or give batch_amounts=[...].")

    def _made_by(self, status: TaskStatus, ledgers: list[str] | None, span: Period | None,
                 created_at: datetime | None = None) -> pd.DataFrame:
        """Batches created on the server between the task's start and finish, per ledger, that start in ``span``
        (a generation of another period that ran meanwhile made batches in that window too). Without a
        ``started_at`` (the contract allows null), the window opens when the server made the task (the 202's
        ``created_at``), so batches made earlier are not this task's."""
        ids = ledgers if ledgers is not None else list(self._ledger_names())
        since, until = status.started_at or status.created_at or created_at, status.finished_at
        parts = [self._created_between(lid, since, until) for lid in ids]
        frame = frames.concat_frames(parts, frames.BATCHES_SCHEMA)
        if span is not None:
            frame = frame[(frame["start_time"] >= span.start) & (frame["start_time"] <= span.end)]
        frame = frame.sort_values(["start_time", "id"], kind="stable")
        frame = frame.reset_index(drop=True)
        frame["ledger_name"] = frame["ledger_id"].map(self._names_or_nothing()).astype("string")
        frame.attrs = self._provenance(ledger=", ".join(ids), task=status.id)
        return frame

    def _created_between(self, ledger_id: str, since: datetime | None, until: datetime | None) -> pd.DataFrame:
        """A ledger's batches created between ``since`` and ``until``, read newest first only as far as ``since``."""

        def reached(items: list[Any]) -> bool:
            created = frames.batches_frame(items, ledger_id=ledger_id)["created_at"]
            return since is not None and len(created) > 0 and created.min() < since

        frame = frames.batches_frame(self.http.newest_ledger_batches(ledger_id, reached), ledger_id=ledger_id)
        keep = pd.Series(True, index=frame.index)
        if since is not None:
            keep &= frame["created_at"] >= since
        if until is not None:
            keep &= frame["created_at"] <= until
        return frame[keep]
