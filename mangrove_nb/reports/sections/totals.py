"""Totals by month, and how net removal was computed: each month's calculations, removal minus emissions, adding
up to the ledger's figure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from ._shared import (
    _MINUS,
    _MONTH_COLUMNS,
    _NA,
    _NBSP,
    NOT_GENERATED,
    _counted,
    _figure,
    _month_label,
    _months_as_rows,
    _names,
    _sign,
)
from .display import Bullets, Table
from .ledgers import removal_ledgers
from .quality import left_out, month_marks, skipped_effects

if TYPE_CHECKING:
    from mangrove_nb import Period


def monthly_totals(batches: pd.DataFrame, selected: pd.DataFrame, period: Period) -> pd.DataFrame:
    """Per ledger: the complete batches' output per month of ``period`` and for the whole period.

    A month without a complete batch is NA (shown "not generated"), never 0; so is a month with a complete batch
    that has no output value (shown "no value" by ``totals_table``), and the period's total when no month has a
    value. The period's total sums the months that have one.
    """
    months = [month.label for month in period.months()]
    rows = []
    for ledger in selected.itertuples():
        mine = batches[(batches["ledger_id"] == ledger.id) & _counted(batches)]
        sums: dict[str, float] = {}
        empty: set[str] = set()
        for start, value in zip(mine["start_time"], mine["output_value"], strict=True):
            if pd.isna(value):
                empty.add(_month_label(start))
                continue
            sums[_month_label(start)] = sums.get(_month_label(start), 0.0) + float(value)
        values = [pd.NA if m in empty else sums.get(m, pd.NA) for m in months]
        known = [v for v in values if not pd.isna(v)]
        total = float(sum(known)) if known else pd.NA
        rows.append([ledger.name, ledger.unit, *values, total])
    frame = pd.DataFrame(rows, columns=["Ledger", "Unit", *months, f"{period.label} total"])
    return frame.astype({"Ledger": "string", "Unit": "string"} | {c: "Float64" for c in frame.columns[2:]})


_MARK_NOTES = {
    "overstated": "⚠ A batch of this month was generated with an input skipped: the figure may be overstated (see "
                  "Warnings).",
    "duplicate": "⚠ This month has two or more complete batches for one partition (possibly generated twice); the "
                 "total counts them all (see Warnings).",
}
_INCOMPLETE = "incomplete"
_TERM_COLUMNS = 6  # a year's computation table: the columns (the batch, the terms) beside the month


def totals_table(totals: pd.DataFrame, period: Period, batches: pd.DataFrame | None = None,
                 calculations: pd.DataFrame | None = None, covered: pd.DataFrame | None = None) -> Table:
    """Totals per month as the reader sees them, a row per ledger and a column per month: "not generated" where a
    month has no complete batch, "no value" where a complete batch has no output value, ⚠ on a month (and the
    quarter) whose figure may be overstated: a batch generated with an input skipped, or two complete batches for
    one partition (given ``batches``, with their skipped inputs, and ``calculations``); and "(incomplete)" on a
    month whose total leaves out a partition whose batch failed or is not finished (``missing_partitions``), or
    batches the generation preview could still make (given ``covered``, from ``coverage``), with a note naming
    them. ``totals_tables`` shows a year with a row per month."""
    months = [month.label for month in period.months()]
    marks: dict[tuple[str, str], list[str]] = {}
    names: dict[str, str] = {}
    if batches is not None and "ledger_name" in batches.columns:
        names = {str(i): n for i, n in zip(batches["ledger_id"], batches["ledger_name"], strict=True)
                 if isinstance(n, str)}
    if batches is not None:
        for (ledger_id, month), reasons in month_marks(batches, calculations).items():
            marks[(names.get(ledger_id, ledger_id), month)] = reasons
    lacking: dict[str, list[str]] = {}  # by ledger name: what its months leave out, one phrase each
    if covered is not None and len(covered) and "Ledger ID" in covered.columns:
        for ledger_id, ledger in zip(covered["Ledger ID"], covered["Ledger"], strict=True):
            names.setdefault(str(ledger_id), str(ledger))
    if batches is not None:
        for ledger_id, ledger in names.items():
            found = left_out(batches, ledger_id, months, covered)
            for month in found:
                reasons = marks.setdefault((ledger, month), [])
                if _INCOMPLETE not in reasons:
                    reasons.append(_INCOMPLETE)
            if found:
                lacking[ledger] = [item for items in found.values() for item in items]
    rows, seen = [], set()
    for row in totals.itertuples(index=False):
        values = list(row)
        ledger = str(values[0])
        cells, flagged, empty, short = [], False, [], False
        for month, value in zip(months, values[2:2 + len(months)], strict=True):
            reasons = marks.get((ledger, month), [])
            if "no value" in reasons:
                cells.append("no value")
                empty.append(month)
                continue
            text = NOT_GENERATED if pd.isna(value) else _figure(float(value))
            doubtful = [r for r in reasons if r in _MARK_NOTES]
            if not pd.isna(value) and doubtful:
                text, flagged = f"{text}{_NBSP}⚠", True
                seen.update(doubtful)
            if not pd.isna(value) and _INCOMPLETE in reasons:
                text, short = f"{text} ({_INCOMPLETE})", True
            cells.append(text)
        generated = sum(not pd.isna(v) for v in values[2:2 + len(months)]) + len(empty)
        valued = sum(not pd.isna(v) for v in values[2:2 + len(months)])
        total = values[-1]
        total_text = (NOT_GENERATED if not generated else "no value") if pd.isna(total) else \
            _figure(float(total)) + (f"{_NBSP}⚠" if flagged else "")
        if short and not pd.isna(total):
            total_text += f" ({_INCOMPLETE})"
        if 0 < generated < len(months):
            total_text += f" ({generated} of {len(months)} months)"
        if empty and valued:
            total_text += f" (no value for {', '.join(empty)})"
        rows.append([values[0], values[1], *cells, total_text])
    columns = ["Ledger", "Unit", *months, period.label]
    frame = pd.DataFrame(rows, columns=columns).astype("string")
    notes = ["Complete batches only; failed batches are listed under Data quality."]
    notes += [_MARK_NOTES[r] for r in _MARK_NOTES if r in seen]
    for ledger in (str(r[0]) for r in rows):
        if ledger in lacking:
            notes.append(f"\"(incomplete)\", {ledger}: the total leaves out {', '.join(lacking[ledger])}, so no "
                         "change is computed from it (see Warnings).")
    if any("no value" in r for r in marks.values()):
        notes.append("\"no value\": a complete batch without an output value, not counted as 0 (see Data quality).")
    return Table(frame, right=columns[2:], note=notes)


def totals_tables(totals: pd.DataFrame, period: Period, batches: pd.DataFrame | None = None,
                  calculations: pd.DataFrame | None = None, covered: pd.DataFrame | None = None) -> list[Table]:
    """``totals_table`` as shown: as it is for a quarter; for a longer period (a year), turned to a row per month and
    the period's total last, a column per ledger (its unit in the header), at most four ledgers to a table, so that
    every column fits a page and a narrow window. The notes go under the last table."""
    table = totals_table(totals, period, batches, calculations, covered)
    if len(period.months()) <= _MONTH_COLUMNS or table.frame.empty:
        return [table]
    wide = table.frame.copy()
    wide.insert(0, "Ledger and unit", [f"{ledger} ({unit})" if isinstance(unit, str) and unit else str(ledger)
                                       for ledger, unit in zip(wide["Ledger"], wide["Unit"], strict=True)])
    wide = wide.drop(columns=["Ledger", "Unit"]).rename(columns={period.label: f"{period.label} total"})
    parts = _months_as_rows(wide, "Month")
    return [Table(part, right=list(part.columns[1:]), note=table.note if n == len(parts) - 1 else None)
            for n, part in enumerate(parts)]


def net_removal(calculations: pd.DataFrame, batches: pd.DataFrame, selected: pd.DataFrame,
                period: Period) -> pd.DataFrame:
    """How each carbon-removal ledger's net figure was computed, month by month, from the complete batches'
    calculations (``client.calculations``): one row per ledger, month, batch and calculation, in the server's order.

    ``Sign`` is -1 for an emission (subtracted), +1 for a removal (added), 0 for what is not a term (the net
    figure, where the model reports it as a calculation, and reference masses); ``Signed`` is ``Sign × Value``.
    A month's signed terms add up to the batch's output, the ledger's figure (``Batch output``); a batch whose
    terms do not is an error in ``quality_findings``.
    """
    names = _names(selected)
    removal = set(removal_ledgers(selected))
    counted = batches[_counted(batches)]
    outputs = dict(zip(counted["id"].astype(str), counted["output_value"], strict=True))
    rows = []
    for ledger_id in (i for i in names if i in removal):
        mine = calculations[(calculations["ledger_id"] == ledger_id) & calculations["batch_id"].isin(outputs)]
        for calc in mine.itertuples():
            role = str(calc.lca_role) if isinstance(calc.lca_role, str) else ""
            sign = _sign(role)
            value = float(calc.value) if not pd.isna(calc.value) else pd.NA
            rows.append([names[ledger_id], ledger_id, _month_label(calc.start_time), calc.batch_id,
                         calc.tracking_id, calc.name, role, calc.unit, sign, value,
                         value * sign if not pd.isna(value) else pd.NA, outputs.get(str(calc.batch_id), pd.NA),
                         calc.note])
    columns = ["Ledger", "Ledger ID", "Month", "Batch ID", "Batch", "Term", "Role", "Unit", "Sign", "Value", "Signed",
               "Batch output", "Note"]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.astype({c: "string" for c in ("Ledger", "Ledger ID", "Month", "Batch ID", "Batch", "Term", "Role",
                                               "Unit", "Note")}
                        | {"Sign": "Int64", "Value": "Float64", "Signed": "Float64", "Batch output": "Float64"})


def _month_cells(frame: pd.DataFrame, column: str, months: Sequence[str], missing: Mapping[str, str], *,
                 flag: bool = False) -> list[str]:
    """One row of the computation table: ``column`` summed per month (or why the month has none), then over the
    quarter; with ``flag``, a value a skipped input counted as zero is marked ⚠."""
    out = []
    for month in months:
        if month in missing:
            out.append(missing[month])
            continue
        here = frame[frame["Month"] == month]
        text = _figure(float(here[column].fillna(0.0).sum()))
        out.append(text + f"{_NBSP}⚠" if flag and here["Note"].notna().any() else text)
    out.append(_figure(float(frame[column].fillna(0.0).sum())))
    return out


def net_removal_tables(breakdown: pd.DataFrame, batches: pd.DataFrame, selected: pd.DataFrame,
                       period: Period, calculations: pd.DataFrame | None = None) -> list[Any]:
    """The computation section: per carbon-removal ledger, its terms (rows) by month (columns) down to the net
    figure, with the quarter's sums; or a sentence saying why there is nothing to show."""
    removal = removal_ledgers(selected)
    names = _names(selected)
    if not removal:
        return [Bullets([], empty="The report covers no carbon-removal ledger, so there is no net removal to "
                                  "break down.")]
    effects = skipped_effects(batches, calculations)
    months = [m.label for m in period.months()]
    shown: list[Any] = []
    for ledger_id in removal:
        name = names[ledger_id]
        mine = breakdown[breakdown["Ledger ID"] == ledger_id]
        ledger_batches = batches[batches["ledger_id"] == ledger_id]
        if mine.empty:
            why = ("was not generated" if not _counted(ledger_batches).any()
                   else "has no calculations in its batches")
            shown.append(Bullets([(name, f"{why} in {period.label}: there is nothing to break down.")]))
            continue
        failed = {_month_label(t) for t, state in zip(ledger_batches["start_time"], ledger_batches["state"],
                                                      strict=True) if state == "failed"}
        generated = [m for m in months if m in set(mine["Month"])]
        missing = {m: "failed" if m in failed else NOT_GENERATED for m in months if m not in generated}
        terms = list(dict.fromkeys(zip(mine["Term"], mine["Role"], strict=True)))
        added = [t for t in terms if _sign(t[1]) == 1]
        subtracted = [t for t in terms if _sign(t[1]) == -1]
        reference = [t for t in terms if _sign(t[1]) == 0 and t[1] != "net"]
        per_month = mine.drop_duplicates("Batch ID").groupby("Month")["Batch"].agg(
            lambda ids: ", ".join(str(i) for i in ids if isinstance(i, str)))
        rows = [["Batch", *[missing.get(m) or per_month.get(m, _NA) for m in months], ""]]
        for term, role in [*added, *subtracted]:
            label = f"+ {term}" if _sign(role) == 1 else f"{_MINUS} {term}"
            rows.append([label, *_month_cells(mine[mine["Term"] == term], "Value", months, missing, flag=True)])
        per_batch = mine.drop_duplicates("Batch ID")
        empty = {m: "no value" for m in set(per_batch.loc[per_batch["Batch output"].isna(), "Month"])}
        net_cells = _month_cells(per_batch, "Batch output", months, {**missing, **empty})
        if empty:  # a batch without an output value is never summed as 0
            net_cells[-1] = "no value" if len(empty) == len(generated) else \
                f"{_figure(float(per_batch['Batch output'].dropna().sum()))} (no value for {', '.join(sorted(empty))})"
        rows.append(["= Net removal (the ledger's figure)", *net_cells])
        sums = mine.groupby("Month")["Signed"].sum()
        outputs = per_batch.groupby("Month")["Batch output"].sum()
        if any(abs(float(sums.get(m, 0.0)) - float(outputs.get(m, 0.0))) > 0.0005 for m in generated
               if m not in empty):
            rows.append(["Sum of the terms (differs!)", *_month_cells(mine, "Signed", months, missing)])
        for term, _role in reference:
            rows.append([f"for reference: {term}", *_month_cells(mine[mine["Term"] == term], "Value", months,
                                                                 missing)])
        by_month = len(months) > _MONTH_COLUMNS  # a year: a row per month, a column per term
        header = f"{period.label} total" if by_month else period.label
        if len(generated) < len(months):
            header += f" ({len(generated)} of {len(months)} months)"
        columns = ["Term", *months, header]
        frame = pd.DataFrame(rows, columns=columns).astype("string")
        notes = [_units_note(mine, selected, ledger_id)]
        if len(rows) > len(added) + len(subtracted) + 2 + len(reference):
            notes.append("⚠ In some month the terms do not add up to the ledger's figure (see Data quality).")
        for batch_id, batch in per_batch.set_index("Batch ID").iterrows():
            if str(batch_id) in effects:
                notes.append(f"⚠ {batch['Month']} ({batch['Batch']}): {effects[str(batch_id)][0]}")
        if not by_month:
            shown.append(Table(frame, title=f"{name}, {period.label}", note=notes, right=columns[1:]))
            continue
        parts = _months_as_rows(frame, "Month", per_table=_TERM_COLUMNS)
        for n, part in enumerate(parts):
            title = f"{name}, {period.label}" + (f" ({n + 1} of {len(parts)})" if len(parts) > 1 else "")
            shown.append(Table(part, title=title, note=notes if n == len(parts) - 1 else None,
                               right=[c for c in part.columns[1:] if c != "Batch"]))
    return shown


def _units_note(mine: pd.DataFrame, selected: pd.DataFrame, ledger_id: str) -> str:
    """The computation's unit, as the API gives it: the ledger's unit, and the calculations' own when they differ
    (never relabelled: "t" stays "t")."""
    found = selected.loc[selected["id"].astype(str) == ledger_id, "unit"]
    ledger_unit = str(found.iloc[0]) if len(found) and isinstance(found.iloc[0], str) and found.iloc[0] else ""
    units = sorted({str(u) for u in mine["Unit"] if isinstance(u, str) and u.strip()})
    how = (f"from each batch's calculations in Mangrove: removals {_MINUS} emissions = net removal, the batch's "
           "output on the ledger.")
    if not units or units == [ledger_unit]:
        return f"In {ledger_unit}, {how}" if ledger_unit else how[:1].upper() + how[1:]
    where = f"the ledger's unit is {ledger_unit}" if ledger_unit else "the ledger gives no unit"
    return (f"Terms in {', '.join(units)} (the calculations' unit{'s' if len(units) > 1 else ''}; {where}), "
            f"{how}")
