"""The ``mangrove-nb`` command as a user runs it: real subprocesses, real ports, real signals.

Each test starts the installed console script (``.venv/bin/mangrove-nb``, or ``python -m mangrove_nb.cli``
when the script is missing), talks to it over HTTP on 127.0.0.1 only, and stops it with SIGINT as Ctrl-C
would. Every subprocess is bounded by timeouts and killed in a ``finally`` if it is still running. The one
exception, next to the busy-port test it backs, checks in-process that ``Emulator`` raises the OSError the
command turns into exit code 2.

The ``report`` tests run the command against an emulator of this process (``make_emulator``, on 127.0.0.1):
every expected failure is one line on stderr with exit code 2 (input to correct) or 1, never a traceback, and a
canary token is searched for, in all its spellings, in everything the command printed or wrote.
"""

from __future__ import annotations

import base64
import errno
import json
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
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, quote_plus, urlsplit

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


def run_command(*args: str, timeout: float, env: Mapping[str, str] | None = None,
                cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``mangrove-nb ARGS`` to completion (subprocess.run kills it on timeout); ``env`` replaces the
    user's MANGROVE_* variables."""
    return subprocess.run([*COMMAND, *args], capture_output=True, text=True, encoding="utf-8", timeout=timeout,
                          env=_env() if env is None else _report_env(env), cwd=cwd, check=False)


def _report_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The user's environment without proxies or MANGROVE_* variables, plus ``extra``."""
    return {**{k: v for k, v in _env().items() if not k.startswith("MANGROVE_")}, **extra}


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


# --- one-line errors, and never the token ---------------------------------------------------------------------

REPORT_TIMEOUT = 180  # seconds for a report run: a kernel start and eleven cells on a slow runner


def canary() -> str:
    """A token no other text contains, with characters that percent-encoding and HTML escaping change."""
    return f"mgv_canary+{secrets.token_hex(16)}/{secrets.token_hex(8)}=&"


def token_forms(token: str) -> list[str]:
    """The token as it could be spelled: raw, percent-encoded, JSON- and HTML-escaped, base64 at every alignment
    (with and without "Bearer "), the edges a neighbouring byte changes left out."""
    raw = token.encode()
    forms = {token, quote(token, safe=""), quote_plus(token), json.dumps(token)[1:-1], token.replace("&", "&amp;")}
    for prefix in (b"", b"Bearer "):
        for pad in range(3):
            for encode in (base64.b64encode, base64.urlsafe_b64encode):
                encoded = encode(b"\0" * pad + prefix + raw).decode()
                forms.add(encoded[(4 if pad else 0):-4])
    return sorted(form for form in forms if len(form) >= 16)


def assert_no_token(data: bytes | str, token: str, where: str) -> None:
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    found = [form for form in token_forms(token) if form in text]
    assert not found, f"{where} holds the token (as {found[:2]})"


def assert_one_line_error(result: subprocess.CompletedProcess[str], command: str, code: int) -> str:
    """The run failed with ``code`` and its last stderr line is ``mangrove-nb COMMAND: ...``, with no traceback."""
    assert result.returncode == code, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = result.stderr.rstrip("\n").split("\n")
    assert lines[-1].startswith(f"mangrove-nb {command}: "), result.stderr[-3000:]
    return lines[-1]


def report_env(url: str, token: str, **extra: str) -> dict[str, str]:
    return {"MANGROVE_API_URL": url, "MANGROVE_API_TOKEN": token, **extra}


MALFORMED_TOKENS = {
    "a line break": ("line break", "mgv_live_{a}\n{b}"),
    "a non-Latin-1 character": ("U+0436 CYRILLIC SMALL LETTER ZHE", "mgv_live_{a}\u0436{b}"),
    "a zero-width space": ("U+200B ZERO WIDTH SPACE", "mgv_live_{a}\u200b{b}"),
}


@pytest.mark.parametrize("case", list(MALFORMED_TOKENS))
def test_report_with_a_malformed_token_is_one_line_and_writes_nothing(case: str, tmp_path: Path) -> None:
    """A token with a line break or a non-Latin-1 character reached the HTTP library (from the kernel), which put
    it in its error, printed by the command and kept in the _FAILED notebook. Settings now refuse it, unquoted,
    before anything is written: one line, exit code 2."""
    what, template = MALFORMED_TOKENS[case]
    halves = secrets.token_hex(12), secrets.token_hex(12)
    token = template.format(a=halves[0], b=halves[1])
    out = tmp_path / "reports"
    result = run_command("report", "--quarter", "2025Q1", "--out", str(out), timeout=60,
                         env=report_env("http://127.0.0.1:9/api/v1", token))
    line = assert_one_line_error(result, "report", 2)
    assert result.stderr == line + "\n" and result.stdout == ""
    assert what in line and "MANGROVE_API_TOKEN" in line
    for half in halves:
        assert half not in result.stderr
    assert not out.exists()


@pytest.mark.parametrize(("args", "env", "expected"), [
    (("report", "--quarter", "2025Q5"), "valid", "2025Q5"),
    (("report", "--quarter", "2025-02"), "valid", "quarter"),
    (("report",), "valid", "the following arguments are required: --quarter"),
    (("report", "--quarter", "2025Q1"), "none", "No Mangrove API token was given"),
    (("report", "--quarter", "2025Q1"), "plain http", "uses plain http://"),
    (("emulator", "--port", "70000"), "none", "argument --port: 70000 is out of range; give 0-65535"),
    (("emulator", "--port", "-1"), "none", "argument --port: -1 is out of range"),
    (("emulator", "--port", "eighty"), "none", "argument --port: 'eighty' is not a port number"),
    (("emulator", "--batch-seconds", "-1"), "none", "argument --batch-seconds: -1 must be 0 or more seconds"),
    (("emulator", "--rate-limit", "0"), "none", "argument --rate-limit: 0 must be at least 1"),
    (("emulator", "--port", "0", "--db", "{tmp}/no-such-folder/state.sqlite3"), "none",
     "cannot use {tmp}/no-such-folder/state.sqlite3 as the emulator's database"),
    (("demo", "--quarter", "2025Q5", "--out", "{tmp}/demo"), "none", "2025Q5"),
])
def test_bad_input_is_a_one_line_error_with_exit_code_2(args: tuple[str, ...], env: str, expected: str,
                                                        tmp_path: Path) -> None:
    """Bad arguments and configuration: one line naming what is wrong and how to fix it, exit code 2, no traceback.
    Before, a port out of range was an OverflowError traceback and a bad --db an sqlite3 traceback."""
    variables = {"valid": report_env("http://127.0.0.1:9/api/v1", f"mgv_{secrets.token_hex(16)}"), "none": {},
                 "plain http": report_env("http://example.com/api/v1", f"mgv_{secrets.token_hex(16)}")}[env]
    result = run_command(*(arg.format(tmp=tmp_path) for arg in args), timeout=60, env=variables, cwd=tmp_path)
    line = assert_one_line_error(result, args[0], 2)
    assert expected.format(tmp=tmp_path) in line, line
    assert result.stderr == line + "\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "nothing is written"


def test_a_failing_generation_task_is_one_line_with_exit_code_1(make_emulator: Any, tmp_path: Path) -> None:
    """--generate-missing where the server's generation fails (2025Q4 lacks an electricity reading)."""
    emu = make_emulator()
    with client(emu.token) as session:
        ncr = ledger_id(session, emu.url, "Net Carbon Removal")
    result = run_command("report", "--quarter", "2025Q4", "--ledger", ncr, "--generate-missing", "--out",
                         str(tmp_path / "out"), timeout=REPORT_TIMEOUT, env=report_env(emu.url, emu.token))
    line = assert_one_line_error(result, "report", 1)
    assert "failed on the server" in line and "Electricity" in line and "skipped_data_point_type_ids" in line
    # The count per ledger: 6 on Net Carbon Removal read as if one ledger had twice its batches.
    assert (f"Generating 2025Q4 on Net Carbon Removal ({ncr}): the preview counts 3 batches on Net Carbon Removal, "
            "3 on Biochar Produced (made by the same model).\n") in result.stderr
    assert emu.count("create-batch-generation") == 1
    assert list((tmp_path / "out").iterdir()) == []  # no cell ran: no notebook
    assert_no_token(result.stdout + result.stderr, emu.token, "the output")


@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_an_unusable_out_is_one_line_before_anything_runs_or_generates(where: str, make_emulator: Any,
                                                                      tmp_path: Path) -> None:
    """--out was checked only after every cell ran, and after --generate-missing generated; a file gave a raw
    FileExistsError."""
    emu = make_emulator()
    blocker = tmp_path / "blocker.txt"
    blocker.write_text("keep me", encoding="utf-8")
    out = blocker if where == "a file" else blocker / "reports"
    result = run_command("report", "--quarter", "2025Q1", "--generate-missing", "--out", str(out), timeout=60,
                         env=report_env(emu.url, emu.token))
    line = assert_one_line_error(result, "report", 1)
    assert result.stderr == line + "\n", "nothing ran: no progress line"
    assert f"The output folder {out} " in line and "--out" in line
    assert emu.count("create-batch-generation") == 0 and emu.count("generate-preview") == 0
    assert blocker.read_text(encoding="utf-8") == "keep me"


def test_a_kernel_that_cannot_start_is_one_line(make_emulator: Any, tmp_path: Path) -> None:
    """The python3 kernel's command exits at once (a broken kernel spec, found first through JUPYTER_PATH)."""
    emu = make_emulator()
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({"argv": [sys.executable, "-c", "raise SystemExit(3)"],
                                                  "display_name": "broken", "language": "python"}))
    result = run_command("report", "--quarter", "2024Q4", "--out", str(tmp_path / "out"), timeout=REPORT_TIMEOUT,
                         env=report_env(emu.url, emu.token, JUPYTER_PATH=str(tmp_path / "jupyter")))
    line = assert_one_line_error(result, "report", 1)
    assert line.startswith("mangrove-nb report: The report kernel 'python3' could not start (")
    assert "pip install 'mangrove_nb[reports]'" in line
    assert list((tmp_path / "out").iterdir()) == []
    assert_no_token(result.stdout + result.stderr, emu.token, "the output")


def test_ctrl_c_during_a_report_is_one_line_and_keeps_the_partial_notebook(make_emulator: Any,
                                                                           tmp_path: Path) -> None:
    emu = make_emulator()
    out = tmp_path / "out"
    result, _ = _signalled(["report", "--quarter", "2024Q4", "--out", str(out)],
                           _report_env(report_env(emu.url, emu.token)), "[5/", signal.SIGINT)  # Ctrl-C in cell 5
    stdout, stderr = result.stdout, result.stderr
    partial = out / "quarterly_report_2024Q4_FAILED.ipynb"
    line = assert_one_line_error(result, "report", 130)
    assert line == f"mangrove-nb report: interrupted (Ctrl-C). The partial notebook is at {partial}."
    assert stdout == "" and partial.exists() and sorted(p.name for p in out.iterdir()) == [partial.name]
    assert_no_token(stdout + stderr + partial.read_text(encoding="utf-8"), emu.token, "the output")


def test_canary_token_reaches_no_output_file_or_console(make_emulator: Any, tmp_path: Path) -> None:
    """Three real report runs with a canary token, the kernel's tracebacks in IPython's verbose mode (every frame's
    locals): a report that succeeds; one where the token was pasted as a ledger id (it used to stay in the
    injected parameters cell of the _FAILED notebook; it is now refused, masked, before anything runs); and a
    failing one where the server echoes the token in its error. Every file written, and the console, are searched
    for the token in all its spellings."""
    token = canary()
    emu = make_emulator(token=token)
    ipython = tmp_path / "ipython" / "profile_default"
    ipython.mkdir(parents=True)
    (ipython / "ipython_kernel_config.py").write_text('c.InteractiveShell.xmode = "Verbose"\n', encoding="utf-8")
    env = report_env(emu.url, token, IPYTHONDIR=str(tmp_path / "ipython"))
    out = tmp_path / "reports"

    ok = run_command("report", "--quarter", "2024Q4", "--generate-missing", "--out", str(out / "ok"),
                     timeout=REPORT_TIMEOUT, env=env)
    assert ok.returncode == 0, ok.stderr[-3000:]
    pasted = run_command("report", "--quarter", "2024Q4", "--ledger", token, "--out", str(out / "pasted"),
                         timeout=REPORT_TIMEOUT, env=env)
    assert "No ledger is called or has the id '…'" in assert_one_line_error(pasted, "report", 2)  # checked first
    emu.faults.fail("list-all-ledgers", 403, message=f"token {token} (Bearer {token}) is not allowed here")
    echoed = run_command("report", "--quarter", "2024Q4", "--out", str(out / "echo"), timeout=REPORT_TIMEOUT, env=env)
    assert "PermissionDeniedError" in assert_one_line_error(echoed, "report", 2)  # a token to correct: exit 2

    written = sorted(path.relative_to(out).as_posix() for path in out.rglob("*") if path.is_file())
    assert written == ["echo/quarterly_report_2024Q4_FAILED.ipynb", "ok/quarterly_report_2024Q4.html",
                       "ok/quarterly_report_2024Q4.ipynb"]  # the pasted token was refused before anything ran
    failed = json.loads((out / "echo" / "quarterly_report_2024Q4_FAILED.ipynb").read_text(encoding="utf-8"))
    shown = "\n".join(line for cell in failed["cells"] for output in cell.get("outputs", [])
                      if output["output_type"] == "error" for line in output["traceback"])
    assert "self = <HttpClient" in re.sub(r"\x1b\[[0-9;]*m", "", shown)  # the verbose traceback shows locals
    for path in out.rglob("*"):
        if path.is_file():
            assert_no_token(path.read_bytes(), token, str(path.relative_to(out)))
    for name, run in (("ok", ok), ("pasted", pasted), ("echo", echoed)):
        assert_no_token(run.stdout, token, f"stdout of the {name} run")
        assert_no_token(run.stderr, token, f"stderr of the {name} run")


# --- the report's command line: ledgers by name, the project, the version, plain help ------------------------


def test_an_unknown_ledger_name_is_one_line_with_the_close_matches_before_anything_runs(make_emulator: Any,
                                                                                      tmp_path: Path) -> None:
    """`--ledger "Net Carbon Remova"`: exit code 2, one line naming the close match and the ledgers, no progress
    line (no kernel started), nothing previewed, generated or written."""
    emu = make_emulator()
    out = tmp_path / "out"
    result = run_command("report", "--quarter", "2025Q1", "--ledger", "Net Carbon Removal", "--ledger",
                         "Net Carbon Remova", "--generate-missing", "--out", str(out), timeout=60,
                         env=report_env(emu.url, emu.token))
    line = assert_one_line_error(result, "report", 2)
    assert result.stderr == line + "\n" and result.stdout == ""
    assert "'Net Carbon Remova'" in line and "Did you mean 'Net Carbon Removal'?" in line
    assert "Dry Feedstock Delivered" in line  # the ledgers the API lists
    assert emu.count("generate-preview") == 0 and emu.count("create-batch-generation") == 0
    assert not out.exists()


def test_an_unknown_project_is_one_line_with_exit_code_2(make_emulator: Any, tmp_path: Path) -> None:
    emu = make_emulator()
    for args, env in ((("--project", "999"), {}), ((), {"MANGROVE_PROJECT_ID": "998"})):
        result = run_command("report", "--quarter", "2025Q1", *args, "--out", str(tmp_path / "out"), timeout=60,
                             env=report_env(emu.url, emu.token, **env))
        line = assert_one_line_error(result, "report", 2)
        assert result.stderr == line + "\n"
        assert "has no project" in line and ("'999'" in line or "'998'" in line) and "MANGROVE_PROJECT_ID" in line
    assert not (tmp_path / "out").exists()


def test_version_and_help_are_plain_text() -> None:
    """`--version` prints the version; no help text carries reStructuredText markup (``literals`` or :roles:)."""
    from mangrove_nb import __version__

    version = run_command("--version", timeout=60)
    assert version.returncode == 0 and version.stdout == f"mangrove-nb {__version__}\n", version
    for command in ((), ("emulator",), ("demo",), ("report",)):
        shown = run_command(*command, "--help", timeout=60)
        assert shown.returncode == 0, shown.stderr
        assert "``" not in shown.stdout and not re.search(r":[a-z]+:`", shown.stdout), shown.stdout
        assert shown.stdout.startswith("usage: mangrove-nb")
    report = run_command("report", "--help", timeout=60).stdout
    assert "--ledger LEDGER" in report and "name or id" in report and "--project ID" in report
    flat = " ".join(report.split())
    assert "notebooks/03_quarterly_report" not in report and "template that ships in the package" in flat
    assert "--template NOTEBOOK" in report and "give its path to --template" in flat


def test_demo_walk_honours_the_quarter() -> None:
    """`demo --walk --quarter 2025Q2` walks 2025Q2 (it used to walk Q1 2025 whatever the quarter): May 2025 was a
    maintenance shutdown, so the generation makes April and June."""
    result = run_command("demo", "--walk", "--quarter", "2025Q2", "--batch-seconds", "0.01", timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "generate_preview for 2025Q2 (2025-04-01 → 2025-06-30 UTC)" in result.stdout
    assert "NCR-2025-04" in result.stdout and "NCR-2025-06" in result.stdout and "NCR-2025-01" not in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "2 batch(es) listed; the preview said 2."
    refused = run_command("demo", "--walk", "--quarter", "2025-05", timeout=60)
    assert "quarter" in assert_one_line_error(refused, "demo", 2)


def test_a_missing_optional_library_is_one_line_naming_the_extra(monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Without nbformat (the reports extra) the report command used to end in a ModuleNotFoundError traceback."""
    from mangrove_nb.cli import main

    monkeypatch.setitem(sys.modules, "nbformat", None)  # `import nbformat` now raises ModuleNotFoundError
    monkeypatch.setenv("MANGROVE_API_URL", "http://127.0.0.1:9/api/v1")
    monkeypatch.setenv("MANGROVE_API_TOKEN", f"mgv_{secrets.token_hex(16)}")
    assert main(["report", "--quarter", "2025Q1", "--out", "never-written"]) == 1
    err = capsys.readouterr().err
    assert err == ("mangrove-nb report: this needs nbformat, which is not installed in this Python; install it with "
                   "pip install 'mangrove_nb[reports]'.\n")
    assert not Path("never-written").exists()


def test_a_base_url_without_api_v1_says_the_base_url_is_wrong(make_emulator: Any, tmp_path: Path) -> None:
    """`MANGROVE_API_URL=http://127.0.0.1:PORT` (no /api/v1) used to say "The API has no project '123'": every
    address answers 404 there, so /ledgers is asked and its error names the base URL; input to correct, exit 2."""
    emu = make_emulator()
    base = emu.url.removesuffix("/api/v1")
    for args, env in ((("--project", "123"), {}), ((), {"MANGROVE_PROJECT_ID": "123"})):
        result = run_command("report", "--quarter", "2025Q1", *args, "--out", str(tmp_path / "out"), timeout=60,
                             env=report_env(base, emu.token, **env))
        line = assert_one_line_error(result, "report", 2)
        assert result.stderr == line + "\n"
        assert "base URL is probably wrong" in line and "/api/v1" in line and "has no project" not in line
        assert emu.token not in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("token", ["", "abc\ndef", "two words", "caf\u00e9-token"])
def test_an_emulator_token_no_client_can_send_is_one_line_with_exit_code_2(token: str) -> None:
    """`--token ""` (or with a line break, a space, a non-ASCII character) was accepted, and then the emulator
    answered 401 to everything. Now: one line naming the fault, never the token, exit 2, nothing served."""
    for option in ("--token", "--read-only-token"):
        result = run_command("emulator", "--port", "0", option, token, timeout=60)
        line = assert_one_line_error(result, "emulator", 2)
        assert result.stderr == line + "\n" and "Mangrove emulator on" not in result.stdout
        assert f"argument {option}:" in line and ("empty" in line or "at character" in line)
        if token:
            assert token not in line and "def" not in line and "words" not in line


def test_ctrl_c_while_the_command_imports_is_one_line_with_exit_code_130(monkeypatch: pytest.MonkeyPatch,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Ctrl-C in the command's first second (building the parser imports the emulator, a command imports pandas,
    nbclient...) printed a long traceback and exited -2: now one line, exit 130."""
    from mangrove_nb import cli

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    assert cli.main(["report", "--quarter", "2025Q1"]) == 130
    captured = capsys.readouterr()
    assert captured.err == "mangrove-nb: interrupted (Ctrl-C).\n" and captured.out == ""
    monkeypatch.undo()
    monkeypatch.setitem(sys.modules, "mangrove_nb.reports", None)  # importing the report's libraries is refused...
    monkeypatch.setattr(cli.report, "run", interrupted)  # ...and Ctrl-C arrives while the command starts
    assert cli.main(["report", "--quarter", "2025Q1"]) == 130
    assert capsys.readouterr().err == "mangrove-nb report: interrupted (Ctrl-C).\n"


def test_a_reader_that_leaves_early_gets_no_broken_pipe_traceback():
    """``mangrove-nb ... | head -1``: the command's output outgrows the pipe, the reader has gone; no traceback,
    exit 141 (128 + SIGPIPE) as a shell reports it."""
    # The output is written by a command (as `registry` prints its plan), inside _main's error handling.
    program = ("import sys\nfrom mangrove_nb import cli\n"
               "cli.demo.run = lambda args: print('row\\n' * 200_000) or 0\n"
               "sys.exit(cli.main(['demo']))\n")
    with subprocess.Popen([sys.executable, "-c", program], stdout=subprocess.PIPE, stderr=subprocess.PIPE) as child:
        assert child.stdout is not None and child.stderr is not None
        child.stdout.read(4)
        child.stdout.close()  # like head: read a little, then leave
        stderr = child.stderr.read().decode()
        assert child.wait(timeout=60) == 141
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr


# --- a rejected token, and the Python API's advice in the command's words -----------------------------------------

# A keyword argument (lower case: MANGROVE_API_TOKEN=... is the shell's) or a Python call, in an advice.
PYTHON_ADVICE = re.compile(r"\b[a-z_]+=(?:\.\.\.|\)|True|\s)|connect\(|\([a-z_]+=")


def test_a_token_the_api_rejects_exits_2_with_the_commands_advice(make_emulator: Any, tmp_path: Path) -> None:
    """A wrong token (401) exited 1, where the README promises 2 for configuration to correct, and said "pass
    token=...": now exit 2 and "set MANGROVE_API_TOKEN", for `report` (checked before any kernel starts, the project
    being read first) and `registry`."""
    emu = make_emulator()
    wrong = f"mgv_{secrets.token_hex(16)}"
    env = report_env(emu.url, wrong)
    for args in (("report", "--quarter", "2025Q1", "--project", "123", "--out", str(tmp_path / "out")),
                 ("registry", "--quarter", "2025Q1", "--report", "rpt_nope")):
        result = run_command(*args, timeout=60, env=env)
        line = assert_one_line_error(result, args[0], 2)
        assert "HTTP 401" in line and "set MANGROVE_API_TOKEN to a valid token" in line, line
        assert not PYTHON_ADVICE.search(line), line
        assert_no_token(result.stdout + result.stderr, wrong, "the output")
    assert not (tmp_path / "out").exists()


def test_python_advice_is_put_in_the_commands_words(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each message of the Python API that the command shows with Python advice ("pass token=... to connect()",
    "--force (force=True)", "connect(base_url=...)", "pass template=") is made by the real code, and the command's
    version of it has the command's words: an option or an environment variable, never a keyword argument."""
    import mangrove_nb as mnb
    from mangrove_nb.cli._messages import cli_words
    from mangrove_nb.errors import AuthenticationError, MangroveError, NotFoundError
    from mangrove_nb.reports import build_report
    from mangrove_nb.reports.files import _output_folder
    from mangrove_nb.starter import copy_notebooks

    monkeypatch.delenv("MANGROVE_API_TOKEN", raising=False)
    monkeypatch.delenv("MANGROVE_PROJECT_ID", raising=False)

    def raised(action: Any) -> str:
        with pytest.raises(MangroveError) as caught:
            action()
        return str(caught.value)

    url = "http://127.0.0.1:9/api/v1"
    copy_notebooks(tmp_path / "nb")
    (tmp_path / "a-file").write_text("", encoding="utf-8")
    with mnb.connect(f"mgv_{secrets.token_hex(16)}", url, show_progress=False) as session:
        no_project = raised(session.project)  # refused before anything is sent
    cases = [  # (command, the Python API's message, what the command says instead)
        ("report", raised(lambda: mnb.connect(base_url=url, interactive=False)),
         "set the MANGROVE_API_TOKEN environment variable in the shell that runs the command"),
        ("report", str(AuthenticationError(status_code=401, method="GET", url=f"{url}/ledgers")),
         "Check the API token: set MANGROVE_API_TOKEN to a valid token;"),
        ("report", str(NotFoundError(status_code=404, method="GET", url=f"{url}/ledgers",
                                     hint=NotFoundError.base_url_hint)), "check MANGROVE_API_URL."),
        ("report", no_project, "No project given: pass --project ID, or set MANGROVE_PROJECT_ID (the emulator"),
        ("registry", no_project, "No project given: set MANGROVE_PROJECT_ID (the emulator"),
        ("report", raised(lambda: build_report("2025Q1", template=tmp_path / "nowhere.ipynb")),
         "give --template the path of a notebook"),
        ("report", raised(lambda: _output_folder(tmp_path / "a-file")), "; give --out a folder you can write to"),
        ("notebooks", raised(lambda: copy_notebooks(tmp_path / "nb")), "Pass --force to overwrite the notebooks"),
    ]
    for command, message, expected in cases:
        assert PYTHON_ADVICE.search(message), message  # the Python API's own words stay as they are
        said = cli_words(command, message)
        assert expected in said and not PYTHON_ADVICE.search(said), (command, said)


def test_report_renders_an_edited_template_given_to_template(make_emulator: Any, tmp_path: Path) -> None:
    """`mangrove-nb notebooks` copies the template; an edited copy renders with --template (before, the CLI could
    only render the packaged one); a template that is not a file is a usage error before anything runs."""
    emu = make_emulator()
    copied = run_command("notebooks", str(tmp_path / "nb"), timeout=60)
    assert copied.returncode == 0, copied.stderr
    template = tmp_path / "nb" / "03_quarterly_report.ipynb"
    notebook = json.loads(template.read_text(encoding="utf-8"))
    marker = f"Prepared for the board {secrets.token_hex(4)}"
    notebook["cells"].insert(1, {"cell_type": "markdown", "id": "board-note", "metadata": {}, "source": [marker]})
    template.write_text(json.dumps(notebook), encoding="utf-8")
    out = tmp_path / "out"
    result = run_command("report", "--quarter", "2024Q4", "--template", str(template), "--out", str(out),
                         timeout=REPORT_TIMEOUT, env=report_env(emu.url, emu.token))
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout == f"{out / 'quarterly_report_2024Q4.html'}\n"
    assert marker in (out / "quarterly_report_2024Q4.html").read_text(encoding="utf-8")
    missing = run_command("report", "--quarter", "2024Q4", "--template", str(tmp_path / "nowhere.ipynb"), "--out",
                          str(tmp_path / "never"), timeout=60, env=report_env(emu.url, emu.token))
    line = assert_one_line_error(missing, "report", 2)
    assert "argument --template:" in line and "nowhere.ipynb" in line and "mangrove-nb notebooks" in line
    assert not (tmp_path / "never").exists()


def test_a_report_of_a_quarter_nobody_generated_says_how_to_generate_it(make_emulator: Any, tmp_path: Path) -> None:
    """`mangrove-nb report --quarter 2025Q1` on data nobody generated rendered a report of "not generated" months,
    exit 0, without a word on the console. Now one line on stderr (stdout keeps only the paths) names
    --generate-missing and how many batches the preview counts; a generated quarter gets no such line."""
    emu = make_emulator()
    out = tmp_path / "out"
    result = run_command("report", "--quarter", "2025Q1", "--out", str(out), timeout=REPORT_TIMEOUT,
                         env=report_env(emu.url, emu.token))
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout == f"{out / 'quarterly_report_2025Q1.html'}\n"
    hints = [ln for ln in result.stderr.splitlines() if ln.startswith("mangrove-nb report: ")]
    assert len(hints) == 1 and "Add --generate-missing" in hints[0], result.stderr[-2000:]
    assert re.search(r"quarterly_report_2025Q1: \d+ of \d+ ledger-months have no complete batch, and the preview "
                     r"counts [1-9]\d* batch\(es\)", hints[0]), hints[0]
    generated = run_command("report", "--quarter", "2024Q4", "--out", str(out), timeout=REPORT_TIMEOUT,
                            env=report_env(emu.url, emu.token))
    assert generated.returncode == 0 and "--generate-missing" not in generated.stderr, generated.stderr[-2000:]


# --- review 14b: signals during a report ----------------------------------------------------------------------


def _processes_with(marker: str) -> list[str]:
    """The processes whose environment holds ``marker`` (the command and the kernels it started), by pid and
    command line."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as handle:
                if marker.encode() not in handle.read():
                    continue
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                command = handle.read().replace(b"\0", b" ")[:120].decode(errors="replace")
            found.append(f"{pid} {command}")
        except OSError:
            continue  # gone meanwhile, or not ours to read
    return found


def _processes_left(marker: str, wait: float = 10) -> list[str]:
    """``_processes_with(marker)`` once none is left, or after ``wait`` seconds (a kernel takes a moment to go)."""
    deadline = time.monotonic() + wait
    while _processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    return _processes_with(marker)


def _signalled(args: list[str], env: Mapping[str, str], prefix: str, number: int, *,
               when: Callable[[], object] | None = None) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run the command; when a line of its stderr starts with ``prefix``, call ``when`` and send it signal
    ``number``. What it printed (stderr whole) and its exit code, and the stderr after the signal; bounded by
    REPORT_TIMEOUT whatever happens."""
    lines: list[str] = []
    with subprocess.Popen([*COMMAND, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          encoding="utf-8", env=dict(env)) as process:
        timer = threading.Timer(REPORT_TIMEOUT, process.kill)
        timer.start()
        try:
            assert process.stderr is not None and process.stdout is not None
            for line in process.stderr:
                lines.append(line)
                if line.startswith(prefix):
                    if when is not None:
                        when()
                    process.send_signal(number)
                    break
            rest, stdout = process.stderr.read(), process.stdout.read()
            code = process.wait(timeout=STOP_TIMEOUT * 4)
        finally:
            timer.cancel()
            if process.poll() is None:
                process.kill()
    return subprocess.CompletedProcess(process.args, code, stdout, "".join(lines) + rest), rest


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP"])
def test_sigterm_or_sighup_mid_range_cleans_up_like_ctrl_c(name: str, make_emulator: Any, tmp_path: Path) -> None:
    """`timeout 20 mangrove-nb report --quarter ...` (SIGTERM) or a closed terminal (SIGHUP) left the read cache
    (every API answer) in $TMPDIR/mangrove-report-*/ and the kernels' connection files (their keys) as tmp*.json.
    Now the signal is handled as Ctrl-C is: one line, exit 128 + the signal, nothing left in TMPDIR, no kernel
    (the running one and the spare one started for the next quarter) left running."""
    number = getattr(signal, name)
    emu = make_emulator()
    out, temporary = tmp_path / "out", tmp_path / "tmp"
    temporary.mkdir()
    marker = f"MANGROVE_NB_TEST_{secrets.token_hex(8)}"
    env = _report_env(report_env(emu.url, emu.token, TMPDIR=str(temporary), MANGROVE_NB_TEST_MARK=marker))
    seen: list[str] = []
    # The first kernel runs cell 5 and the spare one has started: the signal goes to the command only, as
    # `timeout` and systemd send it.
    result, _ = _signalled(["report", "--quarter", "2024Q3..2024Q4", "--out", str(out)], env, "2024Q3 [5/", number,
                           when=lambda: seen.extend(sorted(p.name for p in temporary.iterdir())))
    stderr = result.stderr
    assert any(n.startswith("mangrove-report-") for n in seen) and len([n for n in seen if n.endswith(".json")]) >= 2
    line = assert_one_line_error(result, "report", 128 + number)
    assert line.startswith(f"mangrove-nb report: stopped ({name}). ") and "0 of 2 reports were written" in line
    assert [ln for ln in stderr.splitlines() if not re.match(r"^2024Q[34] \[\d+/\d+\] ", ln)] == [line]
    assert sorted(p.name for p in temporary.iterdir()) == []  # no read cache, log or connection file
    assert _processes_left(marker) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigterm_during_the_demo_is_handled_as_for_a_report(tmp_path: Path) -> None:
    """`make demo` renders the same report as `mangrove-nb report`, but SIGTERM during it ended with exit 143 and
    no word, no _FAILED.ipynb, and the kernel left to die on its own. Now: one line, the partial notebook kept,
    nothing left in TMPDIR, no kernel left running."""
    out, temporary = tmp_path / "out", tmp_path / "tmp"
    temporary.mkdir()
    marker = f"MANGROVE_NB_TEST_{secrets.token_hex(8)}"
    env = {**os.environ, "TMPDIR": str(temporary), "MANGROVE_NB_TEST_MARK": marker}
    result, rest = _signalled(["demo", "--out", str(out), "--batch-seconds", "0.05"], env, "[5/",  # in cell 5
                              signal.SIGTERM)
    code, stdout = result.returncode, result.stdout
    assert code == 128 + signal.SIGTERM, (stdout, rest)
    last = rest.strip().splitlines()[-1]
    assert last == (f"mangrove-nb demo: stopped (SIGTERM). The partial notebook is at "
                    f"{out / 'quarterly_report_2025Q1_FAILED.ipynb'}."), rest
    assert "Traceback" not in rest and (out / "quarterly_report_2025Q1_FAILED.ipynb").exists()
    assert sorted(p.name for p in temporary.iterdir()) == []
    assert _processes_left(marker) == []


def test_an_interrupt_lost_in_a_finaliser_is_raised_again_not_printed(capfd: pytest.CaptureFixture[str]) -> None:
    """An interrupt that lands while Python runs a __del__ or a weakref callback (asyncio's, the garbage
    collector's) was printed as 'Exception ignored in ... KeyboardInterrupt' and lost: a range went on to the end
    and exited 0 after Ctrl-C. While a report renders it is raised again, at the next instruction."""
    from mangrove_nb import cli

    class Finalised:
        def __del__(self) -> None:
            signal.raise_signal(signal.SIGINT)  # handled here, in the finaliser: the KeyboardInterrupt is lost

    def render() -> None:
        with cli._signals.stop_signals_interrupt():
            Finalised()  # deleted at once
            time.sleep(5)

    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        render()
    assert time.monotonic() - started < 4
    assert "Exception ignored" not in capfd.readouterr().err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
