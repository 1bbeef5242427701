"""The arguments of a report command, checked before anything runs: the formats (``FORMATS``: html, pdf, xlsx; an
unknown one is a one-line ``ValidationError``) and the periods (quarters or years, one, a range or a list; a period
outside ``REPORT_YEARS``, 1970 to 2100, is a ``PeriodError``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._text import _one_line
from .notebook import MAX_REPORTS, quarter_period, report_range

if TYPE_CHECKING:
    from mangrove_nb import Period


FORMATS = ("html", "pdf", "xlsx")
# The years a report may cover: those the emulator accepts in a request body (the contract names no bound; pandas,
# which the report's cells use, cannot hold a date before 1678 at all).
REPORT_YEARS = (1970, 2100)


def parse_formats(formats: str | Sequence[str]) -> tuple[str, ...]:
    """The report formats ``formats`` names (``"html,pdf"`` or ``["html", "pdf"]``), in ``FORMATS`` order; an
    unknown one is a one-line ``ValidationError`` (``argument="format"``) naming the valid formats."""
    import difflib

    from mangrove_nb.errors import ValidationError

    items = formats.split(",") if isinstance(formats, str) else [str(item) for item in formats]
    wanted = {item.strip().lower() for item in items if item.strip()}
    unknown = sorted(wanted - set(FORMATS))
    if unknown or not wanted:
        bad = unknown[0] if unknown else ""
        close = difflib.get_close_matches(bad, FORMATS, n=1, cutoff=0.5) if bad else []
        what = f"Unknown report format {_one_line(bad, 40)!r}" + (f" (did you mean {close[0]!r}?)" if close else "") \
            if bad else "No report format given"
        raise ValidationError(f"{what}; the formats are {', '.join(FORMATS)}: give one or a comma list such as "
                              "html,pdf,xlsx.", argument="format")
    return tuple(f for f in FORMATS if f in wanted)


def _periods(quarters: Any, years: Any, *, one: bool, from_snapshot: bool) -> list[Period] | None:
    """The periods asked for: quarters or years (one, a range ``A..B``, or a list), checked; None when a snapshot
    says which."""
    from mangrove_nb.errors import ValidationError

    if quarters is not None and years is not None:
        raise ValidationError("Give quarters or years (--quarter or --year), not both.", argument="quarter")
    if quarters is None and years is None:
        if from_snapshot:
            return None
        raise ValidationError("Give the quarter to report on (--quarter 2025Q1, a range such as 2024Q1..2025Q4) or "
                              "the year (--year 2025).", argument="quarter")
    kind, given = ("quarter", quarters) if quarters is not None else ("year", years)
    items = [given] if isinstance(given, str | int) else list(given)
    periods: list[Period] = []
    for item in items:
        if kind == "quarter" and one and ".." not in str(item):
            periods.append(quarter_period(str(item)))  # its error names what a quarter is
        else:
            periods.extend(report_range(item, kind))
    if one and len(periods) != 1:
        if from_snapshot:
            raise ValidationError(f"A snapshot holds one report, not {len(periods)}: give one {kind} with "
                                  "--from-snapshot, or none (its manifest says which).", argument=kind)
        raise ValidationError(f"render_report renders one report, not {len(periods)}: give one {kind}, or call "
                              "render_reports for a range.", argument=kind)
    if len({p.label for p in periods}) != len(periods) or len(periods) > MAX_REPORTS:
        raise ValidationError(f"Give each {kind} once, at most {MAX_REPORTS} in one command.", argument=kind)
    _check_years(periods, kind)
    return periods


def _check_years(periods: Sequence[Period], kind: str) -> None:
    """A ``PeriodError`` for a period outside ``REPORT_YEARS``, before anything runs, rather than a report cell that
    fails on the API's 422 (or pandas' date range) and leaves ``_FAILED.ipynb``."""
    from mangrove_nb.errors import PeriodError

    first, last = REPORT_YEARS
    outside = next((p for p in periods if not first <= p.start.year <= last), None)
    if outside is not None:
        raise PeriodError(f"{outside.label} is outside the years a report covers ({first} to {last}): give a {kind} "
                          f"from {first} to {last}.", argument=kind)

