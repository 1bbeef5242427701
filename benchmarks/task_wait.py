"""`task.wait()` against a fixed 2-second poll, side by side: delay after completion and status calls.

Tasks of about 3, 10 and 20 s on the emulator (Net Carbon Removal: Q1 2025 = 3 batches, all of 2025 = 11
batches, at a per-batch speed chosen for the length; electricity is skipped so November 2025 does not
fail). For each, the same generation runs on two fresh
emulators at once: one waited for with `task.wait()`, one with `while state not final: sleep(2); GET`.
The delay is the time from the task's `finished_at` (server clock, the same machine) to the moment the
waiting call returns. Target (issue 3): mean delay at most 0.5 s with no more status calls than the
fixed poll.

Run: .venv/bin/python benchmarks/task_wait.py [--repeat 2]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from datetime import datetime
from typing import Any

import requests

import mangrove_nb as mnb
from mangrove_nb.emulator import Emulator

FIXED_POLL = 2.0
SCENARIOS = [  # (label, period, seconds per batch, pickup seconds)
    ("~3 s", "2025Q1", 0.9, 0.3),
    ("~10 s", "2025", 0.88, 0.3),
    ("~20 s", "2025", 1.8, 0.3),
]


def finished(emu: Emulator, task_id: int) -> float:
    with requests.Session() as s:
        s.headers["Authorization"] = f"Bearer {emu.token}"
        body = s.get(f"{emu.url}/async_tasks/{task_id}", timeout=10).json()
    return datetime.fromisoformat(body["finished_at"]).timestamp()


def ncr(client: mnb.Client) -> str:
    ledgers = client.ledgers()
    return str(ledgers.loc[ledgers["name"] == "Net Carbon Removal", "id"].item())


def adaptive(emu: Emulator, period: str, out: dict[str, Any]) -> None:
    with mnb.connect(emu.token, emu.url, show_progress=False) as client:
        task = client.generate(ncr(client), period, skipped_data_point_type_ids=[7])  # Nov 2025 lacks it
        task.wait(progress=False)
        out["returned"] = time.time()
        out["calls"] = task.polls
        out["delay"] = out["returned"] - finished(emu, int(task.id))


def fixed(emu: Emulator, period: str, out: dict[str, Any]) -> None:
    with mnb.connect(emu.token, emu.url, show_progress=False) as client:
        task = client.generate(ncr(client), period, skipped_data_point_type_ids=[7])  # Nov 2025 lacks it
    calls = 0
    with requests.Session() as s:
        s.headers["Authorization"] = f"Bearer {emu.token}"
        while True:
            time.sleep(FIXED_POLL)
            calls += 1
            if s.get(f"{emu.url}/async_tasks/{task.id}", timeout=10).json()["state"] in ("complete", "failed"):
                break
    out["returned"] = time.time()
    out["calls"] = calls
    out["delay"] = out["returned"] - finished(emu, int(task.id))


def run(period: str, batch_seconds: float, pickup: float) -> tuple[dict[str, Any], dict[str, Any]]:
    ours: dict[str, Any] = {}
    theirs: dict[str, Any] = {}
    with Emulator(batch_seconds=batch_seconds, pickup_seconds=pickup) as a, \
            Emulator(batch_seconds=batch_seconds, pickup_seconds=pickup) as b:
        threads = [threading.Thread(target=adaptive, args=(a, period, ours)),
                   threading.Thread(target=fixed, args=(b, period, theirs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return ours, theirs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    print(f"{'task':<7} {'wait() delay':>13} {'calls':>6}   {'fixed 2 s delay':>16} {'calls':>6}")
    all_ours, all_theirs, calls_ours, calls_theirs = [], [], 0, 0
    for label, period, seconds, pickup in SCENARIOS:
        for _ in range(args.repeat):
            ours, theirs = run(period, seconds, pickup)
            all_ours.append(ours["delay"])
            all_theirs.append(theirs["delay"])
            calls_ours += ours["calls"]
            calls_theirs += theirs["calls"]
            print(f"{label:<7} {ours['delay']:>11.2f} s {ours['calls']:>6}   {theirs['delay']:>14.2f} s "
                  f"{theirs['calls']:>6}")
    print(f"mean delay: wait() {statistics.mean(all_ours):.2f} s, fixed poll {statistics.mean(all_theirs):.2f} s "
          f"(target <= 0.5 s); status calls: wait() {calls_ours}, fixed poll {calls_theirs} "
          f"(target: wait() <= fixed)")


if __name__ == "__main__":
    main()
