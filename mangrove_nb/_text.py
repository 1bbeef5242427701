"""API text safe to show: ``one_line()`` (on one line, redacted), the one cleaner every layer uses (errors'
messages, the registry's text and tables, the report's lines and Registry section, the command's output), and
``printable()`` (its lines kept), which cleans the report's page, its notebook's outputs and its workbook. Both are
built from one definition of what is unsafe.

Text from the API (a report's name, a ledger's, a tracking id, a registry's message) is untrusted: in a terminal,
a log, a notebook's output or a spreadsheet, a control character or an escape sequence could move the cursor,
recolour or clear the screen, retitle the window or ring the bell; a line or paragraph separator could forge a
second line; an invisible character could reorder or hide what follows, so that a reader sees another id or amount
than the one there. **Removed** (``_HIDDEN``, ``_CONTROLS``, ``_ESCAPE``):

- terminal escape sequences, a CSI whole (its parameters would otherwise stay as text, "[31m");
- C0 controls but tab, line feed and carriage return (``one_line`` turns those into spaces), DEL and C1 controls;
- the bidirectional embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069) and marks (U+200E, U+200F,
  U+061C): they reorder what a reader sees;
- the zero-width space U+200B, the word joiner and the invisible operators U+2060–U+2064, the deprecated format
  characters U+206A–U+206F (among them national digit shapes), a byte order mark U+FEFF inside text, the
  interlinear annotation characters U+FFF9–U+FFFB, the language tag U+E0001: invisible, they only hide;
- the tag characters U+E0020–U+E007F except in a subdivision flag (🏴 U+1F3F4, the 3 to 7 tag letters or digits
  of its code, the cancel tag U+E007F: 🏴󠁧󠁢󠁳󠁣󠁴󠁿 is Scotland's). Tags are invisible, so that outside a flag they can
  carry a whole hidden text ("ASCII smuggling"); in a flag their letters and length are the subdivision code's;
- unpaired surrogates: they cannot be printed (nor encoded in UTF-8).

**Kept**, because legitimate text needs them and they neither reorder nor hide a character: the zero-width
non-joiner U+200C (Persian ``می‌خواهم``), the zero-width joiner U+200D (emoji sequences: 👩‍🔬), the soft hyphen
U+00AD, the Arabic number signs U+0600–U+0605 and the other prepended marks and format controls of particular
scripts (U+06DD, U+070F, U+0890–U+0891, U+08E2, U+180E, Kaithi, Egyptian hieroglyphs, shorthand, musical beams).

``one_line`` also puts the text on one line (controls, line and paragraph separators and escape sequences become
spaces, runs of whitespace one space) and redacts every registered token (``_secrets.redact``), before and after.
``printable`` keeps the text's lines and spacing; when it removed anything it redacts too. Either way, removing a
character cannot uncover a token. Imports ``_secrets`` only.
"""

from __future__ import annotations

import re
from typing import Any

from ._secrets import redact

__all__ = ["one_line", "printable"]

# A CSI escape sequence, whole, and the other escapes' first two characters (OSC's "ESC ]", a reset's "ESC c").
# What an OSC or DCS string holds stays as text: removing up to its terminator could swallow what follows it, the
# text of ours included.
_ESCAPE = r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]|\x1b[ -/]*[0-~]?"
# C0 controls but tab, LF and CR; DEL; C1 controls.
_CONTROLS = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
_LINE_BREAKS = "\t\n\r\u2028\u2029"
# Characters that only hide or reorder what a reader sees, and unpaired surrogates (a character class's body).
_HIDDEN = ("\u061c\u200b\u200e\u200f\u202a-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb\U000e0000-\U000e001f"
           "\ud800-\udfff")
_TAGS = "\U000e0020-\U000e007f"
# A subdivision flag: the black flag, its code in tag letters and digits, the cancel tag. Kept whole.
_FLAG = "\U0001f3f4[\U000e0030-\U000e0039\U000e0061-\U000e007a]{3,7}\U000e007f"

# printable(): a flag is kept (group 1); everything else matched goes.
_UNPRINTABLE = re.compile(f"({_FLAG})|{_ESCAPE}|[{_CONTROLS}{_HIDDEN}{_TAGS}]")
# one_line(): a flag is kept (group 1); escapes, controls and line breaks become a space (group 2): they separate
# words; hidden characters are removed: they sit inside words ("rpt_1\u200b2" is "rpt_12").
_NOT_ONE_LINE = re.compile(f"({_FLAG})|({_ESCAPE}|[{_CONTROLS}{_LINE_BREAKS}])|[{_HIDDEN}{_TAGS}]")


def _kept(match: re.Match[str]) -> str:
    return match.group(1) or ""


def _spaced(match: re.Match[str]) -> str:
    return match.group(1) or (" " if match.group(2) else "")


def printable(text: Any) -> str:
    """``text`` (``str()`` of it) safe to show with its lines: escape sequences, control characters but tab, line
    feed and carriage return, and the characters that hide or reorder text (bidirectional controls, zero-width
    spaces, tags outside a flag: the module's list) removed; everything else kept as it is, spacing and line and
    paragraph separators included. Redacted of every registered token when anything was removed."""
    text = str(text)
    shown = _UNPRINTABLE.sub(_kept, text)
    return shown if shown == text else redact(shown)


def one_line(text: Any, limit: int | None = None) -> str:
    """``text`` (``str()`` of it) on one line, safe to print: every registered token redacted; escape sequences,
    control characters (C0, DEL, C1) and line or paragraph separators as spaces; the characters that hide or
    reorder text (``printable``'s) removed; runs of whitespace as one space, none at either end. Cut to ``limit``
    characters (the last one "…") when given."""
    flat = redact(str(text))
    if not flat.isprintable():  # str.isprintable: no control, format or separator character but the space
        flat = _NOT_ONE_LINE.sub(_spaced, flat)
    flat = redact(" ".join(flat.split()))
    if limit is not None and len(flat) > limit:
        return flat[: max(limit - 1, 0)] + "…"
    return flat
