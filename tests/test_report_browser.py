"""The HTML report in a real browser: headless Chromium (Debian's ``/usr/bin/chromium``) driven by Playwright.

The page is opened from a ``file://`` URL with every request recorded and anything that is neither ``file:``
nor ``data:`` aborted; Chromium also runs with its background networking off. The test checks that the plots
(``data:`` PNGs) and tables are visible, that nothing was fetched or failed, that the console stayed clean,
and saves a full-page screenshot (a palette PNG; to ``docs/images/report.png`` when
``MANGROVE_NB_UPDATE_DOCS=1``).
"""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path
from typing import Any

import pytest
from screenshots import shrink

from mangrove_nb.reports import render_report

CHROMIUM = Path("/usr/bin/chromium")
# Screenshots go to a temporary folder; MANGROVE_NB_UPDATE_DOCS=1 writes the README's copy instead, so a test
# run never changes tracked files by itself.
DOCS_SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "images" / "report.png"
UPDATE_DOCS = os.environ.get("MANGROVE_NB_UPDATE_DOCS") == "1"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SECTIONS = ["Provenance", "Ledgers", "Required inputs", "Preview vs existing batches", "Batches",
            "Compared with the previous quarter", "Plots", "Data quality"]

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_report_renders_offline_in_headless_chromium(make_emulator: Any, tmp_path: Path) -> None:
    SCREENSHOT = DOCS_SCREENSHOT if UPDATE_DOCS else tmp_path / "report.png"
    if not CHROMIUM.exists() and shutil.which("chromium") is None:
        pytest.skip("Chromium is not installed (/usr/bin/chromium; Debian package 'chromium')")
    sync_api = pytest.importorskip(
        "playwright.sync_api",
        reason="Playwright's Python package is not installed (pip install playwright; no browser download needed)")
    executable = str(CHROMIUM if CHROMIUM.exists() else shutil.which("chromium"))

    emu = make_emulator()
    paths = render_report("2025Q1", out_dir=tmp_path, base_url=emu.url, token=emu.token, generate_missing=True,
                          progress=False)

    requests: list[str] = []
    blocked: list[str] = []
    failed: list[str] = []
    console: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
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

            assert page.title() == "Quarterly report 2025Q1"
            assert [text.replace("¶", "").strip() for text in page.locator("h2").all_inner_texts()] == SECTIONS
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
            assert tables.count() >= 7
            for index in range(tables.count()):
                box = tables.nth(index).bounding_box()
                assert box is not None and box["width"] > 100 and box["height"] > 20
            body = page.inner_text("main")
            for text in ("NCR-2025-01", "NCR-2025-03", "Data fingerprint", "2025Q1 total", "⚠ missing"):
                assert text in body, text
            assert page.locator(".jp-InputPrompt, .jp-CodeMirrorEditor, .highlight").count() == 0  # code hidden

            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
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
    assert width == 1280 and height > 2000


