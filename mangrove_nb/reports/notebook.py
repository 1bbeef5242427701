"""The report notebook: the template shipped in the package, the period (a quarter, a year, or a range of either:
``report_range``), the parameters injected papermill's way, the arguments checked before anything runs, the
output's file name, and what the cells hand back.

The template is ``templates/quarterly_report.ipynb`` beside this module (package data, so a wheel has it);
``notebooks/03_quarterly_report.ipynb`` is the same file, the starter copy users open, and both are written by
``notebooks/build_report_template.py``. Its ``parameters`` cell (``ledgers``, ``quarter``, ``base_url``,
``project``; never the token) follows papermill's convention: ``build_report`` adds the values in a new cell tagged
``injected-parameters`` right after it, exactly as papermill does, so papermill (and the orchestrators that run
papermill) run the same template unchanged. The ``quarter`` parameter may also be a year ("2025"): the same template
then renders an annual report, compared with the year before, and ``build_report`` words its text cells for a year.

nbformat is imported inside the functions that need it.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mangrove_nb import Period, PeriodError, parse_period
from mangrove_nb.errors import ReportError
from mangrove_nb.frames import ledger_names

from ._text import _one_line, _plural
from .clean import _secret_scrubber

if TYPE_CHECKING:
    from nbformat import NotebookNode

    from mangrove_nb import Client

DEFAULT_TEMPLATE = Path(__file__).resolve().parent / "templates" / "quarterly_report.ipynb"
#: The most reports one command renders (a range of quarters or years).
MAX_REPORTS = 40
PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"
# Output metadata key under which the template's cells hand machine-readable facts back (fingerprint, totals).
META_KEY = "mangrove_nb"


def quarter_period(quarter: str | Period) -> Period:
    """The calendar quarter ``quarter`` names ("2025Q1", also "2025-Q1"), or ``PeriodError`` saying why not."""
    period = parse_period(quarter)
    if period.kind != "quarter":
        raise PeriodError(f"A report covers a calendar quarter such as '2025Q1'; {quarter!r} is a {period.kind} "
                          f"({period}).")
    return period


def report_period(period: str | int | Period) -> Period:
    """The calendar quarter ("2025Q1") or year ("2025", an annual report) a report covers, or ``PeriodError``."""
    found = parse_period(period)
    if found.kind not in ("quarter", "year"):
        raise PeriodError(f"A report covers a calendar quarter such as '2025Q1' or a year such as '2025'; "
                          f"{period!r} is a {found.kind} ({found}).")
    return found


def report_range(text: str | int, kind: str = "quarter") -> list[Period]:
    """The periods ``text`` names: one quarter (``kind="quarter"``) or year (``kind="year"``), or a range of them
    joined by ``..`` ("2024Q1..2025Q4", "2023..2025"), both ends included, at most ``MAX_REPORTS``.

    A reversed range, ends of different kinds (a quarter and a month), periods of the other kind, or too many are
    a one-line ``PeriodError`` naming the fix, raised before anything runs.
    """
    example, other, flag = (("'2024Q1..2025Q4'", "year", "--year") if kind == "quarter"
                            else ("'2023..2025'", "quarter", "--quarter"))
    shown = _one_line(str(text), 60)
    parts = str(text).strip().split("..")
    if len(parts) > 2 or not all(part.strip() for part in parts):
        raise PeriodError(f"Cannot read {shown!r} as a range: give two {kind}s joined by '..', such as {example}.")
    ends = []
    for part in parts:
        try:
            ends.append(parse_period(part.strip()))
        except PeriodError:
            raise PeriodError(f"Cannot read {_one_line(part.strip(), 40)!r} as a {kind}"
                              f"{f' in the range {shown!r}' if len(parts) == 2 else ''}: give "
                              f"{f'two {kind}s joined by ' + repr('..') if len(parts) == 2 else f'a {kind}'}, such as "
                              f"{example if len(parts) == 2 else _EXAMPLES[kind]}.") from None
    kinds = {end.kind for end in ends}
    if len(kinds) > 1:
        raise PeriodError(f"The range {shown!r} mixes a {ends[0].kind} ({ends[0].label}) with a {ends[1].kind} "
                          f"({ends[1].label}): give two {kind}s joined by '..', such as {example}.")
    if kinds != {kind}:
        found = ends[0].kind
        if found == other:
            raise PeriodError(f"{shown!r} is {'a range of ' + found + 's' if len(ends) == 2 else 'a ' + found}: "
                              f"give it as {flag} {shown} ({other}{'s' if len(ends) == 2 else ''}= in Python), or give "
                              f"{kind}s such as {example}.")
        raise PeriodError(f"A report covers a calendar {kind}; {shown!r} is a {found}: give a {kind} such as "
                          f"{_EXAMPLES[kind]}, or a range such as {example}.")
    first, last = ends[0], ends[-1]
    if last.start < first.start:
        raise PeriodError(f"The range {shown!r} ends before it starts: give the earlier {kind} first, "
                          f"'{last.label}..{first.label}'.")
    periods = [first]
    while periods[-1].end < last.end:
        periods.append(_following(periods[-1]))
        if len(periods) > MAX_REPORTS:
            break
    if len(periods) > MAX_REPORTS:
        count = _count(first, last)
        split = _following_by(first, MAX_REPORTS - 1)
        raise PeriodError(f"The range {shown!r} covers {count} {kind}s; one command renders at most {MAX_REPORTS}: "
                          f"split it, e.g. '{first.label}..{split.label}' then "
                          f"'{_following(split).label}..{last.label}'.")
    return periods


_EXAMPLES = {"quarter": "'2025Q1'", "year": "'2025'"}


def _following(period: Period) -> Period:
    """The quarter or year right after ``period``."""
    if period.kind == "year":
        return parse_period(str(period.start.year + 1))
    quarter = (period.start.month - 1) // 3 + 1
    year, quarter = (period.start.year + 1, 1) if quarter == 4 else (period.start.year, quarter + 1)
    return parse_period(f"{year}Q{quarter}")


def _following_by(period: Period, steps: int) -> Period:
    for _ in range(steps):
        period = _following(period)
    return period


def _count(first: Period, last: Period) -> int:
    if first.kind == "year":
        return last.start.year - first.start.year + 1
    return (last.start.year - first.start.year) * 4 + (last.start.month - first.start.month) // 3 + 1


def build_report(quarter: str, *, ledgers: Sequence[str] | None = None, base_url: str | None = None,
                 project: int | str | None = None, template: str | os.PathLike[str] | None = None) -> NotebookNode:
    """The report notebook for ``quarter`` (a calendar quarter, or a year for an annual report, whose text cells
    say "year" where the template says "quarter"): the template with its parameters injected, papermill-style.

    The values go in a new code cell tagged ``injected-parameters`` right after the cell tagged ``parameters``
    (replacing an earlier injected cell), written as papermill writes it (``# Parameters`` then one
    ``name = value`` line each), and in ``metadata.papermill.parameters``. Only ``quarter`` and the arguments
    given are injected; the template's defaults stand for the others. The token is never a parameter.
    """
    import nbformat

    period = report_period(quarter)
    label = period.label
    parameters: dict[str, Any] = {"quarter": label}
    if ledgers is not None:
        if isinstance(ledgers, str):
            raise TypeError("ledgers must be a list of ledger ids or names, not a single string; wrap it: "
                            "[ledger].")
        parameters["ledgers"] = [str(ledger) for ledger in ledgers]
    if base_url is not None:
        parameters["base_url"] = str(base_url)
    if project is not None:
        parameters["project"] = str(project)
    path = Path(template) if template is not None else DEFAULT_TEMPLATE
    if not path.is_file():
        raise ReportError(f"The report template {path} does not exist; pass template= the path of a notebook with "
                          f"a cell tagged '{PARAMETERS_TAG}'.")
    nb = nbformat.v4.upgrade(nbformat.read(path, as_version=4))
    nb = inject_parameters(nb, parameters)
    return annual_wording(nb) if period.kind == "year" else nb


_QUARTER_WORD = re.compile(r"\b([Qq])uarter(ly|s)?\b")


def annual_wording(nb: NotebookNode) -> NotebookNode:
    """The template's text cells worded for a year: "quarter" becomes "year", "quarters" "years", "quarterly"
    "annual" (capitals kept). Code cells are left as they are: the sections word what they show themselves."""

    def year(match: re.Match[str]) -> str:
        capital, ending = match.group(1) == "Q", match.group(2) or ""
        word = "annual" if ending == "ly" else "year" + ending
        return word.capitalize() if capital else word

    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = _QUARTER_WORD.sub(year, str(cell.source))
    return nb


def inject_parameters(nb: NotebookNode, parameters: Mapping[str, Any]) -> NotebookNode:
    """Add ``parameters`` to ``nb`` as papermill's ``parameterize_notebook`` does (Python kernels)."""
    import nbformat

    source = "# Parameters\n" + "".join(f"{name} = {_python_literal(value)}\n" for name, value in parameters.items())
    cell = nbformat.v4.new_code_cell(source=source)
    cell.id = INJECTED_TAG  # papermill's is random; a fixed id keeps our output deterministic
    cell.metadata["tags"] = [INJECTED_TAG]
    injected = _first_tagged(nb, INJECTED_TAG)
    declared = _first_tagged(nb, PARAMETERS_TAG)
    if injected >= 0:
        nb.cells = [*nb.cells[:injected], cell, *nb.cells[injected + 1:]]
    elif declared >= 0:
        nb.cells = [*nb.cells[:declared + 1], cell, *nb.cells[declared + 1:]]
    else:
        raise ReportError(f"The template has no cell tagged '{PARAMETERS_TAG}' to inject the parameters after.")
    nb.metadata.setdefault("papermill", {})["parameters"] = dict(parameters)
    return nb


def _python_literal(value: Any) -> str:
    """A value as papermill's PythonTranslator writes it (strings double-quoted, unicode-escaped)."""
    if value is None or isinstance(value, bool | int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if value == value and abs(value) != float("inf") else f"float('{value}')"
    if isinstance(value, str):
        return '"' + value.encode("unicode_escape").decode("utf-8").replace('"', r"\"") + '"'
    if isinstance(value, list | tuple):
        inner = ", ".join(_python_literal(item) for item in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner}{',' if len(value) == 1 else ''})"
    raise TypeError(f"Cannot write a {type(value).__name__} as a notebook parameter.")


def _first_tagged(nb: NotebookNode, tag: str) -> int:
    return next((i for i, cell in enumerate(nb.cells) if tag in cell.get("metadata", {}).get("tags", [])), -1)


# --- the arguments, checked before anything runs ---------------------------------------------------------


def _check_project(client: Client, project_id: str) -> None:
    """An unknown project is a one-line ``ValidationError`` now (``argument="project"``), not a failing cell later."""
    from mangrove_nb.errors import NotFoundError, ValidationError

    problem = None
    try:
        client.project(project_id)
    except NotFoundError:
        # A wrong base URL (without /api/v1, say) answers 404 to everything: /ledgers, which every API serves, tells
        # it apart from an unknown project, and its NotFoundError says the base URL is probably wrong.
        client.ledgers()
        shown = _one_line(_secret_scrubber([client.settings.token])(project_id), 40)
        problem = (f"The API has no project {shown!r} that this token can see (from --project, "
                   "project= or MANGROVE_PROJECT_ID); give the id of the project the ledgers belong to.")
    if problem is not None:
        raise ValidationError(problem, argument="project")


def _project_argument(project: Any) -> str:
    if isinstance(project, bool) or not isinstance(project, int | str) or not str(project).strip():
        from mangrove_nb.errors import ValidationError

        raise ValidationError(f"project must be a project id such as 123, not {_one_line(repr(project), 60)}.",
                              argument="project")
    return str(project).strip()


def resolve_ledgers(client: Client, ledgers: Sequence[str]) -> list[tuple[str, str]]:
    """``(id, name)`` of each ledger in ``ledgers`` (ids or names, exact or case-insensitive), in the order given,
    without repeats; reads the ledger list once.

    Raises ``ValidationError`` (``argument="ledger"``, one line) for an empty list, and for a ledger the API does
    not list, naming the closest names and ids. The message never repeats the token (a token pasted as a ledger
    is masked).
    """
    import difflib

    from mangrove_nb.errors import ValidationError

    wanted = list(dict.fromkeys(str(ledger).strip() for ledger in ledgers))
    if not wanted or not all(wanted):
        raise ValidationError("Give at least one ledger id or name (--ledger), or none for every ledger with a "
                              "model.", argument="ledger")
    names = ledger_names(client.ledgers())
    scrub = _secret_scrubber([client.settings.token])
    found: list[tuple[str, str]] = []
    for ledger in wanted:
        ledger_id = _match_ledger(ledger, names)
        if ledger_id is None:
            close = difflib.get_close_matches(ledger, list(names.values()), n=3, cutoff=0.5)
            close += [i for i in difflib.get_close_matches(ledger, list(names), n=2, cutoff=0.8) if i not in close]
            hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            listed = ", ".join(f"{names[i]!r} ({i})" for i in sorted(names, key=lambda i: (names[i], i))[:8])
            shown = _one_line(scrub(ledger), 80)
            raise ValidationError(_one_line(scrub(
                f"No ledger is called or has the id '{shown}'.{hint} The API lists {_plural(len(names), 'ledger')}: "
                f"{listed or 'none'}{'...' if len(names) > 8 else ''}.")), argument="ledger")
        if ledger_id not in (i for i, _ in found):
            found.append((ledger_id, names[ledger_id]))
    return found


def _match_ledger(value: str, names: Mapping[str, str]) -> str | None:
    """The id of the ledger ``value`` names: an id, else an exact name, else a name ignoring case."""
    from mangrove_nb.errors import ValidationError

    if value in names:
        return value
    def exact(name: str) -> bool:
        return name == value

    def folded(name: str) -> bool:
        return name.casefold() == value.casefold()

    for same in (exact, folded):
        hits = [i for i, n in names.items() if same(n)]
        if len(hits) > 1:
            raise ValidationError(f"Several ledgers are called {_one_line(value, 80)!r} ({', '.join(hits)}); give "
                                  "the id instead.", argument="ledger")
        if hits:
            return hits[0]
    return None


def report_stem(period: Period, ledgers: Sequence[tuple[str, str]] | None,
                all_ledgers: Sequence[tuple[str, str]] | None = None) -> str:
    """The file name (without extension) of a report: ``quarterly_report_2025Q1`` (``annual_report_2025`` for a
    year) for every ledger with a model,
    ``quarterly_report_2025Q1_net-carbon-removal`` (the chosen ledgers' names as slugs, sorted) for chosen ones.

    A name that gives no slug is replaced by its id; a long selection becomes ``<n>-ledgers-<hash of the ids>``.
    ``all_ledgers`` (``(id, name)`` of every ledger the API lists) lets a name keep its file to itself: when
    another ledger's name gives the same slug ("Net Carbon Removal" and "Net Carbon Removal!"), the slug gets a
    short hash of the ledger's id (``net-carbon-removal-3f9a1c``), so neither report overwrites the other.
    The result has letters, digits, ``-`` and ``_`` only, so it is safe on every file system.
    """
    stem = f"{'annual' if period.kind == 'year' else 'quarterly'}_report_{period.label}"
    if ledgers is None:
        return stem
    slugs: dict[str, set[str]] = {}
    for ledger_id, name in [*(all_ledgers or ()), *ledgers]:
        slugs.setdefault(_slug(name) or _slug(ledger_id) or "ledger", set()).add(str(ledger_id))

    def part(ledger_id: str, name: str) -> str:
        slug = _slug(name) or _slug(ledger_id) or "ledger"
        if len(slugs.get(slug, ())) > 1:  # another ledger's name gives the same slug
            slug += "-" + hashlib.sha256(str(ledger_id).encode()).hexdigest()[:6]
        return slug

    parts = sorted({part(ledger_id, name) for ledger_id, name in ledgers})
    joined = "_".join(parts)
    if len(joined) > 80 or len(parts) < len(ledgers):
        digest = hashlib.sha256(",".join(sorted(i for i, _ in ledgers)).encode()).hexdigest()[:10]
        joined = f"{len(ledgers)}-ledgers-{digest}"
    return f"{stem}_{joined}"


def _slug(text: str) -> str:
    import unicodedata

    ascii_text = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:40].strip("-")


# --- what the cells handed back --------------------------------------------------------------------------


def _collected_metadata(nb: NotebookNode) -> dict[str, Any]:
    """What the template's cells handed back in their outputs' metadata (fingerprint, totals...), merged."""
    merged: dict[str, Any] = {}
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            found = output.get("metadata", {}).get(META_KEY)
            if isinstance(found, dict):
                merged.update({k: v for k, v in found.items() if k != "alt"})
    return merged
