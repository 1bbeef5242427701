"""The reading rules every frame shares: one JSON item read field by field, rows made into a typed frame.

``_Item`` gives typed access to one object, and every failure names the field and the item's index;
``_items`` refuses a non-list answer and non-object items; ``_frame`` turns rows into a frame of a schema
(timestamps parsed a whole column at once, see ``_parsed_times``) with checked ``attrs``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pandas as pd

from mangrove_nb.errors import MalformedResponseError

from ._schema import _TIME

# The range of datetime64[ns]: a timestamp outside it would make pandas raise its own error.
_EARLIEST = pd.Timestamp("1678-01-01T00:00:00Z")
_LATEST = pd.Timestamp("2261-12-31T23:59:59Z")
# What a timestamp must start with before the column's vectorised parse (which checks the rest).
_ISO_START = re.compile(r"\s*\d{4}-\d{2}-\d{2}")

# attrs keys refused because they would carry a credential into notebooks, reports and pickles.
_SECRET_WORDS = ("token", "authorization", "secret", "password", "api_key", "apikey")


def empty_frame(schema: Mapping[str, str], *, attrs: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """A frame with no rows and the schema's columns and dtypes."""
    return _frame([], schema, attrs)


def concat_frames(parts: list[pd.DataFrame], schema: Mapping[str, str]) -> pd.DataFrame:
    """Frames of one schema as one (empty parts dropped), with the schema's dtypes; the empty frame when all are."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return empty_frame(schema)
    frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0].copy()
    return frame.astype(dict(schema))


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

    def nested(self, key: str) -> _Item | None:
        """The object at ``key`` read as an item of its own, its failures naming ``key.field``; None if absent."""
        value = self.mapping(key)
        return _Item(value, self.index, self.kind, prefix=f"{self.prefix}{key}.") if value is not None else None

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
    """Any JSON value as text: text as is, numbers as written, booleans as ``true``/``false``, the rest as JSON."""
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
    return _assembled(columns, len(rows), attrs)


def _assembled(columns: Mapping[str, pd.Series], length: int, attrs: Mapping[str, Any] | None) -> pd.DataFrame:
    """Typed columns made into a frame: a plain 0..n-1 index and the caller's ``attrs``, checked."""
    frame = pd.DataFrame(columns, index=pd.RangeIndex(length))
    frame.attrs.update(_checked_attrs(attrs))
    return frame


def _column(values: list[Any], dtype: str) -> pd.Series:
    if dtype == _TIME:
        return _times(values)
    return pd.Series(values, dtype=dtype)


class _Timestamp(str):
    """Timestamp text that remembers where it came from, so a parse failure can name the item and field."""

    __slots__ = ("item", "key")
    item: _Item
    key: str

    def __new__(cls, text: str, item: _Item, key: str) -> _Timestamp:
        made = super().__new__(cls, text)
        made.item, made.key = item, key
        return made


def _times(values: list[_Timestamp | None]) -> pd.Series:
    """One vectorised parse for a whole column; a value that cannot be read or held is named."""
    parsed, bad = _parsed_times(values)
    if bad.any():
        first = values[int(bad.to_numpy().argmax())]
        assert first is not None  # a missing value parses as NaT, never as bad
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
