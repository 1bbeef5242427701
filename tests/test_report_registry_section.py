"""The quarterly report's Registry section: which of the period's batches are on which registry report and in what
status, what is still unallocated (balance per ledger and unit), a batch on two reports flagged; with no report at
all it says so, and when the reports cannot be read (404, 403) it is one line and the rest of the report renders.

The section's functions run against the emulator over HTTP; one test renders whole reports through the template.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
from helpers import Elements, connect_to

import mangrove_nb as mnb
from mangrove_nb import reports
from mangrove_nb.emulator import Emulator
from mangrove_nb.periods import parse_period
from mangrove_nb.reports.sections import Bullets, Registry, Table, registry_status, registry_tables

NCR = "Net Carbon Removal"
Q4_TOTAL = 227.174  # the three 2024Q4 Net Carbon Removal batches, allocated to "2024Q4 Quarterly Report"
Q3_TOTAL = 192.272  # the three 2024Q3 ones, on the draft "Rejected by registry (demo)"
HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(2)>"


@pytest.fixture
def client(emulator: Emulator) -> Iterator[mnb.Client]:
    with connect_to(emulator.url, emulator.token, project_id=123) as connected:
        yield connected


def section(client: mnb.Client, quarter: str, **options: Any) -> tuple[Registry, list[Table | Bullets]]:
    """The section for ``quarter`` as the template computes it: every ledger, the quarter's batches."""
    period = parse_period(quarter)
    selected = reports.select_ledgers(client.ledgers(), None)
    batches = client.batches(selected["id"].tolist(), period, details=True)
    found = registry_status(client, batches, selected, period, **options)
    return found, registry_tables(found, period)


def shown(parts: list[Table | Bullets]) -> str:
    return "\n".join(part._repr_html_() for part in parts)


def rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def report_id(client: mnb.Client, name: str) -> str:
    listed = client.reports()
    return str(listed.loc[listed["name"] == name, "id"].item())


def test_the_quarters_batches_on_their_report_and_nothing_left_unallocated(client: mnb.Client) -> None:
    found, parts = section(client, "2024Q4", project=123)
    assert found.unreadable is None
    listed = {r["Report"]: r for r in rows(found.reports)}
    assert set(listed) == {"2024Q4 Quarterly Report", "2025Q1 Quarterly Report", "Rejected by registry (demo)"}
    complete = listed["2024Q4 Quarterly Report"]
    assert complete["Status"] == "complete" and complete["Batches"] == 3 and complete["Of this quarter"] == 3
    assert complete["Allocated"] == pytest.approx(Q4_TOTAL) and complete["Unit"] == "t"
    assert listed["Rejected by registry (demo)"]["Of this quarter"] == 0

    placed = rows(found.placements)
    assert [r["Tracking id"] for r in placed] == ["NCR-2024-10", "NCR-2024-11", "NCR-2024-12"]
    assert {(r["Report"], r["Report status"], r["Ledger"]) for r in placed} == {
        ("2024Q4 Quarterly Report", "complete", NCR)}
    assert sum(r["Amount"] for r in placed) == pytest.approx(Q4_TOTAL)
    assert "Flag" not in found.placements.columns and found.twice.empty

    # Only the ledgers a report holds and the removal ledgers: biochar and feedstock tonnes are not reported.
    left = rows(found.unallocated)
    assert [(r["Ledger"], r["Unit"]) for r in left] == [(NCR, "t")]
    assert left[0]["Complete batches"] == 3 and left[0]["Output"] == pytest.approx(Q4_TOTAL)
    assert left[0]["Allocated to complete reports"] == pytest.approx(Q4_TOTAL)
    assert left[0]["Unallocated balance"] == 0 and left[0]["On no report"] == 0

    text = html.unescape(shown(parts))
    assert [type(p).__name__ for p in parts] == ["Table", "Table", "Bullets", "Table"]
    assert "Registry reports" in text and "The quarter's batches on reports" in text and "Still unallocated" in text
    assert "No batch of the quarter is on two reports." in text
    still = Elements(parts[-1]._repr_html_()).cells
    assert [text for _, _, text in still[-4:]] == ["227.174", "none", "none", "none"]  # nothing left reads "none"


def test_the_sections_tables_are_narrow_enough_for_a_small_window(client: mnb.Client) -> None:
    """The "still unallocated" table (eight columns, headers up to 31 characters) and the batches on reports (eight or
    nine) overflowed a 700 px window. Shown now with at most seven columns and short headers; the frames keep every
    column and their long names."""
    q3 = client.batches(NCR, "2024Q3")
    client.fill_report(report_id(client, "2025Q1 Quarterly Report"), q3)  # a batch on two reports: the Flag column
    for quarter in ("2024Q4", "2024Q3"):
        found, parts = section(client, quarter, project=123)
        tables = [p for p in parts if isinstance(p, Table) and p.title != "Registry reports"]
        assert [t.title for t in tables] == ["The quarter's batches on reports", "Still unallocated"]
        for table in tables:
            headers = [str(c) for c in table.frame.columns]
            assert len(headers) <= 7 and max(map(len, headers)) <= 21, (quarter, headers)
    placed, still = (t.frame for t in tables)
    assert list(still.columns) == ["Ledger (unit)", "Batches", "Output", "Allocated", "Unallocated",
                                   "of which on a draft", "of which on no report"]
    assert still.iloc[0]["Ledger (unit)"] == f"{NCR} (t)" and list(found.unallocated.columns)[4] == \
        "Allocated to complete reports"
    assert list(placed.columns) == ["Ledger", "Tracking id", "Month", "State", "Report", "Amount (t)", "Flag"]
    assert set(placed["Report"]) == {"2025Q1 Quarterly Report (draft)", "Rejected by registry (demo) (draft)"}


def test_a_batch_on_two_reports_is_flagged_and_a_drafts_batches_are_still_unallocated(client: mnb.Client) -> None:
    q3 = client.batches(NCR, "2024Q3")
    client.fill_report(report_id(client, "2025Q1 Quarterly Report"), q3)  # two drafts now hold 2024Q3
    found, parts = section(client, "2024Q3")
    assert len(found.twice) == 3 and set(found.twice["Tracking id"]) == {"NCR-2024-07", "NCR-2024-08", "NCR-2024-09"}
    assert all("2025Q1 Quarterly Report (draft)" in r and "Rejected by registry (demo) (draft)" in r
               for r in found.twice["Reports"])
    assert len(found.placements) == 6 and set(found.placements["Flag"]) == {"⚠ on 2 reports"}
    left = rows(found.unallocated)[0]
    # Nothing is allocated yet: the whole balance is left, all of it on unsubmitted reports.
    assert left["Allocated to complete reports"] == 0
    assert left["Unallocated balance"] == pytest.approx(Q3_TOTAL)
    assert left["On a draft or submitting report"] == pytest.approx(Q3_TOTAL) and left["On no report"] == 0
    text = html.unescape(shown(parts))
    assert "NCR-2024-08" in text and "on 2 reports" in text
    assert "A batch is reported once: keep it on one of these drafts only." in text


def test_a_quarter_on_no_report_is_all_unallocated(client: mnb.Client) -> None:
    client.generate(NCR, "2025Q1").wait(timeout=30)
    total = float(client.batches(NCR, "2025Q1")["ledger_balance"].sum())
    found, parts = section(client, "2025Q1")
    assert found.placements.empty and found.twice.empty
    left = rows(found.unallocated)
    assert [(r["Ledger"], r["Unit"]) for r in left] == [(NCR, "t")]
    assert left[0]["Unallocated balance"] == pytest.approx(total) and left[0]["On no report"] == pytest.approx(total)
    assert "None of the quarter&#x27;s batches is on a report." in shown(parts)
    assert "0.000" not in shown(parts)  # nothing allocated, nothing on a draft: "none", never 0.000


def test_an_api_without_reports_says_so(client: mnb.Client) -> None:
    found, parts = section(client, "2024Q4", project=999)  # a project the API lists no report for
    assert found.unreadable is None and found.reports.empty
    text = html.unescape(shown(parts))
    assert "The API lists no registry report for this project" in text
    assert len(found.unallocated) == 1  # the removal ledger's balance is still shown
    assert "Registry reports" not in text


@pytest.mark.parametrize(("status", "error"), [(404, "NotFoundError"), (403, "PermissionDeniedError")])
def test_unreadable_reports_are_one_line(emulator: Emulator, client: mnb.Client, status: int, error: str) -> None:
    emulator.faults.fail("list-all-reports", status, count=5, message="<b>no reports here</b>")
    found, parts = section(client, "2024Q4")
    assert found.unreadable is not None and "\n" not in found.unreadable
    assert found.unreadable.startswith("The registry section could not be read") and error in found.unreadable
    assert len(parts) == 1 and isinstance(parts[0], Bullets)
    assert shown(parts).count("<li>") == 1 and "<b>no reports here" not in shown(parts)


def test_hostile_report_names_appear_only_escaped(emulator: Emulator, client: mnb.Client) -> None:
    rid = report_id(client, "2024Q4 Quarterly Report")
    with emulator.store.transaction() as conn:  # a complete report cannot be renamed through the API
        conn.execute("UPDATE reports SET name = ? WHERE id = ?", (HOSTILE, rid))
    requests.patch(f"{emulator.url}/reports/{report_id(client, 'Rejected by registry (demo)')}", timeout=10,
                   headers={"Authorization": f"Bearer {emulator.token}"},
                   json={"report": {"name": HOSTILE + " draft"}}).raise_for_status()
    found, parts = section(client, "2024Q4")
    assert HOSTILE in set(found.reports["Report"]) and HOSTILE in set(found.placements["Report"])
    markup = shown(parts)
    assert html.escape(HOSTILE, quote=False) in markup or html.escape(HOSTILE) in markup
    parsed = Elements(markup)
    assert parsed.named("script") == [] and parsed.named("img") == []
    assert not [name for _, attrs in parsed.tags for name in attrs if name.lower().startswith("on")]


def test_the_rendered_report_has_the_registry_section_and_renders_without_it(make_emulator: Any,
                                                                              tmp_path: Path) -> None:
    """Through the template, in a kernel: the Registry section after the batches; then with /reports refused
    (403), one line says so and every other section is still there."""
    emu = make_emulator()
    paths = reports.render_report("2024Q4", out_dir=tmp_path / "a", base_url=emu.url, token=emu.token, project=123,
                                  progress=False)
    page = paths.html.read_text(encoding="utf-8")
    assert "<h2" in page and ">Registry<" in page.replace("¶", "")
    registry = page[page.index("Registry reports"):page.index("Appendix: provenance")]
    assert "2024Q4 Quarterly Report" in registry and "NCR-2024-11" in registry and "Still unallocated" in registry

    emu.faults.fail("list-all-reports", 403, count=5)
    paths = reports.render_report("2024Q4", out_dir=tmp_path / "b", base_url=emu.url, token=emu.token, project=123,
                                  progress=False)
    page = html.unescape(paths.html.read_text(encoding="utf-8"))
    assert page.count("The registry section could not be read") == 1 and "PermissionDeniedError" in page
    assert "Registry reports" not in page
    for still in ("Summary", "Totals by month", "Data quality", "NCR-2024-11", "Appendix: provenance"):
        assert still in page, still


def test_a_report_holding_several_ledgers_is_flagged(client: mnb.Client) -> None:
    """A report's allocation is one sum: biochar tonnes on a removal report overstate it. The section says so."""
    demo = report_id(client, "Rejected by registry (demo)")
    biochar = str(client.batches("Biochar Produced", "2024Q3", state="complete")["id"].iloc[0])
    client.fill_report(demo, [*client.report(demo).batch_ids, biochar], ledgers=[NCR, "Biochar Produced"])
    found, parts = section(client, "2024Q3")
    flags = dict(zip(found.reports["Report"], found.reports["Flag"], strict=True))
    assert flags == {"2024Q4 Quarterly Report": "", "2025Q1 Quarterly Report": "",
                     "Rejected by registry (demo)": "⚠ 2 ledgers"}
    [said] = found.mixed
    assert "Rejected by registry (demo) (draft) adds up batches of 2 ledgers" in said
    assert f"{NCR}, Biochar Produced" in said and "overstate" in said
    text = html.unescape(shown(parts))
    assert "⚠ 2 ledgers" in text and said in text
    # One ledger a report: no Flag column at all.
    client.fill_report(demo, client.report(demo).batch_ids[:3], ledgers=[NCR])
    assert "Flag" not in section(client, "2024Q3")[0].reports.columns
