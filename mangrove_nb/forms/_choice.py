"""What the generation form generates: a ledger (its model and required inputs), a period, and for a
manual-select input the data points to use, each control saying what it needs."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..api import Client
from ..errors import MangroveError, PreconditionError
from ..frames import can_generate, ledger_names, with_model
from ..periods import Period, PeriodLike
from ._base import DataYears, ledger_label, resolve_ledger
from ._html import esc, html_table, number, plural, status_html
from .missing_input import Dropped
from .period_picker import PeriodPicker


class LedgerChoice:
    """The ledger, period and data-point controls of a ``GenerationForm``, and what they load.

    Widgets: ``ledger`` (a Dropdown of every listed ledger), ``period_picker``, ``model_html``, ``inputs_html``
    and, shown for a manual-select input only, ``candidates_box`` (``candidates_html`` and ``candidates``, the
    complete upstream batches with balance left). Data: ``ledgers``, ``required`` (the chosen ledger's
    required inputs; None without a model) and ``candidate_frame``. The form owns the events and the state.
    """

    def __init__(self, client: Client, ledger: str | None, period: PeriodLike | None, *,
                 project_id: int | str | None, style: dict[str, str]) -> None:
        import ipywidgets as w

        self.client = client
        self.required: pd.DataFrame | None = None
        self.candidate_frame: pd.DataFrame | None = None
        self.ledgers = client.ledgers()
        chosen = resolve_ledger(client, self.ledgers, ledger) if ledger is not None else self._first_with_model()
        self._years = DataYears(client, project_id)
        self.ledger = w.Dropdown(options=[(ledger_label(r), r.id) for r in self.ledgers.itertuples()],
                                 value=chosen, description="Ledger", style=style, layout=w.Layout(width="620px"))
        self.period_picker = PeriodPicker(period, years=self._years.of([chosen]))
        self.model_html = w.HTML()
        self.inputs_html = w.HTML()
        self.candidates = w.SelectMultiple(options=[], rows=6, description="Data points", style=style,
                                           layout=w.Layout(width="620px"))
        self.candidates_html = w.HTML()
        self.candidates_box = w.VBox([self.candidates_html, self.candidates])

    @property
    def disabled(self) -> bool:
        return bool(self.ledger.disabled)

    @disabled.setter
    def disabled(self, value: bool) -> None:
        self.ledger.disabled = value
        self.period_picker.disabled = value
        self.candidates.disabled = value

    def selection(self) -> tuple[str, Period, tuple[str, ...]]:
        """The chosen ledger id, period (or ``PeriodError``) and data points (sorted)."""
        return self.ledger.value, self.period_picker.period, tuple(sorted(self.candidates.value))

    def row(self, ledger_id: str | None = None) -> Any:
        """The ledgers-frame row of ``ledger_id`` (default: the chosen ledger)."""
        wanted = self.ledger.value if ledger_id is None else ledger_id
        return next(r for r in self.ledgers.itertuples() if r.id == wanted)

    def manual_inputs(self) -> pd.DataFrame:
        """The chosen ledger's manual-select inputs (their data points are chosen by hand)."""
        if self.required is None:
            return pd.DataFrame({"name": pd.Series([], dtype="string"),
                                 "output_of_ledgers": pd.Series([], dtype="string")})
        return self.required[self.required["is_manual_select"].fillna(False).astype(bool)]

    def check_can_generate(self, ledger_id: str, points: tuple[str, ...]) -> None:
        """``PreconditionError`` when the ledger has no model, or manual-select inputs and no data point chosen."""
        row = self.row(ledger_id)
        if not can_generate(row):
            raise PreconditionError(no_model_message(row))
        manual = self.manual_inputs()
        if not manual.empty and not points:
            label = self.period_picker.value.argument if self.period_picker.value else "PERIOD"
            raise PreconditionError(
                f"'{row.name}' has manual-select input(s) {', '.join(manual['name'].astype(str))}: choose at least "
                "one data point in the list (the candidates are the complete upstream batches of the period with "
                f"balance left: client.candidates({ledger_id!r}, {label})).")

    def nothing_to_generate(self, ledger_id: str, period: Period) -> str:
        """Why a preview counts 0: no whole month in the range, batches already there, or no data."""
        name = ledger_names(self.ledgers).get(ledger_id, ledger_id)
        if not [m for m in period.months() if m.kind == "month"]:
            return (f"Nothing to generate: {period} holds no whole calendar month, and Mangrove makes monthly "
                    "batches of the months a range covers completely. Choose a range that covers at least one "
                    "whole month.")
        try:
            existing = self.client.batches(ledger_id, period)
        except MangroveError:
            existing = None
        if existing is not None and len(existing):
            months = sorted({f"{t:%Y-%m}" for t in existing["start_time"].dropna()})
            failed = int((existing["state"] == "failed").sum())
            delete = (f" {plural(failed, 'batch')} of them failed: delete them (BatchExplorer's Delete failed "
                      "batch, or client.delete_batch(id)) to generate them again." if failed else "")
            return (f"Nothing to generate on {name} for {period.label}: it already has "
                    f"{plural(len(existing), 'batch')} ({', '.join(months)}), and every partition with data has "
                    f"one.{delete}")
        return (f"Nothing to generate on {name} for {period.label}: the preview counts 0 batches on every ledger "
                "(no data for this period, or every partition with data already has a batch).")

    def load_ledger(self) -> None:
        """Model, required inputs, candidates and the years with data of the chosen ledger."""
        row = self.row()
        if not can_generate(row):
            self.required = None
            self.model_html.value = status_html("warn", no_model_message(row))
            self.inputs_html.value = ""
        else:
            self.model_html.value = f"Model: <b>{esc(row.model_name)}</b>"
            self.required = self.client.required_inputs(row.id)
            self.inputs_html.value = inputs_table(self.required)
        # A manual-select input's data are the upstream ledgers' batches: their years count too.
        upstream = [i for text in self.manual_inputs()["output_of_ledgers"] for i in _upstream_ids(text)]
        self.period_picker.set_years(self._years.of([row.id, *upstream]))
        self.load_candidates()

    def load_candidates(self) -> None:
        """The data points a manual-select input can use in the chosen period (the box is hidden without one)."""
        manual = self.manual_inputs()
        if manual.empty:
            self.candidate_frame = None
            self._set_candidates([], ())
            self.candidates_box.layout.display = "none"
            return
        self.candidates_box.layout.display = ""
        period = self.period_picker.value
        names = ", ".join(manual["name"].astype(str))
        ledger_id = self.ledger.value
        if period is None:
            self.candidate_frame = None
            self._set_candidates([], ())
            self.candidates_html.value = (f"Choose a valid period to list the data points for {esc(names)} "
                                          f"(client.candidates({esc(repr(ledger_id))}, period)).")
            return
        frame = self.client.candidates(ledger_id, period)
        self.candidate_frame = frame
        usable = set(frame["output_data_point_id"].dropna())
        kept = tuple(value for value in self.candidates.value if value in usable)
        self._set_candidates([(candidate_label(r), r.output_data_point_id) for r in frame.itertuples()], kept)
        call = f"client.candidates({ledger_id!r}, {period.argument})"
        if frame.empty:
            upstream = [n for text in manual["output_of_ledgers"] for n in _upstream_names(text)]
            upstream = upstream or ["the upstream ledger"]
            first = " or ".join(dict.fromkeys(upstream))
            self.candidates_html.value = status_html(
                "warn", f"No batch of {first} with balance left in {period.label} to use for {names}: generate "
                        f"{first} for {period.label} first (a GenerationForm on {first!r}), or choose another "
                        f"period. {call} lists what can be used.")
            return
        self.candidates_html.value = (
            f'<span style="background:#fff3c4;padding:2px 6px">Input <b>{esc(names)}</b> is chosen by hand: pick the '
            f"data points to use ({len(frame)} complete upstream batch(es) with balance left in {esc(period.label)}, "
            f"as listed by <code>{esc(call)}</code>; ctrl/shift-click for several).</span>")

    def _set_candidates(self, options: list[tuple[str, Any]], value: tuple[Any, ...]) -> None:
        """New options and selection in one message, so the browser never selects a row that no longer exists."""
        with self.candidates.hold_sync():
            if self.candidates.value:
                self.candidates.value = ()
            self.candidates.options = options
            self.candidates.value = value

    def _first_with_model(self) -> str:
        modelled = self.ledgers.loc[with_model(self.ledgers), "id"]
        if len(modelled):
            return str(modelled.iloc[0])
        if len(self.ledgers):
            return str(self.ledgers["id"].iloc[0])
        raise PreconditionError("The API lists no ledgers: create one in Mangrove first.")


def question(preview: pd.DataFrame, period: Period, points: tuple[str, ...], dropped: Dropped | None) -> str:
    """What Confirm will create, as the form asks it: what the ``preview`` counted, for ``period``, using
    ``points`` and, with ``dropped``, leaving its skip's inputs out (and what that drops)."""
    parts = [(int(r.count), str(r.ledger_name)) for r in preview.itertuples() if r.count]
    what = " and ".join(f"{plural(n, 'batch')} on {name}" if i == 0 else f"{n} on {name}"
                        for i, (n, name) in enumerate(parts))
    using = f" using {plural(len(points), 'selected data point')}" if points else ""
    if dropped is None:
        return f"Create {what} for {period.label}{using}?"
    return (f"Create {what} for {period.label}{using} without {dropped.skip.quoted}? This "
            f"{dropped.consequence()}.")


def no_model_message(row: Any) -> str:
    return (f"'{row.name}' has no model linked (latest_model is null), so batches cannot be generated on it. "
            "Link a model to the ledger in Mangrove first; its batches can still be explored with "
            "BatchExplorer.")


def inputs_table(required: pd.DataFrame) -> str:
    """The required inputs, manual-select ones highlighted."""
    if required.empty:
        return "<i>The model lists no required inputs.</i>"
    manual = required["is_manual_select"].fillna(False).astype(bool).tolist()
    rows = [(r.name, r.unit, r.category, "manual select: choose data points" if m else "automatic",
             r.output_of_ledgers or "") for r, m in zip(required.itertuples(), manual, strict=True)]
    return ("<b>Required inputs</b>" +
            html_table(["Input", "Unit", "Category", "Selection", "From ledger"], rows,
                       row_classes=["mnb-manual" if m else "" for m in manual]))


def candidate_label(row: Any) -> str:
    month = f"{row.start_time:%Y-%m}" if not pd.isna(row.start_time) else "?"
    unit = row.output_unit if isinstance(row.output_unit, str) else ""
    left = row.ledger_balance if not pd.isna(row.ledger_balance) else row.output_value
    return f"{row.tracking_id} · {month} · {number(left)} {unit} left".strip()


def _upstream_names(text: Any) -> list[str]:
    """Ledger names in an ``output_of_ledgers`` cell (``"Biochar Produced (lgr_x), …"``)."""
    if not isinstance(text, str):
        return []
    return [part.rsplit(" (", 1)[0].strip() for part in text.split(", ") if part.strip()]


def _upstream_ids(text: Any) -> list[str]:
    """Ledger ids in an ``output_of_ledgers`` cell (``"Biochar Produced (lgr_x), …"``)."""
    if not isinstance(text, str):
        return []
    return [part.rsplit("(", 1)[1].rstrip(")").strip() for part in text.split(", ") if "(" in part]
