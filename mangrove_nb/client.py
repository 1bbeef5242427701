"""HTTP only: one pooled session, the auth header, timeouts, retries of safe calls, rate limits (list
endpoints are read whole by ``_pages.Pagination``, which ``HttpClient`` inherits).

``HttpClient`` has one method per endpoint and returns parsed JSON; shaping it into DataFrames is
``frames``' job and the analyst-facing calls are in ``api``; the body as JSON and what an answer must be (one
JSON object, a once-only write's acceptance) are ``_answers``'. Every failure leaves this module as an
exception of ``errors``' tree, raised outside any ``except`` block: a ``requests`` exception carries the
prepared request (headers included), so it is never chained into what the user sees.

Retry policy
  * Safe calls (GETs and ``generate_preview``) are retried on connection errors, timeouts, 502/503/504 and
    429, at most ``max_retries`` times, with exponential backoff and "equal jitter" (half fixed, half
    random) bounded by ``backoff_max`` and always within the call's overall deadline.
  * Writes that must happen at most once (the generation trigger, a report's submission) go through
    ``send_once``: sent again only when the request certainly did not reach the server (the connection
    could not be opened) or the server refused it with 429. No redirect is followed (a 303 means "accepted,
    see Location"). Every failure after the request may have left (a timeout, a dropped or cut answer, an
    undecodable body, any 5xx from the server or a gateway, Ctrl-C) raises the caller's "outcome unknown" error.
  * 429 counts against ``max_retries``: wait until ``RateLimit-Reset`` (never less than the backoff of that
    attempt, so a reset that is now or past cannot cause a storm) when that is within
    ``rate_limit_max_wait``, else raise ``RateLimitedError`` with the time to wait. As
    ``RateLimit-Remaining`` nears zero the client spreads its requests over the rest of the window.

Transport failures become ours in one place (``transport_failure``): requests' and urllib3's exceptions,
whether raised while connecting, sending or reading the body (cut, stalled, bad gzip, bad chunks), and
socket errors. Nothing untyped leaves this module on a network fault.

The token: redirects are followed only within the API's origin, and the ``Authorization`` header is added
at the last moment, in one place (``_transport._AuthMixin.request``, on the connection that writes it), and
only for the API's origin. No requests or urllib3 object along the way (prepared request, header dicts in
their frames) ever holds it, so a traceback shown with its locals cannot either. A plain-http loopback
base URL (the emulator, an SSH tunnel) never goes through a proxy from the environment.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import quote, urljoin, urlsplit

import requests

from ._answers import _accepted, _encode_json, _json_of, _object, _what_happened
from ._pages import Pagination, data_list
from ._responses import error_from_response
from ._transport import (
    MAX_BODY_BYTES,
    BodyTooLarge,
    DeadlineAdapter,
    Failure,
    credentials,
    no_proxy_for,
    origin_of,
    plain_http_loopback,
    session_for,
    time_left,
    transport_failure,
)
from .errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    GenerationOutcomeUnknownError,
    MalformedResponseError,
    MangroveError,
    RateLimitedError,
    SubmissionOutcomeUnknownError,
    TransportError,
    redact_bytes,
    secret_safe_logger,
)
from .settings import Settings

log = secret_safe_logger("mangrove_nb")

USER_AGENT = "mangrove_nb"
MAX_REDIRECTS = 3
# Below this share of the window's budget, requests are spread over the time left until the reset.
RATE_LIMIT_LOW_WATER = 0.05
_RETRY_STATUSES = frozenset({502, 503, 504})


@dataclass
class _RateWindow:
    """What the last response said about the rate limit."""

    limit: int | None = None
    remaining: int | None = None
    reset: float | None = None


class HttpClient(Pagination):
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
        self._session = session or session_for(settings.base_url)
        pool = max(10, settings.max_concurrent_pages)
        adapter = DeadlineAdapter(pool_connections=pool, pool_maxsize=pool, max_retries=0)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self._session.headers["User-Agent"] = USER_AGENT
        self._session.headers["Accept"] = "application/json"
        self._origin = origin_of(settings.base_url)
        # An injected session may trust the environment: a loopback plain-http API still never uses its proxy.
        self._proxies = no_proxy_for(settings.base_url) if plain_http_loopback(settings.base_url) else None
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
        return self.get_object(f"/ledgers/{_segment(ledger_id)}")

    def create_ledger(self, project_id: int | str, name: str, unit: str) -> dict[str, Any]:
        path = f"/projects/{_segment(project_id)}/ledgers"
        answer = self.request("POST", path, json_body={"ledger": {"name": name, "unit": unit}}, safe=False)
        return _object(answer, "POST", path)

    def required_inputs(self, ledger_id: str) -> list[dict[str, Any]]:
        return self.list_all(f"/ledgers/{_segment(ledger_id)}/required_inputs", {})

    def generate_preview(self, ledger_id: str, body: Mapping[str, Any]) -> list[dict[str, Any]]:
        answer = self.request("POST", f"/ledgers/{_segment(ledger_id)}/generate_preview", json_body=body, safe=True)
        return data_list(answer, "POST", f"/ledgers/{ledger_id}/generate_preview")

    def create_batch_generation(self, ledger_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """The trigger POST, through ``send_once``: the accepted task, or ``GenerationOutcomeUnknownError``."""

        def unknown(detail: str) -> MangroveError:
            return GenerationOutcomeUnknownError(ledger_id=ledger_id, start=str(body.get("start_time", "?")),
                                                 end=str(body.get("end_time", "?")), detail=detail)

        return self.send_once("POST", f"/ledgers/{_segment(ledger_id)}/batch_generations", body,
                              unknown=unknown, task_path="/async_tasks/")

    def async_task(self, task_id: int | str) -> dict[str, Any]:
        return self.get_object(f"/async_tasks/{_segment(task_id)}")

    def ledger_batches(self, ledger_id: str, **params: Any) -> list[dict[str, Any]]:
        return self.list_all(f"/ledgers/{_segment(ledger_id)}/batches", params)

    def batch_pages(self, ledger_id: str | None, digest: Callable[[list[Any]], Any], **params: Any
                    ) -> list[Any] | None:
        """``read_listing`` of a ledger's batches (every ledger's for ``None``)."""
        path = f"/ledgers/{_segment(ledger_id)}/batches" if ledger_id is not None else "/batches"
        return self.read_listing(path, params, digest)

    def newest_ledger_batches(self, ledger_id: str, enough: Callable[[list[Any]], bool]) -> list[Any]:
        """A ledger's batches newest first (``sort=-created_at``), page by page until ``enough(page_items)``."""
        return self.read_until(f"/ledgers/{_segment(ledger_id)}/batches", {"sort": "-created_at"}, enough)

    def batches(self, **params: Any) -> list[dict[str, Any]]:
        return self.list_all("/batches", params)

    def batch(self, batch_id: str) -> dict[str, Any]:
        return self.get_object(f"/batches/{_segment(batch_id)}")

    def delete_batch(self, batch_id: str) -> None:
        self.request("DELETE", f"/batches/{_segment(batch_id)}", safe=False)

    def reports(self, **params: Any) -> list[dict[str, Any]]:
        return self.list_all("/reports", params)

    def report(self, report_id: str) -> Any:
        return self.get(f"/reports/{_segment(report_id)}")

    def update_report(self, report_id: str, body: Mapping[str, Any]) -> Any:
        """``PATCH /reports/{id}``: not retried once it may have reached the server (re-sending the same batch
        set would be harmless, but the caller decides)."""
        return self.request("PATCH", f"/reports/{_segment(report_id)}", json_body=body, safe=False)

    def submit_report(self, report_id: str) -> dict[str, Any]:
        """The submission POST, through ``send_once``: the answer (``async_task_id`` names the task), or
        ``SubmissionOutcomeUnknownError``."""

        def unknown(detail: str) -> MangroveError:
            return SubmissionOutcomeUnknownError(report_id=report_id, detail=detail)

        return self.send_once("POST", f"/reports/{_segment(report_id)}/submit", {}, unknown=unknown,
                              task_path="/async_tasks/", task_key="async_task_id")

    def project(self, project_id: int | str) -> dict[str, Any]:
        return self.get_object(f"/projects/{_segment(project_id)}")

    def project_events(self, project_id: int | str, **params: Any) -> list[dict[str, Any]]:
        return self.list_all(f"/projects/{_segment(project_id)}/events", params)

    # -- the machinery -----------------------------------------------------------------------------------------

    def get(self, path: str, params: Mapping[str, Any] | None = None, *, deadline: float | None = None) -> Any:
        return self.request("GET", path, params=params, safe=True, deadline=deadline)

    def get_object(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``get`` of an endpoint that answers one JSON object; anything else is ``MalformedResponseError``."""
        return _object(self.get(path, params), "GET", path)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        safe: bool,
        deadline: float | None = None,
    ) -> Any:
        """One API call with the retry policy of the module docstring; returns the parsed JSON body.

        ``safe=False`` calls (creating a ledger, deleting a batch) are not retried once they may have reached
        the server; a write that must never happen twice goes through ``send_once`` instead.
        """
        self._check_open()
        url = f"{self.settings.base_url}{path}"
        data = _encode_json(json_body, method, path) if json_body is not None else None
        deadline = deadline if deadline is not None else self._clock() + self.settings.call_deadline
        attempt = 0
        while True:
            self._pace(deadline, method, url)
            # Failures come back as values, not exceptions, so that what we raise is raised outside any
            # ``except`` block: no requests or urllib3 exception, and no frame of theirs, ever sits in the
            # chain or traceback of what the user sees. Ctrl-C is re-raised the same way, as a fresh one.
            interrupted = False
            try:
                outcome = self._send(method, url, params, data, deadline)
            except KeyboardInterrupt:
                interrupted = True
            if interrupted:
                raise KeyboardInterrupt(f"{method} {_path_of(url)} interrupted")
            if isinstance(outcome, Failure):
                if outcome.maybe_sent and not safe:
                    raise outcome.error
                error: MangroveError = outcome.error
            else:
                self._note_rate(outcome.headers)
                if outcome.status_code < 400:
                    return _json_of(outcome, method, url)
                error = error_from_response(outcome.status_code, outcome.headers, outcome.content,
                                            method=method, url=url, now=self._wall(),
                                            has_id=path.count("/") > 1)
                if not _retryable(error, safe):
                    raise error
            attempt += 1
            wait = self._retry_wait(error, attempt, deadline)
            if wait is None:
                raise error
            log.info("%s %s: %s; retrying in %.1f s (attempt %d of %d)", method, _path_of(url),
                     type(error).__name__, wait, attempt + 1, self.settings.max_retries + 1)
            self._sleep(wait)

    def send_once(self, method: str, path: str, body: Mapping[str, Any], *,
                  unknown: Callable[[str], MangroveError], task_path: str, task_key: str = "id") -> dict[str, Any]:
        """A write that must never happen twice: the parsed answer (a JSON object), or ``unknown(detail)`` raised.

        Sent again only when it certainly never reached the server (the connection could not be opened) or the
        server refused it with 429, counted against ``max_retries``. No redirect is followed: a 303 whose
        Location names a task (``task_path`` + id) is the documented acceptance, ``{task_key: <task id>}``; any
        other redirect is an unknown outcome. So is every failure after the request may have left: a timeout,
        a dropped, cut, stalled or undecodable answer, any 5xx (from the server or a gateway), an answer that is
        not a JSON object, and Ctrl-C (which becomes ``unknown(...)`` rather than a KeyboardInterrupt).
        """
        self._check_open()
        url = f"{self.settings.base_url}{path}"
        data = _encode_json(body, method, path)
        deadline = self._clock() + self.settings.call_deadline
        attempt = 0
        while True:
            self._pace(deadline, method, url)
            interrupted = False
            try:
                outcome = self._send(method, url, None, data, deadline, follow_redirects=False)
            except KeyboardInterrupt:
                interrupted = True
            if interrupted:  # raised here, outside the handler: no frame that sent the request stays reachable
                raise unknown("interrupted (Ctrl-C or a kernel interrupt) after the request was started")
            if isinstance(outcome, Failure):
                if outcome.maybe_sent:
                    raise unknown(_what_happened(outcome.error))
                error: MangroveError = outcome.error
            else:
                self._note_rate(outcome.headers)
                if outcome.status_code < 400:
                    return _accepted(outcome, method, url, unknown, task_path, task_key)
                error = error_from_response(outcome.status_code, outcome.headers, outcome.content,
                                            method=method, url=url, now=self._wall())
                if outcome.status_code >= 500:  # a server or gateway failure: the request may have been acted on
                    raise unknown(f"HTTP {outcome.status_code} from the server or a gateway in front of it")
                if not isinstance(error, RateLimitedError):
                    raise error
            attempt += 1
            wait = self._retry_wait(error, attempt, deadline)
            if wait is None:
                raise error
            log.info("%s %s: %s before it reached the server; sending it in %.1f s (attempt %d of %d)", method,
                     _path_of(url), type(error).__name__, wait, attempt + 1, self.settings.max_retries + 1)
            self._sleep(wait)

    def _check_open(self) -> None:
        if self._closed:
            raise MangroveError("This client is closed; create a new one with mangrove_nb.connect().")

    def _send(self, method: str, url: str, params: Mapping[str, Any] | None, data: bytes | None,
              deadline: float, *, follow_redirects: bool = True) -> requests.Response | Failure:
        """One HTTP exchange, following same-origin redirects unless told not to; failures are returned."""
        for _hop in range(MAX_REDIRECTS + 1):
            outcome = self._exchange(method, url, params, data, deadline)
            if isinstance(outcome, Failure) or not follow_redirects or not outcome.is_redirect:
                return outcome
            target = urljoin(url, outcome.headers.get("Location", ""))
            outcome.close()
            if origin_of(target) != self._origin:
                raise MalformedResponseError(
                    f"{method} {_path_of(url)} was redirected to another site ({origin_of(target)}); mangrove_nb "
                    "does not follow it, so your token stays with the API. Check MANGROVE_API_URL.",
                    method=method, url=url, status_code=outcome.status_code)
            if outcome.status_code == 303:
                method, data = "GET", None
            url, params = target, None
        raise MalformedResponseError(f"{method} {_path_of(url)} was redirected more than {MAX_REDIRECTS} times.",
                                     method=method, url=url)

    def _exchange(self, method: str, url: str, params: Mapping[str, Any] | None, data: bytes | None,
                  deadline: float) -> requests.Response | Failure:
        """Send one request and read its whole answer; any transport failure comes back as a ``Failure``."""
        remaining = deadline - self._clock()
        if remaining <= 0:
            return Failure(APITimeoutError(method=method, url=url, timeout=self.settings.call_deadline,
                                            detail="the call's overall deadline passed"), maybe_sent=False)
        timeout = (min(self.settings.connect_timeout, remaining), min(self.settings.read_timeout, remaining))
        headers = {"Content-Type": "application/json"} if data is not None else None
        time_left.seconds = remaining
        credentials.token = self.settings.token if origin_of(url) == self._origin else None
        failure: Failure | None = None
        response: requests.Response | None = None
        late = False
        try:
            response = self._session.request(method, url, params=params, data=data, headers=headers,
                                             timeout=timeout, allow_redirects=False, stream=True,
                                             # requests reads a None value as "no proxy"; its stubs say str.
                                             proxies=cast("dict[str, str] | None", self._proxies))
            # Past the deadline the watchdog may have cut the answer short: whatever arrived is not trusted.
            late = self._read_body(response, deadline) or self._clock() >= deadline
        except Exception as exc:  # every transport failure becomes ours, in one place
            failure = transport_failure(exc, method, url, timeout, answered=response is not None,
                                         past_deadline=self._clock() >= deadline,
                                         call_deadline=self.settings.call_deadline)
        finally:
            time_left.seconds = None
            credentials.token = None
        if failure is not None or response is None:
            return failure or Failure(APIConnectionError(method=method, url=url), maybe_sent=True)
        if late:
            return Failure(APITimeoutError(method=method, url=url, timeout=self.settings.call_deadline,
                                            detail="the answer arrived too slowly for the call's deadline"),
                            maybe_sent=True)
        return response

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
                if len(body) > MAX_BODY_BYTES:
                    raise BodyTooLarge(MAX_BODY_BYTES)  # a decompression bomb, or not the API at all
                if self._clock() > deadline:
                    return True
        # What .content and .json() read from now on, cleaned of the token: a server that echoes it into an
        # error, a task message or a batch's text never gets it into a message, a frame or a DataFrame.
        response._content = redact_bytes(bytes(body))
        return False

    def _retry_wait(self, error: MangroveError, attempt: int, deadline: float) -> float | None:
        """Seconds to wait before the next attempt, or None to give up and raise ``error``.

        Every retry counts against ``max_retries``, 429s included; a 429's wait is never shorter than the
        backoff of that attempt, so a reset that is now or already past cannot cause a storm of retries.
        """
        if attempt > self.settings.max_retries:
            return None
        left = deadline - self._clock()
        wait = self.backoff(attempt)
        if isinstance(error, RateLimitedError):
            told = error.retry_after if error.retry_after is not None else self.settings.backoff_max
            if told > self.settings.rate_limit_max_wait:
                return None
            wait = max(wait, told + self._jitter() * 0.25)
        return wait if wait < left else None

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with equal jitter: half of the step fixed, half random, capped at backoff_max."""
        step = min(self.settings.backoff_max, self.settings.backoff_initial * 2.0 ** (attempt - 1))
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


def _retryable(error: MangroveError, safe: bool) -> bool:
    if isinstance(error, RateLimitedError):
        return True  # the server refused the request: nothing happened, so even the trigger may go again
    if isinstance(error, APIStatusError):
        return safe and error.status_code in _RETRY_STATUSES
    return isinstance(error, TransportError)


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
