"""Serving the emulator: real HTTP on loopback (Werkzeug's threaded server), in a thread or in the foreground."""

from __future__ import annotations

import json
import logging
import secrets
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from . import API, DEFAULT_HOST
from .app import create_app
from .backend import Backend
from .faults import FaultPlan
from .pipeline import DEFAULT_RATE_LIMIT, EmulatorState, Exchange
from .store import Store
from .worker import DEFAULT_BATCH_SECONDS, DEFAULT_PICKUP_SECONDS, Worker

log = logging.getLogger("mangrove_nb.emulator")


# What the HTTP server answers, before the app sees a request it cannot parse (http.server's send_error), by
# http.server's status. An HTTP version past 1.x is the client's error like any malformed request line: a 400
# (the contract's status table has no 505), whose message says which version to send.
_UNPARSED = {
    400: (400, "Malformed HTTP request line: send e.g. 'GET /api/v1/ledgers HTTP/1.1'."),
    414: (414, "Request line longer than 64 KiB: shorten the URL (fewer or shorter query parameters)."),
    431: (431, "Request header fields too large or too many: send at most 100 headers of at most 64 KiB each."),
    505: (400, "HTTP version not supported: send HTTP/1.1 or HTTP/1.0."),
}


class _QuietHandler(WSGIRequestHandler):
    """Werkzeug's handler without its own access log: the app logs each request once, its own way.

    A request the HTTP server refuses before the app sees it (request line over 64 KiB, headers too large, a
    malformed request line) gets the API's JSON error envelope instead of http.server's HTML page, and its log
    line never holds the request line (http.server would log it, query string and any token in it included).
    """

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        status, text = _UNPARSED.get(int(code), _UNPARSED[400])
        log.warning("refused an unreadable request from %s: HTTP %d", self.client_address[0], status)
        body = json.dumps({"status": "error", "statusCode": status, "errors": [{"message": text}]}).encode()
        # A request line that did not parse leaves http.server at HTTP/0.9, which has no status line or headers.
        self.request_version = "HTTP/1.1"
        self.send_response(status)
        self.send_header("Connection", "close")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.close_connection = True
        if getattr(self, "command", "") != "HEAD":
            self.wfile.write(body)


def _bind(host: str, port: int, app: Any) -> BaseWSGIServer:
    """Werkzeug's threaded server; a port in use is an OSError here (Werkzeug itself would exit)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    try:
        # Werkzeug duplicates the descriptor (socket.fromfd), so ours is closed either way.
        return make_server(host, sock.getsockname()[1], app, threaded=True, request_handler=_QuietHandler,
                           fd=sock.fileno())
    finally:
        sock.close()


def new_token() -> str:
    return f"mgv_emu_{secrets.token_urlsafe(24)}"


class Emulator:
    """A local Mangrove API with seeded data; use as a context manager or ``start()``/``stop()``.

    ``port=0`` picks a free port; ``url`` is the API base (``http://127.0.0.1:PORT/api/v1``) and ``token``
    the token it accepts (made up when not given). ``db=None`` keeps the state in memory; a path keeps it
    in a SQLite file that survives restarts. ``batch_seconds``/``pickup_seconds`` set the generation
    speed. ``control=True`` exposes the test-only ``/_emulator/*`` endpoints (fault injection, counters,
    reset) — never in demo mode. ``record=True`` keeps every exchange for contract checks.
    """

    def __init__(
        self,
        *,
        host: str = DEFAULT_HOST,
        port: int = 0,
        token: str | None = None,
        read_only_tokens: tuple[str, ...] = (),
        db: str | None = None,
        batch_seconds: float = DEFAULT_BATCH_SECONDS,
        pickup_seconds: float = DEFAULT_PICKUP_SECONDS,
        rate_limit: int = DEFAULT_RATE_LIMIT,
        control: bool = False,
        record: bool = False,
        worker_threads: int = 2,
    ) -> None:
        self.host = host
        self.token = token or new_token()
        self.backend = Backend(db)
        self.worker = Worker(self.backend, batch_seconds=batch_seconds, pickup_seconds=pickup_seconds,
                             threads=worker_threads)
        self.state = EmulatorState(
            backend=self.backend, submit=self.worker.submit, token=self.token, read_only_tokens=read_only_tokens,
            rate_limit=rate_limit, control=control, record=record, reset=self.reset,
        )
        self.app = create_app(self.state)
        try:
            self._server = _bind(host, port, self.app)
        except BaseException:
            self.backend.close()  # the caller gets the OSError (port in use) and nothing stays open
            raise
        self.port = int(self._server.server_address[1])
        self._thread: threading.Thread | None = None
        self._stopped = False

    # -- what callers use --------------------------------------------------------------------------------------

    @property
    def root_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def url(self) -> str:
        """The API base URL, to use as ``MANGROVE_API_URL``."""
        return f"{self.root_url}{API}"

    @property
    def project_id(self) -> int:
        """The seeded project's id, to use as ``MANGROVE_PROJECT_ID`` (``mnb.connect(..., project_id=...)``)."""
        from .seed import PROJECT_ID

        return PROJECT_ID

    @property
    def store(self) -> Store:
        """The SQLite store behind the backend (tests read it, or bend its limits)."""
        return self.backend.store

    @property
    def faults(self) -> FaultPlan:
        return self.state.faults

    @property
    def exchanges(self) -> list[Exchange]:
        return self.state.exchanges

    def count(self, operation: str) -> int:
        """How many requests for ``operation`` (an OpenAPI operationId) passed authentication."""
        return self.state.counts[operation]

    def reset(self) -> None:
        """Back to the seeded state: data, counters and faults (tasks in flight are abandoned)."""
        self.backend.reset()
        self.state.counts.clear()
        self.state.faults.clear()

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> Emulator:
        """Serve from a background thread; a second call does nothing (``with Emulator().start() as emu:``)."""
        if self._thread is not None:
            return self
        if self._stopped:
            raise RuntimeError("This emulator was stopped and cannot serve again; create a new Emulator.")
        self.worker.start()
        self._thread = threading.Thread(target=self._server.serve_forever, name="mangrove-emulator-http",
                                        kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        log.info("Mangrove emulator serving %s", self.url)
        return self

    def serve_forever(self) -> None:
        """Serve in the foreground until KeyboardInterrupt (the CLI)."""
        self.worker.start()
        try:
            self._server.serve_forever(poll_interval=0.2)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def stop(self) -> None:
        self._stopped = True
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()
        self.worker.stop()
        self.backend.close()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<Emulator {self.url} db={self.store.path or ':memory:'}>"


@contextmanager
def running(**options: Any) -> Iterator[Emulator]:
    """Start an emulator on a free loopback port for the duration of a ``with`` block."""
    with Emulator(**options) as emulator:
        yield emulator
