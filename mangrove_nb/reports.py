"""Quarterly report notebooks: build from the template with nbformat, execute headless with nbclient, export HTML.

    from mangrove_nb.reports import render_report

    paths = render_report("2025Q1", out_dir="reports")   # token and URL from MANGROVE_API_TOKEN / MANGROVE_API_URL
    paths.html                                           # reports/quarterly_report_2025Q1.html

The template is ``notebooks/03_quarterly_report.ipynb``. Its ``parameters`` cell (``ledgers``, ``quarter``,
``base_url``; never the token) follows papermill's convention: ``build_report`` adds the values in a new cell
tagged ``injected-parameters`` right after it, exactly as papermill does, so papermill (and the orchestrators
that run papermill) run the same template unchanged.

``render_report`` then executes the notebook in one kernel whose environment carries ``MANGROVE_API_URL``,
``MANGROVE_API_TOKEN`` and ``MANGROVE_NB_QUIET=1`` (the token is never written into the notebook), prints one
line per cell on stderr, and writes (``<stem>`` is ``quarterly_report_<quarter>``):

- ``<stem>.ipynb``: the executed notebook, valid nbformat, without widget state, widget views, JavaScript
  outputs, execution timings or local absolute paths (they become ``<site-packages>``, ``<python>``, ``~``...);
  ``metadata.mangrove_nb`` holds what the cells handed back: quarter, ledgers, fingerprint, totals, findings;
- ``<stem>.html``: the same with the code hidden, images embedded as ``data:`` URIs, and no ``<script>``
  at all: no require.js, MathJax, Mermaid or widget manager, nothing fetched from a CDN, no kernel needed.

A failing cell stops the run with ``ReportError`` naming the cell (its number, section heading and first
line) and leaves the partial notebook as ``<stem>_FAILED.ipynb``; so does an interrupt (Ctrl-C), which is
re-raised with a note saying where the partial notebook is. An ``out_dir`` that is not a writable folder is a
``ReportError`` raised before anything runs or is generated; a kernel that cannot start is one too (it says to
install ipykernel). Every message is one line.

Files are written whole or not at all (a temporary file beside the target, renamed over it): a symlink at an
output path is replaced, never written through, and an earlier report survives a failed write. The token
never reaches a file, a message or a frame of ours: it travels in a ``Secret`` and is revealed only inside
``_KernelEnvironment``, whose repr hides it; it is masked in the notebook's sources (a parameter that holds it),
outputs and metadata; errors raised while the kernel starts are not chained to frames that hold its
environment, and a failing cell's error is chained to a scrubbed copy without frames.

One process, one kernel: the kernel boots while the parent generates missing batches (``generate_missing``)
and loads nbconvert in a thread, and it is stopped at once after the last cell; the figures use fixed margins.
``benchmarks/report_vs_papermill.py`` compares this with papermill followed by ``jupyter nbconvert``.

The second half of the module holds the functions the template's cells call (tables, coverage, totals,
findings, figures, the data fingerprint): plain pandas over the client's frames, deterministic given the data.
API text reaches HTML only through ``Table`` (pandas' ``to_html`` with ``escape=True``) and ``html.escape``.

nbformat, nbclient, nbconvert and matplotlib are imported inside the functions that need them.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import io
import itertools
import json
import os
import re
import site
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn

import pandas as pd

from mangrove_nb import Period, PeriodError, parse_period
from mangrove_nb.errors import MangroveError, ReportError, redact
from mangrove_nb.settings import Secret

if TYPE_CHECKING:
    from nbformat import NotebookNode

    from mangrove_nb import Client

__all__ = [
    "DEFAULT_TEMPLATE",
    "Chart",
    "ReportError",
    "ReportPaths",
    "Table",
    "batch_table",
    "build_report",
    "comparison",
    "coverage",
    "export_html",
    "figures",
    "fingerprint",
    "generate_missing_batches",
    "inject_parameters",
    "inputs_table",
    "ledger_summary",
    "monthly_totals",
    "provenance",
    "quality_findings",
    "quarter_period",
    "records",
    "render_report",
    "select_ledgers",
]

DEFAULT_TEMPLATE = Path(__file__).resolve().parent.parent / "notebooks" / "03_quarterly_report.ipynb"
PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"
KERNEL_ENV = {"token": "MANGROVE_API_TOKEN", "url": "MANGROVE_API_URL", "quiet": "MANGROVE_NB_QUIET"}
# Output metadata key under which the template's cells hand machine-readable facts back (fingerprint, totals).
META_KEY = "mangrove_nb"

_WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
_WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
_DROPPED_MIMES = (_WIDGET_VIEW, _WIDGET_STATE, "application/javascript", "text/javascript")
_STYLE = re.compile(r"<style[^>]*>.*?</style>", re.DOTALL | re.IGNORECASE)
_CSS_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)
_TEXT_MIMES = ("text/plain", "text/html", "text/markdown", "text/latex", "application/json")
# What an error message keeps out of a one-line message: terminal escapes, control characters, line separators.
_CONTROL = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# Output files are never opened through a symlink (os.replace renames over one instead).
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)

# The HTML template: JupyterLab's look, minus every <script> the stock one carries (require.js, MathJax, Mermaid,
# the widget manager, JavaScript outputs and widget views), plus a readable width and an alt text for figures.
_HTML_TEMPLATE_NAME = "mangrove_report.html.j2"
_HTML_TEMPLATE = r"""
{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block footer_js -%}{%- endblock footer_js -%}
{%- block data_javascript -%}{%- endblock data_javascript -%}
{%- block data_widget_view -%}{%- endblock data_widget_view -%}
{%- block widget_state -%}{%- endblock widget_state -%}
{%- block extra_css -%}
<style type="text/css">
main { max-width: 1120px; margin: 0 auto; padding: 8px 24px 48px; }
.jp-RenderedHTMLCommon table.mangrove-table { margin: 0.4em 0 1.2em; }
.jp-RenderedHTMLCommon table.mangrove-table td, .jp-RenderedHTMLCommon table.mangrove-table th {
  text-align: left; white-space: nowrap; vertical-align: top; }
.jp-RenderedHTMLCommon table.mangrove-table td:last-child { white-space: normal; }
.jp-RenderedHTMLCommon h4 { margin-top: 1.4em; }
.jp-RenderedHTMLCommon p.mangrove-note { color: #555; font-size: 0.92em; margin: 0.2em 0 1em; }
.jp-RenderedImage img { max-width: 100%; height: auto; }
.jp-Cell { padding: 0; }
.jp-Cell-outputWrapper:empty, .jp-Cell-inputWrapper:empty { display: none; }
</style>
{%- endblock extra_css -%}
{% block data_png scoped %}
<div class="jp-RenderedImage jp-OutputArea-output {{ extra_class }}">
<img alt="{{ output.metadata.get('mangrove_nb', {}).get('alt', 'Figure') | escape_html }}"
src="data:image/png;base64,{{ output.data['image/png'] | escape_html }}">
</div>
{%- endblock data_png %}
"""


class ReportPaths(NamedTuple):
    """Where ``render_report`` wrote the executed notebook and its HTML."""

    ipynb: Path
    html: Path


# --- building -------------------------------------------------------------------------------------------


def quarter_period(quarter: str | Period) -> Period:
    """The calendar quarter ``quarter`` names ("2025Q1", also "2025-Q1"), or ``PeriodError`` saying why not."""
    period = parse_period(quarter)
    if period.kind != "quarter":
        raise PeriodError(f"A report covers a calendar quarter such as '2025Q1'; {quarter!r} is a {period.kind} "
                          f"({period}).")
    return period


def build_report(quarter: str, *, ledgers: Sequence[str] | None = None, base_url: str | None = None,
                 template: str | os.PathLike[str] | None = None) -> NotebookNode:
    """The report notebook for ``quarter``: the template with its parameters injected, papermill-style.

    The values go in a new code cell tagged ``injected-parameters`` right after the cell tagged ``parameters``
    (replacing an earlier injected cell), written as papermill writes it (``# Parameters`` then one
    ``name = value`` line each), and in ``metadata.papermill.parameters``. Only ``quarter`` and the arguments
    given are injected; the template's defaults stand for the others. The token is never a parameter.
    """
    import nbformat

    label = quarter_period(quarter).label
    parameters: dict[str, Any] = {"quarter": label}
    if ledgers is not None:
        if isinstance(ledgers, str):
            raise TypeError("ledgers must be a list of ledger ids, not a single string; wrap it: [ledger_id].")
        parameters["ledgers"] = [str(ledger) for ledger in ledgers]
    if base_url is not None:
        parameters["base_url"] = str(base_url)
    path = Path(template) if template is not None else DEFAULT_TEMPLATE
    if not path.is_file():
        raise ReportError(f"The report template {path} does not exist; pass template= the path of a notebook with "
                          f"a cell tagged '{PARAMETERS_TAG}'.")
    nb = nbformat.v4.upgrade(nbformat.read(path, as_version=4))
    return inject_parameters(nb, parameters)


def inject_parameters(nb: NotebookNode, parameters: Mapping[str, Any]) -> NotebookNode:
    """Add ``parameters`` to ``nb`` as papermill's ``parameterize_notebook`` does (Python kernels)."""
    import nbformat

    source = "# Parameters\n" + "".join(f"{name} = {_python_literal(value)}\n" for name, value in parameters.items())
    cell = nbformat.v4.new_code_cell(source=source)
    cell.id = INJECTED_TAG  # papermill's is random; a fixed id keeps our output deterministic
    cell.metadata["tags"] = [INJECTED_TAG]
    injected = _first_tagged(nb, INJECTED_TAG)
    declared = _first_tagged(nb, PARAMETERS_TAG)
    if injected >= 0:
        nb.cells = [*nb.cells[:injected], cell, *nb.cells[injected + 1:]]
    elif declared >= 0:
        nb.cells = [*nb.cells[:declared + 1], cell, *nb.cells[declared + 1:]]
    else:
        raise ReportError(f"The template has no cell tagged '{PARAMETERS_TAG}' to inject the parameters after.")
    nb.metadata.setdefault("papermill", {})["parameters"] = dict(parameters)
    return nb


def _python_literal(value: Any) -> str:
    """A value as papermill's PythonTranslator writes it (strings double-quoted, unicode-escaped)."""
    if value is None or isinstance(value, bool | int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if value == value and abs(value) != float("inf") else f"float('{value}')"
    if isinstance(value, str):
        return '"' + value.encode("unicode_escape").decode("utf-8").replace('"', r"\"") + '"'
    if isinstance(value, list | tuple):
        inner = ", ".join(_python_literal(item) for item in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner}{',' if len(value) == 1 else ''})"
    raise TypeError(f"Cannot write a {type(value).__name__} as a notebook parameter.")


def _first_tagged(nb: NotebookNode, tag: str) -> int:
    return next((i for i, cell in enumerate(nb.cells) if tag in cell.get("metadata", {}).get("tags", [])), -1)


# --- rendering ------------------------------------------------------------------------------------------


def render_report(
    quarter: str,
    *,
    ledgers: Sequence[str] | None = None,
    out_dir: str | os.PathLike[str] = "reports",
    base_url: str | None = None,
    token: str | Secret | None = None,
    generate_missing: bool = False,
    progress: bool = True,
    timeout: int = 600,
    template: str | os.PathLike[str] | None = None,
) -> ReportPaths:
    """Build, execute and export the report for ``quarter``; returns the paths of the ``.ipynb`` and ``.html``.

    ``token`` and ``base_url`` default to ``MANGROVE_API_TOKEN`` / ``MANGROVE_API_URL``; both reach the kernel
    through its environment only. ``generate_missing=True`` first generates, ledger by ledger, what the
    quarter's preview says is missing (never anything else); without it nothing is generated. ``progress``
    prints one line per cell on stderr. ``timeout`` is the limit for each cell, in seconds.

    Before anything runs or is generated, the quarter, the template, the settings (token and URL) and
    ``out_dir`` are checked: the folder must exist or be creatable, and be writable. Files are written to a
    temporary file in ``out_dir`` and renamed into place, so a symlink at an output path is replaced, never
    written through, and an earlier report stays whole when writing fails. Every expected failure is a
    ``MangroveError`` with a one-line message (``ReportError``, ``PeriodError``, ``ConfigurationError``, the
    API's errors); an interrupt (Ctrl-C) stops the kernel, keeps the partial notebook and is re-raised.
    """
    # Sealed first, before anything can raise: no frame of this module holds the raw token in a local, so a
    # traceback shown with its locals (IPython's verbose mode, error trackers) cannot show it.
    token = Secret(token) if isinstance(token, str) else token
    from mangrove_nb import connect

    period = quarter_period(quarter)
    started = time.monotonic()
    # Settings are resolved (the token found and checked, the URL checked) before anything is written or any
    # kernel starts: a missing or malformed token fails here, fast. connect() sends nothing.
    client = connect(token, base_url, show_progress=progress)
    try:
        nb = build_report(period.label, ledgers=ledgers, base_url=base_url, template=template)
        out = _output_folder(out_dir)
        return _render(nb, client, period, ledgers=ledgers, out=out, generate_missing=generate_missing,
                       progress=progress, timeout=timeout, started=started)
    finally:
        client.close()


def _render(nb: NotebookNode, client: Client, period: Period, *, ledgers: Sequence[str] | None, out: Path,
            generate_missing: bool, progress: bool, timeout: int, started: float) -> ReportPaths:
    settings = client.settings
    secrets = [settings.token]
    scrub = _secret_scrubber(secrets)
    # A parameter that holds the token (pasted as a ledger id, say) is masked before the notebook exists anywhere
    # but here: the kernel gets the token from its environment only.
    _scrub_sources(nb, scrub)
    stem = f"quarterly_report_{period.label}"
    partial = out / f"{stem}_FAILED.ipynb"
    exporter = _WarmExporter()  # nbconvert loads in a thread while the kernel works

    def meanwhile() -> None:  # runs while the kernel starts
        exporter.start()
        if generate_missing:
            _generate_for_report(client, period, ledgers, progress=progress)

    def salvage(ran: bool) -> tuple[Path | None, str]:
        """Clean the notebook in place (frames of a traceback show it too) and keep what ran as ``partial``."""
        _cleaned(nb, secrets, out)
        if not ran:
            return None, ""
        try:
            _write_notebook(nb, partial)
        except ReportError as error:
            return None, f"The partial notebook could not be kept: {error}"
        return partial, f"The partial notebook is at {partial}."

    env = _KernelEnvironment({**os.environ, KERNEL_ENV["quiet"]: "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1"},
                             url=settings.base_url, token=settings.token)
    _execute(nb, env=env, cwd=out, timeout=timeout, progress=progress, meanwhile=meanwhile, scrub=scrub,
             salvage=salvage)
    nb = _cleaned(nb, secrets, out)
    nb.metadata[META_KEY] = _collected_metadata(nb)
    paths = ReportPaths(out / f"{stem}.ipynb", out / f"{stem}.html")
    _write_notebook(nb, paths.ipynb)
    _write_text(paths.html, exporter.export(nb, title=f"Quarterly report {period.label}"))
    with contextlib.suppress(FileNotFoundError):
        partial.unlink()  # a stale failure no longer describes this report (a symlink: the link goes, not its target)
    if progress:
        print(f"Report {period.label} rendered in {time.monotonic() - started:.1f} s: {paths.html}",
              file=sys.stderr, flush=True)
    return paths


def _generate_for_report(client: Client, period: Period, ledgers: Sequence[str] | None, *, progress: bool) -> None:
    """``generate_missing_batches``, with a ledger selection it cannot use (an unknown id) as a ``ReportError``."""
    problem = None
    try:
        generate_missing_batches(client, period, ledgers, progress=progress)
    except MangroveError:
        raise
    except (ValueError, TypeError) as exc:  # from select_ledgers: unknown ids, or no ledger with a model
        problem = _one_line(str(exc))
    if problem is not None:
        raise ReportError(f"Cannot generate the missing batches of {period.label}: {problem}") from None


def _output_folder(out_dir: str | os.PathLike[str]) -> Path:
    """``out_dir`` as a folder this process can write to (created if missing), or a one-line ``ReportError``.

    Writability is tested by creating and deleting a file in it, which also holds for root (who ignores the
    permission bits) on a read-only or pseudo file system.
    """
    out = Path(out_dir)
    fix = "give --out (out_dir=) a folder you can write to"
    problem = None
    try:
        out.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # a file, or a symlink to nothing
        problem = f"The output folder {out} exists but is not a folder; {fix}, or move that file away."
    except OSError as exc:
        problem = f"The output folder {out} cannot be created ({_os_reason(exc)}); {fix}."
    else:
        probe = out / f".mangrove-nb-write-test-{os.urandom(6).hex()}"
        try:
            os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600))
            probe.unlink()
        except OSError as exc:
            problem = f"The output folder {out} is not writable ({_os_reason(exc)}); {fix}."
    if problem is not None:
        raise ReportError(problem) from None
    return out


def _os_reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all: into a new temporary file beside it, then renamed over it.

    The rename replaces whatever is at ``path`` (a symlink included) without following it, so nothing outside the
    output folder is ever written; until the rename, an earlier file at ``path`` stays as it was.
    """
    temporary = path.with_name(f".{path.name}.{os.urandom(6).hex()}.tmp")
    problem = None
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o666)
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        problem = f"Cannot write {path} ({_os_reason(exc)}); give --out (out_dir=) a folder you can write to."
        with contextlib.suppress(OSError):
            temporary.unlink()
    if problem is not None:
        raise ReportError(problem) from None


def generate_missing_batches(client: Client, period: Period, ledgers: Sequence[str] | None, *,
                             progress: bool = True) -> list[str]:
    """Generate ``period`` on the ledgers whose preview counts batches to make; returns the ledgers generated.

    Ledgers without a model and ledgers with manual-select inputs (which need a choice of upstream batches)
    are skipped with a message. The preview is asked again right before each generation, so a ledger whose
    batches were made by an earlier one (models that run concurrently) is not generated twice; the client's
    own pre-checks guard against duplicates as well.
    """
    all_ledgers = client.ledgers()
    chosen = select_ledgers(all_ledgers, ledgers)
    candidates: list[tuple[int, str, str]] = []
    for row in chosen.itertuples():
        if not _yes(row.has_model):
            _say(progress, f"Not generating {row.name} ({row.id}): it has no model.")
            continue
        inputs = client.required_inputs(row.id)
        if bool(inputs["is_manual_select"].fillna(False).any()):
            _say(progress, f"Not generating {row.name} ({row.id}): its manual-select inputs need a choice of "
                           "upstream batches (use the generation form or client.generate(..., data_point_ids=)).")
            continue
        preview = client.preview(row.id, period)
        reach = int((preview["count"] > 0).sum())
        if reach:
            candidates.append((-reach, str(row.name), str(row.id)))
    generated: list[str] = []
    # Ledgers whose generation also fills other ledgers (models that run concurrently) go first, so those
    # others then preview 0 and need no request of their own.
    for _, name, ledger_id in sorted(candidates):
        count = int(client.preview(ledger_id, period)["count"].sum())
        if count == 0:
            continue
        _say(progress, f"Generating {period.label} on {name} ({ledger_id}): the preview counts {count} batch(es).")
        client.generate(ledger_id, period).wait(progress=progress)
        generated.append(ledger_id)
    return generated


def _say(enabled: bool, message: str) -> None:
    if enabled:
        print(message, file=sys.stderr, flush=True)


def _execute(nb: NotebookNode, *, env: Mapping[str, str], cwd: Path, timeout: int, progress: bool,
             meanwhile: Callable[[], None] | None = None, scrub: Callable[[str], str] = redact,
             salvage: Callable[[bool], tuple[Path | None, str]] | None = None) -> None:
    """Run every code cell in one kernel, printing ``[n/N] label`` per cell; ``ReportError`` on a failing cell.

    The kernel is launched first and ``meanwhile`` runs while it starts (generation, loading nbconvert), so
    the kernel's start-up costs no extra time. The kernel is stopped at once when the last cell is done, and
    on any failure or interrupt.

    Errors are raised outside the ``except`` blocks that caught their causes, and a failing cell's error is
    chained to a frameless copy with ``scrub`` applied: the frames of jupyter_client, nbclient and subprocess
    hold the kernel's environment (the token) and the kernel's raw replies, and a traceback shown with its
    locals must not reach them. ``salvage(ran)`` is called once a cell failed or the run was interrupted (after
    the kernel stopped): it cleans ``nb`` in place and keeps the partial notebook, returning its path and a
    sentence saying where it is.
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    code = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"]
    labels = _cell_labels(nb)
    current: dict[str, int] = {}

    def on_cell_start(cell: Any, cell_index: int) -> None:
        if cell_index not in labels:
            return  # nbclient calls this for markdown cells too
        current["index"] = cell_index
        if progress:
            print(f"[{code.index(cell_index) + 1}/{len(code)}] {labels[cell_index].short}", file=sys.stderr,
                  flush=True)

    kernel = _kernel_name(nb)
    client = NotebookClient(nb, timeout=timeout, kernel_name=kernel, allow_errors=False,
                            record_timing=False, store_widget_state=False, on_cell_start=on_cell_start,
                            shutdown_kernel="immediate", resources={"metadata": {"path": str(cwd.resolve())}},
                            config=_kernel_config())
    client.reset_execution_trackers()
    client.km = client.create_kernel_manager()
    failure: ReportError | None = None
    try:
        client.start_new_kernel(env=env)
    except Exception as exc:  # no such kernel, its command missing...: the frames below hold the environment
        failure = _kernel_failure(kernel, exc)
    if failure is not None:
        _stop_kernel(client)
        raise failure from None
    try:
        if meanwhile is not None:
            meanwhile()
    except BaseException:
        _stop_kernel(client)
        raise
    reply = None
    try:
        client.start_new_kernel_client()  # waits until the kernel answers
        reply = client.wait_for_reply(client.kc.kernel_info())
    except Exception as exc:  # the kernel died at once, or never answered
        failure = _kernel_failure(kernel, exc)
    except BaseException:
        _stop_kernel(client)
        raise
    if failure is not None:
        _stop_kernel(client)
        raise failure from None
    if reply is not None and "language_info" in reply["content"]:
        nb.metadata["language_info"] = reply["content"]["language_info"]

    cause: BaseException | None = None
    why = ""
    try:
        with client.setup_kernel():  # the kernel is up: this only stops it on the way out
            for index, cell in enumerate(nb.cells):
                client.execute_cell(cell, index, execution_count=client.code_cells_executed + 1)
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as exc:
        cause = _scrubbed(exc, scrub)
        index = current.get("index")
        why = _one_line(scrub(_short_error(nb.cells[index], exc) if index is not None else
                              f"{type(exc).__name__}: {_last_line(str(exc))}"), 1000)
    except BaseException as exc:  # Ctrl-C, or an unexpected error: keep what ran, say where, re-raise as it is
        if salvage is not None:
            _path, where = salvage("index" in current)
            if where:
                exc.add_note(where)
        raise
    if cause is None:
        return
    index = current.get("index")
    path, where = salvage(index is not None) if salvage is not None else (None, "")
    ending = "" if why.endswith((".", "!", "?")) else "."
    if index is None:
        raise ReportError(f"The report kernel stopped before any cell ran ({why}); run the report again.") from cause
    number = code.index(index) + 1
    label = _one_line(scrub(str(labels[index])), 300)
    raise ReportError(f"Report cell {number} of {len(code)} failed ({label}): {why}{ending} {where}".rstrip(),
                      cell_number=number, cell_label=label, partial=path) from cause


def _kernel_failure(kernel: str, exc: BaseException) -> ReportError:
    """The one-line error for a kernel that could not start, from what went wrong (never its locals)."""
    from jupyter_client.kernelspec import NoSuchKernel

    if isinstance(exc, NoSuchKernel):
        what = f"no kernel named '{kernel}' is installed"
    else:
        what = f"{type(exc).__name__}: {_one_line(str(exc), 300)}".rstrip(": ")
    return ReportError(
        f"The report kernel '{kernel}' could not start ({what}). Install ipykernel in the Python that runs the "
        "report (pip install 'mangrove_nb[reports]'), or check the kernel with `jupyter kernelspec list`.")


def _stop_kernel(client: Any) -> None:
    """Stop the kernel and close its channels, from whatever state a failed start left them in."""
    with contextlib.suppress(Exception):  # best effort: the error being raised is the one to show
        if client.km is not None:
            client._cleanup_kernel()


def _scrubbed(exc: BaseException, scrub: Callable[[str], str]) -> BaseException:
    """A copy of a cell's error with ``scrub`` applied to its text and no traceback frames, to chain to."""
    from nbclient.exceptions import CellExecutionError

    if isinstance(exc, CellExecutionError):
        return CellExecutionError(scrub(exc.traceback), exc.ename, scrub(exc.evalue))
    try:
        return type(exc)(scrub(str(exc)))
    except Exception:
        return RuntimeError(scrub(str(exc)))


def _one_line(text: str, limit: int = 2000) -> str:
    """``text`` on one line: control characters and line breaks become spaces, cut to ``limit`` characters."""
    flat = " ".join(_CONTROL.sub(" ", text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""


def _kernel_config() -> Any:
    """Encrypt the kernel's loopback channels (CurveZMQ) where pyzmq and jupyter_client can: the kernel's
    environment holds the token, and ipykernel warns about plain-text TCP otherwise."""
    import zmq
    from jupyter_client.manager import KernelManager
    from traitlets.config import Config

    config = Config()
    if zmq.has("curve") and "transport_encryption" in KernelManager.class_trait_names():
        config.KernelManager.transport_encryption = "auto"
    return config


def _kernel_name(nb: NotebookNode) -> str:
    return str(nb.metadata.get("kernelspec", {}).get("name") or "python3")


@dataclass(frozen=True)
class _CellLabel:
    heading: str  # the section: the last markdown heading above the cell
    first_line: str

    @property
    def short(self) -> str:
        """For progress lines: the first line without its comment sign ("Batches: totals per month...")."""
        text = self.first_line.lstrip("#").strip() or self.heading
        return text if len(text) <= 64 else text[:63] + "…"

    def __str__(self) -> str:
        section = f"section '{self.heading}', " if self.heading else ""
        return f"{section}first line: {self.first_line}"


def _cell_labels(nb: NotebookNode) -> dict[int, _CellLabel]:
    """Each code cell's section heading and first line, by cell index."""
    labels: dict[int, _CellLabel] = {}
    heading = ""
    for index, cell in enumerate(nb.cells):
        lines = [line.strip() for line in str(cell.source).splitlines() if line.strip()]
        if cell.cell_type == "markdown":
            heading = next((line.lstrip("#").strip() for line in lines if line.startswith("#")), heading)
        elif cell.cell_type == "code":
            first = lines[0] if lines else "(empty cell)"
            labels[index] = _CellLabel(heading, first if len(first) <= 100 else first[:99] + "…")
    return labels


def _short_error(cell: Any, exc: BaseException) -> str:
    error = next((o for o in cell.get("outputs", []) if o.get("output_type") == "error"), None)
    if error is not None:
        return f"{error.get('ename', 'Error')}: {error.get('evalue', '')}".strip()
    return f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"


def _write_notebook(nb: NotebookNode, path: Path) -> None:
    import nbformat

    nbformat.validate(nb)
    text = nbformat.writes(nb)
    _write_text(path, text if text.endswith("\n") else text + "\n")


def _html_exporter() -> Any:
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    return HTMLExporter(
        template_name="lab",
        template_file=_HTML_TEMPLATE_NAME,
        extra_loaders=[DictLoader({_HTML_TEMPLATE_NAME: _HTML_TEMPLATE})],
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        embed_images=True,
        # Emptied although the template no longer uses them, so no remote URL can come back through them.
        mathjax_url="",
        require_js_url="",
        widget_renderer_url="",
        jupyter_widgets_base_url="",
    )


def export_html(nb: NotebookNode, *, title: str = "Report", exporter: Any = None) -> str:
    """The notebook as one self-contained HTML page: code hidden, images inline, no script, nothing remote."""
    exporter = exporter if exporter is not None else _html_exporter()
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title}})
    # JupyterLab's CSS comments cite web pages; they fetch nothing, but a page that names no URL is easier to audit.
    return _STYLE.sub(lambda m: _CSS_COMMENT.sub("", m.group(0)), str(body))


class _WarmExporter:
    """An HTML exporter made ready in a background thread (importing nbconvert and compiling its templates take
    about half a second), to be used once the notebook has run."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._exporter: Any = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._warm, name="mangrove-report-exporter", daemon=True)
        self._thread.start()

    def _warm(self) -> None:
        try:
            import nbformat

            exporter = _html_exporter()
            exporter.from_notebook_node(nbformat.v4.new_notebook())  # compiles the template, reads the CSS
            self._exporter = exporter
        except Exception:  # noqa: S110 - export() builds a fresh exporter and shows the real error
            pass

    def export(self, nb: NotebookNode, *, title: str) -> str:
        if self._thread is not None:
            self._thread.join()
        return export_html(nb, title=title, exporter=self._exporter)


# --- cleaning -------------------------------------------------------------------------------------------


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
    if output.get("output_type") == "stream":
        output.text = clean(output.text)
    elif output.get("output_type") == "error":
        output.evalue = clean(output.evalue)
        output.traceback = [clean(line) for line in output.traceback]
    data = output.get("data")
    if data is not None:
        for mime in _DROPPED_MIMES:
            data.pop(mime, None)
        for mime in _TEXT_MIMES:
            if mime in data:
                data[mime] = _map_strings(data[mime], clean)
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
    source = Path(__file__).resolve().parent.parent
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


def _collected_metadata(nb: NotebookNode) -> dict[str, Any]:
    """What the template's cells handed back in their outputs' metadata (fingerprint, totals...), merged."""
    merged: dict[str, Any] = {}
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            found = output.get("metadata", {}).get(META_KEY)
            if isinstance(found, dict):
                merged.update({k: v for k, v in found.items() if k != "alt"})
    return merged


# --- what the template's cells call ---------------------------------------------------------------------

_NA = "–"
_SEVERITY = {"error": 0, "warning": 1, "info": 2}


_TABLE_IDS = itertools.count(1)


@dataclass
class Table:
    """A DataFrame shown without its index: escaped HTML in notebooks and reports, aligned text elsewhere.

    Every value and column name goes through pandas' ``to_html(escape=True)``; ``title``, ``note`` and
    ``empty`` through ``html.escape``. Floats get ``decimals`` digits (per column when a mapping) and
    thousands separators; missing values show as "–"; numeric columns are right-aligned, text left-aligned.
    """

    frame: pd.DataFrame
    title: str | None = None
    note: str | None = None
    decimals: int | Mapping[str, int] = 3
    empty: str = "Nothing to show."
    header: bool = True

    def shown(self) -> pd.DataFrame:
        """The frame as the strings displayed: numbers formatted, NA as "–"."""
        out = pd.DataFrame(index=self.frame.index)
        for column, dtype in self.frame.dtypes.items():
            values = self.frame[column]
            if pd.api.types.is_float_dtype(dtype):
                places = self.decimals if isinstance(self.decimals, int) else self.decimals.get(str(column), 3)
                out[column] = [_NA if pd.isna(v) else f"{v:,.{places}f}" for v in values]
            elif pd.api.types.is_bool_dtype(dtype):
                out[column] = [_NA if pd.isna(v) else ("yes" if v else "no") for v in values]
            else:
                out[column] = [_NA if pd.isna(v) else str(v) for v in values]
        return out.astype(object)

    def _numeric(self) -> list[int]:
        return [i for i, dtype in enumerate(self.frame.dtypes, start=1)
                if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)]

    def _repr_html_(self) -> str:
        parts = [f"<h4>{html.escape(self.title)}</h4>"] if self.title else []
        if self.frame.empty:
            parts.append(f"<p>{html.escape(self.empty)}</p>")
        else:
            table_id = f"mangrove-table-{next(_TABLE_IDS)}"
            right = ", ".join(f"#{table_id} td:nth-child({i}), #{table_id} th:nth-child({i})" for i in self._numeric())
            if right:
                parts.append(f"<style>{right} {{ text-align: right; }}</style>")
            parts.append(self.shown().to_html(index=False, escape=True, border=0, header=self.header,
                                              table_id=table_id, classes="mangrove-table"))
        if self.note:
            parts.append(f'<p class="mangrove-note">{html.escape(self.note)}</p>')
        return "\n".join(parts)

    def __repr__(self) -> str:
        parts = [self.title] if self.title else []
        parts.append(self.empty if self.frame.empty else self.shown().to_string(index=False, header=self.header))
        if self.note:
            parts.append(self.note)
        return "\n".join(parts)


def select_ledgers(all_ledgers: pd.DataFrame, ledgers: Sequence[str] | None) -> pd.DataFrame:
    """The report's ledgers, sorted by name then id: those asked for, or (``None``) every ledger with a model.

    Unknown ids raise ``ValueError`` naming them and the known ones.
    """
    if ledgers is None:
        chosen = all_ledgers[all_ledgers["has_model"].fillna(False).astype(bool)]
        if chosen.empty:
            raise ValueError("No ledger has a model, so there is nothing to report on; pass ledgers=[...] to "
                             "report on ledgers without one.")
    else:
        if isinstance(ledgers, str):
            raise TypeError("ledgers must be a list of ledger ids, not a single string; wrap it: [ledger_id].")
        wanted = list(dict.fromkeys(str(ledger) for ledger in ledgers))
        if not wanted:
            raise ValueError("ledgers is an empty list; give ledger ids, or None for every ledger with a model.")
        known = set(all_ledgers["id"].dropna())
        unknown = [ledger for ledger in wanted if ledger not in known]
        if unknown:
            raise ValueError(f"Unknown ledger id(s): {', '.join(unknown)}. The API lists: "
                             f"{', '.join(sorted(known)) or 'no ledgers'}.")
        chosen = all_ledgers[all_ledgers["id"].isin(wanted)]
    return chosen.sort_values(["name", "id"], kind="stable", ignore_index=True)


def fingerprint(*frames: pd.DataFrame) -> str:
    """A SHA-256 of the batches' ids, ledgers, states, values, units and timestamps, independent of row order.

    The same batches give the same hex digest on any machine; a changed value, state or timestamp (a batch
    regenerated, deleted or added) changes it. Nothing else (fetch time, base URL) enters it.
    """
    columns = ["ledger_id", "id", "tracking_id", "state", "start_time", "end_time", "created_at", "updated_at",
               "output_value", "output_unit", "feedstock"]
    rows = []
    for frame in frames:
        for record in frame.reindex(columns=columns).to_dict("records"):
            rows.append([_canonical(record[column]) for column in columns])
    rows.sort(key=lambda row: json.dumps(row))
    payload = json.dumps({"columns": columns, "rows": rows}, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(payload.encode("ascii")).hexdigest()


def _canonical(value: Any) -> Any:
    if value is None or value is pd.NA or (isinstance(value, float) and value != value) or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp | datetime):
        return pd.Timestamp(value).tz_convert("UTC").isoformat() if pd.Timestamp(value).tzinfo else \
            pd.Timestamp(value).isoformat()
    if isinstance(value, float):
        return repr(value)
    return str(value)


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A frame's rows as JSON-ready dicts (NA becomes None), for the facts a cell hands back in its metadata."""
    def plain(value: Any) -> Any:
        if pd.isna(value):
            return None
        value = value.item() if hasattr(value, "item") else value
        return round(value, 6) if isinstance(value, float) else value

    return [{str(k): plain(v) for k, v in row.items()} for row in frame.astype(object).to_dict("records")]


def _month_label(moment: Any) -> str:
    return f"{pd.Timestamp(moment):%Y-%m}"


def _names(selected: pd.DataFrame) -> dict[str, str]:
    return {str(i): str(n) for i, n in zip(selected["id"], selected["name"].fillna(""), strict=True)}


def _yes(value: Any) -> bool:
    """A nullable boolean cell as a plain bool (NA is False)."""
    return False if pd.isna(value) else bool(value)


def _counted(batches: pd.DataFrame) -> pd.Series:
    return batches["state"].fillna("").str.lower().eq("complete").astype(bool)


def provenance(*, base_url: str, selected: pd.DataFrame, period: Period, previous: Period, generated_at: datetime,
               version: str, digest: str, batches: pd.DataFrame, before: pd.DataFrame) -> Table:
    """The report's provenance table: where the data came from, for which ledgers and period, and its fingerprint."""
    names = _names(selected)
    rows = [
        ("API base URL", base_url),
        ("Ledgers", "; ".join(f"{names[i]} ({i})" for i in names)),
        ("Period", str(period)),
        ("Compared with", str(previous)),
        ("Generated at (UTC)", generated_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")),
        ("mangrove_nb version", version),
        ("Batches read", f"{len(batches)} in {period.label}, {len(before)} in {previous.label}"),
        ("Data fingerprint (SHA-256)", digest),
    ]
    return Table(pd.DataFrame(rows, columns=["Field", "Value"]).astype("string"), header=False,
                 note="The fingerprint hashes the batches' ids, states, values and timestamps for both quarters: "
                      "the same data gives the same fingerprint.")


def ledger_summary(all_ledgers: pd.DataFrame, selected: pd.DataFrame, batches: pd.DataFrame) -> pd.DataFrame:
    """Every ledger the API lists, whether the report covers it, and its batches in the quarter."""
    chosen = set(selected["id"])
    rows = []
    for row in all_ledgers.sort_values(["name", "id"], kind="stable").itertuples():
        mine = batches[batches["ledger_id"] == row.id]
        covered = row.id in chosen
        rows.append({
            "Ledger": row.name, "ID": row.id, "Unit": row.unit, "Partition": row.partition_type,
            "Model": row.model_name if _yes(row.has_model) else "none",
            "In report": "yes" if covered else ("no: no model" if not _yes(row.has_model) else "no: not selected"),
            "Batches": len(mine) if covered else pd.NA,
            "Complete": int(_counted(mine).sum()) if covered else pd.NA,
            "Failed": int(mine["state"].eq("failed").sum()) if covered else pd.NA,
        })
    columns = ["Ledger", "ID", "Unit", "Partition", "Model", "In report", "Batches", "Complete", "Failed"]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.astype({c: "string" for c in columns[:6]} | {c: "Int64" for c in columns[6:]})


def inputs_table(inputs: Mapping[str, pd.DataFrame], selected: pd.DataFrame) -> pd.DataFrame:
    """What each covered ledger's model needs (``inputs``: ledger id -> ``client.required_inputs(id)``), one row
    per input, sorted by ledger then input id."""
    columns = ["Ledger", "Input", "Input ID", "Unit", "Type", "Manual select", "From ledger(s)"]
    rows = []
    for ledger in selected.itertuples():
        mine = inputs[ledger.id].sort_values("id", kind="stable")
        if mine.empty:
            reason = "(no model)" if not _yes(ledger.has_model) else "(none)"
            rows.append([ledger.name, reason, pd.NA, pd.NA, pd.NA, pd.NA, pd.NA])
        for item in mine.itertuples():
            rows.append([ledger.name, item.name, item.id, item.unit, item.value_type,
                         "yes" if _yes(item.is_manual_select) else "no", item.output_of_ledgers or pd.NA])
    frame = pd.DataFrame(rows, columns=columns)
    return frame.astype({c: "string" for c in columns} | {"Input ID": "Int64"})


def coverage(client: Client, selected: pd.DataFrame, inputs: Mapping[str, pd.DataFrame], batches: pd.DataFrame,
             period: Period) -> pd.DataFrame:
    """Per ledger and month of ``period``: the batches there are, what the preview would generate, and a status.

    A month without a batch is flagged ``missing``. The preview (a read-only POST) is asked per month, except
    for ledgers that cannot generate (no model) or need a manual selection of upstream batches.
    """
    rows = []
    for ledger in selected.itertuples():
        manual = bool(inputs[ledger.id]["is_manual_select"].fillna(False).any())
        for month in period.months():
            mine = batches[(batches["ledger_id"] == ledger.id) & (batches["start_time"] >= month.start)
                           & (batches["start_time"] <= month.end)]
            complete = int(_counted(mine).sum())
            failed = int(mine["state"].eq("failed").sum())
            preview: Any = pd.NA
            if _yes(ledger.has_model) and not manual:
                found = client.preview(ledger.id, month)
                preview = int(found.loc[found["ledger_id"] == ledger.id, "count"].sum())
            status = _coverage_status(len(mine), complete, failed, preview, has_model=_yes(ledger.has_model),
                                      manual=manual)
            rows.append([ledger.name, month.label, len(mine), complete, failed, preview, len(mine) == 0, status])
    columns = ["Ledger", "Month", "Batches", "Complete", "Failed", "Preview: new batches", "Missing", "Status"]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.astype({"Ledger": "string", "Month": "string", "Batches": "Int64", "Complete": "Int64",
                         "Failed": "Int64", "Preview: new batches": "Int64", "Missing": "boolean", "Status": "string"})


def _coverage_status(existing: int, complete: int, failed: int, preview: Any, *, has_model: bool,
                     manual: bool) -> str:
    can = None if preview is pd.NA else int(preview)
    if existing == 0:
        if not has_model:
            return "⚠ missing: the ledger has no model"
        if manual:
            return "⚠ missing: needs a manual selection of upstream batches"
        return f"⚠ missing: {can} batch(es) can be generated" if can else "⚠ missing: no data to generate from"
    if can:
        return f"⚠ incomplete: {can} more batch(es) can be generated"
    if complete == 0 and failed:
        return "⚠ failed only"
    if complete < existing:
        return "ok, with batches not complete"
    return "ok"


def batch_table(batches: pd.DataFrame, selected: pd.DataFrame) -> pd.DataFrame:
    """The quarter's batches, one row each, sorted by ledger, month and tracking id."""
    names = _names(selected)
    frame = pd.DataFrame({
        "Ledger": batches["ledger_id"].map(names),
        "Month": batches["start_time"].map(_month_label),
        "Tracking ID": batches["tracking_id"],
        "Feedstock": batches["feedstock"],
        "State": batches["state"],
        "Output": batches["output_value"],
        "Unit": batches["output_unit"],
        "Batch ID": batches["id"],
    })
    frame = frame.astype({c: "string" for c in frame.columns if c != "Output"} | {"Output": "Float64"})
    return frame.sort_values(["Ledger", "Month", "Tracking ID", "Batch ID"], kind="stable", ignore_index=True)


def monthly_totals(batches: pd.DataFrame, selected: pd.DataFrame, period: Period) -> pd.DataFrame:
    """Per ledger: the complete batches' output per month of ``period`` and for the whole period.

    A month without a complete batch shows NA (rendered "–"), not 0, so a gap is not mistaken for zero output.
    """
    months = [month.label for month in period.months()]
    rows = []
    for ledger in selected.itertuples():
        mine = batches[(batches["ledger_id"] == ledger.id) & _counted(batches)]
        sums: dict[str, float] = {}
        for start, value in zip(mine["start_time"], mine["output_value"].fillna(0.0), strict=True):
            sums[_month_label(start)] = sums.get(_month_label(start), 0.0) + float(value)
        values = [sums.get(m, pd.NA) for m in months]
        total = float(mine["output_value"].sum()) if len(mine) else 0.0
        rows.append([ledger.name, ledger.unit, *values, total])
    frame = pd.DataFrame(rows, columns=["Ledger", "Unit", *months, f"{period.label} total"])
    return frame.astype({"Ledger": "string", "Unit": "string"} | {c: "Float64" for c in frame.columns[2:]})


def comparison(batches: pd.DataFrame, before: pd.DataFrame, selected: pd.DataFrame, period: Period,
               previous: Period) -> pd.DataFrame:
    """Per ledger: the complete output of ``previous`` and ``period``, the change, and the change in percent."""
    rows = []
    for ledger in selected.itertuples():
        now = batches[(batches["ledger_id"] == ledger.id) & _counted(batches)]
        then = before[(before["ledger_id"] == ledger.id) & _counted(before)]
        this_total, last_total = float(now["output_value"].sum()), float(then["output_value"].sum())
        change = this_total - last_total
        percent = change / last_total * 100 if last_total else pd.NA
        rows.append([ledger.name, ledger.unit, len(then), last_total, len(now), this_total, change, percent])
    columns = ["Ledger", "Unit", f"{previous.label} batches", f"{previous.label} total", f"{period.label} batches",
               f"{period.label} total", "Change", "Change (%)"]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.astype({"Ledger": "string", "Unit": "string", columns[2]: "Int64", columns[4]: "Int64"}
                        | {c: "Float64" for c in (columns[3], columns[5], "Change", "Change (%)")})


def quality_findings(batches: pd.DataFrame, covered: pd.DataFrame, selected: pd.DataFrame) -> pd.DataFrame:
    """Failed batches, zero, negative or missing outputs, unfinished batches and months without batches.

    One row per finding, most severe first (error, warning, info), then by ledger, month and batch.
    """
    names = _names(selected)
    rows = []
    for batch in batches.itertuples():
        ledger, month = names.get(str(batch.ledger_id), str(batch.ledger_id)), _month_label(batch.start_time)
        where = [ledger, month, batch.tracking_id if isinstance(batch.tracking_id, str) else batch.id]
        state = str(batch.state).lower() if isinstance(batch.state, str) else "unknown"
        value = batch.output_value
        if state == "failed":
            error = batch.model_run_error if isinstance(batch.model_run_error, str) else "no error message given"
            rows.append(["error", *where, f"Batch failed: {error}"])
        elif state != "complete":
            rows.append(["info", *where, f"Batch is {state}: not counted in the totals"])
        elif pd.isna(value):
            rows.append(["warning", *where, "Complete batch without an output value"])
        elif value == 0:
            rows.append(["warning", *where, "Zero output"])
        elif value < 0:
            rows.append(["warning", *where, f"Negative output: {value:,.3f}"])
    for item in covered.itertuples():
        status = str(item.Status)
        if status.startswith("⚠"):
            severity = "warning" if _yes(item.Missing) or "incomplete" in status else "info"
            if "failed only" in status:
                continue  # already reported batch by batch
            text = status.removeprefix("⚠ ")
            if text.startswith("missing: "):
                text = "No batch this month: " + text.removeprefix("missing: ")
            rows.append([severity, item.Ledger, item.Month, pd.NA, text[:1].upper() + text[1:]])
    frame = pd.DataFrame(rows, columns=["Severity", "Ledger", "Month", "Batch", "Finding"]).astype("string")
    order = frame["Severity"].map(_SEVERITY)
    return (frame.assign(_order=order).sort_values(["_order", "Ledger", "Month", "Batch", "Finding"], kind="stable",
                                                   na_position="first")
            .drop(columns="_order").reset_index(drop=True))


@dataclass
class Chart:
    """A rendered figure: PNG bytes and an alt text; displays as an image (and its alt text as plain text)."""

    png: bytes
    alt: str

    def _repr_png_(self) -> tuple[bytes, dict[str, Any]]:
        return self.png, {}

    def __repr__(self) -> str:
        return f"[figure: {self.alt}]"

    def show(self) -> None:
        """Display the image with its alt text in the output's metadata (the HTML export uses it)."""
        from IPython.display import display

        display({"image/png": self.png, "text/plain": repr(self)}, raw=True, metadata={META_KEY: {"alt": self.alt}})


def figures(batches: pd.DataFrame, before: pd.DataFrame, selected: pd.DataFrame, period: Period,
            previous: Period, *, dpi: int = 100) -> list[Chart]:
    """The report's figures: each ledger's monthly totals in the quarter (small multiples, one figure), then each
    ledger's batches over both quarters with the cumulative output. Ledgers without batches are left out.

    Margins are fixed in inches rather than left to matplotlib's constrained layout, and titles sit at a fixed
    height rather than being placed above the tick labels of every twin axis: either would more than double
    the time the figures take (the plots cell is the report's slowest) for the same result here.
    """
    from matplotlib import rc_context

    with rc_context({"axes.titley": 1.0}):
        return _figures(batches, before, selected, period, previous, dpi=dpi)


def _figures(batches: pd.DataFrame, before: pd.DataFrame, selected: pd.DataFrame, period: Period,
             previous: Period, *, dpi: int) -> list[Chart]:
    from matplotlib.figure import Figure as MplFigure

    from mangrove_nb.plots import plot_batches, plot_quarter_summary

    names = _names(selected)
    charts: list[Chart] = []
    shown = [ledger_id for ledger_id in names if (batches["ledger_id"] == ledger_id).any()]
    columns = 2 if len(shown) > 1 else 1
    rows = max(1, -(-len(shown) // columns))
    summary = MplFigure(figsize=(11, 0.85 + 2.9 * rows + 1.0 * (rows - 1) + 0.65))
    _margins(summary, rows, columns, left=0.8, right=0.25, top=0.85, bottom=0.65, hgap=1.0, wgap=0.95)
    axes = summary.subplots(rows, columns, squeeze=False).ravel()
    for ax, ledger_id in zip(axes, shown, strict=False):
        plot_quarter_summary(batches[batches["ledger_id"] == ledger_id], period, ax=ax, title=names[ledger_id])
    if not shown:
        plot_quarter_summary(batches, period, ax=axes[0], title=f"No batches in {period.label}")
    for ax in axes[max(len(shown), 1):]:
        ax.set_visible(False)
    summary.suptitle(f"Monthly totals of complete batches, {period.label}", fontsize=13,
                     y=1 - 0.3 / summary.get_figheight())
    charts.append(Chart(_png(summary, dpi), f"Monthly totals of complete batches per ledger, {period.label}"))
    both = Period(previous.start, period.end, f"{previous.label}–{period.label}")
    for ledger_id, name in names.items():
        mine = [frame[frame["ledger_id"] == ledger_id] for frame in (before, batches)]
        if all(part.empty for part in mine):
            continue
        figure = MplFigure(figsize=(11, 4.5))
        _margins(figure, 1, 1, left=0.8, right=0.9, top=0.45, bottom=1.3, hgap=0, wgap=0)
        plot_batches(pd.concat(mine, ignore_index=True), ax=figure.add_subplot(), period=both, labels=names,
                     title=f"{name}: batches, {previous.label} and {period.label}")
        charts.append(Chart(_png(figure, dpi), f"{name}: output per batch and cumulative output, "
                                               f"{previous.label} and {period.label}"))
    return charts


def _margins(figure: Any, rows: int, columns: int, *, left: float, right: float, top: float, bottom: float,
             hgap: float, wgap: float) -> None:
    """Place a figure's subplot grid with margins and gaps given in inches."""
    width, height = figure.get_size_inches()
    cell_w = (width - left - right - wgap * (columns - 1)) / columns
    cell_h = (height - top - bottom - hgap * (rows - 1)) / rows
    figure.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height,
                           top=1 - top / height, wspace=wgap / cell_w, hspace=hgap / cell_h)


def _png(figure: Any, dpi: int) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, facecolor="white")
    return buffer.getvalue()
