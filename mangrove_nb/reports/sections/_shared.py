"""What the sections share: how a missing value, a figure and an amount are written, and small readers of the
client's frames (complete batches, ledger names, months)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd

from ...frames import ledger_names, term_sign

_NA = "–"
NOT_GENERATED = "not generated"
_NBSP = "\u00a0"
_MINUS = "\u2212"


# +1 for a calculation role (``lca_role``) added to the net figure, -1 for one subtracted, 0 for what is not a
# term: the one rule, which what a skipped input changed (``frames.skipped_effects``) applies too.
_sign = term_sign


def _amount(value: float, unit: Any, *, signed: bool = False) -> str:
    text = f"{value:+,.3f}" if signed else f"{value:,.3f}"
    text = text.replace("-", _MINUS)
    return f"{text}{_NBSP}{unit}" if isinstance(unit, str) and unit else text


def _figure(value: float) -> str:
    return f"{value:,.3f}".replace("-", _MINUS)


def _month_label(moment: Any) -> str:
    return f"{pd.Timestamp(moment):%Y-%m}"


def _names(selected: pd.DataFrame) -> dict[str, str]:
    """Ledger id -> name of the report's ledgers (``frames.ledger_names``: one without a name by its id)."""
    return ledger_names(selected)


def _yes(value: Any) -> bool:
    """A nullable boolean cell as a plain bool (NA is False)."""
    return False if pd.isna(value) else bool(value)


def _counted(batches: pd.DataFrame) -> pd.Series:
    return batches["state"].fillna("").str.lower().eq("complete").astype(bool)


def _day(moment: datetime) -> str:
    return f"{moment.day} {moment:%B %Y}"


def _span(period: Any) -> str:
    """What the report covers, in words: "year" for an annual report, else "quarter"."""
    return "year" if getattr(period, "kind", None) == "year" else "quarter"


# A period of more months than this (a year) shows its monthly tables with a row per month: twelve month columns
# do not fit a page or a narrow window.
_MONTH_COLUMNS = 6
_PER_TABLE = 4  # the columns (ledgers, terms) a table with a row per month holds beside its first column


def _months_as_rows(wide: pd.DataFrame, first: str, *, per_table: int = _PER_TABLE) -> list[pd.DataFrame]:
    """A table with a row per item (its first column names it) and a column per month turned so that months are
    rows: a first column ``first`` naming the months (the other columns' names, in order), then one column per
    item, at most ``per_table`` items to a frame (the items' order kept). Every cell is text."""
    names = [str(v) for v in wide.iloc[:, 0]]
    rows = [str(c) for c in wide.columns[1:]]
    frames = []
    for start in range(0, max(len(names), 1), per_table):
        part = wide.iloc[start:start + per_table]
        data = {first: rows}
        for label, (_, row) in zip(names[start:start + per_table], part.iterrows(), strict=True):
            data[_unique(label, data)] = [row[c] for c in wide.columns[1:]]
        frames.append(pd.DataFrame(data).astype("string"))
    return frames


def _unique(label: str, taken: dict[str, Any]) -> str:
    """``label``, or ``label (2)``... when a column already has that name."""
    found, number = label, 2
    while found in taken:
        found, number = f"{label} ({number})", number + 1
    return found
