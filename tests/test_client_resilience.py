"""Retries, rate limits, pagination safety, deadlines, polling and secrecy of the token.

The emulator's fault injection (``emu.faults``) stands for outages and lost answers; the scripted
``PayloadServer`` covers what the emulator cannot fake (a page-exact 503, stalls, slow bodies, changing
totals, runaway pagination). Retry schedules are asserted exactly through ``HttpClient``'s injectable
``sleep``/``clock``/``jitter``.
"""

from __future__ import annotations

import logging
import math
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pandas as pd
import pytest
import requests
from helpers import FAST, connect_to
from payload_server import DROP, PayloadServer, Received, drip, stall

import mangrove_nb as mnb
from mangrove_nb.client import HttpClient
from mangrove_nb.emulator import Emulator
from mangrove_nb.errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    ConfigurationError,
    GenerationOutcomeUnknownError,
    MalformedResponseError,
    MangroveError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionError,
    RateLimitedError,
    ServerError,
    TaskFailedError,
    TaskTimeoutError,
    ValidationError,
)
from mangrove_nb.settings import Settings

NCR = "Net Carbon Removal"
Q1 = {"start_time": "2025-01-01T00:00:00Z", "end_time": "2025-03-31T23:59:59Z"}
TOKEN = "resilience-token-0000-7f3c"


def ncr_id(client: mnb.Client) -> str:
    return str(client.ledgers().set_index("name").loc[NCR, "id"])


@dataclass
class FakeTime:
    """A clock that only moves when someone sleeps; records every sleep."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds

    def clock(self) -> float:
        return self.now


def page_of(request: Received) -> int:
    return int(dict(parse_qsl(urlsplit(request.path).query)).get("page", "1"))


def closed_port() -> int:
    """A loopback port nobody listens on (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def server() -> Iterator[PayloadServer]:
    with PayloadServer() as scripted:
        yield scripted


# --- retries of safe calls -----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [502, 503, 504])
def test_transient_statuses_on_a_get_are_retried(emulator: Emulator, client: mnb.Client, status: int) -> None:
    """k transient answers, then OK: the data arrives after k + 1 attempts."""
    emulator.faults.fail("list-all-ledgers", status, 2)
    assert len(client.ledgers()) == 5
    assert emulator.count("list-all-ledgers") == 3


@pytest.mark.parametrize("status", [502, 503, 504])
def test_transient_statuses_on_preview_are_retried(emulator: Emulator, client: mnb.Client, status: int) -> None:
    """generate_preview is a safe POST: retried like a GET."""
    ledger = ncr_id(client)
    emulator.faults.fail("generate-preview", status, 3)
    assert client.preview(ledger, "2025Q1")["count"].tolist() == [3, 3]
    assert emulator.count("generate-preview") == 4


def test_retries_are_bounded_by_max_retries(emulator: Emulator) -> None:
    """A lasting outage raises ServerError after max_retries + 1 attempts."""
    emulator.faults.fail("list-all-ledgers", 503, 10)
    with connect_to(emulator.url, emulator.token, max_retries=2) as client, pytest.raises(ServerError) as caught:
        client.ledgers()
    assert caught.value.status_code == 503 and emulator.count("list-all-ledgers") == 3


def test_a_plain_500_is_not_retried(emulator: Emulator, client: mnb.Client) -> None:
    """500 is not one of the transient statuses: one attempt, ServerError."""
    emulator.faults.fail("list-all-ledgers", 500, 1)
    with pytest.raises(ServerError):
        client.ledgers()
    assert emulator.count("list-all-ledgers") == 1


def test_emulator_marks_a_pre_commit_drop_as_injected() -> None:
    """A pre-commit drop is a fault the test armed: its recorded exchange should say so."""
    from mangrove_nb.testing import emulator as bare_emulator  # no contract check at teardown: that is the point

    with bare_emulator() as emu, connect_to(emu.url, emu.token) as client:
        emu.faults.drop("list-all-ledgers", 1, after_commit=False)
        client.ledgers()
        assert [e.injected for e in emu.exchanges if e.status >= 500] == [True]


@pytest.mark.parametrize("after_commit", [False, True])
def test_a_dropped_connection_on_a_get_is_retried(emulator: Emulator, client: mnb.Client, after_commit: bool) -> None:
    """A GET whose connection is closed without an answer is simply asked again."""
    emulator.faults.drop("list-all-ledgers", 1, after_commit=after_commit)
    assert len(client.ledgers()) == 5
    assert emulator.count("list-all-ledgers") == 2


# --- the trigger is never re-sent after an ambiguous failure -------------------------------------------------


def wait_until_complete(client: mnb.Client, ledger: str, period: str, seconds: float = 10) -> mnb.Reconciliation:
    deadline = time.monotonic() + seconds
    while True:
        state = client.reconcile(ledger, period)
        if state.complete or time.monotonic() > deadline:
            return state
        time.sleep(0.05)


def test_lost_answer_to_the_trigger_is_outcome_unknown_and_reconcile_shows_the_truth(emulator: Emulator,
                                                                                     client: mnb.Client) -> None:
    """The trigger commits but its answer is lost: GenerationOutcomeUnknownError (ledger and period named),
    exactly one POST, and reconcile() shows the batches the server made."""
    ledger = ncr_id(client)
    emulator.faults.drop("create-batch-generation", 1, after_commit=True)
    with pytest.raises(GenerationOutcomeUnknownError) as caught:
        client.generate(ledger, "2025Q1")
    error = caught.value
    assert error.ledger_id == ledger and (error.start, error.end) == (Q1["start_time"], Q1["end_time"])
    assert ledger in str(error) and "2025-01-01T00:00:00Z" in str(error) and "2025-03-31T23:59:59Z" in str(error)
    assert not isinstance(error, mnb.TransportError)
    assert emulator.count("create-batch-generation") == 1
    settled = wait_until_complete(client, ledger, "2025Q1")
    assert settled.complete and len(settled.batches) == 3
    assert emulator.count("create-batch-generation") == 1


def test_ctrl_c_after_the_trigger_was_accepted_but_before_it_was_recorded_is_an_unknown_outcome(
        emulator: Emulator, client: mnb.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """The worst moment: the 202 has arrived, the task is not recorded yet. The record assumes the worst (an
    unknown outcome, written to the state file) and a re-run cell does not send the trigger again."""
    from pathlib import Path

    from mangrove_nb import _generation
    from mangrove_nb._sent import STATE_FILE

    ledger = ncr_id(client)

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(_generation.TaskStatus, "from_json", interrupted)
    with pytest.raises(KeyboardInterrupt):
        client.generate(ledger, "2025Q1")
    monkeypatch.undo()
    with pytest.raises(mnb.PreconditionError, match="unknown"):
        client.generate(ledger, "2025Q1")
    state = (Path(client.settings.state_dir or "") / STATE_FILE).read_text(encoding="utf-8")
    assert ledger in state and "interrupted while the answer was being recorded" in state
    assert emulator.count("create-batch-generation") == 1
    assert wait_until_complete(client, ledger, "2025Q1").complete
    assert emulator.count("create-batch-generation") == 1


def test_trigger_dropped_before_processing_is_still_unknown_and_nothing_was_made(emulator: Emulator,
                                                                                 client: mnb.Client) -> None:
    """From the client's side a drop is a drop: not re-sent; reconcile() shows nothing made yet."""
    ledger = ncr_id(client)
    emulator.faults.drop("create-batch-generation", 1, after_commit=False)
    with pytest.raises(GenerationOutcomeUnknownError):
        client.generate(ledger, "2025Q1")
    assert emulator.count("create-batch-generation") == 1
    state = client.reconcile(ledger, "2025Q1")
    assert state.batches.empty and state.still_missing["count"].sum() == 6


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_on_the_trigger_is_outcome_unknown(emulator: Emulator, client: mnb.Client, status: int) -> None:
    """A 5xx from the server or a gateway may hide a request that went through: outcome unknown, one POST."""
    ledger = ncr_id(client)
    emulator.faults.fail("create-batch-generation", status, 5)
    with pytest.raises(GenerationOutcomeUnknownError, match=ledger):
        client.generate(ledger, "2025Q1")
    assert emulator.count("create-batch-generation") == 1


def script_trigger(server: PayloadServer, trigger: Any) -> None:
    """A ledger that passes every pre-check, with ``trigger`` as the answer to the generation POST."""
    ledger = {"id": "lgr_1", "name": "L", "latest_model": {"id": "mdl_1", "name": "M"}}
    server.route("GET", "/ledgers/lgr_1", (200, ledger, {}))
    server.route("GET", "/ledgers/lgr_1/required_inputs", (200, {"data": []}, {}))
    server.route("POST", "/ledgers/lgr_1/generate_preview", (200, {"data": [{"id": "lgr_1", "count": 1}]}, {}))
    server.route("POST", "/ledgers/lgr_1/batch_generations", trigger)


def test_trigger_read_timeout_is_outcome_unknown_and_sent_once(server: PayloadServer) -> None:
    """The server accepts the POST and says nothing: after the read timeout, outcome unknown; one POST."""
    script_trigger(server, stall(10))
    with connect_to(server.url, TOKEN, read_timeout=0.3) as client, \
            pytest.raises(GenerationOutcomeUnknownError, match="lgr_1"):
        client.generate("lgr_1", "2025Q1")
    assert len(server.received("POST", "/ledgers/lgr_1/batch_generations")) == 1


def test_trigger_that_never_reached_the_server_may_be_retried() -> None:
    """Connection refused: the POST certainly did not arrive, so it is retried (then a connection error)."""
    fake = FakeTime()
    settings = Settings.resolve(TOKEN, f"http://127.0.0.1:{closed_port()}/api/v1", max_retries=3,
                                backoff_initial=0.5, backoff_max=4.0)
    with HttpClient(settings, sleep=fake.sleep, jitter=lambda: 0.0) as http, \
            pytest.raises(APIConnectionError, match="refused"):
        http.create_batch_generation("lgr_1", Q1)
    assert fake.sleeps == [0.25, 0.5, 1.0]


# --- rate limits ---------------------------------------------------------------------------------------------


def test_429_with_a_near_reset_waits_and_succeeds(emulator: Emulator, client: mnb.Client) -> None:
    """RateLimit-Reset about a second away: the client waits for it and the call succeeds."""
    emulator.faults.rate_limit_burst(1, reset_in=1)
    started = time.monotonic()
    assert len(client.ledgers()) == 5
    assert 0.5 <= time.monotonic() - started < 5
    assert emulator.count("list-all-ledgers") == 2


def test_429_with_a_far_reset_raises_with_the_wait(emulator: Emulator) -> None:
    """RateLimit-Reset ten minutes away, beyond rate_limit_max_wait: RateLimitedError saying how long to wait."""
    emulator.faults.rate_limit_burst(1, reset_in=600)
    with connect_to(emulator.url, emulator.token, rate_limit_max_wait=2) as client, \
            pytest.raises(RateLimitedError) as caught:
        client.ledgers()
    error = caught.value
    assert error.retry_after is not None and 590 <= error.retry_after <= 601
    assert error.reset_at is not None and f"wait {error.retry_after:.0f} s" in str(error)
    assert emulator.count("list-all-ledgers") == 1


def test_requests_are_spread_as_the_rate_limit_budget_runs_out(server: PayloadServer) -> None:
    """RateLimit-Remaining near zero: the next request waits its share of the time left, instead of a 429;
    a reset too far away raises before sending."""
    wall = 1_000_000_000.0
    low = {"RateLimit-Limit": "100", "RateLimit-Remaining": "2", "RateLimit-Reset": str(int(wall + 10))}
    server.route("GET", "/projects/1", (200, {"id": 1}, low))
    fake = FakeTime()
    settings = Settings.resolve(TOKEN, server.url, rate_limit_max_wait=60)
    with HttpClient(settings, sleep=fake.sleep, wall=lambda: wall) as http:
        http.project(1)
        assert fake.sleeps == []
        http.project(1)
        assert fake.sleeps == [5.0]  # 10 s left, 2 requests left
    spent = {"RateLimit-Limit": "100", "RateLimit-Remaining": "0", "RateLimit-Reset": str(int(wall + 600))}
    server.route("GET", "/projects/2", (200, {"id": 2}, spent))
    with HttpClient(settings, sleep=fake.sleep, wall=lambda: wall) as http:
        http.project(2)
        with pytest.raises(RateLimitedError):
            http.project(2)
    assert len(server.received("GET", "/projects/2")) == 1


# --- the backoff schedule ------------------------------------------------------------------------------------


def test_backoff_schedule_is_exponential_with_equal_jitter(emulator: Emulator) -> None:
    """With jitter 0.5, waits are 3/4 of 1, 2, 4, 4 s (capped at backoff_max), then the call succeeds."""
    emulator.faults.fail("list-all-ledgers", 503, 4)
    settings = Settings.resolve(emulator.token, emulator.url, max_retries=4, backoff_initial=1.0, backoff_max=4.0)
    fake = FakeTime()
    with HttpClient(settings, sleep=fake.sleep, jitter=lambda: 0.5) as http:
        assert len(http.ledgers()) == 5
    assert fake.sleeps == [0.75, 1.5, 3.0, 3.0]
    assert emulator.count("list-all-ledgers") == 5


@pytest.mark.parametrize("jitter", [0.0, 0.5, 1.0])
def test_backoff_is_bounded_by_backoff_max(jitter: float) -> None:
    """Every wait lies in [step/2, step] with step = min(backoff_max, initial * 2**(n-1)), even at attempt 60."""
    settings = Settings.resolve(TOKEN, "https://api.example.com/api/v1", backoff_initial=0.5, backoff_max=8.0)
    with HttpClient(settings, jitter=lambda: jitter) as http:
        waits = [http.backoff(n) for n in range(1, 61)]
    steps = [min(8.0, 0.5 * 2 ** (n - 1)) for n in range(1, 61)]
    assert waits == [s / 2 + jitter * s / 2 for s in steps]
    assert max(waits) <= 8.0


def test_retries_stop_at_the_call_deadline(emulator: Emulator) -> None:
    """A wait that would end past the call's deadline is not taken: the error is raised instead."""
    emulator.faults.fail("list-all-ledgers", 503, 10)
    settings = Settings.resolve(emulator.token, emulator.url, max_retries=10, backoff_initial=1.0,
                                backoff_max=4.0, call_deadline=4.0)
    fake = FakeTime()
    with HttpClient(settings, sleep=fake.sleep, clock=fake.clock, jitter=lambda: 0.5) as http, \
            pytest.raises(ServerError):
        http.ledgers()
    assert fake.sleeps == [0.75, 1.5]  # the next, 3.0 s, would end after the 4 s deadline
    assert emulator.count("list-all-ledgers") == 3


# --- pagination ----------------------------------------------------------------------------------------------


def items(prefix: str, count: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"id": f"{prefix}{n:03d}", "start_time": f"2025-01-01T00:{n // 60:02d}:{n % 60:02d}Z"}
            for n in range(start, start + count)]


def paged(data: list[dict[str, Any]], page: int, size: int = 10) -> dict[str, Any]:
    pages = max(1, math.ceil(len(data) / size))
    return {"data": data[(page - 1) * size:page * size],
            "info": {"items": len(data[(page - 1) * size:page * size]), "page_size": size,
                     "total_items": len(data), "current_page": page,
                     "next_page": page + 1 if page < pages else None,
                     "previous_page": page - 1 if page > 1 else None, "total_pages": pages}}


@pytest.mark.parametrize("concurrent_pages", [1, 8])
def test_a_503_on_page_k_is_retried_without_losing_or_duplicating(server: PayloadServer,
                                                                   concurrent_pages: int) -> None:
    """Page 3 of 4 fails once: it is asked again, and the listing has every item exactly once."""
    data = items("bat_", 35)
    for page in range(1, 5):
        answers: list[Any] = [(200, paged(data, page), {})]
        if page == 3:
            answers.insert(0, (503, {"message": "busy"}, {}))
        server.route("GET", f"/batches?page={page}", *answers)
    with connect_to(server.url, TOKEN, max_concurrent_pages=concurrent_pages) as client:
        listed = client.batches()
    assert sorted(listed["id"]) == [d["id"] for d in data]
    assert sorted(page_of(r) for r in server.received("GET", "/batches")) == [1, 2, 3, 3, 4]


def arm_after_page(session: requests.Session, page: int, action: Callable[[], None]) -> None:
    """Run ``action`` once, right after the answer for ``page`` of a listing arrives."""
    done = threading.Event()

    def hook(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        query = dict(parse_qsl(urlsplit(response.url).query))
        if query.get("page") == str(page) and "/batches" in response.url and not done.is_set():
            done.set()
            action()

    session.hooks["response"].append(hook)


def test_a_503_in_the_middle_of_an_emulator_listing(emulator: Emulator) -> None:
    """The emulator fails the request after page 2 of GET /batches: same batches as an undisturbed listing."""
    with connect_to(emulator.url, emulator.token, page_size=10) as plain:
        baseline = plain.batches()
    with requests.Session() as session:
        arm_after_page(session, 2, lambda: emulator.faults.fail("list-all-batches", 503, 1))
        with mnb.connect(emulator.token, emulator.url, session=session, page_size=10, max_concurrent_pages=1,
                         **FAST) as client:
            disturbed = client.batches()
    assert disturbed["id"].tolist() == baseline["id"].tolist() and disturbed["id"].is_unique
    pages = math.ceil(len(baseline) / 10)
    assert emulator.count("list-all-batches") == 2 * pages + 1


def test_batches_generated_while_listing_cause_a_reread_without_duplicates(emulator: Emulator) -> None:
    """A generation that finishes between page 1 and page 2 changes the total: the listing is read again and
    has every batch, old and new, once."""
    with connect_to(emulator.url, emulator.token, page_size=10) as plain:
        before = plain.batches()
        ledger = ncr_id(plain)

    def generate_january() -> None:
        with requests.Session() as raw:
            raw.headers["Authorization"] = f"Bearer {emulator.token}"
            task = raw.post(f"{emulator.url}/ledgers/{ledger}/batch_generations", timeout=5,
                            json={"start_time": "2025-01-01T00:00:00Z", "end_time": "2025-01-31T23:59:59Z"}).json()
            deadline = time.monotonic() + 10
            while raw.get(f"{emulator.url}/async_tasks/{task['id']}", timeout=5).json()["state"] != "complete":
                assert time.monotonic() < deadline
                time.sleep(0.02)

    calls_before = emulator.count("list-all-batches")
    with requests.Session() as session:
        arm_after_page(session, 1, generate_january)
        with mnb.connect(emulator.token, emulator.url, session=session, page_size=10, max_concurrent_pages=1,
                         **FAST) as client:
            during = client.batches()
    pages = math.ceil(len(before) / 10)
    assert emulator.count("list-all-batches") - calls_before >= 2 * pages  # read twice
    with connect_to(emulator.url, emulator.token) as fresh:
        after = fresh.batches()
    assert during["id"].is_unique and len(during) == len(before) + 2
    assert sorted(during["id"]) == sorted(after["id"])


def test_a_changed_total_between_pages_is_read_again(server: PayloadServer) -> None:
    """Page 1 says 15 items, page 2 then says 16 (one inserted at the front): the listing is re-read and
    returns the 16 items once each."""
    old, new = items("bat_", 15, start=1), items("bat_", 16, start=0)
    server.route("GET", "/batches?page=1", (200, paged(old, 1), {}), (200, paged(new, 1), {}))
    server.route("GET", "/batches?page=2", (200, paged(new, 2), {}))
    with connect_to(server.url, TOKEN) as client:
        listed = client.batches()
    assert sorted(listed["id"]) == [d["id"] for d in new]
    assert [page_of(r) for r in server.received("GET", "/batches")] == [1, 2, 1, 2]


def test_a_listing_that_keeps_changing_raises_instead_of_returning_a_mix(server: PayloadServer) -> None:
    """Totals that differ on every page (15, 16, 15...): after three reads, an error, never a wrong list."""
    calls = {"n": 0}

    def growing(request: Received) -> tuple[int, Any, dict[str, str]]:
        calls["n"] += 1
        return (200, paged(items("bat_", 15 + calls["n"] % 2), page_of(request)), {})

    server.route("GET", "/batches", growing)
    with connect_to(server.url, TOKEN) as client, pytest.raises(MangroveError, match="kept changing"):
        client.batches()
    assert [page_of(r) for r in server.requests] == [1, 2] * 3, [r.path for r in server.requests]


def test_runaway_pagination_stops_at_max_pages(server: PayloadServer) -> None:
    """A server whose next_page never ends: MalformedResponseError after max_pages pages."""

    def endless(request: Received) -> tuple[int, Any, dict[str, str]]:
        page = page_of(request)
        return (200, {"data": items(f"bat_p{page}_", 1), "info": {"current_page": page, "next_page": page + 1}}, {})

    server.route("GET", "/batches", endless)
    with connect_to(server.url, TOKEN, max_pages=5) as client, pytest.raises(MalformedResponseError, match="max_pages"):
        client.batches()
    assert len(server.requests) == 5


def test_a_reported_page_count_beyond_max_pages_raises_at_once(server: PayloadServer) -> None:
    """A consistent info block announcing more pages than max_pages raises after page 1."""
    info = {"page_size": 1, "total_items": 10_000, "total_pages": 10_000, "current_page": 1, "next_page": 2}
    server.route("GET", "/batches", (200, {"data": items("bat_", 1), "info": info}, {}))
    with connect_to(server.url, TOKEN, max_pages=50) as client, pytest.raises(MalformedResponseError, match="10000"):
        client.batches()
    assert len(server.requests) == 1


def test_concurrent_pages_are_bounded(server: PayloadServer) -> None:
    """Once total_pages is known, pages are fetched concurrently, never more than max_concurrent_pages at once."""
    data = items("bat_", 100)
    lock, in_flight, peak = threading.Lock(), [0], [0]

    def slow_page(request: Received) -> tuple[int, Any, dict[str, str]]:
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        time.sleep(0.05)
        with lock:
            in_flight[0] -= 1
        return (200, paged(data, page_of(request)), {})

    server.route("GET", "/batches", slow_page)
    with connect_to(server.url, TOKEN, max_concurrent_pages=3) as client:
        listed = client.batches()
    assert sorted(listed["id"]) == [d["id"] for d in data]
    assert 2 <= peak[0] <= 3


def test_a_failed_page_stops_the_prefetch(server: PayloadServer) -> None:
    """Page 3 of 20 is a 404 (not retried): the listing raises it, and pages not yet started are never asked."""
    data = items("bat_", 200)
    server.route("GET", "/batches", lambda request: (200, paged(data, page_of(request)), {}))
    server.route("GET", "/batches?page=3", (404, {"message": "Record not found."}, {}))
    with connect_to(server.url, TOKEN, max_concurrent_pages=2) as client, pytest.raises(NotFoundError):
        client.batches()
    asked = [page_of(r) for r in server.received("GET", "/batches")]
    assert 3 in asked and len(asked) <= 6, asked


def test_a_listing_read_with_a_digest_keeps_only_the_digests(server: PayloadServer) -> None:
    data = items("bat_", 25)
    server.route("GET", "/batches", lambda request: (200, paged(data, page_of(request)), {}))
    with connect_to(server.url, TOKEN) as client:
        assert client.http.read_listing("/batches", {}, lambda page: [d["id"] for d in page]) == [
            [d["id"] for d in data[:10]], [d["id"] for d in data[10:20]], [d["id"] for d in data[20:]]]
        assert client.http.read_listing("/batches", {}, lambda page: None) is None


def test_a_page_the_fast_reader_declines_is_read_again_by_the_careful_one(server: PayloadServer) -> None:
    """A start time with a leading space (which the careful reader strips) on page 2: the listing is read a
    second time for the careful reader, and the frame is complete and right."""
    data = items("bat_", 25)
    data[12]["start_time"] = " " + data[12]["start_time"]
    server.route("GET", "/batches", lambda request: (200, paged(data, page_of(request)), {}))
    with connect_to(server.url, TOKEN) as client:
        listed = client.batches()
    assert sorted(listed["id"]) == sorted(d["id"] for d in data)
    assert listed.set_index("id").loc["bat_012", "start_time"] == pd.Timestamp(data[12]["start_time"].strip())
    assert sorted(page_of(r) for r in server.received("GET", "/batches")) == [1, 1, 2, 2, 3, 3]


# --- deadlines -----------------------------------------------------------------------------------------------


def test_a_stalled_read_times_out_within_the_call_deadline(server: PayloadServer) -> None:
    """The server accepts and says nothing: APITimeoutError within the call deadline + 1 s."""
    server.route("GET", "/batches", stall(10))
    with connect_to(server.url, TOKEN, call_deadline=1.0, read_timeout=30) as client:
        started = time.monotonic()
        with pytest.raises(APITimeoutError):
            client.batches()
        assert time.monotonic() - started < 2.0


def test_a_dripping_answer_times_out_within_the_call_deadline(server: PayloadServer) -> None:
    """A valid answer trickling in at 200 bytes/s (about 2.5 s) must not outlast a 0.5 s call deadline: the
    call raises APITimeoutError within the deadline + 1 s."""
    body = {"data": [{"id": f"lgr_{n}", "name": "Net Carbon Removal", "unit": "t"} for n in range(8)]}
    server.route("GET", "/ledgers", drip(200, (200, body, {})))
    with connect_to(server.url, TOKEN, call_deadline=0.5) as client:
        started = time.monotonic()
        with pytest.raises(APITimeoutError):
            client.ledgers()
        assert time.monotonic() - started < 1.5


# --- Ctrl-C during wait --------------------------------------------------------------------------------------


def test_ctrl_c_stops_waiting_not_the_task_and_says_how_to_reattach(make_emulator: Callable[..., Emulator],
                                                                    capsys: pytest.CaptureFixture[str],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """KeyboardInterrupt while waiting propagates, stderr names client.task(<id>).wait(), the task finishes on
    the server, and re-attaching later returns its batches with exactly one generation."""
    emu = make_emulator(batch_seconds=0.1)
    with connect_to(emu.url, emu.token) as client:
        ledger = ncr_id(client)
        task = client.generate(ledger, "2025Q1")

        def interrupted(seconds: float) -> None:
            raise KeyboardInterrupt

        monkeypatch.setattr(task, "_sleep", interrupted)
        with pytest.raises(KeyboardInterrupt):
            task.wait(progress=False)
    err = capsys.readouterr().err
    assert f"Re-attach with {task.reattach}." in err and "period='2025Q1'" in task.reattach
    with connect_to(emu.url, emu.token) as later:
        made = later.task(task.id).wait()
        assert len(made) == 6
        assert len(later.batches(ledger, "2025Q1")) == 3
    assert emu.count("create-batch-generation") == 1


# --- the canary token sweep ----------------------------------------------------------------------------------


class Opaque:
    """Holds the canary so that no frame of ours shows it as a local (our frames are in the tracebacks too)."""

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "<opaque>"


def capture(call: Callable[[], object]) -> BaseException:
    try:
        call()
    except Exception as exc:  # what we came for
        return exc
    raise AssertionError("the call did not fail")


@dataclass
class Scene:
    """What the sweep inspects: the error, and the client and frames that were around when it happened."""

    error: BaseException
    clients: list[mnb.Client] = field(default_factory=list)
    frames: list[pd.DataFrame] = field(default_factory=list)


@dataclass
class Bench:
    token: Opaque
    make_emulator: Callable[..., Emulator]
    stack: ExitStack

    def emulator(self, **options: Any) -> Emulator:
        return self.make_emulator(**{"token": self.token.value, **options})

    def client(self, url: str, **options: Any) -> mnb.Client:
        return self.stack.enter_context(connect_to(url, self.token.value, **options))

    def server(self) -> PayloadServer:
        return self.stack.enter_context(PayloadServer())


def scene_401(bench: Bench) -> Scene:
    emu = bench.make_emulator()  # a different token: ours is wrong
    client = bench.client(emu.url)
    return Scene(capture(lambda: client.ledgers()), [client])


def scene_403(bench: Bench) -> Scene:
    emu = bench.make_emulator(read_only_tokens=(bench.token.value,))
    client = bench.client(emu.url)
    ledgers = client.ledgers()
    ledger = str(ledgers.set_index("name").loc[NCR, "id"])
    return Scene(capture(lambda: client.generate(ledger, "2025Q1")), [client], [ledgers])


def scene_404(bench: Bench) -> Scene:
    client = bench.client(bench.emulator().url)
    return Scene(capture(lambda: client.required_inputs("lgr_missing")), [client])


def scene_404_task(bench: Bench) -> Scene:
    client = bench.client(bench.emulator().url)
    return Scene(capture(lambda: client.task(424242).wait()), [client])


def scene_422(bench: Bench) -> Scene:
    client = bench.client(bench.emulator().url)
    ledger = ncr_id(client)
    preview = client.preview(ledger, "2025Q1")
    return Scene(capture(lambda: client.generate(ledger, "2025-01", skipped_data_point_type_ids=[999],
                                                 drop_existing_readings=True)), [client],
                 [preview])


def scene_400(bench: Bench) -> Scene:
    client = bench.client(bench.emulator().url, page_size=500)
    return Scene(capture(lambda: client.ledgers()), [client])


def scene_429(bench: Bench) -> Scene:
    emu = bench.emulator()
    client = bench.client(emu.url, rate_limit_max_wait=1)
    emu.faults.rate_limit_burst(1, reset_in=600)
    return Scene(capture(lambda: client.ledgers()), [client])


def scene_5xx(bench: Bench) -> Scene:
    emu = bench.emulator()
    client = bench.client(emu.url, max_retries=1)
    emu.faults.fail("list-all-ledgers", 503, 5)
    return Scene(capture(lambda: client.ledgers()), [client])


def scene_timeout(bench: Bench) -> Scene:
    server = bench.server()
    server.route("GET", "/ledgers", stall(5))
    client = bench.client(server.url, call_deadline=0.5)
    return Scene(capture(lambda: client.ledgers()), [client])


def scene_connection(bench: Bench) -> Scene:
    client = bench.client(f"http://127.0.0.1:{closed_port()}/api/v1", max_retries=1)
    return Scene(capture(lambda: client.ledgers()), [client])


def scene_dropped_get(bench: Bench) -> Scene:
    server = bench.server()
    server.route("GET", "/ledgers", DROP)
    client = bench.client(server.url, max_retries=0)
    return Scene(capture(lambda: client.ledgers()), [client])


def scene_malformed(bench: Bench) -> Scene:
    server = bench.server()
    server.route("GET", "/ledgers", (200, "<html><title>Login</title></html>", {"Content-Type": "text/html"}))
    client = bench.client(server.url)
    return Scene(capture(lambda: client.ledgers()), [client])


def scene_redirect(bench: Bench) -> Scene:
    server, elsewhere = bench.server(), bench.server()
    server.route("GET", "/ledgers", (302, "", {"Location": f"{elsewhere.url}/ledgers"}))
    client = bench.client(server.url)
    return Scene(capture(lambda: client.ledgers()), [client])


def scene_outcome_unknown_drop(bench: Bench) -> Scene:
    emu = bench.emulator()
    client = bench.client(emu.url)
    ledger = ncr_id(client)
    emu.faults.drop("create-batch-generation", 1)
    return Scene(capture(lambda: client.generate(ledger, "2025Q1")), [client])


def scene_outcome_unknown_502(bench: Bench) -> Scene:
    emu = bench.emulator()
    client = bench.client(emu.url)
    ledger = ncr_id(client)
    emu.faults.fail("create-batch-generation", 502, 1)
    return Scene(capture(lambda: client.generate(ledger, "2025Q1")), [client])


def scene_task_failed(bench: Bench) -> Scene:
    client = bench.client(bench.emulator().url)
    ledger = ncr_id(client)
    task = client.generate(ledger, "2025Q4")
    return Scene(capture(lambda: task.wait()), [client])


def scene_task_timeout(bench: Bench) -> Scene:
    client = bench.client(bench.emulator(batch_seconds=0.5).url)
    ledger = ncr_id(client)
    task = client.generate(ledger, "2025Q1")
    return Scene(capture(lambda: task.wait(timeout=0.1)), [client])


def scene_precondition(bench: Bench) -> Scene:
    client = bench.client(bench.emulator().url)
    ledgers = client.ledgers()
    ledger = str(ledgers.set_index("name").loc["Credits Issued", "id"])
    return Scene(capture(lambda: client.generate(ledger, "2025Q1")), [client], [ledgers, client.batches(ledger)])


def scene_configuration_env(bench: Bench) -> Scene:
    mp = bench.stack.enter_context(pytest.MonkeyPatch.context())
    mp.setenv("MANGROVE_API_TOKEN", bench.token.value)
    return Scene(capture(lambda: mnb.connect(base_url="http://example.com/api/v1")))


def scene_configuration_argument(bench: Bench) -> Scene:
    token = bench.token
    return Scene(capture(lambda: mnb.connect(token.value, "http://example.com/api/v1")))



SCENES = [
    pytest.param(scene_401, AuthenticationError, id="401-authentication"),
    pytest.param(scene_403, PermissionDeniedError, id="403-permission"),
    pytest.param(scene_404, NotFoundError, id="404-not-found"),
    pytest.param(scene_404_task, NotFoundError, id="404-task"),
    pytest.param(scene_422, ValidationError, id="422-validation"),
    pytest.param(scene_400, ValidationError, id="400-validation"),
    pytest.param(scene_429, RateLimitedError, id="429-rate-limited"),
    pytest.param(scene_5xx, ServerError, id="503-server"),
    pytest.param(scene_timeout, APITimeoutError, id="timeout"),
    pytest.param(scene_connection, APIConnectionError, id="connection-refused"),
    pytest.param(scene_dropped_get, APIConnectionError, id="connection-dropped"),
    pytest.param(scene_malformed, MalformedResponseError, id="malformed-html"),
    pytest.param(scene_redirect, MalformedResponseError, id="redirect-elsewhere"),
    pytest.param(scene_outcome_unknown_drop, GenerationOutcomeUnknownError, id="outcome-unknown-drop"),
    pytest.param(scene_outcome_unknown_502, GenerationOutcomeUnknownError, id="outcome-unknown-502"),
    pytest.param(scene_task_failed, TaskFailedError, id="task-failed"),
    pytest.param(scene_task_timeout, TaskTimeoutError, id="task-timeout"),
    pytest.param(scene_precondition, PreconditionError, id="precondition"),
    pytest.param(scene_configuration_env, ConfigurationError, id="configuration-env"),
    pytest.param(scene_configuration_argument, ConfigurationError, id="configuration-argument"),
]


def exception_chain(error: BaseException) -> list[BaseException]:
    """The error and everything reachable through __cause__ and __context__ (suppressed or not)."""
    seen: list[BaseException] = []
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or any(current is known for known in seen):
            continue
        seen.append(current)
        pending += [current.__cause__, current.__context__]
    return seen


def places_the_token_could_hide(scene: Scene, records: list[logging.LogRecord]) -> dict[str, str]:
    """Every rendering the sweep checks, by name."""
    places: dict[str, str] = {}
    error = scene.error
    places["str"], places["repr"] = str(error), repr(error)
    places["format_exception"] = "".join(traceback.format_exception(error))
    places["traceback_with_locals"] = "".join(
        traceback.TracebackException.from_exception(error, capture_locals=True).format())
    for number, linked in enumerate(exception_chain(error)):
        places[f"chain[{number}] str/repr"] = f"{linked!s} {linked!r} {getattr(linked, '__notes__', '')}"
        places[f"chain[{number}] attributes"] = repr({k: v for k, v in vars(linked).items() if k != "__traceback__"})
        places[f"chain[{number}] traceback_with_locals"] = "".join(
            traceback.TracebackException.from_exception(linked, capture_locals=True).format(chain=False))
    for number, client in enumerate(scene.clients):
        places[f"client[{number}]"] = " ".join(
            [repr(client), client._repr_html_(), repr(client.settings), str(client.settings), repr(client.http)])
    for number, frame in enumerate(scene.frames):
        places[f"frame[{number}].attrs"] = repr(frame.attrs)
    logging_formatter = logging.Formatter()
    places["logs"] = "\n".join(
        f"{r.name} {r.getMessage()} {logging_formatter.formatException(r.exc_info) if r.exc_info else ''}"
        for r in records)
    return places


@pytest.mark.parametrize(("build", "expected"), SCENES)
def test_canary_token_never_appears(build: Callable[[Bench], Scene], expected: type[BaseException],
                                    make_emulator: Callable[..., Emulator],
                                    caplog: pytest.LogCaptureFixture) -> None:
    """Trigger each error with a unique token; the token is nowhere: messages, reprs, the whole exception
    chain (suppressed contexts included) and its tracebacks with locals, the client's reprs, frames' attrs,
    and DEBUG logs of mangrove_nb, urllib3 and requests."""
    caplog.set_level(logging.DEBUG)
    for name in ("mangrove_nb", "urllib3", "requests"):
        caplog.set_level(logging.DEBUG, logger=name)
    token = Opaque(f"canary-{uuid.uuid4()}")
    with ExitStack() as stack:
        scene = build(Bench(token, make_emulator, stack))
        assert isinstance(scene.error, expected), repr(scene.error)
        places = places_the_token_could_hide(scene, caplog.records)
    assert any(r.name.startswith("urllib3") for r in caplog.records) or not scene.clients
    leaks = sorted(name for name, text in places.items() if token.value in text)
    assert leaks == [], f"the token appears in: {', '.join(leaks)}"


def test_the_sweep_would_see_a_leak() -> None:
    """The sweep is not blind: a token held by a local, even in a suppressed __context__, is found."""
    token = Opaque(f"canary-{uuid.uuid4()}")

    def careless() -> None:
        kept = token.value  # noqa: F841 - the planted leak
        raise ValueError("inner")

    def hides_it() -> None:
        try:
            careless()
        except ValueError:
            raise MangroveError("outer") from None

    places = places_the_token_could_hide(Scene(capture(hides_it)), [])
    assert token.value not in places["traceback_with_locals"]  # suppressed: not in the usual rendering...
    assert token.value in places["chain[1] traceback_with_locals"]  # ...but still reachable, and found
