"""Waiting for a generation from a form: ``Task.wait()`` (its adaptive poll schedule, its timeout, its typed
outcomes), with the form's own progress bar and a stop event for "Stop waiting".

``Task.wait()`` takes neither a display object nor a stop event yet (its ``progress=`` is a bool and it sleeps
with the ``sleep`` the task was built with), so ``wait_for`` swaps that sleep, for its own thread and for the
length of the wait only, for a pause that shows the latest reading on the form and waits on the stop event.
Once ``Task.wait(progress=<a Progress>, stop=<an Event>)`` exists, ``wait_for`` is that one call.
"""

from __future__ import annotations

import threading
from typing import Any

from ..tasks import Task, TaskStatus


class FormProgress:
    """The form's progress bar and label as a progress display (``update``/``close``, like
    ``progress.Progress``): the bar never goes backwards; the label is the server's description (or state)."""

    def __init__(self, bar: Any, label: Any) -> None:
        self._bar, self._label = bar, label
        self._shown = 0.0

    def update(self, percent: float, description: str | None = None) -> None:
        self._shown = max(self._shown, percent)
        self._bar.value = round(self._shown)
        self._label.value = description or ""

    def close(self, summary: str) -> None:
        """Nothing: the form says how the task ended, in its status."""

    def show(self, status: TaskStatus) -> None:
        """A reading of the task, as ``Task.wait()`` shows it: 100 % once complete."""
        self.update(100.0 if status.state == "complete" else status.progress, status.description or status.state)


class _StopWaiting(Exception):
    """Raised inside ``Task.wait()`` by the form's pause once Stop waiting was asked. Not a ``MangroveError``
    nor a ``KeyboardInterrupt``, so ``Task.wait()`` lets it through untouched."""


def wait_for(task: Task, progress: FormProgress, stop: threading.Event) -> Any | None:
    """``task.wait()`` with its readings shown on ``progress``; None as soon as ``stop`` is set (the task goes on).

    Raises what ``task.wait()`` raises (``TaskFailedError``, ``TaskTimeoutError``, the client's errors).
    """
    me, polls = threading.current_thread(), task.polls
    sleep = task._sleep

    def pause(seconds: float) -> None:
        if threading.current_thread() is not me:  # someone else's task.wait() meanwhile: theirs, untouched
            sleep(seconds)
            return
        if task.polls > polls and task.status is not None:  # a reading of ours, not the creation answer
            progress.show(task.status)
        if stop.wait(seconds):
            raise _StopWaiting

    task._sleep = pause
    try:
        return task.wait(progress=False)
    except _StopWaiting:
        return None
    finally:
        task._sleep = sleep
        if task.polls > polls and task.status is not None:
            progress.show(task.status)  # the last reading (the pause comes only between readings)
