"""What both forms share: the one display (widget view and static copy in one bundle), callbacks that show
and keep errors, the status line, batches tables and plots, and the ledgers they are about.

ipywidgets and matplotlib are imported only when a form is built or draws.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterable
from typing import Any

import pandas as pd

from ..api import Client
from ..errors import MangroveError, PreconditionError, secret_safe_logger
from ..frames import can_generate, ledger_names
from ..periods import Period
from ._html import batches_table, error_text, static_copy, status_html

log = secret_safe_logger(__name__)

PLOT_SIZE = (10.0, 4.6)  # inches
PLOT_DPI = 100
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def _ipython_display() -> Callable[..., Any] | None:
    """IPython's ``display`` when a shell runs (a kernel, a terminal IPython), else None."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return None
    return display if get_ipython() is not None else None


class FormBase:
    """One display per form, and what a form does with its callbacks, status and ledgers.

    The display: the widget view and a static HTML copy of the latest outcome, in one bundle. A live front
    end renders the widget view (its renderer ranks above HTML); a renderer without the widget's state
    (nbconvert, nbviewer, a notebook saved without widget state) renders the ``text/html`` copy. Each
    outcome updates every display of the form, so the saved notebook holds the last one.

    A subclass builds ``widget`` (the whole box), calls ``_callback(method)`` for every widget event, shows
    outcomes with ``_set_status`` and ``_publish(body)``, and draws its static copy in ``_publish_static``.
    """

    widget: Any  # the whole box
    status: Any  # the status line (an HTML widget)
    static_html: str
    #: How the log names the form ("Generation form: preview failed: ...").
    _kind = "Form"

    def __init__(self, client: Client, ledger_frame: pd.DataFrame) -> None:
        self.client = client
        self.error: BaseException | None = None
        self.static_html = ""
        self._ledger_frame = ledger_frame
        self._lock = threading.RLock()
        self._status: tuple[str, str] = ("info", "")
        self._plot_uri: str | None = None
        self._handles: list[Any] = []
        self._published: str | None = None
        self._publish_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._status_text()}>"

    # -- the one display ---------------------------------------------------------------------------------------

    def _mimebundle(self) -> dict[str, Any]:
        bundle: dict[str, Any] = {"text/plain": repr(self), "text/html": self.static_html}
        view = self.widget._repr_mimebundle_() if callable(getattr(self.widget, "_repr_mimebundle_", None)) else None
        if view and WIDGET_VIEW in view:
            bundle[WIDGET_VIEW] = view[WIDGET_VIEW]
        return bundle

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """The widget view and the static copy (what ``display(form)`` shows when no display id is needed)."""
        return self._mimebundle()

    def _ipython_display_(self) -> None:
        show = _ipython_display()
        if show is None:  # plain Python: the status as text
            print(self._status_text())
            return
        handle = show(self._mimebundle(), raw=True, display_id=True)
        if handle is not None:
            with self._publish_lock:
                self._handles.append(handle)
                self._published = self.static_html

    def display(self) -> None:
        """Show the form: the widgets (and the static copy for saved notebooks) in IPython; the status elsewhere."""
        self._ipython_display_()

    def _publish(self, body: str) -> None:
        """Keep the static HTML and update the form's displays when it changed (the same bundle, new copy)."""
        with self._publish_lock:
            self.static_html = static_copy(body)
            if not self._handles or self.static_html == self._published:
                return
            self._published = self.static_html
            bundle = self._mimebundle()
            for handle in self._handles:
                handle.update(bundle, raw=True)

    def _publish_static(self) -> None:
        raise NotImplementedError

    def _all_widgets(self) -> list[Any]:
        """Every widget in the form's tree (for closing, and for tests that inspect widget state)."""
        found: list[Any] = []
        stack = [self.widget]
        while stack:
            widget = stack.pop()
            found.append(widget)
            stack.extend(getattr(widget, "children", ()))
        return found

    def close(self) -> None:
        """Close every widget of the form; its displays keep the static copy only."""
        for widget in self._all_widgets():
            widget.close()
        with self._publish_lock:
            bundle = self._mimebundle()
            for handle in self._handles:
                handle.update(bundle, raw=True)

    # -- callbacks and status ----------------------------------------------------------------------------------

    def _callback(self, method: Callable[..., Any]) -> Callable[..., None]:
        """A widget callback for ``method``: exceptions are shown in the form, kept in ``error`` and logged, not
        raised into ipywidgets (whose dispatcher would only log them)."""
        name = method.__name__.strip("_")

        def run(*_: Any) -> None:
            try:
                method()
            except Exception as exc:
                log.error("%s: %s failed: %s", self._kind, name, exc, exc_info=exc)
                with self._lock:
                    self.error = exc
                    if not self._has_own_status(exc):
                        self._set_status("error", error_text(exc))
                    self._publish_static()

        run.__name__ = f"on_{name}"
        return run

    def _has_own_status(self, exc: Exception) -> bool:
        """Whether the form already shows ``exc`` its own way (then a callback keeps the status as it is)."""
        return False

    def _set_status(self, kind: str, text: str) -> None:
        self._status = (kind, text)
        self.status.value = status_html(kind, text)

    def _status_text(self) -> str:
        return self._status[1]

    # -- ledgers, tables, plots --------------------------------------------------------------------------------

    def _names(self) -> dict[str, str]:
        return ledger_names(self._ledger_frame)

    def _batches_table(self, frame: pd.DataFrame) -> str:
        return batches_table(frame, self._names())


def plot_png(frame: pd.DataFrame, *, period: Period | None, title: str | None,
             labels: dict[str, str] | None) -> bytes:
    """The batches plot (``plots.plot_batches``) as PNG bytes, drawn on a Figure of its own (no pyplot)."""
    from matplotlib.figure import Figure

    from ..plots import plot_batches  # lazily: matplotlib loads only when a form draws

    figure = Figure(figsize=PLOT_SIZE, dpi=PLOT_DPI, layout="constrained")
    ax = figure.subplots()
    plot_batches(frame, ax=ax, period=period, title=title, labels=labels)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def ledger_label(row: Any) -> str:
    unit = f" ({row.unit})" if isinstance(row.unit, str) and row.unit else ""
    model = row.model_name if can_generate(row) and isinstance(row.model_name, str) else (
        "model" if can_generate(row) else "no model")
    return f"{row.name}{unit} — {model}"


def resolve_ledger(client: Client, ledgers: pd.DataFrame, wanted: str) -> str:
    """A listed ledger's id from an id or a name (``Client.ledger_id``: exact, then case-insensitive)."""
    if (ledgers["id"] == wanted).any():
        return wanted
    found = client.ledger_id(wanted)
    if not (ledgers["id"] == found).any():
        raise PreconditionError(f"The ledger {wanted!r} is not among those client.ledgers() lists.")
    return found


def _years(moments: pd.Series) -> set[int]:
    return {int(y) for y in moments.dropna().dt.year.unique()}


class DataYears:
    """The years a ledger has data in: its batches' start times and, when the project is known, its events'.

    Read once per ledger (and once for the events) per form; a failure to read leaves those years out.
    """

    def __init__(self, client: Client, project_id: int | str | None) -> None:
        self.client = client
        self.project_id = project_id if project_id is not None else client.settings.project_id
        self._batches: dict[str, set[int]] = {}
        self._events: set[int] | None = None

    def of(self, ledger_ids: Iterable[str]) -> set[int]:
        years = set(self.events())
        for ledger_id in ledger_ids:
            if ledger_id not in self._batches:
                try:
                    self._batches[ledger_id] = _years(self.client.batches(ledger_id)["start_time"])
                except MangroveError as exc:
                    log.warning("Could not read the batches of %s for the years offered: %s", ledger_id, exc)
                    self._batches[ledger_id] = set()
            years |= self._batches[ledger_id]
        return years

    def events(self) -> set[int]:
        if self._events is None:
            self._events = set()
            if self.project_id is not None:
                try:
                    self._events = _years(self.client.events(self.project_id)["start_time"])
                except MangroveError as exc:
                    log.warning("Could not read the project's events for the years offered: %s", exc)
        return self._events
