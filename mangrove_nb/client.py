"""HTTP only: one pooled session, the auth header, timeouts, retries of safe calls, rate limits, pagination.

``HttpClient`` has one method per endpoint and returns parsed JSON; shaping it into DataFrames is
``frames``' job and the analyst-facing calls are in ``api``. Every failure leaves this module as an
exception of ``errors``' tree, raised outside any ``except`` block: a ``requests`` exception carries the
prepared request (headers included), so it is never chained into what the user sees.

Retry policy
  * Safe calls (GETs and ``generate_preview``) are retried on connection errors, timeouts, 502/503/504 and
    429, at most ``max_retries`` times, with exponential backoff and "equal jitter" (half fixed, half
    random) bounded by ``backoff_max`` and always within the call's overall deadline.
  * The trigger POST (``batch_generations``) is retried only when the request certainly did not reach the
    server (the connection could not be opened) or the server refused it with 429. Any ambiguous failure,
    sent but no answer, a timeout, a dropped connection, a 502/504 from a gateway, raises
    ``GenerationOutcomeUnknownError`` instead: re-sending could generate twice.
  * 429: wait until ``RateLimit-Reset`` when that is within ``rate_limit_max_wait``, else raise
    ``RateLimitedError`` with the time to wait. As ``RateLimit-Remaining`` nears zero the client spreads
    its remaining requests over the rest of the window instead of running into 429.

Redirects are followed only within the API's origin; the ``Authorization`` header is attached only to
requests for that origin, so it can never follow a redirect elsewhere.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import requests
import urllib3.connection
import urllib3.connectionpool
from requests.adapters import HTTPAdapter

from .errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    GenerationOutcomeUnknownError,
    MalformedResponseError,
    MangroveError,
    RateLimitedError,
    TransportError,
    error_from_response,
    parse_json,
)
from .settings import Secret, Settings

log = logging.getLogger("mangrove_nb")

USER_AGENT = "mangrove_nb"
MAX_REDIRECTS = 3
# Below this share of the window's budget, requests are spread over the time left until the reset.
RATE_LIMIT_LOW_WATER = 0.05
# A listing whose total changes while it is being read is read again, at most this many times.
LISTING_ATTEMPTS = 3
_RETRY_STATUSES = frozenset({502, 503, 504})


class _BearerAuth(requests.auth.AuthBase):
    """Adds ``Authorization: Bearer …`` to requests for the API's own origin, and to no other."""

    def __init__(self, token: Secret, origin: str) -> None:
        self._token = token
        self._origin = origin

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if _origin(request.url or "") == self._origin:
            request.headers["Authorization"] = f"Bearer {self._token.reveal()}"
        else:
            request.headers.pop("Authorization", None)
        return request

    def __repr__(self) -> str:
        return f"_BearerAuth({self._token!r})"


# The seconds left of the current call, for the connection that reads the answer (one value per thread).
_time_left = threading.local()


class _DeadlineMixin:
    """Closes the socket when the call's deadline passes while the status line and headers arrive.

    requests' read timeout is per socket read, so an answer whose head drips in byte by byte would otherwise
    never time out; the body is read in ``HttpClient._read_body``, which checks the deadline itself.
    """

    sock: socket.socket | None

    def getresponse(self) -> Any:
        seconds = getattr(_time_left, "seconds", None)
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


class _DeadlineHTTPConnection(_DeadlineMixin, urllib3.connection.HTTPConnection):
    pass


class _DeadlineHTTPSConnection(_DeadlineMixin, urllib3.connection.HTTPSConnection):
    pass


class _DeadlineHTTPPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _DeadlineHTTPConnection


class _DeadlineHTTPSPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _DeadlineHTTPSConnection


class _DeadlineAdapter(HTTPAdapter):
    """requests' adapter with connections that honour the call's deadline while the answer's head arrives."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _DeadlineHTTPPool, "https": _DeadlineHTTPSPool}


def _session_for(base_url: str) -> requests.Session:
    """A session that reads proxy and CA-bundle settings from the environment once, not on every request.

    (requests re-reads them per call, which cost more than parsing a page of a large listing.)
    """
    session = requests.Session()
    found = session.merge_environment_settings(base_url, {}, None, None, None)
    session.proxies.update(found.get("proxies") or {})
    session.verify = found.get("verify", True)
    session.trust_env = False
    return session


def _origin(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


@dataclass
class _RateWindow:
    """What the last response said about the rate limit."""

    limit: int | None = None
    remaining: int | None = None
    reset: float | None = None


@dataclass(frozen=True)
class Page:
    """One page of a list endpoint: its items and its ``info`` block (``None`` when the server sent none).

    ``size`` is how many items the server sent. A page read with a ``digest`` keeps only what the digest made
    of its items (``items`` is then empty).
    """

    items: list[Any]
    info: Mapping[str, Any] | None
    size: int
    digest: Any = None


class HttpClient:
    """The Mangrove API over HTTP: one method per endpoint, parsed JSON back, typed errors out.

    ``session`` may be any ``requests.Session`` (caching, a test transport); the client then leaves its
    lifetime to the caller. ``sleep``, ``clock`` (monotonic), ``wall`` (Unix time) and ``jitter`` (a
    ``random()``-like function) are injectable so that tests can assert the retry schedule.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings
        self._owns_session = session is None
        self._session = session or _session_for(settings.base_url)
        pool = max(10, settings.max_concurrent_pages)
        adapter = _DeadlineAdapter(pool_connections=pool, pool_maxsize=pool, max_retries=0)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self._session.headers["User-Agent"] = USER_AGENT
        self._session.headers["Accept"] = "application/json"
        self._session.auth = _BearerAuth(settings.token, _origin(settings.base_url))
        self._sleep, self._clock, self._wall, self._jitter = sleep, clock, wall, jitter
        self._rate = _RateWindow()
        self._rate_lock = threading.Lock()
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Release pooled connections (only those of a session this client created)."""
        if not self._closed and self._owns_session:
            self._session.close()
        self._closed = True

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<HttpClient {self.settings.base_url} token={self.settings.token!r}>"

    # -- endpoints ---------------------------------------------------------------------------------------------

    def ledgers(self, **params: Any) -> list[dict[str, Any]]:
        return self.list_all("/ledgers", params)

    def ledger(self, ledger_id: str) -> dict[str, Any]:
        return self.get(f"/ledgers/{_segment(ledger_id)}")

    def create_ledger(self, project_id: int | str, name: str, unit: str) -> dict[str, Any]:
        return self.request("POST", f"/projects/{_segment(project_id)}/ledgers",
                            json_body={"ledger": {"name": name, "unit": unit}}, safe=False)

    def required_inputs(self, ledger_id: str) -> list[dict[str, Any]]:
        return self.list_all(f"/ledgers/{_segment(ledger_id)}/required_inputs", {})

    def generate_preview(self, ledger_id: str, body: Mapping[str, Any]) -> list[dict[str, Any]]:
        answer = self.request("POST", f"/ledgers/{_segment(ledger_id)}/generate_preview", json_body=body, safe=True)
        return _data_list(answer, "POST", f"/ledgers/{ledger_id}/generate_preview")

    def create_batch_generation(self, ledger_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """The trigger POST: sent at most once unless it certainly never reached the server."""
        outcome_unknown = {"ledger_id": ledger_id, "start": body.get("start_time", "?"),
                           "end": body.get("end_time", "?")}
        return self.request("POST", f"/ledgers/{_segment(ledger_id)}/batch_generations", json_body=body,
                            safe=False, outcome_unknown=outcome_unknown)

    def async_task(self, task_id: int | str) -> dict[str, Any]:
        return self.get(f"/async_tasks/{_segment(task_id)}")

    def ledger_batches(self, ledger_id: str, **params: Any) -> list[dict[str, Any]]:
        return self.list_all(f"/ledgers/{_segment(ledger_id)}/batches", params)

    def batch_pages(self, ledger_id: str | None, digest: Callable[[list[Any]], Any], **params: Any
                    ) -> list[Any] | None:
        """``read_listing`` of a ledger's batches (every ledger's for ``None``)."""
        path = f"/ledgers/{_segment(ledger_id)}/batches" if ledger_id is not None else "/batches"
        return self.read_listing(path, params, digest)

    def batches(self, **params: Any) -> list[dict[str, Any]]:
        return self.list_all("/batches", params)

    def batch(self, batch_id: str) -> dict[str, Any]:
        return self.get(f"/batches/{_segment(batch_id)}")

    def delete_batch(self, batch_id: str) -> None:
        self.request("DELETE", f"/batches/{_segment(batch_id)}", safe=False)

    def project(self, project_id: int | str) -> dict[str, Any]:
        return self.get(f"/projects/{_segment(project_id)}")

    def project_events(self, project_id: int | str, **params: Any) -> list[dict[str, Any]]:
        return self.list_all(f"/projects/{_segment(project_id)}/events", params)

    # -- the machinery -----------------------------------------------------------------------------------------

    def get(self, path: str, params: Mapping[str, Any] | None = None, *, deadline: float | None = None) -> Any:
        return self.request("GET", path, params=params, safe=True, deadline=deadline)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        safe: bool,
        deadline: float | None = None,
        outcome_unknown: Mapping[str, Any] | None = None,
    ) -> Any:
        """One API call with the retry policy of the module docstring; returns the parsed JSON body."""
        if self._closed:
            raise MangroveError("This client is closed; create a new one with mangrove_nb.connect().")
        url = f"{self.settings.base_url}{path}"
        deadline = deadline if deadline is not None else self._clock() + self.settings.call_deadline
        attempt = 0
        while True:
            self._pace(deadline, method, url)
            # Failures come back as values, not exceptions, so that what we raise is raised outside any
            # ``except`` block: no requests exception (which holds the prepared request, headers and all)
            # ever sits in the chain of what the user sees.
            outcome = self._send(method, url, params, json_body, deadline)
            if isinstance(outcome, _Failure):
                if outcome.maybe_sent and not safe:
                    raise _outcome_unknown(outcome_unknown, outcome.error, method, url)
                error: MangroveError = outcome.error
            else:
                self._note_rate(outcome.headers)
                if outcome.status_code < 400:
                    return _json_of(outcome, method, url)
                error = error_from_response(outcome.status_code, outcome.headers, outcome.content,
                                            method=method, url=url, now=self._wall())
                if not safe and outcome.status_code in (502, 504):
                    raise _outcome_unknown(outcome_unknown, error, method, url)
                if not _retryable(error, safe):
                    raise error
            attempt += 1
            wait = self._retry_wait(error, attempt, deadline)
            if wait is None:
                raise error
            log.info("%s %s: %s; retrying in %.1f s (attempt %d of %d)", method, _path_of(url),
                     type(error).__name__, wait, attempt + 1, self.settings.max_retries + 1)
            self._sleep(wait)

    def _send(self, method: str, url: str, params: Mapping[str, Any] | None, json_body: Any,
              deadline: float) -> requests.Response | _Failure:
        """One HTTP exchange, following same-origin redirects; a transport failure is returned, not raised."""
        for _hop in range(MAX_REDIRECTS + 1):
            remaining = deadline - self._clock()
            if remaining <= 0:
                return _Failure(APITimeoutError(method=method, url=url, timeout=self.settings.call_deadline,
                                                detail="the call's overall deadline passed"), maybe_sent=False)
            timeout = (min(self.settings.connect_timeout, remaining), min(self.settings.read_timeout, remaining))
            _time_left.seconds = remaining
            try:
                response = self._session.request(method, url, params=params, json=json_body, timeout=timeout,
                                                 allow_redirects=False, stream=True)
                # Past the deadline the watchdog may have cut the answer short: whatever arrived is not trusted.
                late = self._read_body(response, deadline) or self._clock() >= deadline
            except requests.RequestException as exc:
                if self._clock() >= deadline:  # the watchdog closed a connection whose answer came too slowly
                    return _Failure(APITimeoutError(method=method, url=url, timeout=self.settings.call_deadline,
                                                    detail="the answer arrived too slowly for the call's deadline"),
                                    maybe_sent=True)
                return _failure(exc, method, url, timeout)
            finally:
                _time_left.seconds = None
            if late:
                return _Failure(APITimeoutError(method=method, url=url, timeout=self.settings.call_deadline,
                                                detail="the answer arrived too slowly for the call's deadline"),
                                maybe_sent=True)
            if not response.is_redirect:
                return response
            target = urljoin(url, response.headers.get("Location", ""))
            response.close()
            if _origin(target) != _origin(self.settings.base_url):
                raise MalformedResponseError(
                    f"{method} {_path_of(url)} was redirected to another site ({_origin(target)}); mangrove_nb "
                    "does not follow it, so your token stays with the API. Check MANGROVE_API_URL.",
                    method=method, url=url, status_code=response.status_code)
            url, params = target, None
        raise MalformedResponseError(f"{method} {_path_of(url)} was redirected more than {MAX_REDIRECTS} times.",
                                     method=method, url=url)

    def _read_body(self, response: requests.Response, deadline: float) -> bool:
        """Read the body in chunks, stopping at the call's deadline (requests' read timeout is per socket read,
        so an answer dripping in byte by byte would otherwise never time out). True when it ran late."""
        body = bytearray()
        # urllib3 2's read1 returns what one socket read brings, so the deadline is checked as bytes trickle in;
        # iter_content would wait for a whole chunk first.
        read1 = getattr(response.raw, "read1", None)
        chunks = iter(lambda: read1(65536, decode_content=True), b"") if read1 else response.iter_content(8192)
        with response:
            for chunk in chunks:
                body += chunk
                if self._clock() > deadline:
                    return True
        response._content = bytes(body)  # what .content and .json() read from now on
        return False

    def _retry_wait(self, error: MangroveError, attempt: int, deadline: float) -> float | None:
        """Seconds to wait before the next attempt, or None to give up and raise ``error``."""
        left = deadline - self._clock()
        if isinstance(error, RateLimitedError):
            wait = error.retry_after if error.retry_after is not None else self.settings.backoff_max
            if wait > self.settings.rate_limit_max_wait or wait >= left:
                return None
            return max(0.0, wait) + self._jitter() * 0.25
        if attempt > self.settings.max_retries:
            return None
        wait = self.backoff(attempt)
        return wait if wait < left else None

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with equal jitter: half of the step fixed, half random, capped at backoff_max."""
        step = min(self.settings.backoff_max, self.settings.backoff_initial * 2 ** (attempt - 1))
        return step / 2 + self._jitter() * step / 2

    # -- rate limit ----------------------------------------------------------------------------------------------

    def _note_rate(self, headers: Mapping[str, str]) -> None:
        with self._rate_lock:
            self._rate = _RateWindow(_int(headers.get("RateLimit-Limit")), _int(headers.get("RateLimit-Remaining")),
                                     _int(headers.get("RateLimit-Reset")))

    def _pace(self, deadline: float, method: str, url: str) -> None:
        """Spread requests over what is left of the window as the budget runs low, instead of hitting 429."""
        with self._rate_lock:
            window = self._rate
            if window.remaining is None or window.reset is None or not window.limit:
                return
            if window.remaining > max(1, window.limit * RATE_LIMIT_LOW_WATER):
                window.remaining -= 1
                return
            until_reset = max(0.0, window.reset - self._wall())
            wait = until_reset / max(1, window.remaining) if window.remaining > 0 else until_reset
            window.remaining = max(0, window.remaining - 1)
        if wait <= 0:
            return
        if wait > self.settings.rate_limit_max_wait or self._clock() + wait >= deadline:
            raise RateLimitedError(status_code=429, method=method, url=url, retry_after=until_reset,
                                   server_messages=("the rate-limit budget of this window is spent",))
        log.info("rate limit nearly spent (%s left); waiting %.1f s", window.remaining, wait)
        self._sleep(wait)

    # -- pagination ------------------------------------------------------------------------------------------------

    def page(self, path: str, params: Mapping[str, Any], number: int, *, deadline: float,
             digest: Callable[[list[Any]], Any] | None = None) -> Page:
        """Page ``number`` of a list endpoint; with ``digest``, its items are replaced by ``digest(items)``."""
        query = {**params, "page": number, "page_size": params.get("page_size", self.settings.page_size)}
        body = self.get(path, query, deadline=deadline)
        items = _data_list(body, "GET", path)
        info = body.get("info") if isinstance(body, dict) else None
        if info is not None and not isinstance(info, dict):
            raise MalformedResponseError(f"GET {path}: 'info' is not an object.", method="GET", url=path)
        if digest is None:
            return Page(items, info, len(items))
        return Page([], info, len(items), digest(items))

    def list_all(self, path: str, params: Mapping[str, Any]) -> list[Any]:
        """Every item of a list endpoint, following ``info.next_page``; never silently truncated.

        A missing ``info`` is one page. Once page 1 gives a consistent ``total_pages``, the other pages are
        fetched concurrently (at most ``max_concurrent_pages`` at once, paced by the rate limit). Items are
        de-duplicated by id; if the total changes while reading, the listing is read again.
        """
        pages = self._read_listing(path, params, None)
        return _unique(item for p in pages for item in p.items)

    def read_listing(self, path: str, params: Mapping[str, Any], digest: Callable[[list[Any]], Any]
                     ) -> list[Any] | None:
        """Every page of a list endpoint, as ``list_all`` reads them, each kept only as ``digest(items)``.

        ``digest`` runs in the thread that fetched the page, as soon as it arrives, and the page's parsed
        items are dropped. Keeping a few column lists instead of thousands of dicts matters: while the other
        pages arrive, the garbage collector no longer re-scans every batch read so far (for 5,000 batches,
        about 50 collections and a full one of ~45 ms every other listing), and the memory they took is
        freed page by page. ``digest`` must be pure and thread-safe; it returns None for items it cannot take.

        Returns the digests in page order, or None when ``digest`` returned None for some page: then read
        the listing with ``list_all``. De-duplication is the caller's (the digests hold the ids).
        """
        pages = self._read_listing(path, params, digest)
        digests = [page.digest for page in pages]
        return None if any(d is None for d in digests) else digests

    def _read_listing(self, path: str, params: Mapping[str, Any],
                      digest: Callable[[list[Any]], Any] | None) -> list[Page]:
        deadline = self._clock() + self.settings.call_deadline
        for _attempt in range(LISTING_ATTEMPTS):
            pages = self._read_pages(path, dict(params), deadline, digest)
            totals = [p.info.get("total_items") for p in pages if p.info is not None]
            if all(t == totals[0] for t in totals):
                return pages
            log.info("GET %s changed while it was read; reading it again", path)
        raise MangroveError(f"GET {path} kept changing while it was read ({LISTING_ATTEMPTS} attempts); "
                            "try again when no generation is running.")

    def _read_pages(self, path: str, params: dict[str, Any], deadline: float,
                    digest: Callable[[list[Any]], Any] | None) -> list[Page]:
        first = self.page(path, params, 1, deadline=deadline, digest=digest)
        if first.info is None:
            return [first]
        return [first, *self._following_pages(path, params, first, deadline, digest)]

    def _following_pages(self, path: str, params: dict[str, Any], first: Page, deadline: float,
                         digest: Callable[[list[Any]], Any] | None) -> list[Page]:
        info = first.info or {}
        planned = _planned_pages(info, first.size)
        if planned > self.settings.max_pages:
            raise MalformedResponseError(f"GET {path} reports {planned} pages, more than max_pages "
                                         f"({self.settings.max_pages}); narrow the request or raise max_pages.",
                                         method="GET", url=path)
        fetched: dict[int, Page] = {}
        if planned > 2 and self.settings.max_concurrent_pages > 1:
            fetched = self._prefetch(path, params, range(2, planned + 1), deadline, digest)
        # Walk the chain of next_page links, using prefetched pages where they are and fetching the rest.
        pages, current, seen = [], first, {1}
        while True:
            following = _next_page(current, path)
            if following is None:
                return pages
            if following in seen:
                raise MalformedResponseError(f"GET {path}: next_page {following} does not advance (already read); "
                                             "the server's pagination is broken.", method="GET", url=path)
            if len(seen) >= self.settings.max_pages:
                raise MalformedResponseError(f"GET {path} has more than max_pages ({self.settings.max_pages}) pages; "
                                             "narrow the request or raise max_pages.", method="GET", url=path)
            seen.add(following)
            current = fetched.get(following) or self.page(path, params, following, deadline=deadline, digest=digest)
            pages.append(current)

    def _prefetch(self, path: str, params: dict[str, Any], numbers: range, deadline: float,
                  digest: Callable[[list[Any]], Any] | None) -> dict[int, Page]:
        """Pages fetched concurrently; after the first failure, the pages not yet started are not requested."""
        pool = ThreadPoolExecutor(max_workers=min(self.settings.max_concurrent_pages, len(numbers)),
                                  thread_name_prefix="mangrove-page")
        try:
            futures = {n: pool.submit(self.page, path, params, n, deadline=deadline, digest=digest) for n in numbers}
            return {number: future.result() for number, future in futures.items()}
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


@dataclass(frozen=True)
class _Failure:
    """A request that got no answer; ``maybe_sent`` when it may have reached the server."""

    error: MangroveError
    maybe_sent: bool


def _failure(exc: requests.RequestException, method: str, url: str, timeout: tuple[float, float]) -> _Failure:
    if isinstance(exc, requests.ConnectTimeout):
        return _Failure(APITimeoutError(method=method, url=url, timeout=timeout[0], detail="could not connect in time"),
                        maybe_sent=False)
    if isinstance(exc, requests.Timeout):
        return _Failure(APITimeoutError(method=method, url=url, timeout=timeout[1], detail="no answer in time"),
                        maybe_sent=True)
    if isinstance(exc, requests.ConnectionError):
        error = APIConnectionError(method=method, url=url, detail=_transport_detail(exc))
        return _Failure(error, maybe_sent=not _never_connected(exc))
    return _Failure(APIConnectionError(method=method, url=url, detail=type(exc).__name__), maybe_sent=True)


def _retryable(error: MangroveError, safe: bool) -> bool:
    if isinstance(error, RateLimitedError):
        return True  # the server refused the request: nothing happened, so even the trigger may go again
    if isinstance(error, APIStatusError):
        return safe and error.status_code in _RETRY_STATUSES
    return isinstance(error, TransportError)


def _outcome_unknown(context: Mapping[str, Any] | None, error: MangroveError, method: str,
                     url: str) -> MangroveError:
    if context is None:
        return error
    return GenerationOutcomeUnknownError(ledger_id=str(context["ledger_id"]), start=str(context["start"]),
                                         end=str(context["end"]), detail=str(error).split(". ")[0])


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


def _json_of(response: requests.Response, method: str, url: str) -> Any:
    if response.status_code == 204 or not response.content:
        return None
    return parse_json(response.content, method=method, url=url, status_code=response.status_code)


def _data_list(body: Any, method: str, path: str) -> list[Any]:
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        raise MalformedResponseError(f"{method} {path} did not answer with a 'data' list as documented.",
                                     method=method, url=path)
    return data


def _planned_pages(info: Mapping[str, Any], first_items: int) -> int:
    """How many pages to prefetch: ``total_pages`` when the info block is self-consistent, else 1."""
    total_pages, total_items, size = info.get("total_pages"), info.get("total_items"), info.get("page_size")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (total_pages, total_items, size)):
        return 1
    if size < 1 or total_pages != max(1, math.ceil(total_items / size)) or (total_pages > 1 and first_items != size):
        return 1  # the documentation shows inconsistent info blocks: then trust next_page alone
    return total_pages


def _next_page(page: Page, path: str) -> int | None:
    if page.info is None:
        return None
    following, current = page.info.get("next_page"), page.info.get("current_page")
    if following is None:
        return None
    if isinstance(following, bool) or not isinstance(following, int) or (
            isinstance(current, int) and following <= current):
        raise MalformedResponseError(f"GET {path}: next_page {following!r} does not advance from page {current!r}; "
                                     "the server's pagination is broken.", method="GET", url=path)
    return following


def _unique(items: Iterator[Any]) -> list[Any]:
    """Items in order, dropping repeats of an id (an insertion during a listing shifts later pages)."""
    seen: set[Any] = set()
    unique = []
    for item in items:
        key = item.get("id") if isinstance(item, dict) else None
        if key is not None:
            if isinstance(key, bool) or not isinstance(key, str | int):
                raise MalformedResponseError(f"A listed item's id is a {type(key).__name__}, not a string or an "
                                             "integer, so the answer does not match the documented Mangrove API.",
                                             field="id")
            if key in seen:
                continue
            seen.add(key)
        unique.append(item)
    return unique


def _segment(value: int | str) -> str:
    """An id as one path segment (ids are opaque: anything that is not URL-safe is escaped)."""
    return quote(str(value), safe="")


def _path_of(url: str) -> str:
    return urlsplit(url).path


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
