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
handles; it holds no state but the set of generations it started, so it can refuse to start the same one
twice.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import requests

from . import frames
from .client import HttpClient
from .errors import PreconditionError
from .periods import Period, PeriodLike, parse_period
from .settings import Secret, Settings
from .tasks import Task, TaskStatus


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

    @property
    def complete(self) -> bool:
        """True when the preview finds nothing left to generate."""
        return int(self.still_missing["count"].sum()) == 0

    def __repr__(self) -> str:
        left = ", ".join(f"{r.ledger_name}: {r.count}" for r in self.still_missing.itertuples()) or "nothing"
        return (f"<Reconciliation {self.ledger_id} {self.period.label}: {len(self.batches)} batch(es) on the "
                f"server; still to generate: {left}>")


class Client:
    """The Mangrove API for analysts: DataFrames in, tasks out. Build it with ``mangrove_nb.connect()``."""

    def __init__(self, settings: Settings, *, session: requests.Session | None = None) -> None:
        self.settings = settings
        self.http = HttpClient(settings, session=session)
        # Generations started here and not seen finished: (ledger, start, end) -> (task, ledgers it writes).
        self._started: dict[tuple[str, datetime, datetime], tuple[Task, frozenset[str]]] = {}
        self._lock = threading.Lock()

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

    def required_inputs(self, ledger_id: str) -> pd.DataFrame:
        """What the ledger's model needs; ``is_manual_select`` rows need ``data_point_ids`` to generate."""
        return frames.required_inputs_frame(self.http.required_inputs(ledger_id),
                                            attrs=self._provenance(ledger=ledger_id))

    def preview(self, ledger_id: str, period: PeriodLike, *, data_point_ids: Sequence[str] | None = None
                ) -> pd.DataFrame:
        """How many batches generating ``period`` would make, one row per ledger (models can run together)."""
        span = parse_period(period)
        body = _generation_body(span, data_point_ids=data_point_ids)
        return frames.preview_frame(self.http.generate_preview(ledger_id, body),
                                    attrs=self._provenance(ledger=ledger_id, period=span))

    def batches(self, ledger_id: str | Iterable[str] | None = None, period: PeriodLike | None = None, *,
                state: str | None = None) -> pd.DataFrame:
        """Batches of one ledger, several, or all (``None``), whose start lies in ``period`` (default: all).

        Sorted by start time. ``state`` filters on the server (``"complete"``, ``"failed"``...).
        """
        span = parse_period(period) if period is not None else None
        params = {"filter[state][eq]": state} if state else {}
        ids = [ledger_id] if isinstance(ledger_id, str) else list(ledger_id) if ledger_id is not None else [None]
        parts = []
        for one in ids:
            parts.append(self._batches_of(one, params))
        # One ledger's frame is already sorted; several are merged and sorted again.
        frame = parts[0] if len(parts) == 1 else _concat(parts, frames.BATCHES_SCHEMA).sort_values(
            ["start_time", "id"], kind="stable", ignore_index=True)
        if span is not None:
            keep = (frame["start_time"] >= span.start) & (frame["start_time"] <= span.end)
            frame = frame[keep].reset_index(drop=True)
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

    def events(self, project_id: int | str, period: PeriodLike | None = None) -> pd.DataFrame:
        """The project's events, one row per data point, optionally only those starting in ``period``."""
        span = parse_period(period) if period is not None else None
        frame = frames.events_frame(self.http.project_events(project_id), attrs=self._provenance(period=span))
        if span is not None:
            keep = (frame["start_time"] >= span.start) & (frame["start_time"] <= span.end)
            frame = frame[keep].reset_index(drop=True)
            frame.attrs = self._provenance(period=span)
        return frame

    def candidates(self, ledger_id: str, period: PeriodLike) -> pd.DataFrame:
        """Upstream batches a manual-select input of ``ledger_id`` can use in ``period``.

        Pass their ``output_data_point_id`` values as ``data_point_ids`` to ``generate``.
        """
        inputs = self.required_inputs(ledger_id)
        upstream = [lid for text in inputs.loc[inputs["is_manual_select"].fillna(False), "output_of_ledgers"]
                    for lid in _ids_in(text)]
        if not upstream:
            return frames.empty_frame(frames.BATCHES_SCHEMA, attrs=self._provenance(ledger=ledger_id))
        frame = self.batches(upstream, period, state="complete")
        return frame[frame["output_data_point_id"].notna()].reset_index(drop=True)

    # -- generating ----------------------------------------------------------------------------------------------

    def generate(
        self,
        ledger_id: str,
        period: PeriodLike,
        *,
        data_point_ids: Sequence[str] | None = None,
        batch_amounts: Sequence[Mapping[str, Any]] | None = None,
        skipped_data_point_type_ids: Sequence[int] | None = None,
        even_if_running: bool = False,
    ) -> Task:
        """Start generating ``period``'s batches on ``ledger_id``; returns the task (``.wait()`` for it).

        Checked before anything is sent: the ledger has a model; its manual-select inputs are named
        (``data_point_ids`` or ``batch_amounts``); the preview finds something to generate; and no
        generation this client started for the same ledger and an overlapping period is still running
        (``even_if_running=True`` skips that last check). The trigger is sent once: if its answer is lost,
        ``GenerationOutcomeUnknownError`` says so, and ``reconcile()`` shows what the server has.
        """
        span = parse_period(period)
        ledger = self.http.ledger(ledger_id)
        name = ledger.get("name") or ledger_id
        if not ledger.get("latest_model"):
            raise PreconditionError(f"Ledger '{name}' ({ledger_id}) has no linked model (latest_model is null), so "
                                    "batches cannot be generated on it; link a model to it in Mangrove first.")
        if not data_point_ids and not batch_amounts:
            self._check_manual_inputs(ledger_id, name, span)
        if not even_if_running:
            self._check_not_running(ledger_id, span)
        body = _generation_body(span, data_point_ids=data_point_ids, batch_amounts=batch_amounts,
                                skipped=skipped_data_point_type_ids)
        preview_body = {k: v for k, v in body.items() if k in ("start_time", "end_time", "data_point_ids")}
        preview = frames.preview_frame(self.http.generate_preview(ledger_id, preview_body))
        if int(preview["count"].sum()) == 0:
            raise PreconditionError(f"Nothing to generate on '{name}' for {span}: the preview counts 0 batches "
                                    "(every partition with data already has a batch). Delete batches to "
                                    "generate them again.")
        accepted = self.http.create_batch_generation(ledger_id, body)
        ledgers = [lid for lid in preview.loc[preview["count"] > 0, "ledger_id"].tolist() if lid]
        task = self._task(accepted.get("id"), ledgers, label=f"{name} {span.label}")
        task.status = TaskStatus.from_json({**accepted, "state": accepted.get("state", "pending")},
                                           where=f"POST /ledgers/{ledger_id}/batch_generations")
        with self._lock:
            self._started[(ledger_id, span.start, span.end)] = (task, frozenset([ledger_id, *ledgers]))
        return task

    def task(self, task_id: int | str, *, ledgers: Sequence[str] | None = None) -> Task:
        """Re-attach to a task by id (after a kernel restart, or an interrupted ``wait()``).

        Its ``wait()`` returns the batches created on ``ledgers`` (default: every ledger) between the
        task's ``started_at`` and ``finished_at``, as the server's timestamps say.
        """
        return self._task(task_id, list(ledgers) if ledgers is not None else None)

    def reconcile(self, ledger_id: str, period: PeriodLike) -> Reconciliation:
        """After ``GenerationOutcomeUnknownError``: the batches the server has and what is still missing."""
        span = parse_period(period)
        # The preview first: batches made meanwhile then show up in the listing read after it, so a
        # reconciliation that says "nothing still missing" always lists what was made.
        missing = self.preview(ledger_id, span)
        return Reconciliation(ledger_id, span, self.batches(ledger_id, span), missing)

    # -- helpers -------------------------------------------------------------------------------------------------

    def _task(self, task_id: Any, ledgers: list[str] | None, *, label: str | None = None) -> Task:
        if task_id is None:
            raise PreconditionError("The server accepted the generation but sent no task id; list the ledger's "
                                    "batches to follow it.")

        def collect(status: TaskStatus) -> pd.DataFrame:
            return self._made_by(status, ledgers)

        return Task(self.http, task_id, collect=collect, label=label, on_final=self._forget)

    def _forget(self, task: Task) -> None:
        with self._lock:
            for key, (started, _ledgers) in list(self._started.items()):
                if started is task:
                    del self._started[key]

    def _check_not_running(self, ledger_id: str, span: Period) -> None:
        # A model that runs concurrently writes several ledgers: any of them overlapping counts.
        with self._lock:
            clashes = [t for (_lid, start, end), (t, writes) in self._started.items()
                       if ledger_id in writes and start <= span.end and span.start <= end]
        for task in clashes:
            if not task.refresh().done:
                raise PreconditionError(
                    f"Task {task.id} from this client is still generating an overlapping period on {ledger_id}; "
                    f"wait for it (client.task({task.id!r}).wait()) or pass even_if_running=True.")

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
        ids = ledgers if ledgers is not None else self.ledgers()["id"].dropna().tolist()
        since, until = status.started_at, status.finished_at
        parts = [self._created_between(lid, since, until) for lid in ids]
        frame = _concat(parts, frames.BATCHES_SCHEMA).sort_values(["start_time", "id"], kind="stable")
        frame = frame.reset_index(drop=True)
        frame.attrs = self._provenance(ledger=", ".join(ids), task=status.id)
        return frame

    def _created_between(self, ledger_id: str, since: datetime | None, until: datetime | None) -> pd.DataFrame:
        """Newest-first pages of a ledger's batches, read only as far back as ``since``."""
        path = f"/ledgers/{ledger_id}/batches"
        params = {"sort": "-created_at", "page_size": self.settings.page_size}
        deadline = self.http._clock() + self.settings.call_deadline
        items: list[Any] = []
        number: int | None = 1
        while number is not None:
            page = self.http.page(path, params, number, deadline=deadline)
            batch = frames.batches_frame(page.items, ledger_id=ledger_id)
            items.append(batch)
            oldest = batch["created_at"].min() if len(batch) else None
            if page.info is None or (since is not None and oldest is not None and oldest < since):
                break
            following = page.info.get("next_page")
            number = following if isinstance(following, int) and following > number else None
        frame = _concat(items, frames.BATCHES_SCHEMA)
        keep = pd.Series(True, index=frame.index)
        if since is not None:
            keep &= frame["created_at"] >= since
        if until is not None:
            keep &= frame["created_at"] <= until
        return frame[keep].drop_duplicates("id")

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


def _generation_body(span: Period, *, data_point_ids: Sequence[str] | None = None,
                     batch_amounts: Sequence[Mapping[str, Any]] | None = None,
                     skipped: Sequence[int] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = dict(span.api_params())
    if data_point_ids:
        body["data_point_ids"] = [str(i) for i in data_point_ids]
    if batch_amounts:
        body["batch_amounts"] = [dict(a) for a in batch_amounts]
    if skipped:
        body["skipped_data_point_type_ids"] = [int(i) for i in skipped]
    return body


def _concat(parts: list[pd.DataFrame], schema: Mapping[str, str]) -> pd.DataFrame:
    parts = [p for p in parts if len(p)]
    if not parts:
        return frames.empty_frame(schema)
    frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0].copy()
    return frame.astype(dict(schema))


def _ids_in(text: Any) -> list[str]:
    """Ledger ids in an ``output_of_ledgers`` cell (``"Biochar Produced (lgr_x), …"``)."""
    if not isinstance(text, str):
        return []
    return [part.rsplit("(", 1)[1].rstrip(")").strip() for part in text.split(", ") if "(" in part]
