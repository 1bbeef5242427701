"""The emulator's state: one SQLite database (stdlib ``sqlite3``), file or in-memory.

Every access goes through one connection guarded by a lock: ``read()`` for queries and ``transaction()``
(``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back on any exception) for writes. A single connection is what
lets an in-memory database be shared by the HTTP threads and the generation worker; SQLite answers these
queries in well under a millisecond, so serialising them costs little. A file database runs in WAL mode
and survives restarts.

Uniqueness that the workflow relies on is enforced by the schema itself: a ledger holds at most one batch
per partition (``UNIQUE (ledger_pk, partition_key)``), so no race can ever create a duplicate batch.

The schema is versioned with SQLite's ``user_version`` (``SCHEMA_VERSION``). A file written by an earlier
emulator is upgraded in place when opened (``_MIGRATIONS``, one transaction per step); a file written by a
newer emulator, or one that is not a SQLite database, is refused with ``StoreError`` before anything is
written to it.

A list that comes from a request is never spliced into SQL as one ``?`` per item (SQLite caps the number
of variables in a statement, and a long list would be a 500): ``in_list`` binds the whole list as one JSON
parameter and reads it back with ``json_each``.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from . import model

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS projects (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, description TEXT NOT NULL, project_type TEXT NOT NULL,
    country TEXT NOT NULL, state TEXT NOT NULL, methodology TEXT NOT NULL, registry_name TEXT NOT NULL,
    credit_types TEXT NOT NULL, project_status TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS data_point_types (
    id INTEGER PRIMARY KEY, slug TEXT NOT NULL UNIQUE, name TEXT NOT NULL, unit TEXT,
    value_type TEXT NOT NULL, category TEXT NOT NULL, subcategory TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    pk INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, project_id INTEGER NOT NULL REFERENCES projects(id),
    slug TEXT NOT NULL, event_type TEXT NOT NULL, tracking_id TEXT, feedstock TEXT,
    start_time TEXT NOT NULL, end_time TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_time ON events (project_id, start_time);
CREATE TABLE IF NOT EXISTS data_points (
    pk INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, event_pk INTEGER NOT NULL REFERENCES events(pk),
    type_id INTEGER NOT NULL REFERENCES data_point_types(id), value TEXT NOT NULL, status TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS data_points_by_event ON data_points (event_pk);
CREATE TABLE IF NOT EXISTS models (
    pk INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, name TEXT NOT NULL, kind TEXT NOT NULL,
    version INTEGER NOT NULL, created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS ledgers (
    pk INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, project_id INTEGER NOT NULL REFERENCES projects(id),
    name TEXT NOT NULL, unit TEXT, system_ledger_type TEXT, partition_type TEXT, cadence TEXT,
    model_pk INTEGER REFERENCES models(pk), output_type_id INTEGER, abbreviation TEXT NOT NULL,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL
);
-- Which ledgers one model run writes to (several = models running concurrently), and what it reads.
CREATE TABLE IF NOT EXISTS model_outputs (
    model_pk INTEGER NOT NULL REFERENCES models(pk), ledger_pk INTEGER NOT NULL REFERENCES ledgers(pk),
    output_key TEXT NOT NULL, PRIMARY KEY (model_pk, ledger_pk)
);
CREATE TABLE IF NOT EXISTS model_inputs (
    model_pk INTEGER NOT NULL REFERENCES models(pk), type_id INTEGER NOT NULL REFERENCES data_point_types(id),
    is_manual_select INTEGER NOT NULL, allocation_groups TEXT NOT NULL, upstream_ledger_pks TEXT NOT NULL,
    position INTEGER NOT NULL, PRIMARY KEY (model_pk, type_id)
);
-- A report submission's task names its report (report_pk; NULL for a generation) and leaves the generation's
-- columns empty (ledger_pk and model_pk 0, start_time and end_time '', options '{}', output_ledger_pks '[]').
CREATE TABLE IF NOT EXISTS async_tasks (
    id INTEGER PRIMARY KEY AUTOINCREMENT, type TEXT NOT NULL, state TEXT NOT NULL, progress INTEGER NOT NULL,
    progress_description TEXT, created_at TEXT NOT NULL, started_at TEXT, finished_at TEXT,
    error_message TEXT, ledger_pk INTEGER NOT NULL, model_pk INTEGER NOT NULL, project_id INTEGER NOT NULL,
    start_time TEXT NOT NULL, end_time TEXT NOT NULL, options TEXT NOT NULL, output_ledger_pks TEXT NOT NULL,
    report_pk INTEGER
);
CREATE TABLE IF NOT EXISTS batches (
    pk INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, ledger_pk INTEGER NOT NULL REFERENCES ledgers(pk),
    partition_key TEXT NOT NULL, tracking_id TEXT, feedstock TEXT, start_time TEXT NOT NULL,
    end_time TEXT NOT NULL, state TEXT NOT NULL, value REAL, output_dp_id TEXT NOT NULL UNIQUE,
    calculations TEXT NOT NULL, input_dp_ids TEXT NOT NULL, error_message TEXT, task_id INTEGER,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
    -- The data point type ids the generation skipped (skipped_data_point_type_ids), as a JSON array.
    skipped_type_ids TEXT NOT NULL DEFAULT '[]',
    UNIQUE (ledger_pk, partition_key)
);
CREATE INDEX IF NOT EXISTS batches_by_ledger ON batches (ledger_pk, start_time);
-- An amount of an upstream batch consumed by a downstream batch (a manual-select input).
CREATE TABLE IF NOT EXISTS allocations (
    pk INTEGER PRIMARY KEY, source_batch_pk INTEGER NOT NULL REFERENCES batches(pk) ON DELETE CASCADE,
    target_batch_pk INTEGER NOT NULL REFERENCES batches(pk) ON DELETE CASCADE, amount REAL NOT NULL,
    allocation_group TEXT
);
-- Reports (registry submission, ``reporting``): made in Mangrove's app, filled and submitted through the API.
-- registry_rejection: what the emulated registry answers a submission (NULL accepts it; a text rejects it with
-- that reason: the seeded demo). The allocation_* columns are set when a submission completes.
CREATE TABLE IF NOT EXISTS reports (
    pk INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, project_id INTEGER NOT NULL REFERENCES projects(id),
    name TEXT NOT NULL, report_type TEXT NOT NULL, status TEXT NOT NULL, created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL, registry_rejection TEXT, allocation_id INTEGER UNIQUE, allocation_amount REAL,
    allocation_unit TEXT, allocation_created_at TEXT
);
-- A batch on a report, as it was when included (amount = its ledger_balance then). A deleted batch leaves its
-- inclusion behind (batch_pk NULL) for the submission to refuse; a batch on a submitting or complete report
-- cannot be deleted. On a complete report, an inclusion is that batch's allocation to it.
CREATE TABLE IF NOT EXISTS report_inclusions (
    pk INTEGER PRIMARY KEY, report_pk INTEGER NOT NULL REFERENCES reports(pk) ON DELETE CASCADE,
    batch_pk INTEGER REFERENCES batches(pk) ON DELETE SET NULL, batch_id TEXT NOT NULL, tracking_id TEXT,
    ledger_id TEXT NOT NULL, amount REAL NOT NULL, unit TEXT, UNIQUE (report_pk, batch_id)
);
CREATE INDEX IF NOT EXISTS report_inclusions_by_batch ON report_inclusions (batch_pk);
"""


# user_version of a database this emulator writes. Version 1 is every database written before versions were
# recorded (user_version 0): the schema above without batches.skipped_type_ids. Version 2 has no reports.
SCHEMA_VERSION = 3


def _migrate_1_to_2(conn: sqlite3.Connection) -> None:
    """Record per batch what its generation skipped, recovered from the task that made it (seeded batches, made
    without a task, skipped nothing). Keep only the terms of each breakdown (version 1 also stored the biochar
    carbon, ``lca_role: input``, and the net itself, ``lca_role: net``, which a sum of the terms counts twice),
    and give each term the ``category``, ``ghg`` and ``inputs`` version 1 did not store, by its name."""
    if "skipped_type_ids" not in {row[1] for row in conn.execute("PRAGMA table_info(batches)")}:
        conn.execute("ALTER TABLE batches ADD COLUMN skipped_type_ids TEXT NOT NULL DEFAULT '[]'")
    templates = {name: calc.to_json() for name, calc in model.calculation_templates().items()}
    for pk, calculations in conn.execute("SELECT pk, calculations FROM batches").fetchall():
        calcs = json.loads(calculations)
        terms = [c for c in calcs if isinstance(c, dict) and c.get("lca_role") not in ("input", "net")]
        for term in terms:
            for key in ("category", "ghg", "inputs"):
                if key in templates.get(str(term.get("name")), {}):
                    term.setdefault(key, templates[term["name"]][key])
        if terms != calcs:
            conn.execute("UPDATE batches SET calculations = ? WHERE pk = ?", (dumps(terms), pk))
    tasks = conn.execute("SELECT DISTINCT t.id, t.options FROM async_tasks t JOIN batches b ON b.task_id = t.id")
    for task_id, options in tasks.fetchall():
        try:
            skipped = sorted({int(i) for i in json.loads(options).get("skipped_data_point_type_ids") or []})
        except (ValueError, TypeError, AttributeError):
            skipped = []  # options this code never wrote: nothing to recover
        if skipped:
            conn.execute("UPDATE batches SET skipped_type_ids = ? WHERE task_id = ?", (dumps(skipped), task_id))


def _migrate_2_to_3(conn: sqlite3.Connection) -> None:
    """Let an async task name the report it submits. The ``reports`` and ``report_inclusions`` tables come with
    the schema (created after the upgrade), empty: the seeded reports are seeded with a new database (or a
    reset), not into a file that may have been generated, deleted and regenerated since."""
    if "report_pk" not in {row[1] for row in conn.execute("PRAGMA table_info(async_tasks)")}:
        conn.execute("ALTER TABLE async_tasks ADD COLUMN report_pk INTEGER")


# version -> the step that upgrades a database from that version to the next.
_MIGRATIONS = {1: _migrate_1_to_2, 2: _migrate_2_to_3}
# The tables of SCHEMA, and SQLite's own: a file holding other tables belongs to something else.
_OWN_TABLES = {"meta", "projects", "data_point_types", "events", "data_points", "models", "ledgers", "model_outputs",
               "model_inputs", "async_tasks", "batches", "allocations", "reports", "report_inclusions",
               "sqlite_sequence"}


class StoreError(Exception):
    """A database file the emulator cannot use: not SQLite, or written by a newer emulator."""


def iso(moment: datetime) -> str:
    """The API's timestamp form: ISO 8601 UTC with milliseconds, ``2025-01-15T10:00:00.000Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def friendly_id(prefix: str, kind: str, number: int) -> str:
    """A deterministic, opaque friendly id such as ``lgr_3kTMd9qX1bZa`` (the same seed gives the same ids)."""
    value = int.from_bytes(hashlib.sha256(f"mangrove-emulator:{kind}:{number}".encode()).digest()[:9], "big")
    chars = []
    for _ in range(12):
        value, digit = divmod(value, 62)
        chars.append(_BASE62[digit])
    return f"{prefix}_{''.join(chars)}"


def utcnow() -> datetime:
    return datetime.now(UTC)


class Store:
    """The database and the lock around it. ``path=None`` is a fresh in-memory database."""

    def __init__(self, path: str | None = None) -> None:
        self.path = path
        # Bumped by every committed write: what a cached read was computed from is still current while equal.
        self.generation = 0
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(path or ":memory:", check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        try:
            self._open(path)
        except BaseException:
            self._conn.close()
            raise

    def _open(self, path: str | None) -> None:
        try:
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            tables = {row[0] for row in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path} is not an emulator database ({exc}); pass another --db path, or delete "
                             "the file to start from the seeded data") from None
        if version > SCHEMA_VERSION:
            raise StoreError(f"{path} was written by a newer mangrove_nb emulator (database schema {version}; this "
                             f"one reads up to {SCHEMA_VERSION}); upgrade mangrove_nb or pass another --db path")
        foreign = sorted(tables - _OWN_TABLES)
        if foreign:
            raise StoreError(f"{path} is a SQLite database of something else (tables {', '.join(foreign[:5])[:200]});"
                             " pass another --db path: the emulator keeps its state in a file of its own")
        self._conn.execute("PRAGMA foreign_keys = ON")
        self._conn.execute("PRAGMA busy_timeout = 5000")
        if path:
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = FULL")
        if "batches" not in tables:  # a new database: today's schema, nothing to upgrade
            self._conn.executescript(SCHEMA)
            self._conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            return
        version = max(version, 1)
        while version < SCHEMA_VERSION:
            with self.transaction() as conn:
                _MIGRATIONS[version](conn)
                version += 1
                conn.execute(f"PRAGMA user_version = {version}")
        self._conn.executescript(SCHEMA)  # tables and indexes a database of this version may lack

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; rolled back on any exception, so a failed request changes nothing."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
            self.generation += 1

    def is_seeded(self) -> bool:
        with self.read() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'seeded'").fetchone()
        return row is not None

    def wipe(self) -> None:
        """Delete every row (the schema stays): the first half of a reset."""
        with self.transaction() as conn:
            for table in ("report_inclusions", "reports", "allocations", "batches", "async_tasks", "model_inputs",
                          "model_outputs", "ledgers", "models", "data_points", "events", "data_point_types",
                          "projects", "meta"):
                conn.execute(f"DELETE FROM {table}")
            conn.execute("DELETE FROM sqlite_sequence")  # ids restart, so a reset is deterministic


# --- helpers for the queries of the backend, the generation rules and the seed --------------------------------


def in_list(values: Sequence[Any]) -> tuple[str, str]:
    """``(sql, parameter)`` for ``expr IN <sql>`` over any number of values, bound as one JSON parameter.

    ``f"dp.id IN {sql}"`` with ``(parameter,)``: one variable however long the list, where ``IN (?, ?, …)``
    would fail past SQLite's variable limit (32,766 by default, 250,000 in some builds).
    """
    return "(SELECT value FROM json_each(?))", dumps(list(values))


def fetch_one(conn: sqlite3.Connection, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
    return conn.execute(sql, params).fetchone()


def fetch_value(conn: sqlite3.Connection, sql: str, params: Sequence[Any] = ()) -> Any:
    """The first column of the one row an aggregate query (COUNT, SUM, MAX...) always answers."""
    row = conn.execute(sql, params).fetchone()
    assert row is not None, sql
    return row[0]


def fetch_all(conn: sqlite3.Connection, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
    return conn.execute(sql, params).fetchall()


def loads(text: str) -> Any:
    return json.loads(text)


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
