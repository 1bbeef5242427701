"""The one place that asks whether we run inside IPython or a Jupyter kernel (without importing IPython).

``settings`` (may a prompt ask for the token?), ``progress`` (a widget bar or a text line?) and ``plots`` (is
there a PNG formatter to register?) all need to know; they ask here. Imports nothing of ours.
"""

from __future__ import annotations

import sys
from typing import Any


def ipython_shell() -> Any:
    """The running IPython shell, or None (IPython is looked up only if something already imported it)."""
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None) if ipython is not None else None
    return get() if get is not None else None


def kernel() -> Any:
    """The Jupyter kernel object when running in one (not a plain IPython terminal), else None."""
    return getattr(ipython_shell(), "kernel", None)
