"""The background worker that runs batch generations, so the trigger POST can answer 202 at once.

A task goes ``pending`` → (``pickup_seconds``) → ``running`` → one partition per ``batch_seconds``, with
``progress`` and ``progress_description`` ("Processing batch 2 of 3") updated as it goes → ``complete``,
or ``failed`` with ``error_message``. A failed task leaves nothing behind: the batches it had made are
deleted in the same transaction that marks it failed. Tasks still pending or running when the emulator
stopped (a file database) are resumed on start; partitions already made are not made twice.
"""

from __future__ import annotations

import logging
import queue
import threading
from datetime import datetime

from . import generation, model
from .errors import RequestError
from .store import Store, fetch_all, fetch_one, iso, utcnow

log = logging.getLogger("mangrove_nb.emulator")

DEFAULT_BATCH_SECONDS = 1.0
DEFAULT_PICKUP_SECONDS = 0.5


class Worker:
    """A small pool of threads taking task ids from a queue."""

    def __init__(self, store: Store, *, batch_seconds: float = DEFAULT_BATCH_SECONDS,
                 pickup_seconds: float = DEFAULT_PICKUP_SECONDS, threads: int = 2) -> None:
        self.store = store
        self.batch_seconds = batch_seconds
        self.pickup_seconds = pickup_seconds
        self._queue: queue.Queue[int | None] = queue.Queue()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, name=f"mangrove-emulator-worker-{n}", daemon=True)
                         for n in range(threads)]

    def start(self) -> None:
        with self.store.read() as conn:
            unfinished = fetch_all(conn, "SELECT id FROM async_tasks WHERE state IN ('pending', 'running') ORDER BY id")
        for thread in self._threads:
            thread.start()
        for row in unfinished:
            log.info("resuming task %s left unfinished by an earlier run", row["id"])
            self.submit(row["id"])

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
        with self.store.transaction() as conn:
            task = fetch_one(conn, "SELECT * FROM async_tasks WHERE id = ?", (task_id,))
            if task is None or task["state"] not in ("pending", "running"):
                return
            conn.execute("UPDATE async_tasks SET state = 'running', started_at = COALESCE(started_at, ?),"
                         " progress_description = 'Preparing batches' WHERE id = ?", (iso(utcnow()), task_id))
        start, end = datetime.fromisoformat(task["start_time"]), datetime.fromisoformat(task["end_time"])
        options = generation.Options.from_json(task["options"])
        try:
            with self.store.read() as conn:
                plan = generation.plan(conn, task["model_pk"], start, end, options)
            total = len(plan.partitions)
            for number, partition in enumerate(plan.partitions, start=1):
                with self.store.transaction() as conn:
                    conn.execute("UPDATE async_tasks SET progress = ?, progress_description = ? WHERE id = ?",
                                 (int(100 * (number - 1) / total), f"Processing batch {number} of {total}", task_id))
                if not self._sleep(self.batch_seconds):
                    return  # stopping: the task stays running and resumes with the database
                with self.store.transaction() as conn:
                    generation.run_partition(conn, plan, partition, clock=utcnow, task_id=task_id)
        except (model.ModelInputError, RequestError) as exc:
            message = str(exc)
            self._finish(task_id, "failed", message[:1].upper() + message[1:])
            return
        self._finish(task_id, "complete", None)

    def _finish(self, task_id: int, state: str, error: str | None) -> None:
        with self.store.transaction() as conn:
            if state == "failed":
                conn.execute("DELETE FROM batches WHERE task_id = ?", (task_id,))
            conn.execute(
                "UPDATE async_tasks SET state = ?, progress = CASE WHEN ? = 'complete' THEN 100 ELSE progress END,"
                " progress_description = NULL, error_message = ?, finished_at = ? WHERE id = ?",
                (state, state, error, iso(utcnow()), task_id),
            )
        log.info("task %s %s%s", task_id, state, f": {error}" if error else "")
