"""A report's submission, sent once: ``SubmissionTask`` (its wait, the registry's refusal in its words),
``ReportReconciliation`` (what ``reconcile_report`` found), and the record kept around the one POST.

The record is ``_sent.Sent``'s (the one generations use, shared by every client of the same API): a submission is
recorded before the POST, forgotten on a definite answer or when its task is final, and kept (in the state file
too) when the outcome is unknown, so that report is not submitted again until ``reconcile_report`` has read its
status. The functions take the client (``ReportsMixin``): its ``http``, ``_sent`` and ``report()``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._sent import Sent, Submission
from ..client import HttpClient
from ..errors import (
    PreconditionError,
    TaskFailedError,
    TaskTimeoutError,
)
from ..tasks import Task, TaskStatus
from ._display import _plain
from .report import Report

if TYPE_CHECKING:
    from ..progress import Progress
    from . import ReportsMixin


@dataclass(frozen=True)
class ReportReconciliation:
    """What ``reconcile_report`` found: the report as the server has it now, and whether the submission was sent
    (True: the report is submitting or complete; False: it is a draft, so nothing is being submitted; None: its
    status does not say). ``cleared`` counts the unknown outcomes this settled (no longer refusing a submit)."""

    report: Report
    sent: bool | None
    cleared: int

    def advice(self) -> str:
        """What happened and what to do next, in one or two sentences."""
        rid = self.report.id
        if self.sent is True and self.report.status == "complete":
            return (f"The submission was sent: report {rid} is complete (the registry accepted it). Do not submit "
                    "it again.")
        if self.sent is True:
            return (f"The submission was sent: report {rid} is {self.report.status!r}. Read it again later with "
                    f"client.report({rid!r}): 'complete' when the registry accepts it, 'draft' when it refuses it "
                    "(then the failed task's message says why).")
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
                 on_final: Callable[[Task[Report]], None] | None = None) -> None:
        super().__init__(http, task_id, collect=collect, label=f"submission of report {report_id}",
                         on_final=on_final)
        self.report_id = report_id

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
    """``PreconditionError`` when this process (or, through the state file, an earlier one) recorded a submission
    of ``rid`` whose outcome is unknown or whose task is still running."""
    with client._sent.lock:
        recorded = client._sent.submissions_of(rid)
    for submission in recorded:
        if submission.unknown is not None:
            raise PreconditionError(
                f"Not sent: {submission.describe()} has an unknown outcome, so the report may already have gone "
                f"to the registry. Run client.reconcile_report({rid!r}): it reads the report's status, says "
                "what happened and clears this.")
        task = submission.task
        if task is not None and not task.refresh().done:
            raise PreconditionError(
                f"Not sent: task {task.id} from this session is already submitting report {rid}; wait for it "
                f"with client.report_task({rid!r}, {task.id!r}).wait().")


def send_submission(client: ReportsMixin, rid: str) -> SubmissionTask:
    """Record, then send (the POST once, ``HttpClient.send_once``); whatever happens after the request may have
    left, the record says so. The caller holds the API's lock (``client._sent.lock``)."""
    submission = Submission(rid)
    client._sent.submissions.append(submission)
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
                          on_final=lambda task: _forget_submission(client._sent, task))


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
