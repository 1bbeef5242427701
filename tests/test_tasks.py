"""The poll schedule and ``Task.wait()``, on fake clocks: no test here sleeps or measures wall-clock time.

``PollSchedule`` is pure (times in, delays out), so it is driven directly; ``Task.wait()`` runs against
``FakeServer``, an in-process stand-in for ``GET /async_tasks/{id}`` whose task is created at a known time
on the fake monotonic clock, reports progress rising linearly (whole percents) and stamps ``started_at`` /
``finished_at`` to the whole second on a server clock that may be minutes off ours.
"""

from __future__ import annotations

import itertools
import math
import random
import statistics
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from mangrove_nb.errors import REDACTED, TaskFailedError, register_secret
from mangrove_nb.settings import Settings
from mangrove_nb.tasks import FINISH_MARGIN, POLL_BURST, PollSchedule, Task, TaskStatus

MIN, INTERVAL, MAX = 1.0, 2.0, 5.0
TOKEN = "tasks-test-token-5d1e-93ab"


def status(state: str, progress: float = 0.0, description: str | None = None,
           started_at: datetime | None = None) -> TaskStatus:
    return TaskStatus(id=1, state=state, progress=progress, description=description, started_at=started_at,
                      finished_at=None, error_message=None, raw={})


def new_schedule() -> PollSchedule:
    return PollSchedule(min_interval=MIN, interval=INTERVAL, max_interval=MAX, start=0.0)


Report = Callable[[float], TaskStatus]


def simulate(schedule: PollSchedule, report: Report, until: float, *, created: bool = False) -> list[float]:
    """Poll as the schedule says until ``until`` (or completion); returns the poll times. ``created``: the
    schedule first gets the reading at 0 without spending a poll, as ``Task.wait()`` gives it the creation
    answer."""
    if created:
        schedule.observe(0.0, report(0.0), spend=False)
    now, polls = 0.0, []
    while True:
        now += schedule.next_delay(now)
        if now > until:
            return polls
        polls.append(now)
        reading = report(now)
        schedule.observe(now, reading)
        if reading.done:
            return polls


def against_fixed_poll(tasks: list[tuple[float, float]], report_for: Callable[[float, float], Report]
                       ) -> tuple[list[float], int, list[float], int]:
    """Each (duration, pickup) task simulated under the schedule and under a fixed 2 s poll: the delays and
    total calls of each."""
    delays, calls, fixed_delays, fixed_calls = [], 0, [], 0
    for duration, pickup in tasks:
        finish = pickup + duration
        polls = simulate(new_schedule(), report_for(duration, pickup), until=10 * finish, created=True)
        delays.append(polls[-1] - finish)
        calls += len(polls)
        fixed_delay, fixed_count = fixed_poll(finish)
        fixed_delays.append(fixed_delay)
        fixed_calls += fixed_count
    return delays, calls, fixed_delays, fixed_calls


def linear(duration: float, pickup: float = 0.0, *, batches: int | None = None, stepwise: bool = False,
           rounding: Callable[[float], float] = math.floor) -> Report:
    """A task pending for ``pickup`` s, then running ``duration`` s with progress rising linearly (whole
    percents by ``rounding``; with ``stepwise`` only at "batch i of n" boundaries)."""

    def report(now: float) -> TaskStatus:
        if now >= pickup + duration:
            return status("complete", 100)
        if now < pickup:
            return status("pending")
        fraction = (now - pickup) / duration
        description = None
        if batches:
            current = min(batches, int(fraction * batches) + 1)
            description = f"Processing batch {current} of {batches}"
            if stepwise:
                fraction = (current - 1) / batches
        return status("running", rounding(100 * fraction), description)

    return report


def fixed_poll(finish: float) -> tuple[float, int]:
    """Delay and calls of ``while not done: sleep(2); GET`` for a task that finishes at ``finish``."""
    calls = math.ceil(finish / INTERVAL)
    return calls * INTERVAL - finish, calls


def gaps(polls: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(polls)]


# --- the schedule's shape (moved from test_client_resilience.py) ---------------------------------------------


def test_first_poll_comes_after_min_interval() -> None:
    """Before any reading, the first look is min_interval after the start."""
    assert new_schedule().next_delay(0.0) == 1.0


def test_first_poll_comes_min_interval_after_a_reading_given_without_spending() -> None:
    """The creation answer, given with spend=False, sets when the first look comes (min_interval after it,
    or at once when it is older) and costs no token."""
    schedule = new_schedule()
    schedule.observe(0.0, status("pending"), spend=False)
    assert schedule.next_delay(0.0) == pytest.approx(MIN)
    late = PollSchedule(min_interval=MIN, interval=INTERVAL, max_interval=MAX, start=30.0)
    late.observe(0.0, status("pending"), spend=False)
    assert late.next_delay(30.0) == 0.0


def test_next_poll_is_timed_for_the_predicted_finish() -> None:
    """A task created at 0, picked up at 0.2 s and running 5 s (ends at 5.2): after readings of 16% at 1 s and
    45% at 2.5 s the finish is known within min_interval, and the next poll is at the latest it can be plus
    FINISH_MARGIN."""
    report = linear(5.0, 0.2)
    schedule = new_schedule()
    schedule.observe(0.0, report(0.0), spend=False)
    schedule.observe(1.0, report(1.0))
    earliest, latest = schedule.finish_bounds() or (0.0, 0.0)
    assert earliest <= 5.2 <= latest and latest - earliest > MIN  # one reading: the pace is still loose
    schedule.observe(2.5, report(2.5))
    earliest, latest = schedule.finish_bounds() or (0.0, 0.0)
    assert earliest <= 5.2 <= latest and latest - earliest <= MIN
    assert schedule.predicted_finish() == latest
    assert schedule.next_delay(2.5) == pytest.approx(latest + FINISH_MARGIN - 2.5)


def test_a_batch_boundary_keeps_the_estimate_open_until_the_batch_can_end() -> None:
    """Progress sitting on a "batch i of n" boundary may stay there a whole batch: the same readings without
    the description bound the finish, with it they do not yet."""
    plain, described = new_schedule(), new_schedule()
    plain.observe(1.0, status("running", 0))
    plain.observe(2.0, status("running", 33))
    described.observe(1.0, status("running", 0, "Processing batch 1 of 3"))
    described.observe(2.0, status("running", 33, "Processing batch 2 of 3"))
    assert plain.predicted_finish() is not None
    assert described.predicted_finish() is None


def test_without_progress_the_poll_is_the_regular_interval_and_never_beyond_max() -> None:
    """No progress yet: poll every interval; a far predicted finish still polls within max_interval."""
    schedule = new_schedule()
    schedule.observe(1.0, status("pending"))
    assert schedule.next_delay(1.0) == pytest.approx(INTERVAL)
    slow = new_schedule()
    slow.observe(0.0, status("pending"), spend=False)
    slow.observe(10.0, status("running", 1))
    slow.observe(20.0, status("running", 2))
    assert slow.predicted_finish() is not None and slow.predicted_finish() > 100
    assert slow.next_delay(20.0) == pytest.approx(MAX)


def test_never_more_than_one_call_per_min_interval() -> None:
    """Whatever the progress says (here: always nearly done), polls are min_interval apart."""
    polls = simulate(new_schedule(), lambda now: status("running", 99.9), until=60)
    assert polls[0] == 1.0 and min(gaps(polls)) >= MIN - 1e-9


def test_calls_are_bounded_by_the_token_bucket() -> None:
    """However eager the estimate, the bucket keeps calls to one per interval on average (plus the burst)."""
    horizon = 100.0
    polls = simulate(new_schedule(), lambda now: status("running", 99.9), until=horizon)
    assert len(polls) <= POLL_BURST + horizon / INTERVAL


@pytest.mark.parametrize("duration", [3.0, 10.0, 20.0])
def test_a_linear_task_is_seen_finished_promptly_with_few_calls(duration: float) -> None:
    """A task reporting "batch i of n" is caught within 1 s of its end, with at most one call more than a
    fixed 2 s poll."""
    batches = int(duration)
    polls = simulate(new_schedule(), linear(duration, batches=batches, stepwise=True), until=10 * duration)
    assert polls[-1] - duration <= 1.0
    assert len(polls) <= math.ceil(duration / INTERVAL) + 1


# --- the estimate: our own observations only ----------------------------------------------------------------

SKEWS = {
    "true": 0.0,
    "server 5 min ahead": 300.0,
    "server 5 min behind": -300.0,
}


@pytest.mark.parametrize("pickup", [0.0, 0.4, 0.93])
def test_started_at_skewed_missing_or_whole_second_changes_nothing(pickup: float) -> None:
    """The same task, its readings carrying a started_at that is exact, whole-second, 5 minutes ahead or
    behind, or missing: the same polls, to the bit."""
    epoch = 1_743_508_800.0  # 2025-04-01T12:00:00Z on the server's clock

    def variant(started: Callable[[], datetime | None]) -> list[float]:
        base = linear(7.3, pickup)

        def report(now: float) -> TaskStatus:
            reading = base(now)
            return status(reading.state, reading.progress, reading.description,
                          started_at=started() if reading.state != "pending" else None)

        return simulate(new_schedule(), report, until=60, created=True)

    exact = datetime.fromtimestamp(epoch + pickup, UTC)
    runs = {"no started_at": variant(lambda: None)}
    for name, skew in SKEWS.items():
        runs[name] = variant(lambda skew=skew: datetime.fromtimestamp(epoch + pickup + skew, UTC))
        runs[f"{name}, whole second"] = variant(
            lambda skew=skew: datetime.fromtimestamp(math.floor(epoch + pickup + skew), UTC))
    runs["exact"] = variant(lambda: exact)
    assert len({tuple(polls) for polls in runs.values()}) == 1, runs


def _sample_tasks(count: int, low: float, high: float, seed: int) -> list[tuple[float, float]]:
    rng = random.Random(seed)
    return [(rng.uniform(low, high), rng.uniform(0.1, 1.0)) for _ in range(count)]


@pytest.mark.parametrize(("low", "high"), [(2.0, 5.0), (5.0, 15.0), (15.0, 30.0), (30.0, 120.0)])
def test_a_linear_task_is_noticed_within_half_a_second_on_average(low: float, high: float) -> None:
    """Tasks of random lengths, picked up after 0.1-1 s, progress rising linearly in whole percents: wait()'s
    schedule notices the end within 0.5 s on average (a fixed 2 s poll: about 1 s), never more than 1 s late,
    and with no more calls in all than the fixed poll, except for tasks under 5 s, where it may spend one
    more call per task (the fixed poll then makes only one or two)."""
    tasks = _sample_tasks(60, low, high, seed=int(low))
    delays, calls, fixed_delays, fixed_calls = against_fixed_poll(tasks, linear)
    assert statistics.mean(delays) <= 0.5 < statistics.mean(fixed_delays)
    assert max(delays) <= MIN
    assert calls <= fixed_calls + (60 if high <= 5 else 0)


def test_a_server_that_rounds_its_progress_is_still_caught_sooner_than_by_a_fixed_poll() -> None:
    """Rounded rather than cut, progress reads like that of a task started half a point earlier: the estimate
    runs that much early, which costs a look now and then, yet the mean delay stays well under the fixed
    poll's and the calls fewer."""
    delays, calls, fixed_delays, fixed_calls = against_fixed_poll(
        _sample_tasks(60, 5.0, 120.0, seed=5), lambda duration, pickup: linear(duration, pickup, rounding=round))
    assert statistics.mean(delays) <= 0.75 * statistics.mean(fixed_delays)
    assert calls <= fixed_calls


@pytest.mark.parametrize("rounding", [math.floor, lambda x: x], ids=["whole percents", "exact"])
@pytest.mark.parametrize(("batches", "stepwise"), [(None, False), (12, False), (3, True), (12, True)])
def test_the_true_finish_stays_within_the_bounds(rounding: Callable[[float], float], batches: int | None,
                                                 stepwise: bool) -> None:
    """For linear tasks, with progress exact or cut to whole percents, moving smoothly or batch by batch,
    every estimate holds the real finish."""
    for duration, pickup in _sample_tasks(25, 2.0, 60.0, seed=7):
        report = linear(duration, pickup, batches=batches, stepwise=stepwise, rounding=rounding)
        schedule, finish, now = new_schedule(), pickup + duration, 0.0
        schedule.observe(0.0, report(0.0), spend=False)
        while now < finish:
            now += schedule.next_delay(now)
            schedule.observe(now, report(now))
            bounds = schedule.finish_bounds()
            if now < finish and bounds is not None:
                assert bounds[0] - 1e-6 <= finish <= bounds[1] + 1e-6, (duration, pickup, now, bounds)


# --- progress that misbehaves: the bounds hold --------------------------------------------------------------


def _stalls(now: float) -> TaskStatus:
    return status("running", min(60, math.floor(10 * now)))  # 10 %/s, then stuck at 60 % for good


def _jumps(now: float) -> TaskStatus:
    return status("running", 5 if now < 6 else 95)  # slow, then nearly done at once, then stuck


def _goes_backwards(now: float) -> TaskStatus:
    return status("running", math.floor(20 * now) % 100)  # a new phase every 5 s, progress back to 0


def _erratic(now: float) -> TaskStatus:
    rng = random.Random(int(now * 1000))
    return status(rng.choice(["pending", "running"]), rng.choice([0, 1, 33, 50, 99, 99.9, 100]),
                  rng.choice([None, "Processing batch 2 of 3", "batch 9 of 10"]))


@pytest.mark.parametrize("report", [_stalls, _jumps, _goes_backwards, _erratic],
                         ids=["stalls", "jumps", "goes backwards", "erratic"])
def test_misbehaving_progress_never_makes_it_poll_faster_than_the_bounds(report: Report) -> None:
    """Polls stay min_interval..max_interval apart and within the token bucket, with or without the creation
    reading."""
    horizon = 300.0
    for created in (False, True):
        polls = simulate(new_schedule(), report, until=horizon, created=created)
        assert len(polls) > 10
        assert min(gaps(polls)) >= MIN - 1e-9
        assert max(gaps(polls)) <= MAX + 1e-9
        assert len(polls) <= POLL_BURST + horizon / INTERVAL


def test_a_task_that_changes_pace_is_followed() -> None:
    """Half the work at one pace, the rest twice as fast: the readings of the first half are dropped as soon
    as they contradict the later ones, and the end is still caught within 1 s."""

    def report(now: float) -> TaskStatus:
        progress = 5 * now if now < 10 else 50 + 10 * (now - 10)
        return status("complete", 100) if progress >= 100 else status("running", math.floor(progress))

    polls = simulate(new_schedule(), report, until=100, created=True)
    assert 15.0 <= polls[-1] <= 16.0


# --- Task.wait() against a fake server, on a fake clock ------------------------------------------------------


class FakeTime:
    def __init__(self) -> None:
        self.now = 5000.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds


def _server_time(moment: float) -> str:
    """A server timestamp as the documentation shows them: to the whole second, ``.000Z``."""
    return datetime.fromtimestamp(math.floor(moment), UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class FakeServer:
    """``GET /async_tasks/1`` of a task created now: pending ``pickup`` s, then ``duration`` s of progress
    rising linearly. Its clock reads ``skew`` s off ours; ``started_at`` can be left out."""

    def __init__(self, time: FakeTime, *, duration: float, pickup: float = 0.3, skew: float = 0.0,
                 with_started_at: bool = True, error: str | None = None) -> None:
        self.settings = Settings(token=TOKEN, show_progress=False)
        self.time, self.duration, self.pickup, self.skew = time, duration, pickup, skew
        self.with_started_at, self.error = with_started_at, error
        self.created = time.now
        self.calls: list[float] = []

    @property
    def finish(self) -> float:
        return self.created + self.pickup + self.duration

    def wall(self, moment: float) -> float:
        return 1_743_508_800.0 + (moment - self.created) + self.skew

    def body(self, now: float) -> dict[str, Any]:
        started = self.created + self.pickup
        body: dict[str, Any] = {"id": 1, "type": "ProductionAccounting::BatchGeneration", "state": "pending",
                                "progress": 0, "created_at": _server_time(self.wall(self.created))}
        if now >= started:
            done = now >= self.finish
            state = ("failed" if self.error else "complete") if done else "running"
            body.update(state=state, progress=100 if done else math.floor(100 * (now - started) / self.duration),
                        progress_description=None if done else "Generating batches",
                        started_at=_server_time(self.wall(started)) if self.with_started_at else None,
                        finished_at=_server_time(self.wall(self.finish)) if done else None,
                        error_message=self.error if done else None)
        return body

    def async_task(self, task_id: int | str) -> dict[str, Any]:
        self.calls.append(self.time.now)
        return self.body(self.time.now)


def _created_task(server: FakeServer, time: FakeTime) -> Task:
    """A task as ``client.generate()`` hands it over: its status is the creation answer."""
    task = Task(server, 1, clock=time.clock, sleep=time.sleep)  # type: ignore[arg-type]
    task.status = TaskStatus.from_json(server.body(time.now), where="POST /ledgers/lgr_1/batch_generations")
    return task


def test_wait_polls_the_same_whatever_the_server_clock_says() -> None:
    """The same task behind servers whose clocks are right, 5 minutes ahead, 5 minutes behind, or that send no
    started_at: wait() makes the same calls at the same moments and notices the end within a second."""
    runs = {}
    for name, skew, with_started in [("true", 0.0, True), ("+5 min", 300.0, True), ("-5 min", -300.0, True),
                                     ("no started_at", 0.0, False)]:
        time = FakeTime()
        server = FakeServer(time, duration=11.4, skew=skew, with_started_at=with_started)
        final = _created_task(server, time).wait(progress=False)
        assert final.state == "complete" and 0 <= time.now - server.finish <= MIN
        runs[name] = [t - server.created for t in server.calls]
    assert len({tuple(calls) for calls in runs.values()}) == 1, runs


def test_wait_on_linear_tasks_beats_a_fixed_poll_on_delay_and_calls() -> None:
    """Tasks of 3-30 s, each behind a server with a different clock skew: mean notice delay at most 0.5 s, and
    no more status calls in all than a fixed 2 s poll."""
    delays, calls, fixed_calls = [], 0, 0
    for number, (duration, pickup) in enumerate(_sample_tasks(40, 3.0, 30.0, seed=11)):
        time = FakeTime()
        server = FakeServer(time, duration=duration, pickup=pickup, skew=(-300.0, 0.0, 300.0)[number % 3])
        task = _created_task(server, time)
        task.wait(progress=False)
        delays.append(time.now - server.finish)
        calls += task.polls
        fixed_calls += fixed_poll(server.finish - server.created)[1]
    assert statistics.mean(delays) <= 0.5
    assert calls <= fixed_calls


def test_wait_on_a_task_created_long_ago_looks_at_once() -> None:
    """The creation answer is dated on our clock: a wait() begun a minute later polls at once."""
    time = FakeTime()
    server = FakeServer(time, duration=30.0)
    task = _created_task(server, time)
    time.sleep(60.0)
    task.wait(progress=False)
    assert server.calls[0] == server.created + 60.0


def test_wait_on_a_fresh_task_looks_first_after_min_interval() -> None:
    time = FakeTime()
    server = FakeServer(time, duration=30.0)
    _created_task(server, time).wait(progress=False)
    assert server.calls[0] == pytest.approx(server.created + MIN)


# --- server text is redacted ---------------------------------------------------------------------------------


def test_description_and_error_message_are_redacted_of_the_token() -> None:
    """A server that echoes the token in progress_description or error_message: TaskStatus holds neither, nor
    does the TaskFailedError raised from it."""
    register_secret(TOKEN)
    body = {"id": 9, "state": "failed", "progress": 40, "progress_description": f"auth {TOKEN} ok",
            "error_message": f"Bearer {TOKEN} rejected", "started_at": None, "finished_at": None}
    reading = TaskStatus.from_json(body, where="GET /async_tasks/9")
    assert reading.description == f"auth {REDACTED} ok"
    assert reading.error_message is not None and TOKEN not in reading.error_message
    assert REDACTED in reading.error_message

    time = FakeTime()
    server = FakeServer(time, duration=2.0, error=f"token {TOKEN} expired")
    with pytest.raises(TaskFailedError) as caught:
        _created_task(server, time).wait(progress=False)
    assert TOKEN not in str(caught.value) and REDACTED in str(caught.value)


def test_wait_shows_progress_on_a_display_of_ones_own_and_a_stop_event_ends_it() -> None:
    """``progress=`` takes a display object (a form's bar) and ``stop=`` an event: once set, the wait returns
    None at its next pause without polling again, and the task goes on."""

    class Bar:
        def __init__(self) -> None:
            self.shown: list[float] = []
            self.closed: list[str] = []

        def update(self, percent: float, label: str) -> None:
            self.shown.append(percent)

        def close(self, label: str) -> None:
            self.closed.append(label)

    time = FakeTime()
    server = FakeServer(time, duration=20.0)
    bar = Bar()
    final = _created_task(server, time).wait(progress=bar)
    assert final.state == "complete" and bar.shown[-1] == 100.0 and bar.closed == ["Task 1 complete"]

    stop = threading.Event()
    calls: list[float] = []

    class StopAfterTwo(FakeServer):
        def async_task(self, task_id: int | str) -> dict[str, Any]:
            calls.append(self.time.now)
            if len(calls) == 2:
                stop.set()
            return super().async_task(task_id)

    time = FakeTime()
    stopping = StopAfterTwo(time, duration=60.0)
    assert _created_task(stopping, time).wait(progress=False, stop=stop) is None
    assert len(calls) == 2  # no poll after the stop
