"""mangrove_nb: drive the Mangrove production-accounting API from Jupyter notebooks.

The front door: ``connect()`` gives a ``Client`` whose calls return typed pandas DataFrames and task
handles; ``parse_period`` turns "2025Q1", "2025-02", "2025" or a pair of dates into UTC bounds; the
errors are one tree under ``MangroveError``. It imports nothing heavy: the emulator (Flask), widgets,
plots and reports load only when used.
"""

from __future__ import annotations

from .api import Client, Reconciliation, connect
from .errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    ConfigurationError,
    GenerationOutcomeUnknownError,
    MalformedResponseError,
    MangroveError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionError,
    RateLimitedError,
    ReportError,
    ReportPlanError,
    ServerError,
    SubmissionOutcomeUnknownError,
    TaskError,
    TaskFailedError,
    TaskTimeoutError,
    TransportError,
    ValidationError,
)
from .periods import Period, PeriodError, parse_period
from .tasks import Task, TaskStatus

__version__ = "0.1.0"

# Widgets and plots load matplotlib and ipywidgets: they are imported on first use (PEP 562), so that
# ``import mangrove_nb`` stays as light as pandas and requests.
_LAZY = {
    "GenerationForm": "forms",
    "BatchExplorer": "forms",
    "ReportForm": "forms",
    "plot_batches": "plots",
    "plot_quarter_summary": "plots",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mangrove_nb' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BatchExplorer",
    "Client",
    "ConfigurationError",
    "GenerationForm",
    "GenerationOutcomeUnknownError",
    "MalformedResponseError",
    "MangroveError",
    "NotFoundError",
    "Period",
    "PeriodError",
    "PermissionDeniedError",
    "PreconditionError",
    "RateLimitedError",
    "Reconciliation",
    "ReportError",
    "ReportForm",
    "ReportPlanError",
    "ServerError",
    "SubmissionOutcomeUnknownError",
    "Task",
    "TaskError",
    "TaskFailedError",
    "TaskStatus",
    "TaskTimeoutError",
    "TransportError",
    "ValidationError",
    "__version__",
    "connect",
    "parse_period",
    "plot_batches",
    "plot_quarter_summary",
]
