"""Periods: every accepted form, UTC handling, errors that list the accepted forms, and Period's methods."""

from __future__ import annotations

import re
import sys
from datetime import UTC, date, datetime, timedelta, timezone

import pandas as pd
import pytest
from imports import imported_modules

import mangrove_nb as mnb
from mangrove_nb import periods
from mangrove_nb.periods import Period, PeriodError, parse_period


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


Q1_2025 = (utc(2025, 1, 1), utc(2025, 3, 31, 23, 59, 59))


@pytest.mark.parametrize("text", ["2025Q1", "2025-Q1", "2025q1", "2025-q1", " 2025Q1 "])
def test_quarter_strings(text: str) -> None:
    period = parse_period(text)
    assert (period.start, period.end, period.label) == (*Q1_2025, "2025Q1")


def test_quarter_four_ends_at_the_year_boundary() -> None:
    period = parse_period("2024Q4")
    assert (period.start, period.end) == (utc(2024, 10, 1), utc(2024, 12, 31, 23, 59, 59))
    assert period.api_params() == {"start_time": "2024-10-01T00:00:00Z", "end_time": "2024-12-31T23:59:59Z"}


@pytest.mark.parametrize(
    ("text", "last_day"),
    [("2024-02", 29), ("2025-02", 28), ("2023-02", 28), ("2000-02", 29), ("2025-04", 30), ("2025-12", 31)],
)
def test_month_strings_end_on_the_months_last_second(text: str, last_day: int) -> None:
    period = parse_period(text)
    year, month = int(text[:4]), int(text[5:])
    assert period.start == utc(year, month, 1)
    assert period.end == utc(year, month, last_day, 23, 59, 59)
    assert period.label == text


def test_year_string_and_int() -> None:
    for value in ("2025", 2025):
        period = parse_period(value)
        assert (period.start, period.end, period.label) == (utc(2025, 1, 1), utc(2025, 12, 31, 23, 59, 59), "2025")


def test_the_cookbooks_api_params() -> None:
    assert parse_period("2025Q1").api_params() == {
        "start_time": "2025-01-01T00:00:00Z",
        "end_time": "2025-03-31T23:59:59Z",
    }


def test_pair_of_dates_has_an_inclusive_end_date() -> None:
    period = parse_period((date(2025, 1, 10), date(2025, 2, 20)))
    assert (period.start, period.end) == (utc(2025, 1, 10), utc(2025, 2, 20, 23, 59, 59))
    assert period.label == "2025-01-10/2025-02-20"


def test_pair_of_dates_that_is_a_calendar_quarter_gets_its_label() -> None:
    period = parse_period((date(2025, 1, 1), date(2025, 3, 31)))
    assert period == parse_period("2025Q1")
    assert parse_period([date(2024, 2, 1), date(2024, 2, 29)]).label == "2024-02"
    assert parse_period((date(2024, 1, 1), date(2024, 12, 31))).label == "2024"


def test_pair_of_datetimes_takes_the_end_as_given() -> None:
    period = parse_period((datetime(2025, 1, 1, 6, 30), datetime(2025, 1, 1, 18, 0)))
    assert (period.start, period.end) == (utc(2025, 1, 1, 6, 30), utc(2025, 1, 1, 18))
    assert period.api_params() == {"start_time": "2025-01-01T06:30:00Z", "end_time": "2025-01-01T18:00:00Z"}


def test_naive_datetimes_are_utc_and_aware_ones_are_converted() -> None:
    paris = timezone(timedelta(hours=1))
    period = parse_period((datetime(2025, 1, 1, 1, 0, tzinfo=paris), datetime(2025, 1, 31, 12, 0)))
    assert period.start == utc(2025, 1, 1, 0, 0)
    assert period.end == utc(2025, 1, 31, 12, 0)
    assert period.start.tzinfo is UTC
    assert period.end.tzinfo is UTC


def test_iso_string_pairs() -> None:
    assert parse_period(("2025-01-01", "2025-03-31")) == parse_period("2025Q1")
    period = parse_period(("2025-01-01T00:00:00Z", "2025-01-15T12:00:00.000+02:00"))
    assert (period.start, period.end) == (utc(2025, 1, 1), utc(2025, 1, 15, 10))
    naive = parse_period(("2025-01-01T08:00:00", "2025-01-01T09:00:00"))
    assert naive.start == utc(2025, 1, 1, 8)


def test_label_pairs_span_from_the_first_start_to_the_last_end() -> None:
    period = parse_period(("2025-01", "2025Q2"))
    assert (period.start, period.end) == (utc(2025, 1, 1), utc(2025, 6, 30, 23, 59, 59))
    assert period.label == "2025-01-01/2025-06-30"


def test_period_pairs_span_from_the_first_start_to_the_last_end() -> None:
    period = parse_period((parse_period("2024-11"), parse_period("2025Q1")))
    assert (period.start, period.end) == (utc(2024, 11, 1), utc(2025, 3, 31, 23, 59, 59))


def test_pandas_timestamp_pairs() -> None:
    period = parse_period((pd.Timestamp("2025-01-01", tz="UTC"), pd.Timestamp("2025-03-31 23:59:59", tz="UTC")))
    assert period == parse_period("2025Q1")
    assert type(period.start) is datetime
    shifted = parse_period((pd.Timestamp("2025-01-01 01:00", tz="Europe/Paris"), pd.Timestamp("2025-01-02")))
    assert (shifted.start, shifted.end) == (utc(2025, 1, 1), utc(2025, 1, 2))


def test_nat_is_refused() -> None:
    with pytest.raises(PeriodError, match="NaT"):
        parse_period((pd.NaT, pd.Timestamp("2025-01-02")))


def test_a_period_is_returned_as_is() -> None:
    period = parse_period("2025Q1")
    assert parse_period(period) is period


def test_end_before_start_is_refused() -> None:
    with pytest.raises(PeriodError, match="before it starts"):
        parse_period((date(2025, 3, 1), date(2025, 1, 1)))
    with pytest.raises(PeriodError, match="before it starts"):
        Period(utc(2025, 2, 1), utc(2025, 1, 1), "backwards")


def test_a_one_day_range_is_valid() -> None:
    period = parse_period((date(2025, 1, 1), date(2025, 1, 1)))
    assert (period.start, period.end) == (utc(2025, 1, 1), utc(2025, 1, 1, 23, 59, 59))


@pytest.mark.parametrize(
    "bad",
    [
        "2025Q5",
        "2025Q0",
        "2025-13",
        "2025-00",
        "Q1 2025",
        "2025/01",
        "25Q1",
        "",
        "next quarter",
        "2025-01-01",  # a single day is not an accepted form on its own
        3.5,
        None,
        True,
        ("2025-01-01",),
        ("2025-01-01", "2025-02-01", "2025-03-01"),
        ("2025-01-01", "not a date"),
        (date(2025, 1, 1), 20250301),
    ],
)
def test_bad_values_get_an_error_that_lists_the_accepted_forms(bad: object) -> None:
    with pytest.raises(PeriodError) as caught:
        parse_period(bad)
    message = str(caught.value)
    assert "2025Q1" in message
    assert "2025-02" in message
    assert "(start, end)" in message
    assert isinstance(caught.value, ValueError)


def test_reason_is_specific_for_near_misses() -> None:
    with pytest.raises(PeriodError, match="Q1 to Q4"):
        parse_period("2025Q5")
    with pytest.raises(PeriodError, match="01 to 12"):
        parse_period("2025-13")


def test_str_is_readable() -> None:
    assert str(parse_period("2025Q1")) == "2025Q1 (2025-01-01 → 2025-03-31 UTC)"
    custom = parse_period((datetime(2025, 1, 1, 6), datetime(2025, 1, 1, 18)))
    assert str(custom) == "2025-01-01T06:00:00Z/2025-01-01T18:00:00Z (2025-01-01 06:00:00 → 2025-01-01 18:00:00 UTC)"


def test_kind() -> None:
    assert [parse_period(v).kind for v in ("2025", "2025Q2", "2025-07")] == ["year", "quarter", "month"]
    assert parse_period((date(2025, 1, 2), date(2025, 1, 3))).kind == "custom"


def test_months_of_a_quarter() -> None:
    assert [m.label for m in parse_period("2024Q1").months()] == ["2024-01", "2024-02", "2024-03"]
    assert parse_period("2024Q1").months()[1].end == utc(2024, 2, 29, 23, 59, 59)


def test_months_of_a_year_and_of_a_month() -> None:
    assert len(parse_period("2025").months()) == 12
    assert parse_period("2025-02").months() == [parse_period("2025-02")]


def test_months_of_a_custom_range_are_cut_to_it() -> None:
    months = parse_period(("2024-12-15", "2025-02-10")).months()
    assert [m.label for m in months] == ["2024-12-15/2024-12-31", "2025-01", "2025-02-01/2025-02-10"]
    assert months[0].start == utc(2024, 12, 15)
    assert months[-1].end == utc(2025, 2, 10, 23, 59, 59)


@pytest.mark.parametrize(
    ("label", "previous"),
    [("2025Q1", "2024Q4"), ("2025Q3", "2025Q2"), ("2025-01", "2024-12"), ("2024-03", "2024-02"), ("2025", "2024")],
)
def test_previous(label: str, previous: str) -> None:
    assert parse_period(label).previous() == parse_period(previous)


def test_previous_of_a_custom_range_is_refused() -> None:
    with pytest.raises(PeriodError, match="previous"):
        parse_period((date(2025, 1, 2), date(2025, 1, 3))).previous()


def test_contains() -> None:
    q1 = parse_period("2025Q1")
    assert q1.contains(utc(2025, 1, 1))
    assert q1.contains(utc(2025, 3, 31, 23, 59, 59))
    assert q1.contains(datetime(2025, 3, 31, 23, 59, 59, 500_000, tzinfo=UTC))  # within the last second
    assert not q1.contains(utc(2025, 4, 1))
    assert not q1.contains(utc(2024, 12, 31, 23, 59, 59))
    assert q1.contains(datetime(2025, 2, 1, 12))  # naive is UTC
    assert q1.contains(datetime(2025, 4, 1, 0, 30, tzinfo=timezone(timedelta(hours=1))))  # 23:30 UTC
    assert q1.contains(pd.Timestamp("2025-02-01T00:00:00Z"))
    assert q1.contains("2025-03-31T23:59:59.000Z")
    assert q1.contains(date(2025, 3, 31))


def test_period_is_hashable_and_frozen() -> None:
    assert len({parse_period("2025Q1"), parse_period(("2025-01-01", "2025-03-31"))}) == 1
    with pytest.raises(AttributeError):
        parse_period("2025Q1").label = "x"  # type: ignore[misc]


def test_period_built_directly_is_normalised_to_utc() -> None:
    period = Period(datetime(2025, 1, 1), datetime(2025, 1, 2, 1, tzinfo=timezone(timedelta(hours=1))), "x")
    assert (period.start, period.end) == (utc(2025, 1, 1), utc(2025, 1, 2))


def test_periods_imports_only_the_standard_library_and_the_error_tree() -> None:
    imported = imported_modules(periods)
    ours = {name for name in imported if name.startswith("mangrove_nb")}
    assert ours == {"mangrove_nb.errors"}, ours
    assert {name.split(".")[0] for name in imported - ours} <= set(sys.stdlib_module_names) | {"__future__"}


def test_period_errors_are_in_the_tree_and_still_value_errors() -> None:
    with pytest.raises(PeriodError) as caught:
        parse_period("2025Q5")
    assert isinstance(caught.value, mnb.ValidationError) and isinstance(caught.value, mnb.MangroveError)
    assert isinstance(caught.value, ValueError) and caught.value.argument == "period"
    assert caught.value.status_code is None  # rejected before anything was sent


@pytest.mark.parametrize(("typed", "meant"), [("Q1 2025", "'2025Q1'"), ("2025 Q1", "'2025Q1'"),
                                              ("q1-2025", "'2025Q1'"), ("2025-1", "'2025-01'"),
                                              ("2025-01-15", "the month '2025-01'")])
def test_a_mistyped_period_says_what_was_probably_meant(typed: str, meant: str) -> None:
    with pytest.raises(PeriodError, match=re.escape(meant)):
        parse_period(typed)


@pytest.mark.parametrize("period", ["2025Q1", "2025-02", "2025", ("2025-07-01", "2025-08-31"),
                                    ("2025-07-01T06:30:00Z", "2025-08-31T12:00:00+02:00")])
def test_a_periods_argument_is_source_parse_period_reads_back(period: object) -> None:
    """Advice writes calls such as client.task(7, period=...): a range's label ('2025-07-01/2025-08-31') is no
    period parse_period reads, so the call the advice gave raised PeriodError."""
    import ast

    parsed = parse_period(period)  # type: ignore[arg-type]
    assert parse_period(ast.literal_eval(parsed.argument)) == parsed
