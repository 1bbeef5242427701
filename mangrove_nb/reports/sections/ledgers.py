"""The setup cell's readers: which ledgers the report covers and in what order, the project, the period a year
before, and the batches whose calculations the report reads."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from ...frames import can_generate, ledger_names, with_model
from .._text import _one_line
from ..notebook import _match_ledger, quarter_period, report_period
from ._shared import _counted

if TYPE_CHECKING:
    from mangrove_nb import Client, Period

# A ledger whose name says it counts removed carbon (the report's first ledger, and the one broken down).
_REMOVAL_NAME = re.compile(r"removal|\bcdr\b|sequest|carbon (?:removed|stored)", re.IGNORECASE)


def select_ledgers(all_ledgers: pd.DataFrame, ledgers: Sequence[str] | None) -> pd.DataFrame:
    """The report's ledgers, sorted by name then id: those asked for (ids or names), or (``None``) every ledger
    with a model. ``order_ledgers`` then puts them in the report's order.

    A ledger the API does not list raises ``ValueError`` naming it and the closest names.
    """
    import difflib

    if ledgers is None:
        chosen = all_ledgers[with_model(all_ledgers)]
        if chosen.empty:
            raise ValueError("No ledger has a model, so there is nothing to report on; pass ledgers=[...] to "
                             "report on ledgers without one.")
    else:
        if isinstance(ledgers, str):
            raise TypeError("ledgers must be a list of ledger ids or names, not a single string; wrap it: [ledger].")
        wanted = list(dict.fromkeys(str(ledger).strip() for ledger in ledgers))
        if not wanted:
            raise ValueError("ledgers is an empty list; give ledger ids or names, or None for every ledger with a "
                             "model.")
        names = ledger_names(all_ledgers)
        ids = []
        for ledger in wanted:
            found = _match_ledger(ledger, names)
            if found is None:
                close = difflib.get_close_matches(ledger, list(names.values()), n=3, cutoff=0.5)
                hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
                raise ValueError(f"Unknown ledger: {_one_line(ledger, 80)!r}.{hint} The API lists: "
                                 f"{', '.join(sorted(names)) or 'no ledgers'}.")
            ids.append(found)
        chosen = all_ledgers[all_ledgers["id"].isin(ids)]
    return chosen.sort_values(["name", "id"], kind="stable", ignore_index=True)


def order_ledgers(selected: pd.DataFrame, inputs: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The ledgers in the report's order: carbon-removal ledgers first, then their upstream ledgers (those whose
    models read the same inputs, the closest first), then ledgers fed by another ledger's batches, then the rest;
    by name within each group.

    A carbon-removal ledger is one whose name says so (removal, CDR, sequestration); the API has no field for it.
    """
    def reads(ledger_id: str) -> set[str]:
        frame = inputs.get(ledger_id)
        return set() if frame is None else {str(i) for i in frame["id"].dropna()}

    removal = [str(i) for i in removal_ledgers(selected)]
    removal_inputs = set().union(*(reads(i) for i in removal)) if removal else set()
    keys = []
    for row in selected.itertuples():
        ledger_id, mine = str(row.id), reads(str(row.id))
        fed = frame_has_manual_select(inputs.get(ledger_id))
        if ledger_id in removal:
            rank, closeness = 0, 0.0
        elif mine and mine & removal_inputs:
            rank, closeness = 1, -len(mine & removal_inputs) / len(mine)
        elif fed:
            rank, closeness = 2, 0.0
        else:
            rank, closeness = 3, 0.0
        keys.append((rank, closeness, str(row.name), ledger_id))
    order = sorted(range(len(keys)), key=lambda n: keys[n])
    return selected.iloc[order].reset_index(drop=True)


def frame_has_manual_select(inputs: pd.DataFrame | None) -> bool:
    """Whether a ``required_inputs`` frame has a manual-select input (one fed by another ledger's batches)."""
    return inputs is not None and bool(inputs["is_manual_select"].fillna(False).astype(bool).any())


def removal_ledgers(selected: pd.DataFrame) -> list[str]:
    """The ids of the carbon-removal ledgers among ``selected``: those whose name says they count removed carbon
    and that have a model."""
    return [str(row.id) for row in selected.itertuples()
            if isinstance(row.name, str) and _REMOVAL_NAME.search(row.name) and can_generate(row)]


def report_project(client: Client, project: int | str | None = None) -> Any:
    """The project the report is about (``client.project()``), or None when none is known.

    ``project`` (the report's parameter), else the session's (``MANGROVE_PROJECT_ID``), else the project the
    ledgers name (a ``project_id`` on every ledger the API lists, when the API gives one and they agree).
    """
    chosen = project if project is not None else client.settings.project_id
    if chosen is None:
        found = {str(item["project_id"]) for item in client.http.ledgers()
                 if isinstance(item, Mapping) and isinstance(item.get("project_id"), int | str)
                 and not isinstance(item.get("project_id"), bool)}
        chosen = found.pop() if len(found) == 1 else None
    return client.project(chosen) if chosen is not None else None


def year_before(period: Period) -> Period:
    """The same quarter a year earlier (2025Q1 -> 2024Q1); for a year, the year before (2025 -> 2024), which is
    then also its previous period: an annual report compares with one year only."""
    found = report_period(period)
    if found.kind == "year":
        return found.previous()
    quarter = quarter_period(found)
    return quarter_period(f"{quarter.start.year - 1}Q{(quarter.start.month - 1) // 3 + 1}")


def breakdown_batches(batches: pd.DataFrame, selected: pd.DataFrame) -> pd.DataFrame:
    """The batches whose calculations the report reads: the carbon-removal ledgers' complete batches (to show
    how the net figure was computed) and every batch made with a skipped input (to say what it changed)."""
    removal = set(removal_ledgers(selected))
    wanted = batches["ledger_id"].isin(removal) & _counted(batches)
    if "skipped_inputs" in batches.columns:
        wanted |= batches["skipped_inputs"].notna()
    return batches[wanted].reset_index(drop=True)
