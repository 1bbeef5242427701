"""The time axis every chart shares: the period shown (asked for, or the frame's own), x limits in
matplotlib date numbers, UTC month ticks and labels, and a month's key and text as the report writes it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime

import matplotlib.dates as mdates
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.ticker import Formatter, NullFormatter

from mangrove_nb.periods import Period, PeriodLike, parse_period

from ._figure import _axes_inches

_ONE_SECOND = 1.0 / 86400.0  # in matplotlib date units (days)
_BATCH_AXIS = "Batch period (UTC)"  # the x label under batches drawn over their periods


def _period_of(data: pd.DataFrame, period: PeriodLike | None) -> Period | None:
    """The period asked for, else the one the frame was fetched for (``frame.attrs``), else None."""
    if period is not None:
        return parse_period(period)
    attrs = data.attrs
    try:
        start = datetime.fromisoformat(str(attrs["period_start"]))
        end = datetime.fromisoformat(str(attrs["period_end"]))
        return Period(start, end, str(attrs.get("period") or f"{start:%Y-%m-%d}/{end:%Y-%m-%d}"))
    except (KeyError, ValueError, TypeError):
        return None


def _period_numbers(shown: Period) -> tuple[float, float]:
    return float(mdates.date2num(shown.start)), float(mdates.date2num(shown.end)) + _ONE_SECOND


def _x_limits(rows: pd.DataFrame, shown: Period | None) -> tuple[float, float]:
    if shown is not None:
        return _period_numbers(shown)
    start, end = float(rows["x0"].min()), float(rows["x1"].max())
    margin = (end - start) * 0.02
    return start - margin, end + margin


class _MonthFormatter(Formatter):
    """UTC month labels: "Jan 2024" when there is room, else "Jan" with the year under the first and Januaries.

    Whether there is room is decided when the ticks are drawn, from the axes' size after layout.
    """

    def __call__(self, x: float, pos: int | None = None) -> str:
        return self.format_ticks([x])[0]

    def format_ticks(self, values: Sequence[float]) -> list[str]:
        low, high = sorted(self.axis.get_view_interval()) if self.axis is not None else (-math.inf, math.inf)
        roomy = self._inches_per_tick(values, high - low) >= 0.8
        labels: list[str] = []
        first = True
        for value in values:
            moment = mdates.num2date(value, tz=UTC)
            inside = low <= value <= high
            if roomy:
                labels.append(f"{moment:%b %Y}")
            else:
                labels.append(f"{moment:%b}\n{moment:%Y}" if inside and (first or moment.month == 1)
                              else f"{moment:%b}")
            first = first and not inside
        return labels

    def _inches_per_tick(self, values: Sequence[float], span: float) -> float:
        if self.axis is None or len(values) < 2 or span <= 0:
            return math.inf
        axes, figure = self.axis.axes, self.axis.axes.get_figure(root=True)  # type: ignore[union-attr]
        if figure is None:
            return math.inf
        width_in = axes.bbox.width / figure.dpi
        return width_in * (values[1] - values[0]) / span


def _date_axis(ax: Axes, start: float, end: float) -> None:
    """Readable UTC ticks: month names centred under monthly bars, dates for shorter spans."""
    span = end - start
    width_in = _axes_inches(ax)[0]
    if span >= 56:
        months = max(1, round(span / 30.44))
        room = width_in / months  # inches per month
        step = next((s for s in (1, 2, 3, 4, 6, 12) if room * s >= 0.42), 12)
        if step == 1:
            # Labels sit mid-month, under the bars; unlabelled ticks at the month boundaries separate them.
            ax.xaxis.set_major_locator(mdates.MonthLocator(bymonthday=16, tz=UTC))
            ax.xaxis.set_major_formatter(_MonthFormatter())
            ax.xaxis.set_minor_locator(mdates.MonthLocator(bymonthday=1, tz=UTC))
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.tick_params(axis="x", which="major", length=0)
            ax.tick_params(axis="x", which="minor", length=4)
        else:
            ax.xaxis.set_major_locator(mdates.MonthLocator(bymonthday=1, interval=step, tz=UTC))
            ax.xaxis.set_major_formatter(_MonthFormatter())
            ax.xaxis.set_minor_locator(mdates.MonthLocator(bymonthday=1, tz=UTC))
            ax.xaxis.set_minor_formatter(NullFormatter())
    else:
        locator = mdates.AutoDateLocator(tz=UTC, minticks=3, maxticks=max(3, int(width_in / 1.1)))
        ax.xaxis.set_major_locator(locator)
        fmt = "%d %b %Y" if span >= 2 else "%d %b %H:%M"
        ax.xaxis.set_major_formatter(mdates.DateFormatter(fmt, tz=UTC))


# --- months ---------------------------------------------------------------------------------------------


def _month_key(month: Period) -> tuple[int, int]:
    """The (year, month) a month of a period starts in: the key rows are grouped by (``_placed_rows``)."""
    return month.start.year, month.start.month


def _key_text(key: tuple[int, int]) -> str:
    """A month as the report's tables write it: "2024-11"."""
    year, month = key
    return f"{year}-{month:02d}"


def _month_text(month: Period) -> str:
    """A month as the report's tables write it: "2024-11"."""
    return _key_text(_month_key(month))


def _month_label(month: Period) -> str:
    if month.kind == "month":
        return f"{month.start:%b %Y}"
    return f"{month.start:%d %b} – {month.end:%d %b %Y}"  # a partial month of a custom period
