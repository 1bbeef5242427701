"""Tests of tests/contract.py, the checker every emulator exchange is held to.

The documented examples of the spec must pass it unchanged, and each kind of breach, made by mutating one of
those examples, must be reported.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from contract import ERROR_SCHEMA, RATE_LIMIT_HEADERS, Contract, ContractViolation, is_api_timestamp
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared"
HEADERS = {
    "Content-Type": "application/json; charset=utf-8",
    "RateLimit-Limit": "1000",
    "RateLimit-Remaining": "998",
    "RateLimit-Reset": "1767225600",
}
SAMPLE_IDS = {
    "ledger_id": "lgr_abc123def456",
    "batch_id": "bat_abc123def456",
    "project_id": "123",
    "event_id": "evt_DLnYvzbjSujNAvXE",
    "data_point_id": "in_kiIuaGIUqRxWUmTY",
    "model_id": "mdl_abc123def456",
    "modelrun_id": "1",
    "report_id": "rpt_abc123def456",
    "export_id": "exp_ABC123",
    "id": "456",
}
ENVELOPE = {"status": "error", "statusCode": 404, "errors": [{"message": "record not found"}]}
SIMPLE = {"message": "Record not found."}

# The six operations of the batch-generation cookbook.
WORKFLOW = {
    ("GET", "/ledgers"),
    ("GET", "/ledgers/{ledger_id}/required_inputs"),
    ("POST", "/ledgers/{ledger_id}/generate_preview"),
    ("POST", "/ledgers/{ledger_id}/batch_generations"),
    ("GET", "/async_tasks/{id}"),
    ("GET", "/ledgers/{ledger_id}/batches"),
}
# Operations on batches, ledgers and projects whose responses carry examples.
BATCHES_LEDGERS_PROJECTS = {
    ("GET", "/ledgers/{ledger_id}"),
    ("PATCH", "/ledgers/{ledger_id}"),
    ("POST", "/projects/{project_id}/ledgers"),
    ("PATCH", "/ledgers/{ledger_id}/batches/{id}/update_inputs"),
    ("GET", "/batches"),
    ("GET", "/batches/{batch_id}"),
    ("GET", "/projects/{project_id}"),
    ("GET", "/projects/{project_id}/events/{event_id}"),
    ("GET", "/projects/{project_id}/events/{event_id}/data_points/{data_point_id}"),
}

# Documented examples the checker rejects, by test id, with the reason; each runs as a strict xfail, so an
# entry that starts passing must be removed. None is needed: every response example in the spec passes.
# The examples the docs truncated pass as they stand: GET /projects/{project_id}'s `images[].url: http://....`
# and the event's `evidences[].url: XXXXXXX` are plain strings (no `format`); POST
# /projects/{project_id}/ledgers' 201 stops after `system_ledger_type`, but Ledger requires no field.
EXCLUDED_EXAMPLES: dict[str, str] = {}


def _documented_examples() -> Iterator[tuple[str, str, int, str, Any]]:
    """(method, template, status, example name, value) for every application/json response example.

    Walks the raw document, independently of the checker's own indexing, following a response `$ref` to
    #/components/responses/<name>.
    """
    document = Contract.load().document
    for template, item in document["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            for status, response in operation["responses"].items():
                if "$ref" in response:
                    prefix = "#/components/responses/"
                    assert response["$ref"].startswith(prefix), response["$ref"]
                    response = document["components"]["responses"][response["$ref"].removeprefix(prefix)]
                examples = response.get("content", {}).get("application/json", {}).get("examples", {})
                for name, example in examples.items():
                    assert "value" in example, f"{method} {template} {status} {name}: no inline value"
                    yield method.upper(), template, int(status), name, example["value"]


def _example_params() -> list[Any]:
    params = []
    for method, template, status, name, value in _documented_examples():
        test_id = f"{method} {template} {status} {name}"
        marks = (
            [pytest.mark.xfail(strict=True, reason=EXCLUDED_EXAMPLES[test_id])]
            if (test_id in EXCLUDED_EXAMPLES)
            else []
        )
        params.append(pytest.param(method, template, status, value, id=test_id, marks=marks))
    return params


def _example(method: str, template: str, status: int, name: str) -> Any:
    """A deep copy of one documented example, to mutate."""
    for found in _documented_examples():
        if found[:4] == (method, template, status, name):
            return copy.deepcopy(found[4])
    raise LookupError(f"no example {name!r} for {method} {template} {status}")


def _body(value: Any) -> bytes:
    return json.dumps(value).encode("utf-8")


def _concrete(template: str) -> str:
    """A request path for `template`, with a made-up ID in each templated segment."""
    return re.sub(r"\{(\w+)\}", lambda match: SAMPLE_IDS[match[1]], template)


# -- the documented examples ------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "template", "status", "value"), _example_params())
def test_documented_example_validates(
    contract: Contract, method: str, template: str, status: int, value: Any
) -> None:
    contract.check(method, "/api/v1" + _concrete(template), status, HEADERS, _body(value))


def test_examples_cover_the_workflow_and_batches_ledgers_projects() -> None:
    walked = {(method, template) for method, template, *_ in _documented_examples()}
    assert not WORKFLOW - walked, "no example walked for these operations"
    assert not BATCHES_LEDGERS_PROJECTS - walked, "no example walked for these operations"
    # Both 404 shapes come through the components/responses $ref of each workflow operation.
    not_found = {
        (method, template, name)
        for method, template, status, name, _ in _documented_examples()
        if status == 404 and (method, template) in WORKFLOW
    }
    assert len(not_found) == 2 * len(WORKFLOW)


def test_every_component_schema_is_valid_draft_2020_12(contract: Contract) -> None:
    for name, schema in contract.document["components"]["schemas"].items():
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as error:  # name the schema, not just the metaschema's complaint
            pytest.fail(f"components/schemas/{name} is not a Draft 2020-12 schema: {error}")


# -- bodies -----------------------------------------------------------------------------------------------

PREVIEW = ("POST", "/ledgers/{ledger_id}/generate_preview", 200, "Result")
LEDGER = ("GET", "/ledgers/{ledger_id}", 200, "Result")


def test_wrong_type_fails(contract: Contract) -> None:
    body = _example(*PREVIEW)
    body["data"][0]["count"] = "3"
    problems = contract.problems("POST", "/ledgers/lgr_1/generate_preview", 200, HEADERS, _body(body))
    assert problems == ["body at $.data[0].count: '3' is not of type 'integer'"]


def test_missing_required_field_fails(contract: Contract) -> None:
    body = _example(*PREVIEW)
    del body["data"][0]["id"]
    problems = contract.problems("POST", "/ledgers/lgr_1/generate_preview", 200, HEADERS, _body(body))
    assert problems == ["body at $.data[0]: 'id' is a required property"]


@pytest.mark.parametrize(
    "timestamp",
    [
        "2025-01-01 00:00:00",  # no T, no zone
        "2025-01-15T10:00:00Z",  # no milliseconds (fine in requests, not in responses)
        "2025-01-15T10:00:00.000+00:00",  # offset instead of Z
        "2025-01-15T10:00:00.000000Z",  # microseconds
        "2025-01-15t10:00:00.000z",  # lower case
        "2025-02-30T10:00:00.000Z",  # no such day
        "2025-01-15T24:00:00.000Z",  # no such hour
    ],
)
def test_bad_timestamp_fails(contract: Contract, timestamp: str) -> None:
    body = _example(*LEDGER)
    body["created_at"] = timestamp
    problems = contract.problems("GET", "/ledgers/lgr_1", 200, HEADERS, _body(body))
    assert len(problems) == 1
    assert problems[0].startswith(f"body at $.created_at: {timestamp!r} is not a 'date-time'")
    assert not is_api_timestamp(timestamp)


def test_null_timestamp_passes_where_nullable(contract: Contract) -> None:
    body = _example("GET", "/async_tasks/{id}", 200, "In progress")
    assert body["finished_at"] is None
    body["started_at"] = None
    assert contract.problems("GET", "/async_tasks/456", 200, HEADERS, _body(body)) == []
    body["started_at"] = "2025-04-01T12:00:01Z"
    assert len(contract.problems("GET", "/async_tasks/456", 200, HEADERS, _body(body))) == 1


def test_not_json_fails(contract: Contract) -> None:
    for body in (b"<html>Not Found</html>", b"", b'{"count": NaN}', b"\xff\xfe"):
        problems = contract.problems("GET", "/ledgers/lgr_1", 200, HEADERS, body)
        assert len(problems) == 1, body
        assert problems[0].startswith("body is not valid JSON where JSON is expected"), body


def test_json_body_needs_json_content_type(contract: Contract) -> None:
    body = _body(_example(*LEDGER))
    for content_type in ("text/html", None):
        headers = {name: value for name, value in HEADERS.items() if name != "Content-Type"}
        if content_type:
            headers["Content-Type"] = content_type
        problems = contract.problems("GET", "/ledgers/lgr_1", 200, headers, body)
        assert problems == [f"Content-Type is {content_type!r}, expected application/json for a JSON body"]


def test_204_must_be_empty(contract: Contract) -> None:
    headers = {name: value for name, value in HEADERS.items() if name != "Content-Type"}
    assert contract.problems("DELETE", "/batches/bat_1", 204, headers, b"") == []
    problems = contract.problems("DELETE", "/batches/bat_1", 204, headers, b"{}")
    assert problems == ["a 204 response must have an empty body, got 2 bytes"]


# -- statuses ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/ledgers/lgr_1", 418),  # an error status outside the global table
        ("POST", "/ledgers/lgr_1/batch_generations", 200),  # the trigger documents 202 only
        ("GET", "/ledgers", 201),  # a success status the operation does not document
        ("GET", "/ledgers/lgr_1", 302),
    ],
)
def test_undocumented_status_fails(contract: Contract, method: str, path: str, status: int) -> None:
    problems = contract.problems(method, path, status, HEADERS, _body(_example(*LEDGER)))
    assert len(problems) == 1
    assert f"status {status} is an undocumented status for {method} " in problems[0]


def test_500_passes_only_as_an_error_body(contract: Contract) -> None:
    # 500 is in the global table: allowed with an error body (deliberate faults are the caller's concern),
    # but never with the operation's success body.
    assert contract.problems("GET", "/ledgers/lgr_1", 500, HEADERS, _body(ENVELOPE)) == []
    problems = contract.problems("GET", "/ledgers/lgr_1", 500, HEADERS, _body(_example(*LEDGER)))
    assert len(problems) == 1
    assert problems[0].startswith("body at $: ")
    assert "is not valid under any of the given schemas" in problems[0]


@pytest.mark.parametrize("body", [ENVELOPE, SIMPLE], ids=["envelope", "simple"])
def test_404_on_a_ledger_accepts_both_documented_shapes(contract: Contract, body: Any) -> None:
    assert contract.problems("GET", "/ledgers/lgr_missing", 404, HEADERS, _body(body)) == []


@pytest.mark.parametrize("body", [{}, {"oops": 1}, {"message": 404}, {"status": "error", "errors": []}])
def test_404_on_a_ledger_rejects_other_shapes(contract: Contract, body: Any) -> None:
    # The operation documents the lax AnyError (no required key); the checker also demands Error.
    problems = contract.problems("GET", "/ledgers/lgr_missing", 404, HEADERS, _body(body))
    assert len(problems) == 1
    suffix = f"(every error body must take one of the two documented shapes, #{ERROR_SCHEMA})"
    assert problems[0].endswith(suffix)


def test_400_on_list_batches_comes_from_the_global_table(contract: Contract) -> None:
    assert contract.operation("GET", "/batches").response_for(400) is None
    envelope = {"status": "error", "statusCode": 400, "errors": [{"message": "bad filter"}]}
    assert contract.problems("GET", "/batches", 400, HEADERS, _body(envelope)) == []
    problems = contract.problems("GET", "/batches", 400, HEADERS, b'{"oops": 1}')
    assert len(problems) == 1
    assert problems[0].startswith("body at $: {'oops': 1} is not valid under any of the given schemas")


# -- headers ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("missing", RATE_LIMIT_HEADERS)
def test_missing_rate_limit_header_fails(contract: Contract, missing: str) -> None:
    headers = {name: value for name, value in HEADERS.items() if name != missing}
    problems = contract.problems("GET", "/ledgers/lgr_1", 200, headers, _body(_example(*LEDGER)))
    assert problems == [f"missing {missing} header (every response must carry it)"]


def test_rate_limit_headers_are_required_on_every_response(contract: Contract) -> None:
    no_headers: dict[str, str] = {}
    assert len(contract.problems("DELETE", "/batches/bat_1", 204, no_headers, b"")) == 3
    json_only = {"Content-Type": "application/json"}
    assert len(contract.problems("GET", "/ledgers/lgr_1", 404, json_only, _body(ENVELOPE))) == 3
    assert len(contract.problems("GET", "/nowhere", 404, no_headers, b"")) == 4


@pytest.mark.parametrize("value", ["-1", "1.5", "abc", "", "1e3", "0x10"])
def test_rate_limit_header_must_be_a_non_negative_integer(contract: Contract, value: str) -> None:
    headers = {**HEADERS, "RateLimit-Reset": value}
    problems = contract.problems("GET", "/ledgers/lgr_1", 200, headers, _body(_example(*LEDGER)))
    assert problems == [f"RateLimit-Reset header is {value!r}, expected a non-negative integer"]


def test_rate_limit_remaining_cannot_exceed_limit(contract: Contract) -> None:
    headers = {**HEADERS, "RateLimit-Remaining": "1001"}
    problems = contract.problems("GET", "/ledgers/lgr_1", 200, headers, _body(_example(*LEDGER)))
    assert problems == ["RateLimit-Remaining (1001) exceeds RateLimit-Limit (1000)"]
    headers = {**HEADERS, "RateLimit-Remaining": "0"}
    assert contract.problems("GET", "/ledgers/lgr_1", 429, headers, _body(ENVELOPE)) == []


def test_header_names_are_case_insensitive(contract: Contract) -> None:
    headers = {name.lower(): value for name, value in HEADERS.items()}
    assert contract.problems("GET", "/ledgers/lgr_1", 200, headers, _body(_example(*LEDGER))) == []


# -- routes -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/nowhere"),
        ("GET", "/api/v2/ledgers"),
        ("GET", "/ledgers/"),
        ("GET", "/ledgers/lgr_1/batches/bat_1"),
        ("GET", "/api/v1"),
        ("PUT", "/ledgers"),  # a known path, an undocumented method
        ("DELETE", "/ledgers/lgr_1"),
    ],
)
def test_unknown_route_is_not_in_the_contract(contract: Contract, method: str, path: str) -> None:
    assert contract.operation(method, path) is None
    problems = contract.problems(method, path, 200, HEADERS, b"{}")
    assert len(problems) == 1
    assert " is not in the contract: " in problems[0]


def test_api_prefix_is_optional(contract: Contract) -> None:
    bare = contract.operation("GET", "/ledgers/lgr_1/batches")
    prefixed = contract.operation("get", "/api/v1/ledgers/lgr_1/batches")
    assert bare is not None
    assert bare is prefixed
    assert bare.path == "/ledgers/{ledger_id}/batches"
    body = _body(_example("GET", "/ledgers/{ledger_id}/batches", 200, "Cookbook"))
    for path in ("/ledgers/x/batches", "/api/v1/ledgers/x/batches", "/api/v1/ledgers/x/batches?page=9"):
        assert contract.problems("GET", path, 200, HEADERS, body) == [], path


def test_path_templates_match_whole_segments(contract: Contract) -> None:
    def template(path: str) -> str | None:
        operation = contract.operation("GET", path)
        return operation.path if operation else None

    assert template("/ledgers/lgr_1") == "/ledgers/{ledger_id}"
    assert template("/ledgers/lgr_1/required_inputs") == "/ledgers/{ledger_id}/required_inputs"
    assert template("/ledgers/lgr_1/batches") == "/ledgers/{ledger_id}/batches"
    assert template("/batches/bat_1") == "/batches/{batch_id}"
    assert template("/models/mdl_1/schema") == "/models/{model_id}/schema"


def test_literal_segment_beats_templated_one() -> None:
    ok = {"responses": {"200": {"description": "ok"}}}
    spec = {
        "openapi": "3.1.0",
        "paths": {  # the templated path first, so document order cannot be what decides
            "/ledgers/{ledger_id}": {"get": ok},
            "/ledgers/summary": {"get": ok},
            "/ledgers/{ledger_id}/batches": {"get": ok},
        },
    }
    contract = Contract(spec)
    assert contract.operation("GET", "/ledgers/summary").path == "/ledgers/summary"
    assert contract.operation("GET", "/ledgers/lgr_1").path == "/ledgers/{ledger_id}"
    assert contract.operation("GET", "/ledgers/summary/batches").path == "/ledgers/{ledger_id}/batches"
    assert contract.operation("GET", "/ledgers/lgr_1/other") is None


# -- the helper itself ------------------------------------------------------------------------------------


def test_check_raises_with_every_problem_and_the_exchange(contract: Contract) -> None:
    body = _example(*PREVIEW)
    body["data"][0]["count"] = "3"
    headers = {name: value for name, value in HEADERS.items() if name != "RateLimit-Reset"}
    with pytest.raises(ContractViolation) as caught:
        contract.check("POST", "/api/v1/ledgers/lgr_1/generate_preview", 200, headers, _body(body))
    violation = caught.value
    assert isinstance(violation, AssertionError)
    assert violation.problems == [
        "body at $.data[0].count: '3' is not of type 'integer'",
        "missing RateLimit-Reset header (every response must carry it)",
    ]
    message = str(violation)
    assert message.startswith("POST /api/v1/ledgers/lgr_1/generate_preview -> 200 breaks the contract")
    assert all(problem in message for problem in violation.problems)
    assert '"count": "3"' in message  # the body excerpt


def test_check_is_silent_on_a_good_exchange(contract: Contract) -> None:
    contract.check("GET", "/ledgers/lgr_1", 200, HEADERS, _body(_example(*LEDGER)))


def test_load_parses_once_per_process() -> None:
    assert Contract.load() is Contract.load(REPO / "docs" / "contract" / "mangrove-openapi.yaml")


def test_yaml_timestamps_stay_strings(tmp_path: Path) -> None:
    # A plain YAML 1.1 loader turns an unquoted timestamp into a datetime, which no JSON body can carry.
    spec = tmp_path / "spec.yaml"
    spec.write_text("openapi: 3.1.0\npaths: {}\nx-when: 2025-01-15T10:00:00.000Z\nx-day: 2025-01-15\n")
    document = Contract.load(spec).document
    assert document["x-when"] == "2025-01-15T10:00:00.000Z"
    assert document["x-day"] == "2025-01-15"


def test_contract_copies_in_sync() -> None:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} does not exist: no shared contract to compare the repository's copies with")
    for name in ("mangrove-openapi.yaml", "mangrove-api.md"):
        ours = (REPO / "docs" / "contract" / name).read_bytes()
        assert ours == (SHARED / name).read_bytes(), f"docs/contract/{name} differs from {SHARED / name}"


def test_every_overlay_entry_still_changes_the_shared_yaml() -> None:
    """docs/contract/decisions-overlay.yaml holds mangrove-api.md decisions the yaml lacks; an entry the yaml
    already says is stale and should be deleted (this fails so that someone does)."""
    import yaml as yaml_module
    from contract import DEFAULT_SPEC_PATH, OVERLAY_NAME, apply_overlay, load_overlay

    document = yaml_module.safe_load(DEFAULT_SPEC_PATH.read_text(encoding="utf-8"))
    entries = load_overlay(DEFAULT_SPEC_PATH.with_name(OVERLAY_NAME))
    assert entries and apply_overlay(document, entries) == []
