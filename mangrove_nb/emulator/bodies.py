"""Request bodies: JSON objects, times, generation options, a new ledger and a report's update, parsed and checked.

Each function reads the request's JSON (``json_body``) or a part of it and returns what the backend takes, or
raises ``BadRequest`` (400: not a JSON object of valid UTF-8, over 1 MiB) or ``Unprocessable`` (422: a field
missing, of the wrong type, out of range or too long) with a message that names the field and what is
accepted. Limits on what a body may carry (a 4xx naming the field and the limit, never a 500): a body of at
most ``MAX_BODY_BYTES``; ``data_point_ids`` and ``batch_amounts`` of at most ``MAX_LIST_ITEMS`` items,
``skipped_data_point_type_ids`` of at most ``MAX_SKIPPED_TYPES``; a report's ``batch_ids`` of at most
``MAX_LIST_ITEMS``; ids and allocation groups of at most ``MAX_ID_LENGTH`` characters; names of at most
``MAX_NAME_LENGTH``; times from ``EARLIEST_YEAR`` to ``LATEST_YEAR``. A name is data: any text (markup and
control characters included) is kept as sent.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

from flask import request

from . import generation
from .errors import BadRequest, Unprocessable
from .store import iso

# Times the emulator accepts in request bodies: wide enough for any accounting period, narrow enough that
# a range's months can be walked (and converted to UTC) without overflow.
EARLIEST_YEAR, LATEST_YEAR = 1970, 2100
# Items in one request's data_point_ids or batch_amounts: far above a quarter of a real project's data points,
# and far below what SQLite or the worker would struggle with.
MAX_LIST_ITEMS = 10_000
# A model has a handful of inputs: this many distinct type ids is already absurd.
MAX_SKIPPED_TYPES = 100
# Friendly ids are a prefix and 12 characters; allocation groups are slugs.
MAX_ID_LENGTH = 255
MAX_NAME_LENGTH = 255
MAX_BODY_BYTES = 1024 * 1024


def json_body() -> dict[str, Any]:
    """The request's body: a JSON object of valid Unicode, at most 1 MiB."""
    raw = request.get_data(cache=True)
    if len(raw) >= MAX_BODY_BYTES and request.content_length is None and request.environ["wsgi.input"].read(1):
        # A chunked body (no Content-Length) is cut at the limit by Werkzeug without a word: what is left proves
        # it was longer. (A body with a Content-Length over the limit is refused before it is read: ``pipeline``'s
        # 413 handler.)
        raise BadRequest("Request body is larger than 1 MiB.")
    if not raw.strip():
        raise BadRequest("Request body is empty; send a JSON object, e.g. "
                         '{"start_time": "2025-01-01T00:00:00Z", "end_time": "2025-03-31T23:59:59Z"}.')
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("Request body is not valid JSON; send a JSON object.") from None
    except RecursionError:
        raise BadRequest("Request body is nested too deeply; send a flat JSON object.") from None
    if not isinstance(body, dict):
        raise BadRequest(f"Request body must be a JSON object, not {type(body).__name__}.")
    try:
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest("Request body holds invalid Unicode (an unpaired surrogate escape such as "
                         "\\ud800); send valid UTF-8 text.") from None
    return body


def _timestamp(body: dict[str, Any], name: str) -> datetime:
    value = body.get(name)
    if value is None:
        raise Unprocessable(f"{name} is required: an ISO 8601 UTC time such as 2025-01-01T00:00:00Z.")
    if not isinstance(value, str):
        raise Unprocessable(f"{name} must be a string such as 2025-01-01T00:00:00Z, not {type(value).__name__}.")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is None or "T" not in value or moment.tzinfo is None:
        raise Unprocessable(f"{name} {value[:40]!r} is not an ISO 8601 time with a time zone; "
                            "use the form 2025-01-01T00:00:00Z (milliseconds optional).")
    if not EARLIEST_YEAR <= moment.year <= LATEST_YEAR:
        raise Unprocessable(f"{name} {value[:40]!r} is out of range; the emulator accepts times from "
                            f"{EARLIEST_YEAR} to {LATEST_YEAR}.")
    return moment.astimezone(UTC)


def time_range(body: dict[str, Any]) -> tuple[datetime, datetime]:
    start, end = _timestamp(body, "start_time"), _timestamp(body, "end_time")
    if end <= start:
        raise Unprocessable(f"end_time ({iso(end)}) must be after start_time ({iso(start)}).")
    return start, end


def generation_options(body: dict[str, Any], *, generation_request: bool) -> generation.Options:
    allowed = {"start_time", "end_time", "data_point_ids"}
    if generation_request:
        allowed |= {"batch_amounts", "skipped_data_point_type_ids"}
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise Unprocessable(f"Unknown field(s) {', '.join(u[:40] for u in unknown[:5])}; accepted fields: "
                            f"{', '.join(sorted(allowed))}.")
    ids = body.get("data_point_ids")
    if ids is not None and not isinstance(ids, list):
        raise Unprocessable("data_point_ids must be an array of data point id strings, e.g. [\"in_abc123\"].")
    _at_most(ids or [], MAX_LIST_ITEMS, "data_point_ids", "ids; split the period into shorter requests")
    for index, item in enumerate(ids or []):
        if not isinstance(item, str):
            raise Unprocessable(f"data_point_ids[{index}] must be a data point id string such as \"in_abc123\", "
                                f"not {_json_type(item)}.")
        _short(item, f"data_point_ids[{index}]")
    skipped = body.get("skipped_data_point_type_ids", [])
    if not isinstance(skipped, list):
        raise Unprocessable("skipped_data_point_type_ids must be an array of integer data point type ids.")
    _at_most(skipped, MAX_SKIPPED_TYPES, "skipped_data_point_type_ids", "type ids (a model has a handful of inputs)")
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in skipped):
        raise Unprocessable("skipped_data_point_type_ids must be an array of integer data point type ids.")
    amounts = body.get("batch_amounts", [])
    if not isinstance(amounts, list):
        raise Unprocessable("batch_amounts must be an array of {batch_id, primary_output_amount, "
                            "allocation_group} objects.")
    _at_most(amounts, MAX_LIST_ITEMS, "batch_amounts", "items; split the period into shorter requests")
    return generation.Options(
        data_point_ids=tuple(ids) if ids is not None else None,
        batch_amounts=tuple(_batch_amount(n, a) for n, a in enumerate(amounts)),
        skipped_type_ids=tuple(dict.fromkeys(skipped)),  # a type named twice is skipped once
    )


def _at_most(items: list[Any], limit: int, name: str, what: str) -> None:
    if len(items) > limit:
        raise Unprocessable(f"{name} is too long: {len(items):,} items; the emulator accepts at most "
                            f"{limit:,} {what}.")


def _short(text: str, name: str) -> None:
    if len(text) > MAX_ID_LENGTH:
        raise Unprocessable(f"{name} is too long: {len(text):,} characters; at most {MAX_ID_LENGTH}.")


def _json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _finite(number: float) -> bool:
    try:
        return math.isfinite(float(number))
    except OverflowError:  # an integer literal too large for a float
        return False


def _batch_amount(index: int, item: Any) -> generation.BatchAmount:
    where = f"batch_amounts[{index}]"
    if not isinstance(item, dict) or not isinstance(item.get("batch_id"), str):
        raise Unprocessable(f"{where} must be an object with a batch_id string.")
    _short(item["batch_id"], f"{where}.batch_id")
    extra = set(item) - {"batch_id", "primary_output_amount", "allocation_group"}
    if extra:
        raise Unprocessable(f"{where}: unknown field(s) {', '.join(sorted(extra))[:80]}; accepted: batch_id, "
                            "primary_output_amount, allocation_group.")
    amount = item.get("primary_output_amount")
    if amount is not None and (isinstance(amount, bool) or not isinstance(amount, int | float)
                               or not _finite(amount)):
        raise Unprocessable(f"{where}.primary_output_amount must be a finite number such as 12.5.")
    group = item.get("allocation_group")
    if group is not None and not isinstance(group, str):
        raise Unprocessable(f"{where}.allocation_group must be a string or null.")
    if group is not None:
        _short(group, f"{where}.allocation_group")
    return generation.BatchAmount(item["batch_id"], float(amount) if amount is not None else None, group)


def ledger_spec(body: dict[str, Any]) -> tuple[str, str]:
    """The name and unit of a ledger to create, from ``{"ledger": {"name": …, "unit": …}}``."""
    spec = body.get("ledger")
    if not isinstance(spec, dict):
        raise Unprocessable('Body must be {"ledger": {"name": "...", "unit": "..."}}.')
    name, unit = spec.get("name"), spec.get("unit")
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise Unprocessable("ledger.name is required: a non-empty string of at most 255 characters.")
    if not isinstance(unit, str) or not unit.strip() or len(unit) > 50:
        raise Unprocessable("ledger.unit is required: a non-empty string such as \"t\".")
    return name, unit


def report_update(body: dict[str, Any]) -> tuple[str | None, list[str] | None]:
    """The new name and batch ids (each None when absent) from ``{"report": {"name": …, "batch_ids": […]}}``."""
    spec = body.get("report")
    shape = 'Body must be {"report": {"name": "...", "batch_ids": ["bat_..."]}} (either key, or both).'
    if not isinstance(spec, dict) or set(body) != {"report"}:
        raise Unprocessable(shape)
    unknown = sorted(set(spec) - {"name", "batch_ids"})
    if unknown:
        raise Unprocessable(f"report: unknown field(s) {', '.join(u[:40] for u in unknown[:5])}; accepted fields: "
                            "name, batch_ids.")
    if not spec:
        raise Unprocessable(shape)
    name = spec.get("name")
    if "name" in spec and (not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_LENGTH):
        raise Unprocessable(f"report.name must be a non-empty string of at most {MAX_NAME_LENGTH} characters.")
    ids = spec.get("batch_ids")
    if "batch_ids" in spec and not isinstance(ids, list):
        raise Unprocessable('report.batch_ids must be an array of batch id strings, e.g. ["bat_abc123"] ([] empties '
                            "the report).")
    _at_most(ids or [], MAX_LIST_ITEMS, "report.batch_ids", "ids")
    for index, item in enumerate(ids or []):
        if not isinstance(item, str):
            raise Unprocessable(f"report.batch_ids[{index}] must be a batch id string such as \"bat_abc123\", "
                                f"not {_json_type(item)}.")
        _short(item, f"report.batch_ids[{index}]")
    return name, ids
