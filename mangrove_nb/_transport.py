"""The transport under ``client``: the requests session and urllib3 connections, where the token is added,
how the call's deadline reaches a connection, and the one place transport failures become ours.

- ``_AuthMixin.request``: the Authorization header is added as the connection writes the request, for the API's
  origin only (``credentials`` says, per thread, which token to send for the exchange in progress), so no
  object or frame above it ever holds the token.
- ``_DeadlineMixin``: closes a socket whose status line and headers drip in past the call's deadline.
- ``session_for``: proxies and CA bundle read from the environment once; never an environment proxy for a
  plain-http loopback base URL.
- ``transport_failure``: requests', urllib3's and the socket's exceptions, raised while connecting, sending or
  reading the body, become a ``Failure`` holding our typed error and whether the request may have been sent.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3.connection
import urllib3.connectionpool
import urllib3.exceptions
from requests.adapters import HTTPAdapter

from .errors import APIConnectionError, APITimeoutError, MangroveError, secret_safe_logger
from .settings import Secret, is_loopback_host

#: The largest answer body read (after decompression); a page of 100 batches is about 100 KB.
MAX_BODY_BYTES = 64 * 1024 * 1024

# urllib3 logs request lines at DEBUG (a same-origin redirect's Location can carry anything): the same
# redacting filter as ours.
secret_safe_logger("urllib3.connectionpool")


class BodyTooLarge(Exception):
    """Raised while reading a body that grows past ``MAX_BODY_BYTES``."""


# Per thread, for the request being sent now: the seconds left of the call (for the connection that reads
# the answer) and the token to send (None for a URL outside the API's origin). Both are set by
# ``HttpClient._send`` around one exchange and read by the connection, so nothing in between holds the token.
time_left = threading.local()
credentials = threading.local()


class _AuthMixin:
    """Adds ``Authorization: Bearer …`` as the connection writes the request: the one place it is revealed."""

    def request(self, method: str, url: str, body: Any = None, headers: Mapping[str, str] | None = None,
                **kwargs: Any) -> None:
        token: Secret | None = getattr(credentials, "token", None)
        if token is None:
            super().request(method, url, body=body, headers=headers, **kwargs)  # type: ignore[misc]
            return
        try:
            super().request(method, url, body=body,  # type: ignore[misc]
                            headers={**(headers or {}), "Authorization": "Bearer " + token.reveal()}, **kwargs)
        finally:
            del token


class _DeadlineMixin:
    """Closes the socket when the call's deadline passes while the status line and headers arrive.

    requests' read timeout is per socket read, so an answer whose head drips in byte by byte would otherwise
    never time out; the body is read in ``HttpClient._read_body``, which checks the deadline itself.
    """

    sock: socket.socket | None

    def getresponse(self) -> Any:
        seconds = getattr(time_left, "seconds", None)
        watchdog = None
        if seconds is not None:
            watchdog = threading.Timer(max(0.0, seconds), self._abort)
            watchdog.daemon = True
            watchdog.start()
        try:
            return super().getresponse()  # type: ignore[misc]
        finally:
            if watchdog is not None:
                watchdog.cancel()

    def _abort(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)


# urllib3 overrides http.client's request() with another signature (its own "type: ignore[override]").
class _DeadlineHTTPConnection(_AuthMixin, _DeadlineMixin, urllib3.connection.HTTPConnection):  # type: ignore[misc]
    pass


class _DeadlineHTTPSConnection(_AuthMixin, _DeadlineMixin, urllib3.connection.HTTPSConnection):  # type: ignore[misc]
    pass


class _DeadlineHTTPPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _DeadlineHTTPConnection


class _DeadlineHTTPSPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _DeadlineHTTPSConnection


class DeadlineAdapter(HTTPAdapter):
    """requests' adapter with connections that honour the call's deadline while the answer's head arrives."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _DeadlineHTTPPool, "https": _DeadlineHTTPSPool}


def session_for(base_url: str) -> requests.Session:
    """A session that reads proxy and CA-bundle settings from the environment once, not on every request.

    (requests re-reads them per call, which cost more than parsing a page of a large listing.) A plain-http
    loopback base URL takes no proxy from the environment: the token would cross the proxy in clear.
    """
    session = requests.Session()
    found = session.merge_environment_settings(base_url, {}, None, None, None)
    if not plain_http_loopback(base_url):
        session.proxies.update(found.get("proxies") or {})
    session.verify = found.get("verify", True)
    session.trust_env = False
    return session


def plain_http_loopback(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "http" and is_loopback_host(parts.hostname or "")


def no_proxy_for(url: str) -> dict[str, str | None]:
    """Per-request proxies that switch off every environment proxy requests could pick for ``url``."""
    host = urlsplit(url).hostname or ""
    return {key: None for key in ("http", "https", "all", f"http://{host}", f"all://{host}")}


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"



@dataclass(frozen=True)
class Failure:
    """A request that got no answer; ``maybe_sent`` when it may have reached the server."""

    error: MangroveError
    maybe_sent: bool


def transport_failure(exc: Exception, method: str, url: str, timeout: tuple[float, float], *, answered: bool,
                       past_deadline: bool, call_deadline: float) -> Failure:
    """The one place where requests', urllib3's and the socket's exceptions become ours.

    ``answered``: the status line and headers had arrived, so the failure came while reading the body (the
    request certainly reached the server). Only the exception's type is kept, never its text or arguments,
    which can hold the prepared request.
    """
    if past_deadline:  # the watchdog closed a connection whose answer came too slowly
        return Failure(APITimeoutError(method=method, url=url, timeout=call_deadline,
                                        detail="the answer arrived too slowly for the call's deadline"),
                        maybe_sent=True)
    if isinstance(exc, requests.ConnectTimeout | urllib3.exceptions.ConnectTimeoutError):
        return Failure(APITimeoutError(method=method, url=url, timeout=timeout[0], detail="could not connect in time"),
                        maybe_sent=False)
    if isinstance(exc, requests.Timeout | urllib3.exceptions.TimeoutError | TimeoutError):
        return Failure(APITimeoutError(method=method, url=url, timeout=timeout[1], detail="no answer in time"),
                        maybe_sent=True)
    if answered:
        return Failure(APIConnectionError(method=method, url=url, detail=_body_failure(exc)), maybe_sent=True)
    if isinstance(exc, requests.ConnectionError):
        error = APIConnectionError(method=method, url=url, detail=_transport_detail(exc))
        return Failure(error, maybe_sent=not _never_connected(exc))
    if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.InvalidHeader):
        return Failure(APIConnectionError(method=method, url=url, detail=f"the request could not be built "
                                           f"({type(exc).__name__})"), maybe_sent=False)
    return Failure(APIConnectionError(method=method, url=url, detail=type(exc).__name__), maybe_sent=True)


def _body_failure(exc: Exception) -> str:
    """What went wrong while the body was read, in words (never the exception's own text)."""
    if isinstance(exc, BodyTooLarge):
        return f"the answer's body grew past {MAX_BODY_BYTES // 2**20} MiB and was not read further"
    if isinstance(exc, urllib3.exceptions.DecodeError | requests.exceptions.ContentDecodingError):
        return "the answer's body could not be decoded (broken Content-Encoding)"
    if isinstance(exc, urllib3.exceptions.InvalidChunkLength | requests.exceptions.ChunkedEncodingError):
        return "the answer's chunked encoding was broken"
    if isinstance(exc, urllib3.exceptions.ProtocolError | http.client.HTTPException | OSError
                  | requests.ConnectionError):
        return "the connection closed before the whole answer arrived"
    return f"the answer could not be read ({type(exc).__name__})"



def _never_connected(exc: requests.ConnectionError) -> bool:
    """True when the connection could not be opened at all, so the request cannot have reached the server."""
    text = repr(exc.args[0]) if exc.args else ""
    return any(marker in text for marker in ("NewConnectionError", "NameResolutionError", "ConnectTimeoutError"))


def _transport_detail(exc: Exception) -> str:
    text = str(exc.args[0]) if exc.args else type(exc).__name__
    for marker in ("Connection refused", "Name or service not known", "Connection reset",
                   "Remote end closed connection", "Connection aborted", "timed out"):
        if marker in text:
            return marker.lower()
    return type(exc).__name__


