"""The registry report, read: ``Report`` and its frames, from the API's report objects, and the reads that
complete one (its inclusions from the batches that name it, the ledgers a project's reports hold, batch details).

``_report_of`` reads one report object field by field (a missing optional field is None; a field of the wrong
type is ``MalformedResponseError`` naming it and the request), ``_report_row`` makes one ``REPORTS_SCHEMA`` row of a
listed report. The reads take the client (``ReportsMixin``): its ``http`` and ``settings``.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import pandas as pd

from .. import frames
from .._arguments import short
from ..errors import MalformedResponseError, MangroveError, NotFoundError, ValidationError
from ..frames._schema import _FLOAT, _INT, _TEXT, _TIME
from ._display import _amount_text, _escape, _html_table, _plain, _time_text
from ._values import _frame, _number, _sums, _text, _timestamp

if TYPE_CHECKING:
    from . import ReportsMixin

#: The statuses of mangrove-api.md: ``draft`` → ``submitting`` → ``complete`` (a refused one goes back to draft).
REPORT_STATUSES = ("draft", "submitting", "complete")

#: ``client.reports()``: one row per report.
REPORTS_SCHEMA: Mapping[str, str] = MappingProxyType({
    "id": _TEXT,
    "name": _TEXT,
    "report_type": _TEXT,
    "status": _TEXT,
    "project_id": _TEXT,  # an opaque id, as every id (the API sends an integer)
    # How many batches the report lists; NA when it lists none but has an allocation (the server does not say).
    "batch_count": _INT,
    "allocated_amount": _FLOAT,  # the allocation of a submitted report; NA before
    "allocated_unit": _TEXT,
    "created_at": _TIME,
    "updated_at": _TIME,
})

#: ``report.inclusions``: one row per batch on the report; ``amount`` is the batch's balance when it was included.
INCLUSIONS_SCHEMA: Mapping[str, str] = MappingProxyType({
    "batch_id": _TEXT,
    "tracking_id": _TEXT,
    "ledger_id": _TEXT,
    "amount": _FLOAT,
    "unit": _TEXT,
})


@dataclass(frozen=True)
class Report:
    """A registry report (``GET /reports/{id}``). Fields the server left out are None.

    ``inclusions`` (``INCLUSIONS_SCHEMA``) lists its batches; ``inclusions_source`` says where they came from:
    ``"report"`` (the report's ``inclusions``), ``"batches"`` (the report listed none, and these batches list it
    in their ``report_allocations``), ``"request"`` (the batch ids ``fill_report`` just sent, which the server
    accepted without listing them) or ``"none"`` (the report lists none and no batch names it: it is empty, or
    the server does not say). ``allocated_amount`` / ``allocated_unit`` are its allocation once submitted.
    """

    id: str
    name: str | None
    report_type: str | None
    status: str | None
    project_id: str | None
    created_at: pd.Timestamp | None
    updated_at: pd.Timestamp | None
    allocated_amount: float | None
    allocated_unit: str | None
    allocated_at: pd.Timestamp | None
    inclusions: pd.DataFrame = field(repr=False, compare=False)
    inclusions_source: str = "report"
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def batch_ids(self) -> tuple[str, ...]:
        """The ids of the batches on the report, in the order listed."""
        return tuple(str(i) for i in self.inclusions["batch_id"].dropna())

    @property
    def is_draft(self) -> bool:
        """True when the report says it is a draft (the only status that can be filled or submitted)."""
        return self.status == "draft"

    def totals(self) -> pd.DataFrame:
        """The inclusions summed per ledger and unit (``ledger_id``, ``unit``, ``batches``, ``amount``)."""
        return _sums(self.inclusions, ["ledger_id", "unit"])

    def __repr__(self) -> str:
        allocated = (f", allocated {_amount_text(self.allocated_amount, self.allocated_unit)}"
                     if self.allocated_amount is not None else "")
        return (f"<Report {_plain(self.id)} {_plain(self.name or '')!r} status={_plain(self.status or '?')}: "
                f"{len(self.inclusions)} batch(es) ({self.inclusions_source}){allocated}>")

    def _repr_html_(self) -> str:
        e = _escape
        rows = [("status", self.status), ("type", self.report_type), ("project", self.project_id),
                ("created", _time_text(self.created_at)), ("updated", _time_text(self.updated_at)),
                ("allocated", _amount_text(self.allocated_amount, self.allocated_unit)
                 if self.allocated_amount is not None else None)]
        facts = "".join(f"<tr><th>{e(k)}</th><td>{e(v) if v is not None else '—'}</td></tr>" for k, v in rows)
        source = _SOURCE_SENTENCES[self.inclusions_source]
        return (f"<div class='mangrove-report'><p><strong>Report</strong> <code>{e(self.id)}</code> "
                f"{e(self.name or '')}</p><table>{facts}</table><p>{len(self.inclusions)} batch(es); "
                f"{e(source)}</p>{_html_table(self.inclusions)}</div>")


_SOURCE_SENTENCES = {
    "report": "as the report lists them.",
    "batches": "the report lists none: read from the batches that name it in their report_allocations.",
    "request": "as fill_report sent them (the server accepted them without listing them).",
    "none": "the report lists none and no batch names it (it is empty, or the server does not say).",
}

# --- reading the API's report objects ----------------------------------------------------------------------


class _Fields:
    """Typed access to one report object; every failure names the field (and the item's index in a list)."""

    def __init__(self, data: Mapping[str, Any], where: str, prefix: str = "") -> None:
        self.data, self.where, self.prefix = data, where, prefix

    def malformed(self, key: str, problem: str) -> MalformedResponseError:
        return MalformedResponseError(
            f"{self.where}: field '{self.prefix}{key}' {problem}, so the answer does not match the documented "
            "Mangrove API. Check the base URL; if it is right, report this to Mangrove support.",
            field=f"{self.prefix}{key}")

    def text(self, key: str) -> str | None:
        value = self.data.get(key)
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise self.malformed(key, f"is a {type(value).__name__}, not text")

    def ident(self, key: str, *, required: bool = False) -> str | None:
        value = self.data.get(key)
        if value is None:
            if required:
                raise self.malformed(key, "is missing" if key not in self.data else "is null")
            return None
        if isinstance(value, str) and value:
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        raise self.malformed(key, f"is {short(value)}, not an id")

    def number(self, key: str) -> float | None:
        value = self.data.get(key)
        if value is None:
            return None
        number = _number(value)
        if number is None:
            raise self.malformed(key, f"is {short(value)}, not a number")
        return number

    def timestamp(self, key: str) -> pd.Timestamp | None:
        value = self.data.get(key)
        if value is None:
            return None
        moment = _timestamp(value)
        if moment is None:
            raise self.malformed(key, f"is {short(value)}, not an ISO 8601 timestamp")
        return moment

    def mapping(self, key: str) -> Mapping[str, Any] | None:
        value = self.data.get(key)
        if value is None or isinstance(value, Mapping):
            return value
        raise self.malformed(key, f"is a {type(value).__name__}, not an object")

    def sequence(self, key: str) -> list[Any] | None:
        value = self.data.get(key)
        if value is None or isinstance(value, list):
            return value
        raise self.malformed(key, f"is a {type(value).__name__}, not a list")


def _report_of(body: Any, where: str) -> Report:
    """A ``Report`` from one report object (its inclusions as the report lists them)."""
    if not isinstance(body, Mapping):
        raise MalformedResponseError(f"{where} did not answer with a report object as documented.", url=where)
    item = _Fields(body, where)
    allocation = item.mapping("allocation")
    alloc = _Fields(allocation, where, "allocation.") if allocation is not None else None
    listed = item.sequence("inclusions")
    rows = [_inclusion_row(entry, n, where) for n, entry in enumerate(listed or [])]
    return Report(
        id=item.ident("id", required=True) or "",
        name=item.text("name"),
        report_type=item.text("report_type"),
        status=item.text("status"),
        project_id=item.ident("project_id"),
        created_at=item.timestamp("created_at"),
        updated_at=item.timestamp("updated_at"),
        allocated_amount=alloc.number("amount") if alloc else None,
        allocated_unit=alloc.text("unit") if alloc else None,
        allocated_at=alloc.timestamp("created_at") if alloc else None,
        inclusions=_frame(rows, INCLUSIONS_SCHEMA),
        inclusions_source="report" if rows else "none",
        raw=body,
    )


def _inclusion_row(entry: Any, position: int, where: str) -> dict[str, Any]:
    if not isinstance(entry, Mapping):
        raise MalformedResponseError(f"{where}: inclusions[{position}] is a {type(entry).__name__}, not an object, "
                                     "so the answer does not match the documented Mangrove API.",
                                     field=f"inclusions[{position}]")
    one = _Fields(entry, where, f"inclusions[{position}].")
    return {"batch_id": one.ident("batch_id", required=True), "tracking_id": one.text("tracking_id"),
            "ledger_id": one.ident("ledger_id"), "amount": one.number("amount"), "unit": one.text("unit")}


def _report_row(body: Any, index: int) -> dict[str, Any]:
    """One ``REPORTS_SCHEMA`` row of a listed report."""
    report = _report_of(body, f"GET /reports (item {index})")
    listed = body.get("inclusions")
    if report.inclusions_source == "report":
        count: int | None = len(report.inclusions)
    elif isinstance(listed, list) and report.allocated_amount is None:
        count = 0
    else:
        count = None  # no inclusions listed, yet an allocation (or no inclusions field): the server does not say
    return {"id": report.id, "name": report.name, "report_type": report.report_type, "status": report.status,
            "project_id": report.project_id, "batch_count": count, "allocated_amount": report.allocated_amount,
            "allocated_unit": report.allocated_unit, "created_at": report.created_at, "updated_at": report.updated_at}


def _with_inclusions(report: Report, inclusions: pd.DataFrame, source: str) -> Report:
    """The report with other inclusions, and where they came from."""
    return dataclasses.replace(report, inclusions=inclusions, inclusions_source=source)


def read_report(client: ReportsMixin, rid: str) -> Report:
    """``GET /reports/{rid}`` as a ``Report``, its inclusions as the report lists them. A 404 is a
    ``NotFoundError`` that names the closest ids and names the project's reports have, and its draft reports."""
    try:
        body = client.http.report(rid)
    except NotFoundError as exc:
        try:
            listed = client.reports()
        except MangroveError:
            raise exc from None  # the listing cannot help: the server's own answer
        raise NotFoundError(status_code=exc.status_code, method=exc.method, url=exc.url,
                            server_messages=exc.server_messages, request_id=exc.request_id, body_note=exc.body_note,
                            hint=f"No report has the id {_plain(rid)!r} (or your token cannot see it). "
                                 + _suggestions(listed, rid)) from None
    return _report_of(body, f"GET /reports/{rid}")


def resolve_report(frame: pd.DataFrame, wanted: Any) -> str:
    """A listed report's id (``frame``: ``client.reports()``) from its id or its name (exact, then
    case-insensitive); ``ValidationError`` (argument ``report``) naming the closest ids and names and the drafts
    otherwise, or the ids when a name is several reports'."""
    found = find_report(frame, wanted)
    if found is None:
        raise ValidationError(f"No report has the id or name {_plain(wanted.strip())!r}. "
                              + _suggestions(frame, wanted.strip()), argument="report")
    return found


def find_report(frame: pd.DataFrame, wanted: Any) -> str | None:
    """``resolve_report``'s id, or None when no listed report has this id or name."""
    if not isinstance(wanted, str) or not wanted.strip():
        raise ValidationError(f"report must be a report id ('rpt_...') or name from client.reports(), not "
                              f"{type(wanted).__name__} {short(wanted)}.", argument="report")
    name = wanted.strip()
    if (frame["id"] == name).any():
        return name
    names = frame["name"].fillna("")
    for found in (frame[names == name], frame[names.str.casefold() == name.casefold()]):
        if len(found) == 1:
            return str(found["id"].iloc[0])
        if len(found) > 1:
            raise ValidationError(f"{len(found)} reports are named {_plain(name)!r} "
                                  f"({', '.join(_plain(i) for i in found['id'])}): give the report's id.",
                                  argument="report")
    return None


def _suggestions(frame: pd.DataFrame, wanted: str) -> str:
    """ "Did you mean ...?" (the closest ids and names of the listed reports), then the draft reports."""
    def said(row: Any) -> str:
        return f"{_plain(row.name) if isinstance(row.name, str) else '(no name)'!r} ({_plain(row.id)}, " \
               f"{_plain(row.status) if isinstance(row.status, str) else 'status unknown'})"

    rows = list(frame.itertuples(index=False))
    by_key: dict[str, int] = {}  # an id or a name, case-folded -> its row's position
    for position, row in enumerate(rows):
        by_key.setdefault(str(row.id).casefold(), position)
        if isinstance(row.name, str) and row.name:
            by_key.setdefault(row.name.casefold(), position)
    close = difflib.get_close_matches(wanted.casefold(), list(by_key), n=3, cutoff=0.6)
    chosen = [rows[position] for position in dict.fromkeys(by_key[c] for c in close)]
    parts = [f"Did you mean {' or '.join(said(r) for r in chosen)}?"] if chosen else []
    drafts = [r for r in rows if r.status == "draft"]
    parts.append(f"The draft reports: {'; '.join(said(r) for r in drafts[:8])}{'; ...' if len(drafts) > 8 else ''}."
                 if drafts else f"No report is a draft ({len(rows)} report(s) listed).")
    parts.append("client.reports() lists every report.")
    return " ".join(parts)


# --- the reads that complete a report ----------------------------------------------------------------------


def project_filter(project: str | None) -> dict[str, Any]:
    """The listing filter of one project (none without a project: everything the token sees)."""
    return {"filter[project_id][eq]": project} if project is not None else {}


def read_details(client: ReportsMixin, ids: list[str]) -> list[Mapping[str, Any] | NotFoundError]:
    """``GET /batches/{id}`` of each id, several at once, in order; a 404 comes back as its error."""
    if not ids:
        return []

    def one(bid: str) -> Mapping[str, Any] | NotFoundError:
        try:
            answer = client.http.batch(bid)
        except NotFoundError as exc:
            return exc
        if not isinstance(answer, Mapping):
            raise MalformedResponseError(f"GET /batches/{bid} did not answer with a batch object.",
                                         url=f"/batches/{bid}")
        return answer

    workers = max(1, min(client.settings.max_concurrent_pages, len(ids)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mangrove-report") as pool:
        return list(pool.map(one, ids))


def inclusions_from_batches(client: ReportsMixin, report: Report) -> Report:
    """A report that lists no inclusions, with those its project's complete batches name it in."""
    project = report.project_id or client.settings.project_id
    params = {"filter[state][eq]": "complete"}
    if project is not None:
        params["filter[project_id][eq]"] = project
    listed = frames.batches_frame(client.http.batches(**params))
    ids = [str(i) for i in listed["id"]]
    rows = []
    by_id = {str(r["id"]): r for r in listed.to_dict("records")}
    for bid, detail in zip(ids, read_details(client, ids), strict=True):
        if not isinstance(detail, Mapping):
            continue
        for entry in detail.get("report_allocations") or []:
            named = entry.get("report") if isinstance(entry, Mapping) else None
            if not isinstance(named, Mapping) or str(named.get("id")) != report.id:
                continue
            allocation = entry.get("allocation") if isinstance(entry.get("allocation"), Mapping) else {}
            amount = _number(entry.get("amount"))
            amount = amount if amount is not None else _number(allocation.get("amount"))
            rows.append({"batch_id": bid, "tracking_id": _text(by_id[bid].get("tracking_id")),
                         "ledger_id": _text(by_id[bid].get("ledger_id")) or _text(detail.get("ledger_id")),
                         "amount": amount,
                         "unit": _text(entry.get("unit")) or _text(allocation.get("unit"))})
    if not rows:
        return report
    return _with_inclusions(report, _frame(rows, INCLUSIONS_SCHEMA), "batches")


def reported_ledgers(client: ReportsMixin, project: str | None, reports: list[Any] | None = None
                     ) -> tuple[list[str], int]:
    """The ledgers whose batches the project's complete (submitted) reports list, in the order first seen, and how
    many complete reports do not say which ledgers they hold (they list no batch, as the API documentation's own
    examples, or their batches without a ``ledger_id``).

    Drafts are left out: a draft holds what anybody put on it, mistakes included, and is no evidence of what the
    project reports to the registry; a submitting report may yet be refused. ``reports``: the project's reports
    when the caller read them already (a plan reads them once)."""
    found: list[str] = []
    silent = 0
    for item in reports if reports is not None else client.http.reports(**project_filter(project)):
        if not isinstance(item, Mapping) or item.get("status") != "complete":
            continue
        listed = [inclusion for inclusion in item.get("inclusions") or [] if isinstance(inclusion, Mapping)]
        ledgers = [str(inclusion["ledger_id"]) for inclusion in listed
                   if isinstance(inclusion.get("ledger_id"), str | int) and not isinstance(inclusion.get("ledger_id"),
                                                                                         bool)]
        if not listed or len(ledgers) < len(listed):
            silent += 1
        found.extend(ledgers)
    return list(dict.fromkeys(found)), silent


def unknown_ledgers_said(project: str | None, silent: int) -> str:
    """Why the ledgers a project reports are not known (``reported_ledgers`` found none): its ``silent`` submitted
    reports do not say, or it has none."""
    of = f"project {project}'s" if project is not None else "the"
    if silent:
        return (f"{of} {silent} submitted report(s) do not say which ledgers they hold (they list no batch, or no "
                "batch's ledger)")
    return f"no report of {'project ' + str(project) if project is not None else 'the project'} has been submitted yet"
