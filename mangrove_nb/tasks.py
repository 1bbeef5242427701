"""The asynchronous task handle: poll, wait with progress, re-attach by id, typed outcomes.

``Task.wait()`` polls adaptively (``PollSchedule``): a first look soon after the start, then, once the
reported progress has moved, a poll timed for the moment the task should finish; never more than about
one call a second, and on average no more calls than a fixed ``poll_interval`` poll would make (a token
bucket that refills one call per ``poll_interval``). Ctrl-C or a kernel interrupt stops the waiting, not
the job, and says how to re-attach: ``client.task(<id>).wait()``.
"""

from __future__ import annotations

import math
import re
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .client import HttpClient
from .errors import (
    MalformedResponseError,
    MangroveError,
    NotFoundError,
    TaskError,
    TaskFailedError,
    TaskTimeoutError,
)
from .progress import progress_display

STATES = ("pending", "running", "complete", "failed")
FINAL_STATES = ("complete", "failed")
# Tokens the poll budget starts with: the first look, plus one poll timed for the predicted finish.
POLL_BURST = 2.0
# Poll this long after the predicted finish, so the task has had time to write its last state.
FINISH_MARGIN = 0.05
_OF_N = re.compile(r"\bof\s+(\d+)\b")


@dataclass(frozen=True)
class TaskStatus:
    """One reading of ``GET /async_tasks/{id}``; ``progress`` is clamped to 0–100."""

    id: int | str
    state: str
    progress: float
    description: str | None
    started_at: datetime | None
    finished_at: datetime | None
    error_message: str | None
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @property
    def done(self) -> bool:
        return self.state in FINAL_STATES

    @classmethod
    def from_json(cls, body: Any, *, where: str) -> TaskStatus:
        if not isinstance(body, dict) or "id" not in body:
            raise MalformedResponseError(f"{where} did not answer with an async task object.", url=where)
        state = body.get("state")
        if state not in STATES:
            raise MalformedResponseError(f"{where} reported an unknown task state {state!r}; expected one of "
                                         f"{', '.join(STATES)}.", url=where, field="state")
        progress = body.get("progress")
        number = float(progress) if isinstance(progress, int | float) and not isinstance(progress, bool) else 0.0
        if number != number:  # NaN
            number = 0.0
        return cls(
            id=body["id"],
            state=state,
            progress=max(0.0, min(100.0, number)),
            description=_text(body.get("progress_description")),
            started_at=_timestamp(body.get("started_at"), "started_at", where),
            finished_at=_timestamp(body.get("finished_at"), "finished_at", where),
            error_message=_text(body.get("error_message")),
            raw=body,
        )


class PollSchedule:
    """When to poll next, from what the task has reported so far (pure: give it times, it gives delays).

    Each reading of a running task bounds its total duration D, counted from its ``started_at``: it was not
    finished after ``elapsed`` seconds (D > elapsed), and ``progress`` p% took at most ``elapsed`` (D <=
    elapsed / p). When the description says "batch i of n", the current batch is at most 1/n more, which
    tightens the lower bound. The predicted finish is the middle of the bounds; the next poll is timed for
    it, between ``min_interval`` and ``max_interval`` after the previous one, and only when the token
    bucket (one call per ``interval``, ``POLL_BURST`` to start) allows.
    """

    def __init__(self, *, min_interval: float, interval: float, max_interval: float, start: float) -> None:
        self.min_interval, self.interval, self.max_interval = min_interval, interval, max_interval
        self._tokens, self._token_time = POLL_BURST, start
        self._last_poll = start
        self._polled = False
        self._started: float | None = None
        self._lower, self._upper = 0.0, math.inf

    def observe(self, now: float, status: TaskStatus, started_local: float | None = None) -> None:
        """Record a poll made at ``now`` (and spend one token)."""
        self._refill(now)
        self._tokens -= 1
        self._last_poll, self._polled = now, True
        if status.state != "running" or started_local is None or now <= started_local:
            return
        self._started = started_local
        elapsed = now - started_local
        fraction = status.progress / 100
        self._lower = max(self._lower, elapsed)
        steps = _batch_count(status.description)
        if steps:
            self._lower = max(self._lower, elapsed / min(1.0, fraction + 1 / steps))
        if fraction > 0:
            self._upper = min(self._upper, elapsed / fraction)

    def predicted_finish(self) -> float | None:
        """When the task should finish (on the caller's clock); None until its progress has moved."""
        if self._started is None or math.isinf(self._upper):
            return None
        duration = (self._lower + self._upper) / 2 if self._lower < self._upper else self._lower
        return self._started + duration

    def next_delay(self, now: float) -> float:
        """Seconds to wait before the next poll."""
        earliest, latest = self._last_poll + self.min_interval, self._last_poll + self.max_interval
        finish = self.predicted_finish()
        if not self._polled:
            target = earliest  # the first look comes soon
        elif finish is None:
            target = self._last_poll + self.interval
        elif finish + FINISH_MARGIN > now:
            target = finish + FINISH_MARGIN
        else:
            target = earliest  # overdue: look again as soon as allowed
        target = min(max(target, earliest), latest)
        self._refill(now)
        if self._tokens < 1:
            target = max(target, now + (1 - self._tokens) * self.interval)
        return max(0.0, target - now)

    def _refill(self, now: float) -> None:
        self._tokens += max(0.0, now - self._token_time) / self.interval
        self._token_time = now


def _batch_count(description: str | None) -> int | None:
    """n in "Processing batch i of n" (the cookbook's wording), if the description says it."""
    match = _OF_N.search(description or "")
    return int(match.group(1)) if match and int(match.group(1)) > 0 else None


Collector = Callable[[TaskStatus], Any]


class Task:
    """A batch-generation task on the server; ``wait()`` for it, or re-attach later with ``client.task(id)``.

    ``collect`` turns the final status into the batches the task made (the analyst API passes one that
    lists them from the server, by the server's timestamps).
    """

    def __init__(
        self,
        http: HttpClient,
        task_id: int | str,
        *,
        collect: Collector | None = None,
        label: str | None = None,
        on_final: Callable[[Task], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.id = task_id
        self.label = label
        self._http, self._collect, self._on_final = http, collect, on_final
        self._clock, self._wall, self._sleep = clock, wall, sleep
        self.status: TaskStatus | None = None
        self.polls = 0

    def __repr__(self) -> str:
        state = f"{self.status.state} {self.status.progress:.0f}%" if self.status else "not polled yet"
        return f"<Task {self.id} {self.label or ''} {state}>".replace("  ", " ")

    def refresh(self) -> TaskStatus:
        """Ask the server for the task's state now."""
        try:
            body = self._http.async_task(self.id)
        except NotFoundError as exc:
            if self.status is not None:
                raise TaskError(f"Task {self.id} was seen in state {self.status.state!r} but the server now says "
                                "it does not exist (404). List the ledger's batches to see what it made.",
                                task_id=self.id) from None
            raise exc from None
        self.polls += 1
        self.status = TaskStatus.from_json(body, where=f"GET /async_tasks/{self.id}")
        if self.status.done and self._on_final is not None:
            self._on_final(self)
        return self.status

    def wait(self, timeout: float | None = None, *, progress: bool | None = None) -> Any:
        """Wait until the task completes and return the batches it made.

        Raises ``TaskFailedError`` (with the server's ``error_message``) when it fails, and
        ``TaskTimeoutError`` (naming the task id) after ``timeout`` seconds (default: the settings'
        ``task_timeout``); the task goes on on the server either way. ``progress`` defaults to the
        settings' ``show_progress``.
        """
        settings = self._http.settings
        timeout = settings.task_timeout if timeout is None else timeout
        show = settings.show_progress if progress is None else progress
        display = progress_display(f"Task {self.id}", show)
        start = self._clock()
        schedule = PollSchedule(min_interval=settings.poll_min_interval, interval=settings.poll_interval,
                                max_interval=settings.poll_max_interval, start=start)
        shown = 0.0
        try:
            if self.status is not None and not self.status.done:
                self._sleep(schedule.next_delay(start))  # just created: the first look comes a little later
            while True:
                status = self.refresh()
                now = self._clock()
                schedule.observe(now, status, self._local_time(status.started_at, now))
                shown = max(shown, status.progress)  # a bar never goes backwards
                display.update(100.0 if status.state == "complete" else shown, status.description or status.state)
                if status.done:
                    break
                delay = schedule.next_delay(now)
                if now + delay - start > timeout:
                    raise TaskTimeoutError(task_id=self.id, timeout=timeout)
                self._sleep(delay)
        except KeyboardInterrupt:
            display.close(f"Task {self.id}: stopped waiting (the task goes on on the server)")
            print(f"Stopped waiting for task {self.id}; it goes on running on the server. "
                  f"Re-attach with client.task({self.id!r}).wait().", file=sys.stderr)
            raise
        except MangroveError as exc:
            display.close(f"Task {self.id}: {type(exc).__name__}")
            if not isinstance(exc, TaskError):
                exc.add_note(f"Task {self.id} may still be running; re-attach with client.task({self.id!r}).wait().")
            raise
        if status.state == "failed":
            display.close(f"Task {self.id} failed")
            raise TaskFailedError(task_id=self.id, error_message=status.error_message)
        display.close(f"Task {self.id} complete")
        return self._collect(status) if self._collect is not None else status

    def _local_time(self, moment: datetime | None, now: float) -> float | None:
        """A server timestamp on our monotonic clock (for estimates only, never for deciding what is ours)."""
        if moment is None:
            return None
        return now - (self._wall() - moment.timestamp())


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _timestamp(value: Any, name: str, where: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise MalformedResponseError(f"{where}: {name} {str(value)[:40]!r} is not an ISO 8601 time.", url=where,
                                     field=name) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
