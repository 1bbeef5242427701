"""What a report read, and the read cache of one command: the key of an answer (``RequestKey``, ``request_key``),
the clients that remember what they read and the data fingerprint of it (``ReadingHttpClient``, ``read_digest``,
``read_fingerprint``), and the client that reads through the cache shared by a command's reports
(``RecordingHttpClient``, ``ReadCache``).

A key is the method, the path below the base URL, the query pairs (sorted) and the JSON body, all canonical JSON, the
same on any machine. Only safe calls (GETs and the read-only preview) are remembered and cached; nothing that writes,
and no task's status (``/async_tasks/``), ever is. A cache file is written to a temporary name and renamed, so a
reader never sees half of one; a cache that cannot be written only costs another request. The fingerprint is a
SHA-256 of every (request, answer) pair read, in a named format (``FINGERPRINT_FORMAT``): a new format gives another
fingerprint for the same answers. ``snapshot`` is the public face (see its docstring for the whole layer).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from mangrove_nb.client import HttpClient
from mangrove_nb.errors import ReportError
from mangrove_nb.settings import Settings

from ._text import _one_line

if TYPE_CHECKING:
    from mangrove_nb import Client

# Calls never cached: a task's status changes while one waits for it.
_NEVER_CACHED = ("/async_tasks/",)
# What the data fingerprint hashes (``read_digest``): a new format gives another fingerprint for the same answers.
FINGERPRINT_FORMAT = "mangrove_nb.reads/1"


# --- the key of an answer ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestKey:
    """What identifies an API answer: method, path (below the base URL), query pairs (sorted) and JSON body."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    body: str | None  # canonical JSON, for the read-only preview POST

    @property
    def canonical(self) -> str:
        return json.dumps([self.method, self.path, [list(pair) for pair in self.query], self.body],
                          separators=(",", ":"), ensure_ascii=True)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.canonical.encode("ascii")).hexdigest()

    def __str__(self) -> str:
        """``GET /ledgers?page=1&page_size=100`` (a body is summarised: ``POST /x with {"start_time": ...}``)."""
        text = f"{self.method} {self.path}" + (f"?{urlencode(self.query)}" if self.query else "")
        return text + (f" with {_one_line(self.body, 120)}" if self.body is not None else "")

    def record(self, response: Any) -> dict[str, Any]:
        return {"method": self.method, "path": self.path, "query": [list(pair) for pair in self.query],
                "body": json.loads(self.body) if self.body is not None else None, "response": response}

    @classmethod
    def of_record(cls, record: Mapping[str, Any]) -> RequestKey:
        query = record.get("query")
        if not isinstance(record.get("method"), str) or not isinstance(record.get("path"), str) or not isinstance(
                query, list) or not all(isinstance(p, list) and len(p) == 2 and all(isinstance(s, str) for s in p)
                                        for p in query) or "response" not in record:
            raise ValueError("not a snapshot record")
        body = record.get("body")
        return cls(record["method"], record["path"], tuple((str(k), str(v)) for k, v in query),
                   None if body is None else _canonical_json(body))


def request_key(method: str, path: str, params: Mapping[str, Any] | None = None, json_body: Any = None
                ) -> RequestKey:
    """The key of a request as ``HttpClient.request`` gets it; values as requests puts them in the query string."""
    pairs: list[tuple[str, str]] = []
    for name, value in (params or {}).items():
        if value is None:
            continue  # requests leaves it out
        for item in value if isinstance(value, list | tuple) else [value]:
            pairs.append((str(name), str(item)))
    return RequestKey(method.upper(), path, tuple(sorted(pairs)),
                      None if json_body is None else _canonical_json(json_body))


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


# --- recording ------------------------------------------------------------------------------------------------


class ReadCache:
    """Parsed API answers by key, one file each in a private folder that the reports of one command share (the
    kernels are separate processes); and, per kernel, a log of the keys it read.

    A file is written to a temporary name and renamed, so a reader never sees half of one; two kernels that
    miss the same key both fetch it, and either answer is a whole one.
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self._lock = threading.Lock()

    def get(self, key: RequestKey) -> tuple[bool, Any]:
        try:
            stored = json.loads((self.folder / f"{key.digest}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False, None
        if not isinstance(stored, dict) or stored.get("key") != key.canonical:
            return False, None
        return True, stored.get("response")

    def put(self, key: RequestKey, response: Any) -> None:
        path = self.folder / f"{key.digest}.json"
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        with contextlib.suppress(OSError):  # a cache that cannot be written only costs another request
            temporary.write_text(json.dumps({"key": key.canonical, "response": response}), encoding="utf-8")
            os.replace(temporary, path)
        with contextlib.suppress(OSError):
            temporary.unlink()

    def log(self, log: Path, key: RequestKey) -> None:
        line = (key.canonical + "\n").encode("ascii")
        with self._lock, open(log, "ab") as handle:
            handle.write(line)

    def records(self, logs: Iterable[Path]) -> list[dict[str, Any]]:
        """The records (key and answer) of every key the ``logs`` name, once each, sorted by key."""
        keys: dict[str, RequestKey] = {}
        for log in logs:
            with contextlib.suppress(FileNotFoundError):
                for line in log.read_text(encoding="ascii").splitlines():
                    if line and line not in keys:
                        method, path, query, body = json.loads(line)
                        keys[line] = RequestKey(method, path, tuple((k, v) for k, v in query), body)
        found = []
        for canonical in sorted(keys):
            key = keys[canonical]
            known, response = self.get(key)
            if not known:
                raise ReportError(f"The answer to {key} the report read is no longer in its read cache; render the "
                                  "report again.")
            found.append(key.record(response))
        return found


class ReadingHttpClient(HttpClient):
    """``HttpClient`` that remembers every answer it read (safe calls, task polls aside), so that ``fingerprint()``
    hashes them all: what the report read, whatever it read it for. ``RecordingHttpClient`` below and
    ``ReplayingHttpClient`` (``_replaying``) are ones too."""

    def __init__(self, settings: Settings, **options: Any) -> None:
        super().__init__(settings, **options)
        self._read: dict[str, set[str]] = {}
        self._read_lock = threading.Lock()  # a listing's pages are read in threads

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json_body: Any = None,
                safe: bool, deadline: float | None = None) -> Any:
        answer = self._answer(method, path, params=params, json_body=json_body, safe=safe, deadline=deadline)
        if safe and not path.startswith(_NEVER_CACHED):
            self._remember(request_key(method, path, params, json_body), answer)
        return answer

    def _answer(self, method: str, path: str, *, params: Mapping[str, Any] | None, json_body: Any, safe: bool,
                deadline: float | None) -> Any:
        return super().request(method, path, params=params, json_body=json_body, safe=safe, deadline=deadline)

    def _remember(self, key: RequestKey, answer: Any) -> None:
        text = _canonical_json(answer)
        with self._read_lock:
            self._read.setdefault(key.canonical, set()).add(text)

    def fingerprint(self) -> str:
        """``read_fingerprint``: a SHA-256 of every (request, answer) pair read so far."""
        with self._read_lock:
            pairs = sorted([key, text] for key, texts in self._read.items() for text in texts)
        return read_digest(pairs)


def read_digest(pairs: Iterable[Sequence[str]]) -> str:
    """The fingerprint of the answers read: a SHA-256 of the sorted ``[request key, answer]`` pairs, both canonical
    JSON (``RequestKey.canonical``, keys sorted), the same on any machine for the same answers."""
    payload = json.dumps({"format": FINGERPRINT_FORMAT, "answers": sorted([str(k), str(t)] for k, t in pairs)},
                         separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(payload.encode("ascii")).hexdigest()


def read_fingerprint(client: Client) -> str:
    """The data fingerprint of a report: a SHA-256 of every answer ``client`` (``connect()``'s) read, keyed by its
    request (method, path below the base URL, query and body): ledgers, inputs, the project, batches and their
    details, calculations, the generation previews, the registry reports. The same fingerprint means the same
    answers were read; neither the base URL nor the time enters it. A client that does not remember what it read
    (one from ``mangrove_nb.connect``) is a ``TypeError``."""
    http = getattr(client, "http", None)
    if not isinstance(http, ReadingHttpClient):
        raise TypeError("read_fingerprint needs a client from mangrove_nb.reports.connect(), which remembers what it "
                        "read; connect with reports.connect(base_url=...) in the report's first cell.")
    return http.fingerprint()


class RecordingHttpClient(ReadingHttpClient):
    """``HttpClient`` whose safe calls are answered from a ``ReadCache`` when it has them, else sent and kept there;
    every key read is appended to ``log``. Writes, the generation trigger and task polls pass straight through."""

    def __init__(self, settings: Settings, *, cache: ReadCache, log: Path, **options: Any) -> None:
        super().__init__(settings, **options)
        self._cache = cache
        self._log = log

    def _answer(self, method: str, path: str, *, params: Mapping[str, Any] | None, json_body: Any, safe: bool,
                deadline: float | None) -> Any:
        if not safe or path.startswith(_NEVER_CACHED):
            return super()._answer(method, path, params=params, json_body=json_body, safe=safe, deadline=deadline)
        key = request_key(method, path, params, json_body)
        known, answer = self._cache.get(key)
        if not known:
            answer = super()._answer(method, path, params=params, json_body=json_body, safe=safe, deadline=deadline)
            self._cache.put(key, answer)
        self._cache.log(self._log, key)
        return answer
