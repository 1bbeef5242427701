"""Fixtures shared by the whole suite (plain helpers shared by several modules are in helpers.py).

Every emulator a test uses comes from ``make_emulator`` (``emulator`` is the common case), and every
response it gave is checked against the vendored OpenAPI contract when the test ends, here, in one place:
no test can skip the check. A 5xx is a failure too, unless a fault the test armed produced it.

``client`` is an analyst's client of ``emulator`` with the FAST settings; a module that needs other settings
(a project, slower polling) overrides ``client_options``, not ``client``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
import requests
from contract import Contract
from helpers import connect_to

import mangrove_nb as mnb
from mangrove_nb.emulator import Emulator
from mangrove_nb.testing import emulator as start_emulator


def pytest_sessionstart(session: pytest.Session) -> None:
    """Ctrl-C as an analyst's terminal delivers it, even when the suite itself runs in the background.

    A shell starts a background job (`make test &`, `nohup ...`, some CI runners) with SIGINT ignored, and every
    process it starts inherits that: `_thread.interrupt_main()` then does nothing, and an emulator or a report
    started by a test ignores the SIGINT the test sends it. The tests of Ctrl-C would fail for a reason that
    is not ours, so the suite restores Python's own handler (children then start with the default action).
    """
    import signal

    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def _sessions_remember_nothing_across_tests(tmp_path_factory: pytest.TempPathFactory,
                                            monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts with no record of generations sent (in this process or in the state file): emulators
    reuse ports and seed the same ledger ids, so one test's unknown outcome must not refuse another's."""
    from mangrove_nb._sent import Sent as _Sent

    monkeypatch.setenv("MANGROVE_NB_STATE_DIR", str(tmp_path_factory.mktemp("state")))
    _Sent._registry.clear()
    yield
    _Sent._registry.clear()


@pytest.fixture(scope="session")
def contract() -> Contract:
    """The checker of tests/contract.py for the vendored OpenAPI contract, loaded once for the session."""
    return Contract.load()


def check_exchanges(emu: Emulator, contract: Contract) -> None:
    problems = []
    for exchange in emu.exchanges:
        path = exchange.path
        if exchange.injected:
            continue  # a fault the test armed stands for a proxy or outage, which the contract does not cover
        if exchange.status >= 500:
            problems.append(f"{exchange.method} {path}: {exchange.status} without an injected fault")
        if exchange.status == 404 and contract.operation(exchange.method, path) is None:
            continue  # a path outside the contract: 404 is the right answer (its body is tested directly)
        for problem in contract.problems(exchange.method, path, exchange.status, exchange.headers, exchange.body):
            problems.append(f"{exchange.method} {path}?{exchange.query} -> {exchange.status}: {problem}")
    assert not problems, "responses that break the contract:\n" + "\n".join(problems[:20])


@pytest.fixture
def make_emulator(contract: Contract) -> Iterator[Callable[..., Emulator]]:
    """Start emulators with the given options; each is stopped and contract-checked at the end of the test."""
    started: list[Emulator] = []
    with ExitStack() as stack:

        def make(**options: Any) -> Emulator:
            emu = stack.enter_context(start_emulator(**options))
            started.append(emu)
            return emu

        yield make
        for emu in started:
            check_exchanges(emu, contract)


@pytest.fixture
def emulator(make_emulator: Callable[..., Emulator]) -> Emulator:
    return make_emulator()


@pytest.fixture
def api(emulator: Emulator) -> Iterator[requests.Session]:
    """A plain requests session for the emulator, with its token and the API base URL as ``api.base``."""
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {emulator.token}"
        session.base = emulator.url  # type: ignore[attr-defined]
        yield session


@pytest.fixture
def client_options() -> dict[str, Any]:
    """What ``client`` sets on top of FAST (nothing here); a module overrides this fixture to change it."""
    return {}


@pytest.fixture
def client(emulator: Emulator, client_options: dict[str, Any]) -> Iterator[mnb.Client]:
    """A client of ``emulator``: its URL and token, FAST with ``client_options`` on top; closed after the test."""
    with connect_to(emulator.url, emulator.token, **client_options) as connected:
        yield connected
