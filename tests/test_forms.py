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
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import ipywidgets as widgets
import pandas as pd
import pytest
import requests
from helpers import Elements, race_confirm_clicks

import mangrove_nb as mnb
from mangrove_nb import forms
from mangrove_nb.emulator import Emulator
from mangrove_nb.forms import BatchExplorer, GenerationForm, PeriodPicker, find_missing_input
from mangrove_nb.forms._base import FormBase
from mangrove_nb.forms._html import error_text, status_html
from mangrove_nb.forms._sending import FormProgress
from mangrove_nb.forms.missing_input import Dropped, offer_text

HOSTILE = "<img src=x onerror=alert(1)>"
HOSTILE_UNIT = "<script>alert(1)</script>"
PNG_URI = "data:image/png;base64,"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
NCR, BCP, BAS = "Net Carbon Removal", "Biochar Produced", "Biochar Applied to Soil"
ELECTRICITY = 7
SKIP_NOTE = "generated without Electricity Consumption: its emissions are not counted"
# What leaving electricity out of November drops on the emulator: the three readings November does have.
DROPPED = "3 existing readings of Electricity Consumption (10,943 kWh)"
DROPS = f"drops {DROPPED} in 2025-11: their emissions will not be counted, so net removal will be overstated"
# The client's own advice for the missing input (in TaskFailedError's message): the form says it as its offer.
CLIENT_ADVICE = "Skipping the input is a last resort"
# Fast polling for the emulator's near-instant generation (the defaults poll about once a second).
FAST_POLL = {"poll_min_interval": 0.05, "poll_interval": 0.1, "poll_max_interval": 0.2}


@pytest.fixture
def connect() -> Iterator[Callable[..., mnb.Client]]:
    """Clients for an emulator, polling fast and showing no progress of their own; closed at the end."""
    clients: list[mnb.Client] = []

    def make(emu: Emulator, **options: Any) -> mnb.Client:
        client = mnb.connect(emu.token, emu.url, show_progress=False, **{**FAST_POLL, **options})
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client_options() -> dict[str, Any]:
    """The shared ``client`` (conftest.py) polls like the clients ``connect`` makes."""
    return FAST_POLL


@pytest.fixture
def with_project(emulator: Emulator, connect: Callable[..., mnb.Client]) -> mnb.Client:
    """A client of the session's project (the emulator's is 123): the readings a skip drops can be read."""
    return connect(emulator, project_id=123)


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


def assert_safe_html(text: str) -> None:
    """No element or attribute that API text could have smuggled in: no script, no on* handler, and the only
    images are the forms' own PNG data URIs."""
    for tag, attrs in Elements(text).tags:
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


def spy_generations(client: mnb.Client) -> list[dict[str, Any]]:
    """Record the body of every generation request ``client`` sends (and send it)."""
    sent: list[dict[str, Any]] = []
    original = client.http.create_batch_generation

    def record(ledger: str, body: dict[str, Any]) -> Any:
        sent.append(dict(body, ledger=ledger))
        return original(ledger, body)

    client.http.create_batch_generation = record  # type: ignore[method-assign]
    return sent


class Displays:
    """A stand-in for IPython's ``display``: what was displayed, and each update of a display id."""

    def __init__(self) -> None:
        self.shown: list[dict[str, Any]] = []
        self.updates: list[dict[str, Any]] = []

    def __call__(self, obj: Any, *, raw: bool = False, display_id: Any = None, **_: Any) -> Any:
        assert raw and isinstance(obj, dict), "a form displays one raw mimebundle"
        self.shown.append(obj)
        displays = self

        class Handle:
            def update(self, bundle: Any, **kwargs: Any) -> None:
                assert kwargs.get("raw") is True
                displays.updates.append(bundle)

        return Handle() if display_id else None


# --- the period picker --------------------------------------------------------------------------------------


def test_period_picker_modes_iso_dates_years_and_errors_shown() -> None:
    picker = PeriodPicker("2025Q1", years=[2023, 2024])
    assert (picker.mode.value, picker.period.label) == ("Quarter", "2025Q1")
    assert picker.years == [2023, 2024, 2025]  # the years given, and the chosen period's
    seen: list[str] = []
    picker.on_change(lambda p: seen.append(p.value.label if p.value else "invalid"))

    picker.value = "2025-02"
    assert (picker.mode.value, picker.month.value, picker.period.label) == ("Month", 2, "2025-02")
    picker.value = 2024
    assert (picker.mode.value, picker.period.label) == ("Year", "2024")
    picker.value = ("2025-01-10", "2025-02-20")
    assert picker.mode.value == "Custom range"
    assert (picker.start.value, picker.end.value) == ("2025-01-10", "2025-02-20")  # ISO, whatever the locale
    assert isinstance(picker.start, widgets.Text) and picker.start.placeholder == "YYYY-MM-DD"
    assert (picker.period.start.isoformat(), picker.period.end.isoformat()) == (
        "2025-01-10T00:00:00+00:00", "2025-02-20T23:59:59+00:00")
    assert seen == ["2025-02", "2024", "2025-01-10/2025-02-20"]  # one notification per setting

    picker.end.value = "2025-01-01"  # before the start
    with pytest.raises(mnb.PeriodError, match="before it starts"):
        _ = picker.period
    assert picker.value is None
    assert "before it starts" in picker.error_html.value
    picker.end.value = "01/02/2025"  # not ISO
    with pytest.raises(mnb.PeriodError, match="YYYY-MM-DD"):
        _ = picker.period
    assert "YYYY-MM-DD" in picker.error_html.value
    picker.end.value = "2025-02-30"  # ISO-shaped, but no such day
    with pytest.raises(mnb.PeriodError, match="YYYY-MM-DD"):
        _ = picker.period
    picker.end.value = ""
    with pytest.raises(mnb.PeriodError, match="both dates"):
        _ = picker.period
    assert "both dates" in picker.error_html.value

    picker.value = "2025Q3"
    picker.mode.value = "Custom range"  # starts from the quarter chosen before
    assert (picker.start.value, picker.end.value) == ("2025-07-01", "2025-09-30")
    assert picker.error_html.value == ""
    picker.value = "1999Q4"  # a year outside the list is added
    assert picker.period.label == "1999Q4" and 1999 in picker.years
    assert picker.start.layout.display == "none" and picker.quarter.layout.display == ""
    before = len(seen)
    picker.set_years([2030])  # new years never change the choice, nor notify
    assert picker.period.label == "1999Q4" and 2030 in picker.years and len(seen) == before


def test_years_offered_come_from_the_ledgers_data(emulator: Emulator, connect: Callable[..., mnb.Client]) -> None:
    with_project = connect(emulator, project_id=123)
    form = GenerationForm(with_project, NCR, "2025Q1")
    assert form.period_picker.years == [2024, 2025]  # batches 2024, events 2024-2025
    form.ledger.value = ledger_id(with_project, "Credits Issued")  # no batches: the project's events
    assert form.period_picker.years == [2024, 2025]

    without = connect(emulator)  # no project known: the ledger's batches and the chosen period
    form = GenerationForm(without, NCR, "2025Q1")
    assert form.period_picker.years == [2024, 2025]
    assert GenerationForm(without, "Credits Issued", "2025Q1").period_picker.years == [2025]
    # A manual-select input's data are the upstream ledger's batches (Biochar Produced, 2024).
    assert GenerationForm(without, BAS, "2025Q1").period_picker.years == [2024, 2025]
    explorer = BatchExplorer(without, [NCR, BCP], "2024")
    assert explorer.period_picker.years == [2024]
    explorer.ledgers.value = (ledger_id(without, "Credits Issued"),)
    assert explorer.period_picker.years == [2024]  # the chosen period stays offered


# --- generation ---------------------------------------------------------------------------------------------


def test_generate_is_enabled_only_after_a_preview_of_the_same_selection(client: mnb.Client) -> None:
    form = GenerationForm(client, NCR, "2025Q1")
    assert form.generate_button.disabled
    with pytest.raises(mnb.PreconditionError, match="Preview"):
        form.generate()

    frame = form.preview()
    assert frame["count"].tolist() == [3, 3]  # NCR and Biochar Produced run together
    assert not form.generate_button.disabled
    assert "Biochar Produced" in form.preview_html.value and NCR in form.preview_html.value

    form.period_picker.value = "2025Q2"  # a different period voids the preview
    assert form.generate_button.disabled and form.preview_frame is None
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
    form.ledger.value = ledger_id(client, BCP)  # changing the ledger withdraws the question and the preview
    assert form.state == "idle" and form.confirm_button.disabled and form.generate_button.disabled
    assert form.preview_frame is None and form.preview_html.value == ""
    with pytest.raises(mnb.PreconditionError, match="Nothing to confirm"):
        form.confirm()
    assert form.task is None


def test_double_clicks_start_one_generation_and_progress_reaches_100(emulator: Emulator,
                                                                     client: mnb.Client) -> None:
    form = GenerationForm(client, NCR, "2025Q1")
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
    assert result["note"].isna().all() and "Note" not in form.result_html.value  # nothing was left out
    for tracking_id in result["tracking_id"]:
        assert tracking_id in form.result_html.value and tracking_id in form.static_html
    assert bytes(form.plot.value).startswith(b"\x89PNG") and form.plot.layout.display == ""
    assert PNG_URI in form.static_html and '<table class="mnb-table"' in form.static_html
    assert f"Task {form.task.id} complete" in form.static_html

    # Finished: Generate is off until a new preview, and that preview finds nothing left, and says why.
    assert form.generate_button.disabled
    with pytest.raises(mnb.PreconditionError):
        form.generate()
    form.preview_button.click()
    assert form.preview_frame["count"].sum() == 0 and form.generate_button.disabled
    status = html.unescape(form.status.value)
    assert "Nothing to generate on Net Carbon Removal for 2025Q1" in status and "2025-01, 2025-02, 2025-03" in status
    assert emulator.count("create-batch-generation") == 1


def test_rerunning_the_cell_does_not_start_a_second_generation(make_emulator: Callable[..., Emulator],
                                                               connect: Callable[..., mnb.Client]) -> None:
    """The form keeps no registry of its own: the client's process-wide guard refuses what overlaps a running
    generation, whichever form (or client of the same API) asks."""
    assert not hasattr(forms, "_ACTIVE") and not hasattr(forms, "_register") and not hasattr(forms, "_overlapping")
    emu = make_emulator(batch_seconds=0.5)
    client = connect(emu)
    first = GenerationForm(client, NCR, "2025Q1")
    run_to_confirmation(first)
    first.confirm_button.click()
    assert first.state == "running"

    again = GenerationForm(client, NCR, "2025Q1")  # the cell run a second time
    again.preview_button.click()
    assert again.preview_frame["count"].sum() > 0  # the batches are not written yet: the preview still counts
    again.generate_button.click()
    again.confirm_button.click()
    assert again.task is None and again.state == "idle"
    assert isinstance(again.error, mnb.PreconditionError)
    assert first.task.reattach in html.unescape(again.status.value) and "period=" in first.task.reattach

    # Biochar Produced has a model of its own, but the running task writes it too: refused as well.
    other = GenerationForm(client, BCP, "2025Q1")
    run_to_confirmation(other)
    other.confirm_button.click()
    assert other.task is None and isinstance(other.error, mnb.PreconditionError), other.status.value
    assert f"Task {first.task.id}" in other.status.value

    # A second client of the same API (a re-run connect() cell) is refused too.
    second_client = connect(emu)
    fresh = GenerationForm(second_client, NCR, "2025-02")
    run_to_confirmation(fresh)
    fresh.confirm_button.click()
    assert fresh.task is None and isinstance(fresh.error, mnb.PreconditionError), fresh.status.value

    first.wait(timeout=20)
    assert emu.count("create-batch-generation") == 1
    assert len(first.result) == 6


def test_racing_confirmations_from_two_forms_and_two_clients_start_one_generation(
        make_emulator: Callable[..., Emulator], connect: Callable[..., mnb.Client]) -> None:
    emu = make_emulator(batch_seconds=0.3)
    racing = [GenerationForm(connect(emu), NCR, "2025Q1") for _ in range(4)]
    for form in racing:
        run_to_confirmation(form)
    started = race_confirm_clicks(racing)
    assert len(started) == 1, [form.status.value for form in racing]
    assert all(isinstance(form.error, mnb.PreconditionError) for form in racing if form not in started)
    started[0].wait(timeout=20)
    assert emu.count("create-batch-generation") == 1


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
    form = GenerationForm(client, BAS, "2024Q1")
    assert form.candidates_box.layout.display == ""
    assert "manual select" in form.inputs_html.value and "mnb-manual" in form.inputs_html.value
    assert "client.candidates(" in html.unescape(form.candidates_html.value)
    labels = [label for label, _ in form.candidates.options]
    assert len(labels) == 3 and labels[0].startswith("BCP-2024-01 · 2024-01 · ") and labels[0].endswith(" t left")

    form.preview_button.click()  # nothing chosen yet
    assert isinstance(form.error, mnb.PreconditionError) and "choose at least one data point" in form.status.value
    assert "client.candidates(" in html.unescape(form.status.value)
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
    # The two used have no balance left: they are no longer offered.
    assert [label.split(" · ")[0] for label, _ in form.candidates.options] == ["BCP-2024-03"]
    assert form.candidates.value == ()


def test_without_candidates_the_form_says_which_ledger_to_generate_first(emulator: Emulator,
                                                                         client: mnb.Client) -> None:
    form = GenerationForm(client, BAS, "2025Q1")  # Biochar Produced has no 2025 batch yet
    assert form.candidates.options == ()
    said = html.unescape(form.candidates_html.value)
    assert "No batch of Biochar Produced with balance left in 2025Q1" in said
    assert "generate Biochar Produced for 2025Q1 first" in said
    assert f"client.candidates({ledger_id(client, BAS)!r}, '2025Q1')" in said
    form.preview_button.click()
    assert isinstance(form.error, mnb.PreconditionError) and "client.candidates(" in html.unescape(form.status.value)
    assert emulator.count("create-batch-generation") == 0


def test_changing_the_period_with_candidates_selected_sends_options_and_selection_together(
        client: mnb.Client) -> None:
    """The browser applies each state message as it comes: a message with fewer options but the old selection
    made ipywidgets' SelectMultiple view select a row that no longer exists (a console TypeError)."""
    form = GenerationForm(client, BAS, "2024Q1")
    sent: list[dict[str, Any]] = []
    original = form.candidates._send

    def record(msg: dict[str, Any], buffers: Any = None) -> None:
        sent.append(dict(msg.get("state", {})))
        original(msg, buffers)

    form.candidates._send = record  # type: ignore[method-assign]
    browser = {"_options_labels": list(form.candidates._options_labels), "index": []}
    form.candidates.value = tuple(value for _, value in form.candidates.options[1:])  # rows 1 and 2
    for period in ("2024-01", "2024Q2", "2025Q1", "2024Q1"):  # 1, 3, 0 and 3 candidates
        form.period_picker.value = period
    assert sent, "no state was sent to the browser"
    for state in sent:
        browser.update(state)
        assert all(0 <= i < len(browser["_options_labels"]) for i in browser["index"]), (state, browser)
    assert list(browser["_options_labels"]) == list(form.candidates._options_labels)


def test_a_failed_generation_shows_the_servers_message_escaped(client: mnb.Client) -> None:
    form = GenerationForm(client, NCR, "2025Q4")
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


def spy_generate_calls(client: mnb.Client) -> list[dict[str, Any]]:
    """Record the keyword arguments of every ``client.generate`` call (and make it)."""
    calls: list[dict[str, Any]] = []
    original = client.generate

    def record(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return original(*args, **kwargs)

    client.generate = record  # type: ignore[method-assign]
    return calls


def fail_on_november(form: GenerationForm) -> None:
    """Generate the form's 2025Q4, which fails on November's missing electricity reading."""
    run_to_confirmation(form)
    form.confirm_button.click()
    with pytest.raises(mnb.TaskFailedError):
        form.wait(timeout=20)


def test_a_missing_input_offers_that_month_alone_then_the_rest_without_skipping(
        emulator: Emulator, with_project: mnb.Client) -> None:
    client = with_project
    sent = spy_generations(client)
    calls = spy_generate_calls(client)
    form = GenerationForm(client, NCR, "2025Q4")
    fail_on_november(form)
    offer = form.offer
    assert (offer.type_ids, offer.names, offer.month.label, offer.period.label) == (
        (ELECTRICITY,), ("Electricity Consumption",), "2025-11", "2025Q4")
    assert form.offer_box.layout.display == "" and form.skip_button.layout.display == ""
    assert form.rest_button.layout.display == "none"
    assert form.skip_button.description == "Preview 2025-11 without Electricity Consumption (drops 3 readings)"
    said = html.unescape(form.offer_html.value)
    assert "2025-11 lacks a reading of 'Electricity Consumption'" in said
    assert "Recommended: add the missing reading in Mangrove (a documented estimate if need be)" in said
    assert "Last resort: generate 2025-11 alone" in said and DROPS in said and "a skip never spans months" in said
    assert "skipped_data_point_type_ids=[7], drop_existing_readings=True)" in said
    assert "form.preview_rest_of_period()" in said
    assert DROPS in html.unescape(form.static_html)

    # The month alone, without the input: the preview and the confirmation name what that drops.
    form.skip_button.click()
    form.skip_button.click()  # a double click: the offer is gone, nothing else happens
    assert form.error is None, form.error
    assert form.state == "previewed" and form.period_picker.period.label == "2025-11"
    assert form.preview_frame["count"].tolist() == [1, 1]
    leaving = html.unescape(form.skip_html.value)
    assert f"Leaving out 'Electricity Consumption' in 2025-11 only. This {DROPS}." in leaving
    assert "Adding the missing reading in Mangrove first avoids this" in leaving
    assert f"dropping {DROPPED}: 2 batches would be created" in html.unescape(form.status.value)
    assert form.skip_html.layout.display == "" and form.offer_box.layout.display == "none"
    assert form.dropped is not None and form.dropped.count == 3
    form.generate_button.click()
    assert form.confirmation == ("Create 1 batch on Net Carbon Removal and 1 on Biochar Produced for 2025-11 "
                                 f"without 'Electricity Consumption'? This {DROPS}.")
    assert form.confirm_button.description == "Confirm, dropping 3 readings"
    assert len(sent) == 1  # only the failed quarter so far
    form.confirm_button.click()
    month = form.wait(timeout=20)
    assert calls[-1]["drop_existing_readings"] is True and calls[-1]["skipped_data_point_type_ids"] == [ELECTRICITY]
    assert sent[-1]["skipped_data_point_type_ids"] == [ELECTRICITY]
    assert (sent[-1]["start_time"], sent[-1]["end_time"]) == ("2025-11-01T00:00:00Z", "2025-11-30T23:59:59Z")
    assert set(month["tracking_id"]) == {"NCR-2025-11", "BCP-2025-11"}
    notes = dict(zip(month["tracking_id"], month["note"], strict=True))
    assert notes["NCR-2025-11"] == SKIP_NOTE  # flagged in the result table
    assert notes["BCP-2025-11"].startswith("generated without Electricity Consumption")
    assert html.escape(SKIP_NOTE) in form.result_html.value and "mnb-skipped" in form.result_html.value
    assert html.escape(SKIP_NOTE) in form.static_html
    assert "generated without an input" in form.status.value
    assert (f"Leaving 'Electricity Consumption' out dropped {DROPPED} in 2025-11: their emissions are not counted, "
            "so net removal is overstated.") in html.unescape(form.status.value)
    assert form.dropped is None and form.confirm_button.description == "Confirm"

    # Then the rest of the quarter, without skipping anything.
    assert form.rest == offer.period and form.rest_button.layout.display == ""
    assert form.rest_button.description == "Preview the rest of 2025Q4"
    form.rest_button.click()
    assert form.period_picker.period.label == "2025Q4" and form.skip is None and form.skip_html.layout.display == "none"
    assert form.preview_frame["count"].tolist() == [2, 2]  # October and December
    form.generate_button.click()
    assert "without" not in form.confirmation and form.confirm_button.description == "Confirm"
    form.confirm_button.click()
    rest = form.wait(timeout=20)
    assert "skipped_data_point_type_ids" not in sent[-1] and calls[-1]["drop_existing_readings"] is False
    assert set(rest["tracking_id"]) == {f"{p}-2025-{m}" for p in ("NCR", "BCP") for m in ("10", "12")}
    assert rest["note"].isna().all() and form.rest is None and form.offer_box.layout.display == "none"

    # Never across months: only November's batches lack the reading.
    quarter = client.batches([ledger_id(client, NCR)], "2025Q4", details=True).set_index("tracking_id")
    assert quarter.loc["NCR-2025-11", "skipped_input_ids"] == str(ELECTRICITY)
    assert quarter.loc[["NCR-2025-10", "NCR-2025-12"], "skipped_inputs"].isna().all()
    assert [body.get("skipped_data_point_type_ids") for body in sent] == [None, [ELECTRICITY], None]
    assert emulator.count("create-batch-generation") == 3


def test_the_confirmation_names_the_dropped_readings_and_nothing_is_sent_before_it(
        emulator: Emulator, with_project: mnb.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing leaves before Confirm; Confirm sends the skip with drop_existing_readings=True only when the readings
    it drops are still exactly those the confirmation named (they are read again at Confirm)."""
    client = with_project
    sent = spy_generations(client)
    calls = spy_generate_calls(client)
    form = GenerationForm(client, NCR, "2025Q4")
    fail_on_november(form)
    assert len(sent) == 1 and calls[-1]["drop_existing_readings"] is False
    form.preview_month_without_input()
    question = form.generate()
    assert DROPPED in question and "net removal will be overstated" in question
    assert f"This {DROPS}." in html.unescape(form.confirm_html.value)
    assert form.confirm_button.description == "Confirm, dropping 3 readings"
    form.cancel()
    assert len(sent) == 1 and len(calls) == 1  # previewed, asked, cancelled: nothing sent, nothing tried

    # The readings changed between the question and Confirm (one was added, say): not sent.
    form.generate()
    real = client.readings

    def one_more(*args: Any, **kwargs: Any) -> pd.DataFrame:
        frame = real(*args, **kwargs)
        return pd.concat([frame, frame.head(1).assign(data_point_id="in_added", value=5000.0)], ignore_index=True)

    monkeypatch.setattr(client, "readings", one_more)
    form.confirm_button.click()
    assert isinstance(form.error, mnb.PreconditionError)
    said = str(form.error)
    assert "changed since the preview" in said and DROPPED in said
    assert "4 existing readings of Electricity Consumption (15,943 kWh)" in said
    assert len(sent) == 1 and len(calls) == 1 and form.task is None
    assert form.generate_button.disabled  # preview again first

    # Previewed again, the new readings are named; gone again before Confirm: not sent either.
    form.preview_button.click()
    assert "4 existing readings" in form.generate()
    monkeypatch.setattr(client, "readings", real)
    form.confirm_button.click()
    assert "changed since the preview" in str(form.error) and len(sent) == 1
    form.preview_button.click()
    form.generate_button.click()
    form.confirm_button.click()
    form.wait(timeout=20)
    assert len(sent) == 2 and sent[-1]["skipped_data_point_type_ids"] == [ELECTRICITY]
    assert calls[-1]["drop_existing_readings"] is True


def test_without_a_project_the_skip_is_not_offered_and_says_how_to_set_one(
        emulator: Emulator, client: mnb.Client) -> None:
    assert client.settings.project_id is None
    sent = spy_generations(client)
    form = GenerationForm(client, NCR, "2025Q4")
    fail_on_november(form)
    assert form.offer is not None and form.dropped is not None and not form.dropped.checked
    said = html.unescape(form.offer_html.value)
    assert "Recommended: add the missing reading in Mangrove" in said
    assert "Generating 2025-11 without 'Electricity Consumption' is not offered" in said
    assert "the form cannot read them" in said
    assert "MANGROVE_PROJECT_ID" in said and "mnb.connect(project_id=...)" in said
    assert "skipped_data_point_type_ids" not in said and "drop_existing_readings" not in said
    assert form.offer_box.layout.display == "" and form.skip_button.layout.display == "none"
    assert "is not offered" in html.unescape(form.static_html)
    with pytest.raises(mnb.PreconditionError, match="MANGROVE_PROJECT_ID"):
        form.preview_month_without_input()
    assert form.skip is None and form.period_picker.period.label == "2025Q4" and len(sent) == 1


def test_the_clients_missing_input_advice_is_shown_once(with_project: mnb.Client) -> None:
    """The advice is in TaskFailedError's message; the form says it as its offer only (and shows the client's
    words in the status only when it has no offer of its own)."""
    form = GenerationForm(with_project, NCR, "2025Q4")
    fail_on_november(form)
    assert CLIENT_ADVICE in str(form.error)  # the client's advice is in the message...
    every = "\n".join(html.unescape(v) for v in html_values(form.widget))
    assert CLIENT_ADVICE not in every  # ...the form says it its own way, once
    assert every.count("drop_existing_readings=True") == 1 and every.count(DROPS) == 1
    assert "drop_existing_readings=True" in html.unescape(form.offer_html.value)
    assert CLIENT_ADVICE not in html.unescape(form.static_html)
    assert CLIENT_ADVICE in error_text(form.error)  # where a form has no offer of its own, it shows the advice
    assert CLIENT_ADVICE not in error_text(form.error, advice=False)
    assert error_text(form.error).count("Fix the cause") == 1


def test_a_skip_is_dropped_when_the_analyst_changes_the_period(emulator: Emulator,
                                                               with_project: mnb.Client) -> None:
    sent = spy_generations(with_project)
    form = GenerationForm(with_project, NCR, "2025Q4")
    fail_on_november(form)
    form.preview_month_without_input()
    assert form.skip is not None
    form.period_picker.value = "2025Q4"  # the analyst's own choice: no skip, no offer
    assert form.skip is None and form.offer is None and form.rest is None and form.state == "idle"
    assert form.dropped is None
    run_to_confirmation(form)
    assert "without" not in form.confirmation
    form.period_picker.value = "2025-11"  # back to the month by hand: still no skip
    run_to_confirmation(form)
    assert "without" not in form.confirmation
    form.confirm_button.click()
    with pytest.raises(mnb.TaskFailedError):
        form.wait(timeout=20)
    assert "skipped_data_point_type_ids" not in json.dumps(sent)
    with pytest.raises(mnb.PreconditionError, match="Nothing to offer"):
        form.preview_rest_of_period()


def test_a_month_without_one_input_that_fails_on_another_is_offered_without_both(
        emulator: Emulator, with_project: mnb.Client) -> None:
    """The seed lacks one reading only: the second failure is the server's message for another input, handed to
    the form as its background thread would."""
    client = with_project
    sent = spy_generations(client)
    calls = spy_generate_calls(client)
    form = GenerationForm(client, NCR, "2025Q4")
    fail_on_november(form)
    form.preview_month_without_input()
    form.generate()
    ncr, november, skip = form.ledger.value, form.period_picker.period, form.skip
    task = SimpleNamespace(id=99, status=None)
    with form._lock:  # what confirm() records, without starting anything
        form.task, form.state, form._running = task, "running", (ncr, november, (), skip)
    said = "No data point for required input 'Transport Distance' (transport-distance) on event e in {}"
    form._failed(task, mnb.TaskFailedError(task_id=99, error_message=said.format("2025-12")))
    assert form.offer is None  # another month: never offered from a one-month run
    with form._lock:
        form.task, form.state, form._running = task, "running", (ncr, november, (), skip)
    form._failed(task, mnb.TaskFailedError(task_id=99, error_message=said.format("2025-11")))
    offer = form.offer
    assert (offer.type_ids, offer.names, offer.month, offer.period.label) == (
        (ELECTRICITY, 2), ("Electricity Consumption", "Transport Distance"), november, "2025Q4")
    transport = client.readings(ncr, "2025-11", [2])
    both = f"{DROPPED} and {len(transport)} of Transport Distance ({transport['value'].sum():,.1f} mile)"
    assert form.skip_button.description == (f"Preview 2025-11 without Electricity Consumption and Transport "
                                            f"Distance (drops {3 + len(transport)} readings)")
    assert f"drops {both} in 2025-11" in html.unescape(form.offer_html.value)
    form.skip_button.click()
    form.generate_button.click()
    assert "without 'Electricity Consumption' and 'Transport Distance'? This drops " + both in form.confirmation
    form.confirm_button.click()
    made = form.wait(timeout=20)
    assert sent[-1]["skipped_data_point_type_ids"] == [ELECTRICITY, 2] and calls[-1]["drop_existing_readings"]
    assert {frozenset(text.split(", ")) for text in made["skipped_inputs"]} == {
        frozenset({"Electricity Consumption", "Transport Distance"})}
    assert form.rest.label == "2025Q4"
    with form._lock:  # the same inputs failing again: nothing new to leave out, nothing offered
        form.task, form.state, form._running = task, "running", (ncr, november, (), form.offer or offer)
    form._failed(task, mnb.TaskFailedError(task_id=99, error_message=said.format("2025-11")))
    assert form.offer is None


def test_find_missing_input_names_one_input_and_one_month_or_nothing() -> None:
    required = pd.DataFrame({"id": pd.array([5, 7, 8], dtype="Int64"),
                             "name": pd.array(["Mass of Biochar Produced", "Electricity <script>x</script>",
                                               "Biochar Produced"], dtype="string"),
                             "slug": pd.array(["biochar-mass", "electricity", "biochar-produced"], dtype="string"),
                             "is_manual_select": pd.array([False, False, True], dtype="boolean")})
    q4 = mnb.parse_period("2025Q4")
    said = "No data point for required input 'Electricity <script>x</script>' (electricity) on event e in 2025-11"
    found = find_missing_input(said, "lgr_x", q4, required)
    assert (found.type_ids, found.name, found.month.label, found.rest.label) == (
        (ELECTRICITY,), "Electricity <script>x</script>", "2025-11", "2025Q4")
    assert find_missing_input(said, "lgr_x", mnb.parse_period("2025-11"), required).rest is None
    assert find_missing_input(said.replace("2025-11", "2025-11 and 2025-12"), "lgr_x", q4, required) is None
    assert find_missing_input(said, "lgr_x", mnb.parse_period("2025Q1"), required) is None  # month outside
    assert find_missing_input("No data point for 'Biochar Produced' in 2025-11", "lgr_x", q4, required) is None
    assert find_missing_input("'biochar-mass' and 'electricity' missing in 2025-10", "lgr_x", q4, required) is None
    assert find_missing_input("Something else went wrong in 2025-10", "lgr_x", q4, required) is None
    assert find_missing_input(None, "lgr_x", q4, required) is None

    # Shown escaped: a hostile input name (and unit) stays text in the offer.
    readings = pd.DataFrame({"data_point_id": ["dp1"], "data_point_type_id": pd.array([ELECTRICITY], dtype="Int64"),
                             "value": pd.array([1.5], dtype="Float64"),
                             "unit": pd.array([HOSTILE_UNIT], dtype="string")})
    text = status_html("warn", offer_text(found, Dropped(found, readings)))
    assert "drops 1 existing reading of Electricity &lt;script&gt;x&lt;/script&gt; (1.5 &lt;script&gt;" in text
    assert_safe_html(text)
    assert html.escape("<script>x</script>") in text and "<script>x" not in text and "<script>alert" not in text


def test_changing_the_ledger_or_period_clears_the_previous_outcome(client: mnb.Client) -> None:
    form = GenerationForm(client, NCR, "2025Q4")
    run_to_confirmation(form)
    form.confirm_button.click()
    with pytest.raises(mnb.TaskFailedError):
        form.wait(timeout=20)
    assert form.state == "failed" and form.offer is not None and form.progress.value > 0

    form.ledger.value = ledger_id(client, BCP)
    assert (form.state, form.error, form.result, form.preview_frame, form.task, form.offer) == (
        "idle", None, None, None, None, None)
    assert form.progress.value == 0 and form.progress_box.layout.display == "none"
    assert form.offer_box.layout.display == "none" and form.preview_html.value == ""
    for text in (form.status.value, form.static_html, *html_values(form.widget)):
        assert "failed" not in text and "Electricity" not in text, text  # nothing of NCR's failure under BCP
    assert "Batch generation: Biochar Produced" in form.static_html
    assert "Biochar Produced, 2025Q4: Preview" in form.status.value
    form.ledger.value = ledger_id(client, NCR)  # and back: still nothing of the failure
    assert form.state == "idle" and "failed" not in form.static_html

    form.period_picker.value = "2025Q1"
    run_to_confirmation(form)
    form.confirm_button.click()
    form.wait(timeout=20)
    assert form.result is not None and form.plot.layout.display == ""
    form.period_picker.value = "2025Q2"
    assert form.result is None and form.result_html.value == "" and form.plot.layout.display == "none"
    assert bytes(form.plot.value) == b"" and PNG_URI not in form.static_html and "NCR-2025-01" not in form.static_html
    assert form.progress.value == 0 and form.task is None


def test_switching_the_ledger_mid_run_is_undone_and_the_outcome_keeps_its_ledger(
        make_emulator: Callable[..., Emulator], connect: Callable[..., mnb.Client]) -> None:
    emu = make_emulator(batch_seconds=0.3)
    client = connect(emu)
    form = GenerationForm(client, NCR, "2025Q1")
    run_to_confirmation(form)
    form.confirm_button.click()
    assert form.ledger.disabled and form.period_picker.disabled  # in the browser: not changeable at all
    ncr = form.ledger.value
    form.ledger.value = ledger_id(client, BCP)  # from code, mid-run
    assert form.ledger.value == ncr and form.state == "running"
    assert "stay as they are until it ends" in form.status.value
    form.period_picker.value = "2025Q2"
    assert form.period_picker.period.label == "2025Q1" and form.state == "running"
    result = form.wait(timeout=20)
    assert form.state == "done" and set(result["ledger_name"]) == {NCR, BCP}
    assert "Batch generation: Net Carbon Removal" in form.static_html and "2025Q1" in form.static_html
    assert emu.count("create-batch-generation") == 1


def test_stop_waiting_leaves_the_task_running_and_says_how_to_reattach(
        make_emulator: Callable[..., Emulator], connect: Callable[..., mnb.Client]) -> None:
    emu = make_emulator(batch_seconds=0.3)
    client = connect(emu)
    form = GenerationForm(client, NCR, "2025Q1")
    run_to_confirmation(form)
    form.confirm_button.click()
    assert form.ledger.disabled and form.preview_button.disabled and not form.stop_button.disabled
    wait_until(lambda: form.task.status is not None and form.task.status.state == "running")
    form.stop_button.click()

    assert form.state == "detached" and form.error is None
    assert form.task.status.state == "running"
    hint = form.task.reattach
    assert hint.startswith(f"client.task({form.task.id!r}, ledgers=[") and "period=" in hint
    assert hint in html.unescape(form.status.value) and hint in html.unescape(form.static_html)
    assert form.wait() is None
    made = client.task(form.task.id).wait(timeout=20)  # the job went on without the form
    assert len(made) == 6
    assert emu.count("create-batch-generation") == 1


def test_the_form_waits_through_task_wait_and_stop_waiting_ends_its_pause_at_once(
        make_emulator: Callable[..., Emulator], connect: Callable[..., mnb.Client],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """No poll loop of the form's own: the background thread waits in ``Task.wait()`` (its schedule, here one
    look every few seconds), and Stop waiting ends the pause between two looks without waiting it out."""
    emu = make_emulator(batch_seconds=0.5)
    client = connect(emu, poll_min_interval=3.0, poll_interval=4.0, poll_max_interval=5.0)
    calls: list[dict[str, Any]] = []
    original = mnb.Task.wait

    def spy(task: mnb.Task, *args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return original(task, *args, **kwargs)

    monkeypatch.setattr(mnb.Task, "wait", spy)
    form = GenerationForm(client, NCR, "2025Q1")
    run_to_confirmation(form)
    form.confirm_button.click()
    wait_until(lambda: bool(calls))
    time.sleep(0.3)  # inside Task.wait(), pausing before its first look
    started = time.monotonic()
    assert form.stop_waiting()
    assert time.monotonic() - started < 1.5
    assert form.state == "detached" and len(calls) == 1
    assert isinstance(calls[0]["progress"], FormProgress) and calls[0]["stop"] is form._stop  # its bar, its event
    assert form.progress_label.value == "stopped waiting"
    made = form.task.wait(timeout=30)  # the task's own wait() is untouched by the form's
    assert len(made) == 6 and emu.count("create-batch-generation") == 1


def test_both_forms_share_one_base_and_the_states_are_an_enum(client: mnb.Client) -> None:
    assert issubclass(GenerationForm, FormBase) and issubclass(BatchExplorer, FormBase)
    assert [state.value for state in forms.FormState] == ["idle", "previewed", "confirming", "starting", "running",
                                                          "done", "failed", "detached", "outcome unknown"]
    form = GenerationForm(client, NCR, "2025Q1")
    assert form.state is forms.FormState.IDLE and form.state == "idle"
    assert repr(form).startswith("<GenerationForm idle: Net Carbon Removal, 2025Q1: Preview")
    form.preview()
    assert form.state is forms.FormState.PREVIEWED


def test_callback_exceptions_are_shown_kept_and_logged(emulator: Emulator, client: mnb.Client,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    form = GenerationForm(client, NCR, "2025Q1")
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
    assert form.offer is None  # not a missing input: nothing is offered
    assert "PermissionDeniedError" in form.status.value
    assert form.task.reattach in html.unescape(form.status.value)  # how to re-attach


def test_hostile_api_text_never_reaches_html_unescaped(emulator: Emulator, client: mnb.Client) -> None:
    created = requests.post(f"{emulator.url}/projects/123/ledgers", timeout=10,
                            headers={"Authorization": f"Bearer {emulator.token}"},
                            json={"ledger": {"name": HOSTILE, "unit": HOSTILE_UNIT}})
    assert created.status_code == 201, created.text
    hostile_id = created.json()["id"]

    form = GenerationForm(client, NCR, "2025Q1")
    assert f"{HOSTILE} ({HOSTILE_UNIT}) — no model" in dict(form.ledger.options)  # listed, as text
    form.ledger.value = hostile_id
    assert html.escape(HOSTILE) in form.status.value
    form.preview_button.click()  # refused, with the name in the message
    assert html.escape(HOSTILE) in form.model_html.value and html.escape(HOSTILE) in form.status.value
    assert html.escape(HOSTILE) in form.static_html
    form.ledger.value = ledger_id(client, NCR)
    run_to_confirmation(form)
    emulator.faults.fail("create-batch-generation", 422, message=f"<script>alert(2)</script>{HOSTILE}")
    form.confirm_button.click()
    assert isinstance(form.error, mnb.ValidationError)
    assert html.escape("<script>alert(2)</script>") in form.status.value

    explorer = BatchExplorer(client, [hostile_id, NCR], "2024")
    assert html.escape(HOSTILE) in explorer.totals_html.value and html.escape(HOSTILE_UNIT) in explorer.static_html

    for shown in (form, explorer):
        for widget in every_widget(shown.widget):
            assert not getattr(widget, "description_allow_html", False)
        for value in [*html_values(shown.widget), shown.static_html, shown._mimebundle()["text/html"]]:
            assert_safe_html(value)
            assert HOSTILE not in value and HOSTILE_UNIT not in value


def test_no_widget_state_holds_the_token(make_emulator: Callable[..., Emulator],
                                         connect: Callable[..., mnb.Client]) -> None:
    canary = "canary-forms-9f2a7c41d0"
    emu = make_emulator(token=canary)
    client = connect(emu, project_id=123)  # the skip is offered: its readings can be read
    form = GenerationForm(client, NCR, "2025Q1")
    run_to_confirmation(form)
    form.confirm_button.click()
    form.wait(timeout=20)
    failed = GenerationForm(client, NCR, "2025Q4")
    run_to_confirmation(failed)
    failed.confirm_button.click()
    with pytest.raises(mnb.TaskFailedError):
        failed.wait(timeout=20)
    failed.skip_button.click()  # the offer, the skip and the flags: still no token anywhere
    failed.generate_button.click()
    failed.confirm_button.click()
    failed.wait(timeout=20)
    explorer = BatchExplorer(client, [NCR, "Dry Feedstock Delivered"], "2024")
    explorer.delete_button.click()
    explorer.delete_confirm_button.click()
    for shown in (form, failed, explorer):
        text = all_state_text(shown.widget)
        assert NCR in text  # the walk does reach the state
        assert canary not in text and canary[-10:] not in text
        bundle = json.dumps(shown._mimebundle())
        assert canary not in shown.static_html and canary not in repr(shown) and canary not in bundle


# --- one output: the widget view and its static copy ---------------------------------------------------------


def test_one_display_carries_the_widget_view_and_the_static_copy(client: mnb.Client,
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    form = GenerationForm(client, NCR, "2025Q1")
    form._ipython_display_()  # outside IPython: the status as text, nothing crashes
    form.display()
    assert "Preview to count what would be created" in capsys.readouterr().out

    displays = Displays()
    monkeypatch.setattr(forms._base, "_ipython_display", lambda: displays)
    form._ipython_display_()
    assert len(displays.shown) == 1  # ONE output, not the widget and a copy under it
    bundle = displays.shown[0]
    assert set(bundle) == {"text/plain", "text/html", WIDGET_VIEW}
    assert bundle[WIDGET_VIEW]["model_id"] == form.widget.model_id
    assert bundle["text/html"] == form.static_html and bundle["text/plain"] == repr(form)
    assert form._repr_mimebundle_() == bundle

    form.period_picker.value = "2025Q2"  # a mere change of choice: the live view is not redrawn
    form.period_picker.value = "2025Q1"
    assert displays.updates == []
    form.preview()
    assert "Batches to create" in displays.updates[-1]["text/html"]
    assert displays.updates[-1][WIDGET_VIEW]["model_id"] == form.widget.model_id  # the same widget, new copy
    count = len(displays.updates)
    form._publish_static()  # nothing changed: the display is left alone (a live view is not redrawn)
    assert len(displays.updates) == count
    form.generate()
    form.confirm()
    form.wait(timeout=20)
    last = displays.updates[-1]
    assert last["text/html"] == form.static_html and PNG_URI in last["text/html"] and "NCR-2025-01" in last["text/html"]
    assert len(displays.shown) == 1
    form.period_picker.value = "2025Q2"  # clearing an outcome updates the copy
    assert "NCR-2025-01" not in displays.updates[-1]["text/html"] and "2025Q2" in displays.updates[-1]["text/html"]

    explorer = BatchExplorer(client, [NCR], "2024")
    explorer._ipython_display_()
    assert set(displays.shown[-1]) == {"text/plain", "text/html", WIDGET_VIEW}

    form.close()  # closed widgets: the display keeps the static copy only
    assert set(displays.updates[-1]) == {"text/plain", "text/html"}
    assert displays.updates[-1]["text/html"] == form.static_html


def test_a_kernel_saves_one_output_per_form_that_nbconvert_renders_as_the_static_copy(
        make_emulator: Callable[..., Emulator], tmp_path: Path) -> None:
    """A real kernel (nbclient): each form cell leaves one output holding the widget view and the final static
    copy; exported without widget state (as JupyterLab saves it), the HTML shows the copies; no token anywhere."""
    import nbformat
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    emu = make_emulator(token="canary-kernel-4b7e0c19d2", batch_seconds=0.05)
    cells = [
        "import mangrove_nb as mnb\nclient = mnb.connect(poll_min_interval=0.05, poll_interval=0.1, "
        "poll_max_interval=0.2)",
        'form = mnb.GenerationForm(client, "Net Carbon Removal", "2025Q1")\nform',
        "form.preview(); form.generate(); form.confirm(); new = form.wait(timeout=60); len(new)",
        'explorer = mnb.BatchExplorer(client, ["Net Carbon Removal"], "2024")\nexplorer',
    ]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
    env = {**os.environ, "MANGROVE_API_URL": emu.url, "MANGROVE_API_TOKEN": emu.token, "MANGROVE_NB_QUIET": "1"}
    NotebookClient(notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
                   ).execute(env=env)
    saved = nbformat.writes(notebook)
    assert emu.token not in saved and emu.token[-10:] not in saved  # widget state included

    for index, shows in ((1, "New batches (6)"), (3, "Batches: Net Carbon Removal")):
        outputs = notebook.cells[index].outputs
        assert len(outputs) == 1, outputs
        data = outputs[0]["data"]
        assert set(data) == {"text/plain", "text/html", WIDGET_VIEW}
        assert shows in data["text/html"] and PNG_URI in data["text/html"]
        assert_safe_html(data["text/html"])

    notebook.metadata.pop("widgets", None)  # JupyterLab saves no widget state by default
    body, _ = HTMLExporter().from_notebook_node(notebook)
    assert body.count('class="mnb-static"') == 2  # each form once, as its static copy
    assert "New batches (6)" in body and "NCR-2025-03" in body
    assert WIDGET_VIEW not in body and "jupyter-widgets" not in body
    assert emu.token not in body
    assert emu.count("create-batch-generation") == 1


# --- the batch explorer -------------------------------------------------------------------------------------


def test_batch_explorer_tables_totals_plot_refresh_and_csv(client: mnb.Client, tmp_path: Any,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    explorer = BatchExplorer(client, [NCR, BCP], "2024")
    frame = explorer.frame
    assert len(frame) == 24 and set(frame["ledger_id"]) == set(explorer.ledgers.value)
    totals = explorer.totals.set_index("ledger_name")
    for name, ledger in ((NCR, "NCR"), (BCP, "BCP")):
        mine = frame[frame["tracking_id"].str.startswith(ledger)]
        assert totals.loc[name, "total"] == pytest.approx(mine["output_value"].sum())
        assert totals.loc[name, "unit"] == "t" and totals.loc[name, "batches"] == 12
        assert totals.loc[name, "without_input"] == 0
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
    explorer.ledgers.value = tuple(ledger_id(client, n) for n in (NCR, BCP))
    monkeypatch.chdir(tmp_path)
    explorer.export_button.click()
    assert explorer.error is None
    written = tmp_path / "batches_2024.csv"
    assert explorer.exported == written.resolve() and html.escape(str(written)) in explorer.export_html.value
    with written.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 24 and {r["ledger_name"] for r in rows} == {NCR, BCP}
    assert {"skipped_inputs", "note"} <= set(rows[0])
    assert explorer.export_csv(tmp_path / "mine.csv") == (tmp_path / "mine.csv").resolve()

    explorer.period_picker.mode.value = "Custom range"
    explorer.period_picker.end.value = ""  # an invalid period is shown and kept
    assert isinstance(explorer.error, mnb.PeriodError) and "both dates" in explorer.status.value


def test_tables_are_padded_with_text_left_and_numbers_right(client: mnb.Client) -> None:
    explorer = BatchExplorer(client, [NCR, BCP], "2024Q1")
    form = GenerationForm(client, NCR, "2025Q1")
    form.preview()
    for table in (explorer.totals_html.value, explorer.table_html.value, form.preview_html.value,
                  form.inputs_html.value, explorer.static_html, form.static_html):
        cells = Elements(table).cells
        assert cells, table
        for tag, style, text in cells:
            assert "padding:" in style, (tag, style)
            if tag == "td":
                number = re.fullmatch(r"-?\d{1,3}(,\d{3})*(\.\d+)?", text) is not None
                assert ("text-align:right" if number else "text-align:left") in style, (tag, style, text)
    headers = {text: style for tag, style, text in Elements(explorer.totals_html.value).cells if tag == "th"}
    assert "text-align:right" in headers["Total output"] and "text-align:left" in headers["Ledger"]
    assert 'style="border-collapse:collapse;table-layout:auto;margin:4px 0' in explorer.table_html.value


def test_skipped_inputs_are_flagged_in_the_explorer(client: mnb.Client, tmp_path: Path) -> None:
    # November has other Electricity Consumption readings: the skip drops them too, which is accepted here.
    client.generate(NCR, "2025-11", skipped_data_point_type_ids=[ELECTRICITY],
                    drop_existing_readings=True).wait(timeout=20)
    client.generate(NCR, "2025Q4").wait(timeout=20)
    explorer = BatchExplorer(client, [NCR, BCP], "2025Q4")
    notes = dict(zip(explorer.frame["tracking_id"], explorer.frame["note"], strict=True))
    assert notes["NCR-2025-11"] == SKIP_NOTE
    assert pd.isna(notes["NCR-2025-10"]) and pd.isna(notes["NCR-2025-12"])
    assert html.escape(SKIP_NOTE) in explorer.table_html.value and html.escape(SKIP_NOTE) in explorer.static_html
    row = next(r for r in explorer.table_html.value.split("<tr") if "NCR-2025-11" in r)
    assert 'class="mnb-skipped"' in row and "background:#fff3c4" in row
    assert explorer.totals.set_index("ledger_name").loc[NCR, "without_input"] == 1
    assert "generated without an input" in explorer.status.value and "Without an input" in explorer.totals_html.value
    with explorer.export_csv(tmp_path / "q4.csv").open(newline="") as handle:
        exported = {r["tracking_id"]: r for r in csv.DictReader(handle)}
    assert exported["NCR-2025-11"]["note"] == SKIP_NOTE
    assert exported["NCR-2025-11"]["skipped_inputs"] == "Electricity Consumption"


def test_the_explorer_deletes_a_failed_batch_only_after_confirmation(emulator: Emulator,
                                                                      client: mnb.Client) -> None:
    explorer = BatchExplorer(client, [NCR, "Dry Feedstock Delivered"], "2024")
    failed = explorer.frame[explorer.frame["state"] == "failed"]
    assert failed["tracking_id"].tolist() == ["DFD-2024-10-almond-shells"]
    assert explorer.delete_box.layout.display == "" and explorer.delete_confirm_box.layout.display == "none"
    assert explorer.failed.value == failed["id"].item()

    complete = explorer.frame.loc[explorer.frame["state"] == "complete", "id"].iloc[0]
    with pytest.raises(mnb.PreconditionError, match="only failed batches"):
        explorer.delete_failed_batch(complete)  # a complete batch is never offered for deletion
    with pytest.raises(mnb.PreconditionError, match="Nothing to delete"):
        explorer.confirm_delete()

    explorer.delete_button.click()
    assert explorer.delete_confirm_box.layout.display == "" and "cannot be undone" in explorer.delete_html.value
    explorer.delete_cancel_button.click()  # "Keep it"
    assert explorer.delete_confirm_box.layout.display == "none" and "Nothing was deleted" in explorer.status.value
    assert emulator.count("delete-batch") == 0

    explorer.delete_button.click()
    explorer.delete_confirm_button.click()
    explorer.delete_confirm_button.click()  # a double click deletes once
    assert emulator.count("delete-batch") == 1 and explorer.error is None, explorer.status.value
    assert explorer.deleted[0]["tracking_id"] == "DFD-2024-10-almond-shells"
    assert "DFD-2024-10-almond-shells" not in set(explorer.frame["tracking_id"])
    assert explorer.delete_box.layout.display == "none"  # no failed batch left
    said = html.unescape(explorer.status.value)
    assert "Deleted the failed batch DFD-2024-10-almond-shells" in said and "generate 2024-10 again" in said
    assert "Deleted here: DFD-2024-10-almond-shells (2024-10)" in explorer.static_html
    assert client.preview("Dry Feedstock Delivered", "2024-10")["count"].sum() == 1  # its partition is free again


def test_a_batch_no_longer_failed_is_not_deleted(emulator: Emulator, client: mnb.Client) -> None:
    explorer = BatchExplorer(client, ["Dry Feedstock Delivered"], "2024-10")
    batch_id = explorer.failed.value
    explorer.delete_failed_batch()
    client.delete_batch(batch_id)  # someone else deleted it meanwhile
    explorer.delete_confirm_button.click()
    assert isinstance(explorer.error, mnb.PreconditionError) and "nothing was deleted" in explorer.status.value
    assert emulator.count("delete-batch") == 1  # only the other one


def test_forms_are_not_imported_with_the_package() -> None:
    code = ("import sys, mangrove_nb; "
            "print(sorted(m for m in ('mangrove_nb.forms', 'ipywidgets', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"
    assert forms.__all__ == ["BatchExplorer", "GenerationForm", "PeriodPicker"]


def test_a_lost_answer_to_confirm_keeps_the_form_on_outcome_unknown_until_reconciled(
        emulator: Emulator, client: mnb.Client) -> None:
    form = GenerationForm(client, NCR, "2025Q1")
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
        client.generate(ledger_id(client, NCR), "2025Q1")
    # Another ledger: nothing of the unknown outcome under its name; back: the unknown outcome again.
    form.ledger.value = ledger_id(client, "Dry Feedstock Delivered")
    assert form.state == "idle" and "Outcome unknown" not in form.static_html
    assert form.reconcile_button.layout.display == "none"
    form.ledger.value = ledger_id(client, NCR)
    assert form.state == "outcome unknown" and "Net Carbon Removal 2025Q1" in form.status.value
    assert emulator.count("create-batch-generation") == 1
    wait_until(lambda: client.reconcile(ledger_id(client, NCR), "2025Q1").complete)
    form.reconcile_button.click()
    assert form.error is None or form.state == "done", form.status.value
    assert form.state == "done" and "nothing left to generate" in form.status.value
    assert len(form.reconciliation.batches) == 3 and "NCR-2025-01" in form.result_html.value
    assert form.reconcile_button.layout.display == "none"
    assert emulator.count("create-batch-generation") == 1


def test_a_server_that_quotes_the_token_back_never_gets_it_into_the_form(
        make_emulator: Callable[..., Emulator], connect: Callable[..., mnb.Client],
        caplog: pytest.LogCaptureFixture) -> None:
    canary = "canary-reflected-5e1b9d7a3c"
    emu = make_emulator(token=canary)
    client = connect(emu)
    form = GenerationForm(client, NCR, "2025Q1")
    explorer = BatchExplorer(client, [NCR], "2024")
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
    explorer = BatchExplorer(client, [NCR], "2024Q1")
    hostile = ['=HYPERLINK("http://x","y")', "+1+1", "-2+3", "@SUM(A1)", "\t=1", ' =HYPERLINK("http://x","y")']
    for row, text in enumerate(hostile[:3]):
        explorer.frame.loc[row, "tracking_id"] = text
    explorer.frame.loc[0, "feedstock"] = hostile[3]
    explorer.frame.loc[1, "feedstock"] = hostile[4]
    explorer.frame.loc[2, "feedstock"] = hostile[5]
    written = explorer.export_csv(tmp_path / "out.csv")
    with written.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    cells = [value for r in rows for value in r.values()]
    assert {f"'{text}" for text in hostile} <= set(cells)
    assert not [c for c in cells if c[:1] == "\t" or c.lstrip()[:1] in ("=", "+", "@")]
    assert all(float(r["output_value"]) == pytest.approx(v) for r, v in zip(rows, explorer.frame["output_value"],
                                                                           strict=True))  # numbers stay numbers
    with pytest.raises(mnb.ValidationError, match=r"does not exist; create it first") as caught:
        explorer.export_csv(tmp_path / "missing" / "out.csv")
    assert caught.value.argument == "path"
    with pytest.raises(mnb.ValidationError, match="is a folder"):
        explorer.export_csv(tmp_path)


def test_spreadsheet_safe_sees_a_formula_after_leading_whitespace() -> None:
    """A spreadsheet skips leading whitespace before a formula: `` =1`` and ``"\t=1"`` run as well as ``=1``."""
    frame = pd.DataFrame({
        "text": pd.array([" =HYPERLINK(\"http://x\",\"y\")", "\t=1", "\n+1", "\u00a0@SUM(A1)", "  -2+3", "\rx",
                          "=1", " plain", "a=1", "", None], dtype="string"),
        "objects": [" =1", "\t@x", " ok", 5, -3.5, None, "-1", "x", "y", "z", " "],
        "numbers": pd.array([-1.5, 2.0, -0.0, None, 4.0, -7.25, 1.0, 2.0, 3.0, 4.0, 5.0], dtype="Float64"),
        "integers": [-1, 2, -3, 4, -5, 6, -7, 8, -9, 10, -11],
    })
    safe = forms.spreadsheet_safe(frame)
    assert safe["text"].tolist()[:8] == ["' =HYPERLINK(\"http://x\",\"y\")", "'\t=1", "'\n+1", "'\u00a0@SUM(A1)",
                                         "'  -2+3", "'\rx", "'=1", " plain"]
    assert safe["text"].tolist()[8:10] == ["a=1", ""] and pd.isna(safe["text"].iloc[10])
    assert safe["objects"].tolist()[:5] == ["' =1", "'\t@x", " ok", 5, -3.5] and safe["objects"].iloc[6] == "'-1"
    assert safe["text"].dtype == frame["text"].dtype and safe["objects"].dtype == object
    pd.testing.assert_series_equal(safe["numbers"], frame["numbers"])  # numbers stay numbers
    pd.testing.assert_series_equal(safe["integers"], frame["integers"])
    assert frame["text"].iloc[0] == " =HYPERLINK(\"http://x\",\"y\")"  # the input is not changed
