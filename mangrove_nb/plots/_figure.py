"""What every chart shares in drawing: a figure outside pyplot (shown in notebooks), colours, API text drawn
literally, amounts as they are labelled, the legend under the axes and the y axis floored at zero."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.legend_handler import HandlerTuple
from matplotlib.patches import Rectangle
from matplotlib.patheffects import withStroke

# Colours are chosen here rather than from the style's cycle so that a group's bars and its cumulative line
# match, and the same ledger gets the same colour in every panel of a report.
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")
_FAILED_COLOR = "#c62828"
_TOTAL_COLOR = "#333333"
_MUTED = "0.4"
# How a failed batch looks, on its bar and in the legend: hatched, and marked with a red cross.
_FAILED_HATCH = "////"
_FAILED_MARK: dict[str, Any] = {"marker": "X", "markersize": 9, "color": _FAILED_COLOR, "markeredgecolor": "white"}
_BAR_FILL = 0.8  # the share of a batch's length its bars take (the rest separates neighbouring batches)
_DEFAULT_SIZE = (10.0, 5.2)
_NO_TEX: dict[str, Any] = {"usetex": False}
_OUTLINE = withStroke(linewidth=4.0, foreground="white")
_WARN = "\u26a0"  # follows a figure the caller marked as doubtful


def _color(index: int) -> str:
    """The palette's colour for the group at ``index`` (it repeats after the palette's length)."""
    return _PALETTE[index % len(_PALETTE)]


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


def _legend_below(ax: Axes, entries: list[tuple[Any, str]], *, gap_in: float = 0.72) -> None:
    """One legend entry per group (bar and its cumulative line together), under the axes, outside the data.

    ``gap_in`` is the room, in inches, left under the axes for the tick labels and the axis label.
    """
    handles = [handle for handle, _ in entries]
    texts = [_literal(text) for _, text in entries]
    height_in = _axes_inches(ax)[1]
    legend = ax.legend(handles, texts, loc="upper center", bbox_to_anchor=(0.5, -gap_in / max(height_in, 0.5)),
                       ncols=_legend_columns(ax, [text for _, text in entries]), frameon=False, fontsize=9,
                       handler_map={tuple: HandlerTuple(ndivide=None)}, handlelength=2.4)
    for text in legend.get_texts():
        text.set_usetex(False)


def _legend_columns(ax: Axes, texts: list[str]) -> int:
    """As many columns as fit under the axes, so a long legend wraps instead of squeezing the plot."""
    width_in = _axes_inches(ax)[0]
    entries = sorted((0.7 + 0.065 * len(text) for text in texts), reverse=True)  # handle + text at 9 pt, inches
    columns = 1
    while columns < len(entries) and sum(entries[: columns + 1]) <= width_in:
        columns += 1
    return columns


def _axes_inches(ax: Axes) -> tuple[float, float]:
    """The axes' width and height in inches, from its share of the figure."""
    figure = ax.get_figure(root=True)
    assert isinstance(figure, Figure)  # every axes we draw on belongs to a Figure
    position, (width, height) = ax.get_position(), figure.get_size_inches()
    return position.width * width, position.height * height


def _y_grid(ax: Axes) -> None:
    """Light horizontal grid lines behind the data."""
    ax.grid(axis="y", color="0.9", linewidth=0.8)
    ax.set_axisbelow(True)


def _floor_at_zero(ax: Axes) -> None:
    low, high = ax.get_ylim()
    if low < 0 <= high and all(v >= 0 for v in _data_y(ax)):
        ax.set_ylim(0, high)


def _data_y(ax: Axes) -> list[float]:
    values: list[float] = []
    for patch in ax.patches:
        if isinstance(patch, Rectangle):  # the bars
            values.extend([patch.get_y(), patch.get_y() + patch.get_height()])
    for line in ax.get_lines():
        values.extend(float(y) for y in np.asarray(line.get_ydata(), dtype=float) if math.isfinite(y))
    return values


# --- text -----------------------------------------------------------------------------------------------


def _literal(text: object) -> str:
    """API text as matplotlib should draw it: ``$`` escaped so it is never mathtext (and usetex is off)."""
    return str(text).replace("$", r"\$")


def _number(value: float) -> str:
    return f"{value:,.3f}"


def _amount(value: float, unit: str | None) -> str:
    """A total as bars and boxes label it, to three decimals as the report's tables: "1,234.500 t" (no unit when
    none is known)."""
    return f"{_number(value)} {unit or ''}".rstrip()
