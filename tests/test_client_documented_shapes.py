"""The client against the API *as documented*: every documented payload shape, served over loopback by a
scripted server (``payload_server``), including shapes our emulator never sends (lists without ``info``, the
simple error body, int ids, inconsistent info blocks, redirects).

The payloads are the saved copies in tests/fixtures/documented/ (checked against the contract by
test_frames.py); everything else is built from them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from helpers import FAST
from payload_server import PayloadServer, Received

import mangrove_nb as mnb
from mangrove_nb import frames
from mangrove_nb.errors import (
    AuthenticationError,
    MalformedResponseError,
    MangroveError,
    NotFoundError,
    PermissionDeniedError,
    ServerError,
    ValidationError,
)

DOCUMENTED = Path(__file__).parent / "fixtures" / "documented"
TOKEN = "documented-shapes-token-7f3c"
LEDGER = "lgr_abc123def456"
Q1_BODY = {"start_time": "2025-01-01T00:00:00Z", "end_time": "2025-03-31T23:59:59Z"}


def documented(name: str) -> Any:
    """A fresh copy of a documented example payload."""
    return json.loads((DOCUMENTED / f"{name}.json").read_text())


def ok(body: Any, status: int = 200) -> tuple[int, Any, dict[str, str]]:
    return (status, body, {})


@pytest.fixture
def server() -> Iterator[PayloadServer]:
    with PayloadServer() as scripted:
        yield scripted


@pytest.fixture
def client(server: PayloadServer) -> Iterator[mnb.Client]:
    with mnb.connect(TOKEN, server.url, **FAST) as connected:
        yield connected


def query_of(request: Received) -> dict[str, str]:
    from urllib.parse import parse_qsl, urlsplit

    return dict(parse_qsl(urlsplit(request.path).query))


# --- lists, pages and ledgers --------------------------------------------------------------------------------


def test_ledger_list_without_info_is_one_page(server: PayloadServer, client: mnb.Client) -> None:
    """GET /ledgers as the cookbook shows it (no ``info``) is read as exactly one page."""
    server.route("GET", "/ledgers", ok(documented("list-all-ledgers.cookbook")))
    ledgers = client.ledgers()
    assert ledgers["id"].tolist() == [LEDGER]
    assert ledgers.loc[0, "model_id"] == "mdl_xyz789" and bool(ledgers.loc[0, "has_model"]) is True
    assert ledgers.loc[0, "created_at"] == pd.Timestamp("2025-01-15T10:00:00Z")
    sent = server.received("GET", "/ledgers")
    assert len(sent) == 1 and query_of(sent[0])["page"] == "1"


def test_partition_type_time_and_feedstock_are_both_read(server: PayloadServer, client: mnb.Client) -> None:
    """The two documented Ledger examples disagree on partition_type (feedstock / time): both are kept as sent."""
    single = documented("retrieve-ledger.result")
    single["id"] = "lgr_time000001"
    server.route("GET", "/ledgers", ok({"data": [*documented("list-all-ledgers.cookbook")["data"], single]}))
    server.route("GET", "/ledgers/lgr_time000001", ok(documented("retrieve-ledger.result")))
    ledgers = client.ledgers()
    assert ledgers["partition_type"].tolist() == ["feedstock", "time"]
    assert str(ledgers["partition_type"].dtype) == "string"
    one = frames.ledgers_frame([client.http.ledger("lgr_time000001")])
    assert one.loc[0, "partition_type"] == "time" and one.loc[0, "model_id"] == "mdl_abc123def456"


def test_truncated_create_example_is_accepted_and_leaves_the_rest_missing(server: PayloadServer,
                                                                          client: mnb.Client) -> None:
    """The documented 201 of POST /projects/{id}/ledgers has only four fields: nothing else is invented."""
    server.route("POST", "/projects/123/ledgers", ok(documented("create-project-ledger.result-201"), 201))
    created = client.http.create_ledger(123, "Net Carbon Removal", "t")
    assert server.received("POST")[0].json() == {"ledger": {"name": "Net Carbon Removal", "unit": "t"}}
    row = frames.ledgers_frame([created]).iloc[0]
    assert row["id"] == LEDGER and row["unit"] == "t"
    assert pd.isna(row["partition_type"]) and pd.isna(row["has_model"]) and pd.isna(row["created_at"])


def test_required_inputs_of_the_cookbook(server: PayloadServer, client: mnb.Client) -> None:
    """The cookbook's required inputs: integer type ids, booleans, empty lists as empty text."""
    server.route("GET", f"/ledgers/{LEDGER}/required_inputs", ok(documented("ledger-required-inputs.cookbook")))
    inputs = client.required_inputs(LEDGER)
    assert inputs["id"].tolist() == [1, 2] and str(inputs["id"].dtype) == "Int64"
    assert inputs["slug"].tolist() == ["feedstock-delivery-mass", "transport-distance"]
    assert inputs["is_manual_select"].tolist() == [False, False]
    assert inputs["output_of_ledgers"].tolist() == ["", ""]
    assert inputs.attrs["ledger"] == LEDGER


def test_preview_sends_the_cookbook_body_and_reads_the_documented_answer(server: PayloadServer,
                                                                         client: mnb.Client) -> None:
    """preview("2025Q1") sends the cookbook's start/end and reads {"data": [{id, name, count}]}."""
    server.route("POST", f"/ledgers/{LEDGER}/generate_preview", ok(documented("generate-preview.result")))
    preview = client.preview(LEDGER, "2025Q1")
    assert preview.to_dict("records") == [{"ledger_id": LEDGER, "ledger_name": "Net Carbon Removal", "count": 3}]
    (sent,) = server.received("POST")
    assert sent.json() == Q1_BODY


def script_generation(server: PayloadServer, *, task_id: int | str = 456) -> None:
    """The whole cookbook workflow, answered with the documented payloads."""
    accepted = documented("create-batch-generation.cookbook-202")
    running, complete = documented("retrieve-async-task.in-progress"), documented("retrieve-async-task.complete")
    for body in (accepted, running, complete):
        body["id"] = task_id
    server.route("GET", "/ledgers", ok(documented("list-all-ledgers.cookbook")))
    server.route("GET", f"/ledgers/{LEDGER}", ok(documented("retrieve-ledger.result")))
    server.route("GET", f"/ledgers/{LEDGER}/required_inputs", ok(documented("ledger-required-inputs.cookbook")))
    server.route("POST", f"/ledgers/{LEDGER}/generate_preview", ok(documented("generate-preview.result")))
    server.route("POST", f"/ledgers/{LEDGER}/batch_generations", ok(accepted, 202))
    server.route("GET", f"/async_tasks/{task_id}", ok(running), ok(complete))
    server.route("GET", f"/ledgers/{LEDGER}/batches", ok(documented("list-all-ledger-batches.cookbook")))


def test_generate_and_wait_through_the_documented_task_bodies(server: PayloadServer, client: mnb.Client) -> None:
    """202 + "in progress" + "complete": wait() returns the batch created between started_at and finished_at."""
    script_generation(server)
    task = client.generate(LEDGER, "2025Q1")
    assert task.id == 456 and task.status is not None and task.status.state == "pending"
    new = task.wait()
    assert new["id"].tolist() == ["bat_newbatch001"] and new["ledger_id"].tolist() == [LEDGER]
    assert task.status is not None and task.status.state == "complete"
    assert task.status.finished_at == pd.Timestamp("2025-04-01T12:00:15Z")
    assert [r.path for r in server.received("GET", "/async_tasks/456")] == ["/async_tasks/456"] * 2
    (trigger,) = server.received("POST", f"/ledgers/{LEDGER}/batch_generations")
    assert trigger.json() == Q1_BODY


def test_in_progress_body_is_read_into_a_status(server: PayloadServer, client: mnb.Client) -> None:
    """The documented "in progress" body gives state, progress, description and a UTC started_at."""
    server.route("GET", "/async_tasks/456", ok(documented("retrieve-async-task.in-progress")))
    status = client.task(456).refresh()
    assert (status.state, status.progress, status.description) == ("running", 50.0, "Processing batch 2 of 3")
    assert status.started_at == pd.Timestamp("2025-04-01T12:00:01Z") and status.finished_at is None


def test_reattach_by_id_against_documented_payloads(server: PayloadServer) -> None:
    """A new client's task(456).wait() (no ledger list given) finds the batch via GET /ledgers."""
    script_generation(server)
    with mnb.connect(TOKEN, server.url, **FAST) as fresh:
        new = fresh.task(456).wait()
    assert new["id"].tolist() == ["bat_newbatch001"]
    assert len(server.received("GET", "/ledgers")) == 1


def test_ledger_batches_without_info(server: PayloadServer, client: mnb.Client) -> None:
    """GET /ledgers/{id}/batches as the cookbook shows it (no info, no updated_at) is one page."""
    server.route("GET", f"/ledgers/{LEDGER}/batches", ok(documented("list-all-ledger-batches.cookbook")))
    batches = client.batches(LEDGER)
    assert batches["id"].tolist() == ["bat_newbatch001"]
    assert batches.loc[0, "output_value"] == 33.5 and batches.loc[0, "ledger_id"] == LEDGER
    assert pd.isna(batches.loc[0, "updated_at"])
    assert len(server.received("GET", f"/ledgers/{LEDGER}/batches")) == 1


def test_all_batches_with_info(server: PayloadServer, client: mnb.Client) -> None:
    """GET /batches with its info block and model_run: one page, model run state read."""
    server.route("GET", "/batches", ok(documented("list-all-batches.result")))
    batches = client.batches()
    assert batches["id"].tolist() == ["bat_abc123def456"]
    assert batches.loc[0, "model_run_state"] == "complete" and batches.loc[0, "ledger_balance"] == 50.25
    assert pd.isna(batches.loc[0, "ledger_id"])
    assert len(server.received("GET", "/batches")) == 1


def test_fifteen_items_page_size_ten_one_page_trusts_next_page(server: PayloadServer, client: mnb.Client) -> None:
    """The documented self-contradicting info (15 items, page size 10, 1 page, no next page): all 15, one request."""
    items = [{**documented("list-all-batches.result")["data"][0], "id": f"bat_{n:02d}"} for n in range(15)]
    info = {"items": 15, "page_size": 10, "total_items": 15, "current_page": 1, "next_page": None,
            "previous_page": None, "total_pages": 1, "sort": [], "filter": []}
    server.route("GET", "/batches", ok({"data": items, "info": info}))
    assert sorted(client.batches()["id"]) == [f"bat_{n:02d}" for n in range(15)]
    assert len(server.received("GET", "/batches")) == 1


def test_next_page_is_followed_even_when_total_pages_says_one(server: PayloadServer, client: mnb.Client) -> None:
    """A next_page beyond the claimed total_pages is followed: next_page, not arithmetic, decides."""
    first = [{"id": f"bat_a{n}", "start_time": "2025-01-01T00:00:00Z"} for n in range(10)]
    second = [{"id": f"bat_b{n}", "start_time": "2025-02-01T00:00:00Z"} for n in range(5)]
    info = {"items": 15, "page_size": 10, "total_items": 15, "total_pages": 1, "previous_page": None}
    server.route("GET", "/batches?page=1", ok({"data": first, "info": {**info, "current_page": 1, "next_page": 2}}))
    server.route("GET", "/batches?page=2", ok({"data": second, "info": {**info, "current_page": 2, "next_page": None}}))
    assert len(client.batches()) == 15
    assert [query_of(r)["page"] for r in server.received("GET", "/batches")] == ["1", "2"]


@pytest.mark.parametrize(
    ("page1_next", "page2_info"),
    [
        pytest.param({"current_page": 1, "next_page": 1}, None, id="next-equals-current"),
        pytest.param({"next_page": 2}, {"next_page": 1}, id="points-back-without-current"),
        pytest.param({"current_page": 1, "next_page": "2"}, None, id="next-page-is-text"),
    ],
)
def test_next_page_that_does_not_advance_is_malformed(server: PayloadServer, client: mnb.Client,
                                                      page1_next: dict[str, Any],
                                                      page2_info: dict[str, Any] | None) -> None:
    """A next_page that repeats a page (or is not a page number) raises instead of looping or truncating."""
    item = {"id": "bat_1", "start_time": "2025-01-01T00:00:00Z"}
    server.route("GET", "/batches?page=1", ok({"data": [item], "info": page1_next}))
    server.route("GET", "/batches?page=2", ok({"data": [{**item, "id": "bat_2"}], "info": page2_info or {}}))
    with pytest.raises(MalformedResponseError, match="next_page"):
        client.batches()
    assert len(server.received("GET", "/batches")) <= 2


# --- ids and unknown fields ----------------------------------------------------------------------------------


def test_ids_may_be_integers_or_strings(server: PayloadServer, client: mnb.Client) -> None:
    """Integer ledger/model/batch ids become text; a text task id is used as given in the task URL."""
    ledger = {**documented("retrieve-ledger.result"), "id": 789, "latest_model": {"id": 42, "name": "M"}}
    server.route("GET", "/ledgers", ok({"data": [ledger]}))
    server.route("POST", "/ledgers/789/generate_preview", ok({"data": [{"id": 789, "name": "N", "count": "3"}]}))
    server.route("GET", "/ledgers/789/batches", ok({"data": [{"id": 1001, "start_time": "2025-01-01T00:00:00Z"}]}))
    server.route("GET", "/ledgers/789/required_inputs",
                 ok({"data": [{**documented("ledger-required-inputs.cookbook")["data"][0], "id": "1"}]}))
    complete = {**documented("retrieve-async-task.complete"), "id": "task-abc"}
    server.route("GET", "/async_tasks/task-abc", ok(complete))
    ledgers = client.ledgers()
    assert ledgers.loc[0, "id"] == "789" and ledgers.loc[0, "model_id"] == "42"
    assert client.preview("789", "2025Q1").to_dict("records") == [{"ledger_id": "789", "ledger_name": "N",
                                                                    "count": 3}]
    assert client.batches("789")["id"].tolist() == ["1001"]
    assert client.required_inputs("789")["id"].tolist() == [1]
    assert client.task("task-abc", ledgers=[]).wait().empty
    assert server.received("GET", "/async_tasks/task-abc")


def with_surprises(value: Any) -> Any:
    """Every object in ``value`` gets unknown extra fields."""
    if isinstance(value, dict):
        return {**{k: with_surprises(v) for k, v in value.items()}, "x_unknown": {"nested": [1, "two"]},
                "x_null": None}
    if isinstance(value, list):
        return [with_surprises(v) for v in value]
    return value


@pytest.mark.parametrize(
    ("fixture", "path", "call"),
    [
        ("list-all-ledgers.cookbook", "/ledgers", lambda c: c.ledgers()),
        ("ledger-required-inputs.cookbook", f"/ledgers/{LEDGER}/required_inputs", lambda c: c.required_inputs(LEDGER)),
        ("list-all-ledger-batches.cookbook", f"/ledgers/{LEDGER}/batches", lambda c: c.batches(LEDGER)),
        ("list-all-batches.result", "/batches", lambda c: c.batches()),
    ],
    ids=["ledgers", "required-inputs", "ledger-batches", "batches"],
)
def test_unknown_extra_fields_are_tolerated(server: PayloadServer, client: mnb.Client, fixture: str, path: str,
                                            call: Callable[[mnb.Client], pd.DataFrame]) -> None:
    """Unknown fields anywhere in the payload change nothing in the frame."""
    server.route("GET", path, ok(documented(fixture)), ok(with_surprises(documented(fixture))))
    plain, surprised = call(client), call(client)
    assert len(plain) >= 1
    pd.testing.assert_frame_equal(plain, surprised)


def test_unknown_fields_in_task_and_preview_bodies_are_tolerated(server: PayloadServer, client: mnb.Client) -> None:
    """Extra fields in the preview answer and in the task body are ignored."""
    preview = with_surprises(documented("generate-preview.result"))
    server.route("POST", f"/ledgers/{LEDGER}/generate_preview", ok(preview))
    server.route("GET", "/async_tasks/456", ok(with_surprises(documented("retrieve-async-task.complete"))))
    assert client.preview(LEDGER, "2025Q1")["count"].tolist() == [3]
    assert client.task(456).refresh().state == "complete"


# --- errors --------------------------------------------------------------------------------------------------


def envelope(status: int, message: str) -> dict[str, Any]:
    return {"status": "error", "statusCode": status, "errors": [{"message": message}]}


def simple(status: int, message: str) -> dict[str, Any]:
    return {"message": message}


ERROR_TYPES = [(400, ValidationError), (401, AuthenticationError), (403, PermissionDeniedError),
               (404, NotFoundError), (422, ValidationError), (500, ServerError)]


@pytest.mark.parametrize("shape", [envelope, simple], ids=["envelope", "simple"])
@pytest.mark.parametrize(("status", "error_type"), ERROR_TYPES, ids=[str(s) for s, _ in ERROR_TYPES])
@pytest.mark.parametrize("verb", ["GET", "POST"])
def test_error_bodies_of_either_shape_give_the_typed_error_with_the_message(
        server: PayloadServer, client: mnb.Client, shape: Callable[[int, str], dict[str, Any]], status: int,
        error_type: type[MangroveError], verb: str) -> None:
    """Both documented error bodies map to the status's exception type, carrying the server's message."""
    message = f"server says no to this {status} request"
    if verb == "GET":
        server.route("GET", f"/ledgers/{LEDGER}/required_inputs", (status, shape(status, message), {}))
        call: Callable[[], object] = lambda: client.required_inputs(LEDGER)  # noqa: E731
    else:
        server.route("POST", f"/ledgers/{LEDGER}/generate_preview", (status, shape(status, message), {}))
        call = lambda: client.preview(LEDGER, "2025Q1")  # noqa: E731
    with pytest.raises(error_type) as caught:
        call()
    assert type(caught.value) is error_type
    assert caught.value.server_messages == (message,)  # type: ignore[attr-defined]
    assert message in str(caught.value) and f"HTTP {status}" in str(caught.value)
    assert len(server.requests) == 1  # none of these is transient: no retry


@pytest.mark.parametrize("fixture", ["error.envelope-404", "error.simple-404"])
def test_documented_404_bodies_verbatim(server: PayloadServer, client: mnb.Client, fixture: str) -> None:
    """The two saved 404 examples both give NotFoundError with their own wording."""
    body = documented(fixture)
    expected = body["errors"][0]["message"] if "errors" in body else body["message"]
    server.route("GET", "/async_tasks/9", (404, body, {}))
    with pytest.raises(NotFoundError) as caught:
        client.task(9).wait()
    assert caught.value.server_messages == (expected,)


def test_documented_422_envelope(server: PayloadServer, client: mnb.Client) -> None:
    """The saved 422 example on a safe POST gives ValidationError with its message, sent once."""
    server.route("POST", f"/ledgers/{LEDGER}/generate_preview", (422, documented("submit-report.error-422"), {}))
    with pytest.raises(ValidationError, match="Report does not meet submission requirements"):
        client.preview(LEDGER, "2025Q1")
    assert len(server.requests) == 1


HTML_PAGE = ("<!DOCTYPE html><html><head><title>Sign in - Corporate Proxy</title></head>"
             "<body><form>login</form></body></html>")


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        pytest.param(HTML_PAGE, {"Content-Type": "text/html"}, id="html-page"),
        pytest.param("this is not json", {}, id="plain-text"),
        pytest.param(b"{\"data\": [", {"Content-Type": "application/json"}, id="truncated-json"),
        pytest.param(b"", {}, id="empty-body"),
        pytest.param({"items": []}, {}, id="no-data-key"),
        pytest.param([{"id": "lgr_1"}], {}, id="bare-list"),
        pytest.param({"data": {"id": "lgr_1"}}, {}, id="data-not-a-list"),
        pytest.param({"data": ["lgr_1"]}, {}, id="item-not-an-object"),
        pytest.param({"data": [{"name": "no id"}]}, {}, id="missing-id"),
    ],
)
def test_non_json_or_undocumented_success_bodies_are_malformed(server: PayloadServer, client: mnb.Client,
                                                               body: Any, headers: dict[str, str]) -> None:
    """A 200 that is not the documented JSON raises MalformedResponseError (never a raw JSON/Key error)."""
    server.route("GET", "/ledgers", (200, body, headers))
    with pytest.raises(MalformedResponseError) as caught:
        client.ledgers()
    assert caught.value.__cause__ is None


def test_html_page_excerpt_is_its_title_only(server: PayloadServer, client: mnb.Client) -> None:
    """An HTML page instead of JSON is named as such, quoting only its title."""
    server.route("GET", "/ledgers", (200, HTML_PAGE, {"Content-Type": "text/html"}))
    with pytest.raises(MalformedResponseError, match="HTML page") as caught:
        client.ledgers()
    assert caught.value.excerpt == "<title>Sign in - Corporate Proxy</title>"
    assert "<form>" not in str(caught.value)


def test_html_error_page_keeps_the_status_type_and_says_it_was_html(server: PayloadServer,
                                                                    client: mnb.Client) -> None:
    """An HTML 404 page from a proxy is still a 404 (the status decides), and the message says it was HTML."""
    server.route("GET", f"/ledgers/{LEDGER}/required_inputs", (404, HTML_PAGE, {"Content-Type": "text/html"}))
    with pytest.raises(NotFoundError, match="HTML page") as caught:
        client.required_inputs(LEDGER)
    assert caught.value.server_messages == ()


def test_batch_without_start_time_names_the_field(server: PayloadServer, client: mnb.Client) -> None:
    """A batch missing its required start_time is malformed, naming the field and index."""
    broken = documented("list-all-ledger-batches.cookbook")
    del broken["data"][0]["start_time"]
    server.route("GET", f"/ledgers/{LEDGER}/batches", ok(broken))
    with pytest.raises(MalformedResponseError) as caught:
        client.batches(LEDGER)
    assert caught.value.field == "start_time" and caught.value.index == 0


def test_task_body_with_unknown_state_is_malformed(server: PayloadServer, client: mnb.Client) -> None:
    """A task state outside pending/running/complete/failed is malformed, not a silent wait."""
    server.route("GET", "/async_tasks/456", ok({**documented("retrieve-async-task.complete"), "state": "done"}))
    with pytest.raises(MalformedResponseError, match="unknown task state"):
        client.task(456).wait()


# --- redirects -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirect_to_another_origin_is_refused_and_never_carries_the_token(server: PayloadServer,
                                                                           client: mnb.Client, status: int) -> None:
    """A redirect elsewhere raises; the other origin never receives the Authorization header (nor the request)."""
    with PayloadServer() as elsewhere:
        elsewhere.route("GET", "/ledgers", ok(documented("list-all-ledgers.cookbook")))
        elsewhere.route("POST", f"/ledgers/{LEDGER}/generate_preview", ok(documented("generate-preview.result")))
        server.route("GET", "/ledgers", (status, "", {"Location": f"{elsewhere.url}/ledgers"}))
        server.route("POST", f"/ledgers/{LEDGER}/generate_preview",
                     (status, "", {"Location": f"{elsewhere.url}/ledgers/{LEDGER}/generate_preview"}))
        with pytest.raises(MalformedResponseError, match="redirected to another site"):
            client.ledgers()
        with pytest.raises(MalformedResponseError, match="redirected to another site"):
            client.preview(LEDGER, "2025Q1")
        assert all("authorization" not in r.headers for r in elsewhere.requests)
        assert elsewhere.requests == []
    assert all(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in server.requests)


def test_redirect_to_the_same_port_under_another_host_name_is_another_origin(server: PayloadServer,
                                                                              client: mnb.Client) -> None:
    """localhost vs 127.0.0.1 on the same port is another origin: refused, nothing sent there."""
    port = server.url.split(":")[2].split("/")[0]
    server.route("GET", "/ledgers", (302, "", {"Location": f"http://localhost:{port}/api/v1/moved"}))
    server.route("GET", "/moved", ok(documented("list-all-ledgers.cookbook")))
    with pytest.raises(MalformedResponseError, match="another site"):
        client.ledgers()
    assert server.received("GET", "/moved") == []


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_same_origin_redirect_is_followed_with_the_token(server: PayloadServer, client: mnb.Client,
                                                         status: int) -> None:
    """A redirect within the API's origin is followed, and the request there is authenticated."""
    server.route("GET", "/ledgers", (status, "", {"Location": f"{server.url}/v2/ledgers?page=1&page_size=100"}))
    server.route("GET", "/v2/ledgers", ok(documented("list-all-ledgers.cookbook")))
    assert client.ledgers()["id"].tolist() == [LEDGER]
    moved = server.received("GET", "/v2/ledgers")
    assert len(moved) == 1 and moved[0].headers["authorization"] == f"Bearer {TOKEN}"


def test_redirect_loop_is_an_error_not_a_hang(server: PayloadServer, client: mnb.Client) -> None:
    """Redirects that never end raise after a few hops."""
    server.route("GET", "/ledgers", (302, "", {"Location": f"{server.url}/ledgers"}))
    with pytest.raises(MalformedResponseError, match="redirected more than"):
        client.ledgers()
    assert 2 <= len(server.requests) <= 10
