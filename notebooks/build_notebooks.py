"""Writes the starter notebooks (no outputs) from the cells below, each to two identical files: the copy users of a
checkout open (notebooks/NAME) and the one the package ships (mangrove_nb/starter/NAME, package data, which
`mangrove-nb notebooks DIR` copies for a pip user).

Edit the cells here, run `.venv/bin/python notebooks/build_notebooks.py`, commit every file it writes (a test,
tests/test_packaging.py, checks both copies are what this script writes).

Adding a notebook is one line in NOTEBOOKS below (`"04_submit_report.ipynb": SUBMIT,`) next to its list of
cells: the script writes it to both places, the package ships it (pyproject.toml's package data takes every
mangrove_nb/starter/*.ipynb) and `mangrove-nb notebooks` copies it.

The report template (03_quarterly_report.ipynb) is built by notebooks/build_report_template.py.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

CONNECT = """\
import mangrove_nb as mnb

# The token and URL come from MANGROVE_API_TOKEN and MANGROVE_API_URL (never type a token into a cell:
# it would be saved with the notebook). Without a token in the environment, connect() asks for it.
client = mnb.connect()
client"""

EXPLORE = [
    new_markdown_cell("""\
# Explore your ledgers

Connect, list ledgers and what their models need, read batches into DataFrames and plot them.

To try this without a token, start the local emulator in a terminal (`mangrove-nb emulator`; in a
checkout of the repository, `make emulator`) and set the variables it prints in the environment that
starts Jupyter. `python -m mangrove_nb.lab --notebook-dir FOLDER` (in a checkout, `make lab`) does all of
this for you."""),
    new_code_cell(CONNECT),
    new_markdown_cell("## Ledgers\n\nGeneration needs a linked model: `has_model` says which ledgers have one."),
    new_code_cell("""\
ledgers = client.ledgers()
ledgers[["id", "name", "unit", "partition_type", "cadence", "model_name", "has_model"]]"""),
    new_markdown_cell("## What a model needs\n\nManual-select inputs come from other ledgers' batches."),
    new_code_cell("""\
ncr = ledgers.loc[ledgers["name"] == "Net Carbon Removal", "id"].item()
client.required_inputs(ncr)"""),
    new_markdown_cell("## Batches\n\nPeriods are `\"2024Q4\"`, `\"2024-11\"`, `\"2024\"` or a pair of dates; "
                      "times are UTC."),
    new_code_cell("""\
batches = client.batches(ncr, "2024")
batches[["tracking_id", "start_time", "state", "output_value", "output_unit"]].head(12)"""),
    new_code_cell("""\
quarter = batches["start_time"].dt.tz_convert(None).dt.to_period("Q").astype(str)  # UTC quarters, for display
batches.groupby(quarter)["output_value"].sum().rename("t")"""),
    new_markdown_cell("## Plots\n\nPlot functions return the Axes; end the cell with `ax.figure` to show it."),
    new_code_cell("""\
produced = ledgers.loc[ledgers["name"] == "Biochar Produced", "id"].item()
ax = mnb.plot_batches(client.batches([ncr, produced], "2024"), period="2024", title="2024 by ledger")
ax.figure"""),
    new_code_cell("""\
ax = mnb.plot_quarter_summary(client.batches(ncr, "2024Q4"), "2024Q4")
ax.figure"""),
    new_markdown_cell("## Feedstock-partitioned ledgers\n\nOne batch per feedstock per month; failed batches "
                      "are hatched."),
    new_code_cell("""\
feedstock = ledgers.loc[ledgers["partition_type"] == "feedstock", "id"].iloc[0]
ax = mnb.plot_batches(client.batches(feedstock, "2024"), period="2024")
ax.figure"""),
    new_markdown_cell("## The data behind the batches\n\nEvents with their data points, one row per data point."),
    new_code_cell("""\
events = client.events(period="2024-03")  # the session's project: MANGROVE_PROJECT_ID
events.pivot_table(index="data_point_type", values="value", aggfunc=["count", "sum"])"""),
]

GENERATE = [
    new_markdown_cell("""\
# Generate batches

The batch-generation workflow: find the ledger, check its inputs, preview, generate, wait, verify.
First with the form (clicks), then the same steps as code. Every cell can be run again: a second run finds
nothing left to generate and says so."""),
    new_code_cell(CONNECT),
    new_markdown_cell("""\
## With the form

Pick a ledger and a period, **Preview**, then **Generate** and confirm. The bar follows the task;
*Stop waiting* leaves it running (re-attach later with the call the form shows,
`client.task(<id>, ledgers=[...], period=...).wait()`: the ledgers and period keep another generation's
batches out)."""),
    new_code_cell("""\
form = mnb.GenerationForm(client, ledger="Net Carbon Removal", period="2025Q2")
form"""),
    new_markdown_cell("""\
## The same steps as code

Ledgers can be named by id or by name. `generate()` checks first (a model, manual-select inputs named,
something to generate, no overlapping generation of this session still running or of unknown outcome) and
sends the trigger exactly once."""),
    new_code_cell("""\
NCR = "Net Carbon Removal"
client.required_inputs(NCR)[["id", "name", "unit", "is_manual_select"]]"""),
    new_code_cell("""\
preview = client.preview(NCR, "2025Q1")
preview"""),
    new_code_cell("""\
if preview["count"].sum() == 0:
    print("Nothing to generate for 2025Q1: every month with data already has a batch.")
    new = client.batches(NCR, "2025Q1")
else:
    task = client.generate(NCR, "2025Q1")
    new = task.wait()
new[["tracking_id", "ledger_name", "start_time", "output_value", "output_unit", "state"]]"""),
    new_code_cell("""\
ax = mnb.plot_batches(new, period="2025Q1", title="Net Carbon Removal and Biochar Produced, 2025Q1")
ax.figure"""),
    new_markdown_cell("""\
## A missing reading: add it, never skip it across months

Q4 2025 fails: one November pyrolysis run has no electricity reading. The API can only skip a whole data
point *type* (`skipped_data_point_type_ids`), in **every month of the request**: skipping electricity
over the quarter would drop October's and December's readings, and even a November-only skip drops the
three November readings that do exist. Either way emissions go uncounted and net removal is overstated.
`generate()` refuses both and says what would be dropped (nothing below is sent):"""),
    new_code_cell("""\
ELECTRICITY = 7  # the id of "Electricity Consumption" in client.required_inputs(NCR)
for period in ("2025Q4", "2025-11"):
    try:
        client.generate(NCR, period, skipped_data_point_type_ids=[ELECTRICITY])
    except mnb.PreconditionError as refused:
        print(f"{period}: {refused}\\n")"""),
    new_markdown_cell("""\
The fix is in the data: add the missing reading in Mangrove (a documented estimate if need be), then
generate Q4 without skipping. Generating Q4 as it is shows the failure, which names the month and says
the same; set `GENERATE_Q4 = True` to try it (each run sends one request that fails)."""),
    new_code_cell("""\
GENERATE_Q4 = False
if GENERATE_Q4:
    try:
        client.generate(NCR, "2025Q4").wait()
    except mnb.TaskFailedError as failure:
        print(failure)"""),
    new_markdown_cell("""\
How each net figure was computed: the LCA terms of every batch (`client.calculations`). Net removal is
the gross removal minus the emissions (emission rows are positive numbers with `lca_role == "emission"`)."""),
    new_code_cell("""\
q4_2024 = client.batches(NCR, "2024Q4", details=True)
calcs = client.calculations(q4_2024)
calcs.pivot_table(index=["lca_role", "name"], columns=calcs["start_time"].dt.strftime("%Y-%m"), values="value")"""),
    new_markdown_cell("""\
## If an answer is lost

A failed task raises `TaskFailedError` with the server's message; a lost answer to the trigger raises
`GenerationOutcomeUnknownError`, this session will not send that generation again, and
`client.reconcile(ledger, period)` shows what the server made (and settles it once nothing is missing)."""),
    new_code_cell("""\
client.reconcile(NCR, "2025Q1")"""),
]

SUBMIT = [
    new_markdown_cell("""\
# Submit a registry report

From the quarter's batches to a report submitted to the registry. Reports are made in Mangrove's app; the API
puts batches on a **draft** report and submits it. The registry then allocates each batch's balance to the report:
**submitting is irreversible**, so it is checked first and sent once. First with the form (clicks), then the same
steps as code, which send nothing unless you set `SUBMIT = True`."""),
    new_code_cell(CONNECT),
    new_markdown_cell("""\
## The quarter's batches

A report takes complete batches with balance left. Generate the quarter first where it is missing (the second
run of this cell finds nothing to generate)."""),
    new_code_cell("""\
QUARTER, NCR = "2025Q1", "Net Carbon Removal"
if client.preview(NCR, QUARTER)["count"].sum() > 0:
    client.generate(NCR, QUARTER).wait()
batches = client.batches(NCR, QUARTER)
batches[["tracking_id", "start_time", "state", "output_value", "ledger_balance", "output_unit"]]"""),
    new_markdown_cell("""\
## With the form

Pick a draft report and the quarter, then **Plan** (the quarter's complete batches against the report: added,
removed, kept, totals per ledger and unit, and any problem; nothing is sent), **Fill** (puts them on the report),
**Submit** (asks a question naming the report, its batches and its total) and **Confirm submit** (sends it, once).
The bar follows the registry's task; the end shows the allocation, or the registry's refusal in its own words."""),
    new_code_cell("""\
form = mnb.ReportForm(client, report="2025Q1 Quarterly Report", period=QUARTER)
form"""),
    new_markdown_cell("""\
## The same steps as code

`reports()` lists them; `plan_report()` checks a set of batches against a report and sends nothing (a batch that
is not complete, has no balance left, or is already on a submitted report is a problem it names, with what to
do)."""),
    new_code_cell("""\
reports = client.reports()
reports[["id", "name", "status", "batch_count", "allocated_amount", "allocated_unit"]]"""),
    new_code_cell("""\
REPORT = "2025Q1 Quarterly Report"
report_id = reports.loc[reports["name"] == REPORT, "id"].item()
candidates = client.report_candidates(report_id, QUARTER)  # complete batches on the ledgers the reports hold
plan = client.plan_report(report_id, candidates)
plan"""),
    new_markdown_cell("""\
`fill_report()` makes these batches the report's (one request; the same checks first), `submit_report()` checks
again and sends the submission once, only if the report still holds what the plan above showed
(`expected=plan`), and `wait()` follows the registry's task and returns the report as submitted. Set
`SUBMIT = True` to do it here instead of with the form (a report already submitted is left as it is). As
committed, this cell sends nothing and says so."""),
    new_code_cell("""\
SUBMIT = False  # submitting is irreversible: set True to fill and submit from code
report = client.report(report_id)
if not SUBMIT:
    print(f"SUBMIT is False: this cell filled and submitted nothing. Report {report.name!r} is {report.status}, "
          f"holding {len(report.inclusions)} batch(es).")
elif report.is_draft:
    client.fill_report(report_id, candidates)  # the batches planned above, checked again
    report = client.submit_report(report_id, expected=plan).wait()  # what the plan showed, or nothing is sent
else:
    print(f"Report {report.name!r} is {report.status}, not a draft: nothing was sent.")
report"""),
    new_markdown_cell("""\
## The balances after

Once the registry accepts the report, each batch's `ledger_balance` drops by the amount the report took (here the
whole balance, to 0): the batches cannot be reported twice. Until then (`SUBMIT` left False and no Confirm submit
in the form) the balances are unchanged."""),
    new_code_cell("""\
after = client.batches(NCR, QUARTER)
balances = batches[["tracking_id", "output_value", "ledger_balance"]].merge(
    after[["tracking_id", "ledger_balance"]], on="tracking_id", suffixes=(" before", " now"))
report = client.report(report_id)
if report.status == "complete":
    print(f"Report {report.name!r} is complete: each balance dropped by the amount it took.")
else:
    print(f"Report {report.name!r} is {report.status}: nothing was allocated, so the balances are unchanged.")
balances"""),
    new_markdown_cell("""\
## If an answer is lost

A refusal by the registry raises `TaskFailedError` with its message (the report is a draft again). A lost answer
to the submission raises `SubmissionOutcomeUnknownError`; this session will not submit that report again until
`reconcile_report()` has read its status and said whether it was sent. Without such an answer, it says there is
nothing to reconcile."""),
    new_code_cell("""\
client.reconcile_report(report_id)"""),
]


# Every starter notebook: file name -> cells. Adding a notebook is one line here.
NOTEBOOKS = {
    "01_explore.ipynb": EXPLORE,
    "02_generate_batches.ipynb": GENERATE,
    "04_submit_report.ipynb": SUBMIT,
}
# Each notebook is written, byte for byte the same, into each of these folders.
TARGETS = (HERE, HERE.parent / "mangrove_nb" / "starter")


def text(name: str) -> str:
    """The notebook ``name`` as written to each target (what nbformat.write writes), validated."""
    cells = NOTEBOOKS[name]
    for number, cell in enumerate(cells, start=1):
        cell.id = f"{name.split('_')[0]}-{number:02d}"  # stable ids: rebuilding changes nothing
    notebook = new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    })
    nbformat.validate(notebook)
    written = nbformat.writes(notebook)
    return written if written.endswith("\n") else written + "\n"


if __name__ == "__main__":
    for name in NOTEBOOKS:
        for folder in TARGETS:
            (folder / name).write_text(text(name), encoding="utf-8")
            print("written", folder.relative_to(HERE.parent) / name)
