"""The registry report form, driven headless against the emulator: values set, buttons ``click()``-ed.

Each test reads the outcome where an analyst would see it (the widgets' values, the static HTML left in the
output) and where code would (``form.plan_result``, ``form.result``, ``form.error``), and counts what the
emulator received (``update-report`` PATCHes, ``submit-report`` POSTs), so "submitted once" is measured.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import ipywidgets as widgets
import pytest
import requests
from helpers import Elements, connect_to, race_confirm_clicks
from payload_server import PayloadServer

import mangrove_nb as mnb
from mangrove_nb import forms
from mangrove_nb.emulator import Emulator
from mangrove_nb.forms import ReportForm
from mangrove_nb.forms._base import FormBase
from mangrove_nb.forms._sending import FormProgress
from mangrove_nb.registry import SubmissionTask

NCR = "Net Carbon Removal"
Q1_REPORT, REJECTED, COMPLETE = "2025Q1 Quarterly Report", "Rejected by registry (demo)", "2024Q4 Quarterly Report"
# What the emulated registry says when it refuses "Rejected by registry (demo)".
REFUSAL = "the monitoring report for this crediting period lacks the verifier's signed statement"
HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(2)>"
PATCHES, SUBMITS = "update-report", "submit-report"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@pytest.fixture
def client_options() -> dict[str, Any]:
    return {"project_id": 123}


@pytest.fixture
def quarter(client: mnb.Client) -> float:
    """2025Q1 generated (the emulator has 2024 only); the total balance of its Net Carbon Removal batches."""
    client.generate(NCR, "2025Q1").wait(timeout=30)
    return float(client.batches(NCR, "2025Q1")["ledger_balance"].sum())


@pytest.fixture
def clients(emulator: Emulator) -> Iterator[Callable[[], mnb.Client]]:
    """More clients of ``emulator`` (a re-run connect() cell), closed at the end."""
    made: list[mnb.Client] = []

    def make() -> mnb.Client:
        made.append(connect_to(emulator.url, emulator.token, project_id=123))
        return made[-1]

    yield make
    for client in made:
        client.close()


def report_id(client: mnb.Client, name: str) -> str:
    listed = client.reports()
    return str(listed.loc[listed["name"] == name, "id"].item())


def to_confirmation(form: ReportForm) -> None:
    """Plan, Fill (when the report does not hold the batches yet), Submit: the question is asked."""
    form.plan_button.click()
    assert form.error is None, form.status.value
    if not form.fill_button.disabled:
        form.fill_button.click()
        assert form.error is None, form.status.value
    form.submit_button.click()
    assert form.state == "confirming", form.status.value


def status(form: ReportForm) -> str:
    return html.unescape(form.status.value)


def every_widget(root: Any) -> list[Any]:
    found, stack = [], [root]
    while stack:
        widget = stack.pop()
        found.append(widget)
        stack.extend(getattr(widget, "children", ()))
    return found


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


# --- the flow ------------------------------------------------------------------------------------------------


def test_plan_fill_submit_and_the_allocation_at_the_end(emulator: Emulator, client: mnb.Client,
                                                        quarter: float) -> None:
    form = ReportForm(client, period="2025Q1")
    assert isinstance(form, FormBase) and mnb.ReportForm is ReportForm and forms.ReportForm is ReportForm
    rid = report_id(client, Q1_REPORT)
    assert form.report_dropdown.value == rid  # the draft named for the period is preselected
    assert {value for _, value in form.report_dropdown.options} == {rid, report_id(client, REJECTED)}  # drafts
    assert form.state == "idle" and form.fill_button.disabled and form.submit_button.disabled

    form.plan_button.click()
    plan = form.plan_result
    assert form.state == "previewed" and plan is not None and plan.ok
    assert len(plan.added) == 3 and not len(plan.removed) and not len(plan.kept)
    shown = html.unescape(form.plan_html.value)
    for tracking in ("NCR-2025-01", "NCR-2025-02", "NCR-2025-03"):
        assert tracking in shown
    assert "Totals the report would hold" in shown and f"{quarter:,.3f}" in shown
    assert "3 added, 0 removed, 0 kept; nothing sent yet" in shown
    assert not form.fill_button.disabled and form.submit_button.disabled  # fill before submitting
    assert emulator.count(PATCHES) == 0

    form.fill_button.click()
    assert emulator.count(PATCHES) == 1 and form.error is None
    assert "Filled" in status(form) and set(form.report.batch_ids) == set(plan.batch_ids)
    assert form.fill_button.disabled and not form.submit_button.disabled
    assert len(form.plan_result.kept) == 3 and not form.plan_result.changes

    form.submit_button.click()
    question = form.confirmation
    assert form.state == "confirming" and question is not None
    assert f"Submit report {Q1_REPORT!r} ({rid})" in question
    assert "3 batches" in question and f"{quarter:,.3f} t" in question and "irreversible" in question
    # Which ledger it adds up, in which unit, and of which months.
    assert f"3 batches of {NCR} (t), from 2025-01 to 2025-03 (2025Q1), {quarter:,.3f} t?" in question
    assert html.escape(question) in form.confirm_html.value and form.confirm_box.layout.display == ""
    assert emulator.count(SUBMITS) == 0  # the question sends nothing

    form.confirm_button.click()
    report = form.wait(timeout=20)
    assert emulator.count(SUBMITS) == 1
    assert form.state == "done" and form.error is None and form.progress.value == 100
    assert report is form.result and report.status == "complete"
    assert report.allocated_amount == pytest.approx(quarter) and report.allocated_unit == "t"
    allocated = f"the registry allocated {quarter:,.3f} t (3 batches)"
    assert allocated in status(form) and allocated in html.unescape(form.static_html)
    assert "NCR-2025-02" in form.result_html.value and "NCR-2025-02" in form.static_html
    assert form.submit_button.disabled and form.fill_button.disabled
    after = client.batches(NCR, "2025Q1")
    assert (after["ledger_balance"] == 0).all()  # the registry took the whole balance


def test_the_submission_is_followed_through_task_wait_with_the_forms_bar(
        make_emulator: Callable[..., Emulator], monkeypatch: pytest.MonkeyPatch) -> None:
    emu = make_emulator(batch_seconds=0.3)
    calls: list[dict[str, Any]] = []
    original = SubmissionTask.wait

    def spy(self: SubmissionTask, timeout: float | None = None, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return original(self, timeout, **kwargs)

    monkeypatch.setattr(SubmissionTask, "wait", spy)
    with connect_to(emu.url, emu.token, project_id=123) as client:
        form = ReportForm(client, REJECTED, period="2024Q3")  # it holds 2024Q3 already: no fill needed
        to_confirmation(form)
        form.confirm_button.click()
        wait_until(lambda: 0 < form.progress.value < 100 or form.state != "running")
        assert form.state == "running" and "Checking batch" in form.progress_label.value
        assert form.stop_waiting() is True
        assert form.state == "detached" and form.wait(timeout=5) is None
        assert f"client.report_task({form.task.report_id!r}, {form.task.id!r}).wait()" in status(form)
        assert len(calls) == 1 and isinstance(calls[0]["progress"], FormProgress)
        assert calls[0]["stop"] is form._stop
        assert emu.count(SUBMITS) == 1


# --- one action per click ------------------------------------------------------------------------------------


def test_double_clicks_and_a_rerun_cell_submit_once(make_emulator: Callable[..., Emulator]) -> None:
    emu = make_emulator(batch_seconds=0.3)
    with connect_to(emu.url, emu.token, project_id=123) as client, \
            connect_to(emu.url, emu.token, project_id=123) as second:
        client.generate(NCR, "2025Q1").wait(timeout=30)
        form = ReportForm(client, Q1_REPORT, "2025Q1")
        form.plan_button.click()
        form.fill_button.click()
        form.fill_button.click()  # a double click on Fill
        assert form.fill() is form.report  # and from code: the report holds the batches, nothing to send
        assert emu.count(PATCHES) == 1
        form.submit_button.click()
        question = form.confirmation
        form.submit_button.click()  # a double click on Submit asks once
        assert form.confirmation == question and form.state == "confirming"
        form.confirm_button.click()
        form.confirm_button.click()  # a double click on Confirm submit
        assert form.confirm() is form.task  # confirming from code while it runs sends nothing either
        form.submit_button.click()
        assert form.state == "running" and emu.count(SUBMITS) == 1

        for rerun in (ReportForm(client, Q1_REPORT, "2025Q1"), ReportForm(second, Q1_REPORT, "2025Q1")):
            rerun.plan_button.click()  # the report is no longer a draft: the plan says so, nothing can be sent
            assert not rerun.plan_result.ok and rerun.fill_button.disabled and rerun.submit_button.disabled
            assert "not 'draft'" in html.unescape(rerun.plan_html.value)
            with pytest.raises(mnb.ReportPlanError):
                rerun.fill()
            with pytest.raises(mnb.ReportPlanError):
                rerun.submit()
        form.wait(timeout=20)
        form.confirm_button.click()  # a late click after the outcome: quiet, nothing sent
        assert form.state == "done" and form.error is None
        assert emu.count(SUBMITS) == 1 and emu.count(PATCHES) == 1


def test_racing_confirmations_of_two_forms_on_two_clients_submit_once(
        make_emulator: Callable[..., Emulator], clients: Callable[[], mnb.Client]) -> None:
    emu = make_emulator(batch_seconds=0.2)
    with connect_to(emu.url, emu.token, project_id=123) as one, connect_to(emu.url, emu.token, project_id=123) as two:
        racing = [ReportForm(one, REJECTED, "2024Q3"), ReportForm(two, REJECTED, "2024Q3"),
                  ReportForm(one, REJECTED, "2024Q3")]
        for form in racing:
            to_confirmation(form)
        started = race_confirm_clicks(racing)
        assert len(started) == 1, [form.status.value for form in racing]
        assert all(isinstance(form.error, mnb.PreconditionError) for form in racing if form not in started)
        with pytest.raises(mnb.TaskFailedError):
            started[0].wait(timeout=20)
        assert emu.count(SUBMITS) == 1


# --- failures ------------------------------------------------------------------------------------------------


def test_confirm_submits_what_the_question_named_or_nothing(emulator: Emulator, client: mnb.Client,
                                                             clients: Callable[[], mnb.Client], quarter: float) -> None:
    """The question named 3 batches; a second analyst then put another batch on the draft. Confirm submit must not
    send the report as it is now: nothing goes, and the form says what changed."""
    form = ReportForm(client, Q1_REPORT, "2025Q1")
    to_confirmation(form)
    assert "3 batches" in form.confirmation
    rid = form.report_dropdown.value
    extra = str(client.batches(NCR, "2024-07", state="complete")["id"].iloc[0])  # on a draft only: may be added
    other = clients()
    other.fill_report(rid, [*form.report.batch_ids, extra])
    form.confirm_button.click()
    assert isinstance(form.error, mnb.ReportPlanError), form.status.value
    shown = status(form)
    assert "changed since the submission was confirmed" in shown and f"Batch {extra}" in shown
    assert form.state == "previewed" and form.task is None
    assert emulator.count(SUBMITS) == 0
    assert client.report(rid).status == "draft"


def test_default_ledgers_ignore_a_mistake_on_another_draft(emulator: Emulator, client: mnb.Client,
                                                           quarter: float) -> None:
    """A Biochar Produced batch put on another draft by mistake does not make biochar tonnes the report's candidates."""
    demo = report_id(client, REJECTED)
    biochar = str(client.batches("Biochar Produced", "2024Q3", state="complete")["id"].iloc[0])
    client.fill_report(demo, [*client.report(demo).batch_ids, biochar], ledgers=[NCR, "Biochar Produced"])
    form = ReportForm(client, Q1_REPORT, "2025Q1")
    plan = form.plan()
    assert plan.ok and set(plan.added["ledger_name"]) == {NCR}
    assert plan.totals["amount"].sum() == pytest.approx(quarter)


def test_the_registrys_refusal_reaches_the_form(emulator: Emulator, client: mnb.Client) -> None:
    form = ReportForm(client, REJECTED, period="2024Q3")
    form.plan_button.click()
    assert len(form.plan_result.kept) == 3 and form.fill_button.disabled  # already on it: nothing to fill
    assert not form.submit_button.disabled
    to_confirmation(form)
    form.confirm_button.click()
    with pytest.raises(mnb.TaskFailedError, match="registry"):
        form.wait(timeout=20)
    assert form.state == "failed" and isinstance(form.error, mnb.TaskFailedError)
    for shown in (status(form), html.unescape(form.static_html)):
        assert "The registry said:" in shown and REFUSAL in shown and "back to draft" in shown
    assert form.result is None and "the registry allocated" not in status(form)
    assert client.report(report_id(client, REJECTED)).status == "draft"
    assert emulator.count(SUBMITS) == 1


def test_a_report_that_is_not_a_draft_refuses_filling(emulator: Emulator, client: mnb.Client,
                                                      quarter: float) -> None:
    form = ReportForm(client, COMPLETE, period="2025Q1")  # given by name: listed although it is complete
    rid = report_id(client, COMPLETE)
    assert form.report_dropdown.value == rid and "cannot be filled" in dict(
        (v, k) for k, v in form.report_dropdown.options)[rid]
    assert "complete" in form.facts_html.value
    form.plan_button.click()
    assert form.state == "previewed" and form.plan_result.problems[0].kind == "not_draft"
    assert form.fill_button.disabled and form.submit_button.disabled
    assert "not 'draft': only a draft can be filled" in html.unescape(form.plan_html.value)
    with pytest.raises(mnb.ReportPlanError, match="only a draft can be filled"):
        form.fill()
    form.fill_button.click()  # a click on the disabled button (from code): refused, shown, nothing sent
    assert isinstance(form.error, mnb.ReportPlanError) and "ReportPlanError" in form.status.value

    # A draft planned in the form, then submitted from code: the form's Fill is refused by the check again.
    draft = ReportForm(client, Q1_REPORT, "2025Q1")
    draft.plan_button.click()
    assert draft.plan_result.ok and not draft.fill_button.disabled
    client.fill_report(draft.report_dropdown.value, list(draft.plan_result.batch_ids))
    client.submit_report(draft.report_dropdown.value).wait(timeout=20)
    draft.fill_button.click()
    assert isinstance(draft.error, mnb.ReportPlanError), draft.status.value
    assert "only a draft can be filled" in html.unescape(draft.status.value)
    assert emulator.count(PATCHES) == 1  # the code's fill only


# A grace of 5 s (call_deadline + read_timeout) after which a draft means the submission was not sent.
@pytest.mark.parametrize("client_options", [{"project_id": 123, "read_timeout": 2.0, "call_deadline": 3.0}])
def test_an_unknown_outcome_offers_reconcile(emulator: Emulator, client: mnb.Client) -> None:
    form = ReportForm(client, REJECTED, "2024Q3")
    rid = form.report_dropdown.value
    requests.patch(f"{emulator.url}/reports/{rid}", json={"report": {"name": "Unlucky report"}}, timeout=10,
                   headers={"Authorization": f"Bearer {emulator.token}"}).raise_for_status()
    emulator.faults.drop(SUBMITS, 1, after_commit=True)  # the submission arrives, its answer is lost
    to_confirmation(form)
    form.confirm_button.click()
    sent_at = time.monotonic()
    assert form.state == "outcome unknown" and isinstance(form.error, mnb.SubmissionOutcomeUnknownError)
    assert "Outcome unknown" in status(form) and "Reconcile" in status(form)
    assert form.reconcile_button.layout.display == "" and "Outcome unknown" in form.static_html
    form.plan_button.click()  # nothing else until reconciled
    assert form.state == "outcome unknown" and "Reconcile" in status(form)
    with pytest.raises(mnb.PreconditionError, match="reconcile_report"):
        client.submit_report(rid)
    assert emulator.count(SUBMITS) == 1
    # The registry refuses this report: once its task has ended, it is a draft again, and nothing is going on.
    wait_until(lambda: client.report(rid, look_in_batches=False).status == "draft")
    time.sleep(max(0.0, sent_at + 5.1 - time.monotonic()))  # past the grace: a draft now means not sent
    form.reconcile_button.click()
    assert form.error is None and form.state == "idle", form.status.value
    assert form.reconciliation.sent is False and "Submitting again is safe" in status(form)
    assert form.reconcile_button.layout.display == "none"
    assert emulator.count(SUBMITS) == 1


def test_reconcile_after_an_accepted_submission_shows_the_allocation(emulator: Emulator, client: mnb.Client,
                                                                       quarter: float) -> None:
    form = ReportForm(client, Q1_REPORT, "2025Q1")
    emulator.faults.drop(SUBMITS, 1, after_commit=True)
    to_confirmation(form)
    form.confirm_button.click()
    assert form.state == "outcome unknown"
    rid = form.report_dropdown.value
    wait_until(lambda: client.report(rid, look_in_batches=False).status == "complete")
    form.reconcile_button.click()
    assert form.state == "done" and form.result is not None, form.status.value
    assert f"the registry allocated {quarter:,.3f} t" in status(form) and "Do not submit it again" in status(form)
    assert "NCR-2025-01" in form.static_html
    assert emulator.count(SUBMITS) == 1


# --- what is shown -------------------------------------------------------------------------------------------


def assert_safe_html(text: str) -> None:
    for tag, attrs in Elements(text).tags:
        assert tag not in ("script", "iframe", "object", "embed", "svg", "img"), (tag, text)
        assert not [name for name in attrs if name.lower().startswith("on")], (tag, attrs)


def test_hostile_report_names_stay_escaped_in_the_widget_and_the_static_copy(emulator: Emulator,
                                                                              client: mnb.Client) -> None:
    rid = report_id(client, REJECTED)
    requests.patch(f"{emulator.url}/reports/{rid}", json={"report": {"name": HOSTILE}}, timeout=10,
                   headers={"Authorization": f"Bearer {emulator.token}"}).raise_for_status()
    form = ReportForm(client, HOSTILE, "2024Q3")  # found by its name
    assert form.report_dropdown.value == rid
    assert any(label.startswith(HOSTILE + " — ") for label, _ in form.report_dropdown.options)  # as text
    to_confirmation(form)
    assert HOSTILE in form.confirmation  # plain text; escaped where it is shown
    seen = [form.confirm_html.value, form.facts_html.value, form.plan_html.value]
    form.confirm_button.click()
    with pytest.raises(mnb.TaskFailedError):
        form.wait(timeout=20)
    bundle = form._mimebundle()
    seen += [w.value for w in every_widget(form.widget) if isinstance(w, widgets.HTML | widgets.HTMLMath)]
    seen += [form.static_html, bundle["text/html"]]
    assert html.escape(HOSTILE) in seen[0] and html.escape(HOSTILE) in seen[2]  # the question, the plan
    assert html.escape(HOSTILE) in form.static_html
    for value in seen:
        assert_safe_html(value)
        assert HOSTILE not in value and "<script>" not in value
    for widget in every_widget(form.widget):
        assert not getattr(widget, "description_allow_html", False)


def test_no_token_in_the_widgets_the_static_copy_or_the_display(make_emulator: Callable[..., Emulator]) -> None:
    canary = "canary-report-form-3c9e1f"
    emu = make_emulator(token=canary)
    with connect_to(emu.url, emu.token, project_id=123) as client:
        client.generate(NCR, "2025Q1").wait(timeout=30)
        form = ReportForm(client, Q1_REPORT, "2025Q1")
        to_confirmation(form)
        form.confirm_button.click()
        form.wait(timeout=20)
        bundle = form._mimebundle()
        assert set(bundle) == {"text/plain", "text/html", WIDGET_VIEW}  # one display: the widgets and the copy
        assert bundle["text/html"] == form.static_html and "allocated" in form.static_html
        state = json.dumps([w.get_state() for w in every_widget(form.widget)], default=repr)
        assert Q1_REPORT in state  # the walk reaches the widgets' state
        for text in (state, form.static_html, json.dumps(bundle), repr(form)):
            assert canary not in text and canary[-8:] not in text


def test_changing_the_report_or_period_starts_afresh(client: mnb.Client) -> None:
    form = ReportForm(client, REJECTED, "2024Q3")
    form.plan_button.click()
    assert form.plan_html.value and not form.submit_button.disabled
    form.period_picker.value = "2024Q2"
    assert form.state == "idle" and form.plan_result is None and form.plan_html.value == ""
    assert form.submit_button.disabled and form.fill_button.disabled
    with pytest.raises(mnb.PreconditionError, match="Plan this report and period first"):
        form.submit()
    form.plan_button.click()  # 2024Q2's batches would replace the report's 2024Q3: three of each
    plan = form.plan_result
    assert len(plan.added) == 3 and len(plan.removed) == 3 and not form.fill_button.disabled
    form.report_dropdown.value = report_id(client, Q1_REPORT)
    assert form.plan_result is None and "2025Q1 Quarterly Report, 2024Q2: Plan" in status(form)


def test_a_draft_the_server_reads_back_without_its_batches_is_said_so_after_fill() -> None:
    """The documentation's shapes: a filled draft reads back with ``inclusions: []``. The form says the server does
    not list its batches, so they cannot be checked, and how to let the server's own checks decide."""
    moment = "2025-01-15T10:00:00.000Z"
    draft = {"id": "rpt_x", "name": "Q1", "report_type": "registry", "status": "draft", "project_id": 123,
             "created_at": moment, "updated_at": moment, "inclusions": [], "allocation": None}
    batch = {"id": "bat_1", "tracking_id": "Jan-2025-001", "start_time": "2025-01-01T00:00:00.000Z",
             "end_time": "2025-01-31T23:59:59.000Z", "state": "complete", "created_at": moment, "ledger_balance": 33.5,
             "primary_output": {"id": 1, "name": NCR, "unit": "t", "value": 33.5}}
    ledger = {"id": "lgr_1", "name": NCR, "unit": "t", "system_ledger_type": None, "partition_type": "time",
              "cadence": "monthly", "latest_model": {"id": "mdl_1", "name": "M"}, "asset_category": None,
              "created_at": moment, "updated_at": moment}
    with PayloadServer() as server:
        server.route("GET", "/reports/rpt_x", (200, draft, {}))
        server.route("GET", "/reports", (200, {"data": [draft]}, {}))
        server.route("GET", "/batches", (200, {"data": [batch]}, {}))
        server.route("GET", "/batches/bat_1", (200, {**batch, "report_allocations": []}, {}))
        server.route("GET", "/ledgers", (200, {"data": [ledger]}, {}))
        server.route("GET", "/ledgers/lgr_1/batches", (200, {"data": [batch]}, {}))
        server.route("PATCH", "/reports/rpt_x", (200, draft, {}))
        with connect_to(server.url, "documented-form-token-5e1a", project_id=123) as client:
            form = ReportForm(client, "rpt_x", "2025Q1", ledgers=[NCR])
            form.plan_button.click()
            form.fill_button.click()
            assert form.error is None, form.status.value
            shown = status(form)
            assert "does not list this draft's batches" in shown and "cannot be checked here" in shown
            assert "client.submit_report('rpt_x', even_if_unlisted=True)" in shown
        assert len(server.received("PATCH")) == 1 and not server.received("POST")


def test_without_a_draft_report_the_form_says_where_reports_come_from(emulator: Emulator) -> None:
    with connect_to(emulator.url, emulator.token, project_id=999) as client:  # a project without reports
        form = ReportForm(client)
        assert form.report_dropdown.options == () and form.report_dropdown.value is None
        assert "No draft report" in status(form) and "Mangrove's app" in status(form)
        assert form.plan_button.disabled
        with pytest.raises(mnb.PreconditionError, match="No report is chosen"):
            form.plan()
    with connect_to(emulator.url, emulator.token) as client, pytest.raises(mnb.ValidationError, match="No report"):
        ReportForm(client, "no such report")


# --- accounting truth in the form ----------------------------------------------------------------------------


def test_a_period_without_batches_neither_fills_nor_empties_the_draft(emulator: Emulator, client: mnb.Client) -> None:
    """2025Q2 has no batch: a plan of it on the draft that holds 2024Q3 is a problem, and Fill stays disabled."""
    form = ReportForm(client, REJECTED, period="2025Q2")
    held = form.client.report(form.report_dropdown.value).batch_ids
    form.plan_button.click()
    plan = form.plan_result
    assert plan is not None and [p.kind for p in plan.problems] == ["no_candidates"]
    assert form.fill_button.disabled and form.submit_button.disabled
    assert "2025Q2 has no complete batches on Net Carbon Removal" in html.unescape(form.plan_html.value)
    assert "Fix the problems" in status(form)
    with pytest.raises(mnb.ReportPlanError, match="2025Q2 has no complete batches"):
        form.fill()
    assert emulator.count(PATCHES) == 0 and client.report(form.report_dropdown.value).batch_ids == held


def test_a_batch_made_with_a_skipped_input_is_a_problem_in_the_form_and_fill_stays_disabled(
        emulator: Emulator, client: mnb.Client) -> None:
    """November 2025 generated without Electricity Consumption may overstate the report: the plan lists it as a
    problem of that batch (escaped, like every problem), its row says it, and neither Fill nor Submit can run."""
    inputs = client.required_inputs(NCR)
    electricity = int(inputs.loc[inputs["name"] == "Electricity Consumption", "id"].item())
    for month, skipped in (("2025-10", None), ("2025-11", [electricity]), ("2025-12", None)):
        client.generate(NCR, month, skipped_data_point_type_ids=skipped,
                        drop_existing_readings=skipped is not None).wait(timeout=30)
    november = str(client.batches(NCR, "2025-11", state="complete")["id"].item())
    form = ReportForm(client, Q1_REPORT, period="2025Q4")
    form.plan_button.click()
    plan = form.plan_result
    assert plan is not None and [(p.batch_id, p.kind) for p in plan.problems] == [(november, "skipped_input")]
    shown = html.unescape(form.plan_html.value)
    assert f"Batch {november} (NCR-2025-11, 2025-11): generated without Electricity Consumption" in shown
    assert f"client.delete_batch('{november}', even_if_complete=True)" in shown
    assert "1 problem(s)" in status(form) and "Fix the problems" in status(form)
    assert form.fill_button.disabled and form.submit_button.disabled
    with pytest.raises(mnb.ReportPlanError, match="generated without Electricity Consumption"):
        form.fill()
    assert emulator.count(PATCHES) == 0 and emulator.count(SUBMITS) == 0


def test_the_question_names_the_months_the_hint_points_to_it_and_submit_is_blue_only_when_it_can_be_clicked(
        emulator: Emulator, client: mnb.Client, quarter: float) -> None:
    form = ReportForm(client, Q1_REPORT, period="2025Q1")
    assert form.submit_button.disabled and form.submit_button.button_style == ""
    form.plan_button.click()
    assert form.submit_button.disabled and form.submit_button.button_style == ""  # Fill is the next step
    form.fill_button.click()
    assert not form.submit_button.disabled and form.submit_button.button_style == "primary"
    form.submit_button.click()
    assert "from 2025-01 to 2025-03 (2025Q1)" in form.confirmation
    assert "Read the question above" in status(form)
    # The question is above the status in the form's box.
    children = list(form.widget.children)
    assert children.index(form.confirm_box) < children.index(form.status)
    form.cancel_button.click()
    assert emulator.count(SUBMITS) == 0


def test_a_plan_of_another_quarter_on_a_named_report_warns(emulator: Emulator, client: mnb.Client) -> None:
    form = ReportForm(client, Q1_REPORT, period="2024Q3")
    form.plan_button.click()
    shown = html.unescape(form.plan_html.value)
    assert "Warning:" in shown and "named '2025Q1 Quarterly Report', for 2025Q1" in shown
    assert REJECTED in shown  # the batches are on that draft too: a note names it
    assert "Totals the report would hold, of 2024-07 to 2024-09 (2024Q3)" in shown


def test_ledgers_named_in_the_form_are_filled_and_submitted_as_named(emulator: Emulator, client: mnb.Client,
                                                                     quarter: float) -> None:
    """Several ledgers only when named: the form's Fill and Confirm submit carry the ledgers its plan was made
    with (a list of ids alone would not say them, and the checks would refuse the report)."""
    form = ReportForm(client, Q1_REPORT, period="2025Q1", ledgers=[NCR, "Biochar Produced"])
    form.plan_button.click()
    assert form.plan_result.ok and len(form.plan_result.added) == 6, form.status.value
    assert any("as named" in note for note in form.plan_result.notes)
    to_confirmation(form)
    assert f"{NCR} (t) and Biochar Produced (t)" in form.confirmation
    form.confirm_button.click()
    report = form.wait(timeout=20)
    assert form.error is None and report is not None and report.status == "complete", status(form)
    assert emulator.count(PATCHES) == 1 and emulator.count(SUBMITS) == 1


def test_a_complete_report_shows_what_it_holds(client: mnb.Client) -> None:
    form = ReportForm(client, COMPLETE, period="2024Q4")
    form.plan_button.click()
    shown = html.unescape(form.plan_html.value)
    allocated = client.report(form.report_dropdown.value).allocated_amount
    assert "Totals the report holds (complete: it cannot change)" in shown and f"{allocated:,.3f}" in shown
    assert f"it holds {allocated:,.6g} t" in status(form)


def test_the_question_repeats_the_plans_warning(emulator: Emulator, client: mnb.Client) -> None:
    form = ReportForm(client, Q1_REPORT, period="2024Q3")
    to_confirmation(form)
    assert "from 2024-07 to 2024-09 (2024Q3)" in form.confirmation
    assert "Warning: Report" in form.confirmation and "named '2025Q1 Quarterly Report', for 2025Q1" in form.confirmation
    form.cancel_button.click()
    assert emulator.count(SUBMITS) == 0
