"""Fault injection for tests: off until a test asks, and unreachable over HTTP unless control is enabled.

An operation is named by its OpenAPI ``operationId`` (``create-batch-generation``, ``list-ledger-batches``…)
or ``"*"`` for every operation. Faults are consumed in the order they were added.

* ``fail(op, status, count)``: the next ``count`` calls answer ``status`` with the error envelope.
* ``drop(op, count, after_commit=True)``: the next calls do their work (and commit it), then the connection
  is closed with no response: the client cannot know what happened. ``after_commit=False`` drops before
  doing anything.
* ``delay(op, seconds)``: add latency to every call of ``op`` until cleared.
* ``rate_limit_burst(count, reset_in)``: the next ``count`` calls answer 429 with ``RateLimit-Reset`` that
  many seconds ahead, as if the window were exhausted.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

KINDS = ("fail", "drop", "delay", "rate_limit")
MAX_COUNT = 1_000_000
MAX_SECONDS = 3600.0


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass
class Fault:
    kind: str
    operation: str = "*"
    count: int = 1
    status: int = 503
    message: str | None = None
    seconds: float = 0.0
    after_commit: bool = True

    def matches(self, operation: str) -> bool:
        return self.operation in ("*", operation)


class FaultPlan:
    """The faults armed now; thread-safe, since every request thread consults it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def fail(self, operation: str, status: int, count: int = 1, message: str | None = None) -> None:
        self._add(Fault("fail", operation, count, status=status, message=message))

    def drop(self, operation: str, count: int = 1, *, after_commit: bool = True) -> None:
        self._add(Fault("drop", operation, count, after_commit=after_commit))

    def delay(self, operation: str, seconds: float) -> None:
        self._add(Fault("delay", operation, count=-1, seconds=seconds))

    def rate_limit_burst(self, count: int, reset_in: float = 30.0) -> None:
        self._add(Fault("rate_limit", "*", count, seconds=reset_in))

    def add(self, spec: Mapping[str, Any]) -> Fault:
        """Arm a fault from its JSON form (the control endpoint's body); raises ValueError when malformed.

        Every field is checked here, since an armed fault shapes the answers to later requests: a status that is
        not an HTTP error, or a delay that is not a finite number of seconds, would break those instead.
        """
        kind = spec.get("kind")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        allowed = {"kind", "operation", "count", "status", "message", "seconds", "after_commit"}
        extra = set(spec) - allowed
        if extra:
            raise ValueError(f"unknown field(s) {', '.join(sorted(extra))[:200]}; accepted: "
                             f"{', '.join(sorted(allowed))}")
        fault = Fault(**dict(spec))
        if kind == "delay":
            fault.count = -1
        elif not _integer(fault.count) or not 1 <= fault.count <= MAX_COUNT:
            raise ValueError(f"count must be an integer from 1 to {MAX_COUNT}")
        if not isinstance(fault.operation, str) or not 0 < len(fault.operation) <= 100:
            raise ValueError('operation must be an operationId such as "retrieve-async-task", or "*"')
        if not _integer(fault.status) or not 400 <= fault.status <= 599:
            raise ValueError("status must be an HTTP error status from 400 to 599")
        if fault.message is not None and (not isinstance(fault.message, str) or len(fault.message) > 1000):
            raise ValueError("message must be a string of at most 1000 characters, or null")
        seconds = fault.seconds
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 <= seconds <= MAX_SECONDS:
            raise ValueError(f"seconds must be a number from 0 to {MAX_SECONDS}")
        if not isinstance(fault.after_commit, bool):
            raise ValueError("after_commit must be true or false")
        fault.seconds = float(seconds)
        self._add(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def _add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def take(self, operation: str, kind: str) -> Fault | None:
        """The first armed fault of ``kind`` for ``operation``, consuming one of its uses."""
        with self._lock:
            for fault in self._faults:
                if fault.kind == kind and fault.matches(operation):
                    if fault.count > 0:
                        fault.count -= 1
                        if fault.count == 0:
                            self._faults.remove(fault)
                    return fault
        return None

    def latency(self, operation: str) -> float:
        with self._lock:
            return sum(f.seconds for f in self._faults if f.kind == "delay" and f.matches(operation))

    def armed(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(vars(f)) for f in self._faults]
