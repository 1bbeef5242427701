"""The emulator's HTTP surface: auth, rate limits, bad input, pagination, faults, persistence and races."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from mangrove_nb.emulator import Emulator

Q1 = {"start_time": "2025-01-01T00:00:00Z", "end_time": "2025-03-31T23:59:59Z"}


def session_for(emu: Emulator, token: str | None = None) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token or emu.token}"
    return session


def message(response: requests.Response) -> str:
    body = response.json()
    assert body["status"] == "error" and body["statusCode"] == response.status_code
    return body["errors"][0]["message"]


def ledger_id(emu: Emulator, name: str) -> str:
    with session_for(emu) as s:
        return next(i["id"] for i in s.get(f"{emu.url}/ledgers", timeout=5).json()["data"] if i["name"] == name)


# --- authentication and permissions ------------------------------------------------------------------------


def test_missing_or_wrong_token_is_401_without_echoing_it(emulator: Emulator) -> None:
    no_header = requests.get(f"{emulator.url}/ledgers", timeout=5)
    assert no_header.status_code == 401 and "Authorization" in message(no_header)
    wrong = requests.get(f"{emulator.url}/ledgers", headers={"Authorization": "Bearer canary-wrong-7f3c"}, timeout=5)
    assert wrong.status_code == 401 and "canary" not in wrong.text
    assert wrong.headers["RateLimit-Limit"] == "1000"
    bare = requests.get(f"{emulator.url}/ledgers", headers={"Authorization": emulator.token}, timeout=5)
    assert bare.status_code == 200


def test_read_only_token_reads_but_gets_403_on_writes(make_emulator: Callable[..., Emulator]) -> None:
    emu = make_emulator(read_only_tokens=("reader-token",))
    ncr = ledger_id(emu, "Net Carbon Removal")
    with session_for(emu, "reader-token") as s:
        assert s.get(f"{emu.url}/ledgers", timeout=5).status_code == 200
        assert s.post(f"{emu.url}/ledgers/{ncr}/generate_preview", json=Q1, timeout=5).status_code == 200
        refused = s.post(f"{emu.url}/ledgers/{ncr}/batch_generations", json=Q1, timeout=5)
        assert refused.status_code == 403 and "read and write" in message(refused)
        batch = s.get(f"{emu.url}/batches", timeout=5).json()["data"][0]["id"]
        assert s.delete(f"{emu.url}/batches/{batch}", timeout=5).status_code == 403
    assert emu.count("create-batch-generation") == 1


# --- rate limit --------------------------------------------------------------------------------------------


def test_rate_limit_headers_count_down_then_429(make_emulator: Callable[..., Emulator]) -> None:
    emu = make_emulator(rate_limit=3)
    with session_for(emu) as s:
        answers = [s.get(f"{emu.url}/ledgers", timeout=5) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
    reset = int(answers[-1].headers["RateLimit-Reset"])
    assert time.time() < reset <= time.time() + 61
    assert "Rate limit of 3 requests per minute" in message(answers[-1])


def test_rate_limit_burst_fault(emulator: Emulator) -> None:
    emulator.faults.rate_limit_burst(2, reset_in=5)
    with session_for(emulator) as s:
        answers = [s.get(f"{emulator.url}/ledgers", timeout=5) for _ in range(3)]
    assert [a.status_code for a in answers] == [429, 429, 200]
    assert 0 < int(answers[0].headers["RateLimit-Reset"]) - time.time() <= 6


# --- bad input: a 4xx that names the field, never a 500 ------------------------------------------------------

BAD_BODIES: list[tuple[Any, int, str]] = [
    (b"", 400, "empty"),
    (b"{not json", 400, "not valid JSON"),
    (b"[1, 2]", 400, "JSON object"),
    ({"end_time": "2025-03-31T23:59:59Z"}, 422, "start_time is required"),
    ({"start_time": "2025-01-01T00:00:00Z"}, 422, "end_time is required"),
    ({"start_time": 20250101, "end_time": "2025-03-31T23:59:59Z"}, 422, "start_time must be a string"),
    ({"start_time": "2025-01-01", "end_time": "2025-03-31T23:59:59Z"}, 422, "start_time"),
    ({"start_time": "2025-01-01T00:00:00", "end_time": "2025-03-31T23:59:59Z"}, 422, "time zone"),
    ({"start_time": "yesterday", "end_time": "2025-03-31T23:59:59Z"}, 422, "ISO 8601"),
    ({"start_time": "2025-03-31T23:59:59Z", "end_time": "2025-01-01T00:00:00Z"}, 422, "must be after start_time"),
    ({**Q1, "data_point_ids": "in_x"}, 422, "data_point_ids must be an array"),
    ({**Q1, "data_point_ids": ["in_doesnotexist"]}, 422, "unknown data point id(s) in_doesnotexist"),
    ({**Q1, "skipped_data_point_type_ids": ["7"]}, 422, "skipped_data_point_type_ids must be an array of integer"),
    ({**Q1, "skipped_data_point_type_ids": [99]}, 422, "99 is not an input"),
    ({**Q1, "batch_amounts": [{"batch_id": "bat_x", "primary_output_amount": "1"}]}, 422, "must be a finite number"),
    ({**Q1, "batch_amounts": [{"batch_id": "bat_x"}]}, 422, "batch_amounts applies to models with manual-select"),
    ({**Q1, "colour": "red"}, 422, "Unknown field(s) colour"),
]


@pytest.mark.parametrize(("body", "status", "expected"), BAD_BODIES)
def test_bad_generation_bodies_are_refused_with_a_useful_message(
    emulator: Emulator, body: Any, status: int, expected: str
) -> None:
    ncr = ledger_id(emulator, "Net Carbon Removal")
    with session_for(emulator) as s:
        kwargs = {"data": body} if isinstance(body, bytes) else {"json": body}
        answer = s.post(f"{emulator.url}/ledgers/{ncr}/batch_generations", timeout=5, **kwargs)
    assert answer.status_code == status
    assert expected in message(answer)
    assert emulator.count("create-batch-generation") == 1


BAD_QUERIES: list[tuple[str, dict[str, str], int, str]] = [
    ("/ledgers/lgr_nope", {}, 404, "Ledger lgr_nope not found"),
    ("/ledgers/lgr_nope/batches", {}, 404, "not found"),
    ("/async_tasks/999999", {}, 404, "Async task 999999 not found"),
    ("/async_tasks/abc", {}, 404, "not found"),
    ("/batches/bat_nope", {}, 404, "Batch bat_nope not found"),
    ("/projects/9", {}, 404, "Project 9 not found"),
    ("/projects/123/events", {"page": "0"}, 400, "page must be an integer of 1 or more"),
    ("/batches", {"page_size": "101"}, 400, "page_size must be an integer from 1 to 100"),
    ("/batches", {"page_size": "ten"}, 400, "page_size"),
    ("/batches", {"page": "99"}, 400, "past the last page"),
    ("/batches", {"sort": "-colour"}, 400, "sort: unknown field 'colour'"),
    ("/batches", {"filter[colour][eq]": "red"}, 400, "filter: unknown field 'colour'"),
    ("/batches", {"filter[state][gt]": "a"}, 400, "unknown operator 'gt'"),
    ("/batches", {"filter[project_id][eq]": "x"}, 400, "must be a 64-bit integer"),
    ("/ledgers", {"response_mode": "summary"}, 400, "response_mode"),
]


@pytest.mark.parametrize(("path", "params", "status", "expected"), BAD_QUERIES)
def test_bad_reads_are_refused_with_a_useful_message(
    api: requests.Session, path: str, params: dict[str, str], status: int, expected: str
) -> None:
    answer = api.get(f"{api.base}{path}", params=params, timeout=5)  # type: ignore[attr-defined]
    assert answer.status_code == status
    assert expected in message(answer)


def test_unknown_route_is_a_404_envelope(api: requests.Session) -> None:
    answer = api.get(f"{api.base}/ledgerz", timeout=5)  # type: ignore[attr-defined]
    assert answer.status_code == 404 and "No such endpoint" in message(answer)


# --- pagination, sort, filter ------------------------------------------------------------------------------


def test_pagination_info_and_next_page_cover_everything_once(api: requests.Session) -> None:
    seen, page, pages = [], 1, 0
    while page:
        body = api.get(f"{api.base}/batches", params={"page": page, "page_size": 7}, timeout=5).json()  # type: ignore[attr-defined]
        info = body["info"]
        assert info["current_page"] == page and info["items"] == len(body["data"]) <= 7
        assert info["previous_page"] == (page - 1 if page > 1 else None)
        seen += [b["id"] for b in body["data"]]
        page, pages = info["next_page"], pages + 1
    assert len(seen) == len(set(seen)) == info["total_items"]
    assert pages == info["total_pages"] == -(-info["total_items"] // 7)


def test_default_page_size_is_ten_and_sort_and_filter_apply(api: requests.Session) -> None:
    body = api.get(f"{api.base}/batches", timeout=5).json()  # type: ignore[attr-defined]
    assert body["info"]["page_size"] == 10 and len(body["data"]) == 10
    desc = api.get(f"{api.base}/batches", params={"sort": "-start_time,id", "page_size": 100},  # type: ignore[attr-defined]
                   timeout=5).json()["data"]
    keys = [(b["start_time"], b["id"]) for b in desc]
    assert keys == sorted(keys, key=lambda k: (-int(k[0][:7].replace("-", "")), k[1]))
    complete = api.get(f"{api.base}/batches", params={"filter[state][eq]": "complete", "page_size": 100},  # type: ignore[attr-defined]
                       timeout=5).json()
    assert complete["data"] and {b["state"] for b in complete["data"]} == {"complete"}
    assert complete["info"]["filter"] == [{"field": "state", "operator": "eq", "value": "complete"}]
    one = api.get(f"{api.base}/batches", params={"filter[id][eq]": desc[0]["id"]}, timeout=5).json()  # type: ignore[attr-defined]
    assert [b["id"] for b in one["data"]] == [desc[0]["id"]]
    other_project = api.get(f"{api.base}/batches", params={"filter[project_id][eq]": "7"}, timeout=5).json()  # type: ignore[attr-defined]
    assert other_project["data"] == [] and other_project["info"]["total_items"] == 0


# --- faults ------------------------------------------------------------------------------------------------


def test_fail_next_calls_with_a_status(emulator: Emulator) -> None:
    emulator.faults.fail("list-all-ledgers", 503, count=2)
    with session_for(emulator) as s:
        codes = [s.get(f"{emulator.url}/ledgers", timeout=5).status_code for _ in range(3)]
        other = s.get(f"{emulator.url}/batches", timeout=5).status_code
    assert codes == [503, 503, 200] and other == 200


def test_drop_after_commit_creates_the_task_but_answers_nothing(emulator: Emulator) -> None:
    ncr = ledger_id(emulator, "Net Carbon Removal")
    emulator.faults.drop("create-batch-generation")
    with session_for(emulator) as s, pytest.raises(requests.ConnectionError):
        s.post(f"{emulator.url}/ledgers/{ncr}/batch_generations", json=Q1, timeout=5)
    assert emulator.count("create-batch-generation") == 1
    with session_for(emulator) as s:
        task = s.get(f"{emulator.url}/async_tasks/1", timeout=5).json()
        assert task["args"]["ledger_id"] and task["state"] in ("pending", "running", "complete")


def test_latency_fault_slows_only_that_operation(emulator: Emulator) -> None:
    emulator.faults.delay("list-all-ledgers", 0.3)
    with session_for(emulator) as s:
        started = time.perf_counter()
        s.get(f"{emulator.url}/ledgers", timeout=5)
        slow = time.perf_counter() - started
        started = time.perf_counter()
        s.get(f"{emulator.url}/batches", timeout=5)
        fast = time.perf_counter() - started
    assert slow >= 0.3 > fast


def test_control_endpoints_are_absent_unless_enabled(make_emulator: Callable[..., Emulator]) -> None:
    demo_like = make_emulator(control=False)
    with session_for(demo_like) as s:
        assert s.post(f"{demo_like.root_url}/_emulator/faults", json={"kind": "fail"}, timeout=5).status_code == 404
    test_mode = make_emulator()
    with session_for(test_mode) as s:
        armed = s.post(f"{test_mode.root_url}/_emulator/faults", timeout=5,
                       json={"kind": "fail", "operation": "list-all-ledgers", "status": 502})
        assert armed.status_code == 201
        assert s.get(f"{test_mode.url}/ledgers", timeout=5).status_code == 502
        stats = s.get(f"{test_mode.root_url}/_emulator/stats", timeout=5).json()
        assert stats["counts"]["list-all-ledgers"] == 1
        assert requests.get(f"{test_mode.root_url}/_emulator/stats", timeout=5).status_code == 401


# --- writes, persistence, races ----------------------------------------------------------------------------


def test_create_ledger_keeps_hostile_names_as_data(api: requests.Session) -> None:
    name = '<img src=x onerror=alert(1)> "$\\alpha$"'
    made = api.post(f"{api.base}/projects/123/ledgers", json={"ledger": {"name": name, "unit": "t"}}, timeout=5)  # type: ignore[attr-defined]
    assert made.status_code == 201
    body = made.json()
    assert body["name"] == name and body["latest_model"] is None and body["id"].startswith("lgr_")
    assert api.get(f"{api.base}/ledgers/{body['id']}", timeout=5).json()["name"] == name  # type: ignore[attr-defined]
    missing = api.post(f"{api.base}/projects/123/ledgers", json={"ledger": {"name": "x"}}, timeout=5)  # type: ignore[attr-defined]
    assert missing.status_code == 422 and "ledger.unit is required" in message(missing)


def test_racing_generation_posts_start_one_task(make_emulator: Callable[..., Emulator]) -> None:
    emu = make_emulator(batch_seconds=0.2)
    ncr = ledger_id(emu, "Net Carbon Removal")
    answers: list[int] = []
    barrier = threading.Barrier(6)

    def post() -> None:
        with session_for(emu) as s:
            barrier.wait()
            answers.append(s.post(f"{emu.url}/ledgers/{ncr}/batch_generations", json=Q1, timeout=10).status_code)

    threads = [threading.Thread(target=post) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(answers) == [202, 422, 422, 422, 422, 422]


def test_file_database_survives_restart_and_resumes_unfinished_tasks(
    tmp_path: Path, make_emulator: Callable[..., Emulator]
) -> None:
    db = str(tmp_path / "state.sqlite3")
    first = Emulator(db=db, batch_seconds=0.4, pickup_seconds=0.0, token="t1").start()
    try:
        ncr = ledger_id(first, "Net Carbon Removal")
        with session_for(first) as s:
            task = s.post(f"{first.url}/ledgers/{ncr}/batch_generations", json=Q1, timeout=5).json()
            time.sleep(0.6)  # the first batch is made, the others are not
    finally:
        first.stop()
    second = make_emulator(db=db, token="t2")
    with session_for(second) as s:
        deadline = time.monotonic() + 10
        while (state := s.get(f"{second.url}/async_tasks/{task['id']}", timeout=5).json())["state"] != "complete":
            assert time.monotonic() < deadline, state
            time.sleep(0.05)
        batches = s.get(f"{second.url}/ledgers/{ncr}/batches", params={"page_size": 100}, timeout=5).json()["data"]
    q1 = [b["start_time"][:7] for b in batches if b["start_time"] >= "2025"]
    assert sorted(q1) == ["2025-01", "2025-02", "2025-03"]
    assert ledger_id(second, "Net Carbon Removal") == ncr


def test_start_twice_serves_once_and_a_stopped_emulator_says_so() -> None:
    """``with Emulator().start() as emu:`` calls start() twice: the second does nothing."""
    with Emulator(token="start-twice-token-0000").start() as emu:
        assert emu.start() is emu
        answer = requests.get(f"{emu.url}/ledgers", headers={"Authorization": f"Bearer {emu.token}"}, timeout=5)
        assert answer.status_code == 200
    with pytest.raises(RuntimeError, match="create a new Emulator"):
        emu.start()
