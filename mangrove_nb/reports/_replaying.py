"""Replaying a snapshot, and the report kernel's side: ``ReplayingHttpClient`` answers from a ``Snapshot`` and sends
nothing (no token is needed; the base URL is never contacted); ``connect`` gives the report's cells the client that
``render_report`` asked for in the kernel's environment (``Plan``, ``MANGROVE_NB_REPORT_SNAPSHOT``): one that reads
through the read cache and logs what it read, one that replays a snapshot, or, outside a report run, one that only
remembers what it read; ``replayed_from`` and ``replay_description`` are what a replayed report says of its data.

A request the snapshot does not hold is a ``ReportError`` naming it (``missing_answer``), also logged, so that the run
fails even where a caller swallowed the error; a write is refused. A replay connects with a made-up token, never
sent (``replay_token`` makes one for the parent process). ``snapshot`` is the public face (see its docstring for the
whole layer).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mangrove_nb.client import HttpClient
from mangrove_nb.errors import ReportError
from mangrove_nb.settings import REPORT_SNAPSHOT_ENV_VAR, Secret, Settings, report_snapshot_setting

from ._recording import ReadCache, ReadingHttpClient, RecordingHttpClient, request_key
from ._snapshot_files import _MANIFEST_LIMIT, MANIFEST_NAME, Snapshot, _parsed, _read_regular, _Refused, load_snapshot
from ._text import _one_line

if TYPE_CHECKING:
    from mangrove_nb import Client

# A replay connects with a made-up token: it is never sent (nothing is), and it is long and random, so redacting
# it (every token is) can never hide a word of the report.
_REPLAY_TOKEN_PREFIX = "snapshot-replay-"  # noqa: S105 - a prefix, not a secret


# --- replaying --------------------------------------------------------------------------------------------------


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
