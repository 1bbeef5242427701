"""What one batch's ``GET /batches/{id}`` adds to its listing row: the inputs it skipped, the upstream data
points it read (``DETAILS_SCHEMA``), and its LCA breakdown (``CALCULATIONS_SCHEMA``); and the one rule of what a
skipped input changed (``skipped_effects``, ``may_overstate``, ``skipped_effect`` for one detail), which the
quarterly report and the registry plan both apply."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pandas as pd

from mangrove_nb.errors import MalformedResponseError

from ._reading import _frame, _Item, _value_text
from ._schema import CALCULATIONS_SCHEMA

# Calculation roles (``lca_role``, compared lowercased): emissions are subtracted from the net figure; removals and
# "output" (the one calculation of /modelruns/{id} and of single-figure models, equal to the primary output) are
# added; "net" (the figure itself, where a model reports it) and "input" (a mass shown for the audit) are not terms.
# Any other role is unknown: never guessed to be a removal ("emissions", say, is not "emission").
_SUBTRACTED_ROLES = frozenset({"emission", "leakage", "deduction"})
_ADDED_ROLES = frozenset({"removal", "output"})
_NOT_TERMS = frozenset({"net", "input"})
# The terms a skipped input can be shown to have zeroed, by what zeroing them does to a net removal: an emission
# not counted overstates it; a removal not counted understates it. "output" and "net" are the figure itself, so
# their being noted says nothing of which way the skip moved it.
_ZEROED_OVERSTATES = _SUBTRACTED_ROLES
_ZEROED_UNDERSTATES = frozenset({"removal"})

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
    """+1 for a calculation (``lca_role``) added to the net figure (``removal``, ``output``), -1 for one subtracted
    (``emission``, ``leakage``, ``deduction``), 0 for what is not a term (``net``, ``input``) and for a role this
    rule does not know (a missing one, or another spelling such as ``emissions``): never guessed to be a removal,
    so a breakdown with such a role does not add up and says so."""
    text = _role(role)
    return -1 if text in _SUBTRACTED_ROLES else 1 if text in _ADDED_ROLES else 0


def known_role(role: Any) -> bool:
    """Whether ``term_sign`` knows ``role`` (a term added or subtracted, or one that is not a term)."""
    return _role(role) in _SUBTRACTED_ROLES | _ADDED_ROLES | _NOT_TERMS


def _role(role: Any) -> str:
    return role.strip().lower() if isinstance(role, str) else ""


def skipped_effects(batches: pd.DataFrame, calculations: pd.DataFrame | None) -> dict[str, tuple[str, str]]:
    """For each batch generated with a skipped input: a sentence saying what the skip changed, and its direction
    (``overstated``, ``understated`` or ``unknown``), from the batch's calculations.

    ``batches`` has an ``id`` and a ``skipped_inputs`` column (``DETAILS_SCHEMA``: the names joined with ", ");
    ``calculations`` is ``CALCULATIONS_SCHEMA`` rows (None or empty: none could be read). A skipped input counts as
    zero. The rule is conservative: only a calculation whose ``note`` names the skipped input (its
    ``data_point_type`` name, as a whole word) says it read it, and only such a calculation that is a term of a
    known role and whose value is 0 tells what the skip changed: an emission term (``emission``, ``leakage``,
    ``deduction``) counted as zero overstates a net removal; a ``removal`` term counted as zero understates it.
    Anything else that names the input leaves the effect ``unknown``: a value that is not 0 (the term read more
    than the skipped input), a role not known (``emissions``), or the figure itself (``output`` as on
    ``/modelruns/{id}``, ``net``: zeroing an emission raises it). So does a skipped input no calculation names (a
    note about something else does not count; the contract's Calculation has no ``note``, so a server may say
    nothing), and a removal zeroed beside an emission. Only ``understated`` cannot overstate the figure
    (``may_overstate``): ``unknown`` is treated as possibly overstated, never "unaffected".
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
        effects[str(batch.id)] = _effect(lead, skipped, mine)
    return effects


def _effect(lead: str, skipped: str, mine: pd.DataFrame) -> tuple[str, str]:
    """``skipped_effects``' sentence and direction for one batch's calculations (``mine``, not empty)."""
    names = [n.strip() for n in skipped.split(", ") if n.strip()]
    emissions: list[str] = []
    removals: list[str] = []
    doubts: list[str] = []
    named: set[str] = set()
    notes = mine["note"] if "note" in mine.columns else pd.Series(pd.NA, index=mine.index)
    values = mine["value"] if "value" in mine.columns else pd.Series(pd.NA, index=mine.index)
    roles = mine["lca_role"] if "lca_role" in mine.columns else pd.Series(pd.NA, index=mine.index)
    labels = mine["name"] if "name" in mine.columns else pd.Series(pd.NA, index=mine.index)
    for note, value, role, label in zip(notes, values, roles, labels, strict=True):
        inputs = _named_inputs(note, names)
        if not inputs:
            continue  # says nothing of the skipped inputs (a note about something else)
        named.update(inputs)
        term = str(label) if isinstance(label, str) and label.strip() else "a calculation without a name"
        kind = _role(role)
        zero = not pd.isna(value) and float(value) == 0.0
        if zero and kind in _ZEROED_OVERSTATES:
            emissions.append(term)
        elif zero and kind in _ZEROED_UNDERSTATES:
            removals.append(term)
        elif not known_role(role):
            doubts.append(f"{term} reads {', '.join(inputs)}, but its role ({_shown(role)}) is not one this rule "
                          "knows")
        elif kind not in _SUBTRACTED_ROLES | _ZEROED_UNDERSTATES:
            doubts.append(f"{term} reads {', '.join(inputs)}, but it is not a term of the figure (lca_role "
                          f"{_shown(role)}: the figure itself, or a mass shown for the audit)")
        else:
            shown = "no value" if pd.isna(value) else f"{float(value):g}, not 0"
            doubts.append(f"{term} reads {', '.join(inputs)}, but its value is {shown}")
    unexplained = [n for n in names if n not in named]
    if not (emissions or removals or doubts):
        # No calculation names a skipped input: what skipping it changed is not known.
        return (f"{lead}: it counted as zero, and no calculation says it read it, so what the skip changed is "
                "unknown: its output may be overstated.", "unknown")
    parts = []
    if emissions:
        parts.append(f"its emissions are not counted ({', '.join(emissions)} counted as zero)")
    if removals:
        parts.append(f"its removal is not counted ({', '.join(removals)} counted as zero)")
    parts.extend(doubts)
    if unexplained:
        parts.append(f"no calculation says it read {', '.join(unexplained)}, so what "
                     f"{'that skip' if len(unexplained) == 1 else 'those skips'} changed is unknown")
    if emissions and removals:
        direction, end = "unknown", "so its net removal may be off in either direction"
    elif emissions:
        direction, end = "overstated", "so its net removal is overstated"
    elif removals and not doubts and not unexplained:
        direction, end = "understated", "so its net removal is understated"
    else:
        direction, end = "unknown", "so what the skip changed is unknown: its output may be overstated"
    return f"{lead}: " + "; ".join(parts) + f", {end}.", direction


def _shown(role: Any) -> str:
    return repr(role) if isinstance(role, str) else "none"


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


def _named_inputs(note: Any, names: list[str]) -> list[str]:
    """The skipped inputs (``names``) a calculation's ``note`` names, each as a whole word, case aside; a name found
    only inside a longer skipped input's name ("Electricity" in "Electricity Consumption") is not named."""
    if not isinstance(note, str) or not note.strip():
        return []
    text = note.lower()
    spans: list[tuple[int, int, str]] = []
    for name in sorted(set(names), key=len, reverse=True):
        for match in re.finditer(rf"(?<!\w){re.escape(name.lower())}(?!\w)", text):
            if not any(start <= match.start() and match.end() <= end for start, end, _ in spans):
                spans.append((match.start(), match.end(), name))
    found = {name for _, _, name in spans}
    return [n for n in names if n in found]
