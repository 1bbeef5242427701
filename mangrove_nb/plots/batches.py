"""``plot_batches``: each batch's output as a bar over its period, with the running total of complete batches."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from mangrove_nb.periods import Period, PeriodLike

from ._figure import (
    _BAR_FILL,
    _FAILED_COLOR,
    _FAILED_HATCH,
    _FAILED_MARK,
    _MUTED,
    _NO_TEX,
    _OUTLINE,
    _TOTAL_COLOR,
    _floor_at_zero,
    _legend_below,
    _literal,
    _new_axes,
    _y_grid,
)
from ._rows import (
    _FEEDSTOCK,
    FrameLike,
    _checked_frame,
    _Group,
    _groups,
    _ledger_keys,
    _placed_rows,
    _unit_text,
    _units,
)
from ._time import _BATCH_AXIS, _date_axis, _period_numbers, _period_of, _x_limits

_ALL_FEEDSTOCKS = "Cumulative, all feedstocks"  # the one cumulative line of a ledger grouped by feedstock


def plot_batches(
    frame: FrameLike,
    *,
    ax: Axes | None = None,
    by: Literal["auto", "ledger", "feedstock"] = "auto",
    cumulative: bool = True,
    stacked: bool | None = None,
    period: PeriodLike | None = None,
    title: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> Axes:
    """Draw each batch's primary output as a bar over the batch's period, with the cumulative output as a line.

    ``frame`` is a batches frame (or a list of them, concatenated). Each bar starts at the batch's
    ``start_time`` and spans its length (``end_time - start_time``), in UTC.

    Groups: ``by="ledger"`` gives one colour per ledger, labelled ``labels[ledger_id]`` when given, else the
    batch's ``output_name``, else the ledger id. ``by="feedstock"`` gives one colour per feedstock (a frame of
    one feedstock-partitioned ledger; ``labels`` may rename feedstocks). ``"auto"`` picks feedstock when the
    ``feedstock`` column has values and the frame holds one ledger, else ledger.

    Layout (``stacked=None``): feedstocks are stacked, since they are parts of one ledger and the stack's
    height is the ledger's output for the batch period; ledgers are side by side, since different ledgers'
    outputs do not add up. ``stacked=True``/``False`` overrides this.

    ``cumulative=True`` adds, on a secondary y axis, the running sum of complete batches' outputs at each
    batch's end: one line per ledger (in the ledger's colour), or one line for the ledger's total when
    grouping by feedstock. Failed batches are hatched, marked with a red cross and not counted; batches in
    other states are faded and not counted.

    ``period`` (a ``Period`` or anything ``parse_period`` reads; default: the period the frame was fetched
    for, from ``frame.attrs``) sets the x limits and the message of an empty frame ("No batches in 2024").
    The y labels carry the output unit ("mixed units: t, tCO2e" when the ledgers differ).

    The legend sits under the axes: on your own figure, use ``layout="constrained"`` or save with
    ``bbox_inches="tight"`` so it is kept. Returns the primary Axes (bars); the cumulative lines live on its
    ``twinx()`` sibling.
    """
    data = _checked_frame(frame)
    shown = _period_of(data, period)
    ax = ax if ax is not None else _new_axes()
    if by not in ("auto", "ledger", "feedstock"):
        raise ValueError(f"by must be 'auto', 'ledger' or 'feedstock', not {by!r}.")
    labels = dict(labels or {})

    if data.empty:
        return _draw_empty(ax, shown, title)

    rows = _placed_rows(data)
    ledgers = _ledger_keys(rows, labels)
    if by == "auto":
        by = "feedstock" if rows[_FEEDSTOCK].notna().any() and len(ledgers) == 1 else "ledger"
    if by == "feedstock" and len(ledgers) > 1:
        raise ValueError(
            f"by='feedstock' needs a frame of one ledger; this one holds {len(ledgers)}. "
            "Plot each ledger on its own axes, or use by='ledger'."
        )
    stacked = (by == "feedstock") if stacked is None else stacked
    groups = _groups(rows, by, labels, ledgers)
    units = _units(rows)

    bar_handles = _draw_bars(ax, groups, stacked=stacked)
    legend: list[tuple[Any, str]] = []
    line_handles: dict[str, Line2D] = {}
    if cumulative:
        twin = ax.twinx()
        line_handles = _draw_cumulative(twin, rows, groups, by)
        twin.set_ylabel(_literal(f"Cumulative output ({_unit_text(units)})"), **_NO_TEX)
        _floor_at_zero(twin)
    for group in groups:
        line = line_handles.get(group.key)
        legend.append(((bar_handles[group.key], line) if line is not None else bar_handles[group.key], group.legend))
    if "__total__" in line_handles:
        legend.append((line_handles["__total__"], _ALL_FEEDSTOCKS))
    legend.extend(_state_legend(rows))

    start, end = _x_limits(rows, shown)
    ax.set_xlim(start, end)
    _date_axis(ax, start, end)
    ax.set_xlabel(_BATCH_AXIS, **_NO_TEX)
    ax.set_ylabel(_literal(f"Output per batch ({_unit_text(units)})"), **_NO_TEX)
    _floor_at_zero(ax)
    _y_grid(ax)
    _legend_below(ax, legend)
    ax.set_title(_literal(title if title is not None else _default_title(groups, by, shown)), **_NO_TEX)
    return ax


def _draw_bars(ax: Axes, groups: list[_Group], *, stacked: bool) -> dict[str, Patch]:
    """One BarContainer per group (heights = output_value, in the frame's order); returns legend patches."""
    handles: dict[str, Patch] = {}
    positive: dict[tuple[float, float], float] = {}
    negative: dict[tuple[float, float], float] = {}
    count = len(groups)
    for index, group in enumerate(groups):
        rows = group.rows
        span = rows["width"].to_numpy() * _BAR_FILL
        pad = rows["width"].to_numpy() * (1 - _BAR_FILL) / 2
        heights = rows["value"].to_numpy()
        if stacked:
            lefts, widths = rows["x0"].to_numpy() + pad, span
            bottoms = []
            for slot, height in zip(zip(rows["x0"], rows["x1"], strict=True), heights, strict=True):
                store = positive if height >= 0 else negative
                bottoms.append(store.get(slot, 0.0))
                store[slot] = store.get(slot, 0.0) + height
            bottom = np.asarray(bottoms, dtype=float)
        else:
            widths = span / count
            lefts = rows["x0"].to_numpy() + pad + index * widths
            bottom = np.zeros(len(rows))
        container = ax.bar(lefts, heights, width=widths, bottom=bottom, align="edge", color=group.color,
                           edgecolor="white", linewidth=0.6, label=_literal(group.legend), zorder=2)
        for patch, failed, counted in zip(container.patches, rows["is_failed"], rows["counted"], strict=True):
            if failed:
                patch.set_facecolor("white")
                patch.set_edgecolor(_FAILED_COLOR)
                patch.set_hatch(_FAILED_HATCH)
                patch.set_linewidth(1.0)
                patch.set_gid("failed")
            elif not counted:
                patch.set_alpha(0.4)
                patch.set_gid("not-complete")
            else:
                patch.set_gid("complete")
        failed_rows = rows["is_failed"].to_numpy()
        if failed_rows.any():
            centers = (lefts + widths / 2)[failed_rows]
            tops = (bottom + heights)[failed_rows]
            ax.plot(centers, tops, linestyle="none", **_FAILED_MARK, markeredgewidth=0.8, zorder=4, clip_on=False,
                    gid="failed-marker", label="_failed")
        handles[group.key] = Patch(facecolor=group.color, edgecolor="white", label=group.legend)
    return handles


def _draw_cumulative(twin: Axes, rows: pd.DataFrame, groups: list[_Group], by: str) -> dict[str, Line2D]:
    """Running sums of complete batches at each batch's end; per ledger, or one total line for feedstocks."""
    lines: dict[str, Line2D] = {}
    series: list[tuple[str, pd.DataFrame, str, str]]
    if by == "feedstock":
        series = [("__total__", rows, _TOTAL_COLOR, _ALL_FEEDSTOCKS)]
    else:
        series = [(g.key, g.rows, g.color, g.legend) for g in groups]
    for key, mine, color, label in series:
        counted = mine[mine["counted"]]
        if counted.empty:
            continue
        by_end = counted.groupby("x1")["value"].sum().sort_index()
        xs = np.concatenate([[counted["x0"].min()], by_end.index.to_numpy()])
        ys = np.concatenate([[0.0], by_end.cumsum().to_numpy()])
        (line,) = twin.plot(xs, ys, color=color, linewidth=2.0, marker="o", markersize=3.5, zorder=3,
                            label=_literal(f"Cumulative {label}"), gid=f"cumulative:{key}",
                            path_effects=[_OUTLINE])  # a white edge keeps the line visible over its own bars
        lines[key] = line
    return lines


def _state_legend(rows: pd.DataFrame) -> list[tuple[Any, str]]:
    entries: list[tuple[Any, str]] = []
    if rows["is_failed"].any():
        hatched = Patch(facecolor="white", edgecolor=_FAILED_COLOR, hatch=_FAILED_HATCH)
        cross = Line2D([], [], linestyle="none", **_FAILED_MARK)
        entries.append(((hatched, cross), "Failed batch (not counted)"))
    if (~rows["is_failed"] & ~rows["counted"]).any():
        entries.append((Patch(facecolor="0.5", alpha=0.4), "Not complete (not counted)"))
    return entries


def _draw_empty(ax: Axes, shown: Period | None, title: str | None) -> Axes:
    where = f" in {shown.label}" if shown is not None else ""
    ax.text(0.5, 0.5, _literal(f"No batches{where}"), transform=ax.transAxes, ha="center", va="center",
            fontsize=13, color=_MUTED, gid="empty-message", usetex=False)
    ax.set_yticks([])
    if shown is not None:
        start, end = _period_numbers(shown)
        ax.set_xlim(start, end)
        _date_axis(ax, start, end)
        ax.set_xlabel(_BATCH_AXIS, **_NO_TEX)
    else:
        ax.set_xticks([])
    ax.set_title(_literal(title if title is not None else f"Batches{where}"), **_NO_TEX)
    return ax


def _default_title(groups: list[_Group], by: str, shown: Period | None) -> str:
    where = f", {shown.label}" if shown is not None else ""
    if by == "feedstock":
        ledger = groups[0].rows["output_name"].dropna()
        name = str(ledger.iloc[0]) if not ledger.empty else "Output"
        return f"{name} by feedstock{where}"
    if len(groups) == 1:
        return f"{groups[0].label} per batch{where}"
    return f"Output per batch{where}"
