"""A report's submission, sent once: ``SubmissionTask`` (its wait, the registry's refusal in its words),
``ReportReconciliation`` (what ``reconcile_report`` found), and the record kept around the one POST.

The record is ``_sent.Sent``'s (the one generations use, shared by every client of the same API): a submission is
recorded before the POST, forgotten on a definite answer or when its task is final, and kept (in the state file
too) when the outcome is unknown, so that report is not submitted again until ``reconcile_report`` has read its
status. A task the server no longer knows (404 when it is read, to follow it or to see whether it still runs)
makes its submission's outcome unknown too. A ``draft`` read within ``grace_seconds`` of the submission's sending
is not taken for "not sent": the request may still be on its way (a slow server, a gateway still holding it), so
the record is kept and ``reconcile_report`` says when to look again. The functions take the client
(``ReportsMixin``): its ``http``, ``_sent``, ``settings`` and ``report()``.
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from .._sent import Sent, Submission
from ..client import HttpClient
from ..errors import (
    NotFoundError,
    PreconditionError,
    SubmissionOutcomeUnknownError,
    TaskError,
    TaskFailedError,
    TaskTimeoutError,
)
from ..settings import Settings
from ..tasks import Task, TaskStatus
from ._display import _plain
from .report import Report

if TYPE_CHECKING:
    from ..progress import Progress
    from . import ReportsMixin


# A request given up on may still reach the server: so long after it was sent, at the most, a "draft" is taken to
# mean "not sent" (see grace_seconds).
def grace_seconds(settings: Settings) -> float:
    """How long after a submission was sent a ``draft`` may still mean "not seen yet": the longest this client
    waits for an answer (``call_deadline``) plus one ``read_timeout``, for a server (or a gateway in front of it)
    still at work after the client gave up. With the defaults, 120 + 30 = 150 s."""
    return float(settings.call_deadline) + float(settings.read_timeout)


@dataclass(frozen=True)
class ReportReconciliation:
    """What ``reconcile_report`` found: the report as the server has it now, and whether the submission was sent
    (True: the report is submitting or complete; False: it is a draft, so nothing is being submitted; None: its
    status does not say, or it is a draft read so soon after the submission that the request may still arrive,
    then ``check_again_in`` says after how many seconds a draft means "not sent"). ``cleared`` counts the unknown
    outcomes this settled (no longer refusing a submit); with none, a draft has nothing to reconcile, and
    ``advice()`` says so rather than that submitting again is safe (a report never submitted may not be ready)."""

    report: Report
    sent: bool | None
    cleared: int
    check_again_in: float | None = None

    def advice(self) -> str:
        """What happened and what to do next, in one or two sentences."""
        rid = self.report.id
        if self.check_again_in is not None:
            return (f"Report {rid} is still a draft, but the submission was sent only moments ago: it has not been "
                    f"seen yet, and it may still arrive or start (a slow server, or a gateway still holding the "
                    f"request). "
                    f"Check again after {math.ceil(self.check_again_in)} s with client.reconcile_report({rid!r}); "
                    "until a draft is read after that, submitting again stays refused.")
        if self.sent is True and self.report.status == "complete":
            said = "The submission was sent: report" if self.cleared else "Report"
            return f"{said} {rid} is complete (the registry accepted it). Do not submit it again."
        if self.sent is True:
            return (f"The submission was sent: report {rid} is {self.report.status!r}. Read it again later with "
                    f"client.report({rid!r}): 'complete' when the registry accepts it, 'draft' when it refuses it "
                    "(then the failed task's message says why).")
        if self.sent is False and not self.cleared:
            return (f"Nothing to reconcile: report {rid} is a draft, and no submission of it has an unknown outcome "
                    "(in this session or in the state file). It is not being submitted: it never was, or the "
                    "registry refused it and it went back to draft.")
        if self.sent is False:
            return (f"Report {rid} is a draft: no submission of it is going on (it did not reach the server, or the "
                    f"registry refused it and the report went back to draft). Submitting again is safe: "
                    f"client.submit_report({rid!r}).")
        return (f"Report {rid} has status {self.report.status!r}, which does not say whether the submission was "
                "sent; check it in Mangrove's app before submitting again.")

    def __repr__(self) -> str:
        return f"<ReportReconciliation {_plain(self.advice())}>"


class SubmissionTask(Task[Report]):
    """The task of a report's submission (``submit_report``, or ``report_task`` to re-attach).

    ``wait()`` returns the report read again after the task completed (``Report``), or None when ``stop`` ended
    the wait; it raises ``TaskFailedError`` with the registry's message when the submission failed (the report
    is back to draft) and ``TaskTimeoutError`` naming how to re-attach when it stopped waiting.
    """

    def __init__(self, http: HttpClient, task_id: int | str, *, report_id: str,
                 collect: Callable[[TaskStatus], Report],
                 on_final: Callable[[Task[Report]], None] | None = None,
                 on_vanished: Callable[[SubmissionTask, str], None] | None = None) -> None:
        super().__init__(http, task_id, collect=collect, label=f"submission of report {report_id}",
                         on_final=on_final, reattach=f"client.report_task({report_id!r}, {task_id!r}).wait()")
        self.report_id = report_id
        self._on_vanished = on_vanished
        self.vanished: str | None = None  # why the task's outcome is unknown, once the server no longer knows it

    def refresh(self) -> TaskStatus:
        """Read the task; one the server does not know (404) makes the submission's outcome unknown
        (``SubmissionOutcomeUnknownError``, recorded: ``reconcile_report`` settles it)."""
        try:
            return super().refresh()
        except (NotFoundError, TaskError) as exc:  # refresh raises TaskError only for a task that went missing
            if isinstance(exc, TaskFailedError | TaskTimeoutError):
                raise
        detail = (f"its task {self.id} was read to follow the submission and the server does not know that task "
                  "(404): it may have been cleaned up, or the submission was lost")
        self.vanished = detail
        if self._on_vanished is not None:
            self._on_vanished(self, detail)
        raise SubmissionOutcomeUnknownError(report_id=self.report_id, detail=detail) from None

    def wait(self, timeout: float | None = None, *, progress: bool | Progress | None = None,
             stop: threading.Event | None = None) -> Report | None:
        """Wait for the submission and return the report as submitted; see the class docstring."""
        failed: TaskFailedError | None = None
        late: TaskTimeoutError | None = None
        try:
            return super().wait(timeout, progress=progress, stop=stop)
        except TaskFailedError as exc:
            failed = exc
        except TaskTimeoutError as exc:
            late = exc
        except SubmissionOutcomeUnknownError:
            # Raised afresh: Task.wait advises re-attaching to the task, which the server no longer knows.
            raise SubmissionOutcomeUnknownError(report_id=self.report_id, detail=self.vanished) from None
        rid, tid = self.report_id, self.id
        if failed is not None:
            said = (f'The registry said: "{_plain(failed.error_message)}".' if failed.error_message
                    else "The server gave no reason.")
            raise TaskFailedError(
                f"The submission of report {rid} failed (task {tid}). {said} A refused report goes back to draft "
                f"(client.report({rid!r}) shows it); fix what the message names and submit it again.",
                task_id=tid, error_message=failed.error_message) from None
        assert late is not None
        raise TaskTimeoutError(
            f"Stopped waiting for the submission of report {rid} (task {tid}); it goes on on the server. Re-attach "
            f"with client.report_task({rid!r}, {tid!r}).wait(), or read the report's status with "
            f"client.report({rid!r}).", task_id=tid, timeout=late.timeout) from None


def refuse_recorded_submission(client: ReportsMixin, rid: str) -> None:
    """``PreconditionError`` when this process (or, through the state file read again, another or an earlier
    one) recorded a submission of ``rid`` whose outcome is unknown or whose task is still running (its task is
    read to see which; a task the server no longer knows makes the outcome unknown)."""
    with client._sent.lock:
        recorded = client._sent.submissions_of(rid)
    for submission in recorded:
        task = submission.task
        if submission.unknown is None and task is not None:
            try:
                running = not task.refresh().done
            except SubmissionOutcomeUnknownError:
                running = False  # the task went missing: the record now holds an unknown outcome
            if running:
                raise PreconditionError(
                    f"Not sent: task {task.id} from this session is already submitting report {rid} (the task was "
                    f"read to see whether it still runs); wait for it with client.report_task({rid!r}, "
                    f"{task.id!r}).wait().")
        if submission.unknown is not None:
            raise PreconditionError(
                f"Not sent: {submission.describe()} has an unknown outcome, so the report may already have gone "
                f"to the registry. Run client.reconcile_report({rid!r}): it reads the report's status, says "
                "what happened and clears this.")


def send_submission(client: ReportsMixin, rid: str) -> SubmissionTask:
    """Record, then send (the POST once, ``HttpClient.send_once``); whatever happens after the request may have
    left, the record says so. The caller holds the API's lock (``client._sent.lock``)."""
    submission = Submission(rid)
    client._sent.submissions.append(submission)
    _sent_clock[submission] = time.monotonic()
    with client._sent.sending(submission):
        accepted = client.http.submit_report(rid)
        task_id = accepted.get("async_task_id")
        if isinstance(task_id, bool) or not isinstance(task_id, int | str) or task_id == "":
            raise submission.outcome_unknown("the server accepted the submission but its answer names no task "
                                             "(async_task_id)")
        task = submission_task(client, rid, task_id)
        submission.task = task
        return task


def submission_task(client: ReportsMixin, rid: str, task_id: int | str) -> SubmissionTask:
    """The task of ``rid``'s submission: ``wait()`` returns the report read again after completion; once it is
    final, this process's record of the submission goes."""
    return SubmissionTask(client.http, task_id, report_id=rid, collect=lambda _status: client.report(rid),
                          on_final=lambda task: _forget_submission(client._sent, task),
                          on_vanished=lambda task, detail: _task_vanished(client._sent, task, detail))


def _task_vanished(sent: Sent, task: SubmissionTask, detail: str) -> None:
    """This process's record of the task's submission becomes an unknown outcome (in the state file too)."""
    with sent.lock:
        for submission in sent.submissions_of(task.report_id):
            if submission.task is not None and submission.task.id == task.id and submission.unknown is None:
                submission.note_unknown(submission.outcome_unknown(detail))
                sent.save()


def _forget_submission(sent: Sent, task: Task[Report]) -> None:
    with sent.lock:
        for submission in list(sent.submissions):
            if submission.task is not None and submission.task.id == task.id:
                sent.forget(submission)


def clear_unknown(client: ReportsMixin, rid: str) -> int:
    """Forget the submissions of ``rid`` whose outcome was unknown (in the state file too); how many."""
    cleared = 0
    with client._sent.lock:
        for submission in client._sent.submissions_of(rid):
            if submission.unknown is not None:
                client._sent.forget(submission)
                cleared += 1
    return cleared


# When each submission of this process was recorded, on the monotonic clock (a record read from the state file
# has only its wall-clock ``sent_at``).
_sent_clock: weakref.WeakKeyDictionary[Submission, float] = weakref.WeakKeyDictionary()


def reconcile(client: ReportsMixin, report: Report) -> ReportReconciliation:
    """What ``report``'s status says of the recorded submissions of unknown outcome, and those settled (cleared).

    Submitting or complete: sent. Draft: not sent, once ``grace_seconds`` have passed since the latest of them was
    sent; before that, not seen yet (kept, ``check_again_in``). Another status: kept."""
    rid = report.id
    if report.status in ("submitting", "complete"):
        return ReportReconciliation(report, True, clear_unknown(client, rid))
    if report.status != "draft":
        return ReportReconciliation(report, None, 0)
    with client._sent.lock:
        ages = [_age(s) for s in client._sent.submissions_of(rid) if s.unknown is not None]
    left = grace_seconds(client.settings) - min(ages) if ages else 0.0
    if left > 0:
        return ReportReconciliation(report, None, 0, check_again_in=left)
    return ReportReconciliation(report, False, clear_unknown(client, rid))


def _age(submission: Submission) -> float:
    """Seconds since the submission was sent: on the monotonic clock in the process that sent it, else by the wall
    clock of its record (a clock set back counts as just now)."""
    started = _sent_clock.get(submission)
    if started is not None:
        return time.monotonic() - started
    sent_at = submission.sent_at if submission.sent_at.tzinfo is not None else submission.sent_at.replace(tzinfo=UTC)
    return max(0.0, (datetime.now(UTC) - sent_at).total_seconds())
