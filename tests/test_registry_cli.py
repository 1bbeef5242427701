"""``mangrove-nb registry`` as an analyst runs it: a real subprocess against an emulator of this process (on
127.0.0.1), the confirmation typed on its standard input, what reached the server counted by the emulator.

Plan by default (a text table, nothing sent; exit 1 when the plan has problems); ``--submit`` fills the report
with the quarter's complete batches and submits it once, after the report id is typed (or ``--yes``); every
expected failure is one line on stderr (exit 2 for input to correct, 1 otherwise) and the token is never printed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import report_named

import mangrove_nb as mnb

SCRIPT = Path(sys.executable).with_name("mangrove-nb")
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "mangrove_nb.cli"]
TIMEOUT = 120.0
NCR = "Net Carbon Removal"
pytestmark = pytest.mark.slow


def run_registry(emu: Any, state: Path, *args: str, typed: str = "") -> subprocess.CompletedProcess[str]:
    """``mangrove-nb registry ARGS`` with the emulator's URL, token and project, ``typed`` on its stdin."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MANGROVE_") and "proxy" not in k.lower()}
    env.update(MANGROVE_API_URL=emu.url, MANGROVE_API_TOKEN=emu.token, MANGROVE_PROJECT_ID="123",
               MANGROVE_NB_STATE_DIR=str(state))
    result = subprocess.run([*COMMAND, "registry", *args], input=typed, capture_output=True, text=True,
                            encoding="utf-8", timeout=TIMEOUT, env=env, check=False)
    assert emu.token not in result.stdout + result.stderr
    return result


def one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, (result.returncode, result.stdout[-2000:], result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = result.stderr.rstrip("\n").split("\n")
    assert lines[-1].startswith("mangrove-nb registry: "), result.stderr[-3000:]
    return lines[-1]


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def client_options() -> dict[str, Any]:
    """The shared ``client`` fixture (conftest.py), in the seeded project: reports are per project."""
    return {"project_id": 123}


@pytest.fixture
def q1(client: mnb.Client) -> str:
    """2025Q1 generated; the id of the empty draft "2025Q1 Quarterly Report"."""
    client.generate(NCR, "2025Q1").wait()
    return report_named(client, "2025Q1 Quarterly Report")


def writes(emu: Any) -> tuple[int, int]:
    return emu.count("update-report"), emu.count("submit-report")


def test_the_plan_is_a_text_table_and_sends_nothing(emulator: Any, client: mnb.Client, q1: str, state: Path) -> None:
    result = run_registry(emulator, state, "--quarter", "2025Q1", "--report", q1)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "3 added, 0 removed, 0 kept" in out and "Nothing has been sent" in out
    for tracking in ("NCR-2025-01", "NCR-2025-02", "NCR-2025-03"):
        assert tracking in out
    assert "Biochar Produced" not in out  # only the ledger the project reports
    total = client.batches(NCR, "2025Q1")["ledger_balance"].sum()
    assert f"{total:,.6g} t" in out
    assert writes(emulator) == (0, 0)


def test_a_plan_with_problems_is_printed_and_exits_1(emulator: Any, client: mnb.Client, state: Path) -> None:
    rid = report_named(client, "2024Q4 Quarterly Report")
    result = run_registry(emulator, state, "--quarter", "2024Q4", "--report", rid)
    assert result.returncode == 1
    assert "only a draft can be filled" in result.stdout
    assert writes(emulator) == (0, 0)


def test_submit_without_the_typed_id_sends_nothing(emulator: Any, q1: str, state: Path) -> None:
    for typed in ("yes\n", ""):  # a wrong answer, and no answer at all (end of input)
        result = run_registry(emulator, state, "--quarter", "2025Q1", "--report", q1, "--submit", typed=typed)
        assert "not confirmed" in one_line_error(result, 1)
        assert f"Type the report id ({q1})" in result.stdout and "irreversible" in result.stdout
        assert f"It adds up {NCR} (t)." in result.stdout  # the question names the ledger and its unit
        assert "Nothing has been sent" not in result.stdout  # --submit goes on to send: the plan does not say it
    assert writes(emulator) == (0, 0)


def test_submit_with_the_typed_id_fills_and_submits_once(emulator: Any, client: mnb.Client, q1: str,
                                                         state: Path) -> None:
    result = run_registry(emulator, state, "--quarter", "2025Q1", "--report", q1, "--submit", typed=f"{q1}\n")
    assert result.returncode == 0, result.stderr
    assert f"Filled report {q1} with 3 batch(es)." in result.stdout
    # The plan printed before the fill and the submission does not say that nothing has been sent.
    assert "Nothing has been sent" not in result.stdout and result.stdout.startswith(f"Report {q1} (draft): 3 added")
    report = client.report(q1)
    assert report.status == "complete"
    assert f"Report {q1} is complete: allocated {report.allocated_amount:,.6g} t." in result.stdout
    assert writes(emulator) == (1, 1)
    again = run_registry(emulator, state, "--quarter", "2025Q1", "--report", q1, "--submit", "--yes")
    assert "only a draft" in one_line_error(again, 1)
    assert writes(emulator) == (1, 1)


def test_a_report_refilled_while_the_id_is_typed_is_not_submitted(emulator: Any, client: mnb.Client, q1: str,
                                                                 state: Path) -> None:
    """The plan printed 3 batches and the analyst typed the id; meanwhile another client put an April batch on the
    draft. What was printed, or nothing, goes to the registry."""
    client.fill_report(q1, client.report_candidates(q1, "2025Q1"))  # it holds the quarter: the CLI will not fill
    client.generate(NCR, "2025-04").wait()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MANGROVE_") and "proxy" not in k.lower()}
    env.update(MANGROVE_API_URL=emulator.url, MANGROVE_API_TOKEN=emulator.token, MANGROVE_PROJECT_ID="123",
               MANGROVE_NB_STATE_DIR=str(state))
    with subprocess.Popen([*COMMAND, "registry", "--quarter", "2025Q1", "--report", q1, "--submit"],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          encoding="utf-8", env=env) as process:
        assert process.stdout is not None and process.stdin is not None
        shown = []
        while not shown or "Type the report id" not in shown[-1]:
            line = process.stdout.readline()
            assert line, "".join(shown)
            shown.append(line)
        assert "0 added, 0 removed, 3 kept" in "".join(shown)
        april = client.batches(NCR, "2025-04", state="complete")["id"].tolist()
        client.fill_report(q1, [*client.report(q1).batch_ids, *april])  # another analyst, meanwhile
        out, err = process.communicate(f"{q1}\n", timeout=TIMEOUT)
    result = subprocess.CompletedProcess(process.args, process.returncode, "".join(shown) + out, err)
    line = one_line_error(result, 1)
    assert "changed since the submission was confirmed" in line and f"Batch {april[0]}" in line
    assert emulator.token not in result.stdout + result.stderr
    assert writes(emulator) == (2, 0)
    assert client.report(q1).status == "draft"


def test_a_rejected_submission_is_one_line_with_the_registrys_message(emulator: Any, client: mnb.Client,
                                                                      state: Path) -> None:
    rid = report_named(client, "Rejected by registry (demo)")
    result = run_registry(emulator, state, "--quarter", "2024Q3", "--report", rid, "--submit", "--yes")
    line = one_line_error(result, 1)
    assert "TaskFailedError" not in line and "lacks the verifier's signed statement" in line
    assert "Filled report" not in result.stdout  # it already held the quarter's batches: no PATCH
    assert writes(emulator) == (0, 1)
    assert client.report(rid).status == "draft"


@pytest.mark.parametrize(("args", "code", "said"), [
    (("--quarter", "2025-02", "--report", "rpt_x"), 2, "not a month such as 2025-02 (2025Q1 holds it)"),
    (("--quarter", "2025Q5", "--report", "rpt_x"), 2, "2025Q5"),
    (("--quarter", "2025Q1", "--report", "rpt_doesnotexist"), 1, "404"),
    (("--quarter", "2025Q1", "--report", "rpt_x", "--ledger", "No Such Ledger"), 2, "No Such Ledger"),
], ids=["a month", "a quarter that does not exist", "an unknown report", "an unknown ledger"])
def test_bad_input_is_one_line(emulator: Any, state: Path, args: tuple[str, ...], code: int, said: str) -> None:
    assert said in one_line_error(run_registry(emulator, state, *args), code)
    assert writes(emulator) == (0, 0)


def test_help_is_plain_text_and_names_the_options() -> None:
    shown = subprocess.run([*COMMAND, "registry", "--help"], capture_output=True, text=True, timeout=TIMEOUT,
                           check=False)
    assert shown.returncode == 0 and shown.stdout.startswith("usage: mangrove-nb registry")
    for option in ("--quarter", "--report REPORT", "--ledger LEDGER", "--submit", "--yes", "--list", "--reconcile"):
        assert option in shown.stdout
    assert "``" not in shown.stdout


def test_a_quarter_with_nothing_generated_sends_nothing_and_says_so_in_the_commands_words(
        emulator: Any, client: mnb.Client, state: Path) -> None:
    """A fresh emulator has no 2025Q1: planning it on the draft that holds 2024Q3 must not empty that draft."""
    demo = report_named(client, "Rejected by registry (demo)")
    held = client.report(demo).batch_ids
    result = run_registry(emulator, state, "--quarter", "2025Q1", "--report", demo, "--submit", "--yes")
    line = one_line_error(result, 1)
    assert line.startswith(f"mangrove-nb registry: Nothing was sent for report {demo}")
    assert f"2025Q1 has no complete batches on {NCR}" in line and "generate it first" in line
    assert "mangrove-nb report --quarter 2025Q1 --ledger 'Net Carbon Removal' --generate-missing" in line
    assert "client." not in line and "Filled report" not in result.stdout
    assert writes(emulator) == (0, 0) and client.report(demo).batch_ids == held


def test_list_shows_the_reports_and_report_takes_a_name(emulator: Any, client: mnb.Client, q1: str,
                                                        state: Path) -> None:
    listed = run_registry(emulator, state, "--list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["id", "name", "status", "batches", "allocated"]
    complete = client.report(report_named(client, "2024Q4 Quarterly Report"))
    [row] = [line for line in lines if complete.id in line]
    assert "2024Q4 Quarterly Report" in row and "complete" in row and f"{complete.allocated_amount:,.6g} t" in row
    assert any(q1 in line and "draft" in line for line in lines)
    # A name, in any case, as the form takes it.
    planned = run_registry(emulator, state, "--quarter", "2025Q1", "--report", "2025q1 QUARTERLY report")
    assert planned.returncode == 0, planned.stderr
    assert f"Report {q1} (draft): 3 added" in planned.stdout
    assert writes(emulator) == (0, 0)


def test_a_mistyped_report_names_the_closest_and_the_drafts_in_the_commands_words(
        emulator: Any, client: mnb.Client, state: Path) -> None:
    rid = report_named(client, "2025Q1 Quarterly Report")
    typo = rid[:-1] + ("x" if rid[-1] != "x" else "y")
    line = one_line_error(run_registry(emulator, state, "--quarter", "2025Q1", "--report", typo), 1)
    assert f"No report has the id '{typo}'" in line and f"Did you mean '2025Q1 Quarterly Report' ({rid}" in line
    assert "The draft reports:" in line and "mangrove-nb registry --list lists every report" in line
    named = one_line_error(run_registry(emulator, state, "--quarter", "2025Q1", "--report", "2025Q1 Quartely"), 2)
    assert "No report has the id or name '2025Q1 Quartely'" in named and "Did you mean" in named
    for said in (line, named):
        assert "client." not in said and "Check the ID in the URL" not in said
    assert writes(emulator) == (0, 0)


def test_the_question_names_the_months_and_repeats_a_warning(emulator: Any, client: mnb.Client,
                                                             state: Path) -> None:
    rid = report_named(client, "2025Q1 Quarterly Report")
    result = run_registry(emulator, state, "--quarter", "2024Q3", "--report", rid, "--submit", typed="no\n")
    assert "not confirmed" in one_line_error(result, 1)
    question = result.stdout.split("\n\n")[-1]
    assert "Its batches are of 2024-07 to 2024-09 (2024Q3)." in question
    assert "Warning: Report" in question and "named '2025Q1 Quarterly Report', for 2025Q1" in question
    assert "also on report" in result.stdout and "Rejected by registry (demo)" in result.stdout
    assert writes(emulator) == (0, 0)


def test_reconcile_reads_the_status(emulator: Any, client: mnb.Client, state: Path) -> None:
    result = run_registry(emulator, state, "--reconcile", "--report", "2025Q1 Quarterly Report")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Nothing to reconcile: report") and "client." not in result.stdout
    usage = run_registry(emulator, state, "--reconcile", "--quarter", "2025Q1")
    assert usage.returncode == 2 and "--reconcile takes --report" in usage.stderr
    assert writes(emulator) == (0, 0)


def test_a_submission_refused_after_the_fill_says_the_fill_was_sent(
        emulator: Any, client: mnb.Client, q1: str, state: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The PATCH went out; then the submission is refused (another client changed the draft, say). "Nothing was
    sent" would be false: the message says the fill was sent and the submission was not."""
    from mangrove_nb import cli
    from mangrove_nb.registry import ReportsMixin

    def refused(self: Any, report_id: str, **_: Any) -> Any:
        raise mnb.ReportPlanError(report_id=report_id, problems=["Batch bat_x was put on the report meanwhile."],
                                  batch_ids=["bat_x"])

    monkeypatch.setattr(ReportsMixin, "submit_report", refused)
    for name, value in (("MANGROVE_API_URL", emulator.url), ("MANGROVE_API_TOKEN", emulator.token),
                        ("MANGROVE_PROJECT_ID", "123"), ("MANGROVE_NB_STATE_DIR", str(state))):
        monkeypatch.setenv(name, value)
    code = cli.main(["registry", "--quarter", "2025Q1", "--report", q1, "--submit", "--yes"])
    out, err = capsys.readouterr()
    assert code == 1 and f"Filled report {q1} with 3 batch(es)." in out
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"mangrove-nb registry: Report {q1} was filled (3 batch(es) put on it), but nothing "
                           f"was submitted for report {q1}")
    assert "Nothing was sent" not in err and "bat_x was put on the report" in line
    assert writes(emulator) == (1, 0)


@pytest.mark.parametrize(("quarter", "said"), [
    ("2025Q1..2025Q2", "--quarter takes one quarter, not a range such as '2025Q1..2025Q2': run the command once per "
                       "quarter."),
    ("2025", "--quarter takes a quarter, not a year such as 2025: run the command once per quarter, 2025Q1 to "
             "2025Q4."),
    ("2025-01", "--quarter takes a quarter, not a month such as 2025-01 (2025Q1 holds it)."),
    ("2025-11", "--quarter takes a quarter, not a month such as 2025-11 (2025Q4 holds it)."),
    ("2025Q5", "--quarter takes one calendar quarter such as 2025Q1 (a year and Q1 to Q4; Q1 2025 also reads), "
               "not '2025Q5'."),
    ("last quarter", "--quarter takes one calendar quarter such as 2025Q1 (a year and Q1 to Q4; Q1 2025 also "
                     "reads), not 'last quarter'."),
])
def test_a_quarter_that_is_not_one_calendar_quarter_is_one_line_worded_for_what_was_typed(
        emulator: Any, state: Path, quarter: str, said: str) -> None:
    """A range printed the Python API's period advice (a year like '2025', pandas Timestamps), which the command
    does not take; and a month was told "for several quarters, run once per quarter"."""
    line = one_line_error(run_registry(emulator, state, "--quarter", quarter, "--report", "rpt_x"), 2)
    assert line == f"mangrove-nb registry: {said}", line
    for python in ("a year like", "Timestamp", "datetime", "period="):
        assert python not in line, line
    assert writes(emulator) == (0, 0)


@pytest.mark.parametrize("quarter", ["Q1 2025", "q1-2025", "2025 Q1"])
def test_a_quarter_written_as_report_names_write_it_is_that_quarter(emulator: Any, client: mnb.Client, q1: str,
                                                                     state: Path, quarter: str) -> None:
    """"Q1 2025" (as report names and the plan's period warning read it) was refused as "not one calendar quarter"."""
    result = run_registry(emulator, state, "--quarter", quarter, "--report", q1)
    assert result.returncode == 0, result.stderr
    assert "3 added, 0 removed, 0 kept" in result.stdout and "2025-01 to 2025-03 (2025Q1)" in result.stdout
    assert writes(emulator) == (0, 0)


def test_a_batch_made_with_a_skipped_input_is_a_problem_in_the_commands_words_and_nothing_is_sent(
        emulator: Any, client: mnb.Client, state: Path) -> None:
    """November 2025 generated without Electricity Consumption: the plan said "no problem" and --submit --yes sent
    252.33 t. Now the plan names the batch and what to do (in Python: the command deletes no batch), exit 1."""
    inputs = client.required_inputs(NCR)
    electricity = int(inputs.loc[inputs["name"] == "Electricity Consumption", "id"].item())
    for month, skipped in (("2025-10", None), ("2025-11", [electricity]), ("2025-12", None)):
        client.generate(NCR, month, skipped_data_point_type_ids=skipped,
                        drop_existing_readings=skipped is not None).wait()
    november = str(client.batches(NCR, "2025-11", state="complete")["id"].item())
    rid = report_named(client, "2025Q1 Quarterly Report")
    planned = run_registry(emulator, state, "--quarter", "2025Q4", "--report", rid)
    assert planned.returncode == 1, planned.stderr
    out = planned.stdout
    assert "1 problem(s)" in out and "Problems (1), to fix before filling or submitting:" in out
    assert f"Batch {november} (NCR-2025-11, 2025-11): generated without Electricity Consumption" in out
    assert (f"delete the batch with client.delete_batch('{november}', even_if_complete=True) and generate 2025-11 "
            "again (client.generate('Net Carbon Removal', '2025-11')), in Python") in out
    assert "--quarter 2025-11" not in out  # the report command takes quarters
    # Leaving the batch out is not something the command does: said how, in Python.
    assert (f"or leave it out, which this command cannot do (it takes every complete batch of the quarter): in "
            f"Python, client.fill_report('{rid}', batches_without_it), then plan and submit it there.") in out
    submitted = run_registry(emulator, state, "--quarter", "2025Q4", "--report", rid, "--submit", "--yes")
    line = one_line_error(submitted, 1)
    assert line.startswith(f"mangrove-nb registry: Nothing was sent for report {rid}")
    assert "generated without Electricity Consumption" in line and "Filled report" not in submitted.stdout
    assert writes(emulator) == (0, 0)


def test_two_complete_batches_of_one_month_are_problems_in_the_commands_words_and_nothing_is_sent(
        emulator: Any, client: mnb.Client, q1: str, state: Path) -> None:
    """A second complete February batch (made in the emulator's SQLite): the plan said "no problem" and --submit
    --yes allocated 333.631 t for 238.534 t. Now both batches are problems, said in the command's words."""
    february = str(client.batches(NCR, "2025-02", state="complete")["id"].item())
    with emulator.store.transaction() as conn:
        conn.execute("INSERT INTO batches (id, ledger_pk, partition_key, tracking_id, feedstock, start_time, end_time,"
                     " state, value, output_dp_id, calculations, input_dp_ids, error_message, task_id, created_at,"
                     " updated_at, skipped_type_ids) SELECT 'bat_february_again', ledger_pk, partition_key || '#2',"
                     " tracking_id, feedstock, start_time, end_time, state, value, output_dp_id || 'x', calculations,"
                     " input_dp_ids, error_message, task_id, created_at, updated_at, skipped_type_ids FROM batches"
                     " WHERE id = ?", (february,))
    planned = run_registry(emulator, state, "--quarter", "2025Q1", "--report", q1)
    assert planned.returncode == 1, planned.stderr
    out = planned.stdout
    assert "2 problem(s)" in out and "is one of 2 complete batches of Net Carbon Removal for 2025-02" in out
    assert ("Check which of them is right (in Python, client.calculations([" in out
            and "delete the other (client.delete_batch(its id, even_if_complete=True), in Python), and run the "
                "command again." in out), out
    submitted = run_registry(emulator, state, "--quarter", "2025Q1", "--report", q1, "--submit", "--yes")
    line = one_line_error(submitted, 1)
    assert line.startswith(f"mangrove-nb registry: Nothing was sent for report {q1}") and "2025-02" in line
    assert writes(emulator) == (0, 0)
