"""The HTML report in a real browser: headless Chromium (Debian's ``/usr/bin/chromium``) driven by Playwright.

The page is opened from a ``file://`` URL with every request recorded and anything that is neither ``file:``
nor ``data:`` aborted; Chromium also runs with its background networking off. The test checks that the report
opens with the project's name and its summary, that the plots (``data:`` PNGs) and tables are visible, that every
table fits a 700 px window (no column off-screen), that nothing was fetched or failed and the console stayed
clean, and saves a screenshot of the first screen (a palette PNG; to ``docs/images/report.png`` when
``MANGROVE_NB_UPDATE_DOCS=1``). An annual report's tables (a row per month) fit at 1280 px and at 700 px too.
"""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path
from typing import Any

import pytest
from helpers import REPORT_SECTIONS
from screenshots import shrink

from mangrove_nb.reports import render_report

CHROMIUM = Path("/usr/bin/chromium")
# Screenshots go to a temporary folder; MANGROVE_NB_UPDATE_DOCS=1 writes the README's copy instead, so a test
# run never changes tracked files by itself.
DOCS_SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "images" / "report.png"
UPDATE_DOCS = os.environ.get("MANGROVE_NB_UPDATE_DOCS") == "1"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SECTIONS = REPORT_SECTIONS
NARROW = 700  # px: the width every table must fit

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _browser(playwright: Any) -> Any:
    executable = str(CHROMIUM if CHROMIUM.exists() else shutil.which("chromium"))
    return playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)


def _overflowing(page: Any, width: int) -> list[str]:
    """At a window ``width`` px wide, the tables that do not fit (a column off-screen or behind a sideways scroll),
    by their first characters; the page itself must not scroll sideways either."""
    page.set_viewport_size({"width": width, "height": 900})
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    found: list[str] = page.evaluate("""() => Array.from(document.querySelectorAll('table.mangrove-table'))
        .filter(t => t.getBoundingClientRect().right > window.innerWidth + 0.5
                     || t.parentElement.scrollWidth > t.parentElement.clientWidth + 1)
        .map(t => t.innerText.slice(0, 60))""")
    return found


def test_report_renders_offline_in_headless_chromium(make_emulator: Any, tmp_path: Path) -> None:
    SCREENSHOT = DOCS_SCREENSHOT if UPDATE_DOCS else tmp_path / "report.png"
    if not CHROMIUM.exists() and shutil.which("chromium") is None:
        pytest.skip("Chromium is not installed (/usr/bin/chromium; Debian package 'chromium')")
    sync_api = pytest.importorskip(
        "playwright.sync_api",
        reason="Playwright's Python package is not installed (pip install playwright; no browser download needed)")

    emu = make_emulator()
    paths = render_report("2025Q1", out_dir=tmp_path, base_url=emu.url, token=emu.token, generate_missing=True,
                          project=123, progress=False)

    requests: list[str] = []
    blocked: list[str] = []
    failed: list[str] = []
    console: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = _browser(playwright)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})

            def route(route: Any) -> None:
                url = route.request.url
                if url.startswith(("file:", "data:")):
                    route.continue_()
                else:
                    blocked.append(url)
                    route.abort()

            page.route("**/*", route)
            page.on("request", lambda request: requests.append(request.url))
            page.on("requestfailed", lambda request: failed.append(request.url))
            page.on("console", lambda message: console.append(f"{message.type}: {message.text}")
                    if message.type in ("error", "warning") else None)
            page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
            page.goto(paths.html.as_uri(), wait_until="load")

            assert page.title() == "Cascade Biochar Facility: Quarterly report 2025Q1"
            assert page.locator("h1").all_inner_texts() == ["Cascade Biochar Facility"]
            assert [text.replace("¶", "").strip() for text in page.locator("h2").all_inner_texts()] == SECTIONS
            # The first screen holds the title, the summary table and the warnings' heading.
            first = page.locator("table.mangrove-table").first.bounding_box()
            assert first is not None and first["y"] + first["height"] < 900
            assert page.locator("h2", has_text="Warnings").bounding_box()["y"] < 900
            assert page.evaluate("document.scripts.length") == 0

            images = page.locator("img")
            assert images.count() >= 3  # the monthly totals and one figure per ledger with batches
            for index in range(images.count()):
                image = images.nth(index)
                image.scroll_into_view_if_needed()
                assert image.is_visible()
                assert image.get_attribute("src").startswith("data:image/png;base64,")
                loaded = image.evaluate("img => img.complete && img.naturalWidth > 300 && img.naturalHeight > 200")
                assert loaded, f"image {index} did not decode"
                assert image.get_attribute("alt")

            tables = page.locator("table.mangrove-table")
            assert tables.count() >= 10
            for index in range(tables.count()):
                box = tables.nth(index).bounding_box()
                assert box is not None and box["width"] > 100 and box["height"] > 20
            body = page.inner_text("main")
            for text in ("NCR-2025-01", "NCR-2025-03", "Data fingerprint", "2025Q1 total", "3 of 3 months generated",
                         "not generated", "= Net removal (the ledger's figure)"):
                assert text in body, text
            assert page.locator(".jp-InputPrompt, .jp-CodeMirrorEditor, .highlight").count() == 0  # code hidden

            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.evaluate("window.scrollTo(0, 0)")
            page.screenshot(path=str(SCREENSHOT))  # the first screen, as a reader opens it
            page.screenshot(path=str(tmp_path / "report-full.png"), full_page=True)

            # At 700 px every table fits: no column is off-screen or needs a sideways scroll.
            assert _overflowing(page, NARROW) == []
            page.screenshot(path=str(tmp_path / "report-700.png"), full_page=True)
        finally:
            browser.close()

    assert blocked == [], f"the page tried to load {blocked}"
    assert failed == []
    assert all(url.startswith(("file:", "data:")) for url in requests), requests
    assert console == []
    shrink(SCREENSHOT)
    header = SCREENSHOT.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    assert (width, height) == (1280, 900)
    full = (tmp_path / "report-full.png").read_bytes()[16:24]
    assert struct.unpack(">II", full)[1] > 2000




def test_an_annual_reports_tables_fit_a_wide_and_a_narrow_window(make_emulator: Any, tmp_path: Path) -> None:
    """The annual report's monthly tables had twelve month columns and the total: at 1280 px the HTML showed up to
    August. Now every table fits at 1280 px and at 700 px, and the year's total and December are on the page."""
    if not CHROMIUM.exists() and shutil.which("chromium") is None:
        pytest.skip("Chromium is not installed (/usr/bin/chromium; Debian package 'chromium')")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright's Python package is not installed")
    emu = make_emulator()
    paths = render_report(year=2024, out_dir=tmp_path, base_url=emu.url, token=emu.token, project=123,
                          progress=False)
    with sync_api.sync_playwright() as playwright:
        browser = _browser(playwright)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(("file:", "data:"))
                       else route.abort())
            page.goto(paths.html.as_uri(), wait_until="load")
            assert page.title() == "Cascade Biochar Facility: Annual report 2024"
            assert page.locator("table.mangrove-table").count() >= 10
            for width in (1280, NARROW):
                assert _overflowing(page, width) == [], width
            body = page.inner_text("main")
            assert "2024 total" in body and "2024-12" in body
            page.screenshot(path=str(tmp_path / "annual-700.png"), full_page=True)
        finally:
            browser.close()
