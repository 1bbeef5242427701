"""The period picker: quarter, month, year or a custom range of UTC dates, as a ``Period``."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from typing import Any

from ..periods import Period, PeriodError, PeriodLike, parse_period
from ._html import esc

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def default_period(today: date | None = None) -> Period:
    """The last complete quarter (UTC): what an analyst usually generates or reviews next."""
    today = today or datetime.now(UTC).date()
    return parse_period(f"{today.year}Q{(today.month - 1) // 3 + 1}").previous()


class PeriodPicker:
    """Quarter, month, year or a custom range of UTC dates, as a ``Period``.

    ``picker.period`` is the chosen ``Period`` (or raises ``PeriodError`` saying what is wrong, which the
    picker also shows); ``picker.value`` is the same, or None while the choice is invalid, and can be set
    from code with anything ``parse_period`` reads (``picker.value = "2025Q1"``). A custom range's dates are
    typed as ISO dates (``YYYY-MM-DD``), whatever the browser's locale. The years offered are ``years`` (the
    forms pass the years the ledger has data in) plus the chosen period's; ``set_years()`` changes them.
    """

    MODES = ("Quarter", "Month", "Year", "Custom range")

    def __init__(self, value: PeriodLike | None = None, *, description: str = "Period",
                 years: Iterable[int] | None = None) -> None:
        import ipywidgets as w

        start = parse_period(value) if value is not None else default_period()
        style = {"description_width": "70px"}
        self.mode = w.Dropdown(options=self.MODES, value="Quarter", description=description, style=style,
                               layout=w.Layout(width="200px"))
        self.year = w.Dropdown(options=[(str(start.start.year), start.start.year)], value=start.start.year,
                               layout=w.Layout(width="90px"))
        self.quarter = w.Dropdown(options=[(f"Q{q}", q) for q in range(1, 5)], value=1, layout=w.Layout(width="70px"))
        self.month = w.Dropdown(options=[(f"{m:02d} {MONTHS[m - 1]}", m) for m in range(1, 13)], value=1,
                                layout=w.Layout(width="100px"))
        self.start = w.Text(description="From", placeholder="YYYY-MM-DD", continuous_update=False,
                            style={"description_width": "40px"}, layout=w.Layout(width="160px"))
        self.end = w.Text(description="To (incl.)", placeholder="YYYY-MM-DD", continuous_update=False,
                          style={"description_width": "60px"}, layout=w.Layout(width="180px"))
        self.error_html = w.HTML("")
        self.span_html = w.HTML("")
        self.widget = w.VBox([w.HBox([self.mode, self.year, self.quarter, self.month, self.start, self.end,
                                      self.span_html]), self.error_html])
        self._callbacks: list[Callable[[PeriodPicker], None]] = []
        self._quiet = False
        self._last: Period = start
        self.set_years(years if years is not None else [datetime.now(UTC).year])
        self.value = start
        for control in (self.mode, self.year, self.quarter, self.month, self.start, self.end):
            control.observe(self._changed, "value")

    # -- reading and setting --------------------------------------------------------------------------------

    @property
    def period(self) -> Period:
        """The chosen period; raises ``PeriodError`` with a message the picker shows as well."""
        mode, year = self.mode.value, self.year.value
        if mode == "Quarter":
            return parse_period(f"{year}Q{self.quarter.value}")
        if mode == "Month":
            return parse_period(f"{year}-{self.month.value:02d}")
        if mode == "Year":
            return parse_period(str(year))
        first, last = self._date(self.start.value, "From"), self._date(self.end.value, "To")
        if first is None or last is None:
            raise PeriodError("Choose both dates of the custom range (From and To, as YYYY-MM-DD, UTC; To is "
                              "included).")
        return parse_period((first, last))

    @property
    def value(self) -> Period | None:
        try:
            return self.period
        except PeriodError:
            return None

    @value.setter
    def value(self, value: PeriodLike) -> None:
        period = parse_period(value)
        kind = period.kind
        self._quiet = True
        try:
            self._ensure_years(period)
            self.year.value = period.start.year
            if kind == "quarter":
                self.quarter.value = (period.start.month - 1) // 3 + 1
            elif kind == "month":
                self.month.value = period.start.month
            self.start.value, self.end.value = f"{period.start:%Y-%m-%d}", f"{period.end:%Y-%m-%d}"
            self.mode.value = {"quarter": "Quarter", "month": "Month", "year": "Year"}.get(kind, "Custom range")
        finally:
            self._quiet = False
        self._changed()

    @property
    def years(self) -> list[int]:
        """The years the year list offers."""
        return [value for _, value in self.year.options]

    def set_years(self, years: Iterable[int]) -> None:
        """Offer ``years`` (and the chosen period's years, which stay chosen); the choice does not change."""
        wanted = {int(y) for y in years}
        chosen = self.value
        if chosen is not None:
            wanted |= {chosen.start.year, chosen.end.year}
        wanted.add(int(self.year.value))
        ordered = sorted(wanted)
        if ordered == self.years:
            return
        keep = self.year.value
        self._quiet = True
        try:
            with self.year.hold_sync():  # one message: the front end never sees an index outside the options
                self.year.options = [(str(y), y) for y in ordered]
                self.year.value = keep
        finally:
            self._quiet = False

    @property
    def disabled(self) -> bool:
        return bool(self.mode.disabled)

    @disabled.setter
    def disabled(self, value: bool) -> None:
        for control in (self.mode, self.year, self.quarter, self.month, self.start, self.end):
            control.disabled = value

    def on_change(self, callback: Callable[[PeriodPicker], None]) -> None:
        """Call ``callback(picker)`` after every change of the choice."""
        self._callbacks.append(callback)

    # -- internals ---------------------------------------------------------------------------------------------

    @staticmethod
    def _date(text: Any, which: str) -> date | None:
        text = (text or "").strip() if isinstance(text, str) else text
        if not text:
            return None
        if isinstance(text, date):
            return text
        try:
            if ISO_DATE.fullmatch(text):
                return date.fromisoformat(text)
        except ValueError:
            pass
        raise PeriodError(f"{which}: {text!r} is not a date written YYYY-MM-DD (e.g. 2025-01-31).")

    def _ensure_years(self, period: Period) -> None:
        missing = {period.start.year, period.end.year} - set(self.years)
        if missing:
            ordered = sorted({*self.years, *missing})
            with self.year.hold_sync():
                keep = self.year.value
                self.year.options = [(str(y), y) for y in ordered]
                self.year.value = keep

    def _changed(self, change: Any = None) -> None:
        if self._quiet:
            return
        mode = self.mode.value
        if change is not None and change.get("owner") is self.mode and mode == "Custom range":
            self._prefill_dates()
        shown = {"Quarter": (self.year, self.quarter), "Month": (self.year, self.month), "Year": (self.year,),
                 "Custom range": (self.start, self.end)}[mode]
        for control in (self.year, self.quarter, self.month, self.start, self.end):
            control.layout.display = "" if control in shown else "none"
        try:
            period = self.period
        except PeriodError as exc:
            self.error_html.value = f'<span style="color:#b00020">{esc(exc)}</span>'
            self.span_html.value = ""
        else:
            self._last = period
            self.error_html.value = ""
            self.span_html.value = (f'<span style="color:#52606d">{esc(period.start.strftime("%Y-%m-%d"))} → '
                                    f'{esc(period.end.strftime("%Y-%m-%d"))} UTC</span>')
        for callback in self._callbacks:
            callback(self)

    def _prefill_dates(self) -> None:
        """Switching to a custom range starts from the period chosen before."""
        self._quiet = True
        try:
            self.start.value, self.end.value = f"{self._last.start:%Y-%m-%d}", f"{self._last.end:%Y-%m-%d}"
        finally:
            self._quiet = False
