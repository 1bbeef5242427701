"""Ledger frames: the ledgers (``GET /ledgers``), what a ledger's model needs (``required_inputs``), what a
generation would make (``generate_preview``), and which ledgers a model reads from."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from ._reading import _frame, _Item, _items, _rows
from ._schema import LEDGERS_SCHEMA, PREVIEW_SCHEMA, REQUIRED_INPUTS_SCHEMA


def ledgers_frame(items: Iterable[Any], *, attrs: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """One row per ledger (GET /ledgers, GET /ledgers/{id}); ``has_model`` says if it can generate."""
    return _frame(_rows(items, "ledger", _ledger_row), LEDGERS_SCHEMA, attrs)


def can_generate(row: Any) -> bool:
    """Whether a ledgers-frame row (anything with ``has_model``) can generate batches. The one reading of the
    column: ``has_model`` is NA when the payload did not say (no ``latest_model`` key), and that is a no."""
    value = row.has_model
    return not pd.isna(value) and bool(value)


def ledger_names(ledgers: pd.DataFrame) -> dict[str, str]:
    """Ledger id -> name from a ledgers frame; a ledger without a name is called by its id."""
    return {str(i): (n if isinstance(n, str) else str(i)) for i, n in zip(ledgers["id"], ledgers["name"], strict=True)}


def with_model(ledgers: pd.DataFrame) -> pd.Series:
    """The rows of a ledgers frame that can generate, as a boolean mask (``can_generate`` for every row)."""
    return ledgers["has_model"].fillna(False).astype(bool)


def required_inputs_frame(items: Iterable[Any], *, attrs: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """One row per input the ledger's model needs (GET /ledgers/{id}/required_inputs)."""
    return _frame(_rows(items, "required input", _required_input_row), REQUIRED_INPUTS_SCHEMA, attrs)


def preview_frame(items: Iterable[Any], *, attrs: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """One row per ledger that would get batches, with how many (POST /ledgers/{id}/generate_preview)."""
    return _frame(_rows(items, "preview entry", _preview_row), PREVIEW_SCHEMA, attrs)


def upstream_ledger_ids(required_inputs: Iterable[Any]) -> list[str]:
    """The ids of the ledgers whose batches the manual-select inputs read (their ``output_of_ledgers``).

    Items of ``output_of_ledgers`` are objects with an ``id`` (as the emulator sends) or plain ids; the
    documentation does not show their shape. Order kept, repeats dropped.
    """
    found: list[str] = []
    for index, item in _items(required_inputs, "required input"):
        if item.get("is_manual_select") is not True:
            continue
        for entry in _Item(item, index, "required input").sequence("output_of_ledgers") or []:
            ident = entry.get("id") if isinstance(entry, Mapping) else entry
            if isinstance(ident, str | int) and not isinstance(ident, bool) and str(ident) not in found:
                found.append(str(ident))
    return found


# --- one row per item -----------------------------------------------------------------------------------


def _ledger_row(item: _Item) -> dict[str, Any]:
    model = item.nested("latest_model")
    return {
        "id": item.ident("id", required=True),
        "name": item.text("name"),
        "unit": item.text("unit"),
        "system_ledger_type": item.text("system_ledger_type"),
        "partition_type": item.text("partition_type"),
        "cadence": item.text("cadence"),
        "model_id": model.ident("id") if model else None,
        "model_name": model.text("name") if model else None,
        "has_model": (model is not None) if "latest_model" in item.data else None,
        "created_at": item.timestamp("created_at"),
        "updated_at": item.timestamp("updated_at"),
    }


def _required_input_row(item: _Item) -> dict[str, Any]:
    return {
        "id": item.integer("id", required=True),
        "name": item.text("name"),
        "slug": item.text("slug"),
        "unit": item.text("unit"),
        "value_type": item.text("value_type"),
        "category": item.text("category"),
        "subcategory": item.text("subcategory"),
        "is_manual_select": item.flag("is_manual_select"),
        "output_of_ledgers": item.joined("output_of_ledgers"),
        "allocation_groups": item.joined("allocation_groups"),
    }


def _preview_row(item: _Item) -> dict[str, Any]:
    return {
        "ledger_id": item.ident("id", required=True),
        "ledger_name": item.text("name"),
        "count": item.integer("count", required=True),
    }
