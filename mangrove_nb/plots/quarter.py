"""``plot_quarter_summary``: a report's monthly totals, one bar per calendar month, with the period's total."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.patches import Patch

from mangrove_nb.periods import PeriodLike, parse_period

from ._figure import _BAR_FILL, _MUTED, _NO_TEX, _WARN, _amount, _color, _legend_below, _literal, _new_axes, _y_grid
from ._rows import FrameLike, _checked_frame, _ledger_keys, _LedgerKey, _placed_rows, _unit_text, _units
from ._time import _key_text, _month_key, _month_label, _month_text

_SHORT_LABELS = 6  # months: a longer period within one year labels its months "Jan", "Feb"...


def plot_quarter_summary(
    frame: FrameLike,
    period: PeriodLike,
    *,
    ax: Axes | None = None,
    title: str | None = None,
    labels: Mapping[str, str] | None = None,
    marks: Mapping[str, str] | None = None,
) -> Axes:
    """Draw a report's monthly totals: one bar per calendar month of ``period``, with the period total annotated.

    A month's total is the sum of ``output_value`` over the complete batches that start in that month
    (UTC). Batches starting outside ``period`` are left out. Every month of the period gets a slot, in
    order, even without a batch: its bar has height 0 and the month is marked "no batches" (or "no complete
    batches" when it only has failed or unfinished ones). Failed batches are not counted, and the months
    that have some say how many. Each bar is labelled with its value; the box in the upper left gives the
    period's total per ledger, with its unit.

    A total that covers fewer months than the period says so ("(2 of 3 months)"), as the report's tables do. A
    month whose complete batches include one without an output value is marked "no value" and not drawn as 0.
    ``marks`` (month "YYYY-MM" -> a short reason, e.g. "may be overstated") puts ⚠ on that month's bar label and
    on the period's total, and lists the reasons under the total: a figure the caller knows to be doubtful
    (a skipped input, a partition generated twice) never shows without its mark.

    Meant for a quarter ("2024Q4"), but any period works (a year gives twelve slots, labelled "Jan" to "Dec" under
    an axis label naming the year, so that the month names and the bars' labels do not overlap). A frame with
    several ledgers gets side-by-side bars and a legend, labelled as in ``plot_batches`` (``labels`` by ledger id).
    Amounts are written to three decimals, as the report's tables write them.
    """
    data = _checked_frame(frame)
    shown = parse_period(period)
    ax = ax if ax is not None else _new_axes((8.0, 4.8))
    labels = dict(labels or {})
    months = shown.months()
    rows = _placed_rows(data)
    rows = rows[(rows["start_time"] >= shown.start) & (rows["start_time"] <= shown.end)]
    ledgers = _ledger_keys(rows, labels) if not rows.empty else []
    units = _units(rows) if not rows.empty else []
    mixed = len(units) > 1
    keys = [_month_key(m) for m in months]
    positions = np.arange(len(months), dtype=float)
    count = max(len(ledgers), 1)
    width = _BAR_FILL / count
    years = {m.start.year for m in months}
    short = len(months) > _SHORT_LABELS and len(years) == 1 and all(m.kind == "month" for m in months)

    marked = {key: str(reason) for key, reason in (marks or {}).items()}
    flagged = {_month_key(m) for m in months if _month_text(m) in marked}
    totals_text: list[str] = []
    top = bottom = 0.0
    for index, ledger in enumerate(ledgers or [_LedgerKey("", "", None)]):
        mine = rows[rows["ledger_key"] == ledger.key] if ledgers else rows
        lefts = positions - _BAR_FILL / 2 + index * width
        label = ledger.legend(mixed) if ledgers else "_nolegend_"
        heights = _month_bars(ax, mine, keys, lefts, width, ledger, label, _color(index),
                              upright=count == 1, flagged=flagged, narrow=short)
        top, bottom = max(top, *heights), min(bottom, *heights)
        counted = mine[mine["counted"]]
        total = float(counted["value"].sum())
        name = f"{ledger.label}: " if len(ledgers) > 1 else ""
        text = name + _amount(total, ledger.unit)
        if set(counted["month"]) & flagged:
            text += f" {_WARN}"
        have = {key for key in set(counted["month"]) if key in keys}
        if 0 < len(have) < len(keys):
            text += f" ({len(have)} of {len(keys)} months)"
        empty = sorted(key for key in set(counted.loc[~counted["has_value"], "month"]) if key in keys)
        if empty:
            text += " (no value: " + ", ".join(map(_key_text, empty)) + ")"
        totals_text.append(text)

    heading = f"{shown.label} total" + ("s" if len(ledgers) > 1 else "")
    annotation = f"{heading}: {totals_text[0]}" if len(totals_text) == 1 else "\n".join([heading + ":", *totals_text])
    reasons = [f"{_WARN} {month}: {why}" for month, why in sorted(marked.items())
               if month in {_month_text(m) for m in months}]
    if reasons:
        annotation += "\n" + "\n".join(reasons)
    ax.text(0.015, 0.97, _literal(annotation), transform=ax.transAxes, ha="left", va="top", fontsize=10,
            fontweight="bold", gid="period-total", usetex=False,
            bbox={"boxstyle": "round,pad=0.4", "facecolor": "white", "edgecolor": "0.75"})
    lines = annotation.count("\n") + 1
    # Leave room above the bars (and their labels) for the total's box.
    span = (top - bottom) or 1.0
    ax.set_ylim(bottom - (0.05 * span if bottom < 0 else 0.0), top + span * (0.24 + 0.08 * lines))
    ax.set_xlim(-0.6, len(months) - 0.4)
    if short:  # twelve "Jan 2024" labels would run into each other
        ax.set_xticks(positions, [f"{m.start:%b}" for m in months])
        ax.set_xlabel(f"Month of {years.pop()} (UTC)", **_NO_TEX)
    else:
        ax.set_xticks(positions, [_month_label(m) for m in months])
        ax.set_xlabel("Month (UTC)", **_NO_TEX)
    ax.set_ylabel(_literal(f"Monthly total ({_unit_text(units)})"), **_NO_TEX)
    _y_grid(ax)
    if len(ledgers) > 1:
        handles = [Patch(facecolor=_color(i)) for i in range(len(ledgers))]
        entries = [(handle, ledger.legend(mixed)) for handle, ledger in zip(handles, ledgers, strict=True)]
        _legend_below(ax, entries, gap_in=0.55)
    if title is None:
        name = ledgers[0].label if len(ledgers) == 1 else "Monthly totals"
        title = f"{name}, {shown.label}: monthly totals" if len(ledgers) == 1 else f"{name}, {shown.label}"
    ax.set_title(_literal(title), **_NO_TEX)
    return ax


def _month_bars(ax: Axes, mine: pd.DataFrame, keys: list[tuple[int, int]], lefts: np.ndarray, width: float,
                ledger: _LedgerKey, label: str, color: str, *, upright: bool,
                flagged: set[tuple[int, int]] | None = None, narrow: bool = False) -> list[float]:
    """One ledger's monthly totals as bars, each labelled with its value (⚠ for a ``flagged`` month); months
    without a total, or with a complete batch without a value, are marked. ``narrow`` bars (a year's) get their
    failed-batch note on two lines."""
    counted = mine[mine["counted"]]
    sums = counted.groupby("month")["value"].sum()
    complete = counted.groupby("month").size()
    valueless = set(counted.loc[~counted["has_value"], "month"])
    flagged = flagged or set()
    failed = mine[mine["is_failed"]].groupby("month").size()
    present = mine.groupby("month").size()
    heights = [0.0 if key in valueless else float(sums.get(key, 0.0)) for key in keys]
    container = ax.bar(lefts, heights, width=width * 0.92, align="edge", label=_literal(label), color=color,
                       zorder=2)
    texts = []
    for patch, key, height in zip(container.patches, keys, heights, strict=True):
        patch.set_gid("month" if complete.get(key, 0) else "missing")
        if not complete.get(key, 0) or key in valueless:
            texts.append("")
            why = "no value" if key in valueless else \
                "no batches" if not present.get(key, 0) else "no complete\nbatches"
            if key in valueless:
                patch.set_gid("no-value")
            ax.annotate(why, (patch.get_x() + patch.get_width() / 2, 0), xytext=(0, 4), textcoords="offset points",
                        ha="center", va="bottom", rotation=0 if upright else 90, fontsize=9, color=_MUTED,
                        style="italic", gid="missing-month", usetex=False)
            continue
        gap = "\n" if narrow else " "
        note = f"\n{int(failed.get(key, 0))} failed,{gap}not counted" if failed.get(key, 0) else ""
        warn = f" {_WARN}" if key in flagged else ""
        texts.append(_amount(height, ledger.unit) + warn + note)
    for text in ax.bar_label(container, labels=[_literal(text) for text in texts], padding=3, fontsize=9):
        text.set_usetex(False)
    return heights
