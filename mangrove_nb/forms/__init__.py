"""Notebook forms: preview and generate batches, and explore them, with clicks instead of code.

    form = mnb.GenerationForm(client, "Net Carbon Removal", "2025Q1")
    form                                  # one output: the widgets live, a static copy when saved
    form.preview(); form.generate(); form.confirm(); form.wait()    # the same, from code

    mnb.BatchExplorer(client, ["Net Carbon Removal", "Biochar Produced"], "2024")
    mnb.ReportForm(client, "2025Q1 Quarterly Report", "2025Q1")     # plan, fill, submit a registry report

The widgets are thin shells over the client's plain functions (``Client.preview``, ``Client.generate``,
``Client.batches``...): every button has a method of the same job, and the outcome is kept on the form
(``result``, ``error``, ``task``). A button callback never swallows an exception: it shows it in the form,
keeps it in ``form.error`` and logs it; a method called from code raises it.

One output per form: displaying a form publishes a single display whose bundle holds the widget view
(``application/vnd.jupyter.widget-view+json``) and a static HTML copy of the outcome (``text/html``:
escaped tables, the plot as a PNG data URI, the status). A live front end shows the widgets only; a saved
notebook rendered without a kernel or widget state (nbconvert, nbviewer) shows the static copy. The display
is updated after each outcome. No widget holds the client or its token; every string that came from the
API is escaped (``html.escape``) before it reaches HTML.

The modules: ``generation`` (``GenerationForm``; ``_outcomes`` how a run ends, ``_choice`` the ledger, period
and data points), ``explorer`` (``BatchExplorer``, CSV export), ``report`` (``ReportForm``: a registry report
planned, filled and submitted once; ``_report_outcomes`` how a submission ends, ``_report_html`` its plan,
question and outcome), ``period_picker``, ``missing_input`` (inputs left out), ``_sending`` (what both forms
that send once share: ``FormState``, confirm → send once → wait through ``Task.wait()`` with the form's
progress bar → outcome, Reconcile after a lost answer), ``_base`` (what every form shares: the one display,
callbacks, status, ledgers, plots) and ``_html`` (escaping, tables, status lines, the static copy's frame).
ipywidgets and matplotlib are imported only when a form is built or draws, never by ``import mangrove_nb``.
"""

from __future__ import annotations

from ._base import plot_png as plot_png
from ._html import batches_table as batches_table
from ._html import html_table as html_table
from ._sending import FormState as FormState
from .explorer import BatchExplorer
from .explorer import spreadsheet_safe as spreadsheet_safe
from .generation import GenerationForm
from .missing_input import MissingInput as MissingInput
from .missing_input import find_missing_input as find_missing_input
from .missing_input import skip_note as skip_note
from .missing_input import with_skip_notes as with_skip_notes
from .period_picker import PeriodPicker
from .period_picker import default_period as default_period
from .report import ReportForm as ReportForm

__all__ = ["BatchExplorer", "GenerationForm", "PeriodPicker"]
