"""frames: documented payloads -> typed DataFrames, checked against hand-written expected frames.

The fixtures in tests/fixtures/documented/ are verbatim copies of the examples in the contract
(docs/contract/mangrove-openapi.yaml); the first tests check that they still are.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imports import units_imported

from mangrove_nb import frames
from mangrove_nb.errors import MalformedResponseError
from mangrove_nb.frames import (
    BATCHES_SCHEMA,
    EVENTS_SCHEMA,
    LEDGERS_SCHEMA,
    PREVIEW_SCHEMA,
    REQUIRED_INPUTS_SCHEMA,
    batch_columns,
    batches_frame,
    batches_frame_of_columns,
    empty_frame,
    events_frame,
    ledgers_frame,
    preview_frame,
    required_inputs_frame,
)

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTED = Path(__file__).parent / "fixtures" / "documented"
CONTRACT = ROOT / "docs" / "contract" / "mangrove-openapi.yaml"
NA = pd.NA
NaT = pd.NaT

# fixture file -> where its example lives in the contract: (path, method, status, example name), or
# ("components", response name, example name) for shared error responses.
FIXTURE_SOURCES: dict[str, tuple[str, ...]] = {
    "list-all-ledgers.cookbook": ("/ledgers", "get", "200", "Cookbook"),
    "retrieve-ledger.result": ("/ledgers/{ledger_id}", "get", "200", "Result"),
    "update-ledger.result": ("/ledgers/{ledger_id}", "patch", "200", "Result"),
    "create-project-ledger.result-201": ("/projects/{project_id}/ledgers", "post", "201", "Result"),
    "ledger-required-inputs.cookbook": ("/ledgers/{ledger_id}/required_inputs", "get", "200", "Cookbook"),
    "generate-preview.result": ("/ledgers/{ledger_id}/generate_preview", "post", "200", "Result"),
    "create-batch-generation.cookbook-202": ("/ledgers/{ledger_id}/batch_generations", "post", "202", "Cookbook"),
    "retrieve-async-task.in-progress": ("/async_tasks/{id}", "get", "200", "In progress"),
    "retrieve-async-task.complete": ("/async_tasks/{id}", "get", "200", "Complete"),
    "list-all-ledger-batches.cookbook": ("/ledgers/{ledger_id}/batches", "get", "200", "Cookbook"),
    "list-all-batches.result": ("/batches", "get", "200", "Result"),
    "retrieve-batch.result": ("/batches/{batch_id}", "get", "200", "Result"),
    "update-batch-inputs.result": ("/ledgers/{ledger_id}/batches/{id}/update_inputs", "patch", "200", "Result"),
    "retrieve-event.result": ("/projects/{project_id}/events/{event_id}", "get", "200", "Result"),
    "submit-report.error-422": ("/reports/{report_id}/submit", "post", "422", "Result"),
    "error.envelope-404": ("components", "WorkflowNotFound", "Envelope (endpoint examples)"),
    "error.simple-404": ("components", "WorkflowNotFound", "Simple (status-codes page)"),
}


def documented(name: str) -> Any:
    return json.loads((DOCUMENTED / f"{name}.json").read_text())


def ts(text: str | None) -> pd.Timestamp:
    return NaT if text is None else pd.Timestamp(text)


def times(*texts: str | None) -> pd.Series:
    return pd.Series([ts(t) for t in texts], dtype="datetime64[ns, UTC]")


def strings(*values: str | None) -> pd.Series:
    return pd.Series([NA if v is None else v for v in values], dtype="string")


def floats(*values: float | None) -> pd.Series:
    return pd.Series([NA if v is None else v for v in values], dtype="Float64")


def ints(*values: int | None) -> pd.Series:
    return pd.Series([NA if v is None else v for v in values], dtype="Int64")


def flags(*values: bool | None) -> pd.Series:
    return pd.Series([NA if v is None else v for v in values], dtype="boolean")


def batch(**fields: Any) -> dict[str, Any]:
    item = {"id": "bat_1", "start_time": "2025-01-01T00:00:00.000Z"}
    item.update(fields)
    return item


# --- the fixtures are the contract's examples -------------------------------------------------------------


@pytest.fixture(scope="module")
def contract_document() -> dict[str, Any]:
    """The contract's OpenAPI document as YAML reads it (not through tests/contract.py's checker)."""
    return yaml.safe_load(CONTRACT.read_text())


@pytest.mark.parametrize("name", sorted(FIXTURE_SOURCES))
def test_fixture_is_a_verbatim_copy_of_the_contract_example(name: str,
                                                            contract_document: dict[str, Any]) -> None:
    source = FIXTURE_SOURCES[name]
    if source[0] == "components":
        _, response, example = source
        holder = contract_document["components"]["responses"][response]
    else:
        path, method, status, example = source
        holder = contract_document["paths"][path][method]["responses"][status]
    assert documented(name) == holder["content"]["application/json"]["examples"][example]["value"]


def test_every_fixture_file_has_a_known_source() -> None:
    assert sorted(p.stem for p in DOCUMENTED.glob("*.json")) == sorted(FIXTURE_SOURCES)


# --- schemas --------------------------------------------------------------------------------------------


def test_schemas_are_as_documented() -> None:
    assert dict(LEDGERS_SCHEMA) == {
        "id": "string",
        "name": "string",
        "unit": "string",
        "system_ledger_type": "string",
        "partition_type": "string",
        "cadence": "string",
        "model_id": "string",
        "model_name": "string",
        "has_model": "boolean",
        "created_at": "datetime64[ns, UTC]",
        "updated_at": "datetime64[ns, UTC]",
    }
    assert list(REQUIRED_INPUTS_SCHEMA.items()) == [
        ("id", "Int64"),
        ("name", "string"),
        ("slug", "string"),
        ("unit", "string"),
        ("value_type", "string"),
        ("category", "string"),
        ("subcategory", "string"),
        ("is_manual_select", "boolean"),
        ("output_of_ledgers", "string"),
        ("allocation_groups", "string"),
    ]
    assert list(PREVIEW_SCHEMA.items()) == [("ledger_id", "string"), ("ledger_name", "string"), ("count", "Int64")]
    assert list(BATCHES_SCHEMA) == [
        "id", "tracking_id", "start_time", "end_time", "state", "created_at", "updated_at",
        "output_name", "output_unit", "output_value", "ledger_balance", "ledger_id", "ledger_name",
        "model_run_state", "model_run_error", "feedstock", "output_data_point_id",
    ]  # fmt: skip
    assert BATCHES_SCHEMA["output_value"] == BATCHES_SCHEMA["ledger_balance"] == "Float64"


def test_schemas_cannot_be_changed_by_a_caller() -> None:
    with pytest.raises(TypeError):
        LEDGERS_SCHEMA["id"] = "object"  # type: ignore[index]


@pytest.mark.parametrize(
    ("build", "schema"),
    [
        (ledgers_frame, LEDGERS_SCHEMA),
        (required_inputs_frame, REQUIRED_INPUTS_SCHEMA),
        (preview_frame, PREVIEW_SCHEMA),
        (batches_frame, BATCHES_SCHEMA),
        (events_frame, EVENTS_SCHEMA),
    ],
)
def test_empty_input_keeps_the_schema(build: Any, schema: Any) -> None:
    frame = build([])
    assert frame.empty
    assert list(frame.columns) == list(schema)
    assert [str(t) for t in frame.dtypes] == list(schema.values())
    pd.testing.assert_frame_equal(frame, empty_frame(schema))


def test_datetime_columns_are_utc_aware() -> None:
    frame = batches_frame(documented("list-all-batches.result")["data"])
    for column in ("start_time", "end_time", "created_at", "updated_at"):
        assert str(frame[column].dt.tz) == "UTC"


# --- documented payloads -> expected frames -------------------------------------------------------------


def test_cookbook_ledgers() -> None:
    expected = pd.DataFrame(
        {
            "id": strings("lgr_abc123def456"),
            "name": strings("Net Carbon Removal"),
            "unit": strings("t"),
            "system_ledger_type": strings(None),
            "partition_type": strings("feedstock"),
            "cadence": strings("monthly"),
            "model_id": strings("mdl_xyz789"),
            "model_name": strings("Carbon Calculation Model"),
            "has_model": flags(True),
            "created_at": times("2025-01-15T10:00:00Z"),
            "updated_at": times("2025-01-15T10:00:00Z"),
        }
    )
    pd.testing.assert_frame_equal(ledgers_frame(documented("list-all-ledgers.cookbook")["data"]), expected)


def test_single_ledger_with_time_partitioning() -> None:
    frame = ledgers_frame([documented("retrieve-ledger.result")])
    assert frame.loc[0, "partition_type"] == "time"
    assert frame.loc[0, "model_id"] == "mdl_abc123def456"
    assert frame.loc[0, "has_model"]


def test_truncated_ledger_create_example_leaves_the_rest_na() -> None:
    frame = ledgers_frame([documented("create-project-ledger.result-201")])
    expected = pd.DataFrame(
        {
            "id": strings("lgr_abc123def456"),
            "name": strings("Net Carbon Removal"),
            "unit": strings("t"),
            "system_ledger_type": strings(None),
            "partition_type": strings(None),
            "cadence": strings(None),
            "model_id": strings(None),
            "model_name": strings(None),
            "has_model": flags(None),  # latest_model absent: unknown, not False
            "created_at": times(None),
            "updated_at": times(None),
        }
    )
    pd.testing.assert_frame_equal(frame, expected)


def test_ledger_with_null_model_cannot_generate() -> None:
    frame = ledgers_frame([{"id": "lgr_1", "latest_model": None}])
    assert str(frame["has_model"].dtype) == "boolean"
    assert frame["has_model"].tolist() == [False]


def test_cookbook_required_inputs() -> None:
    expected = pd.DataFrame(
        {
            "id": ints(1, 2),
            "name": strings("Mass of Feedstock Delivery", "Transport Distance"),
            "slug": strings("feedstock-delivery-mass", "transport-distance"),
            "unit": strings("U.S. ton", "mile"),
            "value_type": strings("number", "number"),
            "category": strings("input", "input"),
            "subcategory": strings("feedstock", "transport"),
            "is_manual_select": flags(False, False),
            "output_of_ledgers": strings("", ""),
            "allocation_groups": strings("", ""),
        }
    )
    frame = required_inputs_frame(documented("ledger-required-inputs.cookbook")["data"])
    pd.testing.assert_frame_equal(frame, expected)


def test_required_input_lists_are_joined_and_missing_ones_are_na() -> None:
    frame = required_inputs_frame(
        [
            {
                "id": 3,
                "is_manual_select": True,
                "output_of_ledgers": [{"id": "lgr_up", "name": "Biochar Produced"}, "lgr_other", 7, {"id": "x"}],
                "allocation_groups": ["default", {"weird": [1]}],
            },
            {"id": 4},
        ]
    )
    assert frame["output_of_ledgers"].tolist() == ["Biochar Produced (lgr_up), lgr_other, 7, x", NA]
    assert frame["allocation_groups"].tolist() == ['default, {"weird":[1]}', NA]
    assert frame["is_manual_select"].tolist() == [True, NA]


def test_documented_preview() -> None:
    expected = pd.DataFrame(
        {
            "ledger_id": strings("lgr_abc123def456"),
            "ledger_name": strings("Net Carbon Removal"),
            "count": ints(3),
        }
    )
    pd.testing.assert_frame_equal(preview_frame(documented("generate-preview.result")["data"]), expected)


def test_cookbook_ledger_batches() -> None:
    expected = pd.DataFrame(
        {
            "id": strings("bat_newbatch001"),
            "tracking_id": strings("Jan-2025-001"),
            "start_time": times("2025-01-01T00:00:00Z"),
            "end_time": times("2025-01-31T23:59:59Z"),
            "state": strings("complete"),
            "created_at": times("2025-04-01T12:00:10Z"),
            "updated_at": times(None),
            "output_name": strings("Net Carbon Removal"),
            "output_unit": strings("t"),
            "output_value": floats(33.5),
            "ledger_balance": floats(33.5),
            "ledger_id": strings("lgr_abc123def456"),
            "ledger_name": strings(None),
            "model_run_state": strings(None),
            "model_run_error": strings(None),
            "feedstock": strings(None),
            "output_data_point_id": strings(None),
        }
    )
    frame = batches_frame(documented("list-all-ledger-batches.cookbook")["data"], ledger_id="lgr_abc123def456")
    pd.testing.assert_frame_equal(frame, expected)


def test_batches_list_with_model_run() -> None:
    expected = pd.DataFrame(
        {
            "id": strings("bat_abc123def456"),
            "tracking_id": strings("Q1-2025-001"),
            "start_time": times("2025-01-01T00:00:00Z"),
            "end_time": times("2025-03-31T23:59:59Z"),
            "state": strings("complete"),
            "created_at": times("2025-01-15T10:00:00Z"),
            "updated_at": times("2025-01-15T10:00:00Z"),
            "output_name": strings("Net Carbon Removal"),
            "output_unit": strings("t"),
            "output_value": floats(100.5),
            "ledger_balance": floats(50.25),
            "ledger_id": strings(None),
            "ledger_name": strings(None),
            "model_run_state": strings("complete"),
            "model_run_error": strings(None),
            "feedstock": strings(None),  # an empty feedstocks list
            "output_data_point_id": strings(None),  # model_run.output_data_points is empty
        }
    )
    pd.testing.assert_frame_equal(batches_frame(documented("list-all-batches.result")["data"]), expected)


def test_batch_detail_gives_the_same_row_as_the_list() -> None:
    detail = batches_frame([documented("retrieve-batch.result")])
    listed = batches_frame(documented("list-all-batches.result")["data"])
    pd.testing.assert_frame_equal(detail, listed)


def test_update_inputs_answer_reads_state_and_batch_level_error() -> None:
    frame = batches_frame([documented("update-batch-inputs.result")])
    assert frame.loc[0, "state"] == "processing"
    assert frame.loc[0, "output_value"] == 9146.0
    assert frame["model_run_error"].isna().all()
    failed = batches_frame([batch(state="failed", error_message="Missing transport distance")])
    assert failed.loc[0, "model_run_error"] == "Missing transport distance"
    run = batches_frame([batch(model_run={"state": "failed", "error_message": "Division by zero"})])
    assert (run.loc[0, "model_run_state"], run.loc[0, "model_run_error"]) == ("failed", "Division by zero")


def test_documented_event() -> None:
    expected = pd.DataFrame(
        {
            "event_id": strings("evt_DLnYvzbjSujNAvXE", "evt_DLnYvzbjSujNAvXE"),
            "event_slug": strings("biochar-delivery", "biochar-delivery"),
            "event_type": strings("Biochar Delivery", "Biochar Delivery"),
            "tracking_id": strings("MG1003", "MG1003"),
            "start_time": times("2024-06-04T00:00:00Z", "2024-06-04T00:00:00Z"),
            "end_time": times("2024-06-04T23:59:59Z", "2024-06-04T23:59:59Z"),
            "data_point_id": strings("in_JuGzRS08MbVSEkCj", "in_AIKqFEtr5OpAqram"),
            "data_point_slug": strings("total-ash-delivered-wet-us-ton", "biochar-end-use"),
            "data_point_type": strings("Total Ash Delivered (wet mass) U.S. ton", "Biochar end use"),
            "value": floats(290.6, None),
            "value_text": strings("290.6", "soil amendment"),
            "unit": strings("U.S. ton", None),
            "status": strings("complete", "complete"),
        }
    )
    pd.testing.assert_frame_equal(events_frame([documented("retrieve-event.result")]), expected)


def test_event_without_data_points_keeps_one_row() -> None:
    frame = events_frame([{"id": "evt_1", "data_points": []}, {"id": "evt_2"}])
    assert frame["event_id"].tolist() == ["evt_1", "evt_2"]
    assert frame["data_point_id"].isna().all()
    boolean = events_frame([{"id": "evt_3", "data_points": [{"id": "in_1", "value": True}]}])
    assert (boolean.loc[0, "value_text"], boolean["value"].isna().all()) == ("true", True)


# --- tolerance ------------------------------------------------------------------------------------------


def test_unknown_extra_fields_are_ignored() -> None:
    plain = ledgers_frame(documented("list-all-ledgers.cookbook")["data"])
    item = {**documented("list-all-ledgers.cookbook")["data"][0], "brand_new": {"x": 1}, "colour": "green"}
    pd.testing.assert_frame_equal(ledgers_frame([item]), plain)
    assert "brand_new" not in ledgers_frame([item]).columns


def test_missing_optional_fields_become_na() -> None:
    frame = batches_frame([batch()])
    assert frame.loc[0, "id"] == "bat_1"
    optional = [c for c in BATCHES_SCHEMA if c not in ("id", "start_time")]
    assert frame.loc[0, optional].isna().all()


@pytest.mark.parametrize("ident", [42, "42"])
def test_ids_may_be_int_or_string_and_become_strings(ident: int | str) -> None:
    assert ledgers_frame([{"id": ident, "latest_model": {"id": 9, "name": "m"}}])["id"].tolist() == ["42"]
    assert ledgers_frame([{"id": ident, "latest_model": {"id": 9, "name": "m"}}])["model_id"].tolist() == ["9"]
    assert batches_frame([batch(id=ident)])["id"].tolist() == ["42"]
    assert preview_frame([{"id": ident, "name": "L", "count": 1}])["ledger_id"].tolist() == ["42"]
    assert str(batches_frame([batch(id=ident)])["id"].dtype) == "string"


def test_required_input_id_stays_an_integer() -> None:
    frame = required_inputs_frame([{"id": 7}, {"id": "8"}, {"id": 9.0}])
    assert frame["id"].tolist() == [7, 8, 9]
    assert str(frame["id"].dtype) == "Int64"


def test_numeric_strings_are_accepted_as_numbers() -> None:
    frame = batches_frame([batch(primary_output={"value": "12.5"}, ledger_balance="3")])
    assert (frame.loc[0, "output_value"], frame.loc[0, "ledger_balance"]) == (12.5, 3.0)


def test_naive_timestamps_are_utc_and_offsets_are_converted() -> None:
    frame = batches_frame(
        [
            batch(id="a", start_time="2025-01-01T00:00:00", end_time="2025-01-31T23:59:59.000+02:00"),
        ]
    )
    assert frame.loc[0, "start_time"] == pd.Timestamp("2025-01-01T00:00:00Z")
    assert frame.loc[0, "end_time"] == pd.Timestamp("2025-01-31T21:59:59Z")


def test_batches_are_sorted_by_start_time_then_id() -> None:
    items = [
        batch(id="bat_c", start_time="2025-02-01T00:00:00Z"),
        batch(id="bat_b", start_time="2025-01-01T00:00:00Z"),
        batch(id="bat_a", start_time="2025-02-01T00:00:00Z"),
        batch(id="bat_d", start_time="2024-12-31T23:00:00-02:00"),  # = 2025-01-01T01:00Z
    ]
    frame = batches_frame(items)
    assert frame["id"].tolist() == ["bat_b", "bat_d", "bat_a", "bat_c"]
    assert list(frame.index) == [0, 1, 2, 3]


def test_caller_ledger_id_fills_the_column_and_payload_ledger_id_is_the_fallback() -> None:
    assert batches_frame([batch()], ledger_id="lgr_x")["ledger_id"].tolist() == ["lgr_x"]
    assert batches_frame([batch(ledger_id="lgr_y")])["ledger_id"].tolist() == ["lgr_y"]
    assert batches_frame([batch(ledger_id="lgr_y")], ledger_id="lgr_x")["ledger_id"].tolist() == ["lgr_x"]


def test_feedstocks_are_joined() -> None:
    frame = batches_frame(
        [
            batch(id="a", feedstocks=[{"id": "fs_1", "name": "Oak chips"}]),
            batch(id="b", feedstocks=["Pine", "Spruce"]),
            batch(id="c", feedstocks=[]),
        ]
    )
    assert frame["feedstock"].tolist() == ["Oak chips (fs_1)", "Pine, Spruce", NA]


def test_items_may_be_any_iterable() -> None:
    frame = preview_frame(iter([{"id": "lgr_1", "count": 2}, {"id": "lgr_2", "name": "Other", "count": 0}]))
    assert frame["count"].tolist() == [2, 0]


# --- malformed answers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "items", "field", "index"),
    [
        (batches_frame, [batch(), {"start_time": "2025-01-01T00:00:00Z"}], "id", 1),
        (batches_frame, [{"id": "bat_1"}], "start_time", 0),
        (batches_frame, [batch(start_time=None)], "start_time", 0),
        (batches_frame, [batch(), batch(), batch(start_time="yesterday")], "start_time", 2),
        (batches_frame, [batch(created_at="2025-13-45T00:00:00Z")], "created_at", 0),
        (batches_frame, [batch(created_at=1736899200)], "created_at", 0),
        (batches_frame, [batch(end_time="2300-01-01T00:00:00Z")], "end_time", 0),
        (batches_frame, [batch(primary_output={"value": "a lot"})], "primary_output.value", 0),
        (batches_frame, [batch(primary_output=[1, 2])], "primary_output", 0),
        (batches_frame, [batch(id={"nested": 1})], "id", 0),
        (batches_frame, [batch(feedstocks="oak")], "feedstocks", 0),
        (batches_frame, [batch(), "bat_2"], "data", 1),
        (ledgers_frame, [{"name": "no id"}], "id", 0),
        (ledgers_frame, [{"id": "lgr_1", "latest_model": "mdl_1"}], "latest_model", 0),
        (ledgers_frame, [{"id": "lgr_1", "name": ["x"]}], "name", 0),
        (required_inputs_frame, [{"id": "one"}], "id", 0),
        (required_inputs_frame, [{"id": "²"}], "id", 0),
        (required_inputs_frame, [{"id": 1, "is_manual_select": "yes"}], "is_manual_select", 0),
        (required_inputs_frame, [{"id": True}], "id", 0),
        (preview_frame, [{"id": "lgr_1", "name": "L"}], "count", 0),
        (preview_frame, [{"id": "lgr_1", "count": 2.5}], "count", 0),
        (events_frame, [{"id": "evt_1", "data_points": [{"slug": "x"}]}], "data_points[0].id", 0),
        (events_frame, [{"id": "evt_1", "data_points": ["in_1"]}], "data_points[0]", 0),
    ],
)
def test_malformed_items_name_the_field_and_index(build: Any, items: list, field: str, index: int) -> None:
    with pytest.raises(MalformedResponseError) as caught:
        build(items)
    assert caught.value.field == field
    assert caught.value.index == index
    assert f"'{field}'" in str(caught.value) or field == "data"
    assert f"index {index}" in str(caught.value)


@pytest.mark.parametrize("items", [{"data": []}, "lgr_1", None, b"[]"])
def test_a_non_list_answer_is_malformed(items: Any) -> None:
    with pytest.raises(MalformedResponseError, match="Expected a list"):
        ledgers_frame(items)


# --- provenance -----------------------------------------------------------------------------------------


def test_attrs_are_copied_into_the_frame() -> None:
    provenance = {"base_url": "https://app.gomangrove.com/api/v1", "ledger": "lgr_1", "period": "2025Q1"}
    frame = batches_frame([batch(), batch(id="bat_0")], attrs=provenance)
    assert frame.attrs == provenance
    provenance["ledger"] = "changed"
    assert frame.attrs["ledger"] == "lgr_1"
    assert empty_frame(PREVIEW_SCHEMA, attrs={"fetched_at": "now"}).attrs == {"fetched_at": "now"}
    assert ledgers_frame([]).attrs == {}


@pytest.mark.parametrize("key", ["token", "api_token", "Authorization", "client_secret"])
def test_attrs_refuse_credentials(key: str) -> None:
    with pytest.raises(ValueError, match="credential"):
        preview_frame([], attrs={key: "x"})


def test_frames_import_only_errors_from_our_package() -> None:
    files = Path(frames.__file__).parent.glob("*.py")  # the frames package, each of its modules
    assert set().union(*(units_imported(path.read_text(), path) for path in files)) == {"errors"}


def _careful(items: list[Any], ledger_id: str | None = None) -> pd.DataFrame:
    from mangrove_nb.frames import _batch_row, _finish_batches, _frame, _rows

    return _finish_batches(_frame(_rows(items, "batch", _batch_row), BATCHES_SCHEMA, None), ledger_id)


def test_fast_batch_reader_matches_the_careful_one() -> None:
    """The column-wise reader for large listings gives exactly the careful reader's frame."""
    items = [
        *documented("list-all-ledger-batches.cookbook")["data"],
        *documented("list-all-batches.result")["data"],
        batch(id="bat_f", feedstocks=[{"slug": "pine-residue", "name": "Pine residue"}], state="failed",
              model_run={"state": "failed", "error_message": "moisture 112 %", "output_data_points": []}),
        batch(id="bat_o", model_run={"state": "complete", "output_data_points": [{"id": "dp_1", "value": 2}]}),
        batch(id="bat_n", start_time="2025-01-01T00:00:00", end_time="2025-01-31T23:59:59+02:00"),
        batch(id="bat_e", error_message="only on the batch", model_run={"state": "failed"}),
        batch(id=77, ledger_id=12, tracking_id=5, ledger_balance="3.5", primary_output={"value": "12"},
              model_run={"output_data_points": [{"id": 9}]}),
    ]
    for ledger_id in (None, "lgr_x"):
        columns = batch_columns(items)
        assert columns is not None
        fast = batches_frame_of_columns([columns], ledger_id=ledger_id)
        assert fast is not None
        pd.testing.assert_frame_equal(fast, _careful(items, ledger_id))
        # Read page by page as a listing arrives: the same frame.
        pages = [batch_columns(items[:2]), batch_columns(items[2:5]), batch_columns(items[5:])]
        pd.testing.assert_frame_equal(batches_frame_of_columns(pages, ledger_id=ledger_id), fast)
    by_id = fast.set_index("id")
    assert by_id.loc["bat_f", "feedstock"] == "Pine residue"
    assert by_id.loc["bat_o", "output_data_point_id"] == "dp_1"
    assert by_id.loc["bat_e", "model_run_error"] == "only on the batch"
    assert by_id.loc["77", "output_value"] == 12.0 and by_id.loc["77", "output_data_point_id"] == "9"
    # What the careful reader refuses (or converts its own way) leaves the fast path.
    for case in ([batch(ledger_balance="three")], [{"start_time": "2025-01-01T00:00:00Z"}], [batch(state=True)],
                 [batch(feedstocks="Pine")], [batch(start_time=" 2025-01-01T00:00:00Z")], [batch(), "text"],
                 [batch(model_run={"output_data_points": [{"id": [1]}]})], [batch(primary_output=[1])]):
        assert batch_columns(case) is None, case
    assert batches_frame_of_columns([batch_columns([batch(start_time="2025-99-01")])]) is None


def test_a_listing_read_page_by_page_keeps_the_first_of_a_repeated_id() -> None:
    """As list_all does: an insertion during the listing shifts a batch onto the next page too."""
    first = [batch(id="a", start_time="2025-01-01T00:00:00Z"), batch(id="b", start_time="2025-01-02T00:00:00Z")]
    second = [batch(id="b", start_time="2025-01-02T00:00:00Z", state="moved"),
              batch(id="c", start_time="2025-01-03T00:00:00Z")]
    frame = batches_frame_of_columns([batch_columns(first), batch_columns(second)])
    assert frame["id"].tolist() == ["a", "b", "c"]
    assert frame["state"].isna().tolist() == [True, True, True]
    # batches_frame itself keeps every row it is given.
    assert batches_frame([*first, *second])["id"].tolist() == ["a", "b", "b", "c"]


_ANY = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**20), 10**20), st.floats(allow_nan=False, width=32),
    st.text(max_size=4), st.sampled_from(["2025-01-01T00:00:00Z", "2025-02-03", "2025-01-01T00:00:00+02:00",
                                          " 2025-01-01T00:00:00Z", "2025-01-01T00:00:00Z ", "2025", "12.5", "x"]),
    st.lists(st.sampled_from(["Pine", 3, {"id": "fs_1"}]), max_size=2), st.fixed_dictionaries({"id": st.just(1)}),
)


def _mostly(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Usually a well-typed value, now and then anything at all."""
    return st.integers(0, 24).flatmap(lambda n: _ANY if n == 0 else valid)


_TEXT = _mostly(st.one_of(st.none(), st.sampled_from(["complete", "failed", "Net Carbon Removal", "tCO2e", ""]),
                          st.integers(0, 99)))
_NUMBER = _mostly(st.one_of(st.none(), st.floats(allow_nan=False, width=32), st.integers(-5, 10**6),
                            st.sampled_from(["12.5", "-3", "1e3"])))
_TIME = _mostly(st.one_of(st.none(), st.sampled_from([
    "2025-01-01T00:00:00Z", "2025-03-01T10:00:00.5+01:00", "2025-02-03", "2025-01-01T00:00:00", "2025-13-01",
    "1500-01-01T00:00:00Z", "2025-01-01T00:00:00.000Z", "2025", " 2025-01-01T00:00:00Z"])))
_BATCH = st.fixed_dictionaries(
    {"id": _mostly(st.sampled_from(["bat_1", "bat_2", "bat_3", 4, 5])),
     "start_time": _mostly(st.sampled_from(["2025-01-01T00:00:00Z", "2025-02-01T00:00:00.000Z", "2025-02-03"]))},
    optional={
        "tracking_id": _TEXT, "end_time": _TIME, "state": _TEXT, "created_at": _TIME, "updated_at": _TIME,
        "ledger_balance": _NUMBER, "ledger_id": _mostly(st.sampled_from(["lgr_1", 2, None])),
        "error_message": _TEXT,
        "feedstocks": _mostly(st.one_of(st.none(), st.lists(st.sampled_from(["Pine", 3, {"id": "fs_1"},
                                                                              {"name": "Oak"}]), max_size=2))),
        "primary_output": _mostly(st.one_of(st.none(), st.fixed_dictionaries(
            {}, optional={"name": _TEXT, "unit": _TEXT, "value": _NUMBER}))),
        "model_run": _mostly(st.one_of(st.none(), st.fixed_dictionaries({}, optional={
            "state": _TEXT, "error_message": _TEXT,
            "output_data_points": _mostly(st.one_of(st.none(), st.lists(_mostly(st.fixed_dictionaries(
                {}, optional={"id": _mostly(st.sampled_from(["dp_1", 7]))})), max_size=2)))}))),
    },
)


@settings(max_examples=400, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=st.lists(_BATCH, max_size=4))
def test_the_fast_reader_never_disagrees_with_the_careful_one(items: list[dict[str, Any]]) -> None:
    """Whatever the fast reader accepts, the careful reader accepts too, and gives the same frame."""
    columns = batch_columns(items)
    if columns is None or len(set(columns["id"])) != len(columns["id"]):
        return  # the careful reader decides (a repeated id: batches_frame keeps both rows, a listing the first)
    fast = batches_frame_of_columns([columns])
    if fast is None:
        return
    pd.testing.assert_frame_equal(fast, _careful(items))


def test_batches_come_out_in_order_whether_or_not_the_listing_was_in_order() -> None:
    items = [batch(id=f"b{n}", start_time=f"2025-01-{n + 1:02d}T00:00:00Z") for n in range(3)]
    assert batches_frame(items)["id"].tolist() == ["b0", "b1", "b2"]
    assert batches_frame(items[::-1])["id"].tolist() == ["b0", "b1", "b2"]
    same_start = [batch(id=i, start_time="2025-01-01T00:00:00Z") for i in ("c", "a", "b")]
    assert batches_frame(same_start)["id"].tolist() == ["a", "b", "c"]


# --- what a skipped input changed, duplicated partitions, a balance above the output ---------------------------

ELECTRICITY = {"data_point": {"id": None, "slug": "electricity-consumption",
                              "data_point_type": "Electricity Consumption", "value": 0, "unit": "kWh",
                              "status": "skipped_input", "data_point_type_id": 7}, "event": None}


def skipped_detail(*calculations: dict[str, Any], skipped: tuple[dict[str, Any], ...] = (ELECTRICITY,)
                   ) -> dict[str, Any]:
    """A batch detail generated without ``skipped`` (Electricity Consumption), with these calculations."""
    return {"id": "bat_x", "input_data": list(skipped), "model_run": {"calculations": list(calculations)}}


def calc(name: str, value: float | None, role: str | None, note: str | None = None) -> dict[str, Any]:
    return {"id": 1, "name": name, "value": value, "unit": "t", "ghg": "co2e", "lca_role": role, "category": "x",
            **({"note": note} if note is not None else {})}


NAMED = "Skipped input(s) counted as zero: Electricity Consumption (7)."
GROSS = calc("Gross removal", 106.479, "removal")


def direction(*calculations: dict[str, Any], **options: Any) -> str:
    found = frames.skipped_effect(skipped_detail(*calculations, **options))
    assert found is not None
    return found[2]


def test_a_zeroed_emission_the_note_names_overstates_and_a_zeroed_removal_understates() -> None:
    """The two positively identified cases: a term of a known role, value 0, its note naming the skipped input."""
    assert direction(GROSS, calc("Electricity emissions", 0.0, "emission", NAMED)) == "overstated"
    assert direction(GROSS, calc("Electricity emissions", 0, "Leakage", NAMED)) == "overstated"
    assert direction(calc("Gross removal", 0.0, "removal", NAMED), calc("Transport", 2.1, "emission")) == "understated"
    assert not frames.may_overstate("understated")
    # Both at once: either direction, so possibly overstated.
    assert direction(calc("Gross removal", 0.0, "removal", NAMED), calc("E", 0.0, "emission", NAMED)) == "unknown"


@pytest.mark.parametrize(("calculations", "why"), [
    # The reviewer's cases: each was "understated", or let through, before.
    ([calc("Gross removal", 106.479, "removal", "Permanence factor 0.80 applied"), calc("Elec", 0.0, "emission")],
     "no calculation says it read it"),
    ([calc("Electricity emissions", 0.0, "emissions", NAMED), GROSS], "its role ('emissions') is not one"),
    ([calc("Net Carbon Removal", 104.328, "output", "Electricity Consumption skipped: counted as zero")],
     "not a term of the figure (lca_role 'output'"),
    ([calc("Net Carbon Removal", 104.328, "net", NAMED)], "not a term of the figure (lca_role 'net'"),
    # A noted removal whose value is not 0 took away an unknown part, and an emission of unknown value too.
    ([calc("Gross removal", 96.2, "removal", NAMED)], "its value is 96.2, not 0"),
    ([GROSS, calc("Electricity emissions", 0.4, "emission", NAMED)], "its value is 0.4, not 0"),
    ([GROSS, calc("Electricity emissions", None, "emission", NAMED)], "its value is no value"),
    ([calc("Gross removal", 0.0, None, NAMED)], "its role (none) is not one"),
    # A note that names another input only ("Electricity" is not "Electricity Consumption").
    ([calc("Gross removal", 0.0, "removal", "Electricity counted as zero.")], "no calculation says it read it"),
])
def test_anything_short_of_a_zeroed_term_of_a_known_role_that_names_the_input_is_unknown(
        calculations: list[dict[str, Any]], why: str) -> None:
    found = frames.skipped_effect(skipped_detail(*calculations))
    assert found is not None
    inputs, text, effect = found
    assert inputs == "Electricity Consumption" and effect == "unknown" and frames.may_overstate(effect)
    assert why in text and "may be overstated" in text and "understated" not in text, text


def test_a_zeroed_removal_is_understated_only_when_every_skipped_input_is_explained() -> None:
    moisture = {"data_point": {**ELECTRICITY["data_point"], "slug": "moisture-content",
                               "data_point_type": "Moisture Content", "data_point_type_id": 9}, "event": None}
    both = (ELECTRICITY, moisture)
    noted = calc("Gross removal", 0.0, "removal", "Electricity Consumption and Moisture Content counted as zero.")
    assert direction(noted, skipped=both) == "understated"
    one = calc("Gross removal", 0.0, "removal", NAMED)
    found = frames.skipped_effect(skipped_detail(one, skipped=both))
    assert found is not None and found[2] == "unknown" and "no calculation says it read Moisture Content" in found[1]


def test_term_sign_knows_the_roles_and_counts_no_unknown_one_as_a_removal() -> None:
    known = ("removal", "Output", "emission", " leakage ", "deduction")
    assert [frames.term_sign(r) for r in known] == [1, 1, -1, -1, -1]
    assert [frames.term_sign(r) for r in ("net", "input", "emissions", "removals", "", None, 3)] == [0] * 7


def batch_rows(*rows: tuple[str, str, str, str | None, str]) -> pd.DataFrame:
    """A batches frame of (id, ledger, month, feedstock, state) rows."""
    return pd.DataFrame([{"id": i, "ledger_id": lg, "start_time": pd.Timestamp(f"{m}-01", tz="UTC"),
                          "feedstock": f, "state": s, "tracking_id": f"T-{m}"} for i, lg, m, f, s in rows]
                        ).astype({"feedstock": "string", "state": "string"})


def test_a_partition_with_two_complete_batches_is_a_duplicate_by_ledger_month_and_feedstock() -> None:
    batches = batch_rows(("a", "L1", "2025-02", None, "complete"), ("b", "L1", "2025-02", None, "complete"),
                         ("c", "L2", "2025-02", None, "complete"), ("d", "L1", "2025-03", "oak", "complete"),
                         ("e", "L1", "2025-03", "pine", "complete"), ("f", "L1", "2025-01", None, "complete"),
                         ("g", "L1", "2025-01", None, "failed"))
    assert frames.duplicate_partitions(batches) == [("L1", "2025-02", None, ["a", "b"], ["T-2025-02", "T-2025-02"])]
    assert frames.duplicate_partitions(batches.iloc[:0]) == []


@pytest.mark.parametrize(("balance", "output", "exceeds"), [
    (145.097, 95.097, True), (95.097, 95.097, False), (95.0970000001, 95.097, False), (0.0, 95.0, False),
    (None, 95.0, False), (10.0, None, False), (pd.NA, 1.0, False), (1.0, float("nan"), False)])
def test_a_balance_exceeds_its_output_beyond_rounding_only_when_both_are_known(balance: Any, output: Any,
                                                                               exceeds: bool) -> None:
    assert frames.balance_exceeds_output(balance, output) is exceeds
