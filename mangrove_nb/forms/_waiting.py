"""Waiting for a generation from a form: ``Task.wait()`` (its adaptive poll schedule, its timeout, its typed
outcomes) with the form's own progress bar as its display and the form's stop event for "Stop waiting".
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from ..tasks import Task

if TYPE_CHECKING:
    import pandas as pd


class FormProgress:
    """The form's progress bar and label as a progress display for ``Task.wait(progress=...)``
    (``update``/``close``, like ``progress.Progress``): the bar never goes backwards; the label is the server's
    description (or state)."""

    def __init__(self, bar: Any, label: Any) -> None:
        self._bar, self._label = bar, label
        self._shown = 0.0

    def update(self, percent: float, description: str | None = None) -> None:
        self._shown = max(self._shown, percent)
        self._bar.value = round(self._shown)
        self._label.value = description or ""

    def close(self, summary: str) -> None:
        """Nothing: the form says how the task ended, in its status."""


def wait_for(task: Task[pd.DataFrame], progress: FormProgress, stop: threading.Event) -> pd.DataFrame | None:
    """``task.wait()`` with its readings shown on ``progress``; None as soon as ``stop`` is set (the task goes on).

    Raises what ``task.wait()`` raises (``TaskFailedError``, ``TaskTimeoutError``, the client's errors).
    """
    return task.wait(progress=progress, stop=stop)
