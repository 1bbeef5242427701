"""Notebook forms: preview and generate batches, and explore them, with clicks instead of code.

    form = mnb.GenerationForm(client, "Net Carbon Removal", "2025Q1")
    form                                  # the widgets, and a static copy of the outcome below them
    form.preview(); form.generate(); form.confirm(); form.wait()    # the same, from code

    mnb.BatchExplorer(client, ["Net Carbon Removal", "Biochar Produced"], "2024")

The widgets are thin shells over the client's plain functions (``Client.preview``, ``Client.generate``,
``Client.batches``...): every button has a method of the same job, and the outcome is kept on the form
(``result``, ``error``, ``task``). A button callback never swallows an exception: it shows it in the form,
keeps it in ``form.error`` and logs it; a method called from code raises it.

Waiting for a generation runs in a background thread started by Confirm, so the kernel stays responsive
and "Stop waiting" works; it polls the task on the client's poll schedule (``tasks.PollSchedule``). Only
one generation per ledger and period: the form's own state (under a lock) ignores a second click or
confirmation, a module-wide registry refuses a second form on the same client while the first one's task
runs (re-running the cell), the client refuses an overlapping generation it started, and the server
refuses one that overlaps a running generation.

Saved and shared notebooks: displaying a form also displays a static HTML block (escaped tables, the plot
as a PNG data URI, the status) that is updated after each outcome, so a notebook rendered without a kernel
or widget JavaScript still shows what happened. No widget holds the client or its token; every string that
came from the API is escaped (``html.escape``) before it reaches HTML.

ipywidgets and matplotlib are imported here only, when a form is built.
"""

from __future__ import annotations

import base64
import html
import io
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from .api import Client, Reconciliation
from .errors import (
    GenerationOutcomeUnknownError,
    PreconditionError,
    TaskFailedError,
    TaskTimeoutError,
    ValidationError,
    redact,
    secret_safe_logger,
)
from .periods import Period, PeriodError, PeriodLike, parse_period
from .tasks import PollSchedule, Task

__all__ = ["BatchExplorer", "GenerationForm", "PeriodPicker"]

log = secret_safe_logger(__name__)

# Rows shown in a table before "… and N more" (the whole frame stays on the form).
MAX_TABLE_ROWS = 60
FIRST_YEAR = 2015
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
PLOT_SIZE = (10.0, 4.6)  # inches
PLOT_DPI = 100

# What a form shows in its static block; scoped by class so it restyles nothing else in the notebook.
STATIC_CSS = """
.mnb-static{font-family:-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;font-size:13px;color:#1f2933;
max-width:1000px;border:1px solid #d9e2ec;border-radius:6px;padding:12px 16px;background:#fff}
.mnb-static h3{margin:0 0 4px;font-size:16px}
.mnb-static .mnb-meta{color:#52606d;margin:0 0 8px}
.mnb-static h4{margin:12px 0 4px;font-size:13px}
.mnb-static table{border-collapse:collapse;margin:4px 0}
.mnb-static th,.mnb-static td{border-bottom:1px solid #e4e7eb;padding:3px 10px;text-align:left}
.mnb-static th{background:#f5f7fa;font-weight:600}
.mnb-static td.num{text-align:right;font-variant-numeric:tabular-nums}
.mnb-static tr.mnb-manual td{background:#fff3c4}
.mnb-static img{max-width:100%;margin-top:6px}
""".strip()

# Inline, so a status looks the same in the widget (no stylesheet there) and in the static block.
_STATUS_STYLES = {
    "info": "background:#f0f4f8;color:#1f2933",
    "ok": "background:#e3f9e5;color:#05400a",
    "warn": "background:#fffbea;color:#8d2b0b",
    "error": "background:#ffe3e3;color:#610404",
}


# --- small pure helpers (HTML, numbers, periods) ----------------------------------------------------------


def _e(value: Any) -> str:
    """Escaped text of any value (NA as an em dash): the only way API text reaches HTML here."""
    if value is None or (not isinstance(value, str | bytes) and pd.isna(value)):
        return "—"
    return html.escape(str(value), quote=True)


def _number(value: Any) -> str:
    if value is None or pd.isna(value):
        return "—"
    return f"{float(value):,.3f}"


def _span(start: Any, end: Any) -> str:
    """A batch's period: ``2025-01`` for a whole month, else its dates."""
    if pd.isna(start):
        return "—"
    if not pd.isna(end) and start.day == 1 and (end + pd.Timedelta(seconds=1)).day == 1 and \
            (end - start) < pd.Timedelta(days=32):
        return f"{start:%Y-%m}"
    return f"{start:%Y-%m-%d} → {end:%Y-%m-%d}" if not pd.isna(end) else f"{start:%Y-%m-%d}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}es" if word.endswith("ch") else f"{count} {word}s"


def html_table(header: Sequence[str], rows: Iterable[Sequence[Any]], *, numeric: Iterable[int] = (),
               row_classes: Sequence[str] | None = None, total: int | None = None) -> str:
    """An HTML table whose every cell is escaped; ``numeric`` columns are right-aligned.

    ``total`` is the number of rows the data has, when ``rows`` holds only the first of them.
    """
    right = set(numeric)
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = []
    shown = 0
    for index, row in enumerate(rows):
        css = f' class="{_e(row_classes[index])}"' if row_classes and row_classes[index] else ""
        cells = "".join(f'<td class="num">{_e(c)}</td>' if i in right else f"<td>{_e(c)}</td>"
                        for i, c in enumerate(row))
        body.append(f"<tr{css}>{cells}</tr>")
        shown += 1
    more = ""
    if total is not None and total > shown:
        more = (f'<tr><td colspan="{len(header)}">… and {total - shown} more rows (the whole frame is on the '
                "form)</td></tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}{more}</tbody></table>"


def batches_table(frame: pd.DataFrame, names: dict[str, str]) -> str:
    """A batches frame as an escaped HTML table (first ``MAX_TABLE_ROWS`` rows), ledgers by name."""
    partitioned = bool(frame["feedstock"].notna().any())
    header = ["Tracking id", "Ledger", "Period", *(["Feedstock"] if partitioned else []), "Output", "Unit", "State"]
    rows = [(r.tracking_id, names.get(str(r.ledger_id), r.ledger_id), _span(r.start_time, r.end_time),
             *([r.feedstock] if partitioned else []), _number(r.output_value), r.output_unit, r.state)
            for r in frame.head(MAX_TABLE_ROWS).itertuples()]
    return html_table(header, rows, numeric=[header.index("Output")], total=len(frame))


def _status_html(kind: str, text: str) -> str:
    """A status line; ``text`` is plain text (redacted of secrets and escaped here, newlines kept)."""
    if not text:
        return ""
    text = redact(text)
    style = f"{_STATUS_STYLES[kind]};padding:6px 10px;border-radius:4px;margin:6px 0;max-width:900px"
    return f'<div class="mnb-status mnb-{kind}" style="{style}">{_e(text).replace(chr(10), "<br>")}</div>'


def _error_text(exc: BaseException) -> str:
    """What the form shows for an exception (plain text; escaped when shown): the server's own words first."""
    if isinstance(exc, TaskFailedError):
        said = exc.error_message or "(the server gave no error message)"
        text = (f"Task {exc.task_id} failed on the server. The server said:\n{said}\n\nFix the cause (often "
                "missing or invalid input data for the period), then preview and generate again.")
    else:
        text = f"{type(exc).__name__}: {exc}"
    notes = getattr(exc, "__notes__", None) or []
    return redact("\n".join([text, *map(str, notes)]))


# Cells a spreadsheet would read as a formula (OWASP's CSV-injection list): they get a leading apostrophe.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every text cell that starts like a formula prefixed with ``'`` (numbers are untouched).

    API text (tracking ids, names, error messages) is untrusted: ``=HYPERLINK(...)`` in a CSV opened in a
    spreadsheet would run as a formula. Negative numbers stay numbers: only text columns are changed.
    """
    out = frame.copy()
    for column in out.columns:
        series = out[column]
        if not (pd.api.types.is_string_dtype(series) or series.dtype == object):
            continue
        text = series.map(lambda v: v if not isinstance(v, str) or not v.startswith(_FORMULA_START) else "'" + v)
        out[column] = text.astype(series.dtype) if series.dtype != object else text
    return out


def default_period(today: date | None = None) -> Period:
    """The last complete quarter (UTC): what an analyst usually generates or reviews next."""
    today = today or datetime.now(UTC).date()
    return parse_period(f"{today.year}Q{(today.month - 1) // 3 + 1}").previous()


def _png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def plot_png(frame: pd.DataFrame, *, period: Period | None, title: str | None,
             labels: dict[str, str] | None) -> bytes:
    """The batches plot (``plots.plot_batches``) as PNG bytes, drawn on a Figure of its own (no pyplot)."""
    from matplotlib.figure import Figure

    from .plots import plot_batches  # lazily: matplotlib loads only when a form draws

    figure = Figure(figsize=PLOT_SIZE, dpi=PLOT_DPI, layout="constrained")
    ax = figure.subplots()
    plot_batches(frame, ax=ax, period=period, title=title, labels=labels)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _has_model(row: Any) -> bool:
    """Whether a ledgers-frame row can generate (NA, i.e. not said, counts as no)."""
    return not pd.isna(row.has_model) and bool(row.has_model)


def _ledger_label(row: Any) -> str:
    unit = f" ({row.unit})" if isinstance(row.unit, str) and row.unit else ""
    model = row.model_name if _has_model(row) and isinstance(row.model_name, str) else (
        "model" if _has_model(row) else "no model")
    return f"{row.name}{unit} — {model}"


def _resolve_ledger(ledgers: pd.DataFrame, wanted: str) -> str:
    """A ledger id from an id or an exact name."""
    if (ledgers["id"] == wanted).any():
        return wanted
    named = ledgers.loc[ledgers["name"] == wanted, "id"]
    if len(named) == 1:
        return str(named.iloc[0])
    if len(named) > 1:
        raise PreconditionError(f"Several ledgers are named {wanted!r}; pass the id ({', '.join(named)}).")
    raise PreconditionError(f"No ledger has the id or name {wanted!r}; client.ledgers() lists them.")


# --- static output shared by the forms ---------------------------------------------------------------------


class _StaticOutput:
    """The widget box plus a static HTML copy of the latest outcome, for saved and rendered notebooks."""

    widget: Any
    static_html: str

    def _init_static(self) -> None:
        self._handles: list[Any] = []
        self.static_html = ""

    def _ipython_display_(self) -> None:
        from IPython.display import HTML, display

        display(self.widget)
        handle = display(HTML(self.static_html), display_id=True)
        if handle is not None:
            self._handles.append(handle)

    def display(self) -> None:
        """Show the form: widgets and static block in IPython; the status as text elsewhere."""
        try:
            from IPython import get_ipython
        except ImportError:
            print(self._status_text())
            return
        if get_ipython() is None:
            print(self._status_text())
            return
        self._ipython_display_()

    def _status_text(self) -> str:
        raise NotImplementedError

    def _publish(self, body: str) -> None:
        """Keep the static HTML and update every static block already displayed."""
        self.static_html = f'<div class="mnb-static"><style>{STATIC_CSS}</style>{body}</div>'
        if not self._handles:
            return
        from IPython.display import HTML

        for handle in self._handles:
            handle.update(HTML(self.static_html))

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
        """Close every widget of the form (the static block stays in the output)."""
        for widget in self._all_widgets():
            widget.close()


# --- the period picker -------------------------------------------------------------------------------------


class PeriodPicker:
    """Quarter, month, year or a custom range of UTC dates, as a ``Period``.

    ``picker.period`` is the chosen ``Period`` (or raises ``PeriodError`` saying what is wrong, which the
    picker also shows); ``picker.value`` is the same, or None while the choice is invalid, and can be set
    from code with anything ``parse_period`` reads (``picker.value = "2025Q1"``).
    """

    MODES = ("Quarter", "Month", "Year", "Custom range")

    def __init__(self, value: PeriodLike | None = None, *, description: str = "Period") -> None:
        import ipywidgets as w

        start = parse_period(value) if value is not None else default_period()
        this_year = datetime.now(UTC).year
        years = list(range(min(FIRST_YEAR, start.start.year), max(this_year + 1, start.end.year) + 1))
        style = {"description_width": "70px"}
        self.mode = w.Dropdown(options=self.MODES, value="Quarter", description=description, style=style,
                               layout=w.Layout(width="200px"))
        self.year = w.Dropdown(options=[(str(y), y) for y in years], value=start.start.year,
                               layout=w.Layout(width="90px"))
        self.quarter = w.Dropdown(options=[(f"Q{q}", q) for q in range(1, 5)], value=1, layout=w.Layout(width="70px"))
        self.month = w.Dropdown(options=[(f"{m:02d} {MONTHS[m - 1]}", m) for m in range(1, 13)], value=1,
                                layout=w.Layout(width="100px"))
        self.start = w.DatePicker(description="From", style={"description_width": "40px"},
                                  layout=w.Layout(width="190px"))
        self.end = w.DatePicker(description="To (incl.)", style={"description_width": "60px"},
                                layout=w.Layout(width="210px"))
        self.error_html = w.HTML("")
        self.span_html = w.HTML("")
        self.widget = w.VBox([w.HBox([self.mode, self.year, self.quarter, self.month, self.start, self.end,
                                      self.span_html]), self.error_html])
        self._callbacks: list[Callable[[PeriodPicker], None]] = []
        self._quiet = False
        self._last: Period = start
        self.value = start
        for control in (self.mode, self.year, self.quarter, self.month, self.start, self.end):
            control.observe(self._changed, "value")

    # -- reading and setting --------------------------------------------------------------------------------

    @property
    def period(self) -> Period:
        """The chosen period; raises ``PeriodError`` with a message the picker shows as well."""
        mode, year = self.mode.value, self.year.value
        if mode == "Quarter":
            return parse_period(f"{year}Q{self.quarter.value}")
        if mode == "Month":
            return parse_period(f"{year}-{self.month.value:02d}")
        if mode == "Year":
            return parse_period(str(year))
        if self.start.value is None or self.end.value is None:
            raise PeriodError("Choose both dates of the custom range (From and To, UTC; To is included).")
        return parse_period((self.start.value, self.end.value))

    @property
    def value(self) -> Period | None:
        try:
            return self.period
        except PeriodError:
            return None

    @value.setter
    def value(self, value: PeriodLike) -> None:
        period = parse_period(value)
        kind = period.kind
        self._quiet = True
        try:
            self._ensure_year(period.start.year)
            self._ensure_year(period.end.year)
            self.year.value = period.start.year
            if kind == "quarter":
                self.quarter.value = (period.start.month - 1) // 3 + 1
            elif kind == "month":
                self.month.value = period.start.month
            self.start.value, self.end.value = period.start.date(), period.end.date()
            self.mode.value = {"quarter": "Quarter", "month": "Month", "year": "Year"}.get(kind, "Custom range")
        finally:
            self._quiet = False
        self._changed()

    @property
    def disabled(self) -> bool:
        return bool(self.mode.disabled)

    @disabled.setter
    def disabled(self, value: bool) -> None:
        for control in (self.mode, self.year, self.quarter, self.month, self.start, self.end):
            control.disabled = value

    def on_change(self, callback: Callable[[PeriodPicker], None]) -> None:
        """Call ``callback(picker)`` after every change of the choice."""
        self._callbacks.append(callback)

    # -- internals ---------------------------------------------------------------------------------------------

    def _ensure_year(self, year: int) -> None:
        years = [value for _, value in self.year.options]
        if year not in years:
            years = sorted({*years, year})
            self.year.options = [(str(y), y) for y in years]

    def _changed(self, change: Any = None) -> None:
        if self._quiet:
            return
        mode = self.mode.value
        if change is not None and change.get("owner") is self.mode and mode == "Custom range":
            self._prefill_dates()
        shown = {"Quarter": (self.year, self.quarter), "Month": (self.year, self.month), "Year": (self.year,),
                 "Custom range": (self.start, self.end)}[mode]
        for control in (self.year, self.quarter, self.month, self.start, self.end):
            control.layout.display = "" if control in shown else "none"
        try:
            period = self.period
        except PeriodError as exc:
            self.error_html.value = f'<span style="color:#b00020">{_e(exc)}</span>'
            self.span_html.value = ""
        else:
            self._last = period
            self.error_html.value = ""
            self.span_html.value = (f'<span style="color:#52606d">{_e(period.start.strftime("%Y-%m-%d"))} → '
                                    f'{_e(period.end.strftime("%Y-%m-%d"))} UTC</span>')
        for callback in self._callbacks:
            callback(self)

    def _prefill_dates(self) -> None:
        """Switching to a custom range starts from the period chosen before."""
        self._quiet = True
        try:
            self.start.value, self.end.value = self._last.start.date(), self._last.end.date()
        finally:
            self._quiet = False


# --- the generation form -----------------------------------------------------------------------------------

# Generations started by forms, per client, so a second form on the same client (a re-run cell) cannot
# start what the first one is still running. Each entry names every ledger the generation writes (models
# run together: Net Carbon Removal's model also writes Biochar Produced), which the client's own check
# (same ledger id only) does not see; check and start happen under one lock, so two forms cannot race.
_ACTIVE: weakref.WeakKeyDictionary[Client, list[tuple[frozenset[str], Period, Task]]] = weakref.WeakKeyDictionary()
_ACTIVE_LOCK = threading.Lock()

IDLE, PREVIEWED, CONFIRMING, STARTING, RUNNING = "idle", "previewed", "confirming", "starting", "running"
DONE, FAILED, DETACHED = "done", "failed", "detached"
# The trigger may or may not have started a generation: the form says so until reconcile() settles it.
OUTCOME_UNKNOWN = "outcome unknown"


def _overlapping(client: Client, ledgers: frozenset[str], period: Period) -> Task | None:
    """A still running task a form started on ``client`` that writes one of ``ledgers`` in an overlapping period.

    Called with ``_ACTIVE_LOCK`` held. Tasks seen finished are dropped from the registry.
    """
    entries = _ACTIVE.get(client, [])
    for entry in list(entries):
        written, span, task = entry
        if not written & ledgers or span.end < period.start or period.end < span.start:
            continue
        status = task.status if task.status is not None and task.status.done else task.refresh()
        if status.done:
            entries.remove(entry)
        else:
            return task
    return None


def _register(client: Client, ledgers: frozenset[str], period: Period, task: Task) -> None:
    _ACTIVE.setdefault(client, []).append((ledgers, period, task))


def _unregister(client: Client, task: Task) -> None:
    with _ACTIVE_LOCK:
        entries = _ACTIVE.get(client, [])
        entries[:] = [entry for entry in entries if entry[2] is not task]


class GenerationForm(_StaticOutput):
    """Preview and generate a period's batches on a ledger, with confirmation, progress and the outcome.

    Controls (ipywidgets): ``ledger``, ``period_picker`` (a ``PeriodPicker``), ``inputs_html``,
    ``candidates`` (data points for manual-select inputs), ``preview_button``, ``generate_button``,
    ``confirm_button``, ``cancel_button``, ``stop_button``, ``progress`` (0–100), ``progress_label``,
    ``status``; ``widget`` is the whole box. Methods do what the buttons do: ``preview()``,
    ``generate()`` (asks for confirmation), ``confirm()`` (starts), ``cancel()``, ``wait()``,
    ``stop_waiting()``. Outcome: ``preview_frame``, ``task``, ``result`` (the new batches), ``error``,
    ``state``, ``static_html``.
    """

    def __init__(self, client: Client, ledger: str | None = None, period: PeriodLike | None = None) -> None:
        import ipywidgets as w

        self._init_static()
        self.client = client
        self.state = IDLE
        self.error: BaseException | None = None
        self.task: Task | None = None
        self.result: pd.DataFrame | None = None
        self.preview_frame: pd.DataFrame | None = None
        self.confirmation: str | None = None
        self.required: pd.DataFrame | None = None
        self.candidate_frame: pd.DataFrame | None = None
        self._lock = threading.RLock()
        self._preview_key: tuple[Any, ...] | None = None
        self._pending_key: tuple[Any, ...] | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._run_error: BaseException | None = None
        self._plot_uri: str | None = None
        self._status: tuple[str, str] = ("info", "")
        self._unknown_key: tuple[Any, ...] | None = None
        self.reconciliation: Reconciliation | None = None

        self.ledgers = client.ledgers()
        chosen = _resolve_ledger(self.ledgers, ledger) if ledger is not None else self._first_with_model()
        style = {"description_width": "70px"}
        self.ledger = w.Dropdown(options=[(_ledger_label(r), r.id) for r in self.ledgers.itertuples()],
                                 value=chosen, description="Ledger", style=style, layout=w.Layout(width="620px"))
        self.period_picker = PeriodPicker(period)
        self.model_html = w.HTML()
        self.inputs_html = w.HTML()
        self.candidates = w.SelectMultiple(options=[], rows=6, description="Data points", style=style,
                                           layout=w.Layout(width="620px"))
        self.candidates_html = w.HTML()
        self.candidates_box = w.VBox([self.candidates_html, self.candidates])
        self.preview_button = w.Button(description="Preview", icon="search", tooltip="Count what would be created")
        self.generate_button = w.Button(description="Generate", icon="play", button_style="primary",
                                        disabled=True, tooltip="Enabled after a preview of this selection")
        self.confirm_html = w.HTML()
        self.confirm_button = w.Button(description="Confirm", button_style="danger", icon="check", disabled=True)
        self.cancel_button = w.Button(description="Cancel", icon="times", disabled=True)
        self.confirm_box = w.VBox([self.confirm_html, w.HBox([self.confirm_button, self.cancel_button])])
        self.progress = w.IntProgress(value=0, min=0, max=100, description="Progress", style=style,
                                      layout=w.Layout(width="420px"))
        self.progress_label = w.Label("")
        self.stop_button = w.Button(description="Stop waiting", icon="stop", disabled=True,
                                    tooltip="Stop following the task; it goes on running on the server")
        self.progress_box = w.HBox([self.progress, self.progress_label, self.stop_button])
        self.reconcile_button = w.Button(description="Reconcile", icon="balance-scale", button_style="warning",
                                         tooltip="See what the server made after a request with an unknown outcome")
        self.status = w.HTML()
        self.preview_html = w.HTML()
        self.result_html = w.HTML()
        self.plot = w.Image(format="png", layout=w.Layout(max_width="900px"))
        self.widget = w.VBox([
            w.HTML("<b>Generate batches</b>"), self.ledger, self.period_picker.widget, self.model_html,
            self.inputs_html, self.candidates_box, w.HBox([self.preview_button, self.generate_button]),
            self.preview_html, self.confirm_box, self.progress_box, self.status, self.reconcile_button,
            self.result_html, self.plot,
        ])

        self.preview_button.on_click(self._callback(self.preview))
        self.generate_button.on_click(self._callback(self.generate))
        self.confirm_button.on_click(self._callback(self.confirm))
        self.cancel_button.on_click(self._callback(self.cancel))
        self.stop_button.on_click(self._callback(self.stop_waiting))
        self.reconcile_button.on_click(self._callback(self.reconcile))
        self.ledger.observe(self._callback(self._ledger_changed), "value")
        self.period_picker.on_change(self._callback(self._period_changed))
        self.candidates.observe(self._callback(self._selection_changed), "value")

        self._load_ledger()
        self._set_status("info", "Choose a ledger and a period, then Preview.")
        self._refresh_controls()

    def __repr__(self) -> str:
        return f"<GenerationForm {self._status_text()}>"

    # -- the buttons' methods -------------------------------------------------------------------------------

    def preview(self) -> pd.DataFrame:
        """Count the batches generating the chosen ledger and period would create (one row per ledger)."""
        with self._lock:
            if self.state in (STARTING, RUNNING):
                raise PreconditionError(self._busy_message())
            if self.state == OUTCOME_UNKNOWN and self._unknown_key == self._current_key():
                raise PreconditionError("The last generation request of this selection has an unknown outcome: "
                                        "click Reconcile (form.reconcile()) to see what the server made before "
                                        "previewing again.")
        ledger_id, period, points = self._selection()
        self._check_can_generate(ledger_id, points)
        frame = self.client.preview(ledger_id, period, data_point_ids=list(points) or None)
        total = int(frame["count"].sum())
        with self._lock:
            self.preview_frame, self._preview_key = frame, (ledger_id, period.start, period.end, points)
            self.state, self.error, self.confirmation = PREVIEWED, None, None
        rows = [(r.ledger_name, r.count) for r in frame.itertuples()]
        self.preview_html.value = "<b>Preview</b>" + html_table(["Ledger", "Batches to create"], rows, numeric=[1])
        if total == 0:
            self._set_status("warn", f"Nothing to generate for {period.label}: the preview counts 0 batches on "
                                     "every ledger (each partition with data already has a batch, or there is no "
                                     "data). Delete batches to generate them again.")
        else:
            self._set_status("info", f"Preview of {period}: {_plural(total, 'batch')} would be created. "
                                     "Click Generate to create them.")
        self._refresh_controls()
        self._publish_static()
        return frame

    def generate(self) -> str | None:
        """Ask for confirmation of what the last preview counted; returns the question (Confirm starts)."""
        with self._lock:
            if self.state == CONFIRMING:
                return self.confirmation  # a second click: the question is already asked
            if self.state in (STARTING, RUNNING):
                self._set_status("info", self._busy_message())
                return None
            key = self._current_key()
            if self._preview_key is None or key != self._preview_key:
                raise PreconditionError("Preview this ledger, period and selection first: Generate creates what "
                                        "a preview of the same selection counted.")
            assert self.preview_frame is not None
            if int(self.preview_frame["count"].sum()) == 0:
                raise PreconditionError("The preview counts 0 batches: there is nothing to generate.")
            self.confirmation = self._question(key)
            self._pending_key, self.state = key, CONFIRMING
        self.confirm_html.value = f'<div style="font-weight:600">{_e(self.confirmation)}</div>'
        self._refresh_controls()
        return self.confirmation

    def confirm(self) -> Task | None:
        """Start the generation asked about, then follow it in a background thread (``wait()`` for it).

        A second confirmation (or a click while it starts) starts nothing and returns the running task.
        """
        with self._lock:
            if self.state in (STARTING, RUNNING):
                return self.task
            if self.state != CONFIRMING or self._pending_key is None:
                raise PreconditionError("Nothing to confirm: Preview, then Generate, then Confirm.")
            key = self._pending_key
            if key != self._current_key():
                self.state = PREVIEWED
                self._refresh_controls()
                raise PreconditionError("The selection changed since the preview; preview it again.")
            self.state, self.error, self._run_error, self.result = STARTING, None, None, None
            self._plot_uri = None
        self.result_html.value = ""
        self.plot.value = b""
        self._refresh_controls()
        ledger_id, _, _, points = key
        period = self.period_picker.period
        try:
            task = self._start(ledger_id, period, points)
        except GenerationOutcomeUnknownError as exc:
            self._outcome_unknown(exc, key)
            raise
        except BaseException:
            with self._lock:
                self.state, self._preview_key, self._pending_key = IDLE, None, None
            self._refresh_controls()
            raise
        with self._lock:
            self.task, self.state = task, RUNNING
            self._stop.clear()
            self._thread = threading.Thread(target=self._follow, args=(task, period),
                                            name=f"mangrove-form-task-{task.id}", daemon=True)
        self.progress.value = 0
        self.progress_label.value = "Waiting for the server to start"
        self._set_status("info", f"Task {task.id} started: {self.confirmation or ''}".strip())
        self._refresh_controls()
        self._publish_static()
        self._thread.start()
        return task

    def reconcile(self) -> Reconciliation:
        """After an unknown outcome: what the server has for the ledger and period, shown in the form.

        When nothing is left to generate the unknown outcome is settled and the form shows the batches;
        otherwise it keeps saying the outcome is unknown, with the advice of ``Reconciliation.advice()``.
        """
        with self._lock:
            if self.state != OUTCOME_UNKNOWN or self._unknown_key is None:
                raise PreconditionError("There is nothing to reconcile: no generation request of this form has an "
                                        "unknown outcome.")
            ledger_id, start, end, _points = self._unknown_key
        found = self.client.reconcile(ledger_id, (start, end))
        self.reconciliation = found
        names = self._names()
        rows = [(r.ledger_name, r.count) for r in found.still_missing.itertuples()]
        self.result_html.value = ("<b>On the server</b>" + self._batches_table(found.batches)
                                  + "<b>Still to generate</b>" + html_table(["Ledger", "Batches"], rows, numeric=[1]))
        label = found.period.label
        if found.complete:
            with self._lock:
                self.state, self._unknown_key, self.result = DONE, None, found.batches
            self._set_status("ok", f"Reconciled {names.get(ledger_id, ledger_id)} {label}: "
                                   f"{_plural(len(found.batches), 'batch')} on the server and nothing left to "
                                   "generate. The earlier request's outcome no longer matters.")
        else:
            self._set_status("warn", f"Reconciled {names.get(ledger_id, ledger_id)} {label}: "
                                     f"{_plural(len(found.batches), 'batch')} on the server, "
                                     f"{int(found.still_missing['count'].sum())} still to generate. "
                                     f"{found.advice()}")
        self._refresh_controls()
        self._publish_static()
        return found

    def cancel(self) -> None:
        """Withdraw the confirmation question; nothing is created."""
        with self._lock:
            if self.state != CONFIRMING:
                return
            self.state, self._pending_key = PREVIEWED, None
        self._set_status("info", "Cancelled: nothing was created.")
        self._refresh_controls()

    def stop_waiting(self) -> bool:
        """Stop following the running task (it goes on on the server); True when there was one to stop."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            return False
        self._stop.set()
        thread.join(timeout=self.client.settings.read_timeout + 1)
        return True

    def wait(self, timeout: float | None = None) -> pd.DataFrame | None:
        """Block until the background wait ends; the new batches, or raise what went wrong.

        Returns None when the waiting was stopped (``stop_waiting()``); the task goes on on the server.
        """
        thread = self._thread
        if thread is None:
            raise PreconditionError("No generation was started by this form: Preview, Generate, then Confirm.")
        thread.join(timeout)
        if thread.is_alive():
            task_id = self.task.id if self.task is not None else "?"
            raise TaskTimeoutError(f"form.wait() returned after {timeout:g} s; the form still follows task "
                                   f"{task_id} in the background (form.wait() again, or form.stop_waiting()).",
                                   task_id=task_id, timeout=timeout)
        if self._run_error is not None:
            raise self._run_error
        return self.result

    # -- following the task (background thread) ------------------------------------------------------------

    def _start(self, ledger_id: str, period: Period, points: tuple[str, ...]) -> Task:
        """Check no form on this client runs it already, then start it (the client checks again)."""
        preview = self.preview_frame
        written = {ledger_id}
        if preview is not None:
            written.update(str(i) for i in preview.loc[preview["count"] > 0, "ledger_id"].dropna())
        ledgers = frozenset(written)
        with _ACTIVE_LOCK:
            running = _overlapping(self.client, ledgers, period)
            if running is not None:
                raise PreconditionError(
                    f"Task {running.id} ({running.label or 'started by another form'}) is still generating "
                    f"an overlapping period of {', '.join(sorted(self._names().get(i, i) for i in ledgers))}; "
                    f"follow it with client.task({running.id!r}).wait() instead of starting another.")
            task = self.client.generate(ledger_id, period, data_point_ids=list(points) or None)
            _register(self.client, ledgers, period, task)
        return task

    def _follow(self, task: Task, period: Period) -> None:
        try:
            frame = self._poll(task)
        except BaseException as exc:  # shown, kept and logged: never lost in a thread
            self._forget_if_done(task)
            hint = f"Task {task.id} may still be running on the server; re-attach with client.task({task.id!r}).wait()."
            if not (task.status is not None and task.status.done) and hint not in getattr(exc, "__notes__", ()):
                exc.add_note(hint)
            self._failed(exc)
            return
        if frame is None:
            self._detached(task)
            return
        self._forget_if_done(task)
        try:
            self._completed(frame, period)
        except BaseException as exc:
            self._failed(exc)

    def _forget_if_done(self, task: Task) -> None:
        if task.status is not None and task.status.done:
            _unregister(self.client, task)

    def _poll(self, task: Task) -> pd.DataFrame | None:
        """Poll until the task ends (then its batches), or None when asked to stop waiting."""
        settings = self.client.settings
        begun = time.monotonic()
        schedule = PollSchedule(min_interval=settings.poll_min_interval, interval=settings.poll_interval,
                                max_interval=settings.poll_max_interval, start=begun)
        shown = 0.0
        while True:
            if self._stop.wait(schedule.next_delay(time.monotonic())):
                return None
            status = task.refresh()
            now = time.monotonic()
            schedule.observe(now, status)  # our own clock and readings only, never the server's timestamps
            shown = 100.0 if status.state == "complete" else max(shown, status.progress)
            self.progress.value = round(shown)
            self.progress_label.value = status.description or status.state
            if status.done:
                break
            if now - begun > settings.task_timeout:
                raise TaskTimeoutError(task_id=task.id, timeout=settings.task_timeout)
        # Final: one more look, then the batches it made by the server's timestamps (or TaskFailedError).
        return task.wait(progress=False)

    def _completed(self, frame: pd.DataFrame, period: Period) -> None:
        names = self._names()
        made = len(frame)
        with self._lock:
            self.result, self.state, self._preview_key, self._pending_key = frame, DONE, None, None
        self.progress.value = 100
        self.result_html.value = "<b>New batches</b>" + self._batches_table(frame)
        task_id = self.task.id if self.task is not None else "?"
        self._set_status("ok", f"Task {task_id} complete: created {_plural(made, 'batch')} for {period.label}.")
        self._refresh_controls()
        self._publish_static()
        png = plot_png(frame, period=period, title=f"New batches, {period.label}", labels=names)
        self.plot.value = png
        self._plot_uri = _png_data_uri(png)
        self.plot.layout.display = ""
        self._publish_static()

    def _outcome_unknown(self, exc: GenerationOutcomeUnknownError, key: tuple[Any, ...]) -> None:
        with self._lock:
            self.error = self._run_error = exc
            self.state, self._preview_key, self._pending_key = OUTCOME_UNKNOWN, None, None
            self._unknown_key = key
        self._set_status("error", "Outcome unknown: " + _error_text(exc) + "\n\nClick Reconcile to see what the "
                         "server has before doing anything else; this session will not send this generation again "
                         "until then.")
        self._refresh_controls()
        self._publish_static()

    def _failed(self, exc: BaseException) -> None:
        log.error("Generation form: %s", exc, exc_info=exc)
        with self._lock:
            self._run_error, self.error = exc, exc
            self.state, self._preview_key, self._pending_key = FAILED, None, None
        self._set_status("error", _error_text(exc))
        self._refresh_controls()
        self._publish_static()

    def _detached(self, task: Task) -> None:
        with self._lock:
            self.state, self._preview_key, self._pending_key = DETACHED, None, None
        self.progress_label.value = "stopped waiting"
        self._set_status("warn", f"Stopped waiting for task {task.id}; it goes on running on the server. "
                                 f"Re-attach with client.task({task.id!r}).wait(), or see its batches with "
                                 "a BatchExplorer later.")
        self._refresh_controls()
        self._publish_static()

    # -- reacting to the controls ---------------------------------------------------------------------------

    def _callback(self, method: Callable[..., Any]) -> Callable[..., None]:
        """A widget callback for ``method``: exceptions are shown in the form, kept and logged, not raised
        into ipywidgets (whose dispatcher would only log them)."""

        def run(*_: Any) -> None:
            try:
                method()
            except Exception as exc:
                log.error("Generation form: %s failed: %s", method.__name__.strip("_"), exc, exc_info=exc)
                self.error = exc
                if self.state != OUTCOME_UNKNOWN or not isinstance(exc, GenerationOutcomeUnknownError):
                    self._set_status("error", _error_text(exc))  # (an unknown outcome has its own status)
                self._publish_static()

        run.__name__ = f"on_{method.__name__.strip('_')}"
        return run

    def _ledger_changed(self) -> None:
        self._load_ledger()
        self._selection_changed()

    def _period_changed(self) -> None:
        self._load_candidates()
        self._selection_changed()

    def _selection_changed(self) -> None:
        """Any change of ledger, period or data points voids the preview (and a pending confirmation)."""
        with self._lock:
            if self._preview_key is not None and self._current_key() != self._preview_key:
                self._preview_key = None
                if self.state == CONFIRMING:
                    self.state, self._pending_key = PREVIEWED, None
                self._set_status("info", "The selection changed: preview it before generating.")
        self._refresh_controls()

    def _load_ledger(self) -> None:
        """Model, required inputs and candidates of the chosen ledger."""
        row = self._row(self.ledger.value)
        if not _has_model(row):
            self.required = None
            self.model_html.value = _status_html("warn", self._no_model_message(row))
            self.inputs_html.value = ""
        else:
            self.model_html.value = f"Model: <b>{_e(row.model_name)}</b>"
            self.required = self.client.required_inputs(row.id)
            self.inputs_html.value = self._inputs_table(self.required)
        self._load_candidates()

    def _load_candidates(self) -> None:
        manual = self._manual_inputs()
        if manual.empty:
            self.candidate_frame = None
            self.candidates.options = []
            self.candidates_box.layout.display = "none"
            return
        self.candidates_box.layout.display = ""
        period = self.period_picker.value
        names = ", ".join(manual["name"].astype(str))
        if period is None:
            self.candidates.options = []
            self.candidates_html.value = f"Choose a valid period to list data points for {_e(names)}."
            return
        frame = self.client.candidates(self.ledger.value, period)
        self.candidate_frame = frame
        kept = [value for value in self.candidates.value if value in set(frame["output_data_point_id"])]
        self.candidates.options = [(self._candidate_label(r), r.output_data_point_id) for r in frame.itertuples()]
        self.candidates.value = tuple(kept)
        self.candidates_html.value = (
            f'<span style="background:#fff3c4;padding:2px 6px">Manual-select input <b>{_e(names)}</b>: choose the '
            f"data points to use ({len(frame)} candidate(s) in {_e(period.label)}; ctrl/shift-click for several)."
            "</span>")

    # -- helpers -----------------------------------------------------------------------------------------------

    def _first_with_model(self) -> str:
        with_model = self.ledgers.loc[self.ledgers["has_model"].fillna(False).astype(bool), "id"]
        if len(with_model):
            return str(with_model.iloc[0])
        if len(self.ledgers):
            return str(self.ledgers["id"].iloc[0])
        raise PreconditionError("The API lists no ledgers: create one in Mangrove first.")

    def _row(self, ledger_id: str) -> Any:
        return next(r for r in self.ledgers.itertuples() if r.id == ledger_id)

    def _names(self) -> dict[str, str]:
        return {str(r.id): str(r.name) for r in self.ledgers.itertuples() if isinstance(r.name, str)}

    def _manual_inputs(self) -> pd.DataFrame:
        if self.required is None:
            return pd.DataFrame({"name": pd.Series([], dtype="string")})
        return self.required[self.required["is_manual_select"].fillna(False).astype(bool)]

    @staticmethod
    def _no_model_message(row: Any) -> str:
        return (f"'{row.name}' has no model linked (latest_model is null), so batches cannot be generated on it. "
                "Link a model to the ledger in Mangrove first; its batches can still be explored with "
                "BatchExplorer.")

    def _check_can_generate(self, ledger_id: str, points: tuple[str, ...]) -> None:
        row = self._row(ledger_id)
        if not _has_model(row):
            raise PreconditionError(self._no_model_message(row))
        manual = self._manual_inputs()
        if not manual.empty and not points:
            raise PreconditionError(
                f"'{row.name}' has manual-select input(s) {', '.join(manual['name'].astype(str))}: choose at least "
                "one data point in the list (the candidates are the upstream batches of the period).")

    def _selection(self) -> tuple[str, Period, tuple[str, ...]]:
        return self.ledger.value, self.period_picker.period, tuple(sorted(self.candidates.value))

    def _current_key(self) -> tuple[Any, ...] | None:
        try:
            ledger_id, period, points = self._selection()
        except PeriodError:
            return None
        return (ledger_id, period.start, period.end, points)

    def _question(self, key: tuple[Any, ...]) -> str:
        assert self.preview_frame is not None
        parts = [(int(r.count), str(r.ledger_name)) for r in self.preview_frame.itertuples() if r.count]
        what = " and ".join(f"{_plural(n, 'batch')} on {name}" if i == 0 else f"{n} on {name}"
                            for i, (n, name) in enumerate(parts))
        points = key[3]
        using = f" using {_plural(len(points), 'selected data point')}" if points else ""
        return f"Create {what} for {self.period_picker.period.label}{using}?"

    def _busy_message(self) -> str:
        task_id = self.task.id if self.task is not None else "(starting)"
        return (f"Task {task_id} is running; wait for it (form.wait()) or stop waiting first. Nothing new was "
                "started.")

    def _refresh_controls(self) -> None:
        with self._lock:
            state = self.state
            busy = state in (STARTING, RUNNING)
            key = self._current_key()
            can_generate = (not busy and state != CONFIRMING and self._preview_key is not None
                            and key == self._preview_key and self.preview_frame is not None
                            and int(self.preview_frame["count"].sum()) > 0)
        has_model = _has_model(self._row(self.ledger.value))
        self.ledger.disabled = busy
        self.period_picker.disabled = busy
        self.candidates.disabled = busy
        self.preview_button.disabled = busy or not has_model
        self.generate_button.disabled = not can_generate
        self.confirm_button.disabled = self.cancel_button.disabled = state != CONFIRMING
        self.confirm_box.layout.display = "" if state == CONFIRMING else "none"
        self.stop_button.disabled = state != RUNNING
        self.reconcile_button.layout.display = "" if state == OUTCOME_UNKNOWN else "none"
        self.progress_box.layout.display = "" if self.task is not None or busy else "none"
        self.plot.layout.display = "" if self._plot_uri else "none"

    def _set_status(self, kind: str, text: str) -> None:
        self._status = (kind, text)
        self.status.value = _status_html(kind, text)

    def _status_text(self) -> str:
        return f"{self.state}: {self._status[1]}"

    def _inputs_table(self, required: pd.DataFrame) -> str:
        if required.empty:
            return "<i>The model lists no required inputs.</i>"
        manual = required["is_manual_select"].fillna(False).astype(bool).tolist()
        rows = [(r.name, r.unit, r.category, "manual select: choose data points" if m else "automatic",
                 r.output_of_ledgers or "") for r, m in zip(required.itertuples(), manual, strict=True)]
        return ("<b>Required inputs</b>" +
                html_table(["Input", "Unit", "Category", "Selection", "From ledger"], rows,
                           row_classes=["mnb-manual" if m else "" for m in manual])
                + "<style>.mnb-manual td{background:#fff3c4}</style>")

    @staticmethod
    def _candidate_label(row: Any) -> str:
        month = f"{row.start_time:%Y-%m}" if not pd.isna(row.start_time) else "?"
        unit = row.output_unit if isinstance(row.output_unit, str) else ""
        return f"{row.tracking_id} · {month} · {_number(row.output_value)} {unit}".strip()

    def _batches_table(self, frame: pd.DataFrame) -> str:
        return batches_table(frame, self._names())

    def _publish_static(self) -> None:
        row = self._row(self.ledger.value)
        period = self.period_picker.value
        kind, text = self._status
        meta = [f"Ledger: <b>{_e(_ledger_label(row))}</b>", f"Period: {_e(period) if period else '—'}"]
        if self.task is not None:
            meta.append(f"Task {_e(self.task.id)}")
        parts = [f"<h3>Batch generation: {_e(row.name)}</h3>", f'<p class="mnb-meta">{" · ".join(meta)}</p>',
                 _status_html(kind, text)]
        if self.preview_frame is not None:
            rows = [(r.ledger_name, r.count) for r in self.preview_frame.itertuples()]
            parts.append("<h4>Preview</h4>" + html_table(["Ledger", "Batches to create"], rows, numeric=[1]))
        if self.result is not None:
            parts.append(f"<h4>New batches ({len(self.result)})</h4>" + self._batches_table(self.result))
            if self._plot_uri:
                parts.append(f'<img alt="New batches" src="{self._plot_uri}">')
        self._publish("".join(parts))


# --- the batch explorer -------------------------------------------------------------------------------------


class BatchExplorer(_StaticOutput):
    """One or more ledgers and a period -> their batches, totals per ledger and a plot, refreshed on change.

    Controls: ``ledgers`` (SelectMultiple), ``period_picker``, ``refresh_button``, ``export_button``;
    ``widget`` is the whole box. Outcome: ``frame`` (``client.batches(ids, period)``), ``totals``, ``error``,
    ``static_html``. ``refresh()`` and ``export_csv(path=None)`` do what the buttons do.
    """

    def __init__(self, client: Client, ledgers: str | Sequence[str] | None = None,
                 period: PeriodLike | None = None) -> None:
        import ipywidgets as w

        self._init_static()
        self.client = client
        self.error: BaseException | None = None
        self.frame: pd.DataFrame | None = None
        self.totals: pd.DataFrame | None = None
        self.exported: Path | None = None
        self._plot_uri: str | None = None
        self._status: tuple[str, str] = ("info", "")
        self.ledger_frame = client.ledgers()
        if ledgers is None:
            chosen = self.ledger_frame.loc[self.ledger_frame["has_model"].fillna(False).astype(bool), "id"].tolist()
        else:
            wanted = [ledgers] if isinstance(ledgers, str) else list(ledgers)
            chosen = [_resolve_ledger(self.ledger_frame, one) for one in wanted]
        style = {"description_width": "70px"}
        self.ledgers = w.SelectMultiple(options=[(_ledger_label(r), r.id) for r in self.ledger_frame.itertuples()],
                                        value=tuple(chosen), rows=min(6, max(2, len(self.ledger_frame))),
                                        description="Ledgers", style=style, layout=w.Layout(width="620px"))
        self.period_picker = PeriodPicker(period)
        self.refresh_button = w.Button(description="Refresh", icon="refresh")
        self.export_button = w.Button(description="Export CSV", icon="download",
                                      tooltip="Write batches_<period>.csv in the working directory")
        self.export_html = w.HTML()
        self.status = w.HTML()
        self.totals_html = w.HTML()
        self.table_html = w.HTML()
        self.plot = w.Image(format="png", layout=w.Layout(max_width="900px"))
        self.widget = w.VBox([
            w.HTML("<b>Batches</b>"), self.ledgers, self.period_picker.widget,
            w.HBox([self.refresh_button, self.export_button, self.export_html]), self.status, self.totals_html,
            self.plot, self.table_html,
        ])
        self.refresh_button.on_click(self._callback(self.refresh))
        self.export_button.on_click(self._callback(self.export_csv))
        self.ledgers.observe(self._callback(self.refresh), "value")
        self.period_picker.on_change(self._callback(self.refresh))
        self.refresh()

    def __repr__(self) -> str:
        return f"<BatchExplorer {self._status_text()}>"

    def refresh(self) -> pd.DataFrame:
        """Fetch the chosen ledgers' batches in the period, and redraw the totals, the plot and the table."""
        ids = list(self.ledgers.value)
        period = self.period_picker.period
        frame = self.client.batches(ids, period) if ids else self._empty()
        self.frame, self.error = frame, None
        self.totals = self._totals(frame, ids)
        names = self._names()
        self.totals_html.value = "<b>Totals</b>" + self._totals_table(self.totals)
        self.table_html.value = f"<b>Batches ({len(frame)})</b>" + self._batches_table(frame)
        png = plot_png(frame, period=period, title=f"Batches, {period.label}", labels=names)
        self.plot.value = png
        self._plot_uri = _png_data_uri(png)
        if not ids:
            self._set_status("warn", "Choose at least one ledger.")
        elif frame.empty:
            self._set_status("warn", f"No batches in {period} on the chosen ledger(s).")
        else:
            self._set_status("ok", f"{_plural(len(frame), 'batch')} in {period} on "
                                   f"{_plural(len(ids), 'ledger')}.")
        self._publish_static()
        return frame

    def export_csv(self, path: str | Path | None = None) -> Path:
        """Write the batches shown (with a ``ledger_name`` column) to CSV; default ``batches_<period>.csv``."""
        if self.frame is None:
            raise PreconditionError("Nothing to export yet: refresh() first.")
        period = self.period_picker.period
        target = Path(path) if path is not None else Path.cwd() / f"batches_{_file_label(period)}.csv"
        if target.is_dir():
            raise ValidationError(f"export_csv: {target} is a folder; give a file name such as "
                                  f"{target / f'batches_{_file_label(period)}.csv'}.", argument="path")
        if not target.parent.is_dir():
            raise ValidationError(f"export_csv: the folder {target.parent} does not exist; create it first "
                                  "(Path(...).mkdir(parents=True)) or choose another path.", argument="path")
        out = self.frame.copy()
        out["ledger_name"] = out["ledger_name"].fillna(out["ledger_id"].map(self._names()).astype("string"))
        spreadsheet_safe(out).to_csv(target, index=False)
        self.exported = target.resolve()
        self.export_html.value = f"Wrote <code>{_e(self.exported)}</code>"
        self._publish_static()
        return self.exported

    # -- helpers -----------------------------------------------------------------------------------------------

    def _callback(self, method: Callable[..., Any]) -> Callable[..., None]:
        def run(*_: Any) -> None:
            try:
                method()
            except Exception as exc:
                log.error("Batch explorer: %s failed: %s", method.__name__, exc, exc_info=exc)
                self.error = exc
                self._set_status("error", _error_text(exc))
                self._publish_static()

        run.__name__ = f"on_{method.__name__}"
        return run

    @staticmethod
    def _empty() -> pd.DataFrame:
        from .frames import BATCHES_SCHEMA, empty_frame

        return empty_frame(BATCHES_SCHEMA)

    def _names(self) -> dict[str, str]:
        return {str(r.id): str(r.name) for r in self.ledger_frame.itertuples() if isinstance(r.name, str)}

    def _totals(self, frame: pd.DataFrame, ids: list[str]) -> pd.DataFrame:
        """Per ledger: batches, complete, failed, and the total output of the complete ones, with its unit."""
        rows = []
        for lid in ids:
            row = next(r for r in self.ledger_frame.itertuples() if r.id == lid)
            mine = frame[frame["ledger_id"] == lid]
            complete = mine[mine["state"] == "complete"]
            units = complete["output_unit"].dropna().unique().tolist()
            rows.append({"ledger_id": lid, "ledger_name": row.name,
                         "unit": units[0] if len(units) == 1 else row.unit,
                         "batches": len(mine), "complete": len(complete),
                         "failed": int((mine["state"] == "failed").sum()),
                         "total": float(complete["output_value"].sum()) if len(complete) else 0.0})
        schema = {"ledger_id": "string", "ledger_name": "string", "unit": "string", "batches": "Int64",
                  "complete": "Int64", "failed": "Int64", "total": "Float64"}
        return pd.DataFrame(rows, columns=list(schema)).astype(schema)

    @staticmethod
    def _totals_table(totals: pd.DataFrame) -> str:
        rows = [(r.ledger_name, r.batches, r.complete, r.failed, _number(r.total), r.unit)
                for r in totals.itertuples()]
        return html_table(["Ledger", "Batches", "Complete", "Failed", "Total output", "Unit"], rows,
                          numeric=[1, 2, 3, 4])

    def _batches_table(self, frame: pd.DataFrame) -> str:
        return batches_table(frame, self._names())

    def _set_status(self, kind: str, text: str) -> None:
        self._status = (kind, text)
        self.status.value = _status_html(kind, text)

    def _status_text(self) -> str:
        return self._status[1]

    def _publish_static(self) -> None:
        period = self.period_picker.value
        chosen = [self._names().get(i, i) for i in self.ledgers.value]
        kind, text = self._status
        parts = [f"<h3>Batches: {_e(', '.join(chosen) or 'no ledger')}</h3>",
                 f'<p class="mnb-meta">Period: {_e(period) if period else "—"}</p>', _status_html(kind, text)]
        if self.totals is not None and len(self.totals):
            parts.append("<h4>Totals</h4>" + self._totals_table(self.totals))
        if self._plot_uri and self.frame is not None:
            parts.append(f'<img alt="Batches plot" src="{self._plot_uri}">')
        if self.frame is not None and len(self.frame):
            parts.append(f"<h4>Batches ({len(self.frame)})</h4>" + self._batches_table(self.frame))
        if self.exported is not None:
            parts.append(f'<p class="mnb-meta">Exported to <code>{_e(self.exported)}</code></p>')
        self._publish("".join(parts))


def _file_label(period: Period) -> str:
    """A period label fit for a file name: ``2025Q1``, ``2025-02``, ``2025-01-10_to_2025-02-20``."""
    return re.sub(r"[^0-9A-Za-z_-]+", "_", period.label.replace("/", "_to_")).strip("_")
