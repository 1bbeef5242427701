"""What every request to the emulator passes, before and after its route (Flask hooks), and its envelope.

In order: authentication (401), the rate limit (429), armed faults (``faults``: a delay, an injected error, a
dropped connection), the response cache, then the route (``app``). Every response carries ``RateLimit-Limit``,
``RateLimit-Remaining`` and ``RateLimit-Reset``. Errors use the documented envelope ``{"status": "error",
"statusCode": N, "errors": [{"message": …}]}``: a refusal raised anywhere (``errors``) with its own status and
message (or messages, one item each), Werkzeug's own 404/405/413 reworded, and an unexpected exception as a 500
with a generic message (the traceback goes to the console log, never to the client).

A GET answer is cached, by its path and query, while the backend's data is unchanged (``Backend.version``).

The console log has one line per request: method, path, status and duration. Never the query string (a
client may put a token there), and the path with control characters escaped and cut at 200 characters.

The test-only ``/_emulator/*`` control endpoints (``--enable-control``) need the read-write token: 401
without a valid token, 403 with a read-only one.

The state here is the HTTP side's own: tokens, rate-limit windows, request counts per operation, armed faults,
recorded exchanges and the response cache (``EmulatorState``); the API's data is the backend's (``backend``).
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

from . import API
from .backend import Backend
from .errors import Forbidden, RequestError
from .faults import FaultPlan

log = logging.getLogger("mangrove_nb.emulator")

DEFAULT_RATE_LIMIT = 1000
RATE_WINDOW_SECONDS = 60
MAX_LOGGED_PATH = 200
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


def error(status: int, message: str, *more: str) -> Response:
    body = {"status": "error", "statusCode": status, "errors": [{"message": m} for m in (message, *more)]}
    return Response(json.dumps(body), status=status, mimetype="application/json")


def ok(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status=status, mimetype="application/json")


def require_write() -> None:
    """Refuse (403) a write with a read-only token: the first thing a write route does."""
    if g.read_only:
        raise Forbidden("This token is read-only: writes (batch generation, report updates and submissions) need "
                        "a token with Production Accounting read and write permission.")


def _presented_token() -> str | None:
    # HTTP trims only spaces and tabs: a token pasted with a no-break space is a different (wrong) token.
    header = request.headers.get("Authorization", "").strip(" \t")
    if header.lower().startswith("bearer "):
        header = header[7:].strip(" \t")
    return header or None


def _same(presented: str, known: str) -> bool:
    """Constant-time comparison of tokens as bytes (a header may carry any Latin-1 text)."""
    return hmac.compare_digest(presented.encode("utf-8", "surrogateescape"), known.encode("utf-8"))


def install(app: Flask, state: EmulatorState) -> None:
    """The hooks every request passes, before and after its route, and the error handlers."""

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
        return error(exc.status, *exc.messages)

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
