"""The README's Python snippets run as written, against the emulator, and say what they promise: the quick start
(with the three environment variables set) and the in-process emulator. A reviewer found the quick start's
``client.calculations(new)`` mixed Biochar Produced's tonnes into the net-removal rule, and the in-process
snippet's client without a project."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

import mangrove_nb as mnb

README = Path(__file__).resolve().parents[1] / "README.md"
NCR = "Net Carbon Removal"


def python_block_after(marker: str) -> str:
    text = README.read_text(encoding="utf-8")
    after = text[text.index(marker):]
    return re.search(r"```python\n(.*?)```", after, flags=re.DOTALL).group(1)  # type: ignore[union-attr]


def test_the_quick_start_runs_and_its_net_removal_rule_holds(emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in (("MANGROVE_API_URL", emulator.url), ("MANGROVE_API_TOKEN", emulator.token),
                        ("MANGROVE_PROJECT_ID", "123"), ("MANGROVE_NB_QUIET", "1")):
        monkeypatch.setenv(name, value)
    code = python_block_after("With those variables set")
    namespace: dict[str, Any] = {}
    exec(compile(code, "README quick start", "exec"), namespace)  # noqa: S102 - our own README
    new, task, client = namespace["new"], namespace["task"], namespace["client"]
    try:
        # The calculations line, as written, and the README's rule for a net-removal ledger's batch.
        line = next(ln for ln in code.splitlines() if ln.startswith("client.calculations("))
        calcs = eval(line.split("#")[0], namespace)  # noqa: S307 - our own README
        emission = calcs["lca_role"] == "emission"
        net = calcs.loc[~emission, "value"].sum() - calcs.loc[emission, "value"].sum()
        removals = new.loc[new["ledger_name"] == NCR, "output_value"].sum()
        assert set(new["ledger_name"]) == {NCR, "Biochar Produced"}  # what the comment says wait() returns
        assert net == pytest.approx(removals, abs=1e-3) and removals > 0
        # The re-attach call it shows returns the same batches.
        again = eval(task.reattach, {"client": client})  # noqa: S307 - our own message
        assert sorted(again["id"]) == sorted(new["id"])
    finally:
        client.close()


def test_the_in_process_emulator_snippet_reaches_the_project() -> None:
    code = python_block_after("From Python alone").replace("    ...\n", "    project = client.project()\n")
    namespace: dict[str, Any] = {"mnb": mnb}
    exec(compile(code, "README in-process emulator", "exec"), namespace)  # noqa: S102 - our own README
    assert namespace["project"].id == "123"
