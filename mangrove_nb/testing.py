"""A public test harness: a fast local emulator for your tests and notebooks (like ``click.testing``).

    from mangrove_nb.testing import emulator

    with emulator() as emu:
        ...  # emu.url, emu.token, emu.faults, emu.count("create-batch-generation")

Generation is near-instant, the test-only control endpoints are on, and every exchange is recorded
(``emu.exchanges``) so a test suite can check each response against the API contract.
"""

from __future__ import annotations

import subprocess
import sys
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


@contextmanager
def emulator_process(*cli_args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``mangrove-nb emulator --port 0 *cli_args`` in its own process (its own GIL, killable); yields the process
    and the API URL it printed, and stops it (SIGTERM, then SIGKILL) at the end."""
    command = [sys.executable, "-m", "mangrove_nb.cli", "emulator", "--port", "0", *cli_args]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as process:  # noqa: S603 - our own CLI, arguments as a list
        try:
            first = process.stdout.readline() if process.stdout is not None else ""
            if not first.startswith("Mangrove emulator on "):
                raise RuntimeError(f"the emulator did not start: it printed {first!r}")
            yield process, first.split()[3]
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(10)
