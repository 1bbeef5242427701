"""The analyst's API: the calls typed in notebook cells, returning typed DataFrames.

    import mangrove_nb as mnb
    client = mnb.connect()                        # token/URL from arguments, else the environment
    client.ledgers()                              # DataFrame
    client.required_inputs("lgr_...")             # DataFrame
    client.preview("lgr_...", "2025Q1")           # DataFrame: one row per ledger that would get batches
    task = client.generate("lgr_...", "2025Q1")   # starts the asynchronous generation
    new = task.wait()                             # progress while waiting; the batches this task made
    client.batches("lgr_...", "2025Q1")           # DataFrame; period optional
    client.task(456).wait()                       # re-attach by id, e.g. after a kernel restart

``Client`` composes the HTTP layer (``client.HttpClient``), the frames (``frames``), periods and task
handles. Its only state is what this Python process has sent to the API (``Sent``, one per base URL, shared
by every client of that URL, so a re-run ``connect()`` cell does not forget): generations started and not
seen finished, and generations whose outcome is unknown. ``generate()`` checks, records and sends under that
record's lock, so two threads, a double click or a re-run cell never send the trigger twice.
"""

from __future__ import annotations

import difflib
import html
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import requests

from . import frames
from ._arguments import (
    BATCH_STATES,
    FRIENDLY_LEDGER_ID,
    MONTH_IN_TEXT,
    batch_ids,
    check_ledger_id,
    generation_body,
    ledger_ids,
    match_ledger,
    sequence_of,
    short,
    whole_months,
)
from ._sent import Attempt, Sent
from .client import HttpClient
from .errors import (
    ConfigurationError,
    GenerationOutcomeUnknownError,
    MalformedResponseError,
    MangroveError,
    PreconditionError,
    ValidationError,
    secret_safe_logger,
)
from .periods import Period, PeriodLike, parse_period
from .registry import ReportsMixin
from .settings import Secret, Settings
from .tasks import Task, TaskStatus

log = secret_safe_logger("mangrove_nb")


def connect(token: str | None = None, base_url: str | None = None, *, session: requests.Session | None = None,
            **options: Any) -> Client:
    """A client for the Mangrove API.

    ``token``: argument, else ``MANGROVE_API_TOKEN``, else a hidden prompt in an interactive session.
    ``base_url``: argument, else ``MANGROVE_API_URL``, else ``https://app.gomangrove.com/api/v1``; plain
    http is refused except on loopback (the emulator) or with ``allow_http=True``. Other options
    (``read_timeout=60``, ``max_retries=2``, ``show_progress=False``...) are the fields of
    ``mangrove_nb.settings.Settings``.
    """
    # Wrapped and forgotten before anything can raise: a traceback shown with its locals must not hold it.
    secret = Secret(token) if isinstance(token, str) else token
    del token
    return Client(Settings.resolve(secret, base_url, **options), session=session)


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
        if self.complete:
            return "Nothing is left to generate: every partition with data has a batch."
        if not self.unknown_outcomes:
            return "Generate what is still missing with client.generate(...)."
        return ("An earlier request for this period has an unknown outcome and may still be generating: "
                "reconcile again in a minute. Generate the rest only when you are sure nothing is running "
                "(Mangrove's app lists running tasks), with client.generate(..., even_if_outcome_unknown=True).")

    def __repr__(self) -> str:
        left = ", ".join(f"{r.ledger_name}: {r.count}" for r in self.still_missing.itertuples()) or "nothing"
        return (f"<Reconciliation {self.ledger_id} {self.period.label}: {len(self.batches)} batch(es) on the "
                f"server; still to generate: {left}. {self.advice()}>")


class Client(ReportsMixin):
    """The Mangrove API for analysts: DataFrames in, tasks out. Build it with ``mangrove_nb.connect()``."""

    def __init__(self, settings: Settings, *, session: requests.Session | None = None) -> None:
        self.settings = settings
        self.http = HttpClient(settings, session=session)
        self._sent = Sent.to(settings.base_url, settings.state_dir)
        self._names: dict[str, str] | None = None
        self._names_lock = threading.Lock()

    # -- lifecycle and display ---------------------------------------------------------------------------------

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<mangrove_nb.Client {self.settings.base_url} token={self.settings.token.masked()}>"

    def _repr_html_(self) -> str:
        return (f"<code>mangrove_nb.Client</code> for <code>{html.escape(self.settings.base_url)}</code> "
                f"(token <code>{html.escape(self.settings.token.masked())}</code>)")

    # -- reading -------------------------------------------------------------------------------------------------

    def ledgers(self) -> pd.DataFrame:
        """Every ledger: id, name, unit, partition type, cadence, model, has_model, timestamps."""
        return frames.ledgers_frame(self.http.ledgers(), attrs=self._provenance())

    def required_inputs(self, ledger: str) -> pd.DataFrame:
        """What the ledger's model needs; ``is_manual_select`` rows need ``data_point_ids`` to generate.

        ``ledger`` (here and in every call) is a ledger id or a ledger's name."""
        ledger_id = self.ledger_id(ledger)
        return frames.required_inputs_frame(self.http.required_inputs(ledger_id),
                                            attrs=self._provenance(ledger=ledger_id))

    def preview(self, ledger: str, period: PeriodLike, *, data_point_ids: Sequence[str] | None = None
                ) -> pd.DataFrame:
        """How many batches generating ``period`` would make, one row per ledger (models can run together)."""
        ledger_id = self.ledger_id(ledger)
        span = parse_period(period)
        body = generation_body(span, data_point_ids=data_point_ids)
        return frames.preview_frame(self.http.generate_preview(ledger_id, body),
                                    attrs=self._provenance(ledger=ledger_id, period=span))

    def batches(self, ledger: str | Iterable[str] | None = None, period: PeriodLike | None = None, *,
                state: str | None = None, details: bool = False) -> pd.DataFrame:
        """Batches of one ledger, several, or all (``None``), whose start lies in ``period`` (default: all).

        Sorted by start time, with ``ledger_id`` and ``ledger_name`` on every row. ``state`` filters on the
        server (``"complete"``, ``"processing"``, ``"failed"``). ``details=True`` reads each batch's detail
        (one request per batch, several at once) and adds ``skipped_inputs`` (the inputs its generation
        skipped, counted as zero: NA when none), ``skipped_input_ids`` and ``upstream_batches`` (the upstream
        batches whose output it read).
        """
        span = parse_period(period) if period is not None else None
        if state is not None and state not in BATCH_STATES:
            raise ValidationError(f"state must be one of {', '.join(BATCH_STATES)} (or None for every state), "
                                  f"not {short(state)}.", argument="state")
        params = {"filter[state][eq]": state} if state else {}
        ids: list[str | None] = [self.ledger_id(one) if one is not None else None for one in ledger_ids(ledger)]
        parts = []
        for one in ids:
            parts.append(self._batches_of(one, params))
        # One ledger's frame is already sorted; several are merged and sorted again.
        frame = parts[0] if len(parts) == 1 else _concat(parts, frames.BATCHES_SCHEMA).sort_values(
            ["start_time", "id"], kind="stable", ignore_index=True)
        if span is not None:
            keep = (frame["start_time"] >= span.start) & (frame["start_time"] <= span.end)
            frame = frame[keep].reset_index(drop=True)
        if ids == [None] and frame["ledger_id"].isna().any():
            # GET /batches did not say which ledger each batch is on: read them ledger by ledger instead.
            # (When the ledgers cannot be listed, the batches come as GET /batches gave them.)
            every = list(self._names_or_nothing())
            if every:
                return self.batches(every, period, state=state, details=details)
        frame["ledger_name"] = frame["ledger_id"].map(self._names_or_nothing()).astype("string")
        if details:
            frame = self._with_details(frame)
        frame.attrs = self._provenance(ledger=", ".join(i for i in ids if i) or "all", period=span)
        return frame

    def _batches_of(self, ledger_id: str | None, params: Mapping[str, Any]) -> pd.DataFrame:
        """One ledger's batches (every ledger's for None), each page turned into columns as it arrives."""
        pages = self.http.batch_pages(ledger_id, frames.batch_columns, **params)
        frame = frames.batches_frame_of_columns(pages, ledger_id=ledger_id) if pages is not None else None
        if frame is not None:
            return frame
        # Something unusual on some page: read the items again and let the careful reader convert or name it.
        items = self.http.ledger_batches(ledger_id, **params) if ledger_id is not None else self.http.batches(**params)
        return frames.batches_frame(items, ledger_id=ledger_id)

    def events(self, project_id: int | str | None = None, period: PeriodLike | None = None) -> pd.DataFrame:
        """The project's events, one row per data point, optionally only those starting in ``period``.

        ``project_id`` defaults to the session's (``MANGROVE_PROJECT_ID`` or ``connect(project_id=...)``).
        """
        span = parse_period(period) if period is not None else None
        project = self._project_id(project_id)
        frame = frames.events_frame(self.http.project_events(project), attrs=self._provenance(period=span))
        if span is not None:
            keep = (frame["start_time"] >= span.start) & (frame["start_time"] <= span.end)
            frame = frame[keep].reset_index(drop=True)
            frame.attrs = self._provenance(period=span)
        return frame

    def candidates(self, ledger: str, period: PeriodLike) -> pd.DataFrame:
        """Upstream batches a manual-select input of ``ledger`` can use in ``period``: complete, with balance left.

        Pass their ``output_data_point_id`` values as ``data_point_ids`` to ``generate``.
        """
        ledger_id = self.ledger_id(ledger)
        upstream = frames.upstream_ledger_ids(self.http.required_inputs(ledger_id))
        if not upstream:
            return frames.empty_frame(frames.BATCHES_SCHEMA, attrs=self._provenance(ledger=ledger_id))
        frame = self.batches(upstream, period, state="complete")
        usable = frame["output_data_point_id"].notna() & ~(frame["ledger_balance"].fillna(1.0) <= 0)
        return frame[usable].reset_index(drop=True)

    def calculations(self, batches: pd.DataFrame | Iterable[str]) -> pd.DataFrame:
        """The LCA breakdown of each batch: one row per batch and calculation (``model_run.calculations``).

        ``batches`` is a frame from ``client.batches()`` or a list of batch ids. For a net-removal batch the
        rows are what makes up the net figure (removal minus each emission); a skipped input's row says it
        counted as zero in its ``note``.
        """
        ids, ledger_of = batch_ids(batches)
        details = self._details(ids)
        rows = [row for n, detail in enumerate(details) for row in frames.calculation_rows(detail, index=n)]
        frame = frames.calculations_frame(rows, attrs=self._provenance())
        missing = frame["ledger_id"].isna()
        frame.loc[missing, "ledger_id"] = frame.loc[missing, "batch_id"].map(ledger_of).astype("string")
        return frame

    def delete_batch(self, batch_id: str, *, even_if_complete: bool = False) -> None:
        """Delete one failed batch (``DELETE /batches/{id}``), so its period can be generated again.

        Irreversible on the server. A batch that is not ``failed`` (a complete batch may already be on a report
        or feed a downstream batch) is refused unless ``even_if_complete=True``; forms ask for a confirmation.
        """
        if not isinstance(batch_id, str) or not batch_id.strip():
            raise ValidationError(f"batch_id must be a batch id string such as 'bat_...' (the id column of "
                                  f"client.batches()), not {short(batch_id)}.", argument="batch_id")
        state = self.http.batch(batch_id).get("state")
        if state != "failed" and not even_if_complete:
            raise PreconditionError(f"Not deleted: batch {batch_id} is {state!r}, not 'failed'. Deleting a complete "
                                    "batch removes counted output (and anything allocated from it); pass "
                                    "even_if_complete=True if that is really meant.")
        self.http.delete_batch(batch_id)

    def project(self, project_id: int | str | None = None) -> Project:
        """The project (``GET /projects/{id}``); ``project_id`` defaults to the session's (``MANGROVE_PROJECT_ID``
        or ``connect(project_id=...)``)."""
        body = self.http.project(self._project_id(project_id))
        if not isinstance(body, Mapping) or body.get("id") is None:
            raise MalformedResponseError("GET /projects/{id} did not answer with a project object.",
                                         url="/projects/{id}")
        return Project(id=str(body["id"]), name=str(body.get("name") or body["id"]),
                       description=body.get("description") if isinstance(body.get("description"), str) else None,
                       raw=body)

    def ledger_id(self, ledger: str) -> str:
        """The id of ``ledger``, given as an id or as a name (exact, then case-insensitive).

        An unknown name raises ``ValidationError`` listing the closest names.
        """
        check_ledger_id(ledger)
        if FRIENDLY_LEDGER_ID.fullmatch(ledger):
            return ledger  # the documented id form: the server says whether it exists (404)
        names = self._ledger_names()
        found = match_ledger(ledger, names)
        if found is None:
            names = self._ledger_names(refresh=True)
            found = match_ledger(ledger, names)
        if found is None:
            close = difflib.get_close_matches(ledger, list(names.values()), n=3, cutoff=0.5)
            hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise ValidationError(f"No ledger is called or has the id {ledger!r}.{hint} client.ledgers() lists "
                                  f"them: {', '.join(repr(n) for n in sorted(names.values())[:8])}"
                                  f"{'...' if len(names) > 8 else ''}.", argument="ledger")
        return found

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
        ledger and an overlapping period is still running (``even_if_running=True`` skips this) or has an
        unknown outcome (run ``client.reconcile()``; ``even_if_outcome_unknown=True`` skips this); the
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
        settled = False
        try:
            accepted = self.http.create_batch_generation(ledger_id, body)
            task_id = accepted.get("id")
            if isinstance(task_id, bool) or not isinstance(task_id, int | str) or task_id == "":
                raise GenerationOutcomeUnknownError(
                    ledger_id=ledger_id, start=span.start, end=span.end,
                    detail="the server accepted the request but its answer names no task id")
            task = self._task(task_id, ledgers, label=label,
                              advise=lambda status: self._missing_input_advice(ledger_id, span, status))
            try:
                task.status = TaskStatus.from_json({**accepted, "state": accepted.get("state", "pending")},
                                                   where=f"POST /ledgers/{ledger_id}/batch_generations")
            except MalformedResponseError:
                task.status = None  # accepted all the same; the first poll reads the state
            attempt.task = task
            settled = True
            return task
        except GenerationOutcomeUnknownError as exc:
            attempt.unknown = exc
            settled = True
            self._sent.save()
            raise
        except MangroveError:
            # A definite answer (4xx, 500/503) or a request that never left: nothing was started.
            self._sent.forget(attempt)
            settled = True
            raise
        finally:
            if not settled:  # interrupted between the answer and the record: assume the worst
                attempt.unknown = GenerationOutcomeUnknownError(
                    ledger_id=ledger_id, start=span.start, end=span.end,
                    detail="interrupted while the answer was being recorded")
                self._sent.save()

    def task(self, task_id: int | str, *, ledgers: Sequence[str] | None = None) -> Task[pd.DataFrame]:
        """Re-attach to a task by id (after a kernel restart, or an interrupted ``wait()``).

        Its ``wait()`` returns the batches created on ``ledgers`` (default: every ledger) between the
        task's ``started_at`` and ``finished_at``, as the server's timestamps say.
        """
        return self._task(task_id, list(ledgers) if ledgers is not None else None)

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

    # -- helpers -------------------------------------------------------------------------------------------------

    def _task(self, task_id: Any, ledgers: list[str] | None, *, label: str | None = None,
              advise: Callable[[TaskStatus], str | None] | None = None) -> Task[pd.DataFrame]:
        if task_id is None:
            raise PreconditionError("The server accepted the generation but sent no task id; list the ledger's "
                                    "batches to follow it.")

        def collect(status: TaskStatus) -> pd.DataFrame:
            return self._made_by(status, ledgers)

        return Task(self.http, task_id, collect=collect, label=label, on_final=self._forget, advise=advise)

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
        rest = (f" then the rest of {span.label} without skipping: client.generate({ledger_id!r}, {span.label!r})."
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
                f"for it. Run client.reconcile({first.ledger_id!r}, {first.period.label!r}) to see what the server "
                "has; it clears this once nothing is left to generate. If you are sure nothing is running, pass "
                "even_if_outcome_unknown=True.")

    def _check_not_running(self, ledger_id: str, span: Period) -> None:
        # A model that runs concurrently writes several ledgers: any of them overlapping counts.
        for attempt in self._sent.overlapping(ledger_id, span):
            task = attempt.task
            if task is not None and not task.refresh().done:
                raise PreconditionError(
                    f"Task {task.id} from this session is still generating an overlapping period on {ledger_id}; "
                    f"wait for it (client.task({task.id!r}).wait()) or pass even_if_running=True.")

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

    def _ledger_names(self, *, refresh: bool = False) -> dict[str, str]:
        """Ledger id -> name, read once per client (and again when a name or id is not found)."""
        with self._names_lock:
            if self._names is None or refresh:
                table = self.ledgers()
                self._names = {str(i): (str(n) if isinstance(n, str) else str(i))
                               for i, n in zip(table["id"], table["name"], strict=True)}
            return dict(self._names)

    def _names_or_nothing(self) -> dict[str, str]:
        """Ledger names for display; when they cannot be read, none (the batches themselves still come)."""
        try:
            return self._ledger_names()
        except MangroveError as exc:
            log.warning("Could not read the ledgers' names (%s); ledger_name is left empty.", type(exc).__name__)
            return {}

    def _project_id(self, project_id: int | str | None) -> str:
        chosen = project_id if project_id is not None else self.settings.project_id
        if chosen is None:
            raise ConfigurationError("No project given: pass project_id=..., or set MANGROVE_PROJECT_ID (the "
                                     "emulator prints its project id when it starts), or "
                                     "connect(project_id=...).")
        if isinstance(chosen, bool) or not isinstance(chosen, int | str) or not str(chosen).strip():
            raise ValidationError(f"project_id must be a project id, not {short(chosen)}.", argument="project_id")
        return str(chosen).strip()

    def _details(self, ids: list[str]) -> list[Any]:
        """``GET /batches/{id}`` for each id, several at once, in the order of ``ids``."""
        if not ids:
            return []
        workers = max(1, min(self.settings.max_concurrent_pages, len(ids)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mangrove-detail") as pool:
            return list(pool.map(self.http.batch, ids))

    def _with_details(self, frame: pd.DataFrame) -> pd.DataFrame:
        details = self._details(frame["id"].tolist())
        rows = [frames.detail_row(detail, index=n) for n, detail in enumerate(details)]
        upstream_points = {p for row in rows for p in row["upstream_points"]}
        batch_of_point: dict[str, str] = {}
        if upstream_points:
            others = self.batches(None)
            batch_of_point = {str(p): str(b) for p, b in zip(others["output_data_point_id"], others["id"], strict=True)
                              if isinstance(p, str)}
        out = frame.copy()
        out["skipped_inputs"] = pd.Series([r["skipped_inputs"] for r in rows], index=out.index, dtype="string")
        out["skipped_input_ids"] = pd.Series([r["skipped_input_ids"] for r in rows], index=out.index,
                                             dtype="string")
        out["upstream_batches"] = pd.Series(
            [", ".join(batch_of_point.get(p, p) for p in r["upstream_points"]) or None for r in rows],
            index=out.index, dtype="string")
        return out

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

    def readings(self, ledger: str, period: PeriodLike, data_point_type_ids: Iterable[int]) -> pd.DataFrame:
        """The readings a ``skipped_data_point_type_ids`` skip of these types would drop in ``period``: the
        project's data points of those types (``events()`` rows, with ``data_point_type_id``).

        Needs the session's project (``MANGROVE_PROJECT_ID`` or ``connect(project_id=...)``)."""
        ledger_id = self.ledger_id(ledger)
        span = parse_period(period)
        wanted = [int(t) for t in sequence_of(data_point_type_ids, "data_point_type_ids")]
        if self.settings.project_id is None:
            raise ConfigurationError(
                f"A skip drops every reading of the skipped type in {span.label}, and without a project the "
                "readings cannot be read. Pass project_id=... to connect() or set MANGROVE_PROJECT_ID.")
        inputs = self.required_inputs(ledger_id)
        slugs = {str(r.slug): int(r.id) for r in inputs.itertuples() if isinstance(r.slug, str) and r.id in wanted}
        events = self.events(period=span)
        found = events[events["data_point_slug"].isin(list(slugs))].reset_index(drop=True)
        found.insert(0, "data_point_type_id", found["data_point_slug"].map(slugs).astype("Int64"))
        found.attrs = self._provenance(ledger=ledger_id, period=span)
        return found

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
            f"{span.label!r})), or give batch_amounts=[...].")

    def _made_by(self, status: TaskStatus, ledgers: list[str] | None) -> pd.DataFrame:
        """Batches created on the server between the task's start and finish, newest first, per ledger."""
        ids = ledgers if ledgers is not None else list(self._ledger_names())
        since, until = status.started_at, status.finished_at
        parts = [self._created_between(lid, since, until) for lid in ids]
        frame = _concat(parts, frames.BATCHES_SCHEMA).sort_values(["start_time", "id"], kind="stable")
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

    def _provenance(self, *, ledger: str | None = None, period: Period | None = None,
                    task: Any = None) -> dict[str, Any]:
        attrs: dict[str, Any] = {"base_url": self.settings.base_url,
                                 "fetched_at": datetime.now(UTC).isoformat(timespec="seconds")}
        if ledger is not None:
            attrs["ledger"] = ledger
        if period is not None:
            attrs.update(period=period.label, period_start=period.start.isoformat(), period_end=period.end.isoformat())
        if task is not None:
            attrs["task"] = task
        return attrs


@dataclass(frozen=True)
class Project:
    """A Mangrove project (``GET /projects/{id}``)."""

    id: str
    name: str
    description: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


def _concat(parts: list[pd.DataFrame], schema: Mapping[str, str]) -> pd.DataFrame:
    parts = [p for p in parts if len(p)]
    if not parts:
        return frames.empty_frame(schema)
    frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0].copy()
    return frame.astype(dict(schema))
