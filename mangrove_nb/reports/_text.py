"""One-line messages and counted nouns: the text helpers every part of the report uses."""

from __future__ import annotations

from mangrove_nb._text import one_line


def _one_line(text: str, limit: int = 2000) -> str:
    """``text`` on one line, safe to print (``mangrove_nb._text.one_line``: redacted, without control or format
    characters), cut to ``limit`` characters."""
    return one_line(text, limit)


def _plural(count: int, word: str, plural: str | None = None) -> str:
    """``1 batch``, ``3 batches``, ``0 months``."""
    many = plural or (f"{word}es" if word.endswith(("s", "x", "ch", "sh")) else f"{word}s")
    return f"{count} {word if count == 1 else many}"
