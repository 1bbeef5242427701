"""The project's events (``GET /projects/{id}/events``): one row per data point, with its event's columns."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from ._reading import _frame, _Item, _items, _value_text
from ._schema import EVENTS_SCHEMA


def events_frame(items: Iterable[Any], *, attrs: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """One row per data point, with its event's columns (GET /projects/{id}/events).

    An event without data points still gets one row (data point columns NA), so no event disappears.
    """
    rows: list[dict[str, Any]] = []
    for index, item in _items(items, "event"):
        rows.extend(_event_rows(_Item(item, index, "event")))
    return _frame(rows, EVENTS_SCHEMA, attrs)


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
