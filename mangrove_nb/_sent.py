"""What a Python process has sent to an API that must not be sent twice: the generation requests and report
submissions started and not seen finished, and those of unknown outcome (kept in a state file too, shared by
every process, so a restarted kernel and a second kernel know).

``Sent.to(base_url)`` is the record of one API, however its URL is spelled; ``api.Client.generate`` and
``registry.ReportsMixin.submit_report`` check, record and send under its lock.

The state file (``unknown_outcomes.json`` in the settings' ``state_dir``) is shared: every write happens under
an exclusive lock between processes (``flock``) and merges, reading the file again and changing only what this
process did — adding the unknown outcomes it got, removing those it settled (``reconcile()``,
``reconcile_report()``), each named by the id written in its entry. An entry another process wrote stays until
some process settles it, whichever process that is. The record of this process reads the file again (one
``stat`` when it has not changed) before it answers ``overlapping()`` or ``submissions_of()``, the questions the
checks that refuse ask: an unknown outcome another kernel got meanwhile refuses here too, and one another kernel
settled no longer does.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from .errors import GenerationOutcomeUnknownError, MangroveError, SubmissionOutcomeUnknownError, secret_safe_logger
from .periods import Period
from .settings import is_loopback_host

if TYPE_CHECKING:
    from .tasks import Task

log = secret_safe_logger("mangrove_nb")


def _new_id() -> str:
    return uuid.uuid4().hex


@dataclass(eq=False)
class Attempt:
    """One generation request this process sent (or was sending): its task once accepted, or its unknown outcome.
    ``uid`` names it in the state file (a record read from there keeps the id it has there)."""

    ledger_id: str
    period: Period
    writes: frozenset[str]
    sent_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    task: Task[Any] | None = None
    unknown: GenerationOutcomeUnknownError | None = None
    uid: str = field(default_factory=_new_id)

    def overlaps(self, ledger_id: str, span: Period) -> bool:
        return ledger_id in self.writes and self.period.start <= span.end and span.start <= self.period.end

    def outcome_unknown(self, detail: str) -> GenerationOutcomeUnknownError:
        return GenerationOutcomeUnknownError(ledger_id=self.ledger_id, start=self.period.start, end=self.period.end,
                                             detail=detail)

    def note_unknown(self, error: MangroveError) -> None:
        assert isinstance(error, GenerationOutcomeUnknownError)
        self.unknown = error

    def describe(self) -> str:
        return (f"the request of {self.sent_at:%Y-%m-%d %H:%M:%S} UTC for {self.ledger_id} {self.period.label} "
                f"({self.unknown.detail if self.unknown is not None and self.unknown.detail else 'no answer'})")


@dataclass(eq=False)
class Submission:
    """One report submission this process sent (or was sending): its task once accepted, or its unknown outcome.
    ``uid`` names it in the state file."""

    report_id: str
    sent_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    task: Task[Any] | None = None
    unknown: SubmissionOutcomeUnknownError | None = None
    uid: str = field(default_factory=_new_id)

    def outcome_unknown(self, detail: str) -> SubmissionOutcomeUnknownError:
        return SubmissionOutcomeUnknownError(report_id=self.report_id, detail=detail)

    def note_unknown(self, error: MangroveError) -> None:
        assert isinstance(error, SubmissionOutcomeUnknownError)
        self.unknown = error

    def describe(self) -> str:
        return (f"the submission of {self.sent_at:%Y-%m-%d %H:%M:%S} UTC of report {self.report_id} "
                f"({self.unknown.detail if self.unknown is not None and self.unknown.detail else 'no answer'})")


class Sent:
    """What this process has sent to one API: one lock around check-record-send, the generation attempts and
    the report submissions.

    Those of unknown outcome are also kept in ``unknown_outcomes.json`` in the settings' ``state_dir`` (per
    API; ledger and period or report, when, what happened, an id; never the token), shared with every other
    process: see the module docstring. ``attempts`` and ``submissions`` hold this process's records and those
    read from the file; ``overlapping()`` and ``submissions_of()`` read the file again first when it changed.
    """

    _registry: ClassVar[dict[str, Sent]] = {}
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, key: str, state_dir: str | None) -> None:
        self.lock = threading.RLock()
        self.attempts: list[Attempt] = []
        self.submissions: list[Submission] = []
        self._key = key
        self._path = Path(state_dir) / STATE_FILE if state_dir else None
        # The ids of this API's entries in the file as last read or written: one of them gone from the file
        # later was settled by another process.
        self._on_file: set[str] = set()
        # The ids this process settled that the file may still hold (removed at the next write).
        self._settled: set[str] = set()
        # The file as last read or written (inode, size, mtime): unchanged, it is not read again (None: read it).
        self._seen: tuple[int, int, int] | None = None
        self.refresh()

    @classmethod
    def to(cls, base_url: str, state_dir: str | None = None) -> Sent:
        """The record of one API, however its URL is spelled (case, default port, localhost vs 127.0.0.1)."""
        key = api_key(base_url)
        with cls._registry_lock:
            if key not in cls._registry:
                cls._registry[key] = cls(key, state_dir)
            return cls._registry[key]

    def overlapping(self, ledger_id: str, span: Period) -> list[Attempt]:
        """The generation attempts on ``ledger_id`` overlapping ``span``: this process's and, from the state file
        read again, the unknown outcomes of every process."""
        with self.lock:
            self.refresh()
            return [a for a in self.attempts if a.overlaps(ledger_id, span)]

    def submissions_of(self, report_id: str) -> list[Submission]:
        """The submissions of ``report_id``: this process's and, from the state file read again, the unknown
        outcomes of every process."""
        with self.lock:
            self.refresh()
            return [s for s in self.submissions if s.report_id == report_id]

    def forget(self, attempt: Attempt | Submission) -> None:
        """Drop a record: it is settled (a definite answer, a final task, a reconciliation). One of unknown outcome
        goes from the state file too, whichever process wrote it."""
        with self.lock:
            kept: list[Any] = self.attempts if isinstance(attempt, Attempt) else self.submissions
            if attempt in kept:
                kept.remove(attempt)
                if attempt.unknown is not None:
                    self._settled.add(attempt.uid)
                    self.save()

    @contextlib.contextmanager
    def sending(self, record: Attempt | Submission) -> Iterator[None]:
        """Around the one write of ``record`` (already appended to ``attempts`` or ``submissions``), so that the
        record always says what happened once the request may have left:

        - the block returns (the answer and its task are recorded): kept, as a write in progress;
        - an unknown outcome (``GenerationOutcomeUnknownError`` / ``SubmissionOutcomeUnknownError``): kept with
          it, and written to the state file, so no process sends it again until it is reconciled;
        - any other ``MangroveError`` (a definite refusal, or a request that never left): forgotten;
        - anything else (Ctrl-C between the answer and the record, a bug): the worst is assumed — an unknown
          outcome, saved — and the exception goes on.
        """
        settled = False
        try:
            yield
            settled = True
        except (GenerationOutcomeUnknownError, SubmissionOutcomeUnknownError) as exc:
            record.note_unknown(exc)
            settled = True
            self.save()
            raise
        except MangroveError:
            self.forget(record)
            settled = True
            raise
        finally:
            if not settled:
                record.note_unknown(record.outcome_unknown("interrupted while the answer was being recorded"))
                self.save()

    # -- the state file ------------------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Read the state file again if it changed since this process last read or wrote it (one ``stat``
        otherwise): another process's new unknown outcomes join the record, those another process settled leave
        it. Reading needs no lock: the file is only ever replaced whole."""
        if self._path is None:
            return
        with self.lock:
            stamp = self._stamp()
            if stamp == self._seen:
                return
            everything = self._read_file()
            if everything is not None:
                self._merge(everything.get(self._key))
            self._seen = _settled_stamp(stamp)

    def save(self) -> None:
        """Merge this process's changes into the state file, under the lock between processes: the file is read
        again, this process's new unknown outcomes are added, those it settled removed; every other entry (other
        processes', other APIs') stays as it is."""
        if self._path is None:
            return
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            with self.lock, _locked(self._path.with_name(STATE_FILE + ".lock")):
                everything = self._read_file()
                if everything is None:
                    raise OSError(0, "the file is not JSON; move it aside to let unknown outcomes be recorded again")
                self._merge(everything.get(self._key))
                entries = [e for e in _entries(everything.get(self._key)) if _entry_id(e) not in self._settled]
                on_file = {_entry_id(e) for e in entries}
                entries += [_attempt_record(a) for a in self.attempts
                            if a.unknown is not None and a.uid not in on_file]
                entries += [_submission_record(s) for s in self.submissions
                            if s.unknown is not None and s.uid not in on_file]
                if entries:
                    everything[self._key] = entries
                else:
                    everything.pop(self._key, None)
                self._write(everything)
                self._on_file = {_entry_id(e) for e in entries}
                self._settled.clear()
                self._seen = _settled_stamp(self._stamp())
        except OSError as exc:
            log.warning("Could not record unknown outcomes in %s (%s); they are remembered in this process only.",
                        self._path, exc.strerror or type(exc).__name__)

    def _merge(self, listed: Any) -> None:
        """Bring the record up to date with this API's entries as the file has them now. The caller holds the
        lock."""
        by_id = {_entry_id(e): e for e in _entries(listed)}
        gone = self._on_file - by_id.keys()  # settled by another process since this one last looked
        if gone:
            self.attempts[:] = [a for a in self.attempts if a.unknown is None or a.uid not in gone]
            self.submissions[:] = [s for s in self.submissions if s.unknown is None or s.uid not in gone]
        known = {r.uid for r in self.attempts} | {r.uid for r in self.submissions}
        for uid, entry in by_id.items():
            if uid in known or uid in self._settled:
                continue
            if entry.get("kind") == SUBMISSION:
                submission = _submission_of(entry, uid)
                if submission is not None:
                    self.submissions.append(submission)
            else:
                attempt = _attempt_of(entry, uid)
                if attempt is not None:
                    self.attempts.append(attempt)
        self._on_file = set(by_id)
        self._settled &= self._on_file

    def _stamp(self) -> tuple[int, int, int]:
        assert self._path is not None
        try:
            st = self._path.stat()
        except OSError:
            return (0, 0, 0)
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _write(self, everything: dict[str, Any]) -> None:
        assert self._path is not None
        fd, temp = tempfile.mkstemp(dir=self._path.parent, prefix=".unknown_outcomes.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(everything, handle, indent=1)
            os.replace(temp, self._path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise

    def _read_file(self) -> dict[str, Any] | None:
        """The whole file ({} when there is none); None when it cannot be read as this module writes it."""
        if self._path is None or not self._path.exists():
            return {}
        try:
            data = json.loads(self._path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("Could not read %s (%s); unknown outcomes recorded there are not known.", self._path,
                        type(exc).__name__)
            return None
        if not isinstance(data, dict):
            log.warning("Could not read %s (not a JSON object); unknown outcomes recorded there are not known.",
                        self._path)
            return None
        return data


STATE_FILE = "unknown_outcomes.json"
# The ``kind`` of a report submission's entry in the state file (generation entries have none, as before).
SUBMISSION = "report_submission"
# Said of a record read from the state file (an older version wrote the first with the detail).
_FROM_FILE = "; recorded by an earlier session or another kernel"
_OLD_FROM_FILE = "; recorded by an earlier session"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` between processes (POSIX ``flock``; elsewhere, none)."""
    try:
        import fcntl
    except ImportError:  # Windows: the write is still atomic, two kernels writing at once may lose one entry
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _settled_stamp(stamp: tuple[int, int, int]) -> tuple[int, int, int] | None:
    """``stamp``, or None (read the file again next time) while the file is younger than a second: a file's
    time has the resolution of the kernel's clock tick, so two writes within one tick could leave the same inode
    number (reused), size and time."""
    return stamp if time.time_ns() - stamp[2] > 1_000_000_000 else None


def _entries(listed: Any) -> list[dict[str, Any]]:
    return [e for e in listed if isinstance(e, dict)] if isinstance(listed, list) else []


def _entry_id(entry: dict[str, Any]) -> str:
    """An entry's id: the one written in it, or (an entry an older version wrote, without one) a digest of its
    content, the same in every process."""
    uid = entry.get("id")
    if isinstance(uid, str) and uid:
        return uid
    digest = hashlib.sha256(json.dumps(entry, sort_keys=True, default=str).encode("utf-8")).hexdigest()
    return f"old-{digest[:32]}"


def _from_file(detail: Any) -> str:
    text = str(detail or "no answer")
    for suffix in (_FROM_FILE, _OLD_FROM_FILE):
        text = text.removesuffix(suffix)
    return text + _FROM_FILE


def _attempt_of(entry: dict[str, Any], uid: str) -> Attempt | None:
    try:
        period = Period(datetime.fromisoformat(entry["start"]), datetime.fromisoformat(entry["end"]),
                        str(entry["label"]))
        sent_at = datetime.fromisoformat(entry["sent_at"])
        unknown = GenerationOutcomeUnknownError(ledger_id=str(entry["ledger_id"]), start=period.start,
                                                end=period.end, detail=_from_file(entry.get("detail")))
        return Attempt(str(entry["ledger_id"]), period, frozenset(map(str, entry["writes"])), sent_at=sent_at,
                       unknown=unknown, uid=uid)
    except (KeyError, TypeError, ValueError):
        return None


def _submission_of(entry: dict[str, Any], uid: str) -> Submission | None:
    report_id = entry.get("report_id")
    if not isinstance(report_id, str):
        return None
    try:
        sent_at = datetime.fromisoformat(entry["sent_at"])
    except (KeyError, TypeError, ValueError):
        return None
    unknown = SubmissionOutcomeUnknownError(report_id=report_id, detail=_from_file(entry.get("detail")))
    return Submission(report_id, sent_at=sent_at, unknown=unknown, uid=uid)


def _attempt_record(attempt: Attempt) -> dict[str, Any]:
    return {"id": attempt.uid, "ledger_id": attempt.ledger_id, "writes": sorted(attempt.writes),
            "label": attempt.period.label, "start": attempt.period.start.isoformat(),
            "end": attempt.period.end.isoformat(), "sent_at": attempt.sent_at.isoformat(),
            "detail": attempt.unknown.detail if attempt.unknown is not None else None}


def _submission_record(submission: Submission) -> dict[str, Any]:
    return {"id": submission.uid, "kind": SUBMISSION, "report_id": submission.report_id,
            "sent_at": submission.sent_at.isoformat(),
            "detail": submission.unknown.detail if submission.unknown is not None else None}


def api_key(base_url: str) -> str:
    """One spelling per API: scheme and host lower-cased, the default port made explicit, every loopback alias
    as one name, the path without trailing slashes."""
    parts = urlsplit(base_url)
    host = (parts.hostname or "").lower().rstrip(".")
    if is_loopback_host(host):
        host = "loopback"
    try:
        port = parts.port or {"https": 443, "http": 80}.get(parts.scheme.lower())
    except ValueError:
        port = None
    return f"{parts.scheme.lower()}://{host}:{port}{parts.path.rstrip('/')}"
