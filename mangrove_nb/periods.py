"""Accounting periods: ``"2025Q1"``, ``"2025-02"``, ``"2025"`` or a custom range -> the UTC start and end
the Mangrove API wants.

A ``Period`` runs from its first second to its last second inclusive, as in the cookbook's
``{"start_time": "2025-01-01T00:00:00Z", "end_time": "2025-03-31T23:59:59Z"}``.

Time zones: naive datetimes (and ISO strings without an offset) are taken to be UTC; aware ones are
converted to UTC. A *date* as the end of a range is inclusive: ``(date(2025, 1, 1), date(2025, 3, 31))`` is
the first quarter, ending 2025-03-31T23:59:59Z. A *datetime* end is taken as given.

This module imports only ``errors`` from mangrove_nb (``PeriodError`` lives in the one exception tree) and
nothing outside the standard library: pandas Timestamps are accepted because they are ``datetime`` objects.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any, Literal

from .errors import PeriodError

__all__ = ["ACCEPTED_FORMS", "Moment", "Period", "PeriodError", "PeriodLike", "parse_period"]

ACCEPTED_FORMS = (
    "a quarter like '2025Q1' (also '2025-Q1' or '2025q1'), a month like '2025-02', a year like '2025' "
    "(or the int 2025), a (start, end) pair of dates, datetimes, pandas Timestamps, ISO 8601 strings or "
    "the labels above (a date end is inclusive; naive datetimes are UTC), or a Period"
)

# One end of a custom range: a date (inclusive as an end), a datetime (a pandas Timestamp is one), an ISO 8601
# string, or a label such as "2025Q1" (its first or last second).
Moment = date | datetime | str

Kind = Literal["year", "quarter", "month", "custom"]

_QUARTER = re.compile(r"(\d{4})-?[Qq]([1-4])")
_QUARTER_LOOSE = re.compile(r"\d{4}-?[Qq]\d+")
_MONTH = re.compile(r"(\d{4})-(\d{2})")
_YEAR = re.compile(r"\d{4}")
_API_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class Period:
    """A UTC time range ``[start, end]``, both ends inclusive, with a label such as ``2025Q1``.

    Build one with ``parse_period()``. Naive ``start``/``end`` are taken as UTC and aware ones converted,
    so both are always aware UTC datetimes.
    """

    start: datetime
    end: datetime
    label: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", _to_utc(self.start, "start"))
        object.__setattr__(self, "end", _to_utc(self.end, "end"))
        if self.end < self.start:
            raise PeriodError(
                f"The period ends ({_show(self.end)}) before it starts ({_show(self.start)}); "
                "give the earlier moment first."
            )
        if not isinstance(self.label, str) or not self.label:
            raise PeriodError("A Period needs a non-empty label, e.g. '2025Q1'.")

    @property
    def kind(self) -> Kind:
        """``year``, ``quarter`` or ``month`` when the label is one of those, else ``custom``."""
        if _YEAR.fullmatch(self.label):
            return "year"
        if _QUARTER.fullmatch(self.label):
            return "quarter"
        if _MONTH.fullmatch(self.label):
            return "month"
        return "custom"

    @property
    def argument(self) -> str:
        """The period as Python source that ``parse_period`` reads back to this period, for the calls advice
        gives: ``'2025Q1'`` when the label does (a year, quarter or month), else the ``(start, end)`` pair of ISO
        times (a range's label, ``2025-07-01/2025-08-31``, is for reading, not for ``parse_period``)."""
        if self.kind != "custom":
            return repr(self.label)
        return repr((self.start.isoformat().replace("+00:00", "Z"), self.end.isoformat().replace("+00:00", "Z")))

    def api_params(self) -> dict[str, str]:
        """``{"start_time": ..., "end_time": ...}`` in the cookbook's format (whole seconds, ``Z``)."""
        return {"start_time": self.start.strftime(_API_FORMAT), "end_time": self.end.strftime(_API_FORMAT)}

    def months(self) -> list[Period]:
        """The calendar months the period touches, each cut to the period (partial ones get a range label)."""
        result: list[Period] = []
        year, month = self.start.year, self.start.month
        while True:
            whole = _month(year, month)
            if whole.start > self.end:
                return result
            start, end = max(whole.start, self.start), min(whole.end, self.end)
            result.append(whole if (start, end) == (whole.start, whole.end) else _custom(start, end))
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)

    def previous(self) -> Period:
        """The period of the same kind just before this one: 2025Q1 -> 2024Q4, 2025-01 -> 2024-12."""
        kind = self.kind
        year = self.start.year
        if kind == "year":
            return _year(year - 1)
        if kind == "quarter":
            quarter = (self.start.month - 1) // 3 + 1
            return _quarter(year - 1, 4) if quarter == 1 else _quarter(year, quarter - 1)
        if kind == "month":
            month = self.start.month
            return _month(year - 1, 12) if month == 1 else _month(year, month - 1)
        raise PeriodError(
            f"previous() needs a year, quarter or month period, not the custom range {self.label}; "
            "build the range you want with parse_period((start, end))."
        )

    def contains(self, moment: datetime | date | str) -> bool:
        """Whether ``moment`` falls in the period, at the API's one-second resolution.

        Naive datetimes are UTC; a date means its first second; an ISO string is parsed.
        """
        instant = _to_utc(_moment(moment, "moment", end=False), "moment").replace(microsecond=0)
        return self.start <= instant <= self.end

    def __str__(self) -> str:
        if self.start.time() == time(0) and self.end.time() == time(23, 59, 59):
            span = f"{self.start:%Y-%m-%d} → {self.end:%Y-%m-%d}"
        else:
            span = f"{self.start:%Y-%m-%d %H:%M:%S} → {self.end:%Y-%m-%d %H:%M:%S}"
        return f"{self.label} ({span} UTC)"


# What every function that takes a period accepts (see ACCEPTED_FORMS); anything else is a PeriodError.
PeriodLike = Period | str | int | tuple[Moment, Moment] | list[Moment]


def parse_period(value: PeriodLike) -> Period:
    """Read ``value`` as a Period (see the module docstring and ``ACCEPTED_FORMS``).

    A Period is returned as is. A (start, end) pair that is exactly a calendar year, quarter or month gets
    that label (so ``previous()`` works); other ranges are labelled ``2025-01-10/2025-02-20`` (day-aligned)
    or with full timestamps.
    """
    if isinstance(value, Period):
        return value
    if isinstance(value, str):
        return _parse_label(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return _parse_label(str(value)) if 1 <= value <= 9999 else _reject(value, "the year is out of range")
    if isinstance(value, tuple | list) and len(value) == 2:
        start = _to_utc(_moment(value[0], "start", end=False), "start")
        end = _to_utc(_moment(value[1], "end", end=True), "end")
        if end < start:
            raise PeriodError(
                f"The period ends ({_show(end)}) before it starts ({_show(start)}); give the earlier moment first."
            )
        return _named(start, end) or _custom(start, end)
    return _reject(value, f"a {type(value).__name__} is not one of them")


def _parse_label(text: str) -> Period:
    try:
        return _parse_label_unchecked(text)
    except (ValueError, OverflowError) as exc:
        if isinstance(exc, PeriodError):
            raise
        reason = "the year is out of range (1 to 9999)"
    return _reject(text, reason)


def _parse_label_unchecked(text: str) -> Period:
    label = text.strip()
    if match := _QUARTER.fullmatch(label):
        return _quarter(int(match.group(1)), int(match.group(2)))
    if _QUARTER_LOOSE.fullmatch(label):
        return _reject(text, "a quarter is Q1 to Q4")
    if match := _MONTH.fullmatch(label):
        month = int(match.group(2))
        if not 1 <= month <= 12:
            return _reject(text, "a month is 01 to 12")
        return _month(int(match.group(1)), month)
    if _YEAR.fullmatch(label):
        return _year(int(label)) if int(label) >= 1 else _reject(text, "the year is out of range")
    return _reject(text, None)


def _reject(value: object, reason: str | None) -> Period:
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:59] + "…"
    because = f" ({reason})" if reason else ""
    guess = _guess(value) if isinstance(value, str) else None
    hint = f" {guess}" if guess else ""
    raise PeriodError(f"Cannot read {shown} as a period{because}.{hint} Accepted forms: {ACCEPTED_FORMS}.")


_QUARTER_FIRST = re.compile(r"[Qq]([1-4])[\s_/-]*(\d{4})")
_YEAR_SPACE_QUARTER = re.compile(r"(\d{4})[\s_/]+[Qq]([1-4])")
_SHORT_MONTH = re.compile(r"(\d{4})[-/](\d)")
_DAY = re.compile(r"(\d{4}-\d{2})-\d{2}")


def _guess(text: str) -> str | None:
    """A sentence naming the accepted form a mistyped period most likely meant, or None."""
    label = text.strip()
    if match := _QUARTER_FIRST.fullmatch(label) or _YEAR_SPACE_QUARTER.fullmatch(label):
        year, quarter = (match.group(2), match.group(1)) if label[:1] in "Qq" else match.groups()
        return f"Did you mean '{year}Q{quarter}'?"
    if (match := _SHORT_MONTH.fullmatch(label)) and match.group(2) != "0":
        return f"Did you mean '{match.group(1)}-0{match.group(2)}'?"
    if match := _DAY.fullmatch(label):
        return (f"A single day is not a period: did you mean the month '{match.group(1)}', or a (start, end) pair "
                "of dates?")
    return None


def _moment(value: Any, which: str, *, end: bool) -> datetime:
    """One end of a range as a datetime; dates and labels widen to first (start) or last (end) second."""
    if isinstance(value, str):
        return _moment_from_text(value, which, end=end)
    if isinstance(value, Period):
        return value.end if end else value.start
    if isinstance(value, datetime):
        return _plain_datetime(value, which)
    if isinstance(value, date):
        return datetime.combine(value, time(23, 59, 59) if end else time(0))
    if hasattr(value, "to_pydatetime"):  # e.g. numpy-backed scalars that are not datetime subclasses
        return _plain_datetime(value.to_pydatetime(), which)
    raise PeriodError(
        f"The {which} of the range, {value!r}, is not a date, datetime or ISO string. Accepted forms: {ACCEPTED_FORMS}."
    )


def _moment_from_text(text: str, which: str, *, end: bool) -> datetime:
    stripped = text.strip()
    if _QUARTER.fullmatch(stripped) or _MONTH.fullmatch(stripped) or _YEAR.fullmatch(stripped):
        labelled = _parse_label(stripped)
        return labelled.end if end else labelled.start
    try:
        day = date.fromisoformat(stripped)  # a date alone means the whole day
    except ValueError:
        pass
    else:
        return datetime.combine(day, time(23, 59, 59) if end else time(0))
    try:
        return datetime.fromisoformat(stripped)
    except ValueError:
        raise PeriodError(
            f"The {which} of the range, {text!r}, is not an ISO 8601 date or datetime "
            f"(e.g. '2025-01-01' or '2025-01-01T00:00:00Z'). Accepted forms: {ACCEPTED_FORMS}."
        ) from None


def _plain_datetime(value: Any, which: str) -> datetime:
    # pandas.Timestamp is a datetime subclass; NaT is too, and compares unequal to itself.
    if value != value:
        raise PeriodError(f"The {which} of the range is missing (NaT). Accepted forms: {ACCEPTED_FORMS}.")
    if type(value) is not datetime and hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    if not isinstance(value, datetime):
        raise PeriodError(f"The {which} of the range, {value!r}, is not a datetime.")
    return value


def _to_utc(value: datetime, which: str) -> datetime:
    if not isinstance(value, datetime):
        raise PeriodError(f"The {which} of a Period must be a datetime, not {type(value).__name__}.")
    if type(value) is not datetime:  # pandas.Timestamp and friends: compare and format as plain datetimes
        value = _plain_datetime(value, which)
    if value.tzinfo is None or value.utcoffset() is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _year(year: int) -> Period:
    return Period(datetime(year, 1, 1, tzinfo=UTC), _last_second(year, 12), f"{year:04d}")


def _quarter(year: int, quarter: int) -> Period:
    first_month = 3 * (quarter - 1) + 1
    start = datetime(year, first_month, 1, tzinfo=UTC)
    return Period(start, _last_second(year, first_month + 2), f"{year:04d}Q{quarter}")


def _month(year: int, month: int) -> Period:
    return Period(datetime(year, month, 1, tzinfo=UTC), _last_second(year, month), f"{year:04d}-{month:02d}")


def _last_second(year: int, month: int) -> datetime:
    last_day = calendar.monthrange(year, month)[1]
    return datetime(year, month, last_day, 23, 59, 59, tzinfo=UTC)


def _named(start: datetime, end: datetime) -> Period | None:
    """The calendar year, quarter or month that is exactly ``[start, end]``, if there is one."""
    if start.time() != time(0) or start.day != 1 or end.time() != time(23, 59, 59):
        return None
    candidates: Iterable[Period] = (
        _month(start.year, start.month),
        *([_quarter(start.year, (start.month - 1) // 3 + 1)] if start.month % 3 == 1 else []),
        *([_year(start.year)] if start.month == 1 else []),
    )
    return next((p for p in candidates if p.end == end), None)


def _custom(start: datetime, end: datetime) -> Period:
    if start.time() == time(0) and end.time() == time(23, 59, 59):
        label = f"{start:%Y-%m-%d}/{end:%Y-%m-%d}"
    else:
        label = f"{start.strftime(_API_FORMAT)}/{end.strftime(_API_FORMAT)}"
    return Period(start, end, label)


def _show(moment: datetime) -> str:
    return moment.strftime(_API_FORMAT) if moment.tzinfo else moment.isoformat()
