"""Which ledgers a report adds up: its allocation is one sum, so batches of several ledgers are a problem unless the
analyst named them (``ledger_checks``), batches of one ledger that cannot be shown to be one the project's
submitted reports hold are one unless named (``_unreported_problems``: biochar or feedstock tonnes are no removals;
when the reports do not say what they hold, or there is none, the ledger is the analyst's to name), a named ledger
no submitted report holds is a warning (``unreported_ledgers``), several ledgers chosen by default are the
analyst's to name (``ledgers_not_named``), and a period without candidates says which ledgers it looked on
(``no_candidates``). Reads only (``GET``): the ledgers' names and the project's reports.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .. import frames
from ..errors import MangroveError, secret_safe_logger
from ._display import _ledger_argument, _plain
from .plan import Problem, ReportPlan
from .report import reported_ledgers, unknown_ledgers_said

if TYPE_CHECKING:
    from . import ReportsMixin

log = secret_safe_logger("mangrove_nb")


def ledger_names(client: ReportsMixin) -> dict[str, str]:
    """Ledger id -> name (``frames.ledger_names``: a ledger without a name by its id), for the plan's rows; none
    when they cannot be read (the plan still comes)."""
    try:
        table = client.ledgers()
    except MangroveError as exc:
        log.warning("Could not read the ledgers' names (%s); ledger_name is left empty.", type(exc).__name__)
        return {}
    return frames.ledger_names(table)


def ledger_checks(client: ReportsMixin, rid: str, rows: list[Mapping[str, Any]], named: list[str] | None,
                  project: str | None = None, reports: list[Any] | None = None) -> tuple[list[Problem], list[str]]:
    """A report's allocation is one sum: batches of several ledgers are a problem (of the report) unless the analyst
    named every one of those ledgers (then a note), and, when ledgers were named, a batch on another ledger is a
    problem of that batch. Batches of one ledger that cannot be shown to be one the project's submitted reports
    hold (they hold others, or do not say, or there is none) are a problem too unless that ledger was named:
    biochar or feedstock tonnes are no removals, and a list of batch ids does not say which ledger it is."""
    by_ledger: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        if row.get("ledger_id") is not None:
            by_ledger.setdefault(str(row["ledger_id"]), []).append(row)
    names = {lg: _plain(next((r["ledger_name"] for r in group if isinstance(r.get("ledger_name"), str)), lg))
             for lg, group in by_ledger.items()}

    def described(ledger: str) -> str:
        group = by_ledger[ledger]
        units = sorted({str(r["unit"]) for r in group if r.get("unit") is not None})
        return (f"{names[ledger]}" + (f" ({', '.join(_plain(u) for u in units)})" if units else "")
                + f": {len(group)} batch(es)")

    shown = "; ".join(described(lg) for lg in by_ledger)
    if named is None:
        if len(by_ledger) == 1:
            return _unreported_problems(client, rid, project, names, shown, reports), []
        if not by_ledger:
            return [], []
        return [Problem(None, "mixed_ledgers",
                        f"Report {rid} would add up batches of {len(by_ledger)} ledgers in one allocation ({shown}). "
                        "A registry report's allocation is one sum: biochar or feedstock tonnes added to removals "
                        "would overstate it. Leave out the batches of the ledgers that are not reported "
                        "(client.report_candidates(report, period) takes the ledgers the project's submitted reports "
                        "hold); or, if this report is meant to add them up, name them: ledgers=[...] in "
                        "plan_report, fill_report or report_candidates (--ledger, once per ledger, on the command "
                        "line).")], []
    wanted = set(named)
    outside = [lg for lg in by_ledger if lg not in wanted]
    problems: list[Problem] = []
    if outside:
        known = ledger_names(client)
        said = ", ".join(_plain(known.get(lg, lg)) for lg in named)
        for ledger in outside:
            problems.extend(Problem(str(r["batch_id"]), "other_ledger",
                                    f"Batch {r['batch_id']} is on {names[ledger]}, not on the ledger(s) named "
                                    f"({said}): leave it out, or name its ledger too.")
                            for r in by_ledger[ledger])
    inside = [lg for lg in by_ledger if lg in wanted]
    notes = ([f"The report would add up batches of {len(inside)} ledgers in one allocation, as named "
              f"({'; '.join(described(lg) for lg in inside)}): check that each is a removal to report to the "
              "registry."] if len(inside) > 1 else [])
    return problems, notes


def _unreported_problems(client: ReportsMixin, rid: str, project: str | None, names: Mapping[str, str],
                         shown: str, reports: list[Any] | None = None) -> list[Problem]:
    """The problem of batches, of one ledger not named, that cannot be shown to be on a ledger the project's
    submitted reports hold: they hold others (``unreported_ledger``), or what they hold is not known, or there is
    none (``reported_ledgers_unknown``). As ``report_candidates``, which then refuses: the ledger is the analyst's
    to name."""
    (ledger, name), = names.items()
    reported, silent = reported_ledgers(client, project, reports)
    if ledger in reported:
        return []
    advice = f"name it with ledgers=[{_ledger_argument(name, ledger)}] (--ledger on the command line)"
    if not reported:
        return [Problem(None, "reported_ledgers_unknown",
                        f"Report {rid} would hold batches of {shown}, and which ledger the project reports to the "
                        f"registry is not known: {unknown_ledgers_said(project, silent)}, and drafts do not count. "
                        "A registry report's allocation is a removal: biochar or feedstock tonnes would overstate "
                        f"it. If these batches are removals to report, {advice}; otherwise leave them out.")]
    known = ledger_names(client)
    held = ", ".join(_plain(known.get(lg, lg)) for lg in reported)
    return [Problem(None, "unreported_ledger",
                    f"Report {rid} would hold batches of {shown}, a ledger none of the project's submitted reports "
                    f"holds (they hold {held}). A registry report's allocation is a removal: biochar or feedstock "
                    "tonnes would overstate it. Leave those batches out (client.report_candidates(report, period) "
                    f"takes the ledgers the project's submitted reports hold); or, if they are removals to report, "
                    f"{advice}.")]


def ledgers_not_named(client: ReportsMixin, rid: str, ledger_ids: list[str]) -> Problem:
    """The problem of a default choice of several ledgers: which to add up on the report is the analyst's to say."""
    try:
        table = client.ledgers()
        described = {str(i): f"{_plain(n) if isinstance(n, str) else i}" + (f" ({_plain(u)})" if isinstance(u, str)
                                                                              else "")
                     for i, n, u in zip(table["id"], table["name"], table["unit"], strict=True)}
    except MangroveError as exc:
        log.warning("Could not read the ledgers' names (%s); they are named by id.", type(exc).__name__)
        described = {}
    shown = ", ".join(described.get(lg, lg) for lg in ledger_ids)
    return Problem(None, "ledgers_not_named",
                   f"The ledgers were chosen by default, from what the project's submitted reports hold, and they are "
                   f"{len(ledger_ids)}: {shown}. Report {rid}'s allocation adds up its batches in one sum, so which "
                   "of them to report is yours to say: name them with ledgers=[...] in client.report_candidates "
                   "(--ledger on the command line, ReportForm(..., ledgers=[...]) in the form).")


def unreported_ledgers(client: ReportsMixin, plan: ReportPlan, named: list[str]) -> list[str]:
    """A warning for each named ledger the plan's batches are on that no submitted report of the project holds
    (when some do): a named ledger is not checked to be a removal, and biochar or feedstock tonnes are not."""
    reported, _ = reported_ledgers(client, plan.report.project_id or client.settings.project_id)
    present = {str(lg) for lg in plan.totals["ledger_id"].dropna()}
    outside = [lg for lg in named if lg in present and lg not in reported]
    if not reported or not outside:
        return []
    known = ledger_names(client)
    held = ", ".join(_plain(known.get(lg, lg)) for lg in reported)
    return [f"{_plain(known.get(lg, lg))} is not a ledger the project's submitted reports hold (they hold {held}): "
            "check that its batches are removals to report to the registry before filling the report with them."
            for lg in outside]


def no_candidates(client: ReportsMixin, rid: str, period: str, ledger_ids: list[str], project: str | None
                  ) -> Problem:
    """The problem of a period with no candidate batch: filling with them would put nothing on the report (and
    take off what it holds)."""
    known = ledger_names(client) if ledger_ids else {}
    shown = [_plain(known.get(lg, lg)) for lg in ledger_ids]
    first = _ledger_argument(known.get(ledger_ids[0]), ledger_ids[0]) if ledger_ids else "'LEDGER'"
    on = f" on {' or '.join(shown)}" if shown else ""
    of = f" of project {project}" if project is not None else ""
    return Problem(None, "no_candidates",
                   f"{period} has no complete batches{on}{of}: generate it first (client.generate({first}, "
                   f"{period!r})), or choose another period. Nothing from it can go on report {rid}.")
