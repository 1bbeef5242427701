"""mangrove_nb: drive the Mangrove production-accounting API from Jupyter notebooks.

The front door: ``connect()`` gives a ``Client`` whose calls return typed pandas DataFrames and task
handles; ``parse_period`` turns "2025Q1", "2025-02", "2025" or a pair of dates into UTC bounds; the
errors are one tree under ``MangroveError``. It imports nothing heavy: the client (pandas, requests), the
emulator (Flask), widgets, plots and reports load when first used, so that ``import mangrove_nb`` (and the
``mangrove-nb`` command's start, where Ctrl-C must be one line) takes a few milliseconds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING as _TYPE_CHECKING

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

if _TYPE_CHECKING:  # loaded on first use (below); named here for type checkers and readers
    from .api import Client, Reconciliation, connect
    from .forms import BatchExplorer, GenerationForm, ReportForm
    from .plots import plot_batches, plot_quarter_summary
    from .tasks import Task, TaskStatus

__version__ = "0.1.0"

# The client loads pandas and requests, widgets and plots matplotlib and ipywidgets: they are imported on first use
# (PEP 562), so that ``import mangrove_nb`` stays light.
_LAZY = {
    "Client": "api",
    "Reconciliation": "api",
    "connect": "api",
    "Task": "tasks",
    "TaskStatus": "tasks",
    "GenerationForm": "forms",
    "BatchExplorer": "forms",
    "ReportForm": "forms",
    "plot_batches": "plots",
    "plot_quarter_summary": "plots",
}


# What the widgets and plots need beyond the core: the extra of pyproject.toml that installs them.
_EXTRA_NEEDS = {"forms": ("notebook", ("ipywidgets", "matplotlib")), "plots": ("notebook", ("matplotlib",))}


def __getattr__(name: str) -> object:
    """A lazy name (``_LAZY``), imported on first use; or one of the package's modules (``mangrove_nb.settings``),
    as ``import mangrove_nb`` made them attributes when it imported the client at once."""
    from importlib import import_module

    module = _LAZY.get(name)
    if module is None:
        if not name.startswith("__") and "." not in name and _installed(f"{__name__}.{name}"):
            return import_module(f".{name}", __name__)
        raise AttributeError(f"module 'mangrove_nb' has no attribute {name!r}")
    missing = _missing(module)
    if missing:
        extra = _EXTRA_NEEDS[module][0]
        which = f"{' and '.join(missing)}, which {'are' if len(missing) > 1 else 'is'} not installed"
        raise ModuleNotFoundError(f"mangrove_nb.{name} needs {which} in this Python; install it with pip install "
                                  f"'mangrove_nb[{extra}]'.", name=missing[0])
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*__all__, *_LAZY})


def _installed(module: str) -> bool:
    """Whether ``module`` (a library, or one of ours) can be imported here, without importing it."""
    from importlib.util import find_spec

    return find_spec(module) is not None


def _missing(module: str) -> list[str]:
    """The libraries one of our lazy modules needs beyond the core (``_EXTRA_NEEDS``) that are not installed."""
    return [library for library in _EXTRA_NEEDS.get(module, ("", ()))[1] if not _installed(library)]


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
# ``from mangrove_nb import *`` in a core install (no notebook extra): the names whose libraries are there.
__all__ = [name for name in __all__ if name not in _LAZY or not _missing(_LAZY[name])]
