"""`task.wait()` against a fixed 2-second poll, side by side: how late each notices the end, and its calls.

A loopback server (in this process, 127.0.0.1 only) serves tasks the way the issue describes them: pending
for 0.3 s, then running with `progress` rising linearly in whole percents ("Processing batch i of 12"), and
`started_at` / `finished_at` stamped to the whole second (`...:05.000Z`, as in the documentation) on a
server clock that reads 0, +5 or -5 minutes off ours. Every task is made twice at once, one waited for
with `task.wait()`, the other with `while state not final: sleep(2); GET`; all of them run concurrently,
so the whole run takes as long as its longest task (about 25 s).

The delay is from the moment the server's task ends (it is in this process: the same monotonic clock) to
the moment the waiting call returns. Targets (issue: poll schedule trusts the server's clock): for every
skew, a mean delay of at most 0.5 s for `wait()`, and no more status calls than the fixed poll.

Run: .venv/bin/python benchmarks/task_wait.py [--repeat 3] [--check]
"""

from __future__ import annotations

import argparse
import json
import math
import secrets
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

from mangrove_nb.client import HttpClient
from mangrove_nb.settings import Settings
from mangrove_nb.tasks import Task, TaskStatus

FIXED_POLL = 2.0
PICKUP = 0.3
BATCHES = 12
DURATIONS = (3.0, 10.0, 20.0)  # seconds of running; each repeat adds a fraction, so the fixed poll's phase varies
SKEWS = {"server clock right": 0.0, "server +5 min": 300.0, "server -5 min": -300.0}
TARGET_DELAY = 0.5


@dataclass
class ServedTask:
    created: float  # our monotonic clock
    duration: float
    skew: float  # seconds the server's wall clock reads ahead of ours
    wall_at_creation: float = field(init=False)

    def __post_init__(self) -> None:
        self.wall_at_creation = time.time() + self.skew

    @property
    def started(self) -> float:
        return self.created + PICKUP

    @property
    def finished(self) -> float:
        return self.started + self.duration

    def stamp(self, moment: float) -> str:
        """The server's timestamp for ``moment``: its own clock, to the whole second."""
        wall = math.floor(self.wall_at_creation + (moment - self.created))
        return datetime.fromtimestamp(wall, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")

    def body(self, task_id: int, now: float) -> dict[str, Any]:
        body: dict[str, Any] = {"id": task_id, "type": "ProductionAccounting::BatchGeneration", "state": "pending",
                                "progress": 0, "progress_description": None, "created_at": self.stamp(self.created),
                                "started_at": None, "finished_at": None, "error_message": None}
        if now >= self.finished:
            body.update(state="complete", progress=100, started_at=self.stamp(self.started),
                        finished_at=self.stamp(self.finished))
        elif now >= self.started:
            fraction = (now - self.started) / self.duration
            batch = min(BATCHES, int(fraction * BATCHES) + 1)
            body.update(state="running", progress=math.floor(100 * fraction), started_at=self.stamp(self.started),
                        progress_description=f"Processing batch {batch} of {BATCHES}")
        return body


class TaskServer(ThreadingHTTPServer):
    """``POST /api/v1/bench_tasks`` ({"duration", "skew"}) makes a task; ``GET /api/v1/async_tasks/{id}`` reads
    it."""

    daemon_threads = True
    request_queue_size = 256  # every waiter connects at once

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.tasks: dict[int, ServedTask] = {}
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/api/v1"


class Handler(BaseHTTPRequestHandler):
    server: TaskServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        asked = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        now = time.monotonic()
        with self.server.lock:
            task_id = len(self.server.tasks) + 1
            task = self.server.tasks[task_id] = ServedTask(now, float(asked["duration"]), float(asked["skew"]))
        self.answer(202, task.body(task_id, now))

    def do_GET(self) -> None:
        now = time.monotonic()
        task_id = int(self.path.rstrip("/").rsplit("/", 1)[-1])
        self.answer(200, self.server.tasks[task_id].body(task_id, now))


@dataclass
class Outcome:
    delay: float
    calls: int


def with_wait(server: TaskServer, token: str, duration: float, skew: float) -> Outcome:
    """Create a task as ``client.generate()`` does (its status is the creation answer), then ``wait()``."""
    settings = Settings(token=token, base_url=server.url, show_progress=False)
    with HttpClient(settings) as http:
        created = http.request("POST", "/bench_tasks", json_body={"duration": duration, "skew": skew}, safe=False)
        task = Task(http, created["id"])
        task.status = TaskStatus.from_json(created, where="POST /bench_tasks")
        task.wait(progress=False)
        returned = time.monotonic()
        return Outcome(returned - server.tasks[int(task.id)].finished, task.polls)


def with_fixed_poll(server: TaskServer, token: str, duration: float, skew: float) -> Outcome:
    url = server.url
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {token}"
        created = session.post(f"{url}/bench_tasks", json={"duration": duration, "skew": skew}, timeout=10).json()
        calls = 0
        while True:
            time.sleep(FIXED_POLL)
            calls += 1
            body = session.get(f"{url}/async_tasks/{created['id']}", timeout=10).json()
            if body["state"] in ("complete", "failed"):
                break
        returned = time.monotonic()
        return Outcome(returned - server.tasks[int(created["id"])].finished, calls)



def run_all(server: TaskServer, repeat: int, token: str) -> dict[tuple[str, str, float], list[Outcome]]:
    """Every (skew, duration, repeat) task, once per way of waiting, all at once."""
    results: dict[tuple[str, str, float], list[Outcome]] = {}
    lock = threading.Lock()
    failures: list[BaseException] = []

    def job(way: str, wait: Callable[[TaskServer, str, float, float], Outcome], skew_name: str, base: float,
            duration: float) -> None:
        try:
            outcome = wait(server, token, duration, SKEWS[skew_name])
        except BaseException as exc:  # reported after the run, not lost in a thread
            failures.append(exc)
            return
        with lock:
            results.setdefault((way, skew_name, base), []).append(outcome)

    threads = []
    for skew_name in SKEWS:
        for base in DURATIONS:
            for n in range(repeat):
                duration = base + FIXED_POLL * n / repeat  # spreads the end over the fixed poll's 2 s period
                for way, wait in (("wait()", with_wait), ("fixed", with_fixed_poll)):
                    threads.append(threading.Thread(target=job, args=(way, wait, skew_name, base, duration)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="tasks per length and skew (default 3)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()
    token = f"bench-{secrets.token_hex(12)}"
    server = TaskServer()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    began = time.monotonic()
    try:
        results = run_all(server, args.repeat, token)
    finally:
        server.shutdown()
        server.server_close()
    elapsed = time.monotonic() - began

    print(f"task.wait() vs a fixed {FIXED_POLL:.0f} s poll: linear progress, whole-second timestamps, "
          f"{args.repeat} task(s) per row ({elapsed:.0f} s)")
    header = (f"{'server clock':<19} {'task':>6} | {'wait() delay':>12} {'calls':>6} | {'fixed delay':>11} "
              f"{'calls':>6} | {'delay ratio':>11} {'calls ratio':>11}")
    print(header)
    print("-" * len(header))
    missed = []
    for skew_name in SKEWS:
        ours_all: list[Outcome] = []
        theirs_all: list[Outcome] = []
        for base in DURATIONS:
            ours, theirs = results[("wait()", skew_name, base)], results[("fixed", skew_name, base)]
            ours_all += ours
            theirs_all += theirs
            print(row(skew_name, f"~{base:.0f} s", ours, theirs))
        print(row(skew_name, "all", ours_all, theirs_all))
        mean = statistics.mean(o.delay for o in ours_all)
        calls, fixed_calls = sum(o.calls for o in ours_all), sum(o.calls for o in theirs_all)
        if mean > TARGET_DELAY:
            missed.append(f"{skew_name}: mean delay {mean:.2f} s > {TARGET_DELAY} s")
        if calls > fixed_calls:
            missed.append(f"{skew_name}: {calls} calls > fixed poll's {fixed_calls}")
        print("-" * len(header))
    print(f"targets (each skew): wait() mean delay <= {TARGET_DELAY} s, calls <= fixed poll's: "
          + ("met" if not missed else "MISSED: " + "; ".join(missed)))
    return 1 if missed and args.check else 0


def row(skew_name: str, label: str, ours: list[Outcome], theirs: list[Outcome]) -> str:
    our_delay, their_delay = statistics.mean(o.delay for o in ours), statistics.mean(o.delay for o in theirs)
    our_calls, their_calls = sum(o.calls for o in ours), sum(o.calls for o in theirs)
    return (f"{skew_name:<19} {label:>6} | {our_delay:>10.2f} s {our_calls:>6} | {their_delay:>9.2f} s "
            f"{their_calls:>6} | {our_delay / their_delay:>11.2f} {our_calls / their_calls:>11.2f}")


if __name__ == "__main__":
    sys.exit(main())
