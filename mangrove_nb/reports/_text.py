"""One-line messages and counted nouns: the text helpers every part of the report uses."""

from __future__ import annotations

import re

# What an error message keeps out of a one-line message: terminal escapes, control characters, line separators.
_CONTROL = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _one_line(text: str, limit: int = 2000) -> str:
    """``text`` on one line: control characters and line breaks become spaces, cut to ``limit`` characters."""
    flat = " ".join(_CONTROL.sub(" ", text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _plural(count: int, word: str, plural: str | None = None) -> str:
    """``1 batch``, ``3 batches``, ``0 months``."""
    many = plural or (f"{word}es" if word.endswith(("s", "x", "ch", "sh")) else f"{word}s")
    return f"{count} {word if count == 1 else many}"
