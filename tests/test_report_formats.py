"""`mangrove-nb report --format html,pdf,xlsx`: the PDF (the report's HTML printed by the system Chromium) and the
workbook (the report's own tables), against the emulator.

One module-scoped emulator (canary token, a project whose name is markup, a ledger whose name is a spreadsheet
formula, a batch whose tracking id is one) serves one report of 2025Q4 rendered in every format: Net Carbon Removal
generated month by month, November without its electricity input (the overstatement the report flags). The PDF is
read back with pypdf, the workbook with openpyxl and as its raw XML. Browser tests are marked ``browser`` and
skipped with a reason when Chromium or Playwright is missing; the workbook's tests run without them.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import re
import sys
import threading
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote, quote_plus

import pandas as pd
import pytest
import requests
from conftest import check_exchanges
from contract import Contract
from helpers import REPORT_SECTIONS

import mangrove_nb as mnb
from mangrove_nb import reports
from mangrove_nb.cli import main
from mangrove_nb.emulator import Emulator
from mangrove_nb.errors import ReportError, ValidationError
from mangrove_nb.reports import pdf, xlsx
from mangrove_nb.testing import emulator as start_emulator

QUARTER, PREVIOUS, YEAR_AGO = "2025Q4", "2025Q3", "2024Q4"
HOSTILE_PROJECT = "<b>Cascade</b> & <i>Co</i>"
HOSTILE_LEDGER = '=HYPERLINK("http://evil.invalid/ledger","click me")'
HOSTILE_BATCH = ' \t@HYPERLINK("http://evil.invalid/batch","batch")'  # leading whitespace does not stop a formula
SECTIONS = REPORT_SECTIONS


def _chromium_missing() -> str | None:
    """Why the PDF cannot be printed here (a reason to skip with), or None."""
    try:
        pdf.pdf_browser()
    except ReportError as exc:
        return str(exc)
    return None


NO_BROWSER = _chromium_missing()
browser = pytest.mark.skipif(NO_BROWSER is not None, reason=f"no PDF printing here: {NO_BROWSER}")


@dataclass
class Formats:
    emu: Emulator
    client: mnb.Client
    ids: dict[str, str]  # ledger name -> id
    paths: reports.ReportPaths
    out: Path
    printed: list[pdf.PrintedPdf]  # what Chromium printed, with the requests it blocked


@pytest.fixture(scope="module")
def rendered(contract: Contract, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Formats]:
    """The 2025Q4 report in html, xlsx and (where Chromium is) pdf, of every ledger in tonnes (Credits Issued, in
    tCO2e, would make the Summary's unit "see Unit"; ``test_a_header_without_one_unit_points_to_the_unit_column``)."""
    with start_emulator(token=f"canary-{uuid.uuid4()}") as emu, pytest.MonkeyPatch.context() as patch:
        with emu.store.transaction() as conn:
            conn.execute("UPDATE projects SET name = ? WHERE id = 123", (HOSTILE_PROJECT,))
        response = requests.post(f"{emu.url}/projects/123/ledgers", timeout=10,
                                 json={"ledger": {"name": HOSTILE_LEDGER, "unit": "t"}},
                                 headers={"Authorization": f"Bearer {emu.token}"})
        assert response.status_code in (200, 201), response.text
        client = mnb.connect(emu.token, emu.url, show_progress=False, project_id=123)
        client.generate("Net Carbon Removal", "2025-10").wait(progress=False)
        client.generate("Net Carbon Removal", "2025-11", skipped_data_point_type_ids=[7],
                        drop_existing_readings=True).wait(progress=False)
        client.generate("Net Carbon Removal", "2025-12").wait(progress=False)
        with emu.store.transaction() as conn:  # a tracking id that is a formula (the API's text is untrusted)
            conn.execute("UPDATE batches SET tracking_id = ? WHERE tracking_id = 'NCR-2025-10'", (HOSTILE_BATCH,))
        printed: list[pdf.PrintedPdf] = []
        original = pdf.PdfPrinter.print

        def recording(self: pdf.PdfPrinter, page: str, *, title: str) -> pdf.PrintedPdf:
            result = original(self, page, title=title)
            printed.append(result)
            return result

        patch.setattr(pdf.PdfPrinter, "print", recording)
        ids = dict(zip(client.ledgers()["name"], client.ledgers()["id"], strict=True))
        out = tmp_path_factory.mktemp("formats")
        formats = ("html", "xlsx") if NO_BROWSER else ("html", "pdf", "xlsx")
        with contextlib.redirect_stderr(io.StringIO()):
            paths = reports.render_report(QUARTER, ledgers=sorted(i for n, i in ids.items() if n != "Credits Issued"),
                                          project=123, out_dir=out,
                                          base_url=emu.url, token=emu.token, formats=formats)
        yield Formats(emu, client, ids, paths, out, printed)
        client.close()
        check_exchanges(emu, contract)


def _complete_sum(client: mnb.Client, ledger_id: str, period: str) -> float | None:
    batches = client.batches(ledger_id, period)
    complete = batches[batches["state"] == "complete"]
    return float(complete["output_value"].sum()) if len(complete) else None


def _token_forms(token: str) -> list[str]:
    """The token as it could be spelled: raw, percent-encoded, JSON- and HTML-escaped, base64 at every alignment."""
    raw = token.encode()
    forms = {token, quote(token, safe=""), quote_plus(token), json.dumps(token)[1:-1], token.replace("&", "&amp;")}
    for pad in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            encoded = encode(b"\0" * pad + raw).decode()
            forms.add(encoded[(4 if pad else 0):-4])
    return sorted(f for f in forms if len(f) >= 16)


# --- what is written ---------------------------------------------------------------------------------------


def test_every_format_asked_for_is_written_beside_the_notebook_and_no_side_file_stays(rendered: Formats) -> None:
    paths = rendered.paths
    stem = f"quarterly_report_{QUARTER}_"
    assert paths.ipynb.name.startswith(stem) and paths.ipynb.is_file()
    assert paths.html is not None and paths.html.is_file()
    assert paths.xlsx is not None and paths.xlsx.suffix == ".xlsx" and zipfile.is_zipfile(paths.xlsx)
    if not NO_BROWSER:
        assert paths.pdf is not None and paths.pdf.read_bytes().startswith(b"%PDF-")
    # The tables the last cell wrote for the workbook are gone; the notebook says where they went, nothing else.
    assert sorted(p.suffix for p in rendered.out.iterdir()) == sorted(
        [".ipynb", ".html", ".xlsx", *([] if NO_BROWSER else [".pdf"])])
    nb = json.loads(paths.ipynb.read_text(encoding="utf-8"))
    last = nb["cells"][-1]
    assert "export-tables" in last["metadata"]["tags"] and last["metadata"]["jupyter"]["source_hidden"] is True
    assert last["outputs"] == []
    assert nb["metadata"]["papermill"]["parameters"]["export_tables"].endswith(".tables.json")


def test_no_file_holds_the_token(rendered: Formats) -> None:
    """The canary token is in no file of the output folder, the workbook's every XML part included."""
    token = rendered.emu.token
    assert token.startswith("canary-")
    for path in rendered.out.iterdir():
        data = path.read_bytes()
        for form in _token_forms(token):
            assert form.encode() not in data, (path.name, form)
    with zipfile.ZipFile(rendered.paths.xlsx) as book:
        for name in book.namelist():
            text = book.read(name).decode("utf-8", "replace")
            assert not [form for form in _token_forms(token) if form in text], name


# --- the workbook ----------------------------------------------------------------------------------------


def _sheet(rendered: Formats, name: str) -> tuple[list[str], list[dict[str, Any]], Any]:
    """A sheet's headers, its rows (up to the first empty row: the notes come after one) and the sheet itself."""
    import openpyxl

    book = openpyxl.load_workbook(rendered.paths.xlsx)
    ws = book[name]
    headers = [c.value for c in ws[1]]
    rows = []
    for cells in ws.iter_rows(min_row=2):
        if all(c.value is None for c in cells):
            break
        rows.append({h: c for h, c in zip(headers, cells, strict=True)})
    return headers, rows, ws


def test_the_workbook_has_a_sheet_per_table_and_a_provenance_sheet(rendered: Formats) -> None:
    import openpyxl

    book = openpyxl.load_workbook(rendered.paths.xlsx)
    assert book.sheetnames == ["Summary", "Monthly totals", "Batches", "Calculations", "Data quality", "Provenance"]
    for ws in book.worksheets:
        assert ws.freeze_panes == "A2", ws.title  # the header row stays on screen
        assert all(c.font.bold for c in ws[1] if c.value is not None), ws.title
        for cell in ws[1]:  # every column fits its header's longest word (headers wrap), and none is absurdly wide
            width = ws.column_dimensions[cell.column_letter].width
            longest = max(len(word) for word in str(cell.value).split())
            assert 8 <= width <= 62 and width >= longest + 2 and cell.alignment.wrap_text, (ws.title, cell.value)
        for row in ws.iter_rows(min_row=2, max_row=ws.max_row):  # and its numbers and dates in full
            for cell in row:
                if isinstance(cell.value, float | datetime):
                    assert ws.column_dimensions[cell.column_letter].width >= 12, (ws.title, cell.coordinate)


def test_the_workbooks_totals_are_the_sums_of_the_quarters_complete_batches(rendered: Formats) -> None:
    """Each ledger's totals in the Summary (the quarter, the one before, a year before) and per month in Monthly
    totals equal the complete batches' outputs as client.batches() lists them; a ledger without batches says "not
    generated", never 0."""
    client = rendered.client
    _, summary, _ = _sheet(rendered, "Summary")
    by_ledger = {row["Ledger ID"].value: row for row in summary}
    checked = 0
    for name, ledger_id in rendered.ids.items():
        if ledger_id not in by_ledger:
            continue
        row = by_ledger[ledger_id]
        for period in (QUARTER, PREVIOUS, YEAR_AGO):
            cell = row[f"{period} total (t)"]
            expected = _complete_sum(client, ledger_id, period)
            if expected is None:
                assert cell.value == "not generated", (name, period, cell.value)
            else:
                assert isinstance(cell.value, float) and cell.value == pytest.approx(expected, abs=1e-9), (name, period)
                assert cell.number_format == "#,##0.000"
                checked += 1
        previous, year_ago = row[f"{QUARTER} total (t)"].value, row[f"{YEAR_AGO} total (t)"].value
        if isinstance(previous, float) and isinstance(year_ago, float):
            assert row[f"Change vs {YEAR_AGO} (t)"].value == pytest.approx(previous - year_ago, abs=1e-9)
            assert row[f"Change vs {YEAR_AGO} (%)"].value == pytest.approx((previous - year_ago) / year_ago * 100,
                                                                           abs=1e-6)
        assert row[f"Change vs {PREVIOUS} (t)"].value in ("2025Q3 not generated", f"{QUARTER} not generated")
    assert checked >= 4  # Net Carbon Removal and Biochar Produced, this quarter and a year before
    assert by_ledger[rendered.ids["Dry Feedstock Delivered"]][f"{QUARTER} total (t)"].value == "not generated"

    _, monthly, _ = _sheet(rendered, "Monthly totals")
    for row in monthly:
        ledger_id = row["Ledger ID"].value
        batches = client.batches(ledger_id, QUARTER)
        complete = batches[batches["state"] == "complete"]
        for month in ("2025-10", "2025-11", "2025-12"):
            mine = complete[complete["start_time"].dt.strftime("%Y-%m") == month]
            value = row[f"{month} (t)"].value
            if len(mine):
                assert value == pytest.approx(float(mine["output_value"].sum()), abs=1e-9), (ledger_id, month)
            else:
                assert value == "not generated", (ledger_id, month, value)
    ncr = next(r for r in monthly if r["Ledger ID"].value == rendered.ids["Net Carbon Removal"])
    assert "⚠ 2025-11" in ncr["Flags"].value and "overstated" in ncr["Flags"].value


def test_the_batches_sheet_has_the_apis_values_and_real_utc_dates(rendered: Formats) -> None:
    headers, rows, _ = _sheet(rendered, "Batches")
    batches = rendered.client.batches(list(rendered.ids.values()), QUARTER)
    assert len(rows) == len(batches)
    by_id = {row["Batch ID"].value: row for row in rows}
    for batch in batches.itertuples():
        row = by_id[batch.id]
        assert row["State"].value == batch.state
        if batch.state == "complete":
            assert row["Output (t)"].value == pytest.approx(float(batch.output_value), abs=0)  # as the API gave it
        else:  # a batch that is not complete has no output: an empty cell beside its state
            assert row["Output (t)"].value is None
        for header, column in (("Start (UTC)", "start_time"), ("End (UTC)", "end_time"),
                               ("Created (UTC)", "created_at"), ("Updated (UTC)", "updated_at")):
            cell = row[header]
            assert isinstance(cell.value, datetime) and cell.value.tzinfo is None, (header, cell.value)
            expected = pd.Timestamp(getattr(batch, column)).tz_convert(UTC).tz_localize(None).to_pydatetime()
            assert cell.value == expected, header
            assert cell.number_format == "yyyy-mm-dd hh:mm:ss"
        month = row["Month (UTC)"]
        assert isinstance(month.value, datetime) and month.number_format == "yyyy-mm"
        assert month.value == datetime(batch.start_time.year, batch.start_time.month, 1)
    assert [h for h in headers if h and "UTC" in h] == ["Month (UTC)", "Start (UTC)", "End (UTC)", "Created (UTC)",
                                                        "Updated (UTC)"]
    november = next(r for r in rows if r["Month (UTC)"].value == datetime(2025, 11, 1)
                    and r["Ledger"].value == "Net Carbon Removal")
    assert november["Skipped inputs"].value == "Electricity Consumption"
    assert november["Flags"].value.startswith("⚠ Generated without Electricity Consumption")
    _, provenance, _ = _sheet(rendered, "Provenance")
    stamp = {r["Field"].value: r["Value"] for r in provenance}["Generated at (UTC)"]
    assert isinstance(stamp.value, datetime) and stamp.value.tzinfo is None
    assert abs(stamp.value - datetime.now(UTC).replace(tzinfo=None)).total_seconds() < 600


def test_the_workbooks_headers_carry_units(rendered: Formats) -> None:
    summary, _, _ = _sheet(rendered, "Summary")
    assert {f"{QUARTER} total (t)", f"{PREVIOUS} total (t)", f"Change vs {YEAR_AGO} (t)",
            f"Change vs {YEAR_AGO} (%)"} <= set(summary)
    assert "Output (t)" in _sheet(rendered, "Batches")[0]
    assert {"2025-10 (t)", f"{QUARTER} total (t)"} <= set(_sheet(rendered, "Monthly totals")[0])
    calculations, rows, _ = _sheet(rendered, "Calculations")
    # The calculations' unit as the API gives it ("t"), as the Unit column says: never relabelled "t CO2e".
    assert {"Value (t)", "Signed value (t)", "Net removal (t)"} <= set(calculations)
    assert not [h for h in calculations if h and "CO2e" in h] and {row["Unit"].value for row in rows} == {"t"}
    # How net removal was computed: each batch's signed values add up to its net removal.
    sums: dict[str, float] = {}
    for row in rows:
        sums[row["Batch ID"].value] = sums.get(row["Batch ID"].value, 0.0) + row["Signed value (t)"].value
    for row in rows:
        assert sums[row["Batch ID"].value] == pytest.approx(row["Net removal (t)"].value, abs=5e-4)
    assert len(sums) == 3


def test_hostile_text_is_neutralised_and_no_cell_is_a_formula(rendered: Formats) -> None:
    """A ledger named `=HYPERLINK(...)` and a tracking id ` \\t@HYPERLINK(...)` are text cells starting with `'`, as
    the CSV export writes them; the workbook holds no formula at all (no <f> element in any sheet's XML)."""
    _, summary, _ = _sheet(rendered, "Summary")
    hostile = next(r for r in summary if r["Ledger ID"].value == rendered.ids[HOSTILE_LEDGER])
    assert hostile["Ledger"].value == "'" + HOSTILE_LEDGER and hostile["Ledger"].data_type == "s"
    _, batches, _ = _sheet(rendered, "Batches")
    tracking = [r["Tracking ID"] for r in batches if r["Tracking ID"].value and "HYPERLINK" in r["Tracking ID"].value]
    assert [c.value for c in tracking] == ["'" + HOSTILE_BATCH] and tracking[0].data_type == "s"
    calculations = _sheet(rendered, "Calculations")[1]
    assert "'" + HOSTILE_BATCH in {r["Batch"].value for r in calculations}
    with zipfile.ZipFile(rendered.paths.xlsx) as book:
        for name in book.namelist():
            if name.startswith("xl/worksheets/"):
                assert not re.search(rb"<(?:\w+:)?f[ >]", book.read(name)), name
    # Negative numbers stay numbers.
    assert any(isinstance(r["Signed value (t)"].value, float) and r["Signed value (t)"].value < 0
               for r in calculations)


def test_text_cells_are_made_safe_for_a_spreadsheet() -> None:
    from openpyxl import Workbook

    from mangrove_nb.forms.explorer import _formula_like as csv_rule

    samples = ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1", " =1", "\n=1", "  @x", "a=b", "1", "", "−1", "'=1",
               "#N/A", "plain"]
    for text in samples:  # the same rule as the batch explorer's CSV export
        assert xlsx._formula_like(text) == csv_rule(text), repr(text)
    ws = Workbook().active
    assert ws is not None
    for text in ("=HYPERLINK(\"x\")", "#N/A", "bell\x07and\x00null", "x" * 40_000, "secret-token-abc here"):
        cell = ws.cell(row=1, column=1)
        xlsx._put_text(cell, text, lambda t: t.replace("secret-token-abc", "[redacted]"))
        assert cell.data_type == "s"
        assert "\x07" not in cell.value and "\x00" not in cell.value and len(cell.value) <= 32_767
        assert "secret-token-abc" not in cell.value
    assert xlsx._text_cell("=1", lambda t: t) == "'=1"


def _batches(ledger: str, months: list[str], value: float) -> pd.DataFrame:
    """A batches frame with one complete batch of ``value`` per month (as the emulator's tracking ids go)."""
    return pd.DataFrame([{"id": f"bat_{ledger}_{month}_{n}", "ledger_id": ledger, "ledger_name": "A",
                          "tracking_id": f"T-{month}-{n}", "start_time": pd.Timestamp(f"{month}-01", tz="UTC"),
                          "state": "complete", "output_value": value, "feedstock": pd.NA}
                         for n, month in enumerate(months)]).astype({"output_value": "Float64", "feedstock": "string"})


def test_an_annual_summary_compares_with_the_year_before_once_and_flags_a_doubtful_total() -> None:
    """An annual report's previous period and the one a year before are the same year: one total and one change
    against it, not two identical columns. A month generated twice is counted (as the report does) and flagged."""
    period = reports.report_period("2024")
    previous, year_ago = period.previous(), reports.year_before(period)
    assert previous.label == year_ago.label == "2023"
    selected = pd.DataFrame({"id": ["lgr_a"], "name": ["A"], "unit": ["t"], "has_model": [True]})
    months = [f"2024-{m:02d}" for m in range(1, 13)]
    batches = _batches("lgr_a", [*months, "2024-03"], 10.0)  # March twice
    before = _batches("lgr_a", [f"2023-{m:02d}" for m in range(1, 13)], 8.0)
    summary = reports.summary(selected, batches, before, before, period, previous, year_ago)
    sheet = xlsx._summary_sheet(summary, period, previous, year_ago)
    headers = [name for name, _ in sheet.columns]
    assert [h for h in headers if "2023" in h] == ["2023 total (t)", "Change vs 2023 (t)", "Change vs 2023 (%)"]
    row = dict(zip(headers, sheet.rows[0], strict=True))
    assert row["Months generated (of 12)"] == 12 and row["2024 total (t)"] == 130.0 and row["2023 total (t)"] == 96.0
    assert row["Change vs 2023 (t)"] == 34.0 and row["Months generated twice"] == 1
    assert row["Flags"].startswith("⚠ 1 month of 2024 with two or more complete batches")
    totals = xlsx._totals_sheet(reports.monthly_totals(batches, selected, period), selected, period, batches, None)
    monthly = dict(zip([name for name, _ in totals.columns], totals.rows[0], strict=True))
    assert monthly["2024-03 (t)"] == 20.0 and monthly["2024 total (t)"] == 130.0
    assert "⚠ 2024-03: two or more complete batches" in monthly["Flags"]


def test_a_total_that_leaves_out_a_failed_batch_is_flagged_and_not_compared_in_the_workbook() -> None:
    """2024Q3's August has one feedstock complete and one failed (the API sends 0.0 for it): the Summary's change
    against 2024Q3 is "not compared" with the batch named in Flags, the failed batch's Output is an empty cell beside
    its state, and a count of 0 is 0, never blank."""
    period, previous, year_ago = (reports.quarter_period(q) for q in ("2024Q4", "2024Q3", "2023Q4"))
    selected = pd.DataFrame({"id": ["lgr_a"], "name": ["A"], "unit": ["t"], "has_model": [True]})
    batches = _batches("lgr_a", ["2024-10", "2024-11", "2024-12"], 10.0)
    before = _batches("lgr_a", ["2024-07", "2024-08", "2024-08", "2024-09"], 5.0).assign(feedstock=["x", "x", "y",
                                                                                                    "x"])
    before.loc[2, ["state", "output_value"]] = ["failed", 0.0]
    summary = reports.summary(selected, batches, before, before.iloc[:0], period, previous, year_ago)
    sheet = xlsx._summary_sheet(summary, period, previous, year_ago)
    row = dict(zip([name for name, _ in sheet.columns], sheet.rows[0], strict=True))
    assert row["2024Q3 total (t)"] == 15.0
    assert row["Change vs 2024Q3 (t)"] == "not compared: 2024Q3 leaves out T-2024-08-2 (failed)"
    assert row["Change vs 2024Q3 (%)"] == "not compared"
    assert "⚠ the 2024Q3 total leaves out T-2024-08-2 (failed): no change against 2024Q3 is computed" in row["Flags"]
    assert row["Months without a value"] == 0 and row["Failed batches"] == 0
    assert dict(sheet.columns)["Months without a value"] == "integer"
    # The quarter's own failed batch: its month is flagged in Monthly totals, and it has no output in Batches.
    now = pd.concat([batches, _batches("lgr_a", ["2024-11"], 0.0).assign(state="failed", id="bat_failed",
                                                                          tracking_id="T-failed", feedstock="y")],
                    ignore_index=True)
    now.loc[now["state"] == "complete", "feedstock"] = "x"
    now["output_unit"] = "t"
    for column in ("end_time", "created_at", "updated_at"):
        now[column] = now["start_time"]
    totals = xlsx._totals_sheet(reports.monthly_totals(now, selected, period), selected, period, now, None)
    monthly = dict(zip([name for name, _ in totals.columns], totals.rows[0], strict=True))
    assert monthly["2024-11 (t)"] == 10.0
    assert monthly["Flags"] == "⚠ 2024-11: incomplete, the total leaves out T-failed (failed)"
    batch_sheet = xlsx._batches_sheet(now, selected, None, period)
    failed = dict(zip([name for name, _ in batch_sheet.columns],
                      next(r for r in batch_sheet.rows if r[3] == "T-failed"), strict=True))
    assert failed["State"] == "failed" and failed["Output (t)"] is None
    assert failed["Flags"] == "not counted in the totals (not complete)"


def test_a_header_without_one_unit_points_to_the_unit_column() -> None:
    assert xlsx._unit(["t", "t", None]) == "t"
    assert xlsx._unit(["t", "tCO2e"]) == "see Unit"
    assert xlsx._unit([]) == "see Unit"


def test_the_workbook_refuses_a_file_that_is_not_a_reports_tables() -> None:
    with pytest.raises(ReportError, match="not JSON"):
        xlsx.workbook("{not json")
    with pytest.raises(ReportError, match="not the tables of a report"):
        xlsx.workbook(json.dumps({"format": "something else", "sheets": []}))


# --- the PDF ---------------------------------------------------------------------------------------------


def _pdf_pages(rendered: Formats) -> list[str]:
    from pypdf import PdfReader

    assert rendered.paths.pdf is not None
    reader = PdfReader(rendered.paths.pdf)
    return [" ".join(page.extract_text().replace("\u00a0", " ").split()) for page in reader.pages]


@browser
@pytest.mark.browser
@pytest.mark.slow
def test_the_pdf_holds_the_summary_totals_the_sections_and_page_numbers(rendered: Formats) -> None:
    pages = _pdf_pages(rendered)
    text = " ".join(pages)
    assert len(pages) >= 3
    for name in ("Net Carbon Removal", "Biochar Produced"):
        total = _complete_sum(rendered.client, rendered.ids[name], QUARTER)
        assert total is not None and f"{total:,.3f} t" in pages[0], name  # the summary is on the first page
    assert "not generated" in pages[0]
    at = 0
    for section in SECTIONS:  # the HTML's sections, in order ("Coverage" is also a column of the summary)
        at = text.find(section, at)
        assert at >= 0, section
    for number, page in enumerate(pages, start=1):
        assert f"page {number} of {len(pages)}" in page, number
        # The footer's title is the project's name as text: its markup escaped, never interpreted.
        assert f"{HOSTILE_PROJECT}: Quarterly report {QUARTER}" in page, number
    assert "⚠" in text or "may be overstated" in text  # November's skipped input is flagged as in the HTML


@browser
@pytest.mark.browser
@pytest.mark.slow
def test_printing_the_report_attempted_no_network_request(rendered: Formats) -> None:
    assert len(rendered.printed) == 1
    assert rendered.printed[0].blocked == ()


class _Counting(BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@browser
@pytest.mark.browser
@pytest.mark.slow
def test_a_page_that_asks_for_the_network_gets_nothing_and_says_what_was_blocked() -> None:
    """Images, a stylesheet, a frame, a font and a script's fetch aimed at a loopback server: Chromium prints the
    page, the server receives nothing, and every request is listed as blocked."""
    _Counting.hits = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Counting)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    page = f"""<!DOCTYPE html><html><head><title>t</title>
<link rel="stylesheet" href="{base}/style.css">
<style>@font-face {{ font-family: x; src: url({base}/font.woff); }} body {{ font-family: x; }}
h1 {{ background: url({base}/background.png); }}</style></head>
<body><h1>Hello</h1><img src="{base}/image.png"><iframe src="{base}/frame.html"></iframe>
<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=">
<script>fetch("{base}/fetch"); new Image().src = "{base}/script.png";</script></body></html>"""
    try:
        with pdf.PdfPrinter(pdf.pdf_browser()) as printer:
            printed = printer.print(page, title="t")
    finally:
        server.shutdown()
        server.server_close()
    assert printed.data.startswith(b"%PDF-")
    assert _Counting.hits == []
    blocked = {url.removeprefix(base) for url in printed.blocked}
    assert {"/style.css", "/image.png", "/frame.html"} <= blocked, blocked
    assert not blocked & {"/fetch", "/script.png"}  # JavaScript is off: the script never ran
    assert all(url.startswith(base) for url in printed.blocked)


def test_the_footer_escapes_the_title() -> None:
    footer = pdf.footer_template('<img src=x onerror="alert(1)"> & Co\n')
    assert "<img" not in footer and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt; &amp; Co" in footer
    assert '<span class="pageNumber"></span> of <span class="totalPages"></span>' in footer


# --- refusals before anything runs -------------------------------------------------------------------------


def _no_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    import nbclient

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a kernel was started")

    monkeypatch.setattr(nbclient.NotebookClient, "__init__", refuse)


def test_an_unknown_format_is_exit_2_before_anything_runs(make_emulator: Any, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    emu = make_emulator()
    _no_kernel(monkeypatch)
    monkeypatch.setenv("MANGROVE_API_URL", emu.url)
    monkeypatch.setenv("MANGROVE_API_TOKEN", emu.token)
    for typo, hint in (("html,docx", "'docx'"), ("xslx", "did you mean 'xlsx'?"), (",", "No report format")):
        with pytest.raises(SystemExit) as exited:  # argparse's usage error
            main(["report", "--quarter", "2025Q1", "--out", str(tmp_path / "out"), "--format", typo])
        captured = capsys.readouterr()
        assert exited.value.code == 2, typo
        assert captured.out == "" and len(captured.err.strip().splitlines()) == 1, captured.err
        assert hint in captured.err and "html, pdf, xlsx" in captured.err, captured.err
    with pytest.raises(ValidationError, match="the formats are html, pdf, xlsx") as caught:
        reports.render_report("2025Q1", out_dir=tmp_path / "out", base_url=emu.url, token=emu.token,
                              formats=["html", "PDF", "docx"])
    assert caught.value.argument == "format"
    assert emu.exchanges == [] and not (tmp_path / "out").exists()


def test_formats_are_read_in_any_case_and_order() -> None:
    assert reports.parse_formats("xlsx, PDF,html,pdf") == ("html", "pdf", "xlsx")
    assert reports.parse_formats(["xlsx"]) == ("xlsx",)
    assert reports.FORMATS == ("html", "pdf", "xlsx")


def test_no_chromium_is_one_line_before_anything_runs(make_emulator: Any, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    emu = make_emulator()
    _no_kernel(monkeypatch)
    monkeypatch.setenv("MANGROVE_API_URL", emu.url)
    monkeypatch.setenv("MANGROVE_API_TOKEN", emu.token)
    monkeypatch.delenv(pdf.BROWSER_ENV, raising=False)
    monkeypatch.setattr(pdf, "SYSTEM_CHROMIUM", tmp_path / "no-chromium")
    monkeypatch.setenv("PATH", str(tmp_path))  # no chromium, chromium-browser or google-chrome on it
    if "playwright.sync_api" not in sys.modules:
        pytest.importorskip("playwright.sync_api", reason="Playwright is missing: that error comes first")
    code = main(["report", "--quarter", "2025Q1", "--out", str(tmp_path / "out"), "--format", "html,pdf"])
    captured = capsys.readouterr()
    assert code == 1 and captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1, captured.err
    assert captured.err.startswith("mangrove-nb report: A PDF needs Chromium, and none was found")
    assert 'pip install "mangrove_nb[pdf]"' in captured.err and "sudo apt-get install chromium" in captured.err
    assert pdf.BROWSER_ENV in captured.err
    # A MANGROVE_NB_CHROMIUM that is not an executable is named.
    monkeypatch.setenv(pdf.BROWSER_ENV, str(tmp_path / "nowhere" / "chrome"))
    with pytest.raises(ReportError, match=f"{pdf.BROWSER_ENV} is .*not an executable file"):
        reports.render_report("2025Q1", out_dir=tmp_path / "out", base_url=emu.url, token=emu.token, formats="pdf")
    assert emu.exchanges == [] and not (tmp_path / "out").exists()


def test_no_playwright_is_one_line_saying_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "playwright", None)  # import playwright... raises ImportError
    monkeypatch.setitem(sys.modules, "playwright.sync_api", None)
    with pytest.raises(ReportError) as caught:
        pdf.pdf_browser()
    message = str(caught.value)
    assert "\n" not in message and 'pip install "mangrove_nb[pdf]"' in message
    assert "sudo apt-get install chromium" in message and "downloads no browser" in message


# --- review 14b: exit codes, a browser that does not start, interrupts while writing, chart labels ----------------


def test_a_chromium_setting_that_is_no_executable_is_configuration_exit_2(
        make_emulator: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    """README: configuration errors exit 2; a bad MANGROVE_NB_CHROMIUM exited 1."""
    if "playwright.sync_api" not in sys.modules:
        pytest.importorskip("playwright.sync_api", reason="Playwright is missing: that error comes first")
    emu = make_emulator()
    _no_kernel(monkeypatch)
    monkeypatch.setenv("MANGROVE_API_URL", emu.url)
    monkeypatch.setenv("MANGROVE_API_TOKEN", emu.token)
    monkeypatch.setenv(pdf.BROWSER_ENV, str(tmp_path / "nowhere" / "chrome"))
    assert main(["report", "--quarter", "2025Q1", "--out", str(tmp_path / "out"), "--format", "pdf"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{pdf.BROWSER_ENV} is " in err and "not an executable file" in err
    assert emu.exchanges == [] and not (tmp_path / "out").exists()


@browser
def test_a_browser_that_does_not_start_fails_the_report_before_any_cell_runs(
        make_emulator: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    """MANGROVE_NB_CHROMIUM=/bin/true failed only once the kernel had run every cell; now it fails when the kernel
    answers, before the first cell, and nothing is written."""
    emu = make_emulator()
    monkeypatch.setenv("MANGROVE_API_URL", emu.url)
    monkeypatch.setenv("MANGROVE_API_TOKEN", emu.token)
    monkeypatch.setenv(pdf.BROWSER_ENV, "/bin/true")
    out = tmp_path / "out"
    assert main(["report", "--quarter", "2024Q4", "--out", str(out), "--format", "html,pdf"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "mangrove-nb report: Chromium (/bin/true) did not start" in err
    assert "nothing was rendered" in err and "[1/" not in err
    assert sorted(p.name for p in out.iterdir()) == []


class _Printer:
    """A PdfPrinter stand-in whose print() is interrupted (Ctrl-C while the PDF is made); records close()."""

    closed: ClassVar[list[bool]] = []

    def __init__(self, executable: str) -> None:
        self.executable = executable

    def start(self) -> None:
        pass

    def ready(self) -> None:
        pass

    def print(self, page: str, *, title: str) -> pdf.PrintedPdf:
        raise KeyboardInterrupt

    def close(self) -> None:
        self.closed.append(True)


def test_ctrl_c_while_the_pdf_is_made_says_the_report_is_incomplete_and_leaves_no_tables_file(
        make_emulator: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Interrupted during the PDF step, a report's .html and .ipynb were there without the PDF asked for, unsaid,
    and .<stem>.tables.json stayed in the output folder: now the interrupt says which files were written, the
    tables file goes on every way out, and the browser is closed before the interrupt goes on."""
    from mangrove_nb.reports import run

    emu = make_emulator()
    monkeypatch.setattr(run, "pdf_browser", lambda: "/usr/bin/chromium")
    monkeypatch.setattr(run, "PdfPrinter", _Printer)
    _Printer.closed.clear()
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt) as caught:
        reports.render_report("2024Q4", out_dir=out, base_url=emu.url, token=emu.token, project=123,
                              formats="html,pdf,xlsx", progress=False)
    notes = caught.value.__notes__
    assert notes == ["2024Q4 is incomplete: its notebook and HTML were written, not its PDF and workbook."]
    assert sorted(p.name for p in out.iterdir()) == ["quarterly_report_2024Q4.html", "quarterly_report_2024Q4.ipynb"]
    assert _Printer.closed == [True]
    (out / "quarterly_report_2024Q4.pdf").write_bytes(b"%PDF- an older one")
    with pytest.raises(KeyboardInterrupt) as caught:
        reports.render_report("2024Q4", out_dir=out, base_url=emu.url, token=emu.token, project=123,
                              formats="html,pdf", progress=False)
    assert caught.value.__notes__ == ["2024Q4 is incomplete: its notebook and HTML were written, not its PDF "
                                      "(quarterly_report_2024Q4.pdf beside it is from an earlier render)."]

    class ClosedOnCtrlC(_Printer):  # Ctrl-C while the browser closes, every file written: said so, and raised
        def print(self, page: str, *, title: str) -> pdf.PrintedPdf:
            return pdf.PrintedPdf(b"%PDF-1.4 printed", ())

        def close(self) -> None:
            super().close()
            raise KeyboardInterrupt

    monkeypatch.setattr(run, "PdfPrinter", ClosedOnCtrlC)
    with pytest.raises(KeyboardInterrupt) as caught:
        reports.render_report("2024Q4", out_dir=out, base_url=emu.url, token=emu.token, project=123,
                              formats="html,pdf", progress=False)
    assert caught.value.__notes__ == ["2024Q4's notebook, HTML and PDF were written."]
    assert (out / "quarterly_report_2024Q4.pdf").read_bytes() == b"%PDF-1.4 printed"


def test_closing_the_browser_waits_for_it_through_ctrl_c_then_raises_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while the browser was being closed left Playwright's thread running as the interpreter exited
    (SIGSEGV): close() now waits for the browser to stop, then re-raises the interrupt."""
    import time as clock

    stopped: list[bool] = []

    class Slow(pdf.PdfPrinter):
        def _launch(self) -> None:
            clock.sleep(0.2)

        def _stop(self) -> None:
            clock.sleep(0.3)
            stopped.append(True)

    real_wait = pdf.wait
    calls: list[int] = []

    def interrupted_once(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt  # Ctrl-C while close() waits
        return real_wait(*args, **kwargs)

    monkeypatch.setattr(pdf, "wait", interrupted_once)
    printer = Slow("/usr/bin/chromium")
    printer.start()
    with pytest.raises(KeyboardInterrupt):
        printer.close()
    assert stopped == [True] and printer._pool is None
    printer.close()  # again: nothing to do


@pytest.mark.parametrize("given", ["--year 1900", "--year 1677", "--quarter 1969Q3..1970Q2", "--quarter 2101Q1"])
def test_a_period_outside_the_years_a_report_covers_is_refused_before_anything_runs(
        given: str, make_emulator: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    """--year 1900 passed the checks and failed in cell 4 on the API's 422 (1677: pandas' date range), leaving
    _FAILED.ipynb."""
    emu = make_emulator()
    _no_kernel(monkeypatch)
    monkeypatch.setenv("MANGROVE_API_URL", emu.url)
    monkeypatch.setenv("MANGROVE_API_TOKEN", emu.token)
    assert main(["report", *given.split(), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is outside the years a report covers (1970 to 2100)" in err
    assert emu.exchanges == [] and not (tmp_path / "out").exists()


def test_chart_labels_with_control_characters_draw_without_a_warning(make_emulator: Any) -> None:
    """A ledger name or feedstock with a tab or CR made matplotlib warn 'Glyph 9 missing from font(s)', shown as a
    red block in the report's Charts section (HTML and PDF)."""
    import warnings

    emu = make_emulator()
    client = mnb.connect(emu.token, emu.url, show_progress=False)
    selected = reports.select_ledgers(client.ledgers(), None)
    ids = selected["id"].tolist()
    period, previous = mnb.parse_period("2024Q4"), mnb.parse_period("2024Q3")
    batches, before = client.batches(ids, period), client.batches(ids, previous)
    selected["name"] = [f"{name}\twith\ra\x1b[31mtab\u202e" for name in selected["name"]]
    batches["feedstock"] = ["pine\tresidue\x07" if isinstance(v, str) else v for v in batches["feedstock"]]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        charts = reports.figures(batches, before, selected, period, previous)
    assert charts and [str(w.message) for w in caught] == []
    for chart in charts:
        text = str(getattr(chart, "alt", "")) + str(getattr(chart, "caption", ""))
        assert not re.search(r"[\x00-\x1f\x7f\u202e]", text), text


# What API text must not bring into the page, the notebook or the workbook: C0 controls but tab, LF and CR, DEL, C1
# controls, bidi embeddings, overrides, isolates and marks, zero-width space, word joiner, BOM, interlinear
# annotations; and the parameters an escape sequence would leave behind.
UNSAFE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200b\u200e\u200f\u202a-\u202e\u2060\u2066-\u2069"
                    r"\ufeff\ufff9-\ufffb]|\[[0-9;]+m")
PERSIAN = "می\u200cخواهم"  # a zero-width non-joiner it needs
SCIENTIST = "👩\u200d🔬"  # an emoji sequence, a zero-width joiner


def _strings(value: Any) -> Iterator[str]:
    """Every string in a JSON value, the keys of its objects too."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _shown(notebook: dict[str, Any]) -> list[str]:
    """Every string of a saved notebook but its sources (ours): the cells' outputs and metadata, the notebook's
    metadata."""
    found = list(_strings(notebook["metadata"]))
    for cell in notebook["cells"]:
        found += [*_strings(cell.get("metadata", {})), *_strings(cell.get("outputs", []))]
    return found


def _workbook_strings(book: bytes | Path) -> list[str]:
    import openpyxl

    loaded = openpyxl.load_workbook(io.BytesIO(book) if isinstance(book, bytes) else book)
    return [cell.value for ws in loaded.worksheets for row in ws.iter_rows() for cell in row
            if isinstance(cell.value, str)]


def test_control_and_bidi_characters_of_api_text_never_reach_the_page(contract: Contract, tmp_path: Path) -> None:
    """ESC, SOH and BEL reached the report's HTML raw, and U+202E (right-to-left override) its <title>, <h1> and
    tables, where it reorders what a reader sees. The page keeps the text around them, and its tabs and
    non-breaking spaces. The saved notebook kept them in its outputs' metadata (the project's and ledgers' names
    the cells hand back), in the notebook's metadata and in MIME types outside a list; the workbook kept U+202E and
    turned ESC into U+FFFD with "[0m" left behind. A Persian name's non-joiner and an emoji's joiner stay."""
    name = f"Cascade\x1b[31m Red\x07 Bell\x01 \u202eevil {SCIENTIST}"
    with start_emulator(token=f"canary-{uuid.uuid4()}") as emu:
        with emu.store.transaction() as conn:
            conn.execute("UPDATE projects SET name = ? WHERE id = 123", (name,))
            conn.execute("UPDATE ledgers SET name = ? WHERE name = 'Biochar Produced'",
                         (f"Biochar\u202e\x1b[0mProduced\u2066\u200b {PERSIAN}\ufeff",))
        with contextlib.redirect_stderr(io.StringIO()):
            paths = reports.render_report("2024Q4", out_dir=tmp_path, base_url=emu.url, token=emu.token, project=123,
                                          formats=("html", "xlsx"))
        check_exchanges(emu, contract)
    assert paths.html is not None and paths.xlsx is not None
    page = paths.html.read_text(encoding="utf-8")
    assert not UNSAFE.search(page)
    assert f"<title>Cascade Red Bell evil {SCIENTIST}: Quarterly report 2024Q4</title>" in page
    assert f'<h1 class="mangrove-title">Cascade Red Bell evil {SCIENTIST}</h1>' in page
    assert f"BiocharProduced {PERSIAN}" in page
    assert "\xa0" in page  # figures and their units stay together
    notebook = json.loads(paths.ipynb.read_text(encoding="utf-8"))
    shown = _shown(notebook)
    assert f"Cascade Red Bell evil {SCIENTIST}" in notebook["metadata"]["mangrove_nb"]["project"]["name"]
    assert {row["Ledger"] for row in notebook["metadata"]["mangrove_nb"]["summary"]} >= {f"BiocharProduced {PERSIAN}"}
    assert any(f"BiocharProduced {PERSIAN}" in text for text in shown)
    assert [text for text in shown if UNSAFE.search(text)] == []
    cells = _workbook_strings(paths.xlsx)
    assert f"BiocharProduced {PERSIAN}" in cells
    assert [text for text in cells if UNSAFE.search(text) or "\ufffd" in text] == []


def test_a_failing_custom_templates_partial_notebook_holds_none_of_them(make_emulator: Any, tmp_path: Path) -> None:
    """A custom template that printed the ledgers' names and raised with them kept U+202E and ESC in
    _FAILED.ipynb: a stream's text, the error's value and its traceback. (The traceback loses IPython's colours.)"""
    import nbformat

    emu = make_emulator(token=f"canary-{uuid.uuid4()}")
    with emu.store.transaction() as conn:
        conn.execute("UPDATE ledgers SET name = ? WHERE name = 'Biochar Produced'",
                     (f"Biochar\u202e\x1b[0mProduced {PERSIAN}",))
    template = nbformat.read(reports.DEFAULT_TEMPLATE, as_version=4)
    template.cells.insert(4, nbformat.v4.new_code_cell(
        'print("Ledgers:", ", ".join(selected["name"]))\n'
        'raise ValueError("cannot report on " + ", ".join(selected["name"]))'))
    nbformat.write(template, tmp_path / "custom.ipynb")
    with pytest.raises(ReportError) as caught:
        reports.render_report("2024Q4", out_dir=tmp_path / "out", base_url=emu.url, token=emu.token, project=123,
                              template=tmp_path / "custom.ipynb", progress=False)
    assert caught.value.partial is not None
    notebook = json.loads(caught.value.partial.read_text(encoding="utf-8"))
    outputs = [o for c in notebook["cells"] for o in c.get("outputs", [])]
    errors = [o for o in outputs if o["output_type"] == "error"]
    assert len(errors) == 1 and f"BiocharProduced {PERSIAN}" in errors[0]["evalue"]
    assert any(f"BiocharProduced {PERSIAN}" in line for line in errors[0]["traceback"])
    streams = ["".join(o["text"]) for o in outputs if o["output_type"] == "stream"]
    assert any("Ledgers: " in text and f"BiocharProduced {PERSIAN}" in text for text in streams), streams
    shown = _shown(notebook)
    assert [text for text in shown if UNSAFE.search(text) or "\x1b" in text] == []
    assert emu.token not in caught.value.partial.read_text(encoding="utf-8")


def test_a_text_cell_loses_escapes_controls_and_bidi_characters_before_the_formula_check() -> None:
    """The workbook kept U+202E, and ESC became U+FFFD with "[0m" left behind; an override before "=" hid a formula
    from the check, which now sees the text as shown."""
    keep = str
    assert xlsx._text_cell("Biochar\u202e\x1b[0mProduced\u200b", keep) == "BiocharProduced"
    assert xlsx._text_cell('\u202e\x1b[0m=HYPERLINK("x")', keep) == "'=HYPERLINK(\"x\")"
    assert xlsx._text_cell(f"{PERSIAN} {SCIENTIST}\nline 2", keep) == f"{PERSIAN} {SCIENTIST}\nline 2"
    hostile = "Biochar\u202e\x1b[0mProduced\x07\u2066"
    tables = {"format": xlsx.FORMAT, "version": xlsx.VERSION,
              "sheets": [{"name": "Summary", "columns": [{"name": f"Ledger {hostile}", "kind": "text"}],
                          "rows": [[hostile], [f"\u202e={hostile}"]], "notes": [f"Note {hostile}"]}]}
    cells = _workbook_strings(xlsx.workbook(json.dumps(tables)))
    assert cells == ["Ledger BiocharProduced", "BiocharProduced", "'=BiocharProduced", "Note BiocharProduced"]


def test_the_shared_notebook_loses_them_in_every_output_and_metadata_and_keeps_images(tmp_path: Path) -> None:
    """Only a list of text MIME types and stream text were filtered: an output's metadata, the notebook's and the
    cells' metadata, an error's value and traceback, text/csv and image/svg+xml kept API text's escapes and bidi
    overrides. Base64 data (an image) stays byte for byte."""
    import nbformat

    from mangrove_nb.settings import Secret

    bad = "Biochar\u202e\x1b[0mProduced\u2066\x07"
    nb = nbformat.v4.new_notebook()
    nb.metadata["mangrove_nb"] = {"project": {"name": bad}, bad: [bad]}
    cell = nbformat.v4.new_code_cell("ours = '\\u202e'")
    cell.metadata["note"] = bad
    png = "iVBORw0KGgo/tmp/AAAA\n"
    cell.outputs = [
        nbformat.v4.new_output("display_data", data={"text/csv": f"a,{bad}\n", "image/svg+xml": f"<svg>{bad}</svg>",
                                                     "image/png": png, "text/plain": f"{SCIENTIST} {bad}"},
                               metadata={"mangrove_nb": {"summary": [{"Ledger": bad, "Total": 1.5}]}}),
        nbformat.v4.new_output("stream", name="stdout", text=f"{bad}\n"),
        nbformat.v4.new_output("error", ename="ValueError", evalue=f"no {bad}",
                               traceback=["\x1b[0;31mValueError\x1b[0m: no " + bad]),
    ]
    nb.cells.append(cell)
    cleaned = reports.clean._cleaned(nb, [Secret("canary-x")], tmp_path)
    nbformat.validate(cleaned)
    shown = _shown(json.loads(nbformat.writes(cleaned)))
    assert [text for text in shown if UNSAFE.search(text) or "\x1b" in text] == []
    output, stream, error = cleaned.cells[0].outputs
    assert output.data["text/csv"] == "a,BiocharProduced\n" and output.data["image/png"] == png
    assert output.data["text/plain"] == f"{SCIENTIST} BiocharProduced"
    assert output.metadata["mangrove_nb"]["summary"] == [{"Ledger": "BiocharProduced", "Total": 1.5}]
    assert cleaned.metadata["mangrove_nb"] == {"project": {"name": "BiocharProduced"},
                                               "BiocharProduced": ["BiocharProduced"]}
    assert error.traceback == ["ValueError: no BiocharProduced"] and stream.text == "BiocharProduced\n"
    assert cleaned.cells[0].source == "ours = '\\u202e'"  # the sources are ours
