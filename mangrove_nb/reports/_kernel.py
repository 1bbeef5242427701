"""Execute a report's notebook in one kernel: progress per cell on stderr, failures named by cell.

The kernel's environment carries ``MANGROVE_API_URL``, ``MANGROVE_API_TOKEN`` and ``MANGROVE_NB_QUIET=1``
(``_kernel_env``; the token is never written into the notebook). It is launched first (``_launch``; a python3
kernel imports what the template uses as it boots: ipykernel's ``exec_lines``), work goes on while it boots, and it
is stopped at once after the last cell. A failing cell is a ``ReportError`` naming the cell (its number, section
heading and first line). Errors raised while the kernel starts are not chained to frames that hold its environment,
and a failing cell's error is chained to a scrubbed copy without frames. An interrupt cancels what nbclient left
running on its event loop before the kernel stops (``_settle_tasks``), so nothing prints after the one line; one
that lands while a kernel stops does not leave it running (``_stop_kernel`` tries again).

nbclient and jupyter_client are imported inside the functions that need them.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mangrove_nb.errors import ReportError, redact
from mangrove_nb.settings import PROJECT_ENV_VAR

from ._text import _one_line
from .clean import KERNEL_ENV, _KernelEnvironment
from .snapshot import Plan

if TYPE_CHECKING:
    from nbformat import NotebookNode


def _kernel_env(settings: Any, plan: Plan, *, replay: bool) -> _KernelEnvironment:
    """The kernel's environment: this process's, quiet, with the API URL and token (made up, for a replay) and the
    plan for its reads; a replay's kernel takes its project from the parameters only."""
    base = {**os.environ, KERNEL_ENV["quiet"]: "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1", **plan.environment()}
    if replay:
        base.pop(PROJECT_ENV_VAR, None)
    return _KernelEnvironment(base, url=settings.base_url, token=settings.token)



def _execute(nb: NotebookNode, *, env: Mapping[str, str], cwd: Path, timeout: int, progress: bool,
             meanwhile: Callable[[], None] | None = None, scrub: Callable[[str], str] = redact,
             salvage: Callable[[bool], tuple[Path | None, str]] | None = None, kernel: Any = None,
             on_ready: Callable[[], None] | None = None, prefix: str = "") -> None:
    """Run every code cell in one kernel, printing ``[n/N] label`` per cell; ``ReportError`` on a failing cell.

    The kernel is launched first (or was, by ``_launch``: ``kernel``) and ``meanwhile`` runs while it starts
    (generation, loading nbconvert), so the kernel's start-up costs no extra time; ``on_ready`` runs once it
    answers, before the first cell (``_run_jobs`` starts the next report's kernel there). The kernel is stopped at
    once when the last cell is done, and on any failure or interrupt.

    Errors are raised outside the ``except`` blocks that caught their causes, and a failing cell's error is
    chained to a frameless copy with ``scrub`` applied: the frames of jupyter_client, nbclient and subprocess
    hold the kernel's environment (the token) and the kernel's raw replies, and a traceback shown with its
    locals must not reach them. ``salvage(ran)`` is called once a cell failed or the run was interrupted (after
    the kernel stopped): it cleans ``nb`` in place and keeps the partial notebook, returning its path and a
    sentence saying where it is.
    """
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    code = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"]
    labels = _cell_labels(nb)
    current: dict[str, int] = {}

    def on_cell_start(cell: Any, cell_index: int) -> None:
        if cell_index not in labels:
            return  # nbclient calls this for markdown cells too
        current["index"] = cell_index
        if progress:
            print(f"{prefix}[{code.index(cell_index) + 1}/{len(code)}] {labels[cell_index].short}", file=sys.stderr,
                  flush=True)

    name = _kernel_name(nb)
    client = kernel if kernel is not None else _launch(nb, env=env, cwd=cwd, timeout=timeout)
    client.on_cell_start = on_cell_start
    if meanwhile is not None:
        _or_stop(client, meanwhile)

    def answering() -> Any:
        client.start_new_kernel_client()  # waits until the kernel answers
        return client.wait_for_reply(client.kc.kernel_info())

    reply = _or_stop(client, answering, kernel=name)  # the kernel died at once, or never answered
    if on_ready is not None:
        _or_stop(client, on_ready)
    if reply is not None and "language_info" in reply["content"]:
        nb.metadata["language_info"] = reply["content"]["language_info"]

    cause: BaseException | None = None
    why = ""
    try:
        try:
            for number, cell in enumerate(nb.cells):
                client.execute_cell(cell, number, execution_count=client.code_cells_executed + 1)
        finally:  # what an interrupt left running on nbclient's event loop goes first, then the kernel
            _stop_kernel(client)
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as exc:
        cause = _scrubbed(exc, scrub)
        index = current.get("index")
        why = _one_line(scrub(_short_error(nb.cells[index], exc) if index is not None else
                              f"{type(exc).__name__}: {_last_line(str(exc))}"), 1000)
    except BaseException as exc:  # Ctrl-C, or an unexpected error: keep what ran, say where, re-raise as it is
        if salvage is not None:
            _path, where = salvage("index" in current)
            if where:
                exc.add_note(where)
        raise
    if cause is None:
        return
    index = current.get("index")
    path, where = salvage(index is not None) if salvage is not None else (None, "")
    ending = "" if why.endswith((".", "!", "?")) else "."
    if index is None:
        raise ReportError(f"The report kernel stopped before any cell ran ({why}); run the report again.") from cause
    number = code.index(index) + 1
    label = _one_line(scrub(str(labels[index])), 300)
    raise ReportError(f"Report cell {number} of {len(code)} failed ({label}): {why}{ending} {where}".rstrip(),
                      cell_number=number, cell_label=label, partial=path) from cause


def _launch(nb: NotebookNode, *, env: Mapping[str, str], cwd: Path, timeout: int) -> Any:
    """The notebook's ``NotebookClient`` with its kernel process started (not yet answering: it boots while the
    caller goes on), or a one-line ``ReportError``; a python3 kernel imports what the report uses as it boots."""
    from nbclient import NotebookClient

    name = _kernel_name(nb)
    client = NotebookClient(nb, timeout=timeout, kernel_name=name, allow_errors=False,
                            record_timing=False, store_widget_state=False,
                            shutdown_kernel="immediate", resources={"metadata": {"path": str(cwd.resolve())}},
                            config=_kernel_config(), extra_arguments=_warm_up_arguments(name))
    client.reset_execution_trackers()
    client.km = client.create_kernel_manager()
    # No such kernel, its command missing...: the frames below hold the environment.
    _or_stop(client, lambda: client.start_new_kernel(env=env), kernel=name)
    return client


def _or_stop(client: Any, step: Callable[[], Any], *, kernel: str | None = None) -> Any:
    """``step()`` of starting a report's kernel, or the kernel stopped: on anything raised it is stopped first.
    With ``kernel`` (its name), an ordinary failure becomes the one-line ``_kernel_failure``, raised outside the
    ``except`` block that caught it (so no frame that held the environment is kept with it); anything else
    (Ctrl-C, or an error of ``step`` itself without ``kernel``) goes on as it is."""
    failure: ReportError | None = None
    try:
        return step()
    except Exception as exc:
        if kernel is None:
            _stop_kernel(client)
            raise
        failure = _kernel_failure(kernel, exc)
    except BaseException:
        _stop_kernel(client)
        raise
    _stop_kernel(client)
    raise failure from None


# What a python3 report kernel imports while it boots (ipykernel's exec_lines, run before it answers and never part
# of the notebook): the libraries of the template's cells, and one figure drawn (matplotlib's fonts, Agg).
_WARM_UP = "import mangrove_nb.reports._kernel as _mangrove_kernel; _mangrove_kernel._warm_up(); del _mangrove_kernel"


def _warm_up_arguments(kernel: str) -> list[str]:
    return [f"--IPKernelApp.exec_lines={_WARM_UP}"] if kernel in ("python3", "python") else []


def _warm_up() -> None:
    """Import, in a report kernel as it boots, what the template's cells import, and draw one small figure."""
    with contextlib.suppress(Exception):  # best effort: the cells import what they need anyway
        import io

        import IPython.display  # noqa: F401
        import pandas  # noqa: F401
        from matplotlib.figure import Figure

        import mangrove_nb.plots  # noqa: F401

        Figure(figsize=(1, 1)).savefig(io.BytesIO(), format="png")


def _kernel_failure(kernel: str, exc: BaseException) -> ReportError:
    """The one-line error for a kernel that could not start, from what went wrong (never its locals)."""
    from jupyter_client.kernelspec import NoSuchKernel

    if isinstance(exc, NoSuchKernel):
        what = f"no kernel named '{kernel}' is installed"
    else:
        what = f"{type(exc).__name__}: {_one_line(str(exc), 300)}".rstrip(": ")
    return ReportError(
        f"The report kernel '{kernel}' could not start ({what}). Install ipykernel in the Python that runs the "
        "report (pip install 'mangrove_nb[reports]'), or check the kernel with `jupyter kernelspec list`.")


def _stop_kernel(client: Any) -> None:
    """Stop the kernel and close its channels, from whatever state a failed start or an interrupt left them in
    (``_settle_tasks`` first: nothing nbclient left running prints on its way out). A Ctrl-C while it stops (the
    last cell had just finished, say) does not leave the kernel running and its connection file behind: the stop is
    tried again, then the interrupt is raised."""
    interrupted: KeyboardInterrupt | None = None
    for _attempt in range(3):
        try:
            _settle_tasks()  # also what an interrupted earlier attempt left on the loop
            with contextlib.suppress(Exception):  # best effort: the error being raised is the one to show
                if client.km is not None:
                    client._cleanup_kernel()
            break
        except KeyboardInterrupt as exc:
            interrupted = interrupted or exc
    if interrupted is not None:
        raise interrupted


def _settle_tasks() -> None:
    """Cancel what an interrupt left running on nbclient's event loop (a cell's polls, its reply's wait) and wait for
    it, its exceptions retrieved and its loop's error messages silenced meanwhile: the consequences of an interrupt
    (the kernel "died", a poll's assertion, the KeyboardInterrupt a task caught) are not news, and would otherwise
    print "Task exception was never retrieved" with a traceback after the command's one line."""
    import asyncio
    import gc

    from jupyter_core.utils import ensure_event_loop

    with contextlib.suppress(Exception):
        loop = ensure_event_loop()  # the loop nbclient's calls ran on, in this thread
        if loop.is_running() or loop.is_closed():
            return
        previous = loop.get_exception_handler()
        loop.set_exception_handler(lambda _loop, _context: None)
        try:
            pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.wait(pending, timeout=10))
            for task in pending:
                if task.done() and not task.cancelled():
                    task.exception()  # retrieved: never reported
            del pending
            gc.collect()  # tasks that ended with an interrupt, unreferenced now, report (to the silent handler) here
        finally:
            loop.set_exception_handler(previous)


def _scrubbed(exc: BaseException, scrub: Callable[[str], str]) -> BaseException:
    """A copy of a cell's error with ``scrub`` applied to its text and no traceback frames, to chain to."""
    from nbclient.exceptions import CellExecutionError

    if isinstance(exc, CellExecutionError):
        return CellExecutionError(scrub(exc.traceback), exc.ename, scrub(exc.evalue))
    try:
        return type(exc)(scrub(str(exc)))
    except Exception:
        return RuntimeError(scrub(str(exc)))


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""


def _kernel_config() -> Any:
    """Encrypt the kernel's loopback channels (CurveZMQ) where pyzmq and jupyter_client can: the kernel's
    environment holds the token, and ipykernel warns about plain-text TCP otherwise."""
    import zmq
    from jupyter_client.manager import KernelManager
    from traitlets.config import Config

    config = Config()
    if zmq.has("curve") and "transport_encryption" in KernelManager.class_trait_names():
        config.KernelManager.transport_encryption = "auto"
    return config


def _kernel_name(nb: NotebookNode) -> str:
    return str(nb.metadata.get("kernelspec", {}).get("name") or "python3")


@dataclass(frozen=True)
class _CellLabel:
    heading: str  # the section: the last markdown heading above the cell
    first_line: str

    @property
    def short(self) -> str:
        """For progress lines: the first line without its comment sign ("Batches: totals per month...")."""
        text = self.first_line.lstrip("#").strip() or self.heading
        return text if len(text) <= 64 else text[:63] + "…"

    def __str__(self) -> str:
        section = f"section '{self.heading}', " if self.heading else ""
        return f"{section}first line: {self.first_line}"


def _cell_labels(nb: NotebookNode) -> dict[int, _CellLabel]:
    """Each code cell's section heading and first line, by cell index."""
    labels: dict[int, _CellLabel] = {}
    heading = ""
    for index, cell in enumerate(nb.cells):
        lines = [line.strip() for line in str(cell.source).splitlines() if line.strip()]
        if cell.cell_type == "markdown":
            heading = next((line.lstrip("#").strip() for line in lines if line.startswith("#")), heading)
        elif cell.cell_type == "code":
            first = lines[0] if lines else "(empty cell)"
            labels[index] = _CellLabel(heading, first if len(first) <= 100 else first[:99] + "…")
    return labels


def _short_error(cell: Any, exc: BaseException) -> str:
    error = next((o for o in cell.get("outputs", []) if o.get("output_type") == "error"), None)
    if error is not None:
        return f"{error.get('ename', 'Error')}: {error.get('evalue', '')}".strip()
    return f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
