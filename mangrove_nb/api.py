"""The analyst's API: the calls typed in notebook cells, returning typed DataFrames.

    import mangrove_nb as mnb
    client = mnb.connect()                        # token/URL from arguments, else the environment
    client.ledgers()                              # DataFrame
    client.required_inputs("lgr_...")             # DataFrame
    client.preview("lgr_...", "2025Q1")           # DataFrame: one row per ledger that would get batches
    task = client.generate("lgr_...", "2025Q1")   # starts the asynchronous generation
    new = task.wait()                             # progress while waiting; the batches this task made
    client.batches("lgr_...", "2025Q1")           # DataFrame; period optional
    client.task(456, ledgers=["lgr_..."], period="2025Q1").wait()  # re-attach (task.reattach gives it)

``Client`` composes the HTTP layer (``client.HttpClient``), the frames (``frames``), periods and task
handles; it reads here, generates through ``_generation.GenerationMixin`` and fills and submits registry
reports through ``registry.ReportsMixin`` (it inherits both). Its only state is what this Python process
has sent to the API (``Sent``, one per base URL, shared by every client of that URL, so a re-run
``connect()`` cell does not forget): generations started and not seen finished, generations and report
submissions whose outcome is unknown. ``generate()`` checks, records and sends under that record's lock, so
two threads, a double click or a re-run cell never send the trigger twice.
"""

from __future__ import annotations

import difflib
import html
import threading
from collections.abc import Iterable, Mapping, Sequence
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
    batch_ids,
    check_ledger_id,
    generation_body,
    ledger_ids,
    match_ledger,
    sequence_of,
    short,
)
from ._generation import GenerationMixin
from ._generation import Reconciliation as Reconciliation  # re-exported: the forms and users import it here
from ._sent import Sent
from .client import HttpClient
from .errors import (
    ConfigurationError,
    MalformedResponseError,
    MangroveError,
    PreconditionError,
    ValidationError,
    secret_safe_logger,
)
from .periods import Period, PeriodLike, parse_period
from .registry import ReportsMixin
from .settings import Secret, Settings

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


class Client(GenerationMixin, ReportsMixin):
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
        frame = parts[0] if len(parts) == 1 else frames.concat_frames(parts, frames.BATCHES_SCHEMA).sort_values(
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

    # -- helpers -------------------------------------------------------------------------------------------------

    def _ledger_names(self, *, refresh: bool = False) -> dict[str, str]:
        """Ledger id -> name, read once per client (and again when a name or id is not found)."""
        with self._names_lock:
            if self._names is None or refresh:
                self._names = frames.ledger_names(self.ledgers())
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
