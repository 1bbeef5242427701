"""Safe to share: the token kept out of every file, message and traceback, and the executed notebook cleaned of
widget state, widget views, JavaScript outputs, execution timings and this machine's absolute paths; its outputs'
text (and the HTML page, ``_printable``) without the control and format characters API text may carry (terminal
escapes, bidirectional overrides), which would reorder or hide what a reader of the shared notebook sees.

The token travels in a ``Secret`` and is revealed only inside ``_KernelEnvironment``, whose repr hides it; it is
masked in the notebook's sources (a parameter that holds it), outputs and metadata. Local paths become
``<site-packages>``, ``<python>``, ``~``...
"""

from __future__ import annotations

import functools
import os
import re
import site
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from mangrove_nb.errors import redact
from mangrove_nb.settings import Secret

if TYPE_CHECKING:
    from nbformat import NotebookNode

KERNEL_ENV = {"token": "MANGROVE_API_TOKEN", "url": "MANGROVE_API_URL", "quiet": "MANGROVE_NB_QUIET"}
_WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
_WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
_DROPPED_MIMES = (_WIDGET_VIEW, _WIDGET_STATE, "application/javascript", "text/javascript")
_TEXT_MIMES = ("text/plain", "text/html", "text/markdown", "text/latex", "application/json")


class _KernelEnvironment(dict[str, str]):
    """The kernel's environment. It holds the token, so it never shows its contents (tracebacks with locals, logs),
    copies itself as its own kind (jupyter_client copies the environment before the launch) and cannot be pickled.

    The token comes in as a ``Secret``, revealed here and nowhere else: no caller holds it in clear in a local.
    """

    def __init__(self, base: Mapping[str, str] | None = None, /, *, url: str | None = None,
                 token: Secret | None = None) -> None:
        super().__init__(base or {})
        if url is not None:
            self[KERNEL_ENV["url"]] = url
        if token is not None:
            self[KERNEL_ENV["token"]] = token.reveal()

    def __repr__(self) -> str:
        return f"<kernel environment: {len(self)} variables, the API token among them (hidden)>"

    __str__ = __repr__

    def __format__(self, format_spec: str) -> str:
        return format(repr(self), format_spec)

    def copy(self) -> _KernelEnvironment:
        return _KernelEnvironment(self)

    def __copy__(self) -> _KernelEnvironment:
        return self.copy()

    def __deepcopy__(self, memo: dict[int, Any]) -> _KernelEnvironment:
        return self.copy()

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError("The report kernel's environment holds the API token and cannot be pickled.")


def _secret_scrubber(secrets: Sequence[Secret]) -> Callable[[str], str]:
    """A function that masks the tokens (any length) and, through ``redact``, every registered token's encodings."""

    def scrub(text: str) -> str:
        for secret in secrets:  # revealed only here, never kept in a local that a traceback could show
            if len(secret):
                text = text.replace(secret.reveal(), "…")
        return redact(text)

    return scrub


def _scrub_sources(nb: NotebookNode, scrub: Callable[[str], str]) -> None:
    """Mask tokens in the cells' sources and the notebook's metadata (papermill's copy of the parameters)."""
    for cell in nb.cells:
        cell.source = scrub(cell.source)
    nb.metadata = _map_strings(nb.metadata, scrub)


def _cleaned(nb: NotebookNode, secrets: Sequence[Secret], out: Path) -> NotebookNode:
    """The notebook made safe to share, in place: no widget state or views, no scripts, no secrets, no local paths.

    Secrets go from sources, outputs and metadata; local paths from outputs and metadata (sources keep theirs).
    """
    nb.metadata.pop("widgets", None)
    scrub_secrets = _secret_scrubber(secrets)
    scrub_paths = _path_scrubber(out)

    def clean(text: str) -> str:
        return scrub_paths(scrub_secrets(text))

    _scrub_sources(nb, scrub_secrets)
    for cell in nb.cells:
        cell.metadata.pop("widgets", None)
        cell.metadata.pop("execution", None)
        for output in cell.get("outputs", []):
            _clean_output(output, clean)
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if o.get("output_type") not in ("display_data", "execute_result")
                            or o.get("data")]
    nb.metadata = _map_strings(nb.metadata, clean)
    return nb


def _clean_output(output: Any, clean: Callable[[str], str]) -> None:
    """An output without secrets and local paths (``clean``), its text and data also without control and format
    characters (``_printable``; a traceback keeps IPython's colours: it is ours, and a failed report says it)."""
    def shown(text: str) -> str:
        return _printable(clean(text))

    if output.get("output_type") == "stream":
        output.text = shown(output.text)
    elif output.get("output_type") == "error":
        output.evalue = clean(output.evalue)
        output.traceback = [clean(line) for line in output.traceback]
    data = output.get("data")
    if data is not None:
        for mime in _DROPPED_MIMES:
            data.pop(mime, None)
        for mime in _TEXT_MIMES:
            if mime in data:
                data[mime] = _map_strings(data[mime], shown)
        output.metadata = _map_strings(output.get("metadata", {}), clean)
        output.metadata.pop("filenames", None)  # would turn embedded images into links to local files


def _map_strings(value: Any, fn: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, list):
        return [_map_strings(item, fn) for item in value]
    if isinstance(value, dict):
        for key in list(value):
            value[key] = _map_strings(value[key], fn)
        return value
    return value


def _path_scrubber(out: Path) -> Callable[[str], str]:
    """Replace this machine's absolute paths (site-packages, the interpreter, the source tree, home, temp)."""
    source = Path(__file__).resolve().parents[2]  # the folder that holds mangrove_nb
    places: list[tuple[str, str]] = []
    for place in [*site.getsitepackages(), site.getusersitepackages()]:
        places.append((place, "<site-packages>"))
    for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix}:
        places.append((prefix, "<python>"))
    places += [(str(out.resolve()), "<out>"), (str(source), "<src>"), (os.getcwd(), "<cwd>"),
               (tempfile.gettempdir(), "<tmp>"), (str(Path.home()), "~")]
    places = sorted({(p.rstrip("/"), n) for p, n in places if p and p.rstrip("/")}, key=lambda x: -len(x[0]))
    pattern = re.compile("|".join(re.escape(p) for p, _ in places)) if places else None
    names = dict(places)
    # Whatever is left under the usual places for user files (another user's home, another temp dir).
    leftovers = re.compile(r"(?<![\w.~<>-])/(?:home|root|tmp|Users|var/folders|private)(?:/[^\s'\"<>:,;)\]]*)?")

    def scrub(text: str) -> str:
        if pattern is not None:
            text = pattern.sub(lambda m: names[m.group(0)], text)
        return leftovers.sub("<path>", text)

    return scrub


def _printable(page: str) -> str:
    """The HTML page (or an output's text) without what API text may carry that no page should show: terminal
    escape sequences (whole), control characters but tab, line feed and carriage return, and Unicode format
    characters (bidirectional overrides and isolates, zero-width characters). The classes of
    ``mangrove_nb._text.one_line``, which cleans the title and the PDF's footer, with the page's line breaks and
    spacing (non-breaking spaces between figures and units) kept."""
    return _unprintable().sub("", page)


@functools.cache
def _unprintable() -> re.Pattern[str]:
    import unicodedata

    controls = [c for c in range(0x110000) if unicodedata.category(chr(c)) in ("Cc", "Cf", "Cs")
                and chr(c) not in "\t\n\r"]
    ranges: list[tuple[int, int]] = []
    for code in controls:  # contiguous runs as ranges: a short character class
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1] = (ranges[-1][0], code)
        else:
            ranges.append((code, code))
    members = "".join(f"\\U{a:08x}" + (f"-\\U{b:08x}" if b != a else "") for a, b in ranges)
    return re.compile(r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]|\x1b[ -/]*[0-~]?|[" + members + "]")
