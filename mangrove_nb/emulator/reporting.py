"""Reports (registry submission): filling a report with batches and submitting it, as rules the backend applies.

mangrove-api.md ("Reports (registry submission)") documents the endpoints and records these decisions:

* Statuses: ``draft`` → ``submitting`` (its async task running) → ``complete`` (the registry accepted it). A
  failed submission task puts the report back to ``draft``; the task's ``error_message`` says why.
* ``PATCH`` (draft reports only, else 422) renames a report and/or **replaces** its batches with ``batch_ids``
  (a set: order and repeats do not matter; ``[]`` empties it). Each batch of the new set is included at its
  ``ledger_balance`` at that PATCH (``inclusions[].amount``); a PATCH without ``batch_ids`` leaves them as they
  were. An unknown batch id is a 404; a batch that is not ``complete``, has no balance left, belongs to another
  project or is on another report that is not ``draft`` is a 422, one message per refused batch, naming it. The
  emulator also refuses a batch whose generation is still running (its task may yet fail and delete it) and a
  batch in another unit than the report's first batch (an allocation is one sum, in one unit). A refusal lists at
  most ``MAX_MESSAGES`` batches, then how many more it left out.
* ``POST …/submit`` answers 202 and starts a task (``worker``), or 422 with the documented message ("Report
  does not meet submission requirements") and one message per unmet requirement: at least one batch; every
  batch still there, still ``complete``, on no other report that is ``submitting`` or ``complete``, and with
  its included amount still available. A report already ``submitting`` or ``complete`` answers 422 and nothing
  changes. The task checks the requirements again as it completes (a generation may have used a balance
  meanwhile).
* When the task completes, the report gets its ``allocation`` (``amount`` = the sum of its inclusions, in their
  unit) and each batch's ``ledger_balance`` drops by its amount (``generation.balance_of``, and the batch's
  rendering in ``resources``); ``GET /batches/{id}`` lists the report in ``report_allocations``. Each batch's
  share is an allocation record of its own (``id``, ``amount`` = that batch's amount, ``unit``), so summing a
  batch list's allocations never counts a report's total twice.
* The emulated registry accepts every submission, except of a report whose ``registry_rejection`` is set (a
  seeded demo: "Rejected by registry (demo)"): its task fails with that reason and nothing is allocated.
* A batch on a ``submitting`` or ``complete`` report cannot be deleted. One on a draft can: the inclusion stays
  (with the id and tracking id it had), and the submission refuses it until a PATCH leaves it out.

The functions here take the backend's connection inside its transaction; they raise ``errors``' refusals.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from . import API, listing
from .errors import NotFound, Unprocessable
from .generation import balance_of
from .store import fetch_all, fetch_one, fetch_value, in_list

Row = sqlite3.Row

TASK_TYPE = "Reporting::ReportSubmission"
DOCUMENTED_REFUSAL = "Report does not meet submission requirements"
# A refusal lists one message per batch up to this many, then says how many more it left out.
MAX_MESSAGES = 50
_SLACK = 1e-9  # amounts are rounded to 3 decimals: a float difference below this is none

REPORTS = listing.Collection(
    "SELECT * FROM reports",
    sortable={"id": "id", "name": "name", "status": "status", "created_at": "created_at", "updated_at": "updated_at"},
    filterable={"project_id": listing.Filterable("project_id", listing.sql_integer),
                "status": listing.Filterable("status"), "id": listing.Filterable("id")},
    default_sort="pk", tiebreak="pk",
)

# A batch as a report checks it: its ledger's project and unit, and the state of the task that made it.
_BATCH = ("SELECT b.pk, b.id, b.tracking_id, b.state, b.value, l.id AS ledger_id, l.project_id, l.unit,"
          " t.id AS task_id, t.state AS task_state FROM batches b JOIN ledgers l ON l.pk = b.ledger_pk"
          " LEFT JOIN async_tasks t ON t.id = b.task_id")


@dataclass(frozen=True)
class Reports:
    """Report rows and the inclusions of each (by report pk, in the order they were included)."""

    rows: list[Row]
    inclusions: dict[int, list[Row]]


def read(conn: sqlite3.Connection, rows: list[Row]) -> Reports:
    """The reports' inclusions, read in one query."""
    inclusions: dict[int, list[Row]] = {row["pk"]: [] for row in rows}
    if rows:
        wanted, parameter = in_list(list(inclusions))
        for item in fetch_all(conn, f"SELECT * FROM report_inclusions WHERE report_pk IN {wanted} ORDER BY pk",
                              (parameter,)):
            inclusions[item["report_pk"]].append(item)
    return Reports(rows, inclusions)


def find(conn: sqlite3.Connection, report_id: str) -> Row:
    row = fetch_one(conn, "SELECT * FROM reports WHERE id = ?", (report_id,))
    if row is None:
        raise NotFound(f"Report {report_id[:60]} not found; list reports with GET {API}/reports.")
    return row


def allocated(conn: sqlite3.Connection, batch_pks: list[int]) -> dict[int, list[Row]]:
    """Per batch pk, its allocations to complete reports (the inclusion and its report), oldest first."""
    found: dict[int, list[Row]] = {pk: [] for pk in batch_pks}
    if batch_pks:
        wanted, parameter = in_list(batch_pks)
        for row in fetch_all(conn, "SELECT i.pk, i.batch_pk, i.amount, i.unit, r.id AS report_id, r.name,"
                                   " r.report_type, r.status FROM report_inclusions i JOIN reports r"
                                   f" ON r.pk = i.report_pk WHERE r.status = 'complete' AND i.batch_pk IN {wanted}"
                                   " ORDER BY i.pk", (parameter,)):
            found[row["batch_pk"]].append(row)
    return found


def holding_report(conn: sqlite3.Connection, batch_pk: int, besides: int | None = None) -> Row | None:
    """The submitting or complete report a batch is on, other than report ``besides`` (pk), if any."""
    return fetch_one(conn, "SELECT r.* FROM report_inclusions i JOIN reports r ON r.pk = i.report_pk"
                           " WHERE i.batch_pk = ? AND r.status != 'draft' AND r.pk IS NOT ? ORDER BY r.pk",
                     (batch_pk, besides))


def update(conn: sqlite3.Connection, report_id: str, name: str | None, batch_ids: list[str] | None,
           now: str) -> Row:
    """PATCH: rename and/or replace the batches of a draft report; the report as it is now."""
    report = find(conn, report_id)
    if report["status"] != "draft":
        raise Unprocessable(f"Report {report['id']} is {report['status']}: only draft reports can be updated.")
    if batch_ids is not None:
        include(conn, report, _checked_batches(conn, report, list(dict.fromkeys(batch_ids))))
    if name is not None:
        conn.execute("UPDATE reports SET name = ? WHERE pk = ?", (name, report["pk"]))
    conn.execute("UPDATE reports SET updated_at = ? WHERE pk = ?", (now, report["pk"]))
    row = fetch_one(conn, "SELECT * FROM reports WHERE pk = ?", (report["pk"],))
    assert row is not None
    return row


def include(conn: sqlite3.Connection, report: Row, batches: list[Row]) -> None:
    """Replace the report's inclusions with these batches (``_BATCH`` rows), each at its balance now."""
    conn.execute("DELETE FROM report_inclusions WHERE report_pk = ?", (report["pk"],))
    for batch in batches:
        conn.execute("INSERT INTO report_inclusions (report_pk, batch_pk, batch_id, tracking_id, ledger_id, amount,"
                     " unit) VALUES (?, ?, ?, ?, ?, ?, ?)", (report["pk"], batch["pk"], batch["id"],
                                                             batch["tracking_id"], batch["ledger_id"],
                                                             balance_of(conn, batch), batch["unit"]))


def batches_by_id(conn: sqlite3.Connection, batch_ids: list[str]) -> dict[str, Row]:
    """The batches with these ids, as a report checks them (``_BATCH``); unknown ids are simply absent."""
    if not batch_ids:
        return {}
    wanted, parameter = in_list(batch_ids)
    return {row["id"]: row for row in fetch_all(conn, f"{_BATCH} WHERE b.id IN {wanted}", (parameter,))}


def _checked_batches(conn: sqlite3.Connection, report: Row, batch_ids: list[str]) -> list[Row]:
    found = batches_by_id(conn, batch_ids)
    unknown = [batch_id for batch_id in batch_ids if batch_id not in found]
    if unknown:
        raise NotFound(*_capped([f"Batch {batch_id[:60]} not found; list batches with GET {API}/batches."
                                 for batch_id in unknown]))
    batches = [found[batch_id] for batch_id in batch_ids]
    problems = []
    for batch in batches:
        problem = _refusal(conn, report, batch, unit=batches[0]["unit"], first=batches[0]["id"])
        if problem:
            problems.append(f"Batch {_named(batch)} {problem}")
    if problems:
        raise Unprocessable(*_capped(problems))
    return batches


def _refusal(conn: sqlite3.Connection, report: Row, batch: Row, *, unit: str | None, first: str) -> str | None:
    """Why a report cannot include this batch, or None."""
    if batch["state"] != "complete":
        return f"is {batch['state']}, not complete: only complete batches can be included in a report."
    if batch["task_state"] in ("pending", "running"):
        return (f"is still being generated (async task {batch['task_id']}); include it once the task is "
                "complete.")
    if batch["project_id"] != report["project_id"]:
        return (f"belongs to project {batch['project_id']}, not to this report's project {report['project_id']}; "
                "a report includes batches of its own project only.")
    holder = holding_report(conn, batch["pk"], besides=report["pk"])
    if holder is not None:
        return (f"is already on report '{holder['name']}' ({holder['id']}), which is {holder['status']}: a batch "
                "is reported once.")
    balance = balance_of(conn, batch)
    if balance <= 0:
        return f"has no balance left on its ledger ({balance:g} {batch['unit']}): there is nothing to report."
    if batch["unit"] != unit:
        return (f"is in {batch['unit']}, and the report's first batch ({first}) in {unit}: a report's allocation "
                "is one sum, so its batches share a unit.")
    return None


def submit(conn: sqlite3.Connection, report_id: str, now: str) -> tuple[Row, int]:
    """POST …/submit: the report marked ``submitting`` and the id of its new task (``pending``)."""
    report = find(conn, report_id)
    if report["status"] != "draft":
        task = fetch_value(conn, "SELECT MAX(id) FROM async_tasks WHERE report_pk = ?", (report["pk"],))
        by = f" (async task {task})" if task is not None else ""
        detail = ("it is being submitted" if report["status"] == "submitting" else "the registry accepted it")
        raise Unprocessable(DOCUMENTED_REFUSAL, f"Report {report['id']} is {report['status']}{by}: {detail}, and a "
                                                "report is submitted once.")
    problems = unmet(conn, report)
    if problems:
        raise Unprocessable(DOCUMENTED_REFUSAL, *_capped(problems))
    conn.execute("UPDATE reports SET status = 'submitting', updated_at = ? WHERE pk = ?", (now, report["pk"]))
    cur = conn.execute(
        "INSERT INTO async_tasks (type, state, progress, created_at, ledger_pk, model_pk, project_id, start_time,"
        " end_time, options, output_ledger_pks, report_pk) VALUES (?, 'pending', 0, ?, 0, 0, ?, '', '', '{}', '[]', ?)",
        (TASK_TYPE, now, report["project_id"], report["pk"]),
    )
    row = fetch_one(conn, "SELECT * FROM reports WHERE pk = ?", (report["pk"],))
    assert row is not None
    return row, int(cur.lastrowid or 0)


def unmet(conn: sqlite3.Connection, report: Row) -> list[str]:
    """The submission requirements the report does not meet, one message each (empty: it may be submitted)."""
    inclusions = fetch_all(conn, "SELECT * FROM report_inclusions WHERE report_pk = ? ORDER BY pk", (report["pk"],))
    if not inclusions:
        return [f"Report {report['id']} has no batches: include at least one with PATCH {API}/reports/"
                f"{report['id']} and {{\"report\": {{\"batch_ids\": [\"bat_…\"]}}}}."]
    found = {row["pk"]: row for row in batches_by_id(conn, [i["batch_id"] for i in inclusions]).values()}
    problems = []
    for item in inclusions:
        batch = found.get(item["batch_pk"])
        name = f"{item['batch_id']} ({item['tracking_id']})" if item["tracking_id"] else item["batch_id"]
        holder = holding_report(conn, batch["pk"], besides=report["pk"]) if batch is not None else None
        if batch is None:
            problems.append(f"Batch {name} was deleted after it was included; PATCH the report's batch_ids "
                            "without it.")
        elif batch["state"] != "complete":
            problems.append(f"Batch {name} is no longer complete ({batch['state']}); PATCH the report's "
                            "batch_ids without it.")
        elif holder is not None:
            problems.append(f"Batch {name} is on report '{holder['name']}' ({holder['id']}), which is "
                            f"{holder['status']}: a batch is reported once; PATCH this report's batch_ids without "
                            "it.")
        elif (balance := balance_of(conn, batch)) + _SLACK < item["amount"]:
            problems.append(f"Batch {name} has {balance:g} {item['unit']} left on its ledger, less than the "
                            f"{item['amount']:g} {item['unit']} included: its amount is no longer available; "
                            "PATCH the report's batch_ids again to include its current balance, or without it.")
    return problems


def complete(conn: sqlite3.Connection, report_pk: int, now: str) -> str | None:
    """The end of a submission task: allocate, or put the report back to draft and say why (the task fails)."""
    report = fetch_one(conn, "SELECT * FROM reports WHERE pk = ?", (report_pk,))
    if report is None or report["status"] != "submitting":
        return "The report is gone or no longer submitting (the emulator was reset); nothing was allocated."
    problems = unmet(conn, report)
    if problems:
        back_to_draft(conn, report_pk, now)
        return ("The report no longer meets the submission requirements, so it was not sent to the registry: "
                + " ".join(problems) + " The report is back to draft; nothing was allocated.")
    if report["registry_rejection"]:
        back_to_draft(conn, report_pk, now)
        return (f"The registry rejected the report: {report['registry_rejection']} The report is back to draft; "
                "nothing was allocated.")
    allocate(conn, report, now)
    return None


def allocate(conn: sqlite3.Connection, report: Row, now: str) -> None:
    """The registry accepted the report: its allocation, and its batches' balances drop by their amounts."""
    inclusions = fetch_all(conn, "SELECT * FROM report_inclusions WHERE report_pk = ?", (report["pk"],))
    number = fetch_value(conn, "SELECT COALESCE(MAX(allocation_id), 0) + 1 FROM reports")
    conn.execute("UPDATE reports SET status = 'complete', updated_at = ?, allocation_id = ?, allocation_amount = ?,"
                 " allocation_unit = ?, allocation_created_at = ? WHERE pk = ?",
                 (now, number, round(sum(i["amount"] for i in inclusions), 3), inclusions[0]["unit"], now,
                  report["pk"]))
    wanted, parameter = in_list([i["batch_pk"] for i in inclusions])
    conn.execute(f"UPDATE batches SET updated_at = ? WHERE pk IN {wanted}", (now, parameter))


def back_to_draft(conn: sqlite3.Connection, report_pk: int, now: str) -> None:
    conn.execute("UPDATE reports SET status = 'draft', updated_at = ? WHERE pk = ? AND status = 'submitting'",
                 (now, report_pk))


def steps(conn: sqlite3.Connection, report_pk: int) -> list[str]:
    """What a submission task reports as its progress: each batch checked, then the registry."""
    count = fetch_value(conn, "SELECT COUNT(*) FROM report_inclusions WHERE report_pk = ?", (report_pk,))
    return [f"Checking batch {n} of {count}" for n in range(1, count + 1)] + ["Submitting to the registry"]


def _named(batch: Row) -> str:
    return f"{batch['id']} ({batch['tracking_id']})" if batch["tracking_id"] else str(batch["id"])


def _capped(messages: list[str]) -> list[str]:
    if len(messages) <= MAX_MESSAGES:
        return messages
    return [*messages[:MAX_MESSAGES], f"… and {len(messages) - MAX_MESSAGES:,} more batch(es) refused for the same "
                                      "kinds of reasons."]

