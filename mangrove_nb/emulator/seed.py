"""Seeded, deterministic data: one biochar project from 2024-01 to 2025-12.

* Project 123, "Cascade Biochar Facility".
* Feedstock deliveries (pine residue, almond shells, corn stover) with mass in U.S. ton, moisture in %,
  transport distance in mile and the feedstock type; pyrolysis runs with biochar mass (U.S. ton), organic
  carbon content (%) and electricity (kWh).
* May 2025 is a maintenance shutdown: no deliveries and no runs (a realistic gap).
* One pyrolysis run in November 2025 has no electricity reading (a failed meter): generating that month
  fails unless electricity is skipped with ``skipped_data_point_type_ids``.
* One almond-shell delivery in October 2024 was typed with 112 % moisture: its batch is ``failed``.
* Ledgers that exercise every branch of the workflow (see ``LEDGERS``); 2024 batches are already generated
  on the main ledgers (Net Carbon Removal, Biochar Produced, Dry Feedstock Delivered); 2025 is left for
  the user.
* Three quarterly reports (``REPORTS``; ``reporting``): "2024Q4 Quarterly Report", complete, with the three
  2024Q4 Net Carbon Removal batches allocated to it (their ``ledger_balance`` is 0); "2025Q1 Quarterly
  Report", a draft without batches, to fill once Q1 2025 is generated; and "Rejected by registry (demo)", a
  draft holding the 2024Q3 Net Carbon Removal batches whose submission the emulated registry rejects (its
  ``registry_rejection``): the task fails with that reason and the report goes back to draft.

Everything comes from one ``random.Random`` with a fixed seed, so two emulators hold the same data.
"""

from __future__ import annotations

import random
import sqlite3
from calendar import monthrange
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from . import generation, model, reporting
from .store import Store, dumps, friendly_id, iso

PROJECT_ID = 123
SEED = 20240101
FIRST_MONTH = (2024, 1)
LAST_MONTH = (2025, 12)
SHUTDOWN_MONTH = (2025, 5)
METER_FAULT_MONTH = (2025, 11)
TYPO_MONTH = (2024, 10)
SEEDED_AT = datetime(2025, 1, 10, 9, 0, tzinfo=UTC)

FEEDSTOCKS = {
    "pine-residue": ("Pine residue", (24.0, 34.0), (18.0, 32.0), (35.0, 110.0)),
    "almond-shells": ("Almond shells", (20.0, 28.0), (8.0, 14.0), (60.0, 140.0)),
    "corn-stover": ("Corn stover", (18.0, 26.0), (12.0, 22.0), (15.0, 60.0)),
}

# id, slug, name, unit, value_type, category, subcategory
DATA_POINT_TYPES = [
    (1, model.FEEDSTOCK_MASS, "Mass of Feedstock Delivery", "U.S. ton", "number", "input", "feedstock"),
    (2, model.TRANSPORT_DISTANCE, "Transport Distance", "mile", "number", "input", "transport"),
    (3, model.MOISTURE, "Feedstock Moisture Content", "%", "number", "input", "feedstock"),
    (4, model.FEEDSTOCK_TYPE, "Feedstock Type", None, "string", "input", "feedstock"),
    (5, model.BIOCHAR_MASS, "Mass of Biochar Produced", "U.S. ton", "number", "input", "production"),
    (6, model.CARBON_CONTENT, "Biochar Organic Carbon Content", "%", "number", "input", "production"),
    (7, model.ELECTRICITY, "Electricity Consumption", "kWh", "number", "input", "energy"),
    (8, model.BIOCHAR_PRODUCED_OUTPUT, "Biochar Produced", "t", "number", "input", "biochar"),
    (101, "net-carbon-removal", "Net Carbon Removal", "t", "number", "output", "removal"),
    (102, "biochar-produced-output", "Biochar Produced", "t", "number", "output", "production"),
    (103, "dry-feedstock-delivered", "Dry Feedstock Delivered", "t", "number", "output", "feedstock"),
    (104, "biochar-applied-to-soil", "Biochar Applied to Soil", "t", "number", "output", "application"),
]


@dataclass(frozen=True)
class LedgerSeed:
    key: str
    name: str
    unit: str
    partition_type: str
    model_kind: str | None
    output_type_id: int | None
    abbreviation: str


LEDGERS = [
    LedgerSeed("ncr", "Net Carbon Removal", "t", "time", "biochar_cdr", 101, "NCR"),
    LedgerSeed("bp", "Biochar Produced", "t", "time", "biochar_only", 102, "BCP"),
    LedgerSeed("dfd", "Dry Feedstock Delivered", "t", "feedstock", "dry_feedstock", 103, "DFD"),
    LedgerSeed("bas", "Biochar Applied to Soil", "t", "time", "biochar_applied", 104, "BAS"),
    LedgerSeed("cri", "Credits Issued", "tCO2e", "time", None, None, "CRI"),
]

# kind -> (model name, [(output ledger key, output key)], [(type id, manual select, groups, upstream keys)])
ModelInput = tuple[int, bool, list[str], list[str]]
MODELS: dict[str, tuple[str, list[tuple[str, str]], list[ModelInput]]] = {
    "biochar_cdr": (
        "Biochar Carbon Removal Model",
        [("ncr", "net_carbon_removal"), ("bp", "biochar_produced")],
        [(1, False, [], []), (2, False, [], []), (5, False, [], []), (6, False, [], []), (7, False, [], [])],
    ),
    "biochar_only": ("Biochar Production Model", [("bp", "biochar_produced")], [(5, False, [], [])]),
    "dry_feedstock": (
        "Feedstock Intake Model",
        [("dfd", "dry_feedstock")],
        [(1, False, [], []), (3, False, [], []), (4, False, [], [])],
    ),
    "biochar_applied": (
        "Soil Application Model",
        [("bas", "biochar_applied")],
        [(8, True, ["soil-application"], ["bp"])],
    ),
}


def seed(store: Store) -> None:
    """Fill an empty database with the demo project, its events, ledgers and 2024 batches."""
    rng = random.Random(SEED)
    with store.transaction() as conn:
        _project(conn)
        conn.executemany(
            "INSERT INTO data_point_types (id, slug, name, unit, value_type, category, subcategory)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            DATA_POINT_TYPES,
        )
        _events(conn, rng)
        _ledgers_and_models(conn)
        conn.execute("INSERT INTO meta (key, value) VALUES ('seeded', ?)", (iso(SEEDED_AT),))
    _batches_for_2024(store)
    _reports(store)


def _project(conn: sqlite3.Connection) -> None:
    conn.execute(
        "INSERT INTO projects (id, name, description, project_type, country, state, methodology,"
        " registry_name, credit_types, project_status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            PROJECT_ID,
            "Cascade Biochar Facility",
            "Slow pyrolysis of forestry and agricultural residues into biochar applied to farmland.",
            "Biochar",
            "US",
            "Washington",
            "Puro Biochar Methodology v3 2023",
            "Puro.Earth",
            dumps(["CORC"]),
            "ACTIVE",
        ),
    )


def _months() -> list[tuple[int, int]]:
    months, (year, month) = [], FIRST_MONTH
    while (year, month) <= LAST_MONTH:
        months.append((year, month))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def _events(conn: sqlite3.Connection, rng: random.Random) -> None:
    counters = {"event": 0, "point": 0}

    def add_event(slug: str, event_type: str, start: datetime, hours: int, tracking: str,
                  feedstock: str | None, points: list[tuple[int, float | str]]) -> None:
        counters["event"] += 1
        created = iso(start + timedelta(hours=hours, minutes=30))
        cur = conn.execute(
            "INSERT INTO events (id, project_id, slug, event_type, tracking_id, feedstock, start_time, end_time,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (friendly_id("evt", "event", counters["event"]), PROJECT_ID, slug, event_type, tracking, feedstock,
             iso(start), iso(start + timedelta(hours=hours)), created, created),
        )
        for type_id, value in points:
            counters["point"] += 1
            conn.execute(
                "INSERT INTO data_points (id, event_pk, type_id, value, status) VALUES (?, ?, ?, ?, 'complete')",
                (friendly_id("in", "point", counters["point"]), cur.lastrowid, type_id, dumps(value)),
            )

    for year, month in _months():
        if (year, month) == SHUTDOWN_MONTH:
            continue
        days = monthrange(year, month)[1]
        for n in range(rng.randint(6, 9)):
            feedstock = rng.choice(sorted(FEEDSTOCKS))
            _name, mass, moisture, distance = FEEDSTOCKS[feedstock]
            moisture_value = round(rng.uniform(*moisture), 1)
            if (year, month) == TYPO_MONTH and feedstock == "almond-shells":
                moisture_value = 112.0  # a typo the model rejects: that batch ends up failed
            start = datetime(year, month, rng.randint(1, days), rng.randint(7, 15), tzinfo=UTC)
            add_event("feedstock-delivery", "Feedstock Delivery", start, 2, f"FD-{year}{month:02d}-{n + 1:02d}",
                      feedstock, [(1, round(rng.uniform(*mass), 2)), (2, round(rng.uniform(*distance), 1)),
                                  (3, moisture_value), (4, feedstock)])
        for n in range(rng.randint(4, 6)):
            start = datetime(year, month, rng.randint(1, days - 1), 6, tzinfo=UTC)
            points: list[tuple[int, float | str]] = [
                (5, round(rng.uniform(6.5, 10.5), 2)),
                (6, round(rng.uniform(71.0, 84.0), 1)),
                (7, round(rng.uniform(2800.0, 4600.0), 0)),
            ]
            if (year, month) == METER_FAULT_MONTH and n == 0:
                points = points[:2]  # the electricity meter failed on this run
            add_event("pyrolysis-run", "Pyrolysis Run", start, 20, f"PR-{year}{month:02d}-{n + 1:02d}", None, points)


def _ledgers_and_models(conn: sqlite3.Connection) -> None:
    created = iso(datetime(2023, 11, 2, 15, 0, tzinfo=UTC))
    model_pks: dict[str, int] = {}
    for number, (kind, (name, _outputs, _inputs)) in enumerate(MODELS.items(), start=1):
        cur = conn.execute(
            "INSERT INTO models (id, name, kind, version, created_at) VALUES (?, ?, ?, 1, ?)",
            (friendly_id("mdl", "model", number), name, kind, created),
        )
        model_pks[kind] = int(cur.lastrowid or 0)
    ledger_pks: dict[str, int] = {}
    for number, ledger in enumerate(LEDGERS, start=1):
        cur = conn.execute(
            "INSERT INTO ledgers (id, project_id, name, unit, partition_type, cadence, model_pk, output_type_id,"
            " abbreviation, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'monthly', ?, ?, ?, ?, ?)",
            (friendly_id("lgr", "ledger", number), PROJECT_ID, ledger.name, ledger.unit, ledger.partition_type,
             model_pks.get(ledger.model_kind or ""), ledger.output_type_id, ledger.abbreviation, created, created),
        )
        ledger_pks[ledger.key] = int(cur.lastrowid or 0)
    for kind, (_name, outputs, inputs) in MODELS.items():
        for ledger_key, output_key in outputs:
            conn.execute("INSERT INTO model_outputs (model_pk, ledger_pk, output_key) VALUES (?, ?, ?)",
                         (model_pks[kind], ledger_pks[ledger_key], output_key))
        for position, (type_id, manual, groups, upstream) in enumerate(inputs):
            conn.execute(
                "INSERT INTO model_inputs (model_pk, type_id, is_manual_select, allocation_groups,"
                " upstream_ledger_pks, position) VALUES (?, ?, ?, ?, ?, ?)",
                (model_pks[kind], type_id, int(manual), dumps(groups), dumps([ledger_pks[k] for k in upstream]),
                 position),
            )


def _batches_for_2024(store: Store) -> None:
    """Generate 2024 on the main ledgers with the same code a user's generation runs."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    end = datetime(2024, 12, 31, 23, 59, 59, tzinfo=UTC)
    tick = iter(range(10_000))

    def clock() -> datetime:
        return SEEDED_AT + timedelta(seconds=next(tick))

    for ledger_key in ("ncr", "dfd"):
        with store.transaction() as conn:
            ledger = conn.execute("SELECT * FROM ledgers WHERE abbreviation = ?",
                                  ({"ncr": "NCR", "dfd": "DFD"}[ledger_key],)).fetchone()
            plan = generation.plan(conn, ledger["model_pk"], start, end, generation.Options())
            for partition in plan.partitions:
                generation.run_partition(conn, plan, partition, clock=clock, task_id=None)


REJECTION = ("the monitoring report for this crediting period lacks the verifier's signed statement (an emulator "
             "demo: this seeded report is always rejected).")
# name, status, the months of its Net Carbon Removal batches, what the registry answers (None: accepts).
REPORTS = [
    ("2024Q4 Quarterly Report", "complete", ("2024-10", "2024-11", "2024-12"), None),
    ("2025Q1 Quarterly Report", "draft", (), None),
    ("Rejected by registry (demo)", "draft", ("2024-07", "2024-08", "2024-09"), REJECTION),
]


def _reports(store: Store) -> None:
    """The seeded reports, filled and submitted with the same rules as a user's PATCH and submission."""
    with store.transaction() as conn:
        ncr = conn.execute("SELECT pk FROM ledgers WHERE abbreviation = 'NCR'").fetchone()[0]
        for number, (name, status, months, rejection) in enumerate(REPORTS, start=1):
            created = iso(SEEDED_AT + timedelta(hours=number))
            cur = conn.execute(
                "INSERT INTO reports (id, project_id, name, report_type, status, created_at, updated_at,"
                " registry_rejection) VALUES (?, ?, ?, 'quarterly', 'draft', ?, ?, ?)",
                (friendly_id("rpt", "report", number), PROJECT_ID, name, created, created, rejection),
            )
            ids = [row[0] for row in conn.execute(
                "SELECT id FROM batches WHERE ledger_pk = ? AND state = 'complete' AND substr(start_time, 1, 7) IN"
                " (SELECT value FROM json_each(?)) ORDER BY start_time", (ncr, dumps(list(months))))]
            report = conn.execute("SELECT * FROM reports WHERE pk = ?", (cur.lastrowid,)).fetchone()
            found = reporting.batches_by_id(conn, ids)
            reporting.include(conn, report, [found[batch_id] for batch_id in ids])
            if status == "complete":
                reporting.allocate(conn, report, iso(SEEDED_AT + timedelta(hours=number, minutes=30)))
