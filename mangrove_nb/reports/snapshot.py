"""Snapshots: what a report read from the API, kept beside it, so that it renders again with no API at all.

The layer sits at the HTTP client: the report kernel's cells connect through ``connect()`` (the template calls
``reports.connect``), which is ``mangrove_nb.connect()`` with a ``ReadingHttpClient`` (it remembers every answer
read, for ``read_fingerprint``: the report's data fingerprint hashes every answer the report read, keyed by its
request) unless ``render_report`` set ``MANGROVE_NB_REPORT_SNAPSHOT`` in the kernel's environment. Then the
client's ``HttpClient`` is one of these (which remember what they read too):

- ``RecordingHttpClient``: every safe call (GETs and the read-only preview) is answered from a read cache shared by
  the reports of one command, else sent as usual and its parsed answer kept there; the key of every answer the
  kernel read is logged. A quarter's data read once serves the next quarter's "previous quarter" and the one a
  year later. Nothing that writes, and no task's status, is ever cached.
- ``ReplayingHttpClient``: answers from a snapshot and sends nothing at all (no token is needed; the base URL is
  never contacted). A request the snapshot does not hold is a ``ReportError`` naming it (and logged, so that the
  run fails even where a caller would have swallowed the error); a write is refused.

The report's sections run unchanged on either; a replayed report's provenance says so (``replayed_from``:
"replayed from the snapshot taken at <UTC time> (<folder name>)"). A snapshot is a folder ``<stem>.snapshot/``
beside the report:

- ``responses.jsonl``: JSON lines, one per API answer the report read, keyed by method, path, query (and body,
  for the read-only preview POST): ``{"method", "path", "query": [[name, value], ...], "body", "response"}``,
  sorted by key. The answers are as the client parsed them, after it removed any echo of the token;
- ``manifest.json``: the format, the period, the ledgers, the project, the parameters injected, the API base URL,
  the mangrove_nb version, when it was taken (UTC) and the data fingerprint the report computed (with
  ``fingerprint_format`` when it is the fingerprint of every answer in ``responses.jsonl``), with the responses'
  count and SHA-256. Never the token.

The folder is written whole or not at all (built beside it, then renamed into place; a symlink there is replaced,
never followed). Reading one checks the format, the checksum and every line, and ``check_snapshot`` refuses a
snapshot of another period, other ledgers, another project or another API than the one asked for.

What the checks prove, and do not: the checksum detects damage (a file cut or changed by accident), and the
fingerprint that a replayed report must reproduce detects answers that differ from those the report was rendered
from. Neither is a signature: whoever can edit the folder can recompute both (the package computes them), so a
snapshot shows what was read only as far as the folder can be trusted.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from mangrove_nb.client import HttpClient
from mangrove_nb.errors import ReportError, ValidationError
from mangrove_nb.settings import REPORT_SNAPSHOT_ENV_VAR, Secret, Settings, report_snapshot_setting

from ._text import _one_line
from .files import _NOFOLLOW, _os_reason

if TYPE_CHECKING:
    from mangrove_nb import Client, Period

FORMAT = "mangrove_nb.snapshot/1"
SUFFIX = ".snapshot"
MANIFEST_NAME = "manifest.json"
RESPONSES_NAME = "responses.jsonl"
# A replay connects with a made-up token: it is never sent (nothing is), and it is long and random, so redacting
# it (every token is) can never hide a word of the report.
_REPLAY_TOKEN_PREFIX = "snapshot-replay-"  # noqa: S105 - a prefix, not a secret
# Calls never cached: a task's status changes while one waits for it.
_NEVER_CACHED = ("/async_tasks/",)
_MANIFEST_LIMIT = 1 << 20
_RESPONSES_LIMIT = 1 << 30  # what one report reads is a few MiB; a GiB is no snapshot
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
    hashes them all: what the report read, whatever it read it for. The other two clients below are ones too."""

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


# --- replaying --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """A snapshot read from its folder: the manifest, and the answers by key (``RequestKey.canonical``)."""

    path: Path
    manifest: Mapping[str, Any]
    answers: Mapping[str, str] = field(repr=False)  # the answer's JSON text: parsed afresh at every read

    @property
    def period(self) -> str:
        return str(self.manifest["period"])

    @property
    def base_url(self) -> str:
        return str(self.manifest["base_url"])

    @property
    def parameters(self) -> Mapping[str, Any]:
        return dict(self.manifest.get("parameters") or {})

    def answer(self, key: RequestKey) -> tuple[bool, Any]:
        text = self.answers.get(key.canonical)
        return (False, None) if text is None else (True, json.loads(text))


class ReplayingHttpClient(ReadingHttpClient):
    """``HttpClient`` that answers from a ``Snapshot`` and sends nothing. A request the snapshot does not hold is a
    ``ReportError`` naming it (also appended to ``misses``, so the run fails even if a caller swallowed it);
    a write is refused."""

    def __init__(self, settings: Settings, *, snapshot: Snapshot, misses: Path | None = None,
                 **options: Any) -> None:
        super().__init__(settings, **options)
        self._snapshot = snapshot
        self._misses = misses

    def _answer(self, method: str, path: str, *, params: Mapping[str, Any] | None, json_body: Any, safe: bool,
                deadline: float | None) -> Any:
        key = request_key(method, path, params, json_body)
        if not safe:
            raise ReportError(f"A report rendered from a snapshot sends nothing: {key} was not sent.")
        known, answer = self._snapshot.answer(key)
        if not known:
            message = missing_answer(self._snapshot, str(key))
            if self._misses is not None:
                with contextlib.suppress(OSError), open(self._misses, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps(message) + "\n")
            raise ReportError(message)
        return answer

    def send_once(self, method: str, path: str, body: Mapping[str, Any], **options: Any) -> dict[str, Any]:
        raise ReportError(f"A report rendered from a snapshot sends nothing: {request_key(method, path, None, body)} "
                          "was not sent.")


def missing_answer(snapshot: Snapshot, request: str) -> str:
    """Why a replay cannot go on: the snapshot does not hold an answer the report asks for."""
    return (f"The snapshot {_one_line(snapshot.path.name, 200)} holds no answer to {request}, which the report reads: "
            "the snapshot does not hold what this report read when it was taken, so it was edited or damaged since "
            f"(or the report's template is not the one it was rendered with){other_version(snapshot)}. Render it "
            "from the API with --snapshot to take a new one.")


def other_version(snapshot: Snapshot) -> str:
    """", or it was taken with mangrove_nb 0.1.0 (this is 0.2.0): render it with that version" when the versions
    differ; "" when they are the same (or the manifest does not say)."""
    from mangrove_nb import __version__

    taken = snapshot.manifest.get("mangrove_nb_version")
    if not isinstance(taken, str) or taken == __version__:
        return ""
    return (f"; or it was taken with mangrove_nb {_one_line(taken, 40)} (this is {__version__}): render it with "
            "that version")


# --- the kernel's side: connect ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What ``render_report`` tells a report kernel to do with its reads (``MANGROVE_NB_REPORT_SNAPSHOT``, JSON):
    ``record`` them (through the read cache ``cache``, logging keys to ``log``) or ``replay`` the snapshot at
    ``snapshot`` (logging misses to ``log``)."""

    mode: str
    log: str
    cache: str | None = None
    snapshot: str | None = None

    def environment(self) -> dict[str, str]:
        values = {"mode": self.mode, "log": self.log, "cache": self.cache, "snapshot": self.snapshot}
        return {REPORT_SNAPSHOT_ENV_VAR: json.dumps({k: v for k, v in values.items() if v is not None})}

    @classmethod
    def from_environment(cls) -> Plan | None:
        text = report_snapshot_setting()
        if text is None:
            return None
        try:
            values = json.loads(text)
            plan = cls(str(values["mode"]), str(values["log"]), values.get("cache"), values.get("snapshot"))
        except (ValueError, KeyError, TypeError):
            plan = None
        if plan is None or plan.mode not in ("record", "replay") or (plan.cache if plan.mode == "record"
                                                                      else plan.snapshot) is None:
            raise ReportError(f"{REPORT_SNAPSHOT_ENV_VAR} is not what mangrove-nb report sets; unset it to read "
                              "from the API.")
        return plan


def connect(base_url: str | None = None, **options: Any) -> Client:
    """``mangrove_nb.connect(base_url=..., **options)`` as a report's cells need it.

    Outside a report run (papermill, JupyterLab) it is that, remembering what it read (``ReadingHttpClient``, for
    ``read_fingerprint``). In a kernel ``render_report`` started, the client reads through the read cache and logs
    what it read (``RecordingHttpClient``), or answers from the snapshot it names without any API or token
    (``ReplayingHttpClient``); both remember what they read too.
    """
    from mangrove_nb import connect as plain_connect

    plan = Plan.from_environment()
    if plan is None:
        client = plain_connect(base_url=base_url, **options)
        return _with_http(client, ReadingHttpClient(client.settings))
    if plan.mode == "replay":
        snapshot = load_snapshot(str(plan.snapshot))
        return replaying_client(snapshot, base_url=base_url, misses=Path(plan.log), **options)
    client = plain_connect(base_url=base_url, **options)
    return _with_http(client, RecordingHttpClient(client.settings, cache=ReadCache(str(plan.cache)),
                                                  log=Path(plan.log)))


def replaying_client(snapshot: Snapshot, *, base_url: str | None = None, misses: Path | None = None,
                     **options: Any) -> Client:
    """A client that answers from ``snapshot`` only: a made-up token (never sent, nothing is), and the snapshot's
    base URL unless ``base_url`` names one."""
    from mangrove_nb import connect as plain_connect

    token = Secret(_REPLAY_TOKEN_PREFIX + secrets.token_hex(16))
    client = plain_connect(token, base_url or snapshot.base_url, **options)  # type: ignore[arg-type]
    return _with_http(client, ReplayingHttpClient(client.settings, snapshot=snapshot, misses=misses))


def replayed_from() -> str | None:
    """In a report kernel that replays a snapshot: "replayed from the snapshot taken at 2025-04-02 09:15:00 UTC
    (quarterly_report_2025Q1.snapshot)", for the report's provenance; None anywhere else (a live report, papermill,
    JupyterLab)."""
    plan = Plan.from_environment()
    if plan is None or plan.mode != "replay" or plan.snapshot is None:
        return None
    folder = Path(plan.snapshot)
    about: Any = None
    with contextlib.suppress(OSError, ValueError, _Refused):  # the parent checked it; a sentence without the time
        about = _parsed(_read_regular(folder / MANIFEST_NAME, _MANIFEST_LIMIT, "a manifest").decode("utf-8"),
                        folder / MANIFEST_NAME)
    return replay_description(folder, about if isinstance(about, Mapping) else {})


def replay_description(folder: str | os.PathLike[str], manifest: Mapping[str, Any]) -> str:
    """What a replayed report says of its data: "replayed from the snapshot taken at <UTC time> (<folder name>)"."""
    name = _one_line(Path(folder).name, 200)
    try:
        taken = datetime.strptime(str(manifest.get("created_at")), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return f"replayed from the snapshot {name} (when it was taken is not recorded)"
    return f"replayed from the snapshot taken at {taken:%Y-%m-%d %H:%M:%S} UTC ({name})"


def replay_token() -> Secret:
    """A made-up token for a parent process that renders from a snapshot (the kernel makes its own)."""
    return Secret(_REPLAY_TOKEN_PREFIX + secrets.token_hex(16))


def _with_http(client: Client, http: HttpClient) -> Client:
    client.http.close()
    client.http = http
    return client


# --- reading a snapshot ------------------------------------------------------------------------------------------


def load_snapshot(path: str | os.PathLike[str]) -> Snapshot:
    """The snapshot in the folder ``path``, checked: its format, the manifest's fields and their types, every
    record, the responses' SHA-256 against the manifest's, and (for a snapshot whose manifest says its fingerprint
    covers every answer: ``fingerprint_format``) that its answers give the fingerprint it records. Both files must
    be regular files (never read through a symlink, never a FIFO or a device) of a bounded size. Anything else is
    a one-line ``ValidationError`` (``argument="from_snapshot"``).

    The checksum detects damage, the fingerprint answers that differ from those the report was rendered from;
    neither is a signature (whoever can edit the folder can recompute both)."""
    folder = Path(path)
    problem = None
    manifest: Any = None
    answers: dict[str, str] = {}
    try:
        if not folder.is_dir():
            raise _Refused(f"{folder} is not a snapshot folder (a '<report>{SUFFIX}' folder that mangrove-nb report "
                           "--snapshot writes)")
        raw = _read_regular(folder / MANIFEST_NAME, _MANIFEST_LIMIT, "a snapshot's manifest")
        manifest = _parsed(raw.decode("utf-8"), folder / MANIFEST_NAME)
        _check_manifest(manifest, folder / MANIFEST_NAME)
        data = _read_regular(folder / RESPONSES_NAME, _RESPONSES_LIMIT, "a snapshot's responses")
        if hashlib.sha256(data).hexdigest() != manifest["responses"].get("sha256"):
            raise _Refused(f"{folder / RESPONSES_NAME} does not match its manifest's checksum (changed or cut "
                           "since the snapshot was taken)")
        pairs: list[tuple[str, str]] = []
        for number, line in enumerate(data.decode("utf-8").splitlines(), start=1):
            try:
                record = _parsed(line, folder / RESPONSES_NAME)
                key = RequestKey.of_record(record)
            except (_Refused, ValueError, TypeError):
                raise _Refused(f"line {number} of {folder / RESPONSES_NAME} is not a snapshot record") from None
            answers[key.canonical] = json.dumps(record["response"])
            pairs.append((key.canonical, _canonical_json(record["response"])))
        kind = manifest.get("fingerprint_format")
        if kind is not None and kind != FINGERPRINT_FORMAT:
            version = _one_line(str(manifest.get("mangrove_nb_version")), 40)
            raise _Refused(f"{folder.name}'s fingerprint is of a kind this mangrove_nb does not compute "
                           f"({_one_line(str(kind), 60)}); it was taken with mangrove_nb {version}: render it with "
                           "that version")
        if kind is not None and read_digest(pairs) != manifest["fingerprint"]:
            raise _Refused(f"the answers in {folder / RESPONSES_NAME} do not give the data fingerprint its manifest "
                           "records: the snapshot was edited or damaged since it was taken")
    except _Refused as exc:
        problem = str(exc)
    except FileNotFoundError as exc:
        problem = f"{folder} is not a whole snapshot: {Path(str(exc.filename)).name} is missing"
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        reason = _os_reason(exc) if isinstance(exc, OSError) else "not valid UTF-8 JSON"
        problem = f"cannot read the snapshot {folder} ({reason})"
    if problem is None:
        return Snapshot(folder, manifest, answers)
    raise ValidationError(_one_line(f"{problem}; give --from-snapshot (from_snapshot=) the folder "
                                    f"'<report>{SUFFIX}' written by mangrove-nb report --snapshot."),
                          argument="from_snapshot")


def _read_regular(path: Path, limit: int, what: str) -> bytes:
    """The bytes of ``path``, a regular file of at most ``limit`` bytes: a symlink (to /dev/zero, say), a FIFO (which
    would block), a device or a folder is refused; at most ``limit + 1`` bytes are ever read."""
    try:
        # Non-blocking: opening a FIFO would otherwise wait for a writer. No symlink is followed.
        descriptor = os.open(path, os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        if exc.errno == errno.ELOOP or path.is_symlink():
            raise _Refused(f"{path} is a symbolic link; a snapshot's files are regular files") from None
        raise
    with os.fdopen(descriptor, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise _Refused(f"{path} is not a regular file")
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise _Refused(f"{path} is too large to be {what} (more than {limit >> 20} MiB)")
    return data


def _parsed(text: str, path: Path) -> Any:
    """``json.loads(text)``; JSON nested too deeply to parse is refused (``_Refused``), like any other bad JSON
    (``ValueError``)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise _Refused(f"{path} is not a snapshot file (JSON nested too deeply)") from None


def _check_manifest(manifest: Any, path: Path) -> None:
    """The manifest's fields a replay uses, with their types; ``_Refused`` naming the first that is not."""
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise _Refused(f"{path} is not a {FORMAT} manifest (format {_one_line(repr(found), 60)})")
    for name in ("period", "base_url", "fingerprint", "responses"):
        if name not in manifest:
            raise _Refused(f"{path} has no '{name}'")
    parameters = manifest.get("parameters")
    given = parameters if isinstance(parameters, dict) else {}
    ledgers, project = given.get("ledgers"), given.get("project")
    checks = (
        ("period", isinstance(manifest["period"], str) and re.fullmatch(r"\d{4}(Q[1-4])?", manifest["period"])),
        ("base_url", isinstance(manifest["base_url"], str)),
        ("fingerprint", isinstance(manifest["fingerprint"], str)),
        ("responses", isinstance(manifest["responses"], dict)),
        ("parameters", parameters is None or isinstance(parameters, dict)),
        ("parameters.ledgers", ledgers is None or (isinstance(ledgers, list) and all(isinstance(i, str)
                                                                                      for i in ledgers))),
        ("parameters.project", project is None or (isinstance(project, str | int) and not isinstance(project, bool))),
        ("parameters.base_url", given.get("base_url") is None or isinstance(given.get("base_url"), str)),
        ("created_at", manifest.get("created_at") is None or isinstance(manifest.get("created_at"), str)),
        ("mangrove_nb_version", manifest.get("mangrove_nb_version") is None
         or isinstance(manifest.get("mangrove_nb_version"), str)),
    )
    wrong = next((name for name, ok in checks if not ok), None)
    if wrong is not None:
        value: Any = manifest
        for part in wrong.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        raise _Refused(f"{path} has a '{wrong}' that is not what mangrove-nb report writes "
                       f"({_one_line(json.dumps(value)[:80], 80)})")


class _Refused(Exception):
    pass


def check_snapshot(snapshot: Snapshot, *, period: Period | None, ledgers: Sequence[str] | None,
                   project: str | None, base_url: str | None) -> None:
    """Refuse (``ValidationError``, one line) a snapshot of another period, other ledgers, another project or
    another API than the ones given (None: whatever the snapshot holds)."""
    taken = snapshot.parameters
    name = snapshot.path.name
    if period is not None and period.label != snapshot.period:
        raise ValidationError(f"The snapshot {name} is of {snapshot.period}, not {period.label}: give the snapshot "
                              f"of {period.label}, or leave --quarter/--year out to render {snapshot.period} again.",
                              argument="from_snapshot")
    if ledgers is not None and [str(i) for i in ledgers] != list(taken.get("ledgers") or []):
        shown = ", ".join(taken.get("ledgers") or []) or "every ledger with a model"
        raise ValidationError(f"The snapshot {name} is of {shown}, not the ledgers given: leave --ledger out to "
                              "render what it holds.", argument="from_snapshot")
    if project is not None and str(project) != str(taken.get("project")):
        of = f"project {taken['project']}" if taken.get("project") is not None else "no project"
        raise ValidationError(f"The snapshot {name} is of {of}, not {project}: leave --project out to render what "
                              "it holds.", argument="from_snapshot")
    if base_url is not None and base_url.rstrip("/") != snapshot.base_url:
        raise ValidationError(f"The snapshot {name} was taken from {snapshot.base_url}, not {base_url}: leave the "
                              "base URL out to render what it holds.", argument="from_snapshot")


# --- writing a snapshot -------------------------------------------------------------------------------------------


def manifest(*, period: Period, parameters: Mapping[str, Any], facts: Mapping[str, Any], base_url: str,
             version: str, records: Sequence[Mapping[str, Any]], responses: bytes,
             created_at: datetime | None = None) -> dict[str, Any]:
    """The manifest of a snapshot: what it is of, where from, when, and the fingerprint the report computed."""
    moment = (created_at or datetime.now(UTC)).astimezone(UTC)
    # The report's fingerprint is of every answer it read (the template's fingerprint(client)) when the answers kept
    # give it: then a replay checks them against it before it starts (``load_snapshot``). An edited template's own
    # fingerprint is only compared with the replayed report's.
    covers = facts.get("fingerprint") == read_digest(_pairs(responses))
    return {
        "format": FORMAT,
        "period": period.label,
        "kind": period.kind,
        "ledgers": list(facts.get("ledgers") or []),
        "project": facts.get("project"),
        "parameters": dict(parameters),
        "base_url": base_url,
        "mangrove_nb_version": version,
        "created_at": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "fingerprint": facts.get("fingerprint"),
        **({"fingerprint_format": FINGERPRINT_FORMAT} if covers else {}),
        "responses": {"file": RESPONSES_NAME, "count": len(records),
                      "sha256": hashlib.sha256(responses).hexdigest()},
    }


def _pairs(responses: bytes) -> list[tuple[str, str]]:
    """``[request key, answer]`` of each line of ``responses.jsonl``, both canonical JSON (``read_digest``)."""
    pairs = []
    for line in responses.decode("utf-8").splitlines():
        record = json.loads(line)
        pairs.append((RequestKey.of_record(record).canonical, _canonical_json(record["response"])))
    return pairs


def responses_text(records: Iterable[Mapping[str, Any]]) -> bytes:
    """``responses.jsonl``: one record per line, keys sorted, ASCII."""
    return "".join(json.dumps(record, sort_keys=True, ensure_ascii=True) + "\n" for record in records).encode("ascii")


def write_snapshot(folder: Path, files: Mapping[str, bytes], scrub: Callable[[str], str]) -> None:
    """Write ``files`` (name -> bytes) as the folder ``folder``, whole or not at all.

    The folder is built beside ``folder`` under a temporary name, each file synced, then renamed into place; what
    was at ``folder`` (an earlier snapshot, or a planted symlink, which is removed, never followed) goes only once
    the new folder is complete. ``scrub`` runs over every file's text first: the token never reaches a file.
    """
    temporary = folder.with_name(f".{folder.name}.{secrets.token_hex(6)}.tmp")
    old = folder.with_name(f".{folder.name}.{secrets.token_hex(6)}.old")
    problem = None
    try:
        temporary.mkdir(mode=0o755)
        for name, data in files.items():
            text = data.decode("utf-8")
            cleaned = scrub(text)
            descriptor = os.open(temporary / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o644)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(cleaned.encode("utf-8"))
                handle.flush()
                os.fsync(handle.fileno())
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            folder.unlink()  # a link goes, never its target
        elif folder.exists():
            os.replace(folder, old)
        try:
            os.replace(temporary, folder)
        except OSError:
            if old.exists() and not folder.exists():
                os.replace(old, folder)  # the earlier snapshot stays whole
            raise
    except OSError as exc:
        problem = f"Cannot write the snapshot {folder} ({_os_reason(exc)}); give --out (out_dir=) a folder you can " \
                  "write to."
    finally:
        for leftover in (temporary, old):
            if leftover.exists() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
    if problem is not None:
        raise ReportError(problem) from None
