"""The analyst's arguments, checked before anything is sent: ledgers, generation bodies, batch lists.

Every function here raises ``ValidationError`` naming the argument and the fix (or ``PreconditionError``)
for what a tired analyst types: a number for a ledger, a type name for a skipped input id, a tuple for a
batch amount, NaN or infinity, a string where a list is wanted. Pure functions; no I/O.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

import pandas as pd

from .errors import ValidationError
from .periods import Period


def generation_body(span: Period, *, data_point_ids: Sequence[str] | None = None,
                     batch_amounts: Sequence[Mapping[str, Any]] | None = None,
                     skipped: Sequence[int] | None = None) -> dict[str, Any]:
    """The generation request's body; ``ValidationError`` naming the argument for anything it cannot carry."""
    body: dict[str, Any] = dict(span.api_params())
    if data_point_ids is not None:
        ids = id_list(data_point_ids, "data_point_ids",
                       "the output_data_point_id column of client.candidates(ledger, period)")
        if ids:
            body["data_point_ids"] = ids
    if batch_amounts is not None:
        if isinstance(batch_amounts, pd.DataFrame):  # a frame with the columns: one amount per row
            batch_amounts = batch_amounts.to_dict("records")
        amounts = [_batch_amount(item, i) for i, item in enumerate(sequence_of(batch_amounts, "batch_amounts"))]
        if amounts:
            body["batch_amounts"] = amounts
    if skipped is not None:
        types = [_type_id(v) for v in sequence_of(skipped, "skipped_data_point_type_ids")]
        if types:
            body["skipped_data_point_type_ids"] = types
    return body


def sequence_of(value: Any, argument: str) -> list[Any]:
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise ValidationError(f"{argument} must be a list, not {type(value).__name__} {short(value)}; "
                              f"for example {argument}=[...].", argument=argument)
    return list(value)


def id_list(value: Any, argument: str, where: str) -> list[str]:
    items = sequence_of(value, argument)
    for item in items:
        if isinstance(item, bool) or not isinstance(item, str | int) or item == "":
            raise ValidationError(f"{argument} must be a list of ids (strings, from {where}); "
                                  f"{short(item)} is not one.", argument=argument)
    return [str(i) for i in items]


def _batch_amount(item: Any, index: int) -> dict[str, Any]:
    example = ('batch_amounts=[{"batch_id": "bat_...", "primary_output_amount": 12.5}] (allocation_group is '
               "optional)")
    if not isinstance(item, Mapping):
        raise ValidationError(f"batch_amounts[{index}] is {type(item).__name__} {short(item)}, not a mapping; "
                              f"give {example}.", argument="batch_amounts")
    unknown = sorted(set(item) - {"batch_id", "primary_output_amount", "allocation_group"})
    if unknown:
        raise ValidationError(f"batch_amounts[{index}] has unknown key(s) {', '.join(map(str, unknown))}; give "
                              f"{example}.", argument="batch_amounts")
    batch_id, amount = item.get("batch_id"), item.get("primary_output_amount")
    if isinstance(amount, numbers.Real) and not isinstance(amount, bool):
        try:
            amount = float(amount)
        except OverflowError:
            amount = math.inf
    if not isinstance(batch_id, str) or not batch_id:
        raise ValidationError(f"batch_amounts[{index}] needs a batch_id (a batch id string such as "
                              f"'bat_...'), not {short(batch_id)}; give {example}.", argument="batch_amounts")
    if isinstance(amount, bool) or not isinstance(amount, numbers.Real) or not math.isfinite(amount) or amount < 0:
        raise ValidationError(f"batch_amounts[{index}] needs primary_output_amount as a finite number of at "
                              f"least 0, not {short(amount)}; give {example}.", argument="batch_amounts")
    group = item.get("allocation_group")
    if group is not None and not isinstance(group, str):
        raise ValidationError(f"batch_amounts[{index}]: allocation_group must be a string, not {short(group)}.",
                              argument="batch_amounts")
    return {**dict(item), "primary_output_amount": amount}


def _type_id(value: Any) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, numbers.Real) and not isinstance(value, bool | numbers.Integral) and float(value).is_integer():
        return int(float(value))  # 7.0 from a float column
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValidationError(f"skipped_data_point_type_ids takes the integer ids of data point types (the id "
                              f"column of client.required_inputs(ledger)), not {short(value)}; for example "
                              "skipped_data_point_type_ids=[7].", argument="skipped_data_point_type_ids")
    return int(value)


def check_ledger_id(value: Any, argument: str = "ledger") -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{argument} must be a ledger id string such as 'lgr_...' (the id column of "
                              f"client.ledgers()), not {type(value).__name__} {short(value)}.", argument=argument)


def ledger_ids(value: Any) -> list[str | None]:
    """``batches()``'s ledger argument as a list: one id, several, or ``[None]`` for every ledger."""
    if value is None:
        return [None]
    if isinstance(value, str) or not isinstance(value, Iterable) or isinstance(value, Mapping | bytes):
        check_ledger_id(value)
        return [cast(str, value)]  # check_ledger_id raised for anything but a non-blank string
    ids = sequence_of(value, "ledger")
    if not ids:
        raise ValidationError("ledger is an empty list; give one or more ledger ids, or None for every ledger.",
                              argument="ledger")
    for one in ids:
        check_ledger_id(one)
    return ids


BATCH_STATES = ("complete", "processing", "failed")
MONTH_IN_TEXT = re.compile(r"\b(\d{4}-\d{2})\b")
# Ledger ids as the documentation shows them ("lgr_abc123def456"): used as given, without a lookup.
FRIENDLY_LEDGER_ID = re.compile(r"lgr_[A-Za-z0-9]+")


def match_ledger(value: str, names: Mapping[str, str]) -> str | None:
    if value in names:
        return value
    exact = [i for i, n in names.items() if n == value]
    if len(exact) == 1:
        return exact[0]
    folded = [i for i, n in names.items() if n.casefold() == value.strip().casefold()]
    if len(folded) == 1:
        return folded[0]
    if len(exact) > 1 or len(folded) > 1:
        raise ValidationError(f"Several ledgers are called {value!r} ({', '.join(exact or folded)}); give the id "
                              "instead.", argument="ledger")
    return None


def whole_months(span: Period) -> list[Period]:
    """The calendar months ``span`` covers completely (what the API makes batches of)."""
    return [m for m in span.months() if m.kind == "month"]


def batch_ids(batches: Any) -> tuple[list[str], dict[str, str]]:
    """Batch ids from a batches frame or a list of ids, with the ledger of each id where the frame says it."""
    if isinstance(batches, pd.DataFrame):
        if "id" not in batches.columns:
            raise ValidationError("batches must be a frame from client.batches() (with an 'id' column) or a list "
                                  "of batch ids.", argument="batches")
        ids = [str(i) for i in batches["id"].dropna()]
        ledgers = batches["ledger_id"] if "ledger_id" in batches.columns else pd.Series(dtype="string")
        return ids, {str(i): str(lg) for i, lg in zip(batches["id"], ledgers, strict=False) if isinstance(lg, str)}
    return id_list(batches, "batches", "the id column of client.batches()"), {}


def short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:59] + "…"
