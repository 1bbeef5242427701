"""What a form that sends something irreversible once does, whatever it sends: confirm → send once → wait with
progress → outcome. ``GenerationForm`` (a generation) and ``ReportForm`` (a report's submission) are
``SendingForm``s; each keeps only what is its own (its choice, its question, what it sends, how it shows the end).

Under the form's lock (``FormBase._lock``) and in its ``FormState``:

- **the question**: the form asks (state ``CONFIRMING``, ``_pending_key`` the choice asked about); ``cancel()``
  withdraws it and nothing is sent.
- **``confirm()``**: a second confirmation, or one while a request starts or runs (or one the form deems late,
  ``_confirmed_already``), sends nothing and returns the form's task; a question about another choice than the
  current one is refused (back to ``PREVIEWED``). Otherwise the form records the start (``STARTING``,
  ``_prepare_send``) and sends once, outside the lock. A refusal before any task leaves the form in
  ``_state_after_refusal`` and is raised; a lost answer (``_unknown_error``) leaves it on ``OUTCOME_UNKNOWN``
  (``_remember_unknown``, ``_show_unknown``) until ``reconcile()`` settles it, and is raised.
- **the wait**: the task is followed in a background thread through ``Task.wait(progress=, stop=)``, with the
  form's bar (``FormProgress``) and its stop event ("Stop waiting", ``stop_waiting()``); ``wait()`` blocks until
  then. It ends in one of three ways, each only while the task is still the form's (``_ending``): completed (the
  form's ``_when_complete``), failed (``_failed``: shown, kept and logged, never lost in a thread) or no longer
  followed (``_detached``: the task goes on on the server).
- **the choice stays**: while a request starts or runs, a change of the choice from code is undone
  (``_revert_if_busy``, the form's ``_put_back``), so its outcome is shown under the choice it belongs to.

ipywidgets is imported only when a form is built.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import Any, Generic, TypeVar

import pandas as pd

from ..api import Client
from ..errors import MangroveError, PreconditionError, TaskTimeoutError, secret_safe_logger
from ..tasks import Task
from ._base import FormBase
from ._html import esc

log = secret_safe_logger(__name__)


class FormState(StrEnum):
    """Where a ``GenerationForm`` or a ``ReportForm`` is (``form.state``; each compares equal to its text, e.g.
    ``"running"``)."""

    IDLE = "idle"
    PREVIEWED = "previewed"
    CONFIRMING = "confirming"
    STARTING = "starting"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    DETACHED = "detached"
    #: The request may or may not have reached the server: the form says so until reconcile() settles it.
    OUTCOME_UNKNOWN = "outcome unknown"


BUSY = frozenset({FormState.STARTING, FormState.RUNNING})

TaskT = TypeVar("TaskT", bound=Task[Any])
ResultT = TypeVar("ResultT")


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


class SendingForm(FormBase, Generic[TaskT, ResultT]):
    """Confirm → send once → wait with progress → outcome, for a form whose request is a ``TaskT`` that makes a
    ``ResultT``; see the module docstring.

    A subclass builds its widgets with ``_build_sending`` (the question's box, the progress box, the status, the
    Reconcile button, the result), asks its question (state ``CONFIRMING``, ``confirmation``, ``_pending_key``),
    and gives what differs: the words below, ``_prepare_send``, ``_when_complete``, ``_failure``,
    ``_detached_text``, ``_remember_unknown``, ``_show_unknown``, ``reconcile()``, ``_put_back``,
    ``_current_key`` and ``_refresh_controls`` (which calls ``_show_sending``).
    """

    #: The lost answer of a request (then the form is on ``OUTCOME_UNKNOWN`` until ``reconcile()``).
    _unknown_error: type[MangroveError] = MangroveError
    #: Where the form goes when the request is refused before any task (the error is raised).
    _state_after_refusal = FormState.PREVIEWED
    _thread_name = "mangrove-form-task"  # + the task's id
    _nothing_to_confirm = "Nothing to confirm."
    _changed_since_question = "The choice changed since the question; ask again."
    _cancelled = "Cancelled: nothing was sent."
    _not_started = "Nothing was started by this form."

    def __init__(self, client: Client, ledger_frame: pd.DataFrame) -> None:
        super().__init__(client, ledger_frame)
        self.state = FormState.IDLE
        self.task: TaskT | None = None
        self.result: ResultT | None = None
        self.confirmation: str | None = None
        self.reconciliation: Any = None
        self._pending_key: tuple[Any, ...] | None = None  # the choice the question is about
        self._reverting = False
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._run_error: BaseException | None = None

    def _build_sending(self, style: dict[str, str], *, confirm: str, confirm_width: str | None = None,
                       stop_tooltip: str, reconcile_tooltip: str) -> None:
        """The widgets every sending form has, with Confirm, Cancel, Stop waiting and Reconcile wired to
        ``confirm()``, ``cancel()``, ``stop_waiting()`` and ``reconcile()``; the form places them in its box."""
        import ipywidgets as w

        self.confirm_html = w.HTML()
        self.confirm_button = w.Button(description=confirm, button_style="danger", icon="check", disabled=True,
                                       **({"layout": w.Layout(width=confirm_width)} if confirm_width else {}))
        self.cancel_button = w.Button(description="Cancel", icon="times", disabled=True)
        self.confirm_box = w.VBox([self.confirm_html, w.HBox([self.confirm_button, self.cancel_button])])
        self.progress = w.IntProgress(value=0, min=0, max=100, description="Progress", style=style,
                                      layout=w.Layout(width="420px"))
        self.progress_label = w.Label("")
        self.stop_button = w.Button(description="Stop waiting", icon="stop", disabled=True, tooltip=stop_tooltip)
        self.progress_box = w.HBox([self.progress, self.progress_label, self.stop_button])
        self.status = w.HTML()
        self.reconcile_button = w.Button(description="Reconcile", icon="balance-scale", button_style="warning",
                                         tooltip=reconcile_tooltip)
        self.result_html = w.HTML()
        self.confirm_button.on_click(self._callback(self.confirm))
        self.cancel_button.on_click(self._callback(self.cancel))
        self.stop_button.on_click(self._callback(self.stop_waiting))
        self.reconcile_button.on_click(self._callback(self.reconcile))

    # -- the question -----------------------------------------------------------------------------------------

    def _ask_again(self) -> str | None:
        """At a click that asks (Generate, Submit) while the question is asked already or a request starts or
        runs (under the lock): the question (a second click), or None and the status says a request runs."""
        if self.state == FormState.CONFIRMING:
            return self.confirmation
        self._set_status("info", self._busy_message())
        return None

    def _ask(self, key: tuple[Any, ...], question: str, *, style: str = "font-weight:600") -> None:
        """Ask ``question`` about the choice ``key`` (under the lock): Confirm sends, Cancel withdraws it."""
        self.confirmation, self._pending_key, self.state = question, key, FormState.CONFIRMING
        self.confirm_html.value = f'<div style="{style}">{esc(question)}</div>'
        self._refresh_controls()

    # -- the buttons' methods -------------------------------------------------------------------------------

    def confirm(self) -> TaskT | None:
        """Send the request asked about, once, then follow its task in a background thread (``wait()`` for it).

        A second confirmation, or one while the request starts or runs, sends nothing and returns the form's task.
        """
        with self._lock:
            if self.state in BUSY or self._confirmed_already():
                return self.task
            if self.state != FormState.CONFIRMING or self._pending_key is None:
                raise PreconditionError(self._nothing_to_confirm)
            key = self._pending_key
            if key != self._current_key():
                self.state, self._pending_key = FormState.PREVIEWED, None
                self._refresh_controls()
                raise PreconditionError(self._changed_since_question)
            self.state, self.error, self._run_error, self.result = FormState.STARTING, None, None, None
            self.result_html.value = ""
            send = self._prepare_send(key)
            self._refresh_controls()
        try:
            task = send()
        except self._unknown_error as exc:
            self._outcome_unknown(exc, key)
            raise
        except BaseException:
            with self._lock:
                self.state = self._state_after_refusal
                self._end_run()
                self._refresh_controls()
            raise
        with self._lock:
            self.task, self.state, self._pending_key = task, FormState.RUNNING, None
            self._record_sent(key)
            self._stop.clear()
            progress = FormProgress(self.progress, self.progress_label)
            self.progress.value = 0
            self.progress_label.value = "Waiting for the server to start"
            self._thread = threading.Thread(target=self._follow, args=(task, progress, self._when_complete(task)),
                                            name=f"{self._thread_name}-{task.id}", daemon=True)
            self._set_status("info", self._started_text(task))
            self._refresh_controls()
            self._publish_static()
        self._thread.start()
        return task

    def cancel(self) -> None:
        """Withdraw the confirmation question; nothing is sent."""
        with self._lock:
            if self.state != FormState.CONFIRMING:
                return
            self.state, self._pending_key, self.confirmation = FormState.PREVIEWED, None, None
            self._set_status("info", self._cancelled)
            self._refresh_controls()

    def stop_waiting(self) -> bool:
        """Stop following the running task (it goes on on the server); True when there was one to stop."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            return False
        self._stop.set()
        thread.join(timeout=self.client.settings.read_timeout + 1)
        return True

    def wait(self, timeout: float | None = None) -> ResultT | None:
        """Block until the background wait ends; ``result`` (what the task made), or raise what went wrong (a
        refusal is a ``TaskFailedError`` with the server's message).

        Returns None when the waiting was stopped (``stop_waiting()``); the task goes on on the server.
        """
        thread = self._thread
        if thread is None:
            raise PreconditionError(self._not_started)
        thread.join(timeout)
        if thread.is_alive():
            task_id = self.task.id if self.task is not None else "?"
            raise TaskTimeoutError(f"form.wait() returned after {timeout:g} s; the form still follows task "
                                   f"{task_id} in the background (form.wait() again, or form.stop_waiting()).",
                                   task_id=task_id, timeout=timeout)
        if self._run_error is not None:
            raise self._run_error
        return self.result

    def reconcile(self) -> Any:
        """After a lost answer: read what the server has and show it (the form's own)."""
        raise NotImplementedError

    # -- following the task (in the background thread) ---------------------------------------------------------

    def _follow(self, task: TaskT, progress: FormProgress, completed: Callable[[ResultT], None]) -> None:
        try:
            value: ResultT | None = task.wait(progress=progress, stop=self._stop)
        except BaseException as exc:  # shown, kept and logged: never lost in a thread
            self._note_wait_error(task, exc)
            self._failed(task, exc)
            return
        if value is None:
            self._detached(task)
            return
        try:
            completed(value)
        except BaseException as exc:
            self._failed(task, exc)

    @contextmanager
    def _ending(self, task: TaskT, state: FormState, error: BaseException | None = None) -> Iterator[bool]:
        """How a run ends, under the lock. When ``task`` is still the form's (True; else the form moved on and
        nothing changes): the form takes ``state`` (and ``error``, kept for ``wait()``), forgets the run
        (``_end_run``), and after the block refreshes its controls and its static copy."""
        with self._lock:
            if self.task is not task:
                yield False
                return
            self.state = state
            if error is not None:
                self._run_error = self.error = error
            self._end_run()
            yield True
            self._refresh_controls()
            self._publish_static()

    def _failed(self, task: TaskT, exc: BaseException) -> None:
        log.error("%s: %s", self._kind, exc, exc_info=exc)
        show = self._failure(task, exc)  # outside the lock: it may read the API
        with self._ending(task, FormState.FAILED, exc) as ours:
            if ours:
                show()

    def _detached(self, task: TaskT) -> None:
        with self._ending(task, FormState.DETACHED) as ours:
            if ours:
                self.progress_label.value = "stopped waiting"
                self._set_status("warn", self._detached_text(task))

    def _outcome_unknown(self, exc: MangroveError, key: tuple[Any, ...]) -> None:
        with self._lock:
            self.error = self._run_error = exc
            self._remember_unknown(exc, key)
            self.state = FormState.OUTCOME_UNKNOWN
            self._end_run()
            self._show_unknown()
            self._refresh_controls()
            self._publish_static()

    # -- reacting to the controls ---------------------------------------------------------------------------

    def _has_own_status(self, exc: Exception) -> bool:
        # A lost answer has its own status (with the Reconcile button): a callback keeps it.
        return self.state == FormState.OUTCOME_UNKNOWN and isinstance(exc, self._unknown_error)

    def _revert_if_busy(self) -> bool:
        """While a request starts or runs, its choice stays (a change from code is undone, ``_put_back``), so its
        outcome is shown under the choice it belongs to; True when the change was undone (or is the undoing)."""
        with self._lock:
            if self._reverting:
                return True
            if self.state not in BUSY:
                return False
            self._reverting = True
            try:
                said = self._put_back()
            finally:
                self._reverting = False
            if said is None:
                return False
            self._set_status("warn", said)
            return True

    def _has_outcome(self) -> bool:
        """Whether the form shows something of the current choice (then a new choice clears it)."""
        return (self.state != FormState.IDLE or self.result is not None or self.error is not None
                or self.task is not None or self.reconciliation is not None)

    def _clear_outcome(self) -> None:
        """Forget the previous choice's question, outcome and progress (under the lock)."""
        self.state = FormState.IDLE
        self._pending_key = self.confirmation = None
        self.result = self.error = self._run_error = self.task = self._thread = self.reconciliation = None
        self.confirm_html.value = self.result_html.value = ""
        self.progress.value = 0
        self.progress_label.value = ""

    def _show_sending(self, progress: bool) -> None:
        """The sending controls for the state (under the lock): the question's box while it is asked, Stop waiting
        while the task runs, Reconcile after a lost answer, the progress box when ``progress``."""
        state = self.state
        self.confirm_button.disabled = self.cancel_button.disabled = state != FormState.CONFIRMING
        self.confirm_box.layout.display = "" if state == FormState.CONFIRMING else "none"
        self.stop_button.disabled = state != FormState.RUNNING
        self.progress_box.layout.display = "" if progress else "none"
        self.reconcile_button.layout.display = "" if state == FormState.OUTCOME_UNKNOWN else "none"

    def _status_text(self) -> str:
        return f"{self.state}: {self._status[1]}"

    # -- the form's own ---------------------------------------------------------------------------------------

    def _current_key(self) -> tuple[Any, ...] | None:
        """The current choice (None when it is not valid)."""
        raise NotImplementedError

    def _refresh_controls(self) -> None:
        raise NotImplementedError

    def _busy_message(self) -> str:
        """What a click that would start something says while a request starts or runs."""
        raise NotImplementedError

    def _confirmed_already(self) -> bool:
        """Whether a late confirmation should send nothing and say nothing (under the lock)."""
        return False

    def _prepare_send(self, key: tuple[Any, ...]) -> Callable[[], TaskT]:
        """Under the lock, as the form starts: what it records of the request; returns the request (sent once,
        outside the lock)."""
        raise NotImplementedError

    def _record_sent(self, key: tuple[Any, ...]) -> None:
        """Under the lock, once the request was sent: what the form keeps of it."""

    def _started_text(self, task: TaskT) -> str:
        raise NotImplementedError

    def _when_complete(self, task: TaskT) -> Callable[[ResultT], None]:
        """Under the lock, as the task starts: what shows its result (with what the form knew at the start)."""
        raise NotImplementedError

    def _note_wait_error(self, task: TaskT, exc: BaseException) -> None:
        """What the form adds to an error of the wait before it is shown."""

    def _failure(self, task: TaskT, exc: BaseException) -> Callable[[], None]:
        """What shows a failure (prepared outside the lock, run under it)."""
        raise NotImplementedError

    def _detached_text(self, task: TaskT) -> str:
        raise NotImplementedError

    def _end_run(self) -> None:
        """Forget what the run held (under the lock, as it ends or is refused)."""
        self._pending_key = None

    def _remember_unknown(self, exc: MangroveError, key: tuple[Any, ...]) -> None:
        raise NotImplementedError

    def _show_unknown(self) -> None:
        raise NotImplementedError

    def _put_back(self) -> str | None:
        """Put the running request's choice back on the widgets; the status that says so (None: nothing to do)."""
        raise NotImplementedError
