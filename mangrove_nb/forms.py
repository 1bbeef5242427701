"""Notebook forms: preview and generate batches, and explore them, with clicks instead of code.

    form = mnb.GenerationForm(client, "Net Carbon Removal", "2025Q1")
    form                                  # one output: the widgets live, a static copy when saved
    form.preview(); form.generate(); form.confirm(); form.wait()    # the same, from code

    mnb.BatchExplorer(client, ["Net Carbon Removal", "Biochar Produced"], "2024")

The widgets are thin shells over the client's plain functions (``Client.preview``, ``Client.generate``,
``Client.batches``...): every button has a method of the same job, and the outcome is kept on the form
(``result``, ``error``, ``task``). A button callback never swallows an exception: it shows it in the form,
keeps it in ``form.error`` and logs it; a method called from code raises it.

Waiting for a generation runs in a background thread started by Confirm, so the kernel stays responsive
and "Stop waiting" works; it polls the task on the client's poll schedule (``tasks.PollSchedule``). Only
one generation per ledger and period: the form's own state (under a lock) ignores a second click or
confirmation, and ``Client.generate`` refuses, process-wide, a generation that overlaps one still running or
one whose outcome is unknown (a re-run cell, a second form, another client of the same API); the server
refuses one that overlaps a running generation.

One output per form: displaying a form publishes a single display whose bundle holds the widget view
(``application/vnd.jupyter.widget-view+json``) and a static HTML copy of the outcome (``text/html``:
escaped tables, the plot as a PNG data URI, the status). A live front end shows the widgets only; a saved
notebook rendered without a kernel or widget state (nbconvert, nbviewer) shows the static copy. The display
is updated after each outcome. No widget holds the client or its token; every string that came from the
API is escaped (``html.escape``) before it reaches HTML.

ipywidgets and matplotlib are imported here only, when a form is built.
"""

from __future__ import annotations

import base64
import html
import io
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from .api import Client, Reconciliation
from .errors import (
    GenerationOutcomeUnknownError,
    MangroveError,
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
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
PLOT_SIZE = (10.0, 4.6)  # inches
PLOT_DPI = 100
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

# What a form shows in its static copy; scoped by class so it restyles nothing else in the notebook.
STATIC_CSS = """
.mnb-static{font-family:-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;font-size:13px;color:#1f2933;
max-width:1000px;border:1px solid #d9e2ec;border-radius:6px;padding:12px 16px;background:#fff;text-align:left}
.mnb-static h3{margin:0 0 4px;font-size:16px;font-weight:600}
.mnb-static .mnb-meta{color:#52606d;margin:0 0 8px}
.mnb-static h4{margin:12px 0 4px;font-size:13px;font-weight:600}
.mnb-static img{max-width:100%;margin-top:6px}
""".strip()

# Tables carry their style inline: the widgets' HTML has no stylesheet, and a notebook renderer's own table
# style (JupyterLab's right-aligns every cell, fixes the layout and centres the table) must not win.
_TABLE_STYLE = "border-collapse:collapse;table-layout:auto;margin:4px 0 10px;font-size:13px;border:none"
_CELL_STYLE = "padding:4px 12px;border:none;border-bottom:1px solid #e4e7eb;vertical-align:top;line-height:1.4"
_TH_STYLE = f"{_CELL_STYLE};background:#f5f7fa;font-weight:600;border-bottom:1px solid #cbd2d9"
_TEXT_STYLE = "text-align:left"
_NUM_STYLE = "text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap"
# Rows that need a second look (a manual-select input; a batch generated without an input).
_ROW_STYLES = {"mnb-manual": "background:#fff3c4", "mnb-skipped": "background:#fff3c4"}

# Inline, so a status looks the same in the widget (no stylesheet there) and in the static copy.
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
               row_classes: Sequence[str] | None = None, total: int | None = None,
               wrap: Iterable[int] = ()) -> str:
    """An HTML table whose every cell is escaped, padded, text left-aligned and ``numeric`` columns right-aligned.

    Cells do not wrap (ids and periods stay whole), except in the ``wrap`` columns (long notes). ``total`` is
    the number of rows the data has, when ``rows`` holds only the first of them.
    """
    right, wrapping = set(numeric), set(wrap)

    def align(i: int) -> str:
        return _NUM_STYLE if i in right else _TEXT_STYLE if i in wrapping else f"{_TEXT_STYLE};white-space:nowrap"

    head = "".join(f'<th style="{_TH_STYLE};{align(i)}">{_e(h)}</th>' for i, h in enumerate(header))
    body = []
    shown = 0
    for index, row in enumerate(rows):
        css = row_classes[index] if row_classes and row_classes[index] else ""
        attrs = f' class="{_e(css)}" style="{_ROW_STYLES.get(css, "")}"' if css else ""
        cells = "".join(f'<td class="{"num" if i in right else "text"}" style="{_CELL_STYLE};{align(i)}">{_e(c)}</td>'
                        for i, c in enumerate(row))
        body.append(f"<tr{attrs}>{cells}</tr>")
        shown += 1
    more = ""
    if total is not None and total > shown:
        more = (f'<tr><td colspan="{len(header)}" style="{_CELL_STYLE};{_TEXT_STYLE}">… and {total - shown} more '
                "rows (the whole frame is on the form)</td></tr>")
    return (f'<div style="overflow-x:auto"><table class="mnb-table" style="{_TABLE_STYLE}"><thead><tr>{head}</tr>'
            f"</thead><tbody>{''.join(body)}{more}</tbody></table></div>")


def batches_table(frame: pd.DataFrame, names: dict[str, str]) -> str:
    """A batches frame as an escaped HTML table (first ``MAX_TABLE_ROWS`` rows), ledgers by name.

    A ``note`` column (``with_skip_notes``) adds a Note column and highlights the rows that have one: batches
    generated without an input.
    """
    partitioned = bool(frame["feedstock"].notna().any())
    notes = frame["note"] if "note" in frame.columns else pd.Series(pd.NA, index=frame.index, dtype="string")
    noted = bool(notes.notna().any())
    header = ["Tracking id", "Ledger", "Period", *(["Feedstock"] if partitioned else []), "Output", "Unit", "State",
              *(["Note"] if noted else [])]
    rows, classes = [], []
    for r, note in zip(frame.head(MAX_TABLE_ROWS).itertuples(), notes.head(MAX_TABLE_ROWS), strict=True):
        ledger = r.ledger_name if isinstance(getattr(r, "ledger_name", None), str) else names.get(str(r.ledger_id),
                                                                                                   r.ledger_id)
        rows.append((r.tracking_id, ledger, _span(r.start_time, r.end_time), *([r.feedstock] if partitioned else []),
                     _number(r.output_value), r.output_unit, r.state, *([note if not pd.isna(note) else ""]
                                                                        if noted else [])))
        classes.append("mnb-skipped" if not pd.isna(note) else "")
    return html_table(header, rows, numeric=[header.index("Output")], total=len(frame), row_classes=classes,
                      wrap=[header.index("Note")] if noted else [])


def _status_html(kind: str, text: str) -> str:
    """A status line; ``text`` is plain text (redacted of secrets and escaped here, newlines kept)."""
    if not text:
        return ""
    text = redact(text)
    style = (f"{_STATUS_STYLES[kind]};padding:6px 10px;border-radius:4px;margin:6px 0;max-width:900px;"
             "text-align:left;line-height:1.45")
    return f'<div class="mnb-status mnb-{kind}" style="{style}">{_e(text).replace(chr(10), "<br>")}</div>'


def _error_text(exc: BaseException, *, drop: Callable[[str], bool] | None = None) -> str:
    """What the form shows for an exception (plain text; escaped when shown): the server's own words first.

    ``drop`` leaves out the notes it is true for (advice the form gives another way).
    """
    if isinstance(exc, TaskFailedError):
        said = exc.error_message or "(the server gave no error message)"
        text = (f"Task {exc.task_id} failed on the server. The server said:\n{said}\n\nFix the cause (often "
                "missing or invalid input data for the period), then preview and generate again.")
    else:
        text = f"{type(exc).__name__}: {exc}"
    notes = [str(n) for n in getattr(exc, "__notes__", None) or [] if drop is None or not drop(str(n))]
    return redact("\n".join([text, *notes]))


# Cells a spreadsheet would read as a formula (OWASP's CSV-injection list): they get a leading apostrophe.
# A formula character counts after leading whitespace too (spreadsheets skip it: " =1" is a formula).
_FORMULA_START = ("=", "+", "-", "@")
_CONTROL_START = ("\t", "\r")


def _formula_like(value: str) -> bool:
    """Whether a spreadsheet could read ``value`` as a formula: a tab or CR first, or a formula character
    first once leading whitespace is stripped."""
    return value.startswith(_CONTROL_START) or value.lstrip().startswith(_FORMULA_START)


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every text cell that starts like a formula prefixed with ``'`` (numbers are untouched).

    API text (tracking ids, names, error messages) is untrusted: ``=HYPERLINK(...)`` in a CSV opened in a
    spreadsheet would run as a formula, and so would `` =HYPERLINK(...)`` or ``"\t=1"`` (leading whitespace
    does not stop it). Negative numbers stay numbers: only text columns are changed.
    """
    out = frame.copy()
    for column in out.columns:
        series = out[column]
        if not (pd.api.types.is_string_dtype(series) or series.dtype == object):
            continue
        text = series.map(lambda v: "'" + v if isinstance(v, str) and _formula_like(v) else v)
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


def _resolve_ledger(client: Client, ledgers: pd.DataFrame, wanted: str) -> str:
    """A listed ledger's id from an id or a name (``Client.ledger_id``: exact, then case-insensitive)."""
    if (ledgers["id"] == wanted).any():
        return wanted
    found = client.ledger_id(wanted)
    if not (ledgers["id"] == found).any():
        raise PreconditionError(f"The ledger {wanted!r} is not among those client.ledgers() lists.")
    return found


def _upstream_names(text: Any) -> list[str]:
    """Ledger names in an ``output_of_ledgers`` cell (``"Biochar Produced (lgr_x), …"``)."""
    if not isinstance(text, str):
        return []
    return [part.rsplit(" (", 1)[0].strip() for part in text.split(", ") if part.strip()]


def _upstream_ids(text: Any) -> list[str]:
    """Ledger ids in an ``output_of_ledgers`` cell (``"Biochar Produced (lgr_x), …"``)."""
    if not isinstance(text, str):
        return []
    return [part.rsplit("(", 1)[1].rstrip(")").strip() for part in text.split(", ") if "(" in part]


def _years(moments: pd.Series) -> set[int]:
    return {int(y) for y in moments.dropna().dt.year.unique()}


class _DataYears:
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


# --- batches generated without an input --------------------------------------------------------------------


def skip_note(inputs: str, emissions: bool) -> str:
    """The flag of a batch generated without ``inputs``: what that means for its figure."""
    return (f"generated without {inputs}: its emissions are not counted" if emissions
            else f"generated without {inputs}: counted as zero")


def with_skip_notes(client: Client, frame: pd.DataFrame, *, details: pd.DataFrame | None = None,
                    period: PeriodLike | None = None) -> pd.DataFrame:
    """``frame`` with ``skipped_inputs``, ``skipped_input_ids`` and ``note`` columns (NA when nothing was skipped).

    The skipped inputs come from ``client.batches(..., details=True)`` (``details`` when the caller already
    has them, else read for the frame's ledgers and ``period``). A batch whose LCA breakdown shows a skipped
    input as an emission counted as zero gets "its emissions are not counted" (``client.calculations``).
    """
    out = frame.copy()
    if details is None:
        ledgers = sorted({str(i) for i in frame["ledger_id"].dropna()})
        details = client.batches(ledgers, period, details=True) if ledgers else None
    for column in ("skipped_inputs", "skipped_input_ids"):
        if details is not None and column in details.columns:
            out[column] = out["id"].map(dict(zip(details["id"], details[column], strict=True))).astype("string")
        elif column not in out.columns:
            out[column] = pd.Series(pd.NA, index=out.index, dtype="string")
    out["note"] = pd.Series(pd.NA, index=out.index, dtype="string")
    flagged = out[out["skipped_inputs"].notna()]
    if flagged.empty:
        return out
    try:
        calcs = client.calculations(flagged["id"].tolist())
        emitting = set(calcs.loc[calcs["note"].notna() & (calcs["lca_role"] == "emission"), "batch_id"].astype(str))
    except MangroveError as exc:  # the flag stays; only its wording is less specific
        log.warning("Could not read the LCA breakdown of batches generated without an input: %s", exc)
        emitting = set()
    for index, row in flagged.iterrows():
        out.loc[index, "note"] = skip_note(str(row["skipped_inputs"]), str(row["id"]) in emitting)
    return out


# --- a failure on a missing input ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MissingInput:
    """A generation failed because one month lacks a reading of an (automatic) input.

    ``period`` is what the failed generation was asked for; ``month`` the one month that lacks the reading;
    ``type_ids`` and ``names`` the inputs to leave out in that month (several when, that month generated without
    one, it then failed on another).
    """

    ledger_id: str
    type_ids: tuple[int, ...]
    names: tuple[str, ...]
    month: Period
    period: Period

    @property
    def name(self) -> str:
        """The inputs, for a sentence: ``Electricity Consumption`` or ``A and B``."""
        return " and ".join(self.names)

    @property
    def quoted(self) -> str:
        return " and ".join(f"'{n}'" for n in self.names)

    def also(self, other: MissingInput) -> MissingInput:
        """This month without ``other``'s inputs as well; the period stays this one's (its rest is offered next)."""
        ids = dict.fromkeys([*self.type_ids, *other.type_ids])
        names = dict.fromkeys([*self.names, *other.names])
        return MissingInput(self.ledger_id, tuple(ids), tuple(names), self.month, self.period)

    @property
    def rest(self) -> Period | None:
        """What is left to generate after the month: the failed period (the preview counts only what is missing)."""
        return self.period if self.period != self.month else None


def find_missing_input(message: str | None, ledger_id: str, period: Period,
                       required: pd.DataFrame | None) -> MissingInput | None:
    """The input and month a failure message names, when it names exactly one of each inside ``period``.

    The input is matched by its name or slug among the ledger's automatic required inputs (manual-select
    inputs cannot be skipped); the month is a ``YYYY-MM`` the period covers whole. Anything less certain is
    None: the form then offers nothing but the server's message.
    """
    if not message or required is None or required.empty:
        return None
    months = {m.label: m for m in period.months() if m.kind == "month"}
    named_months = [months[label] for label in dict.fromkeys(re.findall(r"\b(\d{4}-\d{2})\b", message))
                    if label in months]
    if len(named_months) != 1:
        return None
    automatic = required[~required["is_manual_select"].fillna(False).astype(bool)]

    def named(quoted: bool) -> list[Any]:
        found = []
        for row in automatic.itertuples():
            texts = [t for t in (row.name, row.slug) if isinstance(t, str) and t]
            if quoted:
                hit = any(f"'{t}'" in message or f'"{t}"' in message or f"({t})" in message for t in texts)
            else:
                hit = any(re.search(rf"(?<![\w-]){re.escape(t)}(?![\w-])", message) for t in texts)
            if hit:
                found.append(row)
        return found

    rows = named(quoted=True) or named(quoted=False)
    if len(rows) != 1 or pd.isna(rows[0].id):
        return None
    return MissingInput(ledger_id, (int(rows[0].id),), (str(rows[0].name),), named_months[0], period)


# --- one output per form: the widget view and its static copy ----------------------------------------------


def _ipython_display() -> Callable[..., Any] | None:
    """IPython's ``display`` when a shell runs (a kernel, a terminal IPython), else None."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return None
    return display if get_ipython() is not None else None


class _StaticOutput:
    """One display per form: the widget view and a static HTML copy of the latest outcome, in one bundle.

    A live front end renders the widget view (its renderer ranks above HTML); a renderer without the
    widget's state (nbconvert, nbviewer, a notebook saved without widget state) renders the ``text/html``
    copy. Each outcome updates every display of the form, so the saved notebook holds the last one.
    """

    widget: Any
    static_html: str

    def _init_static(self) -> None:
        self._handles: list[Any] = []
        self.static_html = ""
        self._published: str | None = None
        self._publish_lock = threading.Lock()

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

    def _status_text(self) -> str:
        raise NotImplementedError

    def _publish(self, body: str) -> None:
        """Keep the static HTML and update the form's displays when it changed (the same bundle, new copy)."""
        with self._publish_lock:
            self.static_html = f'<div class="mnb-static"><style>{STATIC_CSS}</style>{body}</div>'
            if not self._handles or self.static_html == self._published:
                return
            self._published = self.static_html
            bundle = self._mimebundle()
            for handle in self._handles:
                handle.update(bundle, raw=True)

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


# --- the period picker -------------------------------------------------------------------------------------


class PeriodPicker:
    """Quarter, month, year or a custom range of UTC dates, as a ``Period``.

    ``picker.period`` is the chosen ``Period`` (or raises ``PeriodError`` saying what is wrong, which the
    picker also shows); ``picker.value`` is the same, or None while the choice is invalid, and can be set
    from code with anything ``parse_period`` reads (``picker.value = "2025Q1"``). A custom range's dates are
    typed as ISO dates (``YYYY-MM-DD``), whatever the browser's locale. The years offered are ``years`` (the
    forms pass the years the ledger has data in) plus the chosen period's; ``set_years()`` changes them.
    """

    MODES = ("Quarter", "Month", "Year", "Custom range")

    def __init__(self, value: PeriodLike | None = None, *, description: str = "Period",
                 years: Iterable[int] | None = None) -> None:
        import ipywidgets as w

        start = parse_period(value) if value is not None else default_period()
        style = {"description_width": "70px"}
        self.mode = w.Dropdown(options=self.MODES, value="Quarter", description=description, style=style,
                               layout=w.Layout(width="200px"))
        self.year = w.Dropdown(options=[(str(start.start.year), start.start.year)], value=start.start.year,
                               layout=w.Layout(width="90px"))
        self.quarter = w.Dropdown(options=[(f"Q{q}", q) for q in range(1, 5)], value=1, layout=w.Layout(width="70px"))
        self.month = w.Dropdown(options=[(f"{m:02d} {MONTHS[m - 1]}", m) for m in range(1, 13)], value=1,
                                layout=w.Layout(width="100px"))
        self.start = w.Text(description="From", placeholder="YYYY-MM-DD", continuous_update=False,
                            style={"description_width": "40px"}, layout=w.Layout(width="160px"))
        self.end = w.Text(description="To (incl.)", placeholder="YYYY-MM-DD", continuous_update=False,
                          style={"description_width": "60px"}, layout=w.Layout(width="180px"))
        self.error_html = w.HTML("")
        self.span_html = w.HTML("")
        self.widget = w.VBox([w.HBox([self.mode, self.year, self.quarter, self.month, self.start, self.end,
                                      self.span_html]), self.error_html])
        self._callbacks: list[Callable[[PeriodPicker], None]] = []
        self._quiet = False
        self._last: Period = start
        self.set_years(years if years is not None else [datetime.now(UTC).year])
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
        first, last = self._date(self.start.value, "From"), self._date(self.end.value, "To")
        if first is None or last is None:
            raise PeriodError("Choose both dates of the custom range (From and To, as YYYY-MM-DD, UTC; To is "
                              "included).")
        return parse_period((first, last))

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
            self._ensure_years(period)
            self.year.value = period.start.year
            if kind == "quarter":
                self.quarter.value = (period.start.month - 1) // 3 + 1
            elif kind == "month":
                self.month.value = period.start.month
            self.start.value, self.end.value = f"{period.start:%Y-%m-%d}", f"{period.end:%Y-%m-%d}"
            self.mode.value = {"quarter": "Quarter", "month": "Month", "year": "Year"}.get(kind, "Custom range")
        finally:
            self._quiet = False
        self._changed()

    @property
    def years(self) -> list[int]:
        """The years the year list offers."""
        return [value for _, value in self.year.options]

    def set_years(self, years: Iterable[int]) -> None:
        """Offer ``years`` (and the chosen period's years, which stay chosen); the choice does not change."""
        wanted = {int(y) for y in years}
        chosen = self.value
        if chosen is not None:
            wanted |= {chosen.start.year, chosen.end.year}
        wanted.add(int(self.year.value))
        ordered = sorted(wanted)
        if ordered == self.years:
            return
        keep = self.year.value
        self._quiet = True
        try:
            with self.year.hold_sync():  # one message: the front end never sees an index outside the options
                self.year.options = [(str(y), y) for y in ordered]
                self.year.value = keep
        finally:
            self._quiet = False

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

    @staticmethod
    def _date(text: Any, which: str) -> date | None:
        text = (text or "").strip() if isinstance(text, str) else text
        if not text:
            return None
        if isinstance(text, date):
            return text
        try:
            if ISO_DATE.fullmatch(text):
                return date.fromisoformat(text)
        except ValueError:
            pass
        raise PeriodError(f"{which}: {text!r} is not a date written YYYY-MM-DD (e.g. 2025-01-31).")

    def _ensure_years(self, period: Period) -> None:
        missing = {period.start.year, period.end.year} - set(self.years)
        if missing:
            ordered = sorted({*self.years, *missing})
            with self.year.hold_sync():
                keep = self.year.value
                self.year.options = [(str(y), y) for y in ordered]
                self.year.value = keep

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
            self.start.value, self.end.value = f"{self._last.start:%Y-%m-%d}", f"{self._last.end:%Y-%m-%d}"
        finally:
            self._quiet = False


# --- the generation form -----------------------------------------------------------------------------------

IDLE, PREVIEWED, CONFIRMING, STARTING, RUNNING = "idle", "previewed", "confirming", "starting", "running"
DONE, FAILED, DETACHED = "done", "failed", "detached"
# The trigger may or may not have started a generation: the form says so until reconcile() settles it.
OUTCOME_UNKNOWN = "outcome unknown"
BUSY = (STARTING, RUNNING)


class GenerationForm(_StaticOutput):
    """Preview and generate a period's batches on a ledger, with confirmation, progress and the outcome.

    Controls (ipywidgets): ``ledger``, ``period_picker`` (a ``PeriodPicker``), ``inputs_html``,
    ``candidates`` (data points for manual-select inputs), ``preview_button``, ``generate_button``,
    ``confirm_button``, ``cancel_button``, ``stop_button``, ``reconcile_button``, ``skip_button`` and
    ``rest_button`` (after a failure on a missing input), ``progress`` (0–100), ``progress_label``,
    ``status``; ``widget`` is the whole box. Methods do what the buttons do: ``preview()``, ``generate()``
    (asks for confirmation), ``confirm()`` (starts), ``cancel()``, ``wait()``, ``stop_waiting()``,
    ``reconcile()``, ``preview_month_without_input()``, ``preview_rest_of_period()``. Outcome:
    ``preview_frame``, ``task``, ``result`` (the new batches, with a ``note`` on those generated without an
    input), ``error``, ``state``, ``offer``, ``skip``, ``rest``, ``static_html``.

    Changing the ledger or the period starts afresh: the preview, result, error, progress and offers of the
    previous choice are cleared (an unknown outcome stays remembered for its own ledger and period).
    """

    def __init__(self, client: Client, ledger: str | None = None, period: PeriodLike | None = None, *,
                 project_id: int | str | None = None) -> None:
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
        self.reconciliation: Reconciliation | None = None
        #: After a failure on one month's missing input: generating that month without it is offered.
        self.offer: MissingInput | None = None
        #: The input the next generation leaves out, in ``skip.month`` only (set by preview_month_without_input()).
        self.skip: MissingInput | None = None
        #: After the month without the input: the period whose rest is offered next, without skipping.
        self.rest: Period | None = None
        self._lock = threading.RLock()
        self._preview_key: tuple[Any, ...] | None = None
        self._pending_key: tuple[Any, ...] | None = None
        self._running: tuple[str, Period, tuple[str, ...], MissingInput | None] | None = None
        self._shown: tuple[Any, ...] | None = None
        self._reverting = False
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._run_error: BaseException | None = None
        self._plot_uri: str | None = None
        self._status: tuple[str, str] = ("info", "")
        # Requests of this form whose outcome is unknown: (ledger id, period, error), until reconciled.
        self._unknowns: list[tuple[str, Period, GenerationOutcomeUnknownError]] = []
        self._unknown: tuple[str, Period, GenerationOutcomeUnknownError] | None = None

        self.ledgers = client.ledgers()
        chosen = _resolve_ledger(client, self.ledgers, ledger) if ledger is not None else self._first_with_model()
        self._years = _DataYears(client, project_id)
        style = {"description_width": "70px"}
        self.ledger = w.Dropdown(options=[(_ledger_label(r), r.id) for r in self.ledgers.itertuples()],
                                 value=chosen, description="Ledger", style=style, layout=w.Layout(width="620px"))
        self.period_picker = PeriodPicker(period, years=self._years.of([chosen]))
        self.model_html = w.HTML()
        self.inputs_html = w.HTML()
        self.candidates = w.SelectMultiple(options=[], rows=6, description="Data points", style=style,
                                           layout=w.Layout(width="620px"))
        self.candidates_html = w.HTML()
        self.candidates_box = w.VBox([self.candidates_html, self.candidates])
        self.preview_button = w.Button(description="Preview", icon="search", tooltip="Count what would be created")
        self.generate_button = w.Button(description="Generate", icon="play", button_style="primary",
                                        disabled=True, tooltip="Enabled after a preview of this selection")
        self.skip_html = w.HTML()
        self.preview_html = w.HTML()
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
        self.offer_html = w.HTML()
        self.skip_button = w.Button(button_style="warning", icon="forward", layout=w.Layout(width="auto"),
                                    tooltip="Preview that month alone, leaving the missing input out (counted as "
                                            "zero); Generate and Confirm follow as usual")
        self.rest_button = w.Button(button_style="info", icon="forward", layout=w.Layout(width="auto"),
                                    tooltip="Preview the rest of the period, without skipping anything")
        self.offer_box = w.VBox([self.offer_html, w.HBox([self.skip_button, self.rest_button])])
        self.status = w.HTML()
        self.result_html = w.HTML()
        self.plot = w.Image(format="png", layout=w.Layout(max_width="900px"))
        self.widget = w.VBox([
            w.HTML("<b>Generate batches</b>"), self.ledger, self.period_picker.widget, self.model_html,
            self.inputs_html, self.candidates_box, w.HBox([self.preview_button, self.generate_button]),
            self.skip_html, self.preview_html, self.confirm_box, self.progress_box, self.status,
            self.reconcile_button, self.offer_box, self.result_html, self.plot,
        ])

        self.preview_button.on_click(self._callback(self.preview))
        self.generate_button.on_click(self._callback(self.generate))
        self.confirm_button.on_click(self._callback(self.confirm))
        self.cancel_button.on_click(self._callback(self.cancel))
        self.stop_button.on_click(self._callback(self.stop_waiting))
        self.reconcile_button.on_click(self._callback(self.reconcile))
        self.skip_button.on_click(self._callback(self.preview_month_without_input))
        self.rest_button.on_click(self._callback(self.preview_rest_of_period))
        self.ledger.observe(self._callback(self._ledger_changed), "value")
        self.period_picker.on_change(self._callback(self._period_changed))
        self.candidates.observe(self._callback(self._candidates_changed), "value")

        self._load_ledger()
        self._selection_changed()
        self._publish_static()

    def __repr__(self) -> str:
        return f"<GenerationForm {self._status_text()}>"

    # -- the buttons' methods -------------------------------------------------------------------------------

    def preview(self) -> pd.DataFrame:
        """Count the batches generating the chosen ledger and period would create (one row per ledger)."""
        with self._lock:
            if self.state in BUSY:
                raise PreconditionError(self._busy_message())
            if self.state == OUTCOME_UNKNOWN and self._unknown is not None:
                raise PreconditionError(
                    f"The last generation request for {self._unknown_label(self._unknown)} has an unknown outcome: "
                    "click Reconcile (form.reconcile()) to see what the server made before previewing again.")
        ledger_id, period, points = self._selection()
        self._check_can_generate(ledger_id, points)
        skip = self._active_skip(ledger_id, period)
        frame = self.client.preview(ledger_id, period, data_point_ids=list(points) or None)
        total = int(frame["count"].sum())
        reason = self._nothing_to_generate(ledger_id, period) if total == 0 else ""
        with self._lock:
            self.preview_frame, self._preview_key = frame, self._key(ledger_id, period, points, skip)
            self.state, self.error, self.confirmation, self.offer = PREVIEWED, None, None, None
            rows = [(r.ledger_name, r.count) for r in frame.itertuples()]
            self.preview_html.value = "<b>Preview</b>" + html_table(["Ledger", "Batches to create"], rows,
                                                                     numeric=[1])
            if total == 0:
                self._set_status("warn", reason)
            else:
                without = f" without {skip.quoted} (counted as zero)" if skip else ""
                self._set_status("info", f"Preview of {period}{without}: {_plural(total, 'batch')} would be "
                                         "created. Click Generate to create them.")
            self._refresh_controls()
            self._publish_static()
        return frame

    def generate(self) -> str | None:
        """Ask for confirmation of what the last preview counted; returns the question (Confirm starts)."""
        with self._lock:
            if self.state == CONFIRMING:
                return self.confirmation  # a second click: the question is already asked
            if self.state in BUSY:
                self._set_status("info", self._busy_message())
                return None
            key = self._current_key()
            if self._preview_key is None or key != self._preview_key:
                raise PreconditionError("Preview this ledger, period and selection first: Generate creates what "
                                        "a preview of the same selection counted.")
            assert self.preview_frame is not None
            assert key is not None
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
            if self.state in BUSY:
                return self.task
            if self.state != CONFIRMING or self._pending_key is None:
                raise PreconditionError("Nothing to confirm: Preview, then Generate, then Confirm.")
            key = self._pending_key
            if key != self._current_key():
                self.state = PREVIEWED
                self._refresh_controls()
                raise PreconditionError("The selection changed since the preview; preview it again.")
            ledger_id, _, _, points, _ = key
            period = self.period_picker.period
            skip = self._active_skip(ledger_id, period)
            self.state, self.error, self._run_error, self.result = STARTING, None, None, None
            self._running = (ledger_id, period, points, skip)
            self._plot_uri = None
            self.result_html.value = ""
            self.plot.value = b""
            self._refresh_controls()
        try:
            # The client checks, process-wide and under one lock, that no generation of this API overlapping
            # this ledger and period is running or has an unknown outcome, then sends the trigger once.
            task = self.client.generate(ledger_id, period, data_point_ids=list(points) or None,
                                        skipped_data_point_type_ids=list(skip.type_ids) if skip else None)
        except GenerationOutcomeUnknownError as exc:
            self._outcome_unknown(exc, ledger_id, period)
            raise
        except BaseException:
            with self._lock:
                self.state, self._preview_key, self._pending_key, self._running = IDLE, None, None, None
                self._refresh_controls()
            raise
        with self._lock:
            self.task, self.state = task, RUNNING
            self._stop.clear()
            self._thread = threading.Thread(target=self._follow, args=(task, period, skip),
                                            name=f"mangrove-form-task-{task.id}", daemon=True)
            self.progress.value = 0
            self.progress_label.value = "Waiting for the server to start"
            self._set_status("info", f"Task {task.id} started: {self.confirmation or ''}".strip())
            self._refresh_controls()
            self._publish_static()
        self._thread.start()
        return task

    def reconcile(self) -> Reconciliation:
        """After an unknown outcome: what the server has for that ledger and period, shown in the form.

        When nothing is left to generate the unknown outcome is settled and the form shows the batches;
        otherwise it keeps saying the outcome is unknown, with the advice of ``Reconciliation.advice()``.
        """
        with self._lock:
            if self.state != OUTCOME_UNKNOWN or self._unknown is None:
                raise PreconditionError("There is nothing to reconcile: no generation request of this form has an "
                                        "unknown outcome.")
            unknown = self._unknown
        ledger_id, period, _ = unknown
        found = self.client.reconcile(ledger_id, period)
        names = self._names()
        rows = [(r.ledger_name, r.count) for r in found.still_missing.itertuples()]
        with self._lock:
            self.reconciliation = found
            self.result_html.value = ("<b>On the server</b>" + self._batches_table(found.batches)
                                      + "<b>Still to generate</b>"
                                      + html_table(["Ledger", "Batches"], rows, numeric=[1]))
            label = found.period.label
            if found.complete:
                self._unknowns = [u for u in self._unknowns if u is not unknown]
                self.state, self._unknown, self.result, self.error = DONE, None, found.batches, None
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

    def preview_month_without_input(self) -> pd.DataFrame:
        """After a failure on one month's missing input: preview that month alone, leaving that input out.

        The period becomes that month and the next generation carries ``skipped_data_point_type_ids`` for it
        (the input counts as zero in that month only); Generate and Confirm follow as usual. Afterwards
        ``preview_rest_of_period()`` offers the rest of the failed period, without skipping.
        """
        with self._lock:
            offer = self.offer
            if offer is None or self.state != FAILED:
                raise PreconditionError("Nothing to offer: this appears after a generation fails because one month "
                                        "lacks a reading of one input (the server's message names both).")
            if offer.ledger_id != self.ledger.value:
                raise PreconditionError("The ledger changed since the failure; preview again.")
        self._choose(offer.month)
        with self._lock:
            self.skip, self.rest = offer, offer.rest
            self._show_skip()
        return self.preview()

    def preview_rest_of_period(self) -> pd.DataFrame:
        """After the month generated without its missing input: preview the rest of the period, skipping nothing."""
        with self._lock:
            rest = self.rest
            if rest is None or self.state != DONE:
                raise PreconditionError("Nothing to offer: the rest of a period is offered after its month with a "
                                        "missing input was generated without it.")
        self._choose(rest)
        return self.preview()

    # -- following the task (background thread) ------------------------------------------------------------

    def _follow(self, task: Task, period: Period, skip: MissingInput | None) -> None:
        try:
            frame = self._poll(task)
        except BaseException as exc:  # shown, kept and logged: never lost in a thread
            hint = f"Task {task.id} may still be running on the server; re-attach with client.task({task.id!r}).wait()."
            if not (task.status is not None and task.status.done) and hint not in getattr(exc, "__notes__", ()):
                exc.add_note(hint)
            self._failed(task, exc)
            return
        if frame is None:
            self._detached(task)
            return
        try:
            self._completed(task, frame, period, skip)
        except BaseException as exc:
            self._failed(task, exc)

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

    def _completed(self, task: Task, frame: pd.DataFrame, period: Period, skip: MissingInput | None) -> None:
        # The slow parts first, outside the lock: which batches were made without an input, and the plot.
        warning = ""
        try:
            frame = with_skip_notes(self.client, frame, period=period)
        except MangroveError as exc:
            warning = f"\nCould not read the new batches' details ({type(exc).__name__}), so they are not checked " \
                      "for inputs left out."
            frame = frame.copy()
            if skip is not None:  # what this form asked for is known all the same
                frame["note"] = pd.Series(skip_note(", ".join(skip.names), False), index=frame.index,
                                          dtype="string")
        names = self._names()
        frame["ledger_name"] = frame["ledger_name"].fillna(frame["ledger_id"].map(names)).astype("string")
        png = plot_png(frame, period=period, title=f"New batches, {period.label}", labels=names)
        with self._lock:
            if self.task is not task:
                return  # the form moved on (a new choice); this outcome is not its to show
            made = len(frame)
            self.result, self.state, self._preview_key, self._pending_key = frame, DONE, None, None
            self._running, self.skip = None, None
            self.rest = skip.rest if skip is not None else None
            self.progress.value = 100
            flagged = int(frame["note"].notna().sum()) if "note" in frame.columns else 0
            self.result_html.value = f"<b>New batches ({made})</b>" + self._batches_table(frame)
            text = f"Task {task.id} complete: created {_plural(made, 'batch')} for {period.label}."
            if flagged:
                text += (f"\n{_plural(flagged, 'batch')} generated without an input (counted as zero): see the "
                         "Note column.")
            if self.rest is not None:
                text += (f"\nNext: the rest of {self.rest.label}, without skipping anything (Preview the rest of "
                         f"{self.rest.label}).")
            self._set_status("warn" if flagged or warning else "ok", text + warning)
            if not self._manual_inputs().empty:  # the data points just used may have no balance left
                try:
                    self._load_candidates()
                except MangroveError as exc:
                    log.warning("Could not list the candidates again after the generation: %s", exc)
            self.plot.value = png
            self._plot_uri = _png_data_uri(png)
            self._refresh_controls()
            self._publish_static()

    def _outcome_unknown(self, exc: GenerationOutcomeUnknownError, ledger_id: str, period: Period) -> None:
        with self._lock:
            self.error = self._run_error = exc
            self.state, self._preview_key, self._pending_key, self._running = OUTCOME_UNKNOWN, None, None, None
            self._unknown = (ledger_id, period, exc)
            self._unknowns.append(self._unknown)
            self._show_unknown()
            self._refresh_controls()
            self._publish_static()

    def _failed(self, task: Task, exc: BaseException) -> None:
        log.error("Generation form: %s", exc, exc_info=exc)
        with self._lock:
            if self.task is not task:
                return
            running = self._running
            self._run_error, self.error = exc, exc
            self.state, self._preview_key, self._pending_key, self._running = FAILED, None, None, None
            self.skip = None
            self.offer = None
            if isinstance(exc, TaskFailedError) and running is not None:
                ledger_id, period, _points, skipped = running
                offer = find_missing_input(exc.error_message, ledger_id, period, self.required)
                if offer is not None and skipped is not None:
                    # The month generated without an input failed on another one: that month without both
                    # (never what it already left out again, and never another month).
                    new = set(offer.type_ids) - set(skipped.type_ids)
                    offer = skipped.also(offer) if new and offer.month == skipped.month else None
                self.offer = offer
            # The client's advice for a missing input (the calls to make) is the offer's, in the form.
            self._set_status("error", _error_text(
                exc, drop=(lambda note: "skipped_data_point_type_ids=" in note) if self.offer else None))
            self._show_offer()
            self._refresh_controls()
            self._publish_static()

    def _detached(self, task: Task) -> None:
        with self._lock:
            if self.task is not task:
                return
            self.state, self._preview_key, self._pending_key, self._running = DETACHED, None, None, None
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
                with self._lock:
                    self.error = exc
                    if self.state != OUTCOME_UNKNOWN or not isinstance(exc, GenerationOutcomeUnknownError):
                        self._set_status("error", _error_text(exc))  # (an unknown outcome has its own status)
                    self._publish_static()

        run.__name__ = f"on_{method.__name__.strip('_')}"
        return run

    def _ledger_changed(self) -> None:
        if self._revert_if_busy():
            return
        self._load_ledger()
        self._selection_changed()

    def _period_changed(self) -> None:
        if self._revert_if_busy():
            return
        self._load_candidates()
        self._selection_changed()

    def _candidates_changed(self) -> None:
        if self._revert_if_busy():
            return
        self._selection_changed()

    def _revert_if_busy(self) -> bool:
        """While a generation starts or runs, its ledger, period and data points stay chosen (a change from code
        is undone), so its outcome is shown under the ledger and period it belongs to."""
        with self._lock:
            if self._reverting:
                return True
            if self.state not in BUSY or self._running is None:
                return False
            ledger_id, period, points, _ = self._running
            self._reverting = True
            try:
                if self.ledger.value != ledger_id:
                    self.ledger.value = ledger_id
                if self.period_picker.value != period:
                    self.period_picker.value = period
                if tuple(sorted(self.candidates.value)) != points:
                    self.candidates.value = points
            finally:
                self._reverting = False
            task = self.task.id if self.task is not None else "(starting)"
            self._set_status("warn", f"Task {task} is generating {self._names().get(ledger_id, ledger_id)} "
                                     f"{period.label}: the ledger, period and data points stay as they are until "
                                     "it ends (or Stop waiting).")
            return True

    def _selection_changed(self) -> None:
        """A new ledger or period starts afresh (the previous outcome is cleared); new data points void the
        preview and a pending confirmation."""
        with self._lock:
            key = self._current_key()
            shown = key[:3] if key is not None else None
            cleared = False
            if shown != self._shown or key is None:
                self._shown = shown
                cleared = self._has_outcome()
                self._clear_outcome()
                self._unknown = self._unknown_for(key)
                if self._unknown is not None:
                    self.state = OUTCOME_UNKNOWN
                    self._show_unknown()
                elif key is None:
                    self._set_status("warn", "Choose a valid period (see the message under the period).")
                else:
                    name = self._names().get(key[0], key[0])
                    self._set_status("info", f"{name}, {self.period_picker.period.label}: Preview to count what "
                                             "would be created, then Generate.")
            elif self._preview_key is not None and key != self._preview_key:
                self._preview_key = None
                if self.state == CONFIRMING:
                    self.state, self._pending_key = PREVIEWED, None
                self._set_status("info", "The selection changed: preview it before generating.")
            self._refresh_controls()
            # The saved copy follows outcomes, and the clearing of one: a live front end redraws the widget view
            # on every update of the display, so a mere change of choice does not update it.
            if cleared or self.state == OUTCOME_UNKNOWN:
                self._publish_static()

    def _has_outcome(self) -> bool:
        """Whether the form shows something of the current choice: a preview, result, error, task or offer."""
        return (self.state != IDLE or self.preview_frame is not None or self.result is not None
                or self.error is not None or self.task is not None or self.offer is not None
                or self.reconciliation is not None)

    def _clear_outcome(self) -> None:
        """Forget the previous choice's preview, result, error, progress and offers (under the lock)."""
        self.state = IDLE
        self.preview_frame = self._preview_key = self._pending_key = self.confirmation = None
        self.result = self.error = self._run_error = self.task = self._thread = self.reconciliation = None
        self.offer = self.skip = self.rest = None
        self._plot_uri = None
        self.preview_html.value = self.confirm_html.value = self.result_html.value = ""
        self.offer_html.value = self.skip_html.value = ""
        self.plot.value = b""
        self.progress.value = 0
        self.progress_label.value = ""

    def _choose(self, period: Period) -> None:
        """Set the period from one of the form's own offers (which clears the previous outcome)."""
        if self.period_picker.value == period:
            return
        self.period_picker.value = period

    def _load_ledger(self) -> None:
        """Model, required inputs, candidates and the years with data of the chosen ledger."""
        row = self._row(self.ledger.value)
        if not _has_model(row):
            self.required = None
            self.model_html.value = _status_html("warn", self._no_model_message(row))
            self.inputs_html.value = ""
        else:
            self.model_html.value = f"Model: <b>{_e(row.model_name)}</b>"
            self.required = self.client.required_inputs(row.id)
            self.inputs_html.value = self._inputs_table(self.required)
        # A manual-select input's data are the upstream ledgers' batches: their years count too.
        upstream = [i for text in self._manual_inputs()["output_of_ledgers"] for i in _upstream_ids(text)]
        self.period_picker.set_years(self._years.of([row.id, *upstream]))
        self._load_candidates()

    def _load_candidates(self) -> None:
        manual = self._manual_inputs()
        if manual.empty:
            self.candidate_frame = None
            self._set_candidates([], ())
            self.candidates_box.layout.display = "none"
            return
        self.candidates_box.layout.display = ""
        period = self.period_picker.value
        names = ", ".join(manual["name"].astype(str))
        ledger_id = self.ledger.value
        if period is None:
            self.candidate_frame = None
            self._set_candidates([], ())
            self.candidates_html.value = (f"Choose a valid period to list the data points for {_e(names)} "
                                          f"(client.candidates({_e(repr(ledger_id))}, period)).")
            return
        frame = self.client.candidates(ledger_id, period)
        self.candidate_frame = frame
        usable = set(frame["output_data_point_id"].dropna())
        kept = tuple(value for value in self.candidates.value if value in usable)
        self._set_candidates([(self._candidate_label(r), r.output_data_point_id) for r in frame.itertuples()], kept)
        call = f"client.candidates({ledger_id!r}, {period.label!r})"
        if frame.empty:
            upstream = [n for text in manual["output_of_ledgers"] for n in _upstream_names(text)]
            upstream = upstream or ["the upstream ledger"]
            first = " or ".join(dict.fromkeys(upstream))
            self.candidates_html.value = _status_html(
                "warn", f"No batch of {first} with balance left in {period.label} to use for {names}: generate "
                        f"{first} for {period.label} first (a GenerationForm on {first!r}), or choose another "
                        f"period. {call} lists what can be used.")
            return
        self.candidates_html.value = (
            f'<span style="background:#fff3c4;padding:2px 6px">Input <b>{_e(names)}</b> is chosen by hand: pick the '
            f"data points to use ({len(frame)} complete upstream batch(es) with balance left in {_e(period.label)}, "
            f"as listed by <code>{_e(call)}</code>; ctrl/shift-click for several).</span>")

    def _set_candidates(self, options: list[tuple[str, Any]], value: tuple[Any, ...]) -> None:
        """New options and selection in one message, so the browser never selects a row that no longer exists."""
        with self.candidates.hold_sync():
            if self.candidates.value:
                self.candidates.value = ()
            self.candidates.options = options
            self.candidates.value = value

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
            return pd.DataFrame({"name": pd.Series([], dtype="string"),
                                 "output_of_ledgers": pd.Series([], dtype="string")})
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
            label = self.period_picker.value.label if self.period_picker.value else "period"
            raise PreconditionError(
                f"'{row.name}' has manual-select input(s) {', '.join(manual['name'].astype(str))}: choose at least "
                "one data point in the list (the candidates are the complete upstream batches of the period with "
                f"balance left: client.candidates({ledger_id!r}, {label!r})).")

    def _nothing_to_generate(self, ledger_id: str, period: Period) -> str:
        """Why a preview counts 0: no whole month in the range, batches already there, or no data."""
        name = self._names().get(ledger_id, ledger_id)
        if not [m for m in period.months() if m.kind == "month"]:
            return (f"Nothing to generate: {period} holds no whole calendar month, and Mangrove makes monthly "
                    "batches of the months a range covers completely. Choose a range that covers at least one "
                    "whole month.")
        try:
            existing = self.client.batches(ledger_id, period)
        except MangroveError:
            existing = None
        if existing is not None and len(existing):
            months = sorted({f"{t:%Y-%m}" for t in existing["start_time"].dropna()})
            failed = int((existing["state"] == "failed").sum())
            delete = (f" {_plural(failed, 'batch')} of them failed: delete them (BatchExplorer's Delete failed "
                      "batch, or client.delete_batch(id)) to generate them again." if failed else "")
            return (f"Nothing to generate on {name} for {period.label}: it already has "
                    f"{_plural(len(existing), 'batch')} ({', '.join(months)}), and every partition with data has "
                    f"one.{delete}")
        return (f"Nothing to generate on {name} for {period.label}: the preview counts 0 batches on every ledger "
                "(no data for this period, or every partition with data already has a batch).")

    def _selection(self) -> tuple[str, Period, tuple[str, ...]]:
        return self.ledger.value, self.period_picker.period, tuple(sorted(self.candidates.value))

    @staticmethod
    def _key(ledger_id: str, period: Period, points: tuple[str, ...], skip: MissingInput | None) -> tuple[Any, ...]:
        return (ledger_id, period.start, period.end, points, skip.type_ids if skip else None)

    def _current_key(self) -> tuple[Any, ...] | None:
        try:
            ledger_id, period, points = self._selection()
        except PeriodError:
            return None
        return self._key(ledger_id, period, points, self._active_skip(ledger_id, period))

    def _active_skip(self, ledger_id: str, period: Period) -> MissingInput | None:
        """The skip, when the choice is exactly its ledger and month (a skip never spans months)."""
        skip = self.skip
        if skip is None or skip.ledger_id != ledger_id or skip.month != period:
            return None
        return skip

    def _unknown_for(self, key: tuple[Any, ...] | None) -> tuple[str, Period, GenerationOutcomeUnknownError] | None:
        if key is None:
            return None
        ledger_id, start, end = key[:3]
        for unknown in self._unknowns:
            if unknown[0] == ledger_id and unknown[1].start <= end and start <= unknown[1].end:
                return unknown
        return None

    def _unknown_label(self, unknown: tuple[str, Period, Any]) -> str:
        return f"{self._names().get(unknown[0], unknown[0])} {unknown[1].label}"

    def _question(self, key: tuple[Any, ...]) -> str:
        assert self.preview_frame is not None
        parts = [(int(r.count), str(r.ledger_name)) for r in self.preview_frame.itertuples() if r.count]
        what = " and ".join(f"{_plural(n, 'batch')} on {name}" if i == 0 else f"{n} on {name}"
                            for i, (n, name) in enumerate(parts))
        points = key[3]
        using = f" using {_plural(len(points), 'selected data point')}" if points else ""
        skip = self._active_skip(key[0], self.period_picker.period)
        without = (f" without {skip.quoted} (counted as zero in {skip.month.label} only: what it adds is not "
                   "counted)") if skip else ""
        return f"Create {what} for {self.period_picker.period.label}{using}{without}?"

    def _busy_message(self) -> str:
        task_id = self.task.id if self.task is not None else "(starting)"
        return (f"Task {task_id} is running; wait for it (form.wait()) or stop waiting first. Nothing new was "
                "started.")

    def _refresh_controls(self) -> None:
        with self._lock:
            state = self.state
            busy = state in BUSY
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
            offer = state == FAILED and self.offer is not None
            rest = state == DONE and self.rest is not None
            self.skip_button.layout.display = "" if offer else "none"
            self.rest_button.layout.display = "" if rest else "none"
            self.offer_box.layout.display = "" if offer or rest else "none"
            if rest and self.rest is not None:
                self.rest_button.description = f"Preview the rest of {self.rest.label}"
                self.offer_html.value = ""
            skip = self._active_skip(self.ledger.value, self.period_picker.value) if key is not None else None
            self.skip_html.layout.display = "" if skip is not None and not busy else "none"
            self.progress_box.layout.display = "" if self.task is not None or busy else "none"
            self.plot.layout.display = "" if self._plot_uri else "none"

    def _show_offer(self) -> None:
        offer = self.offer
        if offer is None:
            self.offer_html.value = ""
            return
        self.skip_button.description = f"Preview {offer.month.label} without {offer.name}"
        self.offer_html.value = _status_html("warn", self._offer_text(offer))

    def _offer_text(self, offer: MissingInput) -> str:
        month = offer.month.label
        text = (f"{month} has no reading of {offer.quoted}. Add the reading in Mangrove and generate again; or, "
                f"only if it truly does not exist, generate {month} alone without it: {offer.quoted} then counts as "
                f"zero in {month} only (for an emission source, that month's emissions are understated and its net "
                "removal overstated). The other months keep their readings: a skip never spans months.\n"
                f"From code: form.preview_month_without_input(), i.e. client.generate({offer.ledger_id!r}, "
                f"{month!r}, skipped_data_point_type_ids={list(offer.type_ids)})")
        if offer.rest is not None:
            text += (f"; then form.preview_rest_of_period(), i.e. client.generate({offer.ledger_id!r}, "
                     f"{offer.rest.label!r}), which generates the rest of {offer.rest.label} without skipping")
        return text + "."


    def _show_skip(self) -> None:
        skip = self.skip
        self.skip_html.value = "" if skip is None else _status_html(
            "warn", f"Leaving out {skip.quoted} in {skip.month.label} only (counted as zero: what it adds is not "
                    "counted). Change the period to generate without leaving anything out.")

    def _show_unknown(self) -> None:
        unknown = self._unknown
        if unknown is None:
            return
        self._set_status("error", f"Outcome unknown ({self._unknown_label(unknown)}): " + _error_text(unknown[2])
                         + "\n\nClick Reconcile to see what the server has before doing anything else; this "
                           "session will not send this generation again until then.")

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
                           row_classes=["mnb-manual" if m else "" for m in manual]))

    @staticmethod
    def _candidate_label(row: Any) -> str:
        month = f"{row.start_time:%Y-%m}" if not pd.isna(row.start_time) else "?"
        unit = row.output_unit if isinstance(row.output_unit, str) else ""
        left = row.ledger_balance if not pd.isna(row.ledger_balance) else row.output_value
        return f"{row.tracking_id} · {month} · {_number(left)} {unit} left".strip()

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
        if period is not None and self._active_skip(row.id, period) is not None:
            parts.append(self.skip_html.value)
        if self.preview_frame is not None:
            rows = [(r.ledger_name, r.count) for r in self.preview_frame.itertuples()]
            parts.append("<h4>Preview</h4>" + html_table(["Ledger", "Batches to create"], rows, numeric=[1]))
        if self.state == FAILED and self.offer is not None:
            parts.append(_status_html("warn", self._offer_text(self.offer)))
        if self.result is not None:
            parts.append(f"<h4>New batches ({len(self.result)})</h4>" + self._batches_table(self.result))
            if self._plot_uri:
                parts.append(f'<img alt="New batches" src="{self._plot_uri}">')
        self._publish("".join(parts))


# --- the batch explorer -------------------------------------------------------------------------------------


class BatchExplorer(_StaticOutput):
    """One or more ledgers and a period -> their batches, totals per ledger and a plot, refreshed on change.

    Controls: ``ledgers`` (SelectMultiple), ``period_picker``, ``refresh_button``, ``export_button``, and for
    failed batches ``failed`` (a Dropdown), ``delete_button``, ``delete_confirm_button``,
    ``delete_cancel_button``; ``widget`` is the whole box. Outcome: ``frame``
    (``client.batches(ids, period, details=True)`` plus a ``note`` on batches generated without an input),
    ``totals``, ``error``, ``deleted``, ``static_html``. ``refresh()``, ``export_csv(path=None)``,
    ``delete_failed_batch(batch_id=None)`` (asks), ``confirm_delete()`` and ``cancel_delete()`` do what the
    buttons do.
    """

    def __init__(self, client: Client, ledgers: str | Sequence[str] | None = None,
                 period: PeriodLike | None = None, *, project_id: int | str | None = None) -> None:
        import ipywidgets as w

        self._init_static()
        self.client = client
        self.error: BaseException | None = None
        self.frame: pd.DataFrame | None = None
        self.totals: pd.DataFrame | None = None
        self.exported: Path | None = None
        #: Batches deleted from this explorer: id, tracking id, ledger, period (newest last).
        self.deleted: list[dict[str, str]] = []
        self._lock = threading.RLock()
        self._delete_pending: str | None = None
        self._plot_uri: str | None = None
        self._status: tuple[str, str] = ("info", "")
        self.ledger_frame = client.ledgers()
        if ledgers is None:
            chosen = self.ledger_frame.loc[self.ledger_frame["has_model"].fillna(False).astype(bool), "id"].tolist()
        else:
            wanted = [ledgers] if isinstance(ledgers, str) else list(ledgers)
            chosen = [_resolve_ledger(client, self.ledger_frame, one) for one in wanted]
        self._years = _DataYears(client, project_id)
        style = {"description_width": "70px"}
        self.ledgers = w.SelectMultiple(options=[(_ledger_label(r), r.id) for r in self.ledger_frame.itertuples()],
                                        value=tuple(chosen), rows=min(6, max(2, len(self.ledger_frame))),
                                        description="Ledgers", style=style, layout=w.Layout(width="620px"))
        self.period_picker = PeriodPicker(period, years=self._years.of(chosen))
        self.refresh_button = w.Button(description="Refresh", icon="refresh")
        self.export_button = w.Button(description="Export CSV", icon="download",
                                      tooltip="Write batches_<period>.csv in the working directory")
        self.export_html = w.HTML()
        self.status = w.HTML()
        self.totals_html = w.HTML()
        self.table_html = w.HTML()
        self.plot = w.Image(format="png", layout=w.Layout(max_width="900px"))
        self.failed = w.Dropdown(options=[], description="Failed", style=style, layout=w.Layout(width="520px"))
        self.delete_button = w.Button(description="Delete failed batch…", icon="trash", layout=w.Layout(width="auto"),
                                      tooltip="Asks first; a deleted batch's period can be generated again")
        self.delete_html = w.HTML()
        self.delete_confirm_button = w.Button(description="Delete it", button_style="danger", icon="trash")
        self.delete_cancel_button = w.Button(description="Keep it", icon="times")
        self.delete_confirm_box = w.HBox([self.delete_confirm_button, self.delete_cancel_button])
        self.delete_box = w.VBox([w.HBox([self.failed, self.delete_button]), self.delete_html,
                                  self.delete_confirm_box])
        self.widget = w.VBox([
            w.HTML("<b>Batches</b>"), self.ledgers, self.period_picker.widget,
            w.HBox([self.refresh_button, self.export_button, self.export_html]), self.status, self.totals_html,
            self.plot, self.table_html, self.delete_box,
        ])
        self.refresh_button.on_click(self._callback(self.refresh))
        self.export_button.on_click(self._callback(self.export_csv))
        self.delete_button.on_click(self._callback(self.delete_failed_batch))
        self.delete_confirm_button.on_click(self._callback(self._confirm_delete_clicked))
        self.delete_cancel_button.on_click(self._callback(self.cancel_delete))
        self.ledgers.observe(self._callback(self._ledgers_changed), "value")
        self.period_picker.on_change(self._callback(self.refresh))
        self.refresh()

    def __repr__(self) -> str:
        return f"<BatchExplorer {self._status_text()}>"

    def refresh(self) -> pd.DataFrame:
        """Fetch the chosen ledgers' batches in the period, and redraw the totals, the plot and the table."""
        ids = list(self.ledgers.value)
        period = self.period_picker.period
        frame = self.client.batches(ids, period, details=True) if ids else self._empty()
        frame = with_skip_notes(self.client, frame, details=frame)
        png = plot_png(frame, period=period, title=f"Batches, {period.label}", labels=self._names())
        with self._lock:
            self.frame, self.error, self._delete_pending = frame, None, None
            self.totals = self._totals(frame, ids)
            self.totals_html.value = "<b>Totals</b>" + self._totals_table(self.totals)
            self.table_html.value = f"<b>Batches ({len(frame)})</b>" + self._batches_table(frame)
            self.plot.value = png
            self._plot_uri = _png_data_uri(png)
            flagged = int(frame["note"].notna().sum())
            if not ids:
                self._set_status("warn", "Choose at least one ledger.")
            elif frame.empty:
                self._set_status("warn", f"No batches in {period} on the chosen ledger(s).")
            else:
                text = f"{_plural(len(frame), 'batch')} in {period} on {_plural(len(ids), 'ledger')}."
                if flagged:
                    text += (f"\n{_plural(flagged, 'batch')} generated without an input (counted as zero): see the "
                             "Note column; the totals include them.")
                self._set_status("warn" if flagged else "ok", text)
            self._show_failed()
            self._publish_static()
        return frame

    def export_csv(self, path: str | Path | None = None) -> Path:
        """Write the batches shown (with ``ledger_name``, ``skipped_inputs`` and ``note``) to CSV; default
        ``batches_<period>.csv``."""
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

    def delete_failed_batch(self, batch_id: str | None = None) -> str:
        """Ask to delete a failed batch (default: the one chosen in the list); returns the question.

        Only batches shown as ``failed`` can be deleted here; ``confirm_delete()`` deletes it.
        """
        with self._lock:
            chosen = batch_id if batch_id is not None else self.failed.value
            frame = self.frame if self.frame is not None else self._empty()
            rows = frame[(frame["id"] == chosen) & (frame["state"] == "failed")] if chosen else frame.iloc[0:0]
            if rows.empty:
                raise PreconditionError("Choose a failed batch of the batches shown: only failed batches can be "
                                        "deleted here (their periods can then be generated again).")
            row = rows.iloc[0]
            self._delete_pending = str(row["id"])
            question = (f"Delete the failed batch {row['tracking_id']} ({self._describe(row)})? This cannot be "
                        "undone; its period can then be generated again.")
            self.delete_html.value = f'<div style="font-weight:600">{_e(question)}</div>'
            self._show_failed()
        return question

    def confirm_delete(self) -> str:
        """Delete the batch asked about (``client.delete_batch``), after checking it is still failed; then refresh."""
        with self._lock:
            batch_id, self._delete_pending = self._delete_pending, None
            if batch_id is None:
                raise PreconditionError("Nothing to delete: choose a failed batch, Delete failed batch…, then "
                                        "Delete it.")
            assert self.frame is not None
            row = self.frame[self.frame["id"] == batch_id].iloc[0]
            self._show_failed()
        ledger_id = str(row["ledger_id"])
        still = self.client.batches(ledger_id, state="failed")
        if batch_id not in set(still["id"]):
            self.refresh()
            raise PreconditionError(f"{row['tracking_id']} is no longer a failed batch on the server (regenerated "
                                    "or deleted meanwhile): nothing was deleted.")
        self.client.delete_batch(batch_id)
        with self._lock:
            self.deleted.append({"id": batch_id, "tracking_id": str(row["tracking_id"]), "ledger_id": ledger_id,
                                 "period": _span(row["start_time"], row["end_time"])})
        self.refresh()
        name = self._names().get(ledger_id, ledger_id)
        month = _span(row["start_time"], row["end_time"])
        with self._lock:
            self._set_status("ok", f"Deleted the failed batch {row['tracking_id']} ({self._describe(row)}). Fix its "
                                   f"data, then generate {month} again: GenerationForm(client, {name!r}, "
                                   f"{month!r}), or client.generate({name!r}, {month!r}).")
            self._publish_static()
        return batch_id

    def cancel_delete(self) -> None:
        """Withdraw the delete question; nothing is deleted."""
        with self._lock:
            if self._delete_pending is None:
                return
            self._delete_pending = None
            self._set_status("info", "Nothing was deleted.")
            self._show_failed()

    # -- helpers -----------------------------------------------------------------------------------------------

    def _confirm_delete_clicked(self) -> None:
        """The Delete button: a second click (nothing pending any more) does nothing."""
        if self._delete_pending is not None:
            self.confirm_delete()

    def _ledgers_changed(self) -> None:
        self.period_picker.set_years(self._years.of(self.ledgers.value))
        self.refresh()

    def _show_failed(self) -> None:
        frame = self.frame if self.frame is not None else self._empty()
        failed = frame[frame["state"] == "failed"]
        options = [(f"{r.tracking_id} · {self._describe(r._asdict())}", r.id) for r in failed.itertuples()]
        ids = [value for _, value in options]
        if [value for _, value in self.failed.options] != ids:
            with self.failed.hold_sync():
                keep = self.failed.value
                self.failed.options = options
                self.failed.value = keep if keep in ids else (ids[0] if ids else None)
        self.delete_box.layout.display = "" if options else "none"
        pending = self._delete_pending is not None
        self.delete_confirm_box.layout.display = "" if pending else "none"
        self.delete_html.layout.display = "" if pending else "none"
        self.delete_button.disabled = pending or not options
        self.failed.disabled = pending

    def _describe(self, row: Any) -> str:
        ledger = row["ledger_name"] if isinstance(row["ledger_name"], str) else self._names().get(
            str(row["ledger_id"]), str(row["ledger_id"]))
        return f"{ledger}, {_span(row['start_time'], row['end_time'])}"

    def _callback(self, method: Callable[..., Any]) -> Callable[..., None]:
        def run(*_: Any) -> None:
            try:
                method()
            except Exception as exc:
                log.error("Batch explorer: %s failed: %s", method.__name__, exc, exc_info=exc)
                with self._lock:
                    self.error = exc
                    self._set_status("error", _error_text(exc))
                    self._publish_static()

        run.__name__ = f"on_{method.__name__}"
        return run

    @staticmethod
    def _empty() -> pd.DataFrame:
        from .frames import BATCHES_SCHEMA, empty_frame

        frame = empty_frame(BATCHES_SCHEMA)
        for column in ("skipped_inputs", "skipped_input_ids", "upstream_batches"):
            frame[column] = pd.Series([], dtype="string")
        return frame

    def _names(self) -> dict[str, str]:
        return {str(r.id): str(r.name) for r in self.ledger_frame.itertuples() if isinstance(r.name, str)}

    def _totals(self, frame: pd.DataFrame, ids: list[str]) -> pd.DataFrame:
        """Per ledger: batches, complete, failed, those generated without an input, and the total output of the
        complete ones, with its unit."""
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
                         "without_input": int(mine["note"].notna().sum()) if "note" in mine.columns else 0,
                         "total": float(complete["output_value"].sum()) if len(complete) else 0.0})
        schema = {"ledger_id": "string", "ledger_name": "string", "unit": "string", "batches": "Int64",
                  "complete": "Int64", "failed": "Int64", "without_input": "Int64", "total": "Float64"}
        return pd.DataFrame(rows, columns=list(schema)).astype(schema)

    @staticmethod
    def _totals_table(totals: pd.DataFrame) -> str:
        rows = [(r.ledger_name, r.batches, r.complete, r.failed, r.without_input, _number(r.total), r.unit)
                for r in totals.itertuples()]
        return html_table(["Ledger", "Batches", "Complete", "Failed", "Without an input", "Total output", "Unit"],
                          rows, numeric=[1, 2, 3, 4, 5])

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
        if self.deleted:
            done = ", ".join(f"{d['tracking_id']} ({d['period']})" for d in self.deleted)
            parts.append(f'<p class="mnb-meta">Deleted here: {_e(done)}</p>')
        if self.exported is not None:
            parts.append(f'<p class="mnb-meta">Exported to <code>{_e(self.exported)}</code></p>')
        self._publish("".join(parts))


def _file_label(period: Period) -> str:
    """A period label fit for a file name: ``2025Q1``, ``2025-02``, ``2025-01-10_to_2025-02-20``."""
    return re.sub(r"[^0-9A-Za-z_-]+", "_", period.label.replace("/", "_to_")).strip("_")
