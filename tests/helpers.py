"""What several test modules share: plain constants, functions and classes (a test helper, not a test module).

The shared fixtures live in conftest.py. Import these as ``from helpers import ...``, the way the suite imports
``contract`` and ``payload_server`` (pytest puts tests/ on the path).
"""

from __future__ import annotations

from typing import Any

import mangrove_nb as mnb

#: Client settings for tests: no progress display, fast polling (the emulator's tasks take milliseconds) and
#: short backoff (retries are counted, not waited for). A test that needs other values overrides them by keyword.
FAST: dict[str, Any] = {"show_progress": False, "poll_min_interval": 0.02, "poll_interval": 0.05,
                        "poll_max_interval": 0.1, "backoff_initial": 0.01, "backoff_max": 0.05}


def connect_to(url: str, token: str, **options: Any) -> mnb.Client:
    """A client of the API at ``url`` with ``token`` and the FAST settings, which ``options`` override by keyword
    (``max_retries=0``, ``project_id=123``); use it as a context manager, which closes it."""
    return mnb.connect(token, url, **{**FAST, **options})
