"""The exception tree (errors), error_from_response on every status and body shape, and parse_json (_responses)."""

from __future__ import annotations

import builtins
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from imports import imported_modules

from mangrove_nb import errors
from mangrove_nb._responses import error_from_response, parse_json, rate_limit_reset_at
from mangrove_nb.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    ConfigurationError,
    GenerationOutcomeUnknownError,
    MalformedResponseError,
    MangroveError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
    TaskError,
    TaskFailedError,
    TaskTimeoutError,
    TransportError,
    ValidationError,
)

DOCUMENTED = Path(__file__).parent / "fixtures" / "documented"
URL = "https://app.gomangrove.com/api/v1/ledgers/lgr_abc123def456"
ENVELOPE_404 = (DOCUMENTED / "error.envelope-404.json").read_bytes()
SIMPLE_404 = (DOCUMENTED / "error.simple-404.json").read_bytes()
ENVELOPE_422 = (DOCUMENTED / "submit-report.error-422.json").read_bytes()
HTML_PAGE = (
    b"""<!DOCTYPE html>
<html><head><title>502 Bad Gateway</title></head>
<body><h1>Bad Gateway</h1><p>The proxy server received an invalid response.</p>
"""
    + b"<p>filler</p>" * 500
    + b"</body></html>"
)
NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def from_response(status: int, body: bytes | str = b"", headers: dict[str, str] | None = None):
    return error_from_response(status, headers or {}, body, method="get", url=URL, now=NOW)


def test_every_error_is_a_mangrove_error_and_the_tree_is_as_drawn() -> None:
    expected_parents = {
        ConfigurationError: MangroveError,
        TransportError: MangroveError,
        APITimeoutError: TransportError,
        APIConnectionError: TransportError,
        APIStatusError: MangroveError,
        AuthenticationError: APIStatusError,
        PermissionDeniedError: APIStatusError,
        NotFoundError: APIStatusError,
        ValidationError: APIStatusError,
        RateLimitedError: APIStatusError,
        ServerError: APIStatusError,
        MalformedResponseError: MangroveError,
        TaskError: MangroveError,
        TaskFailedError: TaskError,
        TaskTimeoutError: TaskError,
        GenerationOutcomeUnknownError: MangroveError,
    }
    for cls, parent in expected_parents.items():
        assert cls.__bases__ == (parent,), cls
        assert cls.__name__ in errors.__doc__, f"{cls.__name__} missing from the drawn tree"


def test_outcome_unknown_is_not_a_transport_error_so_generic_retry_code_never_resends() -> None:
    assert not issubclass(GenerationOutcomeUnknownError, TransportError)


def test_no_builtin_name_is_shadowed() -> None:
    for name in errors.__all__:
        assert not hasattr(builtins, name), name


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, ValidationError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (409, APIStatusError),
        (422, ValidationError),
        (429, RateLimitedError),
        (500, ServerError),
        (502, ServerError),
        (503, ServerError),
        (504, ServerError),
    ],
)
def test_each_status_maps_to_its_class(status: int, cls: type[APIStatusError]) -> None:
    exc = from_response(status, ENVELOPE_404)
    assert type(exc) is cls
    assert exc.status_code == status
    assert exc.method == "GET"
    assert exc.url == URL
    assert f"HTTP {status}" in str(exc)


def test_envelope_shape_message_is_read() -> None:
    exc = from_response(404, ENVELOPE_404)
    assert exc.server_messages == ("record not found",)
    assert '"record not found"' in str(exc)


def test_simple_shape_message_is_read() -> None:
    exc = from_response(404, SIMPLE_404)
    assert exc.server_messages == ("Record not found.",)


def test_documented_422_envelope_gives_validation_error_with_the_servers_message() -> None:
    exc = from_response(422, ENVELOPE_422)
    assert isinstance(exc, ValidationError)
    assert exc.server_messages == ("Report does not meet submission requirements",)


def test_several_messages_and_both_shapes_in_one_body_are_all_kept_once() -> None:
    body = json.dumps({"message": "a", "errors": [{"message": "a"}, {"message": "b"}, "c"]})
    assert from_response(422, body).server_messages == ("a", "b", "c")


def test_rails_style_errors_object_is_tolerated() -> None:
    body = json.dumps({"errors": {"start_time": ["is invalid", "is required"]}})
    assert from_response(422, body).server_messages == ("start_time is invalid", "start_time is required")


@pytest.mark.parametrize(
    ("body", "note"),
    [
        (b"", "empty"),
        (b"   \n", "empty"),
        (b"Service Unavailable", "not JSON"),
        (b"[1, 2, 3]", "no explanation"),
        (b"42", "no explanation"),
        (b'"oops"', "no explanation"),
        (b"null", "no explanation"),
        (b'{"status": "error"}', "no explanation"),
        (b'{"errors": [{"code": 7}]}', "no explanation"),
    ],
)
def test_garbage_bodies_give_a_generic_message_naming_the_status(body: bytes, note: str) -> None:
    exc = from_response(503, body)
    assert isinstance(exc, ServerError)
    assert exc.server_messages == ()
    assert "HTTP 503 Service Unavailable" in str(exc)
    assert note in str(exc)


def test_html_error_page_is_named_and_never_quoted_whole() -> None:
    exc = from_response(502, HTML_PAGE)
    assert isinstance(exc, ServerError)
    assert "HTML page" in str(exc)
    assert "filler" not in str(exc)
    assert len(str(exc)) < 600


def test_messages_are_complete_sentences_with_advice() -> None:
    for status in (400, 401, 403, 404, 409, 422, 429, 500):
        message = str(from_response(status, ENVELOPE_404))
        assert message[0].isupper(), message
        assert message.endswith("."), message
    assert "MANGROVE_API_TOKEN" in str(from_response(401))
    assert "Production Accounting" in str(from_response(403))


def test_429_reads_ratelimit_reset_as_unix_time() -> None:
    exc = from_response(429, ENVELOPE_404, {"ratelimit-reset": str(int(NOW) + 42)})
    assert isinstance(exc, RateLimitedError)
    assert exc.retry_after == pytest.approx(42.0)
    assert exc.reset_at == datetime(2026, 1, 1, 0, 0, 42, tzinfo=UTC)
    assert exc.reset_at.tzinfo is not None
    assert "wait 42 s" in str(exc)
    assert "00:00:42 UTC" in str(exc)


def test_429_reset_in_the_past_means_no_wait() -> None:
    exc = from_response(429, b"", {"RateLimit-Reset": str(int(NOW) - 5)})
    assert exc.retry_after == 0.0


def test_429_small_reset_value_is_read_as_seconds_from_now() -> None:
    exc = from_response(429, b"", {"RateLimit-Reset": "30"})
    assert exc.retry_after == pytest.approx(30.0)
    assert exc.reset_at == datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC)


def test_429_without_headers_and_with_retry_after() -> None:
    bare = from_response(429)
    assert (bare.retry_after, bare.reset_at) == (None, None)
    assert "wait a minute" in str(bare)
    assert from_response(429, b"", {"Retry-After": "7"}).retry_after == 7.0
    assert from_response(429, b"", {"RateLimit-Reset": "soon"}).retry_after is None


def test_rate_limit_reset_at_is_none_without_the_header() -> None:
    assert rate_limit_reset_at({}, now=NOW) is None
    assert rate_limit_reset_at({"RateLimit-Reset": str(int(NOW))}, now=NOW) == datetime(2026, 1, 1, tzinfo=UTC)


def test_request_id_is_kept_and_shown() -> None:
    exc = from_response(500, b"", {"X-Request-Id": "req-123"})
    assert exc.request_id == "req-123"
    assert "req-123" in str(exc)


def test_no_header_ever_reaches_a_message() -> None:
    canary = "tok_canary_9f8e7d6c5b4a"
    headers = {"Authorization": f"Bearer {canary}", "Set-Cookie": canary, "RateLimit-Reset": "x"}
    for status in (400, 401, 403, 404, 422, 429, 500, 200):
        exc = error_from_response(status, headers, b"<html>", method="GET", url=URL, now=NOW)
        assert canary not in str(exc)
        assert canary not in repr(vars(exc))


def test_credentials_in_a_url_are_removed_from_messages() -> None:
    exc = error_from_response(404, {}, SIMPLE_404, method="GET", url="https://user:hunter2@example.com:8443/api/v1/x")
    assert "hunter2" not in str(exc)
    assert exc.url == "https://example.com:8443/api/v1/x"


def test_server_messages_are_cut_and_cleaned() -> None:
    body = json.dumps({"message": "line one\nline two\x00" + "x" * 5000})
    (message,) = from_response(422, body).server_messages
    assert "\n" not in message
    assert "\x00" not in message
    assert len(message) <= errors.SERVER_MESSAGE_CHARS


def test_success_status_is_a_malformed_response() -> None:
    exc = from_response(302, b"<html><title>Sign in</title></html>")
    assert isinstance(exc, MalformedResponseError)
    assert exc.status_code == 302
    assert exc.excerpt == "<title>Sign in</title>"


def test_parse_json_returns_the_document() -> None:
    assert parse_json(b"\xef\xbb\xbf[1]", method="GET", url=URL) == [1]  # a byte-order mark is tolerated
    assert parse_json(SIMPLE_404, method="GET", url=URL) == {"message": "Record not found."}
    assert parse_json('{"data": []}', method="GET", url=URL) == {"data": []}


def test_parse_json_names_json_nested_too_deeply() -> None:
    with pytest.raises(MalformedResponseError) as caught:
        parse_json(b"[" * 200_000, method="GET", url=URL)
    assert "nested too deeply" in str(caught.value)
    assert caught.value.__context__ is None


def test_parse_json_names_an_html_page_and_quotes_only_its_title() -> None:
    with pytest.raises(MalformedResponseError) as caught:
        parse_json(HTML_PAGE, method="get", url=URL, status_code=200)
    exc = caught.value
    assert "HTML page" in str(exc)
    assert "login page" in str(exc)
    assert exc.excerpt == "<title>502 Bad Gateway</title>"
    assert exc.status_code == 200
    # The JSON decoder's error would repeat the document; it must not ride along as the context.
    assert exc.__cause__ is None
    assert exc.__context__ is None


@pytest.mark.parametrize("body", [b"", b"  ", "not json at all", b"{'single': 'quotes'}", b"\xff\xfe\x00"])
def test_parse_json_rejects_non_json(body: bytes | str) -> None:
    with pytest.raises(MalformedResponseError) as caught:
        parse_json(body, method="GET", url=URL)
    assert URL in str(caught.value)
    assert str(caught.value).endswith(".")


def test_parse_json_excerpt_is_short() -> None:
    with pytest.raises(MalformedResponseError) as caught:
        parse_json("x" * 10_000, method="GET", url=URL)
    assert len(caught.value.excerpt) <= errors.EXCERPT_CHARS
    assert len(str(caught.value)) < 400


def test_transport_errors_say_what_to_do() -> None:
    timeout = APITimeoutError(method="get", url=URL, timeout=30)
    assert "timed out after 30 s" in str(timeout)
    connection = APIConnectionError(method="GET", url=URL, detail="Name or service not known")
    assert "Name or service not known" in str(connection)
    assert "MANGROVE_API_URL" in str(connection)


def test_task_errors_carry_the_task_id_and_the_servers_message() -> None:
    failed = TaskFailedError(task_id=456, error_message="Missing data for transport-distance")
    assert failed.task_id == 456
    assert "Missing data for transport-distance" in str(failed)
    assert "Task 456 failed" in str(failed)
    assert "no error message" in str(TaskFailedError(task_id=456, error_message=None))
    waited = TaskTimeoutError(task_id=456, timeout=60)
    assert "client.task(456).wait()" in str(waited)
    assert "after 60 s" in str(waited)


def test_outcome_unknown_names_ledger_period_and_how_to_check() -> None:
    exc = GenerationOutcomeUnknownError(
        ledger_id="lgr_abc123def456",
        start=datetime(2025, 1, 1, tzinfo=UTC),
        end="2025-03-31T23:59:59Z",
        detail="read timed out",
    )
    message = str(exc)
    assert "lgr_abc123def456" in message
    assert "2025-01-01T00:00:00Z" in message
    assert "2025-03-31T23:59:59Z" in message
    assert "not re-sent" in message
    assert "client.batches('lgr_abc123def456'" in message
    assert "client.reconcile('lgr_abc123def456', ('2025-01-01T00:00:00Z', '2025-03-31T23:59:59Z'))" in message
    assert (exc.start, exc.end) == ("2025-01-01T00:00:00Z", "2025-03-31T23:59:59Z")


def test_errors_module_imports_only_the_standard_library_the_secrets_and_the_text_cleaner() -> None:
    imported = imported_modules(errors)
    ours = {name for name in imported if name.startswith("mangrove_nb")}
    assert ours == {"mangrove_nb._secrets", "mangrove_nb._text"}, ours
    from mangrove_nb import _text

    assert {name for name in imported_modules(_text) if name.startswith("mangrove_nb")} == {"mangrove_nb._secrets"}
    assert {name.split(".")[0] for name in imported - ours} <= set(sys.stdlib_module_names) | {"__future__"}


@pytest.mark.parametrize("make", [
    lambda: error_from_response(404, {}, b'{"error": "Not found"}', method="GET", url=URL, now=NOW),
    lambda: error_from_response(429, {"Retry-After": "3"}, b"{}", method="GET", url=URL, now=NOW),
    lambda: error_from_response(503, {}, b"<html>", method="POST", url=URL, now=NOW),
    lambda: errors.TaskFailedError(task_id=4, error_message="boom"),
    lambda: errors.TaskTimeoutError(task_id=4, timeout=2.0, reattach="client.task(4, period='2025Q1').wait()"),
    lambda: errors.ReportPlanError(report_id="rpt_1", problems=["Batch bat_1 has no balance."], batch_ids=["bat_1"]),
    lambda: errors.SubmissionOutcomeUnknownError(report_id="rpt_1", detail="the connection dropped"),
    lambda: errors.GenerationOutcomeUnknownError(ledger_id="lgr_1", start="2025-01-01T00:00:00Z",
                                                 end="2025-03-31T23:59:59Z", detail="timeout"),
    lambda: errors.ValidationError("bad", argument="period"),
])
def test_an_error_unpickles_whole(make: Any) -> None:
    """Errors with keyword-only constructor arguments pickled but failed to unpickle (TypeError: missing keyword
    arguments): an error raised in a worker process (multiprocessing, joblib) could not reach the notebook."""
    import pickle

    error = make()
    error.add_note("a note")
    again = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    assert type(again) is type(error) and str(again) == str(error) and again.args == error.args
    assert vars(again) == vars(error) and again.__notes__ == ["a note"]
