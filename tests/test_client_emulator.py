"""The analyst API (``mangrove_nb.connect`` / ``Client``) end to end against the emulator over loopback.

Seed (see mangrove_nb/emulator/seed.py): project 123; "Net Carbon Removal" (its model also writes "Biochar
Produced", so previews give two rows), "Biochar Produced", "Dry Feedstock Delivered" (per feedstock),
"Biochar Applied to Soil" (manual-select input), "Credits Issued" (no model). 2024 is generated; May 2025 is a
gap; Q4 2025 fails for a missing electricity reading unless type 7 is skipped.
"""

from __future__ import annotations

import io
import time as time_module
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pandas as pd
import pytest
from helpers import FAST, connect_to

import mangrove_nb as mnb
from mangrove_nb.emulator import Emulator
from mangrove_nb.errors import (
    AuthenticationError,
    ConfigurationError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionError,
    TaskFailedError,
    TaskTimeoutError,
    ValidationError,
)
from mangrove_nb.frames import BATCHES_SCHEMA, EVENTS_SCHEMA, LEDGERS_SCHEMA, PREVIEW_SCHEMA, REQUIRED_INPUTS_SCHEMA
from mangrove_nb.periods import PeriodError

NCR, BP, DFD, BAS, CRI = ("Net Carbon Removal", "Biochar Produced", "Dry Feedstock Delivered",
                          "Biochar Applied to Soil", "Credits Issued")
PROJECT = 123


@pytest.fixture
def ids(client: mnb.Client) -> dict[str, str]:
    """Ledger name -> id, as the client lists them."""
    ledgers = client.ledgers()
    return dict(zip(ledgers["name"], ledgers["id"], strict=True))


def assert_schema(frame: pd.DataFrame, schema: Any) -> None:
    assert list(frame.columns) == list(schema)
    assert {c: str(t) for c, t in frame.dtypes.items()} == dict(schema)


# --- connecting ----------------------------------------------------------------------------------------------


def test_connect_reads_token_and_url_from_the_environment(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no arguments, connect() uses MANGROVE_API_TOKEN and MANGROVE_API_URL."""
    monkeypatch.setenv("MANGROVE_API_TOKEN", emulator.token)
    monkeypatch.setenv("MANGROVE_API_URL", emulator.url)
    with mnb.connect(show_progress=False) as from_env:
        assert from_env.settings.base_url == emulator.url
        assert len(from_env.ledgers()) == 5


def test_connect_arguments_beat_the_environment(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """Explicit token and base_url win over a wrong environment."""
    monkeypatch.setenv("MANGROVE_API_TOKEN", "wrong-token-from-the-environment")
    monkeypatch.setenv("MANGROVE_API_URL", "https://nowhere.invalid/api/v1")
    with mnb.connect(emulator.token, emulator.url, show_progress=False) as explicit:
        assert len(explicit.ledgers()) == 5
    with mnb.connect(base_url=emulator.url, show_progress=False) as env_token, pytest.raises(AuthenticationError):
        env_token.ledgers()


def test_connect_without_a_token_when_not_interactive_says_how(emulator: Emulator,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """No token anywhere and no terminal: ConfigurationError naming the environment variable."""
    monkeypatch.delenv("MANGROVE_API_TOKEN", raising=False)
    with pytest.raises(ConfigurationError, match="MANGROVE_API_TOKEN"):
        mnb.connect(base_url=emulator.url, interactive=False)


@pytest.mark.parametrize("url", ["http://example.com/api/v1", "http://10.0.0.5:8765/api/v1"])
def test_plain_http_is_refused_off_loopback(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """http:// to a non-loopback host is refused (argument or environment), unless explicitly allowed."""
    with pytest.raises(ConfigurationError, match="https"):
        mnb.connect("some-token-value", url)
    monkeypatch.setenv("MANGROVE_API_URL", url)
    with pytest.raises(ConfigurationError, match="MANGROVE_API_URL"):
        mnb.connect("some-token-value")
    with mnb.connect("some-token-value", url, allow_http=True) as opted_in:
        assert opted_in.settings.base_url == url


def test_loopback_http_is_allowed_by_name(emulator: Emulator) -> None:
    """http://localhost (the emulator) needs no opt-in."""
    with mnb.connect(emulator.token, emulator.url.replace("127.0.0.1", "localhost"), **FAST) as local:
        assert len(local.ledgers()) == 5


def test_closed_client_refuses_calls(emulator: Emulator) -> None:
    """After close() (or the with block), calls raise a MangroveError saying how to reconnect."""
    with connect_to(emulator.url, emulator.token) as short_lived:
        pass
    with pytest.raises(mnb.MangroveError, match="closed"):
        short_lived.ledgers()
    assert emulator.count("list-all-ledgers") == 0


# --- reading -------------------------------------------------------------------------------------------------


def test_ledgers(client: mnb.Client) -> None:
    """ledgers(): the five seeded ledgers with the documented schema; only Credits Issued has no model."""
    ledgers = client.ledgers()
    assert_schema(ledgers, LEDGERS_SCHEMA)
    assert sorted(ledgers["name"]) == sorted([NCR, BP, DFD, BAS, CRI])
    has_model = dict(zip(ledgers["name"], ledgers["has_model"], strict=True))
    assert [name for name, flag in has_model.items() if not flag] == [CRI]
    partition = dict(zip(ledgers["name"], ledgers["partition_type"], strict=True))
    assert partition[DFD] == "feedstock" and partition[NCR] == "time"


def test_required_inputs(client: mnb.Client, ids: dict[str, str]) -> None:
    """required_inputs(): the NCR model's five inputs; BAS has one manual-select input fed by Biochar Produced."""
    ncr = client.required_inputs(ids[NCR])
    assert_schema(ncr, REQUIRED_INPUTS_SCHEMA)
    assert ncr["id"].tolist() == [1, 2, 5, 6, 7] and not ncr["is_manual_select"].any()
    bas = client.required_inputs(ids[BAS])
    assert bas["is_manual_select"].tolist() == [True]
    assert ids[BP] in bas.loc[0, "output_of_ledgers"]


def test_preview_gives_one_row_per_ledger_the_model_writes(client: mnb.Client, ids: dict[str, str]) -> None:
    """preview(NCR, 2025Q1): two rows (NCR and Biochar Produced), three batches each; nothing is created."""
    preview = client.preview(ids[NCR], "2025Q1")
    assert_schema(preview, PREVIEW_SCHEMA)
    assert dict(zip(preview["ledger_id"], preview["count"], strict=True)) == {ids[NCR]: 3, ids[BP]: 3}
    assert client.batches(ids[NCR], "2025Q1").empty


def test_generate_and_wait_returns_exactly_the_previewed_batches(emulator: Emulator, client: mnb.Client,
                                                                 ids: dict[str, str]) -> None:
    """wait() returns the new batches: as many per ledger as the preview said, inside the task's server times."""
    preview = client.preview(ids[NCR], "2025Q1")
    task = client.generate(ids[NCR], "2025Q1")
    new = task.wait()
    assert_schema(new, BATCHES_SCHEMA)
    assert Counter(new["ledger_id"]) == dict(zip(preview["ledger_id"], preview["count"], strict=True))
    assert new["id"].is_unique
    assert task.status is not None and task.status.state == "complete"
    assert task.status.started_at is not None and task.status.finished_at is not None
    assert (new["created_at"] >= task.status.started_at).all() and (new["created_at"] <= task.status.finished_at).all()
    assert (new["start_time"] >= pd.Timestamp("2025-01-01", tz="UTC")).all()
    assert emulator.count("create-batch-generation") == 1
    assert new.attrs["task"] == task.id


def test_a_later_task_returns_only_its_own_batches(client: mnb.Client, ids: dict[str, str]) -> None:
    """Batches made by an earlier task on the same ledgers are not counted again (server timestamps decide)."""
    january = client.generate(ids[NCR], "2025-01").wait()
    february = client.generate(ids[NCR], "2025-02").wait()
    assert len(january) == 2 and len(february) == 2
    assert set(january["id"]).isdisjoint(february["id"])
    assert (february["start_time"] == pd.Timestamp("2025-02-01", tz="UTC")).all()


def test_generations_running_at_once_each_return_only_their_own_batches(
        make_emulator: Callable[..., Emulator]) -> None:
    """Two generations of one ledger for periods that do not overlap (the API allows that), running at once: each
    task's wait() returned the other's batches too (created in its time window), so the two results added up to
    more tonnes than were made. Now each returns the batches of its own period, and the call its messages give to
    re-attach (task.reattach) returns the same from a new client."""
    emu = make_emulator(batch_seconds=0.4)
    with connect_to(emu.url, emu.token) as client:
        ncr = client.ledgers().set_index("name").loc[NCR, "id"]
        quarter, october = client.generate(ncr, "2025Q3"), client.generate(ncr, "2025-10")
        made_q3, made_oct = quarter.wait(timeout=60), october.wait(timeout=60)
        assert quarter.status is not None and october.status is not None
        assert quarter.status.started_at is not None and october.status.started_at is not None
        assert quarter.status.finished_at is not None and october.status.finished_at is not None
        # They ran at once: each window holds batches of the other.
        assert october.status.started_at < quarter.status.finished_at
        assert quarter.status.started_at < october.status.finished_at
        assert set(made_q3["id"]).isdisjoint(made_oct["id"])
        assert sorted(made_q3["start_time"].dt.strftime("%Y-%m").unique()) == ["2025-07", "2025-08", "2025-09"]
        assert list(made_oct["start_time"].dt.strftime("%Y-%m").unique()) == ["2025-10"]
        everything = client.batches(None, ("2025-07-01", "2025-10-31"))
        assert sorted([*made_q3["id"], *made_oct["id"]]) == sorted(everything["id"])
        assert quarter.reattach.startswith(f"client.task({quarter.id!r}, ledgers=[")
        assert quarter.reattach.endswith("period='2025Q3').wait()")
        with connect_to(emu.url, emu.token) as fresh:
            ledgers = sorted(made_q3["ledger_id"].unique())
            again = fresh.task(quarter.id, ledgers=ledgers, period="2025Q3").wait()
        assert sorted(again["id"]) == sorted(made_q3["id"])


def test_the_reattach_call_runs_for_a_date_range_and_takes_ledger_names(client: mnb.Client,
                                                                          ids: dict[str, str]) -> None:
    """A date range's label (2025-07-01/2025-08-31) is no period parse_period reads, and task.reattach gave it, so the
    call every "re-attach with" message shows raised PeriodError; client.task(ledgers=) took no names and split a
    single string into characters."""
    task = client.generate(ids[NCR], ("2025-07-01", "2025-08-31"))
    made = task.wait()
    assert "period=('2025-07-01T00:00:00Z', '2025-08-31T23:59:59Z')" in task.reattach
    again = eval(task.reattach, {"client": client})  # noqa: S307 - our own message, run as an analyst would
    assert sorted(again["id"]) == sorted(made["id"]) and len(made) == 4
    named = client.task(task.id, ledgers=NCR, period=("2025-07-01", "2025-08-31")).wait()
    assert sorted(named["id"]) == sorted(made.loc[made["ledger_id"] == ids[NCR], "id"])
    with pytest.raises(mnb.ValidationError, match="No ledger is called"):
        client.task(task.id, ledgers=["Net Carbon Removl"])


def test_without_started_at_the_window_opens_when_the_task_was_made(client: mnb.Client, ids: dict[str, str],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The contract allows a null started_at: wait() then counted every batch created before the task finished,
    such as February's, generated earlier, in 2025Q1's result (one month twice in the quick start's total)."""
    february = client.generate(ids[NCR], "2025-02").wait()
    polled = client.http.async_task

    def without_started_at(task_id: int | str) -> dict[str, Any]:
        return {**polled(task_id), "started_at": None}

    monkeypatch.setattr(client.http, "async_task", without_started_at)
    rest = client.generate(ids[NCR], "2025Q1").wait()
    assert set(rest["id"]).isdisjoint(february["id"])
    assert sorted(rest["start_time"].dt.strftime("%Y-%m").unique()) == ["2025-01", "2025-03"]


def test_reattach_from_a_new_client(emulator: Emulator, client: mnb.Client, ids: dict[str, str]) -> None:
    """task(id).wait() from another client (as after a kernel restart) returns the same batches."""
    task = client.generate(ids[NCR], "2025Q1")
    original = task.wait()
    with connect_to(emulator.url, emulator.token) as fresh:
        again = fresh.task(task.id).wait()
        as_text = fresh.task(str(task.id), ledgers=[ids[NCR]]).wait()
    assert sorted(again["id"]) == sorted(original["id"])
    assert sorted(as_text["id"]) == sorted(original.loc[original["ledger_id"] == ids[NCR], "id"])
    assert emulator.count("create-batch-generation") == 1


def test_reattach_while_running_waits_for_the_end(make_emulator: Callable[..., Emulator]) -> None:
    """A new client attaching to a running task waits for it and returns all of its batches."""
    emu = make_emulator(batch_seconds=0.1)
    with connect_to(emu.url, emu.token) as first, connect_to(emu.url, emu.token) as second:
        ncr = first.ledgers().set_index("name").loc[NCR, "id"]
        task = first.generate(ncr, "2025Q1")
        assert second.task(task.id).refresh().state in ("pending", "running")
        made = second.task(task.id).wait()
    assert len(made) == 6


def test_batches_with_and_without_period(client: mnb.Client, ids: dict[str, str]) -> None:
    """batches(): all of a ledger's, or only those starting in the period; sorted by start time."""
    every = client.batches(ids[NCR])
    assert_schema(every, BATCHES_SCHEMA)
    assert len(every) == 12 and every["start_time"].is_monotonic_increasing
    quarter = client.batches(ids[NCR], "2024Q2")
    assert quarter["start_time"].dt.month.tolist() == [4, 5, 6]
    assert (quarter["ledger_id"] == ids[NCR]).all()
    assert len(client.batches(ids[NCR], "2024-07")) == 1


def test_batches_of_several_ledgers_all_ledgers_and_by_state(client: mnb.Client, ids: dict[str, str]) -> None:
    """A list of ledgers is concatenated; None lists every batch; state= filters on the server."""
    both = client.batches([ids[NCR], ids[BP]], "2024Q1")
    assert Counter(both["ledger_id"]) == {ids[NCR]: 3, ids[BP]: 3}
    assert both["start_time"].is_monotonic_increasing
    everything = client.batches()  # GET /batches items do not name their ledger (as documented): ledger_id is NA
    per_ledger = client.batches([ids[NCR], ids[BP], ids[DFD]])
    assert sorted(everything["id"]) == sorted(per_ledger["id"]) and everything["id"].is_unique
    failed = client.batches(ids[DFD], state="failed")
    assert len(failed) >= 1 and (failed["state"] == "failed").all()
    assert failed["model_run_error"].notna().all()
    assert len(client.batches(ids[DFD], state="complete")) == len(client.batches(ids[DFD])) - len(failed)


def test_events(client: mnb.Client) -> None:
    """events(): one row per data point; a period keeps only events starting in it; May 2025 is empty."""
    every = client.events(PROJECT)
    assert_schema(every, EVENTS_SCHEMA)
    assert every["event_id"].nunique() > 100
    march = client.events(PROJECT, "2025-03")
    assert len(march) > 0
    assert march["start_time"].between(pd.Timestamp("2025-03-01", tz="UTC"),
                                       pd.Timestamp("2025-03-31 23:59:59", tz="UTC")).all()
    assert set(march["event_type"]) == {"Feedstock Delivery", "Pyrolysis Run"}
    may = client.events(PROJECT, "2025-05")
    assert may.empty
    assert_schema(may, EVENTS_SCHEMA)


def test_candidates_and_generating_the_manual_select_ledger(emulator: Emulator, client: mnb.Client,
                                                            ids: dict[str, str]) -> None:
    """candidates() lists upstream batches; their output data points generate the manual-select ledger."""
    candidates = client.candidates(ids[BAS], "2024Q1")
    assert len(candidates) == 3 and (candidates["ledger_id"] == ids[BP]).all()
    assert candidates["output_data_point_id"].str.startswith("dp_").all()
    task = client.generate(ids[BAS], "2024Q1", data_point_ids=candidates["output_data_point_id"].tolist())
    made = task.wait()
    assert Counter(made["ledger_id"]) == {ids[BAS]: 3}
    assert sorted(made["start_time"].dt.month) == [1, 2, 3]
    assert emulator.count("create-batch-generation") == 1


def test_reconcile_before_and_after_generating(client: mnb.Client, ids: dict[str, str]) -> None:
    """reconcile(): what the server has and what is still missing for a ledger and period."""
    before = client.reconcile(ids[NCR], "2025Q1")
    assert before.batches.empty and not before.complete
    assert before.still_missing["count"].sum() == 6
    client.generate(ids[NCR], "2025Q1").wait()
    after = client.reconcile(ids[NCR], "2025Q1")
    assert len(after.batches) == 3 and after.complete
    assert "3 batch(es)" in repr(after) and "nothing" not in repr(before)


def test_reconcile_after_a_failure_says_to_fix_it_first(client: mnb.Client, ids: dict[str, str]) -> None:
    """After a failed generation, reconcile() said "Generate what is still missing with client.generate(...)" (which
    fails the same way), and with a failed batch on the server "Nothing is left to generate" (a failed batch is no
    figure). Now it names the failed batch and its error, and says to fix it first."""
    with pytest.raises(mnb.TaskFailedError):
        client.generate(ids[NCR], "2025Q4").wait()  # the seed lacks November's electricity reading
    after = client.reconcile(ids[NCR], "2025Q4")
    assert not after.complete and "fix what its error named first" in after.advice()
    seeded = client.reconcile("Dry Feedstock Delivered", "2024Q4")  # its almond-shell batch failed (moisture 112 %)
    advice = seeded.advice()
    failed = seeded.batches.loc[seeded.batches["state"] == "failed", "id"].iloc[0]
    assert advice.startswith(f"1 batch(es) of the period failed (DFD-2024-10-almond-shells ({failed}): Feedstock "
                             "Moisture Content is 112 %"), advice
    assert "Nothing is left" not in advice and "client.delete_batch(id)" in advice


# --- pre-checks ----------------------------------------------------------------------------------------------


def test_ledger_without_model_is_refused_before_sending(emulator: Emulator, client: mnb.Client,
                                                        ids: dict[str, str]) -> None:
    """Credits Issued has no model: PreconditionError, and no preview or trigger reaches the server."""
    with pytest.raises(PreconditionError, match="no linked model"):
        client.generate(ids[CRI], "2025Q1")
    assert emulator.count("generate-preview") == 0 and emulator.count("create-batch-generation") == 0


def test_manual_select_without_ids_names_the_inputs_and_how_to_list_candidates(emulator: Emulator,
                                                                               client: mnb.Client,
                                                                               ids: dict[str, str]) -> None:
    """BAS without data_point_ids: the error names the input, its source ledger and client.candidates()."""
    with pytest.raises(PreconditionError) as caught:
        client.generate(ids[BAS], "2024Q1")
    message = str(caught.value)
    assert "Biochar Produced" in message and ids[BP] in message and "candidates(" in message
    assert emulator.count("create-batch-generation") == 0


def test_nothing_to_generate_is_refused_before_the_trigger(emulator: Emulator, client: mnb.Client,
                                                           ids: dict[str, str]) -> None:
    """2024 is already generated: PreconditionError after the preview, no trigger sent."""
    with pytest.raises(PreconditionError, match="Nothing to generate"):
        client.generate(ids[NCR], "2024")
    assert emulator.count("generate-preview") == 1 and emulator.count("create-batch-generation") == 0


def test_second_generation_while_the_first_runs(make_emulator: Callable[..., Emulator]) -> None:
    """A repeat for the same ledger and period is refused locally; even_if_running=True sends it and the
    server's 422 comes back as ValidationError with its message."""
    emu = make_emulator(batch_seconds=0.2)
    with connect_to(emu.url, emu.token) as client:
        ncr = client.ledgers().set_index("name").loc[NCR, "id"]
        first = client.generate(ncr, "2025Q1")
        with pytest.raises(PreconditionError, match=f"Task {first.id}"):
            client.generate(ncr, "2025-02")
        assert emu.count("create-batch-generation") == 1
        with pytest.raises(ValidationError, match="still generating") as caught:
            client.generate(ncr, "2025Q1", even_if_running=True)
        assert caught.value.status_code == 422
        assert emu.count("create-batch-generation") == 2
        assert len(first.wait()) == 6
        with pytest.raises(PreconditionError, match="Nothing to generate"):
            client.generate(ncr, "2025Q1")


def test_overlap_on_a_ledger_the_running_model_also_writes_is_refused(make_emulator: Callable[..., Emulator]) -> None:
    """Net Carbon Removal's model also writes Biochar Produced: generating Biochar Produced for an overlapping
    month while it runs is refused before anything is sent."""
    emu = make_emulator(batch_seconds=0.2)
    with connect_to(emu.url, emu.token) as client:
        names = client.ledgers().set_index("name")["id"]
        running = client.generate(names[NCR], "2025Q1")
        with pytest.raises(PreconditionError, match=f"Task {running.id}"):
            client.generate(names["Biochar Produced"], "2025-02")
        assert emu.count("create-batch-generation") == 1
        running.wait()


def test_task_failure_carries_the_server_message_and_skipping_fixes_it(client: mnb.Client,
                                                                       ids: dict[str, str]) -> None:
    """Q4 2025 fails on the missing electricity reading (TaskFailedError with the server's words); skipping
    input type 7 over the quarter is refused before sending (it would drop October's and December's readings);
    skipping it in November alone, then generating the other months, succeeds."""
    task = client.generate(ids[NCR], "2025Q4")
    with pytest.raises(TaskFailedError) as caught:
        task.wait()
    assert caught.value.task_id == task.id
    assert caught.value.error_message and "electricity" in caught.value.error_message.lower()
    assert caught.value.error_message[:60] in str(caught.value)
    assert client.batches(ids[NCR], "2025Q4").empty
    with pytest.raises(PreconditionError, match=r"2025-10, 2025-11, 2025-12.*skip_in_every_month=True"):
        client.generate(ids[NCR], "2025Q4", skipped_data_point_type_ids=[7])
    made = client.generate(ids[NCR], "2025-11", skipped_data_point_type_ids=[7], drop_existing_readings=True).wait()
    assert Counter(made["ledger_id"]) == {ids[NCR]: 1, ids[BP]: 1}
    rest = client.generate(ids[NCR], "2025Q4").wait()
    assert Counter(rest["ledger_id"]) == {ids[NCR]: 2, ids[BP]: 2}


def test_wait_timeout_names_the_task_and_the_task_goes_on(make_emulator: Callable[..., Emulator]) -> None:
    """TaskTimeoutError after the wait timeout names the task id; the task is still there to re-attach to."""
    emu = make_emulator(batch_seconds=0.5)
    with connect_to(emu.url, emu.token) as client:
        ncr = client.ledgers().set_index("name").loc[NCR, "id"]
        task = client.generate(ncr, "2025Q1")
        started = time_module.monotonic()
        with pytest.raises(TaskTimeoutError) as caught:
            task.wait(timeout=0.2)
        assert time_module.monotonic() - started < 1.0
        assert caught.value.task_id == task.id and f"task {task.id}" in str(caught.value)
        assert task.reattach in str(caught.value) and task.reattach.startswith(f"client.task({task.id!r}, ledgers=")
        assert "period='2025Q1'" in task.reattach
        assert client.task(task.id).refresh().state in ("pending", "running")


def test_text_progress_is_one_line_rewritten_in_place(client: mnb.Client, ids: dict[str, str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """On a terminal, wait(progress=True) rewrites one line (carriage returns) and ends with a summary."""

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    task = client.generate(ids[NCR], "2025-01")
    task.wait(progress=True)
    text = terminal.getvalue()
    assert text.startswith("\r") and text.rstrip().endswith(f"Task {task.id} complete")
    assert text.count("\n") == 1 and text.endswith("\n") and "%" in text


# --- periods and time zones ----------------------------------------------------------------------------------

MINUS_5 = timezone(timedelta(hours=-5))
PLUS_1 = timezone(timedelta(hours=1))


@pytest.mark.parametrize(
    ("period", "count", "start", "end"),
    [
        ("2025Q1", 3, "2025-01-01T00:00:00+00:00", "2025-03-31T23:59:59+00:00"),
        ("2025-Q1", 3, "2025-01-01T00:00:00+00:00", "2025-03-31T23:59:59+00:00"),
        ("2025q1", 3, "2025-01-01T00:00:00+00:00", "2025-03-31T23:59:59+00:00"),
        ("2025-02", 1, "2025-02-01T00:00:00+00:00", "2025-02-28T23:59:59+00:00"),
        ("2025", 11, "2025-01-01T00:00:00+00:00", "2025-12-31T23:59:59+00:00"),
        (2025, 11, "2025-01-01T00:00:00+00:00", "2025-12-31T23:59:59+00:00"),
        ((date(2025, 1, 1), date(2025, 2, 28)), 2, "2025-01-01T00:00:00+00:00", "2025-02-28T23:59:59+00:00"),
        (("2025-01-01", "2025-03-31"), 3, "2025-01-01T00:00:00+00:00", "2025-03-31T23:59:59+00:00"),
        (("2025-01", "2025Q1"), 3, "2025-01-01T00:00:00+00:00", "2025-03-31T23:59:59+00:00"),
        ((pd.Timestamp("2025-04-01"), pd.Timestamp("2025-04-30 23:59:59")), 1,
         "2025-04-01T00:00:00+00:00", "2025-04-30T23:59:59+00:00"),
        ((datetime(2025, 1, 1), datetime(2025, 1, 31, 23, 59, 59)), 1,
         "2025-01-01T00:00:00+00:00", "2025-01-31T23:59:59+00:00"),
        ((datetime(2024, 12, 31, 19, tzinfo=MINUS_5), datetime(2025, 1, 31, 18, 59, 59, tzinfo=MINUS_5)), 1,
         "2025-01-01T00:00:00+00:00", "2025-01-31T23:59:59+00:00"),
        ((datetime(2025, 1, 1, 1, tzinfo=PLUS_1), datetime(2025, 3, 1, 0, 59, 59, tzinfo=PLUS_1)), 2,
         "2025-01-01T00:00:00+00:00", "2025-02-28T23:59:59+00:00"),
        ("2025-05", 0, "2025-05-01T00:00:00+00:00", "2025-05-31T23:59:59+00:00"),
    ],
    ids=["quarter", "quarter-dash", "quarter-lower", "month", "year", "year-int", "date-pair", "iso-pair",
         "label-pair", "timestamp-pair", "naive-datetimes-are-utc", "aware-minus-5-converted",
         "aware-plus-1-converted", "gap-month"],
)
def test_every_period_form_reaches_the_server_as_utc(client: mnb.Client, ids: dict[str, str], period: Any,
                                                     count: int, start: str, end: str,
                                                     new_york_local_time: None) -> None:
    """Each accepted period form previews the right months: naive is UTC (even with a non-UTC local zone),
    aware datetimes are converted."""
    preview = client.preview(ids[NCR], period)
    assert preview.set_index("ledger_id").loc[ids[NCR], "count"] == count
    assert (preview.attrs["period_start"], preview.attrs["period_end"]) == (start, end)


@pytest.fixture
def new_york_local_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local zone is UTC-5/-4, so treating naive times as local would be caught."""
    if not hasattr(time_module, "tzset"):
        pytest.skip("time.tzset is not available here")
    monkeypatch.setenv("TZ", "America/New_York")
    time_module.tzset()
    yield
    monkeypatch.undo()
    time_module.tzset()


def test_batches_period_with_an_aware_non_utc_range(client: mnb.Client, ids: dict[str, str]) -> None:
    """batches() converts an aware range to UTC before filtering."""
    span = (datetime(2023, 12, 31, 19, tzinfo=MINUS_5), datetime(2024, 3, 31, 18, 59, 59, tzinfo=MINUS_5))
    assert client.batches(ids[NCR], span)["start_time"].dt.month.tolist() == [1, 2, 3]
    assert client.batches(ids[NCR], span).attrs["period"] == "2024Q1"


def test_bad_period_lists_the_accepted_forms_and_sends_nothing(emulator: Emulator, client: mnb.Client,
                                                               ids: dict[str, str]) -> None:
    """An unreadable period raises PeriodError listing the forms; nothing reaches the server."""
    for bad in ("Q1 2025", "2025Q5", "2025-13", ("2025-03-01", "2025-01-01")):
        with pytest.raises(PeriodError, match=r"Accepted forms|earlier moment first"):
            client.preview(ids[NCR], bad)
        with pytest.raises(PeriodError):
            client.generate(ids[NCR], bad)
    assert emulator.count("generate-preview") == 0 and emulator.count("retrieve-ledger") == 0


# --- empty results and provenance ----------------------------------------------------------------------------


def test_empty_results_keep_the_schema(client: mnb.Client, ids: dict[str, str]) -> None:
    """Empty answers are empty frames with the full schema, not errors."""
    no_batches = client.batches(ids[CRI])
    assert no_batches.empty
    assert_schema(no_batches, BATCHES_SCHEMA)
    assert_schema(client.batches(ids[NCR], "2025Q1"), BATCHES_SCHEMA)
    assert_schema(client.batches([ids[CRI], ids[BAS]]), BATCHES_SCHEMA)
    no_inputs = client.required_inputs(ids[CRI])
    assert no_inputs.empty
    assert_schema(no_inputs, REQUIRED_INPUTS_SCHEMA)
    assert_schema(client.candidates(ids[NCR], "2025Q1"), BATCHES_SCHEMA)
    assert_schema(client.batches(ids[NCR], state="processing"), BATCHES_SCHEMA)


def test_frames_carry_provenance_without_the_token(emulator: Emulator, client: mnb.Client,
                                                   ids: dict[str, str]) -> None:
    """df.attrs: base URL, ledger, period and fetched-at; no key or value carries the token."""
    before = datetime.now(UTC).replace(microsecond=0)
    made = [client.ledgers(), client.required_inputs(ids[NCR]), client.preview(ids[NCR], "2025Q1"),
            client.batches(ids[NCR], "2024Q1"), client.events(PROJECT, "2024-01"), client.batches(ids[CRI])]
    for frame in made:
        assert frame.attrs["base_url"] == emulator.url
        assert before <= datetime.fromisoformat(frame.attrs["fetched_at"]) <= datetime.now(UTC)
        assert emulator.token not in repr(frame.attrs) and not any("token" in k for k in frame.attrs)
    batches = made[3]
    assert batches.attrs["ledger"] == ids[NCR] and batches.attrs["period"] == "2024Q1"
    assert batches.attrs["period_start"] == "2024-01-01T00:00:00+00:00"
    assert made[2].attrs["period_end"] == "2025-03-31T23:59:59+00:00"


# --- typed errors from the server ----------------------------------------------------------------------------


def test_wrong_token_is_authentication_error_with_the_server_message(emulator: Emulator) -> None:
    """401: AuthenticationError carrying the server's message; not retried."""
    with connect_to(emulator.url, "not-the-right-token-1234") as wrong, pytest.raises(AuthenticationError) as caught:
        wrong.ledgers()
    assert caught.value.status_code == 401
    assert any("invalid API token" in m for m in caught.value.server_messages)
    assert emulator.count("list-all-ledgers") == 1


def test_read_only_token_gets_permission_denied_on_generate(make_emulator: Callable[..., Emulator]) -> None:
    """403: a read-only token reads and previews, but the trigger is refused with the server's message."""
    emu = make_emulator(read_only_tokens=("ro-token",))
    with connect_to(emu.url, "ro-token") as reader:
        ncr = reader.ledgers().set_index("name").loc[NCR, "id"]
        assert len(reader.preview(ncr, "2025Q1")) == 2
        with pytest.raises(PermissionDeniedError, match="read-only") as caught:
            reader.generate(ncr, "2025Q1")
    assert caught.value.status_code == 403
    assert emu.count("create-batch-generation") == 1


def test_unknown_ids_are_not_found(client: mnb.Client) -> None:
    """An unknown ledger (id or name) is refused before anything is sent, naming the ledgers there are and the
    closest names; an unknown task is the server's 404 with its message."""
    with pytest.raises(NotFoundError, match="lgr_doesnotexist not found"):
        client.required_inputs("lgr_doesnotexist")  # the documented id form goes to the server as it is
    with pytest.raises(ValidationError, match="No ledger is called or has the id 'ledger 7'"):
        client.required_inputs("ledger 7")
    with pytest.raises(ValidationError, match="Did you mean 'Net Carbon Removal'") as caught:
        client.generate("Net Carbon Removl", "2025Q1")
    assert caught.value.argument == "ledger"
    assert client.ledger_id("net carbon removal") == client.ledger_id("Net Carbon Removal")
    with pytest.raises(NotFoundError, match="Async task 987654 not found"):
        client.task(987654).wait()


def test_server_validation_errors_carry_the_server_message(emulator: Emulator, client: mnb.Client,
                                                           ids: dict[str, str]) -> None:
    """422 from the trigger and from the preview, 400 from a listing: ValidationError with the server's words."""
    with pytest.raises(ValidationError, match="not an input") as unknown_input:
        client.generate(ids[NCR], "2025-01", skipped_data_point_type_ids=[999], drop_existing_readings=True)
    assert unknown_input.value.status_code == 422
    with pytest.raises(ValidationError, match="unknown data point id") as unknown_point:
        client.preview(ids[NCR], "2025Q1", data_point_ids=["in_nope"])
    assert unknown_point.value.status_code == 422
    assert emulator.count("generate-preview") == 2  # the generate's pre-check + the preview: no retry
    with connect_to(emulator.url, emulator.token, page_size=500) as greedy, \
            pytest.raises(ValidationError, match="page_size") as big:
        greedy.ledgers()
    assert big.value.status_code == 400


def test_a_wrong_base_url_says_the_base_url_may_be_wrong(emulator: Emulator) -> None:
    root = emulator.url.rsplit("/api/v1", 1)[0]
    with mnb.connect(emulator.token, root, **FAST) as lost, pytest.raises(NotFoundError) as caught:
        lost.ledgers()
    assert "base URL is probably wrong" in str(caught.value) and "/api/v1" in str(caught.value)
    with connect_to(emulator.url, emulator.token) as right, pytest.raises(NotFoundError) as unknown:
        right.batches("lgr_doesnotexist")
    assert "base URL" not in str(unknown.value) and "Check the ID" in str(unknown.value)


def test_a_wait_that_loses_the_server_says_how_to_reattach(make_emulator: Callable[..., Emulator]) -> None:
    emu = make_emulator(batch_seconds=2.0)
    with connect_to(emu.url, emu.token, max_retries=0, connect_timeout=0.5, call_deadline=3.0) as client:
        task = client.generate(NCR, "2025Q1")
        emu.stop()
        with pytest.raises(mnb.TransportError) as caught:
            task.wait(timeout=30)
    assert f"re-attach with {task.reattach}" in str(caught.value) and "period='2025Q1'" in task.reattach
