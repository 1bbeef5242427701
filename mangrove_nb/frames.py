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
    "EVENTS_SCHEMA",
    "LEDGERS_SCHEMA",
    "PREVIEW_SCHEMA",
    "REQUIRED_INPUTS_SCHEMA",
    "batches_frame",
    "empty_frame",
    "events_frame",
    "ledgers_frame",
    "preview_frame",
    "required_inputs_frame",
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
        "model_run_state": _TEXT,
        "model_run_error": _TEXT,
        "feedstock": _TEXT,
        # The batch's output data point (model_run.output_data_points[0].id): what a downstream ledger's
        # manual-select input names in data_point_ids.
        "output_data_point_id": _TEXT,
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
    frame = _fast_batches(items, attrs) if isinstance(items, list) else None
    if frame is None:  # anything unusual: the careful reader converts what it can and names what it cannot
        frame = _frame(_rows(items, "batch", _batch_row), BATCHES_SCHEMA, attrs)
    if ledger_id is not None:
        frame["ledger_id"] = pd.Series(ledger_id, index=frame.index, dtype=_TEXT)
    ordered = frame.sort_values(["start_time", "id"], kind="stable", ignore_index=True)
    ordered.attrs = frame.attrs
    return ordered


def events_frame(items: Iterable[Any], *, attrs: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """One row per data point, with its event's columns (GET /projects/{id}/events).

    An event without data points still gets one row (data point columns NA), so no event disappears.
    """
    rows: list[dict[str, Any]] = []
    for index, item in _items(items, "event"):
        rows.extend(_event_rows(_Item(item, index, "event")))
    return _frame(rows, EVENTS_SCHEMA, attrs)


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


def _fast_batches(items: list[Any], attrs: Mapping[str, Any] | None) -> pd.DataFrame | None:
    """Batches built column by column when every item has the documented types; None to take the slow path.

    A large listing is thousands of well-formed batches: checking each field through ``_Item`` cost more
    than fetching the pages. The result is the same frame ``_batch_row`` gives; any surprise (a missing id,
    a number as text, an odd timestamp) sends the whole list through the careful reader instead.
    """
    columns: dict[str, list[Any]] = {name: [] for name in BATCHES_SCHEMA}
    append = {name: values.append for name, values in columns.items()}
    for item in items:
        if type(item) is not dict:
            return None
        ident, start = item.get("id"), item.get("start_time")
        if type(ident) is not str or type(start) is not str:
            return None
        output, run = item.get("primary_output"), item.get("model_run")
        if (output is not None and type(output) is not dict) or (run is not None and type(run) is not dict):
            return None
        output, run = output or {}, run or {}
        texts = (item.get("tracking_id"), item.get("state"), output.get("name"), output.get("unit"),
                 run.get("state"), run.get("error_message"), item.get("ledger_id"))
        numbers = (output.get("value"), item.get("ledger_balance"))
        times = (item.get("end_time"), item.get("created_at"), item.get("updated_at"))
        if any(v is not None and type(v) is not str for v in (*texts, *times)) or any(
                v is not None and type(v) not in (int, float) for v in numbers):
            return None
        feedstocks, points = item.get("feedstocks"), run.get("output_data_points")
        if feedstocks is not None and type(feedstocks) is not list:
            return None
        if run.get("error_message") is None and item.get("error_message") is not None:
            return None  # the error's fallback place is the careful reader's job
        if points is not None and (type(points) is not list or (points and (type(points[0]) is not dict or
                                                                              type(points[0].get("id")) is not str))):
            return None
        append["id"](ident)
        append["tracking_id"](texts[0])
        append["start_time"](start)
        append["end_time"](times[0])
        append["state"](texts[1])
        append["created_at"](times[1])
        append["updated_at"](times[2])
        append["output_name"](texts[2])
        append["output_unit"](texts[3])
        append["output_value"](numbers[0])
        append["ledger_balance"](numbers[1])
        append["ledger_id"](texts[6])
        append["model_run_state"](texts[4])
        append["model_run_error"](texts[5])
        append["feedstock"](", ".join(_item_text(v) for v in feedstocks) if feedstocks else None)
        append["output_data_point_id"](points[0]["id"] if points else None)
    data = {}
    for name, dtype in BATCHES_SCHEMA.items():
        if dtype == _TIME:
            raw = pd.Series(columns[name], dtype=object)
            parsed = pd.to_datetime(raw, utc=True, format="ISO8601", errors="coerce")
            if (raw.notna() & (parsed.isna() | (parsed < _EARLIEST) | (parsed > _LATEST))).any():
                return None
            data[name] = pd.Series(parsed, dtype=_TIME)
        else:
            data[name] = pd.Series(columns[name], dtype=dtype)
    frame = pd.DataFrame(data, index=pd.RangeIndex(len(items)))
    frame.attrs.update(_checked_attrs(attrs))
    return frame


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
    """One vectorised parse for a whole column (per-value parsing dominated large listings)."""
    raw = pd.Series(values, dtype=object)
    parsed = pd.to_datetime(raw, utc=True, format="ISO8601", errors="coerce")
    # pandas 3 parses to microseconds; anything outside what nanoseconds hold is refused like a bad value.
    bad = raw.notna() & (parsed.isna() | (parsed < _EARLIEST) | (parsed > _LATEST))
    if bad.any():
        first = raw[bad].iloc[0]
        what = f"{str(first)!r:.40} is not an ISO 8601 timestamp in the years 1678 to 2261 that pandas can hold"
        raise first.item.malformed(first.key, what)
    # Naive timestamps were localised as UTC and offsets converted, as the API documents.
    return pd.Series(parsed, dtype=_TIME)


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
