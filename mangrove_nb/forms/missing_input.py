"""Inputs left out: batches generated without an input, and a generation that failed on one month's missing
reading (what the form then offers, and how it says so).

The API applies ``skipped_data_point_type_ids`` to every month of a request, so the form only ever offers a
skip for the one month the server's message names, then the rest of the period without skipping.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..api import Client
from ..errors import MangroveError, secret_safe_logger
from ..periods import Period, PeriodLike

log = secret_safe_logger(__name__)


def skip_note(inputs: str, emissions: bool) -> str:
    """The flag of a batch generated without ``inputs``: what that means for its figure."""
    return (f"generated without {inputs}: its emissions are not counted" if emissions
            else f"generated without {inputs}: counted as zero")


def with_skip_notes(client: Client, frame: pd.DataFrame, *, details: pd.DataFrame | None = None,
                    period: PeriodLike | None = None) -> pd.DataFrame:
    """``frame`` with ``skipped_inputs``, ``skipped_input_ids`` and ``note`` columns (NA when nothing was skipped).

    The skipped inputs come from ``client.batches(..., details=True)`` (``details`` when the caller already
    has them, else read for the frame's ledgers and ``period``). A batch whose LCA breakdown shows a skipped
    input as an emission counted as zero gets "its emissions are not counted" (``client.calculations``).
    """
    out = frame.copy()
    if details is None:
        ledgers = sorted({str(i) for i in frame["ledger_id"].dropna()})
        details = client.batches(ledgers, period, details=True) if ledgers else None
    for column in ("skipped_inputs", "skipped_input_ids"):
        if details is not None and column in details.columns:
            out[column] = out["id"].map(dict(zip(details["id"], details[column], strict=True))).astype("string")
        elif column not in out.columns:
            out[column] = pd.Series(pd.NA, index=out.index, dtype="string")
    out["note"] = pd.Series(pd.NA, index=out.index, dtype="string")
    flagged = out[out["skipped_inputs"].notna()]
    if flagged.empty:
        return out
    try:
        calcs = client.calculations(flagged["id"].tolist())
        emitting = set(calcs.loc[calcs["note"].notna() & (calcs["lca_role"] == "emission"), "batch_id"].astype(str))
    except MangroveError as exc:  # the flag stays; only its wording is less specific
        log.warning("Could not read the LCA breakdown of batches generated without an input: %s", exc)
        emitting = set()
    for index, row in flagged.iterrows():
        out.loc[index, "note"] = skip_note(str(row["skipped_inputs"]), str(row["id"]) in emitting)
    return out


@dataclass(frozen=True)
class MissingInput:
    """A generation failed because one month lacks a reading of an (automatic) input.

    ``period`` is what the failed generation was asked for; ``month`` the one month that lacks the reading;
    ``type_ids`` and ``names`` the inputs to leave out in that month (several when, that month generated without
    one, it then failed on another).
    """

    ledger_id: str
    type_ids: tuple[int, ...]
    names: tuple[str, ...]
    month: Period
    period: Period

    @property
    def name(self) -> str:
        """The inputs, for a sentence: ``Electricity Consumption`` or ``A and B``."""
        return " and ".join(self.names)

    @property
    def quoted(self) -> str:
        return " and ".join(f"'{n}'" for n in self.names)

    def also(self, other: MissingInput) -> MissingInput:
        """This month without ``other``'s inputs as well; the period stays this one's (its rest is offered next)."""
        ids = dict.fromkeys([*self.type_ids, *other.type_ids])
        names = dict.fromkeys([*self.names, *other.names])
        return MissingInput(self.ledger_id, tuple(ids), tuple(names), self.month, self.period)

    @property
    def rest(self) -> Period | None:
        """What is left to generate after the month: the failed period (the preview counts only what is missing)."""
        return self.period if self.period != self.month else None


def find_missing_input(message: str | None, ledger_id: str, period: Period,
                       required: pd.DataFrame | None) -> MissingInput | None:
    """The input and month a failure message names, when it names exactly one of each inside ``period``.

    The input is matched by its name or slug among the ledger's automatic required inputs (manual-select
    inputs cannot be skipped); the month is a ``YYYY-MM`` the period covers whole. Anything less certain is
    None: the form then offers nothing but the server's message.
    """
    if not message or required is None or required.empty:
        return None
    months = {m.label: m for m in period.months() if m.kind == "month"}
    named_months = [months[label] for label in dict.fromkeys(re.findall(r"\b(\d{4}-\d{2})\b", message))
                    if label in months]
    if len(named_months) != 1:
        return None
    automatic = required[~required["is_manual_select"].fillna(False).astype(bool)]

    def named(quoted: bool) -> list[Any]:
        found = []
        for row in automatic.itertuples():
            texts = [t for t in (row.name, row.slug) if isinstance(t, str) and t]
            if quoted:
                hit = any(f"'{t}'" in message or f'"{t}"' in message or f"({t})" in message for t in texts)
            else:
                hit = any(re.search(rf"(?<![\w-]){re.escape(t)}(?![\w-])", message) for t in texts)
            if hit:
                found.append(row)
        return found

    rows = named(quoted=True) or named(quoted=False)
    if len(rows) != 1 or pd.isna(rows[0].id):
        return None
    return MissingInput(ledger_id, (int(rows[0].id),), (str(rows[0].name),), named_months[0], period)


def offer_after(message: str | None, ledger_id: str, period: Period, required: pd.DataFrame | None,
                skipped: MissingInput | None) -> MissingInput | None:
    """What to offer after a generation of ``period`` (leaving ``skipped`` out, if anything) failed with the
    server's ``message``: that month without the input it names, or None.

    A month generated without an input that then fails on another is offered without both (never what it
    already left out again, and never another month).
    """
    offer = find_missing_input(message, ledger_id, period, required)
    if offer is None or skipped is None:
        return offer
    new = set(offer.type_ids) - set(skipped.type_ids)
    return skipped.also(offer) if new and offer.month == skipped.month else None


def offer_text(offer: MissingInput) -> str:
    """The offer after a failure on a missing input, as the form says it (plain text)."""
    month = offer.month.label
    text = (f"{month} has no reading of {offer.quoted}. Add the reading in Mangrove and generate again; or, "
            f"only if it truly does not exist, generate {month} alone without it: {offer.quoted} then counts as "
            f"zero in {month} only (for an emission source, that month's emissions are understated and its net "
            "removal overstated). The other months keep their readings: a skip never spans months.\n"
            f"From code: form.preview_month_without_input(), i.e. client.generate({offer.ledger_id!r}, "
            f"{month!r}, skipped_data_point_type_ids={list(offer.type_ids)})")
    if offer.rest is not None:
        text += (f"; then form.preview_rest_of_period(), i.e. client.generate({offer.ledger_id!r}, "
                 f"{offer.rest.label!r}), which generates the rest of {offer.rest.label} without skipping")
    return text + "."


def skip_text(skip: MissingInput) -> str:
    """What the form says while the next generation leaves ``skip``'s inputs out (plain text)."""
    return (f"Leaving out {skip.quoted} in {skip.month.label} only (counted as zero: what it adds is not "
            "counted). Change the period to generate without leaving anything out.")
