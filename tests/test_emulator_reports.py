"""Reports (registry submission) on the emulator, over real HTTP (mangrove-api.md, "Reports (registry submission)").

Every emulator here comes from ``make_emulator`` (or ``api``), so each response is validated against the contract
when the test ends. What is checked: the seeded reports and their allocation; listing (filters, sorts, pages);
``PATCH`` replacing a draft's batches and each refusal (404 naming unknown ids; 422, one message per refused
batch; 422 for a report that is not draft); ``POST …/submit`` → poll → allocation → balances →
``report_allocations``; a second submit refused with nothing changed; each unmet requirement; the registry's
rejection (task failed, report back to draft); a file database keeping reports and allocations, and resuming a
submission, across a restart; hostile names kept as data.

A few rules need a state the API cannot make (a batch of another project, in another unit, or that stopped being
complete): those tests bend the emulator's store first, and say so.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from mangrove_nb.emulator import Emulator
from mangrove_nb.emulator.store import SCHEMA_VERSION

DOCUMENTED = "Report does not meet submission requirements"
Q1_2025 = {"start_time": "2025-01-01T00:00:00Z", "end_time": "2025-03-31T23:59:59Z"}
Q4_2024_TOTAL = 227.174  # the three seeded 2024Q4 Net Carbon Removal batches: 101.275 + 70.199 + 55.7


def session(emu: Emulator, token: str | None = None) -> requests.Session:
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {token or emu.token}"
    s.base = emu.url  # type: ignore[attr-defined]
    return s


def call(api: requests.Session, method: str, path: str, expect: int = 200, **kwargs: Any) -> Any:
    response = api.request(method, f"{api.base}{path}", timeout=10, **kwargs)  # type: ignore[attr-defined]
    assert response.status_code == expect, f"{method} {path}: {response.status_code} {response.text[:800]}"
    return response.json() if response.content else None


def messages(body: dict[str, Any]) -> list[str]:
    return [item["message"] for item in body["errors"]]


def reports(api: requests.Session) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in call(api, "GET", "/reports", params={"page_size": 100})["data"]}


def batches(api: requests.Session) -> dict[str, dict[str, Any]]:
    """Every batch by tracking id."""
    found: dict[str, dict[str, Any]] = {}
    page: int | None = 1
    while page:
        body = call(api, "GET", "/batches", params={"page": page, "page_size": 100})
        found.update({b["tracking_id"]: b for b in body["data"]})
        page = body["info"]["next_page"]
    return found


def patch(api: requests.Session, report_id: str, expect: int = 200, **fields: Any) -> Any:
    return call(api, "PATCH", f"/reports/{report_id}", expect=expect, json={"report": fields})


def wait_for(api: requests.Session, task_id: int, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = call(api, "GET", f"/async_tasks/{task_id}")
        if task["state"] in ("complete", "failed"):
            return task
        time.sleep(0.02)
    raise AssertionError(f"task {task_id} did not finish in {timeout} s")


def submit_and_wait(api: requests.Session, report_id: str) -> dict[str, Any]:
    accepted = call(api, "POST", f"/reports/{report_id}/submit", expect=202)
    assert accepted == {"id": report_id, "status": "submitting", "async_task_id": accepted["async_task_id"]}
    return wait_for(api, accepted["async_task_id"])


def generate(api: requests.Session, ledger_name: str, body: dict[str, Any]) -> None:
    ledgers = {item["name"]: item["id"] for item in call(api, "GET", "/ledgers", params={"page_size": 100})["data"]}
    task = call(api, "POST", f"/ledgers/{ledgers[ledger_name]}/batch_generations", expect=202, json=body)
    assert wait_for(api, task["id"])["state"] == "complete"


def use_on_soil(api: requests.Session, batch: dict[str, Any], amount: float) -> None:
    """Allocate ``amount`` of a Biochar Produced batch to a Biochar Applied to Soil batch of the same month."""
    month = batch["start_time"][:7]
    last = {"2024-01": 31, "2024-02": 29}[month]
    body = {"start_time": f"{month}-01T00:00:00Z", "end_time": f"{month}-{last}T23:59:59Z",
            "batch_amounts": [{"batch_id": batch["id"], "primary_output_amount": amount,
                               "allocation_group": "soil-application"}]}
    generate(api, "Biochar Applied to Soil", body)


# --- seeded reports and listing -----------------------------------------------------------------------------


def test_the_seeded_2024q4_report_holds_the_quarters_removals_and_their_balances_are_spent(
        api: requests.Session) -> None:
    seeded = reports(api)
    assert list(seeded) == ["2024Q4 Quarterly Report", "2025Q1 Quarterly Report", "Rejected by registry (demo)"]
    q4 = seeded["2024Q4 Quarterly Report"]
    assert (q4["status"], q4["report_type"], q4["project_id"]) == ("complete", "quarterly", 123)
    assert [i["tracking_id"] for i in q4["inclusions"]] == ["NCR-2024-10", "NCR-2024-11", "NCR-2024-12"]
    assert q4["allocation"]["amount"] == pytest.approx(Q4_2024_TOTAL) and q4["allocation"]["unit"] == "t"
    assert q4["allocation"]["amount"] == pytest.approx(sum(i["amount"] for i in q4["inclusions"]))
    by_tracking = batches(api)
    for item in q4["inclusions"]:
        batch = by_tracking[item["tracking_id"]]
        assert item["amount"] == batch["primary_output"]["value"] and batch["ledger_balance"] == 0
        detail = call(api, "GET", f"/batches/{item['batch_id']}")
        assert detail["report_allocations"] == [{
            "allocation": {"id": detail["report_allocations"][0]["allocation"]["id"], "amount": item["amount"],
                           "unit": "t"},
            "amount": item["amount"], "unit": "t",
            "report": {"id": q4["id"], "name": q4["name"], "report_type": "quarterly", "status": "complete"}}]
    q1 = seeded["2025Q1 Quarterly Report"]
    assert (q1["status"], q1["inclusions"], q1["allocation"]) == ("draft", [], None)
    demo = seeded["Rejected by registry (demo)"]
    assert demo["status"] == "draft" and [i["tracking_id"] for i in demo["inclusions"]] == [
        "NCR-2024-07", "NCR-2024-08", "NCR-2024-09"]
    # A draft's batches keep their balance: only a complete report's allocation spends it.
    assert by_tracking["NCR-2024-07"]["ledger_balance"] == by_tracking["NCR-2024-07"]["primary_output"]["value"]
    assert call(api, "GET", f"/batches/{demo['inclusions'][0]['batch_id']}")["report_allocations"] == []


def test_reports_list_filters_sorts_and_pages(api: requests.Session) -> None:
    drafts = call(api, "GET", "/reports", params={"filter[status][eq]": "draft"})
    assert [r["name"] for r in drafts["data"]] == ["2025Q1 Quarterly Report", "Rejected by registry (demo)"]
    assert drafts["info"]["filter"] == [{"field": "status", "operator": "eq", "value": "draft"}]
    assert call(api, "GET", "/reports", params={"filter[project_id][eq]": "123"})["info"]["total_items"] == 3
    assert call(api, "GET", "/reports", params={"filter[project_id][eq]": "999"})["data"] == []
    by_name = call(api, "GET", "/reports", params={"sort": "-name"})
    assert [r["name"] for r in by_name["data"]] == sorted((r["name"] for r in by_name["data"]), reverse=True)
    for field in ("id", "status", "created_at", "updated_at"):
        listed = call(api, "GET", "/reports", params={"sort": field})["data"]
        assert [r[field] for r in listed] == sorted(r[field] for r in listed)
    first = call(api, "GET", "/reports", params={"page_size": 2})
    assert first["info"] | {"sort": [], "filter": []} == {"items": 2, "page_size": 2, "total_items": 3,
                                                           "current_page": 1, "next_page": 2, "previous_page": None,
                                                           "total_pages": 2, "sort": [], "filter": []}
    second = call(api, "GET", "/reports", params={"page_size": 2, "page": 2})
    assert len(second["data"]) == 1 and second["info"]["next_page"] is None
    assert "sortable fields are id, name, status, created_at, updated_at" in messages(
        call(api, "GET", "/reports", expect=400, params={"sort": "amount"}))[0]
    assert "unknown field 'unit'" in messages(call(api, "GET", "/reports", expect=400,
                                                   params={"filter[unit][eq]": "t"}))[0]
    assert "Report rpt_nope not found" in messages(call(api, "GET", "/reports/rpt_nope", expect=404))[0]


# --- PATCH ----------------------------------------------------------------------------------------------------


def test_patch_batch_ids_replaces_the_set_at_each_batchs_balance(api: requests.Session) -> None:
    q1 = reports(api)["2025Q1 Quarterly Report"]
    b = batches(api)
    jan, feb, mar = b["NCR-2024-01"], b["NCR-2024-02"], b["NCR-2024-03"]
    made = patch(api, q1["id"], batch_ids=[jan["id"], feb["id"]])
    assert made["inclusions"] == [
        {"batch_id": x["id"], "tracking_id": x["tracking_id"], "ledger_id": made["inclusions"][0]["ledger_id"],
         "amount": x["ledger_balance"], "unit": "t"} for x in (jan, feb)]
    assert made["updated_at"] > q1["updated_at"] and made["status"] == "draft" and made["allocation"] is None
    replaced = patch(api, q1["id"], batch_ids=[mar["id"], feb["id"], mar["id"]])  # a set: order, repeats ignored
    assert sorted(i["tracking_id"] for i in replaced["inclusions"]) == ["NCR-2024-02", "NCR-2024-03"]
    renamed = patch(api, q1["id"], name="Q1 2025 (first filing)")  # no batch_ids: the batches stay
    assert renamed["name"] == "Q1 2025 (first filing)" and renamed["inclusions"] == replaced["inclusions"]
    assert patch(api, q1["id"], batch_ids=[])["inclusions"] == []
    assert call(api, "GET", f"/reports/{q1['id']}")["inclusions"] == []
    assert batches(api)["NCR-2024-02"]["ledger_balance"] == feb["ledger_balance"]  # a draft spends nothing


def test_patch_refuses_each_bad_batch_with_its_own_message_and_changes_nothing(api: requests.Session) -> None:
    seeded = reports(api)
    draft = seeded["2025Q1 Quarterly Report"]
    b = batches(api)
    use_on_soil(api, b["BCP-2024-01"], b["BCP-2024-01"]["primary_output"]["value"])  # its whole balance
    failed, reported, spent = b["DFD-2024-10-almond-shells"], b["NCR-2024-11"], b["BCP-2024-01"]
    fine = b["NCR-2024-05"]
    refused = patch(api, draft["id"], 422, batch_ids=[fine["id"], failed["id"], reported["id"], spent["id"]])
    assert messages(refused) == [
        f"Batch {failed['id']} (DFD-2024-10-almond-shells) is failed, not complete: only complete batches can be "
        "included in a report.",
        f"Batch {reported['id']} (NCR-2024-11) is already on report '2024Q4 Quarterly Report' "
        f"({seeded['2024Q4 Quarterly Report']['id']}), which is complete: a batch is reported once.",
        f"Batch {spent['id']} (BCP-2024-01) has no balance left on its ledger (0 t): there is nothing to report.",
    ]
    missing = patch(api, draft["id"], 404, batch_ids=[fine["id"], "bat_gone1", "bat_gone2"])
    assert messages(missing) == [f"Batch {gone} not found; list batches with GET /api/v1/batches."
                                 for gone in ("bat_gone1", "bat_gone2")]
    assert call(api, "GET", f"/reports/{draft['id']}") == draft  # nothing changed, not even updated_at
    complete = seeded["2024Q4 Quarterly Report"]
    assert messages(patch(api, complete["id"], 422, name="renamed")) == [
        f"Report {complete['id']} is complete: only draft reports can be updated."]
    assert call(api, "GET", f"/reports/{complete['id']}") == complete


def test_patch_refuses_a_batch_of_another_project_or_unit(emulator: Emulator, api: requests.Session) -> None:
    """Bends the store: the seed has one project and one unit, and the API cannot add either."""
    with emulator.store.transaction() as conn:
        conn.execute("INSERT INTO projects (id, name, description, project_type, country, state, methodology,"
                     " registry_name, credit_types, project_status) SELECT 124, 'Other', description, project_type,"
                     " country, state, methodology, registry_name, credit_types, project_status FROM projects")
        conn.execute("INSERT INTO reports (id, project_id, name, report_type, status, created_at, updated_at)"
                     " VALUES ('rpt_other', 124, 'Other project Q1', 'quarterly', 'draft', '2025-01-01T00:00:00.000Z',"
                     " '2025-01-01T00:00:00.000Z')")
        conn.execute("UPDATE ledgers SET unit = 'kg' WHERE abbreviation = 'DFD'")
    b = batches(api)
    ncr = b["NCR-2024-01"]
    assert messages(patch(api, "rpt_other", 422, batch_ids=[ncr["id"]])) == [
        f"Batch {ncr['id']} (NCR-2024-01) belongs to project 123, not to this report's project 124; a report "
        "includes batches of its own project only."]
    draft = reports(api)["2025Q1 Quarterly Report"]
    dfd = b["DFD-2024-01-pine-residue"]
    assert messages(patch(api, draft["id"], 422, batch_ids=[ncr["id"], dfd["id"]])) == [
        f"Batch {dfd['id']} (DFD-2024-01-pine-residue) is in kg, and the report's first batch ({ncr['id']}) in t: "
        "a report's allocation is one sum, so its batches share a unit."]


def test_patch_refuses_a_batch_whose_generation_is_still_running(make_emulator: Callable[..., Emulator]) -> None:
    emu = make_emulator(batch_seconds=0.4, pickup_seconds=0.0)
    with session(emu) as api:
        ledger = next(x["id"] for x in call(api, "GET", "/ledgers")["data"] if x["name"] == "Net Carbon Removal")
        task = call(api, "POST", f"/ledgers/{ledger}/batch_generations", expect=202, json=Q1_2025)
        deadline = time.monotonic() + 10
        while not (made := call(api, "GET", f"/ledgers/{ledger}/batches",
                                params={"filter[tracking_id][eq]": "NCR-2025-01"})["data"]):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        draft = reports(api)["2025Q1 Quarterly Report"]
        refused = messages(patch(api, draft["id"], 422, batch_ids=[made[0]["id"]]))
        assert refused == [f"Batch {made[0]['id']} (NCR-2025-01) is still being generated (async task {task['id']}); "
                           "include it once the task is complete."]
        assert wait_for(api, task["id"])["state"] == "complete"
        assert len(patch(api, draft["id"], batch_ids=[made[0]["id"]])["inclusions"]) == 1


@pytest.mark.parametrize(("body", "expected"), [
    ({"report": {}}, 'Body must be {"report": {"name": "...", "batch_ids": ["bat_..."]}}'),
    ({"name": "x"}, 'Body must be {"report"'),
    ({"report": {"name": "x"}, "extra": 1}, 'Body must be {"report"'),
    ({"report": {"title": "x"}}, "report: unknown field(s) title; accepted fields: name, batch_ids."),
    ({"report": {"name": "   "}}, "report.name must be a non-empty string of at most 255 characters."),
    ({"report": {"name": "x" * 256}}, "report.name must be a non-empty string of at most 255 characters."),
    ({"report": {"name": None}}, "report.name must be a non-empty string"),
    ({"report": {"batch_ids": "bat_x"}}, "report.batch_ids must be an array of batch id strings"),
    ({"report": {"batch_ids": ["bat_x", 7]}}, "report.batch_ids[1] must be a batch id string"),
    ({"report": {"batch_ids": ["b" * 256]}}, "report.batch_ids[0] is too long: 256 characters; at most 255."),
    ({"report": {"batch_ids": ["bat_x"] * 10_001}}, "report.batch_ids is too long: 10,001 items"),
])
def test_bad_patch_bodies_are_refused_naming_the_field(api: requests.Session, body: dict[str, Any],
                                                       expected: str) -> None:
    draft = reports(api)["2025Q1 Quarterly Report"]
    refused = call(api, "PATCH", f"/reports/{draft['id']}", expect=422, json=body)
    assert expected in messages(refused)[0]
    assert call(api, "GET", f"/reports/{draft['id']}") == draft


def test_a_read_only_token_reads_reports_but_cannot_change_them(make_emulator: Callable[..., Emulator]) -> None:
    emu = make_emulator(read_only_tokens=("mgv_read_only_reports",))
    with session(emu, "mgv_read_only_reports") as api:
        draft = reports(api)["Rejected by registry (demo)"]
        assert "read and write" in messages(patch(api, draft["id"], 403, name="x"))[0]
        assert "read and write" in messages(call(api, "POST", f"/reports/{draft['id']}/submit", expect=403))[0]
        assert call(api, "GET", f"/reports/{draft['id']}") == draft


# --- submission -----------------------------------------------------------------------------------------------


def test_submit_polls_to_complete_then_allocates_and_spends_the_balances(
        make_emulator: Callable[..., Emulator]) -> None:
    emu = make_emulator(batch_seconds=0.2, pickup_seconds=0.5)
    with session(emu) as api:
        generate(api, "Net Carbon Removal", Q1_2025)
        b = batches(api)
        q1 = [b[f"NCR-2025-0{m}"] for m in (1, 2, 3)]
        draft = patch(api, reports(api)["2025Q1 Quarterly Report"]["id"], batch_ids=[x["id"] for x in q1])
        accepted = call(api, "POST", f"/reports/{draft['id']}/submit", expect=202)
        assert accepted == {"id": draft["id"], "status": "submitting", "async_task_id": accepted["async_task_id"]}
        assert call(api, "GET", f"/reports/{draft['id']}")["status"] == "submitting"
        seen: list[dict[str, Any]] = []
        while not seen or seen[-1]["state"] not in ("complete", "failed"):
            seen.append(call(api, "GET", f"/async_tasks/{accepted['async_task_id']}"))
            time.sleep(0.03)
        done = seen[-1]
        assert seen[0]["state"] == "pending" and done["state"] == "complete"
        assert {s["progress_description"] for s in seen if s["state"] == "running"} >= {
            "Checking batch 1 of 3", "Checking batch 2 of 3", "Checking batch 3 of 3", "Submitting to the registry"}
        progress = [s["progress"] for s in seen]
        assert progress == sorted(progress) and done["progress"] == 100 and done["error_message"] is None
        assert done["type"] == "Reporting::ReportSubmission"
        assert done["args"] == {"project_id": 123, "report_id": draft["id"]}
        report = call(api, "GET", f"/reports/{draft['id']}")
        total = sum(x["primary_output"]["value"] for x in q1)
        assert report["status"] == "complete" and report["inclusions"] == draft["inclusions"]
        assert report["allocation"]["amount"] == pytest.approx(total) and report["allocation"]["unit"] == "t"
        assert report["allocation"]["created_at"] >= done["started_at"]
        after = batches(api)
        for batch in q1:
            assert after[batch["tracking_id"]]["ledger_balance"] == 0
            detail = call(api, "GET", f"/batches/{batch['id']}")
            assert [(r["amount"], r["allocation"]["amount"], r["report"]["id"], r["report"]["status"])
                    for r in detail["report_allocations"]] == [
                (batch["primary_output"]["value"], batch["primary_output"]["value"], draft["id"], "complete")]
        again = call(api, "POST", f"/reports/{draft['id']}/submit", expect=422)
        assert messages(again) == [DOCUMENTED, f"Report {draft['id']} is complete (async task "
                                               f"{accepted['async_task_id']}): the registry accepted it, and a "
                                               "report is submitted once."]
        assert call(api, "GET", f"/reports/{draft['id']}") == report
        assert messages(patch(api, draft["id"], 422, batch_ids=[]))[0].endswith("only draft reports can be updated.")
        assert "a reported batch cannot be deleted" in messages(
            call(api, "DELETE", f"/batches/{q1[0]['id']}", expect=422))[0]


def test_a_second_submit_while_submitting_is_refused_and_allocates_nothing_twice(
        make_emulator: Callable[..., Emulator]) -> None:
    emu = make_emulator(batch_seconds=0.5, pickup_seconds=0.5)
    with session(emu) as api:
        b = batches(api)
        draft = patch(api, reports(api)["2025Q1 Quarterly Report"]["id"], batch_ids=[b["NCR-2024-01"]["id"]])
        first = call(api, "POST", f"/reports/{draft['id']}/submit", expect=202)
        submitting = call(api, "GET", f"/reports/{draft['id']}")
        again = call(api, "POST", f"/reports/{draft['id']}/submit", expect=422)
        assert messages(again) == [DOCUMENTED, f"Report {draft['id']} is submitting (async task "
                                               f"{first['async_task_id']}): it is being submitted, and a report "
                                               "is submitted once."]
        assert call(api, "GET", f"/reports/{draft['id']}") == submitting
        call(api, "GET", f"/async_tasks/{first['async_task_id'] + 1}", expect=404)  # no second task
        assert wait_for(api, first["async_task_id"])["state"] == "complete"
        assert batches(api)["NCR-2024-01"]["ledger_balance"] == 0


def test_racing_submits_start_one_task(make_emulator: Callable[..., Emulator]) -> None:
    emu = make_emulator(batch_seconds=0.2)
    with session(emu) as api:
        demo = reports(api)["Rejected by registry (demo)"]
    answers: list[int] = []
    barrier = threading.Barrier(6)

    def post() -> None:
        with session(emu) as s:
            barrier.wait()
            answers.append(s.post(f"{emu.url}/reports/{demo['id']}/submit", timeout=10).status_code)

    threads = [threading.Thread(target=post) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [202, 422, 422, 422, 422, 422]


def test_submit_refuses_an_empty_report_and_one_whose_batches_changed(api: requests.Session) -> None:
    seeded = reports(api)
    draft, demo = seeded["2025Q1 Quarterly Report"], seeded["Rejected by registry (demo)"]
    assert messages(call(api, "POST", f"/reports/{draft['id']}/submit", expect=422)) == [
        DOCUMENTED, f"Report {draft['id']} has no batches: include at least one with PATCH /api/v1/reports/"
                    f"{draft['id']} and {{\"report\": {{\"batch_ids\": [\"bat_…\"]}}}}."]
    b = batches(api)
    produced, gone, shared = b["BCP-2024-02"], b["NCR-2024-06"], b["NCR-2024-07"]
    patch(api, draft["id"], batch_ids=[produced["id"], gone["id"], shared["id"]])
    use_on_soil(api, produced, 1.5)  # a generation uses part of a balance the draft included in full
    call(api, "DELETE", f"/batches/{gone['id']}", expect=204)  # a draft's batch can be deleted
    submit_and_wait(api, demo["id"])  # the registry rejects the demo: NCR-2024-07 stays free
    assert call(api, "GET", f"/reports/{draft['id']}")["inclusions"][1]["batch_id"] == gone["id"]
    left = round(produced["primary_output"]["value"] - 1.5, 3)
    refused = messages(call(api, "POST", f"/reports/{draft['id']}/submit", expect=422))
    assert refused == [
        DOCUMENTED,
        f"Batch {produced['id']} (BCP-2024-02) has {left:g} t left on its ledger, less than the "
        f"{produced['primary_output']['value']:g} t included: its amount is no longer available; PATCH the "
        "report's batch_ids again to include its current balance, or without it.",
        f"Batch {gone['id']} (NCR-2024-06) was deleted after it was included; PATCH the report's batch_ids "
        "without it.",
    ]
    assert call(api, "GET", f"/reports/{draft['id']}")["status"] == "draft"
    again = patch(api, draft["id"], batch_ids=[produced["id"], shared["id"]])  # included anew, at 'left'
    assert again["inclusions"][0]["amount"] == pytest.approx(left)
    assert submit_and_wait(api, draft["id"])["state"] == "complete"
    # The demo report still holds NCR-2024-07, now allocated to the other report: it cannot be submitted.
    assert messages(call(api, "POST", f"/reports/{demo['id']}/submit", expect=422))[1] == (
        f"Batch {shared['id']} (NCR-2024-07) is on report '2025Q1 Quarterly Report' ({draft['id']}), which is "
        "complete: a batch is reported once; PATCH this report's batch_ids without it.")


def test_submit_refuses_a_batch_that_is_no_longer_complete(emulator: Emulator, api: requests.Session) -> None:
    """Bends the store: the API never changes a batch's state once made."""
    demo = reports(api)["Rejected by registry (demo)"]
    batch = demo["inclusions"][0]
    with emulator.store.transaction() as conn:
        conn.execute("UPDATE batches SET state = 'failed' WHERE id = ?", (batch["batch_id"],))
    assert messages(call(api, "POST", f"/reports/{demo['id']}/submit", expect=422)) == [
        DOCUMENTED, f"Batch {batch['batch_id']} (NCR-2024-07) is no longer complete (failed); PATCH the report's "
                    "batch_ids without it."]


def test_the_registry_rejects_the_demo_report_the_task_fails_and_the_report_is_a_draft_again(
        api: requests.Session) -> None:
    demo = reports(api)["Rejected by registry (demo)"]
    before = batches(api)
    done = submit_and_wait(api, demo["id"])
    assert done["state"] == "failed" and done["error_message"].startswith("The registry rejected the report: ")
    assert done["error_message"].endswith("The report is back to draft; nothing was allocated.")
    report = call(api, "GET", f"/reports/{demo['id']}")
    assert report["status"] == "draft" and report["allocation"] is None
    assert report["inclusions"] == demo["inclusions"]
    after = batches(api)
    assert [after[t]["ledger_balance"] for t in ("NCR-2024-07", "NCR-2024-08", "NCR-2024-09")] == [
        before[t]["ledger_balance"] for t in ("NCR-2024-07", "NCR-2024-08", "NCR-2024-09")]
    assert call(api, "GET", f"/batches/{demo['inclusions'][0]['batch_id']}")["report_allocations"] == []
    assert patch(api, demo["id"], name="Rejected once")["status"] == "draft"  # a draft again: it can be edited


def test_a_file_database_keeps_reports_and_allocations_and_resumes_a_submission(
        tmp_path: Path, make_emulator: Callable[..., Emulator]) -> None:
    db = str(tmp_path / "reports.sqlite3")
    first = make_emulator(db=db, batch_seconds=0.4, pickup_seconds=0.0, token="mgv_first_run")
    with session(first) as api:
        b = batches(api)
        seeded = reports(api)
        draft = patch(api, seeded["2025Q1 Quarterly Report"]["id"], name="Q1 <kept>",
                      batch_ids=[b["NCR-2024-01"]["id"]])
        assert submit_and_wait(api, draft["id"])["state"] == "complete"
        complete = call(api, "GET", f"/reports/{draft['id']}")
        demo = seeded["Rejected by registry (demo)"]
        task = call(api, "POST", f"/reports/{demo['id']}/submit", expect=202)["async_task_id"]
        deadline = time.monotonic() + 10
        while call(api, "GET", f"/async_tasks/{task}")["progress_description"] != "Checking batch 2 of 3":
            assert time.monotonic() < deadline
            time.sleep(0.02)
    first.stop()  # mid-way: the registry is not asked yet, the report stays submitting in the file
    second = make_emulator(db=db, token="mgv_second_run")
    with session(second) as api:
        assert call(api, "GET", f"/reports/{draft['id']}") == complete
        assert call(api, "GET", f"/async_tasks/{task}")["state"] in ("pending", "running")
        assert batches(api)["NCR-2024-01"]["ledger_balance"] == 0
        assert [r["report"]["name"] for r in call(api, "GET", f"/batches/{b['NCR-2024-01']['id']}")[
            "report_allocations"]] == ["Q1 <kept>"]
        resumed = wait_for(api, task)  # the submission left running resumes, and the registry rejects it
        assert resumed["state"] == "failed" and "The registry rejected the report" in resumed["error_message"]
        assert call(api, "GET", f"/reports/{demo['id']}")["status"] == "draft"


@pytest.mark.parametrize("name", [
    "<script>alert('x')</script>",
    '<img src=x onerror=alert(1)> & "quotes" \\ back',
    "tab\tnew\nline\rcarriage\x00nul\x07bell\x1b[31mansi",
    "\u202eRTL override \u200b zero width \ufeff bom 🌱",
])
def test_hostile_report_names_are_kept_verbatim_as_json(api: requests.Session, name: str) -> None:
    draft = reports(api)["2025Q1 Quarterly Report"]
    answer = api.patch(f"{api.base}/reports/{draft['id']}", json={"report": {"name": name}}, timeout=10)  # type: ignore[attr-defined]
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/json"
    assert answer.json()["name"] == name
    assert all(ord(c) >= 0x20 for c in answer.text)  # control characters travel escaped (\u0000), never raw
    assert call(api, "GET", f"/reports/{draft['id']}")["name"] == name
    assert name in [r["name"] for r in call(api, "GET", "/reports")["data"]]


def test_a_reset_brings_the_seeded_reports_back(emulator: Emulator, api: requests.Session) -> None:
    seeded = reports(api)
    done = submit_and_wait(api, seeded["Rejected by registry (demo)"]["id"])
    patch(api, seeded["2025Q1 Quarterly Report"]["id"], name="changed")
    requests.post(f"{emulator.root_url}/_emulator/reset", headers={"Authorization": f"Bearer {emulator.token}"},
                  timeout=10).raise_for_status()
    assert reports(api) == seeded
    call(api, "GET", f"/async_tasks/{done['id']}", expect=404)


def test_a_file_from_before_reports_is_upgraded_in_place_without_seeded_reports(
        tmp_path: Path, make_emulator: Callable[..., Emulator]) -> None:
    """A version-2 file (no reports) opens: the tables come empty (its batches may have changed since the seed)."""
    db = tmp_path / "v2.sqlite3"
    with Emulator(db=str(db)):
        pass
    conn = sqlite3.connect(db)
    try:
        conn.executescript("DROP TABLE report_inclusions; DROP TABLE reports;"
                           " ALTER TABLE async_tasks DROP COLUMN report_pk; PRAGMA user_version = 2;")
    finally:
        conn.close()
    emu = make_emulator(db=str(db))
    with session(emu) as api:
        assert call(api, "GET", "/reports")["data"] == []
        q4 = batches(api)["NCR-2024-10"]
        assert q4["ledger_balance"] == q4["primary_output"]["value"]  # nothing allocated in that file
        assert call(api, "GET", f"/batches/{q4['id']}")["report_allocations"] == []
        generate(api, "Net Carbon Removal", Q1_2025)  # tasks work on the upgraded table
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
