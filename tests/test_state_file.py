"""The state file of unknown outcomes (``_sent``), shared by every process on the machine: one kernel settling its
own unknown outcome never erases another kernel's, a kernel sees an unknown outcome another one got since it
started (and stops refusing once another one settled it), a restarted kernel still refuses, concurrent writers lose
no entry, a file an older version wrote still reads, and the file never holds the token.

A "process" is a client made after ``Sent._registry`` is cleared (each then holds a record of its own, as two
kernels do); the stress test runs real processes too.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import connect_to, report_named

import mangrove_nb as mnb
from mangrove_nb._sent import STATE_FILE, Sent, Submission, api_key
from mangrove_nb.errors import SubmissionOutcomeUnknownError
from mangrove_nb.periods import parse_period

NCR = "Net Carbon Removal"
DRAFT = "2025Q1 Quarterly Report"
REJECTED = "Rejected by registry (demo)"


def new_process() -> None:
    """What a new Python process starts with: no record in memory, only the state file."""
    Sent._registry.clear()


@pytest.fixture
def state_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    state = tmp_path / "state"
    monkeypatch.setenv("MANGROVE_NB_STATE_DIR", str(state))
    return state


def entries(state: Path) -> list[dict[str, Any]]:
    """Every entry of the state file, whatever API it is of."""
    path = state / STATE_FILE
    if not path.exists():
        return []
    return [e for listed in json.loads(path.read_text(encoding="utf-8")).values() for e in listed]


def settled_by_reconcile(client: mnb.Client, rid: str, seconds: float = 10) -> mnb.ReportReconciliation:
    """``reconcile_report`` until it clears the record (the submission, answered after it acted, shows as sent)."""
    deadline = time.monotonic() + seconds
    while True:
        found = client.reconcile_report(rid)
        if found.cleared or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def settled_generation(client: mnb.Client, ledger: str, period: str, seconds: float = 10) -> mnb.Reconciliation:
    deadline = time.monotonic() + seconds
    while True:
        found = client.reconcile(ledger, period)
        if found.complete or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


@pytest.fixture
def two_kernels(emulator: Any, state_dir: Path) -> Iterator[tuple[mnb.Client, mnb.Client]]:
    """Kernel B, started first (its record read the state file then), and kernel A, started after."""
    with connect_to(emulator.url, emulator.token, project_id=123) as b:
        b.ledgers()
        new_process()
        with connect_to(emulator.url, emulator.token, project_id=123) as a:
            yield a, b


def test_another_kernel_settling_its_own_submission_keeps_this_ones_and_a_restarted_kernel_refuses(
        emulator: Any, two_kernels: tuple[mnb.Client, mnb.Client], state_dir: Path) -> None:
    a, b = two_kernels
    with emulator.store.transaction() as conn:  # the registry accepts B's report: its submission completes
        conn.execute("UPDATE reports SET registry_rejection = NULL")
    x, y = report_named(a, DRAFT), report_named(a, REJECTED)
    a.generate(NCR, "2025Q1").wait()
    a.fill_report(x, a.batches(NCR, "2025Q1", state="complete"))
    emulator.faults.drop("submit-report", after_commit=True)  # A's submission: the server acts, the answer is lost
    with pytest.raises(mnb.SubmissionOutcomeUnknownError):
        a.submit_report(x)
    assert [e["report_id"] for e in entries(state_dir)] == [x]
    emulator.faults.drop("submit-report", after_commit=True)  # B's own, likewise; then B reconciles it
    with pytest.raises(mnb.SubmissionOutcomeUnknownError):
        b.submit_report(y)
    assert sorted(e["report_id"] for e in entries(state_dir)) == sorted([x, y])
    assert settled_by_reconcile(b, y).sent is True
    assert [e["report_id"] for e in entries(state_dir)] == [x]  # A's unknown outcome is still there
    with pytest.raises(mnb.PreconditionError, match="unknown outcome"):
        b.submit_report(x)  # B, started before A's record, sees it now
    new_process()
    with connect_to(emulator.url, emulator.token, project_id=123) as restarted:
        with pytest.raises(mnb.PreconditionError, match=r"unknown outcome.*reconcile_report"):
            restarted.submit_report(x)
        assert emulator.count("submit-report") == 2
        assert settled_by_reconcile(restarted, x).sent is True  # a record another process wrote is settled here
    assert entries(state_dir) == []
    assert b._sent.submissions_of(x) == [] and a._sent.submissions_of(x) == []  # settled for every kernel


def test_another_kernel_settling_its_own_generation_keeps_this_ones_and_a_restarted_kernel_refuses(
        emulator: Any, two_kernels: tuple[mnb.Client, mnb.Client], state_dir: Path) -> None:
    a, b = two_kernels
    emulator.faults.drop("create-batch-generation", after_commit=False)  # A's: nothing made, the answer lost
    with pytest.raises(mnb.GenerationOutcomeUnknownError):
        a.generate(NCR, "2025-03")
    emulator.faults.drop("create-batch-generation", after_commit=True)  # B's own: made, the answer lost
    with pytest.raises(mnb.GenerationOutcomeUnknownError):
        b.generate(NCR, "2025-01")
    assert sorted(e["label"] for e in entries(state_dir)) == ["2025-01", "2025-03"]
    assert settled_generation(b, NCR, "2025-01").complete
    assert [e["label"] for e in entries(state_dir)] == ["2025-03"]
    with pytest.raises(mnb.PreconditionError, match="unknown outcome"):
        b.generate(NCR, "2025Q1")  # B, started before A's record, sees it now
    new_process()
    with connect_to(emulator.url, emulator.token, project_id=123) as restarted:
        with pytest.raises(mnb.PreconditionError, match=r"unknown outcome.*reconcile\('lgr"):
            restarted.generate(NCR, "2025-03")
        assert emulator.count("create-batch-generation") == 2
        ledger = restarted.ledger_id(NCR)
        found = restarted.reconcile(NCR, "2025-03")  # nothing made: the refusal stays
        assert not found.complete and found.unknown_outcomes
        restarted.generate(NCR, "2025-03", even_if_outcome_unknown=True).wait()
        assert settled_generation(restarted, NCR, "2025-03").complete  # another process's record, settled here
    assert entries(state_dir) == []
    assert a._sent.overlapping(ledger, parse_period("2025-03")) == []  # and for the kernel that wrote it


def test_a_kernel_that_never_saw_an_entry_does_not_erase_it_when_it_settles_its_own(state_dir: Path) -> None:
    """The same, at the record's level: B's record is made, A's and B's unknown outcomes written, B settles its
    own; A's stays, and B (which read the file before A wrote) refuses A's report."""
    key = api_key("http://127.0.0.1:1/api/v1")
    b = Sent(key, str(state_dir))
    a = Sent(key, str(state_dir))
    unknown_submission(a, "rpt_a")
    own = unknown_submission(b, "rpt_b")
    b.forget(own)
    assert [e["report_id"] for e in entries(state_dir)] == ["rpt_a"]
    assert [s.report_id for s in b.submissions_of("rpt_a")] == ["rpt_a"]
    assert [s.report_id for s in Sent(key, str(state_dir)).submissions_of("rpt_a")] == ["rpt_a"]


def unknown_submission(sent: Sent, rid: str) -> Submission:
    """Record a submission of ``rid`` whose answer was lost, as ``send_submission`` does."""
    submission = Submission(rid)
    with sent.lock:
        sent.submissions.append(submission)
        with pytest.raises(SubmissionOutcomeUnknownError), sent.sending(submission):
            raise submission.outcome_unknown("no answer")
    return submission


def test_concurrent_writers_in_threads_never_lose_an_entry(state_dir: Path) -> None:
    """Eight records of one API (eight kernels' worth, each with its own lock), each recording 12 unknown outcomes
    and settling every other one at once: the file ends with exactly the unsettled ones."""
    key = api_key("http://127.0.0.1:1/api/v1")
    start = threading.Barrier(8)
    kept: list[str] = []
    failures: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            sent = Sent(key, str(state_dir))
            start.wait()
            for i in range(12):
                submission = unknown_submission(sent, f"rpt_{n}_{i}")
                if i % 2:
                    sent.forget(submission)
                else:
                    kept.append(submission.report_id)
        except BaseException as exc:  # pragma: no cover - shown by the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures
    assert sorted(e["report_id"] for e in entries(state_dir)) == sorted(kept) and len(kept) == 48
    assert sorted(s.report_id for s in Sent(key, str(state_dir)).submissions) == sorted(kept)


WRITER = """
import sys
from mangrove_nb._sent import Sent, Submission, api_key
from mangrove_nb.errors import SubmissionOutcomeUnknownError
state, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
sent = Sent(api_key("http://127.0.0.1:1/api/v1"), state)
sys.stdin.readline()  # every process started: go
for i in range(count):
    submission = Submission(f"rpt_{name}_{i}")
    sent.submissions.append(submission)
    try:
        with sent.sending(submission):
            raise submission.outcome_unknown("no answer")
    except SubmissionOutcomeUnknownError:
        pass
    if i % 2:
        sent.forget(submission)
    else:
        print(submission.report_id, flush=True)
"""


def test_concurrent_writers_in_processes_never_lose_an_entry(state_dir: Path) -> None:
    """Three Python processes, started together, each recording 20 unknown outcomes and settling every other one:
    the file ends with exactly the 30 unsettled ones."""
    processes = [subprocess.Popen([sys.executable, "-c", WRITER, str(state_dir), str(n), "20"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for n in range(3)]
    outputs = [p.communicate("go\n", timeout=120) for p in processes]
    assert all(p.returncode == 0 for p in processes), [err[-2000:] for _out, err in outputs]
    kept = sorted(line for out, _err in outputs for line in out.split())
    assert len(kept) == 30
    assert sorted(e["report_id"] for e in entries(state_dir)) == kept


OLD_FILE = {
    "http://loopback:1/api/v1": [
        {"ledger_id": "lgr_old", "writes": ["lgr_old"], "label": "2025Q1", "start": "2025-01-01T00:00:00+00:00",
         "end": "2025-03-31T23:59:59+00:00", "sent_at": "2025-04-01T10:00:00+00:00",
         "detail": "remote end closed connection; recorded by an earlier session"},
        {"kind": "report_submission", "report_id": "rpt_old", "sent_at": "2025-04-02T10:00:00+00:00",
         "detail": "HTTP 502"},
    ],
    "https://other.example:443/api/v1": [{"kind": "report_submission", "report_id": "rpt_elsewhere",
                                          "sent_at": "2025-04-02T10:00:00+00:00", "detail": None}],
}


def test_a_file_an_older_version_wrote_still_reads_and_its_entries_can_be_settled(state_dir: Path) -> None:
    state_dir.mkdir()
    (state_dir / STATE_FILE).write_text(json.dumps(OLD_FILE), encoding="utf-8")
    key = api_key("http://localhost:1/api/v1")
    first, second = Sent(key, str(state_dir)), Sent(key, str(state_dir))
    [attempt] = first.overlapping("lgr_old", parse_period("2025-02"))
    assert attempt.unknown is not None
    assert attempt.describe().endswith("(remote end closed connection; recorded by an earlier session or another "
                                       "kernel)")
    [submission] = first.submissions_of("rpt_old")
    assert "HTTP 502" in submission.describe()
    first.forget(submission)
    on_file = json.loads((state_dir / STATE_FILE).read_text(encoding="utf-8"))
    assert on_file["http://loopback:1/api/v1"] == OLD_FILE["http://loopback:1/api/v1"][:1]  # the other, as it was
    assert on_file["https://other.example:443/api/v1"] == OLD_FILE["https://other.example:443/api/v1"]
    assert second.submissions_of("rpt_old") == []  # settled for a kernel that read it before, too
    assert len(second.overlapping("lgr_old", parse_period("2025Q1"))) == 1


def test_an_unreadable_file_is_left_as_it_was(state_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A file that is not JSON is not replaced (its entries would be lost): this process remembers alone, and
    says so."""
    state_dir.mkdir()
    (state_dir / STATE_FILE).write_text("{not json", encoding="utf-8")
    sent = Sent(api_key("http://127.0.0.1:1/api/v1"), str(state_dir))
    unknown_submission(sent, "rpt_x")
    assert (state_dir / STATE_FILE).read_text(encoding="utf-8") == "{not json"
    assert [s.report_id for s in sent.submissions_of("rpt_x")] == ["rpt_x"]
    assert "remembered in this process only" in caplog.text


def test_the_file_holds_ids_and_never_the_token(emulator: Any, state_dir: Path) -> None:
    with connect_to(emulator.url, emulator.token, project_id=123, max_retries=0) as client:
        rid = report_named(client, REJECTED)
        emulator.faults.fail("submit-report", 503, message=f"upstream said Bearer {emulator.token}")
        with pytest.raises(mnb.SubmissionOutcomeUnknownError) as lost:
            client.submit_report(rid)
        assert emulator.token not in str(lost.value)
        # An answer's text that echoes the token (a redirect's Location is written into the detail):
        echoed = Submission(rid)
        client._sent.submissions.append(echoed)
        with pytest.raises(SubmissionOutcomeUnknownError), client._sent.sending(echoed):
            raise echoed.outcome_unknown(f"HTTP 302 (a redirect to /login?token={emulator.token})")
    text = (state_dir / STATE_FILE).read_text(encoding="utf-8")
    assert [e["report_id"] for e in entries(state_dir)] == [rid, rid]
    assert all(len(e["id"]) == 32 for e in entries(state_dir))
    assert emulator.token not in text and "token=[redacted]" in text
