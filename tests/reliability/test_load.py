"""The emulator under load, and its SQLite file after a kill.

* 8 client threads doing mixed reads (ledgers, batches, previews, task polls) for ``LOAD_SECONDS`` while
  five generations on non-overlapping ledgers and quarters run at once: no 5xx, no error in any client, no
  lost or duplicated batch (each (ledger, tracking_id) once), and per ledger and quarter the batches made
  equal the previews taken before. ``LOAD_SECONDS`` is the issue's 60 s; ``MANGROVE_NB_LOAD_SECONDS=10`` makes
  a quick local run.
* The CLI emulator on a file database, SIGKILLed in the middle of a generation: ``PRAGMA integrity_check`` is
  ok, the restarted emulator resumes and completes the task, and no partition has two batches.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import connect_to

from mangrove_nb.emulator import Emulator
from mangrove_nb.testing import emulator_process

LOAD_SECONDS = float(os.environ.get("MANGROVE_NB_LOAD_SECONDS", "60"))
READERS = 8
UNDER_LOAD = {"poll_max_interval": 0.2}  # on top of FAST: poll a little less often while the emulator is loaded
# Non-overlapping: Net Carbon Removal's model also writes Biochar Produced, hence Biochar Produced in Q2 only.
GENERATIONS = [("Net Carbon Removal", "2025Q1"), ("Dry Feedstock Delivered", "2025Q1"),
               ("Net Carbon Removal", "2025Q3"), ("Dry Feedstock Delivered", "2025Q3"),
               ("Biochar Produced", "2025Q2")]
QUARTERS = ["2024Q4", "2025Q1", "2025Q2", "2025Q3"]


@pytest.mark.slow
def test_mixed_load_with_concurrent_generations(make_emulator: Callable[..., Emulator]) -> None:
    emu = make_emulator(batch_seconds=0.05, rate_limit=10**7, worker_threads=4)
    with connect_to(emu.url, emu.token, **UNDER_LOAD) as setup:
        ids = setup.ledgers().set_index("name")["id"].astype(str).to_dict()
        expected: Counter[tuple[str, str]] = Counter()
        for name, quarter in GENERATIONS:
            for row in setup.preview(ids[name], quarter).itertuples():
                expected[(str(row.ledger_id), quarter)] += int(row.count)
        before = {key: len(setup.batches(key[0], key[1])) for key in expected}
    generatable = [ids[n] for n in ("Net Carbon Removal", "Biochar Produced", "Dry Feedstock Delivered")]

    stop = threading.Event()
    errors: list[str] = []
    task_ids: list[Any] = []
    calls = Counter[str]()
    lock = threading.Lock()

    def reader(seed: int) -> None:
        pick = random.Random(seed)
        with connect_to(emu.url, emu.token, **UNDER_LOAD) as client:
            while not stop.is_set():
                kind = pick.choice(["ledgers", "batches", "batches", "preview", "task"])
                try:
                    if kind == "ledgers":
                        assert len(client.ledgers()) == 5
                    elif kind == "batches":
                        client.batches(pick.choice(list(ids.values())), pick.choice(QUARTERS))
                    elif kind == "preview":
                        client.preview(pick.choice(generatable), pick.choice(QUARTERS))
                    else:
                        with lock:
                            known = list(task_ids)
                        if known:
                            client.task(pick.choice(known)).refresh()
                        else:
                            client.ledgers()
                except Exception as exc:  # any failure at all is the finding
                    with lock:
                        errors.append(f"{kind}: {type(exc).__name__}: {exc}")
                with lock:
                    calls[kind] += 1

    made: dict[tuple[str, str], int] = {}

    def generator(name: str, quarter: str, barrier: threading.Barrier) -> None:
        with connect_to(emu.url, emu.token, **UNDER_LOAD) as client:
            barrier.wait()
            try:
                task = client.generate(ids[name], quarter, even_if_running=True)
                with lock:
                    task_ids.append(task.id)
                frame = task.wait(timeout=LOAD_SECONDS + 60)
                with lock:
                    made[(name, quarter)] = len(frame)
            except Exception as exc:
                with lock:
                    errors.append(f"generate {name} {quarter}: {type(exc).__name__}: {exc}")

    readers = [threading.Thread(target=reader, args=(n,), daemon=True) for n in range(READERS)]
    barrier = threading.Barrier(len(GENERATIONS))
    generators = [threading.Thread(target=generator, args=(n, q, barrier), daemon=True) for n, q in GENERATIONS]
    started = time.monotonic()
    for thread in readers + generators:
        thread.start()
    for thread in generators:
        thread.join(LOAD_SECONDS + 90)
    time.sleep(max(0.0, LOAD_SECONDS - (time.monotonic() - started)))
    stop.set()
    for thread in readers:
        thread.join(60)
    assert not any(t.is_alive() for t in readers + generators), "a client thread hung"
    assert not errors, errors[:10]
    assert sum(calls.values()) > READERS * LOAD_SECONDS, calls  # the load really ran
    assert sorted(made) == sorted(GENERATIONS)
    assert emu.count("create-batch-generation") == len(GENERATIONS)
    assert not [e for e in emu.exchanges if e.status >= 500]

    with connect_to(emu.url, emu.token, **UNDER_LOAD) as check:
        for ledger in {lid for lid, _q in expected}:
            listed = check.batches(ledger)
            pairs = Counter(zip(listed["ledger_id"].fillna(ledger), listed["tracking_id"], strict=True))
            assert not [p for p, n in pairs.items() if n > 1], f"duplicated batches on {ledger}"
            assert listed["id"].is_unique
        for (ledger, quarter), count in expected.items():
            batches = check.batches(ledger, quarter)
            assert len(batches) - before[(ledger, quarter)] == count, (ledger, quarter)
            assert (batches["state"] == "complete").all()
            assert check.preview(ledger, quarter)["count"].sum() == 0  # nothing lost: nothing left to make


# --- kill and restart on a file database ---------------------------------------------------------------------


def cli_emulator(db: Path, token: str) -> Any:
    return emulator_process("--db", str(db), "--token", token, "--batch-seconds", "0.2")


def integrity(db: Path) -> tuple[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(db) as conn:
        ok = conn.execute("PRAGMA integrity_check").fetchone()[0]
        doubled = conn.execute("SELECT ledger_pk, partition_key, COUNT(*) FROM batches "
                               "GROUP BY ledger_pk, partition_key HAVING COUNT(*) > 1").fetchall()
    conn.close()
    return ok, doubled


@pytest.mark.slow
def test_sqlite_consistent_after_sigkill_mid_generation_and_restart(tmp_path: Path) -> None:
    db, token = tmp_path / "state.sqlite3", "load-token-0000-5e1d"
    with cli_emulator(db, token) as (process, url):
        with connect_to(url, token, **UNDER_LOAD) as client:
            ledger = str(client.ledgers().set_index("name").loc["Dry Feedstock Delivered", "id"])
            expected = int(client.preview(ledger, "2025Q1")["count"].sum())
            before = len(client.batches(ledger))
            task = client.generate(ledger, "2025Q1")
            deadline = time.monotonic() + 20
            while (status := task.refresh()).progress <= 0 or len(client.batches(ledger)) == before:
                assert not status.done and time.monotonic() < deadline, status
                time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    assert integrity(db) == ("ok", [])
    with cli_emulator(db, token) as (_process, url), connect_to(url, token, **UNDER_LOAD) as client:
        assert client.task(task.id).refresh().state != "complete"  # killed mid-generation
        made = client.task(task.id, ledgers=[ledger]).wait(timeout=30)
        listed = client.batches(ledger)
        assert len(listed) == before + expected
        assert listed["tracking_id"].is_unique and listed["id"].is_unique
        assert 0 < len(made) <= expected
        assert client.preview(ledger, "2025Q1")["count"].sum() == 0
    assert integrity(db) == ("ok", [])
