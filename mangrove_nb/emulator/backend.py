"""The emulator's backend: it owns the state (a ``Store``, SQLite) and makes every query and mutation on it.

What it owns, in the API's terms:

* ledgers: list, one, create on a project, the required inputs of a ledger's model;
* generation requests: the checks before a body is read (a known ledger with a model), the preview's counts,
  and the trigger, which creates the async task in the same transaction as its checks (nothing to generate, a
  running generation on the same ledgers) so two racing requests cannot both pass;
* async tasks: one by id, and what the worker (``worker``) does to them: pick up, plan, report progress,
  make a partition's batches, finish (a failed task's batches are deleted as it is marked failed);
* batches: a ledger's, all, one with its detail, and deletion (refused while a downstream batch uses it, or
  while a submitting or complete report holds it);
* reports: list, one, update (name, batches) and submission, whose task the worker runs like a generation's;
  the rules are ``reporting``'s, applied here in the backend's transactions;
* projects and their events;
* the seeded data: seeded when the database is new, and ``reset`` back to it (the ``/_emulator/reset`` control
  endpoint wipes the data here; the request counters and armed faults it clears are ``pipeline``'s).

A refusal is a typed error of ``errors`` (``NotFound`` names the id it did not find, ``Unprocessable`` says
what to change). Answers are rows (``sqlite3.Row``, read in full under the store's lock) and small records of
rows (``Batches``, ``Events``, ``Inputs``) for ``resources`` to render. The backend knows nothing of HTTP: the
routes (``app``) parse requests, call it and render its answers; the rules of a generation (which partitions a
range covers, which batches a partition makes) are ``generation``'s, applied here in the backend's
transactions; ``listing`` pages a ``Collection`` declared here. Not owned here: tokens, rate-limit windows,
request counters, armed faults and the response cache (``pipeline``).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from . import API, generation, listing, reporting, seed
from .errors import NotFound, Unprocessable
from .store import Store, fetch_all, fetch_one, fetch_value, friendly_id, in_list, iso, loads, utcnow

Row = sqlite3.Row
Info = dict[str, Any]  # a list answer's documented ``info`` block

TASK_TYPE = "ProductionAccounting::BatchGeneration"

LEDGER_SELECT = ("SELECT l.*, m.id AS model_id, m.name AS model_name FROM ledgers l"
                 " LEFT JOIN models m ON m.pk = l.model_pk")
BATCH_SELECT = (
    "SELECT b.*, l.id AS ledger_id, l.unit AS ledger_unit, l.output_type_id, t.name AS output_name, t.slug AS"
    " output_slug FROM batches b JOIN ledgers l ON l.pk = b.ledger_pk LEFT JOIN data_point_types t"
    " ON t.id = l.output_type_id"
)

# The list endpoints: query names of the fields they sort and filter on, as SQL.
LEDGERS = listing.Collection(
    LEDGER_SELECT,
    sortable={"id": "l.id", "name": "l.name", "created_at": "l.created_at", "updated_at": "l.updated_at"},
    filterable={"project_id": listing.Filterable("l.project_id", listing.sql_integer),
                "id": listing.Filterable("l.id")},
    default_sort="l.pk", tiebreak="l.pk",
)
LEDGER_BATCHES = listing.Collection(
    BATCH_SELECT,
    sortable={"id": "b.id", "start_time": "b.start_time", "end_time": "b.end_time", "created_at": "b.created_at",
              "updated_at": "b.updated_at", "tracking_id": "b.tracking_id", "friendly_id": "b.id"},
    filterable={"id": listing.Filterable("b.id"), "state": listing.Filterable("b.state"),
                "tracking_id": listing.Filterable("b.tracking_id"), "friendly_id": listing.Filterable("b.id")},
    default_sort="b.start_time", tiebreak="b.pk",
)
ALL_BATCHES = listing.Collection(
    BATCH_SELECT,
    sortable={"id": "b.id", "start_time": "b.start_time", "end_time": "b.end_time", "state": "b.state",
              "created_at": "b.created_at", "updated_at": "b.updated_at"},
    filterable={"project_id": listing.Filterable("l.project_id", listing.sql_integer),
                "id": listing.Filterable("b.id"), "state": listing.Filterable("b.state")},
    default_sort="b.start_time", tiebreak="b.pk",
)
EVENTS = listing.Collection(
    "SELECT * FROM events",
    sortable={"id": "id", "start_time": "start_time", "end_time": "end_time", "created_at": "created_at",
              "updated_at": "updated_at", "tracking_id": "tracking_id", "friendly_id": "id", "status": "created_at"},
    filterable={"id": listing.Filterable("id"), "tracking_id": listing.Filterable("tracking_id"),
                "status": listing.Filterable("(SELECT MIN(status) FROM data_points WHERE event_pk = events.pk)")},
    default_sort="start_time", tiebreak="pk",
)


@dataclass(frozen=True)
class Batches:
    """Batch rows (``BATCH_SELECT``) and what their JSON needs besides them: the allocations of each to downstream
    batches (by source batch pk), the data point types their generations skipped (by id), the allocations of each
    to complete reports (by batch pk, ``reporting.allocated``) and, in one batch's detail, the data points its
    model run read (with their events)."""

    rows: list[Row]
    allocations: dict[int, list[Row]]
    skipped_types: dict[int, Row]
    reported: dict[int, list[Row]] = field(default_factory=dict)
    inputs: list[Row] = field(default_factory=list)


@dataclass(frozen=True)
class Events:
    """Event rows and the data points of each (by event pk, in their order)."""

    rows: list[Row]
    data_points: dict[int, list[Row]]


@dataclass(frozen=True)
class Inputs:
    """A model's inputs (``model_inputs`` joined with their data point types, in order) and, by pk, the ledgers
    whose outputs its manual-select inputs read."""

    rows: list[Row]
    ledgers: dict[int, Row]


class Backend:
    """The emulator's state and every query and mutation on it; ``db=None`` is a fresh in-memory database."""

    def __init__(self, db: str | None = None) -> None:
        self.store = Store(db)
        if not self.store.is_seeded():
            seed.seed(self.store)

    @property
    def version(self) -> int:
        """Bumped by every committed write: what was read at one version is still current while it is unchanged."""
        return self.store.generation

    def reset(self) -> None:
        """Back to the seeded data (tasks in flight are abandoned)."""
        self.store.wipe()
        seed.seed(self.store)

    def close(self) -> None:
        self.store.close()

    # -- ledgers -----------------------------------------------------------------------------------------------

    def ledgers(self, query: listing.ListQuery) -> tuple[list[Row], Info]:
        with self.store.read() as conn:
            return listing.run(conn, LEDGERS, [], [], query)

    def ledger(self, ledger_id: str) -> Row:
        with self.store.read() as conn:
            return _ledger(conn, ledger_id, with_model=True)

    def create_ledger(self, project_id: str, name: str, unit: str) -> Row:
        with self.store.transaction() as conn:
            _project(conn, project_id)
            now = iso(utcnow())
            number = conn.execute("SELECT COALESCE(MAX(pk), 0) + 1 FROM ledgers").fetchone()[0]
            conn.execute(
                "INSERT INTO ledgers (id, project_id, name, unit, partition_type, cadence, abbreviation, created_at,"
                " updated_at) VALUES (?, ?, ?, ?, 'time', 'monthly', 'USR', ?, ?)",
                (friendly_id("lgr", "ledger", number), int(project_id), name, unit, now, now),
            )
            row = fetch_one(conn, f"{LEDGER_SELECT} WHERE l.pk = ?", (number,))
            assert row is not None
            return row

    def required_inputs(self, ledger_id: str) -> Inputs:
        with self.store.read() as conn:
            model_pk = _ledger(conn, ledger_id)["model_pk"]
            if model_pk is None:
                return Inputs([], {})
            rows = fetch_all(conn, "SELECT mi.*, t.* FROM model_inputs mi JOIN data_point_types t ON t.id = mi.type_id"
                                   " WHERE mi.model_pk = ? ORDER BY mi.position", (model_pk,))
            # A model's definition names a handful of upstream ledgers (never a request's list): one lookup each.
            upstream = {pk for row in rows for pk in loads(row["upstream_ledger_pks"])}
            ledgers = {pk: fetch_one(conn, "SELECT pk, id, name FROM ledgers WHERE pk = ?", (pk,)) for pk in upstream}
            return Inputs(rows, {pk: row for pk, row in ledgers.items() if row is not None})

    # -- generation requests -----------------------------------------------------------------------------------

    def ledger_with_model(self, ledger_id: str) -> Row:
        """The ledger, if batches can be generated on it: 404 when unknown, 422 when it has no model."""
        with self.store.read() as conn:
            row = _ledger(conn, ledger_id)
        _model_of(row)
        return row

    def preview(self, ledger: Row, start: datetime, end: datetime,
                options: generation.Options) -> list[tuple[str, str, int]]:
        """Per ledger the model writes to: its id, name and how many batches a generation would make.

        ``ledger`` is what ``ledger_with_model`` returned (a ledger never changes once created).
        """
        with self.store.read() as conn:
            plan = generation.plan(conn, _model_of(ledger), start, end, options)
        return [(out.ledger_id, out.ledger_name, count) for out, count in plan.counts()]

    def generate(self, ledger_id: str, start: datetime, end: datetime, options: generation.Options) -> Row:
        """The new async task (``pending``), for the worker to run; the checks and the task are one transaction."""
        with self.store.transaction() as conn:  # two racing requests cannot both pass the checks
            row = _ledger(conn, ledger_id)
            model_pk = _model_of(row)
            plan = generation.plan(conn, model_pk, start, end, options)
            if plan.batch_count == 0:
                raise Unprocessable(_nothing_to_generate(conn, row, start, end))
            _refuse_overlap(conn, plan, start, end)
            now = iso(utcnow())
            output_pks = [o.ledger_pk for o in plan.outputs]
            cur = conn.execute(
                "INSERT INTO async_tasks (type, state, progress, created_at, ledger_pk, model_pk, project_id,"
                " start_time, end_time, options, output_ledger_pks) VALUES (?, 'pending', 0, ?, ?, ?, ?, ?, ?, ?, ?)",
                (TASK_TYPE, now, row["pk"], model_pk, row["project_id"], iso(start), iso(end), options.to_json(),
                 json.dumps(output_pks)),
            )
            task = fetch_one(conn, "SELECT * FROM async_tasks WHERE id = ?", (cur.lastrowid,))
            assert task is not None
            return task

    # -- async tasks -------------------------------------------------------------------------------------------

    def task(self, task_id: str) -> Row:
        """The task, with the id of the report it submits (``report_id``; None for a generation)."""
        with self.store.read() as conn:
            row = fetch_one(conn, "SELECT t.*, r.id AS report_id FROM async_tasks t LEFT JOIN reports r"
                                  " ON r.pk = t.report_pk WHERE t.id = ?", (int(task_id),)) if _is_id(task_id) else None
        if row is None:
            raise NotFound(f"Async task {task_id[:40]} not found; task ids are the integers returned by "
                           f"POST {API}/ledgers/{{ledger_id}}/batch_generations and POST {API}/reports/"
                           "{report_id}/submit.")
        return row

    def unfinished_tasks(self) -> list[int]:
        """Tasks still pending or running (left by an earlier run of a file database), oldest first."""
        with self.store.read() as conn:
            rows = fetch_all(conn, "SELECT id FROM async_tasks WHERE state IN ('pending', 'running') ORDER BY id")
        return [row["id"] for row in rows]

    def start_task(self, task_id: int) -> Row | None:
        """Mark the task running and return it; None when it is gone or already finished."""
        with self.store.transaction() as conn:
            task = fetch_one(conn, "SELECT * FROM async_tasks WHERE id = ?", (task_id,))
            if task is None or task["state"] not in ("pending", "running"):
                return None
            preparing = "Preparing batches" if task["report_pk"] is None else "Preparing the submission"
            conn.execute("UPDATE async_tasks SET state = 'running', started_at = COALESCE(started_at, ?),"
                         " progress_description = ? WHERE id = ?", (iso(utcnow()), preparing, task_id))
        return task

    def task_plan(self, task: Row) -> generation.Plan:
        """What the task still has to make (partitions made before a restart are not made twice)."""
        start, end = datetime.fromisoformat(task["start_time"]), datetime.fromisoformat(task["end_time"])
        options = generation.Options.from_json(task["options"])
        with self.store.read() as conn:
            return generation.plan(conn, task["model_pk"], start, end, options)

    def task_progress(self, task_id: int, number: int, total: int, description: str | None = None) -> None:
        with self.store.transaction() as conn:
            conn.execute("UPDATE async_tasks SET progress = ?, progress_description = ? WHERE id = ?",
                         (int(100 * (number - 1) / total), description or f"Processing batch {number} of {total}",
                          task_id))

    def submission_steps(self, task: Row) -> list[str] | None:
        """A report submission's progress descriptions, one step each; None for a generation's task."""
        if task["report_pk"] is None:
            return None
        with self.store.read() as conn:
            return reporting.steps(conn, task["report_pk"])

    def make_batches(self, plan: generation.Plan, partition: generation.Partition, task_id: int) -> int:
        """Run the model on one partition and insert its batches; raises ``model.ModelInputError``."""
        with self.store.transaction() as conn:
            return generation.run_partition(conn, plan, partition, clock=utcnow, task_id=task_id)

    def finish_task(self, task_id: int, state: str, error: str | None) -> tuple[str, str | None]:
        """``complete``, or ``failed`` with its message, as it ends up: a failed generation's batches are deleted
        as it is marked; a submission allocates as it completes, or fails (the report back to draft) when the
        report no longer meets the requirements or the registry rejects it (``reporting.complete``)."""
        with self.store.transaction() as conn:
            task = fetch_one(conn, "SELECT * FROM async_tasks WHERE id = ?", (task_id,))
            if task is None:  # gone with a reset
                return state, error
            if task["report_pk"] is not None and state == "complete":
                error = reporting.complete(conn, task["report_pk"], iso(utcnow()))
                state = "failed" if error else state
            elif task["report_pk"] is not None:
                reporting.back_to_draft(conn, task["report_pk"], iso(utcnow()))
            elif state == "failed":
                conn.execute("DELETE FROM batches WHERE task_id = ?", (task_id,))
            conn.execute(
                "UPDATE async_tasks SET state = ?, progress = CASE WHEN ? = 'complete' THEN 100 ELSE progress END,"
                " progress_description = NULL, error_message = ?, finished_at = ? WHERE id = ?",
                (state, state, error, iso(utcnow()), task_id),
            )
        return state, error

    # -- batches -----------------------------------------------------------------------------------------------

    def ledger_batches(self, ledger_id: str, query: listing.ListQuery) -> tuple[Batches, Info]:
        with self.store.read() as conn:
            ledger = _ledger(conn, ledger_id)
            rows, info = listing.run(conn, LEDGER_BATCHES, ["b.ledger_pk = ?"], [ledger["pk"]], query)
            return _batches(conn, rows), info

    def batches(self, query: listing.ListQuery) -> tuple[Batches, Info]:
        with self.store.read() as conn:
            rows, info = listing.run(conn, ALL_BATCHES, [], [], query)
            return _batches(conn, rows), info

    def batch(self, batch_id: str) -> Batches:
        """One batch, with its detail's ``inputs``."""
        with self.store.read() as conn:
            row = _batch(conn, batch_id)
            return replace(_batches(conn, [row]), inputs=_inputs_read(conn, loads(row["input_dp_ids"])))

    def delete_batch(self, batch_id: str) -> None:
        with self.store.transaction() as conn:
            row = _batch(conn, batch_id)
            used_by = fetch_all(conn, "SELECT b.id FROM allocations a JOIN batches b ON b.pk = a.target_batch_pk"
                                      " WHERE a.source_batch_pk = ?", (row["pk"],))
            if used_by:
                raise Unprocessable(f"Batch {batch_id} is allocated to {', '.join(r['id'] for r in used_by)}; "
                                    "delete those batches first.")
            report = reporting.holding_report(conn, row["pk"])
            if report is not None:
                raise Unprocessable(f"Batch {batch_id} is on report '{report['name']}' ({report['id']}), which is "
                                    f"{report['status']}: a reported batch cannot be deleted.")
            conn.execute("DELETE FROM batches WHERE pk = ?", (row["pk"],))

    # -- reports -----------------------------------------------------------------------------------------------

    def reports(self, query: listing.ListQuery) -> tuple[reporting.Reports, Info]:
        with self.store.read() as conn:
            rows, info = listing.run(conn, reporting.REPORTS, [], [], query)
            return reporting.read(conn, rows), info

    def report(self, report_id: str) -> reporting.Reports:
        with self.store.read() as conn:
            return reporting.read(conn, [reporting.find(conn, report_id)])

    def update_report(self, report_id: str, name: str | None, batch_ids: list[str] | None) -> reporting.Reports:
        """PATCH: the checks and the change are one transaction (``reporting.update``)."""
        with self.store.transaction() as conn:
            return reporting.read(conn, [reporting.update(conn, report_id, name, batch_ids, iso(utcnow()))])

    def submit_report(self, report_id: str) -> tuple[Row, int]:
        """The report, now ``submitting``, and its new task's id, for the worker to run; or a 422 that changes
        nothing. Two racing submits cannot both pass: the checks and the task are one transaction."""
        with self.store.transaction() as conn:
            return reporting.submit(conn, report_id, iso(utcnow()))

    # -- projects and events -----------------------------------------------------------------------------------

    def project(self, project_id: str) -> Row:
        with self.store.read() as conn:
            return _project(conn, project_id)

    def events(self, project_id: str, query: listing.ListQuery) -> tuple[Events, Info]:
        with self.store.read() as conn:
            project = _project(conn, project_id)
            rows, info = listing.run(conn, EVENTS, ["project_id = ?"], [project["id"]], query)
            points: dict[int, list[Row]] = {row["pk"]: [] for row in rows}
            if rows:
                wanted, parameter = in_list(list(points))
                for point in fetch_all(conn, "SELECT dp.event_pk, dp.id, dp.value, dp.status, t.slug, t.name, t.unit"
                                             " FROM data_points dp JOIN data_point_types t ON t.id = dp.type_id"
                                             f" WHERE dp.event_pk IN {wanted} ORDER BY dp.pk", (parameter,)):
                    points[point["event_pk"]].append(point)
            return Events(rows, points), info


# --- reads shared by the methods above ------------------------------------------------------------------------


def _is_id(text: str) -> bool:
    """An integer id as SQLite can hold it (a 30-digit "id" is simply not found, never a 500)."""
    return text.isascii() and text.isdigit() and len(text) <= 18


def _ledger(conn: sqlite3.Connection, ledger_id: str, *, with_model: bool = False) -> Row:
    """The ledger's row; ``with_model`` joins its model's id and name in (``LEDGER_SELECT``), to render it."""
    sql = f"{LEDGER_SELECT} WHERE l.id = ?" if with_model else "SELECT * FROM ledgers WHERE id = ?"
    row = fetch_one(conn, sql, (ledger_id,))
    if row is None:
        raise NotFound(f"Ledger {ledger_id[:60]} not found; list ledgers with GET {API}/ledgers.")
    return row


def _project(conn: sqlite3.Connection, project_id: str) -> Row:
    row = fetch_one(conn, "SELECT * FROM projects WHERE id = ?", (int(project_id),)) if _is_id(project_id) else None
    if row is None:
        raise NotFound(f"Project {project_id[:40]} not found.")
    return row


def _batch(conn: sqlite3.Connection, batch_id: str) -> Row:
    row = fetch_one(conn, f"{BATCH_SELECT} WHERE b.id = ?", (batch_id,))
    if row is None:
        raise NotFound(f"Batch {batch_id[:60]} not found.")
    return row


def _model_of(ledger: Row) -> int:
    if ledger["model_pk"] is None:
        raise Unprocessable(f"Ledger '{ledger['name']}' ({ledger['id']}) has no linked model (latest_model is null), "
                            "so batches cannot be generated on it; link a model to the ledger in Mangrove.")
    return int(ledger["model_pk"])


def _nothing_to_generate(conn: sqlite3.Connection, ledger: Row, start: datetime, end: datetime) -> str:
    existing = fetch_value(conn, "SELECT COUNT(*) FROM batches WHERE ledger_pk = ? AND start_time >= ?"
                                 " AND end_time <= ?", (ledger["pk"], iso(start), iso(end)))
    span = f"{iso(start)} to {iso(end)}"
    if existing:
        return (f"Nothing to generate on '{ledger['name']}' for {span}: every partition with data already has a "
                f"batch ({existing} batch(es)). Delete batches (DELETE {API}/batches/{{batch_id}}) to generate them "
                "again.")
    return (f"Nothing to generate on '{ledger['name']}' for {span}: no whole month in that range has data for the "
            "ledger's model.")


def _refuse_overlap(conn: sqlite3.Connection, plan: generation.Plan, start: datetime, end: datetime) -> None:
    running = fetch_all(conn, "SELECT * FROM async_tasks WHERE state IN ('pending', 'running') AND report_pk IS NULL"
                              " AND start_time <= ? AND end_time >= ?", (iso(end), iso(start)))
    mine = {o.ledger_pk for o in plan.outputs}
    for task in running:
        if mine & set(json.loads(task["output_ledger_pks"])):
            raise Unprocessable(f"Async task {task['id']} is still generating batches that overlap this request "
                                f"({task['start_time']} to {task['end_time']}); wait for it to finish "
                                f"(GET {API}/async_tasks/{task['id']}) before generating again.")


def _batches(conn: sqlite3.Connection, rows: list[Row]) -> Batches:
    """Batch rows with their allocations and skipped types, each read in one query rather than one per batch."""
    pks = [row["pk"] for row in rows]
    allocations: dict[int, list[Row]] = {pk: [] for pk in pks}
    if pks:
        wanted, parameter = in_list(pks)
        for alloc in fetch_all(conn, "SELECT a.pk, a.source_batch_pk, a.amount, a.allocation_group, b.id AS target"
                                     " FROM allocations a JOIN batches b ON b.pk = a.target_batch_pk"
                                     f" WHERE a.source_batch_pk IN {wanted} ORDER BY a.pk", (parameter,)):
            allocations[alloc["source_batch_pk"]].append(alloc)
    reported = reporting.allocated(conn, pks)
    type_ids = {t for row in rows for t in loads(row["skipped_type_ids"])}
    types: dict[int, Row] = {}
    if type_ids:
        wanted, parameter = in_list(sorted(type_ids))
        types = {row["id"]: row for row in fetch_all(
            conn, f"SELECT id, slug, name, unit FROM data_point_types WHERE id IN {wanted}", (parameter,))}
    return Batches(rows, allocations, types, reported)


def _inputs_read(conn: sqlite3.Connection, dp_ids: list[str]) -> list[Row]:
    """The data points a batch's model run read, with their types and events, in the order of the events."""
    if not dp_ids:
        return []
    wanted, parameter = in_list(dp_ids)
    return fetch_all(
        conn,
        "SELECT dp.id, dp.type_id, dp.value, dp.status, t.slug, t.name, t.unit, e.id AS event_id,"
        " e.slug AS event_slug, e.event_type, e.tracking_id, e.start_time, e.end_time FROM data_points dp"
        " JOIN data_point_types t ON t.id = dp.type_id JOIN events e ON e.pk = dp.event_pk"
        f" WHERE dp.id IN {wanted} ORDER BY e.start_time, dp.pk",
        (parameter,),
    )
