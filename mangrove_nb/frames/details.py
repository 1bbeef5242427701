"""What one batch's ``GET /batches/{id}`` adds to its listing row: the inputs it skipped, the upstream data
points it read (``DETAILS_SCHEMA``), and its LCA breakdown (``CALCULATIONS_SCHEMA``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from mangrove_nb.errors import MalformedResponseError

from ._reading import _frame, _Item, _value_text
from ._schema import CALCULATIONS_SCHEMA


def detail_row(detail: Any, *, index: int = 0) -> dict[str, Any]:
    """``DETAILS_SCHEMA``'s values for one ``GET /batches/{id}`` answer, and the data point ids it read.

    Returns ``{"skipped_inputs", "skipped_input_ids", "upstream_points"}``; ``upstream_points`` (the ids of the
    data points read without an event, i.e. other batches' outputs) is turned into batch ids by the caller,
    who knows the upstream ledgers' batches.
    """
    item = _detail(detail, index)
    skipped_names, skipped_ids, upstream = [], [], []
    for position, entry in enumerate(item.sequence("input_data") or []):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("data_point"), Mapping):
            raise item.malformed(f"input_data[{position}]", "is not a {data_point, event} object")
        point = _Item(entry["data_point"], index, "batch detail", prefix=f"input_data[{position}].data_point.")
        if point.text("status") == "skipped_input":
            skipped_names.append(point.text("data_point_type") or point.text("slug") or "?")
            type_id = point.integer("data_point_type_id")
            skipped_ids.append(str(type_id) if type_id is not None else "?")
        elif entry.get("event") is None and point.ident("id") is not None:
            upstream.append(point.ident("id"))
    return {"skipped_inputs": ", ".join(skipped_names) or None, "skipped_input_ids": ", ".join(skipped_ids) or None,
            "upstream_points": upstream}


def calculation_rows(detail: Any, *, index: int = 0) -> list[dict[str, Any]]:
    """``CALCULATIONS_SCHEMA`` rows of one batch detail (``model_run.calculations``), in the server's order."""
    item = _detail(detail, index)
    run = item.nested("model_run")
    rows = []
    for position, calc in enumerate((run.sequence("calculations") if run else None) or []):
        if not isinstance(calc, Mapping):
            raise item.malformed(f"model_run.calculations[{position}]", "is not an object")
        one = _Item(calc, index, "batch detail", prefix=f"model_run.calculations[{position}].")
        rows.append({
            "batch_id": item.ident("id", required=True), "tracking_id": item.text("tracking_id"),
            "ledger_id": item.ident("ledger_id"), "start_time": item.timestamp("start_time"),
            "name": one.text("name"), "value": one.number("value"), "unit": one.text("unit"),
            # ghg is "co2e" on most pages and a boolean on /modelruns/{id} (the contract allows both).
            "ghg": _value_text(calc["ghg"]) if isinstance(calc.get("ghg"), bool) else one.text("ghg"),
            "lca_role": one.text("lca_role"), "category": one.text("category"),
            "note": one.text("note"),
        })
    return rows


def calculations_frame(rows: list[dict[str, Any]], *, attrs: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """The ``CALCULATIONS_SCHEMA`` frame of ``calculation_rows``' rows."""
    return _frame(rows, CALCULATIONS_SCHEMA, attrs)


def _detail(detail: Any, index: int) -> _Item:
    """One ``GET /batches/{id}`` answer as an item; refused when it is not an object."""
    if not isinstance(detail, Mapping):
        raise MalformedResponseError(f"A batch detail (item {index}) is not a JSON object.", index=index)
    return _Item(detail, index, "batch detail")
