"""The report's opening: the header (the project's name, the quarter, what it covers) and the summary per
ledger (the quarter's total, the changes against the previous quarter and a year before, the months generated)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd

from mangrove_nb import Period

from .._text import _plural
from ._shared import _MINUS, _NBSP, NOT_GENERATED, _amount, _counted, _day, _month_label, _names
from .display import Header, Table
from .quality import skipped_effects


def header(project: Any, selected: pd.DataFrame, period: Period, previous: Period, year_ago: Period, *,
           generated_at: datetime, digest: str, all_ledgers: pd.DataFrame | None = None) -> Header:
    """The report's first lines: the project's name, the quarter, what it covers and compares with, and when."""
    name = getattr(project, "name", None)
    title = name if isinstance(name, str) and name.strip() else "Quarterly production report"
    names = list(_names(selected).values())
    lines = [f"Quarterly production report for {period.label}: {_day(period.start)} to {_day(period.end)} (UTC), "
             f"compared with {previous.label} and {year_ago.label}."]
    if name is None:
        lines.append("Project not named: give mangrove-nb report --project ID, or set MANGROVE_PROJECT_ID.")
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}" if names else "no ledger"
    if all_ledgers is not None:
        modelled = set(all_ledgers.loc[all_ledgers["has_model"].fillna(False).astype(bool), "id"].astype(str))
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


def summary(selected: pd.DataFrame, batches: pd.DataFrame, before: pd.DataFrame, year_ago_batches: pd.DataFrame,
            period: Period, previous: Period, year_ago: Period, calculations: pd.DataFrame | None = None
            ) -> pd.DataFrame:
    """Per ledger, in the report's order: the quarter's total, the previous quarter's and the same quarter's a
    year before, the changes, and how many months of each were generated.

    A quarter without a complete batch is not generated: its total is NA, never 0. A change is computed only
    between two quarters whose every month is generated (otherwise it would compare a part with a whole); it is
    NA otherwise, and ``summary_table`` says why. The percentage is NA when the earlier total is not positive.
    ``Overstated`` counts the quarter's batches whose net figure is overstated because an emission input was
    skipped (see ``quality_findings``).
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
        for key, label in (("Previous", "previous"), ("Year-ago", "year ago")):
            comparable = values["Generated"] == months and values[f"{key} generated"] == months
            then = values[f"{key} total"]
            change = values["Total"] - then if comparable else pd.NA
            values[f"Change vs {label}"] = change
            values[f"Change vs {label} (%)"] = change / then * 100 if comparable and then > 0 else pd.NA
        mine = batches[batches["ledger_id"] == ledger_id]
        values["Failed"] = int(mine["state"].eq("failed").sum())
        skipped = mine["skipped_inputs"].notna() if "skipped_inputs" in mine.columns else pd.Series(False)
        values["Skipped inputs"] = int(skipped.sum())
        values["Overstated"] = sum(effects.get(str(b), ("", ""))[1] == "overstated" for b in mine["id"])
        rows.append(values)
    columns = ["Ledger", "Ledger ID", "Unit", "Months", "Generated", "Total", "Previous generated", "Previous total",
               "Year-ago generated", "Year-ago total", "Change vs previous", "Change vs previous (%)",
               "Change vs year ago", "Change vs year ago (%)", "Failed", "Skipped inputs", "Overstated"]
    frame = pd.DataFrame(rows, columns=columns)
    integers = ["Months", "Generated", "Previous generated", "Year-ago generated", "Failed", "Skipped inputs",
                "Overstated"]
    return frame.astype({"Ledger": "string", "Ledger ID": "string", "Unit": "string"}
                        | {c: "Int64" for c in integers} | {c: "Float64" for c in columns if c not in integers
                                                                 and c not in ("Ledger", "Ledger ID", "Unit")})


def _change(row: Any, key: str, label: str, now: str, then: str) -> str:
    """The change cell of the summary: the change, or why there is none."""
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
    change, percent = row[f"Change vs {label}"], row[f"Change vs {label} (%)"]
    amount = _amount(float(change), row["Unit"], signed=True)
    if pd.isna(percent):
        return f"{amount} ({then}: {_amount(float(row[f'{key} total']), row['Unit'])})"
    return f"{percent:+.1f}{_NBSP}%".replace("-", _MINUS) + f" ({amount})"


def summary_table(frame: pd.DataFrame, period: Period, previous: Period, year_ago: Period) -> Table:
    """The summary as the reader sees it: one row per ledger with its total, the two changes and its coverage."""
    rows, notes = [], []
    for _, row in frame.iterrows():
        months, generated = int(row["Months"]), int(row["Generated"])
        if generated:
            total = _amount(float(row["Total"]), row["Unit"])
            if int(row["Overstated"]):
                total += f"{_NBSP}⚠"
                count = int(row["Overstated"])
                notes.append(f"⚠ {row['Ledger']}: {_plural(count, 'batch')} of {period.label} "
                             f"{'was' if count == 1 else 'were'} generated with an emission input skipped, so this "
                             "total overstates the net removal (see Warnings).")
            if generated < months:
                total += f" ({generated} of {months} months)"
        else:
            total = NOT_GENERATED
        coverage_text = f"{generated} of {months} months generated"
        if int(row["Failed"]):
            coverage_text += f"; {_plural(int(row['Failed']), 'batch')} failed"
        rows.append([row["Ledger"], total, _change(row, "Previous", "previous", period.label, previous.label),
                     _change(row, "Year-ago", "year ago", period.label, year_ago.label), coverage_text])
    columns = ["Ledger", f"{period.label} total", f"vs {previous.label}", f"vs {year_ago.label}", "Coverage"]
    shown = pd.DataFrame(rows, columns=columns).astype("string")
    notes.append("Totals count complete batches only, in each ledger's unit. A change is computed only between "
                 "quarters whose every month is generated.")
    return Table(shown, note=notes, right=columns[1:4], empty="The report covers no ledger.")
