"""Every error mangrove_nb raises (``_responses`` holds the one function that turns an HTTP error response into
one of them).

The tree (catch ``MangroveError`` to catch everything this package raises on purpose)::

    MangroveError
     ├── ConfigurationError            no token, a token with a line break, bad base URL, bad option
     │    └── UnknownOptionError        an option that does not exist (also a TypeError)
     ├── PreconditionError             a request that cannot succeed was not sent (ledger without a model,
     │    │                             manual-select inputs not named, nothing to generate, a generation
     │    │                             for the same ledger and period running or of unknown outcome)
     │    └── ReportPlanError           a registry report cannot be filled or submitted as asked; ``problems``
     │                                  lists why (one sentence each, naming the batch and what to do)
     ├── TransportError                no usable HTTP answer arrived
     │    ├── APITimeoutError           connect or read timeout, or the call's overall deadline
     │    └── APIConnectionError        DNS, refused connection, TLS, connection dropped
     ├── APIStatusError                the server answered with an error status (carries status, method,
     │    │                             URL, the server's messages and its request id, if any)
     │    ├── AuthenticationError       401
     │    ├── PermissionDeniedError     403
     │    ├── NotFoundError             404
     │    ├── ValidationError           400 and 422, or an argument rejected before sending
     │    │    │                        (status_code None; ``argument`` names it)
     │    │    └── PeriodError          a value that is not a period (also a ValueError)
     │    ├── RateLimitedError          429 (carries retry_after seconds and reset_at)
     │    └── ServerError               5xx
     ├── MalformedResponseError        not the documented JSON: an HTML page, an empty or non-JSON body,
     │                                  missing or wrongly typed fields (carries a short excerpt only)
     ├── ReportError                   a report could not be rendered (a failing cell, an unusable
     │                                  template or output folder, a kernel that did not start)
     ├── TaskError                     an asynchronous task did not end well
     │    ├── TaskFailedError           the task ended in state ``failed`` (carries the server's message)
     │    └── TaskTimeoutError          we stopped waiting; the task goes on on the server
     ├── GenerationOutcomeUnknownError the trigger POST was sent but no answer came back: it is not known
     │                                  whether batches are being generated (deliberately not a
     │                                  TransportError, so that generic "retry on transport errors" code
     │                                  can never re-send it)
     └── SubmissionOutcomeUnknownError a report's submission POST was sent but no answer came back: it is
                                        not known whether the report went to the registry (not a
                                        TransportError either, for the same reason)

Rules every message follows: it is a complete sentence that says what went wrong and what to do; it never
contains request headers (so never the token); it quotes at most a short, cleaned excerpt of a body.

Secrets (``_secrets``, re-exported here): ``register_secret()`` (called by ``Settings`` for every token it
holds) makes ``redact()`` replace the token, and its common encodings (``Bearer …``, percent-encoded,
base64, JSON-escaped), with ``[redacted]``. Every ``MangroveError`` message and every server text this
module quotes passes through ``redact()``, so a server or gateway that echoes the Authorization header back
cannot put the token into an error.

This module imports only ``_secrets`` and ``_text`` (which imports ``_secrets`` only) from the rest of mangrove_nb,
so every other module can import it.
"""

from __future__ import annotations

import http
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ._secrets import (
    REDACTED,
    RedactingFilter,
    redact,
    redact_bytes,
    register_secret,
    secret_safe_logger,
)
from ._text import one_line

__all__ = [
    "REDACTED",
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "ConfigurationError",
    "GenerationOutcomeUnknownError",
    "MalformedResponseError",
    "MangroveError",
    "NotFoundError",
    "PeriodError",
    "PermissionDeniedError",
    "PreconditionError",
    "RateLimitedError",
    "RedactingFilter",
    "ReportError",
    "ReportPlanError",
    "ServerError",
    "SubmissionOutcomeUnknownError",
    "TaskError",
    "TaskFailedError",
    "TaskTimeoutError",
    "TransportError",
    "UnknownOptionError",
    "ValidationError",
    "redact",
    "redact_bytes",
    "register_secret",
    "secret_safe_logger",
]

# Bounds on what we quote from a server, so an error message stays readable and never carries a whole body.
EXCERPT_CHARS = 160
SERVER_MESSAGE_CHARS = 300
SERVER_MESSAGES_SHOWN = 5
# A ReportPlanError's message lists at most this many problems (all are in .problems).
PROBLEMS_SHOWN = 10

# RateLimit-Reset is documented as a Unix time. Values below this (September 2001) cannot be a current
# Unix time, so they are read as "seconds from now", as in the IETF RateLimit header draft.
_UNIX_TIME_FLOOR = 1_000_000_000

class MangroveError(Exception):
    """Base class of every error mangrove_nb raises on purpose; its message is redacted of secrets."""

    def __init__(self, message: str) -> None:
        message = redact(message)
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def add_advice(self, sentence: str) -> None:
        """Append a sentence to the message itself (unlike ``add_note``, shown wherever ``str()`` is)."""
        self.message = redact(f"{self.message} {sentence}")
        self.args = (self.message,)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its class, message and attributes, not its constructor's arguments (most subclasses take
        keyword-only ones): an error crossing a process boundary (multiprocessing, joblib) unpickles whole. A
        ``ReportPlanError``'s ``plan`` (frames and the report) goes with it."""
        return (_rebuilt, (type(self), self.message, dict(vars(self))))


def _rebuilt(cls: type[MangroveError], message: str, state: dict[str, Any]) -> MangroveError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class ConfigurationError(MangroveError):
    """The client cannot be set up as asked: missing token, unsafe or malformed base URL, bad option."""


class UnknownOptionError(ConfigurationError, TypeError):
    """An option that ``connect()`` / ``Settings`` does not have (also a ``TypeError``, as Python says for an
    unexpected keyword argument); the message lists the valid ones."""


class PreconditionError(MangroveError):
    """Checked before sending: the request cannot succeed, so it was not sent; the message says what to do."""


class ReportPlanError(PreconditionError):
    """A registry report cannot be filled or submitted as asked, so nothing was sent.

    ``report_id`` names the report; ``problems`` holds one sentence per problem (each names the batch, or the
    report, and what to do), ``batch_ids`` the batch of each (None for a problem of the report itself), and
    ``plan`` the ``registry.ReportPlan`` they were found in (None when the report could not be planned)."""

    def __init__(self, message: str | None = None, *, report_id: str, problems: tuple[str, ...] | list[str],
                 batch_ids: tuple[str | None, ...] | list[str | None] = (), plan: Any = None) -> None:
        self.report_id = redact(report_id)
        self.problems = tuple(redact(p) for p in problems)
        self.batch_ids = tuple(batch_ids)
        self.plan = plan
        if message is None:
            shown = " ".join(f"({n}) {p}" for n, p in enumerate(self.problems[:PROBLEMS_SHOWN], start=1))
            more = len(self.problems) - PROBLEMS_SHOWN
            extra = f" ({more} more: see .problems)" if more > 0 else ""
            message = (f"Nothing was sent for report {self.report_id}: {len(self.problems)} problem(s) found "
                       f"before asking the server. {shown}{extra}")
        super().__init__(message)


class TransportError(MangroveError):
    """No usable HTTP answer arrived (timeout or connection failure)."""

    default_hint = "Check your network connection and the base URL, then try again."

    def __init__(self, message: str | None = None, *, method: str, url: str, detail: str | None = None) -> None:
        self.method = method.upper()
        self.url = redact(_safe_url(url))
        self.detail = redact(detail) if detail is not None else None
        super().__init__(message or self._default_message())

    def _default_message(self) -> str:
        reason = f" ({_clean(self.detail, EXCERPT_CHARS)})" if self.detail else ""
        return f"{self.method} {self.url} got no answer{reason}. {self.default_hint}"


class APITimeoutError(TransportError):
    """A connect or read timeout, or the overall deadline of a call, expired."""

    def __init__(
        self,
        message: str | None = None,
        *,
        method: str,
        url: str,
        timeout: float | None = None,
        detail: str | None = None,
    ) -> None:
        self.timeout = timeout
        super().__init__(message, method=method, url=url, detail=detail)

    def _default_message(self) -> str:
        after = f" after {self.timeout:g} s" if self.timeout is not None else ""
        reason = f" ({_clean(self.detail, EXCERPT_CHARS)})" if self.detail else ""
        return (
            f"{self.method} {self.url} timed out{after}{reason}. The server may be busy or unreachable; "
            "try again later, or allow more time with the timeout settings."
        )


class APIConnectionError(TransportError):
    """The connection could not be made or was dropped (DNS, refused, TLS, reset)."""

    def _default_message(self) -> str:
        reason = f" ({_clean(self.detail, EXCERPT_CHARS)})" if self.detail else ""
        return (
            f"Could not connect to the Mangrove API for {self.method} {self.url}{reason}. "
            "Check your network connection and the base URL (MANGROVE_API_URL), then try again."
        )


class APIStatusError(MangroveError):
    """The server answered with an error status; subclasses name the common ones."""

    default_hint = "The API does not document this status; read the server's message and try again."

    def __init__(
        self,
        message: str | None = None,
        *,
        status_code: int,
        method: str,
        url: str,
        server_messages: tuple[str, ...] | list[str] = (),
        request_id: str | None = None,
        body_note: str | None = None,
        hint: str | None = None,
    ) -> None:
        self._hint = hint
        self.status_code = status_code
        self.method = method.upper()
        self.url = redact(_safe_url(url))
        self.server_messages = tuple(redact(m) for m in server_messages)
        self.request_id = redact(request_id) if request_id is not None else None
        self.body_note = body_note
        super().__init__(message or self._default_message())

    def hint(self) -> str:
        """The sentence that tells the user what to do about this error."""
        return self._hint or self.default_hint

    def _default_message(self) -> str:
        parts = [f"{self.method} {self.url} failed with HTTP {self.status_code}{_phrase(self.status_code)}."]
        if self.server_messages:
            shown = "; ".join(f'"{m}"' for m in self.server_messages[:SERVER_MESSAGES_SHOWN])
            more = len(self.server_messages) - SERVER_MESSAGES_SHOWN
            extra = f" (and {more} more)" if more > 0 else ""
            parts.append(f"The server said: {shown}{extra}.")
        elif self.body_note:
            parts.append(self.body_note)
        else:
            parts.append("The server gave no explanation.")
        parts.append(self.hint())
        if self.request_id:
            parts.append(f"Request id: {self.request_id}.")
        return " ".join(parts)


class AuthenticationError(APIStatusError):
    """401: the token is missing, wrong, revoked or expired."""

    default_hint = (
        "Check the API token: pass token=... or set MANGROVE_API_TOKEN; it may be mistyped, revoked or expired."
    )


class PermissionDeniedError(APIStatusError):
    """403: the token is valid but may not do this."""

    default_hint = (
        "The token is valid but lacks permission for this call; batch generation needs a token with "
        "Production Accounting read and write permission."
    )


class NotFoundError(APIStatusError):
    """404: the ledger, batch, task... does not exist or the token cannot see it."""

    default_hint = "Check the ID in the URL: it does not exist, or your token cannot see it."
    #: For a 404 on an address without an id (``/ledgers``, ``/batches``): only a wrong base URL explains it.
    base_url_hint = ("Nothing is there at this address, which the Mangrove API always serves: the base URL is "
                     "probably wrong. It should end in /api/v1, e.g. https://app.gomangrove.com/api/v1; check "
                     "MANGROVE_API_URL or connect(base_url=...).")


class ValidationError(APIStatusError):
    """The request's parameters were rejected: by the server (400 or 422, see ``server_messages``), or by
    mangrove_nb before anything was sent (``status_code`` is None and ``argument`` names the bad argument)."""

    default_hint = "The server rejected the request; correct what its message names and try again."

    def __init__(
        self,
        message: str | None = None,
        *,
        argument: str | None = None,
        status_code: int | None = None,
        method: str = "",
        url: str = "",
        **kwargs: Any,
    ) -> None:
        self.argument = argument
        super().__init__(message, status_code=status_code, method=method, url=url, **kwargs)  # type: ignore[arg-type]


class PeriodError(ValidationError, ValueError):
    """A value could not be read as a period; the message lists the accepted forms."""

    def __init__(self, message: str, *, argument: str | None = "period") -> None:
        super().__init__(message, argument=argument)


class ReportError(MangroveError):
    """A report could not be rendered: a cell failed (``cell_number``, ``cell_label``, ``partial`` say which and
    where the partial notebook is), the template or output folder is unusable, or the kernel did not start.
    When a cell failed, the original error is ``__cause__``."""

    def __init__(self, message: str, *, cell_number: int | None = None, cell_label: str | None = None,
                 partial: Path | None = None) -> None:
        super().__init__(message)
        self.cell_number = cell_number
        self.cell_label = cell_label
        self.partial = partial


class RateLimitedError(APIStatusError):
    """429: too many requests. ``retry_after`` (seconds) and ``reset_at`` (UTC) say when to try again."""

    def __init__(
        self,
        message: str | None = None,
        *,
        retry_after: float | None = None,
        reset_at: datetime | None = None,
        **kwargs: Any,
    ) -> None:
        self.retry_after = retry_after
        self.reset_at = reset_at
        super().__init__(message, **kwargs)

    def hint(self) -> str:
        if self.retry_after is None:
            return "The rate limit (by default 1,000 requests a minute) was exceeded; wait a minute, then retry."
        until = f" (until {self.reset_at:%H:%M:%S} UTC)" if self.reset_at is not None else ""
        return f"The rate limit was exceeded; wait {self.retry_after:.0f} s{until} and try again."


class ServerError(APIStatusError):
    """5xx: the server failed or is unavailable."""

    default_hint = (
        "The problem is on the server's side; try again in a few minutes, and contact Mangrove support if it persists."
    )


class MalformedResponseError(MangroveError):
    """Not the documented JSON: an HTML page, an empty or non-JSON body, missing or mistyped fields."""

    def __init__(
        self,
        message: str,
        *,
        method: str | None = None,
        url: str | None = None,
        status_code: int | None = None,
        excerpt: str | None = None,
        field: str | None = None,
        index: int | None = None,
    ) -> None:
        self.method = method.upper() if method else None
        self.url = redact(_safe_url(url)) if url else None
        self.status_code = status_code
        self.excerpt = _clean(excerpt, EXCERPT_CHARS) if excerpt is not None else None
        self.field = field
        self.index = index
        super().__init__(message)


class TaskError(MangroveError):
    """An asynchronous task did not end well; ``task_id`` says which."""

    def __init__(self, message: str, *, task_id: int | str) -> None:
        self.task_id = task_id
        super().__init__(message)


class TaskFailedError(TaskError):
    """The task ended in state ``failed``; ``error_message`` is the server's explanation."""

    def __init__(self, message: str | None = None, *, task_id: int | str, error_message: str | None) -> None:
        self.error_message = redact(error_message) if error_message is not None else None
        if message is None:
            said = (
                f'The server said: "{_clean(error_message, SERVER_MESSAGE_CHARS)}".'
                if error_message
                else "The server gave no error message."
            )
            message = (
                f"Task {task_id} failed on the server. {said} Fix the cause (often missing or invalid "
                "input data for the period) and start the generation again."
            )
        super().__init__(message, task_id=task_id)


class TaskTimeoutError(TaskError):
    """We stopped waiting for the task; it keeps running on the server."""

    def __init__(self, message: str | None = None, *, task_id: int | str, timeout: float | None = None,
                 reattach: str | None = None) -> None:
        self.timeout = timeout
        if message is None:
            after = f" after {timeout:g} s" if timeout is not None else ""
            message = (
                f"Stopped waiting for task {task_id}{after}; the task goes on running on the server. "
                f"Re-attach later with {reattach or f'client.task({task_id!r}).wait()'}."
            )
        super().__init__(message, task_id=task_id)


class GenerationOutcomeUnknownError(MangroveError):
    """The generation request was sent but no answer came back, so whether it started is unknown.

    The request is never re-sent automatically: a second generation could double-count. Check first.
    """

    def __init__(
        self,
        message: str | None = None,
        *,
        ledger_id: str,
        start: datetime | str,
        end: datetime | str,
        detail: str | None = None,
    ) -> None:
        self.ledger_id = ledger_id
        self.start = _iso(start)
        self.end = _iso(end)
        self.detail = redact(detail) if detail is not None else None
        if message is None:
            reason = f" ({_clean(detail, EXCERPT_CHARS)})" if detail else ""
            message = (
                f"The batch-generation request for ledger {ledger_id}, period {self.start} to {self.end}, "
                f"was sent but its outcome is unknown{reason}: generation may or may not have started. It was "
                "not re-sent, to avoid generating twice, and this session will not send it again until you "
                f"check: client.reconcile({ledger_id!r}, ({self.start!r}, {self.end!r})) shows the batches "
                "the server has and what is still missing (client.batches("
                f"{ledger_id!r}, ...) lists them too)."
            )
        super().__init__(message)


class SubmissionOutcomeUnknownError(MangroveError):
    """A report's submission was sent but no answer came back, so whether it went to the registry is unknown.

    Submitting is irreversible: the submission is never re-sent automatically, and this session (and a restarted
    one) refuses to submit that report again until ``client.reconcile_report(report_id)`` has read its status.
    """

    def __init__(self, message: str | None = None, *, report_id: str, detail: str | None = None) -> None:
        self.report_id = report_id
        self.detail = redact(detail) if detail is not None else None
        if message is None:
            reason = f" ({_clean(detail, EXCERPT_CHARS)})" if detail else ""
            message = (
                f"The submission of report {report_id} was sent but its outcome is unknown{reason}: the report may "
                "or may not have gone to the registry. It was not re-sent, to avoid submitting twice, and this "
                f"session will not submit it again until you check: client.reconcile_report({report_id!r}) reads "
                "the report's status and says whether it was sent."
            )
        super().__init__(message)


def _clean(text: str, limit: int) -> str:
    """Secrets redacted, on one line, control and bidi characters removed, cut to ``limit`` characters
    (``_text.one_line``)."""
    return one_line(text, limit)


def _safe_url(url: str) -> str:
    """The URL without any user:password part, so credentials embedded in a URL never reach a message."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _clean(url, 300)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _phrase(status_code: int) -> str:
    try:
        return f" {http.HTTPStatus(status_code).phrase}"
    except ValueError:
        return ""


def _iso(moment: datetime | str) -> str:
    if isinstance(moment, datetime):
        aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
        return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return moment
