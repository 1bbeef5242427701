"""What a Python process has sent to an API that must not be sent twice: the generation requests and report
submissions started and not seen finished, and those of unknown outcome (kept in a state file too, so a
restarted kernel knows).

``Sent.to(base_url)`` is the record of one API, however its URL is spelled; ``api.Client.generate`` and
``registry.ReportsMixin.submit_report`` check, record and send under its lock.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
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


@dataclass(eq=False)
class Attempt:
    """One generation request this process sent (or was sending): its task once accepted, or its unknown outcome."""

    ledger_id: str
    period: Period
    writes: frozenset[str]
    sent_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    task: Task[Any] | None = None
    unknown: GenerationOutcomeUnknownError | None = None

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
    """One report submission this process sent (or was sending): its task once accepted, or its unknown outcome."""

    report_id: str
    sent_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    task: Task[Any] | None = None
    unknown: SubmissionOutcomeUnknownError | None = None

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

    Those of unknown outcome are also written to ``unknown_outcomes.json`` in the settings' ``state_dir``
    (per API; ledger and period or report, when, what happened; never the token), and read back when the
    record is first made in a process: a restarted kernel does not send them again either.
    """

    _registry: ClassVar[dict[str, Sent]] = {}
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, key: str, state_dir: str | None) -> None:
        self.lock = threading.RLock()
        self.attempts: list[Attempt] = []
        self.submissions: list[Submission] = []
        self._key = key
        self._path = Path(state_dir) / STATE_FILE if state_dir else None
        self.attempts.extend(self._load())
        self.submissions.extend(self._load_submissions())

    @classmethod
    def to(cls, base_url: str, state_dir: str | None = None) -> Sent:
        """The record of one API, however its URL is spelled (case, default port, localhost vs 127.0.0.1)."""
        key = api_key(base_url)
        with cls._registry_lock:
            if key not in cls._registry:
                cls._registry[key] = cls(key, state_dir)
            return cls._registry[key]

    def overlapping(self, ledger_id: str, span: Period) -> list[Attempt]:
        with self.lock:
            return [a for a in self.attempts if a.overlaps(ledger_id, span)]

    def forget(self, attempt: Attempt | Submission) -> None:
        with self.lock:
            kept: list[Any] = self.attempts if isinstance(attempt, Attempt) else self.submissions
            if attempt in kept:
                kept.remove(attempt)
                if attempt.unknown is not None:
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

    def submissions_of(self, report_id: str) -> list[Submission]:
        with self.lock:
            return [s for s in self.submissions if s.report_id == report_id]

    def save(self) -> None:
        """Write this API's unknown outcomes to the state file (other APIs' entries are kept)."""
        if self._path is None:
            return
        with self.lock:
            entries = [_attempt_record(a) for a in self.attempts if a.unknown is not None]
            entries += [_submission_record(s) for s in self.submissions if s.unknown is not None]
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            with _locked(self._path.with_name(STATE_FILE + ".lock")):  # other kernels may write it too
                self._write(entries)
        except OSError as exc:
            log.warning("Could not record unknown outcomes in %s (%s); they are remembered in this process only.",
                        self._path, exc.strerror or type(exc).__name__)

    def _write(self, entries: list[dict[str, Any]]) -> None:
        assert self._path is not None
        everything = self._read_file()
        if entries:
            everything[self._key] = entries
        else:
            everything.pop(self._key, None)
        fd, temp = tempfile.mkstemp(dir=self._path.parent, prefix=".unknown_outcomes.")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(everything, handle, indent=1)
        os.replace(temp, self._path)

    def _read_file(self) -> dict[str, Any]:
        if self._path is None or not self._path.exists():
            return {}
        try:
            data = json.loads(self._path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("Could not read %s (%s); earlier unknown outcomes are not known.", self._path,
                        type(exc).__name__)
            return {}
        return data if isinstance(data, dict) else {}

    def _load(self) -> list[Attempt]:
        loaded = []
        for entry in self._read_file().get(self._key, []):
            if not isinstance(entry, dict) or entry.get("kind") == SUBMISSION:
                continue
            try:
                period = Period(datetime.fromisoformat(entry["start"]), datetime.fromisoformat(entry["end"]),
                                str(entry["label"]))
                sent_at = datetime.fromisoformat(entry["sent_at"])
                unknown = GenerationOutcomeUnknownError(
                    ledger_id=str(entry["ledger_id"]), start=period.start, end=period.end,
                    detail=f"{entry.get('detail') or 'no answer'}; recorded by an earlier session")
                loaded.append(Attempt(str(entry["ledger_id"]), period, frozenset(map(str, entry["writes"])),
                                       sent_at=sent_at, unknown=unknown))
            except (KeyError, TypeError, ValueError):
                continue
        return loaded


    def _load_submissions(self) -> list[Submission]:
        loaded = []
        for entry in self._read_file().get(self._key, []):
            if not isinstance(entry, dict) or entry.get("kind") != SUBMISSION:
                continue
            try:
                report_id = entry["report_id"]
                if not isinstance(report_id, str):
                    continue
                detail = str(entry.get("detail") or "no answer")
                earlier = "; recorded by an earlier session"
                unknown = SubmissionOutcomeUnknownError(
                    report_id=report_id, detail=detail if detail.endswith(earlier) else detail + earlier)
                loaded.append(Submission(report_id, sent_at=datetime.fromisoformat(entry["sent_at"]), unknown=unknown))
            except (KeyError, TypeError, ValueError):
                continue
        return loaded


STATE_FILE = "unknown_outcomes.json"
# The ``kind`` of a report submission's entry in the state file (generation entries have none, as before).
SUBMISSION = "report_submission"


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


def _attempt_record(attempt: Attempt) -> dict[str, Any]:
    return {"ledger_id": attempt.ledger_id, "writes": sorted(attempt.writes), "label": attempt.period.label,
            "start": attempt.period.start.isoformat(), "end": attempt.period.end.isoformat(),
            "sent_at": attempt.sent_at.isoformat(),
            "detail": attempt.unknown.detail if attempt.unknown is not None else None}


def _submission_record(submission: Submission) -> dict[str, Any]:
    return {"kind": SUBMISSION, "report_id": submission.report_id, "sent_at": submission.sent_at.isoformat(),
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
