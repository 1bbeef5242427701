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

The package's rooms: ``batches`` (``plot_batches``) and ``quarter`` (``plot_quarter_summary``) draw the charts;
``_rows`` reads a batches frame for them (placed rows, ledgers, groups, units), ``_time`` holds the time axis
(the period shown, UTC month ticks, month keys and labels) and ``_figure`` what every chart draws alike (a
figure outside pyplot, colours, literal text, amounts, the legend). Import from ``mangrove_nb.plots``.
"""

from __future__ import annotations

from ._rows import FrameLike as FrameLike
from .batches import plot_batches
from .quarter import plot_quarter_summary

__all__ = ["plot_batches", "plot_quarter_summary"]
