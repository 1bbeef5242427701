"""The README's promises under attack from a hostile server (``hostile_server.py``): one trigger, no token,
typed errors, bounded retries. Every count is taken on the server's side."""

from __future__ import annotations

import _thread
import base64
import contextlib
import json
import logging
import threading
import traceback
import zlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import requests
from hostile_server import (
    LEDGER,
    HostileServer,
    answer,
    bad_chunks,
    bad_gzip,
    cut,
    echo_auth,
    rate_limited,
    redirect,
    stall,
)

import mangrove_nb as mnb

TOKEN = "mgv_hostile_canary_0123456789abcdef"
TRIGGER = f"/ledgers/{LEDGER}/batch_generations"
PREVIEW = f"/ledgers/{LEDGER}/generate_preview"
LEDGERS = {"data": [{"id": LEDGER, "name": "Hostile", "unit": "t", "latest_model": {"id": 1}}]}
ACCEPTED = {"id": 7, "state": "pending", "progress": 0}
# Few retries, short timeouts and a deadline: what "bounded" means against this server (its own settings, not FAST).
BOUNDED = {"max_retries": 2, "backoff_initial": 0.01, "backoff_max": 0.05, "read_timeout": 0.5,
           "call_deadline": 10.0, "show_progress": False}


def leaks(text: str) -> list[str]:
    """Which forms of the token ``text`` holds."""
    forms = {"raw": TOKEN, "percent": quote(TOKEN, safe=""), "base64": base64.b64encode(TOKEN.encode()).decode(),
             "header-base64": base64.b64encode(f"Bearer {TOKEN}".encode()).decode().rstrip("=")}
    return [name for name, form in forms.items() if form in text]


def everything_shown(error: BaseException) -> str:
    """What any front end could show of an error: message, args, repr, and a traceback with every local."""
    shown = traceback.TracebackException.from_exception(error, capture_locals=True)
    return "\n".join([str(error), repr(error.args), repr(error), "".join(shown.format())])


@pytest.fixture
def server() -> Iterator[HostileServer]:
    with HostileServer() as hostile:
        yield hostile


@pytest.fixture
def client(server: HostileServer) -> Iterator[mnb.Client]:
    with mnb.connect(TOKEN, server.url, **BOUNDED) as connected:
        yield connected


BODY_FAULTS = {
    "cut": lambda status, body: cut(status, body),
    "stalled": lambda status, body: stall(status, body, seconds=5),
    "bad-gzip": lambda status, body: bad_gzip(status),
    "bad-chunks": lambda status, body: bad_chunks(status),
}


# -- 1. faults inside a response body ---------------------------------------------------------------------------


@pytest.mark.parametrize("fault", BODY_FAULTS)
def test_a_body_fault_on_a_get_is_retried_and_then_succeeds(server: HostileServer, client: mnb.Client,
                                                            fault: str) -> None:
    server.on("GET", "/ledgers", BODY_FAULTS[fault](200, LEDGERS), answer(200, LEDGERS))
    assert client.ledgers()["id"].tolist() == [LEDGER]
    assert server.count("GET", "/ledgers") == 2


@pytest.mark.parametrize("fault", BODY_FAULTS)
def test_a_body_fault_that_persists_is_a_typed_transport_error_after_the_retries(
        server: HostileServer, client: mnb.Client, fault: str) -> None:
    server.on("GET", "/ledgers", BODY_FAULTS[fault](200, LEDGERS))
    with pytest.raises(mnb.TransportError) as caught:
        client.ledgers()
    assert server.count("GET", "/ledgers") == BOUNDED["max_retries"] + 1
    assert caught.value.__cause__ is None and caught.value.__context__ is None
    assert not leaks(everything_shown(caught.value))


@pytest.mark.parametrize("fault", BODY_FAULTS)
def test_a_body_fault_on_the_trigger_is_an_unknown_outcome_sent_once_and_remembered(
        server: HostileServer, client: mnb.Client, fault: str) -> None:
    server.on("POST", TRIGGER, BODY_FAULTS[fault](202, ACCEPTED))
    with pytest.raises(mnb.GenerationOutcomeUnknownError) as caught:
        client.generate(LEDGER, "2025Q1")
    assert server.count("POST", TRIGGER) == 1
    assert not leaks(everything_shown(caught.value))
    # The same client, and a new one for the same API (a re-run connect() cell), refuse to send it again.
    with pytest.raises(mnb.PreconditionError, match=r"unknown outcome.*client\.reconcile"):
        client.generate(LEDGER, "2025Q1")
    with mnb.connect(TOKEN, server.url, **BOUNDED) as again, pytest.raises(mnb.PreconditionError, match="reconcile"):
        again.generate(LEDGER, "2025-02")  # overlapping
    assert server.count("POST", TRIGGER) == 1


def test_reconcile_keeps_the_refusal_while_batches_are_missing_and_forcing_sends(
        server: HostileServer, client: mnb.Client) -> None:
    server.on("POST", TRIGGER, cut(202, ACCEPTED), answer(202, ACCEPTED))
    with pytest.raises(mnb.GenerationOutcomeUnknownError):
        client.generate(LEDGER, "2025Q1")
    found = client.reconcile(LEDGER, "2025Q1")
    assert not found.complete and found.unknown_outcomes and "reconcile again" in found.advice()
    with pytest.raises(mnb.PreconditionError, match="unknown outcome"):
        client.generate(LEDGER, "2025Q1")
    # Forced by the analyst: sent (once more, on purpose).
    client.generate(LEDGER, "2025Q1", even_if_outcome_unknown=True)
    assert server.count("POST", TRIGGER) == 2


@pytest.mark.parametrize("status", [500, 503, 520, 524])
def test_any_5xx_to_the_trigger_is_an_unknown_outcome(server: HostileServer, client: mnb.Client,
                                                      status: int) -> None:
    server.on("POST", TRIGGER, answer(status, "<html><title>A timeout occurred</title></html>"))
    with pytest.raises(mnb.GenerationOutcomeUnknownError, match=f"HTTP {status}"):
        client.generate(LEDGER, "2025Q1")
    with pytest.raises(mnb.PreconditionError, match="reconcile"):
        client.generate(LEDGER, "2025Q1")
    assert server.count("POST", TRIGGER) == 1


@pytest.mark.parametrize("spelling", ["http://localhost:{port}/api/v1", "HTTP://127.0.0.1:{port}/api/v1/",
                                      "http://LocalHost:{port}/api/v1//"])
def test_another_spelling_of_the_same_api_remembers_the_unknown_outcome(server: HostileServer,
                                                                       client: mnb.Client, spelling: str) -> None:
    server.on("POST", TRIGGER, cut(202, ACCEPTED))
    with pytest.raises(mnb.GenerationOutcomeUnknownError):
        client.generate(LEDGER, "2025Q1")
    with mnb.connect(TOKEN, spelling.format(port=server.port), **BOUNDED) as other, \
            pytest.raises(mnb.PreconditionError, match="reconcile"):
        other.generate(LEDGER, "2025Q1")
    assert server.count("POST", TRIGGER) == 1


def test_every_spelling_of_one_api_shares_one_record() -> None:
    from mangrove_nb._sent import api_key as _api_key

    same = ["http://localhost:8765/api/v1", "HTTP://127.0.0.1:8765/api/v1/", "http://[::1]:8765/api/v1",
            "http://LOCALHOST.:8765/api/v1", "http://127.0.0.2:8765/api/v1"]
    assert len({_api_key(url) for url in same}) == 1
    assert _api_key("https://App.GoMangrove.com/api/v1") == _api_key("https://app.gomangrove.com:443/api/v1/")
    assert _api_key("http://127.0.0.1:8765/api/v1") != _api_key("http://127.0.0.1:8766/api/v1")


def test_reconciling_part_of_the_period_does_not_settle_the_whole(server: HostileServer,
                                                                   client: mnb.Client) -> None:
    server.on("POST", TRIGGER, cut(202, ACCEPTED))
    with pytest.raises(mnb.GenerationOutcomeUnknownError):
        client.generate(LEDGER, "2025Q1")
    server.on("POST", PREVIEW, answer(200, {"data": [{"id": LEDGER, "name": "Hostile", "count": 0}]}))
    assert client.reconcile(LEDGER, "2025-01").complete  # January is done...
    server.on("POST", PREVIEW, answer(200, {"data": [{"id": LEDGER, "name": "Hostile", "count": 2}]}))
    with pytest.raises(mnb.PreconditionError, match="unknown outcome"):
        client.generate(LEDGER, "2025Q1")  # ...but the quarter's request is still unknown
    assert server.count("POST", TRIGGER) == 1


def test_reconcile_that_finds_nothing_missing_clears_the_unknown_outcome(server: HostileServer,
                                                                          client: mnb.Client) -> None:
    server.on("POST", TRIGGER, cut(202, ACCEPTED))
    with pytest.raises(mnb.GenerationOutcomeUnknownError):
        client.generate(LEDGER, "2025Q1")
    server.on("POST", PREVIEW, answer(200, {"data": [{"id": LEDGER, "name": "Hostile", "count": 0}]}))
    found = client.reconcile(LEDGER, "2025Q1")
    assert found.complete and not found.unknown_outcomes
    with pytest.raises(mnb.PreconditionError, match="Nothing to generate"):
        client.generate(LEDGER, "2025Q1")
    assert server.count("POST", TRIGGER) == 1


# -- 2. a second trigger ----------------------------------------------------------------------------------------


def test_a_303_to_the_task_is_the_accepted_generation_and_is_not_followed_by_a_second_post(
        server: HostileServer, client: mnb.Client) -> None:
    server.on("POST", TRIGGER, redirect(303, "/api/v1/async_tasks/77"))
    task = client.generate(LEDGER, "2025Q1")
    assert str(task.id) == "77"
    assert server.count("POST", TRIGGER) == 1
    assert server.count("GET", "/async_tasks/") == 0  # nothing followed; polling is the analyst's wait()


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_other_redirects_of_the_trigger_are_unknown_outcomes_never_followed(server: HostileServer,
                                                                           client: mnb.Client, status: int) -> None:
    server.on("POST", TRIGGER, redirect(status, f"/api/v1/ledgers/{LEDGER}/batch_generations_v2"))
    with pytest.raises(mnb.GenerationOutcomeUnknownError, match=f"HTTP {status}"):
        client.generate(LEDGER, "2025Q1")
    assert server.count("POST", "batch_generations") == 1


def test_a_303_that_names_no_task_is_an_unknown_outcome(server: HostileServer, client: mnb.Client) -> None:
    server.on("POST", TRIGGER, redirect(303, "/somewhere/else"))
    with pytest.raises(mnb.GenerationOutcomeUnknownError):
        client.generate(LEDGER, "2025Q1")
    assert server.count("POST", TRIGGER) == 1


@pytest.mark.parametrize("threads", [2, 8])
def test_racing_threads_on_one_client_send_one_trigger(server: HostileServer, client: mnb.Client,
                                                       threads: int) -> None:
    start = threading.Barrier(threads)
    outcomes: list[object] = []

    def go() -> None:
        start.wait()
        try:
            outcomes.append(client.generate(LEDGER, "2025Q1"))
        except mnb.MangroveError as exc:
            outcomes.append(exc)

    workers = [threading.Thread(target=go) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert server.count("POST", TRIGGER) == 1
    assert sum(isinstance(o, mnb.Task) for o in outcomes) == 1
    assert all(isinstance(o, mnb.Task | mnb.PreconditionError) for o in outcomes), outcomes


def test_racing_clients_of_one_api_in_one_process_send_one_trigger(server: HostileServer) -> None:
    clients = [mnb.connect(TOKEN, server.url, **BOUNDED) for _ in range(4)]
    start = threading.Barrier(len(clients))
    outcomes: list[object] = []

    def go(client: mnb.Client) -> None:
        start.wait()
        try:
            outcomes.append(client.generate(LEDGER, "2025Q1"))
        except mnb.MangroveError as exc:
            outcomes.append(exc)

    workers = [threading.Thread(target=go, args=(c,)) for c in clients]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    for client in clients:
        client.close()
    assert server.count("POST", TRIGGER) == 1 and sum(isinstance(o, mnb.Task) for o in outcomes) == 1


def test_ctrl_c_during_the_trigger_is_an_unknown_outcome_and_the_rerun_cell_sends_nothing(
        server: HostileServer, client: mnb.Client) -> None:
    server.on("POST", TRIGGER, stall(202, ACCEPTED, seconds=5, keep=0))
    # A read timeout far beyond the Ctrl-C, so that a slow machine cannot turn the test into a timeout test.
    with mnb.connect(TOKEN, server.url, **{**BOUNDED, "read_timeout": 5.0}) as patient:
        timer = threading.Timer(0.3, _thread.interrupt_main)
        timer.start()
        try:
            with pytest.raises(mnb.GenerationOutcomeUnknownError, match="interrupted") as caught:
                patient.generate(LEDGER, "2025Q1")
        finally:
            timer.cancel()
        assert not leaks(everything_shown(caught.value))
        with pytest.raises(mnb.PreconditionError, match="reconcile"):
            patient.generate(LEDGER, "2025Q1")  # the re-run cell
    assert server.count("POST", TRIGGER) == 1


def test_ctrl_c_during_a_get_leaves_no_token_in_the_traceback_locals(server: HostileServer,
                                                                     client: mnb.Client) -> None:
    server.on("GET", "/ledgers", stall(200, LEDGERS, seconds=5, keep=0))
    with mnb.connect(TOKEN, server.url, **{**BOUNDED, "read_timeout": 5.0}) as slow:
        timer = threading.Timer(0.3, _thread.interrupt_main)
        timer.start()
        try:
            with pytest.raises(KeyboardInterrupt) as caught:
                slow.ledgers()
        finally:
            timer.cancel()
    assert not leaks(everything_shown(caught.value))


# -- 3. the token shows ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "status"), [("GET", "/ledgers", 401), ("GET", "/ledgers", 500),
                                                       ("POST", PREVIEW, 422), ("POST", TRIGGER, 403)])
def test_a_server_that_echoes_the_token_into_its_error_never_gets_it_shown(
        server: HostileServer, client: mnb.Client, caplog: pytest.LogCaptureFixture, method: str, path: str,
        status: int) -> None:
    caplog.set_level(logging.DEBUG)
    server.on(method, path, echo_auth(status))
    with pytest.raises(mnb.MangroveError) as caught:
        client.ledgers() if method == "GET" else client.generate(LEDGER, "2025Q1")
    shown = everything_shown(caught.value)
    assert "[redacted]" in shown
    assert not leaks(shown), leaks(shown)
    assert not leaks(repr(getattr(caught.value, "server_messages", ())))
    assert not leaks(caplog.text)


def test_a_task_whose_error_message_echoes_the_token_never_gets_it_shown(server: HostileServer,
                                                                         client: mnb.Client) -> None:
    server.on("GET", "/async_tasks/9", answer(200, {"id": 9, "state": "failed", "progress": 100,
                                                    "error_message": f"Bad credentials Bearer {TOKEN}"}))
    with pytest.raises(mnb.TaskFailedError) as caught:
        client.task(9).wait()
    assert not leaks(everything_shown(caught.value)) and not leaks(str(caught.value.error_message))
    assert not leaks(repr(client.task(9).refresh()))


# -- 4. a proxy from the environment ----------------------------------------------------------------------------


@pytest.mark.parametrize("injected", [False, True])
def test_a_loopback_plain_http_api_never_goes_through_an_environment_proxy(
        server: HostileServer, monkeypatch: pytest.MonkeyPatch, injected: bool) -> None:
    with HostileServer() as proxy:
        origin = proxy.url.removesuffix("/api/v1")
        for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy"):
            monkeypatch.setenv(name, origin)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        session = requests.Session() if injected else None
        with mnb.connect(TOKEN, server.url, session=session, **BOUNDED) as client:
            client.ledgers()
        if session is not None:
            session.close()
        assert proxy.requests == []
        assert server.count("GET", "/ledgers") == 1


# -- 5. 429 storms ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reset_in", [0, -30])
def test_a_429_with_a_reset_now_or_past_is_counted_against_max_retries(server: HostileServer, client: mnb.Client,
                                                                       reset_in: int) -> None:
    server.on("GET", "/ledgers", rate_limited(reset_in))
    with pytest.raises(mnb.RateLimitedError):
        client.ledgers()
    assert server.count("GET", "/ledgers") == BOUNDED["max_retries"] + 1


@pytest.mark.parametrize("reset_in", [0, -30])
def test_a_429_storm_on_the_trigger_is_bounded_and_a_definite_refusal(server: HostileServer, client: mnb.Client,
                                                                      reset_in: int) -> None:
    server.on("POST", TRIGGER, rate_limited(reset_in))
    with pytest.raises(mnb.RateLimitedError):
        client.generate(LEDGER, "2025Q1")
    assert server.count("POST", TRIGGER) == BOUNDED["max_retries"] + 1
    server.on("POST", TRIGGER, answer(202, ACCEPTED))
    assert client.generate(LEDGER, "2025Q1").id == 7  # refused each time: nothing is of unknown outcome


def test_a_429_wait_is_never_shorter_than_the_backoff(server: HostileServer) -> None:
    from mangrove_nb.client import HttpClient
    from mangrove_nb.settings import Settings

    slept: list[float] = []
    settings = Settings.resolve(TOKEN, server.url, **{**BOUNDED, "backoff_initial": 0.5, "backoff_max": 4.0})
    server.on("GET", "/ledgers", rate_limited(-30))
    with HttpClient(settings, sleep=slept.append, jitter=lambda: 0.0) as http, pytest.raises(mnb.RateLimitedError):
        http.ledgers()
    assert slept == [0.25, 0.5]  # equal jitter at 0: half of 0.5 s, then half of 1 s


# -- what the attack of the first round found ---------------------------------------------------------------------


def raised(call: Any) -> BaseException:
    """What ``call()`` raised, caught in this frame, so its traceback holds no frame of the test (whose locals
    hold the token on purpose)."""
    try:
        call()
    except Exception as exc:
        return exc
    raise AssertionError("nothing was raised")


def _echo(status: int, text: str, headers: dict[str, str] | None = None) -> Any:
    return answer(status, {"errors": [{"message": text}]}, headers)


@pytest.mark.parametrize("form", ["lower-percent", "split-lines", "base64-offset-1", "base64-offset-2",
                                  "json-key", "json-escaped-slash"])
def test_every_encoding_of_an_echoed_token_is_redacted(server: HostileServer, client: mnb.Client,
                                                       form: str) -> None:
    raw = TOKEN.encode()
    bodies: dict[str, Any] = {
        "lower-percent": _echo(400, "token=" + quote(TOKEN + "/+", safe="").lower()),
        "split-lines": _echo(400, f"bad token {TOKEN[:9]}\n  {TOKEN[9:]}"),
        "base64-offset-1": _echo(400, "blob " + base64.b64encode(b"A: Bearer " + raw).decode()),
        "base64-offset-2": _echo(400, "blob " + base64.b64encode(b"Au: Bearer " + raw).decode()),
        "json-key": answer(400, {"errors": {TOKEN: ["is invalid"]}}),
        "json-escaped-slash": answer(400, '{"message": "' + TOKEN.replace("_", "\\/") + '"}'),
    }
    server.on("GET", "/ledgers", bodies[form])
    error = raised(client.ledgers)
    assert isinstance(error, mnb.MangroveError)
    shown = everything_shown(error) + repr(getattr(error, "server_messages", ""))
    assert TOKEN not in shown and not leaks(shown)
    for blob in (w for w in shown.split() if len(w) > 20):
        with contextlib.suppress(ValueError):
            assert TOKEN.encode() not in base64.b64decode(blob + "==", validate=False)


def test_a_short_token_is_redacted_as_a_whole_word(server: HostileServer) -> None:
    short = "k9#Qz!7"
    server.on("GET", "/ledgers", _echo(400, f"bad header Bearer {short}; k9#Qz!7x is another word"))
    with mnb.connect(short, server.url, **BOUNDED) as client, pytest.raises(mnb.ValidationError) as caught:
        client.ledgers()
    assert short + ";" not in str(caught.value) and "[redacted]" in str(caught.value)
    assert "k9#Qz!7x" in str(caught.value)


def test_echoes_in_headers_urls_and_data_fields_are_redacted(server: HostileServer, client: mnb.Client,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server.on("GET", "/ledgers", redirect(302, f"/api/v1/ledgers?echo={quote(TOKEN, safe='')}"),
              answer(200, {"data": [{"id": LEDGER, "name": f"echo {TOKEN}", "unit": "t"}]}))
    frame = client.ledgers()
    assert not leaks(frame.to_json(date_format="iso")) and "[redacted]" in frame.loc[0, "name"]
    assert not leaks(caplog.text)  # urllib3's DEBUG request lines included
    server.on("GET", "/ledgers", answer(500, {"message": "oops"}, {"X-Request-Id": TOKEN}))
    with pytest.raises(mnb.ServerError) as caught:
        client.ledgers()
    assert not leaks(everything_shown(caught.value)) and not leaks(str(caught.value.request_id))
    server.on("GET", "/ledgers", redirect(302, f"/api/v1/ledgers2?echo={TOKEN}"))
    server.on("GET", "/ledgers2", cut(200, LEDGERS))
    with pytest.raises(mnb.TransportError) as cut_short:
        client.ledgers()
    assert not leaks(cut_short.value.url) and not leaks(everything_shown(cut_short.value))


def test_a_payload_that_echoes_the_token_leaves_no_raw_copy_in_traceback_locals(server: HostileServer,
                                                                                client: mnb.Client) -> None:
    server.on("GET", "/ledgers", answer(200, {"data": [{"id": LEDGER, "name": 7, "created_at": f"x {TOKEN}"}]}))
    error = raised(client.ledgers)
    assert isinstance(error, mnb.MalformedResponseError) and not leaks(everything_shown(error))


def test_a_decompression_bomb_is_refused_without_reading_it_all(server: HostileServer, client: mnb.Client) -> None:
    from mangrove_nb._transport import MAX_BODY_BYTES

    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = packer.compress(b"\0" * (MAX_BODY_BYTES + 2**20)) + packer.flush()
    server.on("GET", "/ledgers", answer(200, bomb, {"Content-Encoding": "gzip", "Content-Type": "application/json"}))
    with pytest.raises(mnb.TransportError, match="grew past 64 MiB"):
        client.ledgers()


def test_a_restarted_kernel_remembers_the_unknown_outcome(server: HostileServer, tmp_path: Any) -> None:
    """The unknown outcome is written to the state file; a new Python process (a restarted kernel) reads it
    and refuses to send the trigger again. The file holds no token."""
    import json
    import os
    import subprocess
    import sys

    state = tmp_path / "state"
    env = {**os.environ, "MANGROVE_NB_STATE_DIR": str(state), "MANGROVE_API_TOKEN": TOKEN,
           "MANGROVE_API_URL": server.url}
    server.on("POST", TRIGGER, cut(202, ACCEPTED))
    script = (
        "import sys, mangrove_nb as mnb\n"
        "c = mnb.connect(show_progress=False, max_retries=0, read_timeout=2)\n"
        "try:\n    c.generate('lgr_h', '2025Q1')\n"
        "except mnb.GenerationOutcomeUnknownError:\n    print('unknown')\n"
        "except mnb.PreconditionError as e:\n    print('refused', 'reconcile' in str(e))\n"
    )
    first = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert first.stdout.strip() == "unknown", first.stderr[-2000:]
    recorded = (state / "unknown_outcomes.json").read_text()
    assert "lgr_h" in json.loads(recorded)[next(iter(json.loads(recorded)))][0]["ledger_id"]
    assert not leaks(recorded)
    second = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert second.stdout.strip() == "refused True", second.stderr[-2000:]
    assert server.count("POST", TRIGGER) == 1


def test_a_token_spelled_with_json_unicode_escapes_is_redacted_in_the_data(server: HostileServer,
                                                                           client: mnb.Client) -> None:
    escaped = TOKEN[:-1] + f"\\u{ord(TOKEN[-1]):04x}"
    body = json.dumps({"data": [{"id": LEDGER, "name": "Ledger ESCAPED", "unit": "t"}]}).replace("ESCAPED", escaped)
    server.on("GET", "/ledgers", answer(200, body.encode(), {"Content-Type": "application/json"}))
    frame = client.ledgers()
    assert not leaks(frame.to_json(date_format="iso")) and frame.loc[0, "name"] == "Ledger [redacted]"


def test_a_credential_in_the_base_url_query_is_not_echoed() -> None:
    for url in ("https://api.example.com/api/v1?api_token=mgv_tok_canary_SECRET1234",
                "https://api.example.com/api/v1#mgv_tok_canary_SECRET1234"):
        with pytest.raises(mnb.ConfigurationError, match="must not have a query or fragment") as caught:
            mnb.connect("mgv_real_token_0123456789", url)
        assert "SECRET1234" not in str(caught.value)
