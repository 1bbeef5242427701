"""The analyst's arguments to the registry calls, checked before anything is read or sent: a report id, a project
id, the batches (a frame with an ``id`` or ``batch_id`` column, or a list of ids), the ledgers, and what a
submission's confirmation named (``expected``). Bad input is a ``ValidationError`` naming the argument and what to
give instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from .._arguments import id_list, short
from ..errors import ValidationError
from ._values import _missing, _number, _text
from .plan import ReportPlan
from .report import Report

#: What a confirmation named: batch id -> (amount, unit), either None where it did not say.
Confirmed = dict[str, tuple[float | None, str | None]]


def _report_id(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"report_id must be a report id string such as 'rpt_...' (the id column of "
                              f"client.reports()), not {type(value).__name__} {short(value)}.", argument="report_id")
    return value.strip()


def _id_argument(value: Any, argument: str, example: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip():
        raise ValidationError(f"{argument} must be {example}, not {short(value)}.", argument=argument)
    return str(value).strip()


def _wanted_batches(batches: Any) -> tuple[list[str], dict[str, str]]:
    """The batch ids of a frame (``id`` or ``batch_id`` column) or a list, repeats dropped, with the ledger of
    each id where the frame says it."""
    if isinstance(batches, pd.DataFrame):
        column = "id" if "id" in batches.columns else "batch_id" if "batch_id" in batches.columns else None
        if column is None:
            raise ValidationError("batches is a frame without an 'id' or 'batch_id' column; give a frame from "
                                  "client.batches() or client.report_candidates(), or a list of batch ids.",
                                  argument="batches")
        ids = [str(i) for i in batches[column] if not _missing(i)]
        ledgers = batches["ledger_id"] if "ledger_id" in batches.columns else pd.Series([None] * len(batches))
        ledger_of = {str(i): str(lg) for i, lg in zip(batches[column], ledgers, strict=True)
                     if not _missing(i) and isinstance(lg, str)}
        return list(dict.fromkeys(ids)), ledger_of
    if isinstance(batches, pd.Series | Mapping) or batches is None:
        raise ValidationError(f"batches must be a frame from client.batches() or a list of batch ids such as "
                              f"['bat_...'], not {type(batches).__name__} {short(batches)}.", argument="batches")
    ids = id_list(batches, "batches", "the id column of client.batches()")
    return list(dict.fromkeys(ids)), {}


def _ledger_list(value: str | Iterable[str]) -> list[str]:
    if isinstance(value, str):
        return [value]
    names = [str(one) for one in id_list(value, "ledgers", "the id or name column of client.ledgers()")]
    if not names:
        raise ValidationError("ledgers is an empty list; give ledger names or ids, or None for the ledgers the "
                              "project's reports hold.", argument="ledgers")
    return names



def _confirmed_batches(expected: Any) -> Confirmed:
    """The batches and amounts a submission's confirmation named: a ``ReportPlan`` (the batches it would have the
    report hold, at the plan's amounts), a ``Report`` (its inclusions), a mapping of batch id to amount, or batch ids
    alone (their amounts not compared)."""
    if isinstance(expected, ReportPlan):
        rows = [r for frame in (expected.kept, expected.added) for r in frame.to_dict("records")]
        by_id = {str(r["batch_id"]): (_number(r.get("amount")), _text(r.get("unit"))) for r in rows}
        return {bid: by_id.get(bid, (None, None)) for bid in expected.batch_ids}
    if isinstance(expected, Report):
        return {str(r.batch_id): (_number(r.amount), _text(r.unit))
                for r in expected.inclusions.itertuples(index=False) if not _missing(r.batch_id)}
    if isinstance(expected, Mapping):
        confirmed: Confirmed = {}
        for bid, amount in expected.items():
            number = _number(amount)
            if not isinstance(bid, str) or not bid.strip() or (amount is not None and number is None):
                raise ValidationError(f"expected maps batch ids to the amounts confirmed (such as "
                                      f"{{'bat_...': 33.5}}); {short(bid)}: {short(amount)} is not one.",
                                      argument="expected")
            confirmed[bid.strip()] = (number, None)
        return confirmed
    if isinstance(expected, str | bytes | pd.Series | pd.DataFrame) or not isinstance(expected, Iterable):
        raise ValidationError(f"expected must be what the submission's confirmation showed: the ReportPlan, the "
                              f"Report, a mapping of batch id to amount, or a list of batch ids; not "
                              f"{type(expected).__name__} {short(expected)}.", argument="expected")
    return {bid: (None, None) for bid in id_list(expected, "expected", "the batch ids the confirmation named")}
