"""What one batch's ``GET /batches/{id}`` adds to its listing row: the inputs it skipped, the upstream data
points it read (``DETAILS_SCHEMA``), and its LCA breakdown (``CALCULATIONS_SCHEMA``); and the one rule of what a
skipped input changed (``skipped_effects``, ``may_overstate``, ``skipped_effect`` for one detail), which the
quarterly report and the registry plan both apply."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from mangrove_nb.errors import MalformedResponseError

from ._reading import _frame, _Item, _value_text
from ._schema import CALCULATIONS_SCHEMA

# Calculation roles (``lca_role``): emissions are subtracted; "net" (the figure itself, where a model reports it)
# and "input" (a mass shown for the audit) are not terms; every other role (removal, output...) is added.
_SUBTRACTED_ROLES = frozenset({"emission", "leakage", "deduction"})
_NOT_TERMS = frozenset({"net", "input"})


def detail_row(detail: Any, *, index: int = 0) -> dict[str, Any]:
    """``DETAILS_SCHEMA``'s values for one ``GET /batches/{id}`` answer, and the data point ids it read.

    Returns ``{"skipped_inputs", "skipped_input_ids", "upstream_points"}``; ``upstream_points`` (the ids of the
    data points read without an event, i.e. other batches' outputs) is turned into batch ids by the caller,
    who knows the upstream ledgers' batches.
    """
    item = _detail(detail, index)
    skipped_names, skipped_ids, upstream = [], [], []
    for position, entry in enumerate(item.sequence("input_data") or []):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("data_point"), Mapping):
            raise item.malformed(f"input_data[{position}]", "is not a {data_point, event} object")
        point = _Item(entry["data_point"], index, "batch detail", prefix=f"input_data[{position}].data_point.")
        if point.text("status") == "skipped_input":
            skipped_names.append(point.text("data_point_type") or point.text("slug") or "?")
            type_id = point.integer("data_point_type_id")
            skipped_ids.append(str(type_id) if type_id is not None else "?")
        elif entry.get("event") is None and point.ident("id") is not None:
            upstream.append(point.ident("id"))
    return {"skipped_inputs": ", ".join(skipped_names) or None, "skipped_input_ids": ", ".join(skipped_ids) or None,
            "upstream_points": upstream}


def calculation_rows(detail: Any, *, index: int = 0) -> list[dict[str, Any]]:
    """``CALCULATIONS_SCHEMA`` rows of one batch detail (``model_run.calculations``), in the server's order."""
    item = _detail(detail, index)
    run = item.nested("model_run")
    rows = []
    for position, calc in enumerate((run.sequence("calculations") if run else None) or []):
        if not isinstance(calc, Mapping):
            raise item.malformed(f"model_run.calculations[{position}]", "is not an object")
        one = _Item(calc, index, "batch detail", prefix=f"model_run.calculations[{position}].")
        rows.append({
            "batch_id": item.ident("id", required=True), "tracking_id": item.text("tracking_id"),
            "ledger_id": item.ident("ledger_id"), "start_time": item.timestamp("start_time"),
            "name": one.text("name"), "value": one.number("value"), "unit": one.text("unit"),
            # ghg is "co2e" on most pages and a boolean on /modelruns/{id} (the contract allows both).
            "ghg": _value_text(calc["ghg"]) if isinstance(calc.get("ghg"), bool) else one.text("ghg"),
            "lca_role": one.text("lca_role"), "category": one.text("category"),
            "note": one.text("note"),
        })
    return rows


def calculations_frame(rows: list[dict[str, Any]], *, attrs: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """The ``CALCULATIONS_SCHEMA`` frame of ``calculation_rows``' rows."""
    return _frame(rows, CALCULATIONS_SCHEMA, attrs)


def _detail(detail: Any, index: int) -> _Item:
    """One ``GET /batches/{id}`` answer as an item; refused when it is not an object."""
    if not isinstance(detail, Mapping):
        raise MalformedResponseError(f"A batch detail (item {index}) is not a JSON object.", index=index)
    return _Item(detail, index, "batch detail")


def term_sign(role: Any) -> int:
    """+1 for a calculation (``lca_role``) added to the net figure, -1 for one subtracted, 0 for what is not a
    term."""
    text = str(role).strip().lower() if isinstance(role, str) else ""
    return -1 if text in _SUBTRACTED_ROLES else 0 if text in _NOT_TERMS else 1


def skipped_effects(batches: pd.DataFrame, calculations: pd.DataFrame | None) -> dict[str, tuple[str, str]]:
    """For each batch generated with a skipped input: a sentence saying what the skip changed, and its direction
    (``overstated``, ``understated`` or ``unknown``), from the batch's calculations.

    ``batches`` has an ``id`` and a ``skipped_inputs`` column (``DETAILS_SCHEMA``: the names joined with ", ");
    ``calculations`` is ``CALCULATIONS_SCHEMA`` rows (None or empty: none could be read). A skipped input counts as
    zero. Only a calculation whose ``note`` says it read the skipped input tells what the skip changed: an emission
    term counted as zero overstates a net removal, a removal term counted as zero understates it. The contract's
    Calculation has no ``note``, so a server may say nothing: then the effect is ``unknown``, and the figure is
    treated as possibly overstated (never "unaffected"). Every direction but ``understated`` may overstate the
    figure (``may_overstate``).
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
            effects[str(batch.id)] = (f"{lead}: it counted as zero, and its calculations could not be read, so what "
                                      "the skip changed is unknown: its output may be overstated.", "unknown")
            continue
        notes = mine["note"] if "note" in mine.columns else pd.Series(pd.NA, index=mine.index)
        zeroed = mine[notes.notna()]
        unexplained = _inputs_not_noted(skipped, zeroed)
        roles = {str(r): [str(n) for n in zeroed.loc[zeroed["lca_role"] == r, "name"]]
                 for r in zeroed["lca_role"].dropna().unique()}
        emissions = [n for r, names in roles.items() if term_sign(r) == -1 for n in names]
        removals = [n for r, names in roles.items() if term_sign(r) == 1 and r != "output" for n in names]
        outputs = roles.get("output", [])
        parts, direction = [], "unknown"
        if emissions:
            parts.append(f"its emissions are not counted ({', '.join(emissions)} counted as zero)")
            direction = "overstated"
        if removals:
            parts.append(f"its removal is not counted ({', '.join(removals)} counted as zero)")
            direction = "understated" if not emissions else "unknown"
        if outputs and not (emissions or removals):
            parts.append(f"{', '.join(outputs)} counts it as zero")
            direction = "understated"
        if unexplained and not parts:
            # No calculation says it read the input: what skipping it changed is not known.
            effects[str(batch.id)] = (f"{lead}: it counted as zero, and no calculation says whether it read it, so "
                                      "what the skip changed is unknown: its output may be overstated.", "unknown")
            continue
        if unexplained:
            parts.append(f"no calculation says whether it read {', '.join(unexplained)}, so what "
                         f"{'that skip' if len(unexplained) == 1 else 'those skips'} changed is unknown")
            if direction == "understated":
                direction = "unknown"
        if direction == "overstated":
            parts.append("so its net removal is overstated")
        elif direction == "understated" and removals:
            parts.append("so its net removal is understated")
        elif direction == "understated":
            parts.append("so its output may be understated")
        elif removals and emissions:
            parts.append("so its net removal may be off in either direction")
        else:
            parts.append("and its output may be overstated")
        effects[str(batch.id)] = (f"{lead}: " + ", ".join(parts[:-1]) + f", {parts[-1]}." if len(parts) > 1
                                  else f"{lead}: {parts[0]}.", direction)
    return effects


def may_overstate(direction: str) -> bool:
    """Whether a skipped input's effect (``skipped_effects``) may overstate the figure: all but ``understated``."""
    return direction != "understated"


def skipped_effect(detail: Any, *, index: int = 0) -> tuple[str, str, str] | None:
    """``skipped_effects`` of one ``GET /batches/{id}`` answer: ``(skipped inputs, sentence, direction)``, the
    inputs' names joined with ", "; None when the batch skipped no input. Calculations that cannot be read count as
    none (the effect is then ``unknown``: possibly overstated); ``input_data`` that cannot be read raises
    ``MalformedResponseError``, as ``detail_row`` does."""
    skipped = detail_row(detail, index=index)["skipped_inputs"]
    if skipped is None:
        return None
    try:
        calculations: pd.DataFrame | None = calculations_frame(calculation_rows(detail, index=index))
    except MalformedResponseError:
        calculations = None
    batch = _detail(detail, index).ident("id") or ""  # without an id its calculations cannot be read: unknown
    effect = skipped_effects(pd.DataFrame({"id": [batch], "skipped_inputs": [skipped]}), calculations)
    text, direction = effect[batch]
    return str(skipped), text, direction


def _inputs_not_noted(skipped: str, zeroed: pd.DataFrame) -> list[str]:
    """The skipped inputs (names joined with ", ") that no calculation's note names. A lone skipped input is
    covered by any note (the note can only be about it)."""
    names = [n.strip() for n in skipped.split(", ") if n.strip()]
    texts = " ".join(str(n) for n in zeroed["note"].dropna()).lower() if not zeroed.empty else ""
    if not texts:
        return names
    if len(names) == 1:
        return []
    return [n for n in names if n.lower() not in texts]
