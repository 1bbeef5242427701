"""A small loopback TCP proxy in front of an emulator, for the transport faults the emulator cannot fake.

Each client connection carries one request: the proxy reads it, forwards it upstream on a fresh connection
with ``Connection: close`` and answers with ``Connection: close`` too, so a connection is a request and a
fault armed for "the next matching request" hits exactly that request. Faults, consumed in order:

* ``refuse(count)``: the next connections are reset (RST, ``SO_LINGER`` 0) before anything is read.
* ``reset(method, path_part, count)``: the matching request is forwarded, the emulator's answer is read in
  full (so the emulator certainly received and handled it), then the client connection is reset.
* ``stall(method, path_part, seconds)``: forwarded, answer read, nothing sent back for ``seconds``.
* ``drip(method, path_part, bytes_per_second, head=False)``: the answer's body (``head=True``: status line and
  headers too) is sent back that slowly.

Loopback only, daemon threads, a bounded number of live connections; ``close()`` stops everything.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

MAX_CONNECTIONS = 64
MAX_HEAD = 64 * 1024
IO_TIMEOUT = 30.0


@dataclass
class _Rule:
    kind: str
    method: str
    path_part: str
    count: int
    value: float = 0.0

    def matches(self, method: str, path: str) -> bool:
        return self.method in ("*", method) and self.path_part in path


def _reset(sock: socket.socket) -> None:
    """Close with RST instead of FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _read_message(sock: socket.socket) -> bytes:
    """One HTTP request (head and Content-Length body) from ``sock``; b"" when the peer closed first."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return b""
        data += chunk
        if len(data) > MAX_HEAD:
            raise ValueError("request head too large")
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def _with_close(message: bytes) -> bytes:
    """``message`` with its Connection header(s) replaced by ``Connection: close``."""
    head, _, body = message.partition(b"\r\n\r\n")
    lines = [ln for ln in head.split(b"\r\n") if not ln.lower().startswith(b"connection:")]
    return b"\r\n".join([*lines, b"Connection: close"]) + b"\r\n\r\n" + body


class FaultProxy:
    """``FaultProxy(emulator_url)``; ``url`` is the same API base through the proxy."""

    def __init__(self, upstream_url: str) -> None:
        parts = urlsplit(upstream_url)
        if parts.hostname not in ("127.0.0.1", "localhost"):
            raise ValueError("the fault proxy only fronts a loopback server")
        self._upstream = ("127.0.0.1", int(parts.port or 80))
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(32)
        self._listener.settimeout(0.1)
        port = self._listener.getsockname()[1]
        self.url = urlunsplit((parts.scheme, f"127.0.0.1:{port}", parts.path, "", ""))
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []
        self._refuse = 0
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []
        self.seen: list[tuple[str, str, str]] = []  # (method, path, what was done)
        self._thread = threading.Thread(target=self._serve, name="fault-proxy", daemon=True)
        self._thread.start()

    # -- arming ---------------------------------------------------------------------------------------------------

    def refuse(self, count: int = 1) -> None:
        with self._lock:
            self._refuse += count

    def reset(self, method: str, path_part: str, count: int = 1) -> None:
        self._add(_Rule("reset", method, path_part, count))

    def stall(self, method: str, path_part: str, seconds: float, count: int = 1) -> None:
        self._add(_Rule("stall", method, path_part, count, seconds))

    def drip(self, method: str, path_part: str, bytes_per_second: float, count: int = 1, *,
             head: bool = False) -> None:
        self._add(_Rule("drip_head" if head else "drip", method, path_part, count, bytes_per_second))

    def _add(self, rule: _Rule) -> None:
        with self._lock:
            self._rules.append(rule)

    def _take(self, method: str, path: str) -> _Rule | None:
        with self._lock:
            for rule in self._rules:
                if rule.matches(method, path):
                    rule.count -= 1
                    if rule.count <= 0:
                        self._rules.remove(rule)
                    return rule
        return None

    def received(self, method: str, path_part: str) -> list[tuple[str, str, str]]:
        with self._lock:
            return [s for s in self.seen if s[0] == method and path_part in s[1]]

    # -- serving --------------------------------------------------------------------------------------------------

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self._slots.acquire(timeout=IO_TIMEOUT):
                _reset(conn)
                continue
            worker = threading.Thread(target=self._handle, args=(conn,), name="fault-proxy-conn", daemon=True)
            with self._lock:
                self._workers = [w for w in self._workers if w.is_alive()]
                self._workers.append(worker)
            worker.start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            with self._lock:
                refuse, self._refuse = self._refuse > 0, max(0, self._refuse - 1)
            if refuse:
                with self._lock:
                    self.seen.append(("?", "?", "refused"))
                _reset(conn)
                return
            conn.settimeout(IO_TIMEOUT)
            request = _read_message(conn)
            if not request:
                conn.close()
                return
            method, path = [*request.split(b"\r\n", 1)[0].decode("latin-1").split(" "), "", ""][:2]
            rule = self._take(method, path)
            answer = self._forward(_with_close(request))
            with self._lock:
                self.seen.append((method, path, rule.kind if rule else "passed"))
            if rule is not None and rule.kind == "reset":
                _reset(conn)
                return
            if rule is not None and rule.kind == "stall":
                self._stop.wait(rule.value)
                _reset(conn)
                return
            answer = _with_close(answer)
            if rule is not None and rule.kind in ("drip", "drip_head"):
                start = 0
                if rule.kind == "drip":
                    start = answer.index(b"\r\n\r\n") + 4
                    conn.sendall(answer[:start])
                step = max(1, int(rule.value / 10))
                for i in range(start, len(answer), step):
                    if self._stop.is_set():
                        break
                    conn.sendall(answer[i:i + step])
                    time.sleep(step / rule.value)
            else:
                conn.sendall(answer)
            conn.shutdown(socket.SHUT_WR)
            conn.close()
        except (OSError, ValueError):
            conn.close()
        finally:
            self._slots.release()

    def _forward(self, request: bytes) -> bytes:
        with socket.create_connection(self._upstream, timeout=IO_TIMEOUT) as upstream:
            upstream.sendall(request)
            chunks = []
            while chunk := upstream.recv(65536):
                chunks.append(chunk)
            return b"".join(chunks)

    # -- lifecycle ------------------------------------------------------------------------------------------------

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._listener.close()
        with self._lock:
            workers = list(self._workers)
        for worker in workers:
            worker.join(5)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
