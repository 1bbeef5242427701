"""The emulator's biochar model, recomputed by hand from the events the API lists.

The constants below are typed from the model's docstring, not imported, so a change to the formulas
that the docstring does not follow fails here.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest
import requests

from mangrove_nb.emulator import model

US_TON = 0.90718474
MILE_KM = 1.609344
PERMANENCE = 0.80
TRUCK_EF = 0.000105
GRID_EF = 0.000386


def get(api: requests.Session, path: str, **params: Any) -> Any:
    response = api.get(f"{api.base}{path}", params=params, timeout=10)  # type: ignore[attr-defined]
    assert response.status_code == 200, response.text
    return response.json()


def month_events(api: requests.Session, month: str) -> list[dict[str, Any]]:
    events, page = [], 1
    while page:
        body = get(api, "/projects/123/events", page=page, page_size=100)
        events += [e for e in body["data"] if e["start_time"].startswith(month)]
        page = body["info"]["next_page"]
    return events


def values(event: dict[str, Any]) -> dict[str, Any]:
    return {point["slug"]: point["value"] for point in event["data_points"]}


def batch_for(api: requests.Session, ledger_name: str, month: str) -> dict[str, Any]:
    ledgers = {item["name"]: item["id"] for item in get(api, "/ledgers")["data"]}
    batches = get(api, f"/ledgers/{ledgers[ledger_name]}/batches", page_size=100)["data"]
    return next(b for b in batches if b["start_time"].startswith(month))


def test_net_carbon_removal_recomputed_by_hand(api: requests.Session) -> None:
    events = month_events(api, "2024-03")
    runs = [values(e) for e in events if e["slug"] == "pyrolysis-run"]
    deliveries = [values(e) for e in events if e["slug"] == "feedstock-delivery"]
    assert runs and deliveries

    carbon = sum(r["biochar-mass"] * US_TON * r["biochar-carbon-content"] / 100 for r in runs)
    gross = carbon * PERMANENCE * 44 / 12
    transport = sum(d["feedstock-delivery-mass"] * US_TON * d["transport-distance"] * MILE_KM * TRUCK_EF
                    for d in deliveries)
    electricity = sum(r["electricity-consumption"] * GRID_EF for r in runs)
    expected = gross - transport - electricity

    batch = batch_for(api, "Net Carbon Removal", "2024-03")
    # Each term is rounded to 3 decimals and the net is the sum of the rounded terms (the docstring): within
    # three half-units of the unrounded formula, and exactly what the breakdown adds up to.
    assert batch["primary_output"]["value"] == pytest.approx(expected, abs=0.0015)
    assert batch["primary_output"]["unit"] == "t"
    calcs = {c["name"]: c["value"] for c in batch["model_run"]["calculations"]}
    assert calcs["Gross removal"] == pytest.approx(gross, abs=0.0005)
    assert calcs["Transport emissions"] == pytest.approx(transport, abs=0.0005)
    assert calcs["Electricity emissions"] == pytest.approx(electricity, abs=0.0005)
    assert set(calcs) == {"Gross removal", "Transport emissions", "Electricity emissions"}
    assert batch["primary_output"]["value"] == pytest.approx(
        calcs["Gross removal"] - calcs["Transport emissions"] - calcs["Electricity emissions"], abs=1e-9)
    # Plausible magnitudes for a small plant: tens of tonnes a month, emissions a few percent.
    assert 30 < expected < 150 and transport + electricity < 0.2 * gross

    produced = batch_for(api, "Biochar Produced", "2024-03")
    assert produced["primary_output"]["value"] == pytest.approx(sum(r["biochar-mass"] * US_TON for r in runs), abs=5e-4)


def test_batch_detail_lists_every_input_data_point_it_used(api: requests.Session) -> None:
    batch = batch_for(api, "Net Carbon Removal", "2024-03")
    detail = get(api, f"/batches/{batch['id']}")
    used = {pair["data_point"]["id"] for pair in detail["input_data"]}
    wanted = {"biochar-mass", "biochar-carbon-content", "electricity-consumption", "feedstock-delivery-mass",
              "transport-distance"}
    expected = {p["id"] for e in month_events(api, "2024-03") for p in e["data_points"] if p["slug"] in wanted}
    assert used == expected


def test_dry_feedstock_recomputed_by_hand(api: requests.Session) -> None:
    by_feedstock: dict[str, float] = defaultdict(float)
    for event in month_events(api, "2024-02"):
        if event["slug"] == "feedstock-delivery":
            v = values(event)
            by_feedstock[v["feedstock-type"]] += v["feedstock-delivery-mass"] * US_TON * (
                1 - v["feedstock-moisture-content"] / 100)
    ledgers = {item["name"]: item["id"] for item in get(api, "/ledgers")["data"]}
    batches = get(api, f"/ledgers/{ledgers['Dry Feedstock Delivered']}/batches", page_size=100)["data"]
    feb = {b["feedstocks"][0]["slug"]: b["primary_output"]["value"] for b in batches
           if b["start_time"].startswith("2024-02")}
    assert feb.keys() == by_feedstock.keys()
    for feedstock, dry in by_feedstock.items():
        assert feb[feedstock] == pytest.approx(dry, abs=5e-4)


def test_model_refuses_out_of_range_percentages_and_missing_inputs() -> None:
    run = model.EventValues("evt_1", "Pyrolysis Run", {"biochar-mass": 8.0, "biochar-carbon-content": 140.0,
                                                       "electricity-consumption": 3000.0})
    with pytest.raises(model.ModelValueError, match="between 0 and 100"):
        model.net_carbon_removal([], [run], partition="2025-01")
    missing = model.EventValues("evt_2", "Pyrolysis Run", {"biochar-mass": 8.0, "biochar-carbon-content": 80.0})
    with pytest.raises(model.ModelInputError, match="Electricity Consumption"):
        model.net_carbon_removal([], [missing], partition="2025-01")
    skipped = model.net_carbon_removal([], [missing], partition="2025-01", skipped={"electricity-consumption"})
    expected = 8.0 * US_TON * 0.80 * PERMANENCE * 44 / 12
    assert skipped["net_carbon_removal"].value == pytest.approx(expected, abs=5e-4)
    electricity = next(c for c in skipped["net_carbon_removal"].calculations if c.name == "Electricity emissions")
    assert electricity.value == 0 and electricity.inputs == ("electricity-consumption",)


def test_rounded_terms_add_up_where_rounding_each_alone_would_not() -> None:
    """For four of these masses, rounding the exact net gives a value 0.001 away from the sum of the rounded
    terms: the net is that sum, so a breakdown table never disagrees with its total."""
    for mass in (0.0123, 1.23456, 7.654321, 8.000449, 10.1049):
        run = model.EventValues("evt_r", "Pyrolysis Run", {"biochar-mass": mass, "biochar-carbon-content": 77.7,
                                                           "electricity-consumption": 1234.5})
        delivery = model.EventValues("evt_d", "Feedstock Delivery", {"feedstock-delivery-mass": mass * 3,
                                                                     "transport-distance": 41.3})
        result = model.net_carbon_removal([delivery], [run], partition="2025-01")["net_carbon_removal"]
        removal = sum(c.value for c in result.calculations if c.lca_role != "emission")
        emissions = sum(c.value for c in result.calculations if c.lca_role == "emission")
        assert removal - emissions == pytest.approx(result.value, abs=1e-9)
        assert all(round(c.value, 3) == c.value for c in result.calculations)
