"""The Charts section: each ledger's monthly totals in the quarter, then its batches over this quarter and the one
before, rendered to PNG with fixed margins. matplotlib is imported inside the functions."""

from __future__ import annotations

import io
import warnings
from typing import Any

import pandas as pd

from mangrove_nb import Period

from .._text import _one_line
from ._shared import _names
from .display import Chart
from .quality import month_marks

# What a mark on a month means, as the charts caption it.
_WIDE_MONTHS = 6  # a period of more months (a year) draws its monthly totals one panel to a row...
_WIDE_ROWS = 3  # ...and at most this many panels to a figure
_REASONS = {"overstated": "an input was skipped, so it may be overstated",
            "duplicate": "two complete batches for one partition (possibly generated twice), both counted",
            "incomplete": "a partition's batch failed or is not finished, so the total leaves it out"}


def figures(batches: pd.DataFrame, before: pd.DataFrame, selected: pd.DataFrame, period: Period,
            previous: Period, *, dpi: int = 100, calculations: pd.DataFrame | None = None) -> list[Chart]:
    """The report's figures: each ledger's monthly totals in the quarter (small multiples, one figure; for a year,
    one panel to a row and at most three to a figure), then each ledger's batches over both quarters with the
    cumulative output (this quarter alone, and its title says so, when the ledger has no batch in the one before).
    Ledgers without batches are left out.

    A month whose figure is doubtful (``month_marks``: a batch made with an input skipped, judged from
    ``calculations``; two complete batches for one partition; a partition whose batch failed, left out of the
    total) carries ⚠ on its bar, on the quarter's total and in a caption, as in the tables; a partial quarter's
    total says how many months it covers.

    Margins are fixed in inches rather than left to matplotlib's constrained layout, and titles sit at a fixed
    height rather than being placed above the tick labels of every twin axis: either would more than double
    the time the figures take (the plots cell is the report's slowest) for the same result here.
    """
    from matplotlib import rc_context

    # matplotlib's warnings while laying out and drawing (a glyph the font lacks) stay out of the report's outputs,
    # where they would show as a red block in the Charts section; the labels are cleaned of what causes them.
    with rc_context({"axes.titley": 1.0}), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _figures(batches, before, selected, period, previous, dpi=dpi, calculations=calculations)


def _marks(frames: list[pd.DataFrame], calculations: pd.DataFrame | None) -> dict[str, dict[str, str]]:
    """By ledger id, then month: what makes the month's figure doubtful, as a caption ("no value" is the plot's)."""
    found: dict[str, dict[str, str]] = {}
    for frame in frames:
        for (ledger_id, month), reasons in month_marks(frame, calculations).items():
            why = [_REASONS[r] for r in reasons if r in _REASONS]
            if why:
                found.setdefault(ledger_id, {})[month] = "; ".join(why)
    return found


def _figures(batches: pd.DataFrame, before: pd.DataFrame, selected: pd.DataFrame, period: Period,
             previous: Period, *, dpi: int, calculations: pd.DataFrame | None = None) -> list[Chart]:
    from matplotlib.figure import Figure as MplFigure

    from mangrove_nb.plots import plot_batches, plot_quarter_summary

    # API text drawn as labels, on one line without control or bidi characters (a tab or CR has no glyph, and
    # a bidi override would reorder what follows it).
    names = {ledger_id: _one_line(str(name), 200) for ledger_id, name in _names(selected).items()}
    batches, before = _clean_labels(batches), _clean_labels(before)
    marks = _marks([batches, before], calculations)
    charts: list[Chart] = []
    shown = [ledger_id for ledger_id in names if (batches["ledger_id"] == ledger_id).any()]
    quarter_months = {m.label for m in period.months()}
    # A year's twelve bars need the page's width: one panel to a row, and at most three rows to a figure.
    wide = len(quarter_months) > _WIDE_MONTHS
    groups = [shown[n:n + _WIDE_ROWS] for n in range(0, len(shown), _WIDE_ROWS)] if wide and shown else [shown]
    for number, group in enumerate(groups):
        columns = 2 if len(group) > 1 and not wide else 1
        rows = max(1, -(-len(group) // columns))
        summary = MplFigure(figsize=(11, 0.85 + 2.9 * rows + 1.0 * (rows - 1) + 0.65))
        _margins(summary, rows, columns, left=0.8, right=0.25, top=0.85, bottom=0.65, hgap=1.0, wgap=0.95)
        axes = summary.subplots(rows, columns, squeeze=False).ravel()
        for ax, ledger_id in zip(axes, group, strict=False):
            plot_quarter_summary(batches[batches["ledger_id"] == ledger_id], period, ax=ax, title=names[ledger_id],
                                 marks=marks.get(ledger_id))
        if not group:
            plot_quarter_summary(batches, period, ax=axes[0], title=f"No batches in {period.label}")
        for ax in axes[max(len(group), 1):]:
            ax.set_visible(False)
        part = f" ({number + 1} of {len(groups)})" if len(groups) > 1 else ""
        summary.suptitle(f"Monthly totals of complete batches, {period.label}{part}", fontsize=13,
                         y=1 - 0.3 / summary.get_figheight())
        flagged = [f"⚠ {names[i]}, {month}: {why}" for i in group for month, why in sorted(marks.get(i, {}).items())
                   if month in quarter_months]
        about = ", ".join(names[i] for i in group) if len(groups) > 1 else "per ledger"
        charts.append(Chart(_png(summary, dpi), f"Monthly totals of complete batches {about}, {period.label}"
                            + (". " + "; ".join(flagged) if flagged else "")))
    both = Period(previous.start, period.end, f"{previous.label}–{period.label}")
    for ledger_id, name in names.items():
        mine = [frame[frame["ledger_id"] == ledger_id] for frame in (before, batches)]
        if all(part.empty for part in mine):
            continue
        # Without a batch in the previous period, half the chart would be empty: draw this period only, and say so.
        alone = mine[0].empty
        spans = (f"{period.label} (none in {previous.label})" if alone
                 else f"{previous.label} and {period.label}")
        figure = MplFigure(figsize=(11, 4.5))
        _margins(figure, 1, 1, left=0.8, right=0.9, top=0.45, bottom=1.3, hgap=0, wgap=0)
        ax = plot_batches(pd.concat(mine, ignore_index=True), ax=figure.add_subplot(), period=period if alone else both,
                          labels=names, title=f"{name}: batches, {spans}")
        caption = _mark_months(ax, figure, marks.get(ledger_id, {}))
        charts.append(Chart(_png(figure, dpi), f"{name}: output per batch and cumulative output, {spans}"
                                               + (f". {caption}" if caption else "")))
    return charts


def _mark_months(ax: Any, figure: Any, marks: dict[str, str]) -> str:
    """⚠ above each marked month of a batches chart, and a caption at the figure's foot saying why."""
    if not marks:
        return ""
    import matplotlib.dates as mdates
    from matplotlib.transforms import blended_transform_factory

    where = blended_transform_factory(ax.transData, ax.transAxes)
    low, high = ax.get_xlim()
    for month in marks:
        middle = mdates.date2num(pd.Timestamp(f"{month}-15").to_pydatetime())
        if low <= middle <= high:
            ax.text(middle, 0.98, "\u26a0", transform=where, ha="center", va="top", fontsize=13, color="#c62828",
                    gid="doubtful-month", usetex=False)
    caption = "; ".join(f"\u26a0 {month}: {why}" for month, why in sorted(marks.items()))
    figure.text(0.01, 0.01, caption.replace("$", r"\$"), ha="left", va="bottom", fontsize=9, color="#c62828",
                gid="doubtful-caption", usetex=False, wrap=True)
    return caption


def _margins(figure: Any, rows: int, columns: int, *, left: float, right: float, top: float, bottom: float,
             hgap: float, wgap: float) -> None:
    """Place a figure's subplot grid with margins and gaps given in inches."""
    width, height = figure.get_size_inches()
    cell_w = (width - left - right - wgap * (columns - 1)) / columns
    cell_h = (height - top - bottom - hgap * (rows - 1)) / rows
    figure.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height,
                           top=1 - top / height, wspace=wgap / cell_w, hspace=hgap / cell_h)


def _clean_labels(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the text the charts label (feedstocks, units) on one line, without control or format
    characters."""
    columns = [c for c in ("feedstock", "output_unit", "ledger_name") if c in frame.columns]
    if not columns or frame.empty:
        return frame
    cleaned = frame.copy()
    for column in columns:
        cleaned[column] = [_one_line(value, 200) if isinstance(value, str) else value for value in frame[column]]
    return cleaned


def _png(figure: Any, dpi: int) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, facecolor="white")
    return buffer.getvalue()
