"""What a tired analyst types, against the emulator: every mistake is a typed error of the tree (never a bare
TypeError or ValueError), names the argument and the fix, and sends nothing that writes."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

import mangrove_nb as mnb
from mangrove_nb.emulator import Emulator

NCR = "Net Carbon Removal"


@pytest.fixture
def ncr(client: mnb.Client) -> str:
    ledgers = client.ledgers()
    return str(ledgers.loc[ledgers["name"] == NCR, "id"].item())


MISTAKES: dict[str, tuple[Callable[[mnb.Client, str], Any], type[mnb.MangroveError], str, str]] = {
    # name: (the call, the error, the argument it names, words of the fix)
    "a type name as a skipped id": (
        lambda c, lid: c.generate(lid, "2025-11", skipped_data_point_type_ids=["electricity"]),
        mnb.ValidationError, "skipped_data_point_type_ids", "integer ids"),
    "one skipped id, not a list": (
        lambda c, lid: c.generate(lid, "2025-11", skipped_data_point_type_ids=7),
        mnb.ValidationError, "skipped_data_point_type_ids", "must be a list"),
    "a tuple as a batch amount": (
        lambda c, lid: c.generate(lid, "2025Q1", batch_amounts=[("bat_b", 1)]),
        mnb.ValidationError, "batch_amounts", "primary_output_amount"),
    "a NaN amount": (
        lambda c, lid: c.generate(lid, "2025Q1", batch_amounts=[{"batch_id": "bat_b",
                                                                 "primary_output_amount": math.nan}]),
        mnb.ValidationError, "batch_amounts", "finite number"),
    "an infinite amount": (
        lambda c, lid: c.generate(lid, "2025Q1", batch_amounts=[{"batch_id": "bat_b",
                                                                 "primary_output_amount": math.inf}]),
        mnb.ValidationError, "batch_amounts", "finite number"),
    "a misspelled amount key": (
        lambda c, lid: c.generate(lid, "2025Q1", batch_amounts=[{"batch_id": "bat_b", "amount": 3}]),
        mnb.ValidationError, "batch_amounts", "unknown key"),
    "one data point id as a string": (
        lambda c, lid: c.generate(lid, "2025Q1", data_point_ids="dp_123"),
        mnb.ValidationError, "data_point_ids", "must be a list"),
    "a ledger given as a number": (
        lambda c, lid: c.batches(123), mnb.ValidationError, "ledger", "ledger id string"),
    "a ledger given as a number, generating": (
        lambda c, lid: c.generate(123, "2025Q1"), mnb.ValidationError, "ledger", "ledger id string"),
    "an empty list of ledgers": (
        lambda c, lid: c.batches([]), mnb.ValidationError, "ledger", "empty list"),
    "a quarter that does not exist": (
        lambda c, lid: c.generate(lid, "2025Q5"), mnb.PeriodError, "period", "Accepted forms"),
    "a skip over a whole quarter": (
        lambda c, lid: c.generate(lid, "2025Q4", skipped_data_point_type_ids=[7]),
        mnb.PreconditionError, "", "skip_in_every_month=True"),
}


@pytest.mark.parametrize("mistake", MISTAKES)
def test_each_mistake_is_a_typed_error_naming_the_argument_and_nothing_is_sent(
        emulator: Emulator, client: mnb.Client, ncr: str, mistake: str) -> None:
    call, expected, argument, fix = MISTAKES[mistake]
    with pytest.raises(mnb.MangroveError) as caught:
        call(client, ncr)
    error = caught.value
    assert isinstance(error, expected), repr(error)
    assert fix in str(error)
    if argument:
        assert error.argument == argument and argument in str(error)
    assert emulator.count("create-batch-generation") == 0
    # Nothing was remembered as sent: the right call still goes through.
    assert client.generate(ncr, "2025-01").id is not None


def test_period_and_report_errors_are_in_the_tree() -> None:
    assert issubclass(mnb.PeriodError, mnb.MangroveError) and issubclass(mnb.PeriodError, ValueError)
    assert issubclass(mnb.ReportError, mnb.MangroveError)
