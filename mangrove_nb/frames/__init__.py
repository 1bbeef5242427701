"""Pure functions from the API's JSON to typed pandas DataFrames, and the one place each frame's schema lives.

Every frame has a fixed column order and real dtypes, the same when it is empty:
``datetime64[ns, UTC]`` timestamps, and pandas' nullable ``string``, ``Int64``, ``Float64`` and ``boolean``
(the dtypes are named explicitly, so pandas 2.2 and 3.x give the same frames).

Reading rules, the same for every frame:
- unknown extra fields are ignored; a missing or null optional field becomes NA;
- a missing required field, a non-object item, a wrongly typed value or an unreadable timestamp raises
  ``MalformedResponseError`` naming the field and the item's index;
- ledger, batch and model ids are opaque strings (an int id becomes its decimal text); data point type ids
  (``required_inputs.id``) are integers;
- timestamps without an offset are taken as UTC;
- numbers sent as numeric strings (``"33.5"``, as Rails sends decimals) are accepted;
- list fields whose item shape is undocumented (``output_of_ledgers``, ``allocation_groups``,
  ``feedstocks``) become one string: the items joined with ``", "``, each item shown as itself (text or
  number) or, for an object, as ``name (id)`` / ``name`` / ``id`` / compact JSON. An empty list gives ``""``
  (known to be empty); a missing field gives NA.

``attrs`` (provenance: base URL, ledger, period, fetched-at) is copied into ``df.attrs``; keys that look like
credentials are refused, because frames travel into notebooks, reports and pickles.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

import pandas as pd

from mangrove_nb.errors import MalformedResponseError

__all__ = [
    "BATCHES_SCHEMA",
    "CALCULATIONS_SCHEMA",
    "DETAILS_SCHEMA",
    "EVENTS_SCHEMA",
    "LEDGERS_SCHEMA",
    "PREVIEW_SCHEMA",
    "REQUIRED_INPUTS_SCHEMA",
    "batch_columns",
    "batches_frame",
    "batches_frame_of_columns",
    "calculation_rows",
    "calculations_frame",
    "detail_row",
    "empty_frame",
    "events_frame",
    "ledgers_frame",
    "preview_frame",
    "required_inputs_frame",
    "upstream_ledger_ids",
]

_TEXT = "string"
_INT = "Int64"
_FLOAT = "Float64"
_BOOL = "boolean"
_TIME = "datetime64[ns, UTC]"

LEDGERS_SCHEMA: Mapping[str, str] = MappingProxyType(
    {
        "id": _TEXT,
        "name": _TEXT,
        "unit": _TEXT,
        "system_ledger_type": _TEXT,
        "partition_type": _TEXT,
        "cadence": _TEXT,
        "model_id": _TEXT,
        "model_name": _TEXT,
        "has_model": _BOOL,  # NA when the payload has no latest_model key at all; False when it is null
        "created_at": _TIME,
        "updated_at": _TIME,
    }
)

REQUIRED_INPUTS_SCHEMA: Mapping[str, str] = MappingProxyType(
    {
        "id": _INT,  # the data point type id
        "name": _TEXT,
        "slug": _TEXT,
        "unit": _TEXT,
        "value_type": _TEXT,
        "category": _TEXT,
        "subcategory": _TEXT,
        "is_manual_select": _BOOL,
        "output_of_ledgers": _TEXT,
        "allocation_groups": _TEXT,
    }
)

PREVIEW_SCHEMA: Mapping[str, str] = MappingProxyType(
    {
        "ledger_id": _TEXT,
        "ledger_name": _TEXT,
        "count": _INT,
    }
)

BATCHES_SCHEMA: Mapping[str, str] = MappingProxyType(
    {
        "id": _TEXT,
        "tracking_id": _TEXT,
        "start_time": _TIME,
        "end_time": _TIME,
        "state": _TEXT,
        "created_at": _TIME,
        "updated_at": _TIME,
        "output_name": _TEXT,
        "output_unit": _TEXT,
        "output_value": _FLOAT,
        "ledger_balance": _FLOAT,
        "ledger_id": _TEXT,
        # Filled by the analyst API from the ledgers it knows (listing items do not carry it).
        "ledger_name": _TEXT,
        "model_run_state": _TEXT,
        "model_run_error": _TEXT,
        "feedstock": _TEXT,
        # The batch's output data point (model_run.output_data_points[0].id): what a downstream ledger's
        # manual-select input names in data_point_ids.
        "output_data_point_id": _TEXT,
    }
)

#: What ``client.batches(..., details=True)`` adds, from each batch's ``GET /batches/{id}``.
DETAILS_SCHEMA: Mapping[str, str] = MappingProxyType(
    {
        # The data point types the generation skipped (``skipped_input`` placeholders), names joined with ", ";
        # NA when none was skipped.
        "skipped_inputs": _TEXT,
        "skipped_input_ids": _TEXT,
        # The upstream batches whose output this batch read (manual-select inputs), ids joined with ", ".
        "upstream_batches": _TEXT,
    }
)

#: ``client.calculations()``: the LCA breakdown of each batch (``model_run.calculations``), one row each.
CALCULATIONS_SCHEMA: Mapping[str, str] = MappingProxyType(
    {
        "batch_id": _TEXT,
        "tracking_id": _TEXT,
        "ledger_id": _TEXT,
        "start_time": _TIME,
        "name": _TEXT,
        "value": _FLOAT,
        "unit": _TEXT,
        "ghg": _TEXT,
        "lca_role": _TEXT,
        "category": _TEXT,
        # The server's note, e.g. that a skipped input counted as zero.
        "note": _TEXT,
    }
)

EVENTS_SCHEMA: Mapping[str, str] = MappingProxyType(
    {
        "event_id": _TEXT,
        "event_slug": _TEXT,
        "event_type": _TEXT,
        "tracking_id": _TEXT,
        "start_time": _TIME,
        "end_time": _TIME,
        "data_point_id": _TEXT,
        "data_point_slug": _TEXT,
        "data_point_type": _TEXT,
        "value": _FLOAT,  # NA when the value is not a number (text, boolean)
        "value_text": _TEXT,  # every value as text: numbers as written, booleans as true/false
        "unit": _TEXT,
        "status": _TEXT,
    }
)

# The range of datetime64[ns]: a timestamp outside it would make pandas raise its own error.
_EARLIEST = pd.Timestamp("1678-01-01T00:00:00Z")
_LATEST = pd.Timestamp("2261-12-31T23:59:59Z")
# What a timestamp must start with before the column's vectorised parse (which checks the rest).
_ISO_START = re.compile(r"\s*\d{4}-\d{2}-\d{2}")

# attrs keys refused because they would carry a credential into notebooks, reports and pickles.
_SECRET_WORDS = ("token", "authorization", "secret", "password", "api_key", "apikey")


def ledgers_frame(items: Iterable[Any], *, attrs: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """One row per ledger (GET /ledgers, GET /ledgers/{id}); ``has_model`` says if it can generate."""
    return _frame(_rows(items, "ledger", _ledger_row), LEDGERS_SCHEMA, attrs)


def required_inputs_frame(items: Iterable[Any], *, attrs: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """One row per input the ledger's model needs (GET /ledgers/{id}/required_inputs)."""
    return _frame(_rows(items, "required input", _required_input_row), REQUIRED_INPUTS_SCHEMA, attrs)


def preview_frame(items: Iterable[Any], *, attrs: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """One row per ledger that would get batches, with how many (POST /ledgers/{id}/generate_preview)."""
    return _frame(_rows(items, "preview entry", _preview_row), PREVIEW_SCHEMA, attrs)


def batches_frame(
    items: Iterable[Any], *, ledger_id: str | None = None, attrs: Mapping[str, Any] | None = None
) -> pd.DataFrame:
    """One row per batch, sorted by start time then id (stable).

    ``ledger_id`` is the ledger the caller asked about (GET /ledgers/{id}/batches items do not name it) and
    fills the column; without it, a ``ledger_id`` field in the items is used if present (GET /batches
    lists several ledgers), else NA. Works for GET /ledgers/{id}/batches, GET /batches and GET /batches/{id}.
    """
    items = items if isinstance(items, list) else list(items) if not isinstance(items, str | bytes | Mapping) else items
    columns = batch_columns(items)
    # The fast reader keeps every row, as the careful one does: a repeated id goes the careful way.
    if columns is not None and len(set(columns["id"])) == len(columns["id"]):
        frame = _columns_frame(columns, ledger_id, attrs)
        if frame is not None:
            return frame
    # Anything unusual: the careful reader converts what it can and names what it cannot.
    return _finish_batches(_frame(_rows(items, "batch", _batch_row), BATCHES_SCHEMA, attrs), ledger_id)


def events_frame(items: Iterable[Any], *, attrs: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """One row per data point, with its event's columns (GET /projects/{id}/events).

    An event without data points still gets one row (data point columns NA), so no event disappears.
    """
    rows: list[dict[str, Any]] = []
    for index, item in _items(items, "event"):
        rows.extend(_event_rows(_Item(item, index, "event")))
    return _frame(rows, EVENTS_SCHEMA, attrs)


def upstream_ledger_ids(required_inputs: Iterable[Any]) -> list[str]:
    """The ids of the ledgers whose batches the manual-select inputs read (their ``output_of_ledgers``).

    Items of ``output_of_ledgers`` are objects with an ``id`` (as the emulator sends) or plain ids; the
    documentation does not show their shape. Order kept, repeats dropped.
    """
    found: list[str] = []
    for index, item in _items(required_inputs, "required input"):
        if item.get("is_manual_select") is not True:
            continue
        for entry in _Item(item, index, "required input").sequence("output_of_ledgers") or []:
            ident = entry.get("id") if isinstance(entry, Mapping) else entry
            if isinstance(ident, str | int) and not isinstance(ident, bool) and str(ident) not in found:
                found.append(str(ident))
    return found


def detail_row(detail: Any, *, index: int = 0) -> dict[str, Any]:
    """``DETAILS_SCHEMA``'s values for one ``GET /batches/{id}`` answer, and the data point ids it read.

    Returns ``{"skipped_inputs", "skipped_input_ids", "upstream_points"}``; ``upstream_points`` (the ids of the
    data points read without an event, i.e. other batches' outputs) is turned into batch ids by the caller,
    who knows the upstream ledgers' batches.
    """
    if not isinstance(detail, Mapping):
        raise MalformedResponseError(f"A batch detail (item {index}) is not a JSON object.", index=index)
    item = _Item(detail, index, "batch detail")
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
    item = _Item(detail, index, "batch detail") if isinstance(detail, Mapping) else None
    if item is None:
        raise MalformedResponseError(f"A batch detail (item {index}) is not a JSON object.", index=index)
    run = item.mapping("model_run")
    run_item = _Item(run, index, "batch detail", prefix="model_run.") if run is not None else None
    rows = []
    for position, calc in enumerate((run_item.sequence("calculations") if run_item else None) or []):
        if not isinstance(calc, Mapping):
            raise item.malformed(f"model_run.calculations[{position}]", "is not an object")
        one = _Item(calc, index, "batch detail", prefix=f"model_run.calculations[{position}].")
        rows.append({
            "batch_id": item.ident("id", required=True), "tracking_id": item.text("tracking_id"),
            "ledger_id": item.ident("ledger_id"), "start_time": item.timestamp("start_time"),
            "name": one.text("name"), "value": one.number("value"), "unit": one.text("unit"),
            # ghg is "co2e" on most pages and a boolean on /modelruns/{id} (the contract allows both).
            "ghg": _flag_text(calc.get("ghg")) if isinstance(calc.get("ghg"), bool) else one.text("ghg"),
            "lca_role": one.text("lca_role"), "category": one.text("category"),
            "note": one.text("note"),
        })
    return rows


def _flag_text(value: bool) -> str:
    return "true" if value else "false"


def calculations_frame(rows: list[dict[str, Any]], *, attrs: Mapping[str, Any] | None = None) -> pd.DataFrame:
    return _frame(rows, CALCULATIONS_SCHEMA, attrs)


def empty_frame(schema: Mapping[str, str], *, attrs: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """A frame with no rows and the schema's columns and dtypes."""
    return _frame([], schema, attrs)


# --- one row per item -----------------------------------------------------------------------------------


def _ledger_row(item: _Item) -> dict[str, Any]:
    model = item.mapping("latest_model")
    model_item = _Item(model, item.index, "ledger", prefix="latest_model.") if model is not None else None
    return {
        "id": item.ident("id", required=True),
        "name": item.text("name"),
        "unit": item.text("unit"),
        "system_ledger_type": item.text("system_ledger_type"),
        "partition_type": item.text("partition_type"),
        "cadence": item.text("cadence"),
        "model_id": model_item.ident("id") if model_item else None,
        "model_name": model_item.text("name") if model_item else None,
        "has_model": (model is not None) if "latest_model" in item.data else None,
        "created_at": item.timestamp("created_at"),
        "updated_at": item.timestamp("updated_at"),
    }


def _required_input_row(item: _Item) -> dict[str, Any]:
    return {
        "id": item.integer("id", required=True),
        "name": item.text("name"),
        "slug": item.text("slug"),
        "unit": item.text("unit"),
        "value_type": item.text("value_type"),
        "category": item.text("category"),
        "subcategory": item.text("subcategory"),
        "is_manual_select": item.flag("is_manual_select"),
        "output_of_ledgers": item.joined("output_of_ledgers"),
        "allocation_groups": item.joined("allocation_groups"),
    }


def _preview_row(item: _Item) -> dict[str, Any]:
    return {
        "ledger_id": item.ident("id", required=True),
        "ledger_name": item.text("name"),
        "count": item.integer("count", required=True),
    }


def _batch_row(item: _Item) -> dict[str, Any]:
    output = item.mapping("primary_output")
    out = _Item(output, item.index, "batch", prefix="primary_output.") if output is not None else None
    run = item.mapping("model_run")
    run_item = _Item(run, item.index, "batch", prefix="model_run.") if run is not None else None
    # Where the failure text lives differs by endpoint: model_run.error_message (GET /batches, emulator)
    # or error_message on the batch itself (update_inputs' answer).
    run_error = run_item.text("error_message") if run_item else None
    return {
        "id": item.ident("id", required=True),
        "tracking_id": item.text("tracking_id"),
        "start_time": item.timestamp("start_time", required=True),
        "end_time": item.timestamp("end_time"),
        "state": item.text("state"),
        "created_at": item.timestamp("created_at"),
        "updated_at": item.timestamp("updated_at"),
        "output_name": out.text("name") if out else None,
        "output_unit": out.text("unit") if out else None,
        "output_value": out.number("value") if out else None,
        "ledger_balance": item.number("ledger_balance"),
        "ledger_id": item.ident("ledger_id"),
        "ledger_name": None,
        "model_run_state": run_item.text("state") if run_item else None,
        "model_run_error": run_error if run_error is not None else item.text("error_message"),
        "feedstock": item.joined("feedstocks", empty_as_na=True),
        "output_data_point_id": _first_output_point(run_item),
    }


def _first_output_point(run: _Item | None) -> str | None:
    points = run.sequence("output_data_points") if run is not None else None
    if not points or not isinstance(points[0], Mapping):
        return None
    return _Item(points[0], run.index, "batch", prefix="model_run.output_data_points[0].").ident("id")


_NONE = type(None)
_NO_FIELDS: Mapping[str, Any] = MappingProxyType({})


def batch_columns(items: Any) -> dict[str, list[Any]] | None:
    """A page of batches as one list per column of ``BATCHES_SCHEMA``; None when the careful reader must look.

    The fast reader: a listing of thousands of well-formed batches spent more time checking each field of
    each item through ``_Item`` than fetching the pages. Here each field is gathered with one list
    comprehension and each column's types are checked at once (``set(map(type, column))``), converting as the
    careful reader does (an integer id becomes text, a number where text is expected becomes text, a numeric
    string where a number is expected becomes a float, an error message on the batch stands in for the model
    run's). Whatever the careful reader would refuse, or would convert in a way not repeated here, gives
    None. Pure and thread-safe, so a listing can read each page as it arrives
    (``HttpClient.read_listing``); ``batches_frame_of_columns`` makes the frame.
    """
    if type(items) is not list or not set(map(type, items)) <= {dict}:
        return None
    outputs = [item.get("primary_output") for item in items]
    runs = [item.get("model_run") for item in items]
    if not set(map(type, outputs)) <= {dict, _NONE} or not set(map(type, runs)) <= {dict, _NONE}:
        return None
    outputs = [output or _NO_FIELDS for output in outputs]
    runs = [run or _NO_FIELDS for run in runs]
    ids = _idents([item.get("id") for item in items])
    if ids is None or None in ids:
        return None  # a batch without an id: the careful reader names it
    run_errors = _texts([run.get("error_message") for run in runs])
    batch_errors = _texts([item.get("error_message") for item in items])
    if run_errors is None or batch_errors is None:
        return None
    # Where the failure text lives differs by endpoint: model_run.error_message or the batch's error_message.
    errors = [run if run is not None else own for run, own in zip(run_errors, batch_errors, strict=True)]
    columns: dict[str, list[Any] | None] = {
        "id": ids,
        "tracking_id": _texts([item.get("tracking_id") for item in items]),
        "start_time": _time_texts([item.get("start_time") for item in items], required=True),
        "end_time": _time_texts([item.get("end_time") for item in items]),
        "state": _texts([item.get("state") for item in items]),
        "created_at": _time_texts([item.get("created_at") for item in items]),
        "updated_at": _time_texts([item.get("updated_at") for item in items]),
        "output_name": _texts([output.get("name") for output in outputs]),
        "output_unit": _texts([output.get("unit") for output in outputs]),
        "output_value": _numbers([output.get("value") for output in outputs]),
        "ledger_balance": _numbers([item.get("ledger_balance") for item in items]),
        "ledger_id": _idents([item.get("ledger_id") for item in items]),
        "ledger_name": [None] * len(items),
        "model_run_state": _texts([run.get("state") for run in runs]),
        "model_run_error": errors,
        "feedstock": _feedstocks([item.get("feedstocks") for item in items]),
        "output_data_point_id": _first_points([run.get("output_data_points") for run in runs]),
    }
    if any(values is None for values in columns.values()):
        return None
    return columns  # type: ignore[return-value]


def batches_frame_of_columns(pages: Iterable[Mapping[str, list[Any]]], *, ledger_id: str | None = None,
                             attrs: Mapping[str, Any] | None = None) -> pd.DataFrame | None:
    """The batches frame of a listing read page by page: each page's ``batch_columns``, in page order.

    An id already seen on an earlier page is dropped, as the client's ``list_all`` drops it (an insertion
    during the listing shifts later pages). None when a timestamp cannot be parsed or held: read the items
    with ``batches_frame``, which names the problem.
    """
    merged: dict[str, list[Any]] = {name: [] for name in BATCHES_SCHEMA}
    for page in pages:
        for name, values in merged.items():
            values.extend(page[name])
    ids = merged["id"]
    if len(set(ids)) != len(ids):
        first: dict[str, int] = {}
        for row, ident in enumerate(ids):
            first.setdefault(ident, row)
        keep = sorted(first.values())
        merged = {name: [values[row] for row in keep] for name, values in merged.items()}
    return _columns_frame(merged, ledger_id, attrs)


def _columns_frame(columns: Mapping[str, list[Any]], ledger_id: str | None,
                   attrs: Mapping[str, Any] | None) -> pd.DataFrame | None:
    data = {}
    for name, dtype in BATCHES_SCHEMA.items():
        if dtype == _TIME:
            data[name], bad = _parsed_times(columns[name])
            if bad.any():
                return None
        else:
            data[name] = pd.Series(columns[name], dtype=dtype)
    frame = pd.DataFrame(data, index=pd.RangeIndex(len(columns["id"])))
    frame.attrs.update(_checked_attrs(attrs))
    return _finish_batches(frame, ledger_id)


# Column readers for the fast path: the careful reader's conversions, a whole column at a time; None when
# a value would need the careful reader (to convert it another way, or to name it as malformed).


def _texts(values: list[Any]) -> list[Any] | None:
    kinds = set(map(type, values))
    if kinds <= {str, _NONE}:
        return values
    if kinds <= {str, _NONE, int, float}:
        return [str(v) if type(v) is int or type(v) is float else v for v in values]
    return None


def _idents(values: list[Any]) -> list[Any] | None:
    kinds = set(map(type, values))
    if kinds <= {str, _NONE}:
        return values
    if kinds <= {str, _NONE, int}:
        return [str(v) if type(v) is int else v for v in values]
    return None


def _numbers(values: list[Any]) -> list[Any] | None:
    kinds = set(map(type, values))
    if kinds <= {int, float, _NONE}:
        return values
    if kinds <= {int, float, _NONE, str}:
        try:
            return [float(v) if type(v) is str else v for v in values]
        except ValueError:
            return None
    return None


def _time_texts(values: list[Any], *, required: bool = False) -> list[Any] | None:
    """Timestamp text as the API sends it (a date first); the column's parse checks the rest."""
    if not set(map(type, values)) <= ({str} if required else {str, _NONE}):
        return None
    if not all(v is None or (v[4:5] == "-" and v[7:8] == "-" and v[:4].isdigit()) for v in values):
        return None  # leading spaces, or not a date first: the careful reader decides
    return values


def _feedstocks(values: list[Any]) -> list[Any] | None:
    if not set(map(type, values)) <= {list, _NONE}:
        return None
    return [", ".join(map(_item_text, listed)) if listed else None for listed in values]


def _first_points(values: list[Any]) -> list[Any] | None:
    """The id of each run's first output data point (None when there is none, or it is not an object)."""
    if not set(map(type, values)) <= {list, _NONE}:
        return None
    firsts = [listed[0] if listed and type(listed[0]) is dict else None for listed in values]
    return _idents([first.get("id") if first is not None else None for first in firsts])


def _finish_batches(frame: pd.DataFrame, ledger_id: str | None) -> pd.DataFrame:
    """The caller's ledger id in its column, and rows sorted by start time then id (stable)."""
    if ledger_id is not None:
        frame["ledger_id"] = pd.Series(ledger_id, index=frame.index, dtype=_TEXT)
    start = frame["start_time"]
    if start.is_monotonic_increasing and start.is_unique:
        return frame  # already in order (a listing in the server's usual order): sorting would only copy it
    ordered = frame.sort_values(["start_time", "id"], kind="stable", ignore_index=True)
    ordered.attrs = frame.attrs
    return ordered


def _event_rows(item: _Item) -> list[dict[str, Any]]:
    event = {
        "event_id": item.ident("id", required=True),
        "event_slug": item.text("slug"),
        "event_type": item.text("event_type"),
        "tracking_id": item.text("tracking_id"),
        "start_time": item.timestamp("start_time"),
        "end_time": item.timestamp("end_time"),
    }
    points = item.sequence("data_points")
    if not points:
        return [{**event, **dict.fromkeys(name for name in EVENTS_SCHEMA if name not in event)}]
    rows = []
    for position, point in enumerate(points):
        prefix = f"data_points[{position}]."
        if not isinstance(point, Mapping):
            raise item.malformed(prefix.rstrip("."), f"it is a {type(point).__name__}, not an object")
        dp = _Item(point, item.index, "event", prefix=prefix)
        value = point.get("value")
        rows.append(
            {
                **event,
                "data_point_id": dp.ident("id", required=True),
                "data_point_slug": dp.text("slug"),
                "data_point_type": dp.text("data_point_type"),
                "value": value if isinstance(value, int | float) and not isinstance(value, bool) else None,
                "value_text": _value_text(value),
                "unit": dp.text("unit"),
                "status": dp.text("status"),
            }
        )
    return rows


# --- reading one item -----------------------------------------------------------------------------------


class _Item:
    """Typed access to one JSON object; every failure names the field and the item's index."""

    def __init__(self, data: Mapping[str, Any], index: int, kind: str, *, prefix: str = "") -> None:
        self.data = data
        self.index = index
        self.kind = kind
        self.prefix = prefix

    def malformed(self, key: str, problem: str) -> MalformedResponseError:
        """The error for an unusable field; ``problem`` is a clause such as "it is a list, not text"."""
        return self._error(key, f"has an unusable field '{self.prefix}{key}': {problem}")

    def _error(self, key: str, what: str) -> MalformedResponseError:
        field = f"{self.prefix}{key}"
        return MalformedResponseError(
            f"The {self.kind} at index {self.index} of the server's answer {what}, so the answer does not "
            "match the documented Mangrove API. Check the base URL; if it is right, report this to Mangrove "
            "support.",
            field=field,
            index=self.index,
        )

    def _get(self, key: str, required: bool) -> Any:
        value = self.data.get(key)
        if value is None and required:
            state = "is null" if key in self.data else "is missing"
            raise self._error(key, f"lacks the required field '{self.prefix}{key}' (it {state})")
        return value

    def text(self, key: str, *, required: bool = False) -> str | None:
        value = self._get(key, required)
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise self.malformed(key, f"it is a {type(value).__name__}, not text")

    def ident(self, key: str, *, required: bool = False) -> str | None:
        """An opaque id: text as is, an integer as its decimal text."""
        value = self._get(key, required)
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        raise self.malformed(key, f"it is a {type(value).__name__}, not an id (text or integer)")

    def integer(self, key: str, *, required: bool = False) -> int | None:
        value = self._get(key, required)
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise self.malformed(key, f"{value!r:.40} is not an integer")

    def number(self, key: str, *, required: bool = False) -> float | None:
        value = self._get(key, required)
        if value is None:
            return None
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise self.malformed(key, f"{value!r:.40} is not a number")

    def flag(self, key: str, *, required: bool = False) -> bool | None:
        value = self._get(key, required)
        if value is None or isinstance(value, bool):
            return value
        raise self.malformed(key, f"{value!r:.40} is not true or false")

    def timestamp(self, key: str, *, required: bool = False) -> _Timestamp | None:
        """A timestamp, checked here for type and shape and parsed for the whole column at once."""
        value = self._get(key, required)
        if value is None:
            return None
        if isinstance(value, str) and _ISO_START.match(value):
            return _Timestamp(value.strip(), self, key)
        raise self.malformed(key, f"{value!r:.40} is not an ISO 8601 timestamp")

    def mapping(self, key: str) -> Mapping[str, Any] | None:
        value = self.data.get(key)
        if value is None or isinstance(value, Mapping):
            return value
        raise self.malformed(key, f"it is a {type(value).__name__}, not an object")

    def sequence(self, key: str) -> list[Any] | None:
        value = self.data.get(key)
        if value is None or isinstance(value, list):
            return value
        raise self.malformed(key, f"it is a {type(value).__name__}, not a list")

    def joined(self, key: str, *, empty_as_na: bool = False) -> str | None:
        values = self.sequence(key)
        if values is None or (empty_as_na and not values):
            return None
        return ", ".join(_item_text(v) for v in values)


def _item_text(value: Any) -> str:
    """How one element of an undocumented list shows in a joined string column."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        name, ident = value.get("name"), value.get("id")
        if name is not None and ident is not None:
            return f"{name} ({ident})"
        if name is not None or ident is not None:
            return str(name if name is not None else ident)
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)


def _value_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), default=str)


# --- items to frame -------------------------------------------------------------------------------------


def _items(items: Iterable[Any], kind: str) -> Iterable[tuple[int, Mapping[str, Any]]]:
    if items is None or isinstance(items, str | bytes | Mapping):
        raise MalformedResponseError(
            f"Expected a list of {kind} objects from the server but got a {type(items).__name__}, so the "
            "answer does not match the documented Mangrove API. Check the base URL and try again.",
            field="data",
        )
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise MalformedResponseError(
                f"The {kind} at index {index} of the server's answer is a {type(item).__name__}, not an "
                "object, so the answer does not match the documented Mangrove API. Check the base URL and "
                "try again.",
                field="data",
                index=index,
            )
        yield index, item


def _rows(items: Iterable[Any], kind: str, row: Callable[[_Item], dict[str, Any]]) -> list[dict[str, Any]]:
    return [row(_Item(item, index, kind)) for index, item in _items(items, kind)]


def _frame(rows: list[dict[str, Any]], schema: Mapping[str, str], attrs: Mapping[str, Any] | None) -> pd.DataFrame:
    columns = {name: _column([row[name] for row in rows], dtype) for name, dtype in schema.items()}
    frame = pd.DataFrame(columns, index=pd.RangeIndex(len(rows)))
    frame.attrs.update(_checked_attrs(attrs))
    return frame


def _column(values: list[Any], dtype: str) -> pd.Series:
    if dtype == _TIME:
        return _times(values)
    return pd.Series(values, dtype=dtype)


class _Timestamp(str):
    """Timestamp text that remembers where it came from, so a parse failure can name the item and field."""

    __slots__ = ("item", "key")

    def __new__(cls, text: str, item: _Item, key: str) -> _Timestamp:
        made = super().__new__(cls, text)
        made.item, made.key = item, key
        return made


def _times(values: list[_Timestamp | None]) -> pd.Series:
    """One vectorised parse for a whole column; a value that cannot be read or held is named."""
    parsed, bad = _parsed_times(values)
    if bad.any():
        first = values[int(bad.to_numpy().argmax())]
        what = f"{str(first)!r:.40} is not an ISO 8601 timestamp in the years 1678 to 2261 that pandas can hold"
        raise first.item.malformed(first.key, what)
    return parsed


def _parsed_times(values: list[Any]) -> tuple[pd.Series, pd.Series]:
    """A column of timestamp text parsed at once (per-value parsing dominated large listings), and a mask of
    the values that could not be read or held. Naive timestamps are UTC and offsets converted, as the API
    documents; pandas 3 parses to microseconds, so anything outside what nanoseconds hold counts as bad."""
    raw = pd.Series(values, dtype=object)
    parsed = pd.to_datetime(raw, utc=True, format="ISO8601", errors="coerce")
    bad = raw.notna() & (parsed.isna() | (parsed < _EARLIEST) | (parsed > _LATEST))
    if bad.any():
        parsed = parsed.where(~bad)  # blanked before the cast: they may not fit in nanoseconds
    return pd.Series(parsed, dtype=_TIME), bad


def _checked_attrs(attrs: Mapping[str, Any] | None) -> dict[str, Any]:
    if not attrs:
        return {}
    for key in attrs:
        if any(word in str(key).lower() for word in _SECRET_WORDS):
            raise ValueError(
                f"attrs key {key!r} looks like a credential; frames keep provenance only (base_url, ledger, "
                "period, fetched_at), because they end up in notebooks and reports."
            )
    return dict(attrs)
