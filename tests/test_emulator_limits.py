"""Requests too large or too strange for the emulator: each gets a 4xx in the error envelope, never a 500.

Lists in a body (``data_point_ids``, ``batch_amounts``, ``skipped_data_point_type_ids``) used to become one SQL
variable per item, so a long list hit SQLite's variable limit (32,766 by default, 250,000 in Debian's build) and
answered 500. Now a list past the emulator's limit is a 422 that names the field, its length and the limit, and
no query binds a list item by item: ``test_lists_never_become_one_sql_variable_per_item`` runs the whole
workflow with SQLite allowed only 20 variables per statement. The rest replays what a short fuzz found: a sort
field repeated past SQLite's ORDER BY limit, filter values and ids of any length, chunked bodies past 1 MiB
(Werkzeug cut them silently), requests the HTTP server refuses before the app sees them (an HTML page), and
malformed faults on the control endpoint (which broke later answers).
"""

from __future__ import annotations

import json
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from test_emulator_http import ledger_id, message, session_for

from mangrove_nb.emulator import Emulator
from mangrove_nb.emulator.bodies import MAX_BODY_BYTES, MAX_ID_LENGTH, MAX_LIST_ITEMS, MAX_SKIPPED_TYPES
from mangrove_nb.emulator.listing import MAX_FILTER_LENGTH

Q1 = {"start_time": "2025-01-01T00:00:00Z", "end_time": "2025-03-31T23:59:59Z"}
H1_2024 = {"start_time": "2024-01-01T00:00:00Z", "end_time": "2024-06-30T23:59:59Z"}
DEBIAN_SQLITE_VARIABLES = 250_000  # SQLITE_MAX_VARIABLE_NUMBER in Debian's and Ubuntu's builds
DEFAULT_SQLITE_VARIABLES = 32_766  # upstream SQLite's default since 3.32


@pytest.fixture
def api(emulator: Emulator) -> Iterator[requests.Session]:
    with session_for(emulator) as session:
        session.base = emulator.url  # type: ignore[attr-defined]
        yield session


def post(api: requests.Session, path: str, body: Any) -> requests.Response:
    """POST compact JSON (so 250,001 one-letter ids stay under the 1 MiB body limit)."""
    data = json.dumps(body, separators=(",", ":")).encode()
    assert len(data) < MAX_BODY_BYTES
    return api.post(f"{api.base}{path}", data=data, headers={"Content-Type": "application/json"},  # type: ignore[attr-defined]
                    timeout=30)


def refused(response: requests.Response, status: int, *fragments: str) -> str:
    """The answer is `status` in the documented envelope, with a short message holding every fragment."""
    assert response.status_code == status, response.text[:300]
    text = message(response)
    assert len(text) < 400, f"the message echoes the input: {len(text)} characters"
    for fragment in fragments:
        assert fragment in text, text
    return text


# --- lists in a body ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [DEBIAN_SQLITE_VARIABLES + 1, DEFAULT_SQLITE_VARIABLES + 1, MAX_LIST_ITEMS + 1])
@pytest.mark.parametrize("endpoint", ["generate_preview", "batch_generations"])
def test_data_point_ids_past_the_limit_is_a_422_naming_the_field_and_the_limit(
        emulator: Emulator, api: requests.Session, endpoint: str, count: int) -> None:
    """250,001 ids used to be a 500 ("too many SQL variables"); now a 422 and nothing is created."""
    ncr = ledger_id(emulator, "Net Carbon Removal")
    answer = post(api, f"/ledgers/{ncr}/{endpoint}", {**Q1, "data_point_ids": ["x"] * count})
    refused(answer, 422, "data_point_ids is too long", f"{count:,} items", f"at most {MAX_LIST_ITEMS:,}")
    assert emulator.count("create-batch-generation") == (1 if endpoint == "batch_generations" else 0)
    with session_for(emulator) as s:
        assert s.get(f"{emulator.url}/async_tasks/1", timeout=5).status_code == 404


def test_data_point_ids_at_the_limit_are_read_as_ids(emulator: Emulator, api: requests.Session) -> None:
    """Exactly the limit is accepted as input: unknown ids are named (the first five and how many more)."""
    ncr = ledger_id(emulator, "Net Carbon Removal")
    ids = [f"in_{n:06d}" for n in range(MAX_LIST_ITEMS)]
    refused(post(api, f"/ledgers/{ncr}/generate_preview", {**Q1, "data_point_ids": ids}), 422,
            "unknown data point id(s) in_000000", f"and {MAX_LIST_ITEMS - 5} more")


def test_batch_amounts_past_the_limit_is_a_422(emulator: Emulator, api: requests.Session) -> None:
    soil = ledger_id(emulator, "Biochar Applied to Soil")
    amounts = [{"batch_id": "bat_x"}] * (MAX_LIST_ITEMS + 1)
    refused(post(api, f"/ledgers/{soil}/batch_generations", {**H1_2024, "batch_amounts": amounts}), 422,
            "batch_amounts is too long", f"{MAX_LIST_ITEMS + 1:,} items", f"at most {MAX_LIST_ITEMS:,}")


@pytest.mark.parametrize("count", [DEBIAN_SQLITE_VARIABLES + 1, MAX_SKIPPED_TYPES + 1])
def test_skipped_type_ids_past_the_limit_is_a_422(emulator: Emulator, api: requests.Session, count: int) -> None:
    """250,001 copies of a valid type id used to be accepted and stored with the task; now a 422."""
    ncr = ledger_id(emulator, "Net Carbon Removal")
    refused(post(api, f"/ledgers/{ncr}/batch_generations", {**Q1, "skipped_data_point_type_ids": [7] * count}), 422,
            "skipped_data_point_type_ids is too long", f"{count:,} items", f"at most {MAX_SKIPPED_TYPES}")


@pytest.mark.parametrize(("body", "fragments"), [
    ({"data_point_ids": ["in_" + "x" * 100_000]}, ["data_point_ids[0] is too long", "100,003 characters",
                                                   f"at most {MAX_ID_LENGTH}"]),
    ({"data_point_ids": ["in_a", "x" * (MAX_ID_LENGTH + 1)]}, ["data_point_ids[1] is too long"]),
    ({"data_point_ids": ["in_a", 7]}, ["data_point_ids[1] must be a data point id string", "not a number"]),
    ({"data_point_ids": [["in_a"]]}, ["data_point_ids[0] must be a data point id string", "not an array"]),
    ({"data_point_ids": [None]}, ["data_point_ids[0] must be a data point id string", "not null"]),
    ({"data_point_ids": {"in_a": 1}}, ["data_point_ids must be an array"]),
    ({"data_point_ids": "in_a"}, ["data_point_ids must be an array"]),
    ({"batch_amounts": [{"batch_id": "bat_" + "x" * 500_000}]}, ["batch_amounts[0].batch_id is too long"]),
    ({"batch_amounts": [{"batch_id": "bat_x", "allocation_group": "g" * 300_000}]},
     ["batch_amounts[0].allocation_group is too long", "300,000 characters"]),
    ({"batch_amounts": {"batch_id": "bat_x"}}, ["batch_amounts must be an array"]),
    ({"skipped_data_point_type_ids": 7}, ["skipped_data_point_type_ids must be an array"]),
    ({"skipped_data_point_type_ids": [7.0]}, ["skipped_data_point_type_ids must be an array of integer"]),
], ids=["id-100k", "id-256", "id-number", "id-array", "id-null", "ids-object", "ids-string", "batch-id-500k",
        "group-300k", "amounts-object", "skipped-scalar", "skipped-float"])
def test_wrong_types_and_overlong_values_in_lists_are_422_without_echoing_them(
        emulator: Emulator, api: requests.Session, body: dict[str, Any], fragments: list[str]) -> None:
    soil = ledger_id(emulator, "Biochar Applied to Soil")
    refused(post(api, f"/ledgers/{soil}/batch_generations", {**H1_2024, **body}), 422, *fragments)


def test_lists_never_become_one_sql_variable_per_item(make_emulator: Callable[..., Emulator]) -> None:
    """With SQLite allowed 20 variables per statement (the widest fixed statement, a batch INSERT, has 16), lists
    of hundreds and thousands of items still work: every list is bound as one value."""
    emu = make_emulator()
    with emu.store.read() as conn:
        conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 20)
    ncr, soil = ledger_id(emu, "Net Carbon Removal"), ledger_id(emu, "Biochar Applied to Soil")
    bp = ledger_id(emu, "Biochar Produced")
    with session_for(emu) as s:
        points = [p["id"] for page in range(1, 4) for e in s.get(
            f"{emu.url}/projects/123/events", params={"page": page, "page_size": 100}, timeout=5).json()["data"]
            for p in e["data_points"]]
        assert len(points) > 500
        preview = s.post(f"{emu.url}/ledgers/{ncr}/generate_preview", timeout=10,
                         json={**Q1, "data_point_ids": (points * 10)[:MAX_LIST_ITEMS]})
        assert preview.status_code == 200, preview.text[:300]
        assert {e["count"] for e in preview.json()["data"]} == {3}
        task = s.post(f"{emu.url}/ledgers/{ncr}/batch_generations", json={**Q1, "data_point_ids": points}, timeout=10)
        assert task.status_code == 202, task.text[:300]
        wait(s, emu, task.json()["id"])
        made = s.get(f"{emu.url}/ledgers/{ncr}/batches", params={"page_size": 100, "sort": "-start_time"},
                     timeout=5).json()["data"][0]
        detail = s.get(f"{emu.url}/batches/{made['id']}", timeout=5)
        assert detail.status_code == 200 and len(detail.json()["input_data"]) > 20
        upstream = s.get(f"{emu.url}/ledgers/{bp}/batches", params={"page_size": 12}, timeout=5).json()["data"]
        outputs = [b["model_run"]["output_data_points"][0]["id"] for b in upstream[:6]]
        soil_task = s.post(f"{emu.url}/ledgers/{soil}/batch_generations", json={**H1_2024, "data_point_ids": outputs},
                           timeout=10)
        assert soil_task.status_code == 202, soil_task.text[:300]
        wait(s, emu, soil_task.json()["id"])
        everything = s.get(f"{emu.url}/batches", params={"page_size": 100}, timeout=5)
        assert everything.status_code == 200
        assert len(everything.json()["data"]) == everything.json()["info"]["total_items"] > 20


def wait(session: requests.Session, emu: Emulator, task_id: int) -> None:
    deadline = time.monotonic() + 20
    while (state := session.get(f"{emu.url}/async_tasks/{task_id}", timeout=5).json())["state"] != "complete":
        assert state["state"] != "failed" and time.monotonic() < deadline, state
        time.sleep(0.02)


# --- list queries ------------------------------------------------------------------------------------------


def test_a_sort_field_repeated_past_sqlites_order_by_limit_is_a_400(api: requests.Session) -> None:
    """4,000 sort terms used to reach SQLite ("too many terms in ORDER BY clause"): a 500."""
    answer = api.get(f"{api.base}/batches", params={"sort": ",".join(["id", "-start_time"] * 2000)}, timeout=10)  # type: ignore[attr-defined]
    refused(answer, 400, "sort: id appears more than once")
    twice = api.get(f"{api.base}/ledgers", params={"sort": "name,-name"}, timeout=5)  # type: ignore[attr-defined]
    refused(twice, 400, "sort: name appears more than once")
    assert api.get(f"{api.base}/ledgers", params={"sort": "name,-id"}, timeout=5).status_code == 200  # type: ignore[attr-defined]


def test_a_filter_value_past_the_limit_is_a_400(api: requests.Session) -> None:
    long_value = "bat_" + "x" * 60_000
    answer = api.get(f"{api.base}/batches", params={"filter[id][eq]": long_value}, timeout=10)  # type: ignore[attr-defined]
    refused(answer, 400, "filter[id][eq] is too long", "60,004 characters", f"at most {MAX_FILTER_LENGTH}")
    at_limit = api.get(f"{api.base}/batches", params={"filter[id][eq]": "x" * MAX_FILTER_LENGTH}, timeout=5)  # type: ignore[attr-defined]
    assert at_limit.status_code == 200 and at_limit.json()["data"] == []


@pytest.mark.parametrize("page", ["9" * 30, str(2**63), str(2**62), "9" * 5000])
def test_absurd_page_numbers_are_a_400(api: requests.Session, page: str) -> None:
    for path in ("/ledgers", "/batches", "/projects/123/events"):
        answer = api.get(f"{api.base}{path}", params={"page": page}, timeout=5)  # type: ignore[attr-defined]
        assert answer.status_code == 400, answer.text[:200]
        assert len(message(answer)) < 400


# --- bodies and requests the app never sees whole -------------------------------------------------------------


def chunked(body: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    """A body sent without Content-Length (Transfer-Encoding: chunked), as requests does for an iterator."""
    for start in range(0, len(body), size):
        yield body[start:start + size]


def test_a_chunked_body_over_1_mib_is_refused_as_too_large(emulator: Emulator, api: requests.Session) -> None:
    """Werkzeug cuts a chunked body at the limit without a word: the emulator used to answer "not valid JSON" (or,
    for a body of spaces, "empty")."""
    ncr = ledger_id(emulator, "Net Carbon Removal")
    url = f"{emulator.url}/ledgers/{ncr}/generate_preview"
    over = b'{"start_time": "2025-01-01T00:00:00Z", "pad": "' + b"x" * MAX_BODY_BYTES + b'"}'
    refused(api.post(url, data=chunked(over), timeout=30), 400, "larger than 1 MiB")
    refused(api.post(url, data=chunked(b" " * (MAX_BODY_BYTES + 10)), timeout=30), 400, "larger than 1 MiB")
    head = b'{"start_time": "2025-01-01T00:00:00Z"'
    exactly = head + b" " * (MAX_BODY_BYTES - len(head) - 1) + b"}"
    assert len(exactly) == MAX_BODY_BYTES
    refused(api.post(url, data=chunked(exactly), timeout=30), 422, "end_time is required")


def exchange(emu: Emulator, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes; the status, headers and body of the answer."""
    with socket.create_connection(("127.0.0.1", emu.port), timeout=10) as sock:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize(("raw", "status", "fragment"), [
    (b"GET /api/v1/ledgers?filter[id][eq]=" + b"x" * 70_000 + b" HTTP/1.1\r\nHost: e\r\n\r\n", 414,
     "Request line longer than 64 KiB"),
    (b"GET /api/v1/ledgers HTTP/1.1\r\nHost: e\r\nX-Pad: " + b"x" * 70_000 + b"\r\n\r\n", 431,
     "header fields too large"),
    (b"GET /api/v1/ledgers HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % n for n in range(150)) + b"\r\n", 431,
     "header fields too large or too many"),
    (b"GET /api/v1/ledgers?token=abc HTTP/1.1 extra words\r\n\r\n", 400, "Malformed HTTP request line"),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400, "Malformed HTTP request line"),
    (b"GET /api/v1/ledgers HTTP/x.y\r\n\r\n", 400, "Malformed HTTP request line"),
    (b"GET /api/v1/ledgers HTTP/2.0\r\n\r\n", 400, "HTTP version not supported"),
], ids=["uri-70k", "header-70k", "headers-150", "request-line-words", "tls-hello", "bad-version", "http-2"])
def test_requests_refused_before_the_app_get_the_json_envelope(emulator: Emulator, raw: bytes, status: int,
                                                               fragment: str) -> None:
    """http.server answered these with an HTML page (and logged the request line, query string included)."""
    got, headers, body = exchange(emulator, raw)
    assert got == status, body[:200]
    assert headers["content-type"] == "application/json"
    envelope = json.loads(body)
    assert envelope["status"] == "error" and envelope["statusCode"] == status
    assert fragment in envelope["errors"][0]["message"]
    assert b"abc" not in body and b"x" * 100 not in body


# --- the control endpoint's faults ---------------------------------------------------------------------------


@pytest.mark.parametrize("fault", [
    {"kind": "fail", "status": "x"},
    {"kind": "fail", "status": 200},
    {"kind": "fail", "status": 99999},
    {"kind": "fail", "status": True},
    {"kind": "fail", "count": True},
    {"kind": "fail", "count": 0},
    {"kind": "fail", "count": 10**30},
    {"kind": "fail", "operation": 7},
    {"kind": "fail", "operation": ""},
    {"kind": "fail", "message": ["x"]},
    {"kind": "fail", "message": "m" * 5000},
    {"kind": "delay", "seconds": "x"},
    {"kind": "delay", "seconds": -1},
    {"kind": "delay", "seconds": 10**9},
    {"kind": "rate_limit", "seconds": 1e308},
    {"kind": "drop", "after_commit": "yes"},
    {"kind": "fail", "x" * 10_000: 1},
], ids=lambda fault: json.dumps(fault)[:40])
def test_a_malformed_fault_is_refused_and_arms_nothing(emulator: Emulator, fault: dict[str, Any]) -> None:
    """These were armed (201), and the next request then answered 500, crashed or slept for ever."""
    with session_for(emulator) as s:
        answer = s.post(f"{emulator.root_url}/_emulator/faults", json=fault, timeout=5)
        refused(answer, 400, "Bad fault")
        assert s.get(f"{emulator.root_url}/_emulator/stats", timeout=5).json()["faults"] == []
        assert s.get(f"{emulator.url}/ledgers", timeout=5).status_code == 200
