"""mangrove_nb: drive the Mangrove production-accounting API from Jupyter notebooks.

The front door. It imports nothing heavy: the emulator (Flask), widgets, plots and reports load only
when used.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
