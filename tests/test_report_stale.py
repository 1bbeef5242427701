"""Files of a report's name that a render did not write (an older ``.pdf`` or ``.xlsx``, or a snapshot folder, beside
a fresh ``.html``) are left as they are, and named: one warning line from ``mangrove-nb report`` in the command's
words, a ``StaleReportWarning`` and ``ReportPaths.stale`` in Python. Nothing of the user's is deleted.

The two renders run against the emulator (one kernel each); the rules of what is stale are checked without one.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from mangrove_nb.cli import main
from mangrove_nb.emulator import Emulator
from mangrove_nb.reports import ReportPaths, render_report
from mangrove_nb.reports.run import StaleReportWarning, _warn_stale
from mangrove_nb.reports.snapshot import load_snapshot

pytestmark = pytest.mark.slow

QUARTER = "2024Q4"
STEM = f"quarterly_report_{QUARTER}"


def _plant(out: Path, *, snapshot: bool) -> dict[Path, bytes]:
    """An earlier render's files (other data): a PDF, a workbook and, when asked, a snapshot folder."""
    out.mkdir(parents=True)
    older = {out / f"{STEM}.pdf": b"%PDF-1.7 an older report", out / f"{STEM}.xlsx": b"PK an older workbook"}
    if snapshot:
        (out / f"{STEM}.snapshot").mkdir()
        older[out / f"{STEM}.snapshot" / "manifest.json"] = b"{}"
    for path, data in older.items():
        path.write_bytes(data)
    return older


def test_the_command_names_each_older_file_it_did_not_rewrite_and_leaves_it(
        emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`report --out reports` (html) and `--snapshot` where an earlier run wrote the PDF and the workbook: one
    line names both and says how to refresh them (--format html,pdf,xlsx) or to remove them; they stay as they were;
    the snapshot folder is printed like every file asked for."""
    monkeypatch.setenv("MANGROVE_API_URL", emulator.url)
    monkeypatch.setenv("MANGROVE_API_TOKEN", emulator.token)
    monkeypatch.delenv("MANGROVE_PROJECT_ID", raising=False)
    out = tmp_path / "reports"
    older = _plant(out, snapshot=False)
    assert main(["report", "--quarter", QUARTER, "--out", str(out), "--snapshot"]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [str(out / f"{STEM}.html"), str(out / f"{STEM}.snapshot")]
    assert (out / f"{STEM}.snapshot" / "manifest.json").is_file()
    warned = [line for line in captured.err.splitlines() if "⚠" in line]
    assert warned == [f"mangrove-nb report: ⚠ {out / STEM}.pdf, {out / STEM}.xlsx were left from an earlier render "
                      "(not rendered this time) and may show other data than this report: render them again with "
                      "--format html,pdf,xlsx, or remove them."]
    assert "formats=" not in captured.err and "snapshot=True" not in captured.err  # the command's words
    assert all(path.read_bytes() == data for path, data in older.items())


def test_python_gets_a_warning_and_the_stale_paths_and_a_rendered_format_is_rewritten(
        emulator: Emulator, tmp_path: Path) -> None:
    """`render_report(formats="html,xlsx")` beside an older PDF, workbook and snapshot: the workbook is rewritten,
    the PDF and the snapshot are named in ``ReportPaths.stale`` and a ``StaleReportWarning`` in Python's words."""
    out = tmp_path / "reports"
    older = _plant(out, snapshot=True)
    with pytest.warns(StaleReportWarning) as caught:
        paths = render_report(QUARTER, out_dir=out, base_url=emulator.url, token=emulator.token, formats="html,xlsx",
                              progress=False)
    assert paths.stale == (out / f"{STEM}.pdf", out / f"{STEM}.snapshot") and paths.snapshot is None
    [warning] = [w.message for w in caught if isinstance(w.message, StaleReportWarning)]
    assert warning.files == paths.stale and warning.formats == ("html", "pdf", "xlsx") and warning.snapshot
    assert str(warning) == (f"⚠ {out / STEM}.pdf, {out / STEM}.snapshot were left from an earlier render (not "
                            "rendered this time) and may show other data than this report: render them again with "
                            "formats='html,pdf,xlsx' and snapshot=True, or remove them.")
    assert paths.xlsx is not None and paths.xlsx.read_bytes()[:2] == b"PK"
    assert paths.xlsx.read_bytes() != older[out / f"{STEM}.xlsx"]  # asked for: written anew
    for path in (out / f"{STEM}.pdf", out / f"{STEM}.snapshot" / "manifest.json"):
        assert path.read_bytes() == older[path]  # not asked for: left as it was


def test_what_counts_as_stale(tmp_path: Path) -> None:
    """Only files of the report's own name in formats not rendered now; a symlink counts (it is there, whatever it
    points at); the snapshot being replayed, or the one just taken, is not stale; nothing stale, no warning."""
    stem = tmp_path / STEM
    written = ReportPaths(stem.with_suffix(".ipynb"), stem.with_suffix(".html"))
    (tmp_path / f"{STEM}_net-carbon-removal.pdf").write_bytes(b"another report's PDF")
    (tmp_path / "quarterly_report_2025Q1.xlsx").write_bytes(b"another quarter's workbook")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        assert _warn_stale(written, stem, ("html",), replay=None).stale == ()
    (tmp_path / f"{STEM}.pdf").symlink_to(tmp_path / "nowhere.pdf")
    with pytest.warns(StaleReportWarning, match=r"formats='html,pdf', or remove it"):
        assert _warn_stale(written, stem, ("html",), replay=None).stale == (tmp_path / f"{STEM}.pdf",)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _warn_stale(written, stem, ("html", "pdf"), replay=None).stale == ()
    folder = tmp_path / f"{STEM}.snapshot"
    folder.mkdir()
    (folder / "manifest.json").write_text('{"format": "mangrove_nb.snapshot/1", "period": "2024Q4", "base_url": '
                                          '"http://127.0.0.1:9/api/v1", "fingerprint": "0", "responses": {"sha256": '
                                          '"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}}',
                                          encoding="utf-8")
    (folder / "responses.jsonl").write_bytes(b"")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _warn_stale(written, stem, ("html", "pdf"), replay=load_snapshot(folder)).stale == ()
        assert _warn_stale(written._replace(snapshot=folder), stem, ("html", "pdf"), replay=None).stale == ()
    with pytest.warns(StaleReportWarning, match=r"snapshot=True"):
        assert _warn_stale(written, stem, ("html", "pdf"), replay=None).stale == (folder,)
