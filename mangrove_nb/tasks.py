"""The asynchronous task handle: poll, wait with progress, re-attach by id, typed outcomes.

``Task.wait()`` polls adaptively (``PollSchedule``): a first look soon after the start, then, once the
reported progress has moved, a poll timed for the moment the task should finish, estimated from our own
observations only (when, on our monotonic clock, we saw which progress; never the server's timestamps, so
a server clock that is off changes nothing); never more than about one call a second, and on average no
more calls than a fixed ``poll_interval`` poll would make (a token bucket that refills one call per
``poll_interval``). Ctrl-C or a kernel interrupt stops the waiting, not the job, and says how to
re-attach: ``client.task(<id>, ledgers=[...], period=...).wait()`` (``Task.reattach``)."""

from __future__ import annotations

import math
import re
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar, cast

from .client import HttpClient
from .errors import (
    MalformedResponseError,
    MangroveError,
    NotFoundError,
    TaskError,
    TaskFailedError,
    TaskTimeoutError,
    redact,
)
from .progress import Progress, progress_display

STATES = ("pending", "running", "complete", "failed")
FINAL_STATES = ("complete", "failed")
# Tokens the poll budget starts with: the first look, plus one poll timed for the predicted finish.
POLL_BURST = 2.0
# Poll this long after the predicted finish, so the task has had time to write its last state.
FINISH_MARGIN = 0.05
# Readings the estimate is fitted on (the most recent ones; older ones are dropped as soon as they
# contradict the recent ones, which is how a task that changes pace is followed).
_WINDOW = 32
_OF_N = re.compile(r"\bof\s+(\d+)\b")


@dataclass(frozen=True)
class TaskStatus:
    """One reading of ``GET /async_tasks/{id}``; ``progress`` is clamped to 0–100; ``description`` and
    ``error_message`` are the server's text with any registered API token redacted."""

    id: int | str
    state: str
    progress: float
    description: str | None
    started_at: datetime | None
    finished_at: datetime | None
    error_message: str | None
    raw: Mapping[str, Any] = field(repr=False, compare=False)
    #: When the server made the task (the 202's ``created_at``; polls need not repeat it).
    created_at: datetime | None = None

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
        number = _progress_number(progress)
        if number != number:  # NaN
            number = 0.0
        return cls(
            id=body["id"],
            state=state,
            progress=max(0.0, min(100.0, number)),
            description=_server_text(body.get("progress_description")),
            started_at=_timestamp(body.get("started_at"), "started_at", where),
            finished_at=_timestamp(body.get("finished_at"), "finished_at", where),
            error_message=_server_text(body.get("error_message")),
            raw=body,
            created_at=_timestamp(body.get("created_at"), "created_at", where),
        )


@dataclass(frozen=True)
class _Reading:
    """One look at an unfinished task: when (our monotonic clock), its progress (0 while pending), and n when
    the description says "batch i of n"."""

    at: float
    progress: float
    batches: int | None


class PollSchedule:
    """When to poll next, from what we saw and when we saw it (pure: give it times, it gives delays).

    Only our own observations count: the times (on the caller's monotonic clock) at which we read the task
    and the progress it reported then. The server's timestamps play no part, so a server clock minutes off,
    or a ``started_at`` that is missing or rounded to the second, changes nothing.

    The estimate takes progress to rise linearly with time: level L% is reached at ``a + b·L``. A reading
    at time t with progress p says the task had reached p and not yet the next level: p plus the step
    progress moves by (1, or the gcd of the values seen when they are all whole multiples of more, or a
    whole batch when it sits on a "batch i of n" boundary).
    In terms of the finish F and the pace b, each reading is a pair of half-planes; over every pace that
    all recent readings allow, F ranges over [earliest, latest] (an exact linear program in two
    variables). When the readings contradict each other (the task changed pace) the oldest are dropped
    until they agree; when the progress goes backwards, all earlier ones are.

    The next poll: the first look ``min_interval`` after the start (or after the reading given with
    ``spend=False``); with no finite estimate yet, ``interval`` after the last; once the finish is known
    to within ``min_interval``, at the latest it can be (plus ``FINISH_MARGIN``); otherwise a look timed
    to narrow the window to that width (or, with no progress left to see, the latest finish), but never
    later than every ``interval`` (every ``min_interval`` while the bucket is full) once the task may be
    over. Every poll comes between ``min_interval`` and ``max_interval`` after the previous one, and a
    token bucket (one call per ``interval``, ``POLL_BURST`` to start) keeps the average no higher than a
    fixed ``interval`` poll's.
    """

    def __init__(self, *, min_interval: float, interval: float, max_interval: float, start: float) -> None:
        self.min_interval, self.interval, self.max_interval = min_interval, interval, max_interval
        self._tokens, self._token_time = POLL_BURST, start
        self._last_poll = start
        self._polled = False
        self._readings: list[_Reading] = []
        self._bounds: tuple[float, float] | None = None

    def observe(self, now: float, status: TaskStatus, *, spend: bool = True) -> None:
        """Record a reading made at ``now`` (spending a token); ``spend=False`` for one made before this
        schedule began (the creation answer), which informs the estimate without counting as our poll.
        The server's clock plays no part."""
        if spend:
            self._refill(now)
            self._tokens -= 1
            self._polled = True
        self._last_poll = now
        if status.done:
            return
        reading = _Reading(now, status.progress if status.state == "running" else 0.0,
                           _batch_count(status.description))
        if self._readings and reading.progress < self._readings[-1].progress:
            self._readings = []  # progress went backwards: what came before says nothing about what follows
        self._readings = [*self._readings, reading][-_WINDOW:]
        self._bounds = self._fit()

    def finish_bounds(self) -> tuple[float, float] | None:
        """Earliest and latest finish the readings allow (caller's clock); None before any reading of an
        unfinished task. The latest is ``math.inf`` until progress has moved between readings."""
        return self._bounds

    def predicted_finish(self) -> float | None:
        """The latest finish the readings allow (what the last poll aims at); None while unbounded."""
        if self._bounds is None or math.isinf(self._bounds[1]):
            return None
        return self._bounds[1]

    def next_delay(self, now: float) -> float:
        """Seconds to wait before the next poll."""
        self._refill(now)
        last = self._last_poll
        earliest, latest = last + self.min_interval, last + self.max_interval
        bounds = self._bounds
        if not self._polled:
            target = earliest  # the first look comes soon
        elif bounds is None or math.isinf(bounds[1]):
            target = last + self.interval
        elif bounds[1] - bounds[0] <= self.min_interval:
            target = bounds[1] + FINISH_MARGIN  # known closely enough: look when it must be over
        else:
            # A look narrows the window only while there is progress left to see.
            target = self._narrowing_poll(bounds) if self._next_level() < 100 else bounds[1] + FINISH_MARGIN
            if bounds[0] < target:  # it may be over before then: keep looking at a steady pace
                gap = self.min_interval if self._tokens >= POLL_BURST else self.interval
                target = min(target, max(bounds[0], last + gap))
        target = min(max(target, earliest), latest)
        if self._tokens < 1:
            target = max(target, now + (1 - self._tokens) * self.interval)
        return max(0.0, target - now)

    def _narrowing_poll(self, bounds: tuple[float, float]) -> float:
        """When a look should narrow the finish window to ``min_interval``: its width goes as the time left
        to extrapolate over the time the readings span, so a look d seconds on should leave
        ``width · span/(span + d) · (left - d)/left``."""
        span, last = self._last_poll - self._readings[0].at, self._last_poll
        width, left = bounds[1] - bounds[0], (bounds[0] + bounds[1]) / 2 - last
        if span <= 0 or left <= 0:
            return last + self.interval
        scale, wanted = width * span, self.min_interval
        d = (scale - wanted * span) * left / (scale + wanted * left)
        return min(last + max(d, 0.0), bounds[1] - wanted)

    def _next_level(self) -> float:
        return _levels(self._readings[-1], _grain(self._readings))[1]

    def _fit(self) -> tuple[float, float]:
        """Bounds on the finish, after dropping the oldest readings that contradict the later ones."""
        readings = self._readings
        if _finish_range(readings) is None:
            low, high = 0, len(readings) - 1  # the last reading alone always agrees with itself
            while low < high:  # a later start keeps fewer readings, which agree more: bisect
                middle = (low + high) // 2
                if _finish_range(readings[middle:]) is None:
                    low = middle + 1
                else:
                    high = middle
            self._readings = readings = readings[low:]
        bounds = _finish_range(readings)
        assert bounds is not None
        return bounds

    def _refill(self, now: float) -> None:
        self._tokens += max(0.0, now - self._token_time) / self.interval
        self._token_time = now


def _grain(readings: Sequence[_Reading]) -> int:
    """The step the progress seems to move by: the gcd of the values seen, once there are two different
    positive ones and all are whole (25, 50, 75 -> 25); otherwise 1."""
    values = {r.progress for r in readings if r.progress > 0}
    if len(values) < 2 or not all(float(v).is_integer() for v in values):
        return 1
    return max(1, math.gcd(*(int(v) for v in values)))


def _levels(reading: _Reading, grain: int) -> tuple[float | None, float]:
    """(a level the task had reached, one it had not) at the reading; None: reaching 0 says nothing.

    A progress is read as cut to its step, not rounded: a server that rounds looks like one whose task
    started half a step earlier, and the estimate then runs that much early (a missed look, not more).
    """
    progress, step = reading.progress, float(grain)
    if reading.batches:
        size = 100 / reading.batches
        if abs(progress - size * round(progress / size)) < 1:
            step = max(step, size + 1)  # on a batch boundary: it may stay there until the batch is done
    return (progress if progress > 0 else None), min(100.0, progress + step)


def _finish_range(readings: Sequence[_Reading]) -> tuple[float, float] | None:
    """[earliest, latest] finish of a task whose level L% is reached at ``a + b·L`` (b >= 0), over every
    such line that agrees with all the readings; latest is ``math.inf`` while b has no upper bound; None
    when no line agrees.

    With q = 100 - L, a reading at t that had reached level L puts the finish F at most ``t + q·b``; one
    that had not reached L puts it above ``t + q·b``. At pace b, F lies in [floor(b), ceiling(b)]: floor
    convex, ceiling concave, both non-decreasing in b. The paces where floor <= ceiling form an interval
    whose ends are 0 or where a floor line crosses a ceiling line, so checking those candidates is exact.
    """
    grain, origin = _grain(readings), readings[0].at
    floors, ceilings = [], []
    for r in readings:
        reached, below = _levels(r, grain)
        floors.append((r.at - origin, 100.0 - below))
        if reached is not None:
            ceilings.append((r.at - origin, 100.0 - reached))

    def floor(b: float) -> float:
        return max(t + q * b for t, q in floors)

    def ceiling(b: float) -> float:
        return min(t + q * b for t, q in ceilings) if ceilings else math.inf

    paces = {0.0}
    for t_floor, q_floor in floors:
        for t_ceiling, q_ceiling in ceilings:
            if q_floor != q_ceiling and (pace := (t_ceiling - t_floor) / (q_floor - q_ceiling)) > 0:
                paces.add(pace)
    agreeing = [b for b in paces if floor(b) <= ceiling(b) + 1e-9]
    if not agreeing:
        return None
    slowest = max(agreeing)
    far = 2 * slowest + 1e6  # no agreeing crossing lies beyond `slowest`: agreeing here means at any slower pace
    latest = math.inf if floor(far) <= ceiling(far) else ceiling(slowest) + origin
    return floor(min(agreeing)) + origin, latest


def _batch_count(description: str | None) -> int | None:
    """n in "Processing batch i of n" (the cookbook's wording), if the description says it."""
    match = _OF_N.search(description or "")
    return int(match.group(1)) if match and int(match.group(1)) > 0 else None


ResultT = TypeVar("ResultT")
# Turns a completed task's status into what ``wait()`` returns (the batches it made, a submitted report...).
Collector = Callable[[TaskStatus], ResultT]


class Task(Generic[ResultT]):
    """A batch-generation task on the server; ``wait()`` for it, or re-attach later with ``client.task(id)``.

    ``collect`` turns the final status into the batches the task made (the analyst API passes one that
    lists them from the server, by the server's timestamps, on the ledgers and in the period it generated).
    ``reattach`` is the call that re-attaches to it, as every message that says how names it (default
    ``client.task(<id>).wait()``; a generation's names its ledgers and period, so that the re-attached task
    returns the same batches).
    """

    def __init__(
        self,
        http: HttpClient,
        task_id: int | str,
        *,
        collect: Collector[ResultT] | None = None,
        label: str | None = None,
        on_final: Callable[[Task[ResultT]], None] | None = None,
        advise: Callable[[TaskStatus], str | None] | None = None,
        reattach: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.id = task_id
        self.reattach = reattach or f"client.task({task_id!r}).wait()"
        self.label = label
        self._http, self._collect, self._on_final = http, collect, on_final
        # What to tell the analyst when the task fails (e.g. the one-month call for a missing input).
        self._advise = advise
        self._clock, self._sleep = clock, sleep
        self._status: TaskStatus | None = None
        self._seen_at: float | None = None
        self.polls = 0

    @property
    def status(self) -> TaskStatus | None:
        """The latest reading of the task (the creation answer, until it is polled)."""
        return self._status

    @status.setter
    def status(self, reading: TaskStatus | None) -> None:
        # When we saw it, on our monotonic clock: wait() estimates from our own observations only.
        self._status, self._seen_at = reading, self._clock()

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

    def wait(self, timeout: float | None = None, *, progress: bool | Progress | None = None,
             stop: threading.Event | None = None) -> ResultT | None:
        """Wait until the task completes and return what its ``collect`` makes of it (for a generation, the
        batches it made as a frame; without ``collect``, the final ``TaskStatus``).

        Raises ``TaskFailedError`` (with the server's ``error_message``) when it fails, and
        ``TaskTimeoutError`` (naming the task id) after ``timeout`` seconds (default: the settings'
        ``task_timeout``); the task goes on on the server either way. ``progress`` is True/False (default: the
        settings' ``show_progress``) or a display of one's own (``update(percent, label)``, ``close(label)``,
        as a form's bar). ``stop``: an event that, once set, ends the wait at once (between polls); ``wait``
        then returns None and the task goes on.
        """
        settings = self._http.settings
        timeout = settings.task_timeout if timeout is None else timeout
        if progress is None or isinstance(progress, bool):
            display = progress_display(f"Task {self.id}", settings.show_progress if progress is None else progress)
        else:
            display = progress

        def pause(seconds: float) -> bool:
            """Sleep; True when ``stop`` was set meanwhile."""
            if stop is None:
                self._sleep(seconds)
                return False
            return stop.wait(seconds)

        start = self._clock()
        schedule = PollSchedule(min_interval=settings.poll_min_interval, interval=settings.poll_interval,
                                max_interval=settings.poll_max_interval, start=start)
        shown = 0.0
        try:
            if self._status is not None and self._seen_at is not None and not self._status.done:
                # The last reading (the creation answer) informs the estimate; the first look comes
                # poll_min_interval after it (at once, when it is older than that).
                schedule.observe(min(self._seen_at, start), self._status, spend=False)
                if pause(schedule.next_delay(start)):
                    display.close(f"Task {self.id}: stopped waiting (the task goes on on the server)")
                    return None
            while True:
                status = self.refresh()
                now = self._clock()
                schedule.observe(now, status)
                shown = max(shown, status.progress)  # a bar never goes backwards
                display.update(100.0 if status.state == "complete" else shown, status.description or status.state)
                if status.done:
                    break
                delay = schedule.next_delay(now)
                if now + delay - start > timeout:
                    raise TaskTimeoutError(task_id=self.id, timeout=timeout, reattach=self.reattach)
                if pause(delay):
                    display.close(f"Task {self.id}: stopped waiting (the task goes on on the server)")
                    return None
        except KeyboardInterrupt:
            display.close(f"Task {self.id}: stopped waiting (the task goes on on the server)")
            print(f"Stopped waiting for task {self.id}; it goes on running on the server. "
                  f"Re-attach with {self.reattach}.", file=sys.stderr)
            raise
        except MangroveError as exc:
            display.close(f"Task {self.id}: {type(exc).__name__}")
            if not isinstance(exc, TaskError | NotFoundError):  # (a task that does not exist has nothing to re-attach)
                exc.add_advice(f"Waiting for task {self.id} stopped; the task may still be running on the "
                               f"server: re-attach with {self.reattach}.")
            raise
        if status.state == "failed":
            display.close(f"Task {self.id} failed")
            failure = TaskFailedError(task_id=self.id, error_message=status.error_message)
            advice = self._advise(status) if self._advise is not None else None
            if advice:
                failure.add_advice(advice)  # in the message itself: print(e) and logs show it too
            raise failure
        display.close(f"Task {self.id} complete")
        if self._collect is None:
            return cast(ResultT, status)  # a Task built without collect is a Task[TaskStatus]
        try:
            return self._collect(status)
        except MangroveError as exc:
            exc.add_advice(f"Task {self.id} completed, but its batches could not be listed; list them again "
                           f"with {self.reattach}.")
            raise


def _server_text(value: Any) -> str | None:
    """Text the server wrote (a description, an error message), cleaned of any registered API token."""
    return redact(value) if isinstance(value, str) else None


def _timestamp(value: Any, name: str, where: str) -> datetime | None:
    if value is None:
        return None
    moment = None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        moment = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        pass
    if moment is None:
        raise MalformedResponseError(f"{where}: {name} {str(value)[:40]!r} is not an ISO 8601 time in range.",
                                     url=where, field=name)
    return moment


def _progress_number(progress: Any) -> float:
    """The task's progress as a float (0 for anything that is not a number; huge numbers count as 100)."""
    if isinstance(progress, bool) or not isinstance(progress, int | float):
        return 0.0
    try:
        return float(progress)
    except OverflowError:
        return 100.0 if progress > 0 else 0.0
