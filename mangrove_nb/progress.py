"""One progress display for long work: a widget bar in a live notebook, a text line in a terminal, silence
in headless reports and pipes.

``progress_display(title, enabled)`` picks the kind. The widget bar is replaced by a plain text line when
it closes, so a saved or rendered notebook shows what happened without widget JavaScript and without
widget state. Whether to show progress at all is the caller's (``Settings.show_progress``, which report
runs turn off with ``MANGROVE_NB_QUIET=1``).
"""

from __future__ import annotations

import sys
from typing import Any, Protocol

from ._ipython import kernel

BAR_WIDTH = 24


class Progress(Protocol):
    def update(self, percent: float, description: str | None = None) -> None: ...

    def close(self, summary: str) -> None: ...


class NoProgress:
    """Shows nothing (reports, pipes, progress=False)."""

    def update(self, percent: float, description: str | None = None) -> None:
        pass

    def close(self, summary: str) -> None:
        pass


class TextProgress:
    """One line on a terminal, rewritten in place: ``[#####-----]  50%  Processing batch 2 of 3``."""

    def __init__(self, title: str, stream: Any = None) -> None:
        self._title = title
        self._stream = stream if stream is not None else sys.stderr
        self._last = ""

    def update(self, percent: float, description: str | None = None) -> None:
        filled = round(BAR_WIDTH * percent / 100)
        line = f"{self._title} [{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {percent:3.0f}%  {description or ''}"
        if line != self._last:
            self._stream.write("\r" + line.ljust(len(self._last)))
            self._stream.flush()
            self._last = line

    def close(self, summary: str) -> None:
        self._stream.write("\r" + summary.ljust(len(self._last)) + "\n")
        self._stream.flush()


class WidgetProgress:
    """An ipywidgets bar in a live notebook, turned into static text when done."""

    def __init__(self, title: str) -> None:
        import ipywidgets as widgets
        from IPython.display import display

        self._bar = widgets.FloatProgress(value=0, min=0, max=100, description=title[:24],
                                          layout=widgets.Layout(width="50%"))
        self._label = widgets.Label("")
        self._box = widgets.HBox([self._bar, self._label])
        self._handle = display(self._box, display_id=True)

    def update(self, percent: float, description: str | None = None) -> None:
        self._bar.value = max(0.0, min(100.0, percent))
        self._label.value = description or ""

    def close(self, summary: str) -> None:
        from IPython.display import Markdown

        if self._handle is not None:
            self._handle.update(Markdown(f"`{summary}`"))
        self._box.close()
        self._bar.close()
        self._label.close()


def in_live_notebook() -> bool:
    """True inside a Jupyter kernel (not a plain IPython terminal)."""
    return kernel() is not None


def progress_display(title: str, enabled: bool | None = True) -> Progress:
    """The right display for here and now; ``enabled=False`` shows nothing."""
    if not enabled:
        return NoProgress()
    if in_live_notebook():
        try:
            return WidgetProgress(title)
        except ImportError:
            return NoProgress()
    stream = sys.stderr
    if stream is not None and hasattr(stream, "isatty") and stream.isatty():
        return TextProgress(title, stream)
    return NoProgress()
