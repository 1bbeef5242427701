"""Reading a batches frame for a chart: the frame checked, each row placed (bar geometry in UTC date numbers,
whether it counts), and the frame's ledgers, groups and units as the legend and the axis labels name them.

Only ``complete`` batches count; a batch without a start has no place; a batch's length is its end minus its
start, inclusive of its last second (the median length of the others when unknown).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeAlias

import matplotlib.dates as mdates
import pandas as pd

from ._figure import _color
from ._time import _ONE_SECOND

FrameLike: TypeAlias = pd.DataFrame | Sequence[pd.DataFrame]

# The columns these plots read (names from frames.BATCHES_SCHEMA); the rest of a frame is ignored.
_REQUIRED = ("start_time", "end_time", "state", "output_name", "output_unit", "output_value", "ledger_id")
_FEEDSTOCK = "feedstock"


@dataclass(frozen=True)
class _LedgerKey:
    key: str
    label: str
    unit: str | None

    def legend(self, with_unit: bool) -> str:
        return f"{self.label} ({self.unit})" if with_unit and self.unit else self.label


@dataclass
class _Group:
    key: str
    label: str
    legend: str
    rows: pd.DataFrame
    ledger: str
    color: str


def _checked_frame(frame: FrameLike) -> pd.DataFrame:
    if isinstance(frame, pd.DataFrame):
        data = frame
    elif isinstance(frame, Sequence) and not isinstance(frame, str | bytes) and all(
            isinstance(part, pd.DataFrame) for part in frame):
        parts = [part for part in frame if not part.empty]
        data = pd.concat(parts, ignore_index=True) if parts else (frame[0] if frame else pd.DataFrame())
        if frame:
            data.attrs = dict(frame[0].attrs)
    else:
        raise TypeError(f"Expected a batches DataFrame (client.batches(...)) or a list of them, not {type(frame)}.")
    missing = [name for name in _REQUIRED if name not in data.columns]
    if missing:
        raise ValueError(f"Not a batches frame: the columns {', '.join(missing)} are missing (see client.batches).")
    return data


def _utc(series: pd.Series) -> pd.Series:
    times = pd.to_datetime(series, utc=False)
    if getattr(times.dt, "tz", None) is None:
        return times.dt.tz_localize("UTC")  # naive times are UTC, as everywhere in mangrove_nb
    return times.dt.tz_convert("UTC")


def _placed_rows(data: pd.DataFrame) -> pd.DataFrame:
    """The frame's rows with their bar geometry (matplotlib date numbers, UTC) and accounting flags."""
    rows = data[data["start_time"].notna()].reset_index(drop=True)  # a batch without a start has no place
    start = _utc(rows["start_time"])
    end = _utc(rows["end_time"])
    length = end - start
    known = length[length.notna() & (length > pd.Timedelta(0))]
    fallback = known.median() if not known.empty else pd.Timedelta(days=1)
    length = length.where(length.notna() & (length > pd.Timedelta(0)), fallback)
    rows["start_time"] = start
    rows["x0"] = mdates.date2num(start.dt.tz_localize(None).to_numpy())
    # end_time is the batch's last second (inclusive), so the bar reaches the next period's first second.
    rows["width"] = length.dt.total_seconds().to_numpy() / 86400.0 + _ONE_SECOND
    rows["x1"] = rows["x0"] + rows["width"]
    state = rows["state"].astype("string").fillna("").str.lower()
    rows["is_failed"] = (state == "failed").to_numpy(dtype=bool)
    rows["counted"] = (state == "complete").to_numpy(dtype=bool)
    value = pd.to_numeric(rows["output_value"], errors="coerce").astype(float)
    rows["has_value"] = value.notna().to_numpy(dtype=bool)
    rows["value"] = value.fillna(0.0).to_numpy()
    rows["month"] = list(zip(start.dt.year, start.dt.month, strict=True))
    rows["ledger_key"] = rows["ledger_id"].astype("string").fillna("").to_numpy(dtype=object)
    if _FEEDSTOCK not in rows.columns:
        rows[_FEEDSTOCK] = pd.Series(pd.NA, index=rows.index, dtype="string")
    return rows


def _ledger_keys(rows: pd.DataFrame, labels: Mapping[str, str]) -> list[_LedgerKey]:
    """The frame's ledgers in display order: the order of ``labels`` when given, then by label."""
    found: list[_LedgerKey] = []
    for key, mine in rows.groupby("ledger_key", sort=False):
        names = mine["output_name"].dropna()
        unit_values = mine["output_unit"].dropna()
        label = labels.get(str(key)) or (str(names.iloc[0]) if not names.empty else "") or str(key) or "(no ledger)"
        found.append(_LedgerKey(str(key), label, str(unit_values.iloc[0]) if not unit_values.empty else None))
    taken = [ledger.label for ledger in found]
    found = [  # two ledgers with one output name stay apart in the legend
        _LedgerKey(k.key, f"{k.label} [{k.key}]", k.unit) if taken.count(k.label) > 1 and k.key else k for k in found
    ]
    order = {key: index for index, key in enumerate(labels)}
    return sorted(found, key=lambda k: (order.get(k.key, len(order)), k.label.casefold(), k.key))


def _groups(rows: pd.DataFrame, by: str, labels: Mapping[str, str], ledgers: list[_LedgerKey]) -> list[_Group]:
    mixed = len(_units(rows)) > 1
    groups: list[_Group] = []
    if by == "ledger":
        for index, ledger in enumerate(ledgers):
            mine = rows[rows["ledger_key"] == ledger.key]
            groups.append(_Group(ledger.key, ledger.label, ledger.legend(mixed), mine, ledger.key, _color(index)))
        return groups
    feedstock = rows[_FEEDSTOCK].astype("string").fillna("")
    names = sorted(set(feedstock), key=lambda name: (name == "", name.casefold()))
    for index, name in enumerate(names):
        label = labels.get(name) or name or "(no feedstock)"
        groups.append(_Group(name, label, label, rows[feedstock == name], ledgers[0].key, _color(index)))
    return groups


def _units(rows: pd.DataFrame) -> list[str]:
    return sorted({str(unit) for unit in rows["output_unit"].dropna() if str(unit)})


def _unit_text(units: list[str]) -> str:
    if not units:
        return "unit not given"
    if len(units) == 1:
        return units[0]
    return "mixed units: " + ", ".join(units)
