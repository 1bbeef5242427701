"""List endpoints' query syntax: ``page``, ``page_size``, ``sort=a,-b`` and ``filter[field][eq]=value``.

Each list endpoint is a ``Collection`` the backend declares: its rows' SELECT and the fields it sorts and filters
on (as SQL expressions). The routes ``parse`` a query string against it (anything else is a 400 that names the
parameter and lists what is accepted); the backend ``run``s the parsed query. ``page_size`` is capped at
``MAX_PAGE_SIZE`` (the documented maximum is unknown; mangrove-api.md records this decision). A sort field may
appear once (so an ``ORDER BY`` never outgrows SQLite's limit on its terms), and a filter value is at most
``MAX_FILTER_LENGTH`` characters.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import BadRequest

DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 100
MAX_FILTER_LENGTH = 255
_FILTER = re.compile(r"^filter\[([^\]]*)\]\[([^\]]*)\]$")


def sql_integer(text: str) -> int:
    """An integer filter value that SQLite can hold (64-bit); ValueError otherwise."""
    value = int(text)
    if not -(2**63) <= value < 2**63:
        raise ValueError(text)
    return value


@dataclass(frozen=True)
class Filterable:
    """A filter field: its SQL expression and how to turn the query string value into a parameter."""

    sql: str
    convert: Callable[[str], Any] = str


@dataclass(frozen=True)
class Collection:
    """One list endpoint's rows: what it selects, the fields it sorts and filters on, and its default order."""

    select: str
    sortable: Mapping[str, str]  # query name -> SQL expression
    filterable: Mapping[str, Filterable]
    default_sort: str  # SQL, when the query names no sort
    tiebreak: str  # SQL, always last: a stable order across pages


@dataclass
class ListQuery:
    page: int = 1
    page_size: int = DEFAULT_PAGE_SIZE
    sort: list[tuple[str, bool]] = field(default_factory=list)
    filters: list[tuple[str, str, Any]] = field(default_factory=list)
    raw_sort: list[str] = field(default_factory=list)


def _positive_int(args: Mapping[str, str], name: str, default: int, maximum: int | None) -> int:
    raw = args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1 or (maximum is not None and value > maximum):
        accepted = f"an integer from 1 to {maximum}" if maximum else "an integer of 1 or more"
        raise BadRequest(f"{name} must be {accepted}; got {raw[:40]!r}")
    return value


def parse(args: Mapping[str, str], collection: Collection) -> ListQuery:
    """Validate a list endpoint's query string; raises ``BadRequest`` (400) naming the bad parameter."""
    sortable, filterable = collection.sortable, collection.filterable
    query = ListQuery(
        page=_positive_int(args, "page", 1, None),
        page_size=_positive_int(args, "page_size", DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE),
    )
    mode = args.get("response_mode", "default")
    if mode != "default":
        raise BadRequest(f"response_mode={mode[:40]!r} is not available in the emulator; "
                         "leave it out for the standard paginated response")
    for part in (p.strip() for p in args.get("sort", "").split(",")):
        if not part:
            continue
        name = part.lstrip("-")
        if name not in sortable:
            raise BadRequest(f"sort: unknown field {name[:40]!r}; sortable fields are "
                             f"{', '.join(sortable)} (prefix - for descending)")
        if any(name == seen for seen, _desc in query.sort):
            raise BadRequest(f"sort: {name} appears more than once; name each field at most once")
        query.sort.append((name, part.startswith("-")))
        query.raw_sort.append(part)
    for key, value in args.items():
        match = _FILTER.match(key)
        if not match:
            if key.startswith("filter"):
                raise BadRequest(f"{key[:60]!r} is not a filter; write filter[<field>][eq]=<value>")
            continue
        name, operator = match.groups()
        if name not in filterable:
            raise BadRequest(f"filter: unknown field {name[:40]!r}; filterable fields are "
                             f"{', '.join(filterable)}")
        if operator != "eq":
            raise BadRequest(f"filter[{name}]: unknown operator {operator[:20]!r}; the accepted operator is eq")
        if len(value) > MAX_FILTER_LENGTH:
            raise BadRequest(f"filter[{name}][eq] is too long: {len(value):,} characters; at most "
                             f"{MAX_FILTER_LENGTH}")
        try:
            converted = filterable[name].convert(value)
        except ValueError:
            raise BadRequest(f"filter[{name}][eq] must be a 64-bit integer; got {value[:40]!r}") from None
        query.filters.append((name, operator, converted))
    return query


def run(conn: sqlite3.Connection, collection: Collection, where: Sequence[str], params: Sequence[Any],
        query: ListQuery) -> tuple[list[sqlite3.Row], dict[str, Any]]:
    """One page of the collection, within ``where``, with the query's filters and sort, and the ``info`` block."""
    select = collection.select
    clauses, values = list(where), list(params)
    for name, _op, value in query.filters:
        clauses.append(f"{collection.filterable[name].sql} = ?")
        values.append(value)
    where_sql = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    total = conn.execute(f"SELECT COUNT(*) FROM ({select}{where_sql})", values).fetchone()[0]
    order = [f"{collection.sortable[name]} {'DESC' if desc else 'ASC'}" for name, desc in query.sort]
    order = order or [collection.default_sort]
    order.append(collection.tiebreak)
    total_pages = max(1, -(-total // query.page_size))
    if query.page > total_pages:
        raise BadRequest(f"page {query.page} is past the last page ({total_pages}) of {total} item(s) "
                         f"at page_size {query.page_size}")
    rows = conn.execute(
        f"{select}{where_sql} ORDER BY {', '.join(order)} LIMIT ? OFFSET ?",
        [*values, query.page_size, (query.page - 1) * query.page_size],
    ).fetchall()
    info = {
        "items": len(rows),
        "page_size": query.page_size,
        "total_items": total,
        "current_page": query.page,
        "next_page": query.page + 1 if query.page < total_pages else None,
        "previous_page": query.page - 1 if query.page > 1 else None,
        "total_pages": total_pages,
        "sort": query.raw_sort,
        "filter": [{"field": name, "operator": op, "value": value} for name, op, value in query.filters],
    }
    return rows, info
