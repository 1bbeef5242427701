"""Writes the report template (no outputs) from the cells below, to two identical files: the one the package ships
and renders (mangrove_nb/reports/templates/quarterly_report.ipynb, package data) and the starter copy users open
(notebooks/03_quarterly_report.ipynb).

Edit the cells here, run `.venv/bin/python notebooks/build_report_template.py`, commit all three (a test checks the
two files are what this script writes). The `parameters` cell follows papermill's convention; never put a token in
it.

The report reads, in order: the project's name and the quarter; a summary per ledger (total, changes, coverage);
warnings; totals by month; how net removal was computed; charts; coverage; data quality; every batch; the
registry (which batches are on which registry report, what is still unallocated); and an appendix with provenance,
the ledgers and their inputs. The first code cells read everything (nothing is shown before the title); each later
cell shows one part. The last cell (tagged `export-tables`, its source hidden) shows
nothing: when the `export_tables` parameter names a file, it writes the report's tables there for the spreadsheet
(`mangrove-nb report --format xlsx`; see mangrove_nb/reports/xlsx.py).
"""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

cells = []


def md(cell_id, text):
    cells.append(new_markdown_cell(text.strip("\n"), id=cell_id))


def code(cell_id, text, tags=None, hidden=False):
    cell = new_code_cell(text.strip("\n"), id=cell_id)
    if tags:
        cell.metadata["tags"] = tags
    if hidden:  # JupyterLab shows the cell collapsed
        cell.metadata["jupyter"] = {"source_hidden": True}
    cells.append(cell)


code("parameters", """
# Parameters: papermill and `mangrove-nb report` inject their values in a new cell right after this one.
ledgers = None  # a list of ledger ids or names, or None for every ledger with a model
quarter = "2025Q1"  # the calendar quarter to report on, or a year such as "2025" for an annual report
base_url = None  # the API base URL, or None for MANGROVE_API_URL (else the Mangrove default)
project = None  # the project id, or None for MANGROVE_PROJECT_ID (else the project the ledgers name)
export_tables = None  # a file name: the last cell writes the report's tables there as JSON (--format xlsx)
""", tags=["parameters"])

code("setup", """
# Setup: connect (credentials come from the environment) and read the ledgers, their inputs and three periods.
# Render with `mangrove-nb report --quarter 2025Q1` (or --year 2025), `mangrove_nb.reports.render_report("2025Q1")`
# or `papermill ... -p quarter 2025Q1`. The API token comes from MANGROVE_API_TOKEN in the kernel's environment,
# never from this notebook; a report rendered from a snapshot reads it, not the API (reports.connect).
from datetime import UTC, datetime

import pandas as pd
from IPython.display import display

import mangrove_nb as mnb
from mangrove_nb import reports

period = reports.report_period(quarter)  # a quarter, or a year (then previous and year_ago are the same year)
previous, year_ago = period.previous(), reports.year_before(period)
client = reports.connect(base_url=base_url)
about = reports.report_project(client, project)
all_ledgers = client.ledgers()
selected = reports.select_ledgers(all_ledgers, ledgers)
inputs = {ledger_id: client.required_inputs(ledger_id) for ledger_id in selected["id"]}
selected = reports.order_ledgers(selected, inputs)  # carbon removal first, then its upstream ledgers
ids = selected["id"].tolist()
batches = client.batches(ids, period, details=True)  # with the inputs each generation skipped
before = client.batches(ids, previous, details=True)  # details: an earlier skip marks its changes too
year_ago_batches = before if year_ago == previous else client.batches(ids, year_ago, details=True)
earlier = before if year_ago == previous else pd.concat([year_ago_batches, before], ignore_index=True)
""")

code("analysis", """
# Analysis: calculations, coverage (the preview is read-only: nothing is generated here), findings, fingerprint
calculations = client.calculations(reports.breakdown_batches(batches, selected))
skipped_before = client.calculations(earlier[earlier["skipped_inputs"].notna()])  # what earlier skips changed
judged = calculations if skipped_before.empty else pd.concat([calculations, skipped_before], ignore_index=True)
covered = reports.coverage(client, selected, inputs, batches, period)
# The earlier periods' coverage (not shown): no change is computed against a total that leaves batches out.
covered_before = reports.coverage(client, selected, inputs, before, previous)
covered_earlier = covered_before if year_ago == previous else pd.concat(
    [covered_before, reports.coverage(client, selected, inputs, year_ago_batches, year_ago)], ignore_index=True)
covered_all = pd.concat([covered, covered_earlier], ignore_index=True)
findings = reports.quality_findings(batches, covered, selected, calculations, period=period)
summary = reports.summary(selected, batches, before, year_ago_batches, period, previous, year_ago, judged,
                          covered=covered_all)
totals = reports.monthly_totals(batches, selected, period)
breakdown = reports.net_removal(calculations, batches, selected, period)
registry = reports.sections.registry_status(client, batches, selected, period, project=about)  # 404/403: one line
digest = reports.fingerprint(client)  # every answer read above (read last: nothing is read after it), not the clock
generated_at = datetime.now(UTC)
""")

code("title", """
# Title: the project, the period, what the report covers
display(
    reports.header(about, selected, period, previous, year_ago, generated_at=generated_at, digest=digest,
                   all_ledgers=all_ledgers),
    metadata={"mangrove_nb": {
        "project": {"id": about.id, "name": about.name} if about is not None else None,
        "quarter": period.label, "previous": previous.label, "year_ago": year_ago.label, "ledgers": ids,
        "fingerprint": digest, "generated_at": generated_at.isoformat(timespec="seconds")}},
)
""")

md("summary-heading", """
## Summary
""")

code("summary", """
# Summary: per ledger, the period's total, the changes and the months generated
display(reports.summary_table(summary, period, previous, year_ago),
        metadata={"mangrove_nb": {"summary": reports.records(summary)}})
""")

md("warnings-heading", """
## Warnings
""")

code("warnings", """
# Warnings: errors and warnings among the findings
display(reports.key_warnings(findings, period, summary=summary, previous=previous, year_ago=year_ago))
""")

md("totals-heading", """
## Totals by month
""")

code("totals", """
# Totals per month and for the period (a year: a row per month)
parts = reports.sections.totals_tables(totals, period, batches, calculations, covered)
for number, part in enumerate(parts):
    display(part, metadata={"mangrove_nb": {"totals": reports.records(totals)}} if number == 0 else None)
""")

md("net-heading", """
## How net removal was computed
""")

code("net", """
# How net removal was computed: each month's calculations, from removal to net
parts = reports.net_removal_tables(breakdown, batches, selected, period, calculations)
for number, part in enumerate(parts):
    display(part, metadata={"mangrove_nb": {"net_removal": reports.records(breakdown)}} if number == 0 else None)
""")

md("charts-heading", """
## Charts

Each ledger's monthly totals in the quarter, then its batches over this quarter and the one before, with the
cumulative output. Failed batches are hatched and not counted.
""")

code("charts", """
# Charts
for chart in reports.figures(batches, before, selected, period, previous, calculations=judged):
    chart.show()
""")

md("coverage-heading", """
## Coverage

For each month of the quarter: the batches each ledger has, and how many new batches the API's generation
preview would make.
""")

code("coverage", """
# Coverage, month by month (a year: a row per month)
for number, part in enumerate(reports.sections.coverage_tables(covered, period)):
    display(part, metadata={"mangrove_nb": {"coverage": reports.records(covered)}} if number == 0 else None)
""")

md("quality-heading", """
## Data quality

Failed batches, zero or negative outputs, unfinished batches, batches generated with a skipped input, net
figures whose terms do not add up, and months not generated.
""")

code("quality", """
# Data-quality findings, most severe first
display(reports.findings_table(findings), metadata={"mangrove_nb": {"findings": reports.records(findings)}})
""")

md("batches-heading", """
## Batches

Every batch starting in the quarter, per ledger.
""")

code("batches", """
# Batches, one table per ledger
for table in reports.batch_tables(batches, selected, period):
    display(table)
""")

md("registry-heading", """
## Registry

Which of the period's batches are on which registry report, and in what status; the balance still unallocated per
ledger and unit; any batch on two reports, flagged.
""")

code("registry", """
# Registry: the reports, the period's batches on them, batches on two reports, what is still unallocated
for part in reports.sections.registry_tables(registry, period):
    display(part)
""")

md("appendix-heading", """
## Appendix: provenance, ledgers and inputs
""")

code("appendix", """
# Appendix: provenance, every ledger the API lists, and what each covered ledger's model reads
provenance = reports.provenance(base_url=client.settings.base_url, selected=selected, period=period,
                                previous=previous, generated_at=generated_at, version=mnb.__version__, digest=digest,
                                batches=batches, before=before, year_ago=year_ago, year_ago_batches=year_ago_batches,
                                project=about, calculations=calculations)
display(provenance)
display(reports.Table(reports.ledger_summary(all_ledgers, selected), title="Ledgers"))
display(reports.Table(reports.inputs_table(inputs, selected), title="Required inputs"))
""")

code("export-tables", """
# Export (hidden, shows nothing): when export_tables names a file, the tables above as JSON for the spreadsheet
if export_tables:
    reports.write_tables(export_tables, selected=selected, period=period, previous=previous, year_ago=year_ago,
                         summary=summary, totals=totals, breakdown=breakdown, findings=findings, batches=batches,
                         calculations=calculations, provenance=provenance, generated_at=generated_at,
                         covered=covered_all)
""", tags=["export-tables"], hidden=True)

ROOT = Path(__file__).resolve().parent.parent
TARGETS = (ROOT / "mangrove_nb" / "reports" / "templates" / "quarterly_report.ipynb",
           ROOT / "notebooks" / "03_quarterly_report.ipynb")


def build():
    """The template notebook, validated."""
    nb = new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"},
        "language_info": {"name": "python"},
    })
    nbformat.validate(nb)
    return nb


def text():
    """The template as written to each target (what nbformat.write writes)."""
    written = nbformat.writes(build())
    return written if written.endswith("\n") else written + "\n"


if __name__ == "__main__":
    for target in TARGETS:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text(), encoding="utf-8")
        print("written", len(cells), "cells to", target.relative_to(ROOT))
