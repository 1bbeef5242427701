"""Batch generation: which partitions a request covers, and making the batches of one partition.

Decisions (mangrove-api.md leaves them open; the emulator docstring repeats them):

* A time range covers the **whole** months inside it: ``2025-01-15 → 2025-03-31`` covers February and March.
* A partition is a month (``partition_type: time``) or a month and a feedstock (``feedstock``), and it
  exists only where the period has data for the model (a month with no pyrolysis run has no batch).
* Generation only creates batches for partitions that have none yet on that ledger; the preview counts
  only those. Deleting a batch makes its partition available again.
* Manual-select inputs (another ledger's output) must be named with ``data_point_ids`` (the upstream
  batches' output data points, ``dp_…``) or ``batch_amounts``; otherwise the request is refused (422).
* ``skipped_data_point_type_ids`` applies to every partition of the request, as documented: a month that has
  readings of a skipped type is computed without them (that input counts as zero). Each batch records what
  was skipped (``batches.skipped_type_ids``), and its detail lists each skipped type as a ``skipped_input``
  placeholder (``resources``).
"""

from __future__ import annotations

import sqlite3
from calendar import monthrange
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from . import model
from .errors import Unprocessable
from .store import dumps, fetch_all, fetch_one, fetch_value, friendly_id, in_list, iso, loads

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class BatchAmount:
    batch_id: str
    amount: float | None = None
    allocation_group: str | None = None


@dataclass(frozen=True)
class Options:
    data_point_ids: tuple[str, ...] | None = None
    batch_amounts: tuple[BatchAmount, ...] = ()
    skipped_type_ids: tuple[int, ...] = ()

    def to_json(self) -> str:
        return dumps({
            "data_point_ids": list(self.data_point_ids) if self.data_point_ids is not None else None,
            "batch_amounts": [vars(b) for b in self.batch_amounts],
            "skipped_data_point_type_ids": list(self.skipped_type_ids),
        })

    @classmethod
    def from_json(cls, text: str) -> Options:
        raw = loads(text)
        ids = raw["data_point_ids"]
        return cls(
            data_point_ids=tuple(ids) if ids is not None else None,
            batch_amounts=tuple(BatchAmount(**b) for b in raw["batch_amounts"]),
            skipped_type_ids=tuple(raw["skipped_data_point_type_ids"]),
        )


@dataclass(frozen=True)
class Output:
    """One ledger a model run writes to."""

    ledger_pk: int
    ledger_id: str
    ledger_name: str
    unit: str | None
    abbreviation: str
    output_key: str
    output_type_id: int
    output_name: str


@dataclass
class Partition:
    key: str
    start: datetime
    end: datetime
    feedstock: str | None
    missing: list[Output]
    upstream: list[tuple[sqlite3.Row, float, str | None]] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.key[:7]} ({self.feedstock})" if self.feedstock else self.key


@dataclass
class Plan:
    model_pk: int
    kind: str
    model_name: str
    project_id: int
    outputs: list[Output]
    partitions: list[Partition]
    options: Options
    skipped_slugs: set[str]
    selected_points: set[str] | None
    input_slugs: set[str] = field(default_factory=set)

    def counts(self) -> list[tuple[Output, int]]:
        return [(out, sum(out in p.missing for p in self.partitions)) for out in self.outputs]

    @property
    def batch_count(self) -> int:
        return sum(len(p.missing) for p in self.partitions)


def whole_months(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """The calendar months lying entirely inside [start, end]."""
    months = []
    year, month = start.year, start.month
    while datetime(year, month, 1, tzinfo=UTC) <= end:
        first = datetime(year, month, 1, tzinfo=UTC)
        last = datetime(year, month, monthrange(year, month)[1], 23, 59, 59, tzinfo=UTC)
        if first >= start and last <= end:
            months.append((first, last))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def plan(conn: sqlite3.Connection, model_pk: int, start: datetime, end: datetime, options: Options) -> Plan:
    """Everything a preview counts and a generation makes, validated against the model's inputs."""
    model_row = fetch_one(conn, "SELECT * FROM models WHERE pk = ?", (model_pk,))
    assert model_row is not None
    outputs = _outputs(conn, model_pk)
    inputs = fetch_all(conn, "SELECT mi.*, t.slug, t.name FROM model_inputs mi JOIN data_point_types t"
                             " ON t.id = mi.type_id WHERE model_pk = ? ORDER BY position", (model_pk,))
    project_id = fetch_value(conn, "SELECT project_id FROM ledgers WHERE pk = ?", (outputs[0].ledger_pk,))
    skipped = _check_skipped(inputs, options.skipped_type_ids, model_row["name"])
    manual = [row for row in inputs if row["is_manual_select"]]
    the_plan = Plan(model_pk, model_row["kind"], model_row["name"], project_id, outputs, [], options, skipped, None,
                    {row["slug"] for row in inputs})
    months = whole_months(start, end)
    if manual:
        candidates = _manual_partitions(conn, manual, options, months, outputs)
    else:
        the_plan.selected_points = _check_event_points(conn, options.data_point_ids, project_id)
        if options.batch_amounts:
            raise Unprocessable(f"batch_amounts applies to models with manual-select inputs; "
                                f"'{model_row['name']}' has none: leave batch_amounts out")
        candidates = _data_partitions(conn, the_plan, months)
    existing = _existing_keys(conn, [o.ledger_pk for o in outputs])
    for partition in candidates:
        partition.missing = [o for o in outputs if (o.ledger_pk, partition.key) not in existing]
        if partition.missing:
            the_plan.partitions.append(partition)
    return the_plan


def _outputs(conn: sqlite3.Connection, model_pk: int) -> list[Output]:
    rows = fetch_all(
        conn,
        "SELECT l.pk, l.id, l.name, l.unit, l.abbreviation, mo.output_key, l.output_type_id, t.name AS output_name"
        " FROM model_outputs mo JOIN ledgers l ON l.pk = mo.ledger_pk"
        " JOIN data_point_types t ON t.id = l.output_type_id WHERE mo.model_pk = ? ORDER BY l.pk",
        (model_pk,),
    )
    return [Output(*row) for row in rows]


def _check_skipped(inputs: Sequence[sqlite3.Row], skipped: Iterable[int], model_name: str) -> set[str]:
    by_id = {row["type_id"]: row for row in inputs}
    unknown = [type_id for type_id in skipped if type_id not in by_id]
    if unknown:
        accepted = ", ".join(f"{row['type_id']} ({row['slug']})" for row in inputs)
        raise Unprocessable(f"skipped_data_point_type_ids: {', '.join(map(str, unknown))} "
                            f"{'is' if len(unknown) == 1 else 'are'} not an input of '{model_name}'; "
                            f"its inputs are {accepted}")
    manual_skipped = [by_id[t]["slug"] for t in skipped if by_id[t]["is_manual_select"]]
    if manual_skipped:
        raise Unprocessable(f"skipped_data_point_type_ids: the manual-select input {manual_skipped[0]} "
                            "cannot be skipped; name its data points with data_point_ids instead")
    return {by_id[t]["slug"] for t in skipped}


def _check_event_points(conn: sqlite3.Connection, ids: Sequence[str] | None, project_id: int) -> set[str] | None:
    if ids is None:
        return None
    wanted, parameter = in_list(sorted(set(ids)))
    known = {row[0] for row in fetch_all(
        conn,
        f"SELECT dp.id FROM data_points dp JOIN events e ON e.pk = dp.event_pk WHERE e.project_id = ?"
        f" AND dp.id IN {wanted}",
        (project_id, parameter),
    )} if ids else set()
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise Unprocessable(f"data_point_ids: unknown data point id(s) {_some(unknown)}; list the project's "
                            f"data points with GET /projects/{project_id}/events")
    return set(ids)


def _some(values: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(values[:limit])
    return shown if len(values) <= limit else f"{shown} and {len(values) - limit} more"


def _existing_keys(conn: sqlite3.Connection, ledger_pks: Sequence[int]) -> set[tuple[int, str]]:
    wanted, parameter = in_list(ledger_pks)
    rows = fetch_all(conn, f"SELECT ledger_pk, partition_key FROM batches WHERE ledger_pk IN {wanted}", (parameter,))
    return {(row[0], row[1]) for row in rows}


def events_in(conn: sqlite3.Connection, plan_: Plan, start: datetime, end: datetime,
              slug: str) -> list[tuple[model.EventValues, str | None, list[str]]]:
    """Events of one type in [start, end]: values by slug, feedstock, and the data point ids used."""
    rows = fetch_all(
        conn,
        "SELECT e.id AS event_id, e.event_type, e.feedstock, dp.id AS dp_id, t.slug, dp.value"
        " FROM events e JOIN data_points dp ON dp.event_pk = e.pk JOIN data_point_types t ON t.id = dp.type_id"
        " WHERE e.project_id = ? AND e.slug = ? AND e.start_time >= ? AND e.start_time <= ?"
        " ORDER BY e.start_time, e.pk, dp.pk",
        (plan_.project_id, slug, iso(start), iso(end)),
    )
    grouped: dict[str, tuple[str, str | None, dict[str, float | str], list[str]]] = {}
    for row in rows:
        if plan_.selected_points is not None and row["dp_id"] not in plan_.selected_points:
            continue
        if row["slug"] in plan_.skipped_slugs or row["slug"] not in plan_.input_slugs:
            continue  # the model reads only its inputs, and a batch lists only what it read
        _type, _feedstock, values, used = grouped.setdefault(
            row["event_id"], (row["event_type"], row["feedstock"], {}, [])
        )
        values[row["slug"]] = loads(row["value"])
        used.append(row["dp_id"])
    return [(model.EventValues(eid, etype, values), feedstock, used)
            for eid, (etype, feedstock, values, used) in grouped.items()]


def _data_partitions(conn: sqlite3.Connection, plan_: Plan, months: list[tuple[datetime, datetime]]) -> list[Partition]:
    partitions = []
    for first, last in months:
        key = first.strftime("%Y-%m")
        if plan_.kind == "dry_feedstock":
            feedstocks = sorted({f for _e, f, _u in events_in(conn, plan_, first, last, "feedstock-delivery") if f})
            partitions += [Partition(f"{key}|{f}", first, last, f, []) for f in feedstocks]
        elif events_in(conn, plan_, first, last, "pyrolysis-run"):
            partitions.append(Partition(key, first, last, None, []))
    return partitions


def _manual_partitions(conn: sqlite3.Connection, manual: Sequence[sqlite3.Row], options: Options,
                       months: list[tuple[datetime, datetime]], outputs: list[Output]) -> list[Partition]:
    """Partitions of a model whose input is other ledgers' batches, chosen by the caller."""
    upstream_pks = {pk for row in manual for pk in loads(row["upstream_ledger_pks"])}
    names = ", ".join(f"'{row['name']}' ({row['slug']})" for row in manual)
    if not options.data_point_ids and not options.batch_amounts:
        wanted, parameter = in_list(sorted(upstream_pks))
        ledgers = fetch_all(conn, f"SELECT id, name FROM ledgers WHERE pk IN {wanted} ORDER BY pk", (parameter,))
        where = ", ".join(f"'{r['name']}' ({r['id']})" for r in ledgers)
        raise Unprocessable(f"the manual-select input {names} needs data_point_ids: pass the output data points "
                            f"(dp_…) of the batches to use from {where}; list candidates with "
                            f"GET /ledgers/{{ledger_id}}/batches (model_run.output_data_points)")
    chosen: dict[str, tuple[sqlite3.Row, float | None, str | None]] = {}
    for dp_id in options.data_point_ids or ():
        row = fetch_one(conn, "SELECT * FROM batches WHERE output_dp_id = ?", (dp_id,))
        if row is None or row["ledger_pk"] not in upstream_pks:
            raise Unprocessable(f"data_point_ids: {dp_id} is not the output data point of a batch on an "
                                f"upstream ledger of {names}")
        chosen[row["id"]] = (row, None, None)
    for amount in options.batch_amounts:
        row = fetch_one(conn, "SELECT * FROM batches WHERE id = ?", (amount.batch_id,))
        if row is None or row["ledger_pk"] not in upstream_pks:
            raise Unprocessable(f"batch_amounts: {amount.batch_id} is not a batch on an upstream ledger of "
                                f"{names}")
        chosen[row["id"]] = (row, amount.amount, amount.allocation_group)
    by_month: dict[str, list[tuple[sqlite3.Row, float, str | None]]] = defaultdict(list)
    month_keys = {first.strftime("%Y-%m"): (first, last) for first, last in months}
    for batch_id, (row, asked, group) in chosen.items():
        if row["state"] != "complete":
            raise Unprocessable(f"{batch_id} is {row['state']}, not complete: it has no output to use")
        if row["start_time"][:7] not in month_keys:
            raise Unprocessable(f"{batch_id} covers {row['start_time'][:7]}, outside the requested period")
        balance = balance_of(conn, row)
        use = balance if asked is None else asked
        if use <= 0 or use > balance + 1e-9:
            raise Unprocessable(f"batch_amounts: {batch_id} has {balance:g} t left on its ledger; "
                                f"ask for an amount above 0 and at most that")
        by_month[row["start_time"][:7]].append((row, use, group))
    return [Partition(key, *month_keys[key], None, [], upstream) for key, upstream in sorted(by_month.items())]


def balance_of(conn: sqlite3.Connection, batch: sqlite3.Row) -> float:
    """What remains of a batch's output after allocations to downstream batches and to complete reports."""
    used = fetch_value(conn, "SELECT COALESCE(SUM(amount), 0) FROM allocations WHERE source_batch_pk = ?",
                       (batch["pk"],))
    reported = fetch_value(conn, "SELECT COALESCE(SUM(i.amount), 0) FROM report_inclusions i JOIN reports r"
                                 " ON r.pk = i.report_pk WHERE i.batch_pk = ? AND r.status = 'complete'",
                           (batch["pk"],))
    return round((batch["value"] or 0.0) - used - reported, 3) + 0.0  # + 0.0: never -0.0


def run_partition(conn: sqlite3.Connection, plan_: Plan, partition: Partition, *, clock: Clock,
                  task_id: int | None) -> int:
    """Compute one partition and insert its missing batches; returns how many were made.

    Raises ``model.ModelInputError`` when a required input is missing (the caller fails the task).
    """
    results, used, error = _compute(conn, plan_, partition)
    made = 0
    for output in partition.missing:
        if fetch_one(conn, "SELECT 1 FROM batches WHERE ledger_pk = ? AND partition_key = ?",
                     (output.ledger_pk, partition.key)):
            continue  # made meanwhile by a concurrent model run: never a duplicate
        result = results.get(output.output_key) if results else None
        now = iso(clock())
        cur = conn.execute(
            "INSERT INTO batches (id, ledger_pk, partition_key, tracking_id, feedstock, start_time, end_time, state,"
            " value, output_dp_id, calculations, input_dp_ids, error_message, task_id, created_at, updated_at,"
            " skipped_type_ids) VALUES ('pending', ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?)",
            (output.ledger_pk, partition.key, _tracking_id(output, partition), partition.feedstock,
             iso(partition.start), iso(partition.end), "failed" if error else "complete",
             result.value if result else None,
             dumps([c.to_json() for c in result.calculations] if result else []), dumps(used), error, task_id, now,
             now, dumps(sorted(set(plan_.options.skipped_type_ids)))),
        )
        pk = int(cur.lastrowid or 0)
        conn.execute("UPDATE batches SET id = ?, output_dp_id = ? WHERE pk = ?",
                     (friendly_id("bat", "batch", pk), friendly_id("dp", "batch-output", pk), pk))
        for upstream, amount, group in partition.upstream:
            conn.execute("INSERT INTO allocations (source_batch_pk, target_batch_pk, amount, allocation_group)"
                         " VALUES (?, ?, ?, ?)", (upstream["pk"], pk, amount, group))
        made += 1
    return made


def _tracking_id(output: Output, partition: Partition) -> str:
    suffix = f"-{partition.feedstock}" if partition.feedstock else ""
    return f"{output.abbreviation}-{partition.key[:7]}{suffix}"


def _compute(conn: sqlite3.Connection, plan_: Plan,
             partition: Partition) -> tuple[dict[str, model.ModelResult] | None, list[str], str | None]:
    """The model's results for one partition, the data point ids it read, and a per-batch error if any."""
    label = partition.label
    try:
        if plan_.kind == "biochar_applied":
            used = [row["output_dp_id"] for row, _amount, _group in partition.upstream]
            return {"biochar_applied": model.biochar_applied(a for _r, a, _g in partition.upstream)}, used, None
        if plan_.kind == "dry_feedstock":
            deliveries = [e for e in events_in(conn, plan_, partition.start, partition.end, "feedstock-delivery")
                          if e[1] == partition.feedstock]
            used = [dp for _e, _f, ids in deliveries for dp in ids]
            result = model.dry_feedstock([e for e, _f, _u in deliveries], partition=label,
                                         skipped=plan_.skipped_slugs)
            return {"dry_feedstock": result}, used, None
        runs = events_in(conn, plan_, partition.start, partition.end, "pyrolysis-run")
        used = [dp for _e, _f, ids in runs for dp in ids]
        if plan_.kind == "biochar_only":
            result = model.biochar_produced([e for e, _f, _u in runs], partition=label, skipped=plan_.skipped_slugs)
            return {"biochar_produced": result}, used, None
        deliveries = events_in(conn, plan_, partition.start, partition.end, "feedstock-delivery")
        used += [dp for _e, _f, ids in deliveries for dp in ids]
        return model.net_carbon_removal([e for e, _f, _u in deliveries], [e for e, _f, _u in runs],
                                        partition=label, skipped=plan_.skipped_slugs), used, None
    except model.ModelValueError as exc:
        return None, [], str(exc)
