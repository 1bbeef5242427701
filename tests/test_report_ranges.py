"""Several reports in one command: ``--quarter 2024Q1..2025Q4`` (one report per quarter, the next kernel started
while the current one runs, every API answer read once) and ``--year 2025`` (the same template for a calendar
year, compared with the year before, worded for a year).

Each report runs in a kernel of this process, so a kernel left running is a child process here and a connection
file in ``JUPYTER_RUNTIME_DIR`` (moved to a folder of the test's own): after success, failure or Ctrl-C both are
counted. The bad ranges run nothing at all.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
from helpers import connect_to

from mangrove_nb.cli import main
from mangrove_nb.emulator import Emulator
from mangrove_nb.errors import PeriodError, ReportError, ValidationError
from mangrove_nb.reports import MAX_REPORTS, build_report, render_report, render_reports, report_range

pytestmark = pytest.mark.slow

EIGHT = [f"{year}Q{q}" for year in (2024, 2025) for q in (1, 2, 3, 4)]


def _children() -> set[int]:
    """This process's child processes (the kernels among them while they run), from /proc."""
    mine = str(os.getpid())
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                if (entry / "stat").read_text().rsplit(")", 1)[1].split()[1] == mine:
                    found.add(int(entry.name))
    return found


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where jupyter_client writes the kernels' connection files (one per running kernel), for this test only."""
    folder = tmp_path / "jupyter-runtime"
    folder.mkdir()
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(folder))
    return folder


def _assert_no_kernel_left(before: set[int], runtime: Path) -> None:
    deadline = time.monotonic() + 15
    while (_children() - before or list(runtime.glob("kernel-*.json"))) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _children() - before, "a kernel is still running"
    assert list(runtime.glob("kernel-*.json")) == [], "a kernel's connection file is left"


def _use(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MANGROVE_API_URL", emu.url)
    monkeypatch.setenv("MANGROVE_API_TOKEN", emu.token)
    monkeypatch.setenv("MANGROVE_PROJECT_ID", "123")


class _InterruptAt(io.StringIO):
    """A stderr on which the progress line starting with ``line`` raises KeyboardInterrupt, as Ctrl-C would."""

    def __init__(self, line: str) -> None:
        super().__init__()
        self.line = line

    def write(self, text: str) -> int:
        if text.startswith(self.line):
            raise KeyboardInterrupt
        return super().write(text)


# --- eight quarters in one command -------------------------------------------------------------------------------


def test_eight_quarters_render_in_one_command_reading_each_answer_once_and_leaving_no_kernel(
        emulator: Emulator, runtime: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    _use(emulator, monkeypatch)
    before = _children()
    out = tmp_path / "out"
    assert main(["report", "--quarter", "2024Q1..2025Q4", "--snapshot", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [str(out / f"quarterly_report_{q}.{kind}") for q in EIGHT
                                         for kind in ("html", "snapshot")]  # each output, one path a line
    _assert_no_kernel_left(before, runtime)
    for quarter in EIGHT:
        facts = nbformat.read(out / f"quarterly_report_{quarter}.ipynb", as_version=4).metadata["mangrove_nb"]
        assert facts["quarter"] == quarter and re.fullmatch(r"[0-9a-f]{64}", facts["fingerprint"])
    assert sorted(p.name for p in out.iterdir()) == sorted(f"quarterly_report_{q}.{e}" for q in EIGHT
                                                           for e in ("html", "ipynb", "snapshot"))
    # Progress names each report's quarter; a summary line ends the run.
    assert "2025Q4 [1/" in captured.err and re.search(r"8 reports rendered in \d+\.\d s\.", captured.err)
    # Each API answer was read once across the eight reports: a quarter's batches are also the next quarter's
    # previous quarter and the year-later quarter's year ago (the project is also checked before anything runs).
    reads = Counter((e.method, e.path, e.query) for e in emulator.exchanges if e.method == "GET")
    twice = {path for (_, path, _), count in reads.items() if count > 1}
    assert twice <= {p for p in twice if p.endswith("/projects/123")}, sorted(twice)
    details = [path for (_, path, _) in reads if re.search(r"/batches/bat_[^/]+$", path)]
    assert len(details) > 20  # 2023 (the year before 2024Q1..Q4) has no batches; 2024 has them all
    assert emulator.count("list-all-ledgers") == 1
    assert emulator.count("create-batch-generation") == 0
    # 2024Q4 against 2024Q3 and 2023Q4: the same numbers a report of its own gives (checked there); here, that the
    # reports are of their own quarters: 2024 is generated, 2025 is not.
    q4 = nbformat.read(out / "quarterly_report_2024Q4.ipynb", as_version=4).metadata["mangrove_nb"]
    q5 = nbformat.read(out / "quarterly_report_2025Q1.ipynb", as_version=4).metadata["mangrove_nb"]
    assert any(row["2024Q4 total"] for row in q4["totals"])
    assert not any(row["2025Q1 total"] for row in q5["totals"])
    # Each report's snapshot holds what that report read, whether the API or the shared cache answered it: 2024Q2's
    # renders again alone (its previous quarter, 2024Q1, was read for the report before it), to the same fingerprint,
    # without a request.
    for quarter in EIGHT:
        manifest = json.loads((out / f"quarterly_report_{quarter}.snapshot" / "manifest.json").read_text())
        assert manifest["period"] == quarter
    answered = len(emulator.exchanges)
    again = render_report(from_snapshot=out / "quarterly_report_2024Q2.snapshot", out_dir=tmp_path / "again",
                          progress=False)
    replayed = nbformat.read(again.ipynb, as_version=4).metadata["mangrove_nb"]
    first = nbformat.read(out / "quarterly_report_2024Q2.ipynb", as_version=4).metadata["mangrove_nb"]
    assert replayed["fingerprint"] == first["fingerprint"] and replayed["summary"] == first["summary"]
    assert len(emulator.exchanges) == answered
    _assert_no_kernel_left(before, runtime)


def test_a_failing_report_in_a_range_stops_it_and_leaves_no_kernel(
        make_emulator: Callable[..., Emulator], runtime: Path, tmp_path: Path) -> None:
    """The first report's setup cell fails (its ledgers' inputs cannot be read) while the second report's kernel is
    already starting: both are stopped, the partial notebook is kept, and the error says what was written."""
    emu = make_emulator()
    emu.faults.fail("ledger-required-inputs", 403, count=100, message="No inputs for you.")
    before = _children()
    with pytest.raises(ReportError) as caught:
        render_reports("2024Q2..2024Q4", out_dir=tmp_path, base_url=emu.url, token=emu.token, progress=False)
    assert str(caught.value).startswith("Report cell 3 of ") and "PermissionDeniedError" in str(caught.value)
    assert caught.value.__notes__ == ["0 of 3 reports were written; the rest were not rendered."]
    _assert_no_kernel_left(before, runtime)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != runtime.name) == [
        "quarterly_report_2024Q2_FAILED.ipynb"]


def test_ctrl_c_in_the_middle_of_a_range_stops_every_kernel_and_keeps_what_was_written(
        emulator: Emulator, runtime: Path, tmp_path: Path) -> None:
    before = _children()
    out = tmp_path / "out"
    with contextlib.redirect_stderr(_InterruptAt("2024Q3 [5/")), pytest.raises(KeyboardInterrupt) as caught:
        render_reports("2024Q2..2024Q4", out_dir=out, base_url=emulator.url, token=emulator.token)
    notes = caught.value.__notes__
    assert notes[0] == f"The partial notebook is at {out / 'quarterly_report_2024Q3_FAILED.ipynb'}."
    assert notes[1] == "1 of 3 reports were written (2024Q2..2024Q2); the rest were not rendered."
    _assert_no_kernel_left(before, runtime)  # the current kernel and the spare one for 2024Q4
    assert sorted(p.name for p in out.iterdir()) == ["quarterly_report_2024Q2.html", "quarterly_report_2024Q2.ipynb",
                                                     "quarterly_report_2024Q3_FAILED.ipynb"]


# --- the range, checked before anything runs -----------------------------------------------------------------------


@pytest.mark.parametrize(("flag", "value", "expected"), [
    ("--quarter", "2025Q4..2024Q1", "ends before it starts: give the earlier quarter first, '2024Q1..2025Q4'"),
    ("--quarter", "2024Q1..2025-03", "mixes a quarter (2024Q1) with a month (2025-03)"),
    ("--quarter", "2010Q1..2025Q4", f"covers 64 quarters; one command renders at most {MAX_REPORTS}: split it, e.g. "
                                    "'2010Q1..2019Q4' then '2020Q1..2025Q4'"),
    ("--quarter", "2023..2025", "is a range of years: give it as --year 2023..2025"),
    ("--quarter", "2025", "'2025' is a year: give it as --year 2025"),
    ("--quarter", "2024Q1..", "give two quarters joined by '..'"),
    ("--quarter", "2024Q1..2025Q5", "Cannot read '2025Q5' as a quarter in the range"),
    ("--year", "2025Q1", "'2025Q1' is a quarter: give it as --quarter 2025Q1"),
    ("--year", "1980..2025", "covers 46 years"),
])
def test_a_bad_range_is_one_line_naming_the_fix_before_anything_runs(
        flag: str, value: str, expected: str, tmp_path: Path, runtime: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MANGROVE_API_URL", "http://127.0.0.1:9/api/v1")  # nothing listens: nothing may be asked
    monkeypatch.setenv("MANGROVE_API_TOKEN", "mgv_" + "x" * 32)
    before = _children()
    assert main(["report", flag, value, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mangrove-nb report: ") and expected in err, err
    assert not (tmp_path / "out").exists() and _children() == before
    assert list(runtime.iterdir()) == []


def test_report_range_lists_the_periods_in_order() -> None:
    assert [p.label for p in report_range("2024Q1..2025Q4")] == EIGHT
    assert [p.label for p in report_range("2024Q3")] == ["2024Q3"]
    assert [p.label for p in report_range("2023..2025", "year")] == ["2023", "2024", "2025"]
    assert [p.label for p in report_range("2015Q1..2024Q4")][-1] == "2024Q4"  # exactly 40
    with pytest.raises(PeriodError):
        report_range("2014Q4..2024Q4")  # 41
    with pytest.raises(ValidationError, match="not both"):
        render_reports("2025Q1", years="2025")
    with pytest.raises(SystemExit) as exited:  # argparse: one or the other
        main(["report", "--quarter", "2025Q1", "--year", "2025"])
    assert exited.value.code == 2


# --- a year --------------------------------------------------------------------------------------------------------


def test_year_2025_renders_the_annual_report_worded_for_a_year(
        emulator: Emulator, runtime: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    with connect_to(emulator.url, emulator.token) as client:
        client.generate("Net Carbon Removal", "2025Q1").wait()  # its model fills Biochar Produced too
        reports = client.reports()  # their names and types are the API's text ("2025Q1 Quarterly Report")
        api_text = {str(v) for column in ("name", "report_type") for v in reports[column].dropna()}
    _use(emulator, monkeypatch)
    before = _children()
    out = tmp_path / "out"
    assert main(["report", "--year", "2025", "--out", str(out)]) == 0
    html = (out / "annual_report_2025.html").read_text(encoding="utf-8")
    assert capsys.readouterr().out.strip() == str(out / "annual_report_2025.html")
    _assert_no_kernel_left(before, runtime)
    nb = nbformat.read(out / "annual_report_2025.ipynb", as_version=4)
    facts = nb.metadata["mangrove_nb"]
    assert facts["quarter"] == "2025" and facts["previous"] == "2024" and facts["year_ago"] == "2024"
    assert "<title>Cascade Biochar Facility: Annual report 2025</title>" in html
    assert "Annual production report for 2025: 1 January 2025 to 31 December 2025 (UTC), compared with 2024." in html
    # One comparison (the year before is the previous year), twelve months, and every word says year.
    summary = next(o for c in nb.cells if c.get("id") == "summary" for o in c.outputs if "text/html" in o.data)
    headers = re.findall(r"<th[^>]*>(.*?)</th>", summary.data["text/html"])
    assert headers[:4] == ["Ledger", "2025 total", "vs 2024", "Coverage"]
    ncr = next(row for row in facts["summary"] if row["Ledger"] == "Net Carbon Removal")
    assert ncr["Months"] == 12 and ncr["Generated"] == 3 and ncr["Previous generated"] == 12
    totals = next(row for row in facts["totals"] if row["Ledger"] == "Net Carbon Removal")
    assert [m for m in totals if re.fullmatch(r"2025-\d\d", m)] == [f"2025-{m:02d}" for m in range(1, 13)]
    text = re.sub(r"<[^>]+>", " ", re.sub(r"data:image/[^\"']+", "", html))
    for value in sorted(api_text, key=len, reverse=True):
        text = text.replace(value, " ")
    assert not re.search(r"\bquarter", text, re.IGNORECASE), re.findall(r".{60}quarter.{60}", text, re.I)[:3]
    assert "this year and the one before" in text and "For each month of the year" in text
    assert "3 of 12 months" in text and "two years" in text


def test_build_report_words_the_text_cells_for_a_year_and_leaves_the_code_alone() -> None:
    quarterly, annual = build_report("2025Q1"), build_report("2025")
    for before, after in zip(quarterly.cells, annual.cells, strict=True):
        if after.cell_type == "markdown":
            assert not re.search(r"\bquarter", after.source, re.IGNORECASE), after.source
        elif after.get("id") != "injected-parameters":
            assert after.source == before.source
    injected = next(c for c in annual.cells if c.get("id") == "injected-parameters")
    assert injected.source == '# Parameters\nquarter = "2025"\n'
    assert json.dumps(annual.metadata["papermill"]["parameters"]) == '{"quarter": "2025"}'


def test_a_range_generates_every_missing_quarter_before_any_report_reads(
        emulator: Emulator, runtime: Path, tmp_path: Path) -> None:
    """--generate-missing over a range generates first, then reads: no report shows data older than a generation
    (the read cache would otherwise keep a listing from before the next quarter's generation)."""
    out = tmp_path / "out"
    paths = render_reports(["2025Q1", "2025Q2"], out_dir=out, base_url=emulator.url, token=emulator.token,
                           ledgers=["Net Carbon Removal"], generate_missing=True, progress=False)
    assert [p.html.name for p in paths] == [f"quarterly_report_{q}_net-carbon-removal.html"
                                            for q in ("2025Q1", "2025Q2")]
    assert emulator.count("create-batch-generation") == 2
    q1, q2 = (nbformat.read(p.ipynb, as_version=4).metadata["mangrove_nb"] for p in paths)
    row: dict[str, Any] = next(r for r in q2["summary"] if r["Ledger"] == "Net Carbon Removal")
    assert row["Generated"] == 2 and row["Previous generated"] == 3  # May 2025 was a shutdown: no data
    assert next(r for r in q1["summary"] if r["Ledger"] == "Net Carbon Removal")["Generated"] == 3


def test_the_annual_pdf_and_html_show_every_month_and_the_years_total(
        emulator: Emulator, runtime: Path, tmp_path: Path) -> None:
    """The annual PDF cut "Totals by month", the computation and coverage after June (twelve month columns and the
    total); the HTML showed up to August. A year's monthly tables now have a row per month: the PDF's text holds
    every month, December's values and the year's total, and every table of the HTML has all its columns."""
    from pypdf import PdfReader

    from mangrove_nb.reports import pdf

    try:
        pdf.pdf_browser()
    except ReportError as exc:
        pytest.skip(f"no PDF printing here: {exc}")
    with connect_to(emulator.url, emulator.token) as client:
        ids = dict(zip(client.ledgers()["name"], client.ledgers()["id"], strict=True))
        december = {name: client.batches(ids[name], "2024-12") for name in ("Net Carbon Removal", "Biochar Produced")}
    paths = render_report(year=2024, out_dir=tmp_path, base_url=emulator.url, token=emulator.token, project=123,
                          formats=("html", "pdf"), progress=False)
    assert paths.pdf is not None
    text = " ".join(" ".join(page.extract_text().replace("\u00a0", " ").split()) for page in PdfReader(paths.pdf).pages)
    facts = nbformat.read(paths.ipynb, as_version=4).metadata["mangrove_nb"]  # the report's own totals
    for name, batches in december.items():
        value = float(batches.loc[batches["state"] == "complete", "output_value"].sum())
        total = next(r for r in facts["totals"] if r["Ledger"] == name)["2024 total"]
        assert re.search(rf"2024-12 [^A-Za-z]*{re.escape(f'{value:,.3f}')}", text), (name, value)
        assert f"{total:,.3f}" in text, (name, total)
    assert "2024 total" in text and "Month Net Carbon Removal (t)" in text
    for month in range(1, 13):  # every month a row of the totals, the computation and the coverage
        assert len(re.findall(rf"\b2024-{month:02d} ", text)) >= 3, month
    html = paths.html.read_text(encoding="utf-8")
    nb = nbformat.read(paths.ipynb, as_version=4)
    for cell in ("totals", "net", "coverage"):
        markup = "\n".join(o["data"]["text/html"] for c in nb.cells if c.get("id") == cell
                           for o in c.get("outputs", []) if "text/html" in o.get("data", {}))
        headers = re.findall(r"<th[^>]*>(.*?)</th>", markup)
        assert headers[0] == "Month" and len(headers) <= 7, (cell, headers)
        assert markup.count("<tr") >= 13, cell
    assert "2024 total" in html


# --- review 14b: nothing printed after an interrupt's one line, what blocked a range's generation -----------------


def test_what_an_interrupt_left_on_nbclients_loop_is_cancelled_and_silent_before_a_kernel_stops(
        caplog: pytest.LogCaptureFixture) -> None:
    """Ctrl-C during a range printed asyncio's 'Task exception was never retrieved ... DeadKernelError' (or a
    KeyboardInterrupt traceback and nbclient's AssertionError) after the command's one line: the cell's tasks,
    left pending on nbclient's event loop by the interrupt, ran on when the kernels were stopped, and failed there
    unobserved. Now they are cancelled first, and their loop's messages silenced meanwhile."""
    import asyncio
    import gc
    import logging

    from jupyter_core.utils import ensure_event_loop, run_sync
    from nbclient.exceptions import DeadKernelError

    from mangrove_nb.reports import run

    loop = ensure_event_loop()  # the loop nbclient's calls run on, in this thread

    async def cell() -> None:  # an interrupted cell: its kernel is gone, so it fails when it runs again
        await asyncio.sleep(0.05)
        raise DeadKernelError("Kernel died")

    async def shut_down() -> None:  # what stopping the kernel runs on the same loop
        await asyncio.sleep(0.3)

    class Interrupted:
        km = object()
        _cleanup_kernel = staticmethod(run_sync(shut_down))

    loop.create_task(cell())  # left pending, referenced by no one, as an interrupt leaves nbclient's tasks
    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        run._stop_kernel(Interrupted())
        gc.collect()
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []
    assert not [task for task in asyncio.all_tasks(loop) if not task.done()]
    assert loop.get_exception_handler() is None  # restored


def test_a_generation_that_fails_mid_range_says_which_period_blocked(monkeypatch: pytest.MonkeyPatch,
                                                                    emulator: Emulator, tmp_path: Path) -> None:
    """--quarter 2025Q1..2025Q4 --generate-missing: 2025Q4's missing reading ended with '0 of 4 reports were written'
    after Q1 to Q3 had been generated, without a word on which quarter blocked or what had been generated."""
    from mangrove_nb.errors import TaskFailedError
    from mangrove_nb.reports import run

    generated: list[str] = []

    def generate(client: Any, period: Any, ledgers: Any, *, progress: bool) -> None:
        if period.label == "2025Q4":
            raise TaskFailedError(task_id=7, error_message="No data point for required input in 2025-11")
        generated.append(period.label)

    monkeypatch.setattr(run, "_generate_for_report", generate)
    with pytest.raises(TaskFailedError) as caught:
        render_reports("2025Q1..2025Q4", out_dir=tmp_path, base_url=emulator.url, token=emulator.token,
                       generate_missing=True, progress=False)
    assert generated == ["2025Q1", "2025Q2", "2025Q3"]
    assert caught.value.__notes__ == [
        "Generating stopped at 2025Q4: what was missing in 2025Q1..2025Q3 was generated, and no report was rendered; "
        "render 2025Q1..2025Q3 alone, or fix 2025Q4 and render the range again.",
        "0 of 4 reports were written; the rest were not rendered."]
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_ctrl_c_while_a_kernel_stops_still_stops_it_then_goes_on() -> None:
    """Ctrl-C just as the last cell finished landed in the kernel's shutdown: the kernel outlived the command ('Parent
    appears to have exited') and its connection file stayed in TMPDIR. The stop is tried again, then the interrupt
    goes on."""
    from mangrove_nb.reports import run

    calls: list[str] = []

    class Stopping:
        km: object | None = object()

        def _cleanup_kernel(self) -> None:
            calls.append("cleanup")
            if len(calls) == 1:
                raise KeyboardInterrupt  # Ctrl-C halfway through the shutdown
            self.km = None

    kernel = Stopping()
    with pytest.raises(KeyboardInterrupt):
        run._stop_kernel(kernel)
    assert calls == ["cleanup", "cleanup"] and kernel.km is None
