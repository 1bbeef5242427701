"""Issue 6's fault matrix: the items no earlier test proved, plus where each of the twelve is proven.

Item by item (R = tests/test_client_resilience.py, S = tests/test_client_documented_shapes.py,
E = tests/test_client_emulator.py, here = this module):

1. Never answers / drips below the read timeout -> timeout within deadline + 1 s.
   R test_a_stalled_read_times_out_within_the_call_deadline,
   R test_a_dripping_answer_times_out_within_the_call_deadline;
   here test_stall_and_drip_through_the_proxy (the emulator behind a real TCP proxy; the head-drip case is
   a library bug, now fixed).
2. Refused / reset / 502-503-504 k times then OK; backoff bounded and jittered.
   R test_transient_statuses_on_a_get_are_retried, test_transient_statuses_on_preview_are_retried,
   test_a_dropped_connection_on_a_get_is_retried, test_backoff_schedule_is_exponential_with_equal_jitter,
   test_backoff_is_bounded_by_backoff_max, test_retries_stop_at_the_call_deadline,
   test_trigger_that_never_reached_the_server_may_be_retried (refused, injected clock and jitter);
   here test_real_resets_on_a_get_are_retried (a real RST before reading, and after the emulator answered).
3. Reset after the trigger POST was sent -> outcome unknown, one POST, reconcile finds it.
   R test_lost_answer_to_the_trigger_is_outcome_unknown_and_reconcile_shows_the_truth (emulator drop),
   R test_trigger_read_timeout_is_outcome_unknown_and_sent_once;
   here test_tcp_reset_after_the_trigger_was_forwarded (a real TCP RST after the emulator committed).
4. 429 near and far. R test_429_with_a_near_reset_waits_and_succeeds,
   R test_429_with_a_far_reset_raises_with_the_wait,
   R test_requests_are_spread_as_the_rate_limit_budget_runs_out; tests/test_errors.py (Reset parsing).
5. 401 mid-session, 403 on generate -> typed, one attempt.
   E test_wrong_token_is_authentication_error_with_the_server_message,
   E test_read_only_token_gets_permission_denied_on_generate;
   here test_401_mid_session_and_403_on_generate_are_tried_once (after successful calls; counts attempts).
6. Malformed bodies -> typed errors. S test_non_json_or_undocumented_success_bodies_are_malformed,
   S test_html_error_page_keeps_the_status_type_and_says_it_was_html,
   S test_batch_without_start_time_names_the_field, S test_task_body_with_unknown_state_is_malformed;
   tests/test_errors.py (parse_json, garbage bodies); tests/test_emulator_fuzz.py fuzzes the emulator only;
   here test_generated_bodies_never_give_an_untyped_exception (hypothesis bodies into the client) and
   test_unhashable_ids_or_totals_are_a_malformed_response (the library bug it found, fixed).
7. Pagination. R test_a_503_on_page_k_is_retried_without_losing_or_duplicating,
   R test_a_503_in_the_middle_of_an_emulator_listing,
   R test_batches_generated_while_listing_cause_a_reread_without_duplicates,
   R test_runaway_pagination_stops_at_max_pages, S test_next_page_that_does_not_advance_is_malformed.
8. Task lifecycle. E test_wait_timeout_names_the_task_and_the_task_goes_on (stuck -> timeout with the id),
   E test_task_failure_carries_the_server_message_and_skipping_fixes_it;
   here test_task_progress_is_clamped_and_a_vanished_task_is_a_task_error (backwards, > 100, < 0, 404).
9. Interrupt during wait. R test_ctrl_c_stops_waiting_not_the_task_and_says_how_to_reattach,
   tests/test_forms.py test_stop_waiting_leaves_the_task_running_and_says_how_to_reattach;
   here test_killed_waiting_process_and_a_new_one_reattaches (SIGKILL, re-attach by id, one generation).
10. Canary token. R test_canary_token_never_appears (+ test_the_sweep_would_see_a_leak),
    tests/test_forms.py test_no_widget_state_holds_the_token,
    tests/test_reports.py test_neither_file_contains_the_token,
    E test_frames_carry_provenance_without_the_token.
11. Hostile strings. tests/test_forms.py test_hostile_api_text_never_reaches_html_unescaped,
    tests/test_reports.py test_hostile_ledger_names_appear_only_escaped,
    tests/test_plots.py test_api_text_is_drawn_literally_never_as_mathtext,
    tests/test_emulator_http.py test_create_ledger_keeps_hostile_names_as_data.
12. 50 clients -> descriptors flat. here test_fifty_clients_leave_descriptors_flat; the whole suite runs with
    -W error::ResourceWarning (pyproject's filterwarnings).
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fault_proxy import FaultProxy
from helpers import connect_to
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from payload_server import PayloadServer

import mangrove_nb as mnb
from mangrove_nb.emulator import Emulator
from mangrove_nb.errors import (
    APITimeoutError,
    AuthenticationError,
    GenerationOutcomeUnknownError,
    MalformedResponseError,
    MangroveError,
    PermissionDeniedError,
    TaskError,
)

NCR = "Net Carbon Removal"
TOKEN = "matrix-token-0000-91ab"


def ledger_named(client: mnb.Client, name: str) -> str:
    return str(client.ledgers().set_index("name").loc[name, "id"])


@pytest.fixture
def proxied(emulator: Emulator) -> Iterator[FaultProxy]:
    with FaultProxy(emulator.url) as proxy:
        yield proxy


# --- items 1-3 through a real TCP proxy ----------------------------------------------------------------------


def test_proxy_passes_requests_through_unchanged(emulator: Emulator, proxied: FaultProxy) -> None:
    """The proxy itself is transparent: without faults the client reads the same data."""
    with connect_to(proxied.url, emulator.token) as client:
        assert len(client.ledgers()) == 5
    assert [s[2] for s in proxied.seen] == ["passed"]


@pytest.mark.parametrize("fault", ["refuse", "reset"])
def test_real_resets_on_a_get_are_retried(emulator: Emulator, proxied: FaultProxy, fault: str) -> None:
    """Two RSTs (before reading the request, or after the emulator answered it), then OK: the data after 3
    attempts; the emulator saw 1 (refused) or 3 (reset after forwarding) calls."""
    if fault == "refuse":
        proxied.refuse(2)
    else:
        proxied.reset("GET", "/ledgers", 2)
    with connect_to(proxied.url, emulator.token, max_retries=3) as client:
        assert len(client.ledgers()) == 5
    assert len(proxied.seen) == 3
    assert emulator.count("list-all-ledgers") == (1 if fault == "refuse" else 3)


def test_tcp_reset_after_the_trigger_was_forwarded(emulator: Emulator, proxied: FaultProxy) -> None:
    """The emulator receives and commits the trigger POST, the client's connection is reset: outcome unknown,
    exactly one POST received, and reconcile() finds the batches the server made."""
    with connect_to(emulator.url, emulator.token) as direct:
        ledger = ledger_named(direct, NCR)
    proxied.reset("POST", "/batch_generations")
    with connect_to(proxied.url, emulator.token, max_retries=3) as client:
        with pytest.raises(GenerationOutcomeUnknownError) as caught:
            client.generate(ledger, "2025Q1")
        assert caught.value.ledger_id == ledger
        assert [s[2] for s in proxied.received("POST", "/batch_generations")] == ["reset"]
        assert emulator.count("create-batch-generation") == 1
        deadline = time.monotonic() + 15
        while not (state := client.reconcile(ledger, "2025Q1")).complete:
            assert time.monotonic() < deadline, state
            time.sleep(0.05)
        assert len(state.batches) == 3
    assert emulator.count("create-batch-generation") == 1


# drip-head was a library bug, fixed: the call deadline was checked only while the body was read, so a status line
# and headers dripping faster than read_timeout per byte outlasted call_deadline (about 6 s here).
@pytest.mark.parametrize("fault", ["stall", "drip", "drip-head"])
def test_stall_and_drip_through_the_proxy(emulator: Emulator, proxied: FaultProxy, fault: str) -> None:
    """A stalled or dripping answer (the emulator did answer) times out within the call's deadline + 1 s, and
    the same client works afterwards."""
    if fault == "stall":
        proxied.stall("GET", "/ledgers", 30, count=10)
    else:
        proxied.drip("GET", "/ledgers", 40 if fault == "drip-head" else 20, count=10, head=fault == "drip-head")
    with connect_to(proxied.url, emulator.token, read_timeout=0.3, call_deadline=1.5, max_retries=5) as client:
        started = time.monotonic()
        with pytest.raises(APITimeoutError):
            client.ledgers()
        assert time.monotonic() - started < 1.5 + 1.0
        proxied.close()  # ends the stalled connections
    with connect_to(emulator.url, emulator.token) as usable:
        assert len(usable.ledgers()) == 5


# --- item 5 --------------------------------------------------------------------------------------------------


def test_401_mid_session_and_403_on_generate_are_tried_once(emulator: Emulator) -> None:
    with connect_to(emulator.url, emulator.token) as client:
        ledger = ledger_named(client, NCR)
        before = emulator.count("retrieve-ledger")
        emulator.faults.fail("retrieve-ledger", 401, 3)
        with pytest.raises(AuthenticationError):
            client.generate(ledger, "2025Q1")
        assert emulator.count("retrieve-ledger") == before + 1
        emulator.faults.clear()
        emulator.faults.fail("create-batch-generation", 403, 3)
        with pytest.raises(PermissionDeniedError):
            client.generate(ledger, "2025Q1")
        assert emulator.count("create-batch-generation") == 1
        assert client.reconcile(ledger, "2025Q1").batches.empty


# --- item 6: generated bodies ---------------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=15,
)
FIELDS = ["id", "name", "state", "progress", "start_time", "end_time", "created_at", "started_at", "finished_at",
          "amount", "count", "ledger_id", "data", "info", "next_page", "total_items", "latest_model"]
SHAPED = st.fixed_dictionaries({}, optional={
    "data": st.lists(st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=8), max_size=3),
    "info": st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=5),
}) | st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=9)
BODIES = SHAPED | JSON.map(lambda v: json.dumps(v, allow_nan=True)) | st.binary(max_size=40)
STATUSES = st.sampled_from([200, 200, 200, 201, 202, 400, 404, 409, 422, 500])

CALLS: dict[str, Callable[[mnb.Client], Any]] = {
    "ledgers": lambda c: c.ledgers(),
    "batches": lambda c: c.batches("lgr_1"),
    "all-batches": lambda c: c.batches(),
    "preview": lambda c: c.preview("lgr_1", "2025Q1"),
    "required-inputs": lambda c: c.required_inputs("lgr_1"),
    "task": lambda c: c.task(7, ledgers=["lgr_1"]).refresh(),
    "events": lambda c: c.events(1),
}


def test_generated_bodies_never_give_an_untyped_exception() -> None:
    """Any status and body on any read: a result or a MangroveError, never anything else (this run found the
    unhashable ids and totals replayed below, since fixed)."""
    current: dict[str, Any] = {}

    def answer(_request: Any) -> Any:
        return current["answer"]

    with PayloadServer() as server, connect_to(server.url, TOKEN, max_retries=0) as client:
        for method, path in [("GET", "/ledgers"), ("GET", "/ledgers/lgr_1/batches"), ("GET", "/batches"),
                             ("POST", "/ledgers/lgr_1/generate_preview"), ("GET", "/ledgers/lgr_1/required_inputs"),
                             ("GET", "/async_tasks/7"), ("GET", "/projects/1/events")]:
            server.route(method, path, answer)

        @settings(max_examples=120, deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
        @given(call=st.sampled_from(sorted(CALLS)), status=STATUSES, body=BODIES)
        def check(call: str, status: int, body: Any) -> None:
            current["answer"] = (status, body, {})
            with contextlib.suppress(MangroveError):
                CALLS[call](client)

        check()


def test_unhashable_ids_or_totals_are_a_malformed_response() -> None:
    """Fixed: the client hashed item ids and info.total_items, so a list there was a TypeError. An id that is
    a list is a MalformedResponseError; an unusable total is ignored (pagination follows next_page)."""
    with PayloadServer() as server, connect_to(server.url, TOKEN, max_retries=0) as client:
        # Twice: an item the fast column reader declines makes the client read the listing again for the
        # careful reader.
        server.route("GET", "/batches", (200, {"data": [{"id": []}]}, {}), (200, {"data": [{"id": []}]}, {}),
                     (200, {"data": [], "info": {"total_items": []}}, {}))
        with pytest.raises(MalformedResponseError, match="id is a list"):
            client.batches()
        assert client.batches().empty


# --- item 8 --------------------------------------------------------------------------------------------------


def task_body(state: str, progress: Any) -> dict[str, Any]:
    return {"id": 7, "state": state, "progress": progress, "progress_description": None,
            "started_at": "2025-04-01T12:00:00Z", "finished_at": None, "error_message": None}


def test_task_progress_is_clamped_and_a_vanished_task_is_a_task_error() -> None:
    with PayloadServer() as server, connect_to(server.url, TOKEN) as client:
        server.route("GET", "/async_tasks/7", (200, task_body("running", 50), {}),
                     (200, task_body("running", 30), {}), (200, task_body("running", 250), {}),
                     (200, task_body("running", -4), {}), (404, {"message": "Not found"}, {}))
        task = client.task(7, ledgers=["lgr_1"])
        assert [task.refresh().progress for _ in range(4)] == [50.0, 30.0, 100.0, 0.0]
        with pytest.raises(TaskError, match="7") as caught:
            task.refresh()
        assert "404" in str(caught.value) and caught.value.task_id == 7


# --- item 9: the waiting process killed outright ------------------------------------------------------------

WAITER = """
import sys, mangrove_nb as mnb
client = mnb.connect(base_url=sys.argv[1], show_progress=False, poll_min_interval=0.02, poll_interval=0.05,
                     poll_max_interval=0.1)
ledger = str(client.ledgers().set_index("name").loc[sys.argv[2], "id"])
task = client.generate(ledger, "2025Q1")
print(task.id, flush=True)
task.wait()
print("finished", flush=True)
"""


@pytest.mark.slow
def test_killed_waiting_process_and_a_new_one_reattaches(make_emulator: Callable[..., Emulator]) -> None:
    emu = make_emulator(batch_seconds=0.4)
    env = {**os.environ, "MANGROVE_API_TOKEN": emu.token}
    with subprocess.Popen([sys.executable, "-c", WAITER, emu.url, NCR], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=env) as waiter:
        try:
            assert waiter.stdout is not None
            task_id = waiter.stdout.readline().strip()
            assert task_id, waiter.stderr.read() if waiter.stderr else ""
            polled = emu.count("retrieve-async-task")
            deadline = time.monotonic() + 10
            while emu.count("retrieve-async-task") < polled + 2:  # it is waiting (polling) now
                assert time.monotonic() < deadline
                time.sleep(0.02)
        finally:
            waiter.send_signal(signal.SIGKILL)
            waiter.wait(10)
        assert waiter.returncode == -signal.SIGKILL
        assert "finished" not in (waiter.stdout.read() if waiter.stdout else "")
    with connect_to(emu.url, emu.token) as fresh:
        assert fresh.task(task_id).refresh().state != "complete"  # killed mid-generation
        made = fresh.task(task_id).wait()
        ledger = ledger_named(fresh, NCR)
        assert len(made) == 6 and len(fresh.batches(ledger, "2025Q1")) == 3
    assert emu.count("create-batch-generation") == 1


# --- item 12 -------------------------------------------------------------------------------------------------


def open_descriptors() -> int:
    gc.collect()
    return len(os.listdir("/proc/self/fd"))


LEDGER = {"id": "lgr_1", "name": "L", "unit": "t", "latest_model": None}


@pytest.fixture
def keep_alive() -> Iterator[PayloadServer]:
    """The emulator answers ``Connection: close``, so no pooled connection outlives a call there; this
    HTTP/1.1 server keeps them open, so a client that leaked its pool would show here."""
    with PayloadServer() as server:
        server.route("GET", "/ledgers", (200, {"data": [LEDGER]}, {}))
        yield server


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd (Linux)")
@pytest.mark.parametrize("target", ["emulator", "keep-alive"])
@pytest.mark.parametrize("closing", ["with-block", "close()", "dropped"])
def test_fifty_clients_leave_descriptors_flat(emulator: Emulator, keep_alive: PayloadServer, target: str,
                                              closing: str) -> None:
    """50 clients, each making calls (so each pooled a connection), then closed, or dropped without close()
    and garbage-collected: descriptors back to the start (a small allowance for server threads finishing).
    The peak shows the connections were really open meanwhile."""
    url, token = (emulator.url, emulator.token) if target == "emulator" else (keep_alive.url, TOKEN)
    with connect_to(url, token) as warm:  # imports, lazy pools, the servers' first threads
        warm.ledgers()
    before = open_descriptors()
    clients = []
    for _ in range(50):
        if closing == "with-block":
            with connect_to(url, token) as client:
                client.ledgers()
        else:
            client = connect_to(url, token)
            client.ledgers()
            clients.append(client)
    peak = len(os.listdir("/proc/self/fd"))
    if target == "keep-alive" and closing != "with-block":
        assert peak >= before + 50  # one pooled connection per live client (both ends are in this process)
    for client in clients:
        if closing == "close()":
            client.close()
    if closing == "dropped":  # never closed: collecting the clients must release their sockets, silently
        del client
        clients.clear()
        gc.collect()
    deadline = time.monotonic() + 5
    while (after := open_descriptors()) > before + 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert after <= before + 2, (before, peak, after)
