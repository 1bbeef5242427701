"""The ``mangrove-nb`` command as a user runs it: real subprocesses, real ports, real signals.

Each test starts the installed console script (``.venv/bin/mangrove-nb``, or ``python -m mangrove_nb.cli``
when the script is missing), talks to it over HTTP on 127.0.0.1 only, and stops it with SIGINT as Ctrl-C
would. Every subprocess is bounded by timeouts and killed in a ``finally`` if it is still running. The one
exception, next to the busy-port test it backs, checks in-process that ``Emulator`` raises the OSError the
command turns into exit code 2.
"""

from __future__ import annotations

import errno
import os
import queue
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import pytest
import requests

SCRIPT = Path(sys.executable).with_name("mangrove-nb")
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "mangrove_nb.cli"]
START_TIMEOUT = 30.0  # seconds for the banner: Python start-up, Flask import and seeding on a slow runner
STOP_TIMEOUT = 5.0  # seconds from SIGINT to exit
HTTP_TIMEOUT = (3.05, 15)
Q1_2025 = {"start_time": "2025-01-01T00:00:00Z", "end_time": "2025-03-31T23:59:59Z"}
URL_LINE = re.compile(r"Mangrove emulator on (http://\S+/api/v1)\s")
TOKEN_LINE = re.compile(r"Token \(shown once\): (\S+)")
REQUEST_LOG = re.compile(r"\b(GET|POST|DELETE|PATCH|PUT) (/\S*) (\d{3}) [\d.]+ ms$")
pytestmark = pytest.mark.slow


# --- running the command ------------------------------------------------------------------------------------


@dataclass
class Running:
    """A running ``mangrove-nb emulator``: its process, the stdout lines read so far, its stderr file."""

    process: subprocess.Popen[str]
    stderr_path: Path
    lines: queue.Queue[str | None] = field(default_factory=queue.Queue)
    stdout: list[str] = field(default_factory=list)
    url: str = ""
    token: str | None = None

    def banner(self) -> str:
        """Wait for "Press Ctrl-C to stop." and read the URL (and the token, when printed) from the banner."""
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no banner within {START_TIMEOUT} s: {self.output()}") from None
            if line is None:
                raise AssertionError(f"the emulator exited ({self.process.poll()}) before serving: {self.output()}")
            if url := URL_LINE.search(line):
                self.url = url.group(1)
            if token := TOKEN_LINE.search(line):
                self.token = token.group(1)
            if "Press Ctrl-C to stop." in line:
                assert urlsplit(self.url).hostname == "127.0.0.1", self.output()
                return "".join(self.stdout)

    def interrupt(self) -> tuple[int, float]:
        """Ctrl-C: send SIGINT and wait; returns the exit code and how long the exit took."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=STOP_TIMEOUT)
        return code, time.monotonic() - started

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def output(self) -> str:
        return f"stdout={''.join(self.stdout)!r} stderr={self.stderr()[-2000:]!r}"


def _pump(stream: IO[str], running: Running) -> None:
    for line in stream:
        running.stdout.append(line)
        running.lines.put(line)
    running.lines.put(None)


@contextmanager
def emulator_process(tmp_path: Path, *args: str) -> Iterator[Running]:
    """Start ``mangrove-nb emulator --port 0 ARGS``; always killed (if still running) and reaped at the end."""
    stderr_path = tmp_path / f"emulator-{secrets.token_hex(4)}.stderr"
    with stderr_path.open("w", encoding="utf-8") as stderr:
        process = subprocess.Popen([*COMMAND, "emulator", "--port", "0", *args], stdout=subprocess.PIPE,
                                   stderr=stderr, text=True, encoding="utf-8", env=_env())
    assert process.stdout is not None
    running = Running(process, stderr_path)
    reader = threading.Thread(target=_pump, args=(process.stdout, running), daemon=True)
    reader.start()
    try:
        yield running
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        reader.join(timeout=5)
        process.stdout.close()


def _env() -> dict[str, str]:
    """The user's environment, minus anything that would send loopback requests through a proxy."""
    return {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}


def run_command(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``mangrove-nb ARGS`` to completion (subprocess.run kills it on timeout)."""
    return subprocess.run([*COMMAND, *args], capture_output=True, text=True, encoding="utf-8", timeout=timeout,
                          env=_env(), check=False)


@contextmanager
def client(token: str | None) -> Iterator[requests.Session]:
    """A session for the emulator on 127.0.0.1: no proxies from the environment, the token as Bearer."""
    with requests.Session() as session:
        session.trust_env = False
        if token is not None:
            session.headers["Authorization"] = f"Bearer {token}"
        yield session


def call(session: requests.Session, method: str, url: str, **kwargs: Any) -> requests.Response:
    assert urlsplit(url).hostname == "127.0.0.1", url
    return session.request(method, url, timeout=HTTP_TIMEOUT, **kwargs)


def ledger_id(session: requests.Session, url: str, name: str) -> str:
    response = call(session, "GET", f"{url}/ledgers")
    assert response.status_code == 200, response.text
    return next(item["id"] for item in response.json()["data"] if item["name"] == name)


def wait_for_task(session: requests.Session, url: str, task_id: int, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = call(session, "GET", f"{url}/async_tasks/{task_id}").json()
        if task["state"] in ("complete", "failed"):
            return task
        time.sleep(0.1)
    raise AssertionError(f"task {task_id} not finished within {timeout} s")


def q1_2025_batch_ids(session: requests.Session, url: str, ledger: str) -> set[str]:
    response = call(session, "GET", f"{url}/ledgers/{ledger}/batches", params={"page_size": 100})
    assert response.status_code == 200, response.text
    return {b["id"] for b in response.json()["data"] if b["start_time"][:7] in ("2025-01", "2025-02", "2025-03")}


# --- the tests ------------------------------------------------------------------------------------------------


def test_emulator_prints_url_and_token_once_serves_and_stops_on_sigint(tmp_path: Path) -> None:
    """`emulator --port 0` prints its real URL and a token once, serves /ledgers with it, and exits 0 on Ctrl-C."""
    with emulator_process(tmp_path) as emulator:
        banner = emulator.banner()
        assert re.fullmatch(r"http://127\.0\.0\.1:[1-9]\d*/api/v1", emulator.url), banner
        assert emulator.token, banner
        with client(emulator.token) as session:
            response = call(session, "GET", f"{emulator.url}/ledgers")
        with client(None) as anonymous:
            refused = call(anonymous, "GET", f"{emulator.url}/ledgers")
        code, took = emulator.interrupt()
        output = "".join(emulator.stdout) + emulator.stderr()
    assert response.status_code == 200
    assert "Net Carbon Removal" in {item["name"] for item in response.json()["data"]}
    assert refused.status_code == 401
    assert code == 0, emulator.output()
    assert took < STOP_TIMEOUT
    assert output.count(emulator.token) == 1, "the token must be printed exactly once"
    with client(emulator.token) as session, pytest.raises(requests.ConnectionError):
        call(session, "GET", f"{emulator.url}/ledgers")


def test_token_option_is_accepted_and_never_printed(tmp_path: Path) -> None:
    """`--token X` makes X the token: it works, another token gets 401, and X is not printed."""
    token = f"mgv_cli_{secrets.token_hex(12)}"
    with emulator_process(tmp_path, "--token", token) as emulator:
        banner = emulator.banner()
        with client(token) as session:
            accepted = call(session, "GET", f"{emulator.url}/ledgers")
        with client(f"mgv_cli_{secrets.token_hex(12)}") as stranger:
            refused = call(stranger, "GET", f"{emulator.url}/ledgers")
        code, _took = emulator.interrupt()
    assert (accepted.status_code, refused.status_code) == (200, 401)
    assert emulator.token is None and "Token (shown once)" not in banner
    assert token not in "".join(emulator.stdout) + emulator.stderr()
    assert code == 0


def test_db_file_keeps_a_generation_across_a_restart(tmp_path: Path) -> None:
    """With `--db FILE`, Q1 2025 batches generated before a restart are listed, unchanged, after it."""
    db, token = tmp_path / "mangrove.sqlite3", f"mgv_cli_{secrets.token_hex(12)}"
    args = ("--db", str(db), "--token", token, "--batch-seconds", "0.01")
    with emulator_process(tmp_path, *args) as first, client(token) as session:
        assert f"state: {db}" in first.banner()
        ncr = ledger_id(session, first.url, "Net Carbon Removal")
        preview = call(session, "POST", f"{first.url}/ledgers/{ncr}/generate_preview", json=Q1_2025).json()["data"]
        expected = next(item["count"] for item in preview if item["id"] == ncr)
        accepted = call(session, "POST", f"{first.url}/ledgers/{ncr}/batch_generations", json=Q1_2025)
        assert accepted.status_code == 202, accepted.text
        task = wait_for_task(session, first.url, accepted.json()["id"])
        before = q1_2025_batch_ids(session, first.url, ncr)
        assert first.interrupt()[0] == 0
    assert task["state"] == "complete", task
    assert expected > 0 and len(before) == expected
    with emulator_process(tmp_path, *args) as second, client(token) as session:
        second.banner()
        after = q1_2025_batch_ids(session, second.url, ncr)
        task_after = call(session, "GET", f"{second.url}/async_tasks/{task['id']}").json()
        assert second.interrupt()[0] == 0
    assert after == before
    assert task_after["state"] == "complete"


@contextmanager
def busy_port() -> Iterator[int]:
    """A loopback port something is already listening on, for as long as the block runs."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        yield busy.getsockname()[1]


def test_busy_port_is_a_clear_error_with_exit_code_2() -> None:
    """A port already listening makes the command say which address failed and how to fix it, exit code 2.

    Regression: Werkzeug used to catch EADDRINUSE itself, print its own message and exit 1.
    """
    with busy_port() as port:
        result = run_command("emulator", "--port", str(port), timeout=60)
    assert result.returncode == 2, result
    assert f"mangrove-nb emulator: cannot listen on 127.0.0.1:{port}: Address already in use." in result.stderr
    assert "--port" in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert "Mangrove emulator on" not in result.stdout


def test_emulator_on_a_busy_port_raises_oserror() -> None:
    """In-process, ``Emulator(port=<busy>)`` raises OSError(EADDRINUSE) (it used to be SystemExit from Werkzeug)."""
    from mangrove_nb.emulator import Emulator

    with busy_port() as port, pytest.raises(OSError, match=rf"\[Errno {errno.EADDRINUSE}\]") as raised:
        Emulator(port=port)
    assert raised.value.errno == errno.EADDRINUSE


def test_demo_walks_six_steps_and_lists_the_previewed_count() -> None:
    """`demo --walk` prints the six cookbook steps in order and ends saying it listed as many batches as previewed."""
    result = run_command("demo", "--walk", "--batch-seconds", "0.01", timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    positions = [result.stdout.find(f"[{n}/6]") for n in range(1, 7)]
    assert -1 not in positions and positions == sorted(positions), result.stdout
    last = result.stdout.strip().splitlines()[-1]
    summary = re.fullmatch(r"(\d+) batch\(es\) listed; the preview said (\d+)\.", last)
    assert summary, last
    listed, previewed = map(int, summary.groups())
    assert listed == previewed > 0


def test_console_logs_each_request_and_never_the_token(tmp_path: Path) -> None:
    """Every request is logged on stderr (method, path, status); neither a good nor a bad token ever appears."""
    token, wrong = f"mgv_canary_{secrets.token_hex(12)}", f"mgv_canary_{secrets.token_hex(12)}"
    with emulator_process(tmp_path, "--token", token) as emulator, client(token) as session:
        emulator.banner()
        ncr = ledger_id(session, emulator.url, "Net Carbon Removal")
        sent = [
            ("GET", f"/api/v1/ledgers/{ncr}", call(session, "GET", f"{emulator.url}/ledgers/{ncr}",
                                                   headers={"Authorization": token})),
            ("POST", f"/api/v1/ledgers/{ncr}/generate_preview",
             call(session, "POST", f"{emulator.url}/ledgers/{ncr}/generate_preview", json=Q1_2025)),
            ("GET", "/api/v1/ledgers", call(session, "GET", f"{emulator.url}/ledgers",
                                           headers={"Authorization": f"Bearer {wrong}"})),
        ]
        assert emulator.interrupt()[0] == 0
        console = "".join(emulator.stdout) + emulator.stderr()
    logged = [match.groups() for line in emulator.stderr().splitlines() if (match := REQUEST_LOG.search(line))]
    expected = [("GET", "/api/v1/ledgers", "200")] + [(m, p, str(r.status_code)) for m, p, r in sent]
    assert logged == expected, emulator.stderr()
    assert [r.status_code for _m, _p, r in sent] == [200, 200, 401]
    assert token not in console and wrong not in console
