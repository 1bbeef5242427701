"""Who may use the control endpoints, and what the console log may hold.

* ``--enable-control``'s ``/_emulator/*`` endpoints (faults, counts, reset) used to accept any valid token: a
  read-only token could reset the data or make every request fail. They need the read-write token: 401 without
  a valid token, 403 with a read-only one, and nothing changes.
* The request log used to write each query string, so ``?token=…`` landed in the console in clear (and
  http.server logged a malformed request line whole). The log line is method, path, status and duration: the
  tests send secrets in query strings, fragments, userinfo and malformed request lines, capture every log
  record and everything written to stdout and stderr (in process, and from the ``mangrove-nb emulator``
  command), and find no secret.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest
import requests
from test_emulator_http import ledger_id, message, session_for

from mangrove_nb.emulator import Emulator, resources
from mangrove_nb.testing import emulator as start_emulator

READ_ONLY = "reader-token-3b1f"
SECRET = "s3cr3t-Q7vX9kL2mN"  # a token-looking value that must never reach the log
CONTROL = [("GET", "/_emulator/stats", None), ("POST", "/_emulator/faults", {"kind": "fail", "status": 503}),
           ("DELETE", "/_emulator/faults", None), ("POST", "/_emulator/reset", None)]


# --- the control endpoints need the read-write token ---------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "body"), CONTROL, ids=[f"{m} {p}" for m, p, _b in CONTROL])
def test_control_endpoints_refuse_a_read_only_token_with_403_and_change_nothing(
        make_emulator: Callable[..., Emulator], method: str, path: str, body: dict[str, object] | None) -> None:
    emu = make_emulator(read_only_tokens=(READ_ONLY,))
    with session_for(emu) as admin:
        made = admin.post(f"{emu.url}/projects/123/ledgers", json={"ledger": {"name": "Kept", "unit": "t"}}, timeout=5)
        assert made.status_code == 201
        admin.post(f"{emu.root_url}/_emulator/faults", json={"kind": "delay", "operation": "project", "seconds": 0},
                   timeout=5)
        before = admin.get(f"{emu.root_url}/_emulator/stats", timeout=5).json()
    with session_for(emu, READ_ONLY) as reader:
        answer = reader.request(method, f"{emu.root_url}{path}", json=body, timeout=5)
        assert answer.status_code == 403, answer.text[:200]
        assert "read-write token" in message(answer) and READ_ONLY not in answer.text
        assert reader.get(f"{emu.url}/ledgers/{made.json()['id']}", timeout=5).status_code == 200  # reads still work
    for header in (None, "Bearer wrong-token", f"Bearer {READ_ONLY}x"):
        headers = {"Authorization": header} if header else {}
        anonymous = requests.request(method, f"{emu.root_url}{path}", json=body, headers=headers, timeout=5)
        assert anonymous.status_code == 401, anonymous.text[:200]
        assert "token" in message(anonymous)
    with session_for(emu) as admin:
        after = admin.get(f"{emu.root_url}/_emulator/stats", timeout=5).json()
        assert after["faults"] == before["faults"]  # none armed, none cleared
        assert after["counts"]["retrieve-ledger"] == before["counts"].get("retrieve-ledger", 0) + 1  # not reset
        assert admin.get(f"{emu.url}/ledgers/{made.json()['id']}", timeout=5).status_code == 200  # not reset
        assert admin.get(f"{emu.url}/ledgers", timeout=5).status_code == 200  # no fault armed
        for method_, path_, body_ in CONTROL:  # the read-write token may use every one
            answer = admin.request(method_, f"{emu.root_url}{path_}", json=body_, timeout=5)
            assert answer.status_code in (200, 201, 204), answer.text[:200]


# --- the request log holds no query string -------------------------------------------------------------------


def raw_request(emu: Emulator, raw: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", emu.port), timeout=10) as sock:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def send_secrets(emu: Emulator) -> None:
    """Every way a secret may ride in a request's target: what a careless client or a hostile one sends."""
    auth = f"Authorization: Bearer {emu.token}\r\n".encode()
    with session_for(emu) as s:
        assert s.get(f"{emu.url}/ledgers", params={"token": SECRET, "page": 1}, timeout=5).status_code == 200
        assert s.get(f"{emu.url}/ledgers?api_key={SECRET}&page=abc", timeout=5).status_code == 400
        assert s.get(f"{emu.url}/nowhere?token={SECRET}", timeout=5).status_code == 404
        assert s.get(f"{emu.url}/projects/123?token={SECRET}", timeout=5).status_code == 500  # the route raises
        ncr = ledger_id(emu, "Net Carbon Removal")
        assert s.post(f"{emu.url}/ledgers/{ncr}/generate_preview?token={SECRET}", data=b"{",
                      timeout=5).status_code == 400
    assert requests.get(f"{emu.url}/ledgers?token={SECRET}", timeout=5).status_code == 401
    assert requests.get(f"{emu.root_url}/_emulator/stats?token={SECRET}", timeout=5).status_code == 401
    for target in (f"/api/v1/ledgers#token={SECRET}", f"/api/v1/ledgers?x=1#{SECRET}",
                   f"http://user:{SECRET}@127.0.0.1/api/v1/ledgers", f"http://127.0.0.1/api/v1/ledgers?token={SECRET}"):
        assert raw_request(emu, f"GET {target} HTTP/1.1\r\nHost: e\r\n{auth.decode()}Connection: close\r\n\r\n".encode()
                           ).startswith(b"HTTP/1.1 200")
    for malformed in (f"GET /api/v1/ledgers?token={SECRET} HTTP/1.1 trailing\r\n\r\n",
                      f"GET /api/v1/ledgers?token={SECRET} HTTP/9.9\r\n\r\n",
                      f"GET /api/v1/ledgers?token={SECRET}&pad={'x' * 70_000} HTTP/1.1\r\n\r\n"):
        assert raw_request(emu, malformed.encode()).startswith(b"HTTP/1.1 4")


@pytest.fixture
def unchecked() -> Iterator[Emulator]:
    """Outside ``make_emulator``: one request here is a deliberate 500 (a route that raises), to log a traceback."""
    with start_emulator() as emu:
        yield emu


def test_request_log_never_holds_a_query_string_or_secret(unchecked: Emulator, caplog: pytest.LogCaptureFixture,
                                                           capfd: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(row: object) -> dict[str, object]:
        raise RuntimeError("the route failed")

    monkeypatch.setattr(resources, "project", broken)
    caplog.set_level(logging.DEBUG)  # every logger, the emulator's, Werkzeug's and the root
    logging.getLogger("urllib3").setLevel(logging.INFO)  # this test's own client logs the URLs it sends
    send_secrets(unchecked)
    time.sleep(0.2)  # the last log lines come from the server's threads after the answers
    out, err = capfd.readouterr()
    records = [f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records]
    assert SECRET not in caplog.text and SECRET not in out and SECRET not in err
    assert not [line for line in records if SECRET in line or "?" in line.split(" ms")[0]]
    lines = [r.getMessage() for r in caplog.records if r.name == "mangrove_nb.emulator"]
    # The log is not empty: one line per request, method, path, status and duration.
    assert any(line.startswith("GET /api/v1/ledgers 200 ") and line.endswith(" ms") for line in lines), lines
    assert any(line.startswith("GET /api/v1/ledgers 401 ") for line in lines), lines
    assert any(line.startswith("GET /api/v1/projects/123 500 ") for line in lines), lines
    assert any("unexpected error on GET /api/v1/projects/123" in line for line in lines), lines
    assert sum("refused an unreadable request" in line for line in lines) == 3, lines


def test_request_log_escapes_control_characters_and_cuts_long_paths(emulator: Emulator,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    """A raw ESC in the path cannot colour or rewrite the console; a 60 kB path is one short line."""
    caplog.set_level(logging.INFO, logger="mangrove_nb.emulator")
    auth = f"Authorization: Bearer {emulator.token}\r\nConnection: close\r\n"
    raw_request(emulator, f"GET /api/v1/ledgers/\x1b[2J\x1b[31mred HTTP/1.1\r\n{auth}\r\n".encode("latin-1"))
    raw_request(emulator, f"GET /api/v1/ledgers/{'y' * 60_000} HTTP/1.1\r\n{auth}\r\n".encode())
    time.sleep(0.2)
    lines = [r.getMessage() for r in caplog.records if r.name == "mangrove_nb.emulator"]
    assert "GET /api/v1/ledgers/\\x1b[2J\\x1b[31mred 404" in " | ".join(lines), lines
    assert not [line for line in lines if "\x1b" in line]
    assert max(len(line) for line in lines) < 300


def test_emulator_command_stderr_never_holds_a_query_string(tmp_path: object) -> None:
    """The ``mangrove-nb emulator`` process, whose console is what a user sees: no secret in stdout or stderr."""
    command = [sys.executable, "-m", "mangrove_nb.cli", "emulator", "--port", "0", "--token", "cli-token-5d2e",
               "--read-only-token", "cli-reader-9a7c", "--enable-control"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            first = process.stdout.readline()
            assert first.startswith("Mangrove emulator on "), first
            url = first.split()[3]
            root = url.removesuffix("/api/v1")
            headers = {"Authorization": "Bearer cli-token-5d2e"}
            assert requests.get(f"{url}/ledgers?token={SECRET}", headers=headers, timeout=5).status_code == 200
            assert requests.get(f"{url}/ledgers?token={SECRET}", timeout=5).status_code == 401
            reader = {"Authorization": "Bearer cli-reader-9a7c"}
            assert requests.get(f"{root}/_emulator/stats?token={SECRET}", headers=reader, timeout=5).status_code == 403
            host, port = root.removeprefix("http://").split(":")
            with socket.create_connection((host, int(port)), timeout=5) as sock:
                sock.sendall(f"GET /api/v1/ledgers?token={SECRET} HTTP/1.1 x\r\n\r\n".encode())
                sock.shutdown(socket.SHUT_WR)
                assert sock.recv(100).startswith(b"HTTP/1.1 400")
        finally:
            process.terminate()
            out, err = process.communicate(timeout=10)
    assert "GET /api/v1/ledgers 200 " in err and "GET /api/v1/ledgers 401 " in err and "/_emulator/stats 403 " in err
    assert SECRET not in out and SECRET not in err and "token=" not in err
