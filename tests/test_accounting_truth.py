"""Never overstate a removal: the skip recipe, the traces of a skipped input, the LCA breakdown, and the
messages that say why nothing was generated. Against the emulator over loopback.

The seed's November 2025 pyrolysis run has no electricity reading (data point type 7): Q4 2025 fails until
that input is skipped. The API applies a skip to every month of the request, so the safe recipe generates
November alone with the skip, then the rest of the quarter without.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from helpers import FAST

import mangrove_nb as mnb
from mangrove_nb.emulator import Emulator

NCR = "Net Carbon Removal"
ELECTRICITY = 7
GRID_EF_T_PER_KWH = 0.000386  # the emulator's documented model constant (README, "The model")


@pytest.fixture
def client_options() -> dict[str, Any]:
    """The shared ``client`` (conftest.py) connects to the seed's project: events are read per project."""
    return {"project_id": 123}


def electricity_by_hand(client: mnb.Client, month: str) -> float:
    """The month's electricity emissions recomputed from the events the API lists (kWh × grid factor)."""
    events = client.events(period=month)
    kwh = events.loc[events["data_point_slug"] == "electricity-consumption", "value"].sum()
    return round(float(kwh) * GRID_EF_T_PER_KWH, 3)


def breakdown(client: mnb.Client, batches: pd.DataFrame, month: str) -> pd.Series:
    one = batches[(batches["ledger_name"] == NCR) & (batches["start_time"].dt.strftime("%Y-%m") == month)]
    calcs = client.calculations(one)
    return calcs.set_index("name")["value"]


def test_a_missing_input_failure_names_the_month_and_the_one_month_call(client: mnb.Client) -> None:
    with pytest.raises(mnb.TaskFailedError) as caught:
        client.generate(NCR, "2025Q4").wait()
    shown = str(caught.value)
    ncr = client.ledger_id(NCR)
    assert (f"client.generate({ncr!r}, '2025-11', skipped_data_point_type_ids=[{ELECTRICITY}], "
            "drop_existing_readings=True)") in str(caught.value)  # in the message, not only in a note
    assert f"client.generate({ncr!r}, '2025Q4')" in shown and "Never skip across months" in shown
    assert "Add it in Mangrove" in shown and "overstates net removal" in shown


def test_a_skip_without_a_project_to_check_the_readings_is_refused(emulator: Emulator) -> None:
    with mnb.connect(emulator.token, emulator.url, **FAST) as no_project, \
            pytest.raises(mnb.PreconditionError, match="without a project"):
        no_project.generate(NCR, "2025-11", skipped_data_point_type_ids=[ELECTRICITY])
    assert emulator.count("create-batch-generation") == 0


def test_the_one_month_recipe_keeps_october_and_december_readings(client: mnb.Client, emulator: Emulator) -> None:
    with pytest.raises(mnb.PreconditionError, match="skip_in_every_month"):
        client.generate(NCR, "2025Q4", skipped_data_point_type_ids=[ELECTRICITY])
    assert emulator.count("create-batch-generation") == 0
    with pytest.raises(mnb.PreconditionError, match=r"2025-11 has 3 reading\(s\) of Electricity Consumption"):
        client.generate(NCR, "2025-11", skipped_data_point_type_ids=[ELECTRICITY])  # they would be dropped
    assert emulator.count("create-batch-generation") == 0
    client.generate(NCR, "2025-11", skipped_data_point_type_ids=[ELECTRICITY], drop_existing_readings=True).wait()
    client.generate(NCR, "2025Q4").wait()

    made = client.batches(NCR, "2025Q4", details=True)
    assert len(made) == 3 and made["ledger_name"].eq(NCR).all()
    by_month = made.set_index(made["start_time"].dt.strftime("%Y-%m"))
    assert by_month.loc["2025-11", "skipped_inputs"] == "Electricity Consumption"
    assert by_month.loc["2025-11", "skipped_input_ids"] == str(ELECTRICITY)
    assert by_month.loc[["2025-10", "2025-12"], "skipped_inputs"].isna().all()

    for month in ("2025-10", "2025-12"):  # recomputed by hand: no reading was dropped
        expected = electricity_by_hand(client, month)
        assert expected > 0
        assert breakdown(client, made, month)["Electricity emissions"] == pytest.approx(expected)
    november = client.calculations(made[made["start_time"].dt.month == 11])
    row = november[november["name"] == "Electricity emissions"].iloc[0]
    assert row["value"] == 0 and "counted as zero" in row["note"]


def test_the_unsafe_recipe_would_have_overstated_the_quarter(make_emulator: object) -> None:
    """What the guard prevents, measured: skipping electricity in every month drops October's and December's
    emissions, so the quarter's net removal is higher than with the safe recipe."""
    totals = {}
    for recipe in ("safe", "every month"):
        emu = make_emulator()  # type: ignore[operator]
        with mnb.connect(emu.token, emu.url, project_id=123, **FAST) as client:
            if recipe == "safe":
                client.generate(NCR, "2025-11", skipped_data_point_type_ids=[ELECTRICITY],
                                drop_existing_readings=True).wait()
                client.generate(NCR, "2025Q4").wait()
            else:
                client.generate(NCR, "2025Q4", skipped_data_point_type_ids=[ELECTRICITY],
                                skip_in_every_month=True, drop_existing_readings=True).wait()
            batches = client.batches(NCR, "2025Q4", details=True)
            totals[recipe] = float(batches["output_value"].sum())
            if recipe == "every month":
                assert batches["skipped_inputs"].eq("Electricity Consumption").all()  # visible afterwards
    assert totals["every month"] > totals["safe"] + 10  # the README's +15.3 t on Q4


def test_the_calculations_make_up_each_net_figure(client: mnb.Client) -> None:
    batches = client.batches(NCR, "2024Q4")
    calcs = client.calculations(batches)
    assert set(calcs.columns) >= {"batch_id", "tracking_id", "ledger_id", "start_time", "name", "value", "unit",
                                  "ghg", "lca_role", "category"}
    assert calcs["ledger_id"].notna().all() and calcs["start_time"].dt.tz is not None
    for batch in batches.itertuples():
        mine = calcs[calcs["batch_id"] == batch.id]
        removal = mine.loc[mine["lca_role"] != "emission", "value"].sum()
        emissions = mine.loc[mine["lca_role"] == "emission", "value"].sum()
        assert removal - emissions == pytest.approx(batch.output_value, abs=1e-6), mine
    assert client.calculations([]).empty and list(client.calculations([]).columns) == list(calcs.columns)


@pytest.mark.parametrize(("period", "why"), [
    (("2025-01-10", "2025-01-20"), "holds no whole calendar month"),
    ("2024Q1", "already has 3 batch(es) (2024-01, 2024-02, 2024-03)"),
    ("2025-05", "has no data for this period"),
])
def test_nothing_to_generate_says_why(client: mnb.Client, emulator: Emulator, period: object, why: str) -> None:
    with pytest.raises(mnb.PreconditionError) as caught:
        client.generate(NCR, period)  # type: ignore[arg-type]
    assert why in str(caught.value)
    assert "Delete batches to generate them again" not in str(caught.value)
    assert emulator.count("create-batch-generation") == 0


def test_delete_batch_frees_a_failed_partition(client: mnb.Client) -> None:
    feedstock = client.batches("Dry Feedstock Delivered", "2024-10", state="failed")
    assert len(feedstock) == 1
    client.delete_batch(feedstock["id"].item())
    assert client.batches("Dry Feedstock Delivered", "2024-10", state="failed").empty
    with pytest.raises(mnb.ValidationError, match="batch_id"):
        client.delete_batch(None)  # type: ignore[arg-type]


def test_state_names_and_project(client: mnb.Client, monkeypatch: pytest.MonkeyPatch, emulator: Emulator) -> None:
    with pytest.raises(mnb.ValidationError, match="state must be one of complete, processing, failed"):
        client.batches(NCR, "2024", state="completed")
    assert client.project().name == "Cascade Biochar Facility"
    monkeypatch.setenv("MANGROVE_PROJECT_ID", "123")
    with mnb.connect(emulator.token, emulator.url, show_progress=False) as from_env:
        assert from_env.settings.project_id == "123" and from_env.project().id == "123"
        assert len(from_env.events(period="2024-01")) > 0
    monkeypatch.delenv("MANGROVE_PROJECT_ID")
    with mnb.connect(emulator.token, emulator.url, show_progress=False) as none, \
            pytest.raises(mnb.ConfigurationError, match="MANGROVE_PROJECT_ID"):
        none.project()


def test_batches_across_ledgers_name_every_row(client: mnb.Client) -> None:
    both = client.batches([NCR, "Biochar Produced"], "2024Q1")
    assert both["ledger_id"].notna().all() and set(both["ledger_name"]) == {NCR, "Biochar Produced"}
    every = client.batches(None, "2024Q1")
    assert every["ledger_id"].notna().all() and every["ledger_name"].notna().all()
