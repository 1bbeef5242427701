"""The registry's values: NA, text, finite numbers and UTC timestamps read from API values, rows made into a typed
frame of a schema, and amounts summed per group.

The dtypes and a timestamp's required start are ``frames``' (``_schema``, ``_reading``), and a frame is assembled
as every frame is (a plain 0..n-1 index). Unlike ``frames``' rows, these rows hold values already read
(``pd.Timestamp`` rather than timestamp text), and a missing key is NA.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC
from typing import Any

import pandas as pd

from ..frames._reading import _EARLIEST, _ISO_START, _LATEST, _assembled, _column
from ..frames._schema import _FLOAT, _INT, _TEXT, _TIME


def _frame(rows: Sequence[Mapping[str, Any]], schema: Mapping[str, str]) -> pd.DataFrame:
    """Rows (any missing value NA, timestamps as ``pd.Timestamp``) as a frame of ``schema``'s columns and dtypes."""
    columns = {}
    for name, dtype in schema.items():
        values = [None if _missing(row.get(name)) else row.get(name) for row in rows]
        if dtype == _TIME:
            columns[name] = pd.Series(pd.to_datetime(pd.Series(values, dtype=object), utc=True), dtype=_TIME)
        else:
            columns[name] = _column(values, dtype)
    return _assembled(columns, len(rows), None)


def _sums(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The rows' ``amount`` counted and summed per ``keys`` (text columns, NA a group of its own, sorted):
    ``keys``, then ``batches`` and ``amount``."""
    out = rows.groupby(keys, dropna=False, sort=True)["amount"].agg(["count", "sum"]).reset_index()
    return pd.DataFrame({**{key: out[key].astype(_TEXT) for key in keys},
                         "batches": out["count"].astype(_INT), "amount": out["sum"].astype(_FLOAT)})


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _text(value: Any) -> str | None:
    return None if _missing(value) else str(value)


def _number(value: Any) -> float | None:
    if _missing(value) or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
    else:
        try:
            number = float(value)
        except (TypeError, ValueError):
            return None
    return number if math.isfinite(number) else None


def _timestamp(value: Any) -> pd.Timestamp | None:
    if not isinstance(value, str) or not _ISO_START.match(value):
        return None
    try:
        moment = pd.Timestamp(value.strip())
    except (ValueError, OverflowError):
        return None
    if moment is pd.NaT:
        return None
    moment = moment.tz_localize(UTC) if moment.tzinfo is None else moment.tz_convert(UTC)
    # Outside what a nanosecond column holds (the frames' rule): not a time we can show, so not one at all.
    return moment if _EARLIEST <= moment <= _LATEST else None
