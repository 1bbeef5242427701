"""The batch explorer: one or more ledgers and a period -> their batches, totals per ledger and a plot,
refreshed on change, with CSV export and the deletion of a failed batch (after a confirmation)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..api import Client
from ..errors import PreconditionError, ValidationError
from ..frames import with_model
from ..periods import Period, PeriodLike
from ._base import DataYears, FormBase, ledger_label, plot_png, resolve_ledger
from ._html import esc, html_table, number, plural, png_data_uri, span, status_html
from .missing_input import with_skip_notes
from .period_picker import PeriodPicker

# Cells a spreadsheet would read as a formula (OWASP's CSV-injection list): they get a leading apostrophe.
# A formula character counts after leading whitespace too (spreadsheets skip it: " =1" is a formula).
_FORMULA_START = ("=", "+", "-", "@")
_CONTROL_START = ("\t", "\r")


def _formula_like(value: str) -> bool:
    """Whether a spreadsheet could read ``value`` as a formula: a tab or CR first, or a formula character
    first once leading whitespace is stripped."""
    return value.startswith(_CONTROL_START) or value.lstrip().startswith(_FORMULA_START)


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every text cell that starts like a formula prefixed with ``'`` (numbers are untouched).

    API text (tracking ids, names, error messages) is untrusted: ``=HYPERLINK(...)`` in a CSV opened in a
    spreadsheet would run as a formula, and so would `` =HYPERLINK(...)`` or ``"\t=1"`` (leading whitespace
    does not stop it). Negative numbers stay numbers: only text columns are changed.
    """
    out = frame.copy()
    for column in out.columns:
        series = out[column]
        if not (pd.api.types.is_string_dtype(series) or series.dtype == object):
            continue
        text = series.map(lambda v: "'" + v if isinstance(v, str) and _formula_like(v) else v)
        out[column] = text.astype(series.dtype) if series.dtype != object else text
    return out


class BatchExplorer(FormBase):
    """One or more ledgers and a period -> their batches, totals per ledger and a plot, refreshed on change.

    Controls: ``ledgers`` (SelectMultiple), ``period_picker``, ``refresh_button``, ``export_button``, and for
    failed batches ``failed`` (a Dropdown), ``delete_button``, ``delete_confirm_button``,
    ``delete_cancel_button``; ``widget`` is the whole box. Outcome: ``frame``
    (``client.batches(ids, period, details=True)`` plus a ``note`` on batches generated without an input),
    ``totals``, ``error``, ``deleted``, ``static_html``. ``refresh()``, ``export_csv(path=None)``,
    ``delete_failed_batch(batch_id=None)`` (asks), ``confirm_delete()`` and ``cancel_delete()`` do what the
    buttons do.
    """

    _kind = "Batch explorer"

    def __init__(self, client: Client, ledgers: str | Sequence[str] | None = None,
                 period: PeriodLike | None = None, *, project_id: int | str | None = None) -> None:
        import ipywidgets as w

        super().__init__(client, client.ledgers())
        #: The ledgers the API lists (``client.ledgers()``); ``ledgers`` is the widget that chooses among them.
        self.ledger_frame = self._ledger_frame
        self.frame: pd.DataFrame | None = None
        self.totals: pd.DataFrame | None = None
        self.exported: Path | None = None
        #: Batches deleted from this explorer: id, tracking id, ledger, period (newest last).
        self.deleted: list[dict[str, str]] = []
        self._delete_pending: str | None = None
        if ledgers is None:
            chosen = self.ledger_frame.loc[with_model(self.ledger_frame), "id"].tolist()
        else:
            wanted = [ledgers] if isinstance(ledgers, str) else list(ledgers)
            chosen = [resolve_ledger(client, self.ledger_frame, one) for one in wanted]
        self._years = DataYears(client, project_id)
        style = {"description_width": "70px"}
        self.ledgers = w.SelectMultiple(options=[(ledger_label(r), r.id) for r in self.ledger_frame.itertuples()],
                                        value=tuple(chosen), rows=min(6, max(2, len(self.ledger_frame))),
                                        description="Ledgers", style=style, layout=w.Layout(width="620px"))
        self.period_picker = PeriodPicker(period, years=self._years.of(chosen))
        self.refresh_button = w.Button(description="Refresh", icon="refresh")
        self.export_button = w.Button(description="Export CSV", icon="download",
                                      tooltip="Write batches_<period>.csv in the working directory")
        self.export_html = w.HTML()
        self.status = w.HTML()
        self.totals_html = w.HTML()
        self.table_html = w.HTML()
        self.plot = w.Image(format="png", layout=w.Layout(max_width="900px"))
        self.failed = w.Dropdown(options=[], description="Failed", style=style, layout=w.Layout(width="520px"))
        self.delete_button = w.Button(description="Delete failed batch…", icon="trash", layout=w.Layout(width="auto"),
                                      tooltip="Asks first; a deleted batch's period can be generated again")
        self.delete_html = w.HTML()
        self.delete_confirm_button = w.Button(description="Delete it", button_style="danger", icon="trash")
        self.delete_cancel_button = w.Button(description="Keep it", icon="times")
        self.delete_confirm_box = w.HBox([self.delete_confirm_button, self.delete_cancel_button])
        self.delete_box = w.VBox([w.HBox([self.failed, self.delete_button]), self.delete_html,
                                  self.delete_confirm_box])
        self.widget = w.VBox([
            w.HTML("<b>Batches</b>"), self.ledgers, self.period_picker.widget,
            w.HBox([self.refresh_button, self.export_button, self.export_html]), self.status, self.totals_html,
            self.plot, self.table_html, self.delete_box,
        ])
        self.refresh_button.on_click(self._callback(self.refresh))
        self.export_button.on_click(self._callback(self.export_csv))
        self.delete_button.on_click(self._callback(self.delete_failed_batch))
        self.delete_confirm_button.on_click(self._callback(self._confirm_delete_clicked))
        self.delete_cancel_button.on_click(self._callback(self.cancel_delete))
        self.ledgers.observe(self._callback(self._ledgers_changed), "value")
        self.period_picker.on_change(self._callback(self.refresh))
        self.refresh()

    def refresh(self) -> pd.DataFrame:
        """Fetch the chosen ledgers' batches in the period, and redraw the totals, the plot and the table."""
        ids = list(self.ledgers.value)
        period = self.period_picker.period
        frame = self.client.batches(ids, period, details=True) if ids else self._empty()
        frame = with_skip_notes(self.client, frame, details=frame)
        png = plot_png(frame, period=period, title=f"Batches, {period.label}", labels=self._names())
        with self._lock:
            self.frame, self.error, self._delete_pending = frame, None, None
            self.totals = self._totals(frame, ids)
            self.totals_html.value = "<b>Totals</b>" + self._totals_table(self.totals)
            self.table_html.value = f"<b>Batches ({len(frame)})</b>" + self._batches_table(frame)
            self.plot.value = png
            self._plot_uri = png_data_uri(png)
            flagged = int(frame["note"].notna().sum())
            if not ids:
                self._set_status("warn", "Choose at least one ledger.")
            elif frame.empty:
                self._set_status("warn", f"No batches in {period} on the chosen ledger(s).")
            else:
                text = f"{plural(len(frame), 'batch')} in {period} on {plural(len(ids), 'ledger')}."
                if flagged:
                    text += (f"\n{plural(flagged, 'batch')} generated without an input (counted as zero): see the "
                             "Note column; the totals include them.")
                self._set_status("warn" if flagged else "ok", text)
            self._show_failed()
            self._publish_static()
        return frame

    def export_csv(self, path: str | Path | None = None) -> Path:
        """Write the batches shown (with ``ledger_name``, ``skipped_inputs`` and ``note``) to CSV; default
        ``batches_<period>.csv``."""
        if self.frame is None:
            raise PreconditionError("Nothing to export yet: refresh() first.")
        period = self.period_picker.period
        target = Path(path) if path is not None else Path.cwd() / f"batches_{_file_label(period)}.csv"
        if target.is_dir():
            raise ValidationError(f"export_csv: {target} is a folder; give a file name such as "
                                  f"{target / f'batches_{_file_label(period)}.csv'}.", argument="path")
        if not target.parent.is_dir():
            raise ValidationError(f"export_csv: the folder {target.parent} does not exist; create it first "
                                  "(Path(...).mkdir(parents=True)) or choose another path.", argument="path")
        out = self.frame.copy()
        out["ledger_name"] = out["ledger_name"].fillna(out["ledger_id"].map(self._names()).astype("string"))
        spreadsheet_safe(out).to_csv(target, index=False)
        self.exported = target.resolve()
        self.export_html.value = f"Wrote <code>{esc(self.exported)}</code>"
        self._publish_static()
        return self.exported

    def delete_failed_batch(self, batch_id: str | None = None) -> str:
        """Ask to delete a failed batch (default: the one chosen in the list); returns the question.

        Only batches shown as ``failed`` can be deleted here; ``confirm_delete()`` deletes it.
        """
        with self._lock:
            chosen = batch_id if batch_id is not None else self.failed.value
            frame = self.frame if self.frame is not None else self._empty()
            rows = frame[(frame["id"] == chosen) & (frame["state"] == "failed")] if chosen else frame.iloc[0:0]
            if rows.empty:
                raise PreconditionError("Choose a failed batch of the batches shown: only failed batches can be "
                                        "deleted here (their periods can then be generated again).")
            row = rows.iloc[0]
            self._delete_pending = str(row["id"])
            question = (f"Delete the failed batch {row['tracking_id']} ({self._describe(row)})? This cannot be "
                        "undone; its period can then be generated again.")
            self.delete_html.value = f'<div style="font-weight:600">{esc(question)}</div>'
            self._show_failed()
        return question

    def confirm_delete(self) -> str:
        """Delete the batch asked about (``client.delete_batch``), after checking it is still failed; then refresh."""
        with self._lock:
            batch_id, self._delete_pending = self._delete_pending, None
            if batch_id is None:
                raise PreconditionError("Nothing to delete: choose a failed batch, Delete failed batch…, then "
                                        "Delete it.")
            assert self.frame is not None
            row = self.frame[self.frame["id"] == batch_id].iloc[0]
            self._show_failed()
        ledger_id = str(row["ledger_id"])
        still = self.client.batches(ledger_id, state="failed")
        if batch_id not in set(still["id"]):
            self.refresh()
            raise PreconditionError(f"{row['tracking_id']} is no longer a failed batch on the server (regenerated "
                                    "or deleted meanwhile): nothing was deleted.")
        self.client.delete_batch(batch_id)
        with self._lock:
            self.deleted.append({"id": batch_id, "tracking_id": str(row["tracking_id"]), "ledger_id": ledger_id,
                                 "period": span(row["start_time"], row["end_time"])})
        self.refresh()
        name = self._names().get(ledger_id, ledger_id)
        month = span(row["start_time"], row["end_time"])
        with self._lock:
            self._set_status("ok", f"Deleted the failed batch {row['tracking_id']} ({self._describe(row)}). Fix its "
                                   f"data, then generate {month} again: GenerationForm(client, {name!r}, "
                                   f"{month!r}), or client.generate({name!r}, {month!r}).")
            self._publish_static()
        return batch_id

    def cancel_delete(self) -> None:
        """Withdraw the delete question; nothing is deleted."""
        with self._lock:
            if self._delete_pending is None:
                return
            self._delete_pending = None
            self._set_status("info", "Nothing was deleted.")
            self._show_failed()

    # -- helpers -----------------------------------------------------------------------------------------------

    def _confirm_delete_clicked(self) -> None:
        """The Delete button: a second click (nothing pending any more) does nothing."""
        if self._delete_pending is not None:
            self.confirm_delete()

    def _ledgers_changed(self) -> None:
        self.period_picker.set_years(self._years.of(self.ledgers.value))
        self.refresh()

    def _show_failed(self) -> None:
        frame = self.frame if self.frame is not None else self._empty()
        failed = frame[frame["state"] == "failed"]
        options = [(f"{r.tracking_id} · {self._describe(r._asdict())}", r.id) for r in failed.itertuples()]
        ids = [value for _, value in options]
        if [value for _, value in self.failed.options] != ids:
            with self.failed.hold_sync():
                keep = self.failed.value
                self.failed.options = options
                self.failed.value = keep if keep in ids else (ids[0] if ids else None)
        self.delete_box.layout.display = "" if options else "none"
        pending = self._delete_pending is not None
        self.delete_confirm_box.layout.display = "" if pending else "none"
        self.delete_html.layout.display = "" if pending else "none"
        self.delete_button.disabled = pending or not options
        self.failed.disabled = pending

    def _describe(self, row: Any) -> str:
        ledger = row["ledger_name"] if isinstance(row["ledger_name"], str) else self._names().get(
            str(row["ledger_id"]), str(row["ledger_id"]))
        return f"{ledger}, {span(row['start_time'], row['end_time'])}"

    @staticmethod
    def _empty() -> pd.DataFrame:
        from ..frames import BATCHES_SCHEMA, empty_frame

        frame = empty_frame(BATCHES_SCHEMA)
        for column in ("skipped_inputs", "skipped_input_ids", "upstream_batches"):
            frame[column] = pd.Series([], dtype="string")
        return frame

    def _totals(self, frame: pd.DataFrame, ids: list[str]) -> pd.DataFrame:
        """Per ledger: batches, complete, failed, those generated without an input, and the total output of the
        complete ones, with its unit."""
        rows = []
        for lid in ids:
            row = next(r for r in self.ledger_frame.itertuples() if r.id == lid)
            mine = frame[frame["ledger_id"] == lid]
            complete = mine[mine["state"] == "complete"]
            units = complete["output_unit"].dropna().unique().tolist()
            rows.append({"ledger_id": lid, "ledger_name": row.name,
                         "unit": units[0] if len(units) == 1 else row.unit,
                         "batches": len(mine), "complete": len(complete),
                         "failed": int((mine["state"] == "failed").sum()),
                         "without_input": int(mine["note"].notna().sum()) if "note" in mine.columns else 0,
                         "total": float(complete["output_value"].sum()) if len(complete) else 0.0})
        schema = {"ledger_id": "string", "ledger_name": "string", "unit": "string", "batches": "Int64",
                  "complete": "Int64", "failed": "Int64", "without_input": "Int64", "total": "Float64"}
        return pd.DataFrame(rows, columns=list(schema)).astype(schema)

    @staticmethod
    def _totals_table(totals: pd.DataFrame) -> str:
        rows = [(r.ledger_name, r.batches, r.complete, r.failed, r.without_input, number(r.total), r.unit)
                for r in totals.itertuples()]
        return html_table(["Ledger", "Batches", "Complete", "Failed", "Without an input", "Total output", "Unit"],
                          rows, numeric=[1, 2, 3, 4, 5])

    def _publish_static(self) -> None:
        period = self.period_picker.value
        chosen = [self._names().get(i, i) for i in self.ledgers.value]
        kind, text = self._status
        parts = [f"<h3>Batches: {esc(', '.join(chosen) or 'no ledger')}</h3>",
                 f'<p class="mnb-meta">Period: {esc(period) if period else "—"}</p>', status_html(kind, text)]
        if self.totals is not None and len(self.totals):
            parts.append("<h4>Totals</h4>" + self._totals_table(self.totals))
        if self._plot_uri and self.frame is not None:
            parts.append(f'<img alt="Batches plot" src="{self._plot_uri}">')
        if self.frame is not None and len(self.frame):
            parts.append(f"<h4>Batches ({len(self.frame)})</h4>" + self._batches_table(self.frame))
        if self.deleted:
            done = ", ".join(f"{d['tracking_id']} ({d['period']})" for d in self.deleted)
            parts.append(f'<p class="mnb-meta">Deleted here: {esc(done)}</p>')
        if self.exported is not None:
            parts.append(f'<p class="mnb-meta">Exported to <code>{esc(self.exported)}</code></p>')
        self._publish("".join(parts))


def _file_label(period: Period) -> str:
    """A period label fit for a file name: ``2025Q1``, ``2025-02``, ``2025-01-10_to_2025-02-20``."""
    return re.sub(r"[^0-9A-Za-z_-]+", "_", period.label.replace("/", "_to_")).strip("_")
