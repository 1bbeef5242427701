"""The notebooks users open first run top to bottom against the emulator, in a real kernel."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from mangrove_nb.emulator import Emulator

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def execute(path: Path, emu: Emulator, *, replace: tuple[str, str] | None = None) -> nbformat.NotebookNode:
    """Run the notebook at ``path`` in a kernel against ``emu``; ``replace`` = (old, new) edits a cell first, as a
    user would (``SUBMIT = False`` to ``SUBMIT = True``), and must match exactly one cell."""
    notebook = nbformat.read(path, as_version=4)
    if replace is not None:
        matching = [cell for cell in notebook.cells if replace[0] in cell.source]
        assert len(matching) == 1, f"{replace[0]!r} is in {len(matching)} cells of {path.name}"
        matching[0].source = matching[0].source.replace(*replace)
    env = {**os.environ, "MANGROVE_API_URL": emu.url, "MANGROVE_API_TOKEN": emu.token, "MANGROVE_NB_QUIET": "1",
           "MANGROVE_PROJECT_ID": "123"}
    client = NotebookClient(notebook, timeout=180, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute(env=env)
    return notebook


def outputs_text(notebook: nbformat.NotebookNode) -> str:
    return json.dumps([cell.get("outputs", []) for cell in notebook.cells])


@pytest.mark.parametrize("name", ["01_explore.ipynb", "02_generate_batches.ipynb", "03_quarterly_report.ipynb",
                                  "04_submit_report.ipynb"])
def test_committed_notebooks_have_no_outputs_and_no_secrets(name: str) -> None:
    path = NOTEBOOKS / name
    if not path.exists():
        pytest.skip(f"{name} is not in the repository yet")
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{name} was committed with outputs"
            assert not re.search(r"token\s*=\s*['\"]", cell.source), f"{name} holds a token literal"
    assert "Bearer" not in path.read_text()


def test_explore_runs_top_to_bottom(make_emulator: Callable[..., Emulator]) -> None:
    emu = make_emulator(token="canary-explore-5f1d")
    notebook = execute(NOTEBOOKS / "01_explore.ipynb", emu)
    text = outputs_text(notebook)
    assert "Net Carbon Removal" in text and "image/png" in text
    assert emu.token not in text
    assert emu.count("create-batch-generation") == 0


def test_generate_runs_top_to_bottom_twice_and_generates_once(make_emulator: Callable[..., Emulator]) -> None:
    """Run all cells, then run all again: the second run finds nothing to generate and says so. The Q4 section
    sends nothing: it shows the refusals of a skip (what it would drop) and the calculations."""
    emu = make_emulator(token="canary-generate-9a2e")
    notebook = execute(NOTEBOOKS / "02_generate_batches.ipynb", emu)
    text = outputs_text(notebook)
    assert emu.count("create-batch-generation") == 1  # Q1 from code; the form waits for a click
    assert "NCR-2025-01" in text and "image/png" in text
    assert "would apply to every month of 2025Q4" in text
    assert "2025-11 has 3 reading(s) of Electricity Consumption" in text and "Gross removal" in text
    assert emu.token not in text
    again = outputs_text(execute(NOTEBOOKS / "02_generate_batches.ipynb", emu))
    assert emu.count("create-batch-generation") == 1
    assert "Nothing to generate for 2025Q1" in again
    assert "Error" not in again.replace("TaskFailedError", "").replace("PreconditionError", "")
    assert sys.executable  # the kernel is this interpreter's (jupyter_client's native python3 kernel)


def test_submit_report_runs_top_to_bottom_and_submits_once_only_when_asked(
        make_emulator: Callable[..., Emulator]) -> None:
    """Run all cells as committed: the quarter is generated, the form and the plan are shown, nothing is filled or
    submitted. Then with ``SUBMIT = True``: one fill, one submission, the allocation and the balances at 0. Then
    again: the report is complete, nothing more is sent."""
    emu = make_emulator(token="canary-submit-7c3d")
    path = NOTEBOOKS / "04_submit_report.ipynb"
    text = outputs_text(execute(path, emu))
    assert emu.count("create-batch-generation") == 1  # 2025Q1, which the emulator does not have yet
    assert emu.count("update-report") == 0 and emu.count("submit-report") == 0  # the form waits for a click
    assert "NCR-2025-01" in text and "3 added, 0 removed, 0 kept" in text and "Nothing has been sent" in text
    assert "application/vnd.jupyter.widget-view+json" in text and "Registry report" in text  # the form
    assert "status=draft" in text and emu.token not in text

    submitted = outputs_text(execute(path, emu, replace=("SUBMIT = False", "SUBMIT = True")))
    assert emu.count("update-report") == 1 and emu.count("submit-report") == 1
    assert "status=complete" in submitted and "allocated 238.534 t" in submitted
    assert "ledger_balance now" in submitted and "Do not submit it again" in submitted
    assert emu.token not in submitted

    again = outputs_text(execute(path, emu, replace=("SUBMIT = False", "SUBMIT = True")))
    assert emu.count("update-report") == 1 and emu.count("submit-report") == 1
    assert emu.count("create-batch-generation") == 1
    assert "status=complete" in again and "Traceback" not in again


def test_submit_report_as_committed_says_plainly_that_nothing_was_submitted(
        make_emulator: Callable[..., Emulator]) -> None:
    """With ``SUBMIT = False`` (as committed) the outputs say that nothing was filled or submitted, that the balances
    are unchanged (the table shows them unchanged), and the reconcile cell does not call submitting "safe" for a
    report never submitted. With ``SUBMIT = True`` it submits only what the plan showed (``expected=plan``)."""
    emu = make_emulator(token="canary-submit-false-41b0")
    path = NOTEBOOKS / "04_submit_report.ipynb"
    notebook = execute(path, emu)
    text = outputs_text(notebook)
    assert emu.count("update-report") == 0 and emu.count("submit-report") == 0
    assert "SUBMIT is False: this cell filled and submitted nothing" in text
    assert "nothing was allocated, so the balances are unchanged" in text
    assert "Nothing to reconcile" in text and "Submitting again is safe" not in text
    assert emu.token not in text
    sources = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    assert "client.submit_report(report_id, expected=plan)" in sources
