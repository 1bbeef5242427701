"""The report's opening: the header (the project's name, the quarter, what it covers) and the summary per
ledger (the quarter's total, the changes against the previous quarter and a year before, the months generated).

An annual report (``period`` a year) says "year" where a quarterly one says "quarter", and compares with the year
before only (its previous period and the year before it are the same year)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd

from mangrove_nb import Period
from mangrove_nb.frames import with_model

from .._text import _plural
from ._shared import _MINUS, _NBSP, NOT_GENERATED, _amount, _counted, _day, _month_label, _names, _span
from .display import Header, Table
from .quality import duplicate_partitions, left_out, may_overstate, month_marks, skipped_effects


def header(project: Any, selected: pd.DataFrame, period: Period, previous: Period, year_ago: Period, *,
           generated_at: datetime, digest: str, all_ledgers: pd.DataFrame | None = None) -> Header:
    """The report's first lines: the project's name, the quarter (or year), what it covers and compares with, and
    when."""
    name = getattr(project, "name", None)
    kind = "Annual" if _span(period) == "year" else "Quarterly"
    title = name if isinstance(name, str) and name.strip() else f"{kind} production report"
    names = list(_names(selected).values())
    compared = previous.label if year_ago == previous else f"{previous.label} and {year_ago.label}"
    lines = [f"{kind} production report for {period.label}: {_day(period.start)} to {_day(period.end)} (UTC), "
             f"compared with {compared}."]
    if name is None:
        lines.append("Project not named: give mangrove-nb report --project ID, or set MANGROVE_PROJECT_ID.")
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}" if names else "no ledger"
    if all_ledgers is not None:
        modelled = set(all_ledgers.loc[with_model(all_ledgers), "id"].astype(str))
        chosen = set(selected["id"].astype(str))
        if chosen == modelled:
            listed += " (every ledger with a model)"
        elif len(names) == 1:
            listed += " only"
    lines.append(f"Covers {listed}.")
    lines.append(f"Generated {generated_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC; data fingerprint {digest[:12]}… "
                 "(provenance in the appendix).")
    return Header(title, lines)


def _generated_months(frame: pd.DataFrame, ledger_id: str, period: Period) -> list[str]:
    """The months of ``period`` in which the ledger has a complete batch."""
    mine = frame[(frame["ledger_id"] == ledger_id) & _counted(frame)]
    have = {_month_label(t) for t in mine["start_time"]}
    return [m.label for m in period.months() if m.label in have]


def _total(frame: pd.DataFrame, ledger_id: str) -> float:
    mine = frame[(frame["ledger_id"] == ledger_id) & _counted(frame)]
    return float(mine["output_value"].fillna(0.0).sum())


def _quarter_marks(frame: pd.DataFrame, ledger_id: str, span: Period, calculations: pd.DataFrame | None
                   ) -> dict[str, list[str]]:
    """The months of ``span`` whose total is doubtful, by reason (``month_marks``): overstated, duplicate, no value."""
    months = {m.label for m in span.months()}
    mine = frame[frame["ledger_id"] == ledger_id] if len(frame) else frame
    found: dict[str, list[str]] = {"overstated": [], "duplicate": [], "no value": [], "incomplete": []}
    for (_, month), reasons in sorted(month_marks(mine, calculations).items()):
        if month in months:
            for reason in reasons:
                found.setdefault(reason, []).append(month)
    return found


def summary(selected: pd.DataFrame, batches: pd.DataFrame, before: pd.DataFrame, year_ago_batches: pd.DataFrame,
            period: Period, previous: Period, year_ago: Period, calculations: pd.DataFrame | None = None, *,
            covered: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per ledger, in the report's order: the quarter's total, the previous quarter's and the same quarter's a
    year before, the changes, and how many months of each were generated.

    A quarter without a complete batch is not generated: its total is NA, never 0. A change is computed only
    between two quarters whose every month is generated and has a value (a complete batch without an output value
    is "no value", never 0) and whose totals leave nothing out (``Left out``, ``left_out``: a partition, such as one
    feedstock of a month, whose batch failed or is not finished, or batches the generation preview in ``covered``
    could still make; ``covered`` holds ``coverage`` rows of any of the three periods); it is NA otherwise, and
    ``summary_table`` says why. The percentage is NA when the
    earlier total is not positive. ``Overstated`` counts the quarter's batches made with a skipped input that may
    overstate their figure (``skipped_effects``; ``calculations`` should cover the three quarters' batches made
    with a skipped input, and the earlier frames need ``skipped_inputs``, from ``client.batches(details=True)``);
    ``Duplicated`` the partitions with two complete batches, both counted (``duplicate_partitions``); ``No value``
    the months with a complete batch without an output value. The ``Previous …`` and ``Year-ago …`` columns say
    the same of the earlier quarters, so a change that involves a doubtful total is marked too.
    """
    months = len(period.months())
    effects = skipped_effects(batches, calculations)
    rows = []
    for row in selected.itertuples():
        ledger_id = str(row.id)
        values: dict[str, Any] = {"Ledger": row.name, "Ledger ID": ledger_id, "Unit": row.unit, "Months": months}
        for key, frame, span in (("", batches, period), ("Previous ", before, previous),
                                 ("Year-ago ", year_ago_batches, year_ago)):
            generated = _generated_months(frame, ledger_id, span)
            values[f"{key}generated".capitalize()] = len(generated)
            values[f"{key}total".capitalize()] = _total(frame, ledger_id) if generated else pd.NA
            marks = _quarter_marks(frame, ledger_id, span, calculations)
            if key:
                values[f"{key}overstated".capitalize()] = len(marks["overstated"])
                values[f"{key}duplicated".capitalize()] = len(marks["duplicate"])
            else:
                values["Duplicated"] = sum(1 for item in duplicate_partitions(frame[frame["ledger_id"] == ledger_id])
                                           if item[1] in {m.label for m in span.months()})
            values[f"{key}no value".capitalize()] = ", ".join(marks["no value"]) or pd.NA
            missing = left_out(frame, ledger_id, [m.label for m in span.months()], covered)
            values[f"{key}left out".capitalize()] = ", ".join(i for items in missing.values() for i in items) or pd.NA
        for key, label in (("Previous", "previous"), ("Year-ago", "year ago")):
            comparable = (values["Generated"] == months and values[f"{key} generated"] == months
                          and pd.isna(values["No value"]) and pd.isna(values[f"{key} no value"])
                          and pd.isna(values["Left out"]) and pd.isna(values[f"{key} left out"]))
            then = values[f"{key} total"]
            change = values["Total"] - then if comparable else pd.NA
            values[f"Change vs {label}"] = change
            values[f"Change vs {label} (%)"] = change / then * 100 if comparable and then > 0 else pd.NA
        mine = batches[batches["ledger_id"] == ledger_id]
        values["Failed"] = int(mine["state"].eq("failed").sum())
        skipped = mine["skipped_inputs"].notna() if "skipped_inputs" in mine.columns else pd.Series(False)
        values["Skipped inputs"] = int(skipped.sum())
        values["Overstated"] = sum(may_overstate(effects[str(b)][1]) for b, state in zip(mine["id"], mine["state"],
                                                                                         strict=True)
                                   if str(b) in effects and state == "complete")
        rows.append(values)
    columns = ["Ledger", "Ledger ID", "Unit", "Months", "Generated", "Total", "Previous generated", "Previous total",
               "Year-ago generated", "Year-ago total", "Change vs previous", "Change vs previous (%)",
               "Change vs year ago", "Change vs year ago (%)", "Failed", "Skipped inputs", "Overstated",
               "Duplicated", "No value", "Previous overstated", "Previous duplicated", "Previous no value",
               "Year-ago overstated", "Year-ago duplicated", "Year-ago no value", "Left out", "Previous left out",
               "Year-ago left out"]
    frame = pd.DataFrame(rows, columns=columns)
    integers = ["Months", "Generated", "Previous generated", "Year-ago generated", "Failed", "Skipped inputs",
                "Overstated", "Duplicated", "Previous overstated", "Previous duplicated", "Year-ago overstated",
                "Year-ago duplicated"]
    texts = ["Ledger", "Ledger ID", "Unit", "No value", "Previous no value", "Year-ago no value", "Left out",
             "Previous left out", "Year-ago left out"]
    return frame.astype({c: "string" for c in texts} | {c: "Int64" for c in integers}
                        | {c: "Float64" for c in columns if c not in integers and c not in texts})


def _doubtful(row: Any, key: str) -> bool:
    """Whether a quarter's total (``key``: "" for the quarter, "Previous ", "Year-ago ") may be overstated."""
    return any(int(row.get(f"{key}{what}".capitalize(), 0) or 0) for what in ("overstated", "duplicated"))


def _change(row: Any, key: str, label: str, now: str, then: str) -> str:
    """The change cell of the summary: the change, or why there is none; ⚠ when either total may be overstated."""
    months = int(row["Months"])
    generated, earlier = int(row["Generated"]), int(row[f"{key} generated"])
    if generated == 0:
        return f"{now} {NOT_GENERATED}"
    if earlier == 0:
        return f"{then} {NOT_GENERATED}"
    if generated < months:
        return f"not compared: {now} has {generated} of {months} months"
    if earlier < months:
        return f"not compared: {then} has {earlier} of {months} months"
    if not pd.isna(row.get("No value", pd.NA)):
        return f"not compared: {now} has no value for {row['No value']}"
    if not pd.isna(row.get(f"{key} no value", pd.NA)):
        return f"not compared: {then} has no value for {row[f'{key} no value']}"
    if not pd.isna(row.get("Left out", pd.NA)):
        return f"not compared: {now} leaves out {row['Left out']}"
    if not pd.isna(row.get(f"{key} left out", pd.NA)):
        return f"not compared: {then} leaves out {row[f'{key} left out']}"
    change, percent = row[f"Change vs {label}"], row[f"Change vs {label} (%)"]
    amount = _amount(float(change), row["Unit"], signed=True)
    flag = f"{_NBSP}⚠" if _doubtful(row, "") or _doubtful(row, f"{key} ") else ""
    if pd.isna(percent):
        return f"{amount} ({then}: {_amount(float(row[f'{key} total']), row['Unit'])}){flag}"
    return f"{percent:+.1f}{_NBSP}%".replace("-", _MINUS) + f" ({amount}){flag}"


def summary_table(frame: pd.DataFrame, period: Period, previous: Period, year_ago: Period) -> Table:
    """The summary as the reader sees it: one row per ledger with its total, the two changes and its coverage; ⚠ on
    every figure (total or change) drawn from a total that may be overstated, with a note saying why. When the
    period a year before is the previous one (an annual report), there is one change column."""
    span = _span(period)
    one_change = year_ago == previous
    rows, notes = [], []
    for _, row in frame.iterrows():
        months, generated = int(row["Months"]), int(row["Generated"])
        no_value = row.get("No value", pd.NA)
        empty_months = [] if pd.isna(no_value) else str(no_value).split(", ")
        if generated and len(empty_months) >= generated:
            total = f"no value ({', '.join(empty_months)})"
        elif generated:
            total = _amount(float(row["Total"]), row["Unit"])
            if _doubtful(row, ""):
                total += f"{_NBSP}⚠"
            if generated < months:
                total += f" ({generated} of {months} months)"
            if empty_months:
                total += f" (no value for {', '.join(empty_months)})"
        else:
            total = NOT_GENERATED
        if int(row["Overstated"]):
            count = int(row["Overstated"])
            notes.append(f"⚠ {row['Ledger']}: {_plural(count, 'batch')} of {period.label} "
                         f"{'was' if count == 1 else 'were'} generated with an input skipped, so this total may "
                         "overstate the figure (see Warnings).")
        if int(row.get("Duplicated", 0) or 0):
            count = int(row["Duplicated"])
            notes.append(f"⚠ {row['Ledger']}: {_plural(count, 'month')} of {period.label} "
                         f"{'has' if count == 1 else 'have'} two or more complete batches for one partition "
                         "(possibly generated twice); the total counts them all (see Warnings).")
        for key, earlier in (("Previous ", previous), ("Year-ago ", year_ago))[:1 if one_change else 2]:
            if _doubtful(row, key):
                notes.append(f"⚠ {row['Ledger']}: the {earlier.label} total may be overstated (a batch made with an "
                             "input skipped, or a month generated twice), so the change against it is marked.")
        if empty_months:
            notes.append(f"{row['Ledger']}: a complete batch of {', '.join(empty_months)} has no output value; it "
                         f"is not counted as 0, and no change is computed from this {span}.")
        coverage_text = f"{generated} of {months} months generated"
        if int(row["Failed"]):
            coverage_text += f"; {_plural(int(row['Failed']), 'batch')} failed"
        changes = [_change(row, "Previous", "previous", period.label, previous.label)]
        if not one_change:
            changes.append(_change(row, "Year-ago", "year ago", period.label, year_ago.label))
        rows.append([row["Ledger"], total, *changes, coverage_text])
    compared = [f"vs {previous.label}"] + ([] if one_change else [f"vs {year_ago.label}"])
    columns = ["Ledger", f"{period.label} total", *compared, "Coverage"]
    shown = pd.DataFrame(rows, columns=columns).astype("string")
    notes.append("Totals count complete batches only, in each ledger's unit. A change is computed only between "
                 f"{span}s whose every month is generated and has a value, and whose totals leave out no failed or "
                 "unfinished batch (per feedstock) and no batch the preview could still generate.")
    return Table(shown, note=notes, right=columns[1:2 + len(compared)], empty="The report covers no ledger.")
