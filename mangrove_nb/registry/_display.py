"""How the registry's values are shown: API text made plain for a terminal or a repr (``_text.one_line``: redacted,
on one line, without control or format characters) and escaped for HTML, amounts with their unit, times in UTC,
frames as HTML and text tables.
"""

from __future__ import annotations

import html
from typing import Any

import pandas as pd

from .._text import one_line
from ._values import _missing


def _plain(text: Any) -> str:
    """API text for a terminal or a repr: redacted, on one line, without control or format characters."""
    return one_line(text)


def _ledger_argument(name: Any, ledger_id: str) -> str:
    """A ledger as advice writes it in code (``ledgers=['Net Carbon Removal']``, ``client.generate(...)``): its name
    quoted, or its id when the name has a quote or a backslash (quoted, such a name would change: ``repr`` switches
    quotes and doubles backslashes, and the command line's rewording of the advice would not find it)."""
    text = _plain(name) if isinstance(name, str) else ""
    chosen = text if text and not any(c in text for c in "'\"\\") else _plain(ledger_id)
    return repr(chosen)


def _escape(value: Any) -> str:
    return html.escape(_plain(value), quote=True)


def _amount_text(amount: float | None, unit: str | None) -> str:
    if amount is None:
        return "unknown"
    return f"{amount:,.6g} {_plain(unit or '')}".rstrip()


def _totals_text(totals: pd.DataFrame) -> str:
    per_unit: dict[str, float] = {}
    for unit, amount in zip(totals["unit"], totals["amount"], strict=True):
        key = "" if _missing(unit) else str(unit)
        per_unit[key] = per_unit.get(key, 0.0) + (0.0 if _missing(amount) else float(amount))
    return " + ".join(_amount_text(amount, unit) for unit, amount in per_unit.items())


def _time_text(moment: pd.Timestamp | None) -> str | None:
    return None if moment is None else f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def _cell(value: Any) -> str:
    if _missing(value):
        return ""
    if isinstance(value, pd.Timestamp):
        return f"{value:%Y-%m-%d %H:%M}"
    if isinstance(value, float):
        return f"{value:,.6g}"
    return _plain(value)


def _html_table(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{_escape(c)}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(v), quote=True)}</td>" for v in row) + "</tr>"
                   for row in frame.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _text_table(frame: pd.DataFrame) -> str:
    shown = [c for c in frame.columns if c != "end_time"]
    cells = [[str(c) for c in shown]] + [[_cell(v) for v in row] for row in frame[shown].itertuples(index=False)]
    widths = [max(len(r[n]) for r in cells) for n in range(len(shown))]
    return "\n".join("  " + "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells)
