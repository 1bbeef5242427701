"""Quarterly reports against the emulator: rendering, determinism, failure, safety to share, papermill, the CLI.

Kernel start-up is the cost, so one module-scoped emulator (canary token, hostile ledger names seeded through
the create endpoint) serves a report rendered twice (``rendered``, ``rerendered``) that most tests inspect.
Its exchanges are checked against the contract when the module ends, as ``make_emulator`` does per test.
"""

from __future__ import annotations

import ast
import base64
import contextlib
import copy
import html
import io
import json
import logging
import os
import pickle
import re
import runpy
import sys
import time
import tomllib
import traceback
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd
import pytest
import requests
from conftest import check_exchanges
from contract import Contract
from helpers import REPORT_SECTIONS, Elements

import mangrove_nb as mnb
from mangrove_nb import reports
from mangrove_nb.cli import main
from mangrove_nb.emulator import Emulator
from mangrove_nb.reports import ReportError, ReportPaths, build_report, render_report
from mangrove_nb.settings import Secret
from mangrove_nb.testing import emulator as start_emulator

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
HOSTILE = ("<img src=x onerror=alert(1)>", '"><script>alert(1)</script>', "</script>")
HOSTILE_PROJECT = "<script>alert('project')</script> & <b>Co</b>"
SECTIONS = REPORT_SECTIONS
CODE_CELLS = 16  # the template's 15 (the last, hidden, writes the tables for --format xlsx) and the injected ones
IMAGE_DATA = re.compile(r"data:image/[a-z+]+;base64,[A-Za-z0-9+/=\s\\n]+")


# --- fixtures -------------------------------------------------------------------------------------------


@dataclass
class Rendered:
    paths: ReportPaths
    nb: Any
    html: str
    stderr: str


@dataclass
class Seeded:
    emu: Emulator
    client: mnb.Client
    ledgers: dict[str, str]  # name -> id, the hostile ones included
    hostile_ids: list[str]


@pytest.fixture(scope="module")
def seeded(contract: Contract) -> Iterator[Seeded]:
    """An emulator with a canary token, three ledgers whose names are markup (made through the API) and a project
    whose name is markup (the API cannot rename a project: written to the emulator's store)."""
    with start_emulator(token=f"canary-{uuid.uuid4()}") as emu:
        with emu.store.transaction() as conn:
            conn.execute("UPDATE projects SET name = ? WHERE id = 123", (HOSTILE_PROJECT,))
        hostile_ids = []
        for name in HOSTILE:
            response = requests.post(f"{emu.url}/projects/123/ledgers", json={"ledger": {"name": name, "unit": "t"}},
                                     headers={"Authorization": f"Bearer {emu.token}"}, timeout=10)
            assert response.status_code in (200, 201), response.text
            hostile_ids.append(response.json()["id"])
        client = mnb.connect(emu.token, emu.url, show_progress=False)
        ledgers = dict(zip(client.ledgers()["name"], client.ledgers()["id"], strict=True))
        yield Seeded(emu, client, ledgers, hostile_ids)
        client.close()
        check_exchanges(emu, contract)


def _render(seeded: Seeded, out: Path, **options: Any) -> Rendered:
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        paths = render_report("2024Q4", ledgers=sorted(seeded.ledgers.values()), out_dir=out, project=123,
                              base_url=seeded.emu.url, token=seeded.emu.token, **options)
    return Rendered(paths, nbformat.read(paths.ipynb, as_version=4), paths.html.read_text(encoding="utf-8"),
                    stderr.getvalue())


@pytest.fixture(scope="module")
def rendered(seeded: Seeded, tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    """2024Q4 (batches exist) for every ledger, the hostile ones and the one without a model included."""
    return _render(seeded, tmp_path_factory.mktemp("report-a"))


@pytest.fixture(scope="module")
def rerendered(seeded: Seeded, rendered: Rendered, tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    return _render(seeded, tmp_path_factory.mktemp("report-b"))


# --- helpers --------------------------------------------------------------------------------------------


def assert_inert(markup: str) -> Elements:
    """No script, no active attribute, no remote or non-image source: what an API string could inject."""
    parsed = Elements(markup)
    assert parsed.named("script") == []
    for tag in ("iframe", "object", "embed", "svg", "math", "base", "form", "frame"):
        assert parsed.named(tag) == [], tag
    for tag, attrs in parsed.tags:
        active = [name for name in attrs if name.lower().startswith("on")]
        assert not active, f"<{tag}> has event handler attribute(s) {active}"
        assert not str(attrs.get("href") or "").lower().startswith(("javascript:", "http:", "https:", "//")), attrs
    for attrs in parsed.named("img"):
        assert str(attrs.get("src")).startswith("data:image/png;base64,"), attrs.get("src")
    return parsed


def html_outputs(nb: Any) -> list[str]:
    return [output["data"]["text/html"] for cell in nb.cells for output in cell.get("outputs", [])
            if "text/html" in output.get("data", {})]


def cell_html(nb: Any, cell_id: str) -> str:
    """The HTML a cell of the executed report shows (its outputs joined)."""
    cell = next(c for c in nb.cells if c.get("id") == cell_id)
    return "\n".join(o["data"]["text/html"] for o in cell.get("outputs", []) if "text/html" in o.get("data", {}))


class Rows(HTMLParser):
    """The rows of every table in an HTML text, each a list of its cells' text (header rows included)."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def table_rows(markup: str) -> dict[str, list[str]]:
    """The body rows of the tables in ``markup``, by their first cell (a ledger's name, a term...)."""
    return {row[0]: row[1:] for row in Rows(markup).rows if row}


def without_images(text: str) -> str:
    """Base64 image data can spell anything ("/tmp" included): searches for paths skip it."""
    return IMAGE_DATA.sub("data:image/…", text)


def outputs_without_clock(nb: Any) -> list[Any]:
    """Every cell's outputs, with the one wall-clock value (the generated-at line) taken out."""
    clock = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(?::\d{2})?(?: UTC|[+]00:00)")
    return [json.loads(clock.sub("<clock>", json.dumps(cell.get("outputs", []), sort_keys=True)))
            for cell in nb.cells]


# --- the report -----------------------------------------------------------------------------------------


def test_2024q4_report_shows_the_existing_batches_and_their_totals(seeded: Seeded, rendered: Rendered) -> None:
    # A report on chosen ledgers (here all eight, by id) has a name of its own, never the all-ledger report's.
    stem = rendered.paths.ipynb.stem
    assert re.fullmatch(r"quarterly_report_2024Q4_8-ledgers-[0-9a-f]{10}", stem), stem
    assert rendered.paths.html.name == f"{stem}.html"
    facts = rendered.nb.metadata["mangrove_nb"]
    assert facts["quarter"] == "2024Q4" and facts["previous"] == "2024Q3"
    # Totals recomputed here from the API: complete batches only, per month.
    batches = seeded.client.batches(seeded.ledgers["Net Carbon Removal"], "2024Q4")
    complete = batches[batches["state"] == "complete"]
    expected = {f"{t:%Y-%m}": round(float(v), 6) for t, v in zip(complete["start_time"], complete["output_value"],
                                                                     strict=True)}
    row = next(r for r in facts["totals"] if r["Ledger"] == "Net Carbon Removal")
    assert {m: row[m] for m in ("2024-10", "2024-11", "2024-12")} == expected
    assert row["2024Q4 total"] == pytest.approx(sum(expected.values()))
    # Failed batches are not counted: October's feedstock total leaves the 112 % almond-shell batch out.
    feedstock = seeded.client.batches(seeded.ledgers["Dry Feedstock Delivered"], "2024-10")
    assert set(feedstock["state"]) == {"complete", "failed"}
    dfd = next(r for r in facts["totals"] if r["Ledger"] == "Dry Feedstock Delivered")
    assert dfd["2024-10"] == pytest.approx(float(feedstock.loc[feedstock["state"] == "complete", "output_value"].sum()))
    for tracking in complete["tracking_id"]:
        assert tracking in rendered.html
    # Sections in order, each a heading of the HTML.
    headings = [h for h in re.findall(r"<h2[^>]*>(.*?)<a", rendered.html)]
    assert headings == SECTIONS
    assert seeded.emu.count("create-batch-generation") == 0  # a report run never generates


def test_findings_name_the_failed_batch_and_the_gaps(rendered: Rendered) -> None:
    findings = rendered.nb.metadata["mangrove_nb"]["findings"]
    failed = [f for f in findings if f["Severity"] == "error"]
    assert [(f["Ledger"], f["Month"], f["Batch"]) for f in failed] == [
        ("Dry Feedstock Delivered", "2024-10", "DFD-2024-10-almond-shells")]
    assert "112 %" in failed[0]["Finding"]
    gaps = {(f["Ledger"], f["Month"]) for f in findings if f["Finding"].startswith("Not generated")}
    assert ("Biochar Applied to Soil", "2024-11") in gaps  # manual-select: no batch in 2024
    assert ("Credits Issued", "2024-12") in gaps  # no model
    assert ("Net Carbon Removal", "2024-10") not in gaps
    order = [f["Severity"] for f in findings]
    assert order == sorted(order, key=["error", "warning", "info"].index)


def test_progress_is_printed_per_cell(rendered: Rendered) -> None:
    lines = [line for line in rendered.stderr.splitlines() if line.startswith("[")]
    code_cells = sum(cell.cell_type == "code" for cell in rendered.nb.cells)
    assert len(lines) == code_cells == CODE_CELLS
    assert lines[0].startswith(f"[1/{code_cells}] Parameters")
    assert lines[-2].startswith(f"[{code_cells - 1}/{code_cells}] Appendix: provenance")
    assert lines[-1].startswith(f"[{code_cells}/{code_cells}] Export (hidden, shows nothing)")
    assert "Report 2024Q4 rendered in" in rendered.stderr


def test_executed_notebook_is_valid_nbformat_without_widget_state(rendered: Rendered) -> None:
    nbformat.validate(rendered.nb)
    raw = json.loads(rendered.paths.ipynb.read_text(encoding="utf-8"))
    assert "widgets" not in raw["metadata"]
    for cell in raw["cells"]:
        assert "widgets" not in cell["metadata"] and "execution" not in cell["metadata"]
        for output in cell.get("outputs", []):
            assert output["output_type"] != "error"
            data = output.get("data", {})
            assert not {"application/vnd.jupyter.widget-view+json", "application/javascript"} & set(data)
            assert "filenames" not in output.get("metadata", {})
            if data:
                assert "text/plain" in data  # every rich output keeps a static fallback
    images = [o for c in raw["cells"] for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) >= 2
    for image in images:
        assert base64.b64decode(image["data"]["image/png"]).startswith(b"\x89PNG")


def test_neither_file_contains_the_token(seeded: Seeded, rendered: Rendered) -> None:
    canary = seeded.emu.token.encode()
    assert canary.startswith(b"canary-")
    for path in rendered.paths.ipynb.parent.iterdir():
        assert canary not in path.read_bytes(), path.name
    assert canary not in rendered.stderr.encode()


def test_no_local_absolute_paths(rendered: Rendered) -> None:
    places = {"/root", "/home", "/tmp", str(REPO), sys.prefix, str(rendered.paths.ipynb.parent), str(Path.home())}
    for text in (rendered.paths.ipynb.read_text(encoding="utf-8"), rendered.html):
        searchable = without_images(text)
        found = [place for place in places if place in searchable]
        assert not found, found


def test_html_is_self_contained_and_scriptless(seeded: Seeded, rendered: Rendered) -> None:
    page = assert_inert(rendered.html)
    assert page.named("link") == []  # styles are inline
    assert len(page.named("img")) >= 2
    assert not re.search(r"@import|url\((?!\s*['\"]?data:)", rendered.html, re.IGNORECASE)
    remote = set(re.findall(r"https?://[^\s\"'<>)]+", without_images(rendered.html)))
    assert remote == {seeded.emu.url}  # the provenance line, as text
    # Code hidden: no code editor or prompt is rendered, and no source line shows.
    assert not [a for _, a in page.tags if {"jp-InputPrompt", "jp-CodeMirrorEditor", "highlight"}
                & set(str(a.get("class")).split())]
    assert "select_ledgers" not in rendered.html and "import mangrove_nb" not in rendered.html
    assert "<table" in rendered.html and "mangrove-table" in rendered.html


def test_hostile_ledger_names_appear_only_escaped(seeded: Seeded, rendered: Rendered) -> None:
    page = assert_inert(rendered.html)
    text = "".join(page.text)
    for name in HOSTILE:
        assert name in text  # shown, as text
    assert "&lt;img src=x onerror=alert(1)&gt;" in rendered.html
    assert '"&gt;&lt;script&gt;alert(1)&lt;/script&gt;' in rendered.html
    for raw in ("<img src=x", "<script", "</script"):
        assert raw not in rendered.html.lower()
    for markup in html_outputs(rendered.nb):
        assert_inert(markup)
    plain = json.dumps([o.get("data", {}).get("text/plain") for c in rendered.nb.cells for o in c.get("outputs", [])])
    assert all(json.dumps(name)[1:-1] in plain for name in HOSTILE)
    # The failing-cell and browser reports are HTML we emit too; Table is the one way API text becomes HTML.
    table = reports.Table(pd.DataFrame({"Ledger": list(HOSTILE)}), title=HOSTILE[0], note=HOSTILE[1],
                          empty=HOSTILE[2])
    assert_inert(table._repr_html_())
    assert_inert(reports.Table(pd.DataFrame({"x": []}), empty=HOSTILE[0])._repr_html_())
    assert_inert(reports.Table(pd.DataFrame({"x": ["a"]}), note=list(HOSTILE))._repr_html_())
    assert_inert(reports.Header(HOSTILE[1], list(HOSTILE))._repr_html_())
    assert_inert(reports.Bullets([(h, h) for h in HOSTILE], note=HOSTILE[0])._repr_html_())
    assert_inert(reports.Bullets([], empty=HOSTILE[1])._repr_html_())


def test_hostile_names_in_every_new_section_appear_only_escaped(rendered: Rendered) -> None:
    """The project's name (the title and the page's <title>) and the ledgers' names in the summary, warnings,
    totals, coverage and batches are text, never markup."""
    page = assert_inert(rendered.html)
    title = re.search(r"<title>(.*?)</title>", rendered.html, re.DOTALL)
    assert title and "&lt;script&gt;" in title.group(1) and "<script" not in title.group(1)
    h1 = re.search(r'<h1 class="mangrove-title">(.*?)</h1>', rendered.html)
    assert h1 and html.unescape(h1.group(1)) == HOSTILE_PROJECT and "&lt;script&gt;" in h1.group(1)
    assert page.named("b") == []  # the project's <b> stayed text
    for cell_id in ("summary", "warnings", "totals", "coverage", "batches", "appendix"):
        shown = cell_html(rendered.nb, cell_id)
        assert_inert(shown)
        text = "".join(Elements(shown).text)
        for name in HOSTILE:
            assert name in text, (cell_id, name)


def test_same_data_gives_the_same_numbers_and_fingerprint(rendered: Rendered, rerendered: Rendered) -> None:
    first, second = rendered.nb.metadata["mangrove_nb"], rerendered.nb.metadata["mangrove_nb"]
    assert re.fullmatch(r"[0-9a-f]{64}", first["fingerprint"])
    assert first["fingerprint"] == second["fingerprint"]
    for key in ("totals", "summary", "findings", "ledgers", "net_removal", "coverage", "project"):
        assert first[key] == second[key], key
    # Every output (tables, images, text) is identical but for the generated-at clock.
    assert outputs_without_clock(rendered.nb) == outputs_without_clock(rerendered.nb)
    assert rendered.nb.cells[2].source == rerendered.nb.cells[2].source


def test_fingerprint_changes_with_the_data_and_ignores_row_order(seeded: Seeded) -> None:
    batches = seeded.client.batches(list(seeded.ledgers.values()), "2024Q4")
    digest = reports.fingerprint(batches)
    assert reports.fingerprint(batches.iloc[::-1]) == digest
    assert reports.fingerprint(batches.iloc[1:]) != digest
    changed = batches.copy()
    changed.loc[0, "output_value"] = changed.loc[0, "output_value"] + 0.001
    assert reports.fingerprint(changed) != digest
    fetched_again = seeded.client.batches(list(seeded.ledgers.values()), "2024Q4")
    assert fetched_again.attrs != {} and reports.fingerprint(fetched_again) == digest


# --- the report for the person who receives it -----------------------------------------------------------


@dataclass
class Quarters:
    emu: Emulator
    client: mnb.Client
    ids: dict[str, str]  # ledger name -> id
    q1: Rendered  # 2025Q1: only Net Carbon Removal generated (its model also writes Biochar Produced)
    q4: Rendered  # 2025Q4: November generated without Electricity Consumption


@pytest.fixture(scope="module")
def quarters(contract: Contract, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Quarters]:
    """A fresh emulator where 2025Q1 and 2025Q4 are generated on Net Carbon Removal only, November 2025 with its
    electricity input skipped (a meter failed; the month's other readings dropped too, the overstatement the report
    must flag); both reports rendered, the project from MANGROVE_PROJECT_ID."""
    with start_emulator() as emu, pytest.MonkeyPatch.context() as patch:
        patch.setenv("MANGROVE_PROJECT_ID", "123")
        client = mnb.connect(emu.token, emu.url, show_progress=False)
        client.generate("Net Carbon Removal", "2025Q1").wait(progress=False)
        client.generate("Net Carbon Removal", "2025-10").wait(progress=False)
        client.generate("Net Carbon Removal", "2025-11", skipped_data_point_type_ids=[7],
                        drop_existing_readings=True).wait(progress=False)
        client.generate("Net Carbon Removal", "2025-12").wait(progress=False)
        rendered = []
        for quarter in ("2025Q1", "2025Q4"):
            out = tmp_path_factory.mktemp(f"report-{quarter}")
            stderr = io.StringIO()
            with contextlib.redirect_stderr(stderr):
                paths = render_report(quarter, out_dir=out, base_url=emu.url, token=emu.token)
            rendered.append(Rendered(paths, nbformat.read(paths.ipynb, as_version=4),
                                     paths.html.read_text(encoding="utf-8"), stderr.getvalue()))
        ids = dict(zip(client.ledgers()["name"], client.ledgers()["id"], strict=True))
        yield Quarters(emu, client, ids, *rendered)
        client.close()
        check_exchanges(emu, contract)


NOT_ZERO = re.compile(r"(?<![\d,.])0\.000(?!\d)|[−-]\s?100(?:\.0)?\s?%")


def test_a_ledger_or_month_without_batches_is_not_generated_never_zero(quarters: Quarters) -> None:
    """2025Q1 with only Net Carbon Removal generated: the other ledgers read "not generated" in the summary and the
    monthly totals, with no 0.000 and no −100 %, and no change is computed against them."""
    q1 = quarters.q1
    assert q1.paths.html.name == "quarterly_report_2025Q1.html"  # every ledger with a model: the plain name
    summary = table_rows(cell_html(q1.nb, "summary"))
    for name in ("Dry Feedstock Delivered", "Biochar Applied to Soil"):
        total, previous, year_ago, coverage_text = summary[name]
        assert total == "not generated"
        assert previous == year_ago == "2025Q1 not generated"
        assert coverage_text == "0 of 3 months generated"
        assert not NOT_ZERO.search(" ".join(summary[name]))
    totals = table_rows(cell_html(q1.nb, "totals"))
    for name in ("Dry Feedstock Delivered", "Biochar Applied to Soil"):
        assert totals[name] == ["t", "not generated", "not generated", "not generated", "not generated"]
    facts = {row["Ledger"]: row for row in q1.nb.metadata["mangrove_nb"]["summary"]}
    for name in ("Dry Feedstock Delivered", "Biochar Applied to Soil"):
        assert facts[name]["Total"] is None and facts[name]["Generated"] == 0
        assert facts[name]["Change vs previous"] is None and facts[name]["Change vs previous (%)"] is None
    assert facts["Net Carbon Removal"]["Generated"] == 3
    assert summary["Net Carbon Removal"][3] == "3 of 3 months generated"
    shown = " ".join(" ".join(Elements(re.sub(r"<style.*?</style>", "", markup, flags=re.DOTALL)).text)
                     for markup in html_outputs(q1.nb))
    assert "not generated" in shown and not NOT_ZERO.search(shown)
    # A comparison with a quarter that was not generated says so: 2025Q4 against 2025Q3, which nobody generated.
    q4 = table_rows(cell_html(quarters.q4.nb, "summary"))
    assert q4["Net Carbon Removal"][1] == "2025Q3 not generated"
    assert q4["Net Carbon Removal"][2].startswith(("+", "−"))  # against 2024Q4, which the seed generated


def test_the_summary_totals_and_changes_equal_the_batches_sums(quarters: Quarters) -> None:
    """Each ledger's total in the summary is the sum of its complete batches as client.batches() lists them, for
    the quarter, the one before and the same one a year before; the changes are their differences."""
    client = quarters.client
    for rendered, quarter, previous, year_ago in ((quarters.q1, "2025Q1", "2024Q4", "2024Q1"),
                                                  (quarters.q4, "2025Q4", "2025Q3", "2024Q4")):
        facts = {row["Ledger"]: row for row in rendered.nb.metadata["mangrove_nb"]["summary"]}
        shown = table_rows(cell_html(rendered.nb, "summary"))
        for name, row in facts.items():
            sums = {}
            for key, span in (("Total", quarter), ("Previous total", previous), ("Year-ago total", year_ago)):
                batches = client.batches(quarters.ids[name], span)
                complete = batches[batches["state"] == "complete"]
                sums[key] = round(float(complete["output_value"].sum()), 6) if len(complete) else None
                assert row[key] == (pytest.approx(sums[key]) if sums[key] is not None else None), (name, key)
            if sums["Total"] is not None:
                assert shown[name][0].startswith(f"{sums['Total']:,.3f}\u00a0t"), shown[name]
            for key, then in (("previous", "Previous total"), ("year ago", "Year-ago total")):
                if row[f"Change vs {key}"] is not None:
                    assert row[f"Change vs {key}"] == pytest.approx(sums["Total"] - sums[then], abs=1e-6)
    ncr = {row["Ledger"]: row for row in quarters.q1.nb.metadata["mangrove_nb"]["summary"]}["Net Carbon Removal"]
    change = ncr["Change vs previous (%)"]
    assert change == pytest.approx((ncr["Total"] - ncr["Previous total"]) / ncr["Previous total"] * 100, abs=1e-4)
    assert table_rows(cell_html(quarters.q1.nb, "summary"))["Net Carbon Removal"][1].startswith(
        f"{change:+.1f}\u00a0%".replace("-", "−"))


def test_how_net_removal_was_computed_adds_up_to_each_months_net_figure(quarters: Quarters) -> None:
    """The computation section's terms (removal minus emissions, from client.calculations) add up, month by month,
    to the net figure, which is the batch's output on the ledger."""
    for rendered, quarter in ((quarters.q1, "2025Q1"), (quarters.q4, "2025Q4")):
        rows = pd.DataFrame(rendered.nb.metadata["mangrove_nb"]["net_removal"])
        batches = quarters.client.batches("Net Carbon Removal", quarter)
        expected = {f"{t:%Y-%m}": float(v) for t, v in zip(batches["start_time"], batches["output_value"],
                                                            strict=True)}
        assert set(rows["Month"]) == set(expected) and len(expected) == 3
        for month, mine in rows.groupby("Month"):
            terms = mine[mine["Sign"] != 0]
            assert set(terms["Role"]) == {"removal", "emission"}
            assert terms["Signed"].sum() == pytest.approx(expected[month], abs=0.0005), month
            assert mine["Batch output"].tolist() == [pytest.approx(expected[month])] * len(mine)
        shown = table_rows(cell_html(rendered.nb, "net"))
        months = sorted(expected)
        assert shown["Batch"][:3] == [f"NCR-{m}" for m in months]  # each month traced to its batch
        net = shown["= Net removal (the ledger's figure)"]
        assert net[:3] == [f"{expected[m]:,.3f}" for m in months]
        assert net[3] == f"{sum(expected.values()):,.3f}"
        assert "Sum of the terms (differs!)" not in shown
        for term in ("+ Gross removal", "− Transport emissions", "− Electricity emissions"):
            assert term in shown
    # The calculations shown are the client's, and no finding says a batch's terms do not add up.
    findings = quarters.q1.nb.metadata["mangrove_nb"]["findings"]
    assert not [f for f in findings if "do not add up" in f["Finding"] or "differs" in f["Finding"]]


def test_a_batch_generated_with_a_skipped_input_is_flagged(quarters: Quarters) -> None:
    """November 2025 was generated without Electricity Consumption: data quality and the warnings flag the batch
    (its emissions are not counted, so its net removal is overstated), the summary's total and the month carry ⚠,
    and the computation shows the zeroed term; Biochar Produced (same run, does not read electricity) is info."""
    q4 = quarters.q4
    findings = q4.nb.metadata["mangrove_nb"]["findings"]
    flagged = [f for f in findings if f["Batch"] == "NCR-2025-11"]
    assert len(flagged) == 1 and flagged[0]["Severity"] == "warning"
    assert flagged[0]["Finding"].lower().startswith(
        "generated without electricity consumption: its emissions are not counted")
    assert "overstated" in flagged[0]["Finding"]
    # Biochar Produced (same run): none of its calculations says it read electricity, so what the skip changed is
    # unknown and its figure may be overstated: a warning, never "unaffected".
    produced = [f for f in findings if f["Batch"] == "BCP-2025-11"]
    assert [f["Severity"] for f in produced] == ["warning"]
    assert "may be overstated" in produced[0]["Finding"] and "unaffected" not in produced[0]["Finding"]
    quality = "".join(Elements(cell_html(q4.nb, "quality")).text)
    assert "Generated without Electricity Consumption: its emissions are not counted" in quality
    warned = "".join(Elements(cell_html(q4.nb, "warnings")).text)
    assert "NCR-2025-11" in warned and "its emissions are not counted" in warned
    summary = table_rows(cell_html(q4.nb, "summary"))
    assert summary["Net Carbon Removal"][0].endswith("⚠") and summary["Biochar Produced"][0].endswith("⚠")
    assert "may overstate the figure" in cell_html(q4.nb, "summary")
    assert {row["Ledger"]: row["Overstated"] for row in q4.nb.metadata["mangrove_nb"]["summary"]}[
        "Net Carbon Removal"] == 1
    totals = table_rows(cell_html(q4.nb, "totals"))["Net Carbon Removal"]
    assert [cell.endswith("⚠") for cell in totals[1:]] == [False, True, False, True]
    net = table_rows(cell_html(q4.nb, "net"))
    assert net["− Electricity emissions"][1] == "0.000\u00a0⚠"
    rows = pd.DataFrame(q4.nb.metadata["mangrove_nb"]["net_removal"])
    zeroed = rows[(rows["Month"] == "2025-11") & (rows["Term"] == "Electricity emissions")]
    assert zeroed["Value"].tolist() == [0.0] and zeroed["Note"].str.contains("Electricity Consumption").all()
    # 2025Q1 has no skipped input: no such finding.
    assert not [f for f in quarters.q1.nb.metadata["mangrove_nb"]["findings"] if "without" in f["Finding"]]


def test_the_report_opens_with_the_project_and_summary_and_ends_with_provenance(quarters: Quarters) -> None:
    """The project's name (MANGROVE_PROJECT_ID) is the title, the summary and the warnings come first, and the
    provenance (API, ids, fingerprint) is the appendix at the end; the ledgers run from carbon removal upstream."""
    q1 = quarters.q1
    headings = re.findall(r"<h([12])[^>]*>(.*?)(?:<a|</h[12]>)", q1.html)
    assert headings[0] == ("1", "Cascade Biochar Facility")
    assert [text for level, text in headings[1:]] == SECTIONS
    assert "<title>Cascade Biochar Facility: Quarterly report 2025Q1</title>" in q1.html
    facts = q1.nb.metadata["mangrove_nb"]
    assert facts["project"] == {"id": "123", "name": "Cascade Biochar Facility"}
    appendix = q1.html.index('id="Appendix:-provenance,-ledgers-and-inputs"')
    for text in ("Data fingerprint (SHA-256)", facts["fingerprint"], quarters.emu.url):
        assert q1.html.index(text) > appendix, text
    order = ["Net Carbon Removal", "Biochar Produced", "Dry Feedstock Delivered", "Biochar Applied to Soil"]
    assert list(table_rows(cell_html(q1.nb, "summary")))[1:] == order  # after the header row
    assert facts["ledgers"] == [quarters.ids[name] for name in order]


def test_a_total_that_leaves_out_a_failed_feedstock_batch_is_not_compared_and_the_warnings_name_it(
        rendered: Rendered) -> None:
    """2024Q4's October almond-shell batch failed; the month counted as generated (two feedstocks complete), so the
    summary said Dry Feedstock Delivered was −7.8 % against 2024Q3 from a total short by that feedstock. Now no change
    is computed, the summary and the warnings name the batch, and the month and the quarter read "(incomplete)"."""
    facts = {row["Ledger"]: row for row in rendered.nb.metadata["mangrove_nb"]["summary"]}
    dfd = facts["Dry Feedstock Delivered"]
    assert dfd["Generated"] == 3 and dfd["Total"] is not None and dfd["Previous generated"] == 3
    assert dfd["Left out"] == "DFD-2024-10-almond-shells (failed)" and dfd["Previous left out"] is None
    assert dfd["Change vs previous"] is None and dfd["Change vs previous (%)"] is None
    assert facts["Net Carbon Removal"]["Change vs previous"] is not None  # its months are whole: compared
    summary = table_rows(cell_html(rendered.nb, "summary"))
    assert summary["Dry Feedstock Delivered"][1] == "not compared: 2024Q4 leaves out DFD-2024-10-almond-shells (failed)"
    warned = " ".join(Elements(cell_html(rendered.nb, "warnings")).text)
    assert "the 2024Q4 total leaves out DFD-2024-10-almond-shells (failed): no change is computed from it" in warned
    totals = table_rows(cell_html(rendered.nb, "totals"))["Dry Feedstock Delivered"]
    assert totals[1].endswith(" (incomplete)") and totals[-1].endswith(" (incomplete)")
    assert not totals[2].endswith(" (incomplete)")  # November's three feedstocks are complete
    # The failed batch has no output number anywhere (the API sends 0.0 for it), its state beside it.
    batches = [row for row in Rows(cell_html(rendered.nb, "batches")).rows if "DFD-2024-10-almond-shells" in row]
    assert len(batches) == 1 and "failed" in batches[0] and "0.000" not in batches[0] and "–" in batches[0]


def test_the_computation_keeps_the_ledgers_unit(rendered: Rendered) -> None:
    """Net Carbon Removal is in "t" (its ledger's unit and its calculations'): the computation said "t CO2e"."""
    text = " ".join(Elements(cell_html(rendered.nb, "net")).text)
    assert "In t, from each batch's calculations" in text and "CO2e" not in text


def test_units_come_from_the_ledger_even_without_batches(rendered: Rendered) -> None:
    """Credits Issued (tCO2e, no model, no batch) shows its unit in the monthly totals."""
    totals = table_rows(cell_html(rendered.nb, "totals"))
    assert totals["Credits Issued"][0] == "tCO2e"
    assert {row["Ledger"]: row["Unit"] for row in rendered.nb.metadata["mangrove_nb"]["totals"]}[
        "Credits Issued"] == "tCO2e"


def test_a_ledger_report_gets_its_own_file_and_leaves_the_all_ledger_report_untouched(
        quarters: Quarters, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`--ledger "Net Carbon Removal"` (a name) writes quarterly_report_2025Q1_net-carbon-removal.*; the
    all-ledger report in the same folder keeps its bytes."""
    monkeypatch.setenv("MANGROVE_API_URL", quarters.emu.url)
    monkeypatch.setenv("MANGROVE_API_TOKEN", quarters.emu.token)
    assert main(["report", "--quarter", "2025Q1", "--out", str(tmp_path), "--project", "123"]) == 0
    everything = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert sorted(everything) == ["quarterly_report_2025Q1.html", "quarterly_report_2025Q1.ipynb"]
    capsys.readouterr()
    assert main(["report", "--quarter", "2025Q1", "--out", str(tmp_path), "--ledger", "net carbon removal"]) == 0
    assert capsys.readouterr().out == f"{tmp_path / 'quarterly_report_2025Q1_net-carbon-removal.html'}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*everything, "quarterly_report_2025Q1_net-carbon-"
                                                                 "removal.html", "quarterly_report_2025Q1_net-"
                                                                 "carbon-removal.ipynb"])
    for name, data in everything.items():
        assert (tmp_path / name).read_bytes() == data, name
    one = nbformat.read(tmp_path / "quarterly_report_2025Q1_net-carbon-removal.ipynb", as_version=4)
    assert one.metadata["mangrove_nb"]["ledgers"] == [quarters.ids["Net Carbon Removal"]]
    assert one.metadata["papermill"]["parameters"]["ledgers"] == [quarters.ids["Net Carbon Removal"]]


def test_an_unknown_ledger_names_the_close_matches_before_anything_runs(
        quarters: Quarters, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A misspelt name is a ValidationError (argument "ledger") listing the close matches, raised before a kernel
    starts, anything is generated or previewed, or the output folder is made; a token pasted as a ledger is masked
    in the message."""
    def no_kernel(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a kernel was started for an unknown ledger")

    monkeypatch.setattr(reports.run, "_execute", no_kernel)
    previews = quarters.emu.count("generate-preview")
    out = tmp_path / "never"
    with pytest.raises(mnb.ValidationError) as caught:
        render_report("2025Q1", ledgers=["Net Carbon Removal", "Net Carbon Remova"], out_dir=out,
                      base_url=quarters.emu.url, token=quarters.emu.token, generate_missing=True, progress=False)
    message = str(caught.value)
    assert caught.value.argument == "ledger" and "\n" not in message
    assert "'Net Carbon Remova'" in message and "Did you mean 'Net Carbon Removal'" in message
    with pytest.raises(mnb.ValidationError) as pasted:
        render_report("2025Q1", ledgers=[quarters.emu.token], out_dir=out, base_url=quarters.emu.url,
                      token=quarters.emu.token, progress=False)
    assert quarters.emu.token not in str(pasted.value) and "No ledger is called" in str(pasted.value)
    with pytest.raises(mnb.ValidationError, match="at least one ledger"):
        render_report("2025Q1", ledgers=[], out_dir=out, base_url=quarters.emu.url, token=quarters.emu.token)
    assert quarters.emu.count("generate-preview") == previews
    assert not out.exists()


def test_report_stems_are_safe_and_distinct() -> None:
    period = reports.quarter_period("2025Q1")
    assert reports.report_stem(period, None) == "quarterly_report_2025Q1"
    assert reports.report_stem(period, [("lgr_1", "Net Carbon Removal")]) == \
        "quarterly_report_2025Q1_net-carbon-removal"
    assert reports.report_stem(period, [("lgr_2", "Biochar Produced"), ("lgr_1", "Net Carbon Removal")]) == \
        "quarterly_report_2025Q1_biochar-produced_net-carbon-removal"
    hostile = reports.report_stem(period, [("lgr_x", "../../etc/passwd"), ("lgr_y", "</script>"), ("lgr_z", "Ω")])
    assert re.fullmatch(r"[A-Za-z0-9_-]+", hostile), hostile
    assert hostile == "quarterly_report_2025Q1_etc-passwd_lgr-z_script"
    # Two ledgers whose names give the same slug each get a short hash of their id.
    same = reports.report_stem(period, [("lgr_a", "Net removal"), ("lgr_b", "net  removal")])
    assert re.fullmatch(r"quarterly_report_2025Q1_net-removal-[0-9a-f]{6}_net-removal-[0-9a-f]{6}", same), same


def test_ledgers_whose_names_give_one_slug_get_their_own_report_files() -> None:
    """`Net Carbon Removal` and `Net Carbon Removal!` both gave quarterly_report_2025Q1_net-carbon-removal, so one
    `--ledger` report overwrote the other's. Given every ledger the API lists, each gets a short id suffix."""
    period = reports.quarter_period("2025Q1")
    every = [("lgr_ncr", "Net Carbon Removal"), ("lgr_bang", "Net Carbon Removal!"), ("lgr_bp", "Biochar Produced")]
    one = reports.report_stem(period, [("lgr_ncr", "Net Carbon Removal")], every)
    other = reports.report_stem(period, [("lgr_bang", "Net Carbon Removal!")], every)
    assert one != other
    for stem in (one, other):
        assert re.fullmatch(r"quarterly_report_2025Q1_net-carbon-removal-[0-9a-f]{6}", stem), stem
    assert reports.report_stem(period, [("lgr_ncr", "Net Carbon Removal")], every) == one  # stable
    # A name no other ledger shares keeps its plain file name.
    assert reports.report_stem(period, [("lgr_bp", "Biochar Produced")], every) == \
        "quarterly_report_2025Q1_biochar-produced"


def test_render_report_gives_each_of_two_same_slug_ledgers_its_own_file(make_emulator: Any, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """On an API that lists `Net Carbon Removal` and `Net Carbon Removal!`, the two `--ledger` reports are written
    under different names (the run itself is replaced: only the file name is checked)."""
    emu = make_emulator()
    response = requests.post(f"{emu.url}/projects/123/ledgers", json={"ledger": {"name": "Net Carbon Removal!",
                                                                                 "unit": "t"}},
                             headers={"Authorization": f"Bearer {emu.token}"}, timeout=10)
    assert response.status_code in (200, 201), response.text
    stems: list[str] = []

    def no_run(nb: Any, client: Any, period: Any, **options: Any) -> Any:
        stems.append(options["stem"])
        return reports.run.ReportPaths(tmp_path / f"{options['stem']}.ipynb", tmp_path / f"{options['stem']}.html")

    monkeypatch.setattr(reports.run, "_render", no_run)
    for name in ("Net Carbon Removal", "Net Carbon Removal!"):
        render_report("2025Q1", ledgers=[name], out_dir=tmp_path, base_url=emu.url, token=emu.token,
                      progress=False)
    assert len(set(stems)) == 2, stems
    assert all(re.fullmatch(r"quarterly_report_2025Q1_net-carbon-removal-[0-9a-f]{6}", s) for s in stems), stems


def test_summary_says_why_a_change_is_not_computed() -> None:
    """Pure pandas: a previous quarter not generated, a partial quarter, a previous total of zero."""
    period, previous, year_ago = (reports.quarter_period(q) for q in ("2025Q1", "2024Q4", "2024Q1"))
    selected = pd.DataFrame({"id": ["lgr_a", "lgr_b", "lgr_c"], "name": ["A", "B", "C"], "unit": ["t", "kg", "t"],
                             "has_model": [True, True, True]})

    def batch(ledger: str, month: str, value: float, state: str = "complete") -> dict[str, Any]:
        return {"id": f"bat_{ledger}_{month}", "ledger_id": ledger, "start_time": pd.Timestamp(f"{month}-01", tz="UTC"),
                "state": state, "output_value": value}

    now = pd.DataFrame([batch("lgr_a", m, 10.0) for m in ("2025-01", "2025-02", "2025-03")]
                       + [batch("lgr_b", m, 5.0) for m in ("2025-01", "2025-02")]
                       + [batch("lgr_c", m, 1.0) for m in ("2025-01", "2025-02", "2025-03")])
    before = pd.DataFrame([batch("lgr_b", m, 5.0) for m in ("2024-10", "2024-11", "2024-12")]
                          + [batch("lgr_c", m, 0.0) for m in ("2024-10", "2024-11", "2024-12")])
    year = pd.DataFrame([batch("lgr_a", m, 8.0) for m in ("2024-01", "2024-02", "2024-03")]
                        + [batch("lgr_a", "2024-01", 99.0, "failed")])
    frame = reports.summary(selected, now, before, year, period, previous, year_ago)
    shown = reports.summary_table(frame, period, previous, year_ago).shown()
    rows = {row[0]: list(row[1:]) for row in shown.itertuples(index=False)}
    assert rows["A"] == ["30.000\u00a0t", "2024Q4 not generated", "+25.0\u00a0% (+6.000\u00a0t)",
                         "3 of 3 months generated"]
    assert rows["B"] == ["10.000\u00a0kg (2 of 3 months)", "not compared: 2025Q1 has 2 of 3 months",
                         "2024Q1 not generated", "2 of 3 months generated"]
    assert rows["C"][1] == "+3.000\u00a0t (2024Q4: 0.000\u00a0t)"  # no percentage of zero
    assert frame.loc[0, "Year-ago total"] == 24.0  # the failed batch is not counted


def test_the_project_comes_from_the_parameter_the_session_or_the_ledgers() -> None:
    """report_project: the parameter, else MANGROVE_PROJECT_ID (the session's), else a project_id every ledger
    names (when the API gives one; the documented Ledger has none, and then the report says the project is not
    named)."""
    asked: list[str] = []

    class Http:
        def __init__(self, ledgers: list[dict[str, Any]]) -> None:
            self.items = ledgers

        def ledgers(self) -> list[dict[str, Any]]:
            return self.items

    class Client:
        def __init__(self, session: str | None, ledgers: list[dict[str, Any]]) -> None:
            self.settings = type("Settings", (), {"project_id": session})()
            self.http = Http(ledgers)

        def project(self, project_id: str) -> str:
            asked.append(str(project_id))
            return f"project {project_id}"

    assert reports.report_project(Client("7", []), "123") == "project 123"
    assert reports.report_project(Client("7", []), None) == "project 7"
    assert reports.report_project(Client(None, [{"id": "lgr_a", "project_id": 42}, {"id": "lgr_b", "project_id": 42}]),
                                  None) == "project 42"
    assert reports.report_project(Client(None, [{"id": "lgr_a", "project_id": 1}, {"id": "lgr_b", "project_id": 2}]),
                                  None) is None  # they disagree: no guess
    assert reports.report_project(Client(None, [{"id": "lgr_a"}]), None) is None
    assert asked == ["123", "7", "42"]
    spans = [reports.quarter_period(q) for q in ("2025Q1", "2024Q4", "2024Q1")]
    header = reports.header(None, pd.DataFrame({"id": ["lgr_a"], "name": ["A"]}), *spans,
                            generated_at=datetime(2025, 4, 1, tzinfo=UTC), digest="0" * 64)
    assert header.title == "Quarterly production report"
    assert "Project not named: give mangrove-nb report --project ID, or set MANGROVE_PROJECT_ID." in header.lines


# --- failure ----------------------------------------------------------------------------------------------


def fail_in_the_kernel(emu: Emulator) -> None:
    """Make the report's setup cell fail: the API refuses the first ledger listing (the kernel's first request,
    when no ledger and no project is checked up front)."""
    emu.faults.fail("list-all-ledgers", 403, message="This token may not list ledgers.")


def test_a_failing_cell_names_the_cell_and_leaves_the_partial_notebook(make_emulator: Any, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MANGROVE_PROJECT_ID", raising=False)
    emu = make_emulator(token=f"canary-{uuid.uuid4()}")
    fail_in_the_kernel(emu)
    with pytest.raises(ReportError) as caught:
        render_report("2024Q4", out_dir=tmp_path, base_url=emu.url, token=emu.token, progress=False)
    error = caught.value
    message = str(error)
    assert error.cell_number == 3
    assert f"cell 3 of {CODE_CELLS}" in message and "# Setup: connect" in message
    assert "PermissionDeniedError" in message and "may not list ledgers" in message
    assert error.partial == tmp_path / "quarterly_report_2024Q4_FAILED.ipynb"
    assert str(error.partial) in message
    partial = nbformat.read(error.partial, as_version=4)
    nbformat.validate(partial)
    errors = [o for c in partial.cells for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert [e["ename"] for e in errors] == ["PermissionDeniedError"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["quarterly_report_2024Q4_FAILED.ipynb"]  # no HTML
    raw = error.partial.read_text(encoding="utf-8")
    assert emu.token not in raw
    assert not [place for place in ("/root", "/home", "/tmp", str(REPO)) if place in raw]
    assert emu.count("create-batch-generation") == 0


# --- no token in a traceback, even with its locals ---------------------------------------------------------


def _canary() -> str:
    return f"canary+{uuid.uuid4().hex}/{uuid.uuid4().hex[:12]}="


def _token_forms(token: str) -> list[str]:
    """The token as it could be spelled: raw, percent-encoded, JSON- and HTML-escaped, base64 at every alignment."""
    from urllib.parse import quote, quote_plus

    raw = token.encode()
    forms = {token, quote(token, safe=""), quote_plus(token), json.dumps(token)[1:-1], token.replace("&", "&amp;")}
    for pad in range(3):  # the token inside a longer base64 text starts at any offset modulo 3
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            encoded = encode(b"\0" * pad + raw).decode()
            forms.add(encoded[(4 if pad else 0):-4])  # without the edges, which the neighbouring bytes change
    return sorted(f for f in forms if len(f) >= 16)


def _assert_no_token(text: str, token: str, where: str) -> None:
    found = [form for form in _token_forms(token) if form in text]
    assert not found, f"{where} holds the token (as {found[:2]})"


def _as_shown_with_locals(exc: BaseException) -> str:
    """``exc`` and its chain as a traceback with every frame's locals shows them (IPython's verbose mode, error
    trackers), without this file's frames: the test's own locals hold the canary on purpose."""
    shown = traceback.TracebackException.from_exception(exc, capture_locals=True)
    part: traceback.TracebackException | None = shown
    while part is not None:
        part.stack = traceback.StackSummary.from_list([f for f in part.stack if f.filename != __file__])
        part = part.__cause__ or (None if part.__suppress_context__ else part.__context__)
    return "".join(shown.format())


def _child_processes() -> set[int]:
    """This process's children (the kernel among them while it runs), from /proc."""
    mine = str(os.getpid())
    children = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                if (entry / "stat").read_text().rsplit(")", 1)[1].split()[1] == mine:
                    children.add(int(entry.name))
    return children


class _InterruptAt(io.StringIO):
    """A stderr on which the progress line ``[n/`` raises KeyboardInterrupt, as Ctrl-C would mid-run."""

    def __init__(self, cell: int) -> None:
        super().__init__()
        self.cell = cell

    def write(self, text: str) -> int:
        if text.startswith(f"[{self.cell}/"):
            raise KeyboardInterrupt
        return super().write(text)


def test_a_failing_cell_leaves_no_token_in_any_frame_or_message(make_emulator: Any, tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    """The token was a local of render_report (its argument): a failing cell's traceback shown with its locals
    printed it. Now it is sealed in a Secret at once, the kernel's environment masks itself, and the error is
    chained to a frameless, scrubbed copy of the cell's error (nbclient's frames hold the kernel's replies)."""
    emu = make_emulator(token=_canary())
    fail_in_the_kernel(emu)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ReportError) as caught:
        render_report("2024Q4", out_dir=tmp_path, base_url=emu.url, token=emu.token, progress=False)
    error = caught.value
    shown = _as_shown_with_locals(error)
    _assert_no_token(shown, emu.token, "the traceback with locals")
    assert "in render_report" in shown and "in _execute" in shown  # the frames were there to look at
    assert error.__cause__ is not None and error.__cause__.__traceback__ is None  # chained, without frames
    assert error.__cause__.__context__ is None
    assert "\n" not in str(error) and str(error.partial) in str(error)
    _assert_no_token("\n".join(f"{r.getMessage()} {r.args}" for r in caplog.records), emu.token, "the log")


def test_an_interrupt_mid_run_leaves_no_token_stops_the_kernel_and_keeps_the_partial_notebook(
        make_emulator: Any, tmp_path: Path) -> None:
    """Ctrl-C (here raised by the progress line of cell 7) stops the kernel at once, keeps the cells that ran in
    the partial notebook (the interrupt's note says where) and re-raises; no frame of the traceback shows the
    token, and the notebook was cleaned before the interrupt went on."""
    emu = make_emulator(token=_canary())
    before = _child_processes()
    with contextlib.redirect_stderr(_InterruptAt(7)), pytest.raises(KeyboardInterrupt) as caught:
        render_report("2024Q4", out_dir=tmp_path, base_url=emu.url, token=emu.token)
    _assert_no_token(_as_shown_with_locals(caught.value), emu.token, "the interrupt's traceback with locals")
    partial = tmp_path / "quarterly_report_2024Q4_FAILED.ipynb"
    assert caught.value.__notes__ == [f"The partial notebook is at {partial}."]
    nb = nbformat.read(partial, as_version=4)
    ran = [cell for cell in nb.cells if cell.cell_type == "code" and cell.get("execution_count")]
    assert len(ran) == 6 and any(cell.outputs for cell in ran)
    _assert_no_token(partial.read_text(encoding="utf-8"), emu.token, "the partial notebook")
    assert sorted(p.name for p in tmp_path.iterdir()) == [partial.name]
    deadline = time.monotonic() + 10
    while _child_processes() - before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _child_processes() - before, "the kernel is still running"


@pytest.fixture
def broken_kernels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Kernel specs whose command exits at once, or does not exist, found through JUPYTER_PATH."""
    root = tmp_path / "jupyter"
    for name, argv in {"mangrove-exits-at-once": [sys.executable, "-c", "raise SystemExit(3)"],
                       "mangrove-missing-command": [str(tmp_path / "no-such-kernel-command"), "{connection_file}"]
                       }.items():
        (root / "kernels" / name).mkdir(parents=True)
        (root / "kernels" / name / "kernel.json").write_text(json.dumps(
            {"argv": argv, "display_name": name, "language": "python"}), encoding="utf-8")
    monkeypatch.setenv("JUPYTER_PATH", str(root))
    return root


@pytest.mark.parametrize("kernel", ["mangrove-no-such-kernel", "mangrove-exits-at-once", "mangrove-missing-command"])
def test_a_kernel_that_cannot_start_is_a_one_line_report_error(kernel: str, broken_kernels: Path,
                                                               make_emulator: Any, tmp_path: Path) -> None:
    """It was an untyped NoSuchKernel / RuntimeError / FileNotFoundError whose frames held the kernel's
    environment. Now: a ReportError saying what to install, raised without a chain, and nothing left behind."""
    emu = make_emulator(token=_canary())
    template = tmp_path / "template.ipynb"
    nb = nbformat.read(reports.DEFAULT_TEMPLATE, as_version=4)
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
    nbformat.write(nb, template)
    out = tmp_path / "out"
    started = time.monotonic()
    with pytest.raises(ReportError) as caught:
        render_report("2024Q4", out_dir=out, base_url=emu.url, token=emu.token, template=template, progress=False)
    error = caught.value
    message = str(error)
    assert message.startswith(f"The report kernel '{kernel}' could not start (")
    assert "pip install 'mangrove_nb[reports]'" in message and "\n" not in message
    assert error.__cause__ is None and error.__context__ is None
    _assert_no_token(_as_shown_with_locals(error), emu.token, "the traceback with locals")
    assert time.monotonic() - started < 30
    assert list(out.iterdir()) == []  # no partial notebook: no cell ran
    assert emu.count("list-all-ledgers") == 0


# --- the output folder --------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["a file", "under a file", "not writable"])
def test_an_unusable_out_dir_is_refused_before_anything_runs_or_generates(
        where: str, make_emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--out used to be checked only when the results were written: after every cell ran and after
    --generate-missing generated (or as a raw FileExistsError). Root ignores permission bits, so "not writable" is a
    folder of /proc."""
    emu = make_emulator()
    blocker = tmp_path / "blocker.txt"
    blocker.write_text("keep me", encoding="utf-8")
    out = {"a file": blocker, "under a file": blocker / "reports", "not writable": Path("/proc/self")}[where]
    if where == "not writable" and not out.is_dir():
        pytest.skip("needs Linux's /proc")

    def no_kernel(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a kernel was started for an unusable output folder")

    monkeypatch.setattr(reports.run, "_execute", no_kernel)
    with pytest.raises(ReportError) as caught:
        render_report("2025Q1", out_dir=out, base_url=emu.url, token=emu.token, generate_missing=True, progress=False)
    message = str(caught.value)
    assert message.startswith(f"The output folder {out} ") and "--out" in message and "\n" not in message
    assert emu.count("create-batch-generation") == 0 and emu.count("generate-preview") == 0
    assert blocker.read_text(encoding="utf-8") == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker.txt"]


def test_planted_symlinks_in_out_dir_are_replaced_never_written_through(make_emulator: Any, tmp_path: Path) -> None:
    """Symlinks at the output paths (the HTML, the notebook, the partial notebook) pointed at other files, which the
    report overwrote. Now each file is written beside its path and renamed over it: the link goes, its target
    stays as it was."""
    emu = make_emulator()
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    stem = "quarterly_report_2024Q4_net-carbon-removal"
    names = [f"{stem}.html", f"{stem}.ipynb", f"{stem}_FAILED.ipynb"]
    for name in names:
        (elsewhere / name).write_text(f"precious {name}", encoding="utf-8")
        (out / name).symlink_to(elsewhere / name)
    emu.faults.fail("ledger-required-inputs", 403, message="No inputs for you.")  # the kernel's setup fails
    with pytest.raises(ReportError):
        render_report("2024Q4", ledgers=["Net Carbon Removal"], out_dir=out, base_url=emu.url, token=emu.token,
                      progress=False)
    assert not (out / names[2]).is_symlink() and nbformat.read(out / names[2], as_version=4).cells
    (out / names[2]).unlink()
    (out / names[2]).symlink_to(elsewhere / names[2])  # and a stale failure that is a link, removed on success
    paths = render_report("2024Q4", ledgers=["Net Carbon Removal"], out_dir=out, base_url=emu.url, token=emu.token,
                          progress=False)
    for name in names:
        assert (elsewhere / name).read_text(encoding="utf-8") == f"precious {name}", name
    assert not paths.html.is_symlink() and not paths.ipynb.is_symlink()
    assert "<html" in paths.html.read_text(encoding="utf-8")
    assert sorted(p.name for p in out.iterdir()) == names[:2]  # no temporary file left, the stale link gone


def test_a_failed_write_keeps_the_earlier_file_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "quarterly_report_2024Q4.html"
    target.write_text("the earlier report", encoding="utf-8")

    def disk_full(source: Any, destination: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(reports.files.os, "replace", disk_full)
    with pytest.raises(ReportError, match=r"^Cannot write .*quarterly_report_2024Q4\.html \(No space left on device\)"):
        reports.files._write_text(target, "the new report")
    assert target.read_text(encoding="utf-8") == "the earlier report"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # the temporary file is gone
    monkeypatch.undo()
    (tmp_path / "a-folder.html").mkdir()
    with pytest.raises(ReportError, match=r"a-folder\.html"):
        reports.files._write_text(tmp_path / "a-folder.html", "x")


def test_bad_quarter_is_refused_before_any_kernel_starts(capsys: pytest.CaptureFixture[str]) -> None:
    for bad in ("2025Q5", "2025-01", "next quarter"):
        assert main(["report", "--quarter", bad]) == 2
        err = capsys.readouterr().err
        assert err.startswith("mangrove-nb report: ") and "quarter" in err
    with pytest.raises(mnb.PeriodError):
        render_report("2025", out_dir="never-created")
    assert not Path("never-created").exists()


# --- generation -------------------------------------------------------------------------------------------


def test_cli_generate_missing_makes_one_request_and_the_report_shows_the_new_batches(
        make_emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    emu = make_emulator()
    monkeypatch.setenv("MANGROVE_API_URL", emu.url)
    monkeypatch.setenv("MANGROVE_API_TOKEN", emu.token)
    client = mnb.connect(show_progress=False)
    ledgers = client.ledgers()
    ncr = ledgers.loc[ledgers["name"] == "Net Carbon Removal", "id"].item()
    assert client.batches(ncr, "2025Q1").empty

    assert main(["report", "--quarter", "2025Q1", "--ledger", ncr, "--out", str(tmp_path), "--generate-missing"]) == 0
    out = capsys.readouterr().out
    stem = "quarterly_report_2025Q1_net-carbon-removal"
    assert out == f"{tmp_path / stem}.html\n"
    assert emu.count("create-batch-generation") == 1

    made = client.batches(ncr, "2025Q1", details=True)
    assert list(made["tracking_id"]) == ["NCR-2025-01", "NCR-2025-02", "NCR-2025-03"]
    nb = nbformat.read(tmp_path / f"{stem}.ipynb", as_version=4)
    facts = nb.metadata["mangrove_nb"]
    assert facts["ledgers"] == [ncr]
    # The fingerprint is of every answer the report read: read again here by a client of reports.connect through
    # the same calls as the template's (the registry reports included), it is the same.
    again = reports.connect()
    chosen = reports.select_ledgers(again.ledgers(), [ncr])
    inputs = {ncr: again.required_inputs(ncr)}
    read = {q: again.batches([ncr], q, details=True) for q in ("2025Q1", "2024Q4", "2024Q1")}
    calculations = again.calculations(reports.breakdown_batches(read["2025Q1"], chosen))
    again.calculations(read["2024Q4"][read["2024Q4"]["skipped_inputs"].notna()])
    assert facts["fingerprint"] != reports.fingerprint(again)  # not yet: the previews, project and registry too
    reports.report_project(again, None)
    for q in ("2025Q1", "2024Q4", "2024Q1"):
        reports.coverage(again, chosen, inputs, read[q], mnb.parse_period(q))
    reports.sections.registry_status(again, read["2025Q1"], chosen, mnb.parse_period("2025Q1"))
    assert facts["fingerprint"] == reports.fingerprint(again) and len(calculations)
    row = facts["totals"][0]
    assert all(row[m] is not None for m in ("2025-01", "2025-02", "2025-03"))
    html = (tmp_path / f"{stem}.html").read_text(encoding="utf-8")
    for tracking in made["tracking_id"]:
        assert tracking in html
    # Nothing is missing any more: asking again sends nothing.
    assert reports.generate_missing_batches(client, mnb.parse_period("2025Q1"), [ncr], progress=False) == []
    assert emu.count("create-batch-generation") == 1


def test_generate_missing_skips_what_cannot_or_need_not_be_generated(make_emulator: Any) -> None:
    emu = make_emulator()
    client = mnb.connect(emu.token, emu.url, show_progress=False)
    ids = dict(zip(client.ledgers()["name"], client.ledgers()["id"], strict=True))
    # 2024Q4 already has its batches: nothing is sent for any ledger, with or without a model.
    assert reports.generate_missing_batches(client, mnb.parse_period("2024Q4"), None, progress=False) == []
    assert reports.generate_missing_batches(client, mnb.parse_period("2025Q1"),
                                            [ids["Credits Issued"], ids["Biochar Applied to Soil"]],
                                            progress=False) == []
    assert emu.count("create-batch-generation") == 0
    # Concurrent models: Net Carbon Removal's generation also fills Biochar Produced, so one request does both.
    done = reports.generate_missing_batches(client, mnb.parse_period("2025Q1"),
                                            [ids["Biochar Produced"], ids["Net Carbon Removal"]], progress=False)
    assert done == [ids["Net Carbon Removal"]]
    assert emu.count("create-batch-generation") == 1
    assert len(client.batches(ids["Biochar Produced"], "2025Q1")) == 3


# --- the template and papermill ---------------------------------------------------------------------------


def test_the_template_ships_in_the_package_and_the_starter_copy_is_the_same_file() -> None:
    """The report renders the template inside the package (so an installed wheel has it); the copy users open in
    notebooks/ is byte for byte the same, and both are what notebooks/build_report_template.py writes."""
    package = Path(reports.__file__).resolve().parent
    assert package / "templates" / "quarterly_report.ipynb" == reports.DEFAULT_TEMPLATE
    shipped = reports.DEFAULT_TEMPLATE.read_bytes()
    assert (REPO / "notebooks" / "03_quarterly_report.ipynb").read_bytes() == shipped
    builder = runpy.run_path(str(REPO / "notebooks" / "build_report_template.py"), run_name="builder")
    assert builder["text"]().encode("utf-8") == shipped, "run notebooks/build_report_template.py and commit"
    assert [target.resolve() for target in builder["TARGETS"]] == [
        reports.DEFAULT_TEMPLATE, (REPO / "notebooks" / "03_quarterly_report.ipynb").resolve()]


def test_the_template_is_declared_as_package_data() -> None:
    """pyproject.toml's package data covers the template, so `pip install` and a wheel carry it."""
    declared = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"][
        "package-data"]
    shipped = {path.resolve() for package, patterns in declared.items() for pattern in patterns
               for path in (REPO / package.replace(".", "/")).glob(pattern)}
    assert reports.DEFAULT_TEMPLATE in shipped


def test_parameters_cell_declares_ledgers_quarter_base_url_and_never_a_token() -> None:
    template = nbformat.read(reports.DEFAULT_TEMPLATE, as_version=4)
    tagged = [c for c in template.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    tree = ast.parse(tagged[0].source)
    assigned = {t.id: ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
                for t in node.targets if isinstance(t, ast.Name)}
    assert assigned == {"ledgers": None, "quarter": "2025Q1", "base_url": None, "project": None, "export_tables": None}
    assert "token" not in tagged[0].source.lower()
    for cell in template.cells:
        assert cell.cell_type == "markdown" or not cell.get("outputs"), "the template is committed without outputs"
        assert "mgv_" not in cell.source


def test_build_report_injects_parameters_as_papermill_does() -> None:
    nb = build_report("2025Q1", ledgers=["lgr_a", 'lgr_"b'], base_url="https://example.test/api/v1")
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    injected = nb.cells[index + 1]
    assert injected.metadata["tags"] == ["injected-parameters"]
    assert injected.source == ('# Parameters\nquarter = "2025Q1"\nledgers = ["lgr_a", "lgr_\\"b"]\n'
                               'base_url = "https://example.test/api/v1"\n')
    assert nb.metadata["papermill"]["parameters"]["ledgers"] == ["lgr_a", 'lgr_"b']
    again = reports.inject_parameters(nb, {"quarter": "2024Q4"})  # a second injection replaces the first
    assert sum("injected-parameters" in c.metadata.get("tags", []) for c in again.cells) == 1
    assert again.cells[index + 1].source == '# Parameters\nquarter = "2024Q4"\n'
    nbformat.validate(again)
    with pytest.raises(TypeError):
        build_report("2025Q1", ledgers="lgr_a")  # type: ignore[arg-type]


def test_papermill_runs_the_template_unchanged(seeded: Seeded, rendered: Rendered, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               caplog: pytest.LogCaptureFixture) -> None:
    papermill = pytest.importorskip("papermill", reason="papermill is not installed (pip install papermill)")
    from papermill.parameterize import parameterize_notebook

    # The injected cell is papermill's own, to the character (a short list: black, if installed, leaves it be).
    parameters = {"quarter": "2024Q4", "ledgers": [seeded.ledgers["Net Carbon Removal"]],
                  "base_url": seeded.emu.url}
    ours = build_report("2024Q4", ledgers=parameters["ledgers"], base_url=seeded.emu.url)
    template = nbformat.read(reports.DEFAULT_TEMPLATE, as_version=4)
    template.metadata["papermill"] = {}
    for cell in template.cells:  # what papermill's prepare_notebook_metadata does first
        cell.metadata.setdefault("tags", [])
    theirs = parameterize_notebook(template, parameters)
    assert [c.source for c in theirs.cells] == [c.source for c in ours.cells]
    assert [c.metadata.get("tags") or [] for c in theirs.cells] == [c.metadata.get("tags") or [] for c in ours.cells]
    assert theirs.metadata["papermill"]["parameters"] == ours.metadata["papermill"]["parameters"]

    # papermill reads the parameters cell (names, defaults, help) without a warning.
    with caplog.at_level(logging.WARNING, logger="papermill"):
        declared = papermill.inspect_notebook(str(reports.DEFAULT_TEMPLATE))
    assert list(declared) == ["ledgers", "quarter", "base_url", "project", "export_tables"]
    assert declared["quarter"]["default"] == '"2025Q1"' and declared["ledgers"]["help"]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]

    monkeypatch.setenv("MANGROVE_API_URL", seeded.emu.url)
    monkeypatch.setenv("MANGROVE_API_TOKEN", seeded.emu.token)
    monkeypatch.setenv("MANGROVE_NB_QUIET", "1")
    output = tmp_path / "papermill.ipynb"
    papermill.execute_notebook(str(reports.DEFAULT_TEMPLATE), str(output), parameters={"quarter": "2024Q4"},
                               kernel_name="python3", progress_bar=False, cwd=str(tmp_path))
    executed = nbformat.read(output, as_version=4)
    facts: dict[str, Any] = {}
    for cell in executed.cells:
        for out in cell.get("outputs", []):
            facts.update(out.get("metadata", {}).get("mangrove_nb", {}))
    # The default selection (every ledger with a model) holds the same batches as our explicit one.
    ours_facts = rendered.nb.metadata["mangrove_nb"]
    # In the report's order: the carbon-removal ledger, then its upstream ledgers, then the one fed by batches.
    assert facts["ledgers"] == [seeded.ledgers[name] for name in
                                ["Net Carbon Removal", "Biochar Produced", "Dry Feedstock Delivered",
                                 "Biochar Applied to Soil"]]
    # The fingerprint is of every answer read: papermill's run read what ours reads for the same selection.
    same = render_report("2024Q4", out_dir=tmp_path / "ours", progress=False)
    assert facts["fingerprint"] == nbformat.read(same.ipynb, as_version=4).metadata["mangrove_nb"]["fingerprint"]
    assert facts["fingerprint"] != ours_facts["fingerprint"]  # which read the hostile ledgers and their inputs too
    assert facts["totals"] == [row for row in ours_facts["totals"] if row["Ledger"] in
                               {r["Ledger"] for r in facts["totals"]}]
    assert seeded.emu.count("create-batch-generation") == 0


# --- the pieces, without a kernel --------------------------------------------------------------------------


def test_path_scrubber_replaces_this_machines_places(tmp_path: Path) -> None:
    scrub = reports.clean._path_scrubber(tmp_path)
    text = (f'File {sys.prefix}/lib/python3.11/site-packages/pandas/core/frame.py:12\n'
            f'File {REPO}/mangrove_nb/reports/run.py:3, cwd {tmp_path}/x, /home/someone/notes.txt, /tmp/abc')
    cleaned = scrub(text)
    for place in (sys.prefix, str(REPO), str(tmp_path), "/home/", "/tmp/"):
        assert place not in cleaned, place
    assert "reports/run.py:3" in cleaned and "frame.py:12" in cleaned


def test_cleaning_strips_widgets_scripts_secrets_and_paths(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [
        nbformat.v4.new_output("display_data", data={"application/vnd.jupyter.widget-view+json": {"model_id": "m"},
                                                     "text/plain": "Progress: done"}),
        nbformat.v4.new_output("display_data", data={"application/vnd.jupyter.widget-view+json": {"model_id": "n"}}),
        nbformat.v4.new_output("display_data", data={"application/javascript": "alert(1)", "text/plain": "js"}),
        nbformat.v4.new_output("stream", name="stderr", text=f"token canary-x in {REPO}/mangrove_nb/api.py\n"),
        nbformat.v4.new_output("error", ename="E", evalue="canary-x", traceback=[f"{sys.prefix}/lib/x.py"]),
        nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo/tmp/home/x"},
                               metadata={"filenames": {"image/png": "/tmp/x.png"}}),
    ]
    cell.metadata["execution"] = {"iopub.status.busy": "2025-01-01T00:00:00Z"}
    nb.cells.append(cell)
    cleaned = reports.clean._cleaned(nb, [Secret("canary-x")], tmp_path)
    nbformat.validate(cleaned)
    text = json.dumps(cleaned)
    assert "widgets" not in cleaned.metadata and "execution" not in cleaned.cells[0].metadata
    assert "widget-view" not in text and "javascript" not in text and "filenames" not in text
    assert "canary-x" not in text and str(REPO) not in text and sys.prefix not in text
    assert [o.get("data", {}).get("text/plain") for o in cleaned.cells[0].outputs][:2] == ["Progress: done", "js"]
    assert cleaned.cells[0].outputs[-1]["data"]["image/png"] == "iVBORw0KGgo/tmp/home/x"  # image bytes untouched


def test_quarter_period_accepts_quarters_only() -> None:
    assert reports.quarter_period("2025-q1").label == "2025Q1"
    for bad in ("2025", "2025-02", ("2025-01-01", "2025-02-01")):
        with pytest.raises(mnb.PeriodError):
            reports.quarter_period(bad)


def test_the_kernel_environment_never_shows_the_token() -> None:
    """render_report keeps the kernel's environment (token included) in a local: its repr hides the values, so a
    traceback rendered with locals cannot show the token; its copies (jupyter_client copies it) hide it too."""
    env = reports.clean._KernelEnvironment({"MANGROVE_API_TOKEN": "canary-env-4b1e", "PATH": "/usr/bin"})
    assert "canary-env-4b1e" not in repr(env) and "canary-env-4b1e" not in str(env)
    assert env["MANGROVE_API_TOKEN"] == "canary-env-4b1e"  # still a plain mapping for the kernel's process
    sealed = reports.clean._KernelEnvironment({"PATH": "/usr/bin"}, url="http://127.0.0.1:1/api/v1",
                                              token=Secret("canary-env-9c2d"))
    assert sealed["MANGROVE_API_TOKEN"] == "canary-env-9c2d" and sealed["MANGROVE_API_URL"].endswith("/api/v1")
    for shown in (sealed.copy(), copy.copy(sealed), copy.deepcopy(sealed)):
        assert isinstance(shown, reports.clean._KernelEnvironment) and shown == sealed
        assert "canary-env" not in f"{shown!r} {shown} {shown:>10} {[shown]} {({'env': shown})}"
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(sealed)


# --- accounting: what a figure may not hide ----------------------------------------------------------------


def test_a_skip_whose_calculations_say_nothing_is_possibly_overstated_never_unaffected(quarters: Quarters) -> None:
    """The contract's Calculation has no `note`: a server that sends none used to make every skipped batch
    "unaffected". Without a calculation saying it read the skipped input, the effect is unknown: a warning, and ⚠
    on the month, the quarter and the summary's total, for both ledgers of the November 2025 run."""
    client = quarters.client
    selected = client.ledgers()
    selected = selected[selected["name"].isin(["Net Carbon Removal", "Biochar Produced"])].reset_index(drop=True)
    period, previous, year_ago = (reports.quarter_period(q) for q in ("2025Q4", "2025Q3", "2024Q4"))
    batches = client.batches(selected["id"].tolist(), period, details=True)
    calculations = client.calculations(batches[batches["skipped_inputs"].notna()])
    assert calculations["note"].notna().any()  # the emulator says; a real server may not
    silent = calculations.assign(note=pd.Series(pd.NA, index=calculations.index, dtype="string"))
    effects = reports.skipped_effects(batches, silent)
    assert len(effects) == 2
    for text, direction in effects.values():
        assert direction == "unknown" and "may be overstated" in text and "unaffected" not in text
    covered = pd.DataFrame(columns=["Ledger", "Month", "Status"])
    findings = reports.quality_findings(batches, covered, selected, silent)
    skipped = findings[findings["Finding"].str.startswith("Generated without")]
    assert skipped["Severity"].tolist() == ["warning", "warning"]
    assert not findings["Finding"].str.contains("unaffected").any()
    totals = reports.totals_table(reports.monthly_totals(batches, selected, period), period, batches, silent)
    for row in totals.shown().itertuples(index=False):
        assert [str(cell).endswith("⚠") or "⚠ " in str(cell) for cell in row[2:]] == [False, True, False, True], row
    frame = reports.summary(selected, batches, batches.iloc[:0], batches.iloc[:0], period, previous, year_ago, silent)
    assert frame["Overstated"].tolist() == [1, 1]
    shown = reports.summary_table(frame, period, previous, year_ago).shown()
    assert all("⚠" in str(total) for total in shown.iloc[:, 1])


def _frames(*rows: tuple[str, str, float | None], state: str = "complete") -> pd.DataFrame:
    """A batches frame from (ledger id, month, value) rows, tracking ids as the emulator's."""
    items = [{"id": f"bat_{n}_{ledger}_{month}", "ledger_id": ledger, "ledger_name": {"lgr_a": "A"}.get(ledger, ledger),
              "tracking_id": f"T-{month}", "start_time": pd.Timestamp(f"{month}-01", tz="UTC"),
              "state": state, "output_value": value, "feedstock": pd.NA}
             for n, (ledger, month, value) in enumerate(rows)]
    return pd.DataFrame(items).astype({"output_value": "Float64", "feedstock": "string"})


SELECTED = pd.DataFrame({"id": ["lgr_a"], "name": ["A"], "unit": ["t"], "has_model": [True]})
QUARTERS = tuple(reports.quarter_period(q) for q in ("2024Q4", "2024Q3", "2023Q4"))
FULL_Q3 = ("2024-07", "2024-08", "2024-09")


def test_two_complete_batches_for_one_month_are_an_error_and_mark_every_total() -> None:
    """A double generation leaves two complete batches for 2024-11: the total counted both (297 t, not 227 t)
    silently. Now an error in data quality and the warnings, and ⚠ on the month, the quarter, the summary's total
    and its changes."""
    period, previous, year_ago = QUARTERS
    batches = _frames(("lgr_a", "2024-10", 100.0), ("lgr_a", "2024-11", 70.0), ("lgr_a", "2024-11", 70.0),
                      ("lgr_a", "2024-12", 57.0))
    before = _frames(*[("lgr_a", m, 50.0) for m in FULL_Q3])
    found = reports.duplicate_partitions(batches)
    assert [(ledger, month, tracking) for ledger, month, _f, _ids, tracking in found] == [
        ("lgr_a", "2024-11", ["T-2024-11", "T-2024-11"])]
    covered = pd.DataFrame(columns=["Ledger", "Month", "Status"])
    findings = reports.quality_findings(batches, covered, SELECTED)
    errors = findings[findings["Severity"] == "error"]
    assert errors["Finding"].tolist() == ["2 complete batches for 2024-11: possibly generated twice; the total "
                                          "counts both"]
    assert "possibly generated twice" in repr(reports.key_warnings(findings))
    totals = reports.totals_table(reports.monthly_totals(batches, SELECTED, period), period, batches).shown()
    assert totals.iloc[0].tolist()[2:] == ["100.000", "140.000\u00a0⚠", "57.000", "297.000\u00a0⚠"]
    frame = reports.summary(SELECTED, batches, before, before.iloc[:0], period, previous, year_ago)
    assert frame.loc[0, "Duplicated"] == 1
    shown = reports.summary_table(frame, period, previous, year_ago)
    total, change = shown.shown().iloc[0, 1], shown.shown().iloc[0, 2]
    assert total == "297.000\u00a0t\u00a0⚠" and change.endswith("⚠")
    assert any("possibly generated twice" in note for note in shown.notes())


def test_a_change_against_an_overstated_quarter_carries_the_mark() -> None:
    """The previous quarter had a month generated twice: the change against it is marked ⚠ and a note says why."""
    period, previous, year_ago = QUARTERS
    batches = _frames(*[("lgr_a", m, 60.0) for m in ("2024-10", "2024-11", "2024-12")])
    before = _frames(*[("lgr_a", m, 50.0) for m in FULL_Q3], ("lgr_a", "2024-08", 50.0))
    frame = reports.summary(SELECTED, batches, before, before.iloc[:0], period, previous, year_ago)
    assert frame.loc[0, "Previous duplicated"] == 1
    table = reports.summary_table(frame, period, previous, year_ago)
    row = table.shown().iloc[0].tolist()
    assert row[1] == "180.000\u00a0t" and row[2].endswith("⚠") and not row[3].endswith("⚠")
    assert any("the 2024Q3 total may be overstated" in note for note in table.notes())


def test_a_complete_batch_without_a_value_is_no_value_and_no_change_is_computed() -> None:
    """A complete batch with a null output showed 0.000 and a change was computed from its quarter."""
    period, previous, year_ago = QUARTERS
    batches = _frames(("lgr_a", "2024-10", 100.0), ("lgr_a", "2024-11", None), ("lgr_a", "2024-12", 57.0))
    before = _frames(*[("lgr_a", m, 50.0) for m in FULL_Q3])
    totals = reports.monthly_totals(batches, SELECTED, period)
    assert pd.isna(totals.iloc[0]["2024-11"])
    shown = reports.totals_table(totals, period, batches).shown().iloc[0].tolist()
    assert shown[2:] == ["100.000", "no value", "57.000", "157.000 (no value for 2024-11)"]
    frame = reports.summary(SELECTED, batches, before, before.iloc[:0], period, previous, year_ago)
    assert frame.loc[0, "No value"] == "2024-11" and pd.isna(frame.loc[0, "Change vs previous"])
    row = reports.summary_table(frame, period, previous, year_ago).shown().iloc[0].tolist()
    assert row[1] == "157.000\u00a0t (no value for 2024-11)"
    assert row[2] == "not compared: 2024Q4 has no value for 2024-11"
    assert not NOT_ZERO.search(" ".join(map(str, row)) + " ".join(map(str, shown)))
    # ...nor from an earlier quarter with such a batch.
    before.loc[1, "output_value"] = pd.NA
    later = reports.summary(SELECTED, _frames(*[("lgr_a", m, 1.0) for m in ("2024-10", "2024-11", "2024-12")]),
                            before, before.iloc[:0], period, previous, year_ago)
    assert pd.isna(later.loc[0, "Change vs previous"])
    assert reports.summary_table(later, period, previous, year_ago).shown().iloc[0, 2] == \
        "not compared: 2024Q3 has no value for 2024-08"
    findings = reports.quality_findings(batches, pd.DataFrame(columns=["Ledger", "Month", "Status"]), SELECTED)
    assert findings["Finding"].str.startswith("Complete batch without an output value").any()


def test_the_charts_mark_an_overstated_month_as_the_tables_do() -> None:
    """The charts drew a month generated twice (or with a skipped input) like any other: now its figures carry
    the mark, and the alt text says why."""
    period, previous, _ = QUARTERS
    batches = _frames(("lgr_a", "2024-10", 100.0), ("lgr_a", "2024-11", 70.0), ("lgr_a", "2024-11", 70.0))
    batches["end_time"] = batches["start_time"] + pd.offsets.MonthEnd(0)
    for column in ("output_name", "output_unit"):
        batches[column] = "x" if column == "output_name" else "t"
    charts = reports.figures(batches, batches.iloc[:0], SELECTED, period, previous, dpi=40)
    assert len(charts) == 2
    for chart in charts:
        assert "⚠ " in chart.alt and "2024-11" in chart.alt and "possibly generated twice" in chart.alt


def _fed(*rows: tuple[str, str, str, float, str]) -> pd.DataFrame:
    """A batches frame of one feedstock-partitioned ledger from (ledger id, month, feedstock, value, state) rows."""
    items = [{"id": f"bat_{n}", "ledger_id": ledger, "ledger_name": {"lgr_a": "A"}.get(ledger, ledger),
              "tracking_id": f"T-{month}-{feed}", "start_time": pd.Timestamp(f"{month}-01", tz="UTC"),
              "state": state, "output_value": value, "feedstock": feed}
             for n, (ledger, month, feed, value, state) in enumerate(rows)]
    return pd.DataFrame(items).astype({"output_value": "Float64", "feedstock": "string"})


def _whole(months: tuple[str, ...], value: float = 10.0) -> list[tuple[str, str, str, float, str]]:
    return [("lgr_a", m, feed, value, "complete") for m in months for feed in ("x", "y")]


Q4_MONTHS = ("2024-10", "2024-11", "2024-12")


def test_a_change_against_a_quarter_with_a_failed_feedstock_batch_is_not_computed() -> None:
    """The previous quarter's August has feedstock x complete and y failed: August counted as generated and the
    change was computed against a total short by y. Now "not compared", the warnings name the batch; once y is
    generated again (a complete batch beside the failed one) the change is computed."""
    period, previous, year_ago = QUARTERS
    batches = _fed(*_whole(Q4_MONTHS))
    before = _fed(*[r for r in _whole(FULL_Q3) if r[1:3] != ("2024-08", "y")], ("lgr_a", "2024-08", "y", 0.0, "failed"))
    assert reports.sections.missing_partitions(before) == [("lgr_a", "2024-08", "y", ["T-2024-08-y"], ["failed"])]
    frame = reports.summary(SELECTED, batches, before, before.iloc[:0], period, previous, year_ago)
    assert frame.loc[0, "Previous generated"] == 3 and frame.loc[0, "Previous left out"] == "T-2024-08-y (failed)"
    assert pd.isna(frame.loc[0, "Change vs previous"]) and pd.isna(frame.loc[0, "Change vs previous (%)"])
    row = reports.summary_table(frame, period, previous, year_ago).shown().iloc[0].tolist()
    assert row[2] == "not compared: 2024Q3 leaves out T-2024-08-y (failed)"
    warned = repr(reports.key_warnings(pd.DataFrame(columns=["Severity", "Ledger", "Month", "Batch", "Finding"]),
                                       period, summary=frame, previous=previous, year_ago=year_ago))
    assert "- A: the 2024Q3 total leaves out T-2024-08-y (failed): no change against 2024Q3 is computed." in warned
    # The same in the quarter itself: its month and total are "(incomplete)", and no change is computed from it.
    short = _fed(*[r for r in _whole(Q4_MONTHS) if r[1:3] != ("2024-11", "x")],
                 ("lgr_a", "2024-11", "x", 0.0, "failed"))
    totals = reports.totals_table(reports.monthly_totals(short, SELECTED, period), period, short).shown()
    assert totals.iloc[0].tolist()[2:] == ["20.000", "10.000 (incomplete)", "20.000", "50.000 (incomplete)"]
    mine = reports.summary(SELECTED, short, batches.assign(start_time=batches["start_time"] - pd.DateOffset(months=3)),
                           before.iloc[:0], period, previous, year_ago)
    assert reports.summary_table(mine, period, previous, year_ago).shown().iloc[0, 2] == \
        "not compared: 2024Q4 leaves out T-2024-11-x (failed)"
    # Generated again: the partition has a complete batch, nothing is left out, the change is computed.
    again = pd.concat([before, _fed(("lgr_a", "2024-08", "y", 10.0, "complete"))], ignore_index=True)
    fixed = reports.summary(SELECTED, batches, again, before.iloc[:0], period, previous, year_ago)
    assert pd.isna(fixed.loc[0, "Previous left out"]) and fixed.loc[0, "Change vs previous"] == 0.0


def test_a_month_the_preview_could_still_add_batches_to_is_not_compared() -> None:
    """November has a complete batch but the generation preview counts one more (a feedstock delivered late): the
    quarter's total is short, so no change is computed from it and the month reads "(incomplete)"."""
    period, previous, year_ago = QUARTERS
    batches = _fed(*_whole(Q4_MONTHS))
    before = _fed(*_whole(FULL_Q3))
    covered = pd.DataFrame({"Ledger": ["A"] * 3, "Ledger ID": ["lgr_a"] * 3, "Month": list(Q4_MONTHS),
                            "Preview: new batches": pd.array([0, 1, 0], dtype="Int64")})
    frame = reports.summary(SELECTED, batches, before, before.iloc[:0], period, previous, year_ago, covered=covered)
    assert frame.loc[0, "Left out"] == "1 batch not yet generated in 2024-11"
    assert pd.isna(frame.loc[0, "Change vs previous"])
    row = reports.summary_table(frame, period, previous, year_ago).shown().iloc[0].tolist()
    assert row[2] == "not compared: 2024Q4 leaves out 1 batch not yet generated in 2024-11"
    totals = reports.totals_table(reports.monthly_totals(batches, SELECTED, period), period, batches,
                                  covered=covered)
    assert totals.shown().iloc[0].tolist()[2:] == ["20.000", "20.000 (incomplete)", "20.000", "60.000 (incomplete)"]
    assert any("leaves out 1 batch not yet generated in 2024-11" in note for note in totals.notes())
    # Without the preview's count the same batches compare.
    plain = reports.summary(SELECTED, batches, before, before.iloc[:0], period, previous, year_ago)
    assert plain.loc[0, "Change vs previous"] == 0.0


YEAR = reports.report_period("2024")


def _ledgers(count: int) -> pd.DataFrame:
    return pd.DataFrame({"id": [f"lgr_{n}" for n in range(count)], "name": [f"Ledger {n}" for n in range(count)],
                         "unit": ["t"] * count, "has_model": [True] * count})


def test_a_years_monthly_tables_have_a_row_per_month_and_every_column_fits() -> None:
    """An annual report's monthly tables had twelve month columns and the total: the PDF cut them after June.
    Now a year has a row per month and the year's total last, at most four ledgers to a table."""
    selected = _ledgers(5)
    months = [m.label for m in YEAR.months()]
    batches = pd.DataFrame([{"id": f"bat_{n}_{m}", "ledger_id": f"lgr_{n}", "ledger_name": f"Ledger {n}",
                             "tracking_id": f"T{n}-{m}", "start_time": pd.Timestamp(f"{m}-01", tz="UTC"),
                             "state": "complete", "output_value": float(n + 1), "feedstock": pd.NA}
                            for n in range(5) for m in months])
    totals = reports.monthly_totals(batches, selected, YEAR)
    parts = reports.sections.totals_tables(totals, YEAR, batches)
    assert [list(p.frame.columns) for p in parts] == [["Month", *[f"Ledger {n} (t)" for n in range(4)]],
                                                      ["Month", "Ledger 4 (t)"]]
    for part in parts:
        assert part.frame["Month"].tolist() == [*months, "2024 total"]
    assert parts[0].shown().iloc[-1].tolist() == ["2024 total", "12.000", "24.000", "36.000", "48.000"]
    assert parts[1].shown().iloc[11].tolist() == ["2024-12", "5.000"]
    assert parts[0].notes() == [] and parts[1].notes()  # the notes under the last
    # A quarter keeps its month columns.
    quarter = reports.quarter_period("2024Q4")
    (one,) = reports.sections.totals_tables(reports.monthly_totals(batches, selected, quarter), quarter, batches)
    assert list(one.frame.columns) == ["Ledger", "Unit", *Q4_MONTHS, "2024Q4"]
    covered = pd.DataFrame({"Ledger": [f"Ledger {n}" for n in range(5) for _ in months],
                            "Ledger ID": [f"lgr_{n}" for n in range(5) for _ in months], "Month": months * 5,
                            "Batches": 1, "Complete": 1, "Failed": 0, "Preview: new batches": pd.NA,
                            "Generated": True, "Status": "ok"})
    coverage = reports.sections.coverage_tables(covered, YEAR)
    assert [list(p.frame.columns)[1:] for p in coverage] == [[f"Ledger {n}" for n in range(4)], ["Ledger 4"]]
    assert coverage[0].frame["Month"].tolist() == months and coverage[0].frame.iloc[0, 1] == "1 complete"


def test_a_years_computation_has_a_row_per_month_and_a_column_per_term() -> None:
    selected = pd.DataFrame({"id": ["lgr_r"], "name": ["Net Carbon Removal"], "unit": ["t"], "has_model": [True]})
    months = [m.label for m in YEAR.months()]
    batches = pd.DataFrame([{"id": f"bat_{m}", "ledger_id": "lgr_r", "tracking_id": f"NCR-{m}",
                             "start_time": pd.Timestamp(f"{m}-01", tz="UTC"), "state": "complete",
                             "output_value": 9.0} for m in months])
    calculations = pd.DataFrame([{"batch_id": f"bat_{m}", "ledger_id": "lgr_r", "tracking_id": f"NCR-{m}",
                                  "start_time": pd.Timestamp(f"{m}-01", tz="UTC"), "name": name, "lca_role": role,
                                  "unit": "t", "value": value, "note": pd.NA}
                                 for m in months for name, role, value in (("Gross removal", "removal", 10.0),
                                                                           ("Transport", "emission", 1.0))])
    breakdown = reports.net_removal(calculations, batches, selected, YEAR)
    (table,) = reports.net_removal_tables(breakdown, batches, selected, YEAR, calculations)
    assert list(table.frame.columns) == ["Month", "Batch", "+ Gross removal", "\u2212 Transport",
                                         "= Net removal (the ledger's figure)"]
    assert table.frame["Month"].tolist() == [*months, "2024 total"]
    assert table.shown().iloc[-1].tolist() == ["2024 total", "", "120.000", "12.000", "108.000"]
    assert table.notes()[0].startswith("In t, from each batch's calculations")


def test_the_computation_says_the_calculations_unit_when_it_is_not_the_ledgers() -> None:
    """Calculations in kg for a ledger in t: both units are named, neither relabelled (no "CO2e" added)."""
    period = reports.quarter_period("2024Q4")
    selected = pd.DataFrame({"id": ["lgr_r"], "name": ["Net Carbon Removal"], "unit": ["t"], "has_model": [True]})
    batches = pd.DataFrame([{"id": "bat_1", "ledger_id": "lgr_r", "tracking_id": "NCR-1", "state": "complete",
                             "start_time": pd.Timestamp("2024-10-01", tz="UTC"), "output_value": 9.0}])
    calculations = pd.DataFrame([{"batch_id": "bat_1", "ledger_id": "lgr_r", "tracking_id": "NCR-1", "note": pd.NA,
                                  "start_time": pd.Timestamp("2024-10-01", tz="UTC"), "name": "Gross removal",
                                  "lca_role": "removal", "unit": "kg", "value": 9.0}])
    breakdown = reports.net_removal(calculations, batches, selected, period)
    (table,) = reports.net_removal_tables(breakdown, batches, selected, period, calculations)
    assert table.notes()[0].startswith("Terms in kg (the calculations' unit; the ledger's unit is t), from each")
    assert "CO2e" not in " ".join(table.notes())


def test_a_batch_that_is_not_complete_shows_no_output_even_when_the_api_sends_zero() -> None:
    selected = pd.DataFrame({"id": ["lgr_a"], "name": ["A"], "unit": ["t"], "has_model": [True]})
    batches = _fed(("lgr_a", "2024-10", "x", 0.0, "failed"), ("lgr_a", "2024-10", "y", 0.0, "running"),
                   ("lgr_a", "2024-10", "z", 0.0, "complete"))
    batches["output_unit"] = "t"
    frame = reports.batch_table(batches, selected)
    assert frame["Output"].isna().tolist() == [True, True, False]  # a complete zero stays a zero
    (table,) = reports.batch_tables(batches, selected, reports.quarter_period("2024Q4"))
    shown = table.shown()
    assert shown[["State", "Output"]].values.tolist() == [["failed", "–"], ["running", "–"], ["complete", "0.000"]]


def test_the_coverage_note_names_what_its_cells_say() -> None:
    """The note pointed to a "Can be generated" column the table does not have."""
    covered = pd.DataFrame({"Ledger": ["A"], "Ledger ID": ["lgr_a"], "Month": ["2024-10"], "Batches": [1],
                            "Complete": [1], "Failed": [0], "Preview: new batches": pd.array([2], dtype="Int64"),
                            "Generated": [True], "Status": ["⚠ incomplete: 2 more batches can be generated"]})
    table = reports.coverage_table(covered)
    assert table.shown().iloc[0].tolist() == ["A", "⚠ 1 complete; 2 more can be generated"]
    assert list(table.frame.columns) == ["Ledger", "2024-10"]
    note = table.notes()[0]
    assert "\"… can be generated\" in a cell counts" in note and "\"Can be generated\"" not in note


def test_a_batches_chart_without_a_batch_in_the_period_before_draws_this_period_alone() -> None:
    """The annual report's "2023 and 2024" batches chart was half empty (no batch in 2023): now it draws 2024 and
    says that 2023 has none."""
    period, previous, _ = QUARTERS
    batches = _frames(("lgr_a", "2024-10", 100.0), ("lgr_a", "2024-11", 70.0))
    batches["end_time"] = batches["start_time"] + pd.offsets.MonthEnd(0)
    batches["output_name"], batches["output_unit"] = "x", "t"
    charts = reports.figures(batches, batches.iloc[:0], SELECTED, period, previous, dpi=40)
    assert charts[1].alt == "A: output per batch and cumulative output, 2024Q4 (none in 2024Q3)"
    before = batches.assign(start_time=batches["start_time"] - pd.DateOffset(months=3),
                            end_time=batches["end_time"] - pd.DateOffset(months=3))
    both = reports.figures(batches, before, SELECTED, period, previous, dpi=40)
    assert both[1].alt == "A: output per batch and cumulative output, 2024Q3 and 2024Q4"


@pytest.mark.parametrize(("role", "value", "note"), [
    ("output", 104.328, "Electricity Consumption skipped: counted as zero"),  # the /modelruns shape: one row
    ("emissions", 0.0, "Electricity Consumption counted as zero"),  # a role spelled otherwise
    ("removal", 106.479, "Permanence factor 0.80 applied"),  # a note about something else
])
def test_a_skip_no_calculation_shows_to_be_a_zeroed_term_marks_the_month_possibly_overstated(
        role: str, value: float, note: str) -> None:
    """Each was "understated" (no ⚠ on the month), and the registry plan let the batch through: the rule the report
    and the plan share is conservative now (``frames.skipped_effects``)."""
    batches = _frames(("lgr_a", "2024-10", 100.0), ("lgr_a", "2024-11", 104.328)).assign(
        skipped_inputs=pd.Series([pd.NA, "Electricity Consumption"], dtype="string"))
    november = str(batches["id"].iloc[1])
    calculations = pd.DataFrame({"batch_id": [november], "tracking_id": ["T-2024-11"], "ledger_id": ["lgr_a"],
                                 "start_time": [pd.Timestamp("2024-11-01", tz="UTC")], "name": ["Net Carbon Removal"],
                                 "value": [value], "unit": ["t"], "ghg": ["co2e"], "lca_role": [role],
                                 "category": ["removal"], "note": [note]})
    [(text, direction)] = reports.skipped_effects(batches, calculations).values()
    assert direction == "unknown" and reports.may_overstate(direction) and "may be overstated" in text
    assert reports.month_marks(batches, calculations) == {("lgr_a", "2024-11"): ["overstated"]}
    covered = pd.DataFrame(columns=["Ledger", "Month", "Status"])
    findings = reports.quality_findings(batches, covered, SELECTED, calculations)
    skipped = findings[findings["Finding"].str.startswith("Generated without")]
    assert skipped["Severity"].tolist() == ["warning"] and "understated" not in skipped["Finding"].item()
