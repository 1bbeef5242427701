"""Snapshots: ``mangrove-nb report --snapshot`` keeps what the report read from the API beside it, and
``--from-snapshot`` renders the report again from it alone, with no token and the emulator stopped.

One module-scoped run records 2024Q4 against an emulator with a canary token, stops the emulator, listens on its
port (to count any connection a replay would open) and renders the report again from the snapshot: most tests
inspect those three. The refusals run no kernel; the missing record runs one.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import re
import shutil
import socket
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import nbformat
import pytest
from conftest import check_exchanges
from contract import Contract

import mangrove_nb as mnb
from mangrove_nb.cli import main
from mangrove_nb.emulator import Emulator
from mangrove_nb.errors import ReportError, ValidationError
from mangrove_nb.reports import ReportPaths, render_report
from mangrove_nb.reports.snapshot import (
    FORMAT,
    MANIFEST_NAME,
    RESPONSES_NAME,
    ReadCache,
    RecordingHttpClient,
    ReplayingHttpClient,
    load_snapshot,
    request_key,
    write_snapshot,
)
from mangrove_nb.settings import Settings
from mangrove_nb.testing import emulator as start_emulator

pytestmark = pytest.mark.slow

QUARTER = "2024Q4"
STEM = f"quarterly_report_{QUARTER}"
CLOCK = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(?::\d{2})?(?: UTC|[+]00:00|Z)")


class Listener:
    """A TCP listener on the stopped emulator's port, counting the connections a replay would open."""

    def __init__(self, port: int) -> None:
        self.accepted = 0
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", port))
        self._socket.listen(16)
        self._socket.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except OSError:
                continue
            self.accepted += 1
            connection.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._socket.close()


@dataclass
class Taken:
    token: str
    url: str
    first: ReportPaths
    snapshot: Path
    replayed: ReportPaths
    replay_stderr: str
    connections: int  # opened to the emulator's port while the report was rendered again


@pytest.fixture(scope="module")
def taken(contract: Contract, tmp_path_factory: pytest.TempPathFactory) -> Taken:
    recorded, again = tmp_path_factory.mktemp("recorded"), tmp_path_factory.mktemp("again")
    with start_emulator(token=f"canary-{uuid.uuid4()}") as emu:
        first = render_report(QUARTER, out_dir=recorded, base_url=emu.url, token=emu.token, project=123,
                              snapshot=True, progress=False)
        check_exchanges(emu, contract)
        url, token = emu.url, emu.token
    listener = Listener(urlsplit(url).port or 0)  # the emulator is stopped: whatever connects now is counted
    try:
        with pytest.MonkeyPatch.context() as patch:
            for name in ("MANGROVE_API_TOKEN", "MANGROVE_API_URL", "MANGROVE_PROJECT_ID"):
                patch.delenv(name, raising=False)  # no token, no URL: the snapshot is all there is
            stderr = io.StringIO()
            with contextlib.redirect_stderr(stderr):
                replayed = render_report(from_snapshot=recorded / f"{STEM}.snapshot", out_dir=again)
    finally:
        listener.close()
    return Taken(token, url, first, recorded / f"{STEM}.snapshot", replayed, stderr.getvalue(), listener.accepted)


def _without_clock(text: str) -> str:
    return CLOCK.sub("<clock>", text)


def _replayed_from(snapshot: Path) -> str:
    """What a report replayed from ``snapshot`` says of its data (its provenance's "Data" row)."""
    created = json.loads((snapshot / MANIFEST_NAME).read_text(encoding="utf-8"))["created_at"]
    return f"replayed from the snapshot taken at {created[:10]} {created[11:19]} UTC ({snapshot.name})"


def _facts(path: Path) -> dict[str, Any]:
    return dict(nbformat.read(path, as_version=4).metadata["mangrove_nb"])


def _copy(snapshot: Path, where: Path) -> Path:
    copy = where / snapshot.name
    shutil.copytree(snapshot, copy)
    return copy


def _rewrite(snapshot: Path, keep: Any = None, *, change: Any = None, fingerprint: bool = True) -> None:
    """Drop the records ``keep`` refuses, ``change`` the others' answers in place, and make the manifest's count and
    checksum match again, and (as a deliberate edit can: neither is a signature) its fingerprint too, unless
    ``fingerprint=False``."""
    from mangrove_nb.reports.snapshot import RequestKey, read_digest

    records = [json.loads(line) for line in (snapshot / RESPONSES_NAME).read_text(encoding="utf-8").splitlines()]
    records = [record for record in records if keep is None or keep(record)]
    for record in records:
        if change is not None:
            change(record["response"])
    data = "".join(json.dumps(record, sort_keys=True, ensure_ascii=True) + "\n" for record in records).encode()
    (snapshot / RESPONSES_NAME).write_bytes(data)
    manifest = json.loads((snapshot / MANIFEST_NAME).read_text(encoding="utf-8"))
    manifest["responses"].update(count=len(records), sha256=hashlib.sha256(data).hexdigest())
    if fingerprint:
        manifest["fingerprint"] = read_digest(
            (RequestKey.of_record(r).canonical, json.dumps(r["response"], sort_keys=True, separators=(",", ":")))
            for r in records)
    (snapshot / MANIFEST_NAME).write_text(json.dumps(manifest), encoding="utf-8")


# --- rendering again, with no API ------------------------------------------------------------------------------


def test_a_snapshot_renders_the_same_report_with_the_emulator_stopped_and_no_token(taken: Taken) -> None:
    assert taken.connections == 0  # nothing was even tried at the API's address
    first = taken.first.html.read_text(encoding="utf-8")
    again = taken.replayed.html.read_text(encoding="utf-8")
    assert taken.replayed.html.name == taken.first.html.name
    assert CLOCK.search(first) and _without_clock(first) != first  # the generation time is there, and differs only
    said = f"<tr>\n<td>Data</td>\n<td>{_replayed_from(taken.snapshot)}</td>\n</tr>\n"  # the provenance says so
    assert again.count(said) == 1 and "replayed from" not in first
    assert _without_clock(again.replace(said, "")) == _without_clock(first)
    before, after = _facts(taken.first.ipynb), _facts(taken.replayed.ipynb)
    assert re.fullmatch(r"[0-9a-f]{64}", after["fingerprint"]) and after["fingerprint"] == before["fingerprint"]
    for key in ("totals", "summary", "findings", "net_removal", "coverage", "project", "ledgers"):
        assert after[key] == before[key], key
    assert f"Report {QUARTER} rendered in" in taken.replay_stderr
    assert f"s, {_replayed_from(taken.snapshot)}; nothing was sent to {taken.url}: " in taken.replay_stderr
    assert taken.first.snapshot == taken.snapshot and taken.replayed.snapshot is None


def test_the_command_says_what_it_replayed_and_so_do_the_report_and_its_workbook(
        taken: Taken, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A replay looked exactly like a live report: now its output line, the HTML's provenance and the workbook's
    Provenance sheet say "replayed from the snapshot taken at <UTC time> (<folder>)"."""
    import openpyxl

    for name in ("MANGROVE_API_TOKEN", "MANGROVE_API_URL", "MANGROVE_PROJECT_ID"):
        monkeypatch.delenv(name, raising=False)
    out = tmp_path / "again"
    assert main(["report", "--from-snapshot", str(taken.snapshot), "--out", str(out), "--format", "html,xlsx"]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [str(out / f"{STEM}.html"), str(out / f"{STEM}.xlsx")]
    said = _replayed_from(taken.snapshot)
    assert f"s, {said}; nothing was sent to {taken.url}: {out / STEM}.html, {out / STEM}.xlsx" in captured.err
    assert f"<td>{said}</td>" in (out / f"{STEM}.html").read_text(encoding="utf-8")
    book = openpyxl.load_workbook(out / f"{STEM}.xlsx", read_only=True)
    try:
        rows = {row[0]: row[1] for row in book["Provenance"].iter_rows(values_only=True)}
    finally:
        book.close()
    assert rows["Data"] == said and rows["API base URL"] == taken.url


def test_the_manifest_names_the_report_and_no_file_holds_the_token(taken: Taken) -> None:
    files = sorted(p.name for p in taken.snapshot.iterdir())
    assert files == [MANIFEST_NAME, RESPONSES_NAME]
    manifest = json.loads((taken.snapshot / MANIFEST_NAME).read_text(encoding="utf-8"))
    facts = _facts(taken.first.ipynb)
    assert manifest["format"] == FORMAT and manifest["period"] == QUARTER and manifest["kind"] == "quarter"
    assert manifest["ledgers"] == facts["ledgers"] and manifest["fingerprint"] == facts["fingerprint"]
    assert manifest["base_url"] == taken.url and manifest["mangrove_nb_version"] == mnb.__version__
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", manifest["created_at"])
    assert manifest["parameters"] == {"quarter": QUARTER, "project": "123", "base_url": taken.url}
    assert manifest["project"] == {"id": "123", "name": "Cascade Biochar Facility"}
    assert not {"token", "api_token", "authorization"} & {k.lower() for k in manifest}
    data = (taken.snapshot / RESPONSES_NAME).read_bytes()
    assert manifest["responses"] == {"file": RESPONSES_NAME, "count": len(data.splitlines()),
                                     "sha256": hashlib.sha256(data).hexdigest()}
    token = taken.token.encode()
    forms = [token, base64.b64encode(token), base64.b64encode(b"Bearer " + token), token.hex().encode()]
    for folder in (taken.snapshot.parent, taken.replayed.html.parent):
        for path in folder.rglob("*"):
            if path.is_file():
                content = path.read_bytes()
                assert not [form for form in forms if form in content], path.name
    assert taken.token not in taken.replay_stderr


def test_every_record_is_keyed_by_method_path_and_query_and_holds_what_the_api_answered(taken: Taken) -> None:
    records = [json.loads(line) for line in (taken.snapshot / RESPONSES_NAME).read_text().splitlines()]
    keys = [request_key(r["method"], r["path"], dict(r["query"]), r["body"]).canonical for r in records]
    assert len(set(keys)) == len(keys) and keys == sorted(keys)  # one record per answer read, in key order
    assert {r["method"] for r in records} == {"GET", "POST"}  # reads, and the read-only preview
    assert all(r["path"].endswith("/generate_preview") for r in records if r["method"] == "POST")
    assert all(r["body"] is None for r in records if r["method"] == "GET")
    ledgers = next(r for r in records if r["path"] == "/ledgers")
    assert ["page", "1"] in ledgers["query"] and {item["name"] for item in ledgers["response"]["data"]} >= {
        "Net Carbon Removal", "Biochar Produced"}
    batch_reads = [r["path"] for r in records if r["path"].startswith("/batches/")]
    assert batch_reads and len(batch_reads) == len(set(batch_reads))  # each batch's detail once (the read cache)


# --- refusals ------------------------------------------------------------------------------------------------


def test_a_request_the_snapshot_does_not_hold_is_a_clear_error_naming_it(taken: Taken, tmp_path: Path) -> None:
    snapshot = _copy(taken.snapshot, tmp_path)
    dropped = next(json.loads(line)["path"] for line in (snapshot / RESPONSES_NAME).read_text().splitlines()
                   if json.loads(line)["path"].startswith("/batches/"))
    _rewrite(snapshot, lambda record: record["path"] != dropped)
    out = tmp_path / "out"
    with pytest.raises(ReportError) as caught:
        render_report(from_snapshot=snapshot, out_dir=out, progress=False)
    message = str(caught.value)
    assert f"holds no answer to GET {dropped}" in message and snapshot.name in message
    assert "\n" not in message and "--snapshot" in message
    assert sorted(p.name for p in out.iterdir()) == [f"{STEM}_FAILED.ipynb"]  # no report from partial data


def test_a_missed_request_fails_the_replay_even_where_a_caller_swallowed_the_error(taken: Taken,
                                                                                   tmp_path: Path) -> None:
    """The client reads ledger names for display and gives up quietly when it cannot: a replay that misses must
    not become a report with empty names. The miss is logged, and the run refuses to write the report."""
    misses = tmp_path / "misses.log"
    http = ReplayingHttpClient(Settings(token="x" * 20, base_url=taken.url), snapshot=load_snapshot(taken.snapshot),
                               misses=misses)
    with pytest.raises(ReportError, match=r"holds no answer to GET /ledgers/lgr_nope/batches\?page=1"):
        http.get("/ledgers/lgr_nope/batches", {"page": 1})
    assert "lgr_nope" in misses.read_text(encoding="utf-8")
    with pytest.raises(ReportError, match="sends nothing"):
        http.request("DELETE", "/batches/bat_1", safe=False)
    with pytest.raises(ReportError, match="sends nothing"):
        http.send_once("POST", "/ledgers/x/batch_generations", {"start_time": "a"}, unknown=Exception,
                       task_path="/async_tasks/")
    from mangrove_nb.reports.run import _check_replayed

    nb = nbformat.read(taken.replayed.ipynb, as_version=4)
    _check_replayed(nb, load_snapshot(taken.snapshot), tmp_path / "no-misses.log")  # a clean replay passes
    with pytest.raises(ReportError, match="lgr_nope"):
        _check_replayed(nb, load_snapshot(taken.snapshot), misses)


@pytest.mark.parametrize(("options", "expected"), [
    ({"quarter": "2025Q1"}, "is of 2024Q4, not 2025Q1"),
    ({"year": 2024}, "is of 2024Q4, not 2024"),
    ({"ledgers": ["Net Carbon Removal"]}, "not the ledgers given"),
    ({"project": 456}, "is of project 123, not 456"),
    ({"base_url": "http://127.0.0.1:9/api/v1"}, "was taken from"),
    ({"generate_missing": True}, "sends nothing"),
])
def test_a_snapshot_of_another_report_is_refused_before_any_kernel_starts(taken: Taken, tmp_path: Path,
                                                                         options: dict[str, Any],
                                                                         expected: str) -> None:
    with pytest.raises(ValidationError) as caught:
        render_report(from_snapshot=taken.snapshot, out_dir=tmp_path / "out", progress=False, **options)
    assert expected in str(caught.value) and "\n" not in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_the_cli_refuses_a_mismatched_snapshot_in_one_line_with_exit_code_2(
        taken: Taken, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MANGROVE_API_TOKEN", raising=False)
    out = tmp_path / "out"
    assert main(["report", "--quarter", "2025Q2", "--from-snapshot", str(taken.snapshot), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mangrove-nb report: The snapshot ")
    assert "is of 2024Q4, not 2025Q2" in err and not out.exists()
    assert main(["report", "--quarter", "2024Q1..2024Q4", "--from-snapshot", str(taken.snapshot)]) == 2
    assert "A snapshot holds one report" in capsys.readouterr().err


def test_a_changed_cut_or_foreign_snapshot_is_refused(taken: Taken, tmp_path: Path) -> None:
    changed = _copy(taken.snapshot, tmp_path / "changed")
    text = (changed / RESPONSES_NAME).read_text(encoding="utf-8")
    (changed / RESPONSES_NAME).write_text(text.replace("Net Carbon Removal", "Net Carbon Removal!", 1),
                                          encoding="utf-8")
    cut = _copy(taken.snapshot, tmp_path / "cut")
    (cut / RESPONSES_NAME).unlink()
    foreign = tmp_path / "foreign.snapshot"
    foreign.mkdir()
    (foreign / MANIFEST_NAME).write_text('{"format": "something/9"}', encoding="utf-8")
    for path, expected in ((changed, "does not match its manifest's checksum"), (cut, "responses.jsonl is missing"),
                           (foreign, "is not a mangrove_nb.snapshot/1 manifest"),
                           (tmp_path / "nowhere", "is not a snapshot folder")):
        with pytest.raises(ValidationError) as caught:
            render_report(from_snapshot=path, out_dir=tmp_path / "out", progress=False)
        assert expected in str(caught.value) and "--from-snapshot" in str(caught.value), path
    assert not (tmp_path / "out").exists()


def test_a_snapshot_folder_is_written_whole_and_a_planted_symlink_is_replaced(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    folder = tmp_path / "report.snapshot"
    folder.symlink_to(outside, target_is_directory=True)
    write_snapshot(folder, {MANIFEST_NAME: b"{}", RESPONSES_NAME: b""}, lambda text: text)
    assert folder.is_dir() and not folder.is_symlink() and list(outside.iterdir()) == []
    write_snapshot(folder, {MANIFEST_NAME: b'{"second": "canary-x"}'}, lambda text: text.replace("canary-x", "…"))
    assert sorted(p.name for p in folder.iterdir()) == [MANIFEST_NAME]  # the earlier folder was replaced whole
    assert (folder / MANIFEST_NAME).read_text(encoding="utf-8") == '{"second": "…"}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outside", "report.snapshot"]  # no temporary left


# --- the recording layer ---------------------------------------------------------------------------------------


def test_the_read_cache_answers_a_read_once_and_never_caches_writes_or_task_polls(emulator: Emulator,
                                                                                  tmp_path: Path) -> None:
    cache = ReadCache(tmp_path)
    log = tmp_path / "keys.log"
    settings = Settings.resolve(emulator.token, emulator.url)
    with RecordingHttpClient(settings, cache=cache, log=log) as http, \
            RecordingHttpClient(settings, cache=cache, log=tmp_path / "other.log") as other:
        first = http.ledgers()
        assert other.ledgers() == first  # another kernel of the same command: from the cache
        assert emulator.count("list-all-ledgers") == 1
        body = {"start_time": "2025-01-01T00:00:00Z", "end_time": "2025-01-31T23:59:59Z"}
        ledger = next(item["id"] for item in first if item["name"] == "Net Carbon Removal")
        http.generate_preview(ledger, body)
        http.generate_preview(ledger, body)
        assert emulator.count("generate-preview") == 1  # a read-only POST, keyed by its body too
        with contextlib.suppress(mnb.MangroveError):
            http.get("/async_tasks/tsk_nope")
        with contextlib.suppress(mnb.MangroveError):
            http.get("/async_tasks/tsk_nope")
        assert emulator.count("retrieve-async-task") == 2  # a task's status is never cached
    records = cache.records([log])
    assert [(r["method"], r["path"]) for r in records] == [("GET", "/ledgers"),
                                                           ("POST", f"/ledgers/{ledger}/generate_preview")]
    assert request_key("GET", "/x", {"b": 2, "a": [1, "z"], "c": None}).query == (("a", "1"), ("a", "z"),
                                                                                  ("b", "2"))


# --- review 14b: what the checks prove, malformed snapshots ------------------------------------------------------


def _set_balance(value: float, tracking: tuple[str, ...]) -> Any:
    """A ``change`` for ``_rewrite``: every batch object (in a listing or a batch's detail) of ``tracking`` gets the
    ledger balance ``value``."""
    def change(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("tracking_id") in tracking and "ledger_balance" in node:
                node["ledger_balance"] = value
            for item in node.values():
                change(item)
        elif isinstance(node, list):
            for item in node:
                change(item)
    return change


NCR_Q4 = ("NCR-2024-10", "NCR-2024-11", "NCR-2024-12")


def test_the_fingerprint_is_of_every_answer_read_so_an_edited_balance_is_refused(taken: Taken,
                                                                                 tmp_path: Path) -> None:
    """The fingerprint covered batches and calculations only: a ledger_balance edited from 0.0 to 5000.0 (checksum
    recomputed) rendered with the same fingerprint. Now it hashes every answer the report read (registry reports,
    the project, previews, ledgers...), a snapshot's answers must give it before anything runs, and the edit is
    refused, in one line."""
    from mangrove_nb.reports.snapshot import FINGERPRINT_FORMAT, RequestKey, read_digest

    manifest = json.loads((taken.snapshot / MANIFEST_NAME).read_text(encoding="utf-8"))
    records = [json.loads(line) for line in (taken.snapshot / RESPONSES_NAME).read_text().splitlines()]
    pairs = [(RequestKey.of_record(r).canonical, json.dumps(r["response"], sort_keys=True, separators=(",", ":")))
             for r in records]
    assert manifest["fingerprint_format"] == FINGERPRINT_FORMAT
    assert read_digest(pairs) == manifest["fingerprint"] == _facts(taken.first.ipynb)["fingerprint"]
    assert {"/reports", "/projects/123", "/ledgers"} <= {r["path"] for r in records}  # what it covers now
    edited = _copy(taken.snapshot, tmp_path)
    _rewrite(edited, change=_set_balance(5000.0, NCR_Q4), fingerprint=False)  # the checksum matches again
    with pytest.raises(ValidationError) as caught:
        render_report(from_snapshot=edited, out_dir=tmp_path / "out", progress=False)
    message = str(caught.value)
    assert "do not give the data fingerprint its manifest records" in message and "edited or damaged" in message
    assert "\n" not in message and not (tmp_path / "out").exists()


def test_a_forged_balance_larger_than_the_output_is_flagged_in_the_registry_section(taken: Taken,
                                                                                    tmp_path: Path) -> None:
    """A snapshot is not a signature: an edit whose checksum and fingerprint are recomputed (the package computes
    both) renders. The Registry section then no longer shows 15,000.000 'on no report' beside an output of
    227.174 t unflagged: a balance larger than the output is marked ⚠ and a note says not to report from it."""
    forged = _copy(taken.snapshot, tmp_path)
    _rewrite(forged, change=_set_balance(5000.0, NCR_Q4))
    paths = render_report(from_snapshot=forged, out_dir=tmp_path / "out", progress=False)
    html = paths.html.read_text(encoding="utf-8")
    assert "⚠ 15,000.000" in html
    assert "the unallocated balance, 15,000.000, is larger than the output of the complete batches" in html
    assert "NCR-2024-10, NCR-2024-11, NCR-2024-12" in html and "do not report from these figures" in html
    untouched = taken.first.html.read_text(encoding="utf-8")
    assert "is larger than the output" not in untouched and "⚠ 0.000" not in untouched


def test_a_fingerprint_or_answer_mismatch_says_the_data_changed_and_names_versions_only_when_they_differ(
        taken: Taken, tmp_path: Path) -> None:
    """It said 'The template or mangrove_nb changed since it was taken: render it with the version it names (0.1.0)'
    while 0.1.0 was running and the data had been edited."""
    from mangrove_nb.reports.run import _check_replayed
    from mangrove_nb.reports.snapshot import Snapshot, missing_answer

    nb = nbformat.read(taken.replayed.ipynb, as_version=4)
    nb.metadata["mangrove_nb"]["fingerprint"] = "0" * 64
    snapshot = load_snapshot(taken.snapshot)
    with pytest.raises(ReportError) as caught:
        _check_replayed(nb, snapshot, tmp_path / "no-misses.log")
    message = str(caught.value)
    assert "do not give the fingerprint its manifest records" in message and "edited or damaged" in message
    assert "version" not in message and "\n" not in message
    older = Snapshot(snapshot.path, {**snapshot.manifest, "mangrove_nb_version": "0.0.1"}, snapshot.answers)
    with pytest.raises(ReportError, match=rf"taken with mangrove_nb 0\.0\.1 \(this is {re.escape(mnb.__version__)}\)"):
        _check_replayed(nb, older, tmp_path / "no-misses.log")
    before = Snapshot(snapshot.path, {k: v for k, v in snapshot.manifest.items() if k != "fingerprint_format"},
                      snapshot.answers)  # taken before the fingerprint covered every answer read
    with pytest.raises(ReportError, match="taken before the fingerprint covered every answer the report read"):
        _check_replayed(nb, before, tmp_path / "no-misses.log")
    said = missing_answer(snapshot, "GET /projects/124")
    assert "edited or damaged" in said and "version" not in said
    assert "taken with mangrove_nb 0.0.1" in missing_answer(older, "GET /projects/124")


def _fifo(folder: Path) -> None:
    (folder / RESPONSES_NAME).unlink()
    import os

    os.mkfifo(folder / RESPONSES_NAME)


@pytest.mark.parametrize(("name", "damage", "expected"), [
    ("parameters a list", lambda m: m.update(parameters=["x"]), "has a 'parameters' that is not"),
    ("parameters a string", lambda m: m.update(parameters="x"), "has a 'parameters' that is not"),
    ("ledgers an int", lambda m: m["parameters"].update(ledgers=5), "'parameters.ledgers' that is not"),
    ("ledgers of ints", lambda m: m["parameters"].update(ledgers=[5]), "'parameters.ledgers' that is not"),
    ("project a list", lambda m: m["parameters"].update(project=[1, 2]), "'parameters.project' that is not"),
    ("period a number", lambda m: m.update(period=2024), "has a 'period' that is not"),
    ("period no quarter", lambda m: m.update(period="2024Q9"), "has a 'period' that is not"),
    ("base URL a number", lambda m: m.update(base_url=5), "has a 'base_url' that is not"),
    ("responses a list", lambda m: m.update(responses=[]), "has a 'responses' that is not"),
    ("manifest a list", "[]", "is not a mangrove_nb.snapshot/1 manifest"),
    ("deeply nested", "[" * 200_000 + "]" * 200_000, "JSON nested too deeply"),
    ("manifest a link to /dev/zero", "/dev/zero", "manifest.json is a symbolic link"),
    ("responses a FIFO", _fifo, "responses.jsonl is not a regular file"),
])
def test_a_malformed_snapshot_is_one_line_never_a_bug_a_hang_or_a_read_of_gigabytes(
        taken: Taken, tmp_path: Path, name: str, damage: Any, expected: str) -> None:
    """Review 14b: a manifest of the wrong shape was an 'unexpected error (a bug...)' with a traceback, deep JSON a
    RecursionError, a manifest linked to /dev/zero was read whole (2 GB in 8 s) and a FIFO hung forever."""
    snapshot = _copy(taken.snapshot, tmp_path)
    manifest_path = snapshot / MANIFEST_NAME
    if damage == "/dev/zero":
        manifest_path.unlink()
        manifest_path.symlink_to("/dev/zero")
    elif isinstance(damage, str):
        manifest_path.write_text(damage, encoding="utf-8")
    elif damage is _fifo:
        damage(snapshot)
    else:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        damage(manifest)
        manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    outcome: list[BaseException | None] = []

    def load() -> None:
        try:
            load_snapshot(snapshot)
            outcome.append(None)
        except BaseException as exc:  # handed to the test's thread
            outcome.append(exc)

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    worker.join(20)
    assert outcome, f"{name}: load_snapshot did not return in 20 s"
    error = outcome[0]
    assert isinstance(error, ValidationError), f"{name}: {error!r}"
    assert expected in str(error) and "\n" not in str(error) and "--from-snapshot" in str(error)


def test_the_cli_refuses_a_malformed_manifest_in_one_line_with_exit_code_2(
        taken: Taken, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MANGROVE_API_TOKEN", raising=False)
    snapshot = _copy(taken.snapshot, tmp_path)
    manifest = json.loads((snapshot / MANIFEST_NAME).read_text(encoding="utf-8"))
    manifest["parameters"] = ["x"]
    (snapshot / MANIFEST_NAME).write_text(json.dumps(manifest), encoding="utf-8")
    assert main(["report", "--from-snapshot", str(snapshot), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has a 'parameters' that is not" in err and "unexpected error" not in err
