"""The emulator's HTTP routes (Flask), under ``/api/v1``, as mangrove-openapi.yaml documents them.

Every request passes, in order: authentication (401), the rate limit (429), armed faults, then the
route. Every response carries ``RateLimit-Limit``, ``RateLimit-Remaining`` and ``RateLimit-Reset``.
Errors use the documented envelope ``{"status": "error", "statusCode": N, "errors": [{"message": …}]}``
with a message that names what was wrong and what is accepted; an unexpected exception is a 500 with a
generic message (the traceback goes to the console log, never to the client).

Limits on what a request may carry (a 4xx naming the field and the limit, never a 500): a body of at most
1 MiB; ``data_point_ids`` and ``batch_amounts`` of at most ``MAX_LIST_ITEMS`` items,
``skipped_data_point_type_ids`` of at most ``MAX_SKIPPED_TYPES``; ids and allocation groups of at most
``MAX_ID_LENGTH`` characters; list queries as ``listing`` says.

The console log has one line per request: method, path, status and duration. Never the query string (a
client may put a token there), and the path with control characters escaped and cut at 200 characters.

The test-only ``/_emulator/*`` control endpoints (``--enable-control``) need the read-write token: 401
without a valid token, 403 with a read-only one.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import math
import socket
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from . import API, generation, listing, resources
from .backend import ALL_BATCHES, EVENTS, LEDGER_BATCHES, LEDGERS, Backend
from .errors import BadRequest, Forbidden, RequestError, Unprocessable
from .faults import FaultPlan
from .store import iso

log = logging.getLogger("mangrove_nb.emulator")

DEFAULT_RATE_LIMIT = 1000
RATE_WINDOW_SECONDS = 60
# Times the emulator accepts in request bodies: wide enough for any accounting period, narrow enough that
# a range's months can be walked (and converted to UTC) without overflow.
EARLIEST_YEAR, LATEST_YEAR = 1970, 2100
WRITE_OPERATIONS = {"create-batch-generation", "delete-batch", "create-project-ledger"}
# Items in one request's data_point_ids or batch_amounts: far above a quarter of a real project's data points,
# and far below what SQLite or the worker would struggle with.
MAX_LIST_ITEMS = 10_000
# A model has a handful of inputs: this many distinct type ids is already absurd.
MAX_SKIPPED_TYPES = 100
# Friendly ids are a prefix and 12 characters; allocation groups are slugs.
MAX_ID_LENGTH = 255
MAX_LOGGED_PATH = 200
MAX_BODY_BYTES = 1024 * 1024
# Rendered GET answers are kept while the data is unchanged (Backend.version): listing a large ledger
# page by page then costs the emulator little, as a real API's parallel servers would.
RESPONSE_CACHE_SIZE = 512


@dataclass
class Exchange:
    """One answered request, as the contract checker in the tests sees it."""

    method: str
    path: str
    query: str
    status: int
    headers: dict[str, str]
    body: bytes
    injected: bool = False  # answered by an armed fault, not by the route


@dataclass
class EmulatorState:
    """Everything the routes share: the backend, the worker's queue, tokens, limits, faults and counters."""

    backend: Backend
    submit: Callable[[int], None]
    token: str
    read_only_tokens: tuple[str, ...] = ()
    rate_limit: int = DEFAULT_RATE_LIMIT
    control: bool = False
    record: bool = False
    reset: Callable[[], None] | None = None
    faults: FaultPlan = field(default_factory=FaultPlan)
    counts: Counter[str] = field(default_factory=Counter)
    exchanges: list[Exchange] = field(default_factory=list)
    cache: OrderedDict[tuple[str, int], bytes] = field(default_factory=OrderedDict)
    _windows: dict[str, tuple[float, int]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, operation: str) -> None:
        with self._lock:
            self.counts[operation] += 1

    def take_rate(self, key: str) -> tuple[bool, int, int]:
        """Count one request in ``key``'s window: (allowed, remaining, reset as Unix time)."""
        now = time.time()
        with self._lock:
            start, used = self._windows.get(key, (now, 0))
            if now - start >= RATE_WINDOW_SECONDS:
                start, used = now, 0
            allowed = used < self.rate_limit
            used += allowed
            self._windows[key] = (start, used)
        return allowed, max(0, self.rate_limit - used), math.ceil(start + RATE_WINDOW_SECONDS)


def error(status: int, message: str) -> Response:
    body = {"status": "error", "statusCode": status, "errors": [{"message": message}]}
    return Response(json.dumps(body), status=status, mimetype="application/json")


def ok(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status=status, mimetype="application/json")


def create_app(state: EmulatorState) -> Flask:
    app = Flask("mangrove_nb.emulator")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    _install_pipeline(app, state)
    _install_routes(app, state)
    if state.control:
        _install_control(app, state)
    return app


# --- the request pipeline ---------------------------------------------------------------------------------


def _presented_token() -> str | None:
    # HTTP trims only spaces and tabs: a token pasted with a no-break space is a different (wrong) token.
    header = request.headers.get("Authorization", "").strip(" \t")
    if header.lower().startswith("bearer "):
        header = header[7:].strip(" \t")
    return header or None


def _same(presented: str, known: str) -> bool:
    """Constant-time comparison of tokens as bytes (a header may carry any Latin-1 text)."""
    return hmac.compare_digest(presented.encode("utf-8", "surrogateescape"), known.encode("utf-8"))


def _install_pipeline(app: Flask, state: EmulatorState) -> None:
    @app.before_request
    def gatekeeper() -> Response | None:
        g.started = time.perf_counter()
        g.operation = request.endpoint or "unknown"
        token = _presented_token()
        valid = token is not None and any(_same(token, known) for known in (state.token, *state.read_only_tokens))
        g.read_only = valid and not _same(token or "", state.token)
        # The rate limit counts per token; unauthenticated callers share one window per address.
        allowed, g.remaining, g.reset = state.take_rate(f"token:{token}" if valid else f"ip:{request.remote_addr}")
        if request.path.startswith("/_emulator/") and state.control:
            if not valid:
                return error(401, "Missing or invalid API token: send 'Authorization: Bearer <token>'.")
            if g.read_only:
                return error(403, "The /_emulator/ control endpoints (faults, counts, reset) need the read-write "
                                  "token; this token is read-only.")
            return None
        if "%2f" in _raw_path().lower():
            # Werkzeug routes on the decoded path, where an encoded "/" would split an id into two segments (or
            # redirect): ids never contain "/", so such a path names nothing.
            return error(404, f"No resource at {_raw_path()[:200]}: an id cannot contain '/'.")
        state.count(g.operation)
        if not valid:
            return error(401, "Missing or invalid API token: send 'Authorization: Bearer <token>' "
                              "with the token the emulator printed at start.")
        burst = state.faults.take(g.operation, "rate_limit")
        if burst is not None:
            g.remaining, g.reset = 0, math.ceil(time.time() + burst.seconds)
        if burst is not None or not allowed:
            return error(429, f"Rate limit of {state.rate_limit} requests per minute exceeded; the window resets at "
                              f"{datetime.fromtimestamp(g.reset, UTC).isoformat()} (RateLimit-Reset {g.reset}).")
        latency = state.faults.latency(g.operation)
        if latency:
            time.sleep(latency)
        fault = state.faults.take(g.operation, "fail")
        if fault is not None:
            g.injected = True
            return error(fault.status, fault.message or f"Injected fault: HTTP {fault.status}.")
        drop = state.faults.take(g.operation, "drop")
        if drop is not None and not drop.after_commit:
            g.injected = True
            _drop_connection()
            return error(503, "connection dropped")  # never reaches the client
        g.drop_after = drop is not None
        if request.method == "GET" and not g.drop_after:
            g.cache_key = (request.full_path, state.backend.version)
            with state._lock:
                cached = state.cache.get(g.cache_key)
            if cached is not None:
                return Response(cached, status=200, mimetype="application/json")
        return None

    @app.after_request
    def finish(response: Response) -> Response:
        key = g.get("cache_key")
        if key is not None and response.status_code == 200 and key[1] == state.backend.version:
            with state._lock:
                state.cache[key] = response.get_data()
                while len(state.cache) > RESPONSE_CACHE_SIZE:
                    state.cache.popitem(last=False)
        response.headers["RateLimit-Limit"] = str(state.rate_limit)
        response.headers["RateLimit-Remaining"] = str(getattr(g, "remaining", state.rate_limit))
        response.headers["RateLimit-Reset"] = str(getattr(g, "reset", math.ceil(time.time())))
        if getattr(g, "drop_after", False):
            _drop_connection()
        elapsed = (time.perf_counter() - getattr(g, "started", time.perf_counter())) * 1000
        # Never the query string: a client may send a token there (?token=…), and the log is plain text.
        log.info("%s %s %s %.1f ms", request.method, _loggable_path(), response.status_code, elapsed)
        if state.record and not request.path.startswith("/_emulator/"):
            query = request.query_string.decode("latin-1")
            # The path as sent (still percent-encoded), so an id holding %2F stays one segment of its route.
            state.exchanges.append(Exchange(request.method, _raw_path(), query, response.status_code,
                                            dict(response.headers), response.get_data(), g.get("injected", False)))
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        if status == 404:
            return error(404, f"No such endpoint: {request.method} {request.path[:200]}. The emulator serves "
                              f"the paths of mangrove-openapi.yaml under {API}.")
        if status == 405:
            return error(405, f"{request.method} is not allowed on {request.path[:200]}.")
        if status == 413:
            return error(400, "Request body is larger than 1 MiB.")
        return error(status, exc.description or exc.name)

    @app.errorhandler(RequestError)
    def request_error(exc: RequestError) -> Response:
        return error(exc.status, exc.message)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, _loggable_path())
        return error(500, "Internal emulator error; the emulator's console log has the details.")


def _raw_path() -> str:
    """The path as the client sent it, still percent-encoded (Werkzeug's request.path is decoded)."""
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or request.path
    return raw.split("?", 1)[0]


_CONTROL_CHARACTERS = str.maketrans({c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))})


def _loggable_path() -> str:
    """The request's path as sent (percent-encoded), for the log: no query string or fragment, no scheme or
    authority (an absolute-form target may hold user:password@), control characters escaped, cut short."""
    target = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or request.path
    target = target.split("?", 1)[0].split("#", 1)[0]
    if not target.startswith("/") and "://" in target:
        target = "/" + target.split("://", 1)[1].partition("/")[2]
    target = target.translate(_CONTROL_CHARACTERS)
    return target if len(target) <= MAX_LOGGED_PATH else target[:MAX_LOGGED_PATH] + "…"


def _drop_connection() -> None:
    """Close the client's connection with no response (the emulator's "ambiguous failure")."""
    sock = request.environ.get("werkzeug.socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


# --- request bodies ---------------------------------------------------------------------------------------


def _json_body() -> dict[str, Any]:
    raw = request.get_data(cache=True)
    if len(raw) >= MAX_BODY_BYTES and request.content_length is None and request.environ["wsgi.input"].read(1):
        # A chunked body (no Content-Length) is cut at the limit by Werkzeug without a word: what is left proves
        # it was longer. (A body with a Content-Length over the limit is refused before it is read: 413 below.)
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


def _time_range(body: dict[str, Any]) -> tuple[datetime, datetime]:
    start, end = _timestamp(body, "start_time"), _timestamp(body, "end_time")
    if end <= start:
        raise Unprocessable(f"end_time ({iso(end)}) must be after start_time ({iso(start)}).")
    return start, end


def _options(body: dict[str, Any], *, generation_request: bool) -> generation.Options:
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


def _ledger_spec(body: dict[str, Any]) -> tuple[str, str]:
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


# --- routes -----------------------------------------------------------------------------------------------


def _install_routes(app: Flask, state: EmulatorState) -> None:
    backend = state.backend

    def require_write() -> None:
        if g.read_only:
            raise Forbidden("This token is read-only: batch generation needs a token with Production "
                            "Accounting read and write permission.")

    @app.get(f"{API}/ledgers", endpoint="list-all-ledgers")
    def list_ledgers() -> Response:
        rows, info = backend.ledgers(listing.parse(request.args, LEDGERS))
        return ok({"data": [resources.ledger(row) for row in rows], "info": info})

    @app.get(f"{API}/ledgers/<ledger_id>", endpoint="retrieve-ledger")
    def get_ledger(ledger_id: str) -> Response:
        return ok(resources.ledger(backend.ledger(ledger_id)))

    @app.post(f"{API}/projects/<project_id>/ledgers", endpoint="create-project-ledger")
    def create_ledger(project_id: str) -> Response:
        require_write()
        name, unit = _ledger_spec(_json_body())
        return ok(resources.ledger(backend.create_ledger(project_id, name, unit)), 201)

    @app.get(f"{API}/ledgers/<ledger_id>/required_inputs", endpoint="ledger-required-inputs")
    def required_inputs(ledger_id: str) -> Response:
        return ok({"data": resources.required_inputs(backend.required_inputs(ledger_id))})

    @app.post(f"{API}/ledgers/<ledger_id>/generate_preview", endpoint="generate-preview")
    def preview(ledger_id: str) -> Response:
        backend.ledger_with_model(ledger_id)  # an unknown ledger or one without a model, whatever the body
        body = _json_body()
        start, end = _time_range(body)
        options = _options(body, generation_request=False)
        return ok(resources.preview(backend.preview(ledger_id, start, end, options)))

    @app.post(f"{API}/ledgers/<ledger_id>/batch_generations", endpoint="create-batch-generation")
    def generate(ledger_id: str) -> Response:
        require_write()
        backend.ledger_with_model(ledger_id)
        body = _json_body()
        start, end = _time_range(body)
        options = _options(body, generation_request=True)
        task = backend.generate(ledger_id, start, end, options)
        state.submit(task["id"])
        return ok(resources.task(task, accepted=True), 202)

    @app.get(f"{API}/async_tasks/<task_id>", endpoint="retrieve-async-task")
    def get_task(task_id: str) -> Response:
        return ok(resources.task(backend.task(task_id)))

    @app.get(f"{API}/ledgers/<ledger_id>/batches", endpoint="list-all-ledger-batches")
    def ledger_batches(ledger_id: str) -> Response:
        found, info = backend.ledger_batches(ledger_id, listing.parse(request.args, LEDGER_BATCHES))
        return ok({"data": resources.batches(found), "info": info})

    @app.get(f"{API}/batches", endpoint="list-all-batches")
    def all_batches() -> Response:
        found, info = backend.batches(listing.parse(request.args, ALL_BATCHES))
        return ok({"data": resources.batches(found), "info": info})

    @app.get(f"{API}/batches/<batch_id>", endpoint="retrieve-batch")
    def get_batch(batch_id: str) -> Response:
        return ok(resources.batch(backend.batch(batch_id)))

    @app.delete(f"{API}/batches/<batch_id>", endpoint="delete-batch")
    def delete_batch(batch_id: str) -> Response:
        require_write()
        backend.delete_batch(batch_id)
        return Response(status=204)

    @app.get(f"{API}/projects/<project_id>", endpoint="project")
    def get_project(project_id: str) -> Response:
        return ok(resources.project(backend.project(project_id)))

    @app.get(f"{API}/projects/<project_id>/events", endpoint="list-all-events")
    def list_events(project_id: str) -> Response:
        found, info = backend.events(project_id, listing.parse(request.args, EVENTS))
        return ok({"data": resources.events(found), "info": info})


def _install_control(app: Flask, state: EmulatorState) -> None:
    """Test-only endpoints: request counts, faults, reset. Absent unless the emulator enables control."""

    @app.get("/_emulator/stats")
    def stats() -> Response:
        return ok({"counts": dict(state.counts), "faults": state.faults.armed()})

    @app.post("/_emulator/faults")
    def add_fault() -> Response:
        try:
            fault = state.faults.add(_json_body())
        except (TypeError, ValueError) as exc:
            raise BadRequest(f"Bad fault: {exc}.") from None
        return ok(vars(fault), 201)

    @app.delete("/_emulator/faults")
    def clear_faults() -> Response:
        state.faults.clear()
        return Response(status=204)

    @app.post("/_emulator/reset")
    def reset() -> Response:
        if state.reset is not None:
            state.reset()
        return Response(status=204)
