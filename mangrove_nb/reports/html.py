"""The report as one self-contained HTML page: code hidden, images inline as ``data:`` URIs, and no ``<script>`` at
all (no require.js, MathJax, Mermaid or widget manager, nothing fetched from a CDN, no kernel needed).

The page carries its own print rules (``@page``, ``@media print``), which the PDF (``pdf``) is printed with and a
browser's Print uses too: A4 with margins, no table row, figure or output cut across pages, table headers repeated
on every page a table spans, a heading kept with what follows it.

nbconvert is imported inside the functions that need it, and made ready in a thread while the kernel works.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._text import _one_line

if TYPE_CHECKING:
    from nbformat import NotebookNode

    from mangrove_nb import Period

_STYLE = re.compile(r"<style[^>]*>.*?</style>", re.DOTALL | re.IGNORECASE)
_CSS_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)

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
@page { size: A4; margin: 14mm 12mm 16mm; }
@media print {
  html, body { background: #fff; -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  main { max-width: none; padding: 0; }
  .jp-RenderedHTMLCommon { font-size: 10pt; }
  .mangrove-wrap { overflow: visible; }
  .jp-RenderedHTMLCommon table.mangrove-table { font-size: 8.5pt; width: 100%; }
  .jp-RenderedHTMLCommon table.mangrove-table thead { display: table-header-group; }
  .jp-RenderedHTMLCommon table.mangrove-table td { overflow-wrap: anywhere; }
  .jp-RenderedHTMLCommon table.mangrove-table tr, .jp-RenderedImage, .jp-RenderedImage img, .jp-OutputArea-child,
  .mangrove-header, .jp-RenderedHTMLCommon li { break-inside: avoid; page-break-inside: avoid; }
  .jp-RenderedHTMLCommon h2, .jp-RenderedHTMLCommon h4.mangrove-table-title, .jp-MarkdownCell {
    break-after: avoid; page-break-after: avoid; }
  .jp-RenderedImage img { max-height: 230mm; }
}
</style>
{%- endblock extra_css -%}
{% block data_png scoped %}
<div class="jp-RenderedImage jp-OutputArea-output {{ extra_class }}">
<img alt="{{ output.metadata.get('mangrove_nb', {}).get('alt', 'Figure') | escape_html }}"
src="data:image/png;base64,{{ output.data['image/png'] | escape_html }}">
</div>
{%- endblock data_png %}
"""


def _html_title(facts: Mapping[str, Any], period: Period) -> str:
    """The page's title: the project's name (when the report knows it) and the quarter (or year)."""
    about = facts.get("project")
    name = about.get("name") if isinstance(about, Mapping) else None
    title = f"{'Annual' if period.kind == 'year' else 'Quarterly'} report {period.label}"
    return f"{_one_line(name, 120)}: {title}" if isinstance(name, str) and name.strip() else title


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
