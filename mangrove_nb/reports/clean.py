"""Safe to share: the token kept out of every file, message and traceback, and the executed notebook cleaned of
widget state, widget views, JavaScript outputs, execution timings and this machine's absolute paths; every string
of its outputs and metadata (and the HTML page, ``_printable``) without the control characters, escape sequences
and characters that hide or reorder text (bidirectional overrides...) API text may carry, which would reorder or
hide what a reader of the shared notebook sees: ``mangrove_nb._text.printable``, the classes ``one_line`` removes,
with lines kept.

The token travels in a ``Secret`` and is revealed only inside ``_KernelEnvironment``, whose repr hides it; it is
masked in the notebook's sources (a parameter that holds it), outputs and metadata. Local paths become
``<site-packages>``, ``<python>``, ``~``...
"""
from __future__ import annotations

import os
import re
import site
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from mangrove_nb._text import printable
from mangrove_nb.errors import redact
from mangrove_nb.settings import Secret

if TYPE_CHECKING:
    from nbformat import NotebookNode

KERNEL_ENV = {"token": "MANGROVE_API_TOKEN", "url": "MANGROVE_API_URL", "quiet": "MANGROVE_NB_QUIET"}
_WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
_WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
_DROPPED_MIMES = (_WIDGET_VIEW, _WIDGET_STATE, "application/javascript", "text/javascript")


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
    """The notebook made safe to share, in place: no widget state or views, no scripts, no secrets, no local paths,
    no control, escape or hiding characters in what it shows or records.

    Secrets go from sources, outputs and metadata; local paths and ``printable``'s characters from every string
    (dictionary keys too) of the outputs, the cells' metadata and the notebook's metadata. Sources keep their paths
    and characters: they are ours (the parameters cell: what the caller gave, checked).
    """
    nb.metadata.pop("widgets", None)
    scrub_secrets = _secret_scrubber(secrets)
    scrub_paths = _path_scrubber(out)

    def shown(text: str) -> str:  # printable first: a removed character cannot hide a token or a path from them
        return scrub_paths(scrub_secrets(printable(text)))

    _scrub_sources(nb, scrub_secrets)
    for cell in nb.cells:
        cell.metadata.pop("widgets", None)
        cell.metadata.pop("execution", None)
        cell.metadata = _map_strings(cell.metadata, shown)
        for output in cell.get("outputs", []):
            _clean_output(output, shown)
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if o.get("output_type") not in ("display_data", "execute_result")
                            or o.get("data")]
    nb.metadata = _map_strings(nb.metadata, shown)
    return nb


def _clean_output(output: Any, shown: Callable[[str], str]) -> None:
    """An output without widget views and scripts, its every string ``shown`` (printable, without secrets and
    local paths): its data of every MIME type (text/csv and image/svg+xml too; base64 data, an image's, is only
    made ``printable``, which leaves base64 as it is: a path's pattern, "/tmp", could match inside it), its
    metadata (the figures and names a cell hands back), a stream's text, an error's name, value and traceback.
    A traceback thus loses IPython's colours (escape sequences): a custom template that raises with a ledger name
    in its message would otherwise carry that name's escapes and overrides into ``_FAILED.ipynb``."""
    data = output.get("data")
    if isinstance(data, dict):
        for mime in _DROPPED_MIMES:
            data.pop(mime, None)
        for mime in list(data):
            data[mime] = _map_strings(data[mime], shown if _is_text(mime) else printable)
    if isinstance(output.get("metadata"), dict):
        output.metadata.pop("filenames", None)  # would turn embedded images into links to local files
    for key in list(output):
        if key not in ("data", "output_type"):
            output[key] = _map_strings(output[key], shown)


def _is_text(mime: str) -> bool:
    """Whether an output's data of this MIME type is text (JSON, XML, SVG included) rather than base64."""
    return mime.startswith("text/") or mime.endswith(("/json", "+json", "/xml", "+xml"))


def _map_strings(value: Any, fn: Callable[[str], str]) -> Any:
    """``value`` with ``fn`` applied to every string in it, a dictionary's keys included (in place for
    dictionaries, which keep their order; two keys that ``fn`` makes one become one, the later's value kept)."""
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, list):
        return [_map_strings(item, fn) for item in value]
    if isinstance(value, dict):
        items = list(value.items())
        value.clear()
        for key, item in items:
            value[fn(key) if isinstance(key, str) else key] = _map_strings(item, fn)
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
    """The HTML page without what API text may carry that no page should show (``mangrove_nb._text.printable``:
    terminal escape sequences, control characters but tab, line feed and carriage return, the characters that hide
    or reorder text), its line breaks and spacing (non-breaking spaces between figures and units) kept."""
    return printable(page)
