"""What goes into a request and what comes back, for ``client``: the body as JSON bytes, an answer's JSON, one
JSON object where the contract documents one, and what the answer to a once-only write says.

Pure functions, no HTTP. A body JSON cannot carry (NaN, infinity, an object) is a ``ValidationError`` before
anything is sent; an answer that is not the documented JSON is a ``MalformedResponseError``. A once-only write's
answer is its JSON object, or ``{task_key: <task id>}`` for a 303 whose Location names the task; anything else
(another redirect, a body that is not a JSON object) is raised as the caller's ``unknown(detail)``, never retried
here (``client.HttpClient.send_once`` decides what is sent again). ``_what_happened`` is the detail such an
error carries for a failure after the request may have left.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from ._responses import parse_json
from .errors import MalformedResponseError, MangroveError, ValidationError


def _accepted(response: requests.Response, method: str, url: str, unknown: Callable[[str], MangroveError],
              task_path: str, task_key: str = "id") -> dict[str, Any]:
    """What a once-only write's non-error answer says: the JSON object, or the task a 303 points to."""
    status = response.status_code
    if 300 <= status < 400:
        location = response.headers.get("Location", "")
        found = _task_id_in(urljoin(url, location), task_path)
        if status == 303 and found is not None:
            return {task_key: found, "state": "pending"}
        where = f" to {_clean_location(location)}" if location else ""
        raise unknown(f"HTTP {status} (a redirect{where}), which is not followed for a request that must not be "
                      "sent twice")
    problem = None
    try:
        answer = parse_json(response.content, method=method, url=url, status_code=status)
    except MalformedResponseError as exc:
        problem = f"HTTP {status}, but {_first_sentence(exc).split(' answered with ', 1)[-1]}"
    if problem is not None:
        raise unknown(problem)
    if not isinstance(answer, dict):
        raise unknown(f"HTTP {status}, but the answer was not a JSON object")
    return answer


def _task_id_in(target: str, task_path: str) -> str | None:
    path = urlsplit(target).path
    marker = path.rfind(task_path)
    if marker < 0:
        return None
    rest = path[marker + len(task_path):].strip("/")
    return rest if rest and "/" not in rest else None


def _clean_location(location: str) -> str:
    return " ".join(location.split())[:120]


def _what_happened(error: MangroveError) -> str:
    detail = getattr(error, "detail", None)
    return detail if isinstance(detail, str) and detail else _first_sentence(error)


def _first_sentence(error: MangroveError) -> str:
    return str(error).split(". ")[0]


def _encode_json(body: Any, method: str, path: str) -> bytes:
    """The request body as JSON bytes; a value JSON cannot carry (NaN, infinity, an object) is named at once."""
    problem = None
    try:
        return json.dumps(body, allow_nan=False, separators=(",", ":")).encode("utf-8")
    except (ValueError, TypeError) as exc:
        problem = str(exc)
    raise ValidationError(f"{method} {path}: the request body cannot be sent as JSON ({problem}); amounts must be "
                          "finite numbers and ids strings or integers. Nothing was sent.", argument="body")


def _json_of(response: requests.Response, method: str, url: str) -> Any:
    if response.status_code == 204 or not response.content:
        return None
    return parse_json(response.content, method=method, url=url, status_code=response.status_code)


def _object(answer: Any, method: str, path: str) -> dict[str, Any]:
    if not isinstance(answer, dict):
        raise MalformedResponseError(f"{method} {path} did not answer with a JSON object as documented.",
                                     method=method, url=path)
    return answer
