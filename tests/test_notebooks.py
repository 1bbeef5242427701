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


def execute(path: Path, emu: Emulator) -> nbformat.NotebookNode:
    notebook = nbformat.read(path, as_version=4)
    env = {**os.environ, "MANGROVE_API_URL": emu.url, "MANGROVE_API_TOKEN": emu.token, "MANGROVE_NB_QUIET": "1",
           "MANGROVE_PROJECT_ID": "123"}
    client = NotebookClient(notebook, timeout=180, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute(env=env)
    return notebook


def outputs_text(notebook: nbformat.NotebookNode) -> str:
    return json.dumps([cell.get("outputs", []) for cell in notebook.cells])


@pytest.mark.parametrize("name", ["01_explore.ipynb", "02_generate_batches.ipynb", "03_quarterly_report.ipynb"])
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
