"""`client.batches()` against a plain sequential `requests.get` + `pd.json_normalize` loop, side by side.

5,000 batches on one ledger, pages of 100, 20 ms added to every request by the emulator (a stand-in for
a real network's latency). Target (issue 3): at least 5x faster; with 8 connections the latency bound
is about 6x. Both read the same pages from the same emulator in the same run. The emulator runs in its
own process (`mangrove-nb emulator --db FILE`), as the real API would, so its work does not compete with
the client's for this interpreter's GIL.

A second pass (no timing) measures each side's peak of Python memory allocations with tracemalloc: the
client keeps only column lists of the pages that have arrived, where the loop holds every parsed batch and
then json_normalize's copy.

Run: .venv/bin/python benchmarks/client_pagination.py [--batches 5000] [--latency 0.02] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import requests

import mangrove_nb as mnb
from mangrove_nb.emulator import Emulator
from mangrove_nb.emulator.store import friendly_id, iso
from mangrove_nb.testing import emulator_process


def add_batches(emu: Emulator, count: int) -> str:
    """A ledger holding ``count`` complete batches (inserted straight into the emulator's database)."""
    now = datetime(2025, 6, 1, tzinfo=UTC)
    with emu.store.transaction() as conn:
        ledger = conn.execute("SELECT pk, id FROM ledgers WHERE abbreviation = 'CRI'").fetchone()
        for n in range(count):
            start = datetime(2000, 1, 1, tzinfo=UTC) + timedelta(days=n)
            cur = conn.execute(
                "INSERT INTO batches (id, ledger_pk, partition_key, tracking_id, start_time, end_time, state, value,"
                " output_dp_id, calculations, input_dp_ids, created_at, updated_at)"
                " VALUES ('x', ?, ?, ?, ?, ?, 'complete', ?, ?, '[]', '[]', ?, ?)",
                (ledger["pk"], f"bench-{n}", f"B-{n:05d}", iso(start), iso(start + timedelta(hours=23)),
                 float(n % 97), f"bench-dp-{n}", iso(now), iso(now)),
            )
            conn.execute("UPDATE batches SET id = ? WHERE pk = ?", (friendly_id("bat", "bench", cur.lastrowid),
                                                                    cur.lastrowid))
        conn.execute("UPDATE ledgers SET output_type_id = 101 WHERE pk = ?", (ledger["pk"],))
    return ledger["id"]


def plain_loop(url: str, token: str, ledger_id: str) -> pd.DataFrame:
    """What a notebook would do by hand: one page after another, then json_normalize."""
    rows, page = [], 1
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {token}"
        while page:
            body = session.get(f"{url}/ledgers/{ledger_id}/batches", params={"page": page, "page_size": 100},
                               timeout=30).json()
            rows += body["data"]
            page = body["info"]["next_page"]
    return pd.json_normalize(rows)


def threaded_ceiling(url: str, token: str, ledger_id: str, pages: int) -> int:
    """8 threads of bare requests.get + json.loads, no checks and no frame: what this machine allows."""
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {token}"

        def fetch(page: int) -> int:
            return len(session.get(f"{url}/ledgers/{ledger_id}/batches", params={"page": page, "page_size": 100},
                                   timeout=30).json()["data"])

        with ThreadPoolExecutor(max_workers=8) as pool:
            return sum(pool.map(fetch, range(1, pages + 1)))


def peak_memory(call: Callable[[], object]) -> int:
    """The peak of Python allocations (tracemalloc) while ``call`` runs, the result included."""
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=5000)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    token = "bench-token-0000"  # noqa: S105 - a throwaway token for a local emulator
    with tempfile.TemporaryDirectory() as folder:
        db = str(Path(folder) / "bench.sqlite3")
        prepared = Emulator(db=db, token=token)
        ledger_id = add_batches(prepared, args.batches)
        prepared.stop()
        with emulator_process("--db", db, "--token", token, "--rate-limit", "1000000",
                              "--enable-control") as (_process, url):
            root = url.removesuffix("/api/v1")
            requests.post(f"{root}/_emulator/faults", headers={"Authorization": f"Bearer {token}"}, timeout=10,
                          json={"kind": "delay", "operation": "list-all-ledger-batches", "seconds": args.latency})
            client = mnb.connect(token, url)
            ours, theirs, ceiling = [], [], []
            for _ in range(args.repeat):
                # Each side starts with no garbage left by the one before (whose collection it would pay for);
                # the collector stays on, as in a notebook.
                gc.collect()
                started = time.perf_counter()
                assert threaded_ceiling(url, token, ledger_id, -(-args.batches // 100)) == args.batches
                ceiling.append(time.perf_counter() - started)
                gc.collect()
                started = time.perf_counter()
                frame = client.batches(ledger_id)
                ours.append(time.perf_counter() - started)
                assert len(frame) == args.batches, len(frame)
                del frame
                gc.collect()
                started = time.perf_counter()
                plain = plain_loop(url, token, ledger_id)
                theirs.append(time.perf_counter() - started)
                assert len(plain) == args.batches
                del plain
            our_peak = peak_memory(lambda: client.batches(ledger_id))
            their_peak = peak_memory(lambda: plain_loop(url, token, ledger_id))
            client.close()
    o, t, c = statistics.median(ours), statistics.median(theirs), statistics.median(ceiling)
    print(f"{args.batches} batches, pages of 100, {args.latency * 1000:.0f} ms added per request, "
          f"median of {args.repeat}")
    print(f"  requests.get loop + json_normalize : {t:6.2f} s")
    print(f"  client.batches (typed frame)       : {o:6.2f} s")
    print(f"  8 bare threads, no checks, no frame: {c:6.2f} s  (this machine's ceiling: {t / c:.1f}x)")
    print(f"  speed-up {t / o:.1f}x (target >= 5x)")
    print(f"  peak Python allocations: client.batches {our_peak / 2**20:.1f} MiB, requests loop "
          f"{their_peak / 2**20:.1f} MiB ({their_peak / our_peak:.1f}x less)")


if __name__ == "__main__":
    main()
