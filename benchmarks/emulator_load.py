"""The emulator under mixed load: requests/s and p50/p99 latency with 8 concurrent clients.

The emulator runs in its own process (``mangrove-nb emulator`` from this venv, in memory, rate limit out of
reach, ``--batch-seconds 0.05``), so it does not share this process's GIL. Two generations (Net Carbon
Removal and Dry Feedstock Delivered, Q1 2025) are started first; then ``--clients`` threads, each with its own
keep-alive ``requests.Session``, pick at random among ``GET /ledgers``, ``GET /ledgers/{id}/batches``
(page_size 100), ``POST /ledgers/{id}/generate_preview`` and ``GET /async_tasks/{id}`` for ``--seconds``
(default 30). Prints one line per kind and a total: requests, requests/s, p50 and p99 latency in ms, and
any non-2xx statuses or errors (there should be none).

    .venv/bin/python benchmarks/emulator_load.py
    .venv/bin/python benchmarks/emulator_load.py --seconds 5 --clients 8
"""

from __future__ import annotations

import argparse
import random
import secrets
import statistics
import threading
import time
from collections import defaultdict
from collections.abc import Sequence

import requests

from mangrove_nb.testing import emulator_process

Q1_2025 = {"start_time": "2025-01-01T00:00:00Z", "end_time": "2025-03-31T23:59:59Z"}
QUARTERS = [("2024-10-01T00:00:00Z", "2024-12-31T23:59:59Z"), ("2025-01-01T00:00:00Z", "2025-03-31T23:59:59Z"),
            ("2025-04-01T00:00:00Z", "2025-06-30T23:59:59Z"), ("2025-07-01T00:00:00Z", "2025-09-30T23:59:59Z")]
TIMEOUT = (3.05, 30)


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def run(seconds: float, clients: int, seed: int) -> int:
    token = f"bench-{secrets.token_hex(8)}"
    cli_args = ("--token", token, "--batch-seconds", "0.05", "--rate-limit", str(10**9))
    with emulator_process(*cli_args) as (_process, url), requests.Session() as setup:
        setup.headers["Authorization"] = f"Bearer {token}"
        ledgers = setup.get(f"{url}/ledgers", timeout=TIMEOUT).json()["data"]
        ids = {item["name"]: item["id"] for item in ledgers}
        generatable = [ids[n] for n in ("Net Carbon Removal", "Biochar Produced", "Dry Feedstock Delivered")]
        tasks = []
        for name in ("Net Carbon Removal", "Dry Feedstock Delivered"):
            answer = setup.post(f"{url}/ledgers/{ids[name]}/batch_generations", json=Q1_2025, timeout=TIMEOUT)
            answer.raise_for_status()
            tasks.append(answer.json()["id"])

        latencies: dict[str, list[float]] = defaultdict(list)
        problems: dict[str, int] = defaultdict(int)
        lock = threading.Lock()
        stop = threading.Event()

        def client(number: int) -> None:
            pick = random.Random(seed + number)
            with requests.Session() as session:
                session.headers["Authorization"] = f"Bearer {token}"
                while not stop.is_set():
                    kind = pick.choice(["ledgers", "batches", "preview", "task"])
                    started = time.perf_counter()
                    try:
                        if kind == "ledgers":
                            answer = session.get(f"{url}/ledgers", timeout=TIMEOUT)
                        elif kind == "batches":
                            answer = session.get(f"{url}/ledgers/{pick.choice(list(ids.values()))}/batches",
                                                 params={"page_size": 100}, timeout=TIMEOUT)
                        elif kind == "preview":
                            start, end = pick.choice(QUARTERS)
                            answer = session.post(f"{url}/ledgers/{pick.choice(generatable)}/generate_preview",
                                                  json={"start_time": start, "end_time": end}, timeout=TIMEOUT)
                        else:
                            answer = session.get(f"{url}/async_tasks/{pick.choice(tasks)}", timeout=TIMEOUT)
                        elapsed = time.perf_counter() - started
                        outcome = None if answer.ok else f"{kind} {answer.status_code}"
                    except requests.RequestException as exc:
                        elapsed, outcome = time.perf_counter() - started, f"{kind} {type(exc).__name__}"
                    with lock:
                        latencies[kind].append(elapsed)
                        if outcome:
                            problems[outcome] += 1

        threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
        began = time.perf_counter()
        for thread in threads:
            thread.start()
        time.sleep(seconds)
        stop.set()
        for thread in threads:
            thread.join(60)
        wall = time.perf_counter() - began

    print(f"emulator under mixed load: {clients} clients, {wall:.1f} s, emulator in its own process")
    print(f"{'kind':<10}{'requests':>10}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    everything = [v for values in latencies.values() for v in values]
    for kind in [*sorted(latencies), "total"]:
        values = everything if kind == "total" else latencies[kind]
        print(f"{kind:<10}{len(values):>10}{len(values) / wall:>10.1f}{percentile(values, 0.5) * 1000:>10.1f}"
              f"{percentile(values, 0.99) * 1000:>10.1f}")
    if everything:
        print(f"mean latency {statistics.fmean(everything) * 1000:.1f} ms")
    print("non-2xx or errors: " + (", ".join(f"{k}: {n}" for k, n in sorted(problems.items())) or "none"))
    return 1 if problems else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the load runs (default 30)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent client threads (default 8)")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the request mix")
    args = parser.parse_args(argv)
    return run(args.seconds, args.clients, args.seed)


if __name__ == "__main__":
    raise SystemExit(main())
