"""How fast the local Mangrove emulator answers, and how long a Q1 2025 generation takes at default speed.

What it measures:

* **Throughput and latency** of ``GET /api/v1/ledgers/{ledger_id}/batches?page_size=100`` on the
  "Dry Feedstock Delivered" ledger (the seeded ledger with the most batches) and of ``GET /api/v1/ledgers``,
  each with 1 and with 8 concurrent client threads (one ``requests.Session`` per thread, keep-alive) for a
  fixed duration: requests per second, p50 and p99 latency, and the throughput relative to 1 thread.
* **Generation wall time**: a Q1 2025 batch generation on "Net Carbon Removal" with ``Emulator()``'s
  defaults (``batch_seconds=1.0``, ``pickup_seconds=0.5``), from the 202 answer until ``GET /async_tasks/{id}``
  (polled every 0.1 s) says ``complete``.

The emulator runs in this process (``mangrove_nb.emulator.Emulator``, a rate limit high enough never to
answer 429, generation fast for the throughput part), so client and server threads share one interpreter
and its GIL: the figures are what a notebook on the same machine sees, not a ceiling.

Run it (about 25 s with the defaults)::

    .venv/bin/python benchmarks/emulator_throughput.py
    .venv/bin/python benchmarks/emulator_throughput.py --seconds 2 --threads 1 4 8 --json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import requests

from mangrove_nb.emulator import Emulator

Q1_2025 = {"start_time": "2025-01-01T00:00:00Z", "end_time": "2025-03-31T23:59:59Z"}
TIMEOUT = (3.05, 30)
POLL_SECONDS = 0.1
WARM_UP_REQUESTS = 3
HIGH_RATE_LIMIT = 10**9


@dataclass
class Row:
    """One endpoint under one level of concurrency."""

    endpoint: str
    threads: int
    requests: int
    errors: int
    seconds: float
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    ratio_to_first: float = 1.0  # throughput relative to the first (lowest) thread count


@dataclass
class Tally:
    """What one client thread saw: each request's latency in seconds, and the failures."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0


def session_for(token: str) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # loopback only: never through a proxy from the environment
    session.headers["Authorization"] = f"Bearer {token}"
    return session


def client(url: str, token: str, start: threading.Barrier, stop_at: list[float], tally: Tally) -> None:
    """One client thread: warm up its connection, wait for the others, then request until the deadline."""
    with session_for(token) as session:
        for _ in range(WARM_UP_REQUESTS):
            session.get(url, timeout=TIMEOUT)
        start.wait()
        while (began := time.perf_counter()) < stop_at[0]:
            try:
                ok = session.get(url, timeout=TIMEOUT).status_code == 200
            except requests.RequestException:
                ok = False
            tally.latencies.append(time.perf_counter() - began)
            tally.errors += not ok


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted sequence."""
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


def measure(label: str, url: str, token: str, threads: int, seconds: float) -> Row:
    """Run `threads` clients against `url` for `seconds`; throughput counts requests finished in the window."""
    tallies = [Tally() for _ in range(threads)]
    start, stop_at = threading.Barrier(threads + 1), [float("inf")]
    workers = [threading.Thread(target=client, args=(url, token, start, stop_at, tally), daemon=True)
               for tally in tallies]
    for worker in workers:
        worker.start()
    start.wait()
    began = time.perf_counter()
    stop_at[0] = began + seconds
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - began
    latencies = sorted(latency for tally in tallies for latency in tally.latencies)
    return Row(label, threads, len(latencies), sum(t.errors for t in tallies), round(elapsed, 2),
               round(len(latencies) / elapsed, 1), round(percentile(latencies, 0.50) * 1000, 2),
               round(percentile(latencies, 0.99) * 1000, 2))


def ledger_ids(emulator: Emulator) -> dict[str, str]:
    with session_for(emulator.token) as session:
        response = session.get(f"{emulator.url}/ledgers", params={"page_size": 100}, timeout=TIMEOUT)
    response.raise_for_status()
    return {item["name"]: item["id"] for item in response.json()["data"]}


def throughput(seconds: float, thread_counts: Sequence[int]) -> tuple[list[Row], int]:
    """Both endpoints at each thread count, on one fast emulator; also returns the DFD ledger's batch count."""
    with Emulator(rate_limit=HIGH_RATE_LIMIT, batch_seconds=0.01, pickup_seconds=0.01) as emulator:
        dfd = ledger_ids(emulator)["Dry Feedstock Delivered"]
        batches_url = f"{emulator.url}/ledgers/{dfd}/batches?page_size=100"
        with session_for(emulator.token) as session:
            total = session.get(batches_url, timeout=TIMEOUT).json()["info"]["total_items"]
        targets = [("GET /ledgers/{id}/batches?page_size=100", batches_url),
                   ("GET /ledgers", f"{emulator.url}/ledgers")]
        rows = []
        for label, url in targets:
            first = None
            for threads in thread_counts:
                row = measure(label, url, emulator.token, threads, seconds)
                first = first or row.requests_per_second
                row.ratio_to_first = round(row.requests_per_second / first, 2) if first else float("nan")
                rows.append(row)
    return rows, total


def generation_time() -> dict[str, Any]:
    """Q1 2025 on Net Carbon Removal with Emulator() defaults: seconds from the 202 to `complete`."""
    with Emulator() as emulator, session_for(emulator.token) as session:
        ncr = ledger_ids(emulator)["Net Carbon Removal"]
        preview = session.post(f"{emulator.url}/ledgers/{ncr}/generate_preview", json=Q1_2025, timeout=TIMEOUT)
        accepted = session.post(f"{emulator.url}/ledgers/{ncr}/batch_generations", json=Q1_2025, timeout=TIMEOUT)
        began = time.perf_counter()
        if accepted.status_code != 202:
            raise SystemExit(f"generation was not accepted: {accepted.status_code} {accepted.text[:300]}")
        task = accepted.json()
        while task["state"] not in ("complete", "failed"):
            time.sleep(POLL_SECONDS)
            task = session.get(f"{emulator.url}/async_tasks/{task['id']}", timeout=TIMEOUT).json()
        elapsed = time.perf_counter() - began
        batch_seconds, pickup_seconds = emulator.worker.batch_seconds, emulator.worker.pickup_seconds
    return {"ledger": "Net Carbon Removal", "period": "2025-Q1", "state": task["state"], "seconds": round(elapsed, 2),
            "batches_per_ledger": {item["name"]: item["count"] for item in preview.json()["data"]},
            "batch_seconds": batch_seconds, "pickup_seconds": pickup_seconds}


def print_table(rows: Sequence[Row], seconds: float, dfd_batches: int, generation: dict[str, Any]) -> None:
    first_threads = rows[0].threads if rows else 1
    print(f"Mangrove emulator, in-process, {seconds:g} s per row, {os.cpu_count()} CPU(s), Python "
          f"{sys.version.split()[0]}; the batches endpoint lists the {dfd_batches} batches of "
          "'Dry Feedstock Delivered'")
    header = ("endpoint", "threads", "requests", "errors", "req/s", "p50 ms", "p99 ms", f"x {first_threads} thread")
    widths = (42, 7, 9, 6, 9, 8, 8, 11)
    print("  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths, strict=True))))
    for row in rows:
        cells = (row.endpoint, row.threads, row.requests, row.errors, f"{row.requests_per_second:.1f}",
                 f"{row.p50_ms:.2f}", f"{row.p99_ms:.2f}", f"{row.ratio_to_first:.2f}")
        print("  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                        for i, (c, w) in enumerate(zip(cells, widths, strict=True))))
    counts = ", ".join(f"{name}: {count}" for name, count in generation["batches_per_ledger"].items())
    print(f"\nQ1 2025 generation on 'Net Carbon Removal' at default speed (batch_seconds="
          f"{generation['batch_seconds']:g}, pickup_seconds={generation['pickup_seconds']:g}): "
          f"{generation['seconds']:.2f} s from the 202 to {generation['state']} ({counts} batches)")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each throughput row (default 5)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 8], help="client thread counts (default 1 8)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or min(args.threads) < 1:
        parser.error("--seconds must be positive and every --threads value at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    rows, dfd_batches = throughput(args.seconds, args.threads)
    generation = generation_time()
    if args.json:
        print(json.dumps({"seconds_per_row": args.seconds, "cpus": os.cpu_count(), "dfd_batches": dfd_batches,
                          "throughput": [asdict(row) for row in rows], "generation": generation}, indent=2))
    else:
        print_table(rows, args.seconds, dfd_batches, generation)
    return 0 if generation["state"] == "complete" and not any(row.errors for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
