"""A hostile Mangrove API on loopback: it answers with bytes, not with a framework, so it can misbehave in
every way a real network, gateway or server can after the request has arrived. A test helper, not a test.

    with HostileServer() as server:
        server.on("POST", "/ledgers/lgr_h/batch_generations", cut(202, {"id": 7, "state": "pending"}))
        client = mnb.connect(TOKEN, server.url, ...)
        ...
        server.count("POST", "/batch_generations")          # what arrived, counted on the server side

Out of the box it serves the documented happy path for one ledger, ``lgr_h`` (``HAPPY``): the ledger with a
model, no required inputs, a preview of 3 batches, a task that stays ``running``, and empty batch listings.
``on(method, path, *behaviours)`` replaces a route (path without query, relative to ``/api/v1``); behaviours
are used in order and the last one repeats. A behaviour writes a whole answer, or part of one, to the socket:

- ``answer(status, body, headers)``: a well-formed answer;
- ``cut(status, body, keep=0.5)``: the head announces the whole body, part of it comes, the connection closes;
- ``stall(status, body, seconds, keep=0.5)``: the head and part of the body, then silence;
- ``bad_gzip(status)``: ``Content-Encoding: gzip`` over bytes that are not gzip;
- ``bad_chunks(status)``: ``Transfer-Encoding: chunked`` with a chunk size that is not hex;
- ``redirect(status, location)``: a 3xx with ``Location``;
- ``echo_auth(status)``: an error body that quotes the request's Authorization header back, raw, percent-encoded,
  base64-encoded and inside HTML, as a careless gateway does;
- ``rate_limited(reset_in)``: a 429 whose ``RateLimit-Reset`` is ``reset_in`` seconds from now (0 or negative:
  now or already past).

Only loopback: it binds 127.0.0.1 on a free port; ``close()`` ends stalled answers and the listening socket.
"""

from __future__ import annotations

import base64
import contextlib
import html
import json
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, NamedTuple, TypeAlias
from urllib.parse import quote, urlsplit

API_PREFIX = "/api/v1"
LEDGER = "lgr_h"


class Request(NamedTuple):
    method: str
    path: str  # relative to the API prefix, without the query
    query: str
    headers: dict[str, str]  # lower-cased names
    body: bytes


Behaviour: TypeAlias = Callable[[socket.socket, Request, threading.Event], None]


def _head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} Whatever"] + [f"{k}: {v}" for k, v in headers.items()] + ["Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _bytes(body: Any) -> tuple[bytes, dict[str, str]]:
    if isinstance(body, bytes):
        return body, {}
    if isinstance(body, str):
        return body.encode(), {"Content-Type": "text/html"}
    return json.dumps(body).encode(), {"Content-Type": "application/json"}


def answer(status: int, body: Any = b"", headers: dict[str, str] | None = None) -> Behaviour:
    def send(conn: socket.socket, _request: Request, _closing: threading.Event) -> None:
        data, kind = _bytes(body)
        conn.sendall(_head(status, {**kind, "Content-Length": str(len(data)), **(headers or {})}) + data)
    return send


def cut(status: int, body: Any, keep: float = 0.5) -> Behaviour:
    def send(conn: socket.socket, _request: Request, _closing: threading.Event) -> None:
        data, kind = _bytes(body)
        conn.sendall(_head(status, {**kind, "Content-Length": str(len(data))}) + data[: int(len(data) * keep)])
    return send


def stall(status: int, body: Any, seconds: float, keep: float = 0.5) -> Behaviour:
    def send(conn: socket.socket, _request: Request, closing: threading.Event) -> None:
        data, kind = _bytes(body)
        conn.sendall(_head(status, {**kind, "Content-Length": str(len(data))}) + data[: int(len(data) * keep)])
        closing.wait(seconds)
    return send


def bad_gzip(status: int) -> Behaviour:
    def send(conn: socket.socket, _request: Request, _closing: threading.Event) -> None:
        data = b"this is not gzip at all, but says it is" * 4
        conn.sendall(_head(status, {"Content-Type": "application/json", "Content-Encoding": "gzip",
                                    "Content-Length": str(len(data))}) + data)
    return send


def bad_chunks(status: int) -> Behaviour:
    def send(conn: socket.socket, _request: Request, _closing: threading.Event) -> None:
        conn.sendall(_head(status, {"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
                     + b'5\r\n{"id"\r\nzz-not-hex\r\n:7}\r\n0\r\n\r\n')
    return send


def redirect(status: int, location: str) -> Behaviour:
    return answer(status, b"", {"Location": location})


def echo_auth(status: int) -> Behaviour:
    def send(conn: socket.socket, request: Request, closing: threading.Event) -> None:
        header = request.headers.get("authorization", "")
        token = header.removeprefix("Bearer ")
        said = (f"Invalid header Authorization: {header}; token {token} (escaped {quote(token, safe='')}, "
                f"base64 {base64.b64encode(token.encode()).decode()}, header base64 "
                f"{base64.b64encode(header.encode()).decode()})")
        body = {"errors": [{"message": said}, {"message": f"<b>{html.escape(header)}</b>"}], "message": said}
        answer(status, body)(conn, request, closing)
    return send


def rate_limited(reset_in: float) -> Behaviour:
    def send(conn: socket.socket, request: Request, closing: threading.Event) -> None:
        reset = int(time.time() + reset_in)
        answer(429, {"message": "Too many requests"},
               {"RateLimit-Limit": "1000", "RateLimit-Remaining": "0", "RateLimit-Reset": str(reset)}
               )(conn, request, closing)
    return send


HAPPY: dict[tuple[str, str], Behaviour] = {
    ("GET", "/ledgers"): answer(200, {"data": [{"id": LEDGER, "name": "Hostile", "unit": "t",
                                                "latest_model": {"id": 1, "name": "M"}}]}),
    ("GET", f"/ledgers/{LEDGER}"): answer(200, {"id": LEDGER, "name": "Hostile", "unit": "t",
                                                "latest_model": {"id": 1, "name": "M"}}),
    ("GET", f"/ledgers/{LEDGER}/required_inputs"): answer(200, {"data": []}),
    ("POST", f"/ledgers/{LEDGER}/generate_preview"): answer(200, {"data": [{"id": LEDGER, "name": "Hostile",
                                                                            "count": 3}]}),
    ("POST", f"/ledgers/{LEDGER}/batch_generations"): answer(202, {"id": 7, "state": "pending", "progress": 0}),
    ("GET", f"/ledgers/{LEDGER}/batches"): answer(200, {"data": []}),
}


def running_task(task_id: int | str) -> Behaviour:
    return answer(200, {"id": task_id, "state": "running", "progress": 10, "started_at": None})


class HostileServer:
    def __init__(self) -> None:
        self._routes: dict[tuple[str, str], list[Behaviour]] = {k: [v] for k, v in HAPPY.items()}
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True, name="hostile-accept")
        self._acceptor.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{API_PREFIX}"

    def on(self, method: str, path: str, *behaviours: Behaviour) -> HostileServer:
        with self._lock:
            self._routes[(method.upper(), path)] = list(behaviours)
        return self

    def count(self, method: str, path_part: str = "") -> int:
        with self._lock:
            return sum(1 for r in self.requests if r.method == method and path_part in r.path)

    def close(self) -> None:
        self._closing.set()
        self._acceptor.join(2)
        for thread in self._threads:
            thread.join(2)
        self._listener.close()

    def __enter__(self) -> HostileServer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                conn, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True, name="hostile-conn")
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            request = _read_request(conn)
            if request is None:
                return
            with self._lock:
                self.requests.append(request)
                queue = self._routes.get((request.method, request.path))
                if queue is None and request.path.startswith("/async_tasks/"):
                    behaviour: Behaviour = running_task(request.path.rsplit("/", 1)[1])
                elif queue is None:
                    behaviour = answer(404, {"message": f"No route {request.method} {request.path}"})
                else:
                    behaviour = queue.pop(0) if len(queue) > 1 else queue[0]
            with contextlib.suppress(OSError):
                behaviour(conn, request, self._closing)


def _read_request(conn: socket.socket) -> Request | None:
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or 0)
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            body += chunk
    except (OSError, ValueError):
        return None
    parts = urlsplit(target)
    path = parts.path.removeprefix(API_PREFIX) if parts.path.startswith(API_PREFIX) else parts.path
    return Request(method, path, parts.query, headers, body)
