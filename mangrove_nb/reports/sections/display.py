"""What the cells display: tables, the report's header, bullet lists and figures, as escaped HTML in notebooks
and reports and as aligned text elsewhere.

API text reaches HTML only through ``Table`` (pandas' ``to_html`` with ``escape=True``) and ``html.escape``.
"""

from __future__ import annotations

import html
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..notebook import META_KEY
from ._shared import _NA

_TABLE_IDS = itertools.count(1)
_SHORT = 18  # characters: a column whose values are all this short does not wrap
_LONG = 24  # characters: a column with a longer word may break it anywhere


@dataclass
class Table:
    """A DataFrame shown without its index: escaped HTML in notebooks and reports, aligned text elsewhere.

    Every value and column name goes through pandas' ``to_html(escape=True)``; ``title``, ``note`` (one text or
    several, a paragraph each) and ``empty`` through ``html.escape``. Floats get ``decimals`` digits (per column
    when a mapping) and thousands separators; missing values show as "–". Numeric columns, and the columns named
    in ``right``, are right-aligned; text wraps, so a table fits a narrow window.
    """

    frame: pd.DataFrame
    title: str | None = None
    note: str | Sequence[str] | None = None
    decimals: int | Mapping[str, int] = 3
    empty: str = "Nothing to show."
    header: bool = True
    right: Sequence[str] = ()

    def shown(self) -> pd.DataFrame:
        """The frame as the strings displayed: numbers formatted, NA as "–"."""
        out = pd.DataFrame(index=self.frame.index)
        for column, dtype in self.frame.dtypes.items():
            values = self.frame[column]
            if pd.api.types.is_float_dtype(dtype):
                places = self.decimals if isinstance(self.decimals, int) else self.decimals.get(str(column), 3)
                out[column] = [_NA if pd.isna(v) else f"{v:,.{places}f}" for v in values]
            elif pd.api.types.is_bool_dtype(dtype):
                out[column] = [_NA if pd.isna(v) else ("yes" if v else "no") for v in values]
            else:
                out[column] = [_NA if pd.isna(v) else str(v) for v in values]
        return out.astype(object)

    def notes(self) -> list[str]:
        if self.note is None:
            return []
        return [self.note] if isinstance(self.note, str) else [str(n) for n in self.note if n]

    def _right(self) -> list[int]:
        named = {str(c) for c in self.right}
        return [i for i, (column, dtype) in enumerate(self.frame.dtypes.items(), start=1)
                if str(column) in named
                or (pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype))]

    def _repr_html_(self) -> str:
        parts = [f'<h4 class="mangrove-table-title">{html.escape(self.title)}</h4>'] if self.title else []
        if self.frame.empty:
            parts.append(f"<p>{html.escape(self.empty)}</p>")
        else:
            table_id = f"mangrove-table-{next(_TABLE_IDS)}"
            shown = self.shown()
            right = ", ".join(f"#{table_id} td:nth-child({i}), #{table_id} th:nth-child({i})" for i in self._right())
            # Short values (months, tracking ids, amounts) never break; longer text wraps to fit a narrow window.
            short = ", ".join(f"#{table_id} td:nth-child({i})" for i, column in enumerate(shown.columns, start=1)
                              if shown[column].map(lambda v: len(str(v))).max() <= _SHORT)
            # A word too long for a narrow window (a fingerprint, a name without spaces) may break anywhere.
            long = ", ".join(f"#{table_id} td:nth-child({i})" for i, column in enumerate(shown.columns, start=1)
                             if shown[column].map(lambda v: max(map(len, str(v).split()), default=0)).max() > _LONG)
            style = (f"{right} {{ text-align: right; }}" if right else "") + \
                (f" {short} {{ white-space: nowrap; }}" if short else "") + \
                (f" {long} {{ overflow-wrap: anywhere; }}" if long else "")
            if style:
                parts.append(f"<style>{style.strip()}</style>")
            table = shown.to_html(index=False, escape=True, border=0, header=self.header, table_id=table_id,
                                         classes="mangrove-table")
            parts.append(f'<div class="mangrove-wrap">{table}</div>')
        parts += [f'<p class="mangrove-note">{html.escape(note)}</p>' for note in self.notes()]
        return "\n".join(parts)

    def __repr__(self) -> str:
        parts = [self.title] if self.title else []
        parts.append(self.empty if self.frame.empty else self.shown().to_string(index=False, header=self.header))
        parts += self.notes()
        return "\n".join(parts)


@dataclass
class Header:
    """The report's opening: a title (the project's name) and a few lines under it; API text escaped."""

    title: str
    lines: Sequence[str] = ()

    def _repr_html_(self) -> str:
        lede = "".join(f'<p class="mangrove-lede">{html.escape(line)}</p>' for line in self.lines)
        return f'<div class="mangrove-header"><h1 class="mangrove-title">{html.escape(self.title)}</h1>{lede}</div>'

    def __repr__(self) -> str:
        return "\n".join([self.title, "=" * min(len(self.title), 80), *self.lines])


@dataclass
class Bullets:
    """A list of short statements, each with a bold lead (where: ledger, month, batch); API text escaped."""

    items: Sequence[tuple[str, str]]
    empty: str = "Nothing to report."
    note: str | None = None

    def _repr_html_(self) -> str:
        if not self.items:
            body = f'<p class="mangrove-ok">{html.escape(self.empty)}</p>'
        else:
            rows = "".join(f"<li><strong>{html.escape(lead)}</strong>{': ' if lead else ''}{html.escape(text)}</li>"
                           for lead, text in self.items)
            body = f'<ul class="mangrove-bullets">{rows}</ul>'
        if self.note:
            body += f'<p class="mangrove-note">{html.escape(self.note)}</p>'
        return body

    def __repr__(self) -> str:
        if not self.items:
            return self.empty
        lines = [f"- {lead}: {text}" if lead else f"- {text}" for lead, text in self.items]
        return "\n".join([*lines, *([self.note] if self.note else [])])


@dataclass
class Chart:
    """A rendered figure: PNG bytes and an alt text; displays as an image (and its alt text as plain text)."""

    png: bytes
    alt: str

    def _repr_png_(self) -> tuple[bytes, dict[str, Any]]:
        return self.png, {}

    def __repr__(self) -> str:
        return f"[figure: {self.alt}]"

    def show(self) -> None:
        """Display the image with its alt text in the output's metadata (the HTML export uses it)."""
        from IPython.display import display

        display({"image/png": self.png, "text/plain": repr(self)}, raw=True, metadata={META_KEY: {"alt": self.alt}})
