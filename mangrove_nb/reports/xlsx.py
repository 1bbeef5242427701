"""The report as a spreadsheet: one sheet per table of the report (Summary, Monthly totals, Batches, Calculations,
Data quality) and a Provenance sheet, made with pandas and openpyxl.

**One computation.** The numbers are the report's own: the template's last cell (tagged ``export-tables``, its
source hidden, showing nothing) calls ``write_tables(export_tables, ...)`` with the very frames the cells above
displayed (``summary``, ``totals``, ``breakdown``, ``findings``, ``batches``...) when its ``export_tables``
parameter names a file. ``render_report(formats=("xlsx",))`` injects ``export_tables = ".<stem>.tables.json"`` (a
file in the output folder, the kernel's working directory), reads it once the notebook has run, deletes it, masks
the token in every text, and turns it into the workbook (``workbook``). The spreadsheet and the HTML thus come from
one run of one kernel: nothing reads the API a second time (the data could have changed in between) and no total
is computed twice. A side file rather than the notebook's metadata: the batches and calculations with their
timestamps would double the notebook's size for every reader of the ``.ipynb``. JSON rather than Parquet: the
standard library writes and reads it (no pyarrow), it is text that can be checked and redacted like the notebook,
and a report's few hundred rows need no columnar format. Each column carries its kind (``text``, ``number``,
``integer``, ``percent``, ``datetime``, ``month``), so the types survive the trip: floats are JSON numbers (they
round-trip bit for bit), datetimes ISO strings in UTC. With papermill, ``-p export_tables tables.json`` writes the
same file, and ``workbook(Path("tables.json").read_text())`` makes the workbook from it.

**Cells.** Numbers are numbers (``#,##0.000``; percentages are numbers of percent, under a "(%)" header) and dates
are dates: Excel has no time zones, so a datetime is written as naive UTC under a header that says "(UTC)", and a
month as its first day, shown ``yyyy-mm``. Units are in the headers, as the API gives them ("Net removal (t)",
"Output (t)"; "(see Unit)" when the rows' units differ, with a Unit column). A figure the report does not have is
written as the report writes it ("not generated", "no value", "not compared"), never 0 and never an empty cell that
a sum would read as 0; the one empty figure is the output of a batch that is not complete (its State beside it),
which has none and counts for nothing. The report's ⚠ marks are in each sheet's Flags column, among them a total
that leaves out a failed or unfinished partition, and the change not computed from it. Every header row is frozen
and filtered; column widths follow the content (long text wraps).

**Untrusted text.** API text (ledger names, tracking ids, error messages, units) reaches cells only through
``_text_cell``: escape sequences, control characters but tab, line feed and carriage return, and the characters that
hide or reorder text (bidirectional overrides...) are removed, as from the page and the notebook
(``mangrove_nb._text.printable``, which leaves none of the characters a workbook's XML cannot hold; openpyxl's list
of them still turns any into U+FFFD); the token is masked (``scrub``); and a text that a spreadsheet could read as a
formula (a leading ``=``, ``+``, ``-``, ``@``, tab or CR, also after leading whitespace, once the removed characters
are gone) gets a leading ``'``, as the batch explorer's CSV export does; every text cell is typed as a string
(openpyxl would otherwise store ``=...`` as a formula and ``#N/A`` as an error). The Provenance sheet has the
period, the ledgers, the API base URL, the mangrove_nb version, the data's fingerprint and the generation time (and,
for a report rendered from a snapshot, "Data: replayed from the snapshot taken at ..."), never the token.

openpyxl is imported inside ``workbook``; ``write_tables`` (run in the report's kernel) needs pandas only.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from mangrove_nb._text import printable
from mangrove_nb.errors import ReportError

from ._text import _plural
from .files import _write_text
from .sections._shared import NOT_GENERATED, _counted, _month_label, _names
from .sections.opening import _change, _doubtful
from .sections.quality import left_out, month_marks, skipped_effects

if TYPE_CHECKING:
    from mangrove_nb import Period

    from .sections.display import Table

FORMAT = "mangrove_nb report tables"
VERSION = 1
SHEETS = ("Summary", "Monthly totals", "Batches", "Calculations", "Data quality", "Provenance")
KINDS = ("text", "number", "integer", "percent", "datetime", "month")
NO_VALUE = "no value"

# Cells a spreadsheet would read as a formula (OWASP's CSV-injection list), after leading whitespace too; the same
# rule as the batch explorer's CSV export (forms/explorer.py), which a test holds them to.
_FORMULA_START = ("=", "+", "-", "@")
_CONTROL_START = ("\t", "\r")
_EXCEL_TEXT_LIMIT = 32_767
_NUMBER_FORMATS = {"number": "#,##0.000", "integer": "#,##0", "percent": "0.0", "datetime": "yyyy-mm-dd hh:mm:ss",
                   "month": "yyyy-mm"}
_WIDTHS = {"number": 14, "integer": 9, "percent": 10, "datetime": 20, "month": 10}
_MAX_WIDTH = 60
_HEADER_WIDTH = 18
_SUM_PLACES = 6
_MONTH = re.compile(r"^\d{4}-\d{2}$")


@dataclass
class Sheet:
    """One sheet: its columns (header, kind), rows of plain values (None for an empty cell) and notes under it."""

    name: str
    columns: list[tuple[str, str]]
    rows: list[list[Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# --- in the kernel: the report's frames -> sheets -> JSON ---------------------------------------------------


def write_tables(path: str | os.PathLike[str], *, selected: pd.DataFrame, period: Period, previous: Period,
                 year_ago: Period, summary: pd.DataFrame, totals: pd.DataFrame, breakdown: pd.DataFrame,
                 findings: pd.DataFrame, batches: pd.DataFrame, calculations: pd.DataFrame | None,
                 provenance: Table, generated_at: datetime, covered: pd.DataFrame | None = None) -> None:
    """Write the report's tables to ``path`` (JSON, whole or not at all), for ``workbook``. The template's last
    cell calls this with the frames its other cells displayed; ``tables`` says what each sheet holds."""
    from pathlib import Path

    sheets = tables(selected=selected, period=period, previous=previous, year_ago=year_ago, summary=summary,
                    totals=totals, breakdown=breakdown, findings=findings, batches=batches, calculations=calculations,
                    provenance=provenance, generated_at=generated_at, covered=covered)
    payload = {"format": FORMAT, "version": VERSION,
               "sheets": [{"name": s.name, "columns": [{"name": c, "kind": k} for c, k in s.columns],
                           "rows": s.rows, "notes": s.notes} for s in sheets]}
    _write_text(Path(path), json.dumps(payload, ensure_ascii=False, allow_nan=False, indent=0) + "\n")


def tables(*, selected: pd.DataFrame, period: Period, previous: Period, year_ago: Period, summary: pd.DataFrame,
           totals: pd.DataFrame, breakdown: pd.DataFrame, findings: pd.DataFrame, batches: pd.DataFrame,
           calculations: pd.DataFrame | None, provenance: Table, generated_at: datetime,
           covered: pd.DataFrame | None = None) -> list[Sheet]:
    """The workbook's sheets, from the frames the report's cells displayed (``reports.summary``,
    ``monthly_totals``, ``net_removal``, ``quality_findings``, the quarter's batches with their skipped inputs,
    the calculations and the coverage (``covered``) ``totals_table`` marks with, ``provenance``), in ``SHEETS``
    order."""
    return [_summary_sheet(summary, period, previous, year_ago),
            _totals_sheet(totals, selected, period, batches, calculations, covered),
            _batches_sheet(batches, selected, calculations, period),
            _calculations_sheet(breakdown, selected),
            _quality_sheet(findings),
            _provenance_sheet(provenance, generated_at)]


def _unit(units: Sequence[Any]) -> str:
    """The unit for a header: the rows' one unit, or "see Unit" when they differ (or have none)."""
    found = sorted({str(u) for u in units if isinstance(u, str) and u.strip()})
    return found[0] if len(found) == 1 else "see Unit"


def _number(value: Any, places: int | None = None) -> float | None:
    """A number for a cell; ``places`` rounds a sum the report computed (to 6 places, as its metadata records do:
    ``227.17400000000001`` is ``227.174``); the API's own values are written as they came."""
    if value is None or pd.isna(value) or not math.isfinite(float(value)):
        return None
    return float(value) if places is None else round(float(value), places)


def _text(value: Any) -> str | None:
    return None if value is None or pd.isna(value) else str(value)


def _utc(value: Any) -> str | None:
    """A timestamp as naive UTC, ISO text (what the workbook writes as an Excel datetime)."""
    if value is None or pd.isna(value):
        return None
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_convert(UTC) if stamp.tzinfo is not None else stamp  # naive values are UTC already
    return str(stamp.tz_localize(None).isoformat())


def _month(label: Any) -> str | None:
    """A month label ("2025-01") as the ISO text of its first instant, UTC; another text stays as it is."""
    text = _text(label)
    return f"{text}-01T00:00:00" if text is not None and _MONTH.match(text) else text


def _quarter_total(row: Any, key: str) -> float | str:
    """A quarter's total for the sheet: the number, or why there is none ("not generated", "no value")."""
    generated = int(row[f"{key}generated".capitalize()] or 0)
    empty = _text(row.get(f"{key}no value".capitalize()))
    if generated == 0:
        return NOT_GENERATED
    if empty is not None and len(empty.split(", ")) >= generated:
        return NO_VALUE
    total = _number(row[f"{key}total".capitalize()], _SUM_PLACES)
    return NO_VALUE if total is None else total


def _summary_sheet(summary: pd.DataFrame, period: Period, previous: Period, year_ago: Period) -> Sheet:
    """One row per ledger: its total, the earlier periods' totals and the changes (an annual report compares with
    the year before only: its previous period and the one a year before are the same), the counts behind the ⚠."""
    unit = _unit(list(summary["Unit"]))
    months = len(period.months())
    earlier = [("Previous", "previous", previous)]
    if year_ago.label != previous.label:
        earlier.append(("Year-ago", "year ago", year_ago))
    columns = [("Ledger", "text"), ("Ledger ID", "text"), ("Unit", "text"),
               (f"Months generated (of {months})", "integer"), (f"{period.label} total ({unit})", "number")]
    columns += [(f"{span.label} total ({unit})", "number") for _, _, span in earlier]
    for _, _, span in earlier:
        columns += [(f"Change vs {span.label} ({unit})", "number"), (f"Change vs {span.label} (%)", "percent")]
    columns += [("Failed batches", "integer"), ("Batches with a skipped input", "integer"),
                ("Batches that may be overstated", "integer"), ("Months generated twice", "integer"),
                ("Months without a value", "integer"), ("Flags", "text")]
    sheet = Sheet("Summary", columns)
    for _, row in summary.iterrows():
        cells: list[Any] = [_text(row["Ledger"]), _text(row["Ledger ID"]), _text(row["Unit"]), int(row["Generated"]),
                            _quarter_total(row, "")]
        cells += [_quarter_total(row, f"{key} ") for key, _, _ in earlier]
        for key, label, span in earlier:
            change = _number(row[f"Change vs {label}"], _SUM_PLACES)
            percent = _number(row[f"Change vs {label} (%)"], _SUM_PLACES)
            if change is None:  # why there is no change, as the report says it
                cells += [_change(row, key, label, period.label, span.label), "not compared"]
            else:
                cells += [change, percent if percent is not None else f"none: the {span.label} total is not positive"]
        empty = _text(row["No value"])
        cells += [int(row["Failed"]), int(row["Skipped inputs"]), int(row["Overstated"]), int(row["Duplicated"]),
                  len(empty.split(", ")) if empty is not None else 0,
                  "; ".join(_summary_flags(row, months, period, [(f"{k} ", span) for k, _, span in earlier])) or None]
        sheet.rows.append(cells)
    sheet.notes = ["Totals count complete batches only, in each ledger's unit. A change is computed only between "
                   f"{period.kind}s whose every month is generated and has a value, and whose totals leave out no "
                   "failed or unfinished batch (per feedstock) and no batch the preview could still generate (Flags "
                   "names them). Percentages are numbers of percent. ⚠ in Flags: a figure that may be overstated, or "
                   "a total that leaves batches out."]
    return sheet


def _summary_flags(row: Any, months: int, period: Period, earlier: Sequence[tuple[str, Period]]) -> list[str]:
    flags = []
    if int(row["Overstated"]):
        count = int(row["Overstated"])
        flags.append(f"⚠ {_plural(count, 'batch')} of {period.label} generated with an input skipped: the total may "
                     "be overstated")
    if int(row["Duplicated"]):
        flags.append(f"⚠ {_plural(int(row['Duplicated']), 'month')} of {period.label} with two or more complete "
                     "batches for one partition (possibly generated twice): the total counts them all")
    for key, span in earlier:
        if _doubtful(row, key):
            flags.append(f"⚠ the {span.label} total may be overstated, and so the change against it")
    generated = int(row["Generated"])
    if 0 < generated < months:
        flags.append(f"{generated} of {months} months generated")
    if _text(row["No value"]) is not None:
        flags.append(f"no value for {row['No value']}: not counted as 0")
    for key, span in [("", period), *earlier]:
        missing = _text(row.get(f"{key}left out".capitalize()))
        if missing is not None:
            then = "no change is computed from it" if not key else f"no change against {span.label} is computed"
            flags.append(f"⚠ the {span.label} total leaves out {missing}: {then}")
    return flags


_MARK_FLAGS = {"overstated": "generated with an input skipped, may be overstated",
               "duplicate": "two or more complete batches for one partition (possibly generated twice), all counted",
               "no value": "a complete batch without an output value"}
_INCOMPLETE = "incomplete"


def _totals_sheet(totals: pd.DataFrame, selected: pd.DataFrame, period: Period, batches: pd.DataFrame,
                  calculations: pd.DataFrame | None, covered: pd.DataFrame | None = None) -> Sheet:
    months = [m.label for m in period.months()]
    unit = _unit(list(totals["Unit"]))
    sheet = Sheet("Monthly totals", [("Ledger", "text"), ("Ledger ID", "text"), ("Unit", "text"),
                                     *[(f"{m} ({unit})", "number") for m in months],
                                     (f"{period.label} total ({unit})", "number"), ("Flags", "text")])
    marks = month_marks(batches, calculations)
    for ledger_id, (_, row) in zip(_names(selected), totals.iterrows(), strict=True):
        cells: list[Any] = [_text(row["Ledger"]), ledger_id, _text(row["Unit"])]
        flags, valued = [], 0
        lacking = left_out(batches, ledger_id, months, covered)
        for month in months:
            reasons = marks.get((ledger_id, month), [])
            value = _number(row[month], _SUM_PLACES)
            if value is not None:
                valued += 1
            cells.append(NO_VALUE if "no value" in reasons else value if value is not None else NOT_GENERATED)
            flags += [f"{'⚠ ' if r != 'no value' else ''}{month}: {_MARK_FLAGS[r]}" for r in reasons
                      if r in _MARK_FLAGS]
            if month in lacking:
                flags.append(f"⚠ {month}: {_INCOMPLETE}, the total leaves out {', '.join(lacking[month])}")
        total = _number(row[f"{period.label} total"], _SUM_PLACES)
        cells.append(total if total is not None else NO_VALUE if any("no value" in marks.get((ledger_id, m), [])
                                                                      for m in months) else NOT_GENERATED)
        if 0 < valued < len(months) and total is not None:
            flags.append(f"the total covers {valued} of {len(months)} months")
        cells.append("; ".join(flags) or None)
        sheet.rows.append(cells)
    sheet.notes = ["Complete batches only; failed batches are listed under Data quality. \"not generated\": no "
                   "complete batch; \"no value\": a complete batch without an output value (neither is 0). A month "
                   f"flagged {_INCOMPLETE} has a complete batch but leaves out a partition whose batch failed or is "
                   "not finished, or batches the preview could still generate: its total is short."]
    return sheet


def _batches_sheet(batches: pd.DataFrame, selected: pd.DataFrame, calculations: pd.DataFrame | None,
                   period: Period) -> Sheet:
    names = _names(selected)
    order = {ledger_id: n for n, ledger_id in enumerate(names)}
    unit = _unit(list(batches["output_unit"])) if len(batches) else _unit(list(selected["unit"]))
    sheet = Sheet("Batches", [
        ("Ledger", "text"), ("Ledger ID", "text"), ("Month (UTC)", "month"), ("Tracking ID", "text"),
        ("Batch ID", "text"), ("Feedstock", "text"), ("State", "text"), (f"Output ({unit})", "number"),
        ("Unit", "text"), ("Start (UTC)", "datetime"), ("End (UTC)", "datetime"), ("Created (UTC)", "datetime"),
        ("Updated (UTC)", "datetime"), ("Skipped inputs", "text"), ("Model run error", "text"), ("Flags", "text")])
    effects = skipped_effects(batches, calculations)
    counted = _counted(batches) if len(batches) else pd.Series(dtype=bool)
    frame = batches.assign(_order=batches["ledger_id"].map(order), _counted=counted)
    frame = frame.sort_values(["_order", "start_time", "tracking_id", "id"], kind="stable", na_position="last")
    for batch in frame.to_dict("records"):
        ledger_id = str(batch["ledger_id"])
        flags = []
        if not batch["_counted"]:
            flags.append("not counted in the totals (not complete)")
        if str(batch["id"]) in effects:
            text, direction = effects[str(batch["id"])]
            flags.append(("⚠ " if direction != "understated" else "") + text)
        # A batch that is not complete has no output (an empty cell beside its state), whatever the API sends.
        output = _number(batch["output_value"]) if batch["_counted"] else None
        sheet.rows.append([
            names.get(ledger_id, _text(batch.get("ledger_name")) or ledger_id), ledger_id,
            _month(_month_label(batch["start_time"])), _text(batch["tracking_id"]), _text(batch["id"]),
            _text(batch.get("feedstock")), _text(batch["state"]),
            output if output is not None or not batch["_counted"] else NO_VALUE, _text(batch["output_unit"]),
            _utc(batch["start_time"]), _utc(batch["end_time"]), _utc(batch["created_at"]), _utc(batch["updated_at"]),
            _text(batch.get("skipped_inputs")), _text(batch.get("model_run_error")), "; ".join(flags) or None])
    sheet.notes = [f"Every batch starting in {period.label}. Times are UTC. A batch that is not complete "
                   "has no output (an empty cell; its state says why) and is not counted in the totals."]
    return sheet


def _calculations_sheet(breakdown: pd.DataFrame, selected: pd.DataFrame) -> Sheet:
    """The calculations in their own unit (the Unit column; the header names it only when every row has the
    same), and each batch's net removal, its output, in its ledger's unit: units as the API gives them, never
    relabelled."""
    unit = _unit(list(breakdown["Unit"]))
    ledgers = set(breakdown["Ledger ID"].dropna().astype(str))
    ledger_unit = _unit(list(selected.loc[selected["id"].astype(str).isin(ledgers), "unit"]))
    sheet = Sheet("Calculations", [
        ("Ledger", "text"), ("Ledger ID", "text"), ("Month (UTC)", "month"), ("Batch", "text"), ("Batch ID", "text"),
        ("Term", "text"), ("Role", "text"), ("Sign", "integer"), (f"Value ({unit})", "number"),
        (f"Signed value ({unit})", "number"),
        (f"Net removal ({ledger_unit if ledger_unit != 'see Unit' else 'the ledger’s unit'})", "number"),
        ("Unit", "text"), ("Note", "text")])
    for row in breakdown.to_dict("records"):
        sheet.rows.append([_text(row["Ledger"]), _text(row["Ledger ID"]), _month(row["Month"]), _text(row["Batch"]),
                           _text(row["Batch ID"]), _text(row["Term"]), _text(row["Role"]),
                           None if pd.isna(row["Sign"]) else int(row["Sign"]), _number(row["Value"]),
                           _number(row["Signed"]), _number(row["Batch output"]) if not pd.isna(row["Batch output"])
                           else NO_VALUE, _text(row["Unit"]), _text(row["Note"])])
    sheet.notes = ["How net removal was computed: for each complete batch of a carbon-removal ledger, its "
                   "calculations in Mangrove. Sign is +1 for a removal (added), -1 for an emission (subtracted), 0 "
                   "for what is not a term; a batch's signed values add up to its net removal, the ledger's figure. "
                   "Unit: the calculation's unit, as Mangrove gives it."]
    if not sheet.rows:
        sheet.notes.insert(0, "No calculations: the report covers no carbon-removal ledger with a complete batch.")
    return sheet


def _quality_sheet(findings: pd.DataFrame) -> Sheet:
    sheet = Sheet("Data quality", [("Severity", "text"), ("Ledger", "text"), ("Month (UTC)", "month"),
                                   ("Batch", "text"), ("Finding", "text")])
    for row in findings.to_dict("records"):
        sheet.rows.append([_text(row["Severity"]), _text(row["Ledger"]), _month(row["Month"]), _text(row["Batch"]),
                           _text(row["Finding"])])
    sheet.notes = ["Most severe first: error, warning, info." if sheet.rows else
                   "No findings: every batch is complete with a positive output, no input was skipped, and every "
                   "month is generated."]
    return sheet


def _provenance_sheet(provenance: Table, generated_at: datetime) -> Sheet:
    sheet = Sheet("Provenance", [("Field", "text"), ("Value", "text")])
    for field_name, value in zip(provenance.frame["Field"], provenance.frame["Value"], strict=True):
        if str(field_name) == "Generated at (UTC)":  # a real date, naive UTC
            sheet.rows.append([str(field_name), {"kind": "datetime", "value": _utc(generated_at)}])
        else:
            sheet.rows.append([_text(field_name), _text(value)])
    sheet.notes = provenance.notes()
    return sheet


# --- in the parent: JSON -> workbook ----------------------------------------------------------------------


def _formula_like(value: str) -> bool:
    """Whether a spreadsheet could read ``value`` as a formula: a tab or CR first, or a formula character first
    once leading whitespace is stripped."""
    return value.startswith(_CONTROL_START) or value.lstrip().startswith(_FORMULA_START)


def _text_cell(value: str, scrub: Callable[[str], str]) -> str:
    """API text as a safe cell: printable (no escape, control or hiding character), the token masked, characters
    XML cannot hold replaced, a formula neutralised (once the characters before it are gone)."""
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    text = str(ILLEGAL_CHARACTERS_RE.sub("\ufffd", scrub(printable(value))))
    text = "'" + text if _formula_like(text) else text
    return text if len(text) <= _EXCEL_TEXT_LIMIT else text[: _EXCEL_TEXT_LIMIT - 1] + "…"


def workbook(text: str, *, scrub: Callable[[str], str] | None = None) -> bytes:
    """The ``.xlsx`` bytes of the tables ``write_tables`` wrote (``text``: that file's contents); ``scrub`` masks
    secrets in every text (headers, cells, notes). A file that is not such tables is a ``ReportError``."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    clean = scrub if scrub is not None else (lambda value: value)
    payload = _read_payload(text)
    book = Workbook()
    book.remove(book.active)
    bold, wrap, italic = Font(bold=True), Alignment(wrap_text=True, vertical="top"), Font(italic=True, color="555555")
    for sheet in payload["sheets"]:
        columns = [(str(c["name"]), str(c["kind"]) if c.get("kind") in KINDS else "text") for c in sheet["columns"]]
        ws = book.create_sheet(title=str(sheet["name"])[:31])
        widths = [_header_width(name) for name, _ in columns]
        for number, (name, _kind) in enumerate(columns, start=1):
            cell = ws.cell(row=1, column=number)
            _put_text(cell, name, clean)
            cell.font, cell.alignment = bold, wrap
        for row_number, row in enumerate(sheet["rows"], start=2):
            for number, ((_name, kind), value) in enumerate(zip(columns, row, strict=True), start=1):
                if isinstance(value, Mapping):  # a cell of its own kind (the provenance's date)
                    kind, value = str(value.get("kind", "text")), value.get("value")
                cell = ws.cell(row=row_number, column=number)
                shown = _put(cell, kind, value, clean)
                widths[number - 1] = max(widths[number - 1], min(shown + 2, _MAX_WIDTH))
                if shown > _MAX_WIDTH - 2:
                    cell.alignment = wrap
        last = get_column_letter(len(columns))
        ws.freeze_panes = "A2"
        ws.auto_filter.ref = f"A1:{last}{max(len(sheet['rows']) + 1, 1)}"
        for number, width in enumerate(widths, start=1):
            ws.column_dimensions[get_column_letter(number)].width = width
        for offset, note in enumerate(sheet.get("notes", [])):
            cell = ws.cell(row=len(sheet["rows"]) + 3 + offset, column=1)
            _put_text(cell, str(note), clean)
            cell.font = italic
    book.properties.creator = "mangrove_nb"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _header_width(name: str) -> int:
    """A column's width for its header alone: the header on one line up to ``_HEADER_WIDTH`` characters (longer ones
    wrap), never narrower than its longest word."""
    longest = max((len(word) for word in name.split()), default=0)
    return min(max(longest + 2, min(len(name) + 2, _HEADER_WIDTH), 8), _MAX_WIDTH)


def _read_payload(text: str) -> dict[str, Any]:
    problem = None
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        payload, problem = None, f"not JSON ({exc.msg})"
    if problem is None and not (isinstance(payload, dict) and payload.get("format") == FORMAT
                                and payload.get("version") == VERSION and isinstance(payload.get("sheets"), list)):
        problem = f"not the tables of a report (format {FORMAT!r}, version {VERSION})"
    if problem is not None:
        raise ReportError(f"The report's tables for the spreadsheet are {problem}; render the report again with the "
                          "template mangrove_nb ships (its last cell writes them).")
    return dict(payload)


def _put_text(cell: Any, value: str, scrub: Callable[[str], str]) -> int:
    cell.value = _text_cell(value, scrub)
    cell.data_type = "s"  # never a formula or an error value, whatever the text
    return max((len(line) for line in str(cell.value).splitlines()), default=0)


def _put(cell: Any, kind: str, value: Any, scrub: Callable[[str], str]) -> int:
    """Write one value as its kind; returns its width in characters, for the column's."""
    if value is None:
        return 0
    if isinstance(value, str) and kind in ("datetime", "month"):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return _put_text(cell, value, scrub)  # a text the report put in a date column
        cell.value = moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo is not None else moment
        cell.number_format = _NUMBER_FORMATS[kind]
        return _WIDTHS[kind]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _put_text(cell, str(value), scrub)  # text, or why a number is missing ("not generated")
    if kind in ("number", "integer", "percent"):
        cell.value = int(value) if kind == "integer" else float(value)
        cell.number_format = _NUMBER_FORMATS[kind]
        return max(_WIDTHS[kind], len(f"{value:,.3f}"))
    cell.value = value
    return len(str(value))
