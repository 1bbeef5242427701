"""What several test modules share: plain constants, functions and classes (a test helper, not a test module).

The shared fixtures live in conftest.py. Import these as ``from helpers import ...``, the way the suite imports
``contract`` and ``payload_server`` (pytest puts tests/ on the path).
"""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import mangrove_nb as mnb

#: Client settings for tests: no progress display, fast polling (the emulator's tasks take milliseconds) and
#: short backoff (retries are counted, not waited for). A test that needs other values overrides them by keyword.
FAST: dict[str, Any] = {"show_progress": False, "poll_min_interval": 0.02, "poll_interval": 0.05,
                        "poll_max_interval": 0.1, "backoff_initial": 0.01, "backoff_max": 0.05}


def connect_to(url: str, token: str, **options: Any) -> mnb.Client:
    """A client of the API at ``url`` with ``token`` and the FAST settings, which ``options`` override by keyword
    (``max_retries=0``, ``project_id=123``); use it as a context manager, which closes it."""
    return mnb.connect(token, url, **{**FAST, **options})


class Elements(HTMLParser):
    """An HTML text, parsed: every start tag with its attributes (``tags``, self-closing ones included), the
    text pieces (``text``), and every table cell as (tag, style, text) (``cells``, for ``th`` and ``td``)."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.cells: list[tuple[str, str, str]] = []
        self._cell: tuple[str, str] | None = None  # (tag, style) of the open th/td
        self._cell_text: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag in ("th", "td"):
            self._cell, self._cell_text = (tag, dict(attrs).get("style") or ""), []

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell_text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("th", "td") and self._cell is not None:
            self.cells.append((*self._cell, "".join(self._cell_text)))
            self._cell = None

    def named(self, tag: str) -> list[dict[str, str | None]]:
        """The attributes of every ``tag`` element."""
        return [attrs for name, attrs in self.tags if name == tag]


# The report's sections, in order (the h2 headings of every quarterly report).
REPORT_SECTIONS = ["Summary", "Warnings", "Totals by month", "How net removal was computed", "Charts", "Coverage",
                   "Data quality", "Batches", "Registry", "Appendix: provenance, ledgers and inputs"]


def report_named(client: mnb.Client, name: str) -> str:
    """The id of the registry report called ``name`` (the emulator seeds them by name)."""
    reports = client.reports()
    return str(reports.loc[reports["name"] == name, "id"].iloc[0])


def race_confirm_clicks(forms: list[Any], clicks_each: int = 2, join: float = 20) -> list[Any]:
    """Click every form's Confirm button ``clicks_each`` times from as many threads, all released at once (a
    double click on each, racing the other forms); returns the forms that started a task."""
    import threading

    barrier = threading.Barrier(len(forms) * clicks_each)

    def click(form: Any) -> None:
        barrier.wait()
        form.confirm_button.click()

    threads = [threading.Thread(target=click, args=(form,)) for form in forms for _ in range(clicks_each)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(join)
    return [form for form in forms if form.task is not None]
