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
"""

from __future__ import annotations

import sqlite3
from typing import Any

from .store import fetch_all, fetch_one, in_list, loads

TASK_TYPE = "ProductionAccounting::BatchGeneration"


def ledger(conn: sqlite3.Connection, row: sqlite3.Row) -> dict[str, Any]:
    model = fetch_one(conn, "SELECT id, name FROM models WHERE pk = ?", (row["model_pk"],)) if row["model_pk"] else None
    return {
        "id": row["id"],
        "name": row["name"],
        "unit": row["unit"],
        "system_ledger_type": row["system_ledger_type"],
        "partition_type": row["partition_type"],
        "cadence": row["cadence"],
        "latest_model": {"id": model["id"], "name": model["name"]} if model else None,
        "asset_category": None,
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def required_inputs(conn: sqlite3.Connection, model_pk: int | None) -> list[dict[str, Any]]:
    if model_pk is None:
        return []
    rows = fetch_all(conn, "SELECT mi.*, t.* FROM model_inputs mi JOIN data_point_types t ON t.id = mi.type_id"
                           " WHERE mi.model_pk = ? ORDER BY mi.position", (model_pk,))
    items = []
    for row in rows:
        upstream = [fetch_one(conn, "SELECT id, name FROM ledgers WHERE pk = ?", (pk,))
                    for pk in loads(row["upstream_ledger_pks"])]
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
        "args": {"project_id": row["project_id"], "ledger_id": row["ledger_pk"]},
    }


BATCH_SELECT = (
    "SELECT b.*, l.id AS ledger_id, l.unit AS ledger_unit, l.output_type_id, t.name AS output_name, t.slug AS"
    " output_slug FROM batches b JOIN ledgers l ON l.pk = b.ledger_pk LEFT JOIN data_point_types t"
    " ON t.id = l.output_type_id"
)


def batches(conn: sqlite3.Connection, rows: list[sqlite3.Row]) -> list[dict[str, Any]]:
    """A page of batches, with their allocations read in one query rather than one per batch."""
    pks = [row["pk"] for row in rows]
    allocations: dict[int, list[sqlite3.Row]] = {pk: [] for pk in pks}
    if pks:
        wanted, parameter = in_list(pks)
        for alloc in fetch_all(conn, "SELECT a.pk, a.source_batch_pk, a.amount, a.allocation_group, b.id AS target"
                                     " FROM allocations a JOIN batches b ON b.pk = a.target_batch_pk"
                                     f" WHERE a.source_batch_pk IN {wanted} ORDER BY a.pk", (parameter,)):
            allocations[alloc["source_batch_pk"]].append(alloc)
    types = _skipped_types(conn, {t for row in rows for t in loads(row["skipped_type_ids"])})
    return [_batch(row, allocations[row["pk"]], types) for row in rows]


def _skipped_types(conn: sqlite3.Connection, type_ids: set[int]) -> dict[int, sqlite3.Row]:
    """The data point types a page of batches skipped, by id, read in one query."""
    if not type_ids:
        return {}
    wanted, parameter = in_list(sorted(type_ids))
    rows = fetch_all(conn, f"SELECT id, slug, name, unit FROM data_point_types WHERE id IN {wanted}", (parameter,))
    return {row["id"]: row for row in rows}


def batch(conn: sqlite3.Connection, row: sqlite3.Row, *, detail: bool = False) -> dict[str, Any]:
    body = batches(conn, [row])[0]
    if detail:
        skipped = _skipped_types(conn, set(loads(row["skipped_type_ids"])))
        body["input_data"] = _input_data(conn, loads(row["input_dp_ids"])) + [
            _skipped_input(skipped[type_id]) for type_id in sorted(skipped)]
        body["report_allocations"] = []
        body["downstream_batch_allocations"] = body["allocations"]
    return body


def _batch(row: sqlite3.Row, allocations: list[sqlite3.Row], types: dict[int, sqlite3.Row]) -> dict[str, Any]:
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
        # What remains after allocations to downstream batches (generation.balance_of, computed here in bulk).
        "ledger_balance": 0.0 if failed else round(value - sum(a["amount"] for a in allocations), 3),
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


def _input_data(conn: sqlite3.Connection, dp_ids: list[str]) -> list[dict[str, Any]]:
    if not dp_ids:
        return []
    wanted, parameter = in_list(dp_ids)
    rows = fetch_all(
        conn,
        "SELECT dp.id, dp.type_id, dp.value, dp.status, t.slug, t.name, t.unit, e.id AS event_id,"
        " e.slug AS event_slug, e.event_type, e.tracking_id, e.start_time, e.end_time FROM data_points dp"
        " JOIN data_point_types t ON t.id = dp.type_id JOIN events e ON e.pk = dp.event_pk"
        f" WHERE dp.id IN {wanted} ORDER BY e.start_time, dp.pk",
        (parameter,),
    )
    return [{
        "data_point": {"id": r["id"], "slug": r["slug"], "data_point_type": r["name"], "value": loads(r["value"]),
                       "unit": r["unit"], "status": r["status"], "data_point_type_id": r["type_id"]},
        "event": {"id": r["event_id"], "slug": r["event_slug"], "event_type": r["event_type"],
                  "tracking_id": r["tracking_id"], "start_time": r["start_time"], "end_time": r["end_time"]},
    } for r in rows]


def event(conn: sqlite3.Connection, row: sqlite3.Row) -> dict[str, Any]:
    points = fetch_all(conn, "SELECT dp.id, dp.value, dp.status, t.slug, t.name, t.unit FROM data_points dp"
                             " JOIN data_point_types t ON t.id = dp.type_id WHERE dp.event_pk = ? ORDER BY dp.pk",
                       (row["pk"],))
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
