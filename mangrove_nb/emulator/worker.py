"""The background worker that runs batch generations and report submissions, so their POSTs answer 202 at once.

A task goes ``pending`` → (``pickup_seconds``) → ``running`` → one step per ``batch_seconds``, with
``progress`` and ``progress_description`` updated as it goes → ``complete``, or ``failed`` with
``error_message``. A generation's step is a partition ("Processing batch 2 of 3"); a failed generation leaves
nothing behind: the batches it had made are deleted in the same transaction that marks it failed. A report
submission's steps are its batches ("Checking batch 2 of 3") and then the registry ("Submitting to the
registry"); it allocates as it completes, or fails with the report back to draft (``reporting``). Tasks still
pending or running when the emulator stopped (a file database) are resumed on start; partitions already made
are not made twice.

The worker schedules (threads, a queue, the waits); the backend (``backend``) reads and writes the tasks and
makes the batches.
"""

from __future__ import annotations

import logging
import queue
import threading

from . import model
from .backend import Backend
from .errors import RequestError

log = logging.getLogger("mangrove_nb.emulator")

DEFAULT_BATCH_SECONDS = 1.0
DEFAULT_PICKUP_SECONDS = 0.5


class Worker:
    """A small pool of threads taking task ids from a queue."""

    def __init__(self, backend: Backend, *, batch_seconds: float = DEFAULT_BATCH_SECONDS,
                 pickup_seconds: float = DEFAULT_PICKUP_SECONDS, threads: int = 2) -> None:
        self.backend = backend
        self.batch_seconds = batch_seconds
        self.pickup_seconds = pickup_seconds
        self._queue: queue.Queue[int | None] = queue.Queue()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, name=f"mangrove-emulator-worker-{n}", daemon=True)
                         for n in range(threads)]

    def start(self) -> None:
        unfinished = self.backend.unfinished_tasks()
        for thread in self._threads:
            thread.start()
        for task_id in unfinished:
            log.info("resuming task %s left unfinished by an earlier run", task_id)
            self.submit(task_id)

    def submit(self, task_id: int) -> None:
        self._queue.put(task_id)

    def stop(self) -> None:
        self._stop.set()
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            task_id = self._queue.get()
            if task_id is None:
                return
            try:
                self._run(task_id)
            except Exception as exc:  # keep the worker alive; the task says what happened
                log.exception("task %s crashed", task_id)
                self._finish(task_id, "failed", f"internal emulator error: {type(exc).__name__}")

    def _sleep(self, seconds: float) -> bool:
        """Wait, but wake at once when stopping; returns False when the emulator is stopping."""
        return not self._stop.wait(seconds) if seconds > 0 else not self._stop.is_set()

    def _run(self, task_id: int) -> None:
        if not self._sleep(self.pickup_seconds):
            return
        task = self.backend.start_task(task_id)
        if task is None:
            return
        steps = self.backend.submission_steps(task)
        if steps is not None:
            self._submit(task_id, steps)
            return
        try:
            plan = self.backend.task_plan(task)
            total = len(plan.partitions)
            for number, partition in enumerate(plan.partitions, start=1):
                self.backend.task_progress(task_id, number, total)
                if not self._sleep(self.batch_seconds):
                    return  # stopping: the task stays running and resumes with the database
                self.backend.make_batches(plan, partition, task_id)
        except (model.ModelInputError, RequestError) as exc:
            message = str(exc)
            self._finish(task_id, "failed", message[:1].upper() + message[1:])
            return
        self._finish(task_id, "complete", None)

    def _submit(self, task_id: int, steps: list[str]) -> None:
        """A report submission: each step takes ``batch_seconds``; the backend decides at the end."""
        for number, description in enumerate(steps, start=1):
            self.backend.task_progress(task_id, number, len(steps), description)
            if not self._sleep(self.batch_seconds):
                return  # stopping: the task stays running (the report submitting) and resumes with the database
        self._finish(task_id, "complete", None)

    def _finish(self, task_id: int, state: str, error: str | None) -> None:
        state, error = self.backend.finish_task(task_id, state, error)
        # A message may quote a report's name (any text): its control characters are escaped, one line per task.
        shown = error.encode("unicode_escape").decode("ascii") if error and not error.isprintable() else error
        log.info("task %s %s%s", task_id, state, f": {shown}" if shown else "")
