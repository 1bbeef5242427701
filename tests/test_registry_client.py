"""Registry reports from the client: list, read, plan, fill, submit once, wait, reconcile.

Against the emulator (its seeded reports: "2024Q4 Quarterly Report", complete, holding the 2024Q4 Net Carbon
Removal batches; "2025Q1 Quarterly Report", an empty draft; "Rejected by registry (demo)", a draft holding
2024Q3 whose submission the emulated registry always rejects), counting what reached the server with its
request log; then against the documentation's own payloads (``payload_server``: ``inclusions: []``, sparse
objects, the ``{message}`` error shape, a 422, a dropped answer, a 303) for what the emulator never sends.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from helpers import connect_to, report_named
from payload_server import DROP, PayloadServer

import mangrove_nb as mnb
from mangrove_nb._sent import STATE_FILE
from mangrove_nb._sent import Sent as _Sent
from mangrove_nb.registry import (
    INCLUSIONS_SCHEMA,
    PLAN_BATCHES_SCHEMA,
    REPORTS_SCHEMA,
    TOTALS_SCHEMA,
    Report,
    ReportPlan,
)

NCR = "Net Carbon Removal"
COMPLETE = "2024Q4 Quarterly Report"
DRAFT = "2025Q1 Quarterly Report"
REJECTED = "Rejected by registry (demo)"
REJECTION = "lacks the verifier's signed statement"
SPEC = Path(__file__).resolve().parents[1] / "docs" / "contract" / "mangrove-openapi.yaml"


# --- the emulator ----------------------------------------------------------------------------------------------


@pytest.fixture
def client_options() -> dict[str, Any]:
    """The shared ``client`` fixture (conftest.py), in the seeded project: reports are per project."""
    return {"project_id": 123}


@pytest.fixture
def q1(client: mnb.Client) -> pd.DataFrame:
    """2025Q1 generated on Net Carbon Removal: its three complete batches."""
    client.generate(NCR, "2025Q1").wait()
    return client.batches(NCR, "2025Q1", state="complete")


def writes(emulator: Any) -> tuple[int, int]:
    """(PATCH /reports/{id}, POST /reports/{id}/submit) requests that reached the emulator."""
    return emulator.count("update-report"), emulator.count("submit-report")


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def assert_schema(frame: pd.DataFrame, schema: Any) -> None:
    assert list(frame.columns) == list(schema)
    assert {c: str(t) for c, t in frame.dtypes.items()} == dict(schema)


def test_reports_are_a_typed_frame_and_an_empty_one_keeps_its_columns(client: mnb.Client) -> None:
    reports = client.reports()
    assert_schema(reports, REPORTS_SCHEMA)
    assert reports["name"].tolist() == [COMPLETE, DRAFT, REJECTED]  # by creation time
    complete = reports[reports["name"] == COMPLETE].iloc[0]
    assert complete["status"] == "complete" and complete["batch_count"] == 3 and complete["allocated_unit"] == "t"
    assert complete["allocated_amount"] > 0 and complete["project_id"] == "123"
    assert str(reports["created_at"].dt.tz) == "UTC"
    assert client.reports(status="draft")["name"].tolist() == [DRAFT, REJECTED]
    none = client.reports(status="submitting")
    assert len(none) == 0
    assert_schema(none, REPORTS_SCHEMA)


def test_a_report_reads_its_inclusions_and_allocation(client: mnb.Client) -> None:
    report = client.report(report_named(client, COMPLETE))
    assert isinstance(report, Report) and report.status == "complete" and not report.is_draft
    assert_schema(report.inclusions, INCLUSIONS_SCHEMA)
    assert report.inclusions_source == "report"
    assert report.inclusions["tracking_id"].tolist() == ["NCR-2024-10", "NCR-2024-11", "NCR-2024-12"]
    assert report.allocated_amount == pytest.approx(float(report.inclusions["amount"].sum()))
    assert report.created_at is not None and str(report.created_at.tz) == "UTC"
    balances = client.batches(NCR, "2024Q4").set_index("id")["ledger_balance"]
    assert all(balances[b] == 0 for b in report.batch_ids)  # the allocation took them
    assert report.totals()["amount"].tolist() == [pytest.approx(report.allocated_amount)]


def test_a_plan_adds_the_quarter_at_its_balances_and_sends_nothing(client: mnb.Client, emulator: Any,
                                                                   q1: pd.DataFrame) -> None:
    rid = report_named(client, DRAFT)
    plan = client.plan_report(rid, q1)
    assert isinstance(plan, ReportPlan) and plan.ok and plan.changes
    assert_schema(plan.added, PLAN_BATCHES_SCHEMA)
    assert_schema(plan.totals, TOTALS_SCHEMA)
    assert plan.added["batch_id"].tolist() == q1["id"].tolist() and plan.kept.empty and plan.removed.empty
    assert plan.added["amount"].tolist() == q1["ledger_balance"].tolist()
    assert plan.totals[["ledger_name", "unit", "batches"]].values.tolist() == [[NCR, "t", 3]]
    assert plan.totals["amount"].iloc[0] == pytest.approx(float(q1["ledger_balance"].sum()))
    assert plan.batch_ids == tuple(q1["id"])
    assert "3 added, 0 removed, 0 kept" in repr(plan) and "Nothing has been sent" in plan.to_text()
    assert writes(emulator) == (0, 0)


def test_a_plan_names_every_problem_with_its_batch_and_leaves_it_out_of_the_totals(
        client: mnb.Client, emulator: Any, q1: pd.DataFrame) -> None:
    rid = report_named(client, DRAFT)
    reported = client.report(report_named(client, COMPLETE)).batch_ids[0]
    failed = client.batches("Dry Feedstock Delivered", "2024-10", state="failed")["id"].iloc[0]
    good = str(q1["id"].iloc[0])
    plan = client.plan_report(rid, [good, reported, failed, "bat_doesnotexist"])
    kinds = {(p.batch_id, p.kind) for p in plan.problems}
    assert (reported, "no_balance") in kinds and (reported, "on_other_report") in kinds
    assert (failed, "not_complete") in kinds and ("bat_doesnotexist", "unknown_batch") in kinds
    assert good not in {p.batch_id for p in plan.problems}
    # A feedstock batch beside removals: the report itself would add up two ledgers (a problem of the report).
    assert [p.kind for p in plan.problems if p.batch_id is None] == ["mixed_ledgers"]
    for problem in plan.problems:  # each names its batch and what to do
        if problem.batch_id is not None:
            assert problem.batch_id in problem.message and "leave it out" in problem.message
    assert COMPLETE in next(p.message for p in plan.problems if p.kind == "on_other_report")
    # Only the good batch counts: nothing with a problem can inflate the report's total.
    assert plan.totals["amount"].sum() == pytest.approx(float(q1["ledger_balance"].iloc[0]))
    assert plan.problems_frame()["batch_id"].fillna("(report)").tolist() == [p.batch_id or "(report)"
                                                                             for p in plan.problems]
    with pytest.raises(mnb.ReportPlanError) as refused:
        client.fill_report(rid, [good, reported, failed, "bat_doesnotexist"])
    assert refused.value.plan is not None and len(refused.value.problems) == len(plan.problems)
    assert "bat_doesnotexist" in str(refused.value) and "Nothing was sent" in str(refused.value)
    assert writes(emulator) == (0, 0)


def test_fill_submit_and_wait_return_the_submitted_report_and_the_balances_drop(
        client: mnb.Client, emulator: Any, q1: pd.DataFrame) -> None:
    rid = report_named(client, DRAFT)
    filled = client.fill_report(rid, q1)
    assert filled.status == "draft" and filled.batch_ids == tuple(q1["id"]) and filled.inclusions_source == "report"
    assert filled.inclusions["amount"].tolist() == q1["ledger_balance"].tolist()
    again = client.plan_report(rid, q1)
    assert again.ok and not again.changes and len(again.kept) == 3
    task = client.submit_report(rid)
    assert isinstance(task, mnb.Task) and task.report_id == rid
    submitted = task.wait()
    assert isinstance(submitted, Report) and submitted.status == "complete"
    assert submitted.allocated_amount == pytest.approx(float(q1["ledger_balance"].sum()))
    after = client.batches(NCR, "2025Q1").set_index("id")["ledger_balance"]
    assert after.loc[list(q1["id"])].tolist() == [0.0, 0.0, 0.0]
    assert writes(emulator) == (1, 1)
    assert client.reports(status="complete")["name"].tolist() == [COMPLETE, DRAFT]


def test_a_frame_a_list_of_ids_and_a_plans_own_frame_give_the_same_plan(client: mnb.Client,
                                                                        q1: pd.DataFrame) -> None:
    rid = report_named(client, DRAFT)
    from_frame = client.plan_report(rid, q1)
    from_ids = client.plan_report(rid, list(q1["id"]))
    from_plan = client.plan_report(rid, from_frame.added)
    for plan in (from_ids, from_plan):
        assert plan.batch_ids == from_frame.batch_ids and plan.ok
        pd.testing.assert_frame_equal(plan.totals, from_frame.totals)
        pd.testing.assert_frame_equal(plan.added, from_frame.added)


def test_a_report_that_is_not_a_draft_refuses_filling_and_nothing_is_sent(client: mnb.Client, emulator: Any,
                                                                          q1: pd.DataFrame) -> None:
    rid = report_named(client, COMPLETE)
    plan = client.plan_report(rid, q1)
    assert [p.kind for p in plan.problems] == ["not_draft"]
    assert len(plan.removed) == 3 and len(plan.added) == 3  # what it would mean, shown all the same
    with pytest.raises(mnb.ReportPlanError, match="only a draft can be filled"):
        client.fill_report(rid, q1)
    with pytest.raises(mnb.ReportPlanError, match="only a draft can be submitted"):
        client.submit_report(rid)
    assert writes(emulator) == (0, 0)


def test_an_empty_draft_is_not_submitted(client: mnb.Client, emulator: Any) -> None:
    with pytest.raises(mnb.ReportPlanError, match="holds no batch") as refused:
        client.submit_report(report_named(client, DRAFT))
    assert refused.value.batch_ids == (None,)
    assert writes(emulator) == (0, 0)


def test_a_double_submit_posts_once(client: mnb.Client, emulator: Any, q1: pd.DataFrame) -> None:
    rid = report_named(client, DRAFT)
    client.fill_report(rid, q1)
    task = client.submit_report(rid)
    # Refused whether the first is still running (this session's record) or done (the report is no longer a draft).
    with pytest.raises(mnb.PreconditionError):
        client.submit_report(rid)
    assert task.wait().status == "complete"
    with pytest.raises(mnb.PreconditionError):
        client.submit_report(rid)
    assert emulator.count("submit-report") == 1


@pytest.mark.parametrize("threads", [2, 8])
def test_racing_threads_submit_once(client: mnb.Client, emulator: Any, q1: pd.DataFrame, threads: int) -> None:
    rid = report_named(client, DRAFT)
    client.fill_report(rid, q1)
    start = threading.Barrier(threads)
    outcomes: list[object] = []

    def go() -> None:
        start.wait()
        try:
            outcomes.append(client.submit_report(rid))
        except mnb.MangroveError as exc:
            outcomes.append(exc)

    workers = [threading.Thread(target=go) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert emulator.count("submit-report") == 1
    tasks = [o for o in outcomes if isinstance(o, mnb.Task)]
    assert len(tasks) == 1 and len(outcomes) == threads
    assert all(isinstance(o, mnb.Task | mnb.PreconditionError) for o in outcomes), outcomes
    assert tasks[0].wait().status == "complete"


def test_a_report_changed_since_the_confirmation_is_not_submitted_naming_what_changed(
        client: mnb.Client, emulator: Any, q1: pd.DataFrame) -> None:
    """The analyst confirmed a plan; meanwhile a second client filled the draft again. Nothing may go to the registry
    but what was confirmed: the batches, and the amounts."""
    rid = report_named(client, DRAFT)
    client.fill_report(rid, q1)
    confirmed = client.plan_report(rid, q1)  # what the analyst saw: 3 kept, at their balances
    assert confirmed.ok and not confirmed.changes
    extra = str(client.batches(NCR, "2024-07", state="complete")["id"].iloc[0])  # on a draft only: may be added
    kept, dropped = list(q1["id"][:2]), str(q1["id"].iloc[2])
    with connect_to(emulator.url.replace("127.0.0.1", "localhost"), emulator.token, project_id=123) as other:
        other.fill_report(rid, [*kept, extra])
        with pytest.raises(mnb.ReportPlanError) as changed:
            client.submit_report(rid, expected=confirmed)
        assert {p.kind for p in changed.value.plan.problems} == {"changed_since_confirmed"}
        assert set(changed.value.batch_ids) == {extra, dropped}
        said = str(changed.value)
        assert "changed since the submission was confirmed" in said and "confirmed: 3 batch(es)" in said
        assert f"Batch {extra}" in said and "was put on" in said and f"Batch {dropped}" in said
        assert "taken off" in said
        # The same batches, another amount: refused too, naming both amounts. Batch ids alone check the set only.
        other.fill_report(rid, q1)
        amounts = {str(b): float(a) for b, a in zip(q1["id"], q1["ledger_balance"], strict=True)}
        first = str(q1["id"].iloc[0])
        with pytest.raises(mnb.ReportPlanError, match=f"Batch {first}: .* was confirmed, report .* now holds"):
            client.submit_report(rid, expected={**amounts, first: amounts[first] - 1})
        with pytest.raises(mnb.ValidationError) as bad:
            client.submit_report(rid, expected="bat_x")
        assert bad.value.argument == "expected"
    assert writes(emulator) == (3, 0)
    submitted = client.submit_report(rid, expected=confirmed).wait()  # what was confirmed: sent once
    assert submitted is not None and submitted.allocated_amount == pytest.approx(sum(amounts.values()))
    assert writes(emulator) == (3, 1)


def test_two_drafts_sharing_batches_are_checked_again_under_the_lock_so_one_is_posted(
        client: mnb.Client, emulator: Any, q1: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    """The other-report check runs right before the POST, under the API's lock. Here one submission has read the
    project's reports (both drafts) and, before it goes on, another thread submits the other draft with the same
    batches: a check made outside the lock would let both POSTs leave."""
    with emulator.store.transaction() as conn:
        conn.execute("UPDATE reports SET registry_rejection = NULL")
    first, second = report_named(client, DRAFT), report_named(client, REJECTED)
    client.fill_report(first, q1)
    client.fill_report(second, q1)  # drafts may share batches
    real = client.http.reports
    listed, other_done = threading.Event(), threading.Event()
    outcomes: dict[str, object] = {}

    def reports(**params: Any) -> Any:
        listing = real(**params)  # what the check sees: both reports still drafts
        if threading.current_thread() is worker and not listed.is_set():
            listed.set()
            other_done.wait(3)  # the other submission goes now, if it can (not while this one holds the lock)
        return listing

    monkeypatch.setattr(client.http, "reports", reports)
    worker = threading.Thread(target=lambda: outcomes.update({second: _submitted_or_error(client, second)}))
    worker.start()
    assert listed.wait(30)
    outcomes[first] = _submitted_or_error(client, first)
    other_done.set()
    worker.join(30)
    assert emulator.count("submit-report") == 1, outcomes
    refused = [o for o in outcomes.values() if isinstance(o, mnb.ReportPlanError)]
    assert len(refused) == 1 and "on_other_report" in {p.kind for p in refused[0].plan.problems}, outcomes
    [task] = [o for o in outcomes.values() if isinstance(o, mnb.Task)]
    assert task.wait() is not None


def _submitted_or_error(client: mnb.Client, rid: str) -> object:
    try:
        return client.submit_report(rid)
    except mnb.MangroveError as exc:
        return exc


def test_default_ledgers_come_from_submitted_reports_and_several_are_a_problem_until_named(
        client: mnb.Client, emulator: Any, q1: pd.DataFrame) -> None:
    rid, demo = report_named(client, DRAFT), report_named(client, REJECTED)
    biochar = str(client.batches("Biochar Produced", "2024Q3", state="complete")["id"].iloc[0])
    client.fill_report(demo, [*client.report(demo).batch_ids, biochar],  # a mistake, on another draft
                       ledgers=[NCR, "Biochar Produced"])
    candidates = client.report_candidates(rid, "2025Q1")
    assert set(candidates["ledger_name"]) == {NCR}  # a draft's batches are no evidence of what is reported
    assert candidates.attrs["ledgers_by_default"] is True and len(candidates.attrs["ledger_ids"]) == 1
    assert client.plan_report(rid, candidates).ok
    # A submitted report that adds up two ledgers: a default choice of them is now a problem, not a note.
    with emulator.store.transaction() as conn:
        conn.execute("UPDATE reports SET registry_rejection = NULL")
    both = client.report_candidates(rid, "2025Q1", ledgers=[NCR, "Biochar Produced"])
    assert client.plan_report(rid, both).ok  # named: the analyst said so (a note only)
    client.fill_report(rid, both)
    client.submit_report(rid, ledgers=[NCR, "Biochar Produced"]).wait()
    defaulted = client.report_candidates(demo, "2024Q3")
    plan = client.plan_report(demo, defaulted)
    [problem] = [p for p in plan.problems if p.kind == "ledgers_not_named"]
    assert problem.batch_id is None and f"{NCR} (t)" in problem.message and "Biochar Produced (t)" in problem.message
    assert "ledgers=[" in problem.message and "--ledger" in problem.message
    patches = emulator.count("update-report")
    with pytest.raises(mnb.ReportPlanError, match="chosen by default"):
        client.fill_report(demo, defaulted)
    assert emulator.count("update-report") == patches
    named = client.plan_report(demo, client.report_candidates(demo, "2024Q3", ledgers=[NCR]))
    assert "ledgers_not_named" not in {p.kind for p in named.problems}


def test_the_rejected_report_fails_with_the_registrys_message_and_goes_back_to_draft(client: mnb.Client,
                                                                                    emulator: Any) -> None:
    rid = report_named(client, REJECTED)
    before = client.report(rid)
    with pytest.raises(mnb.TaskFailedError) as failed:
        client.submit_report(rid).wait()
    assert REJECTION in str(failed.value) and REJECTION in (failed.value.error_message or "")
    assert f"submission of report {rid} failed" in str(failed.value)
    after = client.report(rid)
    assert after.status == "draft" and after.allocated_amount is None and after.batch_ids == before.batch_ids
    # Nothing is recorded against it: a second submission is sent (and refused by the registry again).
    with pytest.raises(mnb.TaskFailedError):
        client.submit_report(rid).wait()
    assert emulator.count("submit-report") == 2


def test_a_dropped_answer_to_the_submit_is_an_unknown_outcome_that_reconcile_report_resolves(
        client: mnb.Client, emulator: Any, q1: pd.DataFrame) -> None:
    rid = report_named(client, DRAFT)
    client.fill_report(rid, q1)
    emulator.faults.drop("submit-report", after_commit=True)
    with pytest.raises(mnb.SubmissionOutcomeUnknownError) as unknown:
        client.submit_report(rid)
    assert unknown.value.report_id == rid and "reconcile_report" in str(unknown.value)
    with pytest.raises(mnb.PreconditionError, match="unknown outcome"):
        client.submit_report(rid)
    assert emulator.count("submit-report") == 1  # never re-sent
    found = client.reconcile_report(rid)
    assert found.sent is True and found.cleared == 1 and found.report.status in ("submitting", "complete")
    assert "was sent" in found.advice()
    with pytest.raises(mnb.ReportPlanError, match="not 'draft'"):  # the report is no longer a draft
        client.submit_report(rid)
    assert emulator.count("submit-report") == 1


# Timeouts short enough that a test can outlast the grace after which a draft means "not sent" (3 s here).
SHORT = {"read_timeout": 1.0, "call_deadline": 2.0, "max_retries": 0}


def test_a_submit_dropped_before_the_server_acted_is_reconciled_as_not_sent_and_sent_again(
        emulator: Any) -> None:
    with connect_to(emulator.url, emulator.token, project_id=123, **SHORT) as client:
        rid = report_named(client, REJECTED)
        emulator.faults.drop("submit-report", after_commit=False)
        with pytest.raises(mnb.SubmissionOutcomeUnknownError):
            client.submit_report(rid)
        soon = client.reconcile_report(rid)  # a draft moments after sending: not seen yet, still refused
        assert soon.sent is None and soon.cleared == 0 and soon.check_again_in is not None
        assert 0 < soon.check_again_in <= 3.0 and "Check again after" in soon.advice()
        with pytest.raises(mnb.PreconditionError, match="unknown outcome"):
            client.submit_report(rid)
        time.sleep(soon.check_again_in + 0.05)
        found = client.reconcile_report(rid)  # a draft after the grace: it was not sent
        assert found.sent is False and found.cleared == 1 and "safe" in found.advice()
        with pytest.raises(mnb.TaskFailedError, match=REJECTION):
            client.submit_report(rid).wait()
    assert emulator.count("submit-report") == 2


def test_a_draft_read_while_the_submission_is_still_on_its_way_is_not_seen_yet_not_safe(
        emulator: Any, q1: pd.DataFrame) -> None:
    """A slow server acts on the POST after the client gave up: a draft read at once must not mean "not sent"."""
    with connect_to(emulator.url, emulator.token, project_id=123, **SHORT) as client:
        rid = report_named(client, DRAFT)
        client.fill_report(rid, q1)
        emulator.faults.delay("submit-report", 3.0)  # the server acts 3 s after the POST arrived
        with pytest.raises(mnb.SubmissionOutcomeUnknownError):
            client.submit_report(rid)
        soon = client.reconcile_report(rid)
        assert soon.report.status == "draft" and soon.sent is None and soon.cleared == 0
        assert "not been seen yet" in soon.advice() and "Submitting again is safe" not in soon.advice()
        with pytest.raises(mnb.PreconditionError, match="unknown outcome"):
            client.submit_report(rid)  # following the advice sends nothing
        wait_until(lambda: client.report(rid, look_in_batches=False).status != "draft")
        emulator.faults.clear()
        found = client.reconcile_report(rid)
        assert found.sent is True and found.cleared == 1
    assert emulator.count("submit-report") == 1


def test_ctrl_c_after_the_server_accepted_but_before_the_task_was_recorded_is_an_unknown_outcome(
        client: mnb.Client, emulator: Any, q1: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    """The worst moment: the 202 has arrived, the record is not written yet. The record must assume the worst
    (an unknown outcome, saved), never forget the submission, so a re-run cell does not send it again."""
    from mangrove_nb.registry import submission as submission_module

    rid = report_named(client, DRAFT)
    client.fill_report(rid, q1)

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(submission_module, "submission_task", interrupted)
    with pytest.raises(KeyboardInterrupt):
        client.submit_report(rid)
    monkeypatch.undo()
    with pytest.raises(mnb.PreconditionError, match="unknown outcome"):
        client.submit_report(rid)
    state = (Path(client.settings.state_dir or "") / STATE_FILE).read_text(encoding="utf-8")
    assert rid in state and "interrupted while the answer was being recorded" in state
    assert emulator.count("submit-report") == 1
    assert client.reconcile_report(rid).sent is True


def test_a_restarted_kernel_remembers_the_unknown_submission(client: mnb.Client, emulator: Any) -> None:
    rid = report_named(client, REJECTED)
    emulator.faults.drop("submit-report", after_commit=False)
    with pytest.raises(mnb.SubmissionOutcomeUnknownError):
        client.submit_report(rid)
    state = Path(client.settings.state_dir or "") / STATE_FILE
    text = state.read_text(encoding="utf-8")
    assert rid in text and emulator.token not in text
    _Sent._registry.clear()  # a new Python process: only the state file remembers
    with connect_to(emulator.url.replace("127.0.0.1", "localhost"), emulator.token, project_id=123) as restarted:
        with pytest.raises(mnb.PreconditionError, match="earlier session"):
            restarted.submit_report(rid)
        # Sent moments ago by the record's wall clock: a draft is not yet "not sent" (150 s by default).
        soon = restarted.reconcile_report(rid)
        assert soon.sent is None and soon.check_again_in is not None and soon.check_again_in > 140
        assert rid in state.read_text(encoding="utf-8")
    # The same record, sent an hour ago: the grace is long over, so a draft means it was not sent.
    entries = json.loads(state.read_text(encoding="utf-8"))
    for entry in (e for listed in entries.values() for e in listed if e.get("report_id") == rid):
        entry["sent_at"] = (pd.Timestamp.now(tz="UTC") - pd.Timedelta(hours=1)).isoformat()
    state.write_text(json.dumps(entries), encoding="utf-8")
    _Sent._registry.clear()
    with connect_to(emulator.url, emulator.token, project_id=123) as later:
        found = later.reconcile_report(rid)
        assert found.sent is False and found.cleared == 1 and "safe" in found.advice()
        assert rid not in json.dumps(json.loads(state.read_text(encoding="utf-8")))
    assert emulator.count("submit-report") == 1


@pytest.mark.parametrize("batches", [
    "bat_abc", {"id": "bat_abc"}, 7, None, pd.Series(["bat_abc"]), pd.DataFrame({"name": ["x"]}), ["bat_a", 1.5],
    [""],
], ids=["a string", "a dict", "an int", "None", "a Series", "a frame without ids", "a float id", "an empty id"])
def test_other_batches_arguments_are_refused_naming_the_argument_before_anything_is_read(
        client: mnb.Client, emulator: Any, batches: Any) -> None:
    for call in (client.plan_report, client.fill_report):
        with pytest.raises(mnb.ValidationError) as refused:
            call("rpt_x", batches)
        assert refused.value.argument == "batches" and refused.value.status_code is None
        assert "batches" in str(refused.value)
    assert emulator.count("retrieve-report") == 0


def test_bad_report_ids_and_statuses_are_refused_naming_the_argument(client: mnb.Client) -> None:
    for bad in ("", "  ", 12, None):
        with pytest.raises(mnb.ValidationError) as refused:
            client.report(bad)  # type: ignore[arg-type]
        assert refused.value.argument == "report_id"
    with pytest.raises(mnb.ValidationError, match="draft, submitting, complete") as status:
        client.reports(status="Draft")
    assert status.value.argument == "status"
    with pytest.raises(mnb.NotFoundError):
        client.report("rpt_doesnotexist")


def test_candidates_are_the_quarters_complete_batches_of_the_ledgers_the_project_reports(
        client: mnb.Client, q1: pd.DataFrame) -> None:
    rid = report_named(client, DRAFT)
    candidates = client.report_candidates(rid, "2025Q1")
    # Generating Net Carbon Removal made Biochar Produced's batches too: they are not removals, so not candidates.
    assert len(client.batches("Biochar Produced", "2025Q1")) == 3
    assert candidates["id"].tolist() == q1["id"].tolist() and set(candidates["ledger_name"]) == {NCR}
    both = client.report_candidates(rid, "2025Q1", ledgers=[NCR, "Biochar Produced"])
    assert len(both) == 6
    plan = client.plan_report(rid, both)
    assert any("2 ledgers" in note for note in plan.notes)  # adding up two ledgers is pointed out


def test_the_plans_html_escapes_the_apis_text(client: mnb.Client, q1: pd.DataFrame) -> None:
    plan = client.plan_report(report_named(client, DRAFT), [*q1["id"], "<script>alert(1)</script>"])
    page = plan._repr_html_()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert_no_script(page)
    assert "<script>" not in client.report(report_named(client, COMPLETE))._repr_html_()


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        assert not any(name.startswith("on") for name, _ in attrs), attrs


def assert_no_script(page: str) -> None:
    parser = _Tags()
    parser.feed(page)
    assert "script" not in parser.tags and "img" not in parser.tags


# --- the documentation's own payloads --------------------------------------------------------------------------


def documented(path: str, method: str, status: str = "200") -> Any:
    """The example body the OpenAPI contract documents for ``method path`` and ``status`` (a fresh copy)."""
    spec = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
    content = spec["paths"][path][method]["responses"][status]["content"]["application/json"]
    return json.loads(json.dumps(next(iter(content["examples"].values()))["value"]))


REPORT = "rpt_abc123def456"


def ok(body: Any, status: int = 200) -> tuple[int, Any, dict[str, str]]:
    return (status, body, {})


@pytest.fixture
def server() -> Iterator[PayloadServer]:
    with PayloadServer() as scripted:
        yield scripted


@pytest.fixture
def documented_client(server: PayloadServer) -> Iterator[mnb.Client]:
    with connect_to(server.url, "documented-reports-token-7f3c", max_retries=1) as connected:
        yield connected


def serve_a_draft(server: PayloadServer, *, batches: list[dict[str, Any]] | None = None,
                  **changes: Any) -> dict[str, Any]:
    """The documented PATCH answer (a draft, ``inclusions: []``, with ``changes``) as GET /reports/{id} and in the
    list, and the documented batch (or ``batches``) in GET /batches, one by one and as the documented ledger's
    (Net Carbon Removal) batches. No report is submitted: which ledger the project reports is not known, so the
    analyst names it (``ledgers=[NCR]``), as ``report_candidates`` would ask. Returns the report's body: the server
    answers whatever it holds when asked (a test may change it)."""
    draft = {**documented("/reports/{report_id}", "patch"), **changes}
    batch = documented("/batches/{batch_id}", "get")
    batch["report_allocations"] = []
    listed = batches if batches is not None else [batch]
    server.route("GET", f"/reports/{REPORT}", lambda _request: ok(draft))
    server.route("GET", "/reports", lambda _request: ok({"data": [draft]}))
    server.route("GET", "/batches", ok({"data": listed}))
    ledgers = documented("/ledgers", "get")
    server.route("GET", "/ledgers", ok(ledgers))
    server.route("GET", f"/ledgers/{ledgers['data'][0]['id']}/batches", ok({"data": listed}))
    for one in listed:
        server.route("GET", f"/batches/{one['id']}", ok(one))
    return draft


def test_inclusions_the_report_does_not_list_are_read_from_the_batches_that_name_it(
        server: PayloadServer, documented_client: mnb.Client) -> None:
    complete = documented("/reports/{report_id}", "get")
    assert complete["inclusions"] == []  # as documented
    batch = documented("/batches/{batch_id}", "get")
    batch["report_allocations"][0]["report"]["id"] = REPORT
    server.route("GET", f"/reports/{REPORT}", ok(complete))
    server.route("GET", "/batches", ok({"data": [batch]}))
    server.route("GET", f"/batches/{batch['id']}", ok(batch))
    report = documented_client.report(REPORT)
    assert report.inclusions_source == "batches" and report.batch_ids == (batch["id"],)
    assert report.inclusions[["amount", "unit"]].values.tolist() == [[50.25, "t"]]
    assert report.allocated_amount == 100.5 and report.project_id == "123"
    listed = server.received("GET", "/batches")[0].path
    assert "filter%5Bproject_id%5D%5Beq%5D=123" in listed and "filter%5Bstate%5D%5Beq%5D=complete" in listed
    bare = documented_client.report(REPORT, look_in_batches=False)
    assert bare.inclusions_source == "none" and bare.inclusions.empty
    assert_schema(bare.inclusions, INCLUSIONS_SCHEMA)
    listed_reports = [complete]
    server.route("GET", "/reports", ok({"data": listed_reports}))
    row = documented_client.reports().iloc[0]
    assert pd.isna(row["batch_count"])  # it lists none yet has an allocation: the server does not say how many


def test_sparse_reports_read_as_nones_and_the_frame_keeps_its_dtypes(server: PayloadServer,
                                                                     documented_client: mnb.Client) -> None:
    server.route("GET", "/reports", ok({"data": [{"id": "rpt_sparse"}, {"id": 7, "status": "draft"}]}))
    server.route("GET", "/reports/rpt_sparse", ok({"id": "rpt_sparse"}))
    server.route("GET", "/batches", ok({"data": []}))
    reports = documented_client.reports()
    assert_schema(reports, REPORTS_SCHEMA)
    assert reports["id"].tolist() == ["7", "rpt_sparse"]  # no creation times: by id
    assert reports["name"].isna().all() and reports["batch_count"].isna().all()
    report = documented_client.report("rpt_sparse")
    assert (report.name, report.status, report.project_id, report.created_at, report.allocated_amount) == (
        None, None, None, None, None)
    assert report.inclusions.empty and report.inclusions_source == "none"
    assert "rpt_sparse" in repr(report) and "rpt_sparse" in report._repr_html_()
    plan = documented_client.plan_report("rpt_sparse", [])
    assert plan.ok and not plan.changes and any("names no project" in note for note in plan.notes)
    with pytest.raises(mnb.ReportPlanError, match="does not say its status"):
        documented_client.submit_report("rpt_sparse")
    assert not server.received("POST")


@pytest.mark.parametrize("moment", ["9999-12-31T23:59:59Z", "1066-10-14T09:00:00Z"])
def test_a_timestamp_no_frame_can_hold_is_a_typed_error_naming_the_field_not_a_pandas_crash(
        server: PayloadServer, documented_client: mnb.Client, moment: str) -> None:
    server.route("GET", "/reports", ok({"data": [{"id": "rpt_far", "status": "draft", "created_at": moment}]}))
    with pytest.raises(mnb.MalformedResponseError, match="'created_at'"):
        documented_client.reports()


def test_a_report_that_is_not_found_in_the_message_shape_carries_the_servers_message(
        server: PayloadServer, documented_client: mnb.Client) -> None:
    server.route("GET", "/reports/rpt_gone", (404, {"message": "Record not found."}, {}))
    with pytest.raises(mnb.NotFoundError) as missing:
        documented_client.report("rpt_gone")
    assert missing.value.server_messages == ("Record not found.",)


def test_a_refused_submission_is_a_validation_error_with_the_servers_messages_and_is_not_recorded(
        server: PayloadServer, documented_client: mnb.Client) -> None:
    serve_a_draft(server, inclusions=[{"batch_id": "bat_abc123def456", "amount": 50.25, "unit": "t"}])
    refusal = documented("/reports/{report_id}/submit", "post", "422")
    refusal["errors"].append({"message": "Batch bat_abc123def456 is not complete"})
    server.route("POST", f"/reports/{REPORT}/submit", (422, refusal, {}))
    for _attempt in range(2):  # a definite refusal: nothing is remembered against the report
        with pytest.raises(mnb.ValidationError) as refused:
            documented_client.submit_report(REPORT, ledgers=[NCR])
        assert refused.value.status_code == 422
        assert refused.value.server_messages == ("Report does not meet submission requirements",
                                                 "Batch bat_abc123def456 is not complete")
    assert len(server.received("POST", f"/reports/{REPORT}/submit")) == 2


@pytest.mark.parametrize("answer", [DROP, (502, "<html>Bad gateway</html>", {}), (500, {"message": "boom"}, {})],
                         ids=["dropped", "a gateway's 502", "a 500"])
def test_a_lost_or_5xx_answer_to_the_submit_is_an_unknown_outcome_sent_once(
        server: PayloadServer, documented_client: mnb.Client, answer: Any) -> None:
    serve_a_draft(server, inclusions=[{"batch_id": "bat_abc123def456", "amount": 50.25, "unit": "t"}])
    server.route("POST", f"/reports/{REPORT}/submit", answer)
    with pytest.raises(mnb.SubmissionOutcomeUnknownError):
        documented_client.submit_report(REPORT, ledgers=[NCR])
    with pytest.raises(mnb.PreconditionError, match="reconcile_report"):
        documented_client.submit_report(REPORT, ledgers=[NCR])
    assert len(server.received("POST", f"/reports/{REPORT}/submit")) == 1


def test_a_303_to_the_task_is_the_accepted_submission_and_is_not_followed(server: PayloadServer,
                                                                          documented_client: mnb.Client) -> None:
    draft = serve_a_draft(server, inclusions=[{"batch_id": "bat_abc123def456", "amount": 50.25, "unit": "t"}])
    server.route("POST", f"/reports/{REPORT}/submit", (303, "", {"Location": "/api/v1/async_tasks/41"}))
    task = documented_client.submit_report(REPORT, ledgers=[NCR])
    assert task.id == "41"
    server.route("GET", "/async_tasks/41", ok({"id": 41, "state": "complete", "progress": 100}))
    draft.update(status="complete", allocation={"id": 1, "amount": 50.25, "unit": "t"})
    submitted = task.wait()
    assert submitted is not None and submitted.status == "complete" and submitted.allocated_amount == 50.25
    assert len(server.received("POST")) == 1 and len(server.received("GET", "/async_tasks/41")) >= 1


def test_another_projects_batch_and_a_batch_in_another_unit_are_problems(server: PayloadServer,
                                                                         documented_client: mnb.Client) -> None:
    credits = {**documented("/batches/{batch_id}", "get"), "id": "bat_credits", "report_allocations": [],
               "tracking_id": "Q2-2025-001", "start_time": "2025-04-01T00:00:00.000Z"}  # its own partition
    credits["primary_output"] = {**credits["primary_output"], "unit": "tCO2e"}
    serve_a_draft(server, batches=[{**documented("/batches/{batch_id}", "get"), "report_allocations": []}, credits])
    server.route("GET", "/batches/bat_elsewhere", ok({**documented("/batches/{batch_id}", "get"),
                                                      "id": "bat_elsewhere"}))
    plan = documented_client.plan_report(REPORT, ["bat_abc123def456", "bat_elsewhere", "bat_credits"],
                                       ledgers=[NCR])
    kinds = {(p.batch_id, p.kind) for p in plan.problems}
    assert kinds == {("bat_elsewhere", "other_project"), ("bat_credits", "mixed_units")}
    assert "project 123" in next(p.message for p in plan.problems if p.kind == "other_project")
    assert plan.totals["unit"].tolist() == ["t"] and plan.totals["amount"].tolist() == [50.25]


def test_a_fill_the_server_accepts_without_listing_inclusions_returns_the_batches_sent(
        server: PayloadServer, documented_client: mnb.Client) -> None:
    serve_a_draft(server)
    server.route("PATCH", f"/reports/{REPORT}", ok(documented("/reports/{report_id}", "patch")))
    filled = documented_client.fill_report(REPORT, ["bat_abc123def456"], ledgers=[NCR])
    assert server.received("PATCH")[0].json() == {"report": {"batch_ids": ["bat_abc123def456"]}}
    assert filled.inclusions_source == "request" and filled.batch_ids == ("bat_abc123def456",)
    assert filled.inclusions["amount"].tolist() == [50.25]  # the balance the documented batch has left


def test_a_draft_the_server_reads_back_without_inclusions_is_said_so_and_can_be_left_to_the_server(
        server: PayloadServer, documented_client: mnb.Client) -> None:
    """The documentation's shapes: a filled draft reads back with ``inclusions: []``. The client cannot check its
    batches and says exactly that; ``even_if_unlisted=True`` lets the server's own checks decide."""
    serve_a_draft(server)
    server.route("PATCH", f"/reports/{REPORT}", ok(documented("/reports/{report_id}", "patch")))
    server.route("POST", f"/reports/{REPORT}/submit", ok({"id": REPORT, "status": "submitting",
                                                          "async_task_id": 7}, 202))
    documented_client.fill_report(REPORT, ["bat_abc123def456"], ledgers=[NCR])
    again = documented_client.plan_report(REPORT, ["bat_abc123def456"], ledgers=[NCR])
    assert any("may not list a draft's batches" in note and "updated_at is later" in note for note in again.notes)
    with pytest.raises(mnb.ReportPlanError) as unlisted:
        documented_client.submit_report(REPORT, ledgers=[NCR])
    said = str(unlisted.value)
    assert "does not list this draft's batches" in said and "cannot be checked here" in said
    assert "even_if_unlisted=True" in said
    assert not server.received("POST")
    task = documented_client.submit_report(REPORT, even_if_unlisted=True, expected=["bat_abc123def456"])
    assert str(task.id) == "7" and len(server.received("POST")) == 1


def test_a_task_the_server_no_longer_knows_is_an_unknown_outcome_that_reconcile_report_settles(
        server: PayloadServer, documented_client: mnb.Client) -> None:
    draft = serve_a_draft(server, inclusions=[{"batch_id": "bat_abc123def456", "amount": 50.25, "unit": "t"}])
    server.route("POST", f"/reports/{REPORT}/submit", ok({"id": REPORT, "status": "submitting",
                                                          "async_task_id": 9}, 202))
    server.route("GET", "/async_tasks/9", (404, {"message": "Record not found."}, {}))
    task = documented_client.submit_report(REPORT, ledgers=[NCR])
    with pytest.raises(mnb.PreconditionError) as refused:  # its task is read to see whether it still runs
        documented_client.submit_report(REPORT, ledgers=[NCR])
    said = str(refused.value)
    assert "unknown outcome" in said and "task 9 was read" in said and "404" in said and "reconcile_report" in said
    with pytest.raises(mnb.SubmissionOutcomeUnknownError) as lost:
        task.wait(5)
    assert "task 9 was read to follow the submission" in str(lost.value)
    assert "client.task(" not in str(lost.value)  # no advice to re-attach to a task that does not exist
    draft.update(status="submitting")  # the server has the submission after all
    found = documented_client.reconcile_report(REPORT)
    assert found.sent is True and found.cleared == 1
    with pytest.raises(mnb.ReportPlanError, match="not 'draft'"):
        documented_client.submit_report(REPORT, ledgers=[NCR])
    assert len(server.received("POST")) == 1


def test_the_client_shadows_none_of_the_registry_calls() -> None:
    """``Client`` inherits ``ReportsMixin``: a method of its own with the same name would silently replace one."""
    from mangrove_nb.registry import ReportsMixin

    for name, member in vars(ReportsMixin).items():
        if callable(member):
            assert getattr(mnb.Client, name) is member, name


def test_a_batch_of_another_project_is_named_on_the_emulator(client: mnb.Client, emulator: Any) -> None:
    """Bends the store, as test_emulator_reports does: the seed has one project and the API cannot add one."""
    with emulator.store.transaction() as conn:
        conn.execute("INSERT INTO projects (id, name, description, project_type, country, state, methodology,"
                     " registry_name, credit_types, project_status) SELECT 124, 'Other', description, project_type,"
                     " country, state, methodology, registry_name, credit_types, project_status FROM projects")
        conn.execute("INSERT INTO reports (id, project_id, name, report_type, status, created_at, updated_at)"
                     " VALUES ('rpt_other', 124, 'Other project Q1', 'quarterly', 'draft', '2025-01-01T00:00:00.000Z',"
                     " '2025-01-01T00:00:00.000Z')")
    ncr = client.batches(NCR, "2024-01")["id"].iloc[0]
    plan = client.plan_report("rpt_other", [ncr])
    assert [(p.batch_id, p.kind) for p in plan.problems] == [(ncr, "other_project")]
    assert "project 124" in plan.problems[0].message and plan.totals.empty
    with pytest.raises(mnb.ReportPlanError, match="another project"):
        client.fill_report("rpt_other", [ncr])
    assert writes(emulator) == (0, 0)


# --- accounting truth: one ledger per report, no emptied draft, what a report holds, its period --------------------


def test_batches_of_several_ledgers_are_a_problem_unless_named_and_nothing_is_sent(
        client: mnb.Client, emulator: Any, q1: pd.DataFrame) -> None:
    """Biochar tonnes put on a removal report would be allocated beside the removals (268.571 t for 238.534 t). A
    plan that adds up several ledgers is a problem unless the analyst named them; then a note."""
    rid = report_named(client, DRAFT)
    biochar = str(client.batches("Biochar Produced", "2025Q1", state="complete")["id"].iloc[0])
    mixed = [*q1["id"], biochar]
    plan = client.plan_report(rid, mixed)
    assert not plan.ok and [(p.batch_id, p.kind) for p in plan.problems] == [(None, "mixed_ledgers")]
    said = plan.problems[0].message
    assert f"{NCR} (t): 3 batch(es)" in said and "Biochar Produced (t): 1 batch(es)" in said
    assert "overstate" in said and "ledgers=[" in said
    for refused in (lambda: client.fill_report(rid, mixed), lambda: client.fill_report(rid, client.batches(
            [NCR, "Biochar Produced"], "2025Q1", state="complete"))):
        with pytest.raises(mnb.ReportPlanError, match="2 ledgers"):
            refused()
    # One ledger named: the biochar batch is a problem of its own, named in its row; the totals leave it out.
    only = client.plan_report(rid, mixed, ledgers=[NCR])
    assert [(p.batch_id, p.kind) for p in only.problems] == [(biochar, "other_ledger")]
    row = only.added.set_index("batch_id").loc[biochar]
    assert "not on the ledger(s) named (Net Carbon Removal)" in row["problem"]
    assert only.totals["amount"].sum() == pytest.approx(float(q1["ledger_balance"].sum()))
    # Both named: the analyst said so. A note, and the plan remembers the ledgers for the submission.
    both = client.plan_report(rid, mixed, ledgers=[NCR, "Biochar Produced"])
    assert both.ok and any("as named" in n for n in both.notes) and both.named_ledgers is not None
    assert writes(emulator) == (0, 0)
    client.fill_report(rid, mixed, ledgers=[NCR, "Biochar Produced"])
    # Submitting a report that holds two ledgers: refused unless they are named (or the plan confirmed names them).
    with pytest.raises(mnb.ReportPlanError, match="2 ledgers") as unnamed:
        client.submit_report(rid)
    assert [p.kind for p in unnamed.value.plan.problems] == ["mixed_ledgers"]
    assert writes(emulator) == (1, 0)
    confirmed = client.plan_report(rid, mixed, ledgers=[NCR, "Biochar Produced"])
    submitted = client.submit_report(rid, expected=confirmed).wait()
    assert submitted is not None and submitted.status == "complete"
    assert writes(emulator) == (1, 1)


def test_a_period_without_batches_is_a_problem_and_never_empties_the_draft(client: mnb.Client,
                                                                          emulator: Any) -> None:
    """On a fresh emulator 2025Q1 has no batch: planning it on the draft that holds 2024Q3 must not take those
    off. Emptying a draft is for when it is asked for."""
    demo = report_named(client, REJECTED)
    held = client.report(demo).batch_ids
    candidates = client.report_candidates(demo, "2025Q1")
    assert candidates.empty and candidates.attrs["candidates"] == 0
    plan = client.plan_report(demo, candidates)
    assert [p.kind for p in plan.problems] == ["no_candidates"]
    assert plan.problems[0].message.startswith(f"2025Q1 has no complete batches on {NCR}")
    assert "generate it first" in plan.problems[0].message
    with pytest.raises(mnb.ReportPlanError, match="2025Q1 has no complete batches"):
        client.fill_report(demo, candidates)
    emptied = client.plan_report(demo, [])
    assert [p.kind for p in emptied.problems] == ["would_empty"]
    assert "192.272 t" in emptied.problems[0].message and "allow_empty=True" in emptied.problems[0].message
    with pytest.raises(mnb.ReportPlanError, match="leave the draft empty"):
        client.fill_report(demo, [])
    assert writes(emulator) == (0, 0) and client.report(demo).batch_ids == held
    assert client.fill_report(demo, [], allow_empty=True).batch_ids == ()  # asked for: one PATCH
    assert writes(emulator) == (1, 0)
    with pytest.raises(mnb.ValidationError) as bad:
        client.plan_report(demo, [], allow_empty="yes")  # type: ignore[arg-type]
    assert bad.value.argument == "allow_empty"


def test_a_report_that_is_not_a_draft_is_planned_with_what_it_holds(client: mnb.Client) -> None:
    """Its batches' balances are 0 because it took them: the plan shows the amounts it holds, not 0."""
    rid = report_named(client, COMPLETE)
    report = client.report(rid)
    plan = client.plan_report(rid, client.report_candidates(rid, "2024Q4"))
    assert plan.settled and len(plan.kept) == 3 and [p.kind for p in plan.problems] == ["not_draft"]
    assert plan.kept["ledger_balance"].tolist() == [0.0, 0.0, 0.0]
    assert plan.kept["amount"].tolist() == report.inclusions["amount"].tolist()
    assert plan.totals["amount"].sum() == pytest.approx(report.allocated_amount)
    summary = plan.summary()
    assert f"it holds {report.allocated_amount:,.6g} t of 2024-10 to 2024-12 (2024Q4)" in summary
    assert f"allocated {report.allocated_amount:,.6g} t" in summary and "it would hold" not in summary
    assert "Totals the report holds (complete)" in plan.to_text() and "hold 0 t" not in summary


def test_another_quarter_on_a_named_report_is_a_warning_and_a_batch_on_another_draft_a_note(
        client: mnb.Client) -> None:
    rid = report_named(client, DRAFT)
    plan = client.plan_report(rid, client.report_candidates(rid, "2024Q3"))
    assert plan.ok  # a warning does not stop a fill: the analyst may mean it
    [warning] = plan.warnings
    assert f"named {DRAFT!r}, for 2025Q1" in warning and "3 of the 3 batches" in warning
    assert "2024-07 to 2024-09 (2024Q3)" in warning
    assert plan.months_text() == "2024-07 to 2024-09 (2024Q3)" and "1 warning(s)" in plan.summary()
    [draft] = [n for n in plan.notes if "also on" in n]
    assert REJECTED in draft and "NCR-2024-07, NCR-2024-08, NCR-2024-09" in draft
    assert f"Warning: {warning}" in plan.to_text()
    # A report whose name says no period: no warning; the months are said all the same.
    demo = report_named(client, REJECTED)
    other = client.plan_report(demo, client.report_candidates(demo, "2024Q3"))
    assert other.warnings == () and other.months_text() == "2024-07 to 2024-09 (2024Q3)"


@pytest.mark.parametrize(("name", "label"), [
    ("2025Q1 Quarterly Report", "2025Q1"), ("Q3 2024 removals", "2024Q3"), ("2024-Q4", "2024Q4"),
    ("Annual report 2024", "2024"), ("Rejected by registry (demo)", None), ("2024 and 2025", None),
    ("2024Q1 to 2024Q2", None), (None, None),
])
def test_the_period_a_report_name_says(name: str | None, label: str | None) -> None:
    from mangrove_nb.registry.checks import named_period

    found = named_period(name)
    assert (found[0] if found is not None else None) == label


def test_a_mistyped_report_id_names_the_closest_ids_and_the_drafts(client: mnb.Client) -> None:
    rid = report_named(client, DRAFT)
    typo = rid[:-1] + ("x" if rid[-1] != "x" else "y")
    for call in (lambda: client.report(typo), lambda: client.plan_report(typo, []),
                 lambda: client.report_candidates(typo, "2025Q1")):
        with pytest.raises(mnb.NotFoundError) as missing:
            call()
        said = str(missing.value)
        assert f"No report has the id {typo!r}" in said and f"Did you mean {DRAFT!r} ({rid}, draft)" in said
        assert f"The draft reports: {DRAFT!r}" in said and REJECTED in said and missing.value.status_code == 404
    # Names, as the form and the command take them: exact, then case-insensitive, unique.
    assert client.report_id(DRAFT.upper()) == rid and client.report_id(rid) == rid
    with pytest.raises(mnb.ValidationError, match="Did you mean") as unknown:
        client.report_id("2025Q1 Quarterly Reprt")
    assert unknown.value.argument == "report"
    with pytest.raises(mnb.NotFoundError, match="No report has the id"):
        client.report_id(typo)


def test_every_problem_of_a_batch_is_in_its_row(client: mnb.Client, q1: pd.DataFrame) -> None:
    rid = report_named(client, DRAFT)
    reported = client.report(report_named(client, COMPLETE)).batch_ids[0]
    plan = client.plan_report(rid, [*q1["id"], reported])
    messages = [p.message for p in plan.problems if p.batch_id == reported]
    assert len(messages) == 2  # no balance left, and on the complete report
    shown = plan.added.set_index("batch_id").loc[reported, "problem"]
    assert all(message in shown for message in messages)


def test_reconcile_without_a_recorded_submission_says_there_is_nothing_to_reconcile(client: mnb.Client) -> None:
    found = client.reconcile_report(report_named(client, DRAFT))
    assert found.sent is False and found.cleared == 0
    assert found.advice().startswith("Nothing to reconcile") and "safe" not in found.advice()


def test_a_named_ledger_no_submitted_report_holds_is_a_warning(client: mnb.Client, q1: pd.DataFrame) -> None:
    """Named on purpose, biochar alone goes on a report without a problem (the analyst said so), but with a warning:
    the project's submitted reports hold removals (Net Carbon Removal), and biochar tonnes are not one."""
    rid = report_named(client, DRAFT)
    plan = client.plan_report(rid, client.report_candidates(rid, "2025Q1", ledgers=["Biochar Produced"]))
    assert plan.ok and len(plan.added) == 3
    [warning] = plan.warnings
    assert warning.startswith("Biochar Produced is not a ledger the project's submitted reports hold (they hold "
                              f"{NCR})") and "removals" in warning
    assert client.plan_report(rid, q1, ledgers=[NCR]).warnings == ()


def test_batches_of_one_ledger_no_submitted_report_holds_are_a_problem_unless_named(
        emulator: Any, client: mnb.Client, q1: pd.DataFrame) -> None:
    """A plain list of batch ids does not say its ledger: Biochar Produced's (tonnes of biochar, not a removal) went
    on a draft without a word where the project's submitted reports hold Net Carbon Removal, and a draft filled so
    elsewhere was submitted. Now a problem: neither the fill nor the submission is sent until the ledger is named
    (then a warning, as above); the command says it with --ledger."""
    from mangrove_nb.cli._messages import cli_words

    rid = report_named(client, DRAFT)
    biochar = client.batches("Biochar Produced", "2025Q1", state="complete")
    ids = [str(bid) for bid in biochar["id"]]
    assert len(ids) == 3
    for chosen in (ids, biochar):
        plan = client.plan_report(rid, chosen)
        assert [p.kind for p in plan.problems] == ["unreported_ledger"] and not plan.ok
        [problem] = plan.problems
        assert problem.batch_id is None and "Biochar Produced (t): 3 batch(es)" in problem.message
        assert f"(they hold {NCR})" in problem.message and "overstate" in problem.message
    said = cli_words("registry", problem.message)
    assert "name it with --ledger 'Biochar Produced'" in said and "ledgers=[" not in said, said
    before = writes(emulator)
    with pytest.raises(mnb.ReportPlanError, match="none of the project's submitted reports holds"):
        client.fill_report(rid, ids)
    assert writes(emulator) == before
    named = client.plan_report(rid, ids, ledgers=["Biochar Produced"])
    assert named.ok and len(named.warnings) == 1
    # Filled elsewhere (Mangrove's app): the submission is refused before anything is sent.
    client.http.update_report(rid, {"report": {"batch_ids": ids}})
    before = writes(emulator)
    with pytest.raises(mnb.ReportPlanError, match="none of the project's submitted reports holds"):
        client.submit_report(rid)
    assert writes(emulator) == before
    assert client.report(rid).status == "draft"


# --- accounting truth: a skipped input, reports that do not say their ledgers --------------------------------------


def electricity_type(client: mnb.Client) -> int:
    inputs = client.required_inputs(NCR)
    return int(inputs.loc[inputs["name"] == "Electricity Consumption", "id"].item())


def test_a_batch_made_with_a_skipped_input_that_may_overstate_it_is_a_problem_of_that_batch(
        client: mnb.Client, emulator: Any) -> None:
    """November 2025 generated without Electricity Consumption (its reading dropped): its emissions count as zero,
    and the quarterly report marks the month "overstated". The plan said "no problem" and --submit would have sent
    252.33 t. Now the plan, the fill and the submission name that batch, by the report's own rule."""
    from mangrove_nb import frames, reports

    for month, skipped in (("2025-10", None), ("2025-11", [electricity_type(client)]), ("2025-12", None)):
        client.generate(NCR, month, skipped_data_point_type_ids=skipped,
                        drop_existing_readings=skipped is not None).wait()
    rid = report_named(client, DRAFT)
    candidates = client.report_candidates(rid, "2025Q4")
    november = str(candidates.loc[candidates["tracking_id"] == "NCR-2025-11", "id"].item())
    plan = client.plan_report(rid, candidates)
    assert [(p.batch_id, p.kind) for p in plan.problems] == [(november, "skipped_input")]
    said = plan.problems[0].message
    for part in (f"Batch {november} (NCR-2025-11, 2025-11)", "generated without Electricity Consumption",
                 "would overstate the report's removal", "add the missing reading of Electricity Consumption",
                 "a documented estimate", f"client.delete_batch({november!r}, even_if_complete=True)",
                 "client.generate('Net Carbon Removal', '2025-11')"):
        assert part in said, said
    # The rule is the quarterly report's, in one home: the same sentence, the same "may overstate".
    assert reports.skipped_effects is frames.skipped_effects and reports.may_overstate is frames.may_overstate
    detailed = client.batches(NCR, "2025Q4", details=True)
    effects = reports.skipped_effects(detailed, client.calculations(detailed[detailed["skipped_inputs"].notna()]))
    assert list(effects) == [november] and reports.may_overstate(effects[november][1])
    assert effects[november][0].removeprefix("Generated") in said
    # Its row says it, and the totals leave it out: the plan never shows the overstated 252.33 t.
    assert plan.added.set_index("batch_id").loc[november, "problem"] == said
    fine = candidates.loc[candidates["id"] != november, "ledger_balance"].sum()
    assert plan.totals["amount"].sum() == pytest.approx(float(fine))
    with pytest.raises(mnb.ReportPlanError, match="generated without Electricity Consumption"):
        client.fill_report(rid, candidates)
    assert writes(emulator) == (0, 0)
    # Filled elsewhere (Mangrove's app): the submission names it too, and sends nothing.
    client.http.update_report(rid, {"report": {"batch_ids": list(candidates["id"])}})
    with pytest.raises(mnb.ReportPlanError, match="generated without Electricity Consumption") as refused:
        client.submit_report(rid)
    assert refused.value.plan is not None
    assert [(p.batch_id, p.kind) for p in refused.value.plan.problems] == [(november, "skipped_input")]
    assert writes(emulator) == (1, 0)


def skipped_batch(role: str, note: str | None) -> dict[str, Any]:
    """The documented batch, generated without "Moisture Content": one calculation of ``role``, with ``note``."""
    batch = {**documented("/batches/{batch_id}", "get"), "report_allocations": []}
    batch["input_data"] = [*batch["input_data"], {"data_point": {
        "id": None, "slug": "moisture-content", "data_point_type": "Moisture Content", "value": 0, "unit": "%",
        "status": "skipped_input", "data_point_type_id": 9}, "event": None}]
    calculation = {"id": 1, "name": "Gross removal", "value": 0.0, "unit": "t", "ghg": "co2e", "lca_role": role,
                   "category": "storage"}
    batch["model_run"] = {**batch["model_run"], "calculations": [
        {**calculation, "note": note} if note is not None else calculation]}
    return batch


@pytest.mark.parametrize("noted", [True, False], ids=["a calculation says it read the input", "none says"])
def test_a_skipped_input_that_can_only_understate_a_batch_is_a_note_and_one_no_calculation_explains_a_problem(
        server: PayloadServer, documented_client: mnb.Client, noted: bool) -> None:
    """The report's rule: a skip that only took away from the removal cannot overstate it (a note); one that no
    calculation says it read may (the contract's Calculation has no note): a problem, never "unaffected"."""
    note = "Skipped input(s) counted as zero: Moisture Content (9)." if noted else None
    serve_a_draft(server, batches=[skipped_batch("removal", note)])
    plan = documented_client.plan_report(REPORT, ["bat_abc123def456"], ledgers=[NCR])
    said = "Batch bat_abc123def456 (Q1-2025-001, 2025-01): generated without Moisture Content"
    if noted:
        assert plan.ok, plan.problems
        [shown] = [n for n in plan.notes if "Moisture Content" in n]
        assert shown.startswith(said) and "understated" in shown and "cannot overstate" in shown
        assert plan.totals["amount"].tolist() == [50.25]
    else:
        assert [(p.batch_id, p.kind) for p in plan.problems] == [("bat_abc123def456", "skipped_input")]
        assert plan.problems[0].message.startswith(said)
        assert "may overstate the report's removal" in plan.problems[0].message and plan.totals.empty


@pytest.mark.parametrize("reports_say", ["no inclusions", "inclusions without ledger_id", "no complete report"])
def test_when_the_submitted_reports_do_not_say_their_ledgers_plain_ids_are_a_problem_until_the_ledger_is_named(
        client: mnb.Client, emulator: Any, q1: pd.DataFrame, monkeypatch: pytest.MonkeyPatch,
        reports_say: str) -> None:
    """The API documentation's own examples list ``inclusions: []``. Then report_candidates refused and asked for
    the ledger, yet a plain list of Biochar Produced ids was planned with no problem, filled and submitted as a
    removal. Now the plan says the same as report_candidates: which ledger the project reports is not known."""
    from mangrove_nb.cli._messages import cli_words

    read = client.http.reports

    def reports(**params: Any) -> list[dict[str, Any]]:
        served = []
        for item in read(**params):
            if item.get("status") == "complete":
                if reports_say == "no complete report":
                    continue
                item = {**item, "inclusions": [] if reports_say == "no inclusions" else [
                    {k: v for k, v in one.items() if k != "ledger_id"} for one in item["inclusions"]]}
            served.append(item)
        return served

    monkeypatch.setattr(client.http, "reports", reports)
    rid = report_named(client, DRAFT)
    biochar = [str(bid) for bid in client.batches("Biochar Produced", "2025Q1", state="complete")["id"]]
    why = ("no report of project 123 has been submitted yet" if reports_say == "no complete report" else
           "project 123's 1 submitted report(s) do not say which ledgers they hold")
    for chosen, name in ((biochar, "Biochar Produced"), ([str(b) for b in q1["id"]], NCR)):
        plan = client.plan_report(rid, chosen)
        assert [(p.batch_id, p.kind) for p in plan.problems] == [(None, "reported_ledgers_unknown")]
        said = plan.problems[0].message
        assert f"{name} (t): 3 batch(es)" in said and why in said and "overstate" in said
        assert f"name it with ledgers=[{name!r}]" in said
        assert f"name it with --ledger {name!r}" in cli_words("registry", said)
    with pytest.raises(mnb.ValidationError, match="is not known") as candidates:
        client.report_candidates(rid, "2025Q1")
    assert why in str(candidates.value)
    with pytest.raises(mnb.ReportPlanError, match="is not known"):
        client.fill_report(rid, biochar)
    assert writes(emulator) == (0, 0)
    assert client.plan_report(rid, biochar, ledgers=["Biochar Produced"]).ok  # named: the analyst said so
    client.http.update_report(rid, {"report": {"batch_ids": biochar}})  # filled elsewhere
    with pytest.raises(mnb.ReportPlanError, match="is not known"):
        client.submit_report(rid)
    assert writes(emulator) == (1, 0)


@pytest.mark.parametrize("name", ["Farmer's Biochar", "Biochar \\ Produced", 'The "Biochar"'])
def test_advice_that_names_a_ledger_with_a_quote_or_a_backslash_gives_its_id(emulator: Any, name: str) -> None:
    """``ledgers=[{name!r}]`` switched quotes or doubled the backslash: the command's rewording (--ledger '...')
    did not find it, or named another ledger. Such a ledger is named by its id."""
    from mangrove_nb.cli._messages import cli_words

    with emulator.store.transaction() as conn:
        conn.execute("UPDATE ledgers SET name = ? WHERE name = 'Biochar Produced'", (name,))
    with connect_to(emulator.url, emulator.token, project_id=123) as client:
        ledger = client.ledger_id(name)
        rid = report_named(client, DRAFT)
        ids = [str(bid) for bid in client.batches(ledger, "2024Q3", state="complete")["id"]]
        [problem] = client.plan_report(rid, ids).problems
        assert problem.kind == "unreported_ledger" and f"name it with ledgers=[{ledger!r}]" in problem.message
        said = cli_words("registry", problem.message)
        assert f"name it with --ledger '{ledger}'" in said and "ledgers=[" not in said, said
        empty = client.report_candidates(rid, "2030Q1", ledgers=[ledger])
        [nothing] = client.plan_report(rid, empty).problems
        assert nothing.kind == "no_candidates" and f"client.generate({ledger!r}, '2030Q1')" in nothing.message
        assert f"--quarter 2030Q1 --ledger '{ledger}' --generate-missing" in cli_words("registry", nothing.message)
    assert writes(emulator) == (0, 0)


def test_an_empty_draft_is_planned_without_doubt_unless_it_was_changed_since_it_was_made(
        client: mnb.Client, q1: pd.DataFrame) -> None:
    """The emulator lists a draft's batches: its never-changed empty draft holds none, and a note that they may be
    on it already was noise. Changed since it was made (updated_at later than created_at, as the documentation's
    filled draft that reads back with ``inclusions: []``), the doubt is said, calmly."""
    rid = report_named(client, DRAFT)
    report = client.report(rid)
    assert report.inclusions_source == "none" and report.updated_at == report.created_at
    plan = client.plan_report(rid, q1)
    assert plan.ok and not any("lists no batch" in note for note in plan.notes), plan.notes
    client.http.update_report(rid, {"report": {"name": DRAFT}})  # a rename: the server changes updated_at
    [note] = [n for n in client.plan_report(rid, q1).notes if "lists no batch" in n]
    assert "updated_at is later than created_at" in note and "may not list a draft's batches" in note


def test_a_batch_whose_ledger_cannot_be_read_is_a_problem_named_or_not(server: PayloadServer,
                                                                       documented_client: mnb.Client) -> None:
    """GET /batches does not say a batch's ledger, and here the ledgers cannot be read (404): the ledger checks
    had nothing to check, and a batch of any ledger went on the report without a word."""
    batch = {**documented("/batches/{batch_id}", "get"), "report_allocations": []}
    draft = documented("/reports/{report_id}", "patch")
    server.route("GET", f"/reports/{REPORT}", ok(draft))
    server.route("GET", "/reports", ok({"data": [draft]}))
    server.route("GET", "/batches", ok({"data": [batch]}))
    server.route("GET", f"/batches/{batch['id']}", ok(batch))
    for named in (None, ["lgr_abc123def456"]):
        plan = documented_client.plan_report(REPORT, [batch["id"]], ledgers=named)
        assert [(p.batch_id, p.kind) for p in plan.problems] == [(batch["id"], "unknown_ledger")], plan.problems
        said = plan.problems[0].message
        assert "its ledger is not known" in said and "client.batches(ledger, period)" in said and plan.totals.empty
    with pytest.raises(mnb.ReportPlanError, match="its ledger is not known"):
        documented_client.fill_report(REPORT, [batch["id"]])
    assert not server.received("PATCH")


# --- the report's other rules in the plan: a skip no calculation explains, a duplicate, a balance, the ledger --------


def test_a_skip_whose_calculations_do_not_show_a_zeroed_term_is_a_problem_end_to_end(
        client: mnb.Client, emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """February 2025 generated without Electricity Consumption; the server's zeroed emission carries no note and an
    unrelated note sits on the removal term (a server may say less than the emulator). "Any note" made the removal
    the row that read it, "understated": a note, and --submit sent 247.765 t for 238.534 t. Now what the skip
    changed is unknown: a problem of that batch, and the totals leave it out."""
    inputs = client.required_inputs(NCR)
    electricity = int(inputs.loc[inputs["name"] == "Electricity Consumption", "id"].item())
    client.generate(NCR, "2025-02", skipped_data_point_type_ids=[electricity], drop_existing_readings=True).wait()
    client.generate(NCR, "2025Q1").wait()
    read = client.http.batch

    def batch(bid: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        detail = read(bid, *args, **kwargs)
        calculations = detail["model_run"]["calculations"]
        if calculations and any(e["data_point"].get("status") == "skipped_input" for e in detail["input_data"]):
            for one in calculations:
                one.pop("note", None)
                one.pop("skipped_data_point_type_ids", None)
            calculations[0]["note"] = "Permanence factor 0.80 (100-year) applied."
        return detail

    monkeypatch.setattr(client.http, "batch", batch)
    rid = report_named(client, DRAFT)
    q1 = client.report_candidates(rid, "2025Q1")
    february = str(q1.loc[q1["tracking_id"] == "NCR-2025-02", "id"].item())
    plan = client.plan_report(rid, q1)
    assert [(p.batch_id, p.kind) for p in plan.problems] == [(february, "skipped_input")]
    said = plan.problems[0].message
    assert "no calculation says it read it" in said and "may overstate the report's removal" in said, said
    assert f"or leave it out (fill the report without it: client.fill_report({rid!r}, batches_without_it))" in said
    fine = q1.loc[q1["id"] != february, "ledger_balance"].sum()
    assert plan.totals["amount"].sum() == pytest.approx(float(fine))
    with pytest.raises(mnb.ReportPlanError, match="no calculation says it read it"):
        client.fill_report(rid, q1)
    assert writes(emulator) == (0, 0)


def copy_batch(emulator: Any, bid: str, new_id: str) -> None:
    """A second complete batch of ``bid``'s partition, as a double generation (or a hand edit) leaves it."""
    with emulator.store.transaction() as conn:
        conn.execute("INSERT INTO batches (id, ledger_pk, partition_key, tracking_id, feedstock, start_time, end_time,"
                     " state, value, output_dp_id, calculations, input_dp_ids, error_message, task_id, created_at,"
                     " updated_at, skipped_type_ids) SELECT ?, ledger_pk, partition_key || '#2', tracking_id,"
                     " feedstock, start_time, end_time, state, value, output_dp_id || 'x', calculations, input_dp_ids,"
                     " error_message, task_id, created_at, updated_at, skipped_type_ids FROM batches WHERE id = ?",
                     (new_id, bid))


def test_two_complete_batches_for_one_partition_are_a_problem_of_each_and_nothing_is_sent(
        client: mnb.Client, emulator: Any, q1: pd.DataFrame) -> None:
    """A second February batch (made in the emulator's SQLite): the quarterly report flags the month "possibly
    generated twice", yet the plan said "no problem" and --submit --yes allocated 333.631 t for 238.534 t."""
    from mangrove_nb import frames, reports

    february = str(q1.loc[q1["tracking_id"] == "NCR-2025-02", "id"].item())
    copy_batch(emulator, february, "bat_february_again")
    rid = report_named(client, DRAFT)
    candidates = client.report_candidates(rid, "2025Q1")
    assert len(candidates) == 4
    # The report's rule, in one home: the same partition.
    assert reports.duplicate_partitions is frames.duplicate_partitions
    assert [(month, sorted(ids)) for _lg, month, _f, ids, _t in frames.duplicate_partitions(candidates)] == [
        ("2025-02", sorted([february, "bat_february_again"]))]
    plan = client.plan_report(rid, candidates)
    assert sorted((p.batch_id, p.kind) for p in plan.problems) == sorted(
        [(february, "duplicate_partition"), ("bat_february_again", "duplicate_partition")])
    said = {p.batch_id: p.message for p in plan.problems}
    assert "is one of 2 complete batches of Net Carbon Removal for 2025-02" in said[february]
    assert "bat_february_again (NCR-2025-02)" in said[february] and f"{february} (NCR-2025-02)" in said[
        "bat_february_again"]
    assert "Check which of them is right" in said[february] and "client.delete_batch(" in said[february]
    # The totals leave both out: January and March only, never the month twice.
    fine = q1.loc[q1["id"] != february, "ledger_balance"].sum()
    assert plan.totals["amount"].sum() == pytest.approx(float(fine))
    # One of them alone is still a problem: which of the two is right is not known.
    assert [p.kind for p in client.plan_report(rid, [february]).problems] == ["duplicate_partition"]
    with pytest.raises(mnb.ReportPlanError, match="complete batches of Net Carbon Removal for 2025-02"):
        client.fill_report(rid, candidates)
    assert writes(emulator) == (0, 0)
    client.http.update_report(rid, {"report": {"batch_ids": list(candidates["id"])}})  # filled elsewhere
    with pytest.raises(mnb.ReportPlanError, match="possibly generated twice"):
        client.submit_report(rid)
    assert writes(emulator) == (1, 0)
    client.delete_batch("bat_february_again", even_if_complete=True)
    assert client.plan_report(rid, client.report_candidates(rid, "2025Q1")).ok


def test_a_batch_whose_balance_exceeds_its_output_is_a_problem_and_nothing_is_sent(
        client: mnb.Client, emulator: Any, q1: pd.DataFrame) -> None:
    """An allocation of -50 made February's balance 145.097 against its 95.097 output: the report's registry
    section flags it, the plan totalled 288.534 t. Now a problem of that batch, the totals without it."""
    february = str(q1.loc[q1["tracking_id"] == "NCR-2025-02", "id"].item())
    with emulator.store.transaction() as conn:
        pk = conn.execute("SELECT pk FROM batches WHERE id = ?", (february,)).fetchone()[0]
        other = conn.execute("SELECT pk FROM batches WHERE id != ? LIMIT 1", (february,)).fetchone()[0]
        conn.execute("INSERT INTO allocations (source_batch_pk, target_batch_pk, amount) VALUES (?, ?, -50)",
                     (pk, other))
    batches = client.batches(NCR, "2025Q1", state="complete").set_index("id")
    balance, output = batches.loc[february, "ledger_balance"], batches.loc[february, "output_value"]
    assert balance == pytest.approx(output + 50)
    rid = report_named(client, DRAFT)
    candidates = client.report_candidates(rid, "2025Q1")
    plan = client.plan_report(rid, candidates)
    assert [(p.batch_id, p.kind) for p in plan.problems] == [(february, "balance_exceeds_output")]
    said = plan.problems[0].message
    assert f"Batch {february} (NCR-2025-02, 2025-02): its balance (ledger_balance {balance:,.6g} t)" in said, said
    assert f"is larger than its output ({output:,.6g} t)" in said and "Ask Mangrove why" in said
    assert plan.totals["amount"].sum() == pytest.approx(float(batches["ledger_balance"].drop(february).sum()))
    with pytest.raises(mnb.ReportPlanError, match="is larger than its output"):
        client.fill_report(rid, candidates)
    client.http.update_report(rid, {"report": {"batch_ids": list(candidates["id"])}})
    with pytest.raises(mnb.ReportPlanError, match="is larger than its output"):
        client.submit_report(rid)
    assert writes(emulator) == (1, 0)


def test_a_frames_ledger_is_checked_against_the_servers(client: mnb.Client, emulator: Any, q1: pd.DataFrame) -> None:
    """A frame of Biochar Produced ids whose ledger_id column says Net Carbon Removal was planned "ok" and filled:
    the plan took the frame's word for the ledger. Now the server's ledger is taken, and the claim is a problem
    naming both."""
    rid = report_named(client, DRAFT)
    ncr = client.ledger_id(NCR)
    biochar = client.batches("Biochar Produced", "2025Q1", state="complete")
    lying = pd.DataFrame({"id": biochar["id"], "ledger_id": ncr})
    plan = client.plan_report(rid, lying)
    kinds = [(p.batch_id, p.kind) for p in plan.problems]
    assert [(b, "ledger_mismatch") for b in biochar["id"]] == [k for k in kinds if k[1] == "ledger_mismatch"]
    assert (None, "unreported_ledger") in kinds  # and the server's ledger is checked as any other
    said = next(p.message for p in plan.problems if p.kind == "ledger_mismatch")
    biochar_id = str(biochar["ledger_id"].iloc[0])
    assert f"says it is on Net Carbon Removal ({ncr})" in said
    assert f"lists it on Biochar Produced ({biochar_id})" in said
    assert plan.totals.empty
    with pytest.raises(mnb.ReportPlanError, match="the frame given says it is on Net Carbon Removal"):
        client.fill_report(rid, lying)
    assert writes(emulator) == (0, 0)
    # A frame that says the truth, by id or by name, is no problem.
    assert client.plan_report(rid, q1[["id", "ledger_id"]]).ok
    assert client.plan_report(rid, q1[["id"]].assign(ledger_id=NCR)).ok


def test_a_negative_balance_is_said_as_such_and_a_ledger_named_in_any_case_is_the_ledger(
        client: mnb.Client) -> None:
    """A month whose net is negative (here January generated without Mass of Biochar Produced) was 'already
    allocated elsewhere' ('no_balance'), and leaving it out silently made the report more than the quarter's net;
    a frame whose ledger_id column names the ledger in another case was a ledger_mismatch."""
    rid = report_named(client, DRAFT)
    biochar_mass = int(client.required_inputs(NCR).set_index("name").loc["Mass of Biochar Produced", "id"])
    client.generate(NCR, "2025-01", skipped_data_point_type_ids=[biochar_mass], drop_existing_readings=True).wait()
    client.generate(NCR, "2025Q1").wait()
    q1 = client.batches(NCR, "2025Q1", state="complete")
    january = q1.loc[q1["start_time"].dt.month == 1].iloc[0]
    assert january["ledger_balance"] < 0
    plan = client.plan_report(rid, q1)
    [negative] = [p for p in plan.problems if p.batch_id == january["id"] and p.kind == "negative_balance"]
    assert "allocated elsewhere" not in negative.message
    assert f"{-january['ledger_balance']:,.6g} t more than the period's net removal" in negative.message
    assert not any(p.kind == "no_balance" for p in plan.problems)
    for spelled in ("net carbon removal", " Net Carbon Removal ", NCR):
        named = client.plan_report(rid, q1.loc[q1["id"] != january["id"], ["id"]].assign(ledger_id=spelled))
        assert not any(p.kind == "ledger_mismatch" for p in named.problems), (spelled, named.problems)
