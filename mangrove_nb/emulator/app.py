"""The emulator's HTTP routes (Flask), under ``/api/v1``, as mangrove-openapi.yaml documents them: a list of routes.

Each route parses its request (the path's ids; the query string with ``listing``, against the collection the
backend declares; the body with ``bodies``; a write first checks the token may write), calls the backend
(``backend``), which owns the data and raises the typed refusals of ``errors``, and renders the answer with
``resources``. What every request passes before and after its route (authentication, the rate limit, faults,
the response cache, the log line, the error envelope) is ``pipeline``.

The test-only ``/_emulator/*`` control endpoints (``--enable-control``): request counts and armed faults, arming
and clearing faults, and a reset to the seeded data.
"""

from __future__ import annotations

from flask import Flask, Response, request

from . import API, bodies, listing, pipeline, resources
from .backend import ALL_BATCHES, EVENTS, LEDGER_BATCHES, LEDGERS
from .errors import BadRequest
from .pipeline import EmulatorState, ok, require_write
from .reporting import REPORTS


def create_app(state: EmulatorState) -> Flask:
    app = Flask("mangrove_nb.emulator")
    app.config["MAX_CONTENT_LENGTH"] = bodies.MAX_BODY_BYTES
    pipeline.install(app, state)
    _install_routes(app, state)
    if state.control:
        _install_control(app, state)
    return app


def _install_routes(app: Flask, state: EmulatorState) -> None:
    backend = state.backend

    @app.get(f"{API}/ledgers", endpoint="list-all-ledgers")
    def list_ledgers() -> Response:
        rows, info = backend.ledgers(listing.parse(request.args, LEDGERS))
        return ok({"data": [resources.ledger(row) for row in rows], "info": info})

    @app.get(f"{API}/ledgers/<ledger_id>", endpoint="retrieve-ledger")
    def get_ledger(ledger_id: str) -> Response:
        return ok(resources.ledger(backend.ledger(ledger_id)))

    @app.post(f"{API}/projects/<project_id>/ledgers", endpoint="create-project-ledger")
    def create_ledger(project_id: str) -> Response:
        require_write()
        name, unit = bodies.ledger_spec(bodies.json_body())
        return ok(resources.ledger(backend.create_ledger(project_id, name, unit)), 201)

    @app.get(f"{API}/ledgers/<ledger_id>/required_inputs", endpoint="ledger-required-inputs")
    def required_inputs(ledger_id: str) -> Response:
        return ok({"data": resources.required_inputs(backend.required_inputs(ledger_id))})

    @app.post(f"{API}/ledgers/<ledger_id>/generate_preview", endpoint="generate-preview")
    def preview(ledger_id: str) -> Response:
        ledger = backend.ledger_with_model(ledger_id)  # an unknown ledger or one without a model, whatever the body
        body = bodies.json_body()
        start, end = bodies.time_range(body)
        options = bodies.generation_options(body, generation_request=False)
        return ok(resources.preview(backend.preview(ledger, start, end, options)))

    @app.post(f"{API}/ledgers/<ledger_id>/batch_generations", endpoint="create-batch-generation")
    def generate(ledger_id: str) -> Response:
        require_write()
        backend.ledger_with_model(ledger_id)
        body = bodies.json_body()
        start, end = bodies.time_range(body)
        options = bodies.generation_options(body, generation_request=True)
        task = backend.generate(ledger_id, start, end, options)
        state.submit(task["id"])
        return ok(resources.task(task, accepted=True), 202)

    @app.get(f"{API}/async_tasks/<task_id>", endpoint="retrieve-async-task")
    def get_task(task_id: str) -> Response:
        return ok(resources.task(backend.task(task_id)))

    @app.get(f"{API}/ledgers/<ledger_id>/batches", endpoint="list-all-ledger-batches")
    def ledger_batches(ledger_id: str) -> Response:
        found, info = backend.ledger_batches(ledger_id, listing.parse(request.args, LEDGER_BATCHES))
        return ok({"data": resources.batches(found), "info": info})

    @app.get(f"{API}/batches", endpoint="list-all-batches")
    def all_batches() -> Response:
        found, info = backend.batches(listing.parse(request.args, ALL_BATCHES))
        return ok({"data": resources.batches(found), "info": info})

    @app.get(f"{API}/batches/<batch_id>", endpoint="retrieve-batch")
    def get_batch(batch_id: str) -> Response:
        return ok(resources.batch(backend.batch(batch_id)))

    @app.delete(f"{API}/batches/<batch_id>", endpoint="delete-batch")
    def delete_batch(batch_id: str) -> Response:
        require_write()
        backend.delete_batch(batch_id)
        return Response(status=204)

    @app.get(f"{API}/reports", endpoint="list-all-reports")
    def list_reports() -> Response:
        found, info = backend.reports(listing.parse(request.args, REPORTS))
        return ok({"data": resources.reports(found), "info": info})

    @app.get(f"{API}/reports/<report_id>", endpoint="retrieve-report")
    def get_report(report_id: str) -> Response:
        return ok(resources.report(backend.report(report_id)))

    @app.patch(f"{API}/reports/<report_id>", endpoint="update-report")
    def update_report(report_id: str) -> Response:
        require_write()
        name, batch_ids = bodies.report_update(bodies.json_body())
        return ok(resources.report(backend.update_report(report_id, name, batch_ids)))

    @app.post(f"{API}/reports/<report_id>/submit", endpoint="submit-report")
    def submit_report(report_id: str) -> Response:
        require_write()
        report, task_id = backend.submit_report(report_id)
        state.submit(task_id)
        return ok(resources.submission(report, task_id), 202)

    @app.get(f"{API}/projects/<project_id>", endpoint="project")
    def get_project(project_id: str) -> Response:
        return ok(resources.project(backend.project(project_id)))

    @app.get(f"{API}/projects/<project_id>/events", endpoint="list-all-events")
    def list_events(project_id: str) -> Response:
        found, info = backend.events(project_id, listing.parse(request.args, EVENTS))
        return ok({"data": resources.events(found), "info": info})


def _install_control(app: Flask, state: EmulatorState) -> None:
    """Test-only endpoints: request counts, faults, reset. Absent unless the emulator enables control."""

    @app.get("/_emulator/stats")
    def stats() -> Response:
        return ok({"counts": dict(state.counts), "faults": state.faults.armed()})

    @app.post("/_emulator/faults")
    def add_fault() -> Response:
        try:
            fault = state.faults.add(bodies.json_body())
        except (TypeError, ValueError) as exc:
            raise BadRequest(f"Bad fault: {exc}.") from None
        return ok(vars(fault), 201)

    @app.delete("/_emulator/faults")
    def clear_faults() -> Response:
        state.faults.clear()
        return Response(status=204)

    @app.post("/_emulator/reset")
    def reset() -> Response:
        if state.reset is not None:
            state.reset()
        return Response(status=204)
