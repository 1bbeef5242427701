"""What the template's cells call: plain pandas over the client's frames, deterministic given the data.

- ``ledgers``: the setup cell's readers (which ledgers, in what order; the project; the quarter a year before);
- ``opening``: the header and the summary per ledger;
- ``quality``: warnings, coverage, what a skipped input changed, data-quality findings;
- ``totals``: totals by month, and how net removal was computed;
- ``charts``: the figures;
- ``appendix``: every batch, provenance and the data's fingerprint, the ledgers and their inputs, ``records``;
- ``registry``: which of the period's batches are on which registry report, what is still unallocated, batches on
  two reports (``registry_status``, ``registry_tables``; one line when the reports cannot be read);
- ``display``: ``Table``, ``Header``, ``Bullets``, ``Chart``, the only ways API text becomes HTML (escaped).

The template reaches them as ``mangrove_nb.reports.<name>`` (the registry's, ``totals_tables`` and
``coverage_tables`` as ``mangrove_nb.reports.sections.<name>``).
"""

from __future__ import annotations

from ._shared import NOT_GENERATED
from .appendix import batch_table, batch_tables, fingerprint, inputs_table, ledger_summary, provenance, records
from .charts import figures
from .display import Bullets, Chart, Header, Table
from .ledgers import (
    breakdown_batches,
    frame_has_manual_select,
    order_ledgers,
    removal_ledgers,
    report_project,
    select_ledgers,
    year_before,
)
from .opening import header, summary, summary_table
from .quality import (
    coverage,
    coverage_table,
    coverage_tables,
    duplicate_partitions,
    findings_table,
    key_warnings,
    left_out,
    may_overstate,
    missing_partitions,
    month_marks,
    quality_findings,
    skipped_effects,
)
from .registry import Registry, registry_status, registry_tables
from .totals import monthly_totals, net_removal, net_removal_tables, totals_table, totals_tables

__all__ = [
    "NOT_GENERATED",
    "Bullets",
    "Chart",
    "Header",
    "Registry",
    "Table",
    "batch_table",
    "batch_tables",
    "breakdown_batches",
    "coverage",
    "coverage_table",
    "coverage_tables",
    "duplicate_partitions",
    "figures",
    "findings_table",
    "fingerprint",
    "frame_has_manual_select",
    "header",
    "inputs_table",
    "key_warnings",
    "ledger_summary",
    "left_out",
    "may_overstate",
    "missing_partitions",
    "month_marks",
    "monthly_totals",
    "net_removal",
    "net_removal_tables",
    "order_ledgers",
    "provenance",
    "quality_findings",
    "records",
    "registry_status",
    "registry_tables",
    "removal_ledgers",
    "report_project",
    "select_ledgers",
    "skipped_effects",
    "summary",
    "summary_table",
    "totals_table",
    "totals_tables",
    "year_before",
]
