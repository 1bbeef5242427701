"""Inputs left out: batches generated without an input, and a generation that failed on one month's missing
reading (what the form then offers, what that would drop, and how it says so).

The API applies ``skipped_data_point_type_ids`` to a whole data point type in every month of a request, so the
form only ever offers a skip for the one month the server's message names, then the rest of the period without
skipping. Even that month has other readings of the type (one reading is missing, not all): the skip drops
them too. The form reads them (``client.readings``, which needs the session's project), names them in the
offer, the preview and the confirmation, and only a confirmation that names them sends the skip with
``drop_existing_readings=True``. Without a project it cannot read them, says so and offers no skip.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..api import Client
from ..errors import ConfigurationError, MangroveError, secret_safe_logger
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


# Where the session's project comes from, for the texts that need it.
SET_PROJECT = ("set MANGROVE_PROJECT_ID before connecting, or connect with mnb.connect(project_id=...), and build "
               "the form on that client")


@dataclass(frozen=True, eq=False)
class Dropped:
    """What leaving ``skip``'s inputs out of its month drops: the readings of those types the month does have.

    ``readings`` is ``client.readings(ledger, month, type_ids)`` (one row per data point: data_point_id,
    data_point_type_id, data_point_type, value, unit...), or None when it could not be read: ``problem`` then
    says why, and ``no_project`` is True when the session has no project to read them from.
    """

    skip: MissingInput
    readings: pd.DataFrame | None
    problem: str | None = None
    no_project: bool = False

    @property
    def checked(self) -> bool:
        """Whether the readings were read (only then can a skip be previewed, confirmed and sent)."""
        return self.readings is not None

    @property
    def count(self) -> int:
        return 0 if self.readings is None else len(self.readings)

    @property
    def signature(self) -> frozenset[tuple[str, str]]:
        """The readings as (data point id, value): what a confirmation named, to compare with what exists then."""
        if self.readings is None:
            return frozenset()
        return frozenset((str(i), str(v)) for i, v in zip(self.readings["data_point_id"], self.readings["value"],
                                                          strict=True))

    @property
    def what(self) -> str:
        """``3 existing readings of Electricity Consumption (10,943 kWh)`` (one part per input that has some)."""
        if self.readings is None or self.readings.empty:
            return "no existing reading"
        parts: list[str] = []
        for type_id, name in zip(self.skip.type_ids, self.skip.names, strict=True):
            rows = self.readings[self.readings["data_point_type_id"] == type_id]
            if rows.empty:
                continue
            units = [u for u in rows["unit"].dropna().unique() if str(u)]
            unit = f" {units[0]}" if len(units) == 1 else ""
            count = f"{len(rows)} existing reading{'s' if len(rows) != 1 else ''}"
            parts.append(f"{count if not parts else len(rows)} of {name} ({amount(rows['value'].sum())}{unit})")
        return " and ".join(parts)

    @property
    def short(self) -> str:
        """``3 readings`` (for a button)."""
        return f"{self.count} reading{'s' if self.count != 1 else ''}"

    def consequence(self) -> str:
        """What the skip drops, as a clause: ``drops 3 existing readings of ... in 2025-11: their emissions ...``."""
        month = self.skip.month.label
        if self.readings is None:
            return f"may drop existing readings of {self.skip.quoted} in {month}, which could not be checked"
        if self.readings.empty:
            return (f"drops no existing reading: {month} has no reading of {self.skip.quoted} at all, so it counts "
                    "as zero there")
        return (f"drops {self.what} in {month}: their emissions will not be counted, so net removal will be "
                "overstated")

    def unread(self, what: str) -> str:
        """Why ``what`` (``Not previewed``, ``Not sent``) when the readings could not be read, and what to do."""
        skip = self.skip
        text = (f"{what}: leaving {skip.quoted} out of {skip.month.label} drops every reading of it there, and "
                f"{self.problem}.")
        return text + (f" Add the missing reading in Mangrove; or, to see what a skip would drop, {SET_PROJECT}."
                       if self.no_project else "")

    def code(self) -> str:
        """The client call that generates the month without the inputs (``drop_existing_readings=True`` when it
        drops readings)."""
        skip = self.skip
        drop = ", drop_existing_readings=True" if self.count else ""
        return (f"client.generate({skip.ledger_id!r}, {skip.month.label!r}, "
                f"skipped_data_point_type_ids={list(skip.type_ids)}{drop})")


def read_dropped(client: Client, skip: MissingInput) -> Dropped:
    """What leaving ``skip``'s inputs out of its month would drop (``client.readings``); never raises for a
    missing project or an API error: the ``Dropped`` says why it could not be read."""
    if client.settings.project_id is None:
        return Dropped(skip, None, "without the session's project the form cannot read them", no_project=True)
    try:
        frame = client.readings(skip.ledger_id, skip.month, list(skip.type_ids))
    except ConfigurationError as exc:
        return Dropped(skip, None, f"without the session's project the form cannot read them ({exc})",
                       no_project=True)
    except MangroveError as exc:
        log.warning("Could not read the readings a skip would drop: %s", exc)
        return Dropped(skip, None, f"the readings a skip would drop could not be read ({type(exc).__name__}: {exc})")
    return Dropped(skip, frame)


def amount(value: Any) -> str:
    """A total as the texts say it: ``10,943``, ``623.8``."""
    return f"{float(value):,.3f}".rstrip("0").rstrip(".")


def can_skip(dropped: Dropped | None) -> bool:
    """Whether the form offers to preview the month without the input: only when the readings it would drop
    can be read (with a project; a passing API error is read again by the preview)."""
    return dropped is not None and not dropped.no_project


def offer_text(offer: MissingInput, dropped: Dropped) -> str:
    """The offer after a failure on a missing input, as the form says it (plain text): add the reading; or, as a
    last resort, that month alone without the input, naming what that drops (``dropped``)."""
    month = offer.month.label
    again = offer.period.label
    text = (f"{month} lacks a reading of {offer.quoted}. Recommended: add the missing reading in Mangrove (a "
            f"documented estimate if need be), then generate {again} again.\n")
    if dropped.no_project:
        return text + (f"Generating {month} without {offer.quoted} is not offered: the API would leave it out of the "
                       f"whole of {month}, dropping the readings of it {month} does have, and "
                       f"{dropped.problem}. To see what a skip would drop, {SET_PROJECT}.")
    text += (f"Last resort: generate {month} alone without {offer.quoted}. The API leaves out the whole input, not "
             f"the one missing reading: this {dropped.consequence()}.")
    if not dropped.checked:
        text += f" ({dropped.problem}; the preview reads them again.)"
    text += (" The other months keep their readings: a skip never spans months.\n"
             f"From code: form.preview_month_without_input(), i.e. {dropped.code()}")
    if offer.rest is not None:
        text += (f"; then form.preview_rest_of_period(), i.e. client.generate({offer.ledger_id!r}, "
                 f"{offer.rest.argument}), which generates the rest of {offer.rest.label} without skipping")
    return text + "."


def skip_text(dropped: Dropped) -> str:
    """What the form says while the next generation leaves ``dropped.skip``'s inputs out (plain text)."""
    skip = dropped.skip
    return (f"Leaving out {skip.quoted} in {skip.month.label} only. This {dropped.consequence()}. Adding the "
            f"missing reading in Mangrove first avoids this (generate {skip.period.label} again then). Change the "
            "period to generate without leaving anything out.")
