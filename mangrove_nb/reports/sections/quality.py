"""Warnings, coverage and data quality: what each month has and what the preview could still generate, what a
skipped input changed and which partitions have two complete batches (the rules are ``frames.skipped_effects``
and ``frames.duplicate_partitions``, which the registry plan applies too; re-exported here), and the findings
(failed, zero or negative outputs, unfinished batches, skipped inputs, terms that do not add up, months not
generated), most severe first."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from ...frames import can_generate
from ...frames import duplicate_partitions as duplicate_partitions
from ...frames import may_overstate as may_overstate
from ...frames import skipped_effects as skipped_effects
from .._text import _plural
from ._shared import (
    _MONTH_COLUMNS,
    _NA,
    NOT_GENERATED,
    _amount,
    _counted,
    _month_label,
    _months_as_rows,
    _names,
    _sign,
    _span,
)
from .display import Bullets, Table
from .ledgers import frame_has_manual_select

if TYPE_CHECKING:
    from mangrove_nb import Client, Period

_SEVERITY = {"error": 0, "warning": 1, "info": 2}


def coverage(client: Client, selected: pd.DataFrame, inputs: Mapping[str, pd.DataFrame], batches: pd.DataFrame,
             period: Period) -> pd.DataFrame:
    """Per ledger and month of ``period``: the batches there are, what the preview would generate, and a status.

    A month without a complete batch is ``Generated: no``. The preview (a read-only POST) is asked per month,
    except for ledgers that cannot generate (no model) or need a manual selection of upstream batches. The report
    reads it for the earlier periods too (not shown): a change against a period whose month the preview could
    still add batches to is not computed (``summary``).
    """
    rows = []
    for ledger in selected.itertuples():
        manual = frame_has_manual_select(inputs.get(ledger.id))
        for month in period.months():
            mine = batches[(batches["ledger_id"] == ledger.id) & (batches["start_time"] >= month.start)
                           & (batches["start_time"] <= month.end)]
            complete = int(_counted(mine).sum())
            failed = int(mine["state"].eq("failed").sum())
            preview: Any = pd.NA
            if can_generate(ledger) and not manual:
                found = client.preview(ledger.id, month)
                preview = int(found.loc[found["ledger_id"] == ledger.id, "count"].sum())
            status = _coverage_status(len(mine), complete, failed, preview, has_model=can_generate(ledger),
                                      manual=manual)
            rows.append([ledger.name, month.label, len(mine), complete, failed, preview, complete > 0, status,
                         str(ledger.id)])
    columns = ["Ledger", "Month", "Batches", "Complete", "Failed", "Preview: new batches", "Generated", "Status",
               "Ledger ID"]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.astype({"Ledger": "string", "Ledger ID": "string", "Month": "string", "Batches": "Int64",
                         "Complete": "Int64",
                         "Failed": "Int64", "Preview: new batches": "Int64", "Generated": "boolean",
                         "Status": "string"})


def _coverage_status(existing: int, complete: int, failed: int, preview: Any, *, has_model: bool,
                     manual: bool) -> str:
    can = None if preview is pd.NA else int(preview)
    if existing == 0:
        if not has_model:
            return "⚠ not generated: the ledger has no model"
        if manual:
            return "⚠ not generated: needs a manual selection of upstream batches"
        if can:
            return f"⚠ not generated: the preview counts {_plural(can, 'batch')} to generate"
        return "⚠ not generated: no data to generate from"
    if can:
        return f"⚠ incomplete: {_plural(can, 'more batch', 'more batches')} can be generated"
    if complete == 0 and failed:
        return "⚠ not generated: its only batches failed"
    if complete < existing:
        return "ok, with batches not complete"
    return "ok"


def coverage_table(covered: pd.DataFrame) -> Table:
    """Coverage as the reader sees it: one row per ledger, one column per month, each cell saying what the month
    has (complete and failed batches) or why it is not generated, and what the preview can still generate."""
    months = list(dict.fromkeys(covered["Month"]))
    cells: dict[str, dict[str, str]] = {}
    for item, preview in zip(covered.itertuples(), covered["Preview: new batches"], strict=True):
        cells.setdefault(str(item.Ledger), {})[str(item.Month)] = _coverage_cell(
            int(item.Batches), int(item.Complete), int(item.Failed), preview, str(item.Status))
    rows = [[ledger, *[by_month.get(m, _NA) for m in months]] for ledger, by_month in cells.items()]
    frame = pd.DataFrame(rows, columns=["Ledger", *months]).astype("string")
    missing = int((~covered["Generated"].fillna(False).astype(bool)).sum())
    note = (f"{_plural(missing, 'ledger-month')} not generated. \"… can be generated\" in a cell counts the new "
            "batches the API's generation preview would make for that month.")
    return Table(frame, note=note)


def coverage_tables(covered: pd.DataFrame, period: Period) -> list[Table]:
    """``coverage_table`` as shown: as it is for a quarter; for a longer period (a year), turned to a row per month,
    a column per ledger, at most four ledgers to a table, so that every column fits a page and a narrow window. The
    note goes under the last table."""
    table = coverage_table(covered)
    if len(period.months()) <= _MONTH_COLUMNS or table.frame.empty:
        return [table]
    parts = _months_as_rows(table.frame, "Month")
    return [Table(part, note=table.note if n == len(parts) - 1 else None) for n, part in enumerate(parts)]


def _coverage_cell(existing: int, complete: int, failed: int, preview: Any, status: str) -> str:
    can = 0 if pd.isna(preview) else int(preview)
    if existing == 0 or complete == 0:
        reason = status.split(": ", 1)[1] if ": " in status else status.removeprefix("⚠ ")
        short = {"the ledger has no model": "no model", "no data to generate from": "no data",
                 "needs a manual selection of upstream batches": "needs a manual selection of upstream batches",
                 "its only batches failed": f"{_plural(failed, 'batch')} failed"}.get(reason)
        if short is None and can:
            short = f"{can} can be generated"
        return f"⚠ {NOT_GENERATED}: {short or reason}"
    text = f"{complete} complete"
    if failed:
        text += f", {failed} failed"
    if existing - complete - failed:
        text += f", {existing - complete - failed} unfinished"
    if can:
        text = f"⚠ {text}; {can} more can be generated"
    return text


def missing_partitions(batches: pd.DataFrame) -> list[tuple[str, str, Any, list[str], list[str]]]:
    """Partitions with batches but no complete one (each failed, or not finished): ``(ledger_id, month, feedstock,
    tracking ids, states)``, by ledger, month and feedstock.

    A month's total sums its complete batches, so it leaves such a partition out: a month with two feedstocks
    complete and the third failed is "generated" but its total is short by the failed feedstock. A partition whose
    failed batch was generated again (a complete batch beside it) is not missing.
    """
    if batches.empty:
        return []
    feedstock = batches["feedstock"] if "feedstock" in batches.columns else pd.Series(pd.NA, index=batches.index)
    tracking = batches["tracking_id"] if "tracking_id" in batches.columns else batches["id"]
    keys = pd.DataFrame({"ledger": batches["ledger_id"].astype(str).to_numpy(),
                         "month": [_month_label(t) for t in batches["start_time"]],
                         "feedstock": feedstock.astype("string").fillna("").to_numpy(),
                         "counted": _counted(batches).to_numpy(),
                         "state": [str(s).lower() if isinstance(s, str) else "unknown" for s in batches["state"]],
                         "tracking": [t if isinstance(t, str) else str(i)
                                      for t, i in zip(tracking, batches["id"], strict=True)]})
    found = []
    for (ledger, month, feed), group in keys.groupby(["ledger", "month", "feedstock"], sort=True):
        if not group["counted"].any():
            found.append((str(ledger), str(month), feed or None, group["tracking"].tolist(), group["state"].tolist()))
    return found


def left_out(batches: pd.DataFrame, ledger_id: str, months: Sequence[str],
             covered: pd.DataFrame | None = None) -> dict[str, list[str]]:
    """What a ledger's monthly totals over ``months`` leave out, by month (in order; months with nothing left out
    are absent), one phrase each: each batch of a partition without a complete batch, in a month that has one
    ("DFD-2024-10-almond-shells (failed)"), and the batches the generation preview (``covered``, from
    ``coverage``) could still make in a month that has a complete batch ("1 batch not yet generated in 2024-11").
    A month without any complete batch is not listed: it is "not generated", which every table says already."""
    wanted = set(months)
    mine = batches[batches["ledger_id"].astype(str) == ledger_id] if len(batches) else batches
    have = {_month_label(t) for t in mine.loc[_counted(mine), "start_time"]} if len(mine) else set()
    found: dict[str, list[str]] = {}
    for _ledger, month, _feed, tracking, states in missing_partitions(mine):
        if month in wanted and month in have:
            found.setdefault(month, []).extend(f"{t} ({s})" for t, s in zip(tracking, states, strict=True))
    if covered is not None and len(covered) and "Ledger ID" in covered.columns:
        rows = covered[(covered["Ledger ID"] == ledger_id) & covered["Month"].isin(list(wanted))]
        for month, preview in zip(rows["Month"], rows["Preview: new batches"], strict=True):
            if str(month) in have and not pd.isna(preview) and int(preview) > 0:
                found.setdefault(str(month), []).append(f"{_plural(int(preview), 'batch', 'batches')} not yet "
                                                        f"generated in {month}")
    return {month: found[month] for month in months if month in found}


def month_marks(batches: pd.DataFrame, calculations: pd.DataFrame | None = None) -> dict[tuple[str, str], list[str]]:
    """What makes a ledger's month total doubtful, by ``(ledger_id, month)``: ``"overstated"`` (a batch made with a
    skipped input that may overstate it), ``"duplicate"`` (two complete batches for one partition, both counted),
    ``"no value"`` (a complete batch without an output value), ``"incomplete"`` (a month with a complete batch and a
    partition without one, ``missing_partitions``: its total leaves that partition out). Months without such a
    problem are left out."""
    marks: dict[tuple[str, str], list[str]] = {}

    def mark(ledger: Any, moment: Any, what: str) -> None:
        found = marks.setdefault((str(ledger), _month_label(moment)), [])
        if what not in found:
            found.append(what)

    effects = skipped_effects(batches, calculations)
    counted = batches[_counted(batches)] if not batches.empty else batches
    for batch in counted.itertuples():
        if str(batch.id) in effects and may_overstate(effects[str(batch.id)][1]):
            mark(batch.ledger_id, batch.start_time, "overstated")
        if pd.isna(batch.output_value):
            mark(batch.ledger_id, batch.start_time, "no value")
    for ledger, month, _feed, _ids, _tracking in duplicate_partitions(batches):
        marks.setdefault((ledger, month), [])
        if "duplicate" not in marks[(ledger, month)]:
            marks[(ledger, month)].append("duplicate")
    generated = {(str(b.ledger_id), _month_label(b.start_time)) for b in counted.itertuples()}
    for ledger, month, _feed, _tracking, _states in missing_partitions(batches):
        if (ledger, month) in generated and "incomplete" not in marks.setdefault((ledger, month), []):
            marks[(ledger, month)].append("incomplete")
    return marks


def quality_findings(batches: pd.DataFrame, covered: pd.DataFrame, selected: pd.DataFrame,
                     calculations: pd.DataFrame | None = None, *, period: Period | None = None) -> pd.DataFrame:
    """Failed batches, zero, negative or missing outputs, unfinished batches, batches made with a skipped input,
    net figures whose terms do not add up, and months not generated.

    One row per finding, most severe first (error, warning, info), then in the report's ledger order, by month
    and batch. ``period`` (the report's) words them: "quarter", or "year" for an annual report.
    """
    span = _span(period)
    names = _names(selected)
    order = {name: n for n, name in enumerate(names.values())}
    effects = skipped_effects(batches, calculations)
    rows = []
    for batch in batches.itertuples():
        ledger, month = names.get(str(batch.ledger_id), str(batch.ledger_id)), _month_label(batch.start_time)
        where = [ledger, month, batch.tracking_id if isinstance(batch.tracking_id, str) else batch.id]
        state = str(batch.state).lower() if isinstance(batch.state, str) else "unknown"
        value = batch.output_value
        if state == "failed":
            error = batch.model_run_error if isinstance(batch.model_run_error, str) else "no error message given"
            rows.append(["error", *where, f"Batch failed: {error}"])
        elif state != "complete":
            rows.append(["info", *where, f"Batch is {state}: not counted in the totals"])
        elif pd.isna(value):
            rows.append(["warning", *where, "Complete batch without an output value: its month shows \"no value\" "
                                            f"and no change is computed from its {span}"])
        elif value == 0:
            rows.append(["warning", *where, "Zero output"])
        elif value < 0:
            rows.append(["warning", *where, f"Negative output: {_amount(float(value), None)}"])
        if str(batch.id) in effects:
            text, _direction = effects[str(batch.id)]
            rows.append(["warning", *where, text])  # a skip always changes or may change the figure
    for ledger_id, month, feed, _ids, tracking in duplicate_partitions(batches):
        ledger = names.get(ledger_id, ledger_id)
        what = f"{month} ({feed})" if feed else month
        rows.append(["error", ledger, month, ", ".join(tracking),
                     f"{len(tracking)} complete batches for {what}: possibly generated twice; the total counts both"
                     if len(tracking) == 2 else
                     f"{len(tracking)} complete batches for {what}: possibly generated more than once; the total "
                     "counts them all"])
    if calculations is not None:
        for problem in _breakdown_problems(calculations, batches, names):
            rows.append(["error", *problem])
    for item in covered.itertuples():
        status = str(item.Status)
        if not status.startswith("⚠") or "only batches failed" in status:
            continue  # ok, or failed batches already reported one by one
        text = status.removeprefix("⚠ ")
        rows.append(["warning", item.Ledger, item.Month, pd.NA, text[:1].upper() + text[1:]])
    frame = pd.DataFrame(rows, columns=["Severity", "Ledger", "Month", "Batch", "Finding"]).astype("string")
    keys = pd.DataFrame({"s": frame["Severity"].map(_SEVERITY), "l": frame["Ledger"].map(order).fillna(len(order))})
    return (frame.assign(_s=keys["s"], _l=keys["l"])
            .sort_values(["_s", "_l", "Ledger", "Month", "Batch", "Finding"], kind="stable", na_position="first")
            .drop(columns=["_s", "_l"]).reset_index(drop=True))


def _breakdown_problems(calculations: pd.DataFrame, batches: pd.DataFrame,
                        names: Mapping[str, str]) -> list[list[Any]]:
    """Complete batches whose calculations' terms do not add up to the batch's output (nor to the net figure a
    model reports as a calculation), to the half kilogram."""
    problems = []
    counted = batches[_counted(batches)]
    outputs = dict(zip(counted["id"].astype(str), counted["output_value"], strict=True))
    for batch_id, mine in calculations.groupby("batch_id", sort=True):
        output = outputs.get(str(batch_id))
        if output is None or pd.isna(output):
            continue
        terms = sum(_sign(r) * float(v) for r, v in zip(mine["lca_role"], mine["value"].fillna(0.0), strict=True))
        first = mine.iloc[0]
        where = [names.get(str(first["ledger_id"]), str(first["ledger_id"])), _month_label(first["start_time"]),
                 first["tracking_id"] if isinstance(first["tracking_id"], str) else batch_id]
        if abs(terms - float(output)) > 0.0005:
            problems.append([*where, f"Its calculations do not add up to its output: the terms give "
                                     f"{_amount(terms, None)}, the batch says {_amount(float(output), None)}"])
        for net in mine.loc[mine["lca_role"] == "net", "value"].dropna():
            if abs(float(net) - float(output)) > 0.0005:
                problems.append([*where, f"Its net calculation ({_amount(float(net), None)}) differs from its output "
                                         f"({_amount(float(output), None)})"])
    return problems


def findings_table(findings: pd.DataFrame) -> Table:
    return Table(findings, empty="No findings: every batch is complete with a positive output, no input was skipped, "
                                 "and every month is generated.")


def key_warnings(findings: pd.DataFrame, period: Period | None = None, *, summary: pd.DataFrame | None = None,
                 previous: Period | None = None, year_ago: Period | None = None) -> Bullets:
    """The findings a reader must know (errors and warnings), one line each, in the findings' order; months not
    generated for the same reason are one line per ledger ("not generated in 2025-01, 2025-02: ..."). Given the
    ``summary`` frame and the periods compared with, each total that leaves something out (``left_out``) gets a line
    naming what, and saying that no change is computed from it."""
    items: list[tuple[str, str]] = []
    grouped: dict[tuple[str, str], list[str]] = {}
    for row in findings.itertuples():
        if row.Severity not in ("error", "warning"):
            continue
        if pd.isna(row.Batch):
            key = (str(row.Ledger), str(row.Finding))
            if key not in grouped:
                grouped[key] = []
                items.append(key)  # a placeholder, filled below once every month is known
            grouped[key].append(str(row.Month))
            continue
        items.append((f"{row.Ledger}, {row.Month}, {row.Batch}", str(row.Finding)))
    shown = []
    for lead, text in items:
        months = grouped.get((lead, text)) if (lead, text) in grouped else None
        if months is None:
            shown.append((lead, text))
            continue
        what, _, why = text.partition(": ")
        each = " each month" if len(months) > 1 and re.search(r"\d", why) else ""
        shown.append((lead, f"{what.lower()} in {', '.join(months)}" + (f": {why}{each}" if why else "")))
    if summary is not None and period is not None:
        shown += _left_out_warnings(summary, period, previous, year_ago)
    note = "Every finding, month by month and batch by batch, is listed under Data quality." if shown else None
    return Bullets(shown, empty=f"No warnings: every month of the {_span(period)} is generated, every batch is "
                                "complete with a positive output, and no input was skipped.", note=note)


def _left_out_warnings(summary: pd.DataFrame, period: Period, previous: Period | None,
                       year_ago: Period | None) -> list[tuple[str, str]]:
    """One line per ledger and period whose total leaves out a partition (``Left out`` in ``summary``)."""
    earlier = [p for p in (previous, year_ago) if p is not None]
    earlier = [p for n, p in enumerate(earlier) if p.label not in {e.label for e in earlier[:n]}]
    lines = []
    for row in summary.to_dict("records"):
        spans = [("Left out", period, "no change is computed from it")]
        spans += [(f"{key} left out", span, f"no change against {span.label} is computed")
                  for key, span in zip(("Previous", "Year-ago"), earlier, strict=False)]
        for column, span, then in spans:
            text = row.get(column)
            if text is not None and not pd.isna(text):
                lines.append((str(row["Ledger"]), f"the {span.label} total leaves out {text}: {then}."))
    return lines
