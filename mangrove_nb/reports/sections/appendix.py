"""Every batch (one table per ledger) and the appendix: provenance with the data's fingerprint, the ledgers and
their inputs; and ``records``, the frames' rows the cells hand back in their outputs' metadata."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from ...frames import can_generate
from .._text import _plural
from ..snapshot import read_fingerprint as _read_fingerprint
from ..snapshot import replayed_from as _replayed_from
from ._shared import _counted, _month_label, _names, _span, _yes
from .display import Table

if TYPE_CHECKING:
    from mangrove_nb import Client, Period


def batch_table(batches: pd.DataFrame, selected: pd.DataFrame) -> pd.DataFrame:
    """The quarter's batches, one row each, in the report's ledger order, then by month and tracking id.

    A batch that is not complete has no output here (NA, shown "–" beside its state), whatever value the API
    sends for it: a failed batch's 0.0 is not a figure."""
    names = _names(selected)
    order = {ledger_id: n for n, ledger_id in enumerate(names)}
    skipped = batches["skipped_inputs"] if "skipped_inputs" in batches.columns else pd.Series(pd.NA,
                                                                                             index=batches.index)
    frame = pd.DataFrame({
        "Ledger": batches["ledger_id"].map(names),
        "Month": batches["start_time"].map(_month_label),
        "Tracking ID": batches["tracking_id"],
        "Feedstock": batches["feedstock"],
        "State": batches["state"],
        "Output": batches["output_value"].where(_counted(batches).to_numpy(), pd.NA),
        "Unit": batches["output_unit"],
        "Skipped inputs": skipped,
        "Batch ID": batches["id"],
        "_order": batches["ledger_id"].map(order),
    })
    frame = frame.sort_values(["_order", "Month", "Tracking ID", "Batch ID"], kind="stable", ignore_index=True)
    frame = frame.drop(columns="_order")
    return frame.astype({c: "string" for c in frame.columns if c != "Output"} | {"Output": "Float64"})


def batch_tables(batches: pd.DataFrame, selected: pd.DataFrame, period: Period) -> list[Table]:
    """The quarter's batches, one table per ledger (columns without a value anywhere in it are left out)."""
    full = batch_table(batches, selected)
    tables = []
    for ledger_id, name in _names(selected).items():
        mine = full[full["Ledger"] == name].drop(columns="Ledger")
        if mine.empty:
            unit = selected.loc[selected["id"] == ledger_id, "unit"].iloc[0]
            tables.append(Table(mine, title=f"{name} ({unit})" if isinstance(unit, str) and unit else name,
                                empty=f"Not generated: no batch starts in {period.label}."))
            continue
        keep = [c for c in mine.columns if c in ("Month", "Tracking ID", "State", "Output", "Batch ID")
                or mine[c].notna().any()]
        mine = mine[keep]
        units = [u for u in mine.pop("Unit").dropna().unique()] if "Unit" in mine.columns else []
        title = f"{name} ({', '.join(units)})" if units else name
        tables.append(Table(mine.reset_index(drop=True), title=title))
    return tables


def provenance(*, base_url: str, selected: pd.DataFrame, period: Period, previous: Period, generated_at: datetime,
               version: str, digest: str, batches: pd.DataFrame, before: pd.DataFrame,
               year_ago: Period | None = None, year_ago_batches: pd.DataFrame | None = None, project: Any = None,
               calculations: pd.DataFrame | None = None) -> Table:
    """The report's provenance table: where the data came from, for which project, ledgers and period, and its
    fingerprint."""
    names = _names(selected)
    name, project_id = getattr(project, "name", None), getattr(project, "id", None)
    distinct = year_ago is not None and year_ago != previous  # an annual report compares with one year only
    read = f"{len(batches)} in {period.label}, {len(before)} in {previous.label}"
    if distinct and year_ago is not None and year_ago_batches is not None:
        read += f", {len(year_ago_batches)} in {year_ago.label}"
    rows = [
        ("API base URL", base_url),
        ("Project", f"{name} ({project_id})" if project_id is not None else "not named"),
        ("Ledgers", "; ".join(f"{names[i]} ({i})" for i in names)),
        ("Period", str(period)),
        ("Compared with", str(previous) + (f"; {year_ago}" if distinct else "")),
        ("Generated at (UTC)", generated_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")),
        # A report rendered --from-snapshot says so: "replayed from the snapshot taken at <UTC time> (<folder>)".
        *[("Data", replayed) for replayed in [_replayed_from()] if replayed is not None],
        ("mangrove_nb version", version),
        ("Batches read", read),
    ]
    if calculations is not None:
        batches_read = _plural(calculations["batch_id"].nunique(), "batch")
        rows.append(("Calculations read", f"{len(calculations)}, of {batches_read}"))
    rows.append(("Data fingerprint (SHA-256)", digest))
    frame = pd.DataFrame(rows, columns=["Field", "Value"]).astype("string")
    spans = f"{'three' if distinct else 'two'} {_span(period)}s"
    return Table(frame, header=False, title="Provenance",
                 note="The fingerprint hashes every answer the report read from the API (the ledgers, their inputs, "
                      f"the project, the batches of the {spans} and their details, the calculations, the generation "
                      "previews and the registry reports): the same fingerprint means the same data.")


def fingerprint(*data: pd.DataFrame | Client) -> str:
    """The data fingerprint, a SHA-256 hex digest that is the same on any machine for the same data.

    ``fingerprint(client)``, what the report uses: every answer ``client`` (``reports.connect()``'s) read, keyed by
    its request (``snapshot.read_fingerprint``): the ledgers, their inputs, the project, the batches and their
    details, the calculations, the generation previews and the registry reports. The same fingerprint means the same
    answers were read; call it once everything is read.

    ``fingerprint(*frames)``: the batches' ids, ledgers, states, values, units, timestamps and skipped inputs, and
    the calculations' values (frames from ``client.calculations``), independent of row order; a changed value,
    state or timestamp (a batch regenerated, deleted or added) changes it. It covers those frames only.

    Nothing else (fetch time, base URL) enters either.
    """
    if len(data) == 1 and not isinstance(data[0], pd.DataFrame):
        return _read_fingerprint(data[0])
    frames = [frame for frame in data if isinstance(frame, pd.DataFrame)]
    if len(frames) != len(data):
        raise TypeError("fingerprint takes one client (reports.connect()'s: everything it read) or data frames.")
    batch_columns = ["ledger_id", "id", "tracking_id", "state", "start_time", "end_time", "created_at",
                     "updated_at", "output_value", "output_unit", "feedstock", "skipped_inputs"]
    calc_columns = ["batch_id", "name", "value", "unit", "ghg", "lca_role", "category", "note"]
    rows = []
    for frame in frames:
        columns = calc_columns if "batch_id" in frame.columns and "lca_role" in frame.columns else batch_columns
        for record in frame.reindex(columns=columns).to_dict("records"):
            rows.append([_canonical(record[column]) for column in columns])
    rows.sort(key=lambda row: json.dumps(row))
    payload = json.dumps({"columns": [batch_columns, calc_columns], "rows": rows}, separators=(",", ":"),
                         ensure_ascii=True)
    return hashlib.sha256(payload.encode("ascii")).hexdigest()


def _canonical(value: Any) -> Any:
    if value is None or value is pd.NA or (isinstance(value, float) and value != value) or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp | datetime):
        return pd.Timestamp(value).tz_convert("UTC").isoformat() if pd.Timestamp(value).tzinfo else \
            pd.Timestamp(value).isoformat()
    if isinstance(value, float):
        return repr(value)
    return str(value)


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A frame's rows as JSON-ready dicts (NA becomes None), for the facts a cell hands back in its metadata."""
    def plain(value: Any) -> Any:
        if pd.isna(value):
            return None
        value = value.item() if hasattr(value, "item") else value
        return round(value, 6) if isinstance(value, float) else value

    return [{str(k): plain(v) for k, v in row.items()} for row in frame.astype(object).to_dict("records")]


def ledger_summary(all_ledgers: pd.DataFrame, selected: pd.DataFrame, batches: pd.DataFrame | None = None
                   ) -> pd.DataFrame:
    """Every ledger the API lists, in the report's order (those it covers first), and whether the report covers
    it."""
    chosen = [str(i) for i in selected["id"]]
    rest = all_ledgers[~all_ledgers["id"].isin(chosen)].sort_values(["name", "id"], kind="stable")
    ordered = pd.concat([all_ledgers.set_index("id").loc[chosen].reset_index(), rest], ignore_index=True)
    rows = []
    for row in ordered.itertuples():
        covered = str(row.id) in chosen
        rows.append({
            "Ledger": row.name, "ID": row.id, "Unit": row.unit, "Partition": row.partition_type,
            "Model": row.model_name if can_generate(row) else "none",
            "In report": "yes" if covered else ("no: no model" if not can_generate(row) else "no: not selected"),
        })
    columns = ["Ledger", "ID", "Unit", "Partition", "Model", "In report"]
    return pd.DataFrame(rows, columns=columns).astype("string")


def inputs_table(inputs: Mapping[str, pd.DataFrame], selected: pd.DataFrame) -> pd.DataFrame:
    """What each covered ledger's model needs (``inputs``: ledger id -> ``client.required_inputs(id)``), one row
    per input, in the report's ledger order then by input id."""
    columns = ["Ledger", "Input", "Input ID", "Unit", "Manual select"]
    rows = []
    for ledger in selected.itertuples():
        mine = inputs[ledger.id].sort_values("id", kind="stable")
        if mine.empty:
            reason = "(no model)" if not can_generate(ledger) else "(none)"
            rows.append([ledger.name, reason, pd.NA, pd.NA, pd.NA])
        for item in mine.itertuples():
            manual = f"yes, from {item.output_of_ledgers}" if _yes(item.is_manual_select) and isinstance(
                item.output_of_ledgers, str) else ("yes" if _yes(item.is_manual_select) else "no")
            rows.append([ledger.name, item.name, item.id, item.unit, manual])
    frame = pd.DataFrame(rows, columns=columns)
    return frame.astype({c: "string" for c in columns} | {"Input ID": "Int64"})
