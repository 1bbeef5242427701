"""A local emulator of the Mangrove production-accounting API, for demos, tests and a first hour offline.

What it mimics (mangrove-api.md and mangrove-openapi.yaml, copied in ``docs/contract/``):

* Real HTTP on loopback, under ``/api/v1``: ``GET /ledgers``, ``GET /ledgers/{id}``,
  ``POST /projects/{id}/ledgers``, ``GET /ledgers/{id}/required_inputs``,
  ``POST /ledgers/{id}/generate_preview``, ``POST /ledgers/{id}/batch_generations`` (202 + async task),
  ``GET /async_tasks/{id}``, ``GET /ledgers/{id}/batches``, ``GET /batches``, ``GET /batches/{id}``,
  ``DELETE /batches/{id}``, ``GET /projects/{id}``, ``GET /projects/{id}/events``, ``GET /reports``,
  ``GET /reports/{id}``, ``PATCH /reports/{id}`` and ``POST /reports/{id}/submit`` (202 + async task).
* The documented shapes and status codes; ``data``/``info`` pagination (``page_size`` at most 100);
  ``sort=a,-b`` and ``filter[field][eq]=value``; the error envelope
  ``{"status": "error", "statusCode": N, "errors": [{"message": …}]}``; ``RateLimit-*`` headers on every
  response and 429 past the limit (1,000 requests a minute per token by default).
* Auth with ``Authorization: Bearer <token>`` or the bare token; a read-only token gets 403 on writes (and on
  the test-only ``/_emulator/*`` control endpoints, when enabled).
* State in SQLite (in memory by default, or a file that survives restarts), seeded with one biochar
  project (see ``seed``), and a plausible biochar model (see ``model``) run by a background worker.
* Reports (``reporting``): the seed has "2024Q4 Quarterly Report" (complete: the 2024Q4 Net Carbon Removal
  batches are allocated to it, their balance 0), "2025Q1 Quarterly Report" (draft, empty) and "Rejected by
  registry (demo)" (draft, the 2024Q3 Net Carbon Removal batches). The emulated registry accepts every
  submission except a report's whose ``registry_rejection`` column is set (seeded on that demo report; the API
  cannot set it): its task fails with that reason and the report goes back to draft.

Decisions where the documentation is silent (also in ``generation``): a range covers the whole months inside
it; generation only creates batches for partitions that have none; a request that would create nothing, or
that overlaps a generation still running on the same ledgers, answers 422; a failed generation leaves no
batches behind; manual-select inputs must be named with ``data_point_ids`` (``dp_…`` output data points of
upstream batches) or ``batch_amounts``. ``skipped_data_point_type_ids`` applies to every month of the request
(as documented); ``GET /batches/{id}`` lists each skipped type in ``input_data`` as the ``skipped_input``
placeholder of mangrove-api.md, and ``model_run.calculations`` is the LCA breakdown (its terms add up to the
primary output; a term reading a skipped input says so). Limits (a 4xx naming the field and the limit, never
a 500): bodies of 1 MiB, ``data_point_ids``/``batch_amounts`` of 10,000 items, 100 skipped type ids, ids of
255 characters, filter values of 255 characters, each sort field once (``bodies``, ``listing``). The console log
has one line per request (method, path, status, duration), never a query string.

Decisions on reports (also in ``reporting``): ``batch_ids`` replaces a draft's batches, each included at its
``ledger_balance`` then; a PATCH refuses, one message per batch, a batch that is not complete, has no balance
left, belongs to another project, is on another report that is not draft, is still being generated, or is in
another unit than the report's first batch; a submission needs at least one batch and every batch still there,
complete, on no other submitting or complete report, with its amount still available (checked again as the task
completes); a completed submission allocates (the report's ``allocation``, the batches' ``ledger_balance`` and
``report_allocations``); a reported batch cannot be deleted.

What it does not mimic: the other documented endpoints (models, model runs, exports, event creation, ledger
updates), ``response_mode=summary`` (400), a way to create a report (none is documented: reports are made in
Mangrove's app), and any permission model finer than read-only versus read-write.

How it is built (moto's shape: a response layer that parses, a backend that owns the state):

* ``server``: ``Emulator``, Werkzeug's threaded server on loopback, and the wiring of the parts below.
* ``app``: the routes, one per operation: parse the request, call the backend, render with ``resources``.
* ``pipeline``: what every request passes around its route: auth, rate limit, faults, cache, log, envelope.
* ``bodies``: request bodies parsed and checked (times, generation options, a new ledger) and their limits.
* ``listing``: list queries (``page``, ``sort``, ``filter``) parsed, and run as one page of SQL.
* ``errors``: the typed refusals (400, 403, 404, 422) every layer raises and the pipeline answers.
* ``backend``: the state and every query and mutation on it: ledgers, generation requests, tasks, batches,
  reports, projects, events, reset.
* ``generation``: the rules of a generation (partitions, batches), applied by the backend.
* ``reporting``: the rules of reports (what a report may include, submission, allocation), applied by the backend.
* ``worker``: the threads that run async tasks (generations, report submissions) through the backend.
* ``resources``: JSON shapes, rendered from the backend's rows.
* ``store``: SQLite, its schema and upgrades; ``seed``: the demo data; ``model``: the biochar model;
  ``faults``: fault injection for tests.

The emulator never imports the client side of mangrove_nb, so a client bug cannot be mirrored here.
"""

from __future__ import annotations

from typing import Any

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
API = "/api/v1"  # the path every route of the API is under

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "Emulator", "running"]


def __getattr__(name: str) -> Any:
    # Flask loads with the server, not with the package: `mangrove-nb --help` and the CLI's other commands
    # need only the defaults above.
    if name in ("Emulator", "running"):
        from . import server

        return getattr(server, name)
    raise AttributeError(f"module 'mangrove_nb.emulator' has no attribute {name!r}")
