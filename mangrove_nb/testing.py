"""A public test harness: a fast local emulator for your tests and notebooks (like ``click.testing``).

    from mangrove_nb.testing import emulator

    with emulator() as emu:
        ...  # emu.url, emu.token, emu.faults, emu.count("create-batch-generation")

Generation is near-instant, the test-only control endpoints are on, and every exchange is recorded
(``emu.exchanges``) so a test suite can check each response against the API contract.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

TEST_SPEED = {"batch_seconds": 0.01, "pickup_seconds": 0.01}


@contextmanager
def emulator(**options: Any) -> Iterator[Any]:
    """Start a seeded emulator on a free loopback port; options as ``mangrove_nb.emulator.Emulator``."""
    from .emulator import Emulator

    settings = {**TEST_SPEED, "control": True, "record": True, **options}
    with Emulator(**settings) as emu:
        yield emu
