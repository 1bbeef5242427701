"""JSON shapes of the emulator's resources, as mangrove-openapi.yaml and mangrove-api.md document them.

A batch's detail (``GET /batches/{batch_id}``) lists, in ``input_data``, every data point its model run read
(with its event) and then, per data point type the generation skipped (``skipped_data_point_type_ids``), the
documented zero-value placeholder (mangrove-api.md, "Skipped inputs")::

    {"data_point": {"id": null, "slug": …, "data_point_type": …, "value": 0, "unit": …,
                    "status": "skipped_input", "data_point_type_id": …}, "event": null}

``model_run.calculations`` is the LCA breakdown (``model``): ``{id, name, value, unit, ghg, lca_role,
category}``, its terms only, so that the items whose ``lca_role`` is not ``emission`` minus those that are
equal the primary output. A calculation that reads a skipped input also carries
``skipped_data_point_type_ids`` and a ``note`` saying that input counted as zero.

A report (``GET /reports/{report_id}``) lists its batches in ``inclusions`` (``{batch_id, tracking_id,
ledger_id, amount, unit}``, as each was when included) and, once complete, its ``allocation`` (``{id, amount,
unit, created_at}``: the sum of the inclusions). A batch's ``ledger_balance`` is its output less its allocations
to downstream batches and to complete reports; its detail lists the latter in ``report_allocations``, each
``{"allocation": {id, amount, unit}, "amount", "unit", "report": {id, name, report_type, status}}`` with that
batch's own amount (``reporting``).

Every function here renders what the backend read (rows, and its records of rows: ``backend.Batches``,
``Events``, ``Inputs``, ``reporting.Reports``); none reads the database.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .store import loads

if TYPE_CHECKING:
    from .backend import Batches, Events, Inputs
    from .reporting import Reports


def ledger(row: sqlite3.Row) -> dict[str, Any]:
    """A ledger row of ``backend.LEDGER_SELECT`` (its model's id and name joined in)."""
    return {
        "id": row["id"],
        "name": row["name"],
        "unit": row["unit"],
        "system_ledger_type": row["system_ledger_type"],
        "partition_type": row["partition_type"],
        "cadence": row["cadence"],
        "latest_model": {"id": row["model_id"], "name": row["model_name"]} if row["model_id"] is not None else None,
        "asset_category": None,
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def required_inputs(inputs: Inputs) -> list[dict[str, Any]]:
    items = []
    for row in inputs.rows:
        upstream = [inputs.ledgers.get(pk) for pk in loads(row["upstream_ledger_pks"])]
        items.append({
            "id": row["type_id"],
            "name": row["name"],
            "slug": row["slug"],
            "unit": row["unit"],
            "value_type": row["value_type"],
            "category": row["category"],
            "subcategory": row["subcategory"],
            "is_manual_select": bool(row["is_manual_select"]),
            "allocation_groups": loads(row["allocation_groups"]),
            "output_of_ledgers": [{"id": u["id"], "name": u["name"]} for u in upstream if u],
        })
    return items


def task(row: sqlite3.Row, *, accepted: bool = False) -> dict[str, Any]:
    """GET /async_tasks/{id}; ``accepted=True`` gives the shorter 202 body of the trigger POST."""
    if accepted:
        return {"id": row["id"], "type": row["type"], "state": row["state"], "progress": row["progress"],
                "created_at": row["created_at"]}
    return {
        "id": row["id"],
        "type": row["type"],
        "state": row["state"],
        "progress": row["progress"],
        "progress_description": row["progress_description"],
        "started_at": row["started_at"],
        "finished_at": row["finished_at"],
        "error_message": row["error_message"],
        "result": None,
        "args": {"project_id": row["project_id"], "ledger_id": row["ledger_pk"]} if row["report_pk"] is None
        else {"project_id": row["project_id"], "report_id": row["report_id"]},
    }


def preview(counts: Sequence[tuple[str, str, int]]) -> dict[str, Any]:
    """POST generate_preview: per ledger the model writes to, how many batches a generation would make."""
    return {"data": [{"id": ledger_id, "name": name, "count": count} for ledger_id, name, count in counts]}


def batches(found: Batches) -> list[dict[str, Any]]:
    """A page of batches."""
    return [_batch(row, found.allocations[row["pk"]], found.skipped_types, found.reported.get(row["pk"], []))
            for row in found.rows]


def batch(found: Batches) -> dict[str, Any]:
    """One batch's detail (GET /batches/{id}): what a page lists, and what its model run read and skipped."""
    row = found.rows[0]
    reported = found.reported.get(row["pk"], [])
    body = _batch(row, found.allocations[row["pk"]], found.skipped_types, reported)
    skipped = {t: found.skipped_types[t] for t in loads(row["skipped_type_ids"]) if t in found.skipped_types}
    body["input_data"] = [_input(r) for r in found.inputs] + [
        _skipped_input(skipped[type_id]) for type_id in sorted(skipped)]
    body["report_allocations"] = [
        {"allocation": {"id": r["pk"], "amount": r["amount"], "unit": r["unit"]}, "amount": r["amount"],
         "unit": r["unit"], "report": {"id": r["report_id"], "name": r["name"], "report_type": r["report_type"],
                                       "status": r["status"]}} for r in reported]
    body["downstream_batch_allocations"] = body["allocations"]
    return body


def _batch(row: sqlite3.Row, allocations: list[sqlite3.Row], types: dict[int, sqlite3.Row],
           reported: list[sqlite3.Row]) -> dict[str, Any]:
    value = row["value"] if row["value"] is not None else 0.0
    unit = row["ledger_unit"]
    failed = row["state"] == "failed"
    return {
        "id": row["id"],
        "tracking_id": row["tracking_id"],
        "start_time": row["start_time"],
        "end_time": row["end_time"],
        "state": row["state"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "primary_output": {"id": row["output_type_id"], "name": row["output_name"], "unit": unit,
                           "data_point_type_id": row["output_type_id"], "value": value},
        # What remains after allocations to downstream batches and to complete reports (generation.balance_of,
        # computed here in bulk; + 0.0 so that it is never -0.0).
        "ledger_balance": 0.0 if failed else round(value - sum(a["amount"] for a in allocations)
                                                   - sum(r["amount"] for r in reported), 3) + 0.0,
        "allocations": [{"id": a["pk"], "amount": a["amount"], "unit": unit, "allocation_group": a["allocation_group"],
                         "batch_id": a["target"]} for a in allocations],
        "model_run": {
            "id": row["pk"],
            "start_time": row["start_time"],
            "end_time": row["end_time"],
            "state": row["state"],
            "error_message": row["error_message"],
            "created_at": row["created_at"],
            "updated_at": row["updated_at"],
            "calculations": [
                _calculation(n, c, [types[t] for t in loads(row["skipped_type_ids"]) if t in types])
                for n, c in enumerate(loads(row["calculations"]), start=1)
            ],
            "output_data_points": [] if failed else [
                {"id": row["output_dp_id"], "slug": row["output_slug"], "data_point_type": row["output_name"],
                 "value": value, "unit": unit, "status": "complete"}
            ],
        },
        "feedstocks": [{"slug": row["feedstock"], "name": row["feedstock"].replace("-", " ").capitalize()}]
        if row["feedstock"] else [],
    }


def _calculation(number: int, calc: dict[str, Any], skipped: list[sqlite3.Row]) -> dict[str, Any]:
    # The store's upgrade fills category, ghg and inputs by name; a name no model makes gets version 1's values.
    item = {"id": number, "name": calc["name"], "value": calc["value"], "unit": calc["unit"],
            "ghg": calc.get("ghg", "co2e"), "lca_role": calc["lca_role"], "category": calc.get("category", "biochar")}
    reads = set(calc.get("inputs", ()))
    counted_as_zero = [t for t in skipped if t["slug"] in reads]
    if counted_as_zero:
        item["skipped_data_point_type_ids"] = [t["id"] for t in counted_as_zero]
        item["note"] = ("Skipped input(s) counted as zero in every month of the generation: "
                        + ", ".join(f"{t['name']} ({t['id']})" for t in counted_as_zero) + ".")
    return item


def _skipped_input(data_point_type: sqlite3.Row) -> dict[str, Any]:
    """The documented placeholder for a skipped data point type (mangrove-api.md, "Skipped inputs")."""
    return {
        "data_point": {"id": None, "slug": data_point_type["slug"], "data_point_type": data_point_type["name"],
                       "value": 0, "unit": data_point_type["unit"], "status": "skipped_input",
                       "data_point_type_id": data_point_type["id"]},
        "event": None,
    }


def _input(r: sqlite3.Row) -> dict[str, Any]:
    """One data point a model run read, with its event (``backend``'s read of a batch's inputs)."""
    return {
        "data_point": {"id": r["id"], "slug": r["slug"], "data_point_type": r["name"], "value": loads(r["value"]),
                       "unit": r["unit"], "status": r["status"], "data_point_type_id": r["type_id"]},
        "event": {"id": r["event_id"], "slug": r["event_slug"], "event_type": r["event_type"],
                  "tracking_id": r["tracking_id"], "start_time": r["start_time"], "end_time": r["end_time"]},
    }


def events(found: Events) -> list[dict[str, Any]]:
    return [_event(row, found.data_points[row["pk"]]) for row in found.rows]


def _event(row: sqlite3.Row, points: list[sqlite3.Row]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "slug": row["slug"],
        "event_type": row["event_type"],
        "tracking_id": row["tracking_id"],
        "start_time": row["start_time"],
        "end_time": row["end_time"],
        "data_points": [{"id": p["id"], "slug": p["slug"], "data_point_type": p["name"], "value": loads(p["value"]),
                         "unit": p["unit"], "status": p["status"]} for p in points],
        "locations": [],
        "evidences": [],
    }


def reports(found: Reports) -> list[dict[str, Any]]:
    return [_report(row, found.inclusions[row["pk"]]) for row in found.rows]


def report(found: Reports) -> dict[str, Any]:
    return _report(found.rows[0], found.inclusions[found.rows[0]["pk"]])


def _report(row: sqlite3.Row, inclusions: list[sqlite3.Row]) -> dict[str, Any]:
    allocated = row["allocation_id"] is not None
    return {
        "id": row["id"],
        "name": row["name"],
        "report_type": row["report_type"],
        "status": row["status"],
        "project_id": row["project_id"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "inclusions": [{"batch_id": i["batch_id"], "tracking_id": i["tracking_id"], "ledger_id": i["ledger_id"],
                        "amount": i["amount"], "unit": i["unit"]} for i in inclusions],
        "allocation": {"id": row["allocation_id"], "amount": row["allocation_amount"], "unit": row["allocation_unit"],
                       "created_at": row["allocation_created_at"]} if allocated else None,
    }


def submission(report_row: sqlite3.Row, task_id: int) -> dict[str, Any]:
    """The 202 body of POST /reports/{report_id}/submit."""
    return {"id": report_row["id"], "status": report_row["status"], "async_task_id": task_id}


def project(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "project_type": row["project_type"],
        "credit_types": loads(row["credit_types"]),
        "country": row["country"],
        "state": row["state"],
        "project_status": row["project_status"],
        "registry_name": row["registry_name"],
        "registry_link": "",
        "methodology": row["methodology"],
        "images": [],
        "sustainable_development_goals": ["climate_action", "life_on_land"],
    }
