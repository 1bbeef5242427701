"""A scripted loopback HTTP server: the Mangrove API *as documented*, including shapes and faults the emulator
never produces. A test helper, not a test module.

    with PayloadServer() as server:
        server.route("GET", "/ledgers", (200, {"data": [...]}, {}))
        server.route("GET", "/ledgers?page=2", (503, "", {}), (200, {...}, {}))   # query params narrow a route
        server.route("GET", "/ledgers/lgr_x", DROP)                               # close without answering
        server.route("GET", "/batches", stall(5))                                 # accept, then say nothing
        server.route("GET", "/projects/1", drip(20, (200, {...}, {})))            # a valid answer, slowly
        ... connect(token, server.url) ...
        server.requests                                                           # what arrived, in order

A response is ``(status, body, headers)``; ``body`` is bytes, str, or a dict/list sent as JSON (then
``Content-Type: application/json`` unless the headers say otherwise). A response may also be a callable that
takes the ``Received`` request and returns one of the above. The responses of a route are consumed in order
and the last one repeats. Routes are relative to ``url`` (which ends in ``/api/v1``); a route with a query
matches requests that carry at least those parameters, and the most specific matching route wins. A request
no route matches gets a 404 in the documented simple error shape, and is recorded all the same.

Only loopback: the server binds 127.0.0.1 on a free port, serves from a daemon thread, and ``close()`` (or
leaving the ``with`` block) stops it, ends stalled and dripping answers, and closes the listening socket.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, NamedTuple, TypeAlias
from urllib.parse import parse_qsl, urlsplit

API_PREFIX = "/api/v1"

Body: TypeAlias = bytes | str | dict[str, Any] | list[Any]
Response: TypeAlias = tuple[int, Body, dict[str, str]]


class Received(NamedTuple):
    """One request as the server saw it; ``path`` is relative to the API prefix and includes the query."""

    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass(frozen=True)
class Drop:
    """Read the request, then close the connection without answering (an ambiguous failure)."""


@dataclass(frozen=True)
class Stall:
    """Read the request, then say nothing for ``seconds`` (or until the server closes), then hang up."""

    seconds: float


@dataclass(frozen=True)
class Drip:
    """Send ``response`` correctly but slowly: the headers at once, the body at ``bytes_per_second``."""

    bytes_per_second: float
    response: Response


DROP = Drop()
Scripted: TypeAlias = Response | Drop | Stall | Drip | Callable[[Received], "Response | Drop | Stall | Drip"]


def stall(seconds: float) -> Stall:
    return Stall(seconds)


def drip(bytes_per_second: float, response: Response) -> Drip:
    return Drip(bytes_per_second, response)


def drop() -> Drop:
    return DROP


class _Route:
    def __init__(self, method: str, path: str, query: dict[str, str], responses: list[Scripted]) -> None:
        self.method, self.path, self.query, self.responses = method, path, query, responses
        self.used = 0

    def matches(self, method: str, path: str, query: dict[str, str]) -> bool:
        return (method == self.method and path == self.path
                and all(query.get(key) == value for key, value in self.query.items()))

    def next(self) -> Scripted:
        answer = self.responses[min(self.used, len(self.responses) - 1)]
        self.used += 1
        return answer


class PayloadServer:
    """Scripted answers on 127.0.0.1; ``url`` is the API base, ``requests`` what was received."""

    def __init__(self) -> None:
        self._routes: list[_Route] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self.requests: list[Received] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01},
                                        name="payload-server", daemon=True)
        self._thread.start()

    # -- what tests use --------------------------------------------------------------------------------------

    @property
    def origin(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def url(self) -> str:
        return f"{self.origin}{API_PREFIX}"

    def route(self, method: str, path: str, *responses: Scripted) -> PayloadServer:
        """Answer ``method path`` with ``responses`` in order (the last one repeats)."""
        if not responses:
            raise ValueError("a route needs at least one response")
        parts = urlsplit(path)
        relative = parts.path[len(API_PREFIX):] if parts.path.startswith(API_PREFIX + "/") else parts.path
        with self._lock:
            self._routes.append(_Route(method.upper(), relative, dict(parse_qsl(parts.query)), list(responses)))
        return self

    def received(self, method: str | None = None, path: str | None = None) -> list[Received]:
        """The requests received, optionally only those of ``method`` whose path (without query) is ``path``."""
        with self._lock:
            found = list(self.requests)
        return [r for r in found if (method is None or r.method == method.upper())
                and (path is None or r.path.split("?", 1)[0] == path)]

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._thread.join(timeout=5)
        self._server.server_close()

    def __enter__(self) -> PayloadServer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- serving ---------------------------------------------------------------------------------------------

    def _answer_for(self, request: Received) -> Scripted:
        parts = urlsplit(request.path)
        query = dict(parse_qsl(parts.query))
        with self._lock:
            self.requests.append(request)
            candidates = [r for r in self._routes if r.matches(request.method, parts.path, query)]
            if not candidates:
                return (404, {"message": f"No scripted route for {request.method} {parts.path}."}, {})
            best = max(candidates, key=lambda r: len(r.query))
            answer = best.next()
        return answer(request) if callable(answer) else answer

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path[len(API_PREFIX):] if self.path.startswith(API_PREFIX + "/") else self.path
                request = Received(self.command, path, {k.lower(): v for k, v in self.headers.items()}, body)
                answer = server._answer_for(request)
                if isinstance(answer, Drop):
                    self._hang_up()
                elif isinstance(answer, Stall):
                    server._closing.wait(answer.seconds)
                    self._hang_up()
                elif isinstance(answer, Drip):
                    self._send(answer.response, bytes_per_second=answer.bytes_per_second)
                else:
                    self._send(answer)

            do_GET = do_POST = do_DELETE = do_PATCH = do_PUT = _serve

            def _hang_up(self) -> None:
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)

            def _send(self, response: Response, *, bytes_per_second: float | None = None) -> None:
                status, body, headers = response
                names = {k.lower() for k in headers}
                if isinstance(body, dict | list):
                    payload = json.dumps(body).encode()
                    default_type = "application/json"
                else:
                    payload = body.encode() if isinstance(body, str) else body
                    default_type = "text/plain; charset=utf-8"
                self.send_response(status)
                if "content-type" not in names and (payload or isinstance(body, dict | list)):
                    self.send_header("Content-Type", default_type)
                for key, value in headers.items():
                    self.send_header(key, value)
                if "content-length" not in names:
                    self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if bytes_per_second is None:
                    self.wfile.write(payload)
                    return
                self.wfile.flush()
                tick = 0.05
                chunk = max(1, int(bytes_per_second * tick))
                try:
                    for offset in range(0, len(payload), chunk):
                        if server._closing.is_set():
                            self._hang_up()
                            return
                        self.wfile.write(payload[offset:offset + chunk])
                        self.wfile.flush()
                        time.sleep(chunk / bytes_per_second)
                except OSError:
                    self.close_connection = True  # the client gave up reading: fine

        return Handler
