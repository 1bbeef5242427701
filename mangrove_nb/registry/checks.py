"""The checks before a fill or a submission: what the report, the project's batches, each chosen batch's detail and
the project's other reports say, made into a ``ReportPlan`` with every problem the server would refuse (or that
would overstate the report, by the quarterly report's rules in ``frames``: a batch generated with a skipped input
that may overstate it, one of two complete batches of a partition, a balance larger than the output), each naming
its batch and what to do. A batch's ledger is the server's; the analyst's frame's is checked against it.

Reads only (``GET``), through the client (``ReportsMixin``): its ``http``, ``settings``, ``batches()`` and
``ledgers()``. A plan's totals count only the batches without a problem: for a fill, each at the balance it has
now; for a submission, at the amount the report holds of it, checked to be still available (a report that is not
a draft, which cannot change: what it holds, at the amounts it holds). Batches of several ledgers are a problem
unless the analyst named those ledgers; emptying a draft is one unless asked for. Also here: what differs between a
submission's confirmation and the report read again (``changed_since_confirmed``). Which ledgers a report adds up
(several, or one that no submitted report holds, unless named; ledgers chosen by default; a period without
candidates) is checked in ``_ledgers``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from .. import frames
from .._arguments import match_ledger
from ..errors import MangroveError, NotFoundError, ValidationError, secret_safe_logger
from ._batch_problems import (
    batch_problems,
    ledger_claimed,
    partition_problems,
    skipped_input,
    unit_problems,
    unknown_ledger,
)
from ._display import _amount_text, _plain
from ._input import Confirmed
from ._ledgers import ledger_checks, ledger_names
from ._values import _frame, _missing, _number, _text
from .plan import PLAN_BATCHES_SCHEMA, Problem, ReportPlan, _totals, months_text
from .report import Report, project_filter, read_details

if TYPE_CHECKING:
    from . import ReportsMixin

log = secret_safe_logger("mangrove_nb")

# A confirmed amount and the one the report holds are the same to the API's 3 decimals.
_CONFIRMED_SLACK = 0.0005


def make_plan(client: ReportsMixin, report: Report, wanted: list[str], ledger_of: Mapping[str, str], *,
              submitting: bool, named: list[str] | None = None, allow_empty: bool = False) -> ReportPlan:
    """The plan of filling ``report`` with ``wanted`` (``ledger_of``: the ledger of the ids whose frame said it),
    or (``submitting``) of submitting the batches it holds: every problem found, the totals without them.

    ``named`` are the ledgers (ids) the analyst named: batches of several ledgers are a problem unless every one is
    named (then a note), and a batch on a ledger not named is one. Emptying a draft that holds batches is a problem
    unless ``allow_empty``. A batch also on another draft is a note naming it; batches of other months than the
    report's name says (a quarter such as 2025Q1, or a year) a warning. A batch generated with a skipped input
    that may overstate it (``skipped_input``), whose ledger is not known (``unknown_ledger``) or is not the one the
    analyst's frame says (``ledger_mismatch``), that is one of two complete batches of its partition
    (``duplicate_partition``) or whose balance exceeds its output (``balance_exceeds_output``) is a problem of
    that batch. A draft that lists no batch is noted as possibly unlisted only when it was changed after it was
    made (``_may_be_unlisted``)."""
    rid = report.id
    current = list(report.batch_ids)
    notes: list[str] = []
    project = report.project_id or client.settings.project_id
    if report.project_id is None:
        notes.append(f"Report {rid} names no project: " + (
            f"its batches were checked against the session's project {project}." if project is not None
            else "the batches were not checked to belong to its project."))
    if report.inclusions_source == "none" and report.allocated_amount is not None:
        notes.append(f"Report {rid} has an allocation but lists no batches, and no batch names it: its batches "
                     "are not known, so none is shown as kept or removed.")
    elif (report.inclusions_source == "none" and report.status == "draft" and not submitting and wanted
          and _may_be_unlisted(report)):
        notes.append(_unlisted_note(report))
    pool = batch_rows(client, project, [*wanted, *current], ledger_of)
    details = batch_details(client, [b for b in dict.fromkeys([*wanted, *current]) if b in pool.found])
    reports = client.http.reports(**project_filter(project))  # read once, for the two checks that need them
    elsewhere, on_drafts = on_other_reports(rid, details, reports)
    on_ledgers = pool.listing[pool.listing["ledger_id"].notna()]
    duplicates = {bid: group for group in frames.duplicate_partitions(on_ledgers) for bid in group[3]}

    problems: list[Problem] = []
    if submitting and report.status != "draft":
        problems.append(Problem(None, "not_draft", _not_draft(report, "submitted")))
    elif not submitting and report.status is not None and report.status != "draft":
        problems.append(Problem(None, "not_draft", _not_draft(report, "filled")))
    if submitting and not current:
        problems.append(Problem(None, "empty", _unlisted(rid)))
    # A report that is not a draft cannot change: what it holds is shown at the amounts it holds.
    settled = report.status is not None and report.status != "draft"
    included = {str(r.batch_id): r for r in report.inclusions.itertuples(index=False)}
    result = current if submitting else wanted
    in_current, in_result = set(current), set(result)
    rows: dict[str, dict[str, Any]] = {}
    found_of: dict[str, list[Problem]] = {}
    for bid in dict.fromkeys([*result, *current]):
        row = pool.row(bid)
        inclusion = included.get(bid)
        if inclusion is not None:  # what the report lists, where the batch itself does not say
            row["unit"] = row.get("unit") or _text(inclusion.unit)
            row["tracking_id"] = row.get("tracking_id") or _text(inclusion.tracking_id)
            row["ledger_id"] = row.get("ledger_id") or _text(inclusion.ledger_id)
        # A fill (re-)includes every batch at its balance now; a submission allocates what the report holds.
        held = _number(inclusion.amount) if inclusion is not None else None
        # Removed batches are not checked (the report would no longer hold them), nor those a report that is
        # not a draft holds (its allocation took their balance; it cannot change anyway).
        checked = bid in in_result and not (bid in in_current and settled)
        found_of[bid] = (batch_problems(bid, row, pool, elsewhere, held if submitting else None, project=project,
                                        on_report=bid in in_current, submitting=submitting) if checked else [])
        if checked and bid in pool.found and row.get("ledger_id") is None:
            found_of[bid].append(unknown_ledger(bid, pool.unconfirmed.get(bid)))
        if checked and bid in pool.claimed:
            found_of[bid].append(ledger_claimed(bid, *pool.claimed[bid], pool.names))
        if checked and bid in pool.found:
            found_of[bid].extend(partition_problems(rid, bid, row, duplicates.get(bid), pool.names))
        if checked and bid in details:
            skipped = skipped_input(rid, bid, row, details[bid])
            if isinstance(skipped, Problem):
                found_of[bid].append(skipped)
            elif skipped is not None:
                notes.append(skipped)
        amount = held if submitting or (settled and bid in in_current) else row.get("ledger_balance")
        rows[bid] = {**row, "batch_id": bid, "amount": amount}
    for problem in unit_problems(rid, [rows[b] for b in result]):
        found_of[str(problem.batch_id)].append(problem)
    ledger_problems, ledger_notes = ledger_checks(client, rid, [rows[b] for b in result], named, project, reports)
    for problem in ledger_problems:
        if problem.batch_id is None:
            problems.append(problem)
        else:
            found_of[str(problem.batch_id)].append(problem)
    for bid in rows:
        problems.extend(found_of[bid])
        rows[bid]["problem"] = " ".join(p.message for p in found_of[bid]) or None
    if not submitting and not result and current and not settled and not allow_empty:
        problems.append(Problem(None, "would_empty", _would_empty(report)))
    notes.extend(ledger_notes)
    notes.extend(_draft_notes(on_drafts, [b for b in result if b in on_drafts], rows))
    warnings = _period_warnings(report, [rows[b] for b in (current if settled else result)], settled=settled)
    added = _frame([rows[b] for b in result if b not in in_current], PLAN_BATCHES_SCHEMA)
    removed = _frame([rows[b] for b in current if b not in in_result], PLAN_BATCHES_SCHEMA)
    kept = _frame([rows[b] for b in result if b in in_current], PLAN_BATCHES_SCHEMA)
    # What it would hold; a report that is not a draft holds what it holds (it cannot be filled).
    totals = _totals(_frame([rows[b] for b in (current if settled else result)], PLAN_BATCHES_SCHEMA))
    return ReportPlan(report, tuple(result), added, removed, kept, totals, tuple(problems), tuple(notes),
                      tuple(warnings), tuple(named) if named is not None else None)


def batch_rows(client: ReportsMixin, project: str | None, ids: list[str], ledger_of: Mapping[str, str]) -> _Pool:
    """The batches ``ids`` as plan rows, from the project's listing (or every batch's, without a project); the ids
    it lacks are read one by one: 404 is an unknown batch, anything else another project's.

    A batch's ledger is what the server says: ``GET /batches`` where it names it, else the ledgers' own listings
    (``_ledgers_listings``, read once, when some batch of the project does not say it); another project's batch,
    read alone, is on the ledger its detail names, if any.
    The ledger the analyst's frame gives (``ledger_of``) is never taken for it: it is checked against the server's
    (``_Pool.claimed`` when they differ, ``_Pool.unconfirmed`` when the server says none). The pool keeps the
    project's batches, each on its ledger (``listing``), for the checks that compare a batch with its partition."""
    listing = frames.batches_frame(client.http.batches(**project_filter(project)))
    wanted = set(ids)
    in_listing = set(listing["id"])
    outside = [b for b in dict.fromkeys(ids) if b not in in_listing]
    details = dict(zip(outside, read_details(client, outside), strict=True))
    names: dict[str, str] = {}
    known: dict[str, str] = {}
    listed = [b for b in dict.fromkeys(ids) if b in in_listing]
    if listed and listing["ledger_id"].isna().any():
        # GET /batches does not say which ledger each batch is on (as the emulator's): read them ledger by ledger.
        by_ledger = _ledgers_listings(client, listed, ledger_of)
        known = {str(i): str(lg) for i, lg in zip(by_ledger["id"], by_ledger["ledger_id"], strict=True)
                 if isinstance(lg, str)}
        names = {str(lg): str(n) for lg, n in zip(by_ledger["ledger_id"], by_ledger["ledger_name"], strict=True)
                 if isinstance(lg, str) and isinstance(n, str)}
        said = listing["id"].map(known).astype(listing["ledger_id"].dtype)
        listing["ledger_id"] = listing["ledger_id"].fillna(said)
    rows: dict[str, dict[str, Any]] = {}
    for record in listing[listing["id"].isin(wanted)].to_dict("records"):
        rows[str(record["id"])] = _row_of(record, None)
    unknown: set[str] = set()
    other: set[str] = set()
    for bid, detail in details.items():
        if isinstance(detail, NotFoundError):
            unknown.add(bid)
            continue
        if project is not None:  # it exists, yet the project's listing does not have it
            other.add(bid)
        record = frames.batches_frame([detail]).to_dict("records")[0]
        rows[bid] = _row_of(record, None)  # another project's: its own detail's ledger, if it says one
    if rows and not names:
        names = ledger_names(client)
    claimed: dict[str, tuple[str, str]] = {}
    unconfirmed: dict[str, str] = {}
    for bid, row in rows.items():
        ledger = row.get("ledger_id")
        row["ledger_name"] = names.get(ledger) if isinstance(ledger, str) else None
        claim = ledger_of.get(bid)
        if claim is None:
            continue
        if ledger is None:
            unconfirmed[bid] = claim
        elif _claimed_ledger(claim, names) != ledger:
            claimed[bid] = (claim, ledger)
    return _Pool(rows, unknown, other, claimed=claimed, unconfirmed=unconfirmed, listing=listing, names=names)


def _claimed_ledger(claim: str, names: Mapping[str, str]) -> str | None:
    """The ledger a frame's ``ledger_id`` cell names, as every call reads one (an id, or a name in any case:
    ``_arguments.match_ledger``); None when it names none or several."""
    try:
        return match_ledger(claim, names)
    except ValidationError:
        return None


def _ledgers_listings(client: ReportsMixin, ids: list[str], ledger_of: Mapping[str, str]) -> pd.DataFrame:
    """The ledgers' own listings of batches that say which ledger ``ids`` are on: first those of the ledgers the
    analyst's frame names, when it names one for every id (fewer requests); every ledger's when some id is not on
    them (a frame that names a wrong ledger), or some id has none named. A batch's partners in its partition are on
    its ledger, so either listing holds them."""
    claims = sorted({ledger_of[b] for b in ids if b in ledger_of})
    if ids and all(b in ledger_of for b in ids):
        try:
            named = client.batches(claims)
        except MangroveError as exc:  # a ledger the frame names that is no ledger: every ledger's, below
            log.info("The ledgers a frame names could not be read (%s); reading every ledger's batches.",
                     type(exc).__name__)
        else:
            if set(ids) <= set(named["id"]):
                return named
    return client.batches(None)


def batch_details(client: ReportsMixin, ids: list[str]) -> dict[str, Mapping[str, Any]]:
    """``GET /batches/{id}`` of the ids, by id (those that answered 404 left out)."""
    details = {}
    for bid, detail in zip(ids, read_details(client, ids), strict=True):
        if isinstance(detail, Mapping):
            details[bid] = detail
    return details


def on_other_reports(rid: str, details: Mapping[str, Mapping[str, Any]], reports: list[Any]
                     ) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Batch id -> the other reports that are not drafts and hold it (from those reports' inclusions, and from the
    batches' ``report_allocations``), and batch id -> the other drafts that list it (``reports``: the project's)."""
    found: dict[str, list[str]] = {}
    drafts: dict[str, list[str]] = {}

    def note(where: dict[str, list[str]], bid: str, report_id: str, name: Any, status: Any) -> None:
        said = f"report {report_id}" + (f" {_plain(str(name))!r}" if isinstance(name, str) and name else "") + (
            f" ({_plain(str(status))})" if isinstance(status, str) else "")
        if said not in where.setdefault(bid, []):
            where[bid].append(said)

    for item in reports:
        if not isinstance(item, Mapping) or str(item.get("id")) == rid:
            continue
        where = drafts if item.get("status") == "draft" else found
        for inclusion in item.get("inclusions") or []:
            if isinstance(inclusion, Mapping) and inclusion.get("batch_id") is not None:
                note(where, str(inclusion["batch_id"]), str(item.get("id")), item.get("name"), item.get("status"))
    for bid, detail in details.items():
        for entry in detail.get("report_allocations") or []:
            other = entry.get("report") if isinstance(entry, Mapping) else None
            if not isinstance(other, Mapping) or other.get("id") is None or str(other.get("id")) == rid:
                continue
            if other.get("status") != "draft":
                note(found, bid, str(other["id"]), other.get("name"), other.get("status"))
    return found, drafts


@dataclass
class _Pool:
    """The batches a plan looks at: their rows by id, the ids no batch has, and those of another project; the
    batches whose ledger the analyst's frame gave otherwise than the server (id -> (the frame's, the server's)) or
    that the server puts on no ledger (id -> the frame's); the project's batches, on the server's ledgers; and
    ledger id -> name."""

    rows: dict[str, dict[str, Any]]
    unknown: set[str]
    other_project: set[str]
    claimed: dict[str, tuple[str, str]] = field(default_factory=dict)
    unconfirmed: dict[str, str] = field(default_factory=dict)
    listing: pd.DataFrame = field(default_factory=lambda: frames.empty_frame(frames.BATCHES_SCHEMA))
    names: dict[str, str] = field(default_factory=dict)

    @property
    def found(self) -> set[str]:
        return set(self.rows) - self.other_project

    def row(self, bid: str) -> dict[str, Any]:
        return dict(self.rows.get(bid, {}))


def _row_of(record: Mapping[str, Any], ledger_id: str | None) -> dict[str, Any]:
    """A plan row's batch columns from a ``frames.BATCHES_SCHEMA`` record."""
    return {"tracking_id": _text(record.get("tracking_id")), "ledger_id": _text(record.get("ledger_id")) or ledger_id,
            "ledger_name": _text(record.get("ledger_name")),
            "start_time": record.get("start_time") if not _missing(record.get("start_time")) else None,
            "end_time": record.get("end_time") if not _missing(record.get("end_time")) else None,
            "state": _text(record.get("state")), "ledger_balance": _number(record.get("ledger_balance")),
            "output_value": _number(record.get("output_value")), "unit": _text(record.get("output_unit"))}


def _would_empty(report: Report) -> str:
    rid, held = report.id, report.inclusions
    per_unit: dict[str, float] = {}
    for unit, amount in zip(held["unit"], held["amount"], strict=True):
        if not _missing(amount):
            per_unit[_text(unit) or ""] = per_unit.get(_text(unit) or "", 0.0) + float(amount)
    total = " + ".join(_amount_text(a, u) for u, a in per_unit.items())
    return (f"Filling report {rid} with no batch would take all {len(held)} of its batches off"
            + (f" ({total})" if total else "") + " and leave the draft empty. If the period has no batches yet, "
            "generate it first; to empty the draft on purpose, pass allow_empty=True to plan_report and "
            "fill_report.")


def _draft_notes(on_drafts: Mapping[str, list[str]], ids: list[str], rows: Mapping[str, Mapping[str, Any]]
                 ) -> list[str]:
    """One note per other draft that lists some of the batches: a batch is reported once."""
    by_draft: dict[str, list[str]] = {}
    for bid in ids:
        for draft in on_drafts.get(bid, []):
            by_draft.setdefault(draft, []).append(_plain(rows[bid].get("tracking_id") or bid))
    notes = []
    for draft, batches in by_draft.items():
        shown = ", ".join(batches[:5]) + (f", and {len(batches) - 5} more" if len(batches) > 5 else "")
        notes.append(f"{len(batches)} of these batches ({shown}) are also on {draft}: a batch is reported "
                     "once, so whichever report is submitted first takes their balance and the other's submission "
                     "is refused; keep them on one draft only.")
    return notes


# A report's name that says its period: "2025Q1 Quarterly Report", "Q1 2025", "Annual report 2024".
_QUARTER_NAMED = (re.compile(r"(?<![0-9])((?:19|20)[0-9]{2})\s*[-_/ ]?\s*Q([1-4])(?![0-9])", re.IGNORECASE),
                  re.compile(r"(?<![0-9A-Za-z])Q([1-4])\s*[-_/ ]?\s*((?:19|20)[0-9]{2})(?![0-9])", re.IGNORECASE))
_YEAR_NAMED = re.compile(r"(?<![0-9])((?:19|20)[0-9]{2})(?![0-9])")


def named_period(name: str | None) -> tuple[str, pd.Timestamp, pd.Timestamp] | None:
    """The quarter or year a report's name carries (its label, start and end in UTC), or None when it names none
    (or several)."""
    if not isinstance(name, str):
        return None
    quarters = {(int(m.group(1)), int(m.group(2))) for m in _QUARTER_NAMED[0].finditer(name)}
    quarters |= {(int(m.group(2)), int(m.group(1))) for m in _QUARTER_NAMED[1].finditer(name)}
    if len(quarters) == 1:
        year, quarter = quarters.pop()
        start = pd.Timestamp(year=year, month=3 * quarter - 2, day=1, tz="UTC")
        return f"{year}Q{quarter}", start, start + pd.DateOffset(months=3)
    years = {int(m.group(1)) for m in _YEAR_NAMED.finditer(name)}
    if quarters or len(years) != 1:
        return None
    year = years.pop()
    return str(year), pd.Timestamp(year=year, month=1, day=1, tz="UTC"), pd.Timestamp(year=year + 1, month=1,
                                                                                       day=1, tz="UTC")


def _period_warnings(report: Report, rows: list[Mapping[str, Any]], *, settled: bool) -> list[str]:
    """A warning when some batches the report would hold start outside the period its name carries."""
    named = named_period(report.name)
    if named is None:
        return []
    label, start, end = named
    starts = [r.get("start_time") for r in rows if isinstance(r.get("start_time"), pd.Timestamp)]
    outside = [s for s in starts if not start <= s < end]
    if not outside:
        return []
    verb = "holds" if settled else "would hold"
    return [f"Report {report.id} is named {_plain(report.name)!r}, for {label}, but {len(outside)} of the "
            f"{len(starts)} batches it {verb} are of {months_text(outside)}: check that this is the report for "
            f"them (the period chosen, or the report)."]


def _may_be_unlisted(report: Report) -> bool:
    """Whether a draft that lists no batch may yet hold some the server does not list: its object has no
    ``inclusions`` list at all, or it was changed after it was made (``updated_at`` later than ``created_at``, as in
    the API documentation's example of a draft read back after a fill, with ``inclusions: []``). A draft never
    changed, listing none, holds none."""
    if not isinstance(report.raw.get("inclusions"), list):
        return True
    return report.created_at is not None and report.updated_at is not None and report.updated_at > report.created_at


def _unlisted_note(report: Report) -> str:
    why = ("its answer has no inclusions field" if not isinstance(report.raw.get("inclusions"), list) else
           "it was changed after it was made (updated_at is later than created_at)")
    return (f"Report {report.id} lists no batch, and {why}: if it was filled, this server may not list a draft's "
            "batches (the API documentation's example reads a filled draft back with inclusions: []), so some "
            "shown as added may be on it already. Filling it with these batches makes them its batches either way.")


def _unlisted(rid: str) -> str:
    return (f"Report {rid} lists no batch. Either it holds no batch, so there is nothing to submit (fill it first "
            f"with client.fill_report({rid!r}, batches)), or the server does not list this draft's batches (the API "
            f"documentation's example reads a draft back with inclusions: []), so they cannot be checked here. If "
            f"you filled it, client.submit_report({rid!r}, even_if_unlisted=True) sends it and lets the server's own "
            "checks decide (it refuses a report that does not meet the submission requirements with 422).")


def changed_since_confirmed(report: Report, confirmed: Confirmed) -> list[Problem]:
    """What differs between the batches and amounts a submission's confirmation named and those ``report`` holds
    now: a batch put on it since, one taken off, an amount changed (to the API's 3 decimals). Each is a
    ``changed_since_confirmed`` problem naming the batch."""
    rid = report.id
    held = {str(r.batch_id): (_number(r.amount), _text(r.unit)) for r in report.inclusions.itertuples(index=False)}
    problems = []
    for bid, (amount, unit) in held.items():
        if bid not in confirmed:
            problems.append(Problem(bid, "changed_since_confirmed", f"Batch {bid} ({_amount_text(amount, unit)}) "
                                    f"was put on report {rid} after the submission was confirmed."))
    for bid, (amount, unit) in confirmed.items():
        if bid not in held:
            problems.append(Problem(bid, "changed_since_confirmed", f"Batch {bid} (confirmed with "
                                    f"{_amount_text(amount, unit)}) was taken off report {rid} after the "
                                    "submission was confirmed." if amount is not None else
                                    f"Batch {bid} was taken off report {rid} after the submission was confirmed."))
            continue
        now, held_unit = held[bid]
        if amount is not None and (now is None or abs(now - amount) > _CONFIRMED_SLACK
                                   or (unit is not None and held_unit is not None and unit != held_unit)):
            shown_unit = unit or held_unit
            problems.append(Problem(bid, "changed_since_confirmed", f"Batch {bid}: "
                                    f"{_amount_text(amount, shown_unit)} was confirmed, report {rid} now holds "
                                    f"{_amount_text(now, held_unit or shown_unit)} of it."))
    return problems


def confirmed_text(confirmed: Confirmed, report: Report) -> str:
    """What a confirmation named, in a few words: its batch count and total per unit (a batch's unit as the report
    has it where the confirmation did not say)."""
    units = {str(r.batch_id): _text(r.unit) for r in report.inclusions.itertuples(index=False)}
    per_unit: dict[str, float] = {}
    unknown = 0
    for bid, (amount, unit) in confirmed.items():
        if amount is None:
            unknown += 1
            continue
        key = unit or units.get(bid) or ""
        per_unit[key] = per_unit.get(key, 0.0) + amount
    total = " + ".join(_amount_text(amount, unit) for unit, amount in per_unit.items())
    said = f"{len(confirmed)} batch(es)" + (f", {total}" if total else "")
    return said + (f" ({unknown} without an amount)" if unknown and per_unit else "")


def _not_draft(report: Report, what: str) -> str:
    status = report.status
    said = f"is {status!r}" if status is not None else "does not say its status"
    return (f"Report {report.id} {said}, not 'draft': only a draft can be {what}. Choose a draft report "
            "(client.reports(status='draft')); a refused submission puts a report back to draft.")

