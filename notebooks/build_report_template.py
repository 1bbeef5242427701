"""Writes notebooks/03_quarterly_report.ipynb, the report template (no outputs), from the cells below.

Edit the cells here, run `.venv/bin/python notebooks/build_report_template.py`, commit both. The
`parameters` cell follows papermill's convention; never put a token in it.
"""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

cells = []


def md(cell_id, text):
    cells.append(new_markdown_cell(text.strip("\n"), id=cell_id))


def code(cell_id, text, tags=None):
    cell = new_code_cell(text.strip("\n"), id=cell_id)
    if tags:
        cell.metadata["tags"] = tags
    cells.append(cell)


md("title", """
# Quarterly production report

Batches, coverage and data quality of Mangrove ledgers for one calendar quarter, compared with the quarter
before. Totals count complete batches only; all times are UTC.
""")

code("parameters", """
# Parameters: papermill and `mangrove-nb report` inject their values in a new cell right after this one.
ledgers = None  # a list of ledger ids, or None for every ledger with a model
quarter = "2025Q1"  # the calendar quarter to report on
base_url = None  # the API base URL, or None for MANGROVE_API_URL (else the Mangrove default)
""", tags=["parameters"])

code("setup", """
# Setup: connect (credentials come from the environment) and read the ledgers and both quarters' batches.
# Render with `mangrove-nb report --quarter 2025Q1`, `mangrove_nb.reports.render_report("2025Q1")` or
# `papermill ... -p quarter 2025Q1`. The API token comes from MANGROVE_API_TOKEN in the kernel's environment,
# never from this notebook.
from datetime import UTC, datetime

from IPython.display import display

import mangrove_nb as mnb
from mangrove_nb import reports

period = reports.quarter_period(quarter)
previous = period.previous()
client = mnb.connect(base_url=base_url)
all_ledgers = client.ledgers()
selected = reports.select_ledgers(all_ledgers, ledgers)
ids = selected["id"].tolist()
inputs = {ledger_id: client.required_inputs(ledger_id) for ledger_id in ids}
both = client.batches(ids, (previous.start, period.end))  # both quarters: one listing per ledger
batches = both[both["start_time"] >= period.start].reset_index(drop=True)
before = both[both["start_time"] < period.start].reset_index(drop=True)
digest = reports.fingerprint(batches, before)  # of the data only: the clock below is not part of it
generated_at = datetime.now(UTC)
""")

md("provenance-heading", """
## Provenance
""")

code("provenance", """
# Provenance: the API, the ledgers, the period, when, which version, and a fingerprint of the data.
display(
    reports.provenance(base_url=client.settings.base_url, selected=selected, period=period, previous=previous,
                       generated_at=generated_at, version=mnb.__version__, digest=digest, batches=batches,
                       before=before),
    metadata={"mangrove_nb": {"quarter": period.label, "previous": previous.label, "ledgers": ids,
                              "fingerprint": digest, "generated_at": generated_at.isoformat(timespec="seconds")}},
)
""")

md("ledgers-heading", """
## Ledgers

Every ledger the API lists. The report covers those marked *yes*; the counts are the batches starting in the
quarter.
""")

code("ledgers", """
# Ledger summary
display(reports.Table(reports.ledger_summary(all_ledgers, selected, batches)))
""")

md("inputs-heading", """
## Required inputs

What each ledger's model reads from the project's events. A manual-select input is chosen batch by batch from
an upstream ledger's outputs.
""")

code("inputs", """
# Required inputs of each covered ledger's model
display(reports.Table(reports.inputs_table(inputs, selected)))
""")

md("coverage-heading", """
## Preview vs existing batches

For each month of the quarter: the batches the ledger has, and how many new batches the API's generation
preview would make. A month without any batch is flagged **⚠ missing**.
""")

code("coverage", """
# Preview vs existing batches, month by month (the preview is read-only: nothing is generated here)
covered = reports.coverage(client, selected, inputs, batches, period)
display(reports.Table(covered, note=f"{int(covered['Missing'].sum())} ledger-month(s) of {period.label} "
                                    "without a batch."))
""")

md("batches-heading", """
## Batches

Totals per month and for the quarter count complete batches only (failed ones are listed under data quality);
a month without a complete batch shows "–".
""")

code("batches", """
# Batches: totals per month and for the quarter, then every batch
totals = reports.monthly_totals(batches, selected, period)
display(reports.Table(totals, title=f"Totals per month and for {period.label}"),
        metadata={"mangrove_nb": {"totals": reports.records(totals)}})
display(reports.Table(reports.batch_table(batches, selected), title=f"Batches starting in {period.label}",
                      empty=f"No batches start in {period.label}."))
""")

md("comparison-heading", """
## Compared with the previous quarter
""")

code("comparison", """
# Comparison with the previous quarter (complete batches only)
compared = reports.comparison(batches, before, selected, period, previous)
display(reports.Table(compared, decimals={"Change (%)": 1}),
        metadata={"mangrove_nb": {"comparison": reports.records(compared)}})
""")

md("plots-heading", """
## Plots

The quarter's monthly totals, then each ledger's batches over both quarters with their cumulative output.
Failed batches are hatched and not counted.
""")

code("plots", """
# Plots
for chart in reports.figures(batches, before, selected, period, previous):
    chart.show()
""")

md("quality-heading", """
## Data quality

Failed batches, zero or negative outputs, unfinished batches, and months without batches.
""")

code("quality", """
# Data-quality findings, most severe first
findings = reports.quality_findings(batches, covered, selected)
display(reports.Table(findings, empty="No findings: every batch is complete with a positive output, and every "
                                      "month has batches."),
        metadata={"mangrove_nb": {"findings": reports.records(findings)}})
""")

nb = new_notebook(cells=cells, metadata={
    "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"},
    "language_info": {"name": "python"},
})
nbformat.validate(nb)
nbformat.write(nb, Path(__file__).resolve().parent / "03_quarterly_report.ipynb")
print("written", len(cells), "cells")
