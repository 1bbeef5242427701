"""Batch frames: ``GET /ledgers/{id}/batches``, ``GET /batches`` and ``GET /batches/{id}`` as one schema; and the
two rules of what a batches frame may not hide, which the quarterly report and the registry plan both apply:
partitions with two complete batches (``duplicate_partitions``) and a balance larger than the output
(``balance_exceeds_output``).

Two readers give the same frame. The careful one (``_batch_row`` through ``_Item``) reads any answer and names
what it cannot read; the fast one (``batch_columns``) reads a well-formed page a whole column at a time and
hands anything unusual to the careful one. ``batches_frame`` tries the fast one first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

import pandas as pd

from ._reading import _assembled, _frame, _Item, _item_text, _parsed_times, _rows
from ._schema import _TEXT, _TIME, BATCHES_SCHEMA


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



# --- what a batches frame may not hide ------------------------------------------------------------------


def duplicate_partitions(batches: pd.DataFrame) -> list[tuple[str, str, Any, list[str], list[str]]]:
    """Partitions with more than one complete batch: ``(ledger_id, month, feedstock, batch ids, tracking ids)``,
    by ledger, month (``YYYY-MM`` of the start, UTC) and feedstock (None where the batches name none).

    A partition (a ledger's month, per feedstock where the ledger has them) gets one batch per generation; two
    complete ones are what a double generation leaves, and a total that sums them counts the month twice. A batch
    without a tracking id is named by its id. ``batches`` has ``id``, ``ledger_id``, ``start_time`` and ``state``
    (``feedstock`` and ``tracking_id`` where it has them).
    """
    if batches.empty:
        return []
    counted = batches[batches["state"].astype("string").fillna("").str.lower().eq("complete").astype(bool)]
    feedstock = counted["feedstock"] if "feedstock" in counted.columns else pd.Series(pd.NA, index=counted.index)
    tracking = counted["tracking_id"] if "tracking_id" in counted.columns else counted["id"]
    keys = pd.DataFrame({"ledger": counted["ledger_id"].astype(str).to_numpy(),
                         "month": [f"{pd.Timestamp(t):%Y-%m}" for t in counted["start_time"]],
                         "feedstock": feedstock.astype("string").fillna("").to_numpy(),
                         "id": counted["id"].astype(str).to_numpy(),
                         "tracking": [t if isinstance(t, str) else str(i)
                                      for t, i in zip(tracking, counted["id"], strict=True)]})
    found = []
    for (ledger, month, feed), group in keys.groupby(["ledger", "month", "feedstock"], sort=True):
        if len(group) > 1:
            found.append((str(ledger), str(month), feed or None, group["id"].tolist(), group["tracking"].tolist()))
    return found


def balance_exceeds_output(balance: Any, output: Any) -> bool:
    """Whether a batch's (or a sum of batches') ``ledger_balance`` is larger than its output, beyond rounding: a
    balance cannot exceed what was produced, so the API's balance is wrong (an allocation of a negative amount,
    say). False when either is unknown (NA or None)."""
    if balance is None or output is None or pd.isna(balance) or pd.isna(output):
        return False
    return float(balance) > float(output) + 1e-9 * max(1.0, abs(float(output)))

# --- the careful reader ---------------------------------------------------------------------------------


def _batch_row(item: _Item) -> dict[str, Any]:
    out = item.nested("primary_output")
    run = item.nested("model_run")
    # Where the failure text lives differs by endpoint: model_run.error_message (GET /batches, emulator)
    # or error_message on the batch itself (update_inputs' answer). The model run's wins.
    run_error = run.text("error_message") if run else None
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
        "model_run_state": run.text("state") if run else None,
        "model_run_error": run_error if run_error is not None else item.text("error_message"),
        "feedstock": item.joined("feedstocks", empty_as_na=True),
        "output_data_point_id": _first_output_point(run),
    }


def _first_output_point(run: _Item | None) -> str | None:
    points = run.sequence("output_data_points") if run is not None else None
    if run is None or not points or not isinstance(points[0], Mapping):
        return None
    return _Item(points[0], run.index, "batch", prefix="model_run.output_data_points[0].").ident("id")


# --- the fast reader ------------------------------------------------------------------------------------


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
        "model_run_error": errors,  # the model run's error message, else the batch's (see _batch_row)
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
    return _finish_batches(_assembled(data, len(columns["id"]), attrs), ledger_id)


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
