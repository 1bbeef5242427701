"""The batch-generation workflow against the emulator, with plain HTTP, as the cookbook walks it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from mangrove_nb.emulator import Emulator

Q1_2025 = {"start_time": "2025-01-01T00:00:00Z", "end_time": "2025-03-31T23:59:59Z"}
Q2_2025 = {"start_time": "2025-04-01T00:00:00Z", "end_time": "2025-06-30T23:59:59Z"}
Q4_2025 = {"start_time": "2025-10-01T00:00:00Z", "end_time": "2025-12-31T23:59:59Z"}


def call(api: requests.Session, method: str, path: str, expect: int = 200, **kwargs: Any) -> Any:
    response = api.request(method, f"{api.base}{path}", timeout=10, **kwargs)  # type: ignore[attr-defined]
    assert response.status_code == expect, f"{method} {path}: {response.status_code} {response.text[:500]}"
    return response.json() if response.content else None


def ledger_ids(api: requests.Session) -> dict[str, str]:
    return {item["name"]: item["id"] for item in call(api, "GET", "/ledgers", params={"page_size": 100})["data"]}


def wait_for(api: requests.Session, task_id: int, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = call(api, "GET", f"/async_tasks/{task_id}")
        if task["state"] in ("complete", "failed"):
            return task
        time.sleep(0.02)
    raise AssertionError(f"task {task_id} did not finish in {timeout} s")


def all_batches(api: requests.Session, ledger_id: str, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    page: int | None = 1
    while page:
        body = call(api, "GET", f"/ledgers/{ledger_id}/batches", params={**params, "page": page, "page_size": 100})
        items += body["data"]
        page = body["info"]["next_page"]
    return items


def test_cookbook_six_steps(api: requests.Session) -> None:
    """ledgers -> required inputs -> preview -> 202 -> poll to complete -> the listing shows the preview's count."""
    ledgers = call(api, "GET", "/ledgers")["data"]
    ncr = next(item for item in ledgers if item["name"] == "Net Carbon Removal")
    assert ncr["latest_model"] is not None and ncr["unit"] == "t" and ncr["cadence"] == "monthly"

    inputs = call(api, "GET", f"/ledgers/{ncr['id']}/required_inputs")["data"]
    assert {i["slug"] for i in inputs} >= {"feedstock-delivery-mass", "transport-distance", "biochar-mass"}
    assert next(i for i in inputs if i["slug"] == "feedstock-delivery-mass")["unit"] == "U.S. ton"

    preview = call(api, "POST", f"/ledgers/{ncr['id']}/generate_preview", json=Q1_2025)["data"]
    expected = next(p["count"] for p in preview if p["id"] == ncr["id"])
    assert expected == 3

    before = time.monotonic()
    task = call(api, "POST", f"/ledgers/{ncr['id']}/batch_generations", expect=202, json=Q1_2025)
    assert time.monotonic() - before < 1.0
    assert task["state"] == "pending" and task["progress"] == 0 and isinstance(task["id"], int)

    done = wait_for(api, task["id"])
    assert done["state"] == "complete" and done["progress"] == 100 and done["error_message"] is None

    listed = call(api, "GET", f"/ledgers/{ncr['id']}/batches", params={"sort": "-created_at"})["data"]
    made = [b for b in listed if done["started_at"] <= b["created_at"] <= done["finished_at"]]
    assert len(made) == expected
    assert sorted(b["start_time"][:7] for b in made) == ["2025-01", "2025-02", "2025-03"]
    assert all(b["state"] == "complete" and b["primary_output"]["unit"] == "t" for b in made)
    assert listed[0]["created_at"] >= listed[-1]["created_at"]  # sort=-created_at


def test_generation_is_asynchronous_with_progress(make_emulator: Callable[..., Emulator]) -> None:
    """At a slower speed the task is seen pending, then running with 'Processing batch i of n', then complete."""
    emu = make_emulator(batch_seconds=0.3, pickup_seconds=0.2)
    with requests.Session() as api:
        api.headers["Authorization"] = emu.token  # the bare token is accepted too
        api.base = emu.url  # type: ignore[attr-defined]
        ncr = ledger_ids(api)["Net Carbon Removal"]
        task = call(api, "POST", f"/ledgers/{ncr}/batch_generations", expect=202, json=Q1_2025)
        seen: list[tuple[str, int, str | None]] = []
        while not seen or seen[-1][0] not in ("complete", "failed"):
            body = call(api, "GET", f"/async_tasks/{task['id']}")
            seen.append((body["state"], body["progress"], body["progress_description"]))
            time.sleep(0.05)
    states = [s for s, _p, _d in seen]
    assert states[0] == "pending" and "running" in states and states[-1] == "complete"
    descriptions = {d for _s, _p, d in seen if d and d.startswith("Processing")}
    assert descriptions == {"Processing batch 1 of 3", "Processing batch 2 of 3", "Processing batch 3 of 3"}
    progress = [p for _s, p, _d in seen]
    assert progress == sorted(progress) and progress[-1] == 100


def test_concurrent_models_preview_two_ledgers_and_generate_both(api: requests.Session) -> None:
    ids = ledger_ids(api)
    preview = call(api, "POST", f"/ledgers/{ids['Net Carbon Removal']}/generate_preview", json=Q1_2025)["data"]
    assert [(p["name"], p["count"]) for p in preview] == [("Net Carbon Removal", 3), ("Biochar Produced", 3)]
    task = call(api, "POST", f"/ledgers/{ids['Net Carbon Removal']}/batch_generations", expect=202, json=Q1_2025)
    assert wait_for(api, task["id"])["state"] == "complete"
    q1 = {"filter[state][eq]": "complete"}
    produced = [b for b in all_batches(api, ids["Biochar Produced"], **q1) if b["start_time"].startswith("2025-0")]
    assert len(produced) == 3
    # Biochar Produced for Q1 is now made: its own preview counts nothing left.
    again = call(api, "POST", f"/ledgers/{ids['Biochar Produced']}/generate_preview", json=Q1_2025)["data"]
    assert again == [{"id": ids["Biochar Produced"], "name": "Biochar Produced", "count": 0}]


def test_seeded_state_2024_generated_2025_not(api: requests.Session) -> None:
    ids = ledger_ids(api)
    for name in ("Net Carbon Removal", "Biochar Produced"):
        batches = all_batches(api, ids[name])
        assert sorted({b["start_time"][:7] for b in batches}) == [f"2024-{m:02d}" for m in range(1, 13)]
    full_2025 = {"start_time": "2025-01-01T00:00:00Z", "end_time": "2025-12-31T23:59:59Z"}
    preview = call(api, "POST", f"/ledgers/{ids['Net Carbon Removal']}/generate_preview", json=full_2025)["data"]
    assert preview[0]["count"] == 11  # twelve months less the May shutdown


def test_shutdown_month_is_a_gap(api: requests.Session) -> None:
    ids = ledger_ids(api)
    preview = call(api, "POST", f"/ledgers/{ids['Net Carbon Removal']}/generate_preview", json=Q2_2025)["data"]
    assert preview[0]["count"] == 2
    task = call(api, "POST", f"/ledgers/{ids['Net Carbon Removal']}/batch_generations", expect=202, json=Q2_2025)
    assert wait_for(api, task["id"])["state"] == "complete"
    months = sorted(b["start_time"][:7] for b in all_batches(api, ids["Net Carbon Removal"])
                    if b["start_time"] >= "2025-04")
    assert months == ["2025-04", "2025-06"]
    starts = [e["start_time"][:7] for page in (1, 2, 3)
              for e in call(api, "GET", "/projects/123/events", params={"page_size": 100, "page": page})["data"]]
    assert "2025-05" not in starts and {"2025-04", "2025-06"} <= set(starts)


def test_feedstock_partitioned_ledger_one_batch_per_feedstock_per_month(api: requests.Session) -> None:
    dfd = ledger_ids(api)["Dry Feedstock Delivered"]
    preview = call(api, "POST", f"/ledgers/{dfd}/generate_preview", json=Q1_2025)["data"]
    task = call(api, "POST", f"/ledgers/{dfd}/batch_generations", expect=202, json=Q1_2025)
    assert wait_for(api, task["id"])["state"] == "complete"
    made = [b for b in all_batches(api, dfd) if b["start_time"] >= "2025-01" and b["start_time"] < "2025-04"]
    assert len(made) == preview[0]["count"] >= 4
    keys = [(b["start_time"][:7], b["feedstocks"][0]["slug"]) for b in made]
    assert len(keys) == len(set(keys)) and {f for _m, f in keys} <= {"pine-residue", "almond-shells", "corn-stover"}


def test_missing_required_input_fails_the_task_and_leaves_nothing(api: requests.Session) -> None:
    """November 2025 lacks an electricity reading: the task fails, names the input, and makes no batch."""
    ncr = ledger_ids(api)["Net Carbon Removal"]
    before = len(all_batches(api, ncr))
    task = call(api, "POST", f"/ledgers/{ncr}/batch_generations", expect=202, json=Q4_2025)
    done = wait_for(api, task["id"])
    assert done["state"] == "failed" and done["finished_at"] is not None
    assert "Electricity Consumption" in done["error_message"] and "skipped_data_point_type_ids" in done["error_message"]
    assert len(all_batches(api, ncr)) == before

    retry = call(api, "POST", f"/ledgers/{ncr}/batch_generations", expect=202,
                 json={**Q4_2025, "skipped_data_point_type_ids": [7]})
    assert wait_for(api, retry["id"])["state"] == "complete"
    assert len(all_batches(api, ncr)) == before + 3


def test_failed_batch_is_seeded_and_can_be_deleted_and_regenerated(api: requests.Session) -> None:
    dfd = ledger_ids(api)["Dry Feedstock Delivered"]
    failed = all_batches(api, dfd, **{"filter[state][eq]": "failed"})
    assert len(failed) == 1 and "112" in failed[0]["model_run"]["error_message"]
    october = {"start_time": "2024-10-01T00:00:00Z", "end_time": "2024-10-31T23:59:59Z"}
    refused = api.post(f"{api.base}/ledgers/{dfd}/batch_generations", json=october, timeout=10)  # type: ignore[attr-defined]
    assert refused.status_code == 422 and "Nothing to generate" in refused.json()["errors"][0]["message"]
    call(api, "DELETE", f"/batches/{failed[0]['id']}", expect=204)
    call(api, "GET", f"/batches/{failed[0]['id']}", expect=404)
    assert call(api, "POST", f"/ledgers/{dfd}/generate_preview", json=october)["data"][0]["count"] == 1


def test_no_model_ledger_is_refused_with_the_reason(api: requests.Session) -> None:
    credits = ledger_ids(api)["Credits Issued"]
    assert call(api, "GET", f"/ledgers/{credits}")["latest_model"] is None
    for path in ("generate_preview", "batch_generations"):
        body = call(api, "POST", f"/ledgers/{credits}/{path}", expect=422, json=Q1_2025)
        assert "no linked model" in body["errors"][0]["message"]
    assert call(api, "GET", f"/ledgers/{credits}/required_inputs")["data"] == []


def test_manual_select_input_needs_data_point_ids_and_allocates_upstream(api: requests.Session) -> None:
    ids = ledger_ids(api)
    soil = ids["Biochar Applied to Soil"]
    inputs = call(api, "GET", f"/ledgers/{soil}/required_inputs")["data"]
    assert inputs[0]["is_manual_select"] is True
    assert inputs[0]["output_of_ledgers"] == [{"id": ids["Biochar Produced"], "name": "Biochar Produced"}]
    h1 = {"start_time": "2024-01-01T00:00:00Z", "end_time": "2024-06-30T23:59:59Z"}
    refused = call(api, "POST", f"/ledgers/{soil}/batch_generations", expect=422, json=h1)
    assert "data_point_ids" in refused["errors"][0]["message"]

    upstream = sorted(all_batches(api, ids["Biochar Produced"]), key=lambda b: b["start_time"])[:3]
    dp_ids = [b["model_run"]["output_data_points"][0]["id"] for b in upstream[:2]]
    partial = {"batch_id": upstream[2]["id"], "primary_output_amount": 1.5, "allocation_group": "soil-application"}
    body = {**h1, "data_point_ids": dp_ids, "batch_amounts": [partial]}
    preview = call(api, "POST", f"/ledgers/{soil}/generate_preview", json={**h1, "data_point_ids": dp_ids})["data"]
    assert preview[0]["count"] == 2
    task = call(api, "POST", f"/ledgers/{soil}/batch_generations", expect=202, json=body)
    assert wait_for(api, task["id"])["state"] == "complete"
    made = sorted(all_batches(api, soil), key=lambda b: b["start_time"])
    assert [b["primary_output"]["value"] for b in made] == [
        upstream[0]["primary_output"]["value"], upstream[1]["primary_output"]["value"], 1.5]
    third = call(api, "GET", f"/batches/{upstream[2]['id']}")
    assert third["ledger_balance"] == pytest.approx(upstream[2]["primary_output"]["value"] - 1.5)
    assert third["allocations"][0]["amount"] == 1.5
    # An allocated upstream batch cannot be deleted from under its downstream batch.
    call(api, "DELETE", f"/batches/{upstream[0]['id']}", expect=422)


def test_overlapping_generation_is_refused_while_running(make_emulator: Callable[..., Emulator]) -> None:
    emu = make_emulator(batch_seconds=0.5, pickup_seconds=0.1)
    with requests.Session() as api:
        api.headers["Authorization"] = f"Bearer {emu.token}"
        api.base = emu.url  # type: ignore[attr-defined]
        ids = ledger_ids(api)
        first = call(api, "POST", f"/ledgers/{ids['Net Carbon Removal']}/batch_generations", expect=202, json=Q1_2025)
        jan = {"start_time": "2025-01-01T00:00:00Z", "end_time": "2025-01-31T23:59:59Z"}
        # Biochar Produced is one of the running model's outputs, so this overlaps too.
        second = call(api, "POST", f"/ledgers/{ids['Biochar Produced']}/batch_generations", expect=422, json=jan)
        assert f"Async task {first['id']}" in second["errors"][0]["message"]
        other = call(api, "POST", f"/ledgers/{ids['Dry Feedstock Delivered']}/batch_generations", expect=202,
                     json=jan)
        assert wait_for(api, first["id"])["state"] == "complete"
        assert wait_for(api, other["id"])["state"] == "complete"
    assert emu.count("create-batch-generation") == 3
