"""API text on one line, safe to print: ``one_line()``, the one cleaner every layer uses (errors' messages, the
registry's text and tables, the report's lines and Registry section, the command's output).

Text from the API (a report's name, a ledger's, a tracking id, a registry's message) is untrusted: in a terminal,
a log or a notebook's text output, a control character or an escape sequence could move the cursor, recolour or
clear the screen, retitle the window or ring the bell; a line or paragraph separator could forge a second line;
a Unicode format character (category Cf: the bidirectional overrides and isolates U+202A–U+202E,
U+2066–U+2069, the marks U+200E/U+200F, zero-width characters such as U+200B, U+FEFF) could reorder or hide what
follows, so that a reader sees another id or amount than the one there. ``one_line`` removes them all and puts the
text on one line; it also redacts every registered token (``_secrets.redact``), before and after, so that
removing a character cannot uncover one. Imports ``_secrets`` only.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from ._secrets import redact

__all__ = ["one_line"]

# A CSI escape sequence, whole (its parameters would otherwise stay as text, "[31m"), and the other escapes' first
# two characters (OSC's "ESC ]", a reset's "ESC c"). What an OSC or DCS string holds stays as text: removing up to
# its terminator could swallow what follows it, the text of ours included.
_ESCAPE = re.compile(r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]|\x1b[ -/]*[0-~]?")
# ASCII text needs no look-up: its C0 controls and DEL.
_ASCII_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Controls and separators become a space (they separate words); format characters are removed (they sit inside
# words: "rpt_1\u200b2" is "rpt_12"); unpaired surrogates are removed (they cannot be printed).
_AS_SPACE = frozenset({"Cc", "Zl", "Zp"})
_REMOVED = frozenset({"Cf", "Cs"})


def one_line(text: Any, limit: int | None = None) -> str:
    """``text`` (``str()`` of it) on one line, safe to print: every registered token redacted; escape sequences,
    control characters (C0, DEL, C1) and line or paragraph separators as spaces; Unicode format characters
    (category Cf: bidirectional overrides and isolates, zero-width characters) removed; runs of whitespace as
    one space, none at either end. Cut to ``limit`` characters (the last one "…") when given."""
    flat = _ESCAPE.sub(" ", redact(str(text)))
    if flat.isascii():
        flat = _ASCII_CONTROL.sub(" ", flat)
    else:
        flat = "".join(" " if (kind := unicodedata.category(c)) in _AS_SPACE else "" if kind in _REMOVED else c
                       for c in flat)
    flat = redact(" ".join(flat.split()))
    if limit is not None and len(flat) > limit:
        return flat[: max(limit - 1, 0)] + "…"
    return flat
