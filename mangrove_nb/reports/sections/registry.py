"""The Registry section: which of the period's batches are on which registry report and in what status, what is
still unallocated (balance per ledger and unit), and any batch on two reports, flagged.

``registry_status`` reads the project's reports (``client.reports()``, then each report's batches with
``client.report()``; a report that is not a draft and lists none has them read from the batches that name it) and
puts them beside the period's batches; ``registry_tables`` shows it. A report holding batches of several ledgers is
flagged ⚠ (its allocation is one sum: biochar or feedstock tonnes beside removals overstate it). Plain pandas
otherwise, and every API text (report names, statuses, tracking ids) reaches HTML through ``Table`` and ``Bullets``
(escaped).

What it says, and does not:

* "Unallocated" is the batches' own ``ledger_balance`` (what the API says is left after every allocation), summed
  over the complete batches only; a batch that does not say its balance makes its ledger's sum unknown ("–" and a
  note), never 0 and never its output: nothing here may overstate what is left to report. A balance larger than
  the output of those batches (a balance cannot exceed what was produced: the API's balances do not add up) is
  flagged ⚠ beside the figure, with a note naming the batches whose balance exceeds their output.
* The ledgers it covers are those the reports hold batches of, and the carbon-removal ledgers among those
  selected: an upstream ledger's balance (biochar, feedstock) is not something a registry report takes.
* An API that lists no report says so; an API whose reports cannot be read (404 or 403 on ``/reports``: an older
  API or a token without that permission) gives one line saying the section could not be read, and the rest of the
  report renders. Other failures are the report's, as in every other cell.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from mangrove_nb.errors import NotFoundError, PermissionDeniedError
from mangrove_nb.frames import balance_exceeds_output as _exceeds

from .._text import _one_line, _plural
from ._shared import _NA, _counted, _figure, _month_label, _names, _span
from .display import Bullets, Table
from .ledgers import removal_ledgers

if TYPE_CHECKING:
    from mangrove_nb import Client, Period

# The statuses of mangrove-api.md: a submitting or complete report holds its batches for good.
_UNSUBMITTED = ("draft", "submitting")
# The unallocated table's amounts that are a split of the balance: exactly nothing reads "none", not 0.000.
_SPLIT = ("Allocated to complete reports", "Unallocated balance", "On a draft or submitting report", "On no report")
_WARN = "⚠"


@dataclass(frozen=True)
class Registry:
    """What ``registry_status`` found. ``unreadable`` says why the reports could not be read (then the frames are
    empty); ``reports`` lists every report (a Flag column when one holds batches of several ledgers, each said in
    ``mixed``); ``placements`` has one row per period batch and report holding it;
    ``twice`` one row per period batch on two reports or more; ``unallocated`` the balance per ledger and unit;
    ``notes`` what could not be known."""

    reports: pd.DataFrame = field(default_factory=pd.DataFrame)
    placements: pd.DataFrame = field(default_factory=pd.DataFrame)
    twice: pd.DataFrame = field(default_factory=pd.DataFrame)
    unallocated: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: tuple[str, ...] = ()
    unreadable: str | None = None
    mixed: tuple[str, ...] = ()


def registry_status(client: Client, batches: pd.DataFrame, selected: pd.DataFrame, period: Period, *,
                    project: Any = None) -> Registry:
    """The registry reports beside the period's ``batches`` (those the report read, of the ``selected`` ledgers).

    ``project`` is the report's project (``report_project``'s answer, or an id), else the session's. Reads
    ``GET /reports`` and each report (one request each). Never raises for a 404 or 403 on them: the section then
    says it could not be read (``unreadable``).
    """
    project_id = getattr(project, "id", project)
    span = _span(period)
    try:
        listed = client.reports(project_id=project_id) if project_id is not None else client.reports()
        held: dict[str, pd.DataFrame] = {}
        notes: list[str] = []
        for row in listed.itertuples():
            settled = _status(row) not in ("draft", "")
            report = client.report(str(row.id), look_in_batches=settled)
            held[str(row.id)] = report.inclusions
            if settled and report.inclusions_source == "none":
                notes.append(f"Report {_one_line(row.id)} ({_one_line(row.status)}) lists no batch and no batch "
                             "names it: which batches it holds is not known, so none is shown on it.")
    except (NotFoundError, PermissionDeniedError) as exc:
        status = getattr(exc, "status_code", None)
        return Registry(unreadable=_one_line(
            f"The registry section could not be read: the API answered {status} ({type(exc).__name__}) to the "
            f"request for the registry reports, so which of the {span}'s batches are reported is not shown here. "
            "The rest of the report does not depend on it."))
    names = _names(selected)
    ours = batches[batches["ledger_id"].isin(list(names))] if len(batches) else batches
    by_id = {str(b.id): b for b in ours.itertuples()}
    reports_rows: list[dict[str, Any]] = []
    placements: list[dict[str, Any]] = []
    on_reports: dict[str, list[tuple[Any, Any]]] = {}
    mixed: list[str] = []
    for row in listed.itertuples():
        inclusions = held[str(row.id)]
        in_period = [i for i in inclusions.itertuples() if str(i.batch_id) in by_id]
        # A report's allocation is one sum: batches of several ledgers (biochar or feedstock tonnes beside removals)
        # in it overstate it. Flagged where the report is listed, and said in a note.
        ledgers_held = list(dict.fromkeys(str(lg) for lg in inclusions["ledger_id"].dropna()))
        reports_rows.append({"Report": row.name, "Id": row.id, "Status": row.status, "Batches": len(inclusions),
                             f"Of this {span}": len(in_period), "Allocated": row.allocated_amount,
                             "Unit": row.allocated_unit,
                             "Flag": f"{_WARN} {len(ledgers_held)} ledgers" if len(ledgers_held) > 1 else ""})
        if len(ledgers_held) > 1:
            mixed.append(f"{_WARN} Report {_one_line(row.name)} ({_one_line(row.status)}) adds up batches of "
                         f"{len(ledgers_held)} ledgers in one allocation "
                         f"({', '.join(_one_line(names.get(lg, lg)) for lg in ledgers_held)}): a registry report's "
                         "allocation is one sum, and biochar or feedstock tonnes added to removals overstate it. "
                         "Check what it holds before it is submitted, or what the registry allocated.")
        for inclusion in in_period:
            bid = str(inclusion.batch_id)
            on_reports.setdefault(bid, []).append((row, inclusion))
    for bid, entries in on_reports.items():
        batch = by_id[bid]
        for row, inclusion in entries:
            placements.append({"Ledger": names.get(str(batch.ledger_id), batch.ledger_id),
                               "Tracking id": batch.tracking_id, "Month": _month_label(batch.start_time),
                               "Batch state": batch.state, "Report": row.name, "Report status": row.status,
                               "Amount": inclusion.amount, "Unit": inclusion.unit,
                               "Flag": f"{_WARN} on {len(entries)} reports" if len(entries) > 1 else ""})
    twice = [{"Tracking id": by_id[bid].tracking_id, "Ledger": names.get(str(by_id[bid].ledger_id)),
              "Reports": "; ".join(f"{row.name} ({row.status})" for row, _ in entries),
              "Fix": ("take it off the drafts" if any(_status(row) in ("submitting", "complete") for row, _ in entries)
                      else "keep it on one of these drafts only")}
             for bid, entries in on_reports.items() if len(entries) > 1]
    reported = {str(lg) for frame in held.values() for lg in frame["ledger_id"].dropna()}
    ledgers = [lg for lg in names if lg in reported or lg in set(removal_ledgers(selected))]
    unallocated, more = _unallocated(ours, ledgers, names, on_reports, span)
    report_columns = ["Report", "Id", "Status", "Batches", f"Of this {span}", "Allocated", "Unit", "Flag"]
    reports_frame = pd.DataFrame(reports_rows, columns=report_columns)
    if not reports_frame["Flag"].astype(bool).any():  # the Flag column only when a report has one
        reports_frame = reports_frame.drop(columns="Flag")
    return Registry(
        reports=_typed(reports_frame), mixed=tuple(mixed),
        placements=_placed(placements),
        twice=_typed(pd.DataFrame(twice, columns=["Tracking id", "Ledger", "Reports", "Fix"])),
        unallocated=unallocated, notes=(*notes, *more))


def _unallocated(batches: pd.DataFrame, ledgers: list[str], names: Mapping[str, str],
                 on_reports: Mapping[str, list[tuple[Any, Any]]], span: str) -> tuple[pd.DataFrame, list[str]]:
    """Per ledger and unit: the complete batches, their output, what complete reports took, and the balance left,
    split into what unsubmitted reports hold and what no report holds."""
    rows, notes = [], []
    complete = batches[_counted(batches)] if len(batches) else batches
    for ledger in ledgers:
        mine = complete[complete["ledger_id"] == ledger]
        for unit, group in mine.groupby(mine["output_unit"].fillna(""), sort=True):
            unknown = int(group["ledger_balance"].isna().sum())
            balance = group["ledger_balance"].sum() if not unknown else pd.NA
            taken = pending = alone = 0.0
            for b in group.itertuples():
                entries = on_reports.get(str(b.id), [])
                taken += sum(float(i.amount) for r, i in entries if _status(r) == "complete" and not pd.isna(i.amount))
                left = 0.0 if pd.isna(b.ledger_balance) else float(b.ledger_balance)
                if any(_status(r) in _UNSUBMITTED for r, _ in entries):
                    pending += left
                elif not entries:
                    alone += left
            if unknown:
                notes.append(f"{_plural(unknown, 'complete batch', 'complete batches')} of "
                             f"{_one_line(names.get(ledger, ledger))} "
                             "do not say their balance (ledger_balance): its unallocated balance is not known.")
            output = group["output_value"].sum(min_count=1)
            if not unknown and _exceeds(balance, output):
                over = [str(b.tracking_id) for b in group.itertuples() if _exceeds(b.ledger_balance, b.output_value)]
                which = f" ({', '.join(_one_line(t, 60) for t in over[:5])}{', …' if len(over) > 5 else ''})" \
                    if over else ""
                shown_unit = f" ({_one_line(unit)})" if unit else ""
                notes.append(f"{_WARN} {_one_line(names.get(ledger, ledger))}{shown_unit}: "
                             f"the unallocated balance, {_figure(float(balance))}, is larger than the output of the "
                             f"complete batches, {_figure(float(output))}. A balance cannot exceed what was produced: "
                             "the API's ledger_balance is wrong for some batches"
                             f"{which}, so do not report from these figures; check the batches in the API first.")
            rows.append({"Ledger": names.get(ledger, ledger), "Unit": unit or pd.NA, "Complete batches": len(group),
                         "Output": output, "Allocated to complete reports": taken,
                         "Unallocated balance": balance,
                         "On a draft or submitting report": pending if not unknown else pd.NA,
                         "On no report": alone if not unknown else pd.NA})
    columns = ["Ledger", "Unit", "Complete batches", "Output", "Allocated to complete reports", "Unallocated balance",
               "On a draft or submitting report", "On no report"]
    return _typed(pd.DataFrame(rows, columns=columns)), notes


def _placed(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The period's batches on reports, by ledger, month and report; the Flag column only when a batch has one."""
    columns = ["Ledger", "Tracking id", "Month", "Batch state", "Report", "Report status", "Amount", "Unit", "Flag"]
    frame = pd.DataFrame(rows, columns=columns)
    if not frame["Flag"].astype(bool).any():
        frame = frame.drop(columns="Flag")
    return _typed(frame.sort_values(["Ledger", "Month", "Tracking id", "Report"], kind="stable", ignore_index=True))


def _status(row: Any) -> str:
    """A listed report's status as text ("" when the server does not say)."""
    return row.status if isinstance(row.status, str) else ""


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Counts as Int64, amounts as Float64, the rest as strings (so ``Table`` aligns and formats them), each on one
    line without control or format characters (API text: a name's ESC, BEL or bidi override stays out)."""
    frame = frame.copy()
    types = {}
    for column in frame.columns:
        if column in ("Batches", "Complete batches") or str(column).startswith("Of this "):
            types[column] = "Int64"
        elif column in ("Allocated", "Amount", "Output", "Allocated to complete reports", "Unallocated balance",
                        "On a draft or submitting report", "On no report"):
            types[column] = "Float64"
        else:
            types[column] = "string"
            frame[column] = [v if not isinstance(v, str) and pd.isna(v) else _one_line(str(v))
                             for v in frame[column]]
    return frame.astype(types)


def _shown_split(frame: pd.DataFrame) -> pd.DataFrame:
    """The unallocated table as shown: the split amounts as text, "none" for exactly nothing, "–" when unknown."""
    shown = frame.copy()
    for column in _SPLIT:
        shown[column] = pd.Series([_NA if pd.isna(v) else "none" if float(v) == 0 else _figure(float(v))
                                   for v in frame[column]], index=frame.index, dtype="string")
    return shown


def registry_tables(found: Registry, period: Period) -> list[Table | Bullets]:
    """The section's parts, in order: the reports, the period's batches on them, batches on two reports, and what
    is still unallocated; one line when the reports could not be read."""
    span = _span(period)
    if found.unreadable is not None:
        return [Bullets([("Not read", found.unreadable)])]
    parts: list[Table | Bullets] = []
    if found.reports.empty:
        parts.append(Bullets([], empty=f"The API lists no registry report for this project: none of the {span}'s "
                                    "batches is on a report yet."))
    else:
        parts.append(Table(found.reports, title="Registry reports",
                           note=[f"Batches: all the batches each report holds; Of this {span}: those of "
                                 f"{period.label} on the ledgers of this report. Allocated: what the registry "
                                 "took, once the report is complete.", *found.mixed]))
        parts.append(Table(_shown_placements(found.placements), title=f"The {span}'s batches on reports",
                           empty=f"None of the {span}'s batches is on a report.",
                           note="Amount: the batch's balance when it was put on the report (what a submission "
                                "allocates)."))
        twice = [(str(r["Tracking id"]), f"{r['Ledger']}: on {r['Reports']}. A batch is reported once: {r['Fix']}.")
                 for r in found.twice.to_dict("records")]
        parts.append(Bullets(twice, empty=f"No batch of the {span} is on two reports."))
    shown = _shown_unallocated(found.unallocated)
    parts.append(Table(shown, title="Still unallocated", right=list(shown.columns[1:]),
                       empty="None of the ledgers of this report is one the registry reports are about (they hold "
                             "no batch of it, and none is a carbon-removal ledger).",
                       note=[f"Complete batches of {period.label} only, on the ledgers the reports hold and the "
                             "carbon-removal ledgers, in each ledger's unit. Allocated: what complete reports took. "
                             "Unallocated: the batches' ledger_balance (after every allocation, to reports or to "
                             "other ledgers), split into what a report not yet submitted (draft or submitting) holds "
                             "and what no report holds.", *found.notes]))
    return parts


# The unallocated table's headers as shown: short enough for a narrow window (the frame keeps the long names).
_SHORT_HEADERS = {"Complete batches": "Batches", "Allocated to complete reports": "Allocated",
                  "Unallocated balance": "Unallocated", "On a draft or submitting report": "of which on a draft",
                  "On no report": "of which on no report"}


def _shown_placements(frame: pd.DataFrame) -> pd.DataFrame:
    """The period's batches on reports as shown, narrow enough for a small window: the report's status beside its
    name, the unit in the Amount header when every row has the same (else a Unit column stays)."""
    shown = frame.copy()
    shown["Report"] = pd.Series([f"{r} ({s})" if isinstance(s, str) and s else str(r)
                                 for r, s in zip(frame["Report"], frame["Report status"], strict=True)],
                                index=frame.index, dtype="string")
    shown = shown.drop(columns="Report status").rename(columns={"Batch state": "State"})
    units = {str(u) for u in shown["Unit"] if isinstance(u, str) and u}
    if len(units) == 1 and shown["Unit"].notna().all():
        shown = shown.drop(columns="Unit").rename(columns={"Amount": f"Amount ({units.pop()})"})
    return shown


def _shown_unallocated(frame: pd.DataFrame) -> pd.DataFrame:
    """The unallocated table as shown: the unit beside the ledger's name, short headers, the split as text."""
    shown = _shown_split(frame)
    # A balance larger than the output (the API's balances do not add up) is flagged where it stands; a note says why.
    shown["Unallocated balance"] = pd.Series(
        [f"{_WARN} {text}" if _exceeds(balance, output) else text for text, balance, output in
         zip(shown["Unallocated balance"], frame["Unallocated balance"], frame["Output"], strict=True)],
        index=frame.index, dtype="string")
    shown.insert(0, "Ledger (unit)", [f"{ledger} ({unit})" if isinstance(unit, str) and unit else str(ledger)
                                      for ledger, unit in zip(shown["Ledger"], shown["Unit"], strict=True)])
    return shown.drop(columns=["Ledger", "Unit"]).rename(columns=_SHORT_HEADERS).astype(
        {"Ledger (unit)": "string"})
