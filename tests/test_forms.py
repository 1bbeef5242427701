"""The notebook forms, driven headless against the emulator: values set, buttons ``click()``-ed.

Each test reads the outcome where an analyst would see it (the widgets' values, the static HTML left in the
output) and where code would (``form.result``, ``form.error``, ``form.task``), and counts what the emulator
received, so "exactly one generation" is measured, not assumed.
"""

from __future__ import annotations

import csv
import html
import json
import logging
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import date
from html.parser import HTMLParser
from typing import Any

import ipywidgets as widgets
import pytest
import requests

import mangrove_nb as mnb
from mangrove_nb import forms
from mangrove_nb.emulator import Emulator
from mangrove_nb.forms import BatchExplorer, GenerationForm, PeriodPicker

HOSTILE = "<img src=x onerror=alert(1)>"
HOSTILE_UNIT = "<script>alert(1)</script>"
PNG_URI = "data:image/png;base64,"
# Fast polling for the emulator's near-instant generation (the defaults poll about once a second).
FAST_POLL = {"poll_min_interval": 0.05, "poll_interval": 0.1, "poll_max_interval": 0.2}


@pytest.fixture
def connect() -> Iterator[Callable[[Emulator], mnb.Client]]:
    """Clients for an emulator, polling fast and showing no progress of their own; closed at the end."""
    clients: list[mnb.Client] = []

    def make(emu: Emulator) -> mnb.Client:
        client = mnb.connect(emu.token, emu.url, show_progress=False, **FAST_POLL)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(emulator: Emulator, connect: Callable[[Emulator], mnb.Client]) -> mnb.Client:
    return connect(emulator)


def ledger_id(client: mnb.Client, name: str) -> str:
    ledgers = client.ledgers()
    return str(ledgers.loc[ledgers["name"] == name, "id"].item())


def run_to_confirmation(form: GenerationForm) -> None:
    form.preview_button.click()
    assert form.error is None, form.error
    form.generate_button.click()
    assert form.state == "confirming", form.status.value


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def every_widget(root: Any) -> list[Any]:
    """Every widget of a form's tree, with the Layout and Style widgets they hold."""
    found, stack = [], [root]
    while stack:
        widget = stack.pop()
        found.append(widget)
        stack.extend(getattr(widget, "children", ()))
        found.extend(w for w in (getattr(widget, "layout", None), getattr(widget, "style", None)) if w is not None)
    return found


def html_values(root: Any) -> list[str]:
    return [w.value for w in every_widget(root) if isinstance(w, widgets.HTML | widgets.HTMLMath)]


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag


def assert_safe_html(text: str) -> None:
    """No element or attribute that API text could have smuggled in: no script, no on* handler, and the only
    images are the forms' own PNG data URIs."""
    parser = _Tags()
    parser.feed(text)
    parser.close()
    for tag, attrs in parser.tags:
        assert tag not in ("script", "iframe", "object", "embed", "svg"), text
        assert not [name for name in attrs if name.lower().startswith("on")], (tag, attrs)
        if tag == "img":
            assert (attrs.get("src") or "").startswith(PNG_URI), (tag, attrs)


def all_state_text(root: Any) -> str:
    parts = []
    for widget in every_widget(root):
        state = widget.get_state()
        for value in state.values():
            if isinstance(value, bytes | memoryview):
                parts.append(bytes(value).decode("latin-1"))
        parts.append(json.dumps(state, default=repr))
    return "\n".join(parts)


# --- the period picker --------------------------------------------------------------------------------------


def test_period_picker_modes_set_from_code_and_errors_shown() -> None:
    picker = PeriodPicker("2025Q1")
    assert (picker.mode.value, picker.period.label) == ("Quarter", "2025Q1")
    seen: list[str] = []
    picker.on_change(lambda p: seen.append(p.value.label if p.value else "invalid"))

    picker.value = "2025-02"
    assert (picker.mode.value, picker.month.value, picker.period.label) == ("Month", 2, "2025-02")
    picker.value = 2024
    assert (picker.mode.value, picker.period.label) == ("Year", "2024")
    picker.value = ("2025-01-10", "2025-02-20")
    assert picker.mode.value == "Custom range"
    assert (picker.period.start.isoformat(), picker.period.end.isoformat()) == (
        "2025-01-10T00:00:00+00:00", "2025-02-20T23:59:59+00:00")
    assert seen == ["2025-02", "2024", "2025-01-10/2025-02-20"]  # one notification per setting

    picker.end.value = date(2025, 1, 1)  # before the start
    with pytest.raises(mnb.PeriodError, match="before it starts"):
        _ = picker.period
    assert picker.value is None
    assert "before it starts" in picker.error_html.value
    picker.end.value = None
    with pytest.raises(mnb.PeriodError, match="both dates"):
        _ = picker.period
    assert "both dates" in picker.error_html.value

    picker.value = "2025Q3"
    picker.mode.value = "Custom range"  # starts from the quarter chosen before
    assert (picker.start.value, picker.end.value) == (date(2025, 7, 1), date(2025, 9, 30))
    assert picker.error_html.value == ""
    picker.value = "1999Q4"  # a year outside the list is added
    assert picker.period.label == "1999Q4"
    assert picker.start.layout.display == "none" and picker.quarter.layout.display == ""


# --- generation ---------------------------------------------------------------------------------------------


def test_generate_is_enabled_only_after_a_preview_of_the_same_selection(client: mnb.Client) -> None:
    form = GenerationForm(client, "Net Carbon Removal", "2025Q1")
    assert form.generate_button.disabled
    with pytest.raises(mnb.PreconditionError, match="Preview"):
        form.generate()

    frame = form.preview()
    assert frame["count"].tolist() == [3, 3]  # NCR and Biochar Produced run together
    assert not form.generate_button.disabled
    assert "Biochar Produced" in form.preview_html.value and "Net Carbon Removal" in form.preview_html.value

    form.period_picker.value = "2025Q2"  # a different period voids the preview
    assert form.generate_button.disabled
    with pytest.raises(mnb.PreconditionError):
        form.generate()
    form.period_picker.value = "2025Q1"  # even the same period again needs a new preview
    assert form.generate_button.disabled

    form.preview_button.click()
    form.generate_button.click()
    assert form.confirmation == "Create 3 batches on Net Carbon Removal and 3 on Biochar Produced for 2025Q1?"
    assert html.escape(form.confirmation) in form.confirm_html.value
    assert not form.confirm_button.disabled and form.confirm_box.layout.display == ""
    form.cancel_button.click()
    assert form.state == "previewed" and form.confirm_box.layout.display == "none"
    form.generate_button.click()
    form.ledger.value = ledger_id(client, "Biochar Produced")  # changing the ledger withdraws the question
    assert form.state == "previewed" and form.confirm_button.disabled and form.generate_button.disabled
    with pytest.raises(mnb.PreconditionError, match="Nothing to confirm"):
        form.confirm()
    assert form.task is None


def test_double_clicks_start_one_generation_and_progress_reaches_100(emulator: Emulator,
                                                                     client: mnb.Client) -> None:
    form = GenerationForm(client, "Net Carbon Removal", "2025Q1")
    run_to_confirmation(form)
    expected = int(form.preview_frame["count"].sum())
    form.generate_button.click()  # a double click on Generate asks once
    form.confirm_button.click()
    form.confirm_button.click()  # a double click on Confirm
    form.generate_button.click()  # and Generate again while it runs
    assert form.confirm() is form.task  # confirming from code while it runs starts nothing either
    result = form.wait(timeout=20)

    assert emulator.count("create-batch-generation") == 1
    assert form.state == "done" and form.error is None
    assert form.progress.value == 100
    assert len(result) == expected == 6 and form.result is result
    assert set(result["tracking_id"]) == {f"{p}-2025-0{m}" for p in ("NCR", "BCP") for m in (1, 2, 3)}
    for tracking_id in result["tracking_id"]:
        assert tracking_id in form.result_html.value and tracking_id in form.static_html
    assert bytes(form.plot.value).startswith(b"\x89PNG") and form.plot.layout.display == ""
    assert PNG_URI in form.static_html and "<table>" in form.static_html
    assert f"Task {form.task.id} complete" in form.static_html

    # Finished: Generate is off until a new preview, and that preview finds nothing left.
    assert form.generate_button.disabled
    with pytest.raises(mnb.PreconditionError):
        form.generate()
    form.preview_button.click()
    assert form.preview_frame["count"].sum() == 0 and form.generate_button.disabled
    assert "Nothing to generate" in form.status.value
    assert emulator.count("create-batch-generation") == 1


def test_rerunning_the_cell_does_not_start_a_second_generation(make_emulator: Callable[..., Emulator],
                                                               connect: Callable[[Emulator], mnb.Client]) -> None:
    emu = make_emulator(batch_seconds=0.5)
    client = connect(emu)
    first = GenerationForm(client, "Net Carbon Removal", "2025Q1")
    run_to_confirmation(first)
    first.confirm_button.click()
    assert first.state == "running"

    again = GenerationForm(client, "Net Carbon Removal", "2025Q1")  # the cell run a second time
    again.preview_button.click()
    assert again.preview_frame["count"].sum() > 0  # the batches are not written yet: the preview still counts
    again.generate_button.click()
    again.confirm_button.click()
    assert again.task is None
    assert isinstance(again.error, mnb.PreconditionError)
    assert f"client.task({first.task.id!r}).wait()" in html.unescape(again.status.value)

    # Biochar Produced has a model of its own, but the running task writes it too: the form refuses that as
    # well (the client's own check only knows the ledger it was asked to generate).
    other = GenerationForm(client, "Biochar Produced", "2025Q1")
    run_to_confirmation(other)
    other.confirm_button.click()
    assert other.task is None and isinstance(other.error, mnb.PreconditionError), other.status.value
    assert f"Task {first.task.id}" in other.status.value

    first.wait(timeout=20)
    assert emu.count("create-batch-generation") == 1
    assert len(first.result) == 6


def test_a_ledger_without_a_model_is_listed_but_cannot_be_generated(emulator: Emulator,
                                                                    client: mnb.Client) -> None:
    form = GenerationForm(client, "Credits Issued", "2025Q1")
    labels = dict(form.ledger.options)
    assert "Credits Issued (tCO2e) — no model" in labels
    assert "Net Carbon Removal (t) — Biochar Carbon Removal Model" in labels
    assert "no model linked" in form.model_html.value and "cannot be generated" in form.model_html.value
    assert form.preview_button.disabled and form.generate_button.disabled
    with pytest.raises(mnb.PreconditionError, match="no model"):
        form.preview()
    form.preview_button.click()
    assert isinstance(form.error, mnb.PreconditionError) and "no model linked" in form.status.value
    assert emulator.count("generate-preview") == 0
    assert emulator.count("create-batch-generation") == 0


def test_manual_select_inputs_use_the_chosen_candidates(emulator: Emulator, client: mnb.Client) -> None:
    form = GenerationForm(client, "Biochar Applied to Soil", "2024Q1")
    assert form.candidates_box.layout.display == ""
    assert "manual select" in form.inputs_html.value and "mnb-manual" in form.inputs_html.value
    labels = [label for label, _ in form.candidates.options]
    assert len(labels) == 3 and labels[0].startswith("BCP-2024-01 · 2024-01 · ") and labels[0].endswith(" t")

    form.preview_button.click()  # nothing chosen yet
    assert isinstance(form.error, mnb.PreconditionError) and "choose at least one data point" in form.status.value
    chosen = [value for _, value in form.candidates.options[:2]]
    form.candidates.value = tuple(chosen)
    assert form.preview()["count"].tolist() == [2]
    form.candidates.value = tuple(chosen[:1])  # other data points: preview again
    assert form.generate_button.disabled
    form.candidates.value = tuple(chosen)
    form.preview_button.click()
    form.generate_button.click()
    assert form.confirmation == ("Create 2 batches on Biochar Applied to Soil for 2024Q1 using 2 selected "
                                 "data points?")
    form.confirm_button.click()
    result = form.wait(timeout=20)
    assert len(result) == 2 and set(result["tracking_id"]) == {"BAS-2024-01", "BAS-2024-02"}
    assert emulator.count("create-batch-generation") == 1


def test_a_failed_generation_shows_the_servers_message_escaped(client: mnb.Client) -> None:
    form = GenerationForm(client, "Net Carbon Removal", "2025Q4")
    run_to_confirmation(form)
    form.confirm_button.click()
    with pytest.raises(mnb.TaskFailedError) as failure:
        form.wait(timeout=20)
    message = failure.value.error_message
    assert "Electricity Consumption" in message and "'" in message  # quotes that must be escaped
    assert form.error is failure.value and form.state == "failed"
    assert html.escape(message) in form.status.value
    assert html.escape(message) in form.static_html
    assert message not in form.status.value  # never raw
    assert not form.preview_button.disabled and not form.ledger.disabled  # the controls are back
    assert form.result is None


def test_stop_waiting_leaves_the_task_running_and_says_how_to_reattach(
        make_emulator: Callable[..., Emulator], connect: Callable[[Emulator], mnb.Client]) -> None:
    emu = make_emulator(batch_seconds=0.3)
    client = connect(emu)
    form = GenerationForm(client, "Net Carbon Removal", "2025Q1")
    run_to_confirmation(form)
    form.confirm_button.click()
    assert form.ledger.disabled and form.preview_button.disabled and not form.stop_button.disabled
    wait_until(lambda: form.task.status is not None and form.task.status.state == "running")
    form.stop_button.click()

    assert form.state == "detached" and form.error is None
    assert form.task.status.state == "running"
    hint = f"client.task({form.task.id!r}).wait()"
    assert hint in html.unescape(form.status.value) and hint in html.unescape(form.static_html)
    assert form.wait() is None
    made = client.task(form.task.id).wait(timeout=20)  # the job went on without the form
    assert len(made) == 6
    assert emu.count("create-batch-generation") == 1


def test_callback_exceptions_are_shown_kept_and_logged(emulator: Emulator, client: mnb.Client,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    form = GenerationForm(client, "Net Carbon Removal", "2025Q1")
    emulator.faults.fail("generate-preview", 403, message="No <b>write</b> access")
    with caplog.at_level(logging.ERROR, logger="mangrove_nb.forms"):
        form.preview_button.click()  # does not raise: shown and kept
    assert isinstance(form.error, mnb.PermissionDeniedError)
    assert "PermissionDeniedError" in form.status.value
    assert html.escape("No <b>write</b> access") in form.status.value
    assert any(record.exc_info and record.exc_info[1] is form.error for record in caplog.records)
    emulator.faults.fail("generate-preview", 403)
    with pytest.raises(mnb.PermissionDeniedError):
        form.preview()  # from code, it raises

    # A failure in the background thread is not lost either.
    form.preview()
    form.generate()
    emulator.faults.fail("retrieve-async-task", 403, count=5)
    form.confirm()
    with pytest.raises(mnb.PermissionDeniedError):
        form.wait(timeout=20)
    assert isinstance(form.error, mnb.PermissionDeniedError) and form.state == "failed"
    assert "PermissionDeniedError" in form.status.value
    assert f"client.task({form.task.id!r}).wait()" in html.unescape(form.status.value)  # how to re-attach


def test_hostile_api_text_never_reaches_html_unescaped(emulator: Emulator, client: mnb.Client) -> None:
    created = requests.post(f"{emulator.url}/projects/123/ledgers", timeout=10,
                            headers={"Authorization": f"Bearer {emulator.token}"},
                            json={"ledger": {"name": HOSTILE, "unit": HOSTILE_UNIT}})
    assert created.status_code == 201, created.text
    hostile_id = created.json()["id"]

    form = GenerationForm(client, "Net Carbon Removal", "2025Q1")
    assert f"{HOSTILE} ({HOSTILE_UNIT}) — no model" in dict(form.ledger.options)  # listed, as text
    form.ledger.value = hostile_id
    form.preview_button.click()  # refused, with the name in the message
    assert html.escape(HOSTILE) in form.model_html.value and html.escape(HOSTILE) in form.status.value
    assert html.escape(HOSTILE) in form.static_html
    form.ledger.value = ledger_id(client, "Net Carbon Removal")
    run_to_confirmation(form)
    emulator.faults.fail("create-batch-generation", 422, message=f"<script>alert(2)</script>{HOSTILE}")
    form.confirm_button.click()
    assert isinstance(form.error, mnb.ValidationError)
    assert html.escape("<script>alert(2)</script>") in form.status.value

    explorer = BatchExplorer(client, [hostile_id, "Net Carbon Removal"], "2024")
    assert html.escape(HOSTILE) in explorer.totals_html.value and html.escape(HOSTILE_UNIT) in explorer.static_html

    for shown in (form, explorer):
        for widget in every_widget(shown.widget):
            assert not getattr(widget, "description_allow_html", False)
        for value in [*html_values(shown.widget), shown.static_html]:
            assert_safe_html(value)
            assert HOSTILE not in value and HOSTILE_UNIT not in value


def test_no_widget_state_holds_the_token(make_emulator: Callable[..., Emulator],
                                         connect: Callable[[Emulator], mnb.Client]) -> None:
    canary = "canary-forms-9f2a7c41d0"
    emu = make_emulator(token=canary)
    client = connect(emu)
    form = GenerationForm(client, "Net Carbon Removal", "2025Q1")
    run_to_confirmation(form)
    form.confirm_button.click()
    form.wait(timeout=20)
    failed = GenerationForm(client, "Net Carbon Removal", "2025Q4")
    run_to_confirmation(failed)
    failed.confirm_button.click()
    with pytest.raises(mnb.TaskFailedError):
        failed.wait(timeout=20)
    explorer = BatchExplorer(client, ["Net Carbon Removal"], "2025")
    for shown in (form, failed, explorer):
        text = all_state_text(shown.widget)
        assert "Net Carbon Removal" in text  # the walk does reach the state
        assert canary not in text and canary[-10:] not in text
        assert canary not in shown.static_html and canary not in repr(shown)


def test_static_output_is_displayed_and_updated_after_each_outcome(client: mnb.Client,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    form = GenerationForm(client, "Net Carbon Removal", "2025Q1")
    form._ipython_display_()  # outside a kernel: IPython prints, nothing crashes
    form.display()
    assert "Choose a ledger" in capsys.readouterr().out

    shown: list[Any] = []
    updates: list[str] = []

    class Handle:
        def update(self, obj: Any) -> None:
            updates.append(obj.data)

    def display(*objs: Any, display_id: Any = None, **_: Any) -> Handle | None:
        shown.extend(objs)
        return Handle() if display_id else None

    monkeypatch.setattr("IPython.display.display", display)
    form._ipython_display_()
    assert shown[0] is form.widget and shown[1].data == form.static_html
    form.preview()
    assert "Batches to create" in updates[-1]
    form.generate()
    form.confirm()
    form.wait(timeout=20)
    assert updates[-1] == form.static_html and PNG_URI in updates[-1] and "NCR-2025-01" in updates[-1]


# --- the batch explorer -------------------------------------------------------------------------------------


def test_batch_explorer_tables_totals_plot_refresh_and_csv(client: mnb.Client, tmp_path: Any,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    explorer = BatchExplorer(client, ["Net Carbon Removal", "Biochar Produced"], "2024")
    frame = explorer.frame
    assert len(frame) == 24 and set(frame["ledger_id"]) == set(explorer.ledgers.value)
    totals = explorer.totals.set_index("ledger_name")
    for name, ledger in (("Net Carbon Removal", "NCR"), ("Biochar Produced", "BCP")):
        mine = frame[frame["tracking_id"].str.startswith(ledger)]
        assert totals.loc[name, "total"] == pytest.approx(mine["output_value"].sum())
        assert totals.loc[name, "unit"] == "t" and totals.loc[name, "batches"] == 12
    assert "Total output" in explorer.totals_html.value and "NCR-2024-12" in explorer.table_html.value
    assert bytes(explorer.plot.value).startswith(b"\x89PNG") and PNG_URI in explorer.static_html

    explorer.period_picker.value = "2024Q2"  # refreshed on change
    assert len(explorer.frame) == 6 and "2024Q2" in explorer.static_html
    dfd = ledger_id(client, "Dry Feedstock Delivered")
    explorer.ledgers.value = (dfd,)  # feedstock-partitioned: one batch per feedstock and month
    assert len(explorer.frame) == len(client.batches(dfd, "2024Q2")) > 3
    assert "Feedstock" in explorer.table_html.value and "Pine residue" in explorer.table_html.value
    explorer.period_picker.value = "2025Q1"  # nothing generated yet
    assert explorer.frame.empty and "No batches" in explorer.status.value and PNG_URI in explorer.static_html

    explorer.period_picker.value = "2024"
    explorer.ledgers.value = tuple(ledger_id(client, n) for n in ("Net Carbon Removal", "Biochar Produced"))
    monkeypatch.chdir(tmp_path)
    explorer.export_button.click()
    assert explorer.error is None
    written = tmp_path / "batches_2024.csv"
    assert explorer.exported == written.resolve() and html.escape(str(written)) in explorer.export_html.value
    with written.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 24 and {r["ledger_name"] for r in rows} == {"Net Carbon Removal", "Biochar Produced"}
    assert explorer.export_csv(tmp_path / "mine.csv") == (tmp_path / "mine.csv").resolve()

    explorer.period_picker.mode.value = "Custom range"
    explorer.period_picker.end.value = None  # an invalid period is shown and kept
    assert isinstance(explorer.error, mnb.PeriodError) and "both dates" in explorer.status.value


def test_forms_are_not_imported_with_the_package() -> None:
    code = ("import sys, mangrove_nb; "
            "print(sorted(m for m in ('mangrove_nb.forms', 'ipywidgets', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"
    assert forms.__all__ == ["BatchExplorer", "GenerationForm", "PeriodPicker"]


def test_a_lost_answer_to_confirm_keeps_the_form_on_outcome_unknown_until_reconciled(
        emulator: Emulator, client: mnb.Client) -> None:
    form = GenerationForm(client, "Net Carbon Removal", "2025Q1")
    run_to_confirmation(form)
    emulator.faults.drop("create-batch-generation", 1, after_commit=True)
    form.confirm_button.click()
    assert form.state == "outcome unknown" and isinstance(form.error, mnb.GenerationOutcomeUnknownError)
    assert "Outcome unknown" in form.status.value and "Reconcile" in form.status.value
    assert form.reconcile_button.layout.display == "" and "Outcome unknown" in form.static_html
    # Preview, Generate, Confirm again: nothing more is sent.
    form.preview_button.click()
    assert form.state == "outcome unknown" and "Reconcile" in form.status.value
    with pytest.raises(mnb.PreconditionError, match="reconcile"):
        client.generate(ledger_id(client, "Net Carbon Removal"), "2025Q1")
    assert emulator.count("create-batch-generation") == 1
    wait_until(lambda: client.reconcile(ledger_id(client, "Net Carbon Removal"), "2025Q1").complete)
    form.reconcile_button.click()
    assert form.error is None or form.state == "done", form.status.value
    assert form.state == "done" and "nothing left to generate" in form.status.value
    assert len(form.reconciliation.batches) == 3 and "NCR-2025-01" in form.result_html.value
    assert form.reconcile_button.layout.display == "none"
    assert emulator.count("create-batch-generation") == 1


def test_a_server_that_quotes_the_token_back_never_gets_it_into_the_form(
        make_emulator: Callable[..., Emulator], connect: Callable[[Emulator], mnb.Client],
        caplog: pytest.LogCaptureFixture) -> None:
    canary = "canary-reflected-5e1b9d7a3c"
    emu = make_emulator(token=canary)
    client = connect(emu)
    form = GenerationForm(client, "Net Carbon Removal", "2025Q1")
    explorer = BatchExplorer(client, ["Net Carbon Removal"], "2024")
    emu.faults.fail("generate-preview", 401, message=f"Bearer {canary} is not a valid token")
    emu.faults.fail("list-all-ledger-batches", 403, message=f"token={canary}")
    with caplog.at_level(logging.DEBUG):
        form.preview_button.click()
        explorer.refresh_button.click()
    assert isinstance(form.error, mnb.AuthenticationError) and isinstance(explorer.error, mnb.PermissionDeniedError)
    for shown in (form, explorer):
        assert "[redacted]" in shown.status.value
        text = all_state_text(shown.widget) + shown.static_html + repr(shown)
        assert canary not in text and canary not in str(shown.error)
    assert canary not in caplog.text


def test_csv_export_neutralises_formulas_and_names_a_missing_folder(client: mnb.Client, tmp_path: Any) -> None:
    explorer = BatchExplorer(client, ["Net Carbon Removal"], "2024Q1")
    hostile = ['=HYPERLINK("http://x","y")', "+1+1", "-2+3", "@SUM(A1)", "\t=1"]
    for row, text in enumerate(hostile[:3]):
        explorer.frame.loc[row, "tracking_id"] = text
    explorer.frame.loc[0, "feedstock"] = hostile[3]
    explorer.frame.loc[1, "feedstock"] = hostile[4]
    written = explorer.export_csv(tmp_path / "out.csv")
    with written.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    cells = [value for r in rows for value in r.values()]
    assert {f"'{text}" for text in hostile} <= set(cells)
    assert not [c for c in cells if c[:1] in ("=", "+", "@", "\t")]
    assert all(float(r["output_value"]) == pytest.approx(v) for r, v in zip(rows, explorer.frame["output_value"],
                                                                           strict=True))  # numbers stay numbers
    with pytest.raises(mnb.ValidationError, match=r"does not exist; create it first") as caught:
        explorer.export_csv(tmp_path / "missing" / "out.csv")
    assert caught.value.argument == "path"
    with pytest.raises(mnb.ValidationError, match="is a folder"):
        explorer.export_csv(tmp_path)
