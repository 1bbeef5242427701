"""Quarterly report notebooks: build from the template with nbformat, execute headless with nbclient, export HTML.

    from mangrove_nb.reports import render_report

    paths = render_report("2025Q1", out_dir="reports")   # token and URL from MANGROVE_API_TOKEN / MANGROVE_API_URL
    paths.html                                           # reports/quarterly_report_2025Q1.html
    render_report("2025Q1", ledgers=["Net Carbon Removal"], project=123)   # ..._2025Q1_net-carbon-removal.html

The template is ``notebooks/03_quarterly_report.ipynb``. Its ``parameters`` cell (``ledgers``, ``quarter``,
``base_url``, ``project``; never the token) follows papermill's convention: ``build_report`` adds the values in a
new cell tagged ``injected-parameters`` right after it, exactly as papermill does, so papermill (and the
orchestrators that run papermill) run the same template unchanged.

The report is written for the person who receives it: the project's name and the quarter; a summary per ledger
(the quarter's total, the change against the previous quarter and the same quarter a year before, the months
generated); warnings; totals by month; how net removal was computed (each month's calculations, removal minus
emissions, adding up to the ledger's figure); charts; coverage; data quality (a batch generated with a skipped
input is flagged with what the skip changed); every batch; and an appendix with the provenance (API, ids,
fingerprint), the ledgers and their inputs. Ledgers run from carbon removal to its upstream ledgers. A ledger or
month without a complete batch is "not generated", never 0, and a change is computed only between quarters whose
every month is generated. Totals count complete batches only.

``render_report`` then executes the notebook in one kernel whose environment carries ``MANGROVE_API_URL``,
``MANGROVE_API_TOKEN`` and ``MANGROVE_NB_QUIET=1`` (the token is never written into the notebook), prints one
line per cell on stderr, and writes (``<stem>`` is ``quarterly_report_<quarter>``):

- ``<stem>.ipynb``: the executed notebook, valid nbformat, without widget state, widget views, JavaScript
  outputs, execution timings or local absolute paths (they become ``<site-packages>``, ``<python>``, ``~``...);
  ``metadata.mangrove_nb`` holds what the cells handed back: quarter, ledgers, fingerprint, totals, findings;
- ``<stem>.html``: the same with the code hidden, images embedded as ``data:`` URIs, and no ``<script>``
  at all: no require.js, MathJax, Mermaid or widget manager, nothing fetched from a CDN, no kernel needed.

A report on chosen ledgers (names or ids, checked against the API before anything runs) is written as
``<stem>_<the ledgers' names as slugs>``, never over the all-ledger report.

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
    "NOT_GENERATED",
    "Bullets",
    "Chart",
    "Header",
    "ReportError",
    "ReportPaths",
    "Table",
    "batch_table",
    "batch_tables",
    "breakdown_batches",
    "build_report",
    "coverage",
    "coverage_table",
    "export_html",
    "figures",
    "findings_table",
    "fingerprint",
    "generate_missing_batches",
    "header",
    "inject_parameters",
    "inputs_table",
    "key_warnings",
    "ledger_summary",
    "monthly_totals",
    "net_removal",
    "net_removal_tables",
    "order_ledgers",
    "provenance",
    "quality_findings",
    "quarter_period",
    "records",
    "removal_ledgers",
    "render_report",
    "report_project",
    "report_stem",
    "resolve_ledgers",
    "select_ledgers",
    "skipped_effects",
    "summary",
    "summary_table",
    "totals_table",
    "year_before",
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
main { max-width: 1040px; margin: 0 auto; padding: 8px 24px 48px; }
.jp-Cell { padding: 0; }
.jp-Cell.jp-mod-noOutputs.jp-mod-noInput, .jp-Collapser { display: none; }
.jp-Cell-outputWrapper:empty, .jp-Cell-inputWrapper:empty { display: none; }
.jp-InputArea, .jp-OutputArea-child, .jp-Cell-inputWrapper, .jp-Cell-outputWrapper { margin: 0; padding: 0; }
.jp-MarkdownOutput.jp-RenderedHTMLCommon, .jp-RenderedMarkdown { padding-left: 0; }
.jp-OutputArea-output { overflow-x: visible; }
.mangrove-header { margin: 0.6em 0 0.4em; }
.jp-RenderedHTMLCommon h1.mangrove-title { font-size: 2em; margin: 0.2em 0 0.3em; }
.jp-RenderedHTMLCommon p.mangrove-lede { margin: 0.15em 0; color: #333; }
.jp-RenderedHTMLCommon h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.6em; }
.jp-RenderedHTMLCommon h4.mangrove-table-title { margin: 1.2em 0 0.3em; }
.mangrove-wrap { max-width: 100%; overflow-x: auto; }
.jp-RenderedHTMLCommon table.mangrove-table { margin: 0.4em 0 0.6em; table-layout: auto; max-width: 100%;
  border-collapse: collapse; }
.jp-RenderedHTMLCommon table.mangrove-table td, .jp-RenderedHTMLCommon table.mangrove-table th {
  text-align: left; white-space: normal; vertical-align: top; max-width: none; padding: 0.3em 0.7em; }
.jp-RenderedHTMLCommon table.mangrove-table td { overflow-wrap: break-word; }
.jp-RenderedHTMLCommon table.mangrove-table th { border-bottom: 1px solid #999; }
.jp-RenderedHTMLCommon table.mangrove-table tbody tr:nth-child(odd) { background: #f6f7f8; }
.jp-RenderedHTMLCommon p.mangrove-note { color: #555; font-size: 0.92em; margin: 0.2em 0 0.6em; max-width: 52em; }
.jp-RenderedHTMLCommon ul.mangrove-bullets { margin: 0.3em 0 0.6em; padding-left: 1.4em; }
.jp-RenderedHTMLCommon ul.mangrove-bullets li { margin: 0.25em 0; }
.jp-RenderedHTMLCommon p.mangrove-ok { color: #2e7d32; }
.jp-RenderedImage img { max-width: 100%; height: auto; }
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
                 project: int | str | None = None, template: str | os.PathLike[str] | None = None) -> NotebookNode:
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
            raise TypeError("ledgers must be a list of ledger ids or names, not a single string; wrap it: "
                            "[ledger].")
        parameters["ledgers"] = [str(ledger) for ledger in ledgers]
    if base_url is not None:
        parameters["base_url"] = str(base_url)
    if project is not None:
        parameters["project"] = str(project)
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
    project: int | str | None = None,
    out_dir: str | os.PathLike[str] = "reports",
    base_url: str | None = None,
    token: str | Secret | None = None,
    generate_missing: bool = False,
    progress: bool = True,
    timeout: int = 600,
    template: str | os.PathLike[str] | None = None,
) -> ReportPaths:
    """Build, execute and export the report for ``quarter``; returns the paths of the ``.ipynb`` and ``.html``.

    ``ledgers`` are ledger ids or names (default: every ledger with a model); a report on chosen ledgers is
    written under its own name (``quarterly_report_2025Q1_net-carbon-removal.html``), never over the
    all-ledger report. ``project`` is the project the report is titled with; it defaults to
    ``MANGROVE_PROJECT_ID``, else to the project the ledgers say they belong to (when the API says so).
    ``token`` and ``base_url`` default to ``MANGROVE_API_TOKEN`` / ``MANGROVE_API_URL``; both reach the kernel
    through its environment only. ``generate_missing=True`` first generates, ledger by ledger, what the
    quarter's preview says is missing (never anything else); without it nothing is generated. ``progress``
    prints one line per cell on stderr. ``timeout`` is the limit for each cell, in seconds.

    Before anything runs or is generated, the quarter, the settings (token and URL), the template, the ledgers
    (every name or id must be one the API lists; an unknown one is named with the closest matches), the project
    and ``out_dir`` are checked: the folder must exist or be creatable, and be writable. Files are written to a
    temporary file in ``out_dir`` and renamed into place, so a symlink at an output path is replaced, never
    written through, and an earlier report stays whole when writing fails. Every expected failure is a
    ``MangroveError`` with a one-line message (``ReportError``, ``PeriodError``, ``ValidationError``,
    ``ConfigurationError``, the API's errors); an interrupt (Ctrl-C) stops the kernel, keeps the partial notebook
    and is re-raised.
    """
    # Sealed first, before anything can raise: no frame of this module holds the raw token in a local, so a
    # traceback shown with its locals (IPython's verbose mode, error trackers) cannot show it.
    token = Secret(token) if isinstance(token, str) else token
    from mangrove_nb import connect

    period = quarter_period(quarter)
    started = time.monotonic()
    if isinstance(ledgers, str):
        raise TypeError("ledgers must be a list of ledger ids or names, not a single string; wrap it: [ledger].")
    # Settings are resolved (the token found and checked, the URL checked) before anything is written or any
    # kernel starts: a missing or malformed token fails here, fast. connect() sends nothing.
    client = connect(token, base_url, show_progress=progress,
                     **({"project_id": _project_argument(project)} if project is not None else {}))
    try:
        chosen = resolve_ledgers(client, ledgers) if ledgers is not None else None
        project_id = client.settings.project_id
        if project_id is not None:
            _check_project(client, project_id)
        nb = build_report(period.label, ledgers=[i for i, _ in chosen] if chosen is not None else None,
                          base_url=base_url, project=project_id, template=template)
        out = _output_folder(out_dir)
        return _render(nb, client, period, ledgers=[i for i, _ in chosen] if chosen is not None else None,
                       stem=report_stem(period, chosen), out=out, generate_missing=generate_missing,
                       progress=progress, timeout=timeout, started=started)
    finally:
        client.close()


def _check_project(client: Client, project_id: str) -> None:
    """An unknown project is a one-line ``ValidationError`` now (``argument="project"``), not a failing cell later."""
    from mangrove_nb.errors import NotFoundError, ValidationError

    problem = None
    try:
        client.project(project_id)
    except NotFoundError:
        shown = _one_line(_secret_scrubber([client.settings.token])(project_id), 40)
        problem = (f"The API has no project {shown!r} that this token can see (from --project, "
                   "project= or MANGROVE_PROJECT_ID); give the id of the project the ledgers belong to.")
    if problem is not None:
        raise ValidationError(problem, argument="project")


def _project_argument(project: Any) -> str:
    if isinstance(project, bool) or not isinstance(project, int | str) or not str(project).strip():
        from mangrove_nb.errors import ValidationError

        raise ValidationError(f"project must be a project id such as 123, not {_one_line(repr(project), 60)}.",
                              argument="project")
    return str(project).strip()


def resolve_ledgers(client: Client, ledgers: Sequence[str]) -> list[tuple[str, str]]:
    """``(id, name)`` of each ledger in ``ledgers`` (ids or names, exact or case-insensitive), in the order given,
    without repeats; reads the ledger list once.

    Raises ``ValidationError`` (``argument="ledger"``, one line) for an empty list, and for a ledger the API does
    not list, naming the closest names and ids. The message never repeats the token (a token pasted as a ledger
    is masked).
    """
    import difflib

    from mangrove_nb.errors import ValidationError

    wanted = list(dict.fromkeys(str(ledger).strip() for ledger in ledgers))
    if not wanted or not all(wanted):
        raise ValidationError("Give at least one ledger id or name (--ledger), or none for every ledger with a "
                              "model.", argument="ledger")
    table = client.ledgers()
    names = {str(i): str(n) if isinstance(n, str) else str(i) for i, n in zip(table["id"], table["name"], strict=True)}
    scrub = _secret_scrubber([client.settings.token])
    found: list[tuple[str, str]] = []
    for ledger in wanted:
        ledger_id = _match_ledger(ledger, names)
        if ledger_id is None:
            close = difflib.get_close_matches(ledger, list(names.values()), n=3, cutoff=0.5)
            close += [i for i in difflib.get_close_matches(ledger, list(names), n=2, cutoff=0.8) if i not in close]
            hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            listed = ", ".join(f"{names[i]!r} ({i})" for i in sorted(names, key=lambda i: (names[i], i))[:8])
            shown = _one_line(scrub(ledger), 80)
            raise ValidationError(_one_line(scrub(
                f"No ledger is called or has the id '{shown}'.{hint} The API lists {_plural(len(names), 'ledger')}: "
                f"{listed or 'none'}{'...' if len(names) > 8 else ''}.")), argument="ledger")
        if ledger_id not in (i for i, _ in found):
            found.append((ledger_id, names[ledger_id]))
    return found


def _match_ledger(value: str, names: Mapping[str, str]) -> str | None:
    """The id of the ledger ``value`` names: an id, else an exact name, else a name ignoring case."""
    from mangrove_nb.errors import ValidationError

    if value in names:
        return value
    for same in (lambda n: n == value, lambda n: n.casefold() == value.casefold()):
        hits = [i for i, n in names.items() if same(n)]
        if len(hits) > 1:
            raise ValidationError(f"Several ledgers are called {_one_line(value, 80)!r} ({', '.join(hits)}); give "
                                  "the id instead.", argument="ledger")
        if hits:
            return hits[0]
    return None


def report_stem(period: Period, ledgers: Sequence[tuple[str, str]] | None) -> str:
    """The file name (without extension) of a report: ``quarterly_report_2025Q1`` for every ledger with a model,
    ``quarterly_report_2025Q1_net-carbon-removal`` (the chosen ledgers' names as slugs, sorted) for chosen ones.

    A name that gives no slug is replaced by its id; a long selection becomes ``<n>-ledgers-<hash of the ids>``.
    The result has letters, digits, ``-`` and ``_`` only, so it is safe on every file system.
    """
    stem = f"quarterly_report_{period.label}"
    if ledgers is None:
        return stem
    parts = sorted({_slug(name) or _slug(ledger_id) or "ledger" for ledger_id, name in ledgers})
    joined = "_".join(parts)
    if len(joined) > 80 or len(parts) < len(ledgers):
        digest = hashlib.sha256(",".join(sorted(i for i, _ in ledgers)).encode()).hexdigest()[:10]
        joined = f"{len(ledgers)}-ledgers-{digest}"
    return f"{stem}_{joined}"


def _slug(text: str) -> str:
    import unicodedata

    ascii_text = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:40].strip("-")


def _render(nb: NotebookNode, client: Client, period: Period, *, ledgers: Sequence[str] | None, stem: str,
            out: Path, generate_missing: bool, progress: bool, timeout: int, started: float) -> ReportPaths:
    settings = client.settings
    secrets = [settings.token]
    scrub = _secret_scrubber(secrets)
    # A parameter that holds the token (pasted as a ledger id, say) is masked before the notebook exists anywhere
    # but here: the kernel gets the token from its environment only.
    _scrub_sources(nb, scrub)
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
    _write_text(paths.html, exporter.export(nb, title=_html_title(nb.metadata[META_KEY], period)))
    with contextlib.suppress(FileNotFoundError):
        partial.unlink()  # a stale failure no longer describes this report (a symlink: the link goes, not its target)
    if progress:
        print(f"Report {period.label} rendered in {time.monotonic() - started:.1f} s: {paths.html}",
              file=sys.stderr, flush=True)
    return paths


def _html_title(facts: Mapping[str, Any], period: Period) -> str:
    """The page's title: the project's name (when the report knows it) and the quarter."""
    about = facts.get("project")
    name = about.get("name") if isinstance(about, Mapping) else None
    title = f"Quarterly report {period.label}"
    return f"{_one_line(name, 120)}: {title}" if isinstance(name, str) and name.strip() else title


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
NOT_GENERATED = "not generated"
_NBSP = "\u00a0"
_MINUS = "\u2212"
_SEVERITY = {"error": 0, "warning": 1, "info": 2}
# Calculation roles (``lca_role``): emissions are subtracted; "net" (the figure itself, where a model reports it)
# and "input" (a mass shown for the audit) are not terms; every other role (removal, output...) is added.
_SUBTRACTED_ROLES = frozenset({"emission", "leakage", "deduction"})
_NOT_TERMS = frozenset({"net", "input"})
# A ledger whose name says it counts removed carbon (the report's first ledger, and the one broken down).
_REMOVAL_NAME = re.compile(r"removal|\bcdr\b|sequest|carbon (?:removed|stored)", re.IGNORECASE)


_TABLE_IDS = itertools.count(1)
_SHORT = 18  # characters: a column whose values are all this short does not wrap
_LONG = 24  # characters: a column with a longer word may break it anywhere


@dataclass
class Table:
    """A DataFrame shown without its index: escaped HTML in notebooks and reports, aligned text elsewhere.

    Every value and column name goes through pandas' ``to_html(escape=True)``; ``title``, ``note`` (one text or
    several, a paragraph each) and ``empty`` through ``html.escape``. Floats get ``decimals`` digits (per column
    when a mapping) and thousands separators; missing values show as "–". Numeric columns, and the columns named
    in ``right``, are right-aligned; text wraps, so a table fits a narrow window.
    """

    frame: pd.DataFrame
    title: str | None = None
    note: str | Sequence[str] | None = None
    decimals: int | Mapping[str, int] = 3
    empty: str = "Nothing to show."
    header: bool = True
    right: Sequence[str] = ()

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

    def notes(self) -> list[str]:
        if self.note is None:
            return []
        return [self.note] if isinstance(self.note, str) else [str(n) for n in self.note if n]

    def _right(self) -> list[int]:
        named = {str(c) for c in self.right}
        return [i for i, (column, dtype) in enumerate(self.frame.dtypes.items(), start=1)
                if str(column) in named
                or (pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype))]

    def _repr_html_(self) -> str:
        parts = [f'<h4 class="mangrove-table-title">{html.escape(self.title)}</h4>'] if self.title else []
        if self.frame.empty:
            parts.append(f"<p>{html.escape(self.empty)}</p>")
        else:
            table_id = f"mangrove-table-{next(_TABLE_IDS)}"
            shown = self.shown()
            right = ", ".join(f"#{table_id} td:nth-child({i}), #{table_id} th:nth-child({i})" for i in self._right())
            # Short values (months, tracking ids, amounts) never break; longer text wraps to fit a narrow window.
            short = ", ".join(f"#{table_id} td:nth-child({i})" for i, column in enumerate(shown.columns, start=1)
                              if shown[column].map(lambda v: len(str(v))).max() <= _SHORT)
            # A word too long for a narrow window (a fingerprint, a name without spaces) may break anywhere.
            long = ", ".join(f"#{table_id} td:nth-child({i})" for i, column in enumerate(shown.columns, start=1)
                             if shown[column].map(lambda v: max(map(len, str(v).split()), default=0)).max() > _LONG)
            style = (f"{right} {{ text-align: right; }}" if right else "") + \
                (f" {short} {{ white-space: nowrap; }}" if short else "") + \
                (f" {long} {{ overflow-wrap: anywhere; }}" if long else "")
            if style:
                parts.append(f"<style>{style.strip()}</style>")
            table = shown.to_html(index=False, escape=True, border=0, header=self.header, table_id=table_id,
                                         classes="mangrove-table")
            parts.append(f'<div class="mangrove-wrap">{table}</div>')
        parts += [f'<p class="mangrove-note">{html.escape(note)}</p>' for note in self.notes()]
        return "\n".join(parts)

    def __repr__(self) -> str:
        parts = [self.title] if self.title else []
        parts.append(self.empty if self.frame.empty else self.shown().to_string(index=False, header=self.header))
        parts += self.notes()
        return "\n".join(parts)


@dataclass
class Header:
    """The report's opening: a title (the project's name) and a few lines under it; API text escaped."""

    title: str
    lines: Sequence[str] = ()

    def _repr_html_(self) -> str:
        lede = "".join(f'<p class="mangrove-lede">{html.escape(line)}</p>' for line in self.lines)
        return f'<div class="mangrove-header"><h1 class="mangrove-title">{html.escape(self.title)}</h1>{lede}</div>'

    def __repr__(self) -> str:
        return "\n".join([self.title, "=" * min(len(self.title), 80), *self.lines])


@dataclass
class Bullets:
    """A list of short statements, each with a bold lead (where: ledger, month, batch); API text escaped."""

    items: Sequence[tuple[str, str]]
    empty: str = "Nothing to report."
    note: str | None = None

    def _repr_html_(self) -> str:
        if not self.items:
            body = f'<p class="mangrove-ok">{html.escape(self.empty)}</p>'
        else:
            rows = "".join(f"<li><strong>{html.escape(lead)}</strong>{': ' if lead else ''}{html.escape(text)}</li>"
                           for lead, text in self.items)
            body = f'<ul class="mangrove-bullets">{rows}</ul>'
        if self.note:
            body += f'<p class="mangrove-note">{html.escape(self.note)}</p>'
        return body

    def __repr__(self) -> str:
        if not self.items:
            return self.empty
        lines = [f"- {lead}: {text}" if lead else f"- {text}" for lead, text in self.items]
        return "\n".join([*lines, *([self.note] if self.note else [])])


# --- reading ------------------------------------------------------------------------------------------------


def select_ledgers(all_ledgers: pd.DataFrame, ledgers: Sequence[str] | None) -> pd.DataFrame:
    """The report's ledgers, sorted by name then id: those asked for (ids or names), or (``None``) every ledger
    with a model. ``order_ledgers`` then puts them in the report's order.

    A ledger the API does not list raises ``ValueError`` naming it and the closest names.
    """
    import difflib

    if ledgers is None:
        chosen = all_ledgers[all_ledgers["has_model"].fillna(False).astype(bool)]
        if chosen.empty:
            raise ValueError("No ledger has a model, so there is nothing to report on; pass ledgers=[...] to "
                             "report on ledgers without one.")
    else:
        if isinstance(ledgers, str):
            raise TypeError("ledgers must be a list of ledger ids or names, not a single string; wrap it: [ledger].")
        wanted = list(dict.fromkeys(str(ledger).strip() for ledger in ledgers))
        if not wanted:
            raise ValueError("ledgers is an empty list; give ledger ids or names, or None for every ledger with a "
                             "model.")
        names = {str(i): str(n) if isinstance(n, str) else str(i)
                 for i, n in zip(all_ledgers["id"], all_ledgers["name"], strict=True)}
        ids = []
        for ledger in wanted:
            found = _match_ledger(ledger, names)
            if found is None:
                close = difflib.get_close_matches(ledger, list(names.values()), n=3, cutoff=0.5)
                hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
                raise ValueError(f"Unknown ledger: {_one_line(ledger, 80)!r}.{hint} The API lists: "
                                 f"{', '.join(sorted(names)) or 'no ledgers'}.")
            ids.append(found)
        chosen = all_ledgers[all_ledgers["id"].isin(ids)]
    return chosen.sort_values(["name", "id"], kind="stable", ignore_index=True)


def order_ledgers(selected: pd.DataFrame, inputs: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The ledgers in the report's order: carbon-removal ledgers first, then their upstream ledgers (those whose
    models read the same inputs, the closest first), then ledgers fed by another ledger's batches, then the rest;
    by name within each group.

    A carbon-removal ledger is one whose name says so (removal, CDR, sequestration); the API has no field for it.
    """
    def reads(ledger_id: str) -> set[str]:
        frame = inputs.get(ledger_id)
        return set() if frame is None else {str(i) for i in frame["id"].dropna()}

    removal = [str(i) for i in removal_ledgers(selected)]
    removal_inputs = set().union(*(reads(i) for i in removal)) if removal else set()
    keys = []
    for row in selected.itertuples():
        ledger_id, mine = str(row.id), reads(str(row.id))
        fed = frame_has_manual_select(inputs.get(ledger_id))
        if ledger_id in removal:
            rank, closeness = 0, 0.0
        elif mine and mine & removal_inputs:
            rank, closeness = 1, -len(mine & removal_inputs) / len(mine)
        elif fed:
            rank, closeness = 2, 0.0
        else:
            rank, closeness = 3, 0.0
        keys.append((rank, closeness, str(row.name), ledger_id))
    order = sorted(range(len(keys)), key=lambda n: keys[n])
    return selected.iloc[order].reset_index(drop=True)


def frame_has_manual_select(inputs: pd.DataFrame | None) -> bool:
    """Whether a ``required_inputs`` frame has a manual-select input (one fed by another ledger's batches)."""
    return inputs is not None and bool(inputs["is_manual_select"].fillna(False).astype(bool).any())


def removal_ledgers(selected: pd.DataFrame) -> list[str]:
    """The ids of the carbon-removal ledgers among ``selected``: those whose name says they count removed carbon
    and that have a model."""
    return [str(row.id) for row in selected.itertuples()
            if isinstance(row.name, str) and _REMOVAL_NAME.search(row.name) and _yes(row.has_model)]


def report_project(client: Client, project: int | str | None = None) -> Any:
    """The project the report is about (``client.project()``), or None when none is known.

    ``project`` (the report's parameter), else the session's (``MANGROVE_PROJECT_ID``), else the project the
    ledgers name (a ``project_id`` on every ledger the API lists, when the API gives one and they agree).
    """
    chosen = project if project is not None else client.settings.project_id
    if chosen is None:
        found = {str(item["project_id"]) for item in client.http.ledgers()
                 if isinstance(item, Mapping) and isinstance(item.get("project_id"), int | str)
                 and not isinstance(item.get("project_id"), bool)}
        chosen = found.pop() if len(found) == 1 else None
    return client.project(chosen) if chosen is not None else None


def year_before(period: Period) -> Period:
    """The same quarter a year earlier: 2025Q1 -> 2024Q1."""
    quarter = quarter_period(period)
    return quarter_period(f"{quarter.start.year - 1}Q{(quarter.start.month - 1) // 3 + 1}")


def breakdown_batches(batches: pd.DataFrame, selected: pd.DataFrame) -> pd.DataFrame:
    """The batches whose calculations the report reads: the carbon-removal ledgers' complete batches (to show
    how the net figure was computed) and every batch made with a skipped input (to say what it changed)."""
    removal = set(removal_ledgers(selected))
    wanted = batches["ledger_id"].isin(removal) & _counted(batches)
    if "skipped_inputs" in batches.columns:
        wanted |= batches["skipped_inputs"].notna()
    return batches[wanted].reset_index(drop=True)


# --- the summary ----------------------------------------------------------------------------------------------


def _generated_months(frame: pd.DataFrame, ledger_id: str, period: Period) -> list[str]:
    """The months of ``period`` in which the ledger has a complete batch."""
    mine = frame[(frame["ledger_id"] == ledger_id) & _counted(frame)]
    have = {_month_label(t) for t in mine["start_time"]}
    return [m.label for m in period.months() if m.label in have]


def _total(frame: pd.DataFrame, ledger_id: str) -> float:
    mine = frame[(frame["ledger_id"] == ledger_id) & _counted(frame)]
    return float(mine["output_value"].fillna(0.0).sum())


def summary(selected: pd.DataFrame, batches: pd.DataFrame, before: pd.DataFrame, year_ago_batches: pd.DataFrame,
            period: Period, previous: Period, year_ago: Period, calculations: pd.DataFrame | None = None
            ) -> pd.DataFrame:
    """Per ledger, in the report's order: the quarter's total, the previous quarter's and the same quarter's a
    year before, the changes, and how many months of each were generated.

    A quarter without a complete batch is not generated: its total is NA, never 0. A change is computed only
    between two quarters whose every month is generated (otherwise it would compare a part with a whole); it is
    NA otherwise, and ``summary_table`` says why. The percentage is NA when the earlier total is not positive.
    ``Overstated`` counts the quarter's batches whose net figure is overstated because an emission input was
    skipped (see ``quality_findings``).
    """
    months = len(period.months())
    effects = skipped_effects(batches, calculations)
    rows = []
    for row in selected.itertuples():
        ledger_id = str(row.id)
        values: dict[str, Any] = {"Ledger": row.name, "Ledger ID": ledger_id, "Unit": row.unit, "Months": months}
        for key, frame, span in (("", batches, period), ("Previous ", before, previous),
                                 ("Year-ago ", year_ago_batches, year_ago)):
            generated = _generated_months(frame, ledger_id, span)
            values[f"{key}generated".capitalize()] = len(generated)
            values[f"{key}total".capitalize()] = _total(frame, ledger_id) if generated else pd.NA
        for key, label in (("Previous", "previous"), ("Year-ago", "year ago")):
            comparable = values["Generated"] == months and values[f"{key} generated"] == months
            then = values[f"{key} total"]
            change = values["Total"] - then if comparable else pd.NA
            values[f"Change vs {label}"] = change
            values[f"Change vs {label} (%)"] = change / then * 100 if comparable and then > 0 else pd.NA
        mine = batches[batches["ledger_id"] == ledger_id]
        values["Failed"] = int(mine["state"].eq("failed").sum())
        skipped = mine["skipped_inputs"].notna() if "skipped_inputs" in mine.columns else pd.Series(False)
        values["Skipped inputs"] = int(skipped.sum())
        values["Overstated"] = sum(effects.get(str(b), ("", ""))[1] == "overstated" for b in mine["id"])
        rows.append(values)
    columns = ["Ledger", "Ledger ID", "Unit", "Months", "Generated", "Total", "Previous generated", "Previous total",
               "Year-ago generated", "Year-ago total", "Change vs previous", "Change vs previous (%)",
               "Change vs year ago", "Change vs year ago (%)", "Failed", "Skipped inputs", "Overstated"]
    frame = pd.DataFrame(rows, columns=columns)
    integers = ["Months", "Generated", "Previous generated", "Year-ago generated", "Failed", "Skipped inputs",
                "Overstated"]
    return frame.astype({"Ledger": "string", "Ledger ID": "string", "Unit": "string"}
                        | {c: "Int64" for c in integers} | {c: "Float64" for c in columns if c not in integers
                                                                 and c not in ("Ledger", "Ledger ID", "Unit")})


def _amount(value: float, unit: Any, *, signed: bool = False) -> str:
    text = f"{value:+,.3f}" if signed else f"{value:,.3f}"
    text = text.replace("-", _MINUS)
    return f"{text}{_NBSP}{unit}" if isinstance(unit, str) and unit else text


def _change(row: Any, key: str, label: str, now: str, then: str) -> str:
    """The change cell of the summary: the change, or why there is none."""
    months = int(row["Months"])
    generated, earlier = int(row["Generated"]), int(row[f"{key} generated"])
    if generated == 0:
        return f"{now} {NOT_GENERATED}"
    if earlier == 0:
        return f"{then} {NOT_GENERATED}"
    if generated < months:
        return f"not compared: {now} has {generated} of {months} months"
    if earlier < months:
        return f"not compared: {then} has {earlier} of {months} months"
    change, percent = row[f"Change vs {label}"], row[f"Change vs {label} (%)"]
    amount = _amount(float(change), row["Unit"], signed=True)
    if pd.isna(percent):
        return f"{amount} ({then}: {_amount(float(row[f'{key} total']), row['Unit'])})"
    return f"{percent:+.1f}{_NBSP}%".replace("-", _MINUS) + f" ({amount})"


def summary_table(frame: pd.DataFrame, period: Period, previous: Period, year_ago: Period) -> Table:
    """The summary as the reader sees it: one row per ledger with its total, the two changes and its coverage."""
    rows, notes = [], []
    for _, row in frame.iterrows():
        months, generated = int(row["Months"]), int(row["Generated"])
        if generated:
            total = _amount(float(row["Total"]), row["Unit"])
            if int(row["Overstated"]):
                total += f"{_NBSP}⚠"
                count = int(row["Overstated"])
                notes.append(f"⚠ {row['Ledger']}: {_plural(count, 'batch')} of {period.label} "
                             f"{'was' if count == 1 else 'were'} generated with an emission input skipped, so this "
                             "total overstates the net removal (see Warnings).")
            if generated < months:
                total += f" ({generated} of {months} months)"
        else:
            total = NOT_GENERATED
        coverage_text = f"{generated} of {months} months generated"
        if int(row["Failed"]):
            coverage_text += f"; {_plural(int(row['Failed']), 'batch')} failed"
        rows.append([row["Ledger"], total, _change(row, "Previous", "previous", period.label, previous.label),
                     _change(row, "Year-ago", "year ago", period.label, year_ago.label), coverage_text])
    columns = ["Ledger", f"{period.label} total", f"vs {previous.label}", f"vs {year_ago.label}", "Coverage"]
    shown = pd.DataFrame(rows, columns=columns).astype("string")
    notes.append("Totals count complete batches only, in each ledger's unit. A change is computed only between "
                 "quarters whose every month is generated.")
    return Table(shown, note=notes, right=columns[1:4], empty="The report covers no ledger.")


# --- warnings, coverage and data quality -----------------------------------------------------------------------


def coverage(client: Client, selected: pd.DataFrame, inputs: Mapping[str, pd.DataFrame], batches: pd.DataFrame,
             period: Period) -> pd.DataFrame:
    """Per ledger and month of ``period``: the batches there are, what the preview would generate, and a status.

    A month without a complete batch is ``Generated: no``. The preview (a read-only POST) is asked per month,
    except for ledgers that cannot generate (no model) or need a manual selection of upstream batches.
    """
    rows = []
    for ledger in selected.itertuples():
        manual = frame_has_manual_select(inputs.get(ledger.id))
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
            rows.append([ledger.name, month.label, len(mine), complete, failed, preview, complete > 0, status])
    columns = ["Ledger", "Month", "Batches", "Complete", "Failed", "Preview: new batches", "Generated", "Status"]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.astype({"Ledger": "string", "Month": "string", "Batches": "Int64", "Complete": "Int64",
                         "Failed": "Int64", "Preview: new batches": "Int64", "Generated": "boolean",
                         "Status": "string"})


def _coverage_status(existing: int, complete: int, failed: int, preview: Any, *, has_model: bool,
                     manual: bool) -> str:
    can = None if preview is pd.NA else int(preview)
    if existing == 0:
        if not has_model:
            return "⚠ not generated: the ledger has no model"
        if manual:
            return "⚠ not generated: needs a manual selection of upstream batches"
        if can:
            return f"⚠ not generated: the preview counts {_plural(can, 'batch')} to generate"
        return "⚠ not generated: no data to generate from"
    if can:
        return f"⚠ incomplete: {_plural(can, 'more batch', 'more batches')} can be generated"
    if complete == 0 and failed:
        return "⚠ not generated: its only batches failed"
    if complete < existing:
        return "ok, with batches not complete"
    return "ok"


def coverage_table(covered: pd.DataFrame) -> Table:
    """Coverage as the reader sees it: one row per ledger, one column per month, each cell saying what the month
    has (complete and failed batches) or why it is not generated, and what the preview can still generate."""
    months = list(dict.fromkeys(covered["Month"]))
    cells: dict[str, dict[str, str]] = {}
    for item, preview in zip(covered.itertuples(), covered["Preview: new batches"], strict=True):
        cells.setdefault(str(item.Ledger), {})[str(item.Month)] = _coverage_cell(
            int(item.Batches), int(item.Complete), int(item.Failed), preview, str(item.Status))
    rows = [[ledger, *[by_month.get(m, _NA) for m in months]] for ledger, by_month in cells.items()]
    frame = pd.DataFrame(rows, columns=["Ledger", *months]).astype("string")
    missing = int((~covered["Generated"].fillna(False).astype(bool)).sum())
    note = (f"{_plural(missing, 'ledger-month')} not generated. \"Can be generated\" counts the new batches the API's "
            "generation preview would make.")
    return Table(frame, note=note)


def _coverage_cell(existing: int, complete: int, failed: int, preview: Any, status: str) -> str:
    can = 0 if pd.isna(preview) else int(preview)
    if existing == 0 or complete == 0:
        reason = status.split(": ", 1)[1] if ": " in status else status.removeprefix("⚠ ")
        short = {"the ledger has no model": "no model", "no data to generate from": "no data",
                 "needs a manual selection of upstream batches": "needs a manual selection of upstream batches",
                 "its only batches failed": f"{_plural(failed, 'batch')} failed"}.get(reason)
        if short is None and can:
            short = f"{can} can be generated"
        return f"⚠ {NOT_GENERATED}: {short or reason}"
    text = f"{complete} complete"
    if failed:
        text += f", {failed} failed"
    if existing - complete - failed:
        text += f", {existing - complete - failed} unfinished"
    if can:
        text = f"⚠ {text}; {can} more can be generated"
    return text


def skipped_effects(batches: pd.DataFrame, calculations: pd.DataFrame | None) -> dict[str, tuple[str, str]]:
    """For each batch generated with a skipped input: a sentence saying what the skip changed, and its direction
    (``overstated``, ``understated``, ``unaffected`` or ``unknown``), from the batch's calculations.

    A skipped input counts as zero. The calculations that read it carry a ``note`` saying so: an emission term
    counted as zero overstates a net removal, a removal term counted as zero understates it.
    """
    if "skipped_inputs" not in batches.columns:
        return {}
    calcs = calculations if calculations is not None else pd.DataFrame(columns=["batch_id"])
    effects: dict[str, tuple[str, str]] = {}
    for batch in batches[batches["skipped_inputs"].notna()].itertuples():
        skipped = str(batch.skipped_inputs)
        mine = calcs[calcs["batch_id"] == batch.id] if len(calcs) else calcs
        lead = f"Generated without {skipped}"
        if mine.empty:
            effects[str(batch.id)] = (f"{lead}: it counted as zero (its calculations could not be read).", "unknown")
            continue
        zeroed = mine[mine["note"].notna()]
        roles = {str(r): [str(n) for n in zeroed.loc[zeroed["lca_role"] == r, "name"]]
                 for r in zeroed["lca_role"].dropna().unique()}
        emissions = [n for r, names in roles.items() if _sign(r) == -1 for n in names]
        removals = [n for r, names in roles.items() if _sign(r) == 1 and r != "output" for n in names]
        outputs = roles.get("output", [])
        parts, direction = [], "unaffected"
        if emissions:
            parts.append(f"its emissions are not counted ({', '.join(emissions)} counted as zero)")
            direction = "overstated"
        if removals:
            parts.append(f"its removal is not counted ({', '.join(removals)} counted as zero)")
            direction = "understated" if not emissions else "unknown"
        if outputs and not (emissions or removals):
            parts.append(f"{', '.join(outputs)} counts it as zero")
            direction = "understated"
        if direction == "overstated":
            parts.append("so its net removal is overstated")
        elif direction == "understated" and removals:
            parts.append("so its net removal is understated")
        elif direction == "understated":
            parts.append("so its output may be understated")
        elif direction == "unknown":
            parts.append("so its net removal may be off in either direction")
        if not parts:
            effects[str(batch.id)] = (f"{lead}; its calculations do not read it, so its output is unaffected.",
                                      direction)
        else:
            effects[str(batch.id)] = (f"{lead}: " + ", ".join(parts[:-1]) + f", {parts[-1]}." if len(parts) > 1
                                      else f"{lead}: {parts[0]}.", direction)
    return effects


def quality_findings(batches: pd.DataFrame, covered: pd.DataFrame, selected: pd.DataFrame,
                     calculations: pd.DataFrame | None = None) -> pd.DataFrame:
    """Failed batches, zero, negative or missing outputs, unfinished batches, batches made with a skipped input,
    net figures whose terms do not add up, and months not generated.

    One row per finding, most severe first (error, warning, info), then in the report's ledger order, by month
    and batch.
    """
    names = _names(selected)
    order = {name: n for n, name in enumerate(names.values())}
    effects = skipped_effects(batches, calculations)
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
            rows.append(["warning", *where, f"Negative output: {_amount(float(value), None)}"])
        if str(batch.id) in effects:
            text, direction = effects[str(batch.id)]
            rows.append(["info" if direction == "unaffected" else "warning", *where, text])
    if calculations is not None:
        for problem in _breakdown_problems(calculations, batches, names):
            rows.append(["error", *problem])
    for item in covered.itertuples():
        status = str(item.Status)
        if not status.startswith("⚠") or "only batches failed" in status:
            continue  # ok, or failed batches already reported one by one
        text = status.removeprefix("⚠ ")
        rows.append(["warning", item.Ledger, item.Month, pd.NA, text[:1].upper() + text[1:]])
    frame = pd.DataFrame(rows, columns=["Severity", "Ledger", "Month", "Batch", "Finding"]).astype("string")
    keys = pd.DataFrame({"s": frame["Severity"].map(_SEVERITY), "l": frame["Ledger"].map(order).fillna(len(order))})
    return (frame.assign(_s=keys["s"], _l=keys["l"])
            .sort_values(["_s", "_l", "Ledger", "Month", "Batch", "Finding"], kind="stable", na_position="first")
            .drop(columns=["_s", "_l"]).reset_index(drop=True))


def findings_table(findings: pd.DataFrame) -> Table:
    return Table(findings, empty="No findings: every batch is complete with a positive output, no input was skipped, "
                                 "and every month is generated.")


def key_warnings(findings: pd.DataFrame) -> Bullets:
    """The findings a reader must know (errors and warnings), one line each, in the findings' order; months not
    generated for the same reason are one line per ledger ("not generated in 2025-01, 2025-02: ...")."""
    items: list[tuple[str, str]] = []
    grouped: dict[tuple[str, str], list[str]] = {}
    for row in findings.itertuples():
        if row.Severity not in ("error", "warning"):
            continue
        if pd.isna(row.Batch):
            key = (str(row.Ledger), str(row.Finding))
            if key not in grouped:
                grouped[key] = []
                items.append(key)  # a placeholder, filled below once every month is known
            grouped[key].append(str(row.Month))
            continue
        items.append((f"{row.Ledger}, {row.Month}, {row.Batch}", str(row.Finding)))
    shown = []
    for lead, text in items:
        months = grouped.get((lead, text)) if (lead, text) in grouped else None
        if months is None:
            shown.append((lead, text))
            continue
        what, _, why = text.partition(": ")
        each = " each month" if len(months) > 1 and re.search(r"\d", why) else ""
        shown.append((lead, f"{what.lower()} in {', '.join(months)}" + (f": {why}{each}" if why else "")))
    note = "Every finding, month by month and batch by batch, is listed under Data quality." if shown else None
    return Bullets(shown, empty="No warnings: every month of the quarter is generated, every batch is complete "
                                "with a positive output, and no input was skipped.", note=note)


# --- totals and how the net figure was computed ----------------------------------------------------------------


def monthly_totals(batches: pd.DataFrame, selected: pd.DataFrame, period: Period) -> pd.DataFrame:
    """Per ledger: the complete batches' output per month of ``period`` and for the whole period.

    A month without a complete batch is NA (shown "not generated"), never 0; so is the period's total when no
    month is generated.
    """
    months = [month.label for month in period.months()]
    rows = []
    for ledger in selected.itertuples():
        mine = batches[(batches["ledger_id"] == ledger.id) & _counted(batches)]
        sums: dict[str, float] = {}
        for start, value in zip(mine["start_time"], mine["output_value"].fillna(0.0), strict=True):
            sums[_month_label(start)] = sums.get(_month_label(start), 0.0) + float(value)
        values = [sums.get(m, pd.NA) for m in months]
        total = float(sum(sums.values())) if sums else pd.NA
        rows.append([ledger.name, ledger.unit, *values, total])
    frame = pd.DataFrame(rows, columns=["Ledger", "Unit", *months, f"{period.label} total"])
    return frame.astype({"Ledger": "string", "Unit": "string"} | {c: "Float64" for c in frame.columns[2:]})


def totals_table(totals: pd.DataFrame, period: Period, batches: pd.DataFrame | None = None,
                 calculations: pd.DataFrame | None = None) -> Table:
    """Totals per month as the reader sees them: "not generated" where a month has no complete batch, and ⚠ on a
    month (and the quarter) whose net figure is overstated by a skipped emission input (given ``batches`` with
    their skipped inputs and ``calculations``)."""
    months = [month.label for month in period.months()]
    overstated: set[tuple[str, str]] = set()
    if batches is not None:
        effects = skipped_effects(batches, calculations)
        for batch in batches.itertuples():
            if effects.get(str(batch.id), ("", ""))[1] == "overstated":
                name = getattr(batch, "ledger_name", None)
                ledger = name if isinstance(name, str) else str(batch.ledger_id)
                overstated.add((ledger, _month_label(batch.start_time)))
    rows = []
    for row in totals.itertuples(index=False):
        values = list(row)
        ledger = str(values[0])
        cells, flagged = [], False
        for month, value in zip(months, values[2:2 + len(months)], strict=True):
            text = NOT_GENERATED if pd.isna(value) else _figure(float(value))
            if not pd.isna(value) and (ledger, month) in overstated:
                text, flagged = f"{text}{_NBSP}⚠", True
            cells.append(text)
        generated = sum(not pd.isna(v) for v in values[2:2 + len(months)])
        total = values[-1]
        total_text = NOT_GENERATED if pd.isna(total) else _figure(float(total)) + (f"{_NBSP}⚠" if flagged else "")
        if 0 < generated < len(months):
            total_text += f" ({generated} of {len(months)} months)"
        rows.append([values[0], values[1], *cells, total_text])
    columns = ["Ledger", "Unit", *months, period.label]
    frame = pd.DataFrame(rows, columns=columns).astype("string")
    notes = ["Complete batches only; failed batches are listed under Data quality."]
    if overstated:
        notes.append("⚠ Overstated: a batch of this month was generated with an emission input skipped, so its "
                     "emissions are not counted (see Warnings).")
    return Table(frame, right=columns[2:], note=notes)


def _sign(role: Any) -> int:
    """+1 for a term added to the net figure, -1 for one subtracted, 0 for what is not a term."""
    text = str(role).strip().lower() if isinstance(role, str) else ""
    return -1 if text in _SUBTRACTED_ROLES else 0 if text in _NOT_TERMS else 1


def net_removal(calculations: pd.DataFrame, batches: pd.DataFrame, selected: pd.DataFrame,
                period: Period) -> pd.DataFrame:
    """How each carbon-removal ledger's net figure was computed, month by month, from the complete batches'
    calculations (``client.calculations``): one row per ledger, month, batch and calculation, in the server's order.

    ``Sign`` is -1 for an emission (subtracted), +1 for a removal (added), 0 for what is not a term (the net
    figure, where the model reports it as a calculation, and reference masses); ``Signed`` is ``Sign × Value``.
    A month's signed terms add up to the batch's output, the ledger's figure (``Batch output``); a batch whose
    terms do not is an error in ``quality_findings``.
    """
    names = _names(selected)
    removal = set(removal_ledgers(selected))
    counted = batches[_counted(batches)]
    outputs = dict(zip(counted["id"].astype(str), counted["output_value"], strict=True))
    rows = []
    for ledger_id in (i for i in names if i in removal):
        mine = calculations[(calculations["ledger_id"] == ledger_id) & calculations["batch_id"].isin(outputs)]
        for calc in mine.itertuples():
            role = str(calc.lca_role) if isinstance(calc.lca_role, str) else ""
            sign = _sign(role)
            value = float(calc.value) if not pd.isna(calc.value) else pd.NA
            rows.append([names[ledger_id], ledger_id, _month_label(calc.start_time), calc.batch_id,
                         calc.tracking_id, calc.name, role, calc.unit, sign, value,
                         value * sign if not pd.isna(value) else pd.NA, outputs.get(str(calc.batch_id), pd.NA),
                         calc.note])
    columns = ["Ledger", "Ledger ID", "Month", "Batch ID", "Batch", "Term", "Role", "Unit", "Sign", "Value", "Signed",
               "Batch output", "Note"]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.astype({c: "string" for c in ("Ledger", "Ledger ID", "Month", "Batch ID", "Batch", "Term", "Role",
                                               "Unit", "Note")}
                        | {"Sign": "Int64", "Value": "Float64", "Signed": "Float64", "Batch output": "Float64"})


def _breakdown_problems(calculations: pd.DataFrame, batches: pd.DataFrame,
                        names: Mapping[str, str]) -> list[list[Any]]:
    """Complete batches whose calculations' terms do not add up to the batch's output (nor to the net figure a
    model reports as a calculation), to the half kilogram."""
    problems = []
    counted = batches[_counted(batches)]
    outputs = dict(zip(counted["id"].astype(str), counted["output_value"], strict=True))
    for batch_id, mine in calculations.groupby("batch_id", sort=True):
        output = outputs.get(str(batch_id))
        if output is None or pd.isna(output):
            continue
        terms = sum(_sign(r) * float(v) for r, v in zip(mine["lca_role"], mine["value"].fillna(0.0), strict=True))
        first = mine.iloc[0]
        where = [names.get(str(first["ledger_id"]), str(first["ledger_id"])), _month_label(first["start_time"]),
                 first["tracking_id"] if isinstance(first["tracking_id"], str) else batch_id]
        if abs(terms - float(output)) > 0.0005:
            problems.append([*where, f"Its calculations do not add up to its output: the terms give "
                                     f"{_amount(terms, None)}, the batch says {_amount(float(output), None)}"])
        for net in mine.loc[mine["lca_role"] == "net", "value"].dropna():
            if abs(float(net) - float(output)) > 0.0005:
                problems.append([*where, f"Its net calculation ({_amount(float(net), None)}) differs from its output "
                                         f"({_amount(float(output), None)})"])
    return problems


def _figure(value: float) -> str:
    return f"{value:,.3f}".replace("-", _MINUS)


def _month_cells(frame: pd.DataFrame, column: str, months: Sequence[str], missing: Mapping[str, str], *,
                 flag: bool = False) -> list[str]:
    """One row of the computation table: ``column`` summed per month (or why the month has none), then over the
    quarter; with ``flag``, a value a skipped input counted as zero is marked ⚠."""
    out = []
    for month in months:
        if month in missing:
            out.append(missing[month])
            continue
        here = frame[frame["Month"] == month]
        text = _figure(float(here[column].fillna(0.0).sum()))
        out.append(text + f"{_NBSP}⚠" if flag and here["Note"].notna().any() else text)
    out.append(_figure(float(frame[column].fillna(0.0).sum())))
    return out


def net_removal_tables(breakdown: pd.DataFrame, batches: pd.DataFrame, selected: pd.DataFrame,
                       period: Period, calculations: pd.DataFrame | None = None) -> list[Any]:
    """The computation section: per carbon-removal ledger, its terms (rows) by month (columns) down to the net
    figure, with the quarter's sums; or a sentence saying why there is nothing to show."""
    removal = removal_ledgers(selected)
    names = _names(selected)
    if not removal:
        return [Bullets([], empty="The report covers no carbon-removal ledger, so there is no net removal to "
                                  "break down.")]
    effects = skipped_effects(batches, calculations)
    months = [m.label for m in period.months()]
    shown: list[Any] = []
    for ledger_id in removal:
        name = names[ledger_id]
        mine = breakdown[breakdown["Ledger ID"] == ledger_id]
        ledger_batches = batches[batches["ledger_id"] == ledger_id]
        if mine.empty:
            why = ("was not generated" if not _counted(ledger_batches).any()
                   else "has no calculations in its batches")
            shown.append(Bullets([(name, f"{why} in {period.label}: there is nothing to break down.")]))
            continue
        failed = {_month_label(t) for t, state in zip(ledger_batches["start_time"], ledger_batches["state"],
                                                      strict=True) if state == "failed"}
        generated = [m for m in months if m in set(mine["Month"])]
        missing = {m: "failed" if m in failed else NOT_GENERATED for m in months if m not in generated}
        terms = list(dict.fromkeys(zip(mine["Term"], mine["Role"], strict=True)))
        added = [t for t in terms if _sign(t[1]) == 1]
        subtracted = [t for t in terms if _sign(t[1]) == -1]
        reference = [t for t in terms if _sign(t[1]) == 0 and t[1] != "net"]
        per_month = mine.drop_duplicates("Batch ID").groupby("Month")["Batch"].agg(
            lambda ids: ", ".join(str(i) for i in ids if isinstance(i, str)))
        rows = [["Batch", *[missing.get(m) or per_month.get(m, _NA) for m in months], ""]]
        for term, role in [*added, *subtracted]:
            label = f"+ {term}" if _sign(role) == 1 else f"{_MINUS} {term}"
            rows.append([label, *_month_cells(mine[mine["Term"] == term], "Value", months, missing, flag=True)])
        per_batch = mine.drop_duplicates("Batch ID")
        rows.append(["= Net removal (the ledger's figure)", *_month_cells(per_batch, "Batch output", months, missing)])
        sums = mine.groupby("Month")["Signed"].sum()
        outputs = per_batch.groupby("Month")["Batch output"].sum()
        if any(abs(float(sums.get(m, 0.0)) - float(outputs.get(m, 0.0))) > 0.0005 for m in generated):
            rows.append(["Sum of the terms (differs!)", *_month_cells(mine, "Signed", months, missing)])
        for term, _role in reference:
            rows.append([f"for reference: {term}", *_month_cells(mine[mine["Term"] == term], "Value", months,
                                                                 missing)])
        header = period.label if len(generated) == len(months) else \
            f"{period.label} ({len(generated)} of {len(months)} months)"
        columns = ["Term", *months, header]
        frame = pd.DataFrame(rows, columns=columns).astype("string")
        unit = next((u for u in mine["Unit"] if isinstance(u, str) and u), "")
        ghg = "" if "co2" in unit.lower() else " CO2e"
        notes = [f"In {unit}{ghg}, from each batch's calculations in Mangrove: removals {_MINUS} emissions = net "
                 "removal, the batch's output on the ledger."]
        if len(rows) > len(added) + len(subtracted) + 2 + len(reference):
            notes.append("⚠ In some month the terms do not add up to the ledger's figure (see Data quality).")
        for batch_id, batch in per_batch.set_index("Batch ID").iterrows():
            if str(batch_id) in effects:
                notes.append(f"⚠ {batch['Month']} ({batch['Batch']}): {effects[str(batch_id)][0]}")
        shown.append(Table(frame, title=f"{name}, {period.label}", note=notes, right=columns[1:]))
    return shown


# --- the appendix -------------------------------------------------------------------------------------------------


def ledger_summary(all_ledgers: pd.DataFrame, selected: pd.DataFrame, batches: pd.DataFrame | None = None
                   ) -> pd.DataFrame:
    """Every ledger the API lists, in the report's order (those it covers first), and whether the report covers
    it."""
    chosen = [str(i) for i in selected["id"]]
    rest = all_ledgers[~all_ledgers["id"].isin(chosen)].sort_values(["name", "id"], kind="stable")
    ordered = pd.concat([all_ledgers.set_index("id").loc[chosen].reset_index(), rest], ignore_index=True)
    rows = []
    for row in ordered.itertuples():
        covered = str(row.id) in chosen
        rows.append({
            "Ledger": row.name, "ID": row.id, "Unit": row.unit, "Partition": row.partition_type,
            "Model": row.model_name if _yes(row.has_model) else "none",
            "In report": "yes" if covered else ("no: no model" if not _yes(row.has_model) else "no: not selected"),
        })
    columns = ["Ledger", "ID", "Unit", "Partition", "Model", "In report"]
    return pd.DataFrame(rows, columns=columns).astype("string")


def inputs_table(inputs: Mapping[str, pd.DataFrame], selected: pd.DataFrame) -> pd.DataFrame:
    """What each covered ledger's model needs (``inputs``: ledger id -> ``client.required_inputs(id)``), one row
    per input, in the report's ledger order then by input id."""
    columns = ["Ledger", "Input", "Input ID", "Unit", "Manual select"]
    rows = []
    for ledger in selected.itertuples():
        mine = inputs[ledger.id].sort_values("id", kind="stable")
        if mine.empty:
            reason = "(no model)" if not _yes(ledger.has_model) else "(none)"
            rows.append([ledger.name, reason, pd.NA, pd.NA, pd.NA])
        for item in mine.itertuples():
            manual = f"yes, from {item.output_of_ledgers}" if _yes(item.is_manual_select) and isinstance(
                item.output_of_ledgers, str) else ("yes" if _yes(item.is_manual_select) else "no")
            rows.append([ledger.name, item.name, item.id, item.unit, manual])
    frame = pd.DataFrame(rows, columns=columns)
    return frame.astype({c: "string" for c in columns} | {"Input ID": "Int64"})


def batch_table(batches: pd.DataFrame, selected: pd.DataFrame) -> pd.DataFrame:
    """The quarter's batches, one row each, in the report's ledger order, then by month and tracking id."""
    names = _names(selected)
    order = {ledger_id: n for n, ledger_id in enumerate(names)}
    skipped = batches["skipped_inputs"] if "skipped_inputs" in batches.columns else pd.Series(pd.NA,
                                                                                             index=batches.index)
    frame = pd.DataFrame({
        "Ledger": batches["ledger_id"].map(names),
        "Month": batches["start_time"].map(_month_label),
        "Tracking ID": batches["tracking_id"],
        "Feedstock": batches["feedstock"],
        "State": batches["state"],
        "Output": batches["output_value"],
        "Unit": batches["output_unit"],
        "Skipped inputs": skipped,
        "Batch ID": batches["id"],
        "_order": batches["ledger_id"].map(order),
    })
    frame = frame.sort_values(["_order", "Month", "Tracking ID", "Batch ID"], kind="stable", ignore_index=True)
    frame = frame.drop(columns="_order")
    return frame.astype({c: "string" for c in frame.columns if c != "Output"} | {"Output": "Float64"})


def batch_tables(batches: pd.DataFrame, selected: pd.DataFrame, period: Period) -> list[Table]:
    """The quarter's batches, one table per ledger (columns without a value anywhere in it are left out)."""
    full = batch_table(batches, selected)
    tables = []
    for ledger_id, name in _names(selected).items():
        mine = full[full["Ledger"] == name].drop(columns="Ledger")
        if mine.empty:
            unit = selected.loc[selected["id"] == ledger_id, "unit"].iloc[0]
            tables.append(Table(mine, title=f"{name} ({unit})" if isinstance(unit, str) and unit else name,
                                empty=f"Not generated: no batch starts in {period.label}."))
            continue
        keep = [c for c in mine.columns if c in ("Month", "Tracking ID", "State", "Output", "Batch ID")
                or mine[c].notna().any()]
        mine = mine[keep]
        units = [u for u in mine.pop("Unit").dropna().unique()] if "Unit" in mine.columns else []
        title = f"{name} ({', '.join(units)})" if units else name
        tables.append(Table(mine.reset_index(drop=True), title=title))
    return tables


def fingerprint(*frames: pd.DataFrame) -> str:
    """A SHA-256 of the batches' ids, ledgers, states, values, units, timestamps and skipped inputs, and of the
    calculations' values (frames from ``client.calculations``), independent of row order.

    The same data gives the same hex digest on any machine; a changed value, state or timestamp (a batch
    regenerated, deleted or added) changes it. Nothing else (fetch time, base URL) enters it.
    """
    batch_columns = ["ledger_id", "id", "tracking_id", "state", "start_time", "end_time", "created_at",
                     "updated_at", "output_value", "output_unit", "feedstock", "skipped_inputs"]
    calc_columns = ["batch_id", "name", "value", "unit", "ghg", "lca_role", "category", "note"]
    rows = []
    for frame in frames:
        columns = calc_columns if "batch_id" in frame.columns and "lca_role" in frame.columns else batch_columns
        for record in frame.reindex(columns=columns).to_dict("records"):
            rows.append([_canonical(record[column]) for column in columns])
    rows.sort(key=lambda row: json.dumps(row))
    payload = json.dumps({"columns": [batch_columns, calc_columns], "rows": rows}, separators=(",", ":"),
                         ensure_ascii=True)
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


def _plural(count: int, word: str, plural: str | None = None) -> str:
    """``1 batch``, ``3 batches``, ``0 months``."""
    many = plural or (f"{word}es" if word.endswith(("s", "x", "ch", "sh")) else f"{word}s")
    return f"{count} {word if count == 1 else many}"


def _day(moment: datetime) -> str:
    return f"{moment.day} {moment:%B %Y}"


def header(project: Any, selected: pd.DataFrame, period: Period, previous: Period, year_ago: Period, *,
           generated_at: datetime, digest: str, all_ledgers: pd.DataFrame | None = None) -> Header:
    """The report's first lines: the project's name, the quarter, what it covers and compares with, and when."""
    name = getattr(project, "name", None)
    title = name if isinstance(name, str) and name.strip() else "Quarterly production report"
    names = list(_names(selected).values())
    lines = [f"Quarterly production report for {period.label}: {_day(period.start)} to {_day(period.end)} (UTC), "
             f"compared with {previous.label} and {year_ago.label}."]
    if name is None:
        lines.append("Project not named: give mangrove-nb report --project ID, or set MANGROVE_PROJECT_ID.")
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}" if names else "no ledger"
    if all_ledgers is not None:
        modelled = set(all_ledgers.loc[all_ledgers["has_model"].fillna(False).astype(bool), "id"].astype(str))
        chosen = set(selected["id"].astype(str))
        if chosen == modelled:
            listed += " (every ledger with a model)"
        elif len(names) == 1:
            listed += " only"
    lines.append(f"Covers {listed}.")
    lines.append(f"Generated {generated_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC; data fingerprint {digest[:12]}… "
                 "(provenance in the appendix).")
    return Header(title, lines)


def provenance(*, base_url: str, selected: pd.DataFrame, period: Period, previous: Period, generated_at: datetime,
               version: str, digest: str, batches: pd.DataFrame, before: pd.DataFrame,
               year_ago: Period | None = None, year_ago_batches: pd.DataFrame | None = None, project: Any = None,
               calculations: pd.DataFrame | None = None) -> Table:
    """The report's provenance table: where the data came from, for which project, ledgers and period, and its
    fingerprint."""
    names = _names(selected)
    name, project_id = getattr(project, "name", None), getattr(project, "id", None)
    read = f"{len(batches)} in {period.label}, {len(before)} in {previous.label}"
    if year_ago is not None and year_ago_batches is not None:
        read += f", {len(year_ago_batches)} in {year_ago.label}"
    rows = [
        ("API base URL", base_url),
        ("Project", f"{name} ({project_id})" if project_id is not None else "not named"),
        ("Ledgers", "; ".join(f"{names[i]} ({i})" for i in names)),
        ("Period", str(period)),
        ("Compared with", str(previous) + (f"; {year_ago}" if year_ago is not None else "")),
        ("Generated at (UTC)", generated_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")),
        ("mangrove_nb version", version),
        ("Batches read", read),
    ]
    if calculations is not None:
        batches_read = _plural(calculations["batch_id"].nunique(), "batch")
        rows.append(("Calculations read", f"{len(calculations)}, of {batches_read}"))
    rows.append(("Data fingerprint (SHA-256)", digest))
    frame = pd.DataFrame(rows, columns=["Field", "Value"]).astype("string")
    return Table(frame, header=False, title="Provenance",
                 note="The fingerprint hashes the batches' ids, states, values, timestamps and skipped inputs for the "
                      "three quarters, and the calculations shown: the same data gives the same fingerprint.")


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
