"""The token's forms, and the one function that removes them from text: ``redact()``.

``register_secret()`` (called by ``Settings`` for every token it holds) records the token and its common
encodings; ``redact()`` replaces them with ``[redacted]`` in text, ``redact_bytes()`` in a response body
before anything parses it, and ``RedactingFilter`` in log records. ``errors`` re-exports these names; every
``MangroveError`` message passes through ``redact()``. Imports nothing of ours.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
from typing import Any
from urllib.parse import quote, quote_plus

__all__ = ["REDACTED", "RedactingFilter", "redact", "redact_bytes", "redact_json", "register_secret",
           "secret_safe_logger"]

REDACTED = "[redacted]"
# Forms shorter than this are matched only as whole words (a short token must not mangle ordinary words).
_SECRET_MIN_LENGTH = 8
# Base64 of a token inside a longer blob depends on where it starts (offset mod 3): this many characters of
# an encoding, at the least, are kept as a form to look for.
_B64_MIN = 12
_secret_lock = threading.Lock()


class _Secrets:
    """Every form of every registered secret: plain forms (longest first), whole-word patterns for short ones,
    and whitespace-tolerant patterns (a token that a gateway or a log wrapped across lines)."""

    def __init__(self) -> None:
        self.forms: list[str] = []
        self.byte_forms: list[bytes] = []
        self.words: list[re.Pattern[str]] = []
        self.spaced: list[re.Pattern[str]] = []


_secrets = _Secrets()


def register_secret(value: str) -> None:
    """Have ``redact()`` (and ``redact_bytes()``) hide ``value`` and its common encodings from now on.

    Settings calls this for the API token, so every message mangrove_nb builds from server text, and every
    body the client reads, is cleaned of it, whichever client or thread it came from. The forms: the token;
    ``Bearer <token>``; percent-encoded (upper- and lower-case hex, ``+`` for spaces or not); JSON-escaped;
    base64 and URL-safe base64 of the token and of ``Bearer <token>`` at every alignment inside a longer blob.
    """
    if not value:
        return
    forms = {value, f"Bearer {value}", json.dumps(value)[1:-1], json.dumps(value)[1:-1].replace("/", "\\/")}
    for encoded in (quote(value, safe=""), quote_plus(value)):
        forms.update({encoded, re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), encoded)})
    raw = value.encode("utf-8", errors="replace")
    for plain in (raw, b"Bearer " + raw):
        for offset in range(3):
            for encode in (base64.b64encode, base64.urlsafe_b64encode):
                text = encode(b"\0" * offset + plain).decode("ascii")
                middle = text[(4 * offset + 2) // 3: len(text) - 4]
                if len(middle) >= _B64_MIN:
                    forms.add(middle)
    with _secret_lock:
        if len(value) < _SECRET_MIN_LENGTH:
            word = re.compile(r"(?<![\w-])" + re.escape(value) + r"(?![\w-])")
            if word.pattern not in {p.pattern for p in _secrets.words}:
                _secrets.words.append(word)
            forms = {f for f in forms if len(f) >= _SECRET_MIN_LENGTH}
        else:
            spaced = re.compile(r"\s*".join(re.escape(c) for c in value))
            if spaced.pattern not in {p.pattern for p in _secrets.spaced}:
                _secrets.spaced.append(spaced)
        known = sorted(set(_secrets.forms) | forms, key=len, reverse=True)
        _secrets.forms = known
        _secrets.byte_forms = [f.encode("utf-8") for f in known]


def redact(text: str) -> str:
    """``text`` with every registered secret (and its encodings) replaced by ``[redacted]``."""
    if not isinstance(text, str):
        return text
    for form in _secrets.forms:
        if form in text:
            text = text.replace(form, REDACTED)
    for word in _secrets.words:
        text = word.sub(REDACTED, text)
    if len(text) < 100_000:
        for spaced in _secrets.spaced:
            text = spaced.sub(REDACTED, text)
    return text


def redact_bytes(body: bytes) -> bytes:
    """A response body with every registered secret's forms replaced (before anything parses it), so server
    data that echoes the token (an error body, a task message, a batch's text) never carries it further."""
    for form in _secrets.byte_forms:
        if form in body:
            body = body.replace(form, REDACTED.encode())
    if _secrets.words:
        text = body.decode("utf-8", errors="surrogateescape")
        cleaned = redact(text)
        if cleaned != text:
            body = cleaned.encode("utf-8", errors="surrogateescape")
    return body


class RedactingFilter(logging.Filter):
    """A logging filter that renders each record's message and traceback text once, with every registered secret
    redacted. Standard formatters print ``exc_text`` when it is set, so no handler formats the token back in;
    ``exc_info`` stays for tools that want the exception object."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = redact("".join(_format_exception(record.exc_info))).rstrip("\n")
        return True


def _format_exception(exc_info: Any) -> list[str]:
    import traceback

    return traceback.format_exception(*exc_info)


def secret_safe_logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)`` with a ``RedactingFilter`` attached (once)."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(RedactingFilter())
    return logger


def redact_json(value: Any) -> Any:
    """A parsed JSON value with every string (keys too) redacted: for bodies whose ``\\uXXXX`` escapes could
    spell the token in a way ``redact_bytes`` cannot see before parsing."""
    if not _secrets.forms and not _secrets.words:
        return value
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [redact_json(item) for item in value]
    if isinstance(value, dict):
        return {redact(key) if isinstance(key, str) else key: redact_json(item) for key, item in value.items()}
    return value
