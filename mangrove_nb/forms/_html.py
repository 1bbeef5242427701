"""The forms' HTML: escaping, tables, status lines, error texts, and the static copy's frame and CSS.

Pure functions from values to strings (no widgets, no IPython): every string that came from the API reaches
HTML through ``esc`` (``html.escape``), and every status is redacted of registered secrets first. The same
HTML serves the widgets (which have no stylesheet, hence the inline styles) and the static copy a saved
notebook shows.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from .._text import one_line
from ..errors import TaskFailedError, redact

# Rows shown in a table before "… and N more" (the whole frame stays on the form).
MAX_TABLE_ROWS = 60

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


def esc(value: Any) -> str:
    """Escaped text of any value (NA as an em dash): the only way API text reaches HTML here."""
    if value is None or (not isinstance(value, str | bytes) and pd.isna(value)):
        return "—"
    return html.escape(str(value), quote=True)


def number(value: Any) -> str:
    """A figure as the tables show it: ``1,234.568``; NA as an em dash."""
    if value is None or pd.isna(value):
        return "—"
    return f"{float(value):,.3f}"


def span(start: Any, end: Any) -> str:
    """A batch's period: ``2025-01`` for a whole month, else its dates."""
    if pd.isna(start):
        return "—"
    if not pd.isna(end) and start.day == 1 and (end + pd.Timedelta(seconds=1)).day == 1 and \
            (end - start) < pd.Timedelta(days=32):
        return f"{start:%Y-%m}"
    return f"{start:%Y-%m-%d} → {end:%Y-%m-%d}" if not pd.isna(end) else f"{start:%Y-%m-%d}"


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}es" if word.endswith("ch") else f"{count} {word}s"


def html_table(header: Sequence[str], rows: Iterable[Sequence[Any]], *, numeric: Iterable[int] = (),
               row_classes: Sequence[str] | None = None, total: int | None = None,
               wrap: Iterable[int] = ()) -> str:
    """An HTML table whose every cell is escaped (a text cell on one line, without control or bidi characters:
    ``_text.one_line``), padded, text left-aligned and ``numeric`` columns right-aligned.

    Cells do not wrap (ids and periods stay whole), except in the ``wrap`` columns (long notes). ``total`` is
    the number of rows the data has, when ``rows`` holds only the first of them.
    """
    right, wrapping = set(numeric), set(wrap)

    def align(i: int) -> str:
        return _NUM_STYLE if i in right else _TEXT_STYLE if i in wrapping else f"{_TEXT_STYLE};white-space:nowrap"

    head = "".join(f'<th style="{_TH_STYLE};{align(i)}">{esc(h)}</th>' for i, h in enumerate(header))
    body = []
    shown = 0
    for index, row in enumerate(rows):
        css = row_classes[index] if row_classes and row_classes[index] else ""
        attrs = f' class="{esc(css)}" style="{_ROW_STYLES.get(css, "")}"' if css else ""
        cells = "".join(f'<td class="{"num" if i in right else "text"}" style="{_CELL_STYLE};{align(i)}">'
                        f"{esc(one_line(c) if isinstance(c, str) else c)}</td>" for i, c in enumerate(row))
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
        rows.append((r.tracking_id, ledger, span(r.start_time, r.end_time), *([r.feedstock] if partitioned else []),
                     number(r.output_value), r.output_unit, r.state, *([note if not pd.isna(note) else ""]
                                                                       if noted else [])))
        classes.append("mnb-skipped" if not pd.isna(note) else "")
    return html_table(header, rows, numeric=[header.index("Output")], total=len(frame), row_classes=classes,
                      wrap=[header.index("Note")] if noted else [])


def count_table(frame: pd.DataFrame, header: str) -> str:
    """A preview-shaped frame (``ledger_name``, ``count``) as a two-column table."""
    rows = [(r.ledger_name, r.count) for r in frame.itertuples()]
    return html_table(["Ledger", header], rows, numeric=[1])


def status_html(kind: str, text: str) -> str:
    """A status line; ``text`` is plain text (redacted of secrets, each line cleaned of control and format
    characters by ``_text.one_line``, and escaped here; newlines kept)."""
    if not text:
        return ""
    text = "\n".join(one_line(line) for line in redact(text).split("\n"))
    style = (f"{_STATUS_STYLES[kind]};padding:6px 10px;border-radius:4px;margin:6px 0;max-width:900px;"
             "text-align:left;line-height:1.45")
    return f'<div class="mnb-status mnb-{kind}" style="{style}">{esc(text).replace(chr(10), "<br>")}</div>'


def error_text(exc: BaseException, *, advice: bool = True) -> str:
    """What the form shows for an exception (plain text; escaped when shown): the server's own words first.

    A ``TaskFailedError``'s message may carry the client's advice after the server's words (for a missing
    input: the calls to make); ``advice=False`` leaves it out, for a form that gives it another way.
    """
    if isinstance(exc, TaskFailedError):
        said = exc.error_message or "(the server gave no error message)"
        text = (f"Task {exc.task_id} failed on the server. The server said:\n{said}\n\nFix the cause (often "
                "missing or invalid input data for the period), then preview and generate again.")
        extra = task_advice(exc)
        if advice and extra:
            text += f"\n\n{extra}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    notes = [str(n) for n in getattr(exc, "__notes__", None) or []]
    return redact("\n".join([text, *notes]))


def task_advice(exc: TaskFailedError) -> str:
    """The client's advice in a failed task's message: what follows the message it would have without any."""
    plain = str(TaskFailedError(task_id=exc.task_id, error_message=exc.error_message))
    message = str(exc)
    return message[len(plain):].strip() if message.startswith(plain) else ""


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def static_copy(body: str) -> str:
    """The block a saved notebook shows for a form: ``body`` in its scoped style."""
    return f'<div class="mnb-static"><style>{STATIC_CSS}</style>{body}</div>'
