"""Quarterly report notebooks: build from the template with nbformat, execute headless with nbclient, export HTML.

    from mangrove_nb.reports import render_report

    paths = render_report("2025Q1", out_dir="reports")   # token and URL from MANGROVE_API_TOKEN / MANGROVE_API_URL
    paths.html                                           # reports/quarterly_report_2025Q1.html
    render_report("2025Q1", ledgers=["Net Carbon Removal"], project=123)   # ..._2025Q1_net-carbon-removal.html

The template ships in the package (``templates/quarterly_report.ipynb``, ``DEFAULT_TEMPLATE``);
``notebooks/03_quarterly_report.ipynb`` is the same file, the starter copy users open. Its ``parameters`` cell
(``ledgers``, ``quarter``, ``base_url``, ``project``; never the token) follows papermill's convention:
``build_report`` adds the values in a new cell tagged ``injected-parameters`` right after it, exactly as papermill
does, so papermill (and the orchestrators that run papermill) run the same template unchanged.

The report is written for the person who receives it: the project's name and the quarter; a summary per ledger
(the quarter's total, the change against the previous quarter and the same quarter a year before, the months
generated); warnings; totals by month; how net removal was computed (each month's calculations, removal minus
emissions, adding up to the ledger's figure); charts; coverage; data quality (a batch generated with a skipped
input is flagged with what the skip changed); every batch; and an appendix with the provenance (API, ids,
fingerprint), the ledgers and their inputs. Ledgers run from carbon removal to its upstream ledgers. A ledger or
month without a complete batch is "not generated", never 0, and a change is computed only between quarters whose
every month is generated. Totals count complete batches only.

``render_report`` then executes the notebook in one kernel whose environment carries ``MANGROVE_API_URL``,
``MANGROVE_API_TOKEN`` and ``MANGROVE_NB_QUIET=1`` (the token is never written into the notebook), prints one
line per cell on stderr, and writes (``<stem>`` is ``quarterly_report_<quarter>``):

- ``<stem>.ipynb``: the executed notebook, valid nbformat, without widget state, widget views, JavaScript
  outputs, execution timings or local absolute paths (they become ``<site-packages>``, ``<python>``, ``~``...);
  ``metadata.mangrove_nb`` holds what the cells handed back: quarter, ledgers, fingerprint, totals, findings;
- ``<stem>.html``: the same with the code hidden, images embedded as ``data:`` URIs, and no ``<script>``
  at all: no require.js, MathJax, Mermaid or widget manager, nothing fetched from a CDN, no kernel needed;
- with ``formats=`` (``--format html,pdf,xlsx``; default ``("html",)``; the ``.ipynb`` is always written):
  ``<stem>.pdf``, that HTML printed by the system Chromium through Playwright (``pdf``: A4, page numbers, no row
  or figure cut across pages, nothing fetched), and ``<stem>.xlsx``, the report's tables as a workbook (``xlsx``:
  one sheet per table and a Provenance sheet, written by the template's last cell in the same run, so its numbers
  are the report's own).

A report on chosen ledgers (names or ids, checked against the API before anything runs) is written as
``<stem>_<the ledgers' names as slugs>``, never over the all-ledger report.

A failing cell stops the run with ``ReportError`` naming the cell (its number, section heading and first
line) and leaves the partial notebook as ``<stem>_FAILED.ipynb``; so does an interrupt (Ctrl-C), which is
re-raised with a note saying where the partial notebook is. An ``out_dir`` that is not a writable folder is a
``ReportError`` raised before anything runs or is generated; a kernel that cannot start is one too (it says to
install ipykernel). Every message is one line.

Files are written whole or not at all (a temporary file beside the target, renamed over it): a symlink at an
output path is replaced, never written through, and an earlier report survives a failed write. The token
never reaches a file, a message or a frame of ours: it travels in a ``Secret`` and is revealed only inside
``_KernelEnvironment``, whose repr hides it; it is masked in the notebook's sources (a parameter that holds it),
outputs and metadata; errors raised while the kernel starts are not chained to frames that hold its
environment, and a failing cell's error is chained to a scrubbed copy without frames.

One process, one kernel: the kernel boots while the parent generates missing batches (``generate_missing``)
and loads nbconvert in a thread, and it is stopped at once after the last cell; the figures use fixed margins.
``benchmarks/report_vs_papermill.py`` compares this with papermill followed by ``jupyter nbconvert``.

``render_report(year=2025)`` renders the annual report (``annual_report_2025``: the same template, twelve months,
compared with the year before, worded for a year). ``render_reports("2024Q1..2025Q4")`` renders one report per
quarter of a range (or year: ``years="2023..2025"``) in one go, the next kernel starting while the current one
runs and every API answer read once (``benchmarks/report_range.py``). ``snapshot=True`` keeps what a report read
as ``<stem>.snapshot/`` (JSON lines and a manifest, never the token); ``render_report(from_snapshot=...)`` renders
it again from that alone, with no token and no API, to the same numbers and fingerprint.

The package, one stage per module:

- ``notebook``: the template, the quarter, the parameters injected, the arguments checked, the file name;
- ``run``: ``render_report``, ``render_reports``: the checks once, one kernel per report (the next one started
  meanwhile), the files written; ``_arguments`` (formats, periods), ``_kernel`` (executing in a kernel: progress per
  cell, failures, stopping it), ``_outputs`` (``ReportPaths``, the page, the stale files, what was written) and
  ``generate`` (``generate_missing_batches``) are its rooms, their names importable from ``run`` too;
- ``snapshot``: the report kernel's client (``connect``): through a read cache shared by a command's reports, or
  answering from a snapshot; writing and reading snapshots. ``_recording`` (the read cache, the clients that remember
  what they read, the data fingerprint), ``_replaying`` (replaying, the kernel's ``connect``) and ``_snapshot_files``
  (a snapshot's folder, read checked and written whole) are its rooms, their names importable from ``snapshot`` too;
- ``clean``: the token and local paths out of notebooks, messages and tracebacks; widget state and scripts out;
- ``html``: the self-contained HTML export (with its print rules);
- ``pdf``: the HTML printed to PDF by the system Chromium, driven through Playwright, with nothing fetched;
- ``xlsx``: the report's tables written by the template's last cell (``write_tables``), made into a workbook;
- ``files``: the output folder, and files written whole or not at all;
- ``sections``: what the template's cells call (tables, coverage, totals, findings, figures, the data
  fingerprint): plain pandas over the client's frames, deterministic given the data. API text reaches HTML only
  through ``Table`` (pandas' ``to_html`` with ``escape=True``) and ``html.escape``.

Every name the template, the CLI and users import is here, at ``mangrove_nb.reports``. nbformat, nbclient,
nbconvert and matplotlib are imported inside the functions that need them.
"""

from __future__ import annotations

from mangrove_nb.errors import ReportError

from .clean import KERNEL_ENV as KERNEL_ENV
from .html import export_html
from .notebook import DEFAULT_TEMPLATE, build_report, inject_parameters, quarter_period, report_stem, resolve_ledgers
from .notebook import INJECTED_TAG as INJECTED_TAG
from .notebook import MAX_REPORTS as MAX_REPORTS
from .notebook import META_KEY as META_KEY
from .notebook import PARAMETERS_TAG as PARAMETERS_TAG
from .notebook import report_period as report_period
from .notebook import report_range as report_range
from .run import FORMATS, ReportPaths, generate_missing_batches, parse_formats, render_report
from .run import render_reports as render_reports
from .sections import (
    NOT_GENERATED,
    Bullets,
    Chart,
    Header,
    Table,
    batch_table,
    batch_tables,
    breakdown_batches,
    coverage,
    coverage_table,
    duplicate_partitions,
    figures,
    findings_table,
    fingerprint,
    header,
    inputs_table,
    key_warnings,
    ledger_summary,
    may_overstate,
    month_marks,
    monthly_totals,
    net_removal,
    net_removal_tables,
    order_ledgers,
    provenance,
    quality_findings,
    records,
    removal_ledgers,
    report_project,
    select_ledgers,
    skipped_effects,
    summary,
    summary_table,
    totals_table,
    year_before,
)
from .sections import frame_has_manual_select as frame_has_manual_select
from .snapshot import connect as connect
from .snapshot import load_snapshot as load_snapshot
from .xlsx import write_tables

# The names imported as themselves above were public in the former single module (never in __all__): they stay
# importable from here. __all__ is unchanged.
__all__ = [
    "DEFAULT_TEMPLATE",
    "FORMATS",
    "NOT_GENERATED",
    "Bullets",
    "Chart",
    "Header",
    "ReportError",
    "ReportPaths",
    "Table",
    "batch_table",
    "batch_tables",
    "breakdown_batches",
    "build_report",
    "coverage",
    "coverage_table",
    "duplicate_partitions",
    "export_html",
    "figures",
    "findings_table",
    "fingerprint",
    "generate_missing_batches",
    "header",
    "inject_parameters",
    "inputs_table",
    "key_warnings",
    "ledger_summary",
    "may_overstate",
    "month_marks",
    "monthly_totals",
    "net_removal",
    "net_removal_tables",
    "order_ledgers",
    "parse_formats",
    "provenance",
    "quality_findings",
    "quarter_period",
    "records",
    "removal_ledgers",
    "render_report",
    "report_project",
    "report_stem",
    "resolve_ledgers",
    "select_ledgers",
    "skipped_effects",
    "summary",
    "summary_table",
    "totals_table",
    "write_tables",
    "year_before",
]
