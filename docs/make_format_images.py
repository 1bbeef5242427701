"""Make the README's pictures of the report's PDF and spreadsheet.

    .venv/bin/python docs/make_format_images.py

Starts an emulator, generates Q1 2025 where batches are missing and renders its report with
``render_report("2025Q1", formats=("pdf", "xlsx"), project=123)``, as ``make demo`` does, then:

- ``docs/images/report_pdf_page.png``: the PDF's first page, rasterised by pypdfium2 (PDFium, the engine that
  renders PDFs in Chromium) at 110 dpi;
- ``docs/images/report_xlsx_summary.png``: the workbook's Summary sheet. No spreadsheet application runs here, so
  the sheet is drawn from the workbook itself: openpyxl reads back every cell (value, number format, bold header,
  column width, frozen first row), this script lays them out as an HTML table in the manner of a spreadsheet
  (column letters, row numbers, numbers right-aligned in their number format, the sheet tabs), and headless
  Chromium (the system one, driven through Playwright, as the PDF is) screenshots it. What it shows is what the
  file holds; the look is a spreadsheet's, not any one application's.

Both are saved as 256-colour palette PNGs.
"""

from __future__ import annotations

import contextlib
import html
import io
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from mangrove_nb.reports import render_report
from mangrove_nb.reports.pdf import CHROMIUM_ARGS, pdf_browser
from mangrove_nb.testing import emulator

IMAGES = Path(__file__).resolve().parent / "images"
PDF_IMAGE = IMAGES / "report_pdf_page.png"
XLSX_IMAGE = IMAGES / "report_xlsx_summary.png"
DPI = 110
PIXELS_PER_WIDTH = 7.6  # one unit of an Excel column width, in CSS pixels (Calibri 11's digit, about)
SHEET_CSS = """
body { margin: 0; background: #fff; font: 13px Calibri, Carlito, "Liberation Sans", Arial, sans-serif; }
.caption { padding: 8px 10px; font-size: 12px; color: #444; background: #f3f3f3; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; table-layout: fixed; }
th.corner, th.col, th.row { background: #efefef; color: #555; font-weight: normal; border: 1px solid #c8c8c8;
  text-align: center; }
th.corner, th.row { width: 34px; min-width: 34px; }
td { border: 1px solid #dcdcdc; padding: 2px 4px; vertical-align: top; white-space: nowrap; overflow: hidden; }
td.wrap { white-space: normal; }
td.num { text-align: right; }
td.bold { font-weight: bold; white-space: normal; vertical-align: bottom; }
tr.frozen td { border-bottom: 2px solid #9a9a9a; }
.tabs { padding: 0 0 0 40px; border-top: 1px solid #ccc; background: #f3f3f3; }
.tab { display: inline-block; padding: 4px 12px; color: #333; border-right: 1px solid #ccc; font-size: 12px; }
.tab.active { background: #fff; color: #217346; font-weight: bold; border-bottom: 2px solid #217346; }
"""


def shrink(path: Path) -> None:
    """Rewrite a PNG as a 256-colour palette PNG (tests/screenshots.py does the same for the other images)."""
    from PIL import Image

    with Image.open(path) as image:
        palette = image.convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE,
                                                dither=Image.Dither.NONE)
    palette.save(path, optimize=True)


def pdf_first_page(pdf: Path, target: Path) -> None:
    import pypdfium2

    document = pypdfium2.PdfDocument(str(pdf))
    try:
        page = document[0]
        page.render(scale=DPI / 72).to_pil().save(target)
        page.close()
    finally:
        document.close()
    shrink(target)


def shown(cell: Any) -> tuple[str, bool]:
    """A cell as a spreadsheet shows it, and whether it is a number (right-aligned)."""
    value = cell.value
    if value is None:
        return "", False
    if isinstance(value, datetime):
        return value.strftime("%Y-%m" if cell.number_format == "yyyy-mm" else "%Y-%m-%d %H:%M:%S"), True
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value), False
    places = {"#,##0.000": ",.3f", "#,##0": ",.0f", "0.0": ".1f"}.get(cell.number_format, "")
    return format(value, places).replace("-", "\u2212") if places else str(value), True


def sheet_page(xlsx: Path, name: str, rows: int = 12) -> str:
    """The sheet ``name`` of ``xlsx`` as an HTML page that looks like a spreadsheet's grid."""
    import openpyxl
    from openpyxl.utils import get_column_letter

    book = openpyxl.load_workbook(xlsx)
    ws = book[name]
    columns = ws.max_column
    widths = [round((ws.column_dimensions[get_column_letter(n)].width or 8.43) * PIXELS_PER_WIDTH)
              for n in range(1, columns + 1)]
    head = "".join(f'<th class="col" style="width:{w}px">{get_column_letter(n)}</th>'
                   for n, w in enumerate(widths, start=1))
    body = []
    for number, cells in enumerate(ws.iter_rows(min_row=1, max_row=min(ws.max_row, rows)), start=1):
        tds = []
        alone = cells[0].value is not None and all(c.value is None for c in cells[1:])
        for cell in cells[:1] if alone else cells:  # a note alone in its row spills over the empty cells, as text does
            text, numeric = shown(cell)
            classes = [c for c, on in (("num", numeric), ("bold", bool(cell.font and cell.font.bold)),
                                       ("wrap", bool(cell.alignment and cell.alignment.wrap_text))) if on]
            span = f' colspan="{columns}"' if alone else ""
            tds.append(f'<td class="{" ".join(classes)}"{span}>{html.escape(text)}</td>')
        frozen = ' class="frozen"' if ws.freeze_panes == f"A{number + 1}" else ""
        body.append(f'<tr{frozen}><th class="row">{number}</th>{"".join(tds)}</tr>')
    tabs = "".join(f'<span class="tab{" active" if sheet == name else ""}">{html.escape(sheet)}</span>'
                   for sheet in book.sheetnames)
    caption = (f"{html.escape(xlsx.name)}: the {html.escape(name)} sheet, drawn from the workbook's cells (values, "
               "number formats, widths, frozen header row) by docs/make_format_images.py")
    return (f'<!doctype html><html><head><meta charset="utf-8"><style>{SHEET_CSS}</style></head><body>'
            f'<div class="caption">{caption}</div><table style="width:{sum(widths) + 36}px">'
            f'<tr><th class="corner" style="width:34px"></th>{head}</tr>{"".join(body)}'
            f'</table><div class="tabs">{tabs}</div></body></html>')


def screenshot(page_html: str, target: Path, width: int) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=pdf_browser(), args=list(CHROMIUM_ARGS))
        try:
            context = browser.new_context(viewport={"width": width, "height": 120}, java_script_enabled=False,
                                          device_scale_factor=1)
            context.route("**/*", lambda route: route.abort())  # the page is self-contained: nothing to fetch
            page = context.new_page()
            page.set_content(page_html, wait_until="load")
            page.screenshot(path=str(target), full_page=True)
        finally:
            browser.close()
    shrink(target)


def main() -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    with emulator() as emu, tempfile.TemporaryDirectory(prefix="mnb-formats-") as tmp:
        with contextlib.redirect_stderr(io.StringIO()):
            paths = render_report("2025Q1", out_dir=tmp, base_url=emu.url, token=emu.token, project=123,
                                  generate_missing=True, formats=("pdf", "xlsx"))
        assert paths.pdf is not None
        assert paths.xlsx is not None
        pdf_first_page(paths.pdf, PDF_IMAGE)
        screenshot(sheet_page(paths.xlsx, "Summary", rows=8), XLSX_IMAGE, width=1200)
    for image in (PDF_IMAGE, XLSX_IMAGE):
        print("written", image.relative_to(IMAGES.parent.parent), f"({image.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
