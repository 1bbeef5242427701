"""The one function from an HTTP error response to the exception it means (``error_from_response``), the
reading of a JSON body (``parse_json``) and of the rate-limit reset (``rate_limit_reset_at``).

Every message quotes a server only through ``errors._clean`` (redacted, one line, cut short) and names the URL
only without credentials. This module imports only ``errors`` (and its ``_secrets``) from mangrove_nb.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ._secrets import redact_json
from .errors import (
    _UNIX_TIME_FLOOR,
    EXCERPT_CHARS,
    SERVER_MESSAGE_CHARS,
    APIStatusError,
    AuthenticationError,
    MalformedResponseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
    ValidationError,
    _clean,
    _phrase,
    _safe_url,
)

__all__ = ["error_from_response", "parse_json", "rate_limit_reset_at"]


_STATUS_CLASSES: dict[int, type[APIStatusError]] = {
    400: ValidationError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    422: ValidationError,
    429: RateLimitedError,
}


def error_from_response(
    status_code: int,
    headers: Mapping[str, str],
    body: bytes | str,
    *,
    method: str,
    url: str,
    now: float | None = None,
    has_id: bool = True,
) -> APIStatusError | MalformedResponseError:
    """Return the exception for an HTTP response that is not a success.

    The server's message(s) are read from either documented error body (``{"message": ...}`` or
    ``{"status": "error", "statusCode": N, "errors": [{"message": ...}]}``); any other body (HTML page,
    empty, not JSON, a JSON list or number) gives a message that names the status. Error statuses
    (>= 400) always map by status, because the status is what decides whether to retry; a status below 400
    is not something the API documents for a failure and gives a ``MalformedResponseError``.
    ``now`` (Unix time) is for tests; it defaults to the current time. ``has_id=False`` says the address holds
    no id (``/ledgers``): a 404 there can only mean a wrong base URL, and the message says so.
    """
    text = _decode(body)
    if status_code < 400:
        return MalformedResponseError(
            f"{method.upper()} {_safe_url(url)} answered with HTTP {status_code}{_phrase(status_code)}, "
            "which the Mangrove API does not use for this call. Check the base URL (a proxy or login page "
            "may be in the way) and try again.",
            method=method,
            url=url,
            status_code=status_code,
            excerpt=_excerpt(text),
        )
    payload, note = _read_error_body(text)
    common: dict[str, Any] = {
        "status_code": status_code,
        "method": method,
        "url": url,
        "server_messages": _server_messages(payload),
        "request_id": _header(headers, "X-Request-Id") or _header(headers, "Request-Id"),
        "body_note": note,
    }
    if status_code == 429:
        moment = time.time() if now is None else now
        reset_at = rate_limit_reset_at(headers, now=moment)
        retry_after = _retry_after(headers, reset_at, moment)
        return RateLimitedError(retry_after=retry_after, reset_at=reset_at, **common)
    cls = _STATUS_CLASSES.get(status_code, ServerError if status_code >= 500 else APIStatusError)
    if cls is NotFoundError and not has_id:
        common["hint"] = NotFoundError.base_url_hint
    return cls(**common)


def parse_json(body: bytes | str, *, method: str, url: str, status_code: int | None = None) -> Any:
    """Parse a response body as JSON, or raise ``MalformedResponseError`` saying what came instead."""
    text = _decode(body)
    where = f"{method.upper()} {_safe_url(url)}"
    if not text.strip():
        raise MalformedResponseError(
            f"{where} answered with an empty body where JSON was expected. Check the base URL and try again.",
            method=method,
            url=url,
            status_code=status_code,
            excerpt="",
        )
    too_deep = False
    try:
        parsed = json.loads(text)
        # A \\uXXXX escape can spell the token so that the byte-level redaction did not see it: clean the strings.
        return redact_json(parsed) if "\\u" in text else parsed
    except ValueError:
        # Deliberately no exception chaining: the JSON decoder's error repeats the whole document.
        pass
    except RecursionError:
        too_deep = True
    if too_deep:
        problem = "JSON nested too deeply to read. Check the base URL and try again."
    elif _looks_like_html(text):
        problem = (
            "an HTML page instead of JSON (it looks like a proxy, captive portal or login page). Check the "
            "base URL and your network (VPN, proxy), then try again."
        )
    else:
        problem = "a body that is not JSON. Check the base URL and try again."
    raise MalformedResponseError(
        f"{where} answered with {problem}",
        method=method,
        url=url,
        status_code=status_code,
        excerpt=_excerpt(text),
    )


def rate_limit_reset_at(headers: Mapping[str, str], *, now: float | None = None) -> datetime | None:
    """When the rate-limit window resets, from ``RateLimit-Reset`` (a Unix time), as an aware UTC datetime.

    Returns None when the header is missing or unreadable. A value too small to be a current Unix time is
    read as seconds from ``now`` (the IETF draft's meaning), so either convention works.
    """
    raw = _header(headers, "RateLimit-Reset")
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    if value != value or value < 0:  # NaN or negative: unusable
        return None
    if value < _UNIX_TIME_FLOOR:
        value += time.time() if now is None else now
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, ValueError, OSError):  # inf, 1e300, a year past 9999: unusable
        return None


def _retry_after(headers: Mapping[str, str], reset_at: datetime | None, now: float) -> float | None:
    # Retry-After is not documented by Mangrove, but proxies send it; the documented header wins.
    if reset_at is not None:
        return max(0.0, reset_at.timestamp() - now)
    raw = _header(headers, "Retry-After")
    if raw is not None and raw.strip().isdigit():
        return float(raw.strip())
    return None


def _read_error_body(text: str) -> tuple[Any, str | None]:
    """The parsed body (or None) and, when it could not be read, a sentence saying what it was."""
    if not text.strip():
        return None, "The response body was empty."
    try:
        return json.loads(text), None
    except ValueError:
        pass
    if _looks_like_html(text):
        return None, (
            "The response was an HTML page, not the API's JSON (perhaps from a proxy, gateway or login page)."
        )
    return None, "The response body was not JSON."


def _server_messages(payload: Any) -> tuple[str, ...]:
    """The server's explanations from either documented error shape; empty for anything else."""
    if not isinstance(payload, Mapping):
        return ()
    found: list[str] = []
    errors = payload.get("errors")
    if isinstance(errors, list):
        for item in errors:
            if isinstance(item, Mapping):
                found.append(_as_message(item.get("message", item.get("detail"))))
            else:
                found.append(_as_message(item))
    elif isinstance(errors, Mapping):  # Rails-style {"field": ["is invalid"]}, tolerated though undocumented
        for key, value in errors.items():
            values = value if isinstance(value, list) else [value]
            found.extend(f"{key} {_as_message(v)}" for v in values)
    for key in ("message", "error"):
        if key in payload and not isinstance(payload[key], Mapping | list):
            found.append(_as_message(payload[key]))
    unique = dict.fromkeys(m for m in found if m)
    return tuple(unique)


def _as_message(value: Any) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), default=str)
    return _clean(text, SERVER_MESSAGE_CHARS)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive header lookup that works on plain dicts as well as requests' headers."""
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, candidate in headers.items():
        if key.lower() == lowered:
            return candidate
    return None


def _decode(body: bytes | str | None) -> str:
    if body is None:
        return ""
    if isinstance(body, bytes | bytearray):
        return bytes(body).decode("utf-8-sig", errors="replace")  # -sig: tolerate a byte-order mark
    return body


def _looks_like_html(text: str) -> bool:
    head = text.lstrip()[:512].lower()
    return head.startswith("<") and any(tag in head for tag in ("<html", "<!doctype", "<head", "<body"))


_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


def _excerpt(text: str) -> str:
    """A short, single-line excerpt of a body: the page title of an HTML page, else its first characters."""
    if _looks_like_html(text):
        title = _TITLE.search(text)
        if title:
            return _clean(f"<title>{title.group(1)}</title>", EXCERPT_CHARS)
    return _clean(text, EXCERPT_CHARS)
