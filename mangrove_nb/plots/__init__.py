"""Matplotlib figures of batch frames: outputs per batch with their running total, and a quarter summary.

Every function takes a batches frame (``client.batches(...)``, schema ``frames.BATCHES_SCHEMA``), draws on
``ax`` when given or on a new figure, and returns the Axes, so plots compose into report figures.

What every function here promises:

- No global state. A new figure is a ``matplotlib.figure.Figure`` built directly, not through pyplot, so
  nothing is left in pyplot's figure list to reappear in a notebook's later plots; rcParams and the style
  are read, never changed; ``plt.show()`` is never called. In a notebook, show a new figure by ending the
  cell with ``ax.figure`` (or ``display(ax.figure)``); ``fig.savefig(...)`` works as usual.
- API text (ledger names, feedstocks, units) is drawn literally: ``$`` is escaped as ``\\$`` and every text
  is drawn with ``usetex=False``, so a name like ``$x^2$`` never becomes mathtext or LaTeX. Nothing here
  produces HTML.
- Time is UTC: batch times are placed by their UTC instants, date ticks are formatted in UTC whatever
  ``rcParams["timezone"]`` says, and the axis labels say so.
- Only ``complete`` batches count towards totals (the cumulative line and the quarter's totals). Failed
  batches are drawn hatched with a red cross and left out; batches in any other state (e.g. still pending)
  are drawn faded and left out too. The cumulative output is the running sum of the frame's own complete
  batches, not the API's ``ledger_balance``, whose meaning across ledgers and partitions is undocumented.

There is no ``plot_ledger_comparison``: ``plot_batches`` on a frame of several ledgers (``client.batches([a,
b], period)``, or a list of frames) already compares them on one figure, side by side with one legend entry
each. Ledgers in different units are better compared as small multiples, which ``ax=`` allows::

    fig = matplotlib.figure.Figure(figsize=(10, 7), layout="constrained")
    top, bottom = fig.subplots(2, sharex=True)
    plot_batches(removal, ax=top, period="2024"); plot_batches(credits, ax=bottom, period="2024")
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.legend_handler import HandlerTuple
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.patheffects import withStroke
from matplotlib.ticker import Formatter, NullFormatter

from mangrove_nb.periods import Period, PeriodLike, parse_period

__all__ = ["plot_batches", "plot_quarter_summary"]

FrameLike = pd.DataFrame | Sequence[pd.DataFrame]

# The columns these plots read (names from frames.BATCHES_SCHEMA); the rest of a frame is ignored.
_REQUIRED = ("start_time", "end_time", "state", "output_name", "output_unit", "output_value", "ledger_id")
_FEEDSTOCK = "feedstock"

# Colours are chosen here rather than from the style's cycle so that a group's bars and its cumulative line
# match, and the same ledger gets the same colour in every panel of a report.
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")
_FAILED_COLOR = "#c62828"
_TOTAL_COLOR = "#333333"
_MUTED = "0.4"
_BAR_FILL = 0.8  # the share of a batch's length its bars take (the rest separates neighbouring batches)
_DEFAULT_SIZE = (10.0, 5.2)
_NO_TEX = {"usetex": False}
_ONE_SECOND = 1.0 / 86400.0  # in matplotlib date units (days)
_OUTLINE = withStroke(linewidth=4.0, foreground="white")


# --- public functions -----------------------------------------------------------------------------------


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
        legend.append((line_handles["__total__"], "Cumulative, all feedstocks"))
    legend.extend(_state_legend(rows))

    start, end = _x_limits(rows, shown)
    ax.set_xlim(start, end)
    _date_axis(ax, start, end)
    ax.set_xlabel("Batch period (UTC)", **_NO_TEX)
    ax.set_ylabel(_literal(f"Output per batch ({_unit_text(units)})"), **_NO_TEX)
    _floor_at_zero(ax)
    ax.grid(axis="y", color="0.9", linewidth=0.8)
    ax.set_axisbelow(True)
    _legend_below(ax, legend)
    ax.set_title(_literal(title if title is not None else _default_title(groups, by, shown)), **_NO_TEX)
    return ax


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

    Meant for a quarter ("2024Q4"), but any period works (a year gives twelve slots). A frame with several
    ledgers gets side-by-side bars and a legend, labelled as in ``plot_batches`` (``labels`` by ledger id).
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
    keys = [(m.start.year, m.start.month) for m in months]
    positions = np.arange(len(months), dtype=float)
    count = max(len(ledgers), 1)
    width = _BAR_FILL / count

    marked = {key: str(reason) for key, reason in (marks or {}).items()}
    flagged = {(m.start.year, m.start.month) for m in months if _month_text(m) in marked}
    totals_text: list[str] = []
    top = bottom = 0.0
    for index, ledger in enumerate(ledgers or [_LedgerKey("", "", None)]):
        mine = rows[rows["ledger_key"] == ledger.key] if ledgers else rows
        lefts = positions - _BAR_FILL / 2 + index * width
        label = ledger.legend(mixed) if ledgers else "_nolegend_"
        heights = _month_bars(ax, mine, keys, lefts, width, ledger, label, _PALETTE[index % len(_PALETTE)],
                              upright=count == 1, flagged=flagged)
        top, bottom = max(top, *heights), min(bottom, *heights)
        counted = mine[mine["counted"]]
        total = float(counted["value"].sum())
        name = f"{ledger.label}: " if len(ledgers) > 1 else ""
        text = f"{name}{_number(total)} {ledger.unit or ''}".rstrip()
        if set(counted["month"]) & flagged:
            text += " \u26a0"
        have = {key for key in set(counted["month"]) if key in keys}
        if 0 < len(have) < len(keys):
            text += f" ({len(have)} of {len(keys)} months)"
        empty = sorted(key for key in set(counted.loc[~counted["has_value"], "month"]) if key in keys)
        if empty:
            text += " (no value: " + ", ".join(f"{y}-{m:02d}" for y, m in empty) + ")"
        totals_text.append(text)

    heading = f"{shown.label} total" + ("s" if len(ledgers) > 1 else "")
    annotation = f"{heading}: {totals_text[0]}" if len(totals_text) == 1 else "\n".join([heading + ":", *totals_text])
    reasons = [f"\u26a0 {month}: {why}" for month, why in sorted(marked.items())
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
    ax.set_xticks(positions, [_month_label(m) for m in months])
    ax.set_xlabel("Month (UTC)", **_NO_TEX)
    ax.set_ylabel(_literal(f"Monthly total ({_unit_text(units)})"), **_NO_TEX)
    ax.grid(axis="y", color="0.9", linewidth=0.8)
    ax.set_axisbelow(True)
    if len(ledgers) > 1:
        handles = [Patch(facecolor=_PALETTE[i % len(_PALETTE)]) for i in range(len(ledgers))]
        entries = [(handle, ledger.legend(mixed)) for handle, ledger in zip(handles, ledgers, strict=True)]
        _legend_below(ax, entries, gap_in=0.55)
    if title is None:
        name = ledgers[0].label if len(ledgers) == 1 else "Monthly totals"
        title = f"{name}, {shown.label}: monthly totals" if len(ledgers) == 1 else f"{name}, {shown.label}"
    ax.set_title(_literal(title), **_NO_TEX)
    return ax


def _month_bars(ax: Axes, mine: pd.DataFrame, keys: list[tuple[int, int]], lefts: np.ndarray, width: float,
                ledger: _LedgerKey, label: str, color: str, *, upright: bool,
                flagged: set[tuple[int, int]] | None = None) -> list[float]:
    """One ledger's monthly totals as bars, each labelled with its value (⚠ for a ``flagged`` month); months
    without a total, or with a complete batch without a value, are marked."""
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
        note = f"\n{int(failed.get(key, 0))} failed, not counted" if failed.get(key, 0) else ""
        warn = " \u26a0" if key in flagged else ""
        texts.append(f"{_number(height)} {ledger.unit or ''}".rstrip() + warn + note)
    for text in ax.bar_label(container, labels=[_literal(text) for text in texts], padding=3, fontsize=9):
        text.set_usetex(False)
    return heights


# --- reading the frame ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _LedgerKey:
    key: str
    label: str
    unit: str | None

    def legend(self, with_unit: bool) -> str:
        return f"{self.label} ({self.unit})" if with_unit and self.unit else self.label


@dataclass
class _Group:
    key: str
    label: str
    legend: str
    rows: pd.DataFrame
    ledger: str
    color: str


def _checked_frame(frame: FrameLike) -> pd.DataFrame:
    if isinstance(frame, pd.DataFrame):
        data = frame
    elif isinstance(frame, Sequence) and not isinstance(frame, str | bytes) and all(
            isinstance(part, pd.DataFrame) for part in frame):
        parts = [part for part in frame if not part.empty]
        data = pd.concat(parts, ignore_index=True) if parts else (frame[0] if frame else pd.DataFrame())
        if frame:
            data.attrs = dict(frame[0].attrs)
    else:
        raise TypeError(f"Expected a batches DataFrame (client.batches(...)) or a list of them, not {type(frame)}.")
    missing = [name for name in _REQUIRED if name not in data.columns]
    if missing:
        raise ValueError(f"Not a batches frame: the columns {', '.join(missing)} are missing (see client.batches).")
    return data


def _utc(series: pd.Series) -> pd.Series:
    times = pd.to_datetime(series, utc=False)
    if getattr(times.dt, "tz", None) is None:
        return times.dt.tz_localize("UTC")  # naive times are UTC, as everywhere in mangrove_nb
    return times.dt.tz_convert("UTC")


def _placed_rows(data: pd.DataFrame) -> pd.DataFrame:
    """The frame's rows with their bar geometry (matplotlib date numbers, UTC) and accounting flags."""
    rows = data[data["start_time"].notna()].reset_index(drop=True)  # a batch without a start has no place
    start = _utc(rows["start_time"])
    end = _utc(rows["end_time"])
    length = end - start
    known = length[length.notna() & (length > pd.Timedelta(0))]
    fallback = known.median() if not known.empty else pd.Timedelta(days=1)
    length = length.where(length.notna() & (length > pd.Timedelta(0)), fallback)
    rows["start_time"] = start
    rows["x0"] = mdates.date2num(start.dt.tz_localize(None).to_numpy())
    # end_time is the batch's last second (inclusive), so the bar reaches the next period's first second.
    rows["width"] = length.dt.total_seconds().to_numpy() / 86400.0 + _ONE_SECOND
    rows["x1"] = rows["x0"] + rows["width"]
    state = rows["state"].astype("string").fillna("").str.lower()
    rows["is_failed"] = (state == "failed").to_numpy(dtype=bool)
    rows["counted"] = (state == "complete").to_numpy(dtype=bool)
    value = pd.to_numeric(rows["output_value"], errors="coerce").astype(float)
    rows["has_value"] = value.notna().to_numpy(dtype=bool)
    rows["value"] = value.fillna(0.0).to_numpy()
    rows["month"] = list(zip(start.dt.year, start.dt.month, strict=True))
    rows["ledger_key"] = rows["ledger_id"].astype("string").fillna("").to_numpy(dtype=object)
    if _FEEDSTOCK not in rows.columns:
        rows[_FEEDSTOCK] = pd.Series(pd.NA, index=rows.index, dtype="string")
    return rows


def _ledger_keys(rows: pd.DataFrame, labels: Mapping[str, str]) -> list[_LedgerKey]:
    """The frame's ledgers in display order: the order of ``labels`` when given, then by label."""
    found: list[_LedgerKey] = []
    for key, mine in rows.groupby("ledger_key", sort=False):
        names = mine["output_name"].dropna()
        unit_values = mine["output_unit"].dropna()
        label = labels.get(str(key)) or (str(names.iloc[0]) if not names.empty else "") or str(key) or "(no ledger)"
        found.append(_LedgerKey(str(key), label, str(unit_values.iloc[0]) if not unit_values.empty else None))
    taken = [ledger.label for ledger in found]
    found = [  # two ledgers with one output name stay apart in the legend
        _LedgerKey(k.key, f"{k.label} [{k.key}]", k.unit) if taken.count(k.label) > 1 and k.key else k for k in found
    ]
    order = {key: index for index, key in enumerate(labels)}
    return sorted(found, key=lambda k: (order.get(k.key, len(order)), k.label.casefold(), k.key))


def _groups(rows: pd.DataFrame, by: str, labels: Mapping[str, str], ledgers: list[_LedgerKey]) -> list[_Group]:
    mixed = len(_units(rows)) > 1
    groups: list[_Group] = []
    if by == "ledger":
        for index, ledger in enumerate(ledgers):
            mine = rows[rows["ledger_key"] == ledger.key]
            groups.append(_Group(ledger.key, ledger.label, ledger.legend(mixed), mine, ledger.key,
                                 _PALETTE[index % len(_PALETTE)]))
        return groups
    feedstock = rows[_FEEDSTOCK].astype("string").fillna("")
    names = sorted(set(feedstock), key=lambda name: (name == "", name.casefold()))
    for index, name in enumerate(names):
        label = labels.get(name) or name or "(no feedstock)"
        groups.append(_Group(name, label, label, rows[feedstock == name], ledgers[0].key,
                             _PALETTE[index % len(_PALETTE)]))
    return groups


def _units(rows: pd.DataFrame) -> list[str]:
    return sorted({str(unit) for unit in rows["output_unit"].dropna() if str(unit)})


def _unit_text(units: list[str]) -> str:
    if not units:
        return "unit not given"
    if len(units) == 1:
        return units[0]
    return "mixed units: " + ", ".join(units)


# --- drawing --------------------------------------------------------------------------------------------


def _new_axes(size: tuple[float, float] = _DEFAULT_SIZE) -> Axes:
    # A Figure outside pyplot: nothing registered globally, nothing to close, nothing shown by surprise.
    _show_figures_in_notebooks()
    figure = Figure(figsize=size, layout="constrained")
    figure.patch.set_facecolor("white")
    return figure.add_subplot()


def _show_figures_in_notebooks() -> None:
    """Let a cell ending in ``ax.figure`` show the figure as a PNG in Jupyter.

    IPython registers its PNG formatter for Figures only once pyplot or ``%matplotlib inline`` has run; our
    figures never touch pyplot, so without this a notebook would print ``<Figure size 1000x500>``. The
    formatter is the one ``%matplotlib inline`` installs (IPython's ``print_figure``); outside IPython
    nothing happens.
    """
    from .._ipython import ipython_shell

    shell = ipython_shell()
    formatters = getattr(getattr(shell, "display_formatter", None), "formatters", None)
    if not formatters or "image/png" not in formatters:
        return
    png = formatters["image/png"]
    if _has_formatter(png):
        return
    from IPython.core.pylabtools import print_figure

    png.for_type(Figure, lambda figure: print_figure(figure, "png", bbox_inches="tight"))


def _has_formatter(formatter: Any) -> bool:
    try:
        formatter.lookup_by_type(Figure)
    except KeyError:
        return False
    return True


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
                patch.set_hatch("////")
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
            ax.plot(centers, tops, linestyle="none", marker="X", markersize=9, color=_FAILED_COLOR,
                    markeredgecolor="white", markeredgewidth=0.8, zorder=4, clip_on=False, gid="failed-marker",
                    label="_failed")
        handles[group.key] = Patch(facecolor=group.color, edgecolor="white", label=group.legend)
    return handles


def _draw_cumulative(twin: Axes, rows: pd.DataFrame, groups: list[_Group], by: str) -> dict[str, Line2D]:
    """Running sums of complete batches at each batch's end; per ledger, or one total line for feedstocks."""
    lines: dict[str, Line2D] = {}
    series: list[tuple[str, pd.DataFrame, str, str]]
    if by == "feedstock":
        series = [("__total__", rows, _TOTAL_COLOR, "Cumulative, all feedstocks")]
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
        hatched = Patch(facecolor="white", edgecolor=_FAILED_COLOR, hatch="////")
        cross = Line2D([], [], linestyle="none", marker="X", markersize=9, color=_FAILED_COLOR,
                       markeredgecolor="white")
        entries.append(((hatched, cross), "Failed batch (not counted)"))
    if (~rows["is_failed"] & ~rows["counted"]).any():
        entries.append((Patch(facecolor="0.5", alpha=0.4), "Not complete (not counted)"))
    return entries


def _legend_below(ax: Axes, entries: list[tuple[Any, str]], *, gap_in: float = 0.72) -> None:
    """One legend entry per group (bar and its cumulative line together), under the axes, outside the data.

    ``gap_in`` is the room, in inches, left under the axes for the tick labels and the axis label.
    """
    handles = [handle for handle, _ in entries]
    texts = [_literal(text) for _, text in entries]
    height_in = ax.get_position().height * ax.get_figure().get_size_inches()[1]
    legend = ax.legend(handles, texts, loc="upper center", bbox_to_anchor=(0.5, -gap_in / max(height_in, 0.5)),
                       ncols=_legend_columns(ax, [text for _, text in entries]), frameon=False, fontsize=9,
                       handler_map={tuple: HandlerTuple(ndivide=None)}, handlelength=2.4)
    for text in legend.get_texts():
        text.set_usetex(False)


def _legend_columns(ax: Axes, texts: list[str]) -> int:
    """As many columns as fit under the axes, so a long legend wraps instead of squeezing the plot."""
    width_in = ax.get_position().width * ax.get_figure().get_size_inches()[0]
    entries = sorted((0.7 + 0.065 * len(text) for text in texts), reverse=True)  # handle + text at 9 pt, inches
    columns = 1
    while columns < len(entries) and sum(entries[: columns + 1]) <= width_in:
        columns += 1
    return columns


def _draw_empty(ax: Axes, shown: Period | None, title: str | None) -> Axes:
    where = f" in {shown.label}" if shown is not None else ""
    ax.text(0.5, 0.5, _literal(f"No batches{where}"), transform=ax.transAxes, ha="center", va="center",
            fontsize=13, color=_MUTED, gid="empty-message", usetex=False)
    ax.set_yticks([])
    if shown is not None:
        start, end = _period_numbers(shown)
        ax.set_xlim(start, end)
        _date_axis(ax, start, end)
        ax.set_xlabel("Batch period (UTC)", **_NO_TEX)
    else:
        ax.set_xticks([])
    ax.set_title(_literal(title if title is not None else f"Batches{where}"), **_NO_TEX)
    return ax


def _floor_at_zero(ax: Axes) -> None:
    low, high = ax.get_ylim()
    if low < 0 <= high and all(v >= 0 for v in _data_y(ax)):
        ax.set_ylim(0, high)


def _data_y(ax: Axes) -> list[float]:
    values: list[float] = []
    for patch in ax.patches:
        values.extend([patch.get_y(), patch.get_y() + patch.get_height()])
    for line in ax.get_lines():
        values.extend(float(y) for y in np.asarray(line.get_ydata(), dtype=float) if math.isfinite(y))
    return values


def _default_title(groups: list[_Group], by: str, shown: Period | None) -> str:
    where = f", {shown.label}" if shown is not None else ""
    if by == "feedstock":
        ledger = groups[0].rows["output_name"].dropna()
        name = str(ledger.iloc[0]) if not ledger.empty else "Output"
        return f"{name} by feedstock{where}"
    if len(groups) == 1:
        return f"{groups[0].label} per batch{where}"
    return f"Output per batch{where}"


# --- time axis ------------------------------------------------------------------------------------------


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
        axes = self.axis.axes
        width_in = axes.bbox.width / axes.get_figure().dpi
        return width_in * (values[1] - values[0]) / span


def _date_axis(ax: Axes, start: float, end: float) -> None:
    """Readable UTC ticks: month names centred under monthly bars, dates for shorter spans."""
    span = end - start
    width_in = ax.get_position().width * ax.get_figure().get_size_inches()[0]
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


# --- text -----------------------------------------------------------------------------------------------


def _literal(text: object) -> str:
    """API text as matplotlib should draw it: ``$`` escaped so it is never mathtext (and usetex is off)."""
    return str(text).replace("$", r"\$")


def _number(value: float) -> str:
    return f"{value:,.2f}"


def _month_text(month: Period) -> str:
    """A month as the report's tables write it: "2024-11"."""
    return f"{month.start.year}-{month.start.month:02d}"


def _month_label(month: Period) -> str:
    if month.kind == "month":
        return f"{month.start:%b %Y}"
    return f"{month.start:%d %b} – {month.end:%d %b %Y}"  # a partial month of a custom period

